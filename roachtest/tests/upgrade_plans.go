package tests

import (
	"context"
	"fmt"
	"strings"

	"github.com/kvnode/kvnode/roachtest/mixedversion"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// finalizeRounds is how many seeded mixed-version plans upgrade/finalize
// runs, one after the other, each on a new cluster.
const finalizeRounds = 3

// finalizePlans is upgrade/finalize: finalizeRounds seeded mixed-version
// upgrade plans through every release (1.0 -> 1.1 -> 2.0), each on a fresh
// cluster (the previous one wiped). Each plan passes, in each hop, through
// every binary mix (majority old, minority old, all new but not finalized)
// with DDL, DML, settings and leader kills in each, maybe rolls back, and
// finalizes (by hand or automatically); the workload runs from the start of
// each plan to its end and its history goes through the loss, duplicate
// and linearizability checkers. The first plan's seed is the scenario's
// seed; the others are drawn from it, and every one is printed.
func finalizePlans(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	seeds := []int64{p.Seed}
	for len(seeds) < finalizeRounds {
		seeds = append(seeds, rng.Int64N(1<<53))
	}
	out := &registry.Plan{}
	var seedList []string
	for _, s := range seeds {
		seedList = append(seedList, fmt.Sprint(s))
	}
	out.Header = append(out.Header, fmt.Sprintf("%d seeded mixed-version plans, one after the other, each on a new cluster; plan seeds %s",
		len(seeds), strings.Join(seedList, ", ")))
	for i, s := range seeds {
		mp, err := mixedversion.NewUpgradePlan(s, mixedversion.UpgradeOptions{
			Nodes: p.Nodes, Path: allReleases(), Rollback: true, KillLeader: true, Versions: mixedversion.Required,
		})
		if err != nil {
			return nil, err
		}
		sub := mixedversion.Compile(mp, &steps.Scenario{})
		tag := fmt.Sprintf("[plan %d/%d]", i+1, len(seeds))
		for _, h := range sub.Header {
			out.Header = append(out.Header, tag+" "+h)
		}
		if i > 0 {
			out.Addf(func(ctx context.Context, e *registry.Env) error { return e.Cluster.Wipe() },
				"%s wipe the cluster: kill every node and remove every store, so the next plan starts a new cluster", tag)
		}
		for _, st := range sub.Steps {
			out.Add(tag+" "+st.Name, st.Run)
		}
	}
	return out, nil
}
