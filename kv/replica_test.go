package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	crdberrors "github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// grpc-go and pebble leave background goroutines that exit shortly
		// after Close; these are library internals, not leaks of ours.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*tableCacheShard).releaseLoop"),
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionAsync.func1"),
	)
}

const testCluster = "test-cluster"

type tnode struct {
	id   nodeid.ID
	dir  string
	addr string
	eng  *storage.Engine
	srv  *grpc.Server
	lis  net.Listener
	pool *rpc.Pool
	tr   *Transport
	rep  *Replica
	// deaf, while set, drops every Raft message and snapshot this node
	// receives (its own sends and Forward calls still work).
	deaf atomic.Bool
	// noSnap, while set, drops every snapshot this node receives.
	noSnap atomic.Bool
	// clock is the node's clock (a test may shift it); stalled, while set,
	// makes its Raft loop skip its ticks.
	clock   *rpc.Clock
	stalled atomic.Bool
	// ticks counts the ticks of its Raft loop (stalled or not). The loop
	// counts a tick before it runs it, so once ticks reaches k+1 the
	// first k ticks' periodic work (promotion included) is done.
	ticks atomic.Int64
	// metrics are the replica's collectors, on a registry of their own.
	metrics *Metrics
	// forwardDone, if set, is called with the commands of every forward to
	// the leader that ended (TestingKnobs.ForwardDone).
	forwardDone atomic.Pointer[func(datas [][]byte)]
}

type tcluster struct {
	t       *testing.T
	logs    *os.File // every node's log, shown if the test fails
	mu      sync.Mutex
	addrs   map[nodeid.ID]string
	nodes   map[nodeid.ID]*tnode
	retain  uint64
	cluster string
	// serverOpts go to every node's gRPC server (interceptors that inject
	// faults).
	serverOpts []grpc.ServerOption
	// rowCacheBytes is every node's Config.RowCacheBytes (0: the default).
	rowCacheBytes int
	// retainBytes is every node's Config.LogRetainBytes (0: the default).
	retainBytes uint64
	// txnGC is every node's TxnHistory and TxnGCInterval (0: the defaults).
	txnGC time.Duration
	// txnGCStep is every node's TxnGCStepRecords (0: the default).
	txnGCStep uint64
	// maxOffset and leaseReads configure every node's leader lease
	// (leaseReads nil: no leased reads).
	maxOffset  time.Duration
	leaseReads func(id nodeid.ID) func() bool
	// isolated holds the IDs of nodes cut off from all others: they drop
	// every Raft message they receive, and the others drop theirs.
	isolated sync.Map
	// level is every node's Config.CommandLevel (the zero value allows
	// everything, as a nil CommandLevel does: see setLevel).
	level     atomic.Int32
	levelSet  atomic.Bool
	release20 map[nodeid.ID]bool // nodes started as a 2.0 binary
	// knobs are every node's Config.Testing (nil: none).
	knobs *TestingKnobs
}

// setLevel makes every node's CommandLevel report l.
func (c *tcluster) setLevel(l CommandLevel) {
	c.level.Store(int32(l))
	c.levelSet.Store(true)
}

func (c *tcluster) commandLevel() CommandLevel {
	if !c.levelSet.Load() {
		return Level21
	}
	return CommandLevel(c.level.Load())
}

func newCluster(t *testing.T, retain uint64) *tcluster {
	logs, err := os.Create(filepath.Join(t.TempDir(), "nodes.log"))
	if err != nil {
		t.Fatal(err)
	}
	c := &tcluster{t: t, addrs: map[nodeid.ID]string{}, nodes: map[nodeid.ID]*tnode{}, retain: retain, cluster: testCluster,
		logs: logs}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n.id)
		}
		_ = logs.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("node logs:\n%s", out)
		}
	})
	return c
}

func (c *tcluster) resolve(id nodeid.ID) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[id]
	return a, ok
}

// start starts node id on dir (a new temp dir if empty), reusing its
// address if it had one.
func (c *tcluster) start(id nodeid.ID, dir string) *tnode {
	t := c.t
	if dir == "" {
		dir = t.TempDir()
	}
	c.mu.Lock()
	addr := c.addrs[id]
	c.mu.Unlock()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.addrs[id] = lis.Addr().String()
	c.mu.Unlock()
	eng, err := storage.Open(dir, storage.Options{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := &tnode{id: id, dir: dir, addr: lis.Addr().String(), eng: eng, lis: lis, pool: rpc.NewPool(), clock: rpc.NewClock(),
		metrics: NewMetrics(prometheus.NewRegistry())}
	logger := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
	n.tr = NewTransport(c.cluster, id, c.resolve, n.pool, logger)
	n.srv = rpc.NewServer(c.serverOpts...)
	// Publish the transport only once NewReplica has installed its
	// callbacks, as the server does (an atomic pointer), so messages that
	// arrive early are refused rather than racing with that setup.
	var ready atomic.Pointer[Transport]
	RegisterRaftService(n.srv, ready.Load)
	go func() { _ = n.srv.Serve(lis) }()
	var leaseReads func() bool
	if c.leaseReads != nil {
		leaseReads = c.leaseReads(id)
	}
	// Every node's knobs are the cluster's, with ForwardDone reporting to
	// the node's forwardDone.
	knobs := &TestingKnobs{}
	if c.knobs != nil {
		*knobs = *c.knobs
	}
	knobs.ForwardDone = func(datas [][]byte) {
		if f := n.forwardDone.Load(); f != nil {
			(*f)(datas)
		}
	}
	n.rep, err = NewReplica(Config{Engine: eng, NodeID: id, Transport: n.tr,
		TickInterval: 20 * time.Millisecond, LogRetain: c.retain, LogRetainBytes: c.retainBytes, Logger: logger, RowCacheBytes: c.rowCacheBytes,
		TxnHistory: c.txnGC, TxnGCInterval: c.txnGC, TxnGCStepRecords: c.txnGCStep, CommandLevel: c.commandLevel, Release20: c.release20[id],
		Clock: n.clock, MaxOffset: c.maxOffset, LeaseReads: leaseReads, TestingSkipTick: func() bool { n.ticks.Add(1); return n.stalled.Load() }, Metrics: n.metrics,
		Testing: knobs})
	if err != nil {
		t.Fatal(err)
	}
	deliver := n.tr.deliver
	n.tr.deliver = func(msgs []raftpb.Message) {
		if _, iso := c.isolated.Load(id); n.deaf.Load() || iso {
			return
		}
		msgs = slices.DeleteFunc(slices.Clone(msgs), func(m raftpb.Message) bool {
			_, iso := c.isolated.Load(nodeID(m.From)) // keyed by nodeid.ID
			return iso
		})
		if n.noSnap.Load() {
			msgs = slices.DeleteFunc(slices.Clone(msgs), func(m raftpb.Message) bool { return m.Type == raftpb.MsgSnap })
		}
		deliver(msgs)
	}
	ready.Store(n.tr)
	c.nodes[id] = n
	return n
}

func (c *tcluster) stop(id nodeid.ID) string {
	n, ok := c.nodes[id]
	if !ok {
		return ""
	}
	delete(c.nodes, id)
	n.rep.Stop()
	n.tr.Close()
	n.srv.Stop()
	n.pool.Close()
	if err := n.eng.Close(); err != nil {
		c.t.Errorf("closing engine of node %d: %v", id, err)
	}
	return n.dir
}

func (c *tcluster) leader() *tnode {
	c.t.Helper()
	var l *tnode
	testutil.SucceedsWithin(c.t, 10*time.Second, func() error {
		for _, n := range c.nodes {
			if n.rep.Status().IsLeader {
				l = n
				return nil
			}
		}
		return fmt.Errorf("no leader among %d nodes", len(c.nodes))
	})
	return l
}

// bootstrap3 builds a three-voter group the way a cluster forms: node 1
// bootstraps, 2 and 3 join as learners and get promoted.
func bootstrap3(t *testing.T, retain uint64) *tcluster {
	return bootstrap3With(t, retain)
}

// bootstrap3With is bootstrap3 with opts for every node's gRPC server.
func bootstrap3With(t *testing.T, retain uint64, opts ...grpc.ServerOption) *tcluster {
	c := newCluster(t, retain)
	c.serverOpts = opts
	c.formThree(map[string][]byte{"boot": []byte("1")})
	return c
}

// formThree bootstraps node 1 with initial data, adds nodes 2 and 3, and
// waits until all three are voters.
func (c *tcluster) formThree(initial map[string][]byte) {
	t := c.t
	c.bootstrap(initial)
	for id := nodeid.ID(2); id <= 3; id++ {
		c.start(id, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.leader().rep.AddLearner(ctx, id); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if s := c.nodes[1].rep.Status(); len(s.Voters) != 3 {
			return fmt.Errorf("voters %v learners %v", s.Voters, s.Learners)
		}
		return nil
	})
}

// bootstrap creates node 1's store with initial data and starts node 1, the
// group's only voter.
func (c *tcluster) bootstrap(initial map[string][]byte) *tnode {
	dir := c.t.TempDir()
	eng, err := storage.Open(dir, storage.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := Bootstrap(eng, 1, initial, nil); err != nil {
		c.t.Fatal(err)
	}
	_ = eng.Close()
	return c.start(1, dir)
}

// follower returns a node that is not the leader.
func (c *tcluster) follower() *tnode {
	l := c.leader()
	for _, n := range c.nodes {
		if n != l {
			return n
		}
	}
	c.t.Fatal("the leader is the only node")
	return nil
}

func put(k, v string) []kvpb.Op {
	return []kvpb.Op{{Kind: kvpb.OpPut, Key: []byte(k), Value: []byte(v)}}
}

func TestReplicationAndFollowerReads(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		n := c.nodes[nodeid.ID(i%3+1)]
		if err := n.rep.Write(ctx, put(fmt.Sprintf("k%02d", i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for id, n := range c.nodes {
		kvs, err := n.rep.Scan(ctx, []byte("k"), []byte("l"), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(kvs) != 20 {
			t.Fatalf("node %d sees %d keys, want 20", id, len(kvs))
		}
		v, ok, err := n.rep.Get(ctx, []byte("boot"))
		if err != nil || !ok || string(v) != "1" {
			t.Fatalf("node %d: bootstrap key = %q %v %v", id, v, ok, err)
		}
		// The streaming reads, linearized on every node as Scan and Get.
		streamed := 0
		if err := n.rep.ScanFunc(ctx, []byte("k"), []byte("l"), 0, false, func(k, v []byte) error {
			streamed++
			return nil
		}); err != nil || streamed != 20 {
			t.Fatalf("node %d streams %d keys (%v), want 20", id, streamed, err)
		}
		var got []string
		if err := n.rep.GetEach(ctx, [][]byte{[]byte("k00"), []byte("k05"), []byte("k55")}, func(i int, v []byte) error {
			got = append(got, fmt.Sprintf("%d=%s", i, v))
			return nil
		}); err != nil || fmt.Sprint(got) != "[0=0 1=5]" {
			t.Fatalf("node %d: GetEach = %v %v", id, got, err)
		}
	}
	// Reverse scan with a limit.
	kvs, err := c.nodes[2].rep.Scan(ctx, []byte("k"), []byte("l"), 3, true)
	if err != nil || len(kvs) != 3 || string(kvs[0].Key) != "k19" {
		t.Fatalf("reverse scan: %v %v", kvs, err)
	}
}

func TestConditionalPutsAndIncrement(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	r := c.nodes[2].rep
	ins := []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte("a"), Value: []byte("1"), ExpectAbsent: true}}
	if err := r.Write(ctx, ins); err != nil {
		t.Fatal(err)
	}
	var cf *kvpb.ConditionFailedError
	if err := r.Write(ctx, ins); !asCF(err, &cf) || !cf.Exists || string(cf.Actual) != "1" {
		t.Fatalf("second insert: %v", err)
	}
	// A failing condition leaves the whole batch unapplied.
	batch := []kvpb.Op{
		{Kind: kvpb.OpPut, Key: []byte("b"), Value: []byte("x")},
		{Kind: kvpb.OpCPut, Key: []byte("a"), Value: []byte("2"), Expected: []byte("nope")},
	}
	if err := r.Write(ctx, batch); !asCF(err, &cf) || cf.Index != 1 {
		t.Fatalf("batch: %v", err)
	}
	if _, ok, _ := r.Get(ctx, []byte("b")); ok {
		t.Fatal("b was written by a failed batch")
	}
	// Concurrent increments never lose an update.
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := c.nodes[nodeid.ID(i%3+1)].rep.Increment(ctx, []byte("ctr"), 1); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if v, err := r.Increment(ctx, []byte("ctr"), 0); err != nil || v != 30 {
		t.Fatalf("counter = %d, %v; want 30", v, err)
	}
}

func asCF(err error, target **kvpb.ConditionFailedError) bool {
	cf, ok := err.(*kvpb.ConditionFailedError)
	if ok {
		*target = cf
	}
	return ok
}

func TestLeaderLoss(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	if err := c.leader().rep.Write(ctx, put("before", "1")); err != nil {
		t.Fatal(err)
	}
	old := c.leader()
	dir := c.stop(old.id)
	nl := c.leader()
	if nl.id == old.id {
		t.Fatal("stopped node still leader")
	}
	if err := nl.rep.Write(ctx, put("after", "2")); err != nil {
		t.Fatal(err)
	}
	// The old leader comes back and catches up.
	back := c.start(old.id, dir)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		_, ok, err := back.rep.Get(ctx, []byte("after"))
		if err != nil || !ok {
			return fmt.Errorf("not caught up: %v", err)
		}
		return nil
	})
}

// TestSnapshotCatchUpAfterTruncation stops a node, writes past the log
// truncation, and restarts it: it catches up through a snapshot. The values
// are large enough (3.2 MiB in all) that the snapshot streams in several
// chunks.
func TestSnapshotCatchUpAfterTruncation(t *testing.T) {
	testSnapshotCatchUp(t, bootstrap3(t, 20))
}

// TestSnapshotToAnEarlierBuild is TestSnapshotCatchUpAfterTruncation
// between nodes that answer SnapshotStream with Unimplemented, as builds
// before streamed snapshots do: the leader sends each snapshot in one unary
// Snapshot call instead, which they take.
func TestSnapshotToAnEarlierBuild(t *testing.T) {
	var refused atomic.Int32
	noStreams := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if strings.HasSuffix(info.FullMethod, "/SnapshotStream") {
			refused.Add(1)
			return status.Error(codes.Unimplemented, "unknown method SnapshotStream")
		}
		return handler(srv, ss)
	})
	testSnapshotCatchUp(t, bootstrap3With(t, 20, noStreams))
	if refused.Load() == 0 {
		t.Fatal("no snapshot stream was attempted: the fallback was not exercised")
	}
}

func testSnapshotCatchUp(t *testing.T, c *tcluster) {
	ctx := context.Background()
	dir := c.stop(3)
	value := func(i int) string { return strings.Repeat(fmt.Sprintf("%03d", i), 16<<10/3) }
	for i := 0; i < 200; i++ {
		if err := c.nodes[1].rep.Write(ctx, put(fmt.Sprintf("s%03d", i), value(i))); err != nil {
			t.Fatal(err)
		}
	}
	l := c.leader()
	if s := l.rep.Status(); s.FirstLog < 100 {
		t.Fatalf("leader log not truncated: first index %d", s.FirstLog)
	}
	back := c.start(3, dir)
	testutil.SucceedsWithin(t, 15*time.Second, func() error {
		kvs, err := back.rep.ScanLocal([]byte("s"), []byte("t"), 0, false)
		if err != nil || len(kvs) != 200 {
			return fmt.Errorf("node 3 has %d of 200 keys (%v)", len(kvs), err)
		}
		return nil
	})
	kvs, err := back.rep.ScanLocal([]byte("s"), []byte("t"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, kv := range kvs {
		if string(kv.Value) != value(i) {
			t.Fatalf("key %s: value of %d bytes differs from the one written", kv.Key, len(kv.Value))
		}
	}
	// And it keeps replicating after the snapshot.
	if err := back.rep.Write(ctx, put("post", "1")); err != nil {
		t.Fatal(err)
	}
	// Restart after the snapshot: state and log reload consistently.
	dir = c.stop(3)
	back = c.start(3, dir)
	if _, ok, err := back.rep.Get(ctx, []byte("post")); err != nil || !ok {
		t.Fatalf("after restart: %v %v", ok, err)
	}
}

func TestWrongClusterRefused(t *testing.T) {
	c := bootstrap3(t, 0)
	b := &RaftBatch{ClusterID: "other", From: 9, To: 2}
	if err := c.nodes[2].tr.receive(b); err == nil {
		t.Fatal("batch from another cluster accepted")
	}
}

// TestWritesRetryAcrossLeaderCrash stops the leader while increments flow
// through every node: each increment must succeed (retried after the new
// leader is elected) and be applied exactly once, so the final counter
// equals the number of acknowledged increments.
func TestWritesRetryAcrossLeaderCrash(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	old := c.leader()
	var others []*tnode
	for _, n := range c.nodes {
		if n.id != old.id {
			others = append(others, n)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked, failed := 0, 0
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(n *tnode) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := n.rep.Increment(ctx, []byte("ctr"), 1); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					t.Errorf("increment through node %d: %v", n.id, err)
					continue
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}(others[w%2])
	}
	// Crash the leader once increments flow (counted, not timed).
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if acked+failed < 10 {
			return fmt.Errorf("%d increments acknowledged, waiting for 10", acked)
		}
		return nil
	})
	c.stop(old.id)
	wg.Wait()
	v, err := others[0].rep.Increment(ctx, []byte("ctr"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if int(v) != acked || failed != 0 {
		t.Fatalf("counter = %d, acknowledged = %d, failed = %d", v, acked, failed)
	}
}

// TestJoiningNodeWaitsForItsState covers a node that has joined the group
// and knows the leader but has not received the snapshot with the group's
// state: the leader must not promote it (as a voter it would count towards
// quorum with nothing in its log), and a write sent through it must wait
// for that state rather than enter the log and come back ambiguous when the
// snapshot arrives.
func TestJoiningNodeWaitsForItsState(t *testing.T) {
	c := newCluster(t, 0)
	n1 := c.bootstrap(nil)
	n2 := c.start(2, "")
	n2.noSnap.Store(true)
	ctx := context.Background()
	if err := c.leader().rep.AddLearner(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if s := n2.rep.Status(); s.Leader != 1 {
			return fmt.Errorf("node 2 knows leader %d", s.Leader)
		}
		return nil
	})
	// A write whose deadline passes first says why (unless the deadline
	// caught an attempt between the loop and its answer: that one is
	// ambiguous, and the write is tried again).
	var err error
	for i := 0; i < 5; i++ {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err = n2.rep.Write(sctx, put("early", "1"))
		cancel()
		if !errors.Is(err, kvpb.ErrAmbiguous) {
			break
		}
	}
	if !crdberrors.Is(err, kvpb.ErrUnavailable) || !strings.Contains(err.Error(), "not yet received its data") {
		t.Fatalf("write through node 2 before its snapshot: %v, want it unavailable until the snapshot", err)
	}
	writeC := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		writeC <- n2.rep.Write(wctx, put("joined", "1"))
	}()
	// The leader considers promoting node 2 on every tick: let it tick 50
	// times (counted by its loop, not timed), then write through it, so
	// that a promotion proposed during those ticks is applied before that
	// write returns, and so is the write through node 2 had it entered the
	// log.
	from := n1.ticks.Load()
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if n := n1.ticks.Load() - from; n <= 50 {
			return fmt.Errorf("the leader has ticked %d of 50 times", n)
		}
		return nil
	})
	if err := n1.rep.Write(ctx, put("barrier", "1")); err != nil {
		s := n1.rep.Status()
		t.Fatalf("a write through the leader after its 50 ticks: %v (voters %v, learners %v: a voter without the group's state blocks the quorum)",
			err, s.Voters, s.Learners)
	}
	if s := n1.rep.Status(); !slices.Equal(s.Voters, []nodeid.ID{1}) || !slices.Equal(s.Learners, []nodeid.ID{2}) {
		t.Fatalf("before its snapshot: voters %v learners %v, want [1] and [2]", s.Voters, s.Learners)
	}
	if _, ok, err := n1.rep.GetLocal([]byte("joined")); err != nil || ok {
		t.Fatalf("the write through node 2 entered the log before node 2 had the group's state (%v)", err)
	}
	n2.noSnap.Store(false)
	if err := <-writeC; err != nil {
		t.Fatalf("write through the joining node: %v", err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if s := n1.rep.Status(); !slices.Equal(s.Voters, []nodeid.ID{1, 2}) {
			return fmt.Errorf("voters %v learners %v", s.Voters, s.Learners)
		}
		return nil
	})
	if v, ok, err := n2.rep.GetLocal([]byte("joined")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("node 2 holds %q %v %v, want the write", v, ok, err)
	}
}

func TestInsertOrUpdate(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	r := c.nodes[3].rep
	op := []kvpb.Op{{Kind: kvpb.OpInsertOrUpdate, Key: []byte("u"), Value: []byte("new"), ElseValue: []byte("upd")}}
	for _, want := range []string{"new", "upd", "upd"} {
		if err := r.Write(ctx, op); err != nil {
			t.Fatal(err)
		}
		if v, _, err := r.Get(ctx, []byte("u")); err != nil || string(v) != want {
			t.Fatalf("got %q %v, want %q", v, err, want)
		}
	}
}

// TestRestartWithAppliedAheadOfCommit covers the crash window that applying
// committed entries before the next hard state write opens: the applied
// index is on disk, the hard state that recorded their commit is not. Every
// node's stored commit index is rolled back below its applied index, as such
// a crash leaves it; the group must restart, keep every write, and go on.
func TestRestartWithAppliedAheadOfCommit(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if err := c.leader().rep.Write(ctx, put(fmt.Sprintf("w%02d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[nodeid.ID]string{}
	for id := nodeid.ID(1); id <= 3; id++ {
		dirs[id] = c.stop(id)
	}
	for id, dir := range dirs {
		eng, err := storage.Open(dir, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := loadRaftState(eng)
		if err != nil {
			t.Fatal(err)
		}
		if l.applied.Index < 10 {
			t.Fatalf("node %d applied only %d entries", id, l.applied.Index)
		}
		// loadRaftState already raised it; write back an older commit.
		hs := l.hs
		hs.Commit = l.applied.Index - 5
		data, _ := hs.Marshal()
		if err := eng.DB.Set(keyHardState, data, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for id := nodeid.ID(1); id <= 3; id++ {
		c.start(id, dirs[id])
	}
	if err := c.leader().rep.Write(ctx, put("after", "v")); err != nil {
		t.Fatal(err)
	}
	for id, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			kvs, err := n.rep.ScanLocal([]byte("w"), []byte("x"), 0, false)
			if err != nil || len(kvs) != 30 {
				return fmt.Errorf("node %d has %d of 30 keys (%v)", id, len(kvs), err)
			}
			if _, ok, err := n.rep.GetLocal([]byte("after")); err != nil || !ok {
				return fmt.Errorf("node %d lacks the write made after the restart (%v)", id, err)
			}
			return nil
		})
	}
}

// TestConcurrentIncrementsExactlyOnce runs many writers against the leader
// at once, so that followers acknowledge one batch while the leader syncs the
// next and entries are applied between a Ready and its Advance
// (applyCommittedUpTo) as well as from the Ready. Every increment must be
// applied exactly once and answered with its own result, on every node.
func TestConcurrentIncrementsExactlyOnce(t *testing.T) {
	c := bootstrap3(t, 50)
	ctx := context.Background()
	l := c.leader()
	const writers, each = 16, 40
	results := make(chan int64, writers*each)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				v, err := l.rep.Increment(ctx, []byte("counter"), 1)
				if err != nil {
					t.Error(err)
					return
				}
				results <- v
				if err := l.rep.Write(ctx, put(fmt.Sprintf("c%d-%02d", w, i), "v")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	seen := map[int64]bool{}
	for v := range results {
		if seen[v] {
			t.Fatalf("two increments answered with %d", v)
		}
		seen[v] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d increments answered, want %d", len(seen), writers*each)
	}
	for v := int64(1); v <= writers*each; v++ {
		if !seen[v] {
			t.Fatalf("no increment answered with %d", v)
		}
	}
	for id, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			kvs, err := n.rep.ScanLocal([]byte("c"), []byte("d"), 0, false)
			if err != nil || len(kvs) != writers*each+1 {
				return fmt.Errorf("node %d has %d of %d keys (%v)", id, len(kvs), writers*each+1, err)
			}
			return nil
		})
	}
}

// TestForwardRetriedExactlyOnce loses the first Forward call of a write made
// on a follower, once before the leader sees it and once after the leader
// appended it (only the answer is lost). Either way the follower retries, the
// write completes well within its deadline, and it is applied exactly once:
// the leader recognizes a retry of a command it appended.
func TestForwardRetriedExactlyOnce(t *testing.T) {
	const (
		passThrough = iota
		loseRequest
		loseAnswer
		loseEveryRequest // until the mode changes
	)
	var mode, lost, handled atomic.Int32
	var oldLeader atomic.Bool // the leader is of a build without ProposeRetry
	var refusedRetries atomic.Int32
	intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.Contains(info.FullMethod, "/Propose") {
			return handler(ctx, req)
		}
		defer handled.Add(1)
		if strings.HasSuffix(info.FullMethod, "/ProposeRetry") && oldLeader.Load() {
			refusedRetries.Add(1)
			return nil, status.Error(codes.Unimplemented, "unknown method ProposeRetry")
		}
		m := mode.Load()
		if m != loseEveryRequest {
			m = mode.Swap(passThrough)
		}
		switch m {
		case loseRequest, loseEveryRequest:
			lost.Add(1)
			return nil, errors.New("injected fault: the forwarded proposals were lost on the way")
		case loseAnswer:
			resp, err := handler(ctx, req)
			if err != nil {
				return nil, err
			}
			if acc := resp.(*ForwardResponse).Accepted; len(acc) == 0 || !acc[0] {
				return resp, nil // refused (for example a leader change): nothing to lose
			}
			lost.Add(1)
			return nil, errors.New("injected fault: the leader's answer was lost on the way")
		}
		return handler(ctx, req)
	}
	c := bootstrap3With(t, 0, grpc.UnaryInterceptor(intercept))
	follower := c.follower().rep
	for _, tc := range []struct {
		name string
		mode int32
	}{{"request lost", loseRequest}, {"answer lost", loseAnswer}} {
		t.Run(tc.name, func(t *testing.T) {
			key := []byte("forwarded/" + tc.name)
			lostBefore, handledBefore := lost.Load(), handled.Load()
			mode.Store(tc.mode)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			got, err := follower.Increment(ctx, key, 1)
			if err != nil {
				t.Fatalf("increment through a follower whose forward failed once: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("the write took %s: the failed forward was not retried", took)
			}
			if lost.Load() == lostBefore {
				t.Fatal("no Forward call was lost: the fault was not injected")
			}
			if got != 1 {
				t.Errorf("increment returned %d, want 1", got)
			}
			// A lost request was retried. A lost answer is retried too,
			// unless the write was applied here first: then nobody waits
			// for it any more (the leader's side of a retry is checked
			// below). Once a later write is applied, every node must hold
			// 1: an increment applied twice leaves 2.
			if tc.mode == loseRequest {
				testutil.SucceedsWithin(t, 10*time.Second, func() error {
					if handled.Load() < handledBefore+2 {
						return errors.New("the leader has not handled the retry yet")
					}
					return nil
				})
			}
			if err := c.leader().rep.Write(ctx, put("barrier", tc.name)); err != nil {
				t.Fatal(err)
			}
			testutil.SucceedsWithin(t, 10*time.Second, func() error { return counterIs(c, key, 1) })
		})
	}
	// The leader recognizes a retry of a command it appended this term,
	// however often it comes, and appends it once.
	t.Run("retries of an appended command", func(t *testing.T) {
		key := []byte("forwarded/retried")
		data := (&command{ID: rand.Uint64() | 1, Kind: cmdIncrement, Key: key, Delta: 1}).encode()
		l, f := c.leader(), c.follower()
		term := l.rep.Status().Term
		for i, retry := range []bool{false, true, true} {
			acc, err := f.tr.Forward(context.Background(), raftID(l.id), term, [][]byte{data}, retry)
			if err != nil || len(acc) != 1 || !acc[0] {
				t.Fatalf("forward %d (retry %v): %v %v, want it accepted", i, retry, acc, err)
			}
		}
		if err := l.rep.Write(context.Background(), put("barrier", "retried")); err != nil {
			t.Fatal(err)
		}
		testutil.SucceedsWithin(t, 10*time.Second, func() error { return counterIs(c, key, 1) })
	})
	// A caller that gave up was told the outcome is unknown; the follower
	// must then stop retrying, or the write could take effect seconds
	// later, once the fault is gone. Here every request is lost until
	// after the caller gave up, so the write must never apply.
	t.Run("every request lost until the caller gives up", func(t *testing.T) {
		key := []byte("forwarded/caller gone")
		fn := c.follower() // wherever the leader is now
		follower := fn.rep
		mode.Store(loseEveryRequest)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var ended atomic.Bool
		onDone := func(datas [][]byte) {
			if slices.ContainsFunc(datas, func(d []byte) bool { return bytes.Contains(d, key) }) {
				ended.Store(true)
			}
		}
		fn.forwardDone.Store(&onDone)
		defer fn.forwardDone.Store(nil)
		if _, err := follower.Increment(ctx, key, 1); !errors.Is(err, kvpb.ErrAmbiguous) {
			t.Fatalf("increment: %v, want an ambiguous result", err)
		}
		handledAtGiveUp := handled.Load()
		// Wait for the follower's forward of the write to end (nothing
		// else goes through the follower meanwhile): after it, nothing
		// can send the write again. Until then every request is lost.
		// One attempt may have been on its way when the caller gave up;
		// a forward that kept retrying for its whole window sends many.
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			if !ended.Load() {
				return errors.New("the follower is still forwarding the write")
			}
			return nil
		})
		if n := handled.Load() - handledAtGiveUp; n > 1 {
			t.Errorf("the follower forwarded %d more times after its caller gave up", n)
		}
		mode.Store(passThrough)
		if err := c.leader().rep.Write(context.Background(), put("barrier", "caller gone")); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			if v, ok, err := n.rep.GetLocal(key); err != nil || ok {
				t.Errorf("node %d holds %x (found %v, err %v) for a write whose caller was told its outcome is unknown before it was retried",
					n.id, v, ok, err)
			}
		}
	})
	// A leader of an earlier build cannot recognize a retry (it would append
	// the command again), so the follower does not retry once that leader
	// answers ProposeRetry with Unimplemented: the write's outcome stays
	// unknown until its deadline. Here its request was lost, so it is never
	// applied.
	t.Run("request lost, leader without ProposeRetry", func(t *testing.T) {
		key := []byte("forwarded/old leader")
		oldLeader.Store(true)
		defer oldLeader.Store(false)
		mode.Store(loseRequest)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := follower.Increment(ctx, key, 1); !errors.Is(err, kvpb.ErrAmbiguous) {
			t.Fatalf("increment: %v, want an ambiguous result", err)
		}
		if refusedRetries.Load() != 1 {
			t.Errorf("the follower tried ProposeRetry %d times against the older leader, want once", refusedRetries.Load())
		}
		if err := c.leader().rep.Write(context.Background(), put("barrier", "old leader")); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			if v, ok, err := n.rep.GetLocal(key); err != nil || ok {
				t.Errorf("node %d holds %x (found %v, err %v) for a write whose request was lost", n.id, v, ok, err)
			}
		}
	})
}

// counterIs reports whether every node holds want under key (an Increment
// counter).
func counterIs(c *tcluster, key []byte, want uint64) error {
	for _, n := range c.nodes {
		v, ok, err := n.rep.GetLocal(key)
		if err != nil || !ok || len(v) != 8 || binary.BigEndian.Uint64(v) != want {
			return fmt.Errorf("node %d holds %x under %q (found %v, err %v), want %d", n.id, v, key, ok, err, want)
		}
	}
	return nil
}

// TestSnapshotSettlesPendingProposals covers a write pending on a follower
// when the entry that commits it reaches the follower only inside a
// snapshot. The follower must answer it as ambiguous, not leave it to the
// term rule: the rule assumes a committed attempt is applied here before
// any entry of a later term, and after a snapshot it is not, so the rule
// would fail it for retry and the retry would apply it a second time.
func TestSnapshotSettlesPendingProposals(t *testing.T) {
	c := bootstrap3(t, 20)
	ctx := context.Background()
	l := c.leader()
	var f, o *tnode
	for _, n := range c.nodes {
		switch {
		case n == l:
		case f == nil:
			f = n
		default:
			o = n
		}
	}
	// f hears nothing: its forwarded increment is appended and committed by
	// the others, but f never learns it.
	f.deaf.Store(true)
	type incResult struct {
		v   int64
		err error
	}
	incC := make(chan incResult, 1)
	go func() {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := f.rep.Increment(ictx, []byte("counter"), 1)
		incC <- incResult{v, err}
	}()
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if _, ok, err := l.rep.GetLocal([]byte("counter")); err != nil || !ok {
			return fmt.Errorf("the leader has not applied the forwarded increment (%v)", err)
		}
		return nil
	})
	// The log moves past it (so f will need a snapshot), and a new term
	// begins (so f will apply entries of a later term after it).
	for i := 0; i < 100; i++ {
		if err := l.rep.Write(ctx, put(fmt.Sprintf("fill%03d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	l.rep.TransferLeadership(o.id)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if !o.rep.Status().IsLeader {
			return errors.New("leadership has not moved")
		}
		return nil
	})
	f.deaf.Store(false)
	for i := 0; i < 5; i++ {
		if err := o.rep.Write(ctx, put(fmt.Sprintf("after%d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case res := <-incC:
		if res.err == nil && res.v != 1 {
			t.Errorf("increment returned %d: it was applied more than once", res.v)
		}
		if res.err != nil && !errors.Is(res.err, kvpb.ErrAmbiguous) {
			t.Errorf("increment: %v, want success or an ambiguous result", res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the increment pending on the follower was not answered within 10 s of the snapshot")
	}
	if err := o.rep.Write(ctx, put("barrier", "1")); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error { return counterIs(c, []byte("counter"), 1) })
}

// TestLogBoundedInBytes: with entries of 64 KiB, 10,000 retained entries
// would be 640 MiB held in memory; LogRetainBytes (here 1 MiB) truncates
// every replica's log to at most that many bytes. Every write stays
// readable on every replica, and a follower stopped meanwhile catches up
// (by snapshot, its entries being gone).
func TestLogBoundedInBytes(t *testing.T) {
	c := newCluster(t, 10000)
	c.retainBytes = 1 << 20
	c.formThree(map[string][]byte{"boot": []byte("1")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("x"), 64<<10)
	write := func(from, to int) {
		t.Helper()
		l := c.leader()
		for i := from; i < to; i++ {
			if err := l.rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: []byte(fmt.Sprintf("big%03d", i)), Value: big}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 50)
	dir := c.stop(3)
	write(50, 100)
	c.start(3, dir)
	const slack = 2 * 65 << 10 // entries not yet applied, or applied since the last truncation
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		for id, n := range c.nodes {
			if b := n.rep.store.logBytes(); b > 1<<20+slack {
				return fmt.Errorf("node %d holds %d bytes of log, more than 1 MiB", id, b)
			}
			for i := 0; i < 100; i++ {
				v, ok, err := n.rep.GetLocal([]byte(fmt.Sprintf("big%03d", i)))
				if err != nil || !ok || len(v) != len(big) {
					return fmt.Errorf("node %d: big%03d found %v (%v)", id, i, ok, err)
				}
			}
		}
		return nil
	})
}
