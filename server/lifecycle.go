package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/settings"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/util/stop"
)

// lifecycle holds the node-lifecycle parts of a Server: liveness, cluster
// settings, decommissioning and draining. The settings are registered in
// New (newLifecycle); the replica and liveness are set once the node has an
// identity, and readers load the atomics and handle nil.
type lifecycle struct {
	settings           *settings.Registry
	timeUntilStoreDead *settings.DurationSetting
	autoUpgrade        *settings.BoolSetting
	preserveDowngrade  *settings.StringSetting

	rep atomic.Pointer[kv.Replica]
	nl  atomic.Pointer[liveness.NodeLiveness]

	leftCluster atomic.Bool
}

// initLifecycle registers the node's cluster settings; New calls it before
// anything can read them.
func initLifecycle(s *Server) {
	r := settings.NewRegistry(s.log)
	s.life.settings = r
	s.life.timeUntilStoreDead = r.RegisterDuration("server.time_until_store_dead",
		"the time after which a node that is not live is considered dead", 5*time.Minute,
		settings.MinDuration(time.Second))
	s.life.autoUpgrade = r.RegisterBool("cluster.auto_upgrade.enabled",
		"disable automatic cluster version upgrade until reset", true)
	s.life.preserveDowngrade = r.RegisterString("cluster.preserve_downgrade_option",
		"disable (automatic or manual) cluster version upgrade from the specified version until reset", "",
		func(v string) error {
			if v == "" {
				return nil
			}
			active := s.ActiveVersion()
			err := autoupgrade.ValidatePreserve(active, v)
			if err != nil && autoupgrade.MidFinalization(active) {
				err = pgerror.WithCode(err, pgerror.CodeObjectNotInPrerequisiteState)
			}
			return err
		})
}

// lc returns the node's lifecycle parts.
func (s *Server) lc() *lifecycle { return &s.life }

// Settings returns the node's cluster settings.
func (s *Server) Settings() *settings.Registry { return s.lc().settings }

// TimeUntilStoreDead returns the current value of
// server.time_until_store_dead.
func (s *Server) TimeUntilStoreDead() time.Duration { return s.lc().timeUntilStoreDead.Get() }

// Liveness returns the node's liveness (nil before the node has started).
func (s *Server) Liveness() *liveness.NodeLiveness { return s.lc().nl.Load() }

// startLiveness runs once the replica exists, before the node serves: it
// refuses to go on if this node was decommissioned, then starts a new
// liveness epoch (waiting for the data group to answer).
func (s *Server) startLiveness(ctx context.Context, rep *kv.Replica, id nodeid.ID) error {
	lc := s.lc()
	lc.rep.Store(rep)
	lc.settings.Bind(rep)
	if err := s.decom.CheckNotDecommissioned(ctx, rep, id); err != nil {
		return err
	}
	nl := liveness.New(liveness.Config{
		DB: rep, NodeID: id, HeartbeatInterval: s.cfg.LivenessHeartbeat, LivenessDuration: s.cfg.LivenessDuration,
		Logger: s.log.With("node", id),
	})
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rec, err := nl.Start(sctx)
		cancel()
		if err == nil {
			lc.nl.Store(nl)
			s.log.Info("node is live", "node", id, "epoch", rec.Epoch)
			return nil
		}
		if errors.Is(err, liveness.ErrDecommissioned) {
			return s.decom.DecommissionedError(id)
		}
		if attempt%10 == 9 {
			s.log.Warn("waiting to write this node's liveness record (is a majority of voters up?)", "err", err)
		}
		select {
		case <-ctx.Done():
			return errStopping
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startLifecycleLoops starts the heartbeat, the settings refresh, the
// decommission loop and the schema change loop as the stopper's tasks;
// they end with the node.
func (s *Server) startLifecycleLoops(rep *kv.Replica, id nodeid.ID) error {
	lc := s.lc()
	nl := lc.nl.Load()
	for _, t := range []struct {
		name string
		run  func(ctx context.Context)
	}{
		{"liveness heartbeat", func(ctx context.Context) {
			nl.Run(ctx, func(err error) { s.decom.HeartbeatFailed(ctx, nl, id, err) })
		}},
		{"settings refresh", func(ctx context.Context) { lc.settings.Run(ctx) }},
		{"decommission", func(ctx context.Context) { s.decom.Run(ctx, rep, id) }},
		{"schema changes", func(ctx context.Context) { s.schemaChangeLoop(ctx, rep) }},
	} {
		if err := s.stopper.RunAsyncTask(t.name, t.run); err != nil {
			return errStopping
		}
	}
	return nil
}

// schemaChangeEvery is how often the data group's leader looks for index
// builds whose coordinator is gone.
const schemaChangeEvery = 2 * time.Second

// schemaChangeLoop has the data group's leader take over the index builds
// whose coordinator stopped (sql.Executor.ResumeSchemaChanges).
func (s *Server) schemaChangeLoop(ctx context.Context, rep *kv.Replica) {
	stop.Every(ctx, schemaChangeEvery, func() bool {
		if !rep.Status().IsLeader || s.draining.Load() {
			return true
		}
		// Bounded: a build is renewed and resumable, so stopping it at
		// the bound loses nothing; the next round goes on.
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := s.exec.ResumeSchemaChanges(rctx); err != nil {
			s.log.Warn("resuming a schema change failed; the next round tries again", "err", err)
		}
		return true
	})
}

// admitPeer is the gossip admission hook: a decommissioned node is kept out
// of gossip (it is also refused at start and ignored by Raft). It reads the
// local applied state only: it runs under memberlist's lock.
func (s *Server) admitPeer(m gossip.NodeMeta) error {
	if bv, err := clusterversion.Parse(m.BinaryVersion); err == nil && !clusterversion.Supports(bv, s.ActiveVersion()) {
		return errors.Newf("node %d runs release %s, which cannot run cluster version %s", m.NodeID, bv, s.ActiveVersion())
	}
	rep := s.lc().rep.Load()
	if rep == nil {
		return nil
	}
	s.engMu.RLock()
	if s.engClosed {
		s.engMu.RUnlock()
		return nil
	}
	v, found, err := rep.GetLocal(liveness.Key(m.NodeID))
	s.engMu.RUnlock()
	if err != nil || !found {
		return nil
	}
	if rec, err := liveness.Decode(v); err == nil && rec.Membership == liveness.Decommissioned {
		return errors.Newf("node %d is decommissioned", m.NodeID)
	}
	return nil
}

// markLivenessDraining records in this node's liveness record that it
// drains, best effort, bounded by ctx and limit (a node that stops when
// the cluster has lost its majority must not wait long for it).
func (s *Server) markLivenessDraining(ctx context.Context, limit time.Duration) {
	nl := s.lc().nl.Load()
	rep := s.lc().rep.Load()
	if nl == nil || rep == nil || s.lc().leftCluster.Load() || rep.Status().Leader == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := nl.SetDraining(cctx, true); err != nil {
		s.log.Warn("could not record draining in this node's liveness record", "err", err)
	}
}

// drainNode is `kvnode node drain`: stop accepting SQL connections, let
// open ones finish (closing them at their next idle point), move Raft
// leadership away, report not ready, and stay up. It returns how many SQL
// connections were open when it began.
func (s *Server) drainNode(ctx context.Context) (int, error) {
	s.draining.Store(true)
	s.mu.Lock()
	g, rep, pg := s.gossip, s.replica, s.pg
	s.mu.Unlock()
	s.gossipDraining(g)
	s.markLivenessDraining(ctx, 3*time.Second)
	open := 0
	if pg != nil {
		open = pg.NumConns()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := pg.Drain(dctx)
		cancel()
		if err != nil {
			s.log.Warn("drain: closed SQL connections that did not finish in time", "err", err)
		}
	}
	if rep != nil {
		s.decom.TransferLeadershipAway(ctx, rep)
	}
	s.log.Info("node drained: it accepts no SQL connections and leads no Raft group; it stays up until stopped",
		"closed_connections", open)
	return open, nil
}
