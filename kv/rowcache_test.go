package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/testutil"
)

func TestRowCacheBounds(t *testing.T) {
	c := newRowCache(10<<10, nil)
	v := []byte("value")
	c.put([]byte("k"), v, true)
	v[0] = 'X' // the cache keeps its own copy
	if got, exists, ok := c.get([]byte("k")); !ok || !exists || string(got) != "value" {
		t.Fatalf("get k = %q %v %v, want the value put", got, exists, ok)
	}
	c.put([]byte("gone"), []byte("ignored"), false)
	if got, exists, ok := c.get([]byte("gone")); !ok || exists || got != nil {
		t.Fatalf("get gone = %q %v %v, want cached as absent", got, exists, ok)
	}
	row := len("key0000") + 100 + rowOverhead
	for i := range 1000 {
		c.put(fmt.Appendf(nil, "key%04d", i), bytes.Repeat([]byte{'v'}, 100), true)
		if c.bytes > c.limit+row {
			t.Fatalf("after %d puts the cache holds %d bytes, more than its bound %d plus one row", i, c.bytes, c.limit)
		}
		c.shrink()
		if c.bytes > c.limit {
			t.Fatalf("after shrink the cache holds %d bytes, more than its bound %d", c.bytes, c.limit)
		}
	}
	sum := 0
	for k, row := range c.m {
		sum += len(k) + len(row.value) + rowOverhead
	}
	if sum != c.bytes {
		t.Fatalf("the cache counts %d bytes, its rows take %d", c.bytes, sum)
	}
	if c.bytes <= c.limit/4*3-row {
		t.Fatalf("shrink evicted too much: %d bytes left, the bound is %d", c.bytes, c.limit)
	}
	c.clear()
	if _, _, ok := c.get([]byte("key0999")); ok || c.bytes != 0 {
		t.Fatalf("clear left rows (%d bytes)", c.bytes)
	}

	off := newRowCache(0, nil)
	off.put([]byte("k"), []byte("v"), true)
	if _, _, ok := off.get([]byte("k")); ok {
		t.Fatal("a disabled cache served a read")
	}
}

// TestApplyWithRowCache runs every kind of read-dependent command through
// a group, from several writers at once (so that apply batches hold several
// commands), and checks every answer and every node's final state against a
// model. A cache that served a stale row, or missed a write of its own
// batch, makes a conditional put, an insert-or-update or an increment answer
// or write differently from the model. The row caches hold every row
// (whole), about half of them (evicting, so that most apply batches end in
// an eviction), or nothing (off).
func TestApplyWithRowCache(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bytes      int
		minHitRate float64
	}{{"whole", 0, 0.3}, {"evicting", 3 << 10, 0.15}, {"off", -1, 0}} {
		t.Run(tc.name, func(t *testing.T) { testApplyWithRowCache(t, tc.bytes, tc.minHitRate) })
	}
}

func testApplyWithRowCache(t *testing.T, cacheBytes int, minHitRate float64) {
	c := newCluster(t, 50)
	c.rowCacheBytes = cacheBytes
	c.formThree(nil)
	const writers, opsPerWriter, keysPerWriter = 4, 200, 12
	type model map[string]string
	models := make([]model, writers)
	errC := make(chan error, writers)
	nodes := []*tnode{c.nodes[1], c.nodes[2], c.nodes[3]}
	for w := range writers {
		m := model{}
		models[w] = m
		go func() {
			errC <- func() error {
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				ctx := context.Background()
				key := func() string { return fmt.Sprintf("w%d/k%02d", w, rng.IntN(keysPerWriter)) }
				upsert := func(k string) kvpb.Op {
					return kvpb.Op{Kind: kvpb.OpInsertOrUpdate, Key: []byte(k), Value: []byte("ins"), ElseValue: []byte("upd")}
				}
				upserted := func(k string) string {
					if _, ok := m[k]; ok {
						return "upd"
					}
					return "ins"
				}
				for i := range opsPerWriter {
					r := nodes[rng.IntN(len(nodes))].rep
					k := key()
					cur, exists := m[k]
					switch op := rng.IntN(40); {
					case op < 12: // INSERT … ON CONFLICT DO UPDATE
						if err := r.Write(ctx, []kvpb.Op{upsert(k)}); err != nil {
							return err
						}
						m[k] = upserted(k)
					case op < 20: // INSERT: a put that expects no row
						v := fmt.Sprintf("v%d", i)
						err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte(k), Value: []byte(v), ExpectAbsent: true}})
						var cf *kvpb.ConditionFailedError
						switch {
						case err == nil && exists:
							return fmt.Errorf("op %d: insert of existing %s succeeded", i, k)
						case err != nil && !(exists && errors.As(err, &cf)):
							return fmt.Errorf("op %d: insert of %s (exists %v): %v", i, k, exists, err)
						case err == nil:
							m[k] = v
						}
					case op < 28: // UPDATE: a put that expects the current value
						if !exists {
							continue
						}
						v := fmt.Sprintf("u%d", i)
						if err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte(k), Value: []byte(v), Expected: []byte(cur)}}); err != nil {
							return fmt.Errorf("op %d: update of %s from %q: %v", i, k, cur, err)
						}
						m[k] = v
					case op < 32: // DELETE
						if err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: []byte(k)}}); err != nil {
							return err
						}
						delete(m, k)
					case op < 35: // increment a counter
						ck := fmt.Sprintf("w%d/counter", w)
						var want int64 = 1
						if v, ok := m[ck]; ok {
							want = int64(binary.BigEndian.Uint64([]byte(v))) + 1
						}
						got, err := r.Increment(ctx, []byte(ck), 1)
						if err != nil {
							return err
						}
						if got != want {
							return fmt.Errorf("op %d: increment of %s returned %d, want %d", i, ck, got, want)
						}
						m[ck] = string(binary.BigEndian.AppendUint64(nil, uint64(got)))
					case op < 37: // several ops in one command, all applied
						k2, k3 := key(), key()
						ops := []kvpb.Op{upsert(k), upsert(k2), {Kind: kvpb.OpDelete, Key: []byte(k3)}}
						if err := r.Write(ctx, ops); err != nil {
							return err
						}
						// Later ops see the earlier ones' writes.
						m[k] = upserted(k)
						m[k2] = upserted(k2)
						delete(m, k3)
					case op < 39: // several ops in one command whose last fails: none applies
						k2 := key()
						ops := []kvpb.Op{
							{Kind: kvpb.OpPut, Key: []byte(k), Value: []byte("lost")},
							upsert(k2),
							{Kind: kvpb.OpCPut, Key: []byte(k2), Value: []byte("lost"), Expected: []byte("never")},
						}
						var cf *kvpb.ConditionFailedError
						if err := r.Write(ctx, ops); !errors.As(err, &cf) {
							return fmt.Errorf("op %d: a batch whose condition fails: %v, want a failed condition", i, err)
						}
					default: // a range deletion of a third of the writer's keys
						lo := rng.IntN(keysPerWriter - 4)
						start, end := fmt.Sprintf("w%d/k%02d", w, lo), fmt.Sprintf("w%d/k%02d", w, lo+4)
						if err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: []byte(start), EndKey: []byte(end)}}); err != nil {
							return err
						}
						for mk := range m {
							if mk >= start && mk < end {
								delete(m, mk)
							}
						}
					}
				}
				return nil
			}()
		}()
	}
	for range writers {
		if err := <-errC; err != nil {
			t.Fatal(err)
		}
	}
	var hits, misses uint64
	for _, n := range nodes {
		for w, m := range models {
			prefix := fmt.Sprintf("w%d/", w)
			testutil.SucceedsWithin(t, 10*time.Second, func() error {
				kvs, err := n.rep.ScanLocal([]byte(prefix), storage.PrefixEnd([]byte(prefix)), 0, false)
				if err != nil {
					return err
				}
				got := model{}
				for _, kv := range kvs {
					got[string(kv.Key)] = string(kv.Value)
				}
				if fmt.Sprint(got) != fmt.Sprint(m) {
					return fmt.Errorf("node %d holds %v for writer %d, the model %v", n.id, got, w, m)
				}
				return nil
			})
		}
		n.rep.Stop() // the loop owns the cache and its counters
		hits, misses = hits+n.rep.rows.hits, misses+n.rep.rows.miss
	}
	rate := float64(hits) / float64(max(hits+misses, 1))
	t.Logf("row cache: %d hits, %d misses (%.0f%%)", hits, misses, 100*rate)
	if rate < minHitRate {
		t.Fatalf("the row caches served %.0f%% of the reads, want at least %.0f%%: the test did not exercise them", 100*rate, 100*minHitRate)
	}
}

// TestSnapshotClearsRowCache has a follower cache a row, miss the row's
// deletion (it hears nothing while the log moves past it), and catch up
// through a snapshot. An insert-or-update of the row must then write what
// it writes on the leader, for which the row is absent: a cache that kept
// the row across the snapshot would make this node write the update branch.
// Its read cache (readCache) must not serve the row after the snapshot
// either.
func TestSnapshotClearsRowCache(t *testing.T) {
	c := bootstrap3(t, 20)
	ctx := context.Background()
	l, f := c.leader(), c.follower()
	upsert := []kvpb.Op{{Kind: kvpb.OpInsertOrUpdate, Key: []byte("row"), Value: []byte("inserted"), ElseValue: []byte("updated")}}
	if err := l.rep.Write(ctx, upsert); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if v, ok, _ := f.rep.GetLocal([]byte("row")); !ok || string(v) != "inserted" {
			return fmt.Errorf("the follower has not applied the row (%q)", v)
		}
		return nil
	})
	// The follower's read cache holds the row too (readCache).
	if v, ok, err := f.rep.Get(ctx, []byte("row")); err != nil || !ok || string(v) != "inserted" {
		t.Fatalf("the follower reads %q, %v, %v for the row, want %q", v, ok, err, "inserted")
	}
	f.deaf.Store(true)
	if err := l.rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: []byte("row")}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := l.rep.Write(ctx, put(fmt.Sprintf("fill%03d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.SucceedsWithin(t, 5*time.Second, func() error { // Status is published every 50 ms
		if s := l.rep.Status(); s.FirstLog < 50 {
			return fmt.Errorf("leader log not truncated: first index %d", s.FirstLog)
		}
		return nil
	})
	f.deaf.Store(false)
	testutil.SucceedsWithin(t, 15*time.Second, func() error {
		if _, ok, _ := f.rep.GetLocal([]byte("fill099")); !ok {
			return errors.New("the follower has not caught up")
		}
		return nil
	})
	if v, ok, err := f.rep.Get(ctx, []byte("row")); err != nil || ok {
		t.Fatalf("after the snapshot the follower reads %q, %v, %v for the deleted row, want nothing", v, ok, err)
	}
	if err := l.rep.Write(ctx, upsert); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			if v, ok, _ := n.rep.GetLocal([]byte("row")); !ok || string(v) != "inserted" {
				return fmt.Errorf("node %d holds %q for the row, want %q", n.id, v, "inserted")
			}
			return nil
		})
	}
}

// TestValidateOpsRefusesMixedRanges pins the rule that keeps applyCommand's
// order of writes (range deletions as met, point writes at the end) from
// mattering: a batch with a range deletion holds nothing else.
func TestValidateOpsRefusesMixedRanges(t *testing.T) {
	del := kvpb.Op{Kind: kvpb.OpDeleteRange, Key: []byte("a"), EndKey: []byte("z")}
	for _, op := range []kvpb.Op{
		{Kind: kvpb.OpPut, Key: []byte("m"), Value: []byte("v")},
		{Kind: kvpb.OpDelete, Key: []byte("m")},
		{Kind: kvpb.OpInsertOrUpdate, Key: []byte("m"), Value: []byte("v")},
		{Kind: kvpb.OpCPut, Key: []byte("m"), Value: []byte("v"), ExpectAbsent: true},
	} {
		if err := validateOps([]kvpb.Op{op, del}); err == nil {
			t.Errorf("a batch of op kind %d and a range deletion was accepted", op.Kind)
		}
	}
	if err := validateOps([]kvpb.Op{del, {Kind: kvpb.OpDeleteRange, Key: []byte("z"), EndKey: []byte("zz")}}); err != nil {
		t.Errorf("two range deletions: %v", err)
	}
}
