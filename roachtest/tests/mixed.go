package tests

import (
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/roachtest/mixedversion"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// releasePairs are the consecutive releases of the ladder: the binary
// pairs that can share a cluster.
func releasePairs() [][2]string {
	rels := clusterversion.Releases()
	var out [][2]string
	for i := 1; i < len(rels); i++ {
		out = append(out, [2]string{rels[i-1].String(), rels[i].String()})
	}
	return out
}

func allReleases() []string {
	var out []string
	for _, r := range clusterversion.Releases() {
		out = append(out, r.String())
	}
	return out
}

func registerMixed(r *registry.Registry) {
	for _, m := range []struct {
		name, what string
		suite      registry.Suite
		old        func(nodes int) int
	}{
		{"all-new", "every node on the newer release", registry.Long, func(int) int { return 0 }},
		{"minority-old", "a minority of the nodes on the older release", registry.Short, func(n int) int { return (n - 1) / 2 }},
		{"majority-old", "a majority of the nodes on the older release", registry.Short, func(n int) int { return n/2 + 1 }},
	} {
		r.Add(registry.Spec{
			Name: "mixed/" + m.name,
			Description: "a cluster with " + m.what + " (seeded pair of consecutive releases and choice of nodes) " +
				"under the workload: DDL and DML through old and new nodes, kill -9 of the leader",
			Suite: m.suite, Nodes: 3,
			Plan: func(p registry.PlanParams) (*registry.Plan, error) {
				pairs := releasePairs()
				pair := pairs[p.Rand().IntN(len(pairs))]
				mp, err := mixedversion.NewMixPlan(p.Seed, mixedversion.MixOptions{
					Nodes: p.Nodes, Old: pair[0], New: pair[1], OldCount: m.old(p.Nodes), KillLeader: true,
				})
				if err != nil {
					return nil, err
				}
				return mixedversion.Compile(mp, &steps.Scenario{}), nil
			},
		})
	}
}

func registerUpgrade(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/rolling",
		Description: "a seeded rolling upgrade between two consecutive releases under the workload, maybe rolled back and redone, " +
			"with DDL, DML (and settings) steps in every binary mix; finalizes where the binaries can",
		Suite: registry.Short, Nodes: 3,
		Plan: func(p registry.PlanParams) (*registry.Plan, error) {
			pairs := releasePairs()
			pair := pairs[p.Rand().IntN(len(pairs))]
			mp, err := mixedversion.NewUpgradePlan(p.Seed, mixedversion.UpgradeOptions{
				Nodes: p.Nodes, Path: pair[:], Rollback: true, Versions: mixedversion.IfSupported,
			})
			if err != nil {
				return nil, err
			}
			return mixedversion.Compile(mp, &steps.Scenario{}), nil
		},
	})
	r.Add(registry.Spec{
		Name:        "upgrade/rolling-chaos",
		Description: "upgrade/rolling on five nodes, with kill -9 of the leader among the mixed-version steps",
		Suite:       registry.Long, Nodes: 5, MinNodes: 3, Timeout: 30 * time.Minute,
		Plan: func(p registry.PlanParams) (*registry.Plan, error) {
			pairs := releasePairs()
			pair := pairs[p.Rand().IntN(len(pairs))]
			mp, err := mixedversion.NewUpgradePlan(p.Seed, mixedversion.UpgradeOptions{
				Nodes: p.Nodes, Path: pair[:], Rollback: true, KillLeader: true, Versions: mixedversion.IfSupported,
			})
			if err != nil {
				return nil, err
			}
			return mixedversion.Compile(mp, &steps.Scenario{}), nil
		},
	})
	r.Add(registry.Spec{
		Name: "upgrade/finalize",
		Description: "three seeded mixed-version plans, each on a new cluster: upgrade through every release and finalize each " +
			"(by hand or automatically, seeded), through every binary mix with DDL, DML, settings and leader kills, with rollbacks " +
			"before finalizing, the workload and its linearizability checker running throughout",
		Suite: registry.Long, Nodes: 3, Timeout: 45 * time.Minute,
		Plan: finalizePlans,
	})
}
