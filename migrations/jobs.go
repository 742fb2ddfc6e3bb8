package migrations

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/util/stop"
)

// Status is a job's state.
type Status string

// Job states. A failed job is retried by the next Run for its version.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// Job is the replicated record of one migration's execution.
type Job struct {
	ID      int64  `json:"id"`
	Version string `json:"version"`
	// Direction is "down" for a down-migration (a downgrade), empty for a
	// migration.
	Direction   string   `json:"direction,omitempty"`
	Description string   `json:"description"`
	Status      Status   `json:"status"`
	Progress    Progress `json:"progress"`
	// Coordinator is the node running the job; LeaseUntil (Unix nanos) is
	// when its claim lapses unless renewed by a checkpoint.
	Coordinator nodeid.ID `json:"coordinator"`
	LeaseUntil  int64     `json:"lease_until"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error,omitempty"`
	Created     int64     `json:"created"`
	Modified    int64     `json:"modified"`
}

// Fraction is the job's progress in [0, 1].
func (j Job) Fraction() float64 {
	if j.Status == StatusSucceeded {
		return 1
	}
	if j.Progress.Total <= 0 {
		return 0
	}
	f := float64(j.Progress.Done) / float64(j.Progress.Total)
	if f > 1 {
		f = 1
	}
	return f
}

// The replicated keys of the job system (see package keys).
func jobKey(id int64) []byte { return keys.JobKey(id) }

// jobSpec is what the runner needs of a migration or a down-migration.
type jobSpec struct {
	version     clusterversion.Version
	down        bool
	description string
	run         func(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error
}

// name is the key under MigrationPrefix mapping the spec to its job: the
// version for a migration (as before down-migrations existed), "down/"
// and the version for a down-migration.
func (s jobSpec) name() string { return specName(s.version, s.down) }

func specName(v clusterversion.Version, down bool) string {
	if down {
		return "down/" + v.String()
	}
	return v.String()
}

func (s jobSpec) direction() string {
	if s.down {
		return "down"
	}
	return ""
}

// ErrJobLost is returned by a checkpoint when another coordinator has taken
// the job over (this one's lease had lapsed).
var ErrJobLost = errors.New("the migration job was taken over by another node")

// Runner executes migrations as jobs. One runs on every node; any of them
// may run or resume any migration.
type Runner struct {
	DB     kvpb.DB
	NodeID nodeid.ID
	Deps   Deps
	// Lease is how long a coordinator's claim lasts without a renewal
	// (default 10s). A running coordinator renews it every RenewEvery,
	// and with every checkpoint.
	Lease time.Duration
	// RenewEvery is how often a running coordinator renews its lease
	// (default Lease/3): a migration may go long without a checkpoint (the
	// 1.1 row count, the group 0 procedure), and its lease must not lapse
	// meanwhile, or another node takes the job and both run it.
	RenewEvery time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	// Registry and DownRegistry override the built-in registries (tests).
	Registry     []Migration
	DownRegistry []DownMigration
	// CheckpointHook, if set, runs before every checkpoint: a named pause
	// point for tests that must stop a coordinator mid-migration.
	CheckpointHook func(ctx context.Context, p Progress) error
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return 10 * time.Second
}

func (r *Runner) renewEvery() time.Duration {
	if r.RenewEvery > 0 {
		return r.RenewEvery
	}
	return r.lease() / 3
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Runner) migrationFor(v clusterversion.Version) (Migration, bool) {
	if r.Registry == nil {
		return For(v)
	}
	for _, m := range r.Registry {
		if m.Version.Version() == v {
			return m, true
		}
	}
	return Migration{}, false
}

func (r *Runner) downFor(v clusterversion.Version) (DownMigration, bool) {
	if r.DownRegistry == nil {
		return DownFor(v)
	}
	for _, m := range r.DownRegistry {
		if m.Version.Version() == v {
			return m, true
		}
	}
	return DownMigration{}, false
}

// Run executes the migration of version v, if there is one, and returns
// once it has succeeded: at once if it already has, after waiting if another
// live coordinator is running it, after running or resuming it otherwise.
// Concurrent calls on any nodes run the migration once.
func (r *Runner) Run(ctx context.Context, v clusterversion.Version) error {
	m, ok := r.migrationFor(v)
	if !ok {
		return nil
	}
	return r.runJob(ctx, jobSpec{version: v, description: m.Description, run: m.Run})
}

// RunDown executes the down-migration of step v (a downgrade lowering v),
// if there is one, as Run does a migration: exactly once per crossing of v.
func (r *Runner) RunDown(ctx context.Context, v clusterversion.Version) error {
	m, ok := r.downFor(v)
	if !ok || m.Run == nil {
		return nil
	}
	return r.runJob(ctx, jobSpec{version: v, down: true, description: "downgrade: " + m.Description, run: m.Run})
}

// Forget deletes the record that maps step v's migration (or, with down,
// its down-migration) to its job, so that the next Run (RunDown) creates a
// new job and runs it again. The job's own record stays for SHOW JOBS. The
// upgrade manager calls it when the cluster crosses v in the other
// direction: a downgrade lowering v forgets v's migration, an upgrade
// raising v forgets its down-migration.
func (r *Runner) Forget(ctx context.Context, v clusterversion.Version, down bool) error {
	return r.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: keys.MigrationKey(specName(v, down))}})
}

func (r *Runner) runJob(ctx context.Context, m jobSpec) error {
	v := m.version
	for {
		job, raw, err := r.jobFor(ctx, m)
		if err != nil {
			return err
		}
		if job.Status == StatusSucceeded {
			return nil
		}
		if job.Status == StatusRunning && job.Coordinator != r.NodeID && job.LeaseUntil > r.now().UnixNano() {
			// Someone else holds it: wait for it to finish or lapse.
			select {
			case <-ctx.Done():
				return errors.Wrapf(ctx.Err(), "waiting for node %d to finish the %s migration", job.Coordinator, v)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		claimed := job
		claimed.Status, claimed.Coordinator, claimed.Error = StatusRunning, r.NodeID, ""
		claimed.LeaseUntil = r.now().Add(r.lease()).UnixNano()
		claimed.Attempts++
		claimed.Modified = r.now().UnixNano()
		cur, err := r.cput(ctx, claimed, raw)
		if isCondFailed(err) {
			continue // raced with another node; look again
		}
		if err != nil {
			return err
		}
		if job.Attempts > 0 {
			r.log().Info("resuming migration job", "job", job.ID, "version", v, "previous_coordinator", job.Coordinator,
				"done", job.Progress.Done, "total", job.Progress.Total)
		} else {
			r.log().Info("starting migration job", "job", job.ID, "version", v, "description", m.description)
		}
		// The claim, updated by checkpoints and lease renewals alike.
		h := &heldJob{job: claimed, raw: cur}
		runCtx, stopRun := context.WithCancelCause(ctx)
		checkpoint := func(p Progress) error {
			if r.CheckpointHook != nil {
				if err := r.CheckpointHook(runCtx, p); err != nil {
					return err
				}
			}
			return r.update(runCtx, h, func(j *Job) { j.Progress = p })
		}
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			r.renewLease(runCtx, h, stopRun)
		}()
		runErr := m.run(runCtx, r.Deps, job.Progress, checkpoint)
		lost := errors.Is(context.Cause(runCtx), ErrJobLost)
		stopRun(nil)
		<-renewed
		if lost || errors.Is(runErr, ErrJobLost) {
			r.log().Warn("migration job taken over by another node; this node stops running it and waits",
				"job", job.ID, "version", v)
			continue
		}
		claimed, cur = h.job, h.raw
		final := claimed
		final.Modified = r.now().UnixNano()
		final.LeaseUntil = 0
		if runErr != nil {
			if ctx.Err() != nil {
				// We are stopping, not failing: leave the job running so
				// the lease lapses and another node resumes it.
				return runErr
			}
			final.Status, final.Error = StatusFailed, runErr.Error()
		} else {
			final.Status = StatusSucceeded
		}
		if _, err := r.cput(ctx, final, cur); err != nil {
			if isCondFailed(err) {
				continue
			}
			return err
		}
		if runErr != nil {
			return errors.Wrapf(runErr, "migration %s (job %d) failed", v, job.ID)
		}
		r.log().Info("migration job succeeded", "job", job.ID, "version", v, "rows", final.Progress.Done)
		return nil
	}
}

// heldJob is a claimed job as this coordinator last wrote it.
type heldJob struct {
	mu  sync.Mutex // serializes the coordinator's writes of the job
	job Job
	raw []byte
}

// update writes the held job changed by change, with a renewed lease,
// conditional on the job being as this coordinator last wrote it:
// ErrJobLost if another node has taken it over since.
func (r *Runner) update(ctx context.Context, h *heldJob, change func(*Job)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := h.job
	change(&next)
	next.LeaseUntil = r.now().Add(r.lease()).UnixNano()
	next.Modified = r.now().UnixNano()
	b, err := r.cput(ctx, next, h.raw)
	if isCondFailed(err) {
		return ErrJobLost
	}
	if err != nil {
		return err
	}
	h.job, h.raw = next, b
	return nil
}

// renewLease renews the held job's lease every renewEvery until ctx ends.
// When the job was taken over, it stops the migration (halt with
// ErrJobLost): a coordinator that lost its lease must not go on running
// beside the one that holds it. A renewal that fails otherwise (no quorum
// for a moment) is retried at the next tick; if the lease lapses
// meanwhile and another node takes the job, the next renewal finds out.
func (r *Runner) renewLease(ctx context.Context, h *heldJob, halt context.CancelCauseFunc) {
	stop.Every(ctx, r.renewEvery(), func() bool {
		err := r.update(ctx, h, func(*Job) {})
		if errors.Is(err, ErrJobLost) {
			halt(ErrJobLost)
			return false
		}
		if err != nil && ctx.Err() == nil {
			r.log().Warn("renewing the migration job's lease; will retry", "job", h.job.ID, "err", err)
		}
		return true
	})
}

// jobFor returns the job of m, creating it (exactly once) if it does not
// exist, with its raw record for conditional updates.
func (r *Runner) jobFor(ctx context.Context, m jobSpec) (Job, []byte, error) {
	v := m.version
	mkey := keys.MigrationKey(m.name())
	idb, found, err := r.DB.Get(ctx, mkey)
	if err != nil {
		return Job{}, nil, err
	}
	if !found {
		id, err := r.DB.Increment(ctx, keys.JobIDGenKey(), 1)
		if err != nil {
			return Job{}, nil, err
		}
		now := r.now().UnixNano()
		job := Job{ID: id, Version: v.String(), Direction: m.direction(), Description: m.description,
			Status: StatusPending, Created: now, Modified: now}
		b, _ := json.Marshal(job)
		err = r.DB.Write(ctx, []kvpb.Op{
			{Kind: kvpb.OpCPut, Key: mkey, Value: binary.BigEndian.AppendUint64(nil, uint64(id)), ExpectAbsent: true},
			{Kind: kvpb.OpCPut, Key: jobKey(id), Value: b, ExpectAbsent: true},
		})
		if err != nil && !isCondFailed(err) {
			return Job{}, nil, err
		}
		// Created by us or by a concurrent caller: read what won.
		return r.jobFor(ctx, m)
	}
	if len(idb) != 8 {
		return Job{}, nil, errors.AssertionFailedf("corrupt migration record for %s", v)
	}
	raw, found, err := r.DB.Get(ctx, jobKey(int64(binary.BigEndian.Uint64(idb))))
	if err != nil {
		return Job{}, nil, err
	}
	if !found {
		return Job{}, nil, errors.AssertionFailedf("migration %s points at a missing job", v)
	}
	var job Job
	if err := json.Unmarshal(raw, &job); err != nil {
		return Job{}, nil, errors.Wrapf(err, "corrupt job record for migration %s", v)
	}
	return job, raw, nil
}

func (r *Runner) cput(ctx context.Context, j Job, expected []byte) ([]byte, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	if err := r.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: jobKey(j.ID), Value: b, Expected: expected}}); err != nil {
		return nil, err
	}
	return b, nil
}

func isCondFailed(err error) bool {
	var cf *kvpb.ConditionFailedError
	return errors.As(err, &cf)
}

// List returns every job record, oldest first (SHOW JOBS).
func List(ctx context.Context, db kvpb.DB) ([]Job, error) {
	start, end := keys.JobSpan()
	kvs, err := db.Scan(ctx, start, end, 0, false)
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(kvs))
	for _, e := range kvs {
		var j Job
		if err := json.Unmarshal(e.Value, &j); err != nil {
			return nil, errors.Wrapf(err, "corrupt job record %x", e.Key)
		}
		out = append(out, j)
	}
	return out, nil
}

// Check runs the precondition check of step v's migration (down: its
// down-migration), if it has one. It changes nothing.
func (r *Runner) Check(ctx context.Context, v clusterversion.Version, down bool) (Check, bool, error) {
	var (
		check func(context.Context, Deps) (Check, error)
		desc  string
		ok    bool
	)
	if down {
		var m DownMigration
		m, ok = r.downFor(v)
		check, desc = m.Check, m.Description
	} else {
		var m Migration
		m, ok = r.migrationFor(v)
		check, desc = m.Check, m.Description
	}
	switch {
	case !ok:
		return Check{}, false, nil
	case check == nil:
		return Check{Detail: desc}, true, nil
	}
	c, err := check(ctx, r.Deps)
	return c, true, err
}

// Refusals runs the refusal check of step v's down-migration (nil if it has
// none). It changes nothing.
func (r *Runner) Refusals(ctx context.Context, v clusterversion.Version) ([]Blocker, error) {
	m, ok := r.downFor(v)
	if !ok || m.Refuse == nil {
		return nil, nil
	}
	return m.Refuse(ctx, r.Deps)
}
