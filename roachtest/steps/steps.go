package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/checker"
	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/workload"
)

// Func is a step's body.
type Func = func(ctx context.Context, e *registry.Env) error

// Scenario is the state shared by the steps of one plan. Create one per
// plan (inside the Spec's Plan function), never per registry.
type Scenario struct {
	// Workload is the running workload, once StartWorkload ran.
	Workload *workload.Workload
	// WorkloadConfig is used by SetupWorkload and StartWorkload; Targets
	// and Seed are filled in from the cluster and the scenario's seed.
	WorkloadConfig workload.Config

	// caps holds ProbeCapabilities' answers: nil for a capability that
	// exists, the reason for one that does not.
	caps map[Capability]error
}

// Note records a scenario event on the workload clock (if it runs) and in
// the progress log.
func (s *Scenario) Note(e *registry.Env, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.Workload != nil {
		s.Workload.Note("%s", msg)
	}
	e.Logf("%s", msg)
}

// Binaries builds (or finds) the binaries of the given releases up front,
// so that a build failure stops the scenario before any process starts and
// no restart waits for a build.
func (s *Scenario) Binaries(releases ...string) Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, r := range releases {
			b, err := e.Binary(ctx, r)
			if err != nil {
				return err
			}
			e.Logf("release %s: %s (%s)", r, b.Path, b.Origin)
		}
		return nil
	}
}

// StartCluster starts node i on release releases[i-1] (or every node on
// releases[0]), initializes the cluster through node initVia and waits for
// every node to be ready. Binaries are resolved (built or found) first, so
// a build failure stops the scenario before any process starts.
func (s *Scenario) StartCluster(releases []string, initVia int) Func {
	return func(ctx context.Context, e *registry.Env) error {
		var bins []*cluster.Binary
		for _, r := range releases {
			b, err := e.Binary(ctx, r)
			if err != nil {
				return err
			}
			bins = append(bins, b)
		}
		return e.Cluster.StartAll(ctx, bins, initVia)
	}
}

// SetupWorkload creates the workload's tables through node via and waits
// until every running node can read them (schema changes reach the other
// nodes asynchronously in 1.x).
func (s *Scenario) SetupWorkload(via int) Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		if err := workload.Setup(ctx, n.ExecIdempotent, s.WorkloadConfig); err != nil {
			return err
		}
		return WaitForTable(ctx, e.Cluster, "rt_reg", "rt_log")
	}
}

// WaitForTable waits until every running node answers a read of each
// table (a missing table is 42P01 until the schema reaches the node).
func WaitForTable(ctx context.Context, c *cluster.Cluster, tables ...string) error {
	for _, n := range c.Running() {
		for _, t := range tables {
			if err := Eventually(ctx, 30*time.Second, func() error {
				_, err := n.Query(ctx, "SELECT count(*) FROM "+t)
				return err
			}); err != nil {
				return errors.Wrapf(err, "table %s is not readable through %s", t, n)
			}
		}
	}
	return nil
}

// WaitReadable waits until table is readable through n (its schema has
// reached n) and returns how
// long it had to wait (0 if at once). Only 42P01 (no such table) is waited
// out; any other error is returned.
func WaitReadable(ctx context.Context, n *cluster.Node, table string) (time.Duration, error) {
	start := time.Now()
	waited := false
	err := Eventually(ctx, 30*time.Second, func() error {
		_, err := n.Query(ctx, "SELECT count(*) FROM "+table)
		if cluster.SQLState(err) == "42P01" {
			waited = true
			return err
		}
		if err != nil {
			return Permanent(err)
		}
		return nil
	})
	if !waited {
		return 0, err
	}
	return time.Since(start), err
}

// Eventually retries fn every 100ms until it succeeds, returns an error
// marked Permanent, or d passes, and returns fn's last error.
func Eventually(ctx context.Context, d time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return errors.Wrapf(err, "still failing after %s", d)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// permanent marks an error Eventually must not retry.
type permanent struct{ error }

// Permanent makes Eventually return err at once instead of retrying.
func Permanent(err error) error { return permanent{err} }

// StartWorkload starts the workload's clients on every node of the
// cluster. The scenario's end stops it; a failure saves its history.
func (s *Scenario) StartWorkload() Func {
	return func(ctx context.Context, e *registry.Env) error {
		cfg := s.WorkloadConfig
		cfg.Targets = workload.TargetsOf(e.Cluster)
		cfg.Seed = e.Seed
		w, err := workload.Start(cfg)
		if err != nil {
			return err
		}
		s.Workload = w
		e.Defer(w.Stop)
		e.OnFailure(func() {
			w.Stop()
			path := filepath.Join(e.Dir, "history.jsonl")
			if err := w.History().WriteFile(path); err == nil {
				e.Logf("workload history (%d operations) saved to %s", len(w.History().Ops), path)
			}
		})
		return nil
	}
}

// WaitProgress waits until the workload has n more acknowledged writes:
// the cluster serves writes in its current state.
func (s *Scenario) WaitProgress(n int64, timeout time.Duration) Func {
	return func(ctx context.Context, e *registry.Env) error {
		if s.Workload == nil {
			return errors.AssertionFailedf("WaitProgress before StartWorkload")
		}
		start := time.Now()
		if err := s.Workload.WaitProgress(ctx, n, timeout); err != nil {
			return err
		}
		e.Logf("workload: %d more writes acknowledged in %s (%d in all)", n, time.Since(start).Round(time.Millisecond), s.Workload.Acked())
		return nil
	}
}

// CheckWorkload stops the workload, reads the final state through every
// running node and runs the checkers; a failure prints the offending
// operations. minAcked is the least number of acknowledged writes that
// makes the run meaningful.
func (s *Scenario) CheckWorkload(minAcked int) Func {
	return func(ctx context.Context, e *registry.Env) error {
		w := s.Workload
		if w == nil {
			return errors.AssertionFailedf("CheckWorkload before StartWorkload")
		}
		w.Stop()
		if err := w.ReadFinal(ctx, e.Cluster.Running()); err != nil {
			return err
		}
		h := w.History()
		path := filepath.Join(e.Dir, "history.jsonl")
		if err := h.WriteFile(path); err != nil {
			return err
		}
		start := time.Now()
		rep := checker.Check(h, checker.Options{MinAcked: minAcked, VisualizeDir: e.Dir})
		e.Logf("checked %d operations in %s", len(h.Ops), time.Since(start).Round(time.Millisecond))
		for _, line := range strings.Split(strings.TrimRight(rep.String(), "\n"), "\n") {
			e.Logf("  %s", line)
		}
		if !rep.OK() {
			return errors.Newf("the workload's history fails its checks (history in %s):\n%s", path, rep.String())
		}
		return nil
	}
}

// KillLeader finds the Raft leader, kills it with SIGKILL, waits until the
// rest of the cluster acknowledges writes again, restarts it on the same
// binary and waits until it is ready.
func (s *Scenario) KillLeader(progress int64) Func {
	return func(ctx context.Context, e *registry.Env) error {
		leader, err := e.Cluster.Leader(ctx)
		if err != nil {
			return err
		}
		bin := leader.Binary()
		s.Note(e, "killing the leader %s (%s) with SIGKILL", leader, bin.Name())
		if err := leader.Kill(); err != nil {
			return err
		}
		if s.Workload != nil {
			if err := s.Workload.WaitProgress(ctx, progress, 60*time.Second); err != nil {
				return errors.Wrapf(err, "with the leader %s killed", leader)
			}
			s.Note(e, "the cluster acknowledges writes without %s", leader)
		}
		if newLeader, err := e.Cluster.Leader(ctx); err == nil {
			e.Logf("new leader: %s", newLeader)
		}
		if err := leader.Start(ctx, bin); err != nil {
			return err
		}
		if err := leader.WaitReady(ctx); err != nil {
			return err
		}
		s.Note(e, "%s restarted and ready on %s", leader, bin.Name())
		return nil
	}
}

// PauseLeader pauses the Raft leader (SIGSTOP) while the rest acknowledge
// progress writes (they elect a new leader), then resumes it (SIGCONT): the
// old leader comes back believing it leads, with the workload's reads
// waiting on it, the moment a leader lease must not serve a stale read.
func (s *Scenario) PauseLeader(progress int64) Func {
	return func(ctx context.Context, e *registry.Env) error {
		leader, err := e.Cluster.Leader(ctx)
		if err != nil {
			return err
		}
		s.Note(e, "pausing the leader %s with SIGSTOP", leader)
		if err := leader.Pause(); err != nil {
			return err
		}
		resumed := false
		defer func() {
			if !resumed {
				_ = leader.Resume()
			}
		}()
		if s.Workload != nil {
			if err := s.Workload.WaitProgress(ctx, progress, 60*time.Second); err != nil {
				return errors.Wrapf(err, "with the leader %s paused", leader)
			}
			s.Note(e, "the cluster acknowledges writes without %s", leader)
		}
		if newLeader, err := e.Cluster.Leader(ctx); err == nil {
			e.Logf("new leader: %s", newLeader)
		}
		resumed = true
		if err := leader.Resume(); err != nil {
			return err
		}
		s.Note(e, "%s resumed (SIGCONT)", leader)
		return leader.WaitReady(ctx)
	}
}

// Restart stops node (SIGTERM, or SIGKILL if kill) and starts it on
// release, waits until it is ready and checks that it reports that release.
func (s *Scenario) Restart(node int, release string, kill bool) Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(node)
		bin, err := e.Binary(ctx, release)
		if err != nil {
			return err
		}
		how := "SIGTERM"
		if kill {
			how = "SIGKILL"
		}
		s.Note(e, "restarting %s (%s) on %s (%s)", n, n.Binary().Name(), bin.Name(), how)
		if err := n.Restart(ctx, bin, kill); err != nil {
			return err
		}
		st, err := n.Status(ctx)
		if err != nil {
			return err
		}
		if st.Binary != "" && st.Binary != bin.Release {
			return errors.Newf("%s was restarted on %s but its status page says binary %s", n, bin.Name(), st.Binary)
		}
		s.Note(e, "%s ready on %s", n, bin.Name())
		return nil
	}
}

// RequireNodeCLI skips the scenario unless every given release's binary
// has `kvnode node decommission` and `kvnode node drain`.
func (s *Scenario) RequireNodeCLI(releases ...string) Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, r := range releases {
			b, err := e.Binary(ctx, r)
			if err != nil {
				return err
			}
			if err := cluster.ProbeNodeCLI(ctx, b); err != nil {
				if errors.Is(err, cluster.ErrUnsupported) {
					return registry.Skipf("pending: the node lifecycle CLI is not there yet: %v", err)
				}
				return err
			}
		}
		return nil
	}
}

// Capability is something the binaries may not have yet.
type Capability int

// The capabilities steps can need.
const (
	// Settings: SET/SHOW/RESET CLUSTER SETTING.
	Settings Capability = iota + 1
	// Finalization: SET CLUSTER SETTING version, and automatic upgrades.
	Finalization
)

func (c Capability) String() string {
	switch c {
	case Settings:
		return "cluster settings"
	case Finalization:
		return "finalization"
	}
	return fmt.Sprintf("capability %d", int(c))
}

// ProbeCapabilities asks the cluster, through node via, whether it has
// cluster settings and can finalize an upgrade (see
// cluster.ProbeSettings and cluster.ProbeFinalization). A capability in
// required that is missing skips the scenario as pending; the others are
// remembered, and Needs runs a step's body only if its capability exists.
func (s *Scenario) ProbeCapabilities(via int, required ...Capability) Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		s.caps = map[Capability]error{Settings: cluster.ProbeSettings(ctx, n)}
		v, err := cluster.ProbeFinalization(ctx, n)
		s.caps[Finalization] = err
		for _, c := range []Capability{Settings, Finalization} {
			err := s.caps[c]
			switch {
			case err == nil:
				e.Logf("the cluster has %s", c)
			case !errors.Is(err, cluster.ErrUnsupported):
				return errors.Wrapf(err, "probing %s", c)
			default:
				e.Logf("the cluster has no %s yet: %v", c, err)
			}
		}
		if v != "" {
			e.Logf("active cluster version: %s", v)
		}
		for _, c := range required {
			if err := s.caps[c]; err != nil {
				return registry.Skipf("pending until the binaries have %s: %v", c, err)
			}
		}
		return nil
	}
}

// Needs wraps a step that needs capability c: it runs fn if the probe
// found c, else logs that the step is not run and why.
func (s *Scenario) Needs(c Capability, fn Func) Func {
	return func(ctx context.Context, e *registry.Env) error {
		err, probed := s.caps[c]
		if !probed {
			return errors.AssertionFailedf("a step that needs %s ran before ProbeCapabilities", c)
		}
		if err != nil {
			e.Logf("not run: needs %s (%v)", c, err)
			return nil
		}
		return fn(ctx, e)
	}
}

// NoteStep is a step that only records an event.
func (s *Scenario) NoteStep(text string) Func {
	return func(ctx context.Context, e *registry.Env) error {
		s.Note(e, "%s", text)
		return nil
	}
}
