package pausepoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crdberrors "github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/pausepoint"
	"github.com/kvnode/kvnode/testutil"
)

func TestParseGroup0Pause(t *testing.T) {
	dir := t.TempDir()
	for _, ok := range []string{
		"synchronize:" + filepath.Join(dir, "go"),
		"discovery:1s",
		"join:/tmp/x, synchronize:250ms ,sync-schema:" + filepath.Join(dir, "s"),
	} {
		if _, err := pausepoint.ParseGroup0(ok, nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ value, want string }{
		{"synchronize", `"synchronize" is not <step>:<file or duration>`},
		{"synchronize:", `is not <step>:<file or duration>`},
		{":5s", `is not <step>:<file or duration>`},
		{"sync:5s", `unknown step "sync"; valid steps: discovery, join, synchronize, sync-schema`},
		{"use-post-raft:5s", `unknown step "use-post-raft"`},
		{"dry-run:5s", `unknown step "dry-run"`},
		{"synchronize:release-file", `"release-file" after "synchronize" is neither an absolute file path nor a positive duration`},
		{"synchronize:0s", `neither an absolute file path nor a positive duration`},
		{"synchronize:-1s", `neither an absolute file path nor a positive duration`},
		{"synchronize:5s,synchronize:/tmp/x", `step "synchronize" is given twice`},
		{"synchronize:5s,", `"" is not <step>:<file or duration>`},
	} {
		_, err := pausepoint.ParseGroup0(tc.value, nil)
		if err == nil {
			t.Errorf("%q was accepted", tc.value)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), pausepoint.Group0Env) {
			t.Errorf("%q: error %q does not say %q and name %s", tc.value, err, tc.want, pausepoint.Group0Env)
		}
		hint := strings.Join(crdberrors.GetAllHints(err), " ")
		if !strings.Contains(hint, "for tests only") || !strings.Contains(hint, "valid steps: discovery, join, synchronize, sync-schema") {
			t.Errorf("%q: hint %q does not say what is valid", tc.value, hint)
		}
	}
}

// TestGroup0PauseStepsAreTheProcedures: every action group0.Decide can
// return has a step a pause can name, so no pause point can be missing.
func TestGroup0PauseStepsAreTheProcedures(t *testing.T) {
	f := group0.Formation{Generation: 1, Seed: 1, Reason: "upgrade"}
	node := func(id nodeid.ID, st group0.State, gen uint64, leader nodeid.ID) group0.NodeInfo {
		return group0.NodeInfo{NodeID: id, State: st, Generation: gen, Leader: leader, Voters: []nodeid.ID{1, 2}}
	}
	for _, o := range []group0.Observation{
		{Nodes: []group0.NodeInfo{node(1, group0.UsePreRaft, 0, 0), node(2, group0.UsePreRaft, 0, 0)}},
		{Nodes: []group0.NodeInfo{node(1, group0.UsePreRaft, 0, 0), node(2, group0.UsePreRaft, 0, 0)}, Formation: &f},
		{Nodes: []group0.NodeInfo{node(1, group0.UsePreRaft, 1, 1), node(2, group0.UsePreRaft, 0, 0)}, Formation: &f},
		{Nodes: []group0.NodeInfo{node(1, group0.UsePreRaft, 1, 1), node(2, group0.UsePreRaft, 1, 1)}, Formation: &f},
		{Nodes: []group0.NodeInfo{node(1, group0.Synchronize, 1, 1), node(2, group0.Synchronize, 1, 1)}, Formation: &f},
	} {
		a, err := group0.Decide(o)
		if err != nil {
			t.Fatal(err)
		}
		if a.Kind == group0.ActWait || a.Kind == group0.ActDone {
			t.Fatalf("observation %+v: Decide waits or is done (%s); the test wants an action", o, a.Step)
		}
		if _, err := pausepoint.ParseGroup0(string(a.Step)+":1s", nil); err != nil {
			t.Errorf("Decide acts at step %q, which KVNODE_TESTING_GROUP0_PAUSE cannot name: %v", a.Step, err)
		}
	}
}

func TestGroup0PauseFromEnv(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	t.Setenv(pausepoint.Group0Env, "")
	if hook, err := pausepoint.Group0FromEnv(log); hook != nil || err != nil || buf.Len() != 0 {
		t.Fatalf("empty: hook %v, err %v, log %q", hook != nil, err, buf.String())
	}
	t.Setenv(pausepoint.Group0Env, "synchronize:/tmp/release")
	hook, err := pausepoint.Group0FromEnv(log)
	if hook == nil || err != nil {
		t.Fatalf("set: hook %v, err %v", hook != nil, err)
	}
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "TESTING ONLY") ||
		!strings.Contains(out, "never set it in production") || !strings.Contains(out, "synchronize:/tmp/release") {
		t.Fatalf("the start does not warn loudly: %q", out)
	}
	t.Setenv(pausepoint.Group0Env, "synchronise:/tmp/release")
	if hook, err := pausepoint.Group0FromEnv(log); hook != nil || err == nil || !strings.Contains(err.Error(), "unknown step") {
		t.Fatalf("invalid: hook %v, err %v", hook != nil, err)
	}
}

func TestGroup0PauseUntilFile(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "release-sync")
	var logs testutil.SyncBuffer
	p, err := pausepoint.ParseGroup0("synchronize:"+release+",sync-schema:"+filepath.Join(dir, "never"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Other steps pass at once.
	for _, step := range []group0.Step{group0.StepDiscovery, group0.StepJoin} {
		if err := p.Hook(ctx, group0.Action{Step: step}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- p.Hook(ctx, group0.Action{Kind: group0.ActSynchronize, Step: group0.StepSynchronize, Waiting: "node(s) 1, 2 enter synchronize"})
	}()
	var marker []byte
	testutil.SucceedsWithin(t, 10*time.Second, func() (err error) {
		marker, err = os.ReadFile(release + ".paused")
		return err
	})
	if want := fmt.Sprintf("pid %d\nstep synchronize\naction node(s) 1, 2 enter synchronize\n", os.Getpid()); string(marker) != want {
		t.Fatalf("marker %q, want %q", marker, want)
	}
	select {
	case err := <-done:
		t.Fatalf("the pause ended before its file existed: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not end 10s after its file appeared")
	}
	// Released for good: the next synchronize action passes at once.
	start := time.Now()
	if err := p.Hook(ctx, group0.Action{Step: group0.StepSynchronize}); err != nil || time.Since(start) > time.Second {
		t.Fatalf("after the release: %v after %s", err, time.Since(start))
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "TESTING ONLY", "pausing the group 0 upgrade procedure before its synchronize action", release, "released"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q:\n%s", want, out)
		}
	}
	// A pause ends with an error when the procedure's context does.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = p.Hook(cctx, group0.Action{Step: group0.StepSyncSchema})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "paused before sync-schema") {
		t.Fatalf("a pause whose context ends: %v", err)
	}
}

func TestGroup0PauseForDuration(t *testing.T) {
	p, err := pausepoint.ParseGroup0("join:300ms", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	if err := p.Hook(ctx, group0.Action{Step: group0.StepJoin}); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("first join action: %v after %s, want a 300ms pause", err, time.Since(start))
	}
	start = time.Now()
	if err := p.Hook(ctx, group0.Action{Step: group0.StepJoin}); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Fatalf("second join action: %v after %s, want no pause", err, time.Since(start))
	}
}

// TestVersionStepPause: KVNODE_TESTING_VERSION_STEP_PAUSE names ladder
// steps with release files; a step pauses until its file exists (writing
// its marker with pid and step), other steps pass, a released step passes
// at once, and the pause ends with its context.
func TestVersionStepPause(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ value, want string }{
		{"1.1-step.1", `"1.1-step.1" is not <step>:<file>`},
		{"1.1-step.7:/tmp/x", "1.1-step.7 is not a cluster version of the ladder (1.0, 1.1-step.1"},
		{"banana:/tmp/x", `"banana" is not a cluster version`},
		{"1.1-step.1:release", `"release" after 1.1-step.1 is not an absolute file path`},
		{"1.1-step.1:/tmp/x,1.1-step.1:/tmp/y", "step 1.1-step.1 is given twice"},
	} {
		_, err := pausepoint.ParseVersionStep(tc.value, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), pausepoint.VersionStepEnv) {
			t.Errorf("%q: error %v, want it to say %q", tc.value, err, tc.want)
		}
	}
	t.Setenv(pausepoint.VersionStepEnv, "")
	if hook, err := pausepoint.VersionStepFromEnv(nil); hook != nil || err != nil {
		t.Fatalf("empty: hook %v, err %v", hook != nil, err)
	}
	release := filepath.Join(dir, "release-fence")
	var logs testutil.SyncBuffer
	t.Setenv(pausepoint.VersionStepEnv, "1.1-step.1:"+release+", 2.0-step.1:"+filepath.Join(dir, "never"))
	hook, err := pausepoint.VersionStepFromEnv(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || hook == nil {
		t.Fatalf("set: hook %v, err %v", hook != nil, err)
	}
	ctx := context.Background()
	step := func(s string) clusterversion.Version {
		v, err := clusterversion.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := hook(ctx, step("1.1-step.2")); err != nil {
		t.Fatalf("a step without a pause: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- hook(ctx, step("1.1-step.1")) }()
	var marker []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		if marker, err = os.ReadFile(release + ".paused"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pause marker after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if want := fmt.Sprintf("pid %d\nstep 1.1-step.1\n", os.Getpid()); string(marker) != want {
		t.Fatalf("marker %q, want %q", marker, want)
	}
	select {
	case err := <-done:
		t.Fatalf("the pause ended before its file existed: %v", err)
	default:
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not end 10s after its file appeared")
	}
	if err := hook(ctx, step("1.1-step.1")); err != nil {
		t.Fatalf("after the release: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := hook(cctx, step("2.0-step.1")); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "paused before persisting 2.0-step.1") {
		t.Fatalf("a pause whose context ends: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"TESTING ONLY", "never set it in production", "pausing the finalization before persisting 1.1-step.1", "released"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q:\n%s", want, out)
		}
	}
}
