package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// The group 0 scenarios that need pause points inside the upgrade
// procedure: DDL issued while every node is in synchronize, a node lost in
// the middle of the procedure and the recovery runbook, the coordinator
// killed at each step, and a node joining after the upgrade (which needs
// no pause). The pauses come from KVNODE_TESTING_GROUP0_PAUSE
// (server/pausepoint), set on every node's start: the coordinator of
// the 2.0 migration, whichever node that is, waits before the first action
// of a step until the scenario creates that step's release file, and says
// so by writing "<release file>.paused" with its pid.
func registerGroup0More(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "group0/ddl-during-synchronize",
		Description: "rolling upgrade 1.1 -> 2.0 with the coordinator paused (KVNODE_TESTING_GROUP0_PAUSE) while every node is in " +
			"synchronize; DDL through every node waits instead of failing, then commits through group 0 once the procedure " +
			"goes on: every node sees every change, each once in system.group0_history; workload",
		Suite: registry.Long, Nodes: 3,
		Plan: group0DDLDuringSyncPlan,
	})
	r.Add(registry.Spec{
		Name: "group0/node-lost-during-upgrade",
		Description: "a node (seeded: the coordinator or another) is killed for good while the 2.0 migration is paused at a " +
			"seeded step; the upgrade waits for it (SHOW UPGRADE STATUS says so); the runbook of docs/recovery.md (recovery " +
			"on every survivor, restart, decommission, group0-recover --dry-run, group0-recover) lets it finish: 2.0, every " +
			"live node in use_post_raft_procedures, no table lost, DDL works; workload",
		Suite: registry.Long, Nodes: 3,
		Plan: group0NodeLostPlan,
	})
	r.Add(registry.Spec{
		Name: "group0/coordinator-killed-at-every-step",
		Description: "the 2.0 migration's coordinator is killed -9 while paused before each step of the procedure in turn " +
			"(discovery, join, synchronize, sync-schema) and restarted; another node resumes the same job each time and " +
			"the upgrade completes with every pre-Raft table, DDL during the stall either commits once or fails with 40001; workload",
		Suite: registry.Long, Nodes: 3,
		Plan: group0CoordinatorKilledPlan,
	})
	r.Add(registry.Spec{
		Name: "group0/join-after-upgrade",
		Description: "after a rolling upgrade 1.1 -> 2.0, a fresh node on the default binary joins: it joins group 0 directly " +
			"(learner, snapshot, promotion to voter), reports use_post_raft_procedures, has the schema, and its DDL commits " +
			"through group 0 and reaches every node; workload",
		Suite: registry.Long, Nodes: 4,
		Plan: group0JoinAfterUpgradePlan,
	})
}

// group0PauseEnv is pausepoint.Group0Env (roachtest does not link the
// server).
const group0PauseEnv = "KVNODE_TESTING_GROUP0_PAUSE"

// The steps of the procedure at which it acts, in order (group0.Step).
const (
	stepDiscovery   = "discovery"
	stepJoin        = "join"
	stepSynchronize = "synchronize"
	stepSyncSchema  = "sync-schema"
)

// group0Pauses is one scenario's KVNODE_TESTING_GROUP0_PAUSE: a release
// file per step under the scenario's directory.
type group0Pauses struct {
	steps []string
	dir   string // set by env
}

func (g *group0Pauses) file(step string) string { return filepath.Join(g.dir, "release-"+step) }

// value is the variable's value.
func (g *group0Pauses) value() string {
	var parts []string
	for _, s := range g.steps {
		parts = append(parts, s+":"+g.file(s))
	}
	return strings.Join(parts, ",")
}

// env makes every later start of every node pause the procedure before
// each of g's steps, and releases every pause when the scenario ends (so
// that no node waits in a pause while it is stopped).
func (g *group0Pauses) env() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		g.dir = filepath.Join(e.Dir, "group0-pause")
		if err := os.MkdirAll(g.dir, 0o755); err != nil {
			return err
		}
		e.Cluster.SetStartEnv(group0PauseEnv + "=" + g.value())
		e.Logf("every start: %s=%s", group0PauseEnv, g.value())
		e.Defer(func() {
			for _, s := range g.steps {
				_ = g.release(s)
			}
		})
		return nil
	}
}

func (g *group0Pauses) release(step string) error {
	return os.WriteFile(g.file(step), []byte("released by roachtest\n"), 0o644)
}

// waitPaused waits until a coordinator pauses before step and returns its
// node (the running node whose pid the marker names) and the action it is
// about to take.
func (g *group0Pauses) waitPaused(ctx context.Context, e *registry.Env, step string, within time.Duration) (*cluster.Node, string, error) {
	marker := g.file(step) + ".paused"
	var node *cluster.Node
	var action string
	start := time.Now()
	err := steps.Eventually(ctx, within, func() error {
		b, err := os.ReadFile(marker)
		if err != nil {
			return errors.Newf("no coordinator has paused before %s yet", step)
		}
		pid := 0
		action = ""
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "pid "); ok {
				pid, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(line, "action "); ok {
				action = v
			}
		}
		for _, n := range e.Cluster.Running() {
			if n.Pid() == pid {
				node = n
				return nil
			}
		}
		return errors.Newf("the process that paused before %s (pid %d) is not a running node", step, pid)
	})
	if err != nil {
		return nil, "", errors.Wrapf(err, "waiting for the 2.0 migration's coordinator to pause before %s (%s)", step, group0Summary(ctx, e))
	}
	e.Logf("%s (pid %d) paused before %s after %s: %s", node, node.Pid(), step, time.Since(start).Round(time.Millisecond), action)
	return node, action, nil
}

// group0Summary is, for an error message, the cluster version and every
// node's group 0 row of SHOW UPGRADE STATUS through the first running node.
func group0Summary(ctx context.Context, e *registry.Env) string {
	run := e.Cluster.Running()
	if len(run) == 0 {
		return "no node is running"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _ := steps.Version(ctx, run[0])
	rows, err := run[0].ShowUpgradeStatus(ctx)
	if err != nil {
		return fmt.Sprintf("version %s; SHOW UPGRADE STATUS through %s: %v", v, run[0], err)
	}
	var parts []string
	for _, r := range rows {
		if r.Item == "group0_state" {
			parts = append(parts, fmt.Sprintf("node %d %s (%s)", r.NodeID, r.Value, r.Detail))
		}
	}
	return fmt.Sprintf("version %s; %s", v, strings.Join(parts, "; "))
}

// group0Row waits until SHOW UPGRADE STATUS through n has a group0_state
// row for node id whose detail contains every string of wants.
func group0Row(ctx context.Context, n *cluster.Node, id int, within time.Duration, wants ...string) (cluster.UpgradeStatusRow, error) {
	var found cluster.UpgradeStatusRow
	err := steps.Eventually(ctx, within, func() error {
		rows, err := n.ShowUpgradeStatus(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Item != "group0_state" || r.NodeID != int64(id) {
				continue
			}
			found = r
			for _, w := range wants {
				if !strings.Contains(r.Detail, w) {
					return errors.Newf("SHOW UPGRADE STATUS through %s: node %d: %s|%s, want %q in it", n, id, r.Value, r.Detail, w)
				}
			}
			return nil
		}
		return errors.Newf("SHOW UPGRADE STATUS through %s has no group0_state row for node %d", n, id)
	})
	return found, err
}

// historyCount counts the entries of system.group0_history, through n,
// whose description contains every string of all (case-insensitively), and
// returns the node IDs that committed them.
func historyCount(ctx context.Context, n *cluster.Node, all ...string) (int, []int64, error) {
	rows, err := n.Query(ctx, "SELECT description, node_id FROM system.group0_history")
	if err != nil {
		return 0, nil, err
	}
	count := 0
	var by []int64
	for _, r := range rows {
		d := strings.ToLower(fmt.Sprint(r[0]))
		match := true
		for _, s := range all {
			match = match && strings.Contains(d, strings.ToLower(s))
		}
		if match {
			count++
			id, _ := r[1].(int64)
			by = append(by, id)
		}
	}
	return count, by, nil
}

// onceInHistory checks, through every running node, that exactly one
// entry of group 0's history describes a statement containing all.
func onceInHistory(all ...string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 10*time.Second, func() error {
				c, by, err := historyCount(ctx, n, all...)
				if err != nil {
					return err
				}
				if c != 1 {
					return errors.Newf("system.group0_history through %s has %d entries for %q (by nodes %v), want exactly 1", n, c, all, by)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
}

// columnEverywhere checks that every running node shows column in table.
func columnEverywhere(table, column string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 10*time.Second, func() error {
				_, err := n.Query(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 1", column, table))
				return err
			}); err != nil {
				return errors.Wrapf(err, "%s does not show column %s of %s", n, column, table)
			}
		}
		return nil
	}
}

// rollTo20 adds the steps of a rolling restart of nodes (in order) onto
// release 2.0, each followed by workload progress. (Release 2.0, not the
// default binary: the default is 2.1 since release 2.1, which refuses a 1.1
// store.)
func rollTo20(plan *registry.Plan, sc *steps.Scenario, order []int, kill bool) {
	for _, i := range order {
		plan.Addf(sc.Restart(i, r20, kill), "restart n%d on release 2.0", i)
		plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	}
}

// finalized waits until every running node reports cluster version 2.0
// and use_post_raft_procedures.
func finalized(sc *steps.Scenario, within time.Duration) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		d, err := steps.WaitVersion(ctx, e.Cluster, r20, within)
		if err != nil {
			return errors.Wrapf(err, "the cluster did not finalize 2.0 (%s)", group0Summary(ctx, e))
		}
		sc.Note(e, "finalized 2.0 (%s after this step began)", d.Round(time.Millisecond))
		return waitGroup0State("use_post_raft_procedures", 30*time.Second)(ctx, e)
	}
}

// ddlRun is one DDL statement run in the background.
type ddlRun struct {
	stmt  string
	via   int
	start time.Time
	took  time.Duration
	err   error
	done  chan struct{}
}

func startDDL(ctx context.Context, e *registry.Env, via int, stmt string) *ddlRun {
	d := &ddlRun{stmt: stmt, via: via, start: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		// Not retried once sent: each attempt is seen as it is.
		d.err = e.Cluster.Node(via).Exec(ctx, stmt)
		d.took = time.Since(d.start)
	}()
	e.Defer(func() { <-d.done })
	return d
}

func (d *ddlRun) String() string { return fmt.Sprintf("%s through n%d", d.stmt, d.via) }

// --- group0/ddl-during-synchronize ---

func group0DDLDuringSyncPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	pz := &group0Pauses{steps: []string{stepSyncSchema}}
	initVia := 1 + rng.IntN(p.Nodes)
	order := plusOne(rng.Perm(p.Nodes))
	preVia := 1 + rng.IntN(p.Nodes)
	alterVia := 1 + rng.IntN(p.Nodes)
	hold := time.Duration(3+rng.IntN(8)) * time.Second
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on 1.1; upgrade order %s; the coordinator pauses before sync-schema; "+
		"DDL through every node and ALTER through n%d, held %s", p.Nodes, nodeList(order), alterVia, hold)}}
	plan.Add("build releases 1.1 and 2.0", sc.Binaries(r11, r20))
	plan.Add("every start uses "+fastAutoUpgrade, fastAutoUpgradeStep())
	plan.Add("every start sets "+group0PauseEnv+"=sync-schema:<release file>: the 2.0 migration's coordinator pauses once every node is in synchronize", pz.env())
	plan.Addf(sc.StartCluster([]string{r11}, initVia), "start %d nodes on 1.1, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Addf(execThrough(preVia, "CREATE TABLE g0_pre (k INT PRIMARY KEY, v TEXT)"), "CREATE TABLE g0_pre through n%d (pre-Raft)", preVia)
	plan.Add("every node lists it", tablesEverywhere("g0_pre"))
	rollTo20(plan, sc, order, false)
	var coord *cluster.Node
	var coordID int
	plan.Add("the 2.0 migration's coordinator pauses before sync-schema (within 3 minutes)", func(ctx context.Context, e *registry.Env) error {
		n, _, err := pz.waitPaused(ctx, e, stepSyncSchema, 3*time.Minute)
		if err != nil {
			return err
		}
		coord = n
		if coordID, err = n.NodeID(ctx); err != nil {
			return err
		}
		sc.Note(e, "the coordinator %s (node %d) paused before sync-schema", n, coordID)
		return nil
	})
	plan.Add("every node reports synchronize; the cluster version is still 2.0-step.1", func(ctx context.Context, e *registry.Env) error {
		if err := waitGroup0State("synchronize", 30*time.Second)(ctx, e); err != nil {
			return err
		}
		return steps.CheckVersion(ctx, e.Cluster, "2.0-step.1")
	})
	plan.Add("SHOW UPGRADE STATUS (through every node) shows the coordinator merging the schema", func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			r, err := group0Row(ctx, n, coordID, 10*time.Second, "coordinating the upgrade: merging the schema of node(s)")
			if err != nil {
				return err
			}
			e.Logf("through %s: node %d %s: %s", n, coordID, r.Value, r.Detail)
		}
		return nil
	})
	var ddls []*ddlRun
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		for i := 1; i <= p.Nodes; i++ {
			ddls = append(ddls, startDDL(ctx, e, i, fmt.Sprintf("CREATE TABLE g0_sync_n%d (k INT PRIMARY KEY, v INT)", i)))
		}
		ddls = append(ddls, startDDL(ctx, e, alterVia, "ALTER TABLE g0_pre ADD COLUMN s INT"))
		sc.Note(e, "issued %d DDL statements during synchronize", len(ddls))
		deadline := time.Now().Add(hold)
		for time.Now().Before(deadline) {
			for _, d := range ddls {
				select {
				case <-d.done:
					return errors.Newf("%s returned after %s while every node is in synchronize (%v); it must wait", d, d.took, d.err)
				default:
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		sc.Note(e, "after %s, every DDL still waits", hold)
		return nil
	}, "CREATE TABLE g0_sync_nN through every node N and ALTER TABLE g0_pre ADD COLUMN s through n%d: none returns within %s", alterVia, hold)
	plan.Add("the cluster version is still 2.0-step.1 and every node still in synchronize", func(ctx context.Context, e *registry.Env) error {
		if err := steps.CheckVersion(ctx, e.Cluster, "2.0-step.1"); err != nil {
			return err
		}
		return waitGroup0State("synchronize", time.Second)(ctx, e)
	})
	plan.Add("release the pause: the procedure goes on", func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "releasing the coordinator %s", coord)
		return pz.release(stepSyncSchema)
	})
	plan.Add("every DDL succeeds, within the 30s that DDL waits during synchronize", func(ctx context.Context, e *registry.Env) error {
		for _, d := range ddls {
			select {
			case <-d.done:
			case <-time.After(time.Until(d.start.Add(40 * time.Second))):
				return errors.Newf("%s has not returned %s after it was issued (%s)", d, time.Since(d.start).Round(time.Millisecond), group0Summary(ctx, e))
			}
			if d.err != nil {
				return errors.Wrapf(d.err, "%s, issued during synchronize, failed after %s", d, d.took.Round(time.Millisecond))
			}
			if d.took > 35*time.Second {
				return errors.Newf("%s took %s, more than the 30s bound", d, d.took)
			}
			sc.Note(e, "%s succeeded after %s", d, d.took.Round(time.Millisecond))
		}
		return nil
	})
	plan.Add("the cluster finalizes 2.0 (within 2 minutes); every node in use_post_raft_procedures", finalized(sc, 2*time.Minute))
	var want []string
	for i := 1; i <= p.Nodes; i++ {
		want = append(want, fmt.Sprintf("g0_sync_n%d", i))
	}
	want = append([]string{"g0_pre"}, want...)
	plan.Add("every node lists every table", tablesEverywhere(want...))
	plan.Add("every node shows column s of g0_pre", columnEverywhere("g0_pre", "s"))
	for i := 1; i <= p.Nodes; i++ {
		plan.Addf(onceInHistory(fmt.Sprintf("CREATE TABLE g0_sync_n%d", i)), "group 0's history has CREATE TABLE g0_sync_n%d exactly once, on every node", i)
	}
	plan.Add("group 0's history has the ALTER TABLE g0_pre exactly once, on every node", onceInHistory("ALTER TABLE g0_pre"))
	plan.Addf(execThrough(preVia, "CREATE TABLE g0_post (k INT PRIMARY KEY)"), "CREATE TABLE g0_post through n%d (group 0)", preVia)
	plan.Add("every node lists it", tablesEverywhere(append([]string{"g0_post"}, want...)...))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(30))
	return plan, nil
}

// --- group0/node-lost-during-upgrade ---

func group0NodeLostPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	allSteps := []string{stepDiscovery, stepJoin, stepSynchronize, stepSyncSchema}
	step := allSteps[rng.IntN(len(allSteps))]
	pz := &group0Pauses{steps: []string{step}}
	initVia := 1 + rng.IntN(p.Nodes)
	order := plusOne(rng.Perm(p.Nodes))
	killCoordinator := rng.IntN(2) == 0
	victimPick := rng.IntN(p.Nodes - 1) // among the nodes other than the coordinator
	viaPick := rng.IntN(p.Nodes - 1)    // among the survivors
	bySet := rng.IntN(2) == 0           // finish with SET CLUSTER SETTING, or let auto-upgrade do it
	preA, preB := 1+rng.IntN(p.Nodes), 1+rng.IntN(p.Nodes)
	victimDesc := "the coordinator"
	if !killCoordinator {
		victimDesc = fmt.Sprintf("non-coordinator #%d (by index)", victimPick+1)
	}
	finish := "auto-upgrade"
	if bySet {
		finish = "SET CLUSTER SETTING version = '2.0'"
	}
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on 1.1; upgrade order %s; pause before %s; kill %s; "+
		"runbook through survivor #%d; finish by %s", p.Nodes, nodeList(order), step, victimDesc, viaPick+1, finish)}}
	plan.Add("build releases 1.1 and 2.0", sc.Binaries(r11, r20))
	plan.Add("check that release 2.0 has `kvnode node decommission`", sc.RequireNodeCLI(r20))
	plan.Add("every start uses "+fastAutoUpgrade, fastAutoUpgradeStep())
	plan.Addf(pz.env(), "every start sets %s=%s:<release file>", group0PauseEnv, step)
	plan.Addf(sc.StartCluster([]string{r11}, initVia), "start %d nodes on 1.1, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Addf(execThrough(preA, "CREATE TABLE g0_pre (k INT PRIMARY KEY, v TEXT)"), "CREATE TABLE g0_pre through n%d (pre-Raft)", preA)
	plan.Addf(execThrough(preB, "CREATE TABLE g0_pre2 (k INT PRIMARY KEY)"), "CREATE TABLE g0_pre2 through n%d (pre-Raft)", preB)
	plan.Add("every node lists both tables", tablesEverywhere("g0_pre", "g0_pre2"))
	rollTo20(plan, sc, order, false)

	var victim *cluster.Node
	var victimID int
	var survivors []*cluster.Node
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		coord, _, err := pz.waitPaused(ctx, e, step, 3*time.Minute)
		if err != nil {
			return err
		}
		var rest []*cluster.Node
		for _, n := range e.Cluster.Running() {
			if n != coord {
				rest = append(rest, n)
			}
		}
		victim = coord
		if !killCoordinator {
			victim = rest[victimPick]
		}
		if victimID, err = victim.NodeID(ctx); err != nil {
			return err
		}
		for _, n := range e.Cluster.Running() {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		sc.Note(e, "the coordinator %s paused before %s; killing %s (node %d) for good", coord, step, victim, victimID)
		if err := victim.Kill(); err != nil {
			return err
		}
		return pz.release(step)
	}, "the 2.0 migration's coordinator pauses before %s; kill -9 %s for good; release the pause", step, victimDesc)
	plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	plan.Add("the upgrade is stuck: SHOW UPGRADE STATUS through every survivor says the coordinator waits for the dead node", func(ctx context.Context, e *registry.Env) error {
		for _, n := range survivors {
			var line string
			if err := steps.Eventually(ctx, 90*time.Second, func() error {
				rows, err := n.ShowUpgradeStatus(ctx)
				if err != nil {
					return err
				}
				want := fmt.Sprintf("not answering: node %d", victimID)
				for _, r := range rows {
					if r.Item == "group0_state" && strings.Contains(r.Detail, "coordinating the upgrade: waiting for every node") &&
						strings.Contains(r.Detail, want) {
						line = r.String()
						return nil
					}
				}
				return errors.Newf("no group0_state row through %s says %q (%s)", n, want, group0Summary(ctx, e))
			}); err != nil {
				return err
			}
			e.Logf("through %s: %s", n, line)
		}
		return steps.CheckVersion(ctx, e.Cluster, "2.0-step.1")
	})
	plan.Add("runbook step 2 on every survivor, one at a time: UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'; restart (SIGTERM)", func(ctx context.Context, e *registry.Env) error {
		for _, n := range survivors {
			if err := n.ExecIdempotent(ctx, "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'"); err != nil {
				return err
			}
			sc.Note(e, "%s entered recovery mode; restarting it", n)
			start := time.Now()
			if err := n.Restart(ctx, n.Binary(), false); err != nil {
				return err
			}
			st, err := n.QueryString(ctx, group0StateQuery)
			if err != nil || st != "recovery" {
				return errors.Newf("%s after the restart: %q %v", n, st, err)
			}
			sc.Note(e, "%s restarted in recovery in %s", n, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
	plan.Add("DDL is refused (55000) on a node in recovery", func(ctx context.Context, e *registry.Env) error {
		_, err := steps.ExpectSQLError(ctx, survivors[0], "CREATE TABLE g0_refused (k INT PRIMARY KEY)", "55000", "recovery mode")
		return err
	})
	plan.Add("runbook step 3: kvnode node decommission <dead node> --host=<survivor>", func(ctx context.Context, e *registry.Env) error {
		out, err := survivors[viaPick].Decommission(ctx, victim)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "decommissioned") {
			return errors.Newf("kvnode node decommission did not report node %d decommissioned:\n%s", victimID, out)
		}
		sc.Note(e, "decommissioned %s (node %d): %s", victim, victimID, lastLineOf(out))
		return nil
	})
	var kind string
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		via := survivors[viaPick]
		out, err := runCLI(ctx, e, via, "node", "group0-recover", "--host="+via.ListenAddr, "--dry-run")
		if err != nil {
			return errors.Wrapf(err, "group0-recover --dry-run: %s", out)
		}
		e.Logf("group0-recover --dry-run:\n%s", out)
		if !strings.Contains(out, "nothing was changed") {
			return errors.Newf("the dry run does not say it changed nothing:\n%s", out)
		}
		switch {
		case strings.Contains(out, "recovery plan (re-form)"):
			kind = "re-form"
			if !strings.Contains(out, "every node enters synchronize; the 2.0 migration then merges") {
				return errors.Newf("the re-formation plan does not leave the upgrade to the 2.0 migration:\n%s", out)
			}
		case strings.Contains(out, "recovery plan (back-to-pre-raft)"):
			kind = "back-to-pre-raft"
		default:
			return errors.Newf("the dry run plans neither a re-formation nor a return to the pre-Raft procedures:\n%s", out)
		}
		sc.Note(e, "dry run: %s", kind)
		return nil
	}, "runbook step 4: kvnode node group0-recover --host=<survivor #%d> --dry-run: a plan (re-form, or back-to-pre-raft if group 0 was never formed)", viaPick+1)
	plan.Add("nothing changed: every survivor is still in recovery", waitGroup0State("recovery", 5*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		via := survivors[viaPick]
		out, err := runCLI(ctx, e, via, "node", "group0-recover", "--host="+via.ListenAddr)
		if err != nil {
			return errors.Wrapf(err, "group0-recover: %s", out)
		}
		i := strings.LastIndex(out, "done:")
		if i < 0 {
			return errors.Newf("group0-recover did not report it was done:\n%s", out)
		}
		sc.Note(e, "group0-recover: %s", strings.TrimSpace(out[i:]))
		return nil
	}, "runbook step 5: kvnode node group0-recover --host=<survivor #%d>", viaPick+1)
	if bySet {
		plan.Add("runbook step 6: SET CLUSTER SETTING version = '2.0' through survivor #1", func(ctx context.Context, e *registry.Env) error {
			start := time.Now()
			err := survivors[0].ExecIdempotent(ctx, "SET CLUSTER SETTING version = '2.0'")
			if err == nil {
				sc.Note(e, "SET CLUSTER SETTING version = '2.0' through %s took %s", survivors[0], time.Since(start).Round(time.Millisecond))
			}
			return err
		})
	}
	plan.Add("the upgrade completes (within 3 minutes): 2.0, every live node in use_post_raft_procedures", finalized(sc, 3*time.Minute))
	plan.Add("no table was lost", tablesEverywhere("g0_pre", "g0_pre2"))
	plan.Add("CREATE TABLE g0_after through survivor #1 (group 0)", func(ctx context.Context, e *registry.Env) error {
		return survivors[0].Exec(ctx, "CREATE TABLE g0_after (k INT PRIMARY KEY)")
	})
	plan.Add("every live node lists it", tablesEverywhere("g0_after", "g0_pre", "g0_pre2"))
	plan.Add("group 0's history has it exactly once", onceInHistory("CREATE TABLE g0_after"))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(30))
	return plan, nil
}

func lastLineOf(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// --- group0/coordinator-killed-at-every-step ---

func group0CoordinatorKilledPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	order := []string{stepDiscovery, stepJoin, stepSynchronize, stepSyncSchema}
	pz := &group0Pauses{steps: order}
	initVia := 1 + rng.IntN(p.Nodes)
	roll := plusOne(rng.Perm(p.Nodes))
	preVia := 1 + rng.IntN(p.Nodes)
	ddlPick := make([]int, len(order))
	for i := range ddlPick {
		ddlPick[i] = rng.IntN(p.Nodes - 1)
	}
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on 1.1; upgrade order %s; the coordinator is killed -9 before "+
		"each of %s; DDL during each stall through survivor #%v", p.Nodes, nodeList(roll), strings.Join(order, ", "), plusOne(ddlPick))}}
	plan.Add("build releases 1.1 and 2.0", sc.Binaries(r11, r20))
	plan.Add("every start uses "+fastAutoUpgrade, fastAutoUpgradeStep())
	plan.Add("every start sets "+group0PauseEnv+" with a release file for each step", pz.env())
	plan.Addf(sc.StartCluster([]string{r11}, initVia), "start %d nodes on 1.1, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Addf(execThrough(preVia, "CREATE TABLE g0_pre (k INT PRIMARY KEY, v TEXT)"), "CREATE TABLE g0_pre through n%d (pre-Raft)", preVia)
	plan.Add("every node lists it", tablesEverywhere("g0_pre"))
	rollTo20(plan, sc, roll, false)
	tables := []string{"g0_pre"}
	var lateDDL *ddlRun // the DDL issued while every node is in synchronize
	for k, step := range order {
		table := "g0_k_" + strings.ReplaceAll(step, "-", "_")
		first := k == 0
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			within := 90 * time.Second // the dead coordinator's 10s lease, then the next run
			if first {
				within = 3 * time.Minute
			}
			coord, action, err := pz.waitPaused(ctx, e, step, within)
			if err != nil {
				return err
			}
			id, err := coord.NodeID(ctx)
			if err != nil {
				return err
			}
			var rest []*cluster.Node
			for _, n := range e.Cluster.Running() {
				if n != coord {
					rest = append(rest, n)
				}
			}
			if err := steps.Eventually(ctx, 10*time.Second, func() error {
				jobs, err := steps.MigrationJobs(ctx, rest[0], "2.0-step.1")
				if err != nil {
					return err
				}
				if len(jobs) != 1 || jobs[0].Status != "running" || jobs[0].Coordinator != int64(id) {
					return errors.Newf("SHOW JOBS through %s: %v, want one running 2.0-step.1 job coordinated by node %d", rest[0], jobs, id)
				}
				return nil
			}); err != nil {
				return err
			}
			sc.Note(e, "killing the coordinator %s (node %d) paused before %s (%s)", coord, id, step, action)
			bin := coord.Binary()
			if err := coord.Kill(); err != nil {
				return err
			}
			via := rest[ddlPick[k]]
			stmt := fmt.Sprintf("CREATE TABLE %s (k INT PRIMARY KEY)", table)
			if step == stepSyncSchema {
				// Every node is in synchronize: the DDL waits for the
				// procedure, which first waits out the dead coordinator's
				// lease. It commits through group 0 or fails after its
				// bound with 40001; both are checked below.
				lateDDL = startDDL(ctx, e, via.Index, stmt)
			} else if err := via.Exec(ctx, stmt); err != nil {
				return errors.Wrapf(err, "%s through %s (pre-Raft) with the coordinator dead", stmt, via)
			} else {
				sc.Note(e, "%s through %s (pre-Raft) with the coordinator dead", stmt, via)
			}
			if err := pz.release(step); err != nil {
				return err
			}
			if err := coord.Start(ctx, bin); err != nil {
				return err
			}
			if err := coord.WaitReady(ctx); err != nil {
				return err
			}
			sc.Note(e, "%s restarted", coord)
			return nil
		}, "the coordinator pauses before %s: check SHOW JOBS names it, kill -9 it, CREATE TABLE %s through survivor #%d, release %s, restart it",
			step, table, ddlPick[k]+1, step)
		if step != stepSyncSchema {
			tables = append(tables, table)
		}
		plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	}
	lateTable := "g0_k_sync_schema"
	plan.Add("the cluster finalizes 2.0 (within 3 minutes); every node in use_post_raft_procedures", finalized(sc, 3*time.Minute))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		<-lateDDL.done
		switch {
		case lateDDL.err == nil:
			sc.Note(e, "%s, issued during synchronize, succeeded after %s", lateDDL, lateDDL.took.Round(time.Millisecond))
			tables = append(tables, lateTable)
			return onceInHistory("CREATE TABLE "+lateTable)(ctx, e)
		case cluster.SQLState(lateDDL.err) == "40001":
			sc.Note(e, "%s, issued during synchronize, failed after %s with 40001 (its bound): %v", lateDDL, lateDDL.took.Round(time.Millisecond), lateDDL.err)
			c, _, err := historyCount(ctx, e.Cluster.Running()[0], "CREATE TABLE "+lateTable)
			if err != nil {
				return err
			}
			if c != 0 {
				return errors.Newf("%s failed with 40001 but is %d times in group 0's history", lateDDL, c)
			}
			return nil
		default:
			return errors.Wrapf(lateDDL.err, "%s, issued during synchronize", lateDDL)
		}
	}, "CREATE TABLE %s (issued during synchronize) committed once through group 0, or failed with 40001 and is nowhere", lateTable)
	plan.Add("every node lists every table created before and during the procedure", func(ctx context.Context, e *registry.Env) error {
		sorted := append([]string(nil), tables...)
		sort.Strings(sorted)
		return tablesEverywhere(sorted...)(ctx, e)
	})
	plan.Add("one 2.0-step.1 migration job, succeeded; resumed after every kill (node logs)", func(ctx context.Context, e *registry.Env) error {
		j, err := steps.CheckMigrationSucceeded(ctx, e.Cluster.Running()[0], "2.0-step.1")
		if err != nil {
			return err
		}
		lines, err := steps.LogLines(e.Cluster, "resuming migration job", "2.0-step.1")
		if err != nil {
			return err
		}
		if len(lines) < len(order) {
			return errors.Newf("the node logs show %d resumptions of the 2.0-step.1 migration, want at least %d:\n%s",
				len(lines), len(order), strings.Join(lines, "\n"))
		}
		sc.Note(e, "%s; resumed %d times", j, len(lines))
		return nil
	})
	plan.Addf(execThrough(preVia, "CREATE TABLE g0_post (k INT PRIMARY KEY)"), "CREATE TABLE g0_post through n%d (group 0)", preVia)
	plan.Add("group 0's history has it exactly once", onceInHistory("CREATE TABLE g0_post"))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(30))
	return plan, nil
}

// --- group0/join-after-upgrade ---

func group0JoinAfterUpgradePlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	joiner := p.Nodes
	first := others(p.Nodes, joiner)
	initVia := first[rng.IntN(len(first))]
	order := rng.Perm(len(first))
	roll := make([]int, len(order))
	for i, j := range order {
		roll[i] = first[j]
	}
	preVia := first[rng.IntN(len(first))]
	postVia := first[rng.IntN(len(first))]
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%s on 1.1; upgrade order %s; then n%d joins on the default binary",
		nodeList(first), nodeList(roll), joiner)}}
	plan.Add("build releases 1.1 and 2.0 and the default binary", sc.Binaries(r11, r20, cluster.DefaultRelease))
	plan.Add("every start uses "+fastAutoUpgrade, fastAutoUpgradeStep())
	plan.Addf(sc.StartNodes(r11, first, initVia), "start %s on 1.1, init through n%d; n%d stays empty", nodeList(first), initVia, joiner)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node (n"+strconv.Itoa(joiner)+"'s clients move on until it runs)", sc.StartWorkload())
	plan.Addf(execThrough(preVia, "CREATE TABLE g0_pre (k INT PRIMARY KEY, v TEXT)"), "CREATE TABLE g0_pre through n%d (pre-Raft)", preVia)
	plan.Add("every node lists it", tablesEverywhere("g0_pre"))
	rollTo20(plan, sc, roll, false)
	plan.Add("the cluster finalizes 2.0 by itself (within 3 minutes); every node in use_post_raft_procedures", finalized(sc, 3*time.Minute))
	plan.Addf(execThrough(postVia, "CREATE TABLE g0_post (k INT PRIMARY KEY)"), "CREATE TABLE g0_post through n%d (group 0)", postVia)
	plan.Add("every node lists both tables", tablesEverywhere("g0_post", "g0_pre"))
	var joinerID int
	var generation string
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		var err error
		if generation, err = e.Cluster.Node(first[0]).QueryString(ctx, "SELECT value FROM system.local WHERE key = 'group0_generation'"); err != nil {
			return err
		}
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		n := e.Cluster.Node(joiner)
		sc.Note(e, "starting %s with an empty store on %s", n, bin.Name())
		if err := n.Start(ctx, bin); err != nil {
			return err
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
		joinerID, err = n.NodeID(ctx)
		return err
	}, "start n%d with an empty store on the default binary; it joins and is ready", joiner)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(joiner)
		if err := steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := n.QueryString(ctx, group0StateQuery)
			if err != nil {
				return err
			}
			if st != "use_post_raft_procedures" {
				return errors.Newf("%s is in %s", n, st)
			}
			return nil
		}); err != nil {
			return err
		}
		gen, err := n.QueryString(ctx, "SELECT value FROM system.local WHERE key = 'group0_generation'")
		if err != nil {
			return err
		}
		if gen != generation {
			return errors.Newf("%s is in group 0 generation %s, the others in %s", n, gen, generation)
		}
		sc.Note(e, "%s (node %d) reports use_post_raft_procedures, group 0 generation %s", n, joinerID, gen)
		return nil
	}, "n%d reports use_post_raft_procedures in the others' group 0 generation", joiner)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		for _, want := range [][]string{
			{"group 0 added this node as a learner"},
			{"applied Raft snapshot", "group=group0"},
		} {
			if err := steps.Eventually(ctx, 10*time.Second, func() error {
				lines, err := steps.LogLines(e.Cluster, want...)
				if err != nil {
					return err
				}
				for _, l := range lines {
					if strings.HasPrefix(l, fmt.Sprintf("n%d: ", joiner)) {
						e.Logf("%s", l)
						return nil
					}
				}
				return errors.Newf("n%d's log has no line with %q", joiner, want)
			}); err != nil {
				return err
			}
		}
		if err := steps.Eventually(ctx, 60*time.Second, func() error {
			lines, err := steps.LogLines(e.Cluster, "promoting learner to voter", "group=group0", fmt.Sprintf(" node=%d", joinerID))
			if err != nil {
				return err
			}
			for _, l := range lines {
				if strings.HasSuffix(l, fmt.Sprintf(" node=%d", joinerID)) {
					e.Logf("%s", l)
					return nil
				}
			}
			return errors.Newf("no node's log says it promoted node %d to a group 0 voter", joinerID)
		}); err != nil {
			return err
		}
		for _, n := range e.Cluster.Running() {
			r, err := group0Row(ctx, n, joinerID, 30*time.Second, ", voter,")
			if err != nil {
				r, err = group0Row(ctx, n, joinerID, time.Second, ", leader,")
			}
			if err != nil {
				return err
			}
			e.Logf("through %s: node %d %s: %s", n, joinerID, r.Value, r.Detail)
		}
		return nil
	}, "n%d joined group 0 as a learner, applied a group 0 snapshot and was promoted to voter (logs, SHOW UPGRADE STATUS)", joiner)
	plan.Addf(tablesEverywhere("g0_post", "g0_pre"), "n%d (and every node) lists the schema", joiner)
	plan.Addf(execThrough(joiner, "CREATE TABLE g0_from_joiner (k INT PRIMARY KEY)"), "CREATE TABLE g0_from_joiner through n%d", joiner)
	plan.Addf(execThrough(joiner, "ALTER TABLE g0_pre ADD COLUMN j INT"), "ALTER TABLE g0_pre ADD COLUMN j through n%d", joiner)
	plan.Add("every node lists the new table and shows the new column", func(ctx context.Context, e *registry.Env) error {
		if err := tablesEverywhere("g0_from_joiner", "g0_post", "g0_pre")(ctx, e); err != nil {
			return err
		}
		return columnEverywhere("g0_pre", "j")(ctx, e)
	})
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		for _, stmt := range []string{"CREATE TABLE g0_from_joiner", "ALTER TABLE g0_pre"} {
			if err := onceInHistory(stmt)(ctx, e); err != nil {
				return err
			}
			_, by, err := historyCount(ctx, e.Cluster.Node(first[0]), stmt)
			if err != nil {
				return err
			}
			if len(by) != 1 || by[0] != int64(joinerID) {
				return errors.Newf("group 0's history has %q committed by nodes %v, want node %d (n%d)", stmt, by, joinerID, joiner)
			}
		}
		return nil
	}, "group 0's history has both changes exactly once, committed by n%d, on every node", joiner)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history (reads through n"+strconv.Itoa(joiner)+" too)", sc.CheckWorkload(30))
	return plan, nil
}
