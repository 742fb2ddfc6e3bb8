package kv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// TestPrefetchAppliesAsPointReads applies commands large enough to be
// prefetched (applyCommand reads the keys they look up in one sorted pass)
// and the same commands with prefetching off (a point read per key), each
// on its own copy of the same state, and requires the same answer, the same
// written state and a row cache equal to that state. The state is split
// between Pebble (committed, not cached), the apply batch (an earlier
// entry's writes, not yet committed) and the row cache, since a prefetch
// must read all three as a point read does.
func TestPrefetchAppliesAsPointReads(t *testing.T) {
	const n = 100 // keys per command, above prefetchMin
	key := func(i int) []byte { return fmt.Appendf(nil, "t/%04d", i) }
	cput := func(i int) kvpb.Op {
		return kvpb.Op{Kind: kvpb.OpCPut, Key: key(i), Value: fmt.Appendf(nil, "new%d", i), ExpectAbsent: true}
	}
	inserts := func() []kvpb.Op {
		var ops []kvpb.Op
		for i := 1000; i < 1000+n; i++ {
			ops = append(ops, cput(i))
		}
		return ops
	}
	with := func(ops []kvpb.Op, more ...kvpb.Op) []kvpb.Op { return append(append([]kvpb.Op(nil), ops...), more...) }
	for _, tc := range []struct {
		name string
		ops  []kvpb.Op
	}{
		{"all new", inserts()},
		// Key 5 is in Pebble, 15 in the apply batch, 25 in the row cache.
		{"one in Pebble exists", with(inserts(), cput(5))},
		{"one in the batch exists", with(inserts(), cput(15))},
		{"one cached exists", with(inserts(), cput(25))},
		{"compare-and-swap on each", with(inserts(),
			kvpb.Op{Kind: kvpb.OpCPut, Key: key(6), Expected: []byte("old6"), Value: []byte("swapped")},
			kvpb.Op{Kind: kvpb.OpCPut, Key: key(16), Expected: []byte("batch16"), Value: []byte("swapped")},
			kvpb.Op{Kind: kvpb.OpCPut, Key: key(26), Expected: []byte("cached26"), Value: []byte("swapped")})},
		{"a stale compare fails", with(inserts(), kvpb.Op{Kind: kvpb.OpCPut, Key: key(17), Expected: []byte("old17"), Value: []byte("x")})},
		{"check", with([]kvpb.Op{{Kind: kvpb.OpCheck, Key: key(7), Expected: []byte("old7")}}, inserts()...)},
		{"check fails", with([]kvpb.Op{{Kind: kvpb.OpCheck, Key: key(18), ExpectAbsent: true}}, inserts()...)},
		{"the batch's own writes", with(inserts(),
			kvpb.Op{Kind: kvpb.OpCPut, Key: key(1000), Expected: []byte("new1000"), Value: []byte("again")},
			kvpb.Op{Kind: kvpb.OpInsertOrUpdate, Key: key(8), Value: []byte("ins"), ElseValue: []byte("upd")},
			kvpb.Op{Kind: kvpb.OpInsertOrUpdate, Key: key(2000), Value: []byte("ins"), ElseValue: []byte("upd")},
			kvpb.Op{Kind: kvpb.OpDelete, Key: key(9)},
			kvpb.Op{Kind: kvpb.OpCPut, Key: key(9), Value: []byte("reborn"), ExpectAbsent: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers, states []string
			for _, min := range []int{1, math.MaxInt} {
				prefetchMin = min
				ans, state := applyOnFreshState(t, tc.ops)
				answers, states = append(answers, ans), append(states, state)
			}
			prefetchMin = 64
			if answers[0] != answers[1] {
				t.Fatalf("prefetched: %s\npoint reads: %s", answers[0], answers[1])
			}
			if states[0] != states[1] {
				t.Fatalf("prefetched, the state is\n%s\nwith point reads\n%s", states[0], states[1])
			}
		})
	}
}

// applyOnFreshState builds the state the test's commands run on, applies
// ops as one command (with the write index on), and returns its answer and
// the resulting state; it fails the test if the row cache disagrees with it.
func applyOnFreshState(t *testing.T, ops []kvpb.Op) (answer, state string) {
	t.Helper()
	eng, err := storage.Open(t.TempDir(), storage.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	key := func(i int) []byte { return fmt.Appendf(nil, "t/%04d", i) }
	for i := 0; i < 10; i++ {
		if err := eng.DB.Set(userKey(key(i)), fmt.Appendf(nil, "old%d", i), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	// Flushed, so that reads go through the tables and their filters.
	if err := eng.DB.Flush(); err != nil {
		t.Fatal(err)
	}
	rc := newRowCache(1<<20, nil)
	b := eng.DB.NewIndexedBatch()
	defer b.Close()
	for i := 10; i < 20; i++ {
		_ = b.Set(userKey(key(i)), fmt.Appendf(nil, "batch%d", i), nil)
	}
	for i := 20; i < 30; i++ {
		v := fmt.Appendf(nil, "cached%d", i)
		_ = b.Set(userKey(key(i)), v, nil)
		rc.put(key(i), v, true)
	}
	wi := &writeIndexer{index: 7}
	res := applyCommand(b, rc, &command{Kind: batchKind(ops, Level21Fence), Ops: ops}, wi)
	var cf *kvpb.ConditionFailedError
	switch {
	case errors.As(res.err, &cf):
		answer = fmt.Sprintf("condition failed: op %d key %s exists %v actual %q", cf.Index, cf.Key, cf.Exists, cf.Actual)
	case res.err != nil:
		answer = res.err.Error()
	default:
		answer = "ok"
	}
	it, err := b.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var sb bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&sb, "%q=%q\n", it.Key(), it.Value())
		if it.Key()[0] == storage.PrefixReplicated {
			if v, exists, cached := rc.get(it.Key()[1:]); cached && (!exists || !bytes.Equal(v, it.Value())) {
				t.Fatalf("the row cache holds %q=%q (exists %v), the state %q", it.Key()[1:], v, exists, it.Value())
			}
		}
	}
	for k, row := range rc.m {
		if row.exists {
			continue
		}
		if v, closer, err := b.Get(userKey([]byte(k))); err == nil {
			closer.Close()
			t.Fatalf("the row cache holds %q as absent, the state %q", k, v)
		}
	}
	return answer, sb.String()
}
