package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// Config configures a replica.
type Config struct {
	Engine    *storage.Engine
	NodeID    uint64
	Transport *Transport
	Logger    *slog.Logger
	Metrics   *Metrics

	// TickInterval is the Raft tick (default 100ms). Elections take
	// ElectionTicks (default 10) ticks, heartbeats HeartbeatTicks (1).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// LogRetain is how many applied entries a replica keeps before it
	// truncates its log (default 10000). A follower further behind than
	// this catches up with a snapshot.
	LogRetain uint64
	// MaxVoters caps the number of voters (default 5); further members stay
	// learners.
	MaxVoters int
	// RowCacheBytes bounds the cache of recently applied rows that serves
	// the reads of applying a command (default 32 MiB; negative disables
	// it). See rowCache.
	RowCacheBytes int
	// Promote decides whether a learner may become a voter (for example it
	// is not decommissioning). nil allows every learner.
	Promote func(nodeID uint64) bool
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.LogRetain == 0 {
		c.LogRetain = 10000
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = 5
	}
	if c.RowCacheBytes == 0 {
		c.RowCacheBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Status is a snapshot of the replica's Raft state, refreshed by the Ready
// loop after every cycle.
type Status struct {
	NodeID    uint64
	Leader    uint64
	Term      uint64
	Commit    uint64
	Applied   uint64
	IsLeader  bool
	Voters    []uint64
	Learners  []uint64
	FirstLog  uint64
	Progress  map[uint64]uint64 // leader only: match index per member
	LastIndex uint64
}

// Replica is this node's member of the data Raft group. It implements
// kvpb.DB: writes are proposed through Raft and acknowledged once applied
// here; reads are linearizable through Raft's ReadIndex.
type Replica struct {
	cfg   Config
	eng   *storage.Engine
	store *raftStorage
	rn    *raft.RawNode // owned by the run goroutine
	log   *slog.Logger

	propC   chan *proposal
	recvC   chan []raftpb.Message
	readC   chan *readReq
	confC   chan confReq
	reportC chan func()
	fwdC    chan *fwdReq
	stopC   chan struct{}
	doneC   chan struct{}

	status atomic.Pointer[Status]
	staged stagedSnapshots // received snapshots waiting for their Ready (own lock)

	// Loop-owned state.
	pending       map[uint64]*proposal
	toPropose     []*proposal
	forwarded     forwardedIDs // as leader: forwarded commands appended this term
	lostCheckTerm uint64
	reads         []*readReq // waiting for a ReadIndex to be issued
	readBatches   map[uint64]*readBatch
	readyReads    []*readReq // have an index, waiting for it to be applied
	applied       appliedState
	rows          *rowCache
	readyApplied  uint64 // the last committed entry a Ready handed over
	trunc         truncatedState
	lastPersist   uint64
	tickCount     int
	lastStatusAt  time.Time

	stopOnce sync.Once
}

var _ kvpb.DB = (*Replica)(nil)

type proposal struct {
	cmd      *command
	data     []byte
	done     chan result
	proposed time.Time
	term     uint64 // the term of the leader this attempt was handed to
	// gone is set once the caller has stopped waiting (it was answered,
	// its deadline passed, or the loop stopped): an attempt nobody waits
	// for is not proposed, and forwarding stops retrying it, so that it
	// cannot take effect long after the caller was told the outcome is
	// unknown.
	gone atomic.Bool
}

// fwdReq carries proposals a follower forwarded to this (leader) node.
type fwdReq struct {
	ctx   context.Context
	from  uint64
	term  uint64
	datas [][]byte
	retry bool // an earlier attempt may have been appended
	done  chan []bool
}

type result struct {
	err   error
	value int64
}

type readReq struct {
	index uint64
	done  chan struct{}
}

type readBatch struct {
	id    uint64
	reqs  []*readReq
	since time.Time
}

type confReq struct {
	cc   raftpb.ConfChangeV2
	done chan error
}

// errNotProposed means the proposal never entered the log (no leader known,
// or this node holds no state yet); it is safe to retry.
var errNotProposed = errors.New("proposal dropped before entering the log")

// errNoStateYet is the errNotProposed of a node that has joined the group
// but not yet received its state (flushProposals).
var errNoStateYet = errors.Mark(errors.New("this node has joined the Raft group but has not yet received its data (a Raft snapshot from the leader)"), errNotProposed)

// NewReplica loads the Raft state from the engine and starts the replica.
// A store with no Raft state starts empty and waits for the leader to send it
// a snapshot (a node that has just joined).
func NewReplica(cfg Config) (*Replica, error) {
	cfg.setDefaults()
	l, err := loadRaftState(cfg.Engine)
	if err != nil {
		return nil, err
	}
	st, rn, err := openRaft(cfg, l)
	if err != nil {
		return nil, err
	}
	r := &Replica{
		cfg: cfg, eng: cfg.Engine, store: st, rn: rn, log: cfg.Logger,
		propC:        make(chan *proposal, 1024),
		recvC:        make(chan []raftpb.Message, 256),
		readC:        make(chan *readReq, 1024),
		confC:        make(chan confReq, 16),
		reportC:      make(chan func(), 256),
		fwdC:         make(chan *fwdReq, 64),
		stopC:        make(chan struct{}),
		doneC:        make(chan struct{}),
		pending:      map[uint64]*proposal{},
		readBatches:  map[uint64]*readBatch{},
		applied:      l.applied,
		rows:         newRowCache(max(cfg.RowCacheBytes, 0), cfg.Metrics),
		readyApplied: l.applied.Index,
		trunc:        l.trunc,
		lastPersist:  l.trunc.Index + uint64(len(l.entries)),
	}
	t := cfg.Transport
	t.deliver = func(msgs []raftpb.Message) {
		select {
		case r.recvC <- msgs:
		case <-r.stopC:
		}
	}
	t.unreachable = func(to uint64) { r.report(func() { r.rn.ReportUnreachable(to) }) }
	t.openSnapshot = r.openSnapshot
	t.receiveSnapshot = r.receiveSnapshot
	t.snapshotStatus = func(to uint64, s raft.SnapshotStatus) {
		r.reportWait(func() { r.rn.ReportSnapshot(to, s) })
	}
	t.forwarded = func(ctx context.Context, from, term uint64, datas [][]byte, retry bool) ([]bool, error) {
		req := &fwdReq{ctx: ctx, from: from, term: term, datas: datas, retry: retry, done: make(chan []bool, 1)}
		select {
		case r.fwdC <- req:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.stopC:
			return nil, errStopped
		}
		select {
		case acc := <-req.done:
			return acc, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.stopC:
			return nil, errStopped
		}
	}
	r.publishStatus()
	go r.run()
	return r, nil
}

// openRaft builds the in-memory Raft storage and the RawNode from what
// loadRaftState found on disk (at start, and when recovery rewrites or wipes
// the state, recover.go).
func openRaft(cfg Config, l loaded) (*raftStorage, *raft.RawNode, error) {
	ms := raft.NewMemoryStorage()
	if l.trunc.Index > 0 {
		if err := ms.ApplySnapshot(raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			Index: l.trunc.Index, Term: l.trunc.Term, ConfState: l.applied.ConfState}}); err != nil {
			return nil, nil, err
		}
	}
	if err := ms.Append(l.entries); err != nil {
		return nil, nil, err
	}
	if err := ms.SetHardState(l.hs); err != nil {
		return nil, nil, err
	}
	st := &raftStorage{MemoryStorage: ms, applied: l.applied}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              cfg.NodeID,
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         l.applied.Index,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		CheckQuorum:     true,
		PreVote:         true,
		// Followers forward proposals through Transport.Forward, which
		// the leader accepts only in the term the proposer saw; see
		// flushProposals for why that makes retries safe.
		DisableProposalForwarding: true,
		Logger:                    raftLogger{cfg.Logger},
	})
	if err != nil {
		return nil, nil, errors.Wrap(err, "starting Raft")
	}
	return st, rn, nil
}

// report hands a transport event to the loop without ever blocking the
// transport: if the loop is that far behind, the event is dropped. Only
// events that Raft can do without go this way (an unreachable peer is
// noticed again on the next send).
func (r *Replica) report(fn func()) {
	select {
	case r.reportC <- fn:
	default:
	}
}

// reportWait hands an event to the loop that must not be lost, waiting for
// room. It runs on goroutines of their own (a snapshot's sender, a
// forward), never on the loop: a dropped snapshot outcome would leave the
// follower in StateSnapshot, neither replicated to nor promoted, and a
// dropped forward answer would leave its writes to their deadline.
func (r *Replica) reportWait(fn func()) {
	select {
	case r.reportC <- fn:
	case <-r.stopC:
	}
}

// Stop stops the loop. In-flight proposals fail with ErrAmbiguous.
func (r *Replica) Stop() {
	r.stopOnce.Do(func() {
		close(r.stopC)
		<-r.doneC
	})
}

// Status returns the latest published Raft status.
func (r *Replica) Status() Status { return *r.status.Load() }

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
	ticker := time.NewTicker(r.cfg.TickInterval)
	defer ticker.Stop()
	defer r.failPending()
	defer r.staged.dropUpTo(math.MaxUint64)
	for {
		select {
		case <-r.stopC:
			return
		case <-ticker.C:
			r.rn.Tick()
			r.tickCount++
			r.periodic()
		case msgs := <-r.recvC:
			r.step(msgs)
		case p := <-r.propC:
			r.toPropose = append(r.toPropose, p)
		case f := <-r.fwdC:
			f.done <- r.proposeForwarded(f)
		case rr := <-r.readC:
			r.reads = append(r.reads, rr)
			for more := true; more; {
				select {
				case rr := <-r.readC:
					r.reads = append(r.reads, rr)
				default:
					more = false
				}
			}
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
	b := &readBatch{id: rand.Uint64(), reqs: r.reads, since: time.Now()}
	r.reads = nil
	r.readBatches[b.id] = b
	r.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, b.id))
}

// periodic runs on ticks: retry reads whose ReadIndex got no answer (it is
// dropped when no leader is known), expire proposals nobody waits for, and on
// the leader, promote caught-up learners.
func (r *Replica) periodic() {
	for id, b := range r.readBatches {
		if time.Since(b.since) > 5*r.cfg.TickInterval {
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
		if r.cfg.Promote != nil && !r.cfg.Promote(id) {
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
	} else {
		later = rd.Messages
	}
	committed := rd.CommittedEntries
	switch {
	case !raft.IsEmptySnap(rd.Snapshot):
		// 1. Persist the snapshot, entries and hard state.
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
	// 2. Send messages.
	r.cfg.Transport.Send(later)
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
	// 4. Advance.
	r.rn.Advance(rd)
	return r.maybeTruncate()
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
		if err := b.Commit(pebble.Sync); err != nil {
			return errors.Wrap(err, "persisting Raft entries")
		}
		r.cfg.Metrics.observeSync(time.Since(start))
	default:
		if err := r.eng.DB.ApplyNoSyncWait(b, pebble.Sync); err != nil {
			return errors.Wrap(err, "persisting Raft entries")
		}
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

// applyCommittedUpTo applies, between a Ready and its Advance, the entries
// that Raft has committed since the Ready, up to durable (the last entry this
// node had synced before the Ready's write began). Raft hands them over again
// in the next Ready, and apply skips what is applied already. Configuration
// changes are left to the Ready, which applies them through the RawNode.
//
// Only while this node is still the leader of term: a leader's commit index
// refers to its own log, which it never rewrites. A node that has stepped
// down may have entries in its log that the new leader replaced, below a
// commit index learned from that leader.
func (r *Replica) applyCommittedUpTo(term, durable uint64) error {
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.Term != term {
		return nil
	}
	hi := min(st.Commit, durable)
	if hi <= r.applied.Index {
		return nil
	}
	ents, err := r.store.Entries(r.applied.Index+1, hi+1, math.MaxUint64)
	if err != nil {
		return nil // not in memory any more: the Ready will hand them over
	}
	for i := range ents {
		if ents[i].Type != raftpb.EntryNormal {
			ents = ents[:i]
			break
		}
	}
	return r.apply(ents, raftpb.HardState{})
}

// applySnapshot replaces the state machine with the snapshot's contents and
// resets the log, atomically and durably.
func (r *Replica) applySnapshot(snap raftpb.Snapshot, hs raftpb.HardState) error {
	meta := snap.Metadata
	if meta.Index <= r.applied.Index {
		return nil
	}
	start := time.Now()
	in := r.staged.take(meta.Index)
	if in == nil {
		return errors.AssertionFailedf("Raft handed over snapshot at index %d, whose data this node did not receive", meta.Index)
	}
	b, n := in.b, in.keys // begins by clearing the replicated span
	defer b.Close()
	r.rows.clear()
	as := appliedState{Index: meta.Index, Term: meta.Term, ConfState: meta.ConfState}
	tr := truncatedState{Index: meta.Index, Term: meta.Term}
	if err := b.DeleteRange(keyLogPrefix, keyLogPrefixEnd, nil); err != nil {
		return err
	}
	_ = b.Set(keyApplied, as.encode(), nil)
	_ = b.Set(keyTruncated, tr.encode(), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return errors.Wrap(err, "applying Raft snapshot")
	}
	snap.Data = nil
	if err := r.store.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	r.store.mu.Lock()
	r.store.applied = as
	r.store.mu.Unlock()
	r.applied, r.trunc, r.lastPersist = as, tr, meta.Index
	// A pending attempt may have been committed in an entry the snapshot
	// covers, which this node never applies one by one: its outcome is
	// unknown. It must not reach the term rule either (failLostProposals),
	// whose premise, that a committed attempt is applied here before any
	// entry of a later term, a snapshot breaks; a retry could apply it twice.
	r.failPending()
	r.cfg.Metrics.snapshotApplied()
	r.log.Info("applied Raft snapshot", "index", meta.Index, "keys", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// apply applies committed entries to the state machine and answers their
// proposers. If hs is not empty it is persisted in the same batch (not
// synced: only the commit index may have changed, and losing that in a crash
// is safe, see loadRaftState).
func (r *Replica) apply(ents []raftpb.Entry, hs raftpb.HardState) error {
	if len(ents) == 0 && raft.IsEmptyHardState(hs) {
		return nil
	}
	b := r.eng.DB.NewIndexedBatch()
	defer b.Close()
	type done struct {
		p   *proposal
		res result
	}
	var acks []done
	as := r.applied
	for i := range ents {
		e := &ents[i]
		if e.Index <= as.Index {
			continue
		}
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) == 0 {
				break // leader's empty entry at the start of its term
			}
			cmd, err := decodeCommand(e.Data)
			var res result
			if err != nil {
				// Every replica fails the same way, so the state machines
				// stay identical; the proposer (if any) learns why.
				r.log.Error("cannot apply Raft entry", "index", e.Index, "err", err)
				res.err = err
			} else {
				res = applyCommand(b, r.rows, cmd)
				if p, ok := r.pending[cmd.ID]; ok {
					delete(r.pending, cmd.ID)
					acks = append(acks, done{p, res})
				}
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeI
			if e.Type == raftpb.EntryConfChange {
				var c raftpb.ConfChange
				if err := c.Unmarshal(e.Data); err != nil {
					return err
				}
				cc = c
			} else {
				var c raftpb.ConfChangeV2
				if err := c.Unmarshal(e.Data); err != nil {
					return err
				}
				cc = c
			}
			as.ConfState = *r.rn.ApplyConfChange(cc)
			r.log.Info("applied Raft configuration change", "index", e.Index,
				"voters", as.ConfState.Voters, "learners", as.ConfState.Learners)
		}
		as.Index, as.Term = e.Index, e.Term
	}
	if as.Index == r.applied.Index && raft.IsEmptyHardState(hs) {
		return nil
	}
	if as.Index != r.applied.Index {
		if err := b.Set(keyApplied, as.encode(), nil); err != nil {
			return err
		}
	}
	if err := setHardState(b, hs); err != nil {
		return err
	}
	// The log entries are durable already; if this batch is lost in a
	// crash, the entries are applied again from the log.
	if err := b.Commit(pebble.NoSync); err != nil {
		return errors.Wrap(err, "applying Raft entries")
	}
	r.rows.shrink()
	if !raft.IsEmptyHardState(hs) {
		if err := r.store.SetHardState(hs); err != nil {
			return err
		}
	}
	confChanged := !confEqual(r.applied.ConfState, as.ConfState)
	r.applied = as
	r.store.mu.Lock()
	r.store.applied = as
	r.store.mu.Unlock()
	for _, a := range acks {
		if !a.p.proposed.IsZero() {
			r.cfg.Metrics.observeCommit(time.Since(a.p.proposed))
		}
		a.p.done <- a.res
	}
	r.failLostProposals(as.Term)
	if confChanged {
		r.publishStatus()
	}
	return nil
}

func confEqual(a, b raftpb.ConfState) bool {
	eq := func(x, y []uint64) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return eq(a.Voters, b.Voters) && eq(a.Learners, b.Learners)
}

// applyCommand applies one command to the batch. It must be deterministic:
// every replica runs it on the same state and must reach the same result.
func applyCommand(b *pebble.Batch, rc *rowCache, cmd *command) result {
	// get reads the state as the entries applied so far leave it: the row
	// cache, else the apply batch (which sees its own earlier writes) and
	// Pebble beneath it.
	get := func(k []byte) ([]byte, bool) {
		if v, exists, ok := rc.get(k); ok {
			return v, exists
		}
		v, closer, err := b.Get(userKey(k))
		if errors.Is(err, pebble.ErrNotFound) {
			rc.put(k, nil, false)
			return nil, false
		}
		if err != nil {
			return nil, false
		}
		defer closer.Close()
		return rc.put(k, v, true), true
	}
	set := func(k, v []byte) {
		_ = b.Set(userKey(k), v, nil)
		rc.put(k, v, true)
	}
	switch cmd.Kind {
	case cmdIncrement:
		var cur int64
		if v, ok := get(cmd.Key); ok && len(v) == 8 {
			cur = int64(binary.BigEndian.Uint64(v))
		}
		cur += cmd.Delta
		set(cmd.Key, binary.BigEndian.AppendUint64(nil, uint64(cur)))
		return result{value: cur}
	case cmdBatch:
		// Evaluate every condition against the state as the batch's own
		// earlier ops leave it, then write all or nothing.
		overlay := map[string]*[]byte{}
		lookup := func(k []byte) ([]byte, bool) {
			if v, ok := overlay[string(k)]; ok {
				if v == nil {
					return nil, false
				}
				return *v, true
			}
			return get(k)
		}
		for i, op := range cmd.Ops {
			switch op.Kind {
			case kvpb.OpCPut:
				cur, exists := lookup(op.Key)
				ok := (op.ExpectAbsent && !exists) || (!op.ExpectAbsent && exists && string(cur) == string(op.Expected))
				if !ok {
					// Actual leaves the loop: a copy, not the row cache's.
					return result{err: &kvpb.ConditionFailedError{Index: i, Key: op.Key, Actual: bytes.Clone(cur), Exists: exists}}
				}
				if op.Delete {
					overlay[string(op.Key)] = nil
				} else {
					v := op.Value
					overlay[string(op.Key)] = &v
				}
			case kvpb.OpPut:
				v := op.Value
				overlay[string(op.Key)] = &v
			case kvpb.OpInsertOrUpdate:
				v := op.Value
				if _, exists := lookup(op.Key); exists {
					v = op.ElseValue
				}
				overlay[string(op.Key)] = &v
			case kvpb.OpDelete:
				overlay[string(op.Key)] = nil
			case kvpb.OpDeleteRange:
				_ = b.DeleteRange(userKey(op.Key), userKey(op.EndKey), nil)
				rc.clear()
			}
		}
		for k, v := range overlay {
			if v == nil {
				_ = b.Delete(userKey([]byte(k)), nil)
				rc.put([]byte(k), nil, false)
			} else {
				set([]byte(k), *v)
			}
		}
		return result{}
	}
	return result{err: errors.AssertionFailedf("unknown command kind %d", cmd.Kind)}
}

// maybeTruncate drops applied log entries beyond LogRetain. Each replica
// truncates its own log; a follower that falls behind the leader's truncated
// log receives a snapshot.
func (r *Replica) maybeTruncate() error {
	retain := r.cfg.LogRetain
	// Raft may not have handed over every applied entry yet (see
	// applyCommittedUpTo); it reads those from the log.
	applied := min(r.applied.Index, r.readyApplied)
	if applied < r.trunc.Index+2*retain {
		return nil
	}
	idx := applied - retain
	term, err := r.store.Term(idx)
	if err != nil {
		return nil
	}
	b := r.eng.DB.NewBatch()
	defer b.Close()
	tr := truncatedState{Index: idx, Term: term}
	_ = b.DeleteRange(logKey(r.trunc.Index+1), logKey(idx+1), nil)
	_ = b.Set(keyTruncated, tr.encode(), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if err := r.store.Compact(idx); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	r.trunc = tr
	return nil
}

func (r *Replica) publishStatus() {
	st := r.rn.Status()
	s := &Status{
		NodeID:    r.cfg.NodeID,
		Leader:    st.Lead,
		Term:      st.Term,
		Commit:    st.Commit,
		Applied:   r.applied.Index,
		IsLeader:  st.RaftState == raft.StateLeader,
		Voters:    append([]uint64(nil), r.applied.ConfState.Voters...),
		Learners:  append([]uint64(nil), r.applied.ConfState.Learners...),
		FirstLog:  r.trunc.Index + 1,
		LastIndex: r.lastPersist,
	}
	if s.IsLeader {
		s.Progress = map[uint64]uint64{}
		for id, pr := range st.Progress {
			s.Progress[id] = pr.Match
		}
	}
	r.status.Store(s)
	r.lastStatusAt = time.Now()
	r.cfg.Metrics.setStatus(s)
}

func (r *Replica) failPending() {
	for id, p := range r.pending {
		delete(r.pending, id)
		p.done <- result{err: kvpb.ErrAmbiguous}
	}
}

// --- kvpb.DB ---

// defaultTimeout bounds a request whose context has no deadline.
const defaultTimeout = 10 * time.Second

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

var errStopped = errors.New("this node is shutting down")

// submit proposes cmd and waits until it is applied on this node. A proposal
// that could not enter the log (no leader yet) is retried; one that entered
// but whose outcome is unknown when ctx ends returns ErrAmbiguous.
func (r *Replica) submit(ctx context.Context, cmd *command) (result, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cmd.ID = rand.Uint64() | 1
	data := cmd.encode()
	backoff := 10 * time.Millisecond
	var refused error // why the last attempt did not enter the log
	unavailable := func() error {
		why := "no Raft leader accepted the write in time"
		if errors.Is(refused, errNoStateYet) {
			why = errNoStateYet.Error()
		}
		return errors.Mark(errors.Wrap(ctx.Err(), why), kvpb.ErrUnavailable)
	}
	var p *proposal
	// However submit returns, nobody waits for its last attempt any more.
	defer func() { p.gone.Store(true) }()
	for {
		p = &proposal{cmd: cmd, data: data, done: make(chan result, 1)}
		select {
		case r.propC <- p:
		case <-ctx.Done():
			return result{}, unavailable()
		case <-r.stopC:
			return result{}, errStopped
		}
		select {
		case res := <-p.done:
			if errors.Is(res.err, errNotProposed) {
				p.gone.Store(true)
				refused = res.err
				select {
				case <-time.After(backoff):
					if backoff *= 2; backoff > 200*time.Millisecond {
						backoff = 200 * time.Millisecond
					}
					continue
				case <-ctx.Done():
					return result{}, unavailable()
				case <-r.stopC:
					return result{}, errStopped
				}
			}
			return res, nil
		case <-ctx.Done():
			return result{}, errors.Wrap(kvpb.ErrAmbiguous, ctx.Err().Error())
		case <-r.doneC:
			return result{}, kvpb.ErrAmbiguous
		}
	}
}

// Write implements kvpb.DB.
func (r *Replica) Write(ctx context.Context, ops []kvpb.Op) error {
	if err := validateOps(ops); err != nil {
		return err
	}
	res, err := r.submit(ctx, &command{Kind: cmdBatch, Ops: ops})
	if err != nil {
		return err
	}
	return res.err
}

// Increment implements kvpb.DB.
func (r *Replica) Increment(ctx context.Context, key []byte, delta int64) (int64, error) {
	res, err := r.submit(ctx, &command{Kind: cmdIncrement, Key: key, Delta: delta})
	if err != nil {
		return 0, err
	}
	return res.value, res.err
}

// linearize waits until this replica has applied every write that was
// committed before the call: a ReadIndex round through the leader.
func (r *Replica) linearize(ctx context.Context) error {
	// A leader that is the group's only voter needs no ReadIndex round: no
	// other node can commit anything, and every acknowledged write was
	// applied here before it was acknowledged. (Adding a voter is applied
	// here first and republishes the status at once.)
	if st := r.status.Load(); st.IsLeader && len(st.Voters) == 1 && st.Voters[0] == r.cfg.NodeID && st.Applied >= st.Commit {
		r.cfg.Metrics.readIndex()
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	rr := &readReq{done: make(chan struct{})}
	select {
	case r.readC <- rr:
	case <-ctx.Done():
		return errors.Mark(errors.Wrap(ctx.Err(), "read could not be linearized"), kvpb.ErrUnavailable)
	case <-r.stopC:
		return errStopped
	}
	r.cfg.Metrics.readIndex()
	select {
	case <-rr.done:
		return nil
	case <-ctx.Done():
		return errors.Mark(errors.Wrap(ctx.Err(), "no Raft leader confirmed the read in time"), kvpb.ErrUnavailable)
	case <-r.stopC:
		return errStopped
	}
}

// Get implements kvpb.DB.
func (r *Replica) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := r.linearize(ctx); err != nil {
		return nil, false, err
	}
	return r.GetLocal(key)
}

// GetLocal reads this replica's applied state without linearizing: it may
// be stale. For status views and tests only.
func (r *Replica) GetLocal(key []byte) ([]byte, bool, error) {
	v, closer, err := r.eng.DB.Get(userKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Scan implements kvpb.DB.
func (r *Replica) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	if err := r.linearize(ctx); err != nil {
		return nil, err
	}
	return r.ScanLocal(start, end, limit, reverse)
}

// ScanLocal scans the applied state without linearizing.
func (r *Replica) ScanLocal(start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	lo := userKey(start)
	hi := []byte{storage.PrefixReplicated + 1}
	if end != nil {
		hi = userKey(end)
	}
	it, err := r.eng.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []kvpb.KeyValue
	valid := it.First()
	next := it.Next
	if reverse {
		valid, next = it.Last(), it.Prev
	}
	for ; valid; valid = next() {
		out = append(out, kvpb.KeyValue{
			Key:   append([]byte(nil), it.Key()[1:]...),
			Value: append([]byte(nil), it.Value()...),
		})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, it.Error()
}

// --- membership ---

// ErrNotLeader is returned by membership changes on a non-leader; the
// leader's ID (if known) is in the error.
type ErrNotLeader struct{ Leader uint64 }

func (e *ErrNotLeader) Error() string {
	return "this node is not the Raft leader"
}

// AddLearner adds nodeID to the group as a learner and waits until the
// change is applied here. Promotion to voter happens later, once it has
// caught up (see maybePromote). It must run on the leader.
func (r *Replica) AddLearner(ctx context.Context, nodeID uint64) error {
	return r.changeMembership(ctx, raftpb.ConfChangeAddLearnerNode, nodeID, func(s Status) bool {
		return contains(s.Learners, nodeID) || contains(s.Voters, nodeID)
	})
}

// RemoveMember removes nodeID from the group and waits until the change is
// applied here. It must run on the leader.
func (r *Replica) RemoveMember(ctx context.Context, nodeID uint64) error {
	return r.changeMembership(ctx, raftpb.ConfChangeRemoveNode, nodeID, func(s Status) bool {
		return !contains(s.Learners, nodeID) && !contains(s.Voters, nodeID)
	})
}

// DemoteVoter makes the voter nodeID a learner and waits until the change
// is applied here (a no-op if it is not a voter). It must run on the
// leader, and not for the leader itself (transfer leadership first).
func (r *Replica) DemoteVoter(ctx context.Context, nodeID uint64) error {
	return r.changeMembership(ctx, raftpb.ConfChangeAddLearnerNode, nodeID, func(s Status) bool {
		return !contains(s.Voters, nodeID)
	})
}

func (r *Replica) changeMembership(ctx context.Context, typ raftpb.ConfChangeType, nodeID uint64, done func(Status) bool) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		s := r.Status()
		if done(s) {
			return nil
		}
		if !s.IsLeader {
			return &ErrNotLeader{Leader: s.Leader}
		}
		req := confReq{
			cc:   raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: typ, NodeID: nodeID}}},
			done: make(chan error, 1),
		}
		select {
		case r.confC <- req:
		case <-ctx.Done():
			return errors.Wrap(ctx.Err(), "membership change")
		case <-r.stopC:
			return errStopped
		}
		// Raft accepts one configuration change at a time and turns a
		// second one into an empty entry; poll and re-propose until ours
		// is in.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if done(r.Status()) {
				return nil
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return errors.Wrap(ctx.Err(), "membership change")
			case <-r.stopC:
				return errStopped
			}
		}
	}
}

// MaxVoters returns the configured voter limit.
func (r *Replica) MaxVoters() int { return r.cfg.MaxVoters }

// TransferLeadership asks Raft to move leadership to another voter (used
// when draining). It returns at once.
func (r *Replica) TransferLeadership(to uint64) {
	select {
	case r.reportC <- func() { r.rn.TransferLeader(to) }:
	case <-r.stopC:
	}
}

func contains(s []uint64, x uint64) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
