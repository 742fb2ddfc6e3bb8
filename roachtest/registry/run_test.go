package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvnode/kvnode/roachtest/cluster"
)

// run runs a scenario made of the given steps and returns its result and
// progress lines. No step starts a node: these tests are about the runner.
func run(t *testing.T, steps ...Step) (Result, []string) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	spec := &Spec{Name: "unit/" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), Nodes: 1, MinNodes: 1,
		Plan: func(p PlanParams) (*Plan, error) { return &Plan{Header: []string{"a test plan"}, Steps: steps}, nil }}
	res := Run(context.Background(), spec, RunOptions{Seed: 7, ArtifactsDir: t.TempDir(), Builder: &cluster.Builder{},
		Out: func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() }})
	return res, lines
}

func indexOf(lines []string, substr string) int {
	for i, l := range lines {
		if strings.Contains(l, substr) {
			return i
		}
	}
	return -1
}

func TestRunLogsThePlanBeforeActingAndCleansUp(t *testing.T) {
	var order []string
	res, lines := run(t,
		Step{Name: "first", Run: func(ctx context.Context, e *Env) error {
			e.Defer(func() { order = append(order, "cleanup 1") })
			e.OnFailure(func() { order = append(order, "on failure") })
			return nil
		}},
		Step{Name: "second", Run: func(ctx context.Context, e *Env) error {
			e.Defer(func() { order = append(order, "cleanup 2") })
			return nil
		}},
	)
	if res.Status != Pass {
		t.Fatalf("got %+v", res)
	}
	seed, plan, step1 := indexOf(lines, "seed 7"), indexOf(lines, "2. second"), indexOf(lines, "step 1/2: first")
	if seed < 0 || plan < 0 || step1 < 0 || !(seed < step1 && plan < step1) {
		t.Errorf("the seed and the whole plan must be logged before the first step:\n%s", strings.Join(lines, "\n"))
	}
	if strings.Join(order, ",") != "cleanup 2,cleanup 1" {
		t.Errorf("cleanups ran as %v, want last-in first-out and no failure hooks", order)
	}
	if res.Dir != "" {
		t.Errorf("a passed scenario kept %s", res.Dir)
	}
}

func TestRunFailureKeepsEverythingAndSaysWhere(t *testing.T) {
	ran := false
	hook := false
	res, lines := run(t,
		Step{Name: "fails", Run: func(ctx context.Context, e *Env) error {
			e.OnFailure(func() { hook = true })
			return errors.New("boom")
		}},
		Step{Name: "never", Run: func(ctx context.Context, e *Env) error { ran = true; return nil }},
	)
	if res.Status != Fail || !strings.Contains(res.Reason, "step 1/2 (fails): boom") {
		t.Fatalf("got %+v", res)
	}
	if ran || !hook {
		t.Errorf("ran the step after a failure: %v; failure hook ran: %v", ran, hook)
	}
	for _, f := range []string{"test.log", "plan.txt", "logs"} {
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Errorf("the failed scenario's %s is gone: %v", f, err)
		}
	}
	if indexOf(lines, "every node's log is kept in "+filepath.Join(res.Dir, "logs")) < 0 || indexOf(lines, "reproduce with: go run ./roachtest run") < 0 {
		t.Errorf("the failure does not say where the logs are and how to reproduce:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(res.Reproduce(), "--seed 7 --nodes 1") {
		t.Errorf("Reproduce() = %q", res.Reproduce())
	}
}

func TestRunSkipAndPanic(t *testing.T) {
	res, _ := run(t, Step{Name: "probe", Run: func(ctx context.Context, e *Env) error { return Skipf("pending: no %s yet", "thing") }})
	if res.Status != Skip || res.Reason != "pending: no thing yet" {
		t.Errorf("skip: got %+v", res)
	}
	cleaned := false
	res, _ = run(t, Step{Name: "panics", Run: func(ctx context.Context, e *Env) error {
		e.Defer(func() { cleaned = true })
		panic("oops")
	}})
	if res.Status != Fail || !strings.Contains(res.Reason, "panic: oops") || !cleaned {
		t.Errorf("panic: got %+v, cleaned up %v", res, cleaned)
	}
}

func TestRegistry(t *testing.T) {
	r := &Registry{}
	plan := func(PlanParams) (*Plan, error) { return &Plan{}, nil }
	r.Add(Spec{Name: "b/two", Nodes: 3, Plan: plan})
	r.Add(Spec{Name: "a/one", Nodes: 1, Plan: plan})
	if all := r.All(); len(all) != 2 || all[0].Name != "a/one" || all[1].MinNodes != 3 {
		t.Errorf("All() = %v", all)
	}
	if m, err := r.Match("^b/"); err != nil || len(m) != 1 {
		t.Errorf("Match = %v, %v", m, err)
	}
	if _, err := r.Match("("); err == nil {
		t.Error("a bad pattern matched")
	}
	for _, bad := range []Spec{{Name: "a/one", Nodes: 1, Plan: plan}, {Name: "Bad Name", Nodes: 1, Plan: plan}, {Name: "c", Nodes: 0, Plan: plan}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%q) did not panic", bad.Name)
				}
			}()
			r.Add(bad)
		}()
	}
}
