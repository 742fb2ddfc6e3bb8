package kv

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/storage"
)

// Config configures a replica.
type Config struct {
	Engine    *storage.Engine
	NodeID    nodeid.ID
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
	// LogRetainBytes bounds the log a replica keeps (in memory, as
	// raft.MemoryStorage, and in Pebble) in bytes: past it, the applied
	// entries are truncated down to half of it (default 64 MiB).
	LogRetainBytes uint64
	// MaxVoters caps the number of voters (default 5); further members stay
	// learners.
	MaxVoters int
	// RowCacheBytes bounds the cache of recently applied rows that serves
	// the reads of applying a command (default 32 MiB; negative disables
	// it). See rowCache.
	RowCacheBytes int
	// ReadCacheBytes bounds the cache that serves linearizable point reads
	// (Get) from memory (default 32 MiB; negative disables it). See
	// readCache.
	ReadCacheBytes int
	// Promote decides whether a learner may become a voter (for example it
	// is not decommissioning). nil allows every learner.
	Promote func(nodeID nodeid.ID) bool
	// TxnHistory is how long the write index records of transactions are
	// kept (default 5 minutes): a transaction whose snapshot is older when
	// it commits fails with a retryable conflict ("too old"). The leader
	// collects older records every TxnGCInterval (default 1 minute). See
	// txn.go.
	TxnHistory    time.Duration
	TxnGCInterval time.Duration
	// TxnGCStepRecords and TxnGCStepBytes bound one step of the collection
	// (default 10,000 records and 1 MiB of their keys): the data group
	// applies nothing else while it applies a step. They travel in the
	// command, so nodes configured differently still agree.
	TxnGCStepRecords uint64
	TxnGCStepBytes   uint64

	// Leader lease (lease.go, kv/DESIGN.md). Clock is the node's clock
	// (nil: the system clock; tests shift it). MaxOffset bounds how far two
	// nodes' clocks may disagree over an election timeout (default 500ms);
	// the lease lasts the least election timeout less MaxOffset, and there
	// is no lease if that leaves nothing. LeaseReads is polled once per tick
	// and says whether this node may serve leased reads now (its flag, the
	// cluster version, the clock-offset monitor); nil: never, every read
	// takes a ReadIndex round.
	Clock      *rpc.Clock
	MaxOffset  time.Duration
	LeaseReads func() bool

	// TestingSkipTick, if it returns true, makes the loop skip a tick: a
	// test stalls a node's Raft timers (CheckQuorum, elections, lease
	// renewals) while the node keeps running, as a stuck loop would.
	TestingSkipTick func() bool
	// Testing holds the crash harness's knobs (knobs.go); nil in
	// production.
	Testing *TestingKnobs
	// CommandLevel reports which commands the cluster version allows into
	// the log (downgrade.go); nil allows all. The leader consults it before
	// it appends anything, and a proposer before it proposes.
	CommandLevel func() CommandLevel
	// Release20 makes this replica apply only what a binary of release 2.0
	// knows (cmdBatch, cmdIncrement), as the binary built as 2.0 must: any
	// other entry stops it with an error naming the entry, rather than
	// being applied by code a real 2.0 binary would not have.
	Release20 bool
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
	if c.LogRetainBytes == 0 {
		c.LogRetainBytes = 64 << 20
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = 5
	}
	if c.ReadCacheBytes == 0 {
		c.ReadCacheBytes = 32 << 20
	}
	if c.RowCacheBytes == 0 {
		c.RowCacheBytes = 32 << 20
	}
	if c.TxnHistory == 0 {
		c.TxnHistory = 5 * time.Minute
	}
	if c.TxnGCInterval == 0 {
		c.TxnGCInterval = time.Minute
	}
	if c.TxnGCStepRecords == 0 {
		c.TxnGCStepRecords = 10000
	}
	if c.TxnGCStepBytes == 0 {
		c.TxnGCStepBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxOffset == 0 {
		c.MaxOffset = DefaultMaxOffset
	}
}

// DefaultMaxOffset is the default bound on clock offsets between nodes
// (CockroachDB's default).
const DefaultMaxOffset = 500 * time.Millisecond

// Status is a snapshot of the replica's Raft state, refreshed by the Ready
// loop after every cycle.
type Status struct {
	NodeID    nodeid.ID
	Leader    nodeid.ID
	Term      uint64
	Commit    uint64
	Applied   uint64
	IsLeader  bool
	Voters    []nodeid.ID
	Learners  []nodeid.ID
	FirstLog  uint64
	Progress  map[nodeid.ID]uint64 // leader only: match index per member
	LastIndex uint64
	// LeaseReads: this node may serve leased reads (Config.LeaseReads, as
	// last polled); Lease: it holds a valid leader lease (lease.go).
	LeaseReads bool
	Lease      bool
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
	readCache     *readCache  // read by any goroutine; see readCache
	stamps        stampsState // whether table writes are recorded (txn.go)

	bg           sync.WaitGroup // goroutines besides run that Stop waits for
	readyApplied uint64         // the last committed entry a Ready handed over
	trunc        truncatedState
	lastPersist  uint64
	tickCount    int
	lastStatusAt time.Time

	stopOnce sync.Once

	// Leader lease (lease.go). The atomics are read by leaseRead on any
	// goroutine; the loop writes them.
	clock       *rpc.Clock
	leaseDur    time.Duration
	startedAt   time.Time   // the clock when this replica's Raft state was loaded
	leaseOK     atomic.Bool // LeaseReads as last polled
	lease       atomic.Pointer[lease]
	leaseGen    atomic.Uint64 // bumped when a lease ends and when a new run of grants begins
	commitIdx   atomic.Uint64 // highest index known committed here
	appliedIdx  atomic.Uint64 // applied.Index
	confEpoch   uint64        // loop-owned: configuration changes applied
	noLeaseTerm uint64        // loop-owned: a leadership transfer began in this term
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
	index  uint64
	leased bool // index comes from the leader lease, not a ReadIndex round
	done   chan struct{}
}

type readBatch struct {
	id        uint64
	reqs      []*readReq
	since     time.Time // the replica's clock when the round was issued
	term      uint64    // the Raft term then
	confEpoch uint64    // Replica.confEpoch then
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
		readCache:    newReadCache(cfg.ReadCacheBytes, cfg.Metrics),
		readyApplied: l.applied.Index,
		trunc:        l.trunc,
		lastPersist:  l.trunc.Index + uint64(len(l.entries)),
		clock:        cfg.Clock,
		leaseDur:     cfg.LeaseDuration(),
	}
	r.startedAt = r.clock.Now()
	r.appliedIdx.Store(l.applied.Index)
	r.commitIdx.Store(max(l.hs.Commit, l.applied.Index))
	if cfg.LeaseReads != nil && r.leaseDur <= 0 {
		r.log.Warn("leased reads are off: the maximum clock offset leaves no lease (it must be below the least election timeout)",
			"max_offset", cfg.MaxOffset, "least_election_timeout", cfg.minElectionTimeout())
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
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.txnGCLoop()
	}()
	return r, nil
}

// openRaft builds the in-memory Raft storage and the RawNode from what
// loadRaftState found on disk (at start, and when recovery rewrites or wipes
// the state, recover.go).
func openRaft(cfg Config, l loaded) (*raftStorage, *raft.RawNode, error) {
	ms := raft.NewMemoryStorage()
	st := &raftStorage{MemoryStorage: ms, applied: l.applied, sizes: entrySizes{first: 1}}
	if l.trunc.Index > 0 {
		if err := st.ApplySnapshot(raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			Index: l.trunc.Index, Term: l.trunc.Term, ConfState: l.applied.ConfState}}); err != nil {
			return nil, nil, err
		}
	}
	if err := st.Append(l.entries); err != nil {
		return nil, nil, err
	}
	if err := ms.SetHardState(l.hs); err != nil {
		return nil, nil, err
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              raftID(cfg.NodeID),
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
		r.bg.Wait()
	})
}

// Status returns the latest published Raft status.
func (r *Replica) Status() Status { return *r.status.Load() }

func (r *Replica) publishStatus() {
	st := r.rn.Status()
	s := &Status{
		NodeID:     r.cfg.NodeID,
		Leader:     nodeID(st.Lead),
		Term:       st.Term,
		Commit:     st.Commit,
		Applied:    r.applied.Index,
		IsLeader:   st.RaftState == raft.StateLeader,
		Voters:     appendNodeIDs(nil, r.applied.ConfState.Voters),
		Learners:   appendNodeIDs(nil, r.applied.ConfState.Learners),
		FirstLog:   r.trunc.Index + 1,
		LastIndex:  r.lastPersist,
		LeaseReads: r.leaseOK.Load(),
	}
	_, s.Lease = r.leaseRead()
	if s.IsLeader {
		s.Progress = map[nodeid.ID]uint64{}
		for id, pr := range st.Progress {
			s.Progress[nodeID(id)] = pr.Match
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
