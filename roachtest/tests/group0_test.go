package tests

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/roachtest/registry"
)

// The group 0 scenarios (group0.go, group0_more.go) run as subtests of
// TestScenarios, with the long suite:
//
//	KVNODE_LONG=1 go test ./roachtest/tests -run 'TestScenarios/group0/' -v -timeout 30m
//	go run ./roachtest run '^group0/node-lost-during-upgrade$' --seed 3
//
// The tests here check their plans without running anything.

// TestGroup0PlansVaryWithTheSeed: over a range of seeds, the scenario of a
// node lost during the upgrade pauses at every step of the procedure and
// kills both the coordinator and another node, and says so in its header.
func TestGroup0PlansVaryWithTheSeed(t *testing.T) {
	r := &registry.Registry{}
	registerGroup0(r)
	m, err := r.Match("^group0/node-lost-during-upgrade$")
	if err != nil || len(m) != 1 {
		t.Fatalf("group0/node-lost-during-upgrade: %v %v", m, err)
	}
	seen := map[string]bool{}
	for seed := int64(0); seed < 40; seed++ {
		p, err := m[0].Plan(registry.PlanParams{Seed: seed, Nodes: 3})
		if err != nil {
			t.Fatal(err)
		}
		h := strings.Join(p.Header, "\n")
		for _, want := range []string{
			"pause before discovery", "pause before join", "pause before synchronize", "pause before sync-schema",
			"kill the coordinator", "kill non-coordinator", "finish by auto-upgrade", "finish by SET CLUSTER SETTING",
		} {
			if strings.Contains(h, want) {
				seen[want] = true
			}
		}
	}
	for _, want := range []string{
		"pause before discovery", "pause before join", "pause before synchronize", "pause before sync-schema",
		"kill the coordinator", "kill non-coordinator", "finish by auto-upgrade", "finish by SET CLUSTER SETTING",
	} {
		if !seen[want] {
			t.Errorf("no seed in 0..39 gives a plan with %q", want)
		}
	}
}

// TestGroup0PauseValue: the value of KVNODE_TESTING_GROUP0_PAUSE the
// scenarios set is what the node parses (pausepoint.ParseGroup0): steps
// of the procedure, each with an absolute path, separated by commas.
func TestGroup0PauseValue(t *testing.T) {
	g := &group0Pauses{steps: []string{stepDiscovery, stepJoin, stepSynchronize, stepSyncSchema}, dir: t.TempDir()}
	parts := strings.Split(g.value(), ",")
	if len(parts) != 4 {
		t.Fatalf("value %q: want 4 pause points", g.value())
	}
	for i, part := range parts {
		step, file, ok := strings.Cut(part, ":")
		if !ok || step != g.steps[i] || !filepath.IsAbs(file) || file != g.file(step) {
			t.Errorf("pause point %q: want %s:<absolute path of its release file>", part, g.steps[i])
		}
	}
}
