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

func registerRollbackBeforeFinalize(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/rollback-before-finalize",
		Description: "under the workload, with the preserve option set: roll every node 1.0 -> 1.1, roll every node back to 1.0, " +
			"roll forward again, finalize (seeded: by hand or automatically); rows written in every phase are all there, no " +
			"acknowledged write is lost and the history is linearizable",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: rollbackPlan,
	})
}

func rollbackPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	byHand := rng.IntN(2) == 0
	finalVia := 1 + rng.IntN(p.Nodes)
	rows := &writeAndCheck{table: "rb"}
	type pass struct {
		from, to string
		order    []int
		kills    []bool
	}
	passes := []pass{{from: r10, to: r11}, {from: r11, to: r10}, {from: r10, to: r11}}
	for i := range passes {
		passes[i].order = rng.Perm(p.Nodes)
		passes[i].kills = make([]bool, p.Nodes)
		for j := range passes[i].kills {
			// Half the stops are kill -9: a rollback must survive a node
			// that did not drain, and it keeps the scenario short.
			passes[i].kills[j] = rng.IntN(2) == 0
		}
	}
	header := []string{fmt.Sprintf("%d nodes on 1.0, init through n%d; finalize %s through n%d", p.Nodes, initVia,
		map[bool]string{true: "by hand", false: "automatically"}[byHand], finalVia)}
	for _, ps := range passes {
		var names []string
		for _, i := range ps.order {
			names = append(names, fmt.Sprintf("n%d (%s)", i+1, how(ps.kills[i])))
		}
		header = append(header, fmt.Sprintf("%s -> %s: %s", ps.from, ps.to, strings.Join(names, ", ")))
	}
	plan := &registry.Plan{Header: header}
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartCluster([]string{r10}, initVia), "start %d nodes on 1.0, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	plan.Addf(rows.write(initVia, 300), "write 300 rows into %s at 1.0 through n%d", rows.table, initVia)
	plan.Addf(setPreserve(sc, initVia, r10), "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0' through n%d", initVia)
	for pi, ps := range passes {
		for k, i := range ps.order {
			verb := "upgrade"
			if older(ps.to, ps.from) {
				verb = "roll back"
			}
			plan.Addf(restartStep(sc, i+1, ps.to, ps.kills[i], 10), "%s n%d %s -> %s (stop with %s); the workload gets 10 writes acknowledged",
				verb, i+1, ps.from, ps.to, how(ps.kills[i]))
			via := ps.order[(k+1)%p.Nodes] + 1
			plan.Addf(rows.write(via, 50), "write 50 rows into %s through n%d", rows.table, via)
		}
		want := r10
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			if err := steps.CheckVersion(ctx, e.Cluster, want); err != nil {
				return errors.Wrap(err, "not finalized while the preserve option is set")
			}
			return nil
		}, "pass %d done: every node runs %s; the cluster version is still 1.0", pi+1, ps.to)
		plan.Addf(rows.check(), "read %s through every node: all %d rows written so far", rows.table, rows.next)
	}
	plan.Addf(finalizeStep(sc, finalVia, r11, byHand), "finalize 1.1 %s through n%d; every node reports 1.1",
		map[bool]string{true: "by hand", false: "automatically (RESET the preserve option)"}[byHand], finalVia)
	plan.Addf(checkMigrationJob(finalVia), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", finalVia)
	plan.Addf(rows.write(finalVia, 100), "write 100 rows into %s at 1.1 through n%d", rows.table, finalVia)
	plan.Addf(rows.check(), "read %s through every node: all %d rows, rewritten by the migration or written at 1.1", rows.table, rows.next)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(100))
	return plan, nil
}
