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
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/upgradecluster"
	"github.com/kvnode/kvnode/util/stop"
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

// Finalize moves the cluster version to target (SET CLUSTER SETTING
// version, or the auto-upgrade loop) through the upgrade manager.
func (s *Server) Finalize(ctx context.Context, target clusterversion.Version) error {
	return s.upgrades.Migrate(ctx, target)
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
		case <-s.stopper.ShouldQuiesce():
			return
		case <-time.After(every):
		}
		s.catchUpVersion()
	}
}

// catchUpVersion is one round of followReplicatedVersion.
func (s *Server) catchUpVersion() {
	ctx, cancel := s.stopper.WithTimeout(5 * time.Second)
	defer cancel()
	rv, err := s.upgrades.ReplicatedVersion(ctx)
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
// everything linearizably (upgradecluster.Cluster.Input).
func (s *Server) autoUpgradeLoop() {
	base := s.cfg.AutoUpgradeInterval
	if base == 0 {
		base = 10 * time.Second
	}
	watch := min(base, time.Second)
	wait := base
	var gate upgradecluster.ResumeGate
	var lastShape string
	var lastDecided time.Time // zero: decide at the first look as leader
	for {
		select {
		case <-s.stopper.ShouldQuiesce():
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
		ctx, cancel := s.stopper.WithTimeout(10 * time.Minute)
		ctx = whileLeader(ctx, rep)
		in, err := s.uc.Input(ctx)
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
			if ok, why := gate.Interrupted(ctx, s.uc, in, s.resumeQuiet(base)); !ok {
				d.Finalize, held = false, why
			}
		}
		if d.UpToDate() && len(d.Blockers) == 0 {
			// Up to date by this node's persisted version; if the
			// replicated version lags it, a step is in doubt (Finalize).
			if rv, err := s.upgrades.ReplicatedVersion(ctx); err == nil && rv.Less(in.Active) {
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
	for _, n := range status.LocalNodes(nodeView{s}) {
		fmt.Fprintf(&b, "; n%d %s live=%t %s draining=%t persisted=%s", n.NodeID, n.Build, n.IsLive, n.Membership, n.IsDraining, n.PersistedVersion)
	}
	return b.String()
}

// whileLeader returns a context that ends with ctx, or once rep no longer
// leads its group. The watch ends with ctx; callers cancel it.
func whileLeader(ctx context.Context, rep *kv.Replica) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	go stop.Every(ctx, 100*time.Millisecond, func() bool {
		if !rep.Status().IsLeader {
			cancel(errors.New("this node no longer leads the data group; the new leader's auto-upgrade loop takes over"))
			return false
		}
		return true
	})
	return ctx
}

// UpgradeStatus reports the state of cluster version management as this
// node sees it (SHOW UPGRADE STATUS, GET /_status/upgrade).
func (s *Server) UpgradeStatus(ctx context.Context) (*status.UpgradeStatus, error) {
	return s.uc.Status(ctx)
}

// resumeQuiet is how long a finalization must stand still, with
// auto-upgrade off, before the leader resumes it: longer than a liveness
// record lasts, so that a coordinator that died is seen dead first, and
// than a few rounds of the loop.
func (s *Server) resumeQuiet(base time.Duration) time.Duration {
	return max(3*base, 2*s.cfg.LivenessDuration)
}
