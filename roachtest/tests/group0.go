package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// The group 0 scenarios (issue 6), each under the workload: here the
// rolling upgrade 1.1 -> 2.0 until every node uses the post-Raft schema
// procedures, conflicting DDL from two nodes at once, and the recovery
// runbook of docs/recovery.md after group 0 lost its majority; in
// group0_more.go, with pause points inside the procedure
// (KVNODE_TESTING_GROUP0_PAUSE), DDL during synchronize, a node lost during
// the upgrade and the runbook, the coordinator killed at every step, and a
// node joining after the upgrade. The in-process counterparts are in
// server/group0_test.go.
func registerGroup0(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "group0/rolling-upgrade",
		Description: "rolling upgrade 1.1 -> 2.0 under the workload (seeded order and stop signal); the 2.0 migration forms " +
			"group 0 and every node ends in use_post_raft_procedures with the pre-Raft schema; DDL then commits through group 0",
		Suite: registry.Long, Nodes: 3,
		Plan: group0UpgradePlan,
	})
	r.Add(registry.Spec{
		Name: "group0/conflicting-ddl",
		Description: "after the upgrade, two nodes (seeded) create the same table at the same moment, five times, under the " +
			"workload: exactly one wins each time, the other gets 42P07, and every node shows the winner",
		Suite: registry.Long, Nodes: 3,
		Plan: group0ConflictPlan,
	})
	r.Add(registry.Spec{
		Name: "group0/majority-loss-recovery",
		Description: "two nodes (seeded) lose their group 0 store: DDL fails with 58000 while the workload goes on; the runbook " +
			"of docs/recovery.md (recovery on every node, restart, group0-recover --dry-run naming the survivor as seed, " +
			"group0-recover) re-forms group 0 and DDL works again",
		Suite: registry.Long, Nodes: 3,
		Plan: group0RecoveryPlan,
	})
	registerGroup0More(r)
}

const group0StateQuery = "SELECT value FROM system.local WHERE key = 'group0_upgrade_state'"

// waitGroup0State waits until every running node reports want.
func waitGroup0State(want string, within time.Duration) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, within, func() error {
				st, err := n.QueryString(ctx, group0StateQuery)
				if err != nil {
					return err
				}
				if st != want {
					return errors.Newf("%s is in %s, want %s", n, st, want)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
}

// tablesEverywhere checks that every running node lists exactly these
// tables (besides the workload's).
func tablesEverywhere(want ...string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 10*time.Second, func() error {
				rows, err := n.Query(ctx, "SHOW TABLES")
				if err != nil {
					return err
				}
				var got []string
				for _, r := range rows {
					if name := fmt.Sprint(r[1]); !strings.HasPrefix(name, "rt_") {
						got = append(got, name)
					}
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					return errors.Newf("%s lists tables %v, want %v", n, got, want)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
}

func execThrough(via int, stmt string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		return e.Cluster.Node(via).Exec(ctx, stmt)
	}
}

// runCLI runs `kvnode args...` with node n's binary and logs it to
// logs/cli.log like the framework's own CLI calls.
func runCLI(ctx context.Context, e *registry.Env, n *cluster.Node, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	args = append(args, e.Cluster.CLISecurityFlag()) // --insecure, or --certs-dir in secure mode
	cmd := exec.CommandContext(ctx, n.Binary().Path, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	if f, ferr := os.OpenFile(filepath.Join(e.Cluster.LogDir(), "cli.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "=== %s kvnode %s (%s, %v)\n%s\n", start.Format(time.RFC3339Nano), strings.Join(args, " "),
			time.Since(start).Round(time.Millisecond), err, buf.String())
		_ = f.Close()
	}
	return buf.String(), err
}

func group0UpgradePlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	order := rng.Perm(p.Nodes)
	kill := rng.IntN(2) == 1
	a, b := 1+rng.IntN(p.Nodes), 1+rng.IntN(p.Nodes)
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on 1.1; upgrade order %s (%s); pre-Raft DDL through n%d and n%d",
		p.Nodes, nodeList(plusOne(order)), map[bool]string{true: "SIGKILL", false: "SIGTERM"}[kill], a, b)}}
	plan.Add("build releases 1.1 and 2.0", sc.Binaries(r11, r20))
	plan.Add("every start uses "+fastAutoUpgrade, fastAutoUpgradeStep())
	plan.Addf(sc.StartCluster([]string{r11}, initVia), "start %d nodes on 1.1, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Addf(execThrough(a, "CREATE TABLE g0_pre (k INT PRIMARY KEY, v TEXT)"), "CREATE TABLE g0_pre through n%d (pre-Raft)", a)
	plan.Addf(execThrough(b, "CREATE TABLE g0_pre2 (k INT PRIMARY KEY)"), "CREATE TABLE g0_pre2 through n%d (pre-Raft)", b)
	plan.Add("every node lists both tables", tablesEverywhere("g0_pre", "g0_pre2"))
	for _, i := range order {
		plan.Addf(sc.Restart(i+1, r20, kill), "restart n%d on release 2.0", i+1)
		plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	}
	plan.Add("the cluster finalizes 2.0 by itself (within 3 minutes)", func(ctx context.Context, e *registry.Env) error {
		d, err := steps.WaitVersion(ctx, e.Cluster, r20, 3*time.Minute)
		if err == nil {
			sc.Note(e, "finalized 2.0 in %s", d.Round(time.Millisecond))
		}
		return err
	})
	plan.Add("every node reports use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 30*time.Second))
	plan.Add("SHOW UPGRADE STATUS lists every node's group 0 state", func(ctx context.Context, e *registry.Env) error {
		rows, err := e.Cluster.Node(1).Query(ctx, "SHOW UPGRADE STATUS")
		if err != nil {
			return err
		}
		n := 0
		for _, r := range rows {
			if fmt.Sprint(r[0]) == "group0_state" && fmt.Sprint(r[2]) == "use_post_raft_procedures" {
				n++
			}
		}
		if n != p.Nodes {
			return errors.Newf("SHOW UPGRADE STATUS has %d group0_state rows in use_post_raft_procedures, want %d: %v", n, p.Nodes, rows)
		}
		return nil
	})
	plan.Add("every node lists the pre-Raft tables", tablesEverywhere("g0_pre", "g0_pre2"))
	plan.Addf(execThrough(b, "ALTER TABLE g0_pre ADD COLUMN w INT"), "ALTER TABLE g0_pre ADD COLUMN w through n%d (group 0)", b)
	plan.Addf(execThrough(a, "CREATE TABLE g0_post (k INT PRIMARY KEY)"), "CREATE TABLE g0_post through n%d (group 0)", a)
	plan.Add("every node lists it at once", tablesEverywhere("g0_post", "g0_pre", "g0_pre2"))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(30))
	return plan, nil
}

func plusOne(idx []int) []int {
	out := make([]int, len(idx))
	for i, v := range idx {
		out[i] = v + 1
	}
	return out
}

func group0ConflictPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	x := 1 + rng.IntN(p.Nodes)
	y := 1 + (x+rng.IntN(p.Nodes-1))%p.Nodes
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary; concurrent DDL through n%d and n%d", p.Nodes, x, y)}}
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Add("every node reports use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 30*time.Second))
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	for round := 1; round <= 5; round++ {
		table := fmt.Sprintf("g0_race%d", round)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j, via := range []int{x, y} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Not retried: each attempt must be seen as it is.
					errs[j] = e.Cluster.Node(via).Exec(ctx, fmt.Sprintf("CREATE TABLE %s (k INT PRIMARY KEY, c%d INT)", table, via))
				}()
			}
			wg.Wait()
			won := 0
			for j, err := range errs {
				switch {
				case err == nil:
					won++
				case cluster.SQLState(err) != "42P07":
					return errors.Wrapf(err, "CREATE TABLE %s through n%d", table, []int{x, y}[j])
				}
			}
			if won != 1 {
				return errors.Newf("%d of 2 concurrent CREATE TABLE %s succeeded: %v", won, table, errs)
			}
			var first string
			for _, n := range e.Cluster.Running() {
				s, err := n.Query(ctx, "SHOW CREATE TABLE "+table)
				if err != nil {
					return err
				}
				if got := fmt.Sprint(s); first == "" {
					first = got
				} else if got != first {
					return errors.Newf("%s shows %s, another node %s", n, got, first)
				}
			}
			sc.Note(e, "CREATE TABLE %s: one of n%d and n%d won, every node agrees", table, x, y)
			return nil
		}, "round %d: CREATE TABLE %s through n%d and n%d at once: one wins, the other gets 42P07, all agree", round, table, x, y)
	}
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(20))
	return plan, nil
}

func group0RecoveryPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	survivor := 1 + rng.IntN(p.Nodes)
	victims := others(p.Nodes, survivor)
	via := victims[rng.IntN(len(victims))]
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary; n%s lose <store>/group0, n%d keeps it; "+
		"group0-recover through n%d", p.Nodes, nodeList(victims), survivor, via)}}
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Add("every node reports use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 30*time.Second))
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Addf(execThrough(survivor, "CREATE TABLE g0_kept (k INT PRIMARY KEY)"), "CREATE TABLE g0_kept through n%d", survivor)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	for _, v := range victims {
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(v)
			bin := n.Binary()
			sc.Note(e, "killing %s and removing its group 0 store", n)
			if err := n.Kill(); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(n.StoreDir, "group0")); err != nil {
				return err
			}
			if err := n.Start(ctx, bin); err != nil {
				return err
			}
			return n.WaitReady(ctx)
		}, "kill -9 n%d, rm -rf its <store>/group0, start it again", v)
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		err := e.Cluster.Node(survivor).Exec(ctx, "CREATE TABLE g0_lost (k INT PRIMARY KEY)")
		if cluster.SQLState(err) != "58000" {
			return errors.Newf("DDL without a group 0 majority: %v, want SQLSTATE 58000", err)
		}
		return nil
	}, "DDL through n%d fails with 58000 (group 0 has no majority)", survivor)
	plan.Add("the workload still gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	for i := 1; i <= p.Nodes; i++ {
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(i)
			if err := n.ExecIdempotent(ctx, "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'"); err != nil {
				return err
			}
			sc.Note(e, "%s entered recovery mode; restarting it", n)
			if err := n.Restart(ctx, n.Binary(), false); err != nil {
				return err
			}
			st, err := n.QueryString(ctx, group0StateQuery)
			if err != nil || st != "recovery" {
				return errors.Newf("%s after the restart: %q %v", n, st, err)
			}
			return nil
		}, "runbook step 2 on n%d: UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'; restart (SIGTERM)", i)
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		id, err := e.Cluster.Node(survivor).NodeID(ctx)
		if err != nil {
			return err
		}
		out, err := runCLI(ctx, e, e.Cluster.Node(via), "node", "group0-recover", "--host="+e.Cluster.Node(via).ListenAddr, "--dry-run")
		if err != nil {
			return errors.Wrapf(err, "group0-recover --dry-run: %s", out)
		}
		e.Logf("group0-recover --dry-run:\n%s", out)
		if !strings.Contains(out, fmt.Sprintf("seed: node %d,", id)) || !strings.Contains(out, "nothing was changed") {
			return errors.Newf("the dry run does not choose n%d (node %d) as the seed:\n%s", survivor, id, out)
		}
		return nil
	}, "runbook step 4: kvnode node group0-recover --host=<n%d> --dry-run chooses n%d as the seed", via, survivor)
	plan.Add("nothing changed: every node is still in recovery", waitGroup0State("recovery", 5*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		out, err := runCLI(ctx, e, e.Cluster.Node(via), "node", "group0-recover", "--host="+e.Cluster.Node(via).ListenAddr)
		if err != nil {
			return errors.Wrapf(err, "group0-recover: %s", out)
		}
		i := strings.LastIndex(out, "done:")
		if i < 0 {
			return errors.Newf("group0-recover did not report it was done:\n%s", out)
		}
		sc.Note(e, "group0-recover: %s", strings.TrimSpace(out[i:]))
		return nil
	}, "runbook step 5: kvnode node group0-recover --host=<n%d>", via)
	plan.Add("runbook step 6: every node is in use_post_raft_procedures", waitGroup0State("use_post_raft_procedures", 30*time.Second))
	plan.Add("no table was lost", tablesEverywhere("g0_kept"))
	plan.Addf(execThrough(via, "CREATE TABLE g0_after (k INT PRIMARY KEY)"), "CREATE TABLE g0_after through n%d", via)
	plan.Add("every node lists it", tablesEverywhere("g0_after", "g0_kept"))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload and check its history", sc.CheckWorkload(30))
	return plan, nil
}
