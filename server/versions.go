package server

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/users"
	"github.com/kvnode/kvnode/upgrademanager"
)

// versionState is the node's part of cluster version management.
//
// The active version is persisted in this node's store (the identity
// record) before the node acts on it, and in the replicated key
// keys.ClusterVersion (by upgrademanager) once every non-decommissioned node has persisted it, so
// SHOW CLUSTER SETTING version (which reads the replicated key) never shows
// a version that a live node has not persisted.
type versionState struct {
	active atomic.Pointer[clusterversion.Version]
	// lastSummary is the auto-upgrade loop's last logged decision.
	lastSummary string
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

func (n nodeService) SetClusterVersion(_ context.Context, req *nodeapi.SetClusterVersionRequest) (*nodeapi.SetClusterVersionResponse, error) {
	s := n.s
	v, err := clusterversion.Parse(req.Version)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.InvalidArgument)
	}
	if _, ok := clusterversion.Lookup(v); !ok {
		// Only the ladder's versions exist: a node that persisted another
		// one would gate features on a version no migration went through.
		return nil, nodeapi.WithCode(errors.WithHintf(
			errors.Wrapf(clusterversion.ErrUnknownVersion, "cluster version %q is not on the version ladder; nothing was persisted", req.Version),
			"the cluster versions are %s", clusterversion.LadderList()), codes.InvalidArgument)
	}
	persist := s.persistActiveVersion
	if req.Lower {
		persist = s.lowerActiveVersion
	}
	if err := persist(v); err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	return &nodeapi.SetClusterVersionResponse{NodeID: s.NodeID(), Version: s.ActiveVersion().String()}, nil
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
			s.NodeID(), s.binVersion, v), "restart node %d on a binary of release %s or newer", s.NodeID(), v.Release())
	}
	s.mu.Lock()
	exec := s.exec
	cur := s.ActiveVersion()
	var err error
	if cur.Less(v) {
		err = s.writeActiveVersionLocked(v)
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

// writeActiveVersionLocked persists v in the store's identity record, then
// makes it the version this node acts on. s.mu is held.
func (s *Server) writeActiveVersionLocked(v clusterversion.Version) error {
	id := s.ident
	id.ClusterVersion = v.String()
	if err := s.eng.WriteIdent(id); err != nil {
		return err
	}
	s.ident = id
	s.ver.active.Store(&v)
	return nil
}

// replicatedVersion reads the replicated `version` (linearizable).
func (s *Server) replicatedVersion(ctx context.Context) (clusterversion.Version, error) {
	return s.upgrades.ReplicatedVersion(ctx)
}

// Finalize moves the cluster version to target (SET CLUSTER SETTING
// version, or the auto-upgrade loop) through the upgrade manager.
func (s *Server) Finalize(ctx context.Context, target clusterversion.Version) error {
	return s.upgrades.Migrate(ctx, target)
}

// newUpgradeManager wires the upgrade manager to this node.
func (s *Server) newUpgradeManager() *upgrademanager.Manager {
	return upgrademanager.New(upgrademanager.Config{
		Cluster: upgradeCluster{s},
		DB: func() kvpb.DB {
			if rep := s.Replica(); rep != nil {
				return rep
			}
			return nil
		},
		Local:      s.ActiveVersion,
		Migrations: migrationsOf{s},
		Log:        s.log,
		BeforeStep: s.cfg.Knobs.BeforeVersionStep,
		StepPause:  s.cfg.Knobs.VersionStepPause,
	})
}

// upgradeCluster is the cluster as the upgrade manager sees it.
type upgradeCluster struct{ s *Server }

var _ upgrademanager.Cluster = upgradeCluster{}

func (c upgradeCluster) Input(ctx context.Context) (autoupgrade.Input, error) {
	in, _, err := c.s.upgradeInput(ctx)
	return in, err
}

func (c upgradeCluster) Nodes(ctx context.Context) ([]autoupgrade.Node, error) {
	statuses, err := c.s.NodeStatuses(ctx)
	if err != nil {
		return nil, err
	}
	return autoupgradeNodes(statuses), nil
}

// PersistVersion persists v on node n: this node's own store directly,
// another node's through the SetClusterVersion RPC.
func (c upgradeCluster) PersistVersion(ctx context.Context, n autoupgrade.Node, v clusterversion.Version, lower bool) error {
	s := c.s
	if n.ID == s.NodeID() {
		if lower {
			return s.lowerActiveVersion(v)
		}
		return s.persistActiveVersion(v)
	}
	resp, err := s.node.SetClusterVersion(ctx, n.Address, &nodeapi.SetClusterVersionRequest{Version: v.String(), Lower: lower})
	if err == nil && lower && resp.Version != v.String() {
		// A binary that predates downgrades ignores Lower and keeps its
		// version.
		return errors.WithHintf(errors.Newf("node %d kept cluster version %s instead of moving down to %s", n.ID, resp.Version, v),
			"node %d's binary does not know downgrades; restart it on a binary of %s", n.ID, clusterversion.MustBinaryVersion())
	}
	return err
}

func (c upgradeCluster) PreserveOps(v clusterversion.Version) ([]kvpb.Op, error) {
	return c.s.Settings().Ops("cluster.preserve_downgrade_option", v.String())
}

func (c upgradeCluster) ResetPreserveDowngrade(ctx context.Context) error {
	return c.s.Settings().Reset(ctx, "cluster.preserve_downgrade_option")
}

// migrationsOf runs migrations as jobs on this node's behalf.
type migrationsOf struct{ s *Server }

var _ upgrademanager.Migrations = migrationsOf{}

func (m migrationsOf) Has(v clusterversion.Version) bool {
	_, ok := migrations.For(v)
	return ok
}

func (m migrationsOf) Run(ctx context.Context, v clusterversion.Version) error {
	return m.s.migrationRunner().Run(ctx, v)
}

func (m migrationsOf) DownWhen(v clusterversion.Version) (after, ok bool) {
	d, ok := migrations.DownFor(v)
	return ok && d.When == migrations.AfterLowering, ok
}

func (m migrationsOf) RunDown(ctx context.Context, v clusterversion.Version) error {
	return m.s.migrationRunner().RunDown(ctx, v)
}

func (m migrationsOf) Check(ctx context.Context, v clusterversion.Version, down bool) (upgrademanager.StepCheck, bool, error) {
	c, ok, err := m.s.migrationRunner().Check(ctx, v, down)
	return upgrademanager.StepCheck{Detail: c.Detail, Blockers: planBlockers(c.Blockers)}, ok, err
}

func (m migrationsOf) Refusals(ctx context.Context, v clusterversion.Version) ([]upgrademanager.PlanBlocker, error) {
	bs, err := m.s.migrationRunner().Refusals(ctx, v)
	return planBlockers(bs), err
}

// planBlockers is the plan's view of migrations' blockers.
func planBlockers(bs []migrations.Blocker) []upgrademanager.PlanBlocker {
	var out []upgrademanager.PlanBlocker
	for _, b := range bs {
		out = append(out, upgrademanager.PlanBlocker{Reason: b.Reason, Fix: b.Fix})
	}
	return out
}

func (m migrationsOf) Forget(ctx context.Context, v clusterversion.Version, down bool) error {
	return m.s.migrationRunner().Forget(ctx, v, down)
}

// upgradeInput gathers what a finalization decision depends on.
func (s *Server) upgradeInput(ctx context.Context) (autoupgrade.Input, []nodeapi.NodeStatus, error) {
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
		Nodes:              autoupgradeNodes(statuses),
	}
	if d, ok, err := s.upgrades.Downgrading(ctx); err != nil {
		return autoupgrade.Input{}, nil, err
	} else if ok {
		in.Downgrading = d
	}
	return in, statuses, nil
}

// autoupgradeNodes is the decision's view of the nodes.
func autoupgradeNodes(statuses []nodeapi.NodeStatus) []autoupgrade.Node {
	out := make([]autoupgrade.Node, 0, len(statuses))
	for _, n := range statuses {
		bv, err := clusterversion.Parse(n.Build)
		if err != nil {
			bv = clusterversion.Version{} // unknown build: treated as oldest
		}
		pv, _ := clusterversion.Parse(n.PersistedVersion) // unknown: zero
		out = append(out, autoupgrade.Node{
			ID: n.NodeID, Address: n.Address, BinaryVersion: bv, Live: n.IsLive,
			Membership: n.Membership, Draining: n.IsDraining, Persisted: pv,
		})
	}
	return out
}

// followReplicatedVersion runs on every node, after Start's own
// catchUpVersion: periodically, it persists the replicated cluster version
// when this node's persisted version is behind it. The replicated version
// is written only once every node of the finalization's lists has
// persisted it, so adopting it changes nothing the cluster has not agreed
// to; it catches up a node that joined while the last step was being
// persisted (issue 16, D1), which would otherwise run an in-between version
// for good, and at 1.1 refuse the next release's binary. (A node of an
// upgraded cluster still in synchronize then enters
// use_post_raft_procedures through its group 0 membership check.)
func (s *Server) followReplicatedVersion() {
	every := s.cfg.AutoUpgradeInterval
	if every == 0 {
		every = 10 * time.Second
	}
	for {
		select {
		case <-s.stopC:
			return
		case <-time.After(every):
		}
		s.catchUpVersion()
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
	if _, downgrading, err := s.upgrades.Downgrading(ctx); err != nil || downgrading {
		// The downgrade persists every step on every node itself; a node
		// that has lowered a step while the replicated version still
		// names it must not raise it back.
		return
	}
	if s.ActiveVersion().Less(rv) {
		if err := s.persistActiveVersion(rv); err != nil {
			s.log.Warn("this node's cluster version lags the cluster's and cannot catch up",
				"active", s.ActiveVersion().String(), "cluster", rv.String(), "err", err)
			return
		}
		s.log.Info("caught up with the replicated cluster version", "version", rv.String())
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
			Group0Upgrade: s.g0.RunUpgrade,
			Group0Leave:   s.leaveGroup0,
			EnableTxns:    s.Replica().EnableTxns,
			CreateUsers:   func(ctx context.Context) error { return users.EnsureStore(ctx, s.Replica()) },
			DowngradeRow:  rowenc.DowngradeValue,
			RowEncoding:   rowenc.ValueEncoding,
			NonRootUsers: func(ctx context.Context) ([]string, error) {
				return users.NonRootUsers(ctx, s.Replica())
			},
			Release21Blockers: s.release21Blockers,
			TxnRecordSpan:     [2][]byte{[]byte(keys.TxnMetaPrefix), keys.PrefixEnd([]byte(keys.TxnMetaPrefix))},
			DisableTxns:       s.Replica().DisableTxns,
			PurgeRaftLogs:     s.purgeRaftLogs,
		},
	}
}

// autoUpgradeLoop runs on every node, and acts only on the node that leads
// the data Raft group, so one node at a time finalizes (leadership is the
// election; a leader change hands the job over, and every step is
// idempotent). It logs its decision once per change, and backs off while
// blocked.
//
// Backing off must not delay the finalization a rolling upgrade is waiting
// for (issue 22: within 10s of the last node becoming ready): every second
// (or every interval, if shorter) the leader compares the cluster's shape
// as its own applied state and gossip show it (upgradeShape: each node's
// binary, liveness, membership, drain and persisted version, and the
// settings the decision reads) with the shape of its last decision, and
// decides again at once, with the backoff reset, when it changed. The
// comparison reads nothing through Raft; the decision itself still reads
// everything linearizably (upgradeInput).
func (s *Server) autoUpgradeLoop() {
	base := s.cfg.AutoUpgradeInterval
	if base == 0 {
		base = 10 * time.Second
	}
	watch := min(base, time.Second)
	wait := base
	var gate resumeGate
	var lastShape string
	var lastDecided time.Time // zero: decide at the first look as leader
	for {
		select {
		case <-s.stopC:
			return
		case <-time.After(watch):
		}
		rep := s.Replica()
		if rep == nil || !rep.Status().IsLeader || s.draining.Load() {
			wait, lastShape, lastDecided = base, "", time.Time{}
			continue
		}
		shape := s.upgradeShape()
		if shape == lastShape && time.Since(lastDecided) < wait {
			continue
		}
		if shape != lastShape {
			wait = base
		}
		lastShape, lastDecided = shape, time.Now()
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
		held := ""
		if d.Finalize && !in.AutoUpgradeEnabled {
			// Only an interrupted finalization is decided with auto-upgrade
			// off: resume it once no coordinator is at work.
			if ok, why := gate.interrupted(ctx, s, in, s.resumeQuiet(base)); !ok {
				d.Finalize, held = false, why
			}
		}
		if d.UpToDate() && len(d.Blockers) == 0 {
			// Up to date by this node's persisted version; if the
			// replicated version lags it, a step is in doubt (Finalize).
			if rv, err := s.replicatedVersion(ctx); err == nil && rv.Less(in.Active) {
				d.Target, d.Finalize = in.Active, true
			}
		}
		sum := d.Summary()
		if held != "" {
			sum = fmt.Sprintf("a finalization to %s is under way or interrupted, and auto-upgrade is off: "+
				"the leader resumes it once no coordinator is at work; now %s", d.Target, held)
		}
		if sum != s.ver.lastSummary {
			s.ver.lastSummary = sum
			s.log.Info("auto-upgrade: "+sum, "active", in.Active.String())
		}
		switch {
		case d.Downgrade:
			if err := s.upgrades.Downgrade(ctx, d.Target); err != nil {
				s.log.Warn("auto-upgrade: the downgrade stopped; will retry", "target", d.Target.String(), "err", err)
				wait = min(2*wait, 6*base)
			} else {
				wait = base
			}
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

// upgradeShape summarizes, from this node's applied state and gossip
// without any read through Raft, what the auto-upgrade decision depends on:
// a change means the decision may have changed too.
func (s *Server) upgradeShape() string {
	var b strings.Builder
	fmt.Fprintf(&b, "active=%s auto=%t preserve=%q", s.ActiveVersion(), s.lc().autoUpgrade.Get(), s.lc().preserveDowngrade.Get())
	for _, n := range s.localClusterStatus() {
		fmt.Fprintf(&b, "; n%d %s live=%t %s draining=%t persisted=%s", n.NodeID, n.Build, n.IsLive, n.Membership, n.IsDraining, n.PersistedVersion)
	}
	return b.String()
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

// The shapes SHOW UPGRADE STATUS and the HTTP endpoints share, defined
// with the endpoints in package server/status.
type (
	UpgradeStatus     = status.UpgradeStatus
	UpgradeStatusNode = status.UpgradeStatusNode
	MigrationStatus   = status.MigrationStatus
	Group0NodeStatus  = status.Group0NodeStatus
	NodeStatusPage    = status.NodeStatusPage
	NodeRaftStatus    = status.NodeRaftStatus
)

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
	if in.Downgrading != (clusterversion.Version{}) {
		st.DowngradingTo = in.Downgrading.String()
		st.Blockers = autoupgrade.DowngradeBlockers(in, in.Downgrading)
	}
	if in.PreserveDowngrade != "" {
		if c, ok, err := s.Settings().LastChange(ctx, "cluster.preserve_downgrade_option"); err == nil && ok {
			st.PreserveSince = c.At
		}
	}
	st.InProgress = s.upgrades.InProgress()
	for _, n := range statuses {
		st.Nodes = append(st.Nodes, UpgradeStatusNode{NodeID: n.NodeID, Address: n.Address, SQLAddress: n.SQLAddress,
			HTTPAddress: n.HTTPAddress, BinaryVersion: n.Build, IsLive: n.IsLive, Membership: n.Membership,
			Draining: n.IsDraining, Status: n.Status, Raft: n.Raft, IsLeader: n.IsLeader, StartedAt: n.StartedAt,
			PersistedVersion: n.PersistedVersion})
	}
	if s.g0.Enabled() {
		for _, n := range s.g0.NodeStates(ctx, statuses) {
			st.Group0 = append(st.Group0, status.Group0Status(n))
		}
	}
	jobs, err := migrations.List(ctx, s.Replica())
	if err != nil {
		return nil, err
	}
	byVersion := map[string]migrations.Job{}
	for _, j := range jobs {
		if j.Direction == "" {
			byVersion[j.Version] = j // the newest job of the version wins
		}
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
	// Down-migrations appear once they have a job: a downgrade ran them.
	for _, m := range migrations.AllDown() {
		for _, j := range jobs {
			if j.Direction == "down" && j.Version == m.Version.String() {
				ms := MigrationStatus{Version: m.Version.String() + " (down)", Description: j.Description,
					Status: string(j.Status), JobID: j.ID, Fraction: j.Fraction(), Done: j.Progress.Done, Total: j.Progress.Total,
					Coordinator: j.Coordinator, Error: j.Error}
				st.Migrations = append(st.Migrations, ms)
			}
		}
	}
	return st, nil
}
