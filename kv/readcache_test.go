package kv

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble"
	dto "github.com/prometheus/client_model/go"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// TestReadCacheRules: a fill of a read that began before a write of its
// shard was applied is refused; an applied batch removes the keys it wrote
// in the replicated span, and nothing else; a range deletion that reaches
// into the span empties the cache; the bound holds.
func TestReadCacheRules(t *testing.T) {
	eng, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	c := newReadCache(1<<20, nil)
	cached := func(k string) bool { _, _, ok, _ := c.get([]byte(k)); return ok }

	_, _, _, gen := c.get([]byte("a"))
	v := []byte("va")
	c.fill([]byte("a"), v, true, gen)
	v[0] = 'X' // the cache keeps its own copy
	if got, exists, ok, _ := c.get([]byte("a")); !ok || !exists || string(got) != "va" {
		t.Fatalf("get a = %q %v %v, want the value filled", got, exists, ok)
	}
	_, _, _, gen = c.get([]byte("gone"))
	c.fill([]byte("gone"), nil, false, gen)
	if got, exists, ok, _ := c.get([]byte("gone")); !ok || exists || got != nil {
		t.Fatalf("get gone = %q %v %v, want cached as absent", got, exists, ok)
	}

	// A read of "b" begins, a write of "b" is applied, the read's fill
	// comes: refused (it may hold the value from before the write).
	_, _, _, gen = c.get([]byte("b"))
	b := eng.DB.NewBatch()
	_ = b.Set(userKey([]byte("b")), []byte("new"), nil)
	_ = b.Set([]byte("\x01raft-applied"), []byte("x"), nil) // outside the span
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := c.applied(b); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	c.fill([]byte("b"), []byte("old"), true, gen)
	if cached("b") {
		t.Fatal("a read that raced an applied write of its key was cached")
	}

	// An applied write removes its key only.
	b = eng.DB.NewBatch()
	_ = b.Delete(userKey([]byte("a")), nil)
	_ = b.DeleteRange([]byte("\x01raft-log/"), []byte("\x01raft-log0"), nil) // outside the span
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := c.applied(b); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if cached("a") || !cached("gone") {
		t.Fatalf("after a deletion of a: a cached %v, gone cached %v; want false, true", cached("a"), cached("gone"))
	}

	// A range deletion in the span empties the cache.
	b = eng.DB.NewBatch()
	_ = b.DeleteRange(userKey([]byte("x")), userKey([]byte("y")), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := c.applied(b); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if cached("gone") {
		t.Fatal("a range deletion in the replicated span left the cache filled")
	}

	// The bound: each shard stays within its share (plus one row).
	row := len("key0000") + 100 + rowOverhead
	for i := range 5000 {
		k := fmt.Appendf(nil, "key%04d", i)
		_, _, _, gen := c.get(k)
		c.fill(k, bytes.Repeat([]byte{'v'}, 100), true, gen)
	}
	for i := range c.shards {
		s := &c.shards[i]
		sum := 0
		for k, r := range s.m {
			sum += len(k) + len(r.value) + rowOverhead
		}
		if sum != s.bytes || s.bytes > c.shardMax+row {
			t.Fatalf("shard %d counts %d bytes, holds %d, bound %d", i, s.bytes, sum, c.shardMax)
		}
	}

	off := newReadCache(-1, nil)
	off.fill([]byte("k"), []byte("v"), true, 0)
	if _, _, ok, _ := off.get([]byte("k")); ok {
		t.Fatal("a disabled cache served a read")
	}
}

// TestReadCacheLinearizable reads keys on every node of a group while
// writers put and delete them, and checks each read against the writes
// acknowledged before it began: a read may not return a value older than
// the last acknowledged write, nor an absence unless a deletion at or after
// it was issued. A cache that kept a row past an applied write of it, or
// cached what a read raced, fails this. The cache must also have served
// reads (its hits are counted), so the check is of the cache.
func TestReadCacheLinearizable(t *testing.T) {
	c := newCluster(t, 0)
	c.formThree(nil)
	const keys, opsPerKey = 4, 150
	var acked, delIssued [keys]atomic.Int64
	ctx := context.Background()
	l := c.leader()
	var writers sync.WaitGroup
	errC := make(chan error, keys+3)
	for k := range keys {
		writers.Add(1)
		go func() {
			defer writers.Done()
			key := []byte(fmt.Sprintf("key%d", k))
			for i := int64(1); i <= opsPerKey; i++ {
				op := kvpb.Op{Kind: kvpb.OpPut, Key: key, Value: []byte(strconv.FormatInt(i, 10))}
				if i%7 == 0 {
					op = kvpb.Op{Kind: kvpb.OpDelete, Key: key}
					delIssued[k].Store(i)
				}
				if err := l.rep.Write(ctx, []kvpb.Op{op}); err != nil {
					errC <- err
					return
				}
				acked[k].Store(i)
			}
		}()
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for _, n := range c.nodes {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(n.id), 1))
			for reads := 0; ; reads++ {
				select {
				case <-done:
					if reads == 0 {
						errC <- fmt.Errorf("node %d read nothing", n.id)
					}
					return
				default:
				}
				k := rng.IntN(keys)
				lo := acked[k].Load()
				v, ok, err := n.rep.Get(ctx, []byte(fmt.Sprintf("key%d", k)))
				if err != nil {
					errC <- err
					return
				}
				if !ok {
					if d := delIssued[k].Load(); lo != 0 && d < lo {
						errC <- fmt.Errorf("node %d: key%d absent, but write %d was acknowledged before the read and no later deletion issued", n.id, k, lo)
						return
					}
					continue
				}
				got, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil || got < lo {
					errC <- fmt.Errorf("node %d: key%d = %q, but write %d was acknowledged before the read began", n.id, k, v, lo)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(done)
	readers.Wait()
	close(errC)
	for err := range errC {
		t.Fatal(err)
	}
	// Once the writes stop, every node reads every key a few times: each
	// read returns the last write, and the reads after the first are the
	// cache's to serve. Under a loaded machine the writers may have
	// invalidated every cached row before a second read of it came, so
	// this is what guarantees the hits counted below.
	for _, n := range c.nodes {
		for k := range keys {
			key := []byte(fmt.Sprintf("key%d", k))
			last := acked[k].Load()
			for range 3 {
				v, ok, err := n.rep.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if last%7 == 0 {
					if ok {
						t.Fatalf("node %d: key%d = %q after its last write, a deletion", n.id, k, v)
					}
				} else if !ok || string(v) != strconv.FormatInt(last, 10) {
					t.Fatalf("node %d: key%d = %q (present %v) after its last write, %d", n.id, k, v, ok, last)
				}
			}
		}
	}
	var hits float64
	for _, n := range c.nodes {
		var m dto.Metric
		if err := n.metrics.readCacheHits.Write(&m); err != nil {
			t.Fatal(err)
		}
		hits += m.Counter.GetValue()
	}
	if hits == 0 {
		t.Fatal("the read cache served no read: the test did not exercise it")
	}
}

// TestReadCacheNoFillAfterNewerRead pins down the window between an apply's
// commit to Pebble and its removal of the keys it wrote. On a one-voter
// group (where linearize returns at once while the published status shows
// nothing committed unapplied) three reads of one key interleave with a
// write of it:
//
//   - R0 misses the cache and reads the old value from Pebble, and is held
//     before it fills the cache;
//   - the write's batch is committed, and apply is held before it removes
//     the key from the cache;
//   - R1 misses, reads the new value from Pebble and returns it;
//   - R0 fills the cache with the old value and returns it (concurrent with
//     the write: either value is right);
//   - R2 begins after R1 returned the new value: it must not return the
//     old one. Before the fix no removal had yet bumped the shard's
//     generation, so R0's fill was taken and R2 read it from the cache.
func TestReadCacheNoFillAfterNewerRead(t *testing.T) {
	ctx := context.Background()
	type hold struct{ reached, release chan struct{} }
	newHold := func() hold { return hold{make(chan struct{}), make(chan struct{})} }
	var (
		mu        sync.Mutex
		fillKey   []byte // the next Get of it is held before its fill
		fillHold  hold
		applyKey  []byte // the next apply whose commit holds applyVal in it is held
		applyVal  []byte
		applyHold hold
		eng       *storage.Engine
	)
	knobs := &TestingKnobs{
		ReadCacheFill: func(key []byte) {
			mu.Lock()
			h, ok := fillHold, fillKey != nil && bytes.Equal(key, fillKey)
			if ok {
				fillKey = nil
			}
			mu.Unlock()
			if ok {
				close(h.reached)
				<-h.release
			}
		},
		ApplyCommitted: func() {
			mu.Lock()
			h, k, want := applyHold, applyKey, applyVal
			mu.Unlock()
			if k == nil {
				return
			}
			v, closer, err := eng.DB.Get(userKey(k))
			if err != nil || !bytes.Equal(v, want) {
				if err == nil {
					_ = closer.Close()
				}
				return
			}
			_ = closer.Close()
			mu.Lock()
			applyKey = nil
			mu.Unlock()
			close(h.reached)
			<-h.release
		},
	}
	c := newCluster(t, 0)
	c.knobs = knobs
	n := c.bootstrap(nil)
	eng = n.eng
	if c.leader() != n {
		t.Fatal("the one node is not the leader")
	}
	type got struct {
		v   string
		err error
	}
	get := func(key []byte, out chan<- got) {
		v, ok, err := n.rep.Get(ctx, key)
		if !ok && err == nil {
			v = []byte("<absent>")
		}
		out <- got{string(v), err}
	}
	// The published status may show a commit not yet applied, which makes
	// R1 and R2 wait for the held apply (no race): try again with another
	// key until one attempt shows the race.
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			t.Fatal("in 20 attempts the held apply never left a published status that lets a read through at once")
		}
		key := fmt.Appendf(nil, "k%d", attempt)
		if err := n.rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: key, Value: []byte("old")}}); err != nil {
			t.Fatal(err)
		}
		// R0 reads the old value and is held before its fill.
		mu.Lock()
		fillKey, fillHold = key, newHold()
		fh := fillHold
		mu.Unlock()
		r0 := make(chan got, 1)
		go get(key, r0)
		<-fh.reached
		// The write's batch is committed; apply is held.
		mu.Lock()
		applyKey, applyVal, applyHold = key, []byte("new"), newHold()
		ah := applyHold
		mu.Unlock()
		w := make(chan error, 1)
		go func() { w <- n.rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: key, Value: []byte("new")}}) }()
		<-ah.reached
		if st := n.rep.status.Load(); !(st.IsLeader && len(st.Voters) == 1 && st.Applied >= st.Commit) {
			close(fh.release)
			close(ah.release)
			if err := <-w; err != nil {
				t.Fatal(err)
			}
			<-r0
			continue
		}
		r1 := make(chan got, 1)
		get(key, r1)
		g1 := <-r1
		if g1.err != nil || g1.v != "new" {
			t.Fatalf("R1 read %q, %v during the held apply; want the committed %q", g1.v, g1.err, "new")
		}
		close(fh.release)
		if g0 := <-r0; g0.err != nil {
			t.Fatal(g0.err)
		}
		r2 := make(chan got, 1)
		get(key, r2)
		g2 := <-r2
		close(ah.release)
		if err := <-w; err != nil {
			t.Fatal(err)
		}
		if g2.err != nil || g2.v != "new" {
			t.Fatalf("R2 began after R1 returned %q, and read %q, %v", "new", g2.v, g2.err)
		}
		return
	}
}
