package tests

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerMigrationScenarios(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/coordinator-killed-mid-migration",
		Description: "under the workload, 30000 rows written at 1.0, every node on 1.1 with auto-upgrade off; SET CLUSTER SETTING " +
			"version = '1.1' in the background; once SHOW JOBS shows the 1.1 migration running with progress, kill -9 its " +
			"coordinator and restart it; finalize again (seeded: SET through another node, or auto-upgrade back on): the same job " +
			"resumes from its checkpoint once the 10s lease lapses and succeeds, every row is intact",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: coordinatorKilledPlan,
	})
	r.Add(registry.Spec{
		Name: "upgrade/concurrent-set-version",
		Description: "under the workload, every node on 1.1 with auto-upgrade off: two clients per node run SET CLUSTER SETTING " +
			"version = '1.1' (or = crdb_internal.node_executable_version()) at once; each succeeds or fails cleanly, the cluster " +
			"reaches 1.1, and the 1.1 migration exists as one job that ran and succeeded once",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: concurrentSetPlan,
	})
}

// startAt10On11 is the usual start of these scenarios, shortened: one node
// (the one that bootstraps, so the cluster starts at 1.0) runs 1.0 and the
// others 1.1, as in the middle of a rolling upgrade; rows are written at
// 1.0 (encoding v1), automatic upgrades are turned off, and the 1.0 node is
// upgraded last. The cluster is then at 1.0 with every node on 1.1, rows
// waiting for the 1.1 migration.
func startAt10On11(plan *registry.Plan, sc *steps.Scenario, nodes, initVia int, rows *writeAndCheck, count int64) {
	releases := make([]string, nodes)
	for i := range releases {
		releases[i] = r11
	}
	releases[initVia-1] = r10
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartCluster(releases, initVia), "start n%d on 1.0 and the other nodes on 1.1, init through n%d: the cluster is at 1.0", initVia, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	from := rows.next
	rows.next += count
	plan.Addf(upsertRows(rows.table, from, count, 500, others(nodes)), "write %d rows into %s at 1.0, 500 per UPSERT, through every node", count, rows.table)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return e.Cluster.Node(initVia).ExecIdempotent(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	}, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false through n%d", initVia)
	plan.Addf(restartStep(sc, initVia, r11, false, 10), "upgrade n%d 1.0 -> 1.1 (stop with SIGTERM); the workload gets 10 writes acknowledged", initVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r10)
	}, "every node runs 1.1 and reports cluster version 1.0 (auto-upgrade is off)")
}

// jobWatch polls SHOW JOBS for the 1.1 migration through the running nodes
// in the background and keeps what it saw.
type jobWatch struct {
	mu   sync.Mutex
	seen []jobSight
	stop chan struct{}
	done chan struct{}
}

type jobSight struct {
	at  time.Time
	via string
	job cluster.Job
}

func watchJob(c *cluster.Cluster) *jobWatch {
	w := &jobWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			running := c.Running()
			if len(running) == 0 {
				continue
			}
			n := running[i%len(running)]
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			jobs, err := steps.MigrationJobs(ctx, n, step11Migration)
			cancel()
			if err != nil || len(jobs) == 0 {
				continue
			}
			w.mu.Lock()
			w.seen = append(w.seen, jobSight{at: time.Now(), via: n.String(), job: jobs[0]})
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *jobWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *jobWatch) sights() []jobSight {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]jobSight(nil), w.seen...)
}

func coordinatorKilledPlan(p registry.PlanParams) (*registry.Plan, error) {
	const count = 30000
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	setVia := 1 + rng.IntN(p.Nodes)
	byAuto := rng.IntN(2) == 0
	rows := &writeAndCheck{table: "big"}

	var (
		setErr    chan error
		killed    *cluster.Node
		killedID  int
		killedAt  time.Time
		before    cluster.Job // the job as seen just before the kill
		afterKill cluster.Job // the dead coordinator's last checkpoint, read after the kill
		watch     *jobWatch
	)
	again := "SET CLUSTER SETTING version = '1.1' through a node other than the killed coordinator"
	if byAuto {
		again = "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true: the auto-upgrade loop on the Raft leader resumes it"
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes: n%d on 1.0 bootstraps, the others on 1.1; %d rows at 1.0; n%d moves to 1.1 with auto-upgrade off", p.Nodes, initVia, count, initVia),
		fmt.Sprintf("SET CLUSTER SETTING version = '1.1' through n%d in the background; kill -9 the coordinator mid-migration; finalize again: %s", setVia, again),
	}}
	startAt10On11(plan, sc, p.Nodes, initVia, rows, count)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		watch = watchJob(e.Cluster)
		e.Defer(watch.Stop)
		n := e.Cluster.Node(setVia)
		setErr = make(chan error, 1)
		sc.Note(e, "SET CLUSTER SETTING version = '1.1' through %s (in the background)", n)
		go func() { setErr <- n.Exec(ctx, "SET CLUSTER SETTING version = '1.1'") }()
		e.Defer(func() {
			select {
			case <-setErr:
			case <-time.After(90 * time.Second):
				e.Logf("the background SET CLUSTER SETTING version did not return")
			}
		})
		// Catch the migration running, with progress, before it ends.
		err := steps.Eventually(ctx, 2*time.Minute, func() error {
			select {
			case err := <-setErr:
				setErr <- err
				return steps.Permanent(errors.Newf("SET CLUSTER SETTING version returned (%v) before the migration was caught running; "+
					"SHOW JOBS saw: %v", err, lastSights(watch, 3)))
			default:
			}
			for _, s := range watch.sights() {
				if s.job.Status == "succeeded" {
					return steps.Permanent(errors.Newf("the 1.1 migration finished before it was caught running with progress "+
						"(%d rows are too few on this machine?): %s", count, s.job))
				}
			}
			s := watch.sights()
			if len(s) == 0 {
				return errors.New("SHOW JOBS lists no 1.1 migration yet")
			}
			last := s[len(s)-1].job
			if last.Status != "running" || last.Fraction <= 0 || last.Coordinator == 0 {
				return errors.Newf("the 1.1 migration is not running with progress yet: %s", last)
			}
			before = last
			return nil
		})
		if err != nil {
			return err
		}
		for _, n := range e.Cluster.Running() {
			id, err := n.NodeID(ctx)
			if err != nil {
				return err
			}
			if int64(id) == before.Coordinator {
				killed, killedID = n, id
			}
		}
		if killed == nil {
			return errors.Newf("SHOW JOBS names coordinator %d, which is no running node: %s", before.Coordinator, before)
		}
		if killed.Index != setVia {
			e.Logf("note: the coordinator is %s, not n%d through which the SET went", killed, setVia)
		}
		sc.Note(e, "killing the coordinator %s (node ID %d) at %.0f%%: %s", killed, killedID, 100*before.Fraction, before)
		killedAt = time.Now()
		return killed.Kill()
	}, "SET CLUSTER SETTING version = '1.1' through n%d in the background; poll SHOW JOBS until the 1.1 migration runs with progress > 0; "+
		"kill -9 its coordinator (SHOW JOBS' coordinator_id)", setVia)
	plan.Add("the background SET returns an error (its node died) or, if it was another node, keeps waiting; the cluster is at 1.1-step.2",
		func(ctx context.Context, e *registry.Env) error {
			if killed.Index == setVia {
				select {
				case err := <-setErr:
					setErr <- err
					if err == nil {
						return errors.New("SET CLUSTER SETTING version succeeded although its node was killed before the migration finished")
					}
					e.Logf("the SET through the killed node failed, as it must: %v", err)
				case <-time.After(30 * time.Second):
					return errors.New("SET CLUSTER SETTING version through the killed node did not return within 30s")
				}
			}
			// The migration runs at 1.1-step.2, persisted everywhere: the
			// cluster reports that internal step, printed distinctly.
			return steps.CheckVersion(ctx, e.Cluster, step11Migration)
		})
	plan.Add("SHOW JOBS through the survivors: the job is still running under the dead coordinator's lease, its progress kept",
		func(ctx context.Context, e *registry.Env) error {
			jobs, err := steps.MigrationJobs(ctx, e.Cluster.Running()[0], step11Migration)
			if err != nil {
				return err
			}
			if len(jobs) != 1 || jobs[0].ID != before.ID || jobs[0].Fraction < before.Fraction {
				return errors.Newf("after the kill, SHOW JOBS lists %v; want job %d with at least %.3f done", jobs, before.ID, before.Fraction)
			}
			afterKill = jobs[0]
			e.Logf("after the kill: %s", afterKill)
			return nil
		})
	plan.Add("restart the killed coordinator on 1.1", func(ctx context.Context, e *registry.Env) error {
		if err := killed.Start(ctx, killed.Binary()); err != nil {
			return err
		}
		if err := killed.WaitReady(ctx); err != nil {
			return err
		}
		sc.Note(e, "%s restarted and ready, %s after the kill", killed, time.Since(killedAt).Round(100*time.Millisecond))
		return nil
	})
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		if byAuto {
			sc.Note(e, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true")
			if err := e.Cluster.Node(setVia).ExecIdempotent(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true"); err != nil {
				return err
			}
		} else {
			var via *cluster.Node
			for _, n := range e.Cluster.Running() {
				if n != killed {
					via = n
					break
				}
			}
			sc.Note(e, "SET CLUSTER SETTING version = '1.1' through %s", via)
			if err := via.ExecIdempotent(ctx, "SET CLUSTER SETTING version = '1.1'"); err != nil {
				return err
			}
		}
		if _, err := steps.WaitVersion(ctx, e.Cluster, r11, 3*time.Minute); err != nil {
			return err
		}
		sc.Note(e, "finalized to 1.1, %s after the kill (the dead coordinator's lease is 10s)", time.Since(killedAt).Round(100*time.Millisecond))
		return nil
	}, "finalize again: %s; every node reports 1.1", again)
	plan.Add("SHOW JOBS: the same job resumed (never went back below its progress at the kill) and succeeded; the node logs "+
		"show one start, one resume from the checkpoint, one success", func(ctx context.Context, e *registry.Env) error {
		watch.Stop()
		j, err := steps.CheckMigrationSucceeded(ctx, e.Cluster.Node(setVia), step11Migration)
		if err != nil {
			return err
		}
		if j.ID != before.ID {
			return errors.Newf("the 1.1 migration is job %d now, job %d before the kill: it was started over, not resumed", j.ID, before.ID)
		}
		e.Logf("SHOW JOBS: %s", j)
		// Progress never goes back: the resumed job starts from its
		// checkpoint. A sight after the kill below the sight before it
		// would mean it started over.
		var prev jobSight
		coordinators := map[int64]bool{}
		for _, s := range watch.sights() {
			if s.job.ID != before.ID {
				return errors.Newf("SHOW JOBS through %s listed another 1.1 migration job: %s", s.via, s.job)
			}
			if s.job.Status != "succeeded" && prev.job.Status != "" && s.job.Fraction < prev.job.Fraction {
				return errors.Newf("the job's progress went back from %.3f (through %s) to %.3f (through %s, %s after the kill)",
					prev.job.Fraction, prev.via, s.job.Fraction, s.via, s.at.Sub(killedAt).Round(time.Millisecond))
			}
			if s.job.Coordinator != 0 {
				coordinators[s.job.Coordinator] = true
			}
			prev = s
		}
		e.Logf("SHOW JOBS was polled %d times; coordinators seen: %v", len(watch.sights()), coordinators)
		starts, err := steps.LogLines(e.Cluster, "starting migration job", "version="+step11Migration)
		if err != nil {
			return err
		}
		resumes, err := steps.LogLines(e.Cluster, "resuming migration job", "version="+step11Migration)
		if err != nil {
			return err
		}
		oks, err := steps.LogLines(e.Cluster, "migration job succeeded", "version="+step11Migration)
		if err != nil {
			return err
		}
		for _, l := range append(append(starts, resumes...), oks...) {
			e.Logf("  %s", l)
		}
		if len(starts) != 1 || len(resumes) < 1 || len(oks) != 1 {
			return errors.Newf("the node logs show %d starts, %d resumes and %d successes of the 1.1 migration; want 1, at least 1, 1",
				len(starts), len(resumes), len(oks))
		}
		if !strings.Contains(resumes[0], fmt.Sprintf("previous_coordinator=%d", killedID)) || strings.Contains(resumes[0], " done=0 ") {
			return errors.Newf("the first resume does not take over from node %d with progress: %s", killedID, resumes[0])
		}
		// Another node may take the job only once the dead coordinator's
		// lease (10s from its last checkpoint) has lapsed; the restarted
		// coordinator itself may take it back at once.
		if strings.HasPrefix(resumes[0], killed.String()+":") {
			e.Logf("the restarted coordinator %s took its job back itself (no lease to wait out)", killed)
			return nil
		}
		claimed, err := logTime(resumes[0])
		if err != nil {
			return err
		}
		last, err := time.Parse("2006-01-02 15:04:05.000000", afterKill.Modified)
		if err != nil {
			return errors.Wrapf(err, "SHOW JOBS' modified %q", afterKill.Modified)
		}
		waited := claimed.Sub(last)
		if waited < migrationLease-100*time.Millisecond {
			return errors.Newf("another node took the job over %s after the dead coordinator's last checkpoint, before its %s lease lapsed", waited, migrationLease)
		}
		e.Logf("another node took the job over %s after the dead coordinator's last checkpoint (lease %s)", waited.Round(time.Millisecond), migrationLease)
		return nil
	})
	plan.Addf(rows.check(), "read %s through every node: all %d rows intact after the interrupted migration", rows.table, count)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(60))
	return plan, nil
}

// migrationLease is how long a migration job's coordinator holds it
// without a checkpoint (migrations/DESIGN.md).
const migrationLease = 10 * time.Second

// logTime is the time= field of a node log line (slog's text format).
func logTime(line string) (time.Time, error) {
	_, rest, ok := strings.Cut(line, "time=")
	if !ok {
		return time.Time{}, errors.Newf("no time= in the log line %q", line)
	}
	field, _, _ := strings.Cut(rest, " ")
	t, err := time.Parse(time.RFC3339Nano, field)
	if err != nil {
		return time.Time{}, errors.Wrapf(err, "the log line %q", line)
	}
	return t, nil
}

func lastSights(w *jobWatch, n int) []string {
	s := w.sights()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	var out []string
	for _, x := range s {
		out = append(out, x.job.String())
	}
	return out
}

func concurrentSetPlan(p registry.PlanParams) (*registry.Plan, error) {
	const count = 5000
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	rows := &writeAndCheck{table: "cs"}
	type client struct {
		node   int
		byExpr bool
	}
	var clients []client
	for n := 1; n <= p.Nodes; n++ {
		for k := 0; k < 2; k++ {
			clients = append(clients, client{node: n, byExpr: rng.IntN(2) == 0})
		}
	}
	var names []string
	for i, c := range clients {
		target := "'1.1'"
		if c.byExpr {
			target = "crdb_internal.node_executable_version()"
		}
		names = append(names, fmt.Sprintf("c%d: n%d = %s", i, c.node, target))
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes: n%d on 1.0 bootstraps, the others on 1.1; %d rows at 1.0; n%d moves to 1.1 with auto-upgrade off", p.Nodes, initVia, count, initVia),
		"concurrent SET CLUSTER SETTING version: " + strings.Join(names, "; "),
	}}
	startAt10On11(plan, sc, p.Nodes, initVia, rows, count)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		start := make(chan struct{})
		errs := make([]error, len(clients))
		took := make([]time.Duration, len(clients))
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func(i int, c client) {
				defer wg.Done()
				stmt := "SET CLUSTER SETTING version = '1.1'"
				if c.byExpr {
					stmt = "SET CLUSTER SETTING version = crdb_internal.node_executable_version()"
				}
				n := e.Cluster.Node(c.node)
				conn, err := n.Connect(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				defer func() { _ = conn.Close(context.Background()) }()
				<-start
				t := time.Now()
				_, errs[i] = conn.Exec(ctx, stmt)
				took[i] = time.Since(t)
			}(i, c)
		}
		sc.Note(e, "%d clients run SET CLUSTER SETTING version at once", len(clients))
		close(start)
		wg.Wait()
		ok := 0
		var bad []string
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
				e.Logf("c%d through n%d: ok in %s", i, clients[i].node, took[i].Round(time.Millisecond))
			case cluster.SQLState(err) != "" && !cluster.ConnectionLost(err):
				e.Logf("c%d through n%d: failed cleanly in %s: %s %v", i, clients[i].node, took[i].Round(time.Millisecond), cluster.SQLState(err), err)
			default:
				bad = append(bad, fmt.Sprintf("c%d through n%d: %v", i, clients[i].node, err))
			}
		}
		if len(bad) > 0 {
			return errors.Newf("concurrent SET CLUSTER SETTING version: failures without a SQL error (lost connection, timeout): %v", bad)
		}
		if ok == 0 {
			return errors.New("every concurrent SET CLUSTER SETTING version failed")
		}
		sc.Note(e, "%d of %d concurrent SETs succeeded, the others failed cleanly", ok, len(clients))
		return nil
	}, "%d clients (two per node) run SET CLUSTER SETTING version at once: each succeeds or fails with a SQL error", len(clients))
	plan.Add("every node reports cluster version 1.1", func(ctx context.Context, e *registry.Env) error {
		_, err := steps.WaitVersion(ctx, e.Cluster, r11, time.Minute)
		return err
	})
	for n := 1; n <= p.Nodes; n++ {
		plan.Addf(checkMigrationJob(n), "SHOW JOBS through n%d: one 1.1 migration job, succeeded", n)
	}
	plan.Add("the node logs show the 1.1 migration started once and succeeded once, on the same node", func(ctx context.Context, e *registry.Env) error {
		starts, err := steps.LogLines(e.Cluster, "starting migration job", "version="+step11Migration)
		if err != nil {
			return err
		}
		oks, err := steps.LogLines(e.Cluster, "migration job succeeded", "version="+step11Migration)
		if err != nil {
			return err
		}
		for _, l := range append(starts, oks...) {
			e.Logf("  %s", l)
		}
		if len(starts) != 1 || len(oks) != 1 {
			return errors.Newf("the 1.1 migration started %d times and succeeded %d times in the node logs, want once each", len(starts), len(oks))
		}
		if strings.SplitN(starts[0], ":", 2)[0] != strings.SplitN(oks[0], ":", 2)[0] {
			return errors.Newf("the migration started on one node and succeeded on another without a resume: %s / %s", starts[0], oks[0])
		}
		return nil
	})
	plan.Addf(rows.check(), "read %s through every node: all %d rows", rows.table, count)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(60))
	return plan, nil
}
