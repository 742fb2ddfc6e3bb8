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
			rng := rand.New(rand.NewPCG(n.id, 1))
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
