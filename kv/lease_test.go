package kv

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/testutil"
)

// regOp is one operation on the register of the lease tests.
type regOp struct {
	write bool
	value int // written, or read (-1: the key was absent)
}

var leaseRegister = porcupine.Model{
	Init: func() any { return -1 },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regOp)
		if in.write {
			return true, in.value
		}
		return output.(int) == state.(int), state
	},
	DescribeOperation: func(input, output any) string {
		if in := input.(regOp); in.write {
			return fmt.Sprintf("write %d", in.value)
		}
		return fmt.Sprintf("read -> %d", output.(int))
	},
}

// history records operations on one key for porcupine.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// write writes v to the register through n and records it (with an
// unbounded end if its outcome is unknown).
func (h *history) write(ctx context.Context, client int, n *tnode, v int) error {
	call := h.now()
	err := n.rep.Write(ctx, put("reg", strconv.Itoa(v)))
	ret := h.now()
	if err != nil {
		ret = math.MaxInt64 // it may still take effect
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: regOp{write: true, value: v}, Call: call, Return: ret})
	h.mu.Unlock()
	return err
}

// read reads the register through n; a failed read is not recorded.
func (h *history) read(ctx context.Context, client int, n *tnode) (int, error) {
	call := h.now()
	val, ok, err := n.rep.Get(ctx, []byte("reg"))
	ret := h.now()
	if err != nil {
		return 0, err
	}
	v := -1
	if ok {
		v, _ = strconv.Atoi(string(val))
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: regOp{}, Output: v, Call: call, Return: ret})
	h.mu.Unlock()
	return v, nil
}

func (h *history) linearizable(t *testing.T) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	res := porcupine.CheckOperationsTimeout(leaseRegister, h.ops, 10*time.Second)
	if res == porcupine.Unknown {
		t.Fatalf("porcupine gave up on %d operations", len(h.ops))
	}
	return res == porcupine.Ok
}

// leaseCluster forms three nodes whose leader serves leased reads: Raft
// ticks of 20ms (an election timeout of at least 160ms), --max-offset 60ms
// (a lease of 100ms). With monitor, each node runs a clock-offset monitor
// over the others' clocks and serves leased reads only while it is healthy;
// without, leased reads are always allowed.
func leaseCluster(t *testing.T, monitor bool) (*tcluster, map[nodeid.ID]*rpc.ClockMonitor) {
	c := newCluster(t, 0)
	c.maxOffset = 60 * time.Millisecond
	var monMu sync.Mutex
	mons := map[nodeid.ID]*rpc.ClockMonitor{}
	c.leaseReads = func(id nodeid.ID) func() bool {
		return func() bool {
			if !monitor {
				return true
			}
			monMu.Lock()
			m := mons[id]
			monMu.Unlock()
			return m != nil && m.Healthy()
		}
	}
	c.formThree(map[string][]byte{"boot": []byte("1")})
	if !monitor {
		return c, nil
	}
	// Each node's monitor reads the others' clocks directly (a Ping
	// without the network).
	clocks := map[nodeid.ID]*rpc.Clock{}
	for id, n := range c.nodes {
		clocks[id] = n.clock
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	monMu.Lock()
	defer monMu.Unlock()
	for id := range clocks {
		peers := map[nodeid.ID]string{}
		for p := range clocks {
			if p != id {
				peers[p] = strconv.Itoa(int(p))
			}
		}
		m := rpc.NewClockMonitor(rpc.ClockMonitorConfig{
			Clock:     clocks[id],
			MaxOffset: c.maxOffset,
			Interval:  20 * time.Millisecond,
			Peers:     func() map[nodeid.ID]string { return peers },
			Ping: func(_ context.Context, addr string) (time.Time, error) {
				p, _ := strconv.Atoi(addr)
				return clocks[nodeid.ID(p)].Now().Round(0), nil
			},
		})
		mons[id] = m
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	return c, mons
}

// freeze makes n's clock stand still (its offset falls behind by the time
// that passes) until the test ends.
func freeze(t *testing.T, n *tnode) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); <-stopped })
	base := time.Now()
	n.clock.SetOffset(0)
	go func() {
		defer close(stopped)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				n.clock.SetOffset(-time.Since(base))
			}
		}
	}()
}

// TestLeaseReadsUnderClockAndStallFaults partitions a leader that holds a
// lease while its Raft loop is stalled (no ticks: no CheckQuorum step-down,
// no renewals, as a stuck or paused loop), lets the other two elect a
// leader and write, and reads through the old leader. Porcupine checks the
// history of the register.
//
//   - good clock: the lease runs out on the old leader's clock before the
//     others can elect; its reads then need a ReadIndex round, which fails.
//   - frozen clock, monitor: the clock-offset monitor finds the old
//     leader's clock beyond --max-offset before the partition, and it stops
//     serving leased reads.
//   - frozen clock, no monitor: the control. The lease never runs out on a
//     clock that stands still, and the old leader serves a stale read,
//     which porcupine catches: what the monitor is for.
func TestLeaseReadsUnderClockAndStallFaults(t *testing.T) {
	for _, tc := range []struct {
		name            string
		frozen, monitor bool
		wantStale       bool
	}{
		{name: "good clock", frozen: false, monitor: false},
		{name: "frozen clock, monitor", frozen: true, monitor: true},
		{name: "frozen clock, no monitor", frozen: true, monitor: false, wantStale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, mons := leaseCluster(t, tc.monitor)
			ctx := context.Background()
			h := &history{start: time.Now()}
			old := c.leader()
			if err := h.write(ctx, 0, old, 0); err != nil {
				t.Fatal(err)
			}
			testutil.SucceedsWithin(t, 10*time.Second, func() error {
				if st := old.rep.Status(); !st.Lease {
					return fmt.Errorf("node %d holds no lease yet (leased reads allowed: %v)", old.id, st.LeaseReads)
				}
				return nil
			})
			if v, err := h.read(ctx, 1, old); err != nil || v != 0 {
				t.Fatalf("read through the leader: %d, %v", v, err)
			}

			// Readers on every node run through the whole scenario.
			rctx, stopReaders := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for i, n := range []*tnode{c.nodes[1], c.nodes[2], c.nodes[3]} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for rctx.Err() == nil {
						cctx, cancel := context.WithTimeout(rctx, 100*time.Millisecond)
						_, _ = h.read(cctx, 10+i, n)
						cancel()
						// Paced, to keep the history small enough for
						// porcupine.
						select {
						case <-rctx.Done():
						case <-time.After(2 * time.Millisecond):
						}
					}
				}()
			}

			if tc.frozen {
				freeze(t, old)
				if tc.monitor {
					testutil.SucceedsWithin(t, 10*time.Second, func() error {
						if m := mons[old.id]; m.Healthy() {
							return fmt.Errorf("monitor of node %d still healthy: %s", old.id, m.Status().Message())
						}
						if old.rep.Status().LeaseReads {
							return fmt.Errorf("node %d still allows leased reads", old.id)
						}
						return nil
					})
					for id, m := range mons {
						if id != old.id && !m.Healthy() {
							t.Errorf("node %d, whose clock is right, finds itself beyond the bound: %s", id, m.Status().Message())
						}
					}
				}
			}
			old.stalled.Store(true)
			c.isolated.Store(old.id, true)
			var nl *tnode
			testutil.SucceedsWithin(t, 10*time.Second, func() error {
				for id, n := range c.nodes {
					if id != old.id && n.rep.Status().IsLeader {
						nl = n
						return nil
					}
				}
				return fmt.Errorf("no new leader")
			})
			if err := h.write(ctx, 2, nl, 1); err != nil {
				t.Fatal(err)
			}
			stale := false
			for i := 0; i < 5; i++ {
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				v, err := h.read(cctx, 3, old)
				cancel()
				if err == nil && v == 0 {
					stale = true
				}
			}
			if v, err := h.read(ctx, 4, nl); err != nil || v != 1 {
				t.Fatalf("read through the new leader: %d, %v", v, err)
			}
			stopReaders()
			wg.Wait()
			lin := h.linearizable(t)
			switch {
			case tc.wantStale && (lin || !stale):
				t.Fatalf("the control did not serve a stale read (stale %v, linearizable %v): the test no longer shows what the monitor prevents", stale, lin)
			case !tc.wantStale && (!lin || stale):
				t.Fatalf("stale read through the old leader (stale %v, linearizable %v)", stale, lin)
			}
			c.isolated.Delete(old.id)
			old.stalled.Store(false)
		})
	}
}

// TestRestartedReplicaAbstainsFromVotes (R5): a replica ignores vote
// requests for the least election timeout after it starts, except those of
// a leadership transfer; then it answers them as Raft does.
func TestRestartedReplicaAbstainsFromVotes(t *testing.T) {
	c := bootstrap3(t, 0)
	f := c.follower()
	dir := c.stop(f.id)
	n := c.start(f.id, dir)
	// Hold the replica's clock an hour back: it has "just started" for as
	// long as the test needs.
	n.clock.SetOffset(-time.Hour)
	vote := raftpb.Message{Type: raftpb.MsgVote, From: 1, To: raftID(n.id), Term: 1000}
	prevote := raftpb.Message{Type: raftpb.MsgPreVote, From: 1, To: raftID(n.id), Term: 1000}
	transfer := raftpb.Message{Type: raftpb.MsgVote, From: 1, To: raftID(n.id), Term: 1000, Context: []byte(campaignTransfer)}
	if !n.rep.abstains(vote) || !n.rep.abstains(prevote) {
		t.Fatal("a just-started replica answers vote requests")
	}
	if n.rep.abstains(transfer) || n.rep.abstains(raftpb.Message{Type: raftpb.MsgHeartbeat}) {
		t.Fatal("a just-started replica ignores a transfer's vote or a heartbeat")
	}
	n.clock.SetOffset(0)
	testutil.SucceedsWithin(t, 5*time.Second, func() error {
		if n.rep.abstains(vote) {
			return fmt.Errorf("still abstaining")
		}
		return nil
	})
}

// TestLeaseEndsWithLeadershipTransfer (R5): a leader that transfers its
// leadership stops serving leased reads before the transferee can win, and
// the new leader takes a lease of its own; reads through both, before and
// after a write on the new leader, are linearizable.
func TestLeaseEndsWithLeadershipTransfer(t *testing.T) {
	c, _ := leaseCluster(t, false)
	ctx := context.Background()
	h := &history{start: time.Now()}
	old := c.leader()
	if err := h.write(ctx, 0, old, 0); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if !old.rep.Status().Lease {
			return fmt.Errorf("no lease yet")
		}
		return nil
	})
	to := c.follower()
	rctx, stopReaders := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, n := range []*tnode{old, to} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil {
				cctx, cancel := context.WithTimeout(rctx, 200*time.Millisecond)
				_, _ = h.read(cctx, 10+i, n)
				cancel()
				select {
				case <-rctx.Done():
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}
	// The old leader hears nothing more (it never learns of the new term)
	// and its loop stalls (no CheckQuorum), as soon as it has asked for the
	// transfer: only the transfer itself can end its lease in time.
	old.deaf.Store(true)
	old.stalled.Store(true)
	old.rep.TransferLeadership(to.id)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if !to.rep.Status().IsLeader {
			return fmt.Errorf("node %d not leader yet", to.id)
		}
		return nil
	})
	if err := h.write(ctx, 1, to, 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if v, err := h.read(cctx, 2, old); err == nil && v == 0 {
			t.Errorf("stale read through the old leader after the transfer")
		}
		cancel()
	}
	old.deaf.Store(false)
	old.stalled.Store(false)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if !to.rep.Status().Lease {
			return fmt.Errorf("the new leader holds no lease")
		}
		return nil
	})
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if old.rep.Status().Lease {
			return fmt.Errorf("the old leader still holds a lease")
		}
		return nil
	})
	stopReaders()
	wg.Wait()
	if !h.linearizable(t) {
		t.Fatal("reads across the transfer are not linearizable")
	}
}

// TestLeaseServesFollowerReads: while the leader holds a lease, it answers
// the ReadIndex requests of followers from it (one message each way, no
// round of heartbeats), and those reads see every acknowledged write; with
// leased reads off, they take a heartbeat round again.
func TestLeaseServesFollowerReads(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	c := newCluster(t, 0)
	c.maxOffset = 60 * time.Millisecond
	c.leaseReads = func(nodeid.ID) func() bool { return on.Load }
	c.formThree(map[string][]byte{"boot": []byte("1")})
	ctx := context.Background()
	l := c.leader()
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if !l.rep.Status().Lease {
			return fmt.Errorf("no lease yet")
		}
		return nil
	})
	f := c.follower()
	leased := counterValue(l.metrics.leaseReadsTotal)
	for i := 0; i < 20; i++ {
		if err := l.rep.Write(ctx, put("reg", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		v, ok, err := f.rep.Get(ctx, []byte("reg"))
		if err != nil || !ok || string(v) != strconv.Itoa(i) {
			t.Fatalf("follower read after write %d: %q %v %v", i, v, ok, err)
		}
	}
	if got := counterValue(l.metrics.leaseReadsTotal) - leased; got < 20 {
		t.Fatalf("the leader answered %v of the follower's 20 reads from its lease", got)
	}
	on.Store(false)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if l.rep.Status().LeaseReads {
			return fmt.Errorf("leased reads still on")
		}
		return nil
	})
	leased = counterValue(l.metrics.leaseReadsTotal)
	if _, _, err := f.rep.Get(ctx, []byte("reg")); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(l.metrics.leaseReadsTotal) - leased; got != 0 {
		t.Fatalf("a follower read was answered from the lease with leased reads off")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
