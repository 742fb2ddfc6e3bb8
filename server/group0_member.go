package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// A node's own side of "group 0 membership follows the node lifecycle"
// (issue 16, D3; the decisions are group0.DecideMember). At start (before
// SQL is served) and every second after, a node of an upgraded cluster asks
// group 0's leader whether its configuration has it. One that is not a
// member rejoins (if its record is active), and until it is a caught-up
// member again it refuses writes through its catalog (group0SchemaLog's
// CheckWrite): a table dropped while it was outside would otherwise stay
// writable on it, and those writes would be acknowledged and lost. DDL
// needs no such mark: it reads group 0 through a barrier first.

const group0MemberCheckEvery = time.Second

// group0LeaderView is group 0's leader's answer about its configuration.
type group0LeaderView struct {
	leader  int32
	member  bool
	applied uint64
}

// askGroup0Leader finds the leader of generation gen (this node, the
// leader its replica knows, else whoever says it leads) and reads its
// configuration. ok is false if no leader answered, or if the one that
// claims to lead cannot serve a linearizable read (group 0 has no
// majority: a leader about to step down must not decide anything).
func (s *Server) askGroup0Leader(ctx context.Context, gen uint64) (group0LeaderView, bool) {
	self := s.NodeID()
	has := func(r *nodeapi.Group0StateResponse) bool {
		return slices.Contains(r.Voters, self) || slices.Contains(r.Learners, self)
	}
	leads := func(r *nodeapi.Group0StateResponse) bool {
		return r != nil && r.Leader == r.NodeID && r.Generation == gen && !r.Isolated
	}
	var hint int32
	if rep := s.g0.rep.Load(); rep != nil && !s.g0.isolated.Load() && s.g0.gen.Load() == gen {
		st := rep.Status()
		if st.IsLeader {
			r := s.group0Info(ctx, true)
			return group0LeaderView{leader: self, member: true, applied: st.Applied}, r.ProbeOK
		}
		hint = int32(st.Leader)
	}
	if hint != 0 && hint != self {
		if r, err := s.askGroup0State(ctx, hint, true); err == nil && leads(r) && r.ProbeOK {
			return group0LeaderView{leader: r.NodeID, member: has(r), applied: r.Applied}, true
		}
	}
	var (
		mu   sync.Mutex
		best *nodeapi.Group0StateResponse
		wg   sync.WaitGroup
	)
	for id := range s.nodeRecords() {
		if id == self || id == hint {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.askGroup0State(ctx, id, true)
			if err != nil || !leads(r) || !r.ProbeOK {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if best == nil || r.Applied > best.Applied {
				best = r
			}
		}()
	}
	wg.Wait()
	if best == nil {
		return group0LeaderView{}, false
	}
	return group0LeaderView{leader: best.NodeID, member: has(best), applied: best.Applied}, true
}

// observeGroup0Membership gathers group0.DecideMember's input.
func (s *Server) observeGroup0Membership(ctx context.Context) (group0.MemberObservation, bool) {
	g := &s.g0
	data := s.lc().rep.Load()
	if data == nil {
		return group0.MemberObservation{}, false
	}
	o := group0.MemberObservation{State: g.State(), Upgraded: clusterversion.IsActive(s, clusterversion.V2_0),
		LocalGen: g.gen.Load(), Isolated: g.isolated.Load(), Active: true}
	if o.State == group0.Recovery || o.Isolated || (o.State != group0.UsePostRaft && !o.Upgraded) {
		return o, true // nothing to decide: spare the reads
	}
	if b, found, err := data.GetLocal(keys.Group0FormationKey()); err != nil {
		return o, false
	} else if found {
		f, err := group0.DecodeFormation(b)
		if err != nil {
			return o, false
		}
		o.Formation = &f
	}
	if v, found, err := data.GetLocal(liveness.Key(s.NodeID())); err == nil && found {
		if r, err := liveness.Decode(v); err == nil {
			o.Active = r.Membership == liveness.Active
		}
	}
	if o.Formation == nil {
		return o, true
	}
	view, ok := s.askGroup0Leader(ctx, o.Formation.Generation)
	o.LeaderFound, o.InLeaderConfig, o.LeaderApplied = ok, view.member, view.applied
	if rep := g.rep.Load(); rep != nil {
		o.Applied = rep.Status().Applied
	}
	return o, true
}

// checkGroup0Membership observes, decides and acts once. With !join it only
// marks the node (the check at start: joining is the loop's, and
// maybeJoinGroup0AtStart's, so that a start is not held up by it).
func (s *Server) checkGroup0Membership(ctx context.Context, join bool) {
	g := &s.g0
	o, ok := s.observeGroup0Membership(ctx)
	if !ok {
		return
	}
	d := group0.DecideMember(o)
	switch d.Outside {
	case group0.OutsideSet:
		if !g.outside.Swap(true) {
			s.log.Warn("this node is not a member of group 0: it refuses writes until it has rejoined and caught up its schema",
				"state", string(o.State), "generation", o.LocalGen, "active", o.Active)
		}
	case group0.OutsideClear:
		if g.outside.Load() {
			if err := s.catchUpCatalog(); err != nil {
				s.log.Warn("applying group 0's schema to the catalog after rejoining", "err", err)
				return
			}
			g.outside.Store(false)
			s.log.Info("this node is a member of group 0 again, with its schema caught up")
		}
	}
	if !join {
		return
	}
	if d.EnterPostRaft {
		if err := s.enterPostRaft(); err != nil {
			s.log.Warn("entering use_post_raft_procedures after joining group 0", "err", err)
			return
		}
	}
	var err error
	switch d.Join {
	case group0.JoinRejoin:
		err = s.rejoinGroup0(ctx, *o.Formation)
	case group0.JoinPrepare:
		if d.RemoveFirst {
			// Group 0 counts on a replica this node lost: it removes us
			// first (see nodeapi.Group0JoinRequest.LostReplica).
			err = s.sendGroup0Join(ctx, *o.Formation, true)
		}
		if err == nil {
			_, err = s.group0PrepareLocal(ctx, *o.Formation)
		}
	}
	if err != nil {
		if time.Since(g.lastRejoinWarn) > 10*time.Second {
			g.lastRejoinWarn = time.Now()
			s.log.Warn("rejoining group 0; will retry", "generation", o.Formation.Generation, "err", err)
		}
	} else if d.Join != group0.JoinNone {
		s.log.Info("asked group 0 to add this node back", "generation", o.Formation.Generation)
	}
}

// rejoinGroup0 asks group 0's leader to add this node back as a learner,
// keeping the replica's log (it is a prefix of the group's: the leader
// sends what follows, or a snapshot).
func (s *Server) rejoinGroup0(ctx context.Context, f group0.Formation) error {
	g := &s.g0
	g.mu.Lock()
	if g.gen.Load() != f.Generation || g.rep.Load() == nil || g.isolated.Load() {
		g.mu.Unlock()
		_, err := s.group0PrepareLocal(ctx, f)
		return err
	}
	defer g.mu.Unlock()
	return s.joinGroup0Locked(ctx, f)
}

// group0MemberLoop runs the membership check of this node every second.
func (s *Server) group0MemberLoop() {
	t := time.NewTicker(group0MemberCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopC:
			return
		case <-t.C:
		}
		ctx, cancel := s.stopCtx(10 * time.Second)
		s.checkGroup0Membership(ctx, true)
		cancel()
	}
}

// startGroup0MemberCheck runs the first check before SQL is served
// (bounded: a group 0 without a leader must not hold up the start), then
// the loop.
func (s *Server) startGroup0MemberCheck() {
	ctx, cancel := s.stopCtx(2 * time.Second)
	s.checkGroup0Membership(ctx, false)
	cancel()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.group0MemberLoop() }()
}

// CheckWrite implements sql.SchemaGuard: a node outside group 0 refuses
// writes through its catalog until it has rejoined and caught up.
func (l group0SchemaLog) CheckWrite() error {
	s := l.s
	if !s.g0.outside.Load() {
		return nil
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
		"restart transaction: node %d is not a member of group 0 and cannot vouch that its schema is current; it is rejoining",
		s.NodeID()),
		"retry in a moment, or through another node; `kvnode node status` and SHOW UPGRADE STATUS show the node's group 0 state")
}
