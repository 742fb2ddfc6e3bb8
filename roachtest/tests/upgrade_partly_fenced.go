package tests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerPartlyFenced(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/partly-fenced",
		Description: "under the workload, every node on 1.1 with auto-upgrade off: a node is killed -9 and SET CLUSTER SETTING " +
			"version = '1.1' runs at once, so the fence 1.1-step.1 reaches the other nodes and not it (55000); each node's " +
			"persisted version is in /_status/upgrade, the status page offers no rollback, a 1.0 binary refuses a fenced store; " +
			"once the node is back, the data group's leader completes the interrupted finalization although auto-upgrade is " +
			"off (issue 16, D2 and D6)",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: partlyFencedPlan,
	})
}

func partlyFencedPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	victim := 1 + rng.IntN(p.Nodes)
	via := pickOther(rng, p.Nodes, victim)
	fenced := others(p.Nodes, victim)
	tried := fenced[rng.IntN(len(fenced))] // its fenced store is tried on 1.0
	rows := &writeAndCheck{table: "pf"}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes on 1.0, init through n%d, all moved to 1.1 with auto-upgrade off", p.Nodes, initVia),
		fmt.Sprintf("kill -9 n%d, SET CLUSTER SETTING version = '1.1' through n%d at once: the fence reaches %s only; "+
			"1.0 is tried on n%d's store; n%d comes back; the leader finalizes by itself", victim, via, nodeList(fenced), tried, victim),
	}}
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartCluster([]string{r10}, initVia), "start %d nodes on 1.0, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	plan.Addf(rows.write(initVia, 200), "write 200 rows into %s at 1.0 through n%d", rows.table, initVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return e.Cluster.Node(initVia).ExecIdempotent(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	}, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false through n%d", initVia)
	for i := 1; i <= p.Nodes; i++ {
		plan.Addf(restartStep(sc, i, r11, false, 10), "upgrade n%d 1.0 -> 1.1 (SIGTERM); the workload gets 10 writes acknowledged", i)
	}
	plan.Add("every node runs 1.1 and reports cluster version 1.0 (auto-upgrade is off)", func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r10)
	})
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		v := e.Cluster.Node(victim)
		sc.Note(e, "killing %s", v)
		if err := v.Kill(); err != nil {
			return err
		}
		// At once, while its liveness record still says live: the step
		// is sent to every node and does not reach the killed one.
		msg, err := steps.ExpectSQLError(ctx, e.Cluster.Node(via), "SET CLUSTER SETTING version = '1.1'", "55000",
			"1.1-step.1", "could not be persisted on every node")
		if err != nil {
			return err
		}
		e.Logf("refused, as it must be: %s", msg)
		for _, i := range fenced {
			st, err := e.Cluster.Node(i).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			if st.ActiveVersion != "1.1-step.1" || st.ReplicatedVersion != r10 {
				return errors.Newf("n%d after the stopped finalization: persisted %s, replicated %s; want the fence 1.1-step.1 "+
					"persisted and 1.0 replicated (did n%d's liveness expire before the SET?)", i, st.ActiveVersion, st.ReplicatedVersion, victim)
			}
		}
		return nil
	}, "kill -9 n%d and at once SET CLUSTER SETTING version = '1.1' through n%d: refused (55000, the step not persisted "+
		"on every node); %s have persisted the fence 1.1-step.1, the replicated version is 1.0", victim, via, nodeList(fenced))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		return steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := n.UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			persisted := map[int]string{}
			for _, nd := range st.Nodes {
				persisted[nd.NodeID] = nd.PersistedVersion
			}
			for _, i := range fenced {
				id, err := e.Cluster.Node(i).NodeID(ctx)
				if err != nil {
					return err
				}
				if persisted[id] != "1.1-step.1" {
					return errors.Newf("/_status/upgrade through %s: n%d (node %d) persisted_version %q, want 1.1-step.1", n, i, id, persisted[id])
				}
			}
			cst, err := n.Console(ctx)
			if err != nil {
				return err
			}
			text := cst.Text()
			if strings.Contains(text, "can still be rolled back") || !strings.Contains(text, "can no longer be rolled back") {
				return errors.Newf("the status page through %s, with the fence on %s only:\n%s", n, nodeList(fenced), text)
			}
			e.Logf("the status page through %s says:\n%s", n, text)
			return nil
		})
	}, "through n%d: /_status/upgrade gives %s persisted version 1.1-step.1; the status page says the upgrade can no longer "+
		"be rolled back, and nowhere that it can", via, nodeList(fenced))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "stopping n%d", tried)
		return e.Cluster.Node(tried).Stop(ctx)
	}, "stop n%d (SIGTERM)", tried)
	plan.Addf(expectRefusedStart(sc, tried, r10, "1.1-step.1", "1.0"),
		"start n%d on 1.0 (a rollback): it refuses its store, which persisted the fence 1.1-step.1", tried)
	plan.Addf(startOn(sc, tried, r11), "start n%d on 1.1 again", tried)
	plan.Addf(startOn(sc, victim, r11), "start n%d on 1.1 again (its store is at 1.0)", victim)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		d, err := steps.WaitVersion(ctx, e.Cluster, r11, 3*time.Minute)
		if err != nil {
			return errors.Wrap(err, "the interrupted finalization was not completed (auto-upgrade is off)")
		}
		sc.Note(e, "every running node reports 1.1, %s after n%d came back", d.Round(100*time.Millisecond), victim)
		v, err := steps.Setting(ctx, e.Cluster.Node(via), "cluster.auto_upgrade.enabled")
		if err != nil {
			return err
		}
		if v != "false" {
			return errors.Newf("cluster.auto_upgrade.enabled is %q after the finalization, want false", v)
		}
		return nil
	}, "with auto-upgrade still off and nobody running SET again, the data group's leader completes the interrupted "+
		"finalization: every node reports 1.1")
	plan.Addf(checkMigrationJob(via), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", via)
	plan.Addf(rows.write(via, 100), "write 100 rows into %s at 1.1 through n%d", rows.table, via)
	plan.Addf(rows.check(), "read %s through every node: all %d rows", rows.table, rows.next)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(100))
	return plan, nil
}
