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
	for i := range 1000 {
		c.put(fmt.Appendf(nil, "key%04d", i), bytes.Repeat([]byte{'v'}, 100), true)
		if c.bytes > c.max+200 {
			t.Fatalf("after %d puts the cache holds %d bytes, more than its bound %d plus one row", i, c.bytes, c.max)
		}
		c.shrink()
		if c.bytes > c.max {
			t.Fatalf("after shrink the cache holds %d bytes, more than its bound %d", c.bytes, c.max)
		}
	}
	sum := 0
	for k, row := range c.m {
		sum += len(k) + len(row.value) + rowOverhead
	}
	if sum != c.bytes {
		t.Fatalf("the cache counts %d bytes, its rows take %d", c.bytes, sum)
	}
	if row := len("key0000") + 100 + rowOverhead; c.bytes <= c.max/4*3-row {
		t.Fatalf("shrink evicted too much: %d bytes left, the bound is %d", c.bytes, c.max)
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
// a group, from several writers at once (so that batches hold several
// commands), and checks every answer and every node's final state against a
// model. A cache that served a stale row, or missed a write of its own
// batch, makes a conditional put, an insert-or-update or an increment answer
// or write differently from the model. The row caches hold every row, or
// (evicting) about half of them, so that they evict rows after most apply
// batches.
func TestApplyWithRowCache(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int
	}{{"whole", 0}, {"evicting", 3 << 10}} {
		t.Run(tc.name, func(t *testing.T) { testApplyWithRowCache(t, tc.bytes) })
	}
}

func testApplyWithRowCache(t *testing.T, cacheBytes int) {
	c := newCluster(t, 50)
	c.rowCacheBytes = cacheBytes
	c.bootstrap(nil)
	for id := uint64(2); id <= 3; id++ {
		c.start(id, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.leader().rep.AddLearner(ctx, id); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	waitFor(t, 10*time.Second, func() error {
		if s := c.nodes[1].rep.Status(); len(s.Voters) != 3 {
			return fmt.Errorf("voters %v learners %v", s.Voters, s.Learners)
		}
		return nil
	})
	const writers, opsPerWriter, keysPerWriter = 4, 150, 12
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
				for i := range opsPerWriter {
					r := nodes[rng.IntN(len(nodes))].rep
					k := key()
					cur, exists := m[k]
					switch op := rng.IntN(6); op {
					case 0: // INSERT … ON CONFLICT DO UPDATE
						err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpInsertOrUpdate, Key: []byte(k), Value: []byte("ins"), ElseValue: []byte("upd")}})
						if err != nil {
							return err
						}
						m[k] = map[bool]string{false: "ins", true: "upd"}[exists]
					case 1: // INSERT: a put that expects no row
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
					case 2: // UPDATE: a put that expects the current value
						if !exists {
							continue
						}
						v := fmt.Sprintf("u%d", i)
						if err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte(k), Value: []byte(v), Expected: []byte(cur)}}); err != nil {
							return fmt.Errorf("op %d: update of %s from %q: %v", i, k, cur, err)
						}
						m[k] = v
					case 3: // DELETE
						if err := r.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: []byte(k)}}); err != nil {
							return err
						}
						delete(m, k)
					case 4: // a range deletion of a third of the writer's keys
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
					case 5: // increment a counter
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
	var hits uint64
	for _, n := range nodes {
		for w, m := range models {
			prefix := fmt.Sprintf("w%d/", w)
			waitFor(t, 10*time.Second, func() error {
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
		n.rep.Stop() // the loop owns the cache's counters
		hits += n.rep.rows.hits
	}
	if hits == 0 {
		t.Fatal("the row caches served no read: the test did not exercise them")
	}
}

// TestSnapshotClearsRowCache has a follower cache a row, miss the row's
// deletion (it hears nothing while the log moves past it), and catch up
// through a snapshot. An insert-or-update of the row must then write what
// it writes on the leader, for which the row is absent: a cache that kept
// the row across the snapshot would make this node write the update branch.
func TestSnapshotClearsRowCache(t *testing.T) {
	c := bootstrap3(t, 20)
	ctx := context.Background()
	l, f := c.leader(), c.follower()
	upsert := []kvpb.Op{{Kind: kvpb.OpInsertOrUpdate, Key: []byte("row"), Value: []byte("inserted"), ElseValue: []byte("updated")}}
	if err := l.rep.Write(ctx, upsert); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if v, ok, _ := f.rep.GetLocal([]byte("row")); !ok || string(v) != "inserted" {
			return fmt.Errorf("the follower has not applied the row (%q)", v)
		}
		return nil
	})
	f.deaf.Store(true)
	if err := l.rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: []byte("row")}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := l.rep.Write(ctx, put(fmt.Sprintf("fill%03d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	if s := l.rep.Status(); s.FirstLog < 50 {
		t.Fatalf("leader log not truncated: first index %d", s.FirstLog)
	}
	f.deaf.Store(false)
	waitFor(t, 15*time.Second, func() error {
		if _, ok, _ := f.rep.GetLocal([]byte("fill099")); !ok {
			return errors.New("the follower has not caught up")
		}
		return nil
	})
	if err := l.rep.Write(ctx, upsert); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		waitFor(t, 10*time.Second, func() error {
			if v, ok, _ := n.rep.GetLocal([]byte("row")); !ok || string(v) != "inserted" {
				return fmt.Errorf("node %d holds %q for the row, want %q", n.id, v, "inserted")
			}
			return nil
		})
	}
}
