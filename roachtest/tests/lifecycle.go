package tests

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerLifecycle(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "lifecycle/decommission",
		Description: "decommission a node of four under the workload and stop it; then a kill -9 of another node must leave a " +
			"quorum (proof that the decommissioned node left the Raft group)",
		Suite: registry.Short, Nodes: 4,
		Plan: decommissionPlan,
	})
	r.Add(registry.Spec{
		Name: "lifecycle/drain-restart",
		Description: "drain a node (seeded: the leader or a follower) with `kvnode node drain` under the workload: it reports not " +
			"ready, the rest serves; then stop and restart it",
		Suite: registry.Short, Nodes: 3,
		Plan: drainPlan,
	})
}

func decommissionPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	target := 1 + rng.IntN(p.Nodes)
	rest := others(p.Nodes, target)
	via := rest[rng.IntN(len(rest))]
	victim := rest[rng.IntN(len(rest))]
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes; decommission n%d through n%d, then kill -9 n%d", p.Nodes, target, via, victim)}}
	plan.Add("check that the binary has `kvnode node decommission` (skip as pending if not)", sc.RequireNodeCLI(cluster.DefaultRelease))
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "decommissioning n%d through n%d", target, via)
		_, err := e.Cluster.Node(via).Decommission(ctx, e.Cluster.Node(target))
		if err == nil {
			sc.Note(e, "n%d decommissioned", target)
		}
		return err
	}, "kvnode node decommission <n%d's ID> --host=<n%d> under the workload", target, via)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "stopping the decommissioned n%d", target)
		return e.Cluster.Node(target).Stop(ctx)
	}, "stop n%d (SIGTERM)", target)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(victim)
		sc.Note(e, "killing n%d: with n%d gone from the group, %d of %d voters remain", victim, target, p.Nodes-2, p.Nodes-1)
		if err := n.Kill(); err != nil {
			return err
		}
		if err := sc.Workload.WaitProgress(ctx, 10, 60*time.Second); err != nil {
			return errors.WithHintf(errors.Wrapf(err, "no quorum with n%d decommissioned and n%d killed", target, victim),
				"if n%d were still a voter, %d of %d voters would be down: did decommission remove it from the Raft group?", target, 2, p.Nodes)
		}
		if err := n.Start(ctx, n.Binary()); err != nil {
			return err
		}
		return n.WaitReady(ctx)
	}, "kill -9 n%d; the remaining voters still acknowledge writes; restart n%d", victim, victim)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every running node, check the history", sc.CheckWorkload(60))
	return plan, nil
}

func drainPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	drainLeader := rng.IntN(2) == 0
	what := "a follower"
	if drainLeader {
		what = "the leader"
	}
	var drained *cluster.Node
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes; drain %s, then restart it", p.Nodes, what)}}
	plan.Add("check that the binary has `kvnode node drain` (skip as pending if not)", sc.RequireNodeCLI(cluster.DefaultRelease))
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on the default binary, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		leader, err := e.Cluster.Leader(ctx)
		if err != nil {
			return err
		}
		drained = leader
		if !drainLeader {
			for _, n := range e.Cluster.Running() {
				if n != leader {
					drained = n
					break
				}
			}
		}
		sc.Note(e, "draining %s (%s)", drained, what)
		if _, err := drained.Drain(ctx); err != nil {
			return err
		}
		return steps.Eventually(ctx, 30*time.Second, func() error {
			h, err := drained.Health(ctx)
			if err != nil {
				return err
			}
			if h.Ready {
				return errors.Newf("%s still reports ready after kvnode node drain", drained)
			}
			return nil
		})
	}, "kvnode node drain --host=<%s>; it reports not ready (/health?ready=1 is 503)", what)
	plan.Add("the workload gets 20 writes acknowledged while it is drained", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the drained node (SIGTERM), restart it on its binary", func(ctx context.Context, e *registry.Env) error {
		if err := drained.Stop(ctx); err != nil {
			return err
		}
		if err := drained.Start(ctx, drained.Binary()); err != nil {
			return err
		}
		if err := drained.WaitReady(ctx); err != nil {
			return err
		}
		sc.Note(e, "%s restarted and ready", drained)
		return nil
	})
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(60))
	return plan, nil
}
