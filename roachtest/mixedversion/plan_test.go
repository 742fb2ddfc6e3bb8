package mixedversion

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/roachtest/steps"
)

func upgradeOpts(nodes int, path ...string) UpgradeOptions {
	return UpgradeOptions{Nodes: nodes, Path: path, Rollback: true, KillLeader: true, Versions: Required}
}

func TestSameSeedSamePlan(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		a, err := NewUpgradePlan(seed, upgradeOpts(3, "1.0", "1.1", "2.0"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewUpgradePlan(seed, upgradeOpts(3, "1.0", "1.1", "2.0"))
		if !reflect.DeepEqual(a, b) || a.String() != b.String() {
			t.Fatalf("seed %d gave two plans:\n%s\n%s", seed, a, b)
		}
		m1, err := NewMixPlan(seed, MixOptions{Nodes: 5, Old: "1.1", New: "2.0", OldCount: 2, KillLeader: true})
		if err != nil {
			t.Fatal(err)
		}
		m2, _ := NewMixPlan(seed, MixOptions{Nodes: 5, Old: "1.1", New: "2.0", OldCount: 2, KillLeader: true})
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("seed %d gave two mix plans", seed)
		}
		// Compiling does not change the step names.
		rp := Compile(a, &steps.Scenario{})
		for i, s := range a.Steps {
			if rp.Steps[i].Name != s.String() {
				t.Fatalf("compiled step %d is %q, want %q", i+1, rp.Steps[i].Name, s)
			}
		}
	}
}

func TestSeedsExploreDifferentPlans(t *testing.T) {
	plans := map[string]bool{}
	rollbacks, noRollbacks, kills, manual, auto := 0, 0, 0, 0, 0
	for seed := int64(0); seed < 100; seed++ {
		p, err := NewUpgradePlan(seed, upgradeOpts(3, "1.0", "1.1"))
		if err != nil {
			t.Fatal(err)
		}
		plans[p.String()] = true
		rolledBack := false
		for _, s := range p.Steps {
			switch {
			case s.Kind == Restart && less(s.To, s.From):
				rolledBack = true
			case s.Kind == KillLeader:
				kills++
			case s.Kind == Finalize && s.Auto:
				auto++
			case s.Kind == Finalize:
				manual++
			}
		}
		if rolledBack {
			rollbacks++
		} else {
			noRollbacks++
		}
	}
	if len(plans) < 90 {
		t.Errorf("100 seeds gave only %d distinct plans", len(plans))
	}
	if rollbacks == 0 || noRollbacks == 0 || kills == 0 || manual == 0 || auto == 0 {
		t.Errorf("seeds do not explore the choices: %d with rollback, %d without, %d leader kills, %d manual and %d automatic finalizations",
			rollbacks, noRollbacks, kills, manual, auto)
	}
}

// TestUpgradePlanShape checks the invariants every upgrade plan keeps,
// over many seeds: nodes move one release at a time, every binary mix of
// the upgrade gets mixed-version steps, finalization comes after every node
// runs the new release, and the workload is checked at the end.
func TestUpgradePlanShape(t *testing.T) {
	for _, nodes := range []int{1, 3, 4, 5} {
		for seed := int64(0); seed < 100; seed++ {
			p, err := NewUpgradePlan(seed, upgradeOpts(nodes, "1.0", "1.1", "2.0"))
			if err != nil {
				t.Fatal(err)
			}
			cur := make([]string, nodes)
			for i := range cur {
				cur[i] = "1.0"
			}
			hop := 0
			mixesWithSteps := map[string]bool{}
			workloadRunning := false
			for i, s := range p.Steps {
				switch s.Kind {
				case StartWorkload:
					workloadRunning = true
				case Restart:
					if cur[s.Node-1] != s.From {
						t.Fatalf("seed %d step %d: %s, but n%d runs %s", seed, i+1, s, s.Node, cur[s.Node-1])
					}
					if s.From != p.Path[hop] && s.From != p.Path[hop+1] || s.To != p.Path[hop] && s.To != p.Path[hop+1] {
						t.Fatalf("seed %d step %d: %s leaves the hop %s -> %s", seed, i+1, s, p.Path[hop], p.Path[hop+1])
					}
					cur[s.Node-1] = s.To
				case CreateTable, AddColumn, WriteRows, ChangeSetting, KillLeader:
					mixesWithSteps[s.Mix] = true
				case Finalize:
					for n, r := range cur {
						if r != s.To {
							t.Fatalf("seed %d step %d: finalizing %s while n%d runs %s", seed, i+1, s.To, n+1, r)
						}
					}
					hop++
				}
				if s.Kind == Restart && !workloadRunning && i > 0 && p.Steps[i-1].Kind == Restart {
					t.Fatalf("seed %d: two restarts before the workload started", seed)
				}
			}
			if hop != len(p.Path)-1 {
				t.Fatalf("seed %d: %d finalizations for %d hops", seed, hop, len(p.Path)-1)
			}
			if last := p.Steps[len(p.Steps)-1]; last.Kind != CheckWorkload {
				t.Fatalf("seed %d: the plan ends with %s, not the workload check", seed, last)
			}
			// Each hop passes through every mix from "majority old" to "all
			// new" and runs mixed-version steps in each.
			for h := 0; h+1 < len(p.Path); h++ {
				old, newR := p.Path[h], p.Path[h+1]
				for k := nodes - 1; k >= 0; k-- {
					cur := make([]string, nodes)
					for i := range cur {
						cur[i] = newR
						if i < k {
							cur[i] = old
						}
					}
					if mix := mixLabel(cur, old, newR); !mixesWithSteps[mix] {
						t.Fatalf("seed %d, %d nodes: no mixed-version step in mix %q:\n%s", seed, nodes, mix, p)
					}
				}
			}
		}
	}
}

func TestMixPlan(t *testing.T) {
	for _, tc := range []struct{ nodes, old int }{{3, 0}, {3, 1}, {3, 2}, {5, 2}, {5, 3}} {
		p, err := NewMixPlan(7, MixOptions{Nodes: tc.nodes, Old: "1.0", New: "1.1", OldCount: tc.old, KillLeader: true})
		if err != nil {
			t.Fatal(err)
		}
		var start Step
		for _, s := range p.Steps {
			if s.Kind == StartCluster {
				start = s
			}
		}
		old := 0
		for _, r := range start.Releases {
			if r == "1.0" {
				old++
			}
		}
		if old != tc.old || len(start.Releases) != tc.nodes {
			t.Errorf("%d of %d old asked, plan starts %v", tc.old, tc.nodes, start.Releases)
		}
		if tc.old > 0 && start.Releases[start.Node-1] != "1.0" {
			t.Errorf("the cluster is initialized through n%d on %s, not an old node", start.Node, start.Releases[start.Node-1])
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    UpgradeOptions
		want string
	}{
		{"skips a release", UpgradeOptions{Nodes: 3, Path: []string{"1.0", "2.0"}}, "skips or reverses"},
		{"goes backwards", UpgradeOptions{Nodes: 3, Path: []string{"1.1", "1.0"}}, "skips or reverses"},
		{"unknown release", UpgradeOptions{Nodes: 3, Path: []string{"1.0", "1.5"}}, "not on the ladder"},
		{"one release", UpgradeOptions{Nodes: 3, Path: []string{"1.0"}}, "at least two"},
		{"two hops without finalization", UpgradeOptions{Nodes: 3, Path: []string{"1.0", "1.1", "2.0"}}, "needs finalization between hops"},
		{"no nodes", UpgradeOptions{Nodes: 0, Path: []string{"1.0", "1.1"}}, "at least one node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewUpgradePlan(1, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := NewMixPlan(1, MixOptions{Nodes: 3, Old: "1.0", New: "1.1", OldCount: 4}); err == nil {
		t.Error("a mix of 4 old nodes out of 3 was accepted")
	}
}
