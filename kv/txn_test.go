package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/testutil"
	"github.com/kvnode/kvnode/txn"
)

func TestTxnMetaPrefixIsReserved(t *testing.T) {
	if txnMetaPrefix != keys.TxnMetaPrefix {
		t.Fatalf("kv keeps transaction records under %q, but keys reserves %q for them", txnMetaPrefix, keys.TxnMetaPrefix)
	}
}

// tk is a key of table 7, the only table these tests use.
func tk(s string) []byte { return append(keys.TablePrefix(7), s...) }

func tableSpan() (lo, hi []byte) { return keys.TableSpan(7) }

func isConflict(err error) bool {
	var ce *kvpb.TxnConflictError
	return errors.As(err, &ce)
}

func enabledCluster(t *testing.T) (*tcluster, context.Context) {
	c := bootstrap3(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if err := c.leader().rep.EnableTxns(ctx); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

func TestTxnsDisabledUntilEnabled(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx := context.Background()
	rep := c.nodes[2].rep
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("a"), Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Snapshot(ctx); !errors.Is(err, kvpb.ErrTxnsDisabled) {
		t.Fatalf("snapshot before enabling: %v, want ErrTxnsDisabled", err)
	}
	if err := rep.CommitTxn(ctx, &kvpb.TxnCommit{Snapshot: 1, Writes: []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("b")}}}); !errors.Is(err, kvpb.ErrTxnsDisabled) {
		t.Fatalf("commit before enabling: %v, want ErrTxnsDisabled", err)
	}
	// Nothing is recorded before the command: a 2.0 replica would not.
	for id, n := range c.nodes {
		if recs, _ := n.rep.ScanLocal([]byte(keys.TxnMetaPrefix), keys.PrefixEnd([]byte(keys.TxnMetaPrefix)), 0, false); len(recs) != 0 {
			t.Errorf("node %d holds transaction records before they were enabled: %q", id, recs)
		}
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := c.nodes[3].rep.EnableTxns(ctx); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := rep.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if v, ok, _ := snap.Get(tk("a")); !ok || string(v) != "1" {
		t.Fatalf("snapshot read %q %v", v, ok)
	}
	from := make(map[nodeid.ID]uint64)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for id, n := range c.nodes {
			v, ok, _ := n.rep.GetLocal([]byte(stampsFromKey))
			if !ok {
				return fmt.Errorf("node %d has not applied the command", id)
			}
			from[id] = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if from[1] != from[2] || from[2] != from[3] {
		t.Fatalf("replicas enabled at different entries: %v", from)
	}
}

// TestTxnValidation pins each rule of the commit's validation: a key read,
// a span scanned (phantoms), a key seen absent and then written and
// deleted, a LIMIT scan's real extent, a range deletion, and writes made
// outside transactions.
func TestTxnValidation(t *testing.T) {
	c, ctx := enabledCluster(t)
	n1, n2 := c.nodes[1].rep, c.nodes[2].rep
	mustWrite := func(ops ...kvpb.Op) {
		t.Helper()
		if err := n2.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	putOp := func(k, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte(v)} }
	mustWrite(putOp("a", "1"), putOp("b", "1"), putOp("m", "1"))
	lo, hi := tableSpan()

	for _, tc := range []struct {
		name      string
		read      func(t *txn.Txn) error
		meanwhile []kvpb.Op // written outside the transaction after its reads
		conflict  bool
	}{
		{name: "key read, then written", conflict: true,
			read:      func(x *txn.Txn) error { _, _, err := x.Get(ctx, tk("a")); return err },
			meanwhile: []kvpb.Op{putOp("a", "2")}},
		{name: "key read, another key written",
			read:      func(x *txn.Txn) error { _, _, err := x.Get(ctx, tk("a")); return err },
			meanwhile: []kvpb.Op{putOp("b", "2")}},
		{name: "key seen absent, then inserted", conflict: true,
			read:      func(x *txn.Txn) error { _, _, err := x.Get(ctx, tk("c")); return err },
			meanwhile: []kvpb.Op{putOp("c", "1")}},
		{name: "key read, then deleted", conflict: true,
			read:      func(x *txn.Txn) error { _, _, err := x.Get(ctx, tk("b")); return err },
			meanwhile: []kvpb.Op{{Kind: kvpb.OpDelete, Key: tk("b")}}},
		{name: "span scanned, then a row inserted (phantom)", conflict: true,
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, lo, hi, 0, false); return err },
			meanwhile: []kvpb.Op{putOp("d", "1")}},
		{name: "LIMIT 1 scan, a row inserted beyond it",
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, lo, hi, 1, false); return err },
			meanwhile: []kvpb.Op{putOp("z", "1")}},
		{name: "reverse LIMIT 1 scan, a row inserted before it",
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, lo, hi, 1, true); return err },
			meanwhile: []kvpb.Op{putOp("0", "1")}},
		{name: "LIMIT 1 scan, its row deleted", conflict: true,
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, lo, hi, 1, false); return err },
			meanwhile: []kvpb.Op{{Kind: kvpb.OpDelete, Key: tk("0")}}},
		{name: "span scanned, then the table's range deleted", conflict: true,
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, tk("a"), tk("b"), 0, false); return err },
			meanwhile: []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := txn.New(n1, 0)
			if err := tc.read(x); err != nil {
				t.Fatal(err)
			}
			mustWrite(tc.meanwhile...)
			if err := x.Write(ctx, []kvpb.Op{putOp("out", tc.name)}); err != nil {
				t.Fatal(err)
			}
			err := x.Commit(ctx)
			if tc.conflict != isConflict(err) || (!tc.conflict && err != nil) {
				t.Fatalf("commit: %v, want conflict=%v", err, tc.conflict)
			}
			v, ok, _ := n2.Get(ctx, tk("out"))
			if committed := ok && string(v) == tc.name; committed == tc.conflict {
				t.Fatalf("the write of the transaction: %q %v, want committed=%v", v, ok, !tc.conflict)
			}
		})
	}
}

// TestTxnReadsItsOwnWritesAndSavepoints checks the overlay of buffered
// writes in point reads and scans, and that a savepoint undoes writes.
func TestTxnReadsItsOwnWritesAndSavepoints(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[1].rep
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("a"), Value: []byte("1")}, {Kind: kvpb.OpPut, Key: tk("c"), Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	lo, hi := tableSpan()
	x := txn.New(rep, 0)
	scan := func(limit int, reverse bool) string {
		t.Helper()
		kvs, err := x.Scan(ctx, lo, hi, limit, reverse)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, kv := range kvs {
			fmt.Fprintf(&b, "%s=%s ", kv.Key[9:], kv.Value)
		}
		return b.String()
	}
	if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("b"), Value: []byte("2")}, {Kind: kvpb.OpDelete, Key: tk("a")}}); err != nil {
		t.Fatal(err)
	}
	if got := scan(0, false); got != "b=2 c=1 " {
		t.Fatalf("scan: %q", got)
	}
	if got := scan(1, false); got != "b=2 " {
		t.Fatalf("scan limit 1: %q", got)
	}
	if got := scan(1, true); got != "c=1 " {
		t.Fatalf("reverse scan limit 1: %q", got)
	}
	sp := x.Savepoint()
	if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: tk("b"), Expected: []byte("2"), Value: []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	var cf *kvpb.ConditionFailedError
	if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: tk("c"), ExpectAbsent: true, Value: []byte("x")}}); !errors.As(err, &cf) {
		t.Fatalf("insert of an existing key: %v", err)
	}
	if got := scan(0, false); got != "b=3 c=1 " {
		t.Fatalf("scan after update: %q", got)
	}
	x.RollbackTo(sp)
	if got := scan(0, false); got != "b=2 c=1 " {
		t.Fatalf("scan after ROLLBACK TO SAVEPOINT: %q", got)
	}
	if err := x.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	kvs, _ := rep.Scan(ctx, lo, hi, 0, false)
	if len(kvs) != 2 || string(kvs[0].Value) != "2" || string(kvs[1].Value) != "1" {
		t.Fatalf("after commit: %q", kvs)
	}
}

// TestTxnBankIsSerializable runs concurrent transfers between accounts
// through all three nodes, with snapshot readers: every reader sees the
// same total, no balance goes negative, and every replica ends with the
// same data and the same write index records.
func TestTxnBankIsSerializable(t *testing.T) {
	c, ctx := enabledCluster(t)
	const accounts, start = 5, 100
	var init []kvpb.Op
	for i := 0; i < accounts; i++ {
		init = append(init, kvpb.Op{Kind: kvpb.OpPut, Key: tk(fmt.Sprint(i)), Value: binary.BigEndian.AppendUint64(nil, start)})
	}
	if err := c.nodes[1].rep.Write(ctx, init); err != nil {
		t.Fatal(err)
	}
	lo, hi := tableSpan()
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed, conflicts int
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			rep := c.nodes[nodeid.ID(w%3+1)].rep
			for time.Now().Before(deadline) {
				x := txn.New(rep, 0)
				if w%3 == 0 { // a reader
					kvs, err := x.Scan(ctx, lo, hi, 0, false)
					x.Rollback()
					if err != nil {
						fail("reader: %v", err)
						return
					}
					var sum uint64
					for _, kv := range kvs {
						sum += binary.BigEndian.Uint64(kv.Value)
					}
					if sum != accounts*start || len(kvs) != accounts {
						fail("a reader saw a total of %d over %d accounts", sum, len(kvs))
					}
					continue
				}
				from, to := tk(fmt.Sprint(rng.IntN(accounts))), tk(fmt.Sprint(rng.IntN(accounts)))
				if bytes.Equal(from, to) {
					continue
				}
				fv, _, err1 := x.Get(ctx, from)
				tv, _, err2 := x.Get(ctx, to)
				if err := errors.CombineErrors(err1, err2); err != nil {
					fail("read: %v", err)
					return
				}
				a, b := binary.BigEndian.Uint64(fv), binary.BigEndian.Uint64(tv)
				amt := uint64(rng.IntN(20))
				if amt > a {
					x.Rollback()
					continue
				}
				if err := x.Write(ctx, []kvpb.Op{
					{Kind: kvpb.OpPut, Key: from, Value: binary.BigEndian.AppendUint64(nil, a-amt)},
					{Kind: kvpb.OpPut, Key: to, Value: binary.BigEndian.AppendUint64(nil, b+amt)},
				}); err != nil {
					fail("write: %v", err)
					return
				}
				err := x.Commit(ctx)
				mu.Lock()
				switch {
				case err == nil:
					committed++
				case isConflict(err):
					conflicts++
				default:
					failures = append(failures, fmt.Sprintf("commit: %v", err))
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	if committed == 0 || conflicts == 0 {
		t.Fatalf("committed %d, conflicts %d: the test did not exercise contention", committed, conflicts)
	}
	t.Logf("committed %d transfers, %d conflicts", committed, conflicts)
	// Every replica holds the same rows and the same records.
	leader := c.leader().rep
	if _, err := leader.Scan(ctx, lo, hi, 0, false); err != nil { // a barrier
		t.Fatal(err)
	}
	dump := func(n *tnode) string {
		rows, _ := n.rep.ScanLocal(lo, hi, 0, false)
		meta, _ := n.rep.ScanLocal([]byte(keys.TxnMetaPrefix), keys.PrefixEnd([]byte(keys.TxnMetaPrefix)), 0, false)
		return fmt.Sprintf("%x %x", rows, meta)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		want := dump(c.nodes[1])
		for id := nodeid.ID(2); id <= 3; id++ {
			if got := dump(c.nodes[id]); got != want {
				return fmt.Errorf("node %d's state differs from node 1's", id)
			}
		}
		return nil
	})
	var sum uint64
	rows, _ := leader.Scan(ctx, lo, hi, 0, false)
	for _, kv := range rows {
		sum += binary.BigEndian.Uint64(kv.Value)
	}
	if sum != accounts*start {
		t.Fatalf("final total %d, want %d", sum, accounts*start)
	}
}

// TestTxnWriteSkewRefused: two transactions each read both rows and write
// one; they must not both commit.
func TestTxnWriteSkewRefused(t *testing.T) {
	c, ctx := enabledCluster(t)
	if err := c.nodes[1].rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("x"), Value: []byte("on")}, {Kind: kvpb.OpPut, Key: tk("y"), Value: []byte("on")}}); err != nil {
		t.Fatal(err)
	}
	a, b := txn.New(c.nodes[2].rep, 0), txn.New(c.nodes[3].rep, 0)
	for _, x := range []*txn.Txn{a, b} {
		for _, k := range []string{"x", "y"} {
			if _, _, err := x.Get(ctx, tk(k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = a.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("x"), Value: []byte("off")}})
	_ = b.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("y"), Value: []byte("off")}})
	errA, errB := a.Commit(ctx), b.Commit(ctx)
	if errA != nil || !isConflict(errB) {
		t.Fatalf("first commit: %v; second: %v (want nil, then a conflict)", errA, errB)
	}
}

// testAppendFunc is an apply function for these tests: it appends its
// argument to the value.
const testAppendFunc kvpb.ApplyFunc = 250

func init() {
	kvpb.RegisterApplyFunc(testAppendFunc, func(_, cur, arg []byte) ([]byte, error) {
		return append(bytes.Clone(cur), arg...), nil
	})
}

// TestTxnBlindApply: transactions that only check that a row exists and
// apply a function to it where the commit applies do not conflict with
// each other, but do with a transaction that read the row's value, and
// with one that deleted the row; the value is resolved inside the
// transaction when it reads the row.
func TestTxnBlindApply(t *testing.T) {
	c, ctx := enabledCluster(t)
	n1, n2, n3 := c.nodes[1].rep, c.nodes[2].rep, c.nodes[3].rep
	if err := n1.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("hot"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	apply := func(arg string) []kvpb.Op {
		return []kvpb.Op{{Kind: kvpb.OpApply, Key: tk("hot"), Func: testAppendFunc, Value: []byte(arg)}}
	}
	blind := func(rep *Replica, arg string) *txn.Txn {
		t.Helper()
		x := txn.New(rep, 0)
		if ok, err := x.Exists(ctx, tk("hot")); err != nil || !ok {
			t.Fatalf("exists: %v %v", ok, err)
		}
		if err := x.Write(ctx, apply(arg)); err != nil {
			t.Fatal(err)
		}
		return x
	}
	a, b := blind(n2, "a"), blind(n3, "b")
	reader := txn.New(n1, 0)
	if v, _, err := reader.Get(ctx, tk("hot")); err != nil || string(v) != "v" {
		t.Fatalf("reader: %q %v", v, err)
	}
	_ = reader.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("other"), Value: []byte("x")}})
	// Inside its transaction, b reads its own pending apply on top of the
	// snapshot (and so joins the read set from then on).
	if v, _, err := b.Get(ctx, tk("hot")); err != nil || string(v) != "vb" {
		t.Fatalf("b reads %q %v, want vb", v, err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatalf("first blind commit: %v", err)
	}
	if err := b.Commit(ctx); !isConflict(err) {
		t.Fatalf("b read the row's value, then a changed it: %v, want a conflict", err)
	}
	if err := reader.Commit(ctx); !isConflict(err) {
		t.Fatalf("the reader of the value: %v, want a conflict", err)
	}
	c2, d := blind(n2, "c"), blind(n3, "d")
	for _, x := range []*txn.Txn{c2, d} {
		if err := x.Commit(ctx); err != nil {
			t.Fatalf("concurrent blind applies must both commit: %v", err)
		}
	}
	if v, _, _ := n1.Get(ctx, tk("hot")); string(v) != "vacd" {
		t.Fatalf("value %q, want vacd", v)
	}
	// A blind apply conflicts with the row's deletion.
	e := blind(n2, "e")
	if err := n3.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: tk("hot")}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Commit(ctx); !isConflict(err) {
		t.Fatalf("apply to a row deleted meanwhile: %v, want a conflict", err)
	}
	if _, found, _ := n1.Get(ctx, tk("hot")); found {
		t.Fatal("the deleted row came back")
	}
}

// TestTxnRecordsCollected: the GC of transaction records in one command
// (cmdTxnGC) removes, on every replica alike, the records at or below its
// horizon; a transaction whose
// snapshot is older fails as too old, and validation after the GC still
// catches a conflict and still lets a clean transaction commit.
func TestTxnRecordsCollected(t *testing.T) {
	c, ctx := enabledCluster(t)
	n1, n2 := c.nodes[1].rep, c.nodes[2].rep
	put := func(k, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte(v)} }
	for _, ops := range [][]kvpb.Op{{put("a", "1"), put("b", "1")}, {{Kind: kvpb.OpDelete, Key: tk("b")}}} {
		if err := n1.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	old := txn.New(n2, 0)
	if _, _, err := old.Get(ctx, tk("a")); err != nil {
		t.Fatal(err)
	}
	_ = old.Write(ctx, []kvpb.Op{put("c", "old")})
	// An entry after old's snapshot, so that the horizon passes it.
	if err := n1.Write(ctx, []kvpb.Op{put("z", "1")}); err != nil {
		t.Fatal(err)
	}
	records := func(n *tnode) []kvpb.KeyValue {
		var out []kvpb.KeyValue
		for _, p := range []string{writeIndexPrefix, existIndexPrefix} {
			kvs, err := n.rep.ScanLocal([]byte(p), recordsEnd(p), 0, false)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, kvs...)
		}
		return out
	}
	if len(records(c.nodes[1])) == 0 {
		t.Fatal("no records before the GC")
	}
	l := c.leader().rep
	if _, err := l.Scan(ctx, tk(""), tk("~"), 0, false); err != nil { // a barrier
		t.Fatal(err)
	}
	// The command that collects everything in one step, which no binary
	// proposes any more but a log may hold: it applies as it always did.
	if _, err := l.proposeTxnGC(&command{Kind: cmdTxnGC, Snapshot: l.appliedIndex()}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for id, n := range c.nodes {
			if recs := records(n); len(recs) != 0 {
				return fmt.Errorf("node %d keeps %d records at or below the horizon", id, len(recs))
			}
			if _, ok, _ := n.rep.GetLocal([]byte(gcHorizonKey)); !ok {
				return fmt.Errorf("node %d has no horizon", id)
			}
		}
		return nil
	})
	var ce *kvpb.TxnConflictError
	if err := old.Commit(ctx); !errors.As(err, &ce) || !ce.TooOld {
		t.Fatalf("a transaction from before the horizon: %v, want too old", err)
	}
	clean, racing := txn.New(n1, 0), txn.New(n2, 0)
	for _, x := range []*txn.Txn{clean, racing} {
		if _, _, err := x.Get(ctx, tk("a")); err != nil {
			t.Fatal(err)
		}
	}
	_ = clean.Write(ctx, []kvpb.Op{put("d", "clean")})
	if err := clean.Commit(ctx); err != nil {
		t.Fatalf("a clean transaction after the GC: %v", err)
	}
	if err := n1.Write(ctx, []kvpb.Op{put("a", "2")}); err != nil {
		t.Fatal(err)
	}
	_ = racing.Write(ctx, []kvpb.Op{put("e", "racing")})
	if err := racing.Commit(ctx); !isConflict(err) {
		t.Fatalf("a conflict after the GC: %v", err)
	}
}

// gcStep proposes one step of the collection through rep (the leader) and
// returns the number of records it visited.
func gcStep(t *testing.T, rep *Replica, horizon, records, bytes uint64) uint64 {
	t.Helper()
	res, err := rep.proposeTxnGC(&command{Kind: cmdTxnGCStep, Snapshot: horizon, GCRecords: records, GCBytes: bytes})
	if err != nil {
		t.Fatal(err)
	}
	return uint64(res.value)
}

// recordsAround counts n's write and existence index records at or below h
// and above it.
func recordsAround(t *testing.T, n *tnode, h uint64) (below, above int) {
	t.Helper()
	for _, p := range []string{writeIndexPrefix, existIndexPrefix} {
		kvs, err := n.rep.ScanLocal([]byte(p), recordsEnd(p), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if binary.BigEndian.Uint64(kv.Value) <= h {
				below++
			} else {
				above++
			}
		}
	}
	return below, above
}

// sameState waits until every node holds the same rows and transaction
// records (the collection cursor and horizon included).
func sameState(t *testing.T, c *tcluster) {
	t.Helper()
	dump := func(n *tnode) string {
		lo, hi := tableSpan()
		rows, _ := n.rep.ScanLocal(lo, hi, 0, false)
		meta, _ := n.rep.ScanLocal([]byte(keys.TxnMetaPrefix), keys.PrefixEnd([]byte(keys.TxnMetaPrefix)), 0, false)
		return fmt.Sprintf("%x %x", rows, meta)
	}
	testutil.SucceedsWithin(t, 15*time.Second, func() error {
		var want string
		var first nodeid.ID
		for id, n := range c.nodes {
			if got := dump(n); want == "" {
				want, first = got, id
			} else if got != want {
				return fmt.Errorf("node %d's rows or transaction records differ from node %d's", id, first)
			}
		}
		return nil
	})
}

// TestTxnGCInSteps: the collection in bounded steps (cmdTxnGCStep). The
// horizon moves with the first step, so partway through the pass a
// transaction from before it fails as too old, and validation still
// catches conflicts on keys whose records the pass has and has not yet
// visited; no step visits more records than its bound; writes go on
// between the steps; a follower stopped partway comes back by a Raft
// snapshot that carries the cursor; at the end no record at or below the
// horizon is left, those written since are, and every replica holds the
// same records.
func TestTxnGCInSteps(t *testing.T) {
	c := bootstrap3(t, 20) // a short log: a stopped follower comes back by snapshot
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l := c.leader()
	if err := l.rep.EnableTxns(ctx); err != nil {
		t.Fatal(err)
	}
	key := func(i int) []byte { return tk(fmt.Sprintf("k%03d", i)) }
	putOp := func(k []byte, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: k, Value: []byte(v)} }
	write := func(ops ...kvpb.Op) {
		t.Helper()
		if err := l.rep.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i += 10 {
		var ops []kvpb.Op
		for j := i; j < i+10; j++ {
			ops = append(ops, putOp(key(j), "1"))
		}
		write(ops...)
		write(kvpb.Op{Kind: kvpb.OpDelete, Key: key(i + 3)})
	}
	old := txn.New(l.rep, 0)
	if _, _, err := old.Get(ctx, key(5)); err != nil {
		t.Fatal(err)
	}
	_ = old.Write(ctx, []kvpb.Op{putOp(tk("old"), "x")})
	write(putOp(tk("z"), "1")) // so that the horizon passes old's snapshot
	h := l.rep.appliedIndex()

	const limit = 10
	if v := gcStep(t, l.rep, h, limit, 0); v != limit {
		t.Fatalf("the first step visited %d records, want %d", v, limit)
	}
	if below, _ := recordsAround(t, l, h); below < 300 {
		t.Fatalf("%d records at or below the horizon left after the first step, want most of the 400", below)
	}
	var ce *kvpb.TxnConflictError
	if err := old.Commit(ctx); !errors.As(err, &ce) || !ce.TooOld {
		t.Fatalf("a transaction from before the horizon, partway through the pass: %v, want too old", err)
	}
	// Partway: k150's records are not visited yet, k001's existence record
	// is collected (the pass visits e/ first).
	valueReader, existReader, clean := txn.New(l.rep, 0), txn.New(c.nodes[2].rep, 0), txn.New(c.nodes[3].rep, 0)
	if _, _, err := valueReader.Get(ctx, key(150)); err != nil {
		t.Fatal(err)
	}
	if ok, err := existReader.Exists(ctx, key(1)); err != nil || !ok {
		t.Fatalf("k001 exists: %v %v", ok, err)
	}
	if _, _, err := clean.Get(ctx, key(160)); err != nil {
		t.Fatal(err)
	}
	write(putOp(key(150), "2"))
	write(kvpb.Op{Kind: kvpb.OpDelete, Key: key(1)})
	for name, x := range map[string]*txn.Txn{"a reader of k150's value": valueReader, "a reader of k001's existence": existReader} {
		_ = x.Write(ctx, []kvpb.Op{putOp(tk("out"), name)})
		if err := x.Commit(ctx); !isConflict(err) {
			t.Fatalf("%s, written meanwhile, partway through the pass: %v, want a conflict", name, err)
		}
	}
	_ = clean.Write(ctx, []kvpb.Op{putOp(tk("clean"), "1")})
	if err := clean.Commit(ctx); err != nil {
		t.Fatalf("a clean transaction partway through the pass: %v", err)
	}

	// The rest of the pass, one step at a time, with writes in between
	// (rewrites of keys before and after the cursor, and new keys); a
	// follower misses the middle of it.
	f := c.follower()
	fid := f.id
	dir := c.stop(fid)
	stoppedAt := l.rep.appliedIndex()
	steps, restarted, written := 1, false, 0
	for i := 0; l.rep.txnGCPassUnderWay(); i++ {
		written = i + 1
		if i == 30 {
			testutil.SucceedsWithin(t, 5*time.Second, func() error { // the status is published every 50 ms
				if first := l.rep.Status().FirstLog; first <= stoppedAt {
					return fmt.Errorf("the leader's log starts at %d, not past %d: the follower would not need a snapshot", first, stoppedAt)
				}
				return nil
			})
			back := c.start(fid, dir)
			testutil.SucceedsWithin(t, 15*time.Second, func() error {
				want, ok1, _ := l.rep.GetLocal([]byte(gcCursorKey))
				got, ok2, _ := back.rep.GetLocal([]byte(gcCursorKey))
				if !ok1 || !ok2 || !bytes.Equal(got, want) {
					return fmt.Errorf("node %d's cursor is %q (%v), the leader's %q (%v)", fid, got, ok2, want, ok1)
				}
				return nil
			})
			restarted = true
		}
		write(putOp(key(i*7%200), "w"), putOp(tk(fmt.Sprintf("n%03d", i)), "1"))
		if v := gcStep(t, l.rep, 0, limit, 0); v > limit {
			t.Fatalf("step %d visited %d records, more than its bound of %d", steps+1, v, limit)
		}
		steps++
	}
	if !restarted || steps < 40 {
		t.Fatalf("the pass took %d steps (the follower restarted: %v): it should have spanned more than 40", steps, restarted)
	}
	sameState(t, c)
	for id, n := range c.nodes {
		below, above := recordsAround(t, n, h)
		if below != 0 || above == 0 {
			t.Fatalf("node %d after the pass: %d records at or below the horizon, %d above", id, below, above)
		}
		if v, _, _ := n.rep.GetLocal([]byte(gcHorizonKey)); binary.BigEndian.Uint64(v) != h {
			t.Fatalf("node %d's horizon is %x, want %d", id, v, h)
		}
		// No deletion, a range one included, took a record written since
		// the horizon, or a key beside the records.
		for i := 0; i < written; i++ {
			for _, rk := range [][]byte{writeIndexKey(tk(fmt.Sprintf("n%03d", i))), existIndexKey(tk(fmt.Sprintf("n%03d", i))), writeIndexKey(key(i * 7 % 200))} {
				if v, ok, _ := n.rep.GetLocal(rk); !ok || binary.BigEndian.Uint64(v) <= h {
					t.Fatalf("node %d: the record %q written after the horizon is %x (found %v)", id, rk, v, ok)
				}
			}
		}
		if _, ok, _ := n.rep.GetLocal([]byte(stampsFromKey)); !ok {
			t.Fatalf("node %d lost %q", id, stampsFromKey)
		}
	}
	t.Logf("a pass over 400 records and those written meanwhile took %d steps", steps)

	// After the pass, validation still catches a conflict.
	after := txn.New(l.rep, 0)
	if _, _, err := after.Get(ctx, key(150)); err != nil {
		t.Fatal(err)
	}
	write(putOp(key(150), "3"))
	_ = after.Write(ctx, []kvpb.Op{putOp(tk("out"), "after")})
	if err := after.Commit(ctx); !isConflict(err) {
		t.Fatalf("a conflict after the pass: %v", err)
	}
	// A step without a pass under way and without a higher horizon does
	// nothing; the byte bound binds as the record bound does.
	if v := gcStep(t, l.rep, h, limit, 0); v != 0 || l.rep.txnGCPassUnderWay() {
		t.Fatalf("a step at the horizon already collected visited %d records", v)
	}
	// Every record key is longer than minLen.
	minLen := uint64(1 + len(existIndexPrefix) + len(tk("")))
	if v := gcStep(t, l.rep, l.rep.appliedIndex(), 1000, 40); v < 1 || v > 40/minLen+1 {
		t.Fatalf("a step bounded at 40 bytes of keys visited %d records, keys being at least %d bytes", v, minLen)
	}
	sameState(t, c)
}

// TestSweepTxnRecords pins what one step of a pass deletes: exactly the
// records at or below the horizon among those it visits, whether it
// deletes them one by one or a run of them with a range deletion, never a
// record above the horizon beside a run, nor a key between the two record
// prefixes; and it stops at its bound, handing back the next record.
func TestSweepTxnRecords(t *testing.T) {
	eng, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close() }()
	b := eng.DB.NewIndexedBatch()
	defer b.Close()
	const h = 10
	live := map[string]bool{}
	set := func(k string, idx uint64) {
		_ = b.Set(userKey([]byte(k)), binary.BigEndian.AppendUint64(nil, idx), nil)
		if idx > h {
			live[k] = true
		}
	}
	for i := 0; i < 60; i++ {
		idx := uint64(5)
		switch i {
		case 10, 20, 21, 45, 59: // after runs of 10, 9 and 23 records, and two alone
			idx = 50
		}
		set(string(writeIndexKey(tk(fmt.Sprintf("%02d", i)))), idx)
	}
	for i := 0; i < 12; i++ {
		idx := uint64(h) // at the horizon: collected
		if i == 3 {
			idx = h + 1
		}
		set(string(existIndexKey(tk(fmt.Sprintf("%02d", i)))), idx)
	}
	// Keys between and around the prefixes, which a pass never deletes.
	for _, k := range []string{gcHorizonKey, stampsFromKey, string(rangeRecordKey(3, tk("a"))), txnMetaPrefix + "a", txnMetaPrefix + "x"} {
		set(k, 1)
		live[k] = true
	}
	left := func() []string {
		kvs, err := scanReader(b, []byte(txnMetaPrefix), keys.PrefixEnd([]byte(txnMetaPrefix)), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range kvs {
			out = append(out, string(kv.Key))
		}
		return out
	}

	// Steps of 7 records: the bound holds, and each hands the next on.
	cursor, steps := []byte(existIndexPrefix), 0
	for cursor != nil {
		visited, next, err := sweepTxnRecords(b, cursor, h, 7, 0, 8)
		if err != nil {
			t.Fatal(err)
		}
		if steps++; visited > 7 || (next != nil && visited != 7) {
			t.Fatalf("step %d visited %d records (next %q)", steps, visited, next)
		}
		if next != nil && bytes.Compare(next, cursor) <= 0 {
			t.Fatalf("step %d went from %q back to %q", steps, cursor, next)
		}
		cursor = next
	}
	if steps != (72+6)/7 {
		t.Fatalf("%d steps over 72 records, want %d", steps, (72+6)/7)
	}
	got := left()
	if len(got) != len(live) {
		t.Fatalf("left %d keys, want the %d live ones: %q", len(got), len(live), got)
	}
	for _, k := range got {
		if !live[k] {
			t.Fatalf("the record %q, at or below the horizon, was left", k)
		}
	}

	// One step over everything (runs of 8 and more deleted as ranges),
	// after the records at or below the horizon are written again.
	for i := 0; i < 60; i++ {
		for _, k := range []string{string(writeIndexKey(tk(fmt.Sprintf("%02d", i)))), string(existIndexKey(tk(fmt.Sprintf("%02d", i))))} {
			if !live[k] && (i < 12 || k[1] == 'w') {
				set(k, 1)
			}
		}
	}
	if visited, next, err := sweepTxnRecords(b, []byte(existIndexPrefix), h, 1000, 0, 8); err != nil || next != nil || visited != 12+60 {
		t.Fatalf("one step over everything: visited %d, next %q, %v", visited, next, err)
	}
	if got := left(); len(got) != len(live) {
		t.Fatalf("left %d keys, want the %d live ones: %q", len(got), len(live), got)
	}
}

// TestTxnGCLoop: the leader collects transaction records older than
// TxnHistory by itself, in as many steps as it takes.
func TestTxnGCLoop(t *testing.T) {
	c := newCluster(t, 0)
	c.txnGC = 50 * time.Millisecond
	c.txnGCStep = 3
	c.formThree(map[string][]byte{"boot": []byte("1")})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.leader().rep.EnableTxns(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []kvpb.Op
	for i := 0; i < 20; i++ {
		ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: tk(fmt.Sprint(i)), Value: []byte("1")})
	}
	if err := c.nodes[2].rep.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		for id, n := range c.nodes {
			kvs, err := n.rep.ScanLocal([]byte(writeIndexPrefix), recordsEnd(writeIndexPrefix), 0, false)
			if err != nil {
				return err
			}
			if len(kvs) != 0 {
				return fmt.Errorf("node %d still has %d write index records", id, len(kvs))
			}
		}
		return nil
	})
}

// TestTxnWriteLimits: a write that would take a transaction past its limit
// on keys or on bytes fails with txn.ErrTooLarge and leaves the transaction
// as it was (it can still commit what it had); a key written again counts
// once.
func TestTxnWriteLimits(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[1].rep
	x := txn.NewLimited(rep, txn.Limits{Writes: 3, Bytes: 1 << 10})
	put := func(k, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte(v)} }
	if err := x.Write(ctx, []kvpb.Op{put("a", "1"), put("b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := x.Write(ctx, []kvpb.Op{put("a", "2"), put("c", "1")}); err != nil {
		t.Fatalf("the third key, a written again: %v", err)
	}
	err := x.Write(ctx, []kvpb.Op{put("a", "3"), put("d", "1")})
	if !errors.Is(err, txn.ErrTooLarge) || !strings.Contains(err.Error(), "4 keys, more than the limit of 3 keys") {
		t.Fatalf("a fourth key: %v, want ErrTooLarge naming the key limit", err)
	}
	err = x.Write(ctx, []kvpb.Op{put("b", strings.Repeat("x", 1<<10))})
	if !errors.Is(err, txn.ErrTooLarge) || !strings.Contains(err.Error(), "more than the limit of 1024 bytes") {
		t.Fatalf("a value past the byte limit: %v, want ErrTooLarge naming the byte limit", err)
	}
	if err := x.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "2", "b": "1", "c": "1", "d": ""} {
		v, found, err := rep.Get(ctx, tk(k))
		if err != nil || string(v) != want || found != (want != "") {
			t.Fatalf("%s = %q (found %v, %v), want %q", k, v, found, err, want)
		}
	}
}

// recordingDB is a replica that keeps the last commit it was asked for, so
// a test can see what a transaction sent to be validated.
type recordingDB struct {
	*Replica
	last *kvpb.TxnCommit
}

func (r *recordingDB) CommitTxn(ctx context.Context, c *kvpb.TxnCommit) error {
	r.last = c
	return r.Replica.CommitTxn(ctx, c)
}

// TestTxnReadsInsideScannedSpans: a key read inside a span the transaction
// scanned (a COPY's duplicate check after a TRUNCATE in the same
// transaction, a blind UPDATE's existence read) is validated by the span
// alone, not by a record of its own, and a change of that key after the
// snapshot still fails the commit; a LIMIT scan covers only what it
// returned, so a read beyond it keeps its record.
func TestTxnReadsInsideScannedSpans(t *testing.T) {
	c, ctx := enabledCluster(t)
	n1, n2 := c.nodes[1].rep, c.nodes[2].rep
	putOp := func(k, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte(v)} }
	insertOp := func(k string) kvpb.Op {
		return kvpb.Op{Kind: kvpb.OpCPut, Key: tk(k), Value: []byte("new"), ExpectAbsent: true}
	}
	lo, hi := tableSpan()
	keysOf := func(ks [][]byte) (out []string) {
		for _, k := range ks {
			out = append(out, string(k[len(lo):]))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		// run reads and writes in the transaction; a meanwhile write of
		// key (outside it) must make its commit conflict when conflict is
		// set.
		run       func(x *txn.Txn) error
		meanwhile kvpb.Op
		conflict  bool
		readKeys  []string // the read keys the commit carries
		existKeys []string
	}{
		{name: "truncate, insert, the key inserted meanwhile", conflict: true,
			run: func(x *txn.Txn) error {
				return x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi}, insertOp("k")})
			},
			meanwhile: putOp("k", "other")},
		{name: "truncate, insert, another table written meanwhile",
			run: func(x *txn.Txn) error {
				return x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi}, insertOp("k")})
			},
			meanwhile: kvpb.Op{Kind: kvpb.OpPut, Key: append(keys.TablePrefix(8), 'k'), Value: []byte("1")}},
		{name: "key read before the scan, then written", conflict: true,
			run: func(x *txn.Txn) error {
				if _, _, err := x.Get(ctx, tk("a")); err != nil {
					return err
				}
				_, err := x.Scan(ctx, lo, hi, 0, false)
				return err
			},
			meanwhile: putOp("a", "2")},
		{name: "existence read inside the scan, then the row deleted", conflict: true,
			run: func(x *txn.Txn) error {
				if _, err := x.Scan(ctx, tk("a"), tk("z"), 0, false); err != nil {
					return err
				}
				_, err := x.Exists(ctx, tk("m"))
				return err
			},
			meanwhile: kvpb.Op{Kind: kvpb.OpDelete, Key: tk("m")}},
		{name: "read beyond a LIMIT scan keeps its record", conflict: true, readKeys: []string{"m"},
			run: func(x *txn.Txn) error {
				if _, err := x.Scan(ctx, lo, hi, 1, false); err != nil { // covers up to a
					return err
				}
				_, _, err := x.Get(ctx, tk("m"))
				return err
			},
			meanwhile: putOp("m", "2")},
		{name: "existence read beyond a LIMIT scan keeps its record", existKeys: []string{"m"},
			run: func(x *txn.Txn) error {
				if _, err := x.Scan(ctx, lo, hi, 1, false); err != nil {
					return err
				}
				_, err := x.Exists(ctx, tk("m"))
				return err
			},
			meanwhile: putOp("m", "3")}, // a new value, not a creation: no conflict
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The table holds a and m.
			if err := n2.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi}}); err != nil {
				t.Fatal(err)
			}
			if err := n2.Write(ctx, []kvpb.Op{putOp("a", "1"), putOp("m", "1")}); err != nil {
				t.Fatal(err)
			}
			db := &recordingDB{Replica: n1}
			x := txn.New(db, 0)
			if err := tc.run(x); err != nil {
				t.Fatal(err)
			}
			if err := n2.Write(ctx, []kvpb.Op{tc.meanwhile}); err != nil {
				t.Fatal(err)
			}
			if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: append(keys.TablePrefix(9), "out"...), Value: []byte(tc.name)}}); err != nil {
				t.Fatal(err)
			}
			err := x.Commit(ctx)
			if tc.conflict != isConflict(err) || (!tc.conflict && err != nil) {
				t.Fatalf("commit: %v, want conflict=%v", err, tc.conflict)
			}
			if db.last == nil {
				t.Fatal("nothing was proposed")
			}
			if got := keysOf(db.last.ReadKeys); fmt.Sprint(got) != fmt.Sprint(tc.readKeys) {
				t.Errorf("the commit's read keys: %q, want %q (a key inside a scanned span needs none)", got, tc.readKeys)
			}
			if got := keysOf(db.last.ExistKeys); fmt.Sprint(got) != fmt.Sprint(tc.existKeys) {
				t.Errorf("the commit's existence keys: %q, want %q", got, tc.existKeys)
			}
			for i := 1; i < len(db.last.ReadSpans); i++ {
				if bytes.Compare(db.last.ReadSpans[i-1].End, db.last.ReadSpans[i].Start) >= 0 {
					t.Errorf("the commit's spans overlap or touch: %q", db.last.ReadSpans)
				}
			}
		})
	}
}

// TestExistenceRecords: a batch that overwrites, creates and deletes keys
// moves the existence record of exactly the keys it creates or deletes, on
// every replica, whether the apply loop knows that a key existed from its
// row cache or reads it from Pebble (cache off).
func TestExistenceRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bytes  int
		sorted bool // the second batch in key order: the apply's path without an overlay
	}{{"cache", 0, false}, {"no cache", -1, false}, {"cache, sorted", 0, true}, {"no cache, sorted", -1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 0)
			c.rowCacheBytes = tc.bytes
			c.formThree(nil)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep := c.leader().rep
			if err := rep.EnableTxns(ctx); err != nil {
				t.Fatal(err)
			}
			put := func(k string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte("v")} }
			del := func(k string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpDelete, Key: tk(k)} }
			if err := rep.Write(ctx, []kvpb.Op{put("a"), put("c"), put("e")}); err != nil {
				t.Fatal(err)
			}
			second := []kvpb.Op{put("f"), del("d"), del("c"), put("b"), put("a")}
			if tc.sorted {
				slices.Reverse(second)
			}
			if err := rep.Write(ctx, second); err != nil {
				t.Fatal(err)
			}
			record := func(n *tnode, prefix, k string) uint64 {
				v, ok, err := n.rep.GetLocal(recordKey(prefix, tk(k)))
				if err != nil || (ok && len(v) != 8) {
					t.Fatalf("record %s%s: %q %v", prefix, k, v, err)
				}
				if !ok {
					return 0
				}
				return binary.BigEndian.Uint64(v)
			}
			testutil.SucceedsWithin(t, 10*time.Second, func() error {
				for id, n := range c.nodes {
					first, second := record(n, writeIndexPrefix, "e"), record(n, writeIndexPrefix, "b")
					if first == 0 || second <= first {
						return fmt.Errorf("node %d: write records %d, %d: not applied yet", id, first, second)
					}
					want := map[string]uint64{"a": first, "b": second, "c": second, "d": 0, "e": first, "f": second}
					for k, idx := range want {
						if got := record(n, existIndexPrefix, k); got != idx {
							return fmt.Errorf("node %d: existence record of %s at %d, want %d", id, k, got, idx)
						}
					}
				}
				return nil
			})
		})
	}
}

// TestBulkWriteUpdatesCachedRows: a batch of more than bulkRows writes in
// key order does not fill the row cache, but still updates the rows that
// are cached, which a conditional put then reads.
func TestBulkWriteUpdatesCachedRows(t *testing.T) {
	c := bootstrap3(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := c.leader().rep
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("k00000"), Value: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	var ops []kvpb.Op
	for i := range bulkRows + 1 {
		ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: tk(fmt.Sprintf("k%05d", i)), Value: []byte("new")})
	}
	if err := rep.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k00000", "k00001"} {
		if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: tk(k), Expected: []byte("new"), Value: []byte("newer")}}); err != nil {
			t.Fatalf("%s: a conditional put on the bulk write's value: %v", k, err)
		}
	}
	for id, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			if v, _, _ := n.rep.GetLocal(tk("k00000")); string(v) != "newer" {
				return fmt.Errorf("node %d: k00000 = %q", id, v)
			}
			return nil
		})
	}
}

// TestTxnReadLimit: a transaction that writes may have validated one by one
// at most Limits.Reads keys: past it, a write fails with txn.ErrTooLarge
// (and so does a commit that read them after its last write), while the
// keys it read inside a span it scanned do not count.
func TestTxnReadLimit(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[1].rep
	put := func(k string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: tk(k), Value: []byte("1")} }
	read := func(x *txn.Txn, ks ...string) {
		t.Helper()
		for _, k := range ks {
			if _, _, err := x.Get(ctx, tk(k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	x := txn.NewLimited(rep, txn.Limits{Reads: 2})
	if _, err := x.Scan(ctx, tk("s"), tk("t"), 0, false); err != nil {
		t.Fatal(err)
	}
	read(x, "s1", "s2", "s3", "a", "b")
	if err := x.Write(ctx, []kvpb.Op{put("out")}); err != nil {
		t.Fatalf("two keys read outside the scanned span: %v", err)
	}
	read(x, "c")
	if err := x.Write(ctx, []kvpb.Op{put("out2")}); !errors.Is(err, txn.ErrTooLarge) ||
		!strings.Contains(err.Error(), "read 3 keys outside the spans it scanned, more than the limit of 2") {
		t.Fatalf("a write after a third key read: %v, want ErrTooLarge naming the read limit", err)
	}
	if err := x.Commit(ctx); !errors.Is(err, txn.ErrTooLarge) {
		t.Fatalf("commit past the read limit: %v, want ErrTooLarge", err)
	}
	if _, found, _ := rep.Get(ctx, tk("out")); found {
		t.Fatal("a transaction past its read limit committed")
	}
}
