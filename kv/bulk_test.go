package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/testutil"
	"github.com/kvnode/kvnode/txn"
)

// bulkOps returns puts (or deletes, with a nil value) of prefix%04d for i
// in [from, to) by step.
func bulkOps(prefix string, from, to, step int, value []byte) []kvpb.Op {
	var ops []kvpb.Op
	for i := from; i < to; i += step {
		k := tk(fmt.Sprintf("%s%04d", prefix, i))
		if value == nil {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDelete, Key: k})
		} else {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: k, Value: value})
		}
	}
	return ops
}

// TestBulkBatchKind: the gateway proposes cmdBulkBatch only for a batch of
// bulkBatchMin point writes or more, and only at 2.1, one step above
// 2.1-step.2, from which the door accepts it; the door refuses it below
// that, and a replica built as 2.0 stops at it.
func TestBulkBatchKind(t *testing.T) {
	many := bulkOps("k", 0, bulkBatchMin, 1, []byte("v"))
	check := kvpb.Op{Kind: kvpb.OpCheck, Key: tk("fence"), ExpectAbsent: true}
	withCheck := append([]kvpb.Op{check}, many...)
	ranges := make([]kvpb.Op, bulkBatchMin)
	for i := range ranges {
		ranges[i] = kvpb.Op{Kind: kvpb.OpDeleteRange, Key: tk(fmt.Sprintf("r%04d", i)), EndKey: tk(fmt.Sprintf("r%04dz", i))}
	}
	for _, tc := range []struct {
		name  string
		ops   []kvpb.Op
		level CommandLevel
		want  cmdKind
	}{
		{"many writes at 2.1", many, Level21, cmdBulkBatch},
		{"many writes and a check at 2.1", withCheck, Level21, cmdBulkBatch},
		{"one write too few", many[1:], Level21, cmdBatch},
		{"range deletions", ranges, Level21, cmdBatch},
		// Proposed a step above where the door accepts it.
		{"many writes at 2.1-step.2", many, Level21Txns, cmdBatch},
		{"many writes and a check at 2.1-step.2", withCheck, Level21Txns, cmdBatch21},
		{"many writes at the fence", many, Level21Fence, cmdBatch},
		{"many writes and a check at the fence", withCheck, Level21Fence, cmdBatch21},
		{"many writes at 2.0", many, Level20, cmdBatch},
	} {
		if got := batchKind(tc.ops, tc.level); got != tc.want {
			t.Errorf("%s: kind %d, want %d", tc.name, got, tc.want)
		}
	}
	data := (&command{Kind: cmdBulkBatch, Ops: many}).encode()
	for _, l := range []CommandLevel{Level20, Level21Fence} {
		r := &Replica{cfg: Config{CommandLevel: func() CommandLevel { return l }}}
		if r.mayAppend(data) {
			t.Errorf("the door lets a bulk batch in at level %d", l)
		}
	}
	if r := (&Replica{cfg: Config{CommandLevel: func() CommandLevel { return Level21Txns }}}); !r.mayAppend(data) {
		t.Errorf("the door refuses a bulk batch at 2.1-step.2")
	}
	if err := (&Replica{cfg: Config{Release20: true}}).applyGuard(&command{Kind: cmdBulkBatch}, 42); err == nil {
		t.Errorf("a 2.0 replica accepted a bulk batch")
	}
	if cmdBulkBatch.release20() {
		t.Errorf("the downgrade's log check would not count a bulk batch as a 2.1 entry")
	}
	dec, err := decodeCommand(data)
	if err != nil || dec.Kind != cmdBulkBatch || len(dec.Ops) != len(many) || !bytes.Equal(dec.Ops[3].Key, many[3].Key) {
		t.Fatalf("a bulk batch decodes as %+v, %v", dec, err)
	}
}

// TestBulkBatchValidation: a transaction conflicts with a bulk batch that
// wrote, after its snapshot, a key it read (present or absent), an
// existence it read, or into a span it scanned, whether the batch left
// range records or per-key ones; it does not conflict with one that wrote
// beside what it read. An absent key inside a run that the batch did not
// write conflicts too: the false conflict the range records allow.
func TestBulkBatchValidation(t *testing.T) {
	c, ctx := enabledCluster(t)
	n1, n2 := c.nodes[1].rep, c.nodes[2].rep
	mustWrite := func(ops []kvpb.Op) {
		t.Helper()
		if err := n2.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	v := []byte("v")
	// Existing rows: the even keys s0000..s0198 (the scattered case
	// below writes the odd ones), d0000..d0099 (deleted in bulk below).
	mustWrite(bulkOps("s", 0, 200, 2, v))
	mustWrite(bulkOps("d", 0, 100, 1, v))
	get := func(k string) func(x *txn.Txn) error {
		return func(x *txn.Txn) error { _, _, err := x.Get(ctx, tk(k)); return err }
	}
	for _, tc := range []struct {
		name      string
		read      func(x *txn.Txn) error
		meanwhile []kvpb.Op
		conflict  bool
	}{
		{name: "key seen absent, then bulk-inserted", conflict: true,
			read: get("p0050"), meanwhile: bulkOps("p", 0, 100, 1, v)},
		{name: "the first key of a run", conflict: true,
			read: get("p0000"), meanwhile: bulkOps("p", 0, 100, 1, []byte("again"))},
		{name: "the last key of a run", conflict: true,
			read: get("p0099"), meanwhile: bulkOps("p", 0, 100, 1, []byte("and again"))},
		{name: "key read, then bulk-deleted", conflict: true,
			read: get("d0050"), meanwhile: bulkOps("d", 0, 100, 1, nil)},
		{name: "existence seen absent, then bulk-inserted", conflict: true,
			read:      func(x *txn.Txn) error { _, err := x.Exists(ctx, tk("e0050")); return err },
			meanwhile: bulkOps("e", 0, 100, 1, v)},
		{name: "span scanned, then bulk-inserted into", conflict: true,
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, tk("q"), tk("r"), 0, false); return err },
			meanwhile: bulkOps("q", 0, 100, 1, v)},
		{name: "an absent key inside a run the batch did not write (a false conflict)", conflict: true,
			read: get("u0050x"), meanwhile: bulkOps("u", 0, 100, 1, v)},
		{name: "key read beside the run",
			read: get("a"), meanwhile: bulkOps("w", 0, 100, 1, v)},
		{name: "absent key just past the run",
			read: get("x0099x"), meanwhile: bulkOps("x", 0, 100, 1, v)},
		{name: "span scanned beside the run",
			read:      func(x *txn.Txn) error { _, err := x.Scan(ctx, tk("y1"), tk("z"), 0, false); return err },
			meanwhile: bulkOps("y", 0, 100, 1, v)},
		{name: "scattered keys: a key written between existing ones", conflict: true,
			read: get("s0051"), meanwhile: bulkOps("s", 1, 200, 2, v)},
		{name: "scattered keys: an absent key beside them (per-key records)",
			read: get("s0053x"), meanwhile: bulkOps("s", 1, 200, 2, []byte("again"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := txn.New(n1, 0)
			if err := tc.read(x); err != nil {
				t.Fatal(err)
			}
			mustWrite(tc.meanwhile)
			if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("out"), Value: []byte(tc.name)}}); err != nil {
				t.Fatal(err)
			}
			err := x.Commit(ctx)
			if tc.conflict != isConflict(err) || (!tc.conflict && err != nil) {
				t.Fatalf("commit: %v, want conflict=%v", err, tc.conflict)
			}
		})
	}
}

// TestBulkBatchRecords pins the records a bulk batch leaves, on every
// replica: one range record per run and no per-key record where the keys
// form few runs (the rows and the index entries of a new table: two runs,
// as other keys lie between them), per-key records where they are
// scattered among existing keys; and a collection pass deletes the range
// records with the others.
func TestBulkBatchRecords(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	v := []byte("v")
	// Fewer than bulkBatchMin writes each: per-key records.
	for _, ops := range [][]kvpb.Op{bulkOps("s", 0, 100, 2, v), bulkOps("s", 100, 200, 2, v), {{Kind: kvpb.OpPut, Key: tk("m"), Value: v}}} {
		if err := rep.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	// Rows a0000..a0099 and "index entries" n0000..n0099, with m between.
	rows := append(bulkOps("a", 0, 100, 1, v), bulkOps("n", 0, 100, 1, v)...)
	if err := rep.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(ctx, bulkOps("s", 1, 200, 2, v)); err != nil {
		t.Fatal(err)
	}
	scatteredAt := rep.appliedIndex()
	end := func(k string) string { return string(tk(k)) + "\x00" }
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for id, n := range c.nodes {
			if n.rep.appliedIndex() < scatteredAt {
				return errors.Newf("node %d has not applied the batches yet", id)
			}
			recs, err := n.rep.ScanLocal([]byte(rangeRecordPrefix), recordsEnd(rangeRecordPrefix), 0, false)
			if err != nil {
				return err
			}
			if len(recs) != 2 {
				return errors.Newf("node %d: range records %q, want two", id, recs)
			}
			runsAt := binary.BigEndian.Uint64(recs[0].Key[len(rangeRecordPrefix):])
			want := map[string]string{
				string(rangeRecordKey(runsAt, tk("a0000"))): end("a0099"),
				string(rangeRecordKey(runsAt, tk("n0000"))): end("n0099"),
			}
			for _, kv := range recs {
				if want[string(kv.Key)] != string(kv.Value) {
					return errors.Newf("node %d: range records %q, want %q", id, recs, want)
				}
			}
			for _, k := range []string{"a0000", "a0050", "n0099"} {
				for _, p := range []string{writeIndexPrefix, existIndexPrefix} {
					if _, ok, _ := n.rep.GetLocal(recordKey(p, tk(k))); ok {
						return errors.Newf("node %d: a per-key record %s for %s, written in a run", id, p, k)
					}
				}
			}
			for _, p := range []string{writeIndexPrefix, existIndexPrefix} {
				val, ok, _ := n.rep.GetLocal(recordKey(p, tk("s0051")))
				if !ok || binary.BigEndian.Uint64(val) <= runsAt {
					return errors.Newf("node %d: record %s of a scattered key: %x %v, want an index after %d", id, p, val, ok, runsAt)
				}
			}
		}
		return nil
	})
	gcStep(t, rep, scatteredAt, 1<<20, 0)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for id, n := range c.nodes {
			recs, err := n.rep.ScanLocal([]byte(rangeRecordPrefix), recordsEnd(rangeRecordPrefix), 0, false)
			if err != nil || len(recs) != 0 {
				return errors.Newf("node %d: range records after a collection to %d: %q %v", id, scatteredAt, recs, err)
			}
		}
		return nil
	})
}

// TestBulkBatchOnANewTable: a bulk batch into a span with nothing in it
// leaves one range record, whatever lies on either side.
func TestBulkBatchOnANewTable(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	other := func(id int64, k string) []byte { return append(keys.TablePrefix(id), k...) }
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: other(6, "x"), Value: []byte("v")},
		{Kind: kvpb.OpPut, Key: other(8, "x"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(ctx, bulkOps("k", 0, 1000, 1, []byte("v"))); err != nil {
		t.Fatal(err)
	}
	recs, err := rep.ScanLocal([]byte(rangeRecordPrefix), recordsEnd(rangeRecordPrefix), 0, false)
	if err != nil || len(recs) != 1 || !bytes.HasSuffix(recs[0].Key, tk("k0000")) ||
		string(recs[0].Value) != string(tk("k0999"))+"\x00" {
		t.Fatalf("range records %q (%v), want one for the whole batch", recs, err)
	}
}
