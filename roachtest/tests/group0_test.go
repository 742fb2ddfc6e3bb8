package tests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
)

// TestGroup0Scenarios runs the group 0 scenarios (group0.go) until
// Register includes them (registerGroup0), after which TestScenarios runs
// them and this test skips. They are long: KVNODE_LONG=1 runs them.
//
//	KVNODE_LONG=1 go test ./roachtest/tests -run 'TestGroup0Scenarios/group0/majority-loss-recovery$' -v
func TestGroup0Scenarios(t *testing.T) {
	all := &registry.Registry{}
	Register(all)
	if m, _ := all.Match("^group0/"); len(m) > 0 {
		t.Skip("Register includes the group 0 scenarios: TestScenarios runs them")
	}
	r := &registry.Registry{}
	registerGroup0(r)
	for _, spec := range r.All() {
		for _, seed := range []int64{0, 1, 42} {
			p := registry.PlanParams{Seed: seed, Nodes: spec.Nodes}
			a, err := spec.Plan(p)
			if err != nil {
				t.Fatalf("%s: %v", spec.Name, err)
			}
			if b, _ := spec.Plan(p); a.String() != b.String() {
				t.Fatalf("%s seed %d gave two plans", spec.Name, seed)
			}
		}
	}
	if testing.Short() {
		t.Skip("the scenarios run real clusters; -short runs only the framework's unit tests")
	}
	s := seed(t)
	t.Logf("seed %d: rerun with ROACHTEST_SEED=%d", s, s)
	base := filepath.Join(os.TempDir(), "kvnode-roachtest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(base, "go-test-group0-"+time.Now().Format("20060102-150405-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(root) })
	var logTo *testing.T
	builder := &cluster.Builder{Logf: func(format string, args ...any) { logTo.Logf(format, args...) }}
	if err := builder.OverrideFromList(os.Getenv("ROACHTEST_BINARIES")); err != nil {
		t.Fatalf("ROACHTEST_BINARIES: %v", err)
	}
	for _, spec := range r.All() {
		t.Run(spec.Name, func(t *testing.T) {
			logTo = t
			if spec.Suite == registry.Long && os.Getenv("KVNODE_LONG") != "1" {
				t.Skipf("long scenario: run it with KVNODE_LONG=1")
			}
			ctx := context.Background()
			if deadline, ok := t.Deadline(); ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
				defer cancel()
			}
			res := registry.Run(ctx, spec, registry.RunOptions{
				Seed: s, ArtifactsDir: root, Builder: builder,
				Out: func(line string) { t.Log(line) },
			})
			switch res.Status {
			case registry.Skip:
				t.Skip(res.Reason)
			case registry.Fail:
				t.Fatalf("%s\nevery node's log is kept in %s\nreproduce: ROACHTEST_SEED=%d KVNODE_LONG=1 go test ./roachtest/tests -run 'TestGroup0Scenarios/%s$' -v",
					res.Reason, filepath.Join(res.Dir, "logs"), s, spec.Name)
			}
		})
	}
}
