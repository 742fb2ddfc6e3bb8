package member

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// A node's own side of "group 0 membership follows the node lifecycle"
// (issue 16, D3; the decisions are group0.DecideMember). At start (before
// SQL is served) and every second after, a node of an upgraded cluster asks
// group 0's leader whether its configuration has it. One that is not a
// member rejoins (if its record is active), and until it is a caught-up
// member again it refuses writes through its catalog (CheckWrite): a table
// dropped while it was outside would otherwise stay writable on it, and
// those writes would be acknowledged and lost. DDL needs no such mark: it
// reads group 0 through a barrier first.

const selfCheckEvery = time.Second

// leaderView is group 0's leader's answer about its configuration.
type leaderView struct {
	leader  nodeid.ID
	member  bool
	applied uint64
}

// askLeader finds the leader of generation gen (this node, the leader its
// replica knows, else whoever says it leads) and reads its configuration.
// ok is false if no leader answered, or if the one that claims to lead
// cannot serve a linearizable read (group 0 has no majority: a leader about
// to step down must not decide anything).
func (m *Member) askLeader(ctx context.Context, gen uint64) (leaderView, bool) {
	self := m.node.NodeID()
	has := func(r *nodeapi.Group0StateResponse) bool {
		return slices.Contains(r.Voters, self) || slices.Contains(r.Learners, self)
	}
	leads := func(r *nodeapi.Group0StateResponse) bool {
		return r != nil && r.Leader == r.NodeID && r.Generation == gen && !r.Isolated
	}
	var hint nodeid.ID
	if rep := m.rep.Load(); rep != nil && !m.isolated.Load() && m.gen.Load() == gen {
		st := rep.Status()
		if st.IsLeader {
			r := m.info(ctx, true)
			return leaderView{leader: self, member: true, applied: st.Applied}, r.ProbeOK
		}
		hint = st.Leader
	}
	if hint != 0 && hint != self {
		if r, err := m.askState(ctx, hint, true); err == nil && leads(r) && r.ProbeOK {
			return leaderView{leader: r.NodeID, member: has(r), applied: r.Applied}, true
		}
	}
	var (
		mu   sync.Mutex
		best *nodeapi.Group0StateResponse
		wg   sync.WaitGroup
	)
	for id := range m.node.NodeRecords() {
		if id == self || id == hint {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := m.askState(ctx, id, true)
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
		return leaderView{}, false
	}
	return leaderView{leader: best.NodeID, member: has(best), applied: best.Applied}, true
}

// observeSelf gathers group0.DecideMember's input.
func (m *Member) observeSelf(ctx context.Context) (group0.MemberObservation, bool) {
	data := m.node.LiveReplica()
	if data == nil {
		return group0.MemberObservation{}, false
	}
	o := group0.MemberObservation{State: m.State(), Upgraded: m.upgraded(),
		LocalGen: m.gen.Load(), Isolated: m.isolated.Load(), Active: true}
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
	if v, found, err := data.GetLocal(liveness.Key(m.node.NodeID())); err == nil && found {
		if r, err := liveness.Decode(v); err == nil {
			o.Active = r.Membership == liveness.Active
		}
	}
	if o.Formation == nil {
		return o, true
	}
	view, ok := m.askLeader(ctx, o.Formation.Generation)
	o.LeaderFound, o.InLeaderConfig, o.LeaderApplied = ok, view.member, view.applied
	if rep := m.rep.Load(); rep != nil {
		o.Applied = rep.Status().Applied
	}
	return o, true
}

// checkSelf observes, decides and acts once. With !join it only marks the
// node (the check at start: joining is the loop's, and maybeJoinAtStart's,
// so that a start is not held up by it).
func (m *Member) checkSelf(ctx context.Context, join bool) {
	o, ok := m.observeSelf(ctx)
	if !ok {
		return
	}
	d := group0.DecideMember(o)
	switch d.Outside {
	case group0.OutsideSet:
		if !m.outside.Swap(true) {
			m.log.Warn("this node is not a member of group 0: it refuses writes until it has rejoined and caught up its schema",
				"state", string(o.State), "generation", o.LocalGen, "active", o.Active)
		}
	case group0.OutsideClear:
		if m.outside.Load() {
			if err := m.CatchUpCatalog(); err != nil {
				m.log.Warn("applying group 0's schema to the catalog after rejoining", "err", err)
				return
			}
			m.outside.Store(false)
			m.log.Info("this node is a member of group 0 again, with its schema caught up")
		}
	}
	if !join {
		return
	}
	if d.EnterPostRaft {
		if err := m.enterPostRaft(); err != nil {
			m.log.Warn("entering use_post_raft_procedures after joining group 0", "err", err)
			return
		}
	}
	var err error
	switch d.Join {
	case group0.JoinRejoin:
		err = m.rejoin(ctx, *o.Formation)
	case group0.JoinPrepare:
		if d.RemoveFirst {
			// Group 0 counts on a replica this node lost: it removes us
			// first (see nodeapi.Group0JoinRequest.LostReplica).
			err = m.sendJoin(ctx, *o.Formation, true)
		}
		if err == nil {
			_, err = m.prepareLocal(ctx, *o.Formation)
		}
	}
	if err != nil {
		if time.Since(m.lastRejoinWarn) > 10*time.Second {
			m.lastRejoinWarn = time.Now()
			m.log.Warn("rejoining group 0; will retry", "generation", o.Formation.Generation, "err", err)
		}
	} else if d.Join != group0.JoinNone {
		m.log.Info("asked group 0 to add this node back", "generation", o.Formation.Generation)
	}
}

// rejoin asks group 0's leader to add this node back as a learner, keeping
// the replica's log (it is a prefix of the group's: the leader sends what
// follows, or a snapshot).
func (m *Member) rejoin(ctx context.Context, f group0.Formation) error {
	m.mu.Lock()
	if m.gen.Load() != f.Generation || m.rep.Load() == nil || m.isolated.Load() {
		m.mu.Unlock()
		_, err := m.prepareLocal(ctx, f)
		return err
	}
	defer m.mu.Unlock()
	return m.sendJoin(ctx, f, false)
}

// selfCheckLoop runs the membership check of this node every second.
func (m *Member) selfCheckLoop() {
	m.every(selfCheckEvery, func() {
		ctx, cancel := m.stopCtx(10 * time.Second)
		m.checkSelf(ctx, true)
		cancel()
	})
}

// startSelfCheck runs the first check before SQL is served (bounded: a
// group 0 without a leader must not hold up the start), then the loop.
func (m *Member) startSelfCheck() {
	ctx, cancel := m.stopCtx(2 * time.Second)
	m.checkSelf(ctx, false)
	cancel()
	m.cfg.Stopper.RunAsync(m.selfCheckLoop)
}

// CheckWrite is the SQL executor's schema guard (sql.SchemaGuard): a node
// outside group 0 refuses writes through its catalog until it has rejoined
// and caught up.
func (m *Member) CheckWrite() error {
	if !m.outside.Load() {
		return nil
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
		"restart transaction: node %d is not a member of group 0 and cannot vouch that its schema is current; it is rejoining",
		m.node.NodeID()),
		"retry in a moment, or through another node; `kvnode node status` and SHOW UPGRADE STATUS show the node's group 0 state")
}
