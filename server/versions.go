package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/sql/rowenc"
)

// versionState is the node's part of cluster version management.
//
// The active version is persisted in this node's store (the identity
// record) before the node acts on it, and in the replicated key
// keys.ClusterVersion once every non-decommissioned node has persisted it, so
// SHOW CLUSTER SETTING version (which reads the replicated key) never shows
// a version that a live node has not persisted.
type versionState struct {
	active atomic.Pointer[clusterversion.Version]
	// finalizeMu serializes finalizations started on this node (by the
	// auto-upgrade loop and by SET CLUSTER SETTING version). Finalizations
	// started on different nodes are safe to overlap: every step is
	// idempotent and monotonic, and migrations run once.
	finalizeMu sync.Mutex
	// lastSummary is the auto-upgrade loop's last logged decision.
	lastSummary string
	// inProgress describes a running finalization for SHOW UPGRADE STATUS.
	inProgress atomic.Pointer[string]
}

var _ clusterversion.Handle = (*Server)(nil)

// ActiveVersion implements clusterversion.Handle: the version this node has
// persisted and acts on.
func (s *Server) ActiveVersion() clusterversion.Version {
	if v := s.ver.active.Load(); v != nil {
		return *v
	}
	return clusterversion.MinSupported(s.binVersion)
}

func (s *Server) setActiveFromIdent(id string) {
	if id == "" {
		return
	}
	if v, err := clusterversion.Parse(id); err == nil {
		s.ver.active.Store(&v)
	}
}

// SetClusterVersionRequest asks a node to persist a new active version.
type SetClusterVersionRequest struct {
	Version string `json:"version"`
}

// SetClusterVersionResponse confirms it.
type SetClusterVersionResponse struct {
	NodeID  int32  `json:"node_id"`
	Version string `json:"version"`
}

func (s *Server) setClusterVersion(_ context.Context, req *SetClusterVersionRequest) (*SetClusterVersionResponse, error) {
	v, err := clusterversion.Parse(req.Version)
	if err != nil {
		return nil, rpcError(codes.InvalidArgument, err)
	}
	if _, ok := clusterversion.Lookup(v); !ok {
		// Only the ladder's versions exist: a node that persisted another
		// one would gate features on a version no migration went through.
		var ladder []string
		for _, k := range clusterversion.Keys() {
			ladder = append(ladder, k.String())
		}
		return nil, rpcError(codes.InvalidArgument, errors.WithHintf(
			errors.Wrapf(clusterversion.ErrUnknownVersion, "cluster version %q is not on the version ladder; nothing was persisted", req.Version),
			"the cluster versions are %s", strings.Join(ladder, ", ")))
	}
	if err := s.persistActiveVersion(v); err != nil {
		return nil, rpcError(codes.FailedPrecondition, err)
	}
	return &SetClusterVersionResponse{NodeID: s.NodeID(), Version: s.ActiveVersion().String()}, nil
}

// persistActiveVersion durably records v as this node's active version,
// then acts on it. It never moves backwards, and refuses a version this
// binary cannot run.
//
// From 1.1-step.2 on, it returns only once every statement that may have
// encoded rows in v1 on this node has finished, also when v was persisted
// already (two coordinators may ask at once, and the second must not be
// told "persisted" while the first still waits): the 1.1 migration starts
// once every node answered, and no v1 row may land behind its scan.
func (s *Server) persistActiveVersion(v clusterversion.Version) error {
	if !clusterversion.Supports(s.binVersion, v) {
		return errors.WithHintf(errors.Newf("node %d runs release %s, which cannot run cluster version %s",
			s.NodeID(), s.binVersion, v), "restart node %d on a binary of release %s or newer", s.NodeID(), v)
	}
	s.mu.Lock()
	exec := s.exec
	cur := s.ActiveVersion()
	var err error
	if cur.Less(v) {
		id := s.ident
		id.ClusterVersion = v.String()
		if err = s.eng.WriteIdent(id); err == nil {
			s.ident = id
			s.ver.active.Store(&v)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return errors.Wrap(err, "persisting the cluster version")
	}
	if cur.Less(v) {
		s.log.Info("persisted new cluster version", "version", v.String())
	}
	if !v.Less(clusterversion.V1_1WriteV2.Version()) && exec != nil {
		// Writers encode v2 from now on (holdRowEncoding no longer
		// waits, so this is cheap once they have drained).
		exec.WaitForV1Writers()
	}
	return nil
}

// replicatedVersion reads the replicated `version` (linearizable).
func (s *Server) replicatedVersion(ctx context.Context) (clusterversion.Version, error) {
	rep := s.Replica()
	if rep == nil {
		return clusterversion.Version{}, errors.New("this node has not joined a cluster yet")
	}
	b, found, err := rep.Get(ctx, keys.ClusterVersionKey())
	if err != nil {
		return clusterversion.Version{}, err
	}
	if !found {
		// A cluster bootstrapped before the key existed: fall back to the
		// locally persisted version.
		return s.ActiveVersion(), nil
	}
	return clusterversion.Parse(string(b))
}

// writeReplicatedVersion advances the replicated version to v (never back).
func (s *Server) writeReplicatedVersion(ctx context.Context, v clusterversion.Version) error {
	rep := s.Replica()
	for attempt := 0; attempt < 20; attempt++ {
		b, found, err := rep.Get(ctx, keys.ClusterVersionKey())
		if err != nil {
			return err
		}
		op := kvpb.Op{Kind: kvpb.OpCPut, Key: keys.ClusterVersionKey(), Value: []byte(v.String())}
		if found {
			cur, err := clusterversion.Parse(string(b))
			if err != nil {
				return err
			}
			if !cur.Less(v) {
				return nil
			}
			op.Expected = b
		} else {
			op.ExpectAbsent = true
		}
		err = rep.Write(ctx, []kvpb.Op{op})
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) {
			continue
		}
		return err
	}
	return errors.New("could not update the replicated cluster version: too much contention")
}

// upgradeInput gathers what a finalization decision depends on.
func (s *Server) upgradeInput(ctx context.Context) (autoupgrade.Input, []NodeStatus, error) {
	// Decide on the settings as they are now, not as cached: a RESET of the
	// preserve option on another node must count at once.
	if err := s.Settings().Refresh(ctx); err != nil {
		return autoupgrade.Input{}, nil, err
	}
	statuses, err := s.NodeStatuses(ctx)
	if err != nil {
		return autoupgrade.Input{}, nil, err
	}
	in := autoupgrade.Input{
		Active:             s.ActiveVersion(),
		AutoUpgradeEnabled: s.lc().autoUpgrade.Get(),
		PreserveDowngrade:  s.lc().preserveDowngrade.Get(),
		Host:               s.RPCAddr(),
	}
	for _, n := range statuses {
		bv, err := clusterversion.Parse(n.Build)
		if err != nil {
			bv = clusterversion.Version{} // unknown build: treated as oldest
		}
		pv, _ := clusterversion.Parse(n.PersistedVersion) // unknown: zero
		in.Nodes = append(in.Nodes, autoupgrade.Node{
			ID: n.NodeID, Address: n.Address, BinaryVersion: bv, Live: n.IsLive,
			Membership: n.Membership, Draining: n.IsDraining, Persisted: pv,
		})
	}
	return in, statuses, nil
}

// Finalize moves the cluster version to target (SET CLUSTER SETTING
// version, or the auto-upgrade loop): for each ladder step, validate every
// node, persist the step on every non-decommissioned node, record it in
// the replicated setting, then run the step's migration. The first step
// of a release is its fence: from then on, older binaries are refused at
// join, and the validation that follows it closes the race of an old binary
// joining between the first check and the fence.
func (s *Server) Finalize(ctx context.Context, target clusterversion.Version) error {
	s.ver.finalizeMu.Lock()
	defer s.ver.finalizeMu.Unlock()
	defer s.ver.inProgress.Store(nil)
	for {
		in, statuses, err := s.upgradeInput(ctx)
		if err != nil {
			return err
		}
		steps, err := autoupgrade.ValidateManual(in, target)
		if err != nil {
			return err
		}
		// Steps this node has persisted but the replicated version does
		// not record are in doubt: an earlier attempt persisted them on
		// some nodes and then failed (a node died after the node list was
		// read). Redo them first: persisting is idempotent and never moves
		// a node back, recording never moves the replicated version back,
		// and a succeeded migration is not run again.
		rv, err := s.replicatedVersion(ctx)
		if err != nil {
			return err
		}
		if redo := clusterversion.Between(rv, in.Active); len(redo) > 0 {
			steps = append(redo, steps...)
		} else if _, ok := migrations.For(in.Active); ok {
			// The step the cluster is at may have a migration that an
			// earlier coordinator started and did not finish (it died, or
			// stopped): the cluster must not move past the step before it
			// succeeds. Run is a no-op for a succeeded job.
			if err := s.migrationRunner().Run(ctx, in.Active); err != nil {
				return err
			}
		}
		if len(steps) == 0 {
			return nil
		}
		step := steps[0]
		msg := fmt.Sprintf("finalizing to %s: at step %s", target, step)
		s.ver.inProgress.Store(&msg)
		if hook := s.cfg.Knobs.BeforeVersionStep; hook != nil {
			if err := hook(step); err != nil {
				return err
			}
		}
		if err := s.persistOnEveryNode(ctx, step, statuses); err != nil {
			return err
		}
		if err := s.writeReplicatedVersion(ctx, step); err != nil {
			return err
		}
		s.log.Info("cluster version step done", "step", step.String(), "target", target.String())
		if _, ok := migrations.For(step); ok {
			if err := s.migrationRunner().Run(ctx, step); err != nil {
				return err
			}
		}
		if step.IsRelease() {
			s.clearPreserveIfPassed(ctx, step)
		}
	}
}

// errStepNotPersisted marks a finalization step that some node did not
// persist (for errors.Is).
var errStepNotPersisted = errors.New("a cluster version step could not be persisted on every node")

// persistOnEveryNode persists v on every node of statuses, then lists the
// nodes again and persists v on those that joined meanwhile, until a list
// holds no new node (CockroachDB's upgrade manager does the same): a node
// that joined after the first list was read got the version of its join,
// and the step must not be recorded as done while it lags (issue 16, D1).
// A node that joins after the last list gets this node's version, which is
// v, or catches up with the replicated version (followReplicatedVersion).
func (s *Server) persistOnEveryNode(ctx context.Context, v clusterversion.Version, statuses []NodeStatus) error {
	done := map[int32]bool{}
	for round := 0; ; round++ {
		var todo []NodeStatus
		for _, n := range statuses {
			if !done[n.NodeID] {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		if round == 10 {
			return errors.WithHint(errors.Newf("nodes keep joining while cluster version %s is persisted", v),
				"the finalization resumes from this step; it completes once nodes stop joining")
		}
		if err := s.persistEverywhere(ctx, v, todo); err != nil {
			return err
		}
		for _, n := range todo {
			done[n.NodeID] = true
		}
		var err error
		if statuses, err = s.NodeStatuses(ctx); err != nil {
			return err
		}
	}
}

// followReplicatedVersion runs on every node: at start and then
// periodically, it persists the replicated cluster version when this
// node's persisted version is behind it. The replicated version is written
// only once every node of the finalization's lists has persisted it, so
// adopting it changes nothing the cluster has not agreed to; it catches
// up a node that joined while the last step was being persisted (issue 16,
// D1), which would otherwise run an in-between version for good, and at
// 1.1 refuse the next release's binary. A node of an upgraded cluster
// still in synchronize then enters use_post_raft_procedures.
func (s *Server) followReplicatedVersion() {
	every := s.cfg.AutoUpgradeInterval
	if every == 0 {
		every = 10 * time.Second
	}
	for {
		s.catchUpVersion()
		select {
		case <-s.stopC:
			return
		case <-time.After(every):
		}
	}
}

// catchUpVersion is one round of followReplicatedVersion.
func (s *Server) catchUpVersion() {
	ctx, cancel := s.stopCtx(5 * time.Second)
	defer cancel()
	rv, err := s.replicatedVersion(ctx)
	if err != nil {
		return // no quorum now: the next round retries
	}
	if s.ActiveVersion().Less(rv) {
		if err := s.persistActiveVersion(rv); err != nil {
			s.log.Warn("this node's cluster version lags the cluster's and cannot catch up",
				"active", s.ActiveVersion().String(), "cluster", rv.String(), "err", err)
			return
		}
		s.log.Info("caught up with the replicated cluster version", "version", rv.String())
	}
	if s.hasGroup0() {
		s.enterPostRaftOnceCaughtUp()
	}
}

// persistEverywhere asks every non-decommissioned node to persist v and
// waits for all of them; a node that cannot be reached fails the step (the
// finalization is retried later).
func (s *Server) persistEverywhere(ctx context.Context, v clusterversion.Version, statuses []NodeStatus) error {
	type res struct {
		id  int32
		err error
	}
	var targets []NodeStatus
	for _, n := range statuses {
		if n.Membership != autoupgrade.Decommissioned {
			targets = append(targets, n)
		}
	}
	out := make(chan res, len(targets))
	for _, n := range targets {
		go func(n NodeStatus) {
			if n.NodeID == s.NodeID() {
				out <- res{n.NodeID, s.persistActiveVersion(v)}
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var resp SetClusterVersionResponse
			err := s.pool.Invoke(cctx, n.Address, methodSetClusterVersion, &SetClusterVersionRequest{Version: v.String()}, &resp)
			if err != nil {
				err = errors.Newf("%s", remoteMessage(err))
			}
			out <- res{n.NodeID, err}
		}(n)
	}
	var errs []string
	for range targets {
		if r := <-out; r.err != nil {
			errs = append(errs, fmt.Sprintf("node %d: %v", r.id, r.err))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.Mark(errors.WithHint(errors.Newf("cluster version %s could not be persisted on every node: %v", v, errs),
			"the finalization resumes from this step once every node is reachable"), errStepNotPersisted)
	}
	return nil
}

// clearPreserveIfPassed resets cluster.preserve_downgrade_option once the
// cluster version moves past the version it names.
func (s *Server) clearPreserveIfPassed(ctx context.Context, v clusterversion.Version) {
	p := s.lc().preserveDowngrade.Get()
	if p == "" {
		return
	}
	if pv, err := clusterversion.Parse(p); err == nil && pv.Less(v) {
		if err := s.Settings().Reset(ctx, "cluster.preserve_downgrade_option"); err != nil {
			s.log.Warn("could not clear cluster.preserve_downgrade_option", "err", err)
		} else {
			s.log.Info("cleared cluster.preserve_downgrade_option: the cluster version moved past it", "was", p, "now", v.String())
		}
	}
}

func (s *Server) migrationRunner() *migrations.Runner {
	lo, hi := rowenc.AllTablesSpan()
	var hook func(context.Context, migrations.Progress) error
	if k := s.cfg.Knobs.MigrationCheckpoint; k != nil {
		id := s.NodeID()
		hook = func(ctx context.Context, p migrations.Progress) error { return k(ctx, id, p.Done) }
	}
	return &migrations.Runner{
		DB: s.Replica(), NodeID: s.NodeID(), Log: s.log, Lease: s.cfg.Knobs.MigrationLease, CheckpointHook: hook,
		Deps: migrations.Deps{
			DB: s.Replica(), TableSpan: [2][]byte{lo, hi}, UpgradeRow: rowenc.UpgradeValue,
			BatchSize:     s.cfg.Knobs.MigrationBatchSize,
			Group0Upgrade: s.runGroup0Upgrade,
		},
	}
}

// autoUpgradeLoop runs on every node, and acts only on the node that leads
// the data Raft group, so one node at a time finalizes (leadership is the
// election; a leader change hands the job over, and every step is
// idempotent). It logs its decision once per change, and backs off while
// blocked.
func (s *Server) autoUpgradeLoop() {
	base := s.cfg.AutoUpgradeInterval
	if base == 0 {
		base = 10 * time.Second
	}
	wait := base
	for {
		select {
		case <-s.stopC:
			return
		case <-time.After(wait):
		}
		rep := s.Replica()
		if rep == nil || !rep.Status().IsLeader || s.draining.Load() {
			wait = base
			continue
		}
		// Tied to the node's life: Stop waits for this loop, and a finalization
		// waiting on a dead node must not hold SIGTERM up. Tied to its
		// leadership too: the new leader's loop takes over, and two
		// coordinators must not keep going side by side (issue 16, D8).
		ctx, cancel := s.stopCtx(10 * time.Minute)
		ctx = whileLeader(ctx, rep)
		in, _, err := s.upgradeInput(ctx)
		if err != nil {
			cancel()
			wait = base
			continue
		}
		d := autoupgrade.Decide(in)
		if d.UpToDate() && len(d.Blockers) == 0 {
			// Up to date by this node's persisted version; if the
			// replicated version lags it, a step is in doubt (Finalize).
			if rv, err := s.replicatedVersion(ctx); err == nil && rv.Less(in.Active) {
				d.Target, d.Finalize = in.Active, true
			}
		}
		if sum := d.Summary(); sum != s.ver.lastSummary {
			s.ver.lastSummary = sum
			s.log.Info("auto-upgrade: "+sum, "active", in.Active.String())
		}
		switch {
		case d.Finalize:
			if err := s.Finalize(ctx, d.Target); err != nil {
				s.log.Warn("auto-upgrade: finalization stopped; will retry", "target", d.Target.String(), "err", err)
				wait = min(2*wait, 6*base)
			} else {
				wait = base
			}
		case len(d.Blockers) > 0:
			wait = min(2*wait, 6*base) // blocked: back off
		default:
			wait = base
		}
		cancel()
	}
}

// whileLeader returns a context that ends with ctx, or once rep no longer
// leads its group. The watch ends with ctx; callers cancel it.
func whileLeader(ctx context.Context, rep *kv.Replica) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !rep.Status().IsLeader {
				cancel(errors.New("this node no longer leads the data group; the new leader's auto-upgrade loop takes over"))
				return
			}
		}
	}()
	return ctx
}

// UpgradeStatus is the answer of SHOW UPGRADE STATUS and GET
// /_status/upgrade.
type UpgradeStatus struct {
	AnsweredBy         int32  `json:"answered_by"`
	ActiveVersion      string `json:"active_version"`
	ReplicatedVersion  string `json:"replicated_version"`
	Target             string `json:"target,omitempty"`
	InProgress         string `json:"in_progress,omitempty"`
	AutoUpgradeEnabled bool   `json:"auto_upgrade_enabled"`
	PreserveDowngrade  string `json:"preserve_downgrade_option,omitempty"`
	// PreserveSince is when the preserve option was set (zero if unset or
	// not recorded).
	PreserveSince time.Time             `json:"preserve_downgrade_option_since,omitzero"`
	Decision      string                `json:"decision"`
	Nodes         []UpgradeStatusNode   `json:"nodes"`
	Blockers      []autoupgrade.Blocker `json:"blockers"`
	Migrations    []MigrationStatus     `json:"migrations"`
	// Group0 is every non-decommissioned node's group 0 state.
	Group0 []Group0NodeStatus `json:"group0"`
}

// UpgradeStatusNode is one node in UpgradeStatus.
type UpgradeStatusNode struct {
	NodeID        int32  `json:"node_id"`
	Address       string `json:"address"`
	SQLAddress    string `json:"sql_address"`
	HTTPAddress   string `json:"http_address"`
	BinaryVersion string `json:"binary_version"`
	IsLive        bool   `json:"is_live"`
	Membership    string `json:"membership"`
	Draining      bool   `json:"draining"`
	// Status is liveness' one-word status (NodeStatus.Status).
	Status string `json:"status"`
	// Raft is the node's place in the data group; IsLeader marks its
	// leader.
	Raft      string `json:"raft"`
	IsLeader  bool   `json:"is_leader"`
	StartedAt string `json:"started_at,omitempty"`
	// PersistedVersion is the cluster version the node has persisted
	// (NodeStatus.PersistedVersion; "" if unknown).
	PersistedVersion string `json:"persisted_version"`
}

// MigrationStatus is one migration in UpgradeStatus.
type MigrationStatus struct {
	Version     string  `json:"version"`
	Description string  `json:"description"`
	Status      string  `json:"status"`
	JobID       int64   `json:"job_id,omitempty"`
	Fraction    float64 `json:"fraction_completed"`
	Done        int64   `json:"done"`
	Total       int64   `json:"total"`
	Coordinator int32   `json:"coordinator,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// UpgradeStatus reports the state of cluster version management as this
// node sees it.
func (s *Server) UpgradeStatus(ctx context.Context) (*UpgradeStatus, error) {
	in, statuses, err := s.upgradeInput(ctx)
	if err != nil {
		return nil, err
	}
	rv, err := s.replicatedVersion(ctx)
	if err != nil {
		return nil, err
	}
	d := autoupgrade.Decide(in)
	st := &UpgradeStatus{
		AnsweredBy: s.NodeID(), ActiveVersion: in.Active.String(), ReplicatedVersion: rv.String(),
		AutoUpgradeEnabled: in.AutoUpgradeEnabled, PreserveDowngrade: in.PreserveDowngrade,
		Decision: d.Summary(), Blockers: d.Blockers,
	}
	if !d.UpToDate() {
		st.Target = d.Target.String()
	}
	if in.PreserveDowngrade != "" {
		if c, ok, err := s.Settings().LastChange(ctx, "cluster.preserve_downgrade_option"); err == nil && ok {
			st.PreserveSince = c.At
		}
	}
	if p := s.ver.inProgress.Load(); p != nil {
		st.InProgress = *p
	}
	for _, n := range statuses {
		st.Nodes = append(st.Nodes, UpgradeStatusNode{NodeID: n.NodeID, Address: n.Address, SQLAddress: n.SQLAddress,
			HTTPAddress: n.HTTPAddress, BinaryVersion: n.Build, IsLive: n.IsLive, Membership: n.Membership,
			Draining: n.IsDraining, Status: n.Status, Raft: n.Raft, IsLeader: n.IsLeader, StartedAt: n.StartedAt,
			PersistedVersion: n.PersistedVersion})
	}
	if s.hasGroup0() {
		for _, n := range s.group0NodeStates(ctx, statuses) {
			st.Group0 = append(st.Group0, group0Status(n))
		}
	}
	jobs, err := migrations.List(ctx, s.Replica())
	if err != nil {
		return nil, err
	}
	byVersion := map[string]migrations.Job{}
	for _, j := range jobs {
		byVersion[j.Version] = j
	}
	for _, m := range migrations.All() {
		ms := MigrationStatus{Version: m.Version.String(), Description: m.Description, Status: "not started"}
		if !in.Active.Less(m.Version.Version()) {
			// The cluster is past the step without a job: it was created
			// at or after that version, so the migration had nothing to do.
			ms.Status, ms.Fraction = "not needed", 1
		}
		if j, ok := byVersion[m.Version.String()]; ok {
			ms.Status, ms.JobID, ms.Fraction = string(j.Status), j.ID, j.Fraction()
			ms.Done, ms.Total, ms.Coordinator, ms.Error = j.Progress.Done, j.Progress.Total, j.Coordinator, j.Error
		}
		st.Migrations = append(st.Migrations, ms)
	}
	return st, nil
}

func (u *UpgradeStatus) json() []byte {
	b, _ := json.MarshalIndent(u, "", "  ")
	return b
}
