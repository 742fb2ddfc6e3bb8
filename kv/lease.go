package kv

// The leader lease: linearizable reads served by the leader from its own
// applied state, without a round of heartbeats, while a quorum has
// recently acknowledged it. kv/DESIGN.md ("Leader lease") gives the
// argument; the rules it relies on are marked (R1)...(R6) where the code
// keeps them.

import (
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// lease is one grant: a ReadIndex round issued at start, in term, was
// acknowledged by a quorum of the configuration in force since before it
// was issued. Immutable once published.
type lease struct {
	gen   uint64 // leaseGen when the run of grants this belongs to began
	term  uint64
	start time.Time // the node's clock (wall and monotonic) when the round was issued
}

// minElectionTimeout is the least time, on a follower's clock, between its
// receipt of a message from the leader and its vote for another candidate:
// CheckQuorum makes a follower ignore (pre-)vote requests until
// ElectionTicks ticks have passed since it last heard from the leader, and
// it campaigns itself no sooner. The first of those ticks may be one that
// was already due (a ticker keeps one), and the next are at least one
// interval apart: (ElectionTicks-2) intervals.
func (c *Config) minElectionTimeout() time.Duration {
	return time.Duration(c.ElectionTicks-2) * c.TickInterval
}

// LeaseDuration is how long a grant lets the leader serve reads, measured
// on its own clock from the issue of the round: the least election timeout
// less MaxOffset, the disagreement between two clocks over that interval
// that the lease tolerates (R1). Zero when MaxOffset leaves no room.
func (c *Config) LeaseDuration() time.Duration {
	return c.LeaseDurationFor(c.MaxOffset)
}

// LeaseDurationFor is LeaseDuration with maxOffset as the bound (the
// least election timeout itself for 0).
func (c Config) LeaseDurationFor(maxOffset time.Duration) time.Duration {
	return max(c.minElectionTimeout()-maxOffset, 0)
}

// covers reports whether l is valid at now (a reading of the same clock):
// both the monotonic and the wall time since its start are below d (R2).
func (l *lease) covers(now time.Time, d time.Duration) bool {
	mono := now.Sub(l.start)
	wall := now.Round(0).Sub(l.start.Round(0))
	return mono >= 0 && mono < d && wall < d
}

// leaseRead returns the index a linearizable read must wait for if this
// node holds a valid lease: the commit index, which no other node can have
// passed while the lease holds (R3). Safe from any goroutine.
//
// The loads are ordered: the generation, then the commit index, then the
// lease, then the clock, then the generation again. An unchanged
// generation means no step-down, vote or new run of grants happened
// between the first load and the last (R4), so the lease was in force,
// and this node the only leader, when the commit index was read.
func (r *Replica) leaseRead() (uint64, bool) {
	if !r.leaseOK.Load() {
		return 0, false
	}
	g := r.leaseGen.Load()
	c := r.commitIdx.Load()
	l := r.lease.Load()
	if l == nil || l.gen != g {
		return 0, false
	}
	if !l.covers(r.clock.Now(), r.leaseDur) || r.leaseGen.Load() != g {
		return 0, false
	}
	return c, true
}

// noteCommit records that index is committed. The loop calls it before it
// sends or acknowledges anything that reveals the commit (R3): at the start
// of each Ready and before applying entries.
func (r *Replica) noteCommit(index uint64) {
	if index > r.commitIdx.Load() {
		r.commitIdx.Store(index)
	}
}

// clearLease ends the lease at once and starts a new generation. The loop
// calls it before it sends any message of a Ready in which this node is no
// longer leader of the lease's term, or is transferring leadership (R4).
func (r *Replica) clearLease(why string) {
	if r.lease.Load() == nil {
		return
	}
	r.leaseGen.Add(1)
	r.lease.Store(nil)
	r.log.Debug("leader lease ended", "why", why)
}

// checkLease ends the lease if the Raft state no longer allows it. It runs
// at the start of every Ready and on every tick.
func (r *Replica) checkLease(st raft.BasicStatus) {
	if st.LeadTransferee != 0 {
		// A transferee campaigns with votes that ignore CheckQuorum's
		// wait (R5); no lease for the rest of this term.
		r.noLeaseTerm = st.Term
	}
	l := r.lease.Load()
	switch {
	case l == nil:
	case st.RaftState != raft.StateLeader || st.Term != l.term:
		r.clearLease("no longer leader of the lease's term")
	case r.noLeaseTerm == st.Term:
		r.clearLease("leadership transfer")
	case !r.leaseOK.Load():
		r.clearLease("leased reads are off (flag, cluster version or clock offset)")
	}
}

// maybeGrantLease extends (or begins) the lease after the ReadIndex round b
// completed, if this node still leads the term it was issued in and the
// configuration has not changed since (R6).
func (r *Replica) maybeGrantLease(b *readBatch) {
	if !r.leaseOK.Load() || r.leaseDur <= 0 {
		return
	}
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.Term != b.term || b.confEpoch != r.confEpoch ||
		r.noLeaseTerm == st.Term || st.LeadTransferee != 0 {
		return
	}
	cur := r.lease.Load()
	gen := r.leaseGen.Load()
	switch {
	case cur == nil:
		gen = r.leaseGen.Add(1)
		r.cfg.Metrics.leaseGranted()
	case !b.since.After(cur.start):
		return
	}
	r.lease.Store(&lease{gen: gen, term: st.Term, start: b.since})
}

// renewLease issues an empty ReadIndex round on the leader when none is in
// flight, so that the lease is extended every tick while leased reads
// serve every read and no other round runs.
func (r *Replica) renewLease() {
	if !r.leaseOK.Load() || r.leaseDur <= 0 || len(r.readBatches) > 0 || len(r.reads) > 0 {
		return
	}
	if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader || r.noLeaseTerm == st.Term {
		return
	}
	r.startReadBatch(nil)
}

// pollLeaseReads asks the server, once per tick, whether leased reads are
// allowed now.
func (r *Replica) pollLeaseReads() {
	ok := r.leaseDur > 0 && r.cfg.LeaseReads != nil && r.cfg.LeaseReads()
	if ok != r.leaseOK.Load() {
		r.leaseOK.Store(ok)
		r.cfg.Metrics.setLeaseReads(ok)
	}
}

// campaignTransfer is the context etcd raft gives the votes of a leadership
// transfer's campaign (unexported there: raft.campaignTransfer).
const campaignTransfer = "CampaignTransfer"

// abstains reports whether this replica must ignore the vote request m
// because it started less than the least election timeout ago (R5): its
// previous incarnation may have acknowledged a heartbeat of a leader whose
// lease still holds, and a restarted Raft node knows no leader, so
// CheckQuorum would not hold its vote back. A leadership transfer's
// campaign is allowed (its leader gave up its lease before sending it).
func (r *Replica) abstains(m raftpb.Message) bool {
	if m.Type != raftpb.MsgVote && m.Type != raftpb.MsgPreVote {
		return false
	}
	if string(m.Context) == campaignTransfer {
		return false
	}
	return r.clock.Now().Sub(r.startedAt) < r.cfg.minElectionTimeout()
}

// answerReadIndex answers a follower's ReadIndex request from the lease, if
// this node holds one: with its commit index, at once, instead of a round
// of heartbeats (what Raft's ReadOnlyLeaseBased does, here under the
// lease's rules). The follower then waits until it has applied that index,
// as after any ReadIndex. It runs on the loop, before the Ready that could
// clear the lease: no vote of this node has left it yet (R4).
func (r *Replica) answerReadIndex(m raftpb.Message) bool {
	if m.From == raftID(r.cfg.NodeID) || m.From == 0 {
		return false
	}
	idx, ok := r.leaseRead()
	if !ok {
		return false
	}
	l := r.lease.Load()
	if l == nil {
		return false
	}
	r.cfg.Metrics.leaseRead()
	r.cfg.Transport.Send([]raftpb.Message{{Type: raftpb.MsgReadIndexResp, From: raftID(r.cfg.NodeID), To: m.From,
		Term: l.term, Index: idx, Entries: m.Entries}})
	return true
}
