package kv

// The crash harness: real replicas, several in one process, each on Pebble
// over a strict in-memory file system, driven by datadriven scripts under
// testdata/raft/ (kv/DESIGN.md, "The crash harness", says what it is for and
// what it checks). One goroutine, the test's, decides everything: when a
// node ticks, which message arrives when, when an fsync completes, where a
// node crashes. Each node's Raft loop runs on its own goroutine as in
// production, and the harness waits after every input until that loop has
// settled (TestingKnobs.Point), so a script gives the same output every
// run.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/testutil"
)

// TestRaftHarness runs every script of testdata/raft. Regenerate the
// expected output with -rewrite and review the diff like code.
func TestRaftHarness(t *testing.T) {
	datadriven.Walk(t, "testdata/raft", func(t *testing.T, path string) {
		h := newHarness(t)
		defer h.close()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out := h.run(d)
			if v := h.check(); len(v) > 0 {
				t.Fatalf("%s: %s: invariant violated:\n%s\noutput so far:\n%s\nnode logs:\n%s",
					d.Pos, d.Cmd, strings.Join(v, "\n"), out, h.logs.String())
			}
			return out
		})
	})
}

// harnessTick is a harness node's tick. Each tick also moves the node's
// clock forward by this much, so what the replica measures on its clock
// (the vote it holds back after a restart, R5 in DESIGN.md; read retries)
// depends on ticks only: real time elapsed in a test is far below an hour.
const harnessTick = time.Hour

// settleTimeout bounds the wait for a node's loop to settle: it only
// passes if the loop is stuck, and then names where.
const settleTimeout = 20 * time.Second

type harness struct {
	t      *testing.T
	logs   *testutil.SyncBuffer
	retain uint64 // every node's Config.LogRetain (0: the default)

	mu sync.Mutex // guards what the nodes' loops touch (onPoint, send)
	// checking: the invariant check is asking the loops for their status;
	// an armed crash waits for the script's next input.
	checking bool
	nodes    []*hnode // node i+1 at i
	queue    []raftpb.Message
	events   []string // printed at the end of the command that caused them

	cut      map[[2]uint64]bool // links that drop every message
	props    []*hprop
	leaders  map[uint64]uint64 // term -> the leader seen in it
	applied  map[uint64]fingerprint
	commitAt map[uint64]entryPrint // index -> the entry applied there
}

// hnode is one node: its file system survives crashes, the rest is
// replaced at each restart.
type hnode struct {
	id    uint64
	fs    *vfs.MemFS
	gate  *syncGate
	clock *rpc.Clock
	eng   *storage.Engine
	tr    *Transport
	rep   *Replica // nil while down
	inc   int      // incarnation, bumped at each start

	// Guarded by harness.mu.
	last       LoopPoint
	settled    bool
	wake       chan struct{}
	held       bool      // the script holds this node's fsyncs
	crashAt    LoopPoint // armed crash point
	crashed    bool      // crashed, its loop not yet stopped
	crashedAt  LoopPoint
	maxApplied uint64 // in this incarnation
}

// hprop is a write the script proposed: one put.
type hprop struct {
	name       string
	node       *hnode
	inc        int
	key, value string
	p          *proposal
	state      string // "pending", "acked", "failed", "unknown"
	index      uint64 // acked: the entry's index on its proposer
}

type fingerprint struct {
	hash uint64
	node uint64
}

type entryPrint struct {
	term uint64
	hash uint64
	node uint64
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, logs: &testutil.SyncBuffer{}, cut: map[[2]uint64]bool{}, leaders: map[uint64]uint64{},
		applied: map[uint64]fingerprint{}, commitAt: map[uint64]entryPrint{}}
}

func (h *harness) node(id uint64) *hnode {
	if id == 0 || id > uint64(len(h.nodes)) {
		h.t.Fatalf("no node %d (there are %d)", id, len(h.nodes))
	}
	return h.nodes[id-1]
}

// run executes one script command and returns its output.
func (h *harness) run(d *datadriven.TestData) string {
	var out strings.Builder
	h.finishCrashes()
	switch d.Cmd {
	case "add-nodes":
		h.retain = uint64(argInt(h.t, d, "retain", 0))
		h.addNodes(argInt(h.t, d, "n", 3))
	case "campaign":
		n := h.live(d)
		h.onLoop(n, func() { _ = n.rep.rn.Campaign() })
	case "elect":
		// A leadership transfer's election (MsgTimeoutNow): it skips
		// PreVote and the voters' check-quorum lease, as a transfer
		// does, so the script elects whom it wants at once. Raft draws
		// election timeouts from crypto/rand, so an election by ticks
		// would not be deterministic.
		n := h.live(d)
		h.onLoop(n, func() {
			st := n.rep.rn.BasicStatus()
			_ = n.rep.rn.Step(raftpb.Message{Type: raftpb.MsgTimeoutNow, From: st.Lead, To: n.id, Term: st.Term})
		})
	case "tick":
		for _, n := range h.targets(d) {
			for range argInt(h.t, d, "n", 1) {
				n.clock.SetOffset(n.clock.Offset() + harnessTick)
				h.onLoop(n, n.rep.tick)
			}
		}
	case "propose":
		h.propose(&out, h.live(d), argStr(h.t, d, "key"), argStr(h.t, d, "value"))
	case "copy":
		h.proposeCopy(&out, h.live(d), d)
	case "deliver", "drop":
		h.deliver(&out, d, d.Cmd == "drop")
	case "stabilize":
		h.stabilize(&out)
	case "queue":
		h.mu.Lock()
		for _, m := range h.queue {
			fmt.Fprintln(&out, describeMsg(m))
		}
		h.mu.Unlock()
	case "isolate":
		n := h.node(uint64(argInt(h.t, d, "node", 0)))
		for _, o := range h.nodes {
			if o != n {
				h.cut[[2]uint64{n.id, o.id}], h.cut[[2]uint64{o.id, n.id}] = true, true
			}
		}
	case "heal":
		clear(h.cut)
	case "hold-sync":
		n := h.live(d)
		h.mu.Lock()
		n.held = true
		h.mu.Unlock()
	case "release-sync":
		n := h.live(d)
		h.mu.Lock()
		n.held = false
		waiting := n.last == PointSyncCommit || n.last == PointSyncWait
		if waiting {
			n.settled = false
			n.gate.set(true)
		}
		h.mu.Unlock()
		if waiting {
			h.settle(n)
		}
	case "crash":
		n := h.live(d)
		if at := argStr(h.t, d, "at", ""); at != "" {
			if !slices.Contains(LoopPoints, LoopPoint(at)) && LoopPoint(at) != PointIngested {
				h.t.Fatalf("%s: unknown loop point %q (one of %v)", d.Pos, at, LoopPoints)
			}
			h.mu.Lock()
			n.crashAt = LoopPoint(at)
			h.mu.Unlock()
			fmt.Fprintf(&out, "node %d will crash at %s\n", n.id, at)
			break
		}
		h.mu.Lock()
		h.crashLocked(n, n.last) // where its loop waits: idle, or in a held fsync
		h.mu.Unlock()
		h.finishCrashes()
	case "power-cycle":
		// Every running node crashes at the same instant and restarts:
		// what the invariants then see of each node is what it had
		// synced, so an acknowledged write that a majority only wrote
		// fails the check.
		h.mu.Lock()
		var up []*hnode
		for _, n := range h.nodes {
			if n.rep != nil {
				h.crashLocked(n, n.last)
				up = append(up, n)
			}
		}
		h.mu.Unlock()
		h.finishCrashes()
		h.flushEvents(&out)
		for _, n := range up {
			h.start(n)
			fmt.Fprintf(&out, "node %d restarted\n", n.id)
		}
	case "restart":
		n := h.node(uint64(argInt(h.t, d, "node", 0)))
		if n.rep != nil {
			h.t.Fatalf("%s: node %d is running", d.Pos, n.id)
		}
		l, err := loadRaftState(n.eng)
		if err != nil {
			h.t.Fatal(err)
		}
		h.start(n)
		fmt.Fprintf(&out, "node %d restarted: %s\n", n.id, describeLoaded(l))
	case "status":
		for _, n := range h.nodes {
			fmt.Fprintln(&out, h.describeStatus(n))
		}
	case "log":
		n := h.node(uint64(argInt(h.t, d, "node", 0)))
		l, err := loadRaftState(n.eng)
		if err != nil {
			h.t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s\n", describeLoaded(l))
		for _, e := range l.entries {
			fmt.Fprintf(&out, "%d/%d %s\n", e.Index, e.Term, describeEntry(e))
		}
	case "state":
		ns := h.nodes
		if d.HasArg("node") {
			ns = []*hnode{h.node(uint64(argInt(h.t, d, "node", 0)))}
		}
		for _, n := range ns {
			down := ""
			if n.rep == nil {
				down = " (down)"
			}
			fmt.Fprintf(&out, "%d%s: %s\n", n.id, down, h.describeState(n))
		}
	default:
		h.t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	h.finishCrashes()
	h.collect()
	h.flushEvents(&out)
	if out.Len() == 0 {
		return "ok\n"
	}
	return out.String()
}

// addNodes starts n nodes whose stores all begin with the same state: the
// voters 1..n at index 1, term 1 (etcd's rafttest starts its groups so).
func (h *harness) addNodes(count int) {
	if len(h.nodes) > 0 {
		h.t.Fatal("add-nodes: the harness has nodes already")
	}
	voters := make([]uint64, count)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	for _, id := range voters {
		fs := vfs.NewStrictMem()
		// The store's directory must survive a crash: sync its entry in
		// the root (Pebble syncs the store directory itself).
		if err := fs.MkdirAll("/store", 0o755); err != nil {
			h.t.Fatal(err)
		}
		root, err := fs.OpenDir("/")
		if err != nil {
			h.t.Fatal(err)
		}
		if err := errors.Join(root.Sync(), root.Close()); err != nil {
			h.t.Fatal(err)
		}
		n := &hnode{id: id, fs: fs, gate: newSyncGate(), clock: rpc.NewClock(), wake: make(chan struct{}, 1)}
		n.eng = h.openEngine(n)
		if err := bootstrapVoters(n.eng, voters, nil, nil); err != nil {
			h.t.Fatal(err)
		}
		h.nodes = append(h.nodes, n)
	}
	for _, n := range h.nodes {
		h.start(n)
		// As if the nodes had been up for an election timeout: a replica
		// holds its vote back for that long after it starts (R5), which
		// matters after a restart, not for a new group's first election.
		n.clock.SetOffset(10 * harnessTick)
	}
}

func (h *harness) openEngine(n *hnode) *storage.Engine {
	eng, err := storage.Open("/store", storage.Options{CacheSize: 1 << 20, FS: gatedFS{FS: n.fs, gate: n.gate}})
	if err != nil {
		h.t.Fatal(err)
	}
	return eng
}

// start runs a replica on n's engine.
func (h *harness) start(n *hnode) {
	h.mu.Lock()
	n.inc++
	inc := n.inc
	// A new process: nothing armed, nothing held.
	n.last, n.settled, n.held, n.crashAt, n.crashed, n.crashedAt, n.maxApplied = "", false, false, "", false, "", 0
	h.mu.Unlock()
	n.tr = newLocalTransport("harness", n.id, func(msgs []raftpb.Message) { h.send(n, inc, msgs) })
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("node", n.id, "incarnation", inc)
	rep, err := NewReplica(Config{Engine: n.eng, NodeID: nodeID(n.id), Transport: n.tr, Logger: logger,
		Metrics: NewMetrics(prometheus.NewRegistry()), Clock: n.clock,
		TickInterval: harnessTick, ElectionTicks: 10, HeartbeatTicks: 1, LogRetain: h.retain,
		TxnHistory: 1000 * harnessTick, TxnGCInterval: 1000 * harnessTick,
		Testing: &TestingKnobs{ManualTicks: true, Point: func(p LoopPoint) { h.onPoint(n, inc, p) }}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	n.rep = rep // onPoint reads it
	h.mu.Unlock()
	// The loop may have passed its first idle point before n.rep was set:
	// one empty turn settles it.
	h.onLoop(n, func() {})
}

// onPoint is the Point knob of node n's incarnation inc, on its loop.
func (h *harness) onPoint(n *hnode, inc int, p LoopPoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n.inc != inc || n.crashed {
		return // a crashed incarnation's loop, running on until it is stopped
	}
	n.last = p
	if n.crashAt == p && !h.checking {
		h.crashLocked(n, p)
		return
	}
	syncing := p == PointSyncCommit || p == PointSyncWait
	n.gate.set(syncing && !n.held)
	rep := n.rep
	idle := rep != nil && rep.inputsEmpty()
	if (p == PointIdle && idle) || (n.held && (p == PointSyncCommit || (p == PointSyncWait && idle))) {
		n.settled = true
		n.signal()
	}
}

func (n *hnode) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// inputsEmpty reports whether nothing waits on the loop's channels.
func (r *Replica) inputsEmpty() bool {
	return len(r.recvC)+len(r.propC)+len(r.readC)+len(r.confC)+len(r.reportC)+len(r.fwdC) == 0
}

// blocked reports whether n's loop waits inside a held synchronous commit:
// it takes no input until the script releases the fsync.
func (n *hnode) blocked() bool { return n.held && n.last == PointSyncCommit }

// heldAtSync reports whether n's loop waits for an fsync the script
// holds: it then takes messages (PointSyncWait) or nothing (PointSyncCommit),
// but runs no function.
func (h *harness) heldAtSync(n *hnode) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return n.held && (n.last == PointSyncCommit || n.last == PointSyncWait)
}

// onLoop runs fn on n's loop and waits until the loop has settled.
func (h *harness) onLoop(n *hnode, fn func()) {
	if h.heldAtSync(n) {
		h.t.Fatalf("node %d's loop waits for the fsync the script holds: release-sync node=%d first", n.id, n.id)
	}
	h.input(n, func() { n.rep.reportC <- fn })
}

// input hands n's loop one input (put) and waits until it has settled.
func (h *harness) input(n *hnode, put func()) {
	h.mu.Lock()
	if n.crashed {
		h.mu.Unlock()
		return // lost with the process
	}
	blocked := n.blocked()
	if !blocked {
		n.settled = false
	}
	h.mu.Unlock()
	put()
	if !blocked {
		h.settle(n)
	}
}

// settle waits until n's loop waits for input with none queued (or sits in
// a held fsync), or n crashed.
func (h *harness) settle(n *hnode) {
	deadline := time.After(settleTimeout)
	for {
		h.mu.Lock()
		done, last := n.settled || n.crashed, n.last
		h.mu.Unlock()
		if done {
			return
		}
		select {
		case <-n.wake:
		case <-deadline:
			h.t.Fatalf("node %d's Raft loop did not settle within %s; last point: %s\nnode logs:\n%s",
				n.id, settleTimeout, last, h.logs.String())
		}
	}
}

// crashLocked crashes n now: from here on nothing it writes becomes durable,
// nothing it sends arrives, and no proposer hears from it. Its loop runs on
// until finishCrashes stops it.
func (h *harness) crashLocked(n *hnode, at LoopPoint) {
	n.fs.SetIgnoreSyncs(true)
	n.crashed, n.crashedAt = true, at
	n.gate.set(true) // for good: a crashed node's syncs are ignored
	for _, p := range h.props {
		if p.node == n && p.inc == n.inc && p.state == "pending" {
			h.resolveLocked(p)
		}
	}
	for _, p := range h.props {
		if p.node == n && p.inc == n.inc && p.state == "pending" {
			p.state = "unknown"
			h.events = append(h.events, fmt.Sprintf("%s: outcome unknown: node %d crashed before answering", p.name, n.id))
		}
	}
	n.signal()
}

// finishCrashes stops the loop of every crashed node, drops what it had not
// synced (Pebble's strict in-memory FS keeps only what was synced) and
// reopens its engine for the checks and a later restart.
func (h *harness) finishCrashes() {
	for _, n := range h.nodes {
		h.mu.Lock()
		crashed := n.crashed && n.rep != nil
		h.mu.Unlock()
		if !crashed {
			continue
		}
		n.rep.Stop()
		n.tr.Close()
		if err := n.eng.Close(); err != nil {
			h.t.Fatalf("closing node %d's engine: %v", n.id, err)
		}
		n.fs.ResetToSyncedState()
		n.fs.SetIgnoreSyncs(false)
		h.mu.Lock()
		n.rep = nil
		h.mu.Unlock()
		n.eng = h.openEngine(n)
		l, err := loadRaftState(n.eng)
		if err != nil {
			h.t.Fatal(err)
		}
		h.mu.Lock()
		h.events = append(h.events, fmt.Sprintf("node %d crashed at %s; on disk: %s", n.id, n.crashedAt, describeLoaded(l)))
		h.mu.Unlock()
	}
}

// send is every node's transport: it queues what the node sends, for the
// script to deliver.
func (h *harness) send(n *hnode, inc int, msgs []raftpb.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n.inc != inc || n.crashed {
		return
	}
	for _, m := range msgs {
		if m.To != n.id {
			m.Entries = slices.Clone(m.Entries)
			h.queue = append(h.queue, m)
		}
	}
}

// deliver delivers (or drops) the queued messages that match the command's
// from=, to= and type= (all of them without), in the order they were sent.
func (h *harness) deliver(out *strings.Builder, d *datadriven.TestData, drop bool) {
	from, to := uint64(argInt(h.t, d, "from", 0)), uint64(argInt(h.t, d, "to", 0))
	typ := argStr(h.t, d, "type", "")
	limit := argInt(h.t, d, "n", 0)
	var picked, kept []raftpb.Message
	h.mu.Lock()
	for _, m := range h.queue {
		if (from == 0 || m.From == from) && (to == 0 || m.To == to) && (typ == "" || m.Type.String() == typ) &&
			(limit == 0 || len(picked) < limit) {
			picked = append(picked, m)
		} else {
			kept = append(kept, m)
		}
	}
	h.queue = kept
	h.mu.Unlock()
	for _, m := range picked {
		if drop {
			fmt.Fprintf(out, "dropped: %s\n", describeMsg(m))
			continue
		}
		h.deliverOne(out, m)
	}
}

// stabilize delivers queued messages until none is left (what the nodes
// send in answer included).
func (h *harness) stabilize(out *strings.Builder) {
	for range 1000 {
		h.mu.Lock()
		msgs := h.queue
		h.queue = nil
		h.mu.Unlock()
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			h.deliverOne(out, m)
		}
	}
	h.t.Fatal("stabilize: the nodes kept sending after 1000 rounds")
}

func (h *harness) deliverOne(out *strings.Builder, m raftpb.Message) {
	to := h.node(m.To)
	switch {
	case h.cut[[2]uint64{m.From, m.To}]:
		fmt.Fprintf(out, "dropped (partitioned): %s\n", describeMsg(m))
		return
	case to.rep == nil:
		fmt.Fprintf(out, "dropped (node %d is down): %s\n", m.To, describeMsg(m))
		return
	}
	fmt.Fprintln(out, describeMsg(m))
	if m.Type == raftpb.MsgSnap {
		h.deliverSnapshot(out, m)
		return
	}
	h.input(to, func() { to.tr.deliver([]raftpb.Message{m}) })
	// A node that crashes on this message is down for the next ones.
	h.finishCrashes()
	h.collect()
	h.flushEvents(out)
}

// flushEvents prints the events since the last flush.
func (h *harness) flushEvents(out *strings.Builder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		fmt.Fprintf(out, "  %s\n", e)
	}
	h.events = nil
}

// deliverSnapshot sends a snapshot as the gRPC transport does: the
// sender's engine as of now, streamed into the receiver's staging batch,
// then the message, then the outcome reported to the sender.
func (h *harness) deliverSnapshot(out *strings.Builder, m raftpb.Message) {
	from, to := h.node(m.From), h.node(m.To)
	if from.rep == nil {
		fmt.Fprintf(out, "dropped: the sender, node %d, is down\n", m.From)
		return
	}
	snap, err := from.tr.openSnapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	defer snap.close()
	m.Snapshot.Metadata = snap.metadata()
	var chunks [][]byte
	if err := snap.chunks(func(c []byte) error { chunks = append(chunks, c); return nil }); err != nil {
		h.t.Fatal(err)
	}
	b := &RaftBatch{ClusterID: "harness", From: m.From, To: m.To, Msgs: []raftpb.Message{m}}
	h.input(to, func() {
		err = to.tr.installSnapshot(b, func() ([]byte, error) {
			if len(chunks) == 0 {
				return nil, io.EOF
			}
			c := chunks[0]
			chunks = chunks[1:]
			return c, nil
		})
	})
	outcome := raft.SnapshotFinish
	if err != nil {
		fmt.Fprintf(out, "snapshot refused: %v\n", err)
		outcome = raft.SnapshotFailure
	}
	if from.rep != nil {
		h.onLoop(from, func() { from.rep.rn.ReportSnapshot(m.To, outcome) })
	}
}

// propose hands n's loop a put of key=value, as Replica.Write does, with a
// proposal the harness watches; only on the leader (a follower would
// forward it over gRPC).
func (h *harness) propose(out *strings.Builder, n *hnode, key, value string) {
	h.proposeCmd(out, n, &command{Kind: cmdBatch, Ops: []kvpb.Op{{Kind: kvpb.OpPut, Key: []byte(key), Value: []byte(value)}}}, key, value)
}

// proposeCopy proposes a step of an atomic COPY (copy.go): op=stage id=
// keys=a,b value=v stages CPuts of each key; op=publish id= n= publishes;
// op=abort id= aborts.
func (h *harness) proposeCopy(out *strings.Builder, n *hnode, d *datadriven.TestData) {
	id := uint64(argInt(h.t, d, "id", 0))
	switch op := argStr(h.t, d, "op"); op {
	case "stage":
		var ops []kvpb.Op
		value := argStr(h.t, d, "value")
		for _, k := range strings.Split(argStr(h.t, d, "keys"), ",") {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, ExpectAbsent: true, Key: []byte(k), Value: []byte(value)})
		}
		h.proposeCmd(out, n, &command{Kind: cmdCopyStage, CopyID: id, Ops: ops}, "stage "+argStr(h.t, d, "keys"), value)
	case "publish":
		h.proposeCmd(out, n, &command{Kind: cmdCopyPublish, CopyID: id, CopyN: uint64(argInt(h.t, d, "n", 0))}, "publish", fmt.Sprint(id))
	case "abort":
		h.proposeCmd(out, n, &command{Kind: cmdCopyAbort, CopyID: id}, "abort", fmt.Sprint(id))
	case "enable-txns":
		// A COPY stages only once transactions are enabled.
		h.proposeCmd(out, n, &command{Kind: cmdEnableTxns}, "enable-txns", "")
	default:
		h.t.Fatalf("%s: unknown copy op %q", d.Pos, op)
	}
}

func (h *harness) proposeCmd(out *strings.Builder, n *hnode, cmd *command, key, value string) {
	cmd.ID = uint64(len(h.props)+1)<<1 | 1
	hp := &hprop{name: fmt.Sprintf("p%d", len(h.props)+1), node: n, inc: n.inc, key: key, value: value, state: "pending",
		p: &proposal{cmd: cmd, data: cmd.encode(), done: make(chan result, 1)}}
	// Listed before the loop sees it: a crash on its way takes its answer.
	h.mu.Lock()
	h.props = append(h.props, hp)
	h.mu.Unlock()
	fmt.Fprintf(out, "%s: node %d proposes %s=%s\n", hp.name, n.id, key, value)
	leader := false
	h.onLoop(n, func() {
		if leader = n.rep.rn.BasicStatus().RaftState == raft.StateLeader; leader {
			n.rep.toPropose = append(n.rep.toPropose, hp.p)
		}
	})
	h.mu.Lock()
	crashed := n.crashed
	h.mu.Unlock()
	if !leader && !crashed {
		h.mu.Lock()
		hp.state = "failed"
		h.mu.Unlock()
		fmt.Fprintf(out, "  %s: node %d is not the leader: nothing proposed\n", hp.name, n.id)
	}
}

// collect records the answers the running nodes gave their proposers.
func (h *harness) collect() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.props {
		if p.state == "pending" && p.node.inc == p.inc && !p.node.crashed {
			h.resolveLocked(p)
		}
	}
}

// resolveLocked takes p's answer, if it has one.
func (h *harness) resolveLocked(p *hprop) {
	select {
	case res := <-p.p.done:
		if res.err != nil {
			p.state = "failed"
			h.events = append(h.events, fmt.Sprintf("%s: failed: %v", p.name, res.err))
			return
		}
		p.state = "acked"
		p.index = findCommand(p.node.eng, p.p.cmd.ID)
		h.events = append(h.events, fmt.Sprintf("%s: acknowledged by node %d (%s=%s at index %d)", p.name, p.node.id, p.key, p.value, p.index))
	default:
	}
}

// findCommand returns the index of the entry holding command id in eng's
// log, or 0.
func findCommand(eng *storage.Engine, id uint64) uint64 {
	l, err := loadRaftState(eng)
	if err != nil {
		return 0
	}
	for _, e := range l.entries {
		if cid, ok := commandID(e.Data); ok && e.Type == raftpb.EntryNormal && cid == id {
			return e.Index
		}
	}
	return 0
}

// check verifies the invariants after a command and returns what is
// violated:
//   - an acknowledged write is held (in the log, or applied) by a majority
//     of the voters, counting each down node by what survived its crash;
//   - no two nodes are leaders of one term;
//   - a node's applied index never goes back while it runs;
//   - state machines agree: at every applied index every node has the same
//     replicated state and applied the same entry there.
func (h *harness) check() []string {
	h.mu.Lock()
	h.checking = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.checking = false
		h.mu.Unlock()
	}()
	var v []string
	holds := map[uint64][]uint64{} // proposal index in h.props -> nodes holding it
	for _, n := range h.nodes {
		if n.rep != nil && !h.heldAtSync(n) {
			st := h.status(n)
			if st.IsLeader {
				if other, ok := h.leaders[st.Term]; ok && other != n.id {
					v = append(v, fmt.Sprintf("nodes %d and %d were both leaders of term %d", other, n.id, st.Term))
				}
				h.leaders[st.Term] = n.id
			}
			if st.Applied < n.maxApplied {
				v = append(v, fmt.Sprintf("node %d's applied index went back from %d to %d", n.id, n.maxApplied, st.Applied))
			}
			n.maxApplied = max(n.maxApplied, st.Applied)
		}
		snap := n.eng.DB.NewSnapshot()
		l, hash, err := readState(snap)
		_ = snap.Close()
		if err != nil {
			v = append(v, fmt.Sprintf("node %d: %v", n.id, err))
			continue
		}
		if f, ok := h.applied[l.applied.Index]; ok && f.hash != hash {
			v = append(v, fmt.Sprintf("nodes %d and %d hold different states at applied index %d", f.node, n.id, l.applied.Index))
		} else if !ok {
			h.applied[l.applied.Index] = fingerprint{hash, n.id}
		}
		ids := map[uint64]bool{}
		for _, e := range l.entries {
			if id, ok := commandID(e.Data); ok && e.Type == raftpb.EntryNormal {
				ids[id] = true
			}
			if e.Index > l.applied.Index {
				continue
			}
			ep := entryPrint{term: e.Term, hash: hashBytes(e.Data), node: n.id}
			if prev, ok := h.commitAt[e.Index]; ok && (prev.term != ep.term || prev.hash != ep.hash) {
				v = append(v, fmt.Sprintf("nodes %d and %d applied different entries at index %d (terms %d and %d)",
					prev.node, n.id, e.Index, prev.term, e.Term))
			} else if !ok {
				h.commitAt[e.Index] = ep
			}
		}
		for i, p := range h.props {
			if p.state == "acked" && (ids[p.p.cmd.ID] || (p.index > 0 && l.applied.Index >= p.index)) {
				holds[uint64(i)] = append(holds[uint64(i)], n.id)
			}
		}
	}
	for i, p := range h.props {
		if p.state == "acked" && len(holds[uint64(i)]) <= len(h.nodes)/2 {
			v = append(v, fmt.Sprintf("%s (%s=%s) was acknowledged, but only nodes %v hold it", p.name, p.key, p.value, holds[uint64(i)]))
		}
	}
	return v
}

// readState reads a node's Raft state and a hash of its replicated state
// from one consistent view of its engine.
func readState(snap *pebble.Snapshot) (loaded, uint64, error) {
	l, err := loadRaftStateFrom(snap)
	if err != nil {
		return l, 0, err
	}
	lo, hi := storage.ReplicatedSpan()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return l, 0, err
	}
	defer it.Close()
	f := fnv.New64a()
	for ok := it.First(); ok; ok = it.Next() {
		_, _ = f.Write(binary.AppendUvarint(nil, uint64(len(it.Key()))))
		_, _ = f.Write(it.Key())
		_, _ = f.Write(binary.AppendUvarint(nil, uint64(len(it.Value()))))
		_, _ = f.Write(it.Value())
	}
	return l, f.Sum64(), it.Error()
}

func hashBytes(b []byte) uint64 {
	f := fnv.New64a()
	_, _ = f.Write(b)
	return f.Sum64()
}

// status returns n's Raft status as its loop sees it now.
func (h *harness) status(n *hnode) Status {
	h.onLoop(n, n.rep.publishStatus)
	return n.rep.Status()
}

func (h *harness) describeStatus(n *hnode) string {
	if n.rep == nil {
		return fmt.Sprintf("%d: down", n.id)
	}
	if h.heldAtSync(n) {
		// Its loop runs nothing until the fsync completes: what it
		// wrote is all there is to show.
		l, err := loadRaftState(n.eng)
		if err != nil {
			h.t.Fatal(err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return fmt.Sprintf("%d: waits for its held fsync at %s; written: %s", n.id, n.last, describeLoaded(l))
	}
	st := h.status(n)
	role := "follower"
	switch {
	case st.IsLeader:
		role = "leader"
	case st.Leader == 0:
		role = "no leader"
	}
	s := fmt.Sprintf("%d: %s term=%d commit=%d applied=%d last=%d", n.id, role, st.Term, st.Commit, st.Applied, st.LastIndex)
	if !st.IsLeader && st.Leader != 0 {
		s += fmt.Sprintf(" leader=%d", st.Leader)
	}
	h.mu.Lock()
	if n.held {
		s += " (fsync held)"
	}
	h.mu.Unlock()
	return s
}

// describeState lists n's replicated keys and values.
func (h *harness) describeState(n *hnode) string {
	lo, hi := storage.ReplicatedSpan()
	it, err := n.eng.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		h.t.Fatal(err)
	}
	defer it.Close()
	var kvs []string
	for ok := it.First(); ok; ok = it.Next() {
		kvs = append(kvs, fmt.Sprintf("%s=%s", printable(it.Key()[1:]), printable(it.Value())))
	}
	if len(kvs) == 0 {
		return "(empty)"
	}
	return strings.Join(kvs, " ")
}

// printable is b as it is if every byte of it is printable ASCII, else
// quoted with escapes (the transaction records, a COPY's stage).
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return strconv.Quote(string(b))
		}
	}
	return string(b)
}

func describeLoaded(l loaded) string {
	last := l.trunc.Index + uint64(len(l.entries))
	return fmt.Sprintf("term=%d vote=%d commit=%d applied=%d last=%d", l.hs.Term, l.hs.Vote, l.hs.Commit, l.applied.Index, last)
}

func describeMsg(m raftpb.Message) string {
	s := fmt.Sprintf("%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case raftpb.MsgApp:
		ents := make([]string, len(m.Entries))
		for i, e := range m.Entries {
			ents[i] = fmt.Sprintf("%d/%d %s", e.Index, e.Term, describeEntry(e))
		}
		s += fmt.Sprintf(" log=%d/%d commit=%d entries=[%s]", m.LogTerm, m.Index, m.Commit, strings.Join(ents, ", "))
	case raftpb.MsgAppResp:
		s += fmt.Sprintf(" index=%d", m.Index)
	case raftpb.MsgVote, raftpb.MsgPreVote:
		s += fmt.Sprintf(" last=%d/%d", m.LogTerm, m.Index)
	case raftpb.MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d", m.Commit)
	case raftpb.MsgSnap:
		s += fmt.Sprintf(" snapshot=%d/%d", m.Snapshot.Metadata.Term, m.Snapshot.Metadata.Index)
	}
	switch {
	case m.Reject && m.Type == raftpb.MsgAppResp:
		s += fmt.Sprintf(" rejected (hint %d/%d)", m.LogTerm, m.RejectHint)
	case m.Reject:
		s += " rejected"
	}
	return s
}

func describeEntry(e raftpb.Entry) string {
	if e.Type != raftpb.EntryNormal {
		return e.Type.String()
	}
	if len(e.Data) == 0 {
		return "(empty)"
	}
	cmd, err := decodeCommand(e.Data)
	if err != nil {
		return fmt.Sprintf("(undecodable: %v)", err)
	}
	var ops []string
	for _, op := range cmd.Ops {
		ops = append(ops, fmt.Sprintf("%s=%s", op.Key, op.Value))
	}
	switch cmd.Kind {
	case cmdEnableTxns:
		return "enable-txns"
	case cmdCopyStage:
		return fmt.Sprintf("stage(%d) %s", cmd.CopyID, strings.Join(ops, ","))
	case cmdCopyPublish:
		return fmt.Sprintf("publish(%d, %d)", cmd.CopyID, cmd.CopyN)
	case cmdCopyAbort:
		return fmt.Sprintf("abort(%d)", cmd.CopyID)
	}
	return strings.Join(ops, ",")
}

// live returns the running node named by node=.
func (h *harness) live(d *datadriven.TestData) *hnode {
	n := h.node(uint64(argInt(h.t, d, "node", 0)))
	if n.rep == nil {
		h.t.Fatalf("%s: node %d is down (restart it first)", d.Pos, n.id)
	}
	return n
}

// targets returns the node named by node=, or every running node.
func (h *harness) targets(d *datadriven.TestData) []*hnode {
	if d.HasArg("node") {
		return []*hnode{h.live(d)}
	}
	var ns []*hnode
	for _, n := range h.nodes {
		if n.rep != nil {
			ns = append(ns, n)
		}
	}
	return ns
}

// close stops every node and closes its engine.
func (h *harness) close() {
	for _, n := range h.nodes {
		h.mu.Lock()
		n.held = false
		n.gate.set(true)
		n.crashed = true // ends the settling protocol: no more gate changes
		h.mu.Unlock()
		if n.rep != nil {
			n.rep.Stop()
			n.tr.Close()
		}
		_ = n.eng.Close()
	}
}

func argInt(t *testing.T, d *datadriven.TestData, key string, def int) int {
	if !d.HasArg(key) {
		return def
	}
	var v int
	d.ScanArgs(t, key, &v)
	return v
}

// argStr returns the argument key, or def; without def, the argument is
// required.
func argStr(t *testing.T, d *datadriven.TestData, key string, def ...string) string {
	if !d.HasArg(key) {
		if len(def) == 0 {
			t.Fatalf("%s: %s needs %s=", d.Pos, d.Cmd, key)
		}
		return def[0]
	}
	var v string
	d.ScanArgs(t, key, &v)
	return v
}

// syncGate holds the fsyncs of a node's write-ahead log until the harness
// lets them through: only while the node's loop waits for one
// (PointSyncCommit, PointSyncWait) and the script does not hold them. So
// no fsync completes while the loop is anywhere else, and a crash at a
// point loses exactly what was not synced when the loop got there.
type syncGate struct {
	mu   sync.Mutex
	cond *sync.Cond
	open bool
}

func newSyncGate() *syncGate {
	g := &syncGate{open: true} // open while no loop runs (bootstrap, Open, Close)
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *syncGate) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *syncGate) wait() {
	g.mu.Lock()
	for !g.open {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// gatedFS is a file system whose write-ahead log files (*.log) sync through
// a syncGate.
type gatedFS struct {
	vfs.FS
	gate *syncGate
}

func (fs gatedFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return gatedFile{File: f, gate: fs.gate}, nil
}

func (fs gatedFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

func (fs gatedFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

func (fs gatedFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, opts...)
	return fs.wrap(name, f, err)
}

type gatedFile struct {
	vfs.File
	gate *syncGate
}

func (f gatedFile) Sync() error {
	f.gate.wait()
	return f.File.Sync()
}

func (f gatedFile) SyncData() error {
	f.gate.wait()
	return f.File.SyncData()
}

func (f gatedFile) SyncTo(length int64) (bool, error) {
	f.gate.wait()
	return f.File.SyncTo(length)
}
