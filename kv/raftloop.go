package kv

// The Raft loop: the one goroutine that owns the RawNode, its Ready handling
// (persist, send, apply, Advance), proposals, reads and the periodic work.

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// run is the one goroutine that owns the RawNode. Each Ready is handled by
// handleReady in the etcd-io/raft README's order — persist the snapshot,
// hard state and entries; send messages; apply committed entries (conf
// changes through ApplyConfChange); Advance — with three departures that
// the README allows and that handleReady explains where they happen:
//   - a leader sends its appends, heartbeats and snapshots before it
//     persists its own entries (a leader may write to its disk in parallel
//     with replicating; it counts itself only after its own write);
//   - committed entries that were already durable here before this Ready
//     are applied, and their proposers answered, before the new entries
//     are fsynced;
//   - a leader steps its followers' acknowledgements and applies what
//     they commit while its own fsync runs (persist's whileSyncing).
//
// Everything else (votes, vote and append responses) waits for the fsync.
func (r *Replica) run() {
	defer close(r.doneC)
	var tickC <-chan time.Time
	if k := r.cfg.Testing; k == nil || !k.ManualTicks {
		ticker := time.NewTicker(r.cfg.TickInterval)
		defer ticker.Stop()
		tickC = ticker.C
	}
	defer r.failPending()
	defer r.staged.dropUpTo(math.MaxUint64)
	for {
		r.point(PointIdle)
		select {
		case <-r.stopC:
			return
		case <-tickC:
			r.tick()
		case msgs := <-r.recvC:
			r.step(msgs)
		case p := <-r.propC:
			r.toPropose = append(r.toPropose, p)
		case f := <-r.fwdC:
			f.done <- r.proposeForwarded(f)
		case rr := <-r.readC:
			r.queueRead(rr)
			for more := true; more; {
				select {
				case rr := <-r.readC:
					r.queueRead(rr)
				default:
					more = false
				}
			}
			r.releaseReads()
		case c := <-r.confC:
			c.done <- r.rn.ProposeConfChange(c.cc)
		case fn := <-r.reportC:
			fn()
		}
		r.drainInbox()
		r.flushProposals()
		r.issueReads()
		for r.rn.HasReady() {
			if err := r.handleReady(r.rn.Ready()); err != nil {
				// A failed fsync or apply leaves the replica in an unknown
				// state; continuing could acknowledge lost writes.
				r.log.Error("Raft storage failed; stopping this node's replica", "err", err)
				panic(errors.Wrap(err, "Raft storage failure"))
			}
		}
		if time.Since(r.lastStatusAt) > 50*time.Millisecond {
			r.publishStatus()
		}
	}
}

// tick advances Raft's logical clock by one tick and runs the periodic work,
// unless TestingSkipTick says to skip it.
func (r *Replica) tick() {
	if r.cfg.TestingSkipTick != nil && r.cfg.TestingSkipTick() {
		return
	}
	r.rn.Tick()
	r.tickCount++
	r.periodic()
}

// drainInbox takes everything that queued up while the loop was busy (most
// often in an fsync): first the messages from peers, then the proposals, so
// that they all share the next Ready and its fsync. Stepping the peers'
// acknowledgements before proposing matters: the commit index they advance
// then rides on the appends of the new proposals, in the same batch to each
// follower, instead of in a message of its own.
func (r *Replica) drainInbox() {
	for more := true; more; {
		select {
		case msgs := <-r.recvC:
			r.step(msgs)
		default:
			more = false
		}
	}
	for more := true; more && len(r.toPropose) < 1024; {
		select {
		case p := <-r.propC:
			r.toPropose = append(r.toPropose, p)
		default:
			more = false
		}
	}
}

func (r *Replica) step(msgs []raftpb.Message) {
	for _, m := range msgs {
		if m.Type == raftpb.MsgHeartbeat && m.Commit > 0 && r.lastPersist == 0 {
			// An empty replica has acknowledged nothing, so a leader's
			// heartbeat to it carries commit 0; one with more was queued
			// for an earlier replica of this node ID, one that was
			// removed from the group before this one joined it (a node
			// that lost its store rejoins that way). Raft would take it
			// for a lost log and panic; it is stale: drop it.
			r.log.Debug("dropping a stale heartbeat sent to an earlier replica of this node", "from", m.From, "commit", m.Commit)
			continue
		}
		if m.Type == raftpb.MsgReadIndex && r.answerReadIndex(m) {
			continue
		}
		if r.abstains(m) {
			r.log.Debug("ignoring a vote request: this node started less than an election timeout ago (leader lease)", "from", m.From, "type", m.Type)
			continue
		}
		if err := r.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			r.log.Debug("Raft step", "err", err)
		}
	}
}

// flushProposals proposes what arrived since the last loop iteration.
//
// Retrying a proposal is safe only if the earlier attempt can never be
// applied, so every attempt is tied to one term T: the leader appends it only
// while its term is T (locally, or through Transport.Forward, which refuses
// other terms; Raft's own forwarding is disabled because it would append a
// delayed proposal in a later term). If this node then applies an entry of a
// term above T while the attempt is still pending, the attempt is lost for
// good: a leader of a later term commits its first entry only once every
// entry it will ever commit from earlier terms precedes it, and those are
// applied first. Such attempts are failed with errNotProposed and retried.
// Attempts whose caller has stopped waiting (proposal.gone) are dropped.
func (r *Replica) flushProposals() {
	if len(r.toPropose) == 0 {
		return
	}
	props := slices.DeleteFunc(r.toPropose, func(p *proposal) bool { return p.gone.Load() })
	r.toPropose = nil
	if len(props) == 0 {
		return
	}
	st := r.rn.BasicStatus()
	switch {
	case r.applied.Index == 0:
		// This node has joined but holds no state yet: the snapshot that
		// brings it is still to come, and would leave an attempt forwarded
		// now ambiguous (applySnapshot). Not proposing it keeps it a retry.
		for _, p := range props {
			p.done <- result{err: errNoStateYet}
		}
	case st.RaftState == raft.StateLeader:
		for _, p := range props {
			if !r.mayAppend(p.data) {
				p.done <- result{err: refusedProposal(p.cmd.Kind)}
				continue
			}
			if err := r.rn.Propose(p.data); err != nil {
				p.done <- result{err: errNotProposed}
				continue
			}
			p.term, p.proposed = st.Term, time.Now()
			r.pending[p.cmd.ID] = p
			r.cfg.Metrics.proposals()
		}
	case st.Lead != 0:
		datas := make([][]byte, len(props))
		for i, p := range props {
			p.term, p.proposed = st.Term, time.Now()
			r.pending[p.cmd.ID] = p
			datas[i] = p.data
			r.cfg.Metrics.proposals()
		}
		go r.forward(st.Lead, st.Term, props, datas)
	default:
		for _, p := range props {
			p.done <- result{err: errNotProposed}
		}
	}
}

// failLostProposals fails, for retry, every pending attempt made in a term
// below the term of the entries just applied (see flushProposals).
func (r *Replica) failLostProposals(appliedTerm uint64) {
	if appliedTerm <= r.lostCheckTerm {
		return
	}
	r.lostCheckTerm = appliedTerm
	for id, p := range r.pending {
		if p.term < appliedTerm {
			delete(r.pending, id)
			p.done <- result{err: errNotProposed}
		}
	}
}

// issueReads starts one ReadIndex for all reads that arrived since the last
// one: many concurrent readers share one round of heartbeats.
//
// At most one ReadIndex is in flight: reads that arrive meanwhile wait for
// the next round, which they then share (a read may not use a round that
// started before it arrived).
func (r *Replica) issueReads() {
	if len(r.reads) == 0 || len(r.readBatches) > 0 {
		return
	}
	reqs := r.reads
	r.reads = nil
	r.startReadBatch(reqs)
}

// startReadBatch issues one ReadIndex round for reqs (none: a round that
// only renews the leader lease). Its completion on the leader also extends
// the lease from the moment it was issued (lease.go).
func (r *Replica) startReadBatch(reqs []*readReq) {
	b := &readBatch{id: rand.Uint64(), reqs: reqs, since: r.clock.Now(), term: r.rn.BasicStatus().Term, confEpoch: r.confEpoch}
	r.readBatches[b.id] = b
	r.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, b.id))
}

// periodic runs on ticks: retry reads whose ReadIndex got no answer (it is
// dropped when no leader is known), expire proposals nobody waits for, and on
// the leader, promote caught-up learners.
func (r *Replica) periodic() {
	r.pollLeaseReads()
	r.checkLease(r.rn.BasicStatus())
	for id, b := range r.readBatches {
		if r.clock.Now().Sub(b.since) > 5*r.cfg.TickInterval {
			delete(r.readBatches, id)
			r.reads = append(r.reads, b.reqs...)
		}
	}
	if r.tickCount%50 == 0 {
		for id, p := range r.pending {
			if time.Since(p.proposed) > time.Minute {
				delete(r.pending, id)
			}
		}
	}
	r.forwarded.rotate(time.Now())
	r.staged.dropUpTo(r.applied.Index) // those Raft ignored or superseded
	if r.rn.BasicStatus().RaftState == raft.StateLeader {
		r.maybePromote()
	}
	r.renewLease()
}

func (r *Replica) maybePromote() {
	st := r.rn.Status()
	cs := r.applied.ConfState
	if len(cs.Voters) >= r.cfg.MaxVoters || len(cs.Learners) == 0 {
		return
	}
	last := r.lastPersist
	for _, id := range cs.Learners {
		// Only a learner the leader is replicating entries to has a state:
		// one in StateProbe or StateSnapshot may have nothing yet (Match 0
		// is within 100 entries of a young log), and as a voter it would
		// count towards quorum while unable to acknowledge anything, and
		// serve writes before it holds the data they are decided on. It
		// must also have answered lately (RecentActive; CheckQuorum clears
		// it once per election timeout): a learner that is down must not
		// become a voter the quorum then waits for.
		pr, ok := st.Progress[id]
		if !ok || pr.State != tracker.StateReplicate || !pr.RecentActive || pr.Match == 0 || pr.Match+100 < last {
			continue
		}
		if r.cfg.Promote != nil && !r.cfg.Promote(nodeID(id)) {
			continue
		}
		cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: id}}}
		if err := r.rn.ProposeConfChange(cc); err == nil {
			r.log.Info("promoting learner to voter", "node", id)
		}
		return // one conf change at a time
	}
}

func (r *Replica) handleReady(rd raft.Ready) error {
	// A leader may send its appends and heartbeats before it persists its
	// own entries (the etcd-io/raft README allows writing to its disk in
	// parallel with replicating): a follower acknowledges only what it has
	// persisted, and the leader counts itself only after its own write.
	// Everything else (votes, responses) waits for the fsync below.
	st := r.rn.BasicStatus()
	// Before anything of this Ready leaves the node: the lease ends if this
	// node is no longer its leader (a vote it grants goes out below), and
	// the commit index the lease reads at is brought up to what the
	// messages below may reveal (lease.go).
	r.checkLease(st)
	if !raft.IsEmptyHardState(rd.HardState) {
		r.noteCommit(rd.HardState.Commit)
	}
	r.point(PointReady)
	var later []raftpb.Message
	if st.RaftState == raft.StateLeader {
		var early []raftpb.Message
		for _, m := range rd.Messages {
			switch m.Type {
			case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap:
				early = append(early, m)
			default:
				later = append(later, m)
			}
		}
		r.cfg.Transport.Send(early)
		if len(early) > 0 && len(rd.Entries) > 0 {
			// Let the peers' senders write the appends to their sockets
			// before this goroutine starts the Pebble write below. Send
			// readies them on this goroutine's P, where they wait for
			// what runs next; without the yield that was often Pebble's
			// WAL flusher, readied by the write, holding the P in its
			// fdatasync until the runtime took it back: the first append
			// reached a socket 128 µs after the Ready (median, one client
			// on three nodes), 29 µs with it (docs/benchmarks.md, "Where
			// one upsert's time goes"). The yield costs this loop about
			// 13 µs before its own write, which is not on the write's
			// critical path: a follower's round trip is.
			runtime.Gosched()
		}
	} else {
		later = rd.Messages
	}
	r.point(PointSentEarly)
	committed := rd.CommittedEntries
	switch {
	case !raft.IsEmptySnap(rd.Snapshot):
		// 1. Persist the snapshot, entries and hard state.
		r.point(PointBeforePersist)
		if err := r.applySnapshot(rd.Snapshot, rd.HardState); err != nil {
			return err
		}
		if err := r.persist(rd.Entries, rd.HardState, rd.MustSync, nil); err != nil {
			return err
		}
	case len(rd.Entries) == 0 && !rd.MustSync:
		// Only the commit index moved (or nothing did): the new hard state
		// goes into the batch that applies the entries it commits, one
		// Pebble write instead of two. Every committed entry is durable
		// already, as there is nothing new to persist.
		if err := r.apply(committed, rd.HardState); err != nil {
			return err
		}
		committed = nil
	default:
		// Committed entries that were durable here before this Ready are
		// applied, and their proposers answered, before the new entries
		// are fsynced: a write waits for the fsync of its own entry, not
		// also for that of the entries proposed after it. Entries at or
		// above the first new one wait for the fsync (on a follower, the
		// leader may commit an entry this node is only now appending).
		durable := r.lastPersist
		if len(rd.Entries) > 0 && rd.Entries[0].Index <= durable {
			durable = rd.Entries[0].Index - 1
		}
		n := 0
		for n < len(committed) && committed[n].Index <= durable {
			n++
		}
		if err := r.apply(committed[:n], raftpb.HardState{}); err != nil {
			return err
		}
		committed = committed[n:]
		r.point(PointBeforePersist)
		// 1. Persist the entries and hard state. A leader steps its
		// followers' acknowledgements while the disk syncs (see persist).
		var whileSyncing func() error
		if rd.MustSync && st.RaftState == raft.StateLeader {
			whileSyncing = func() error { return r.applyCommittedUpTo(st.Term, durable) }
		}
		if err := r.persist(rd.Entries, rd.HardState, rd.MustSync, whileSyncing); err != nil {
			return err
		}
	}
	r.point(PointSynced)
	// 2. Send messages.
	r.cfg.Transport.Send(later)
	r.point(PointSent)
	// 3. Apply (the rest of the) committed entries.
	if err := r.apply(committed, raftpb.HardState{}); err != nil {
		return err
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		if b, ok := r.readBatches[binary.BigEndian.Uint64(rs.RequestCtx)]; ok {
			delete(r.readBatches, b.id)
			r.maybeGrantLease(b)
			for _, rr := range b.reqs {
				rr.index = rs.Index
				r.readyReads = append(r.readyReads, rr)
			}
		}
	}
	r.releaseReads()
	if n := len(rd.CommittedEntries); n > 0 {
		r.readyApplied = rd.CommittedEntries[n-1].Index
	}
	if rd.SoftState != nil {
		r.publishStatus()
	}
	r.point(PointApplied)
	// 4. Advance.
	r.rn.Advance(rd)
	return r.maybeTruncate()
}

// queueRead takes a read request: one that a lease already gave an index
// waits for that index to be applied; any other waits for a ReadIndex round.
func (r *Replica) queueRead(rr *readReq) {
	if rr.leased {
		r.readyReads = append(r.readyReads, rr)
		return
	}
	r.reads = append(r.reads, rr)
}

func (r *Replica) releaseReads() {
	kept := r.readyReads[:0]
	for _, rr := range r.readyReads {
		if rr.index <= r.applied.Index {
			close(rr.done)
		} else {
			kept = append(kept, rr)
		}
	}
	r.readyReads = kept
}

// persist writes entries and the hard state, synced if sync. If
// whileSyncing is not nil, the loop does not block in the fsync: it steps
// the messages that arrive meanwhile and calls whileSyncing after each.
//
// A leader's followers acknowledge its previous batch while its disk syncs
// the current one; stepping those acknowledgements then, and applying what
// they commit (applyCommittedUpTo), answers a write as soon as a majority
// has it instead of one fsync later. Stepping between Ready and Advance is
// allowed (raft.Node does it); what it produces comes out in the next Ready.
func (r *Replica) persist(ents []raftpb.Entry, hs raftpb.HardState, sync bool, whileSyncing func() error) error {
	if len(ents) == 0 && raft.IsEmptyHardState(hs) {
		return nil
	}
	b := r.eng.DB.NewBatch()
	defer b.Close()
	if len(ents) > 0 {
		first, last := ents[0].Index, ents[len(ents)-1].Index
		if first <= r.lastPersist {
			// The new entries replace a conflicting tail.
			if err := b.DeleteRange(logKey(first), logKey(r.lastPersist+1), nil); err != nil {
				return err
			}
		}
		for i := range ents {
			data, err := ents[i].Marshal()
			if err != nil {
				return err
			}
			if err := b.Set(logKey(ents[i].Index), data, nil); err != nil {
				return err
			}
		}
		r.lastPersist = last
	}
	if err := setHardState(b, hs); err != nil {
		return err
	}
	start := time.Now()
	switch {
	case !sync:
		if err := b.Commit(pebble.NoSync); err != nil {
			return errors.Wrap(err, "persisting Raft entries")
		}
	case whileSyncing == nil:
		r.point(PointSyncCommit)
		if err := b.Commit(pebble.Sync); err != nil {
			return errors.Wrap(err, "persisting Raft entries")
		}
		r.cfg.Metrics.observeSync(time.Since(start))
	default:
		if err := r.eng.DB.ApplyNoSyncWait(b, pebble.Sync); err != nil {
			return errors.Wrap(err, "persisting Raft entries")
		}
		r.point(PointWritten)
		type syncResult struct {
			err  error
			took time.Duration
		}
		synced := make(chan syncResult, 1)
		go func() {
			err := b.SyncWait()
			synced <- syncResult{err, time.Since(start)}
		}()
		for {
			r.point(PointSyncWait)
			select {
			case res := <-synced:
				if res.err != nil {
					// What Pebble does when it waits for the fsync itself
					// (b.Commit above): name the cause and the fix, and
					// stop at once.
					r.eng.FailStop(res.err)
					return errors.Wrap(res.err, "syncing Raft entries")
				}
				r.cfg.Metrics.observeSync(res.took)
				return r.appendToStorage(ents, hs)
			case msgs := <-r.recvC:
				r.step(msgs)
				if err := whileSyncing(); err != nil {
					// The fsync still owns the batch.
					<-synced
					return err
				}
				r.point(PointSteppedWhileSyncing)
			}
		}
	}
	return r.appendToStorage(ents, hs)
}

// setHardState adds hs, unless empty, to b.
func setHardState(b *pebble.Batch, hs raftpb.HardState) error {
	if raft.IsEmptyHardState(hs) {
		return nil
	}
	data, err := hs.Marshal()
	if err != nil {
		return err
	}
	return b.Set(keyHardState, data, nil)
}

// appendToStorage adds persisted entries and hard state to the in-memory
// copy Raft reads.
func (r *Replica) appendToStorage(ents []raftpb.Entry, hs raftpb.HardState) error {
	if len(ents) > 0 {
		if err := r.store.Append(ents); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(hs) {
		return r.store.SetHardState(hs)
	}
	return nil
}
