package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
)

// TestMain makes sure an interrupted `go test` (Ctrl-C, a kill, CI giving
// up) leaves no node running: t.Cleanup does not run on a signal, so the
// handler kills every node this process started before exiting. (On Linux
// the kernel would also kill them when this process dies: Pdeathsig.)
func TestMain(m *testing.M) {
	sigC := make(chan os.Signal, 1)
	signal.Notify(sigC, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigC
		n := cluster.KillAll()
		fmt.Fprintf(os.Stderr, "roachtest: %s: killed %d node process(es); their logs are in the scenario directories under %s\n",
			sig, n, filepath.Join(os.TempDir(), "kvnode-roachtest"))
		os.Exit(1)
	}()
	// After every scenario, nothing may be left running in this process
	// either: workload clients, process waiters, SQL connections. Idle
	// keep-alive connections of the HTTP client (status pages, /health) are
	// pooled by design.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// seed is ROACHTEST_SEED if set, else random; it is logged so that any
// failure can be rerun with the same plans.
func seed(t *testing.T) int64 {
	if s := os.Getenv("ROACHTEST_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ROACHTEST_SEED=%q is not an integer", s)
		}
		return v
	}
	return rand.Int64N(1 << 53)
}

// TestScenarios runs every registered scenario as a subtest: the short
// suite by default, every scenario with KVNODE_LONG=1, none with -short.
//
//	go test ./roachtest/tests -run 'TestScenarios/basic/kill-leader$' -v
//	ROACHTEST_SEED=42 go test ./roachtest/tests -run 'TestScenarios/upgrade/rolling$' -v
//	KVNODE_LONG=1 go test ./roachtest/... -timeout 60m
//	ROACHTEST_BINARIES=1.0=/opt/kvnode-1.0,1.1=/opt/kvnode-1.1 go test ./roachtest/tests
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("the scenarios run real clusters; -short runs only the framework's unit tests")
	}
	r := &registry.Registry{}
	Register(r)
	long := os.Getenv("KVNODE_LONG") == "1"
	s := seed(t)
	t.Logf("seed %d: rerun with ROACHTEST_SEED=%d, or go run ./roachtest run REGEX --seed %d", s, s, s)
	base := filepath.Join(os.TempDir(), "kvnode-roachtest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(base, "go-test-"+time.Now().Format("20060102-150405-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(root) }) // only if empty: failed scenarios keep their directories
	// The builder is shared so each release is built once per run; its
	// lines go to the subtest that triggered the build.
	var logTo *testing.T
	builder := &cluster.Builder{Logf: func(format string, args ...any) { logTo.Logf(format, args...) }}
	if err := builder.OverrideFromList(os.Getenv("ROACHTEST_BINARIES")); err != nil {
		t.Fatalf("ROACHTEST_BINARIES: %v", err)
	}
	for _, spec := range r.All() {
		t.Run(spec.Name, func(t *testing.T) {
			logTo = t
			if spec.Suite == registry.Long && !long {
				t.Skipf("long scenario: run it with KVNODE_LONG=1, or go run ./roachtest run '^%s$'", spec.Name)
			}
			ctx := context.Background()
			// End the scenario cleanly (nodes stopped, logs kept) before go
			// test's own timeout panics.
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
				t.Fatalf("%s\nevery node's log is kept in %s\nreproduce: %s\n       or: ROACHTEST_SEED=%d go test ./roachtest/tests -run 'TestScenarios/%s$' -v",
					res.Reason, filepath.Join(res.Dir, "logs"), res.Reproduce(), s, spec.Name)
			}
		})
	}
}

// TestPlansAreDeterministic builds every scenario's plan twice for several
// seeds and node counts: the same inputs must give the same plan, since a
// failure is reproduced from its seed.
func TestPlansAreDeterministic(t *testing.T) {
	r := &registry.Registry{}
	Register(r)
	for _, spec := range r.All() {
		for _, nodes := range []int{spec.MinNodes, spec.Nodes, spec.Nodes + 2} {
			for _, seed := range []int64{0, 1, 42, 1 << 40} {
				p := registry.PlanParams{Seed: seed, Nodes: nodes}
				a, err := spec.Plan(p)
				if err != nil {
					t.Fatalf("%s seed %d nodes %d: %v", spec.Name, seed, nodes, err)
				}
				b, err := spec.Plan(p)
				if err != nil {
					t.Fatal(err)
				}
				if a.String() != b.String() {
					t.Fatalf("%s seed %d nodes %d gave two plans:\n%s\n---\n%s", spec.Name, seed, nodes, a, b)
				}
				if len(a.Steps) == 0 {
					t.Fatalf("%s has an empty plan", spec.Name)
				}
			}
		}
	}
}
