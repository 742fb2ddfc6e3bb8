package tests

import (
	"context"
	"fmt"
	"time"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerBasic(r *registry.Registry) {
	r.Add(registry.Spec{
		Name:        "basic/replication",
		Description: "rows written through every node are read back identically through every node; every replica applies the leader's log; the workload's history checks out",
		Suite:       registry.Short, Nodes: 3,
		Plan: replicationPlan,
	})
	r.Add(registry.Spec{
		Name:        "basic/kill-leader",
		Description: "kill -9 the Raft leader under the workload; the rest keeps acknowledging writes; the old leader restarts and catches up",
		Suite:       registry.Short, Nodes: 3,
		Plan: killLeaderPlan(1),
	})
	r.Add(registry.Spec{
		Name:        "basic/kill-leader-repeatedly",
		Description: "kill -9 whichever node leads, five times in a row, under the workload",
		Suite:       registry.Long, Nodes: 3,
		Plan: killLeaderPlan(5),
	})
	r.Add(registry.Spec{
		Name: "basic/pause-leader",
		Description: "SIGSTOP the Raft leader (which serves reads from its lease) under the workload until the rest acknowledge writes " +
			"without it, then SIGCONT it: no read it serves after it resumes is stale (the history checks out)",
		Suite: registry.Short, Nodes: 3,
		Plan: pauseLeaderPlan,
	})
	r.Add(registry.Spec{
		Name:        "basic/catch-up",
		Description: "a node stopped while 3000 rows are written (in multi-row statements) comes back and catches up from the log",
		Suite:       registry.Short, Nodes: 3,
		Plan: catchUpPlan(3000, 100),
	})
	r.Add(registry.Spec{
		Name: "basic/catch-up-snapshot",
		Description: "a node stopped while 22000 single-row statements are written (past the 2x10000-entry log truncation) comes back " +
			"and catches up, by snapshot if its log was truncated",
		Suite: registry.Long, Nodes: 3, Timeout: 20 * time.Minute,
		Plan: catchUpPlan(22000, 1),
	})
}

func replicationPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	ddlVia := 1 + rng.IntN(p.Nodes)
	const perNode = 200
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary", p.Nodes)}}
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Addf(createTable("repl", ddlVia), "CREATE TABLE repl through n%d, readable through every node", ddlVia)
	for i := 1; i <= p.Nodes; i++ {
		from := int64((i - 1) * perNode)
		plan.Addf(upsertRows("repl", from, perNode, 50, []int{i}), "write keys %d..%d through n%d, 50 rows per UPSERT", from, from+perNode-1, i)
	}
	plan.Add("every node's applied index reaches the leader's commit index", allCaughtUp())
	plan.Addf(checkRowsEverywhere("repl", 0, int64(p.Nodes*perNode)), "read repl through every node: the same %d rows", p.Nodes*perNode)
	plan.Addf(sc.SetupWorkload(ddlVia), "create the workload's tables through n%d", ddlVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 100 writes acknowledged", sc.WaitProgress(100, 90*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(100))
	return plan, nil
}

func killLeaderPlan(kills int) func(registry.PlanParams) (*registry.Plan, error) {
	return func(p registry.PlanParams) (*registry.Plan, error) {
		rng := p.Rand()
		sc := &steps.Scenario{}
		initVia := 1 + rng.IntN(p.Nodes)
		plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary, %d leader kill(s)", p.Nodes, kills)}}
		plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
		plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
		plan.Add("start the workload on every node", sc.StartWorkload())
		plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
		for i := 0; i < kills; i++ {
			plan.Add("find the Raft leader (status pages), kill -9 it, wait for 10 writes without it, restart it on its binary", sc.KillLeader(10))
			plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
		}
		plan.Add("every node's applied index reaches the leader's commit index", allCaughtUp())
		plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(40))
		return plan, nil
	}
}

func pauseLeaderPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary, the leader paused once", p.Nodes)}}
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("find the Raft leader (status pages), SIGSTOP it, wait for 10 writes without it, SIGCONT it", sc.PauseLeader(10))
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("every node's applied index reaches the leader's commit index", allCaughtUp())
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(40))
	return plan, nil
}

// catchUpPlan stops one node, writes rows rows (batch per statement)
// through the others, restarts it and checks that it caught up.
func catchUpPlan(rows int64, batch int) func(registry.PlanParams) (*registry.Plan, error) {
	return func(p registry.PlanParams) (*registry.Plan, error) {
		rng := p.Rand()
		sc := &steps.Scenario{}
		initVia := 1 + rng.IntN(p.Nodes)
		victim := 1 + rng.IntN(p.Nodes)
		rest := others(p.Nodes, victim)
		ddlVia := rest[rng.IntN(len(rest))]
		snapshotsBefore := 0.0
		plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on the default binary; n%d misses %d rows", p.Nodes, victim, rows)}}
		plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
		plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
		plan.Add("start the workload on every node", sc.StartWorkload())
		plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(victim)
			if m, err := n.Metrics(ctx); err == nil {
				snapshotsBefore = m["kvnode_raft_snapshots_applied_total"]
			}
			sc.Note(e, "stopping %s for a long absence", n)
			return n.Stop(ctx)
		}, "stop n%d (SIGTERM) for a long absence", victim)
		plan.Addf(createTable("bulk", ddlVia), "CREATE TABLE bulk through n%d", ddlVia)
		if batch > 1 {
			plan.Addf(upsertRows("bulk", 0, rows, batch, rest), "write %d rows into bulk through %s, %d rows per UPSERT", rows, nodeList(rest), batch)
		} else {
			plan.Addf(upsertSingleRows("bulk", 0, rows, rest), "write %d rows into bulk through %s, one UPSERT (one Raft entry) each", rows, nodeList(rest))
		}
		plan.Addf(sc.WaitProgress(20, 60*time.Second), "the workload gets 20 writes acknowledged without n%d", victim)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(victim)
			if err := n.Start(ctx, n.Binary()); err != nil {
				return err
			}
			if err := n.WaitReady(ctx); err != nil {
				return err
			}
			sc.Note(e, "%s restarted and ready", n)
			return nil
		}, "restart n%d on its binary", victim)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(victim)
			d, err := waitCaughtUp(ctx, e.Cluster, n, 3*time.Minute)
			if err != nil {
				return err
			}
			how := "from the log"
			if m, err := n.Metrics(ctx); err == nil {
				if got := m["kvnode_raft_snapshots_applied_total"]; got > snapshotsBefore {
					how = fmt.Sprintf("by snapshot (%v applied)", got-snapshotsBefore)
				}
			}
			e.Logf("%s caught up %s in %s", n, how, d.Round(time.Millisecond))
			return nil
		}, "n%d's applied index reaches the leader's commit index (by log or by snapshot; say which)", victim)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(victim)
			d, err := steps.WaitReadable(ctx, n, "bulk")
			if err != nil {
				return err
			}
			if d > 0 {
				// Schema changes reach a node apart from the Raft log (the
				// pre-Raft procedure), so a node can report ready before it
				// knows a table created while it was away.
				e.Logf("%s could read bulk only %s after it reported ready (42P01 until then)", n, d.Round(time.Millisecond))
			}
			return checkRows(ctx, n, "bulk", 0, rows)
		}, "read bulk through n%d (once its schema has the table): all %d rows", victim, rows)
		plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
		plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(40))
		return plan, nil
	}
}
