package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/testutil"
	"github.com/kvnode/kvnode/txn"
)

// copyOps returns a load's writes of prefix%05d for i in [from, to): CPuts
// expecting absence (rows), and with index, a Put of "ix"+prefix%05d (a
// non-unique index entry) for each.
func copyOps(prefix string, from, to int, index bool) []kvpb.Op {
	var ops []kvpb.Op
	for i := from; i < to; i++ {
		k := fmt.Sprintf("%s%05d", prefix, i)
		ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, ExpectAbsent: true, Key: tk(k), Value: []byte("v" + k)})
		if index {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: tk("ix" + k), Value: tk(k)})
		}
	}
	return ops
}

// countRows counts the table's rows under prefix on rep's local state.
func countRows(t *testing.T, rep *Replica, prefix string) int {
	t.Helper()
	kvs, err := rep.ScanLocal(tk(prefix), append(tk(prefix), 0xff), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return len(kvs)
}

func stageLeft(t *testing.T, rep *Replica, id uint64) int {
	t.Helper()
	lo, hi := copyStageSpan(id)
	kvs, err := rep.ScanLocal(lo, hi, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return len(kvs)
}

// TestCopyPublishAllAtOnce: a load staged in three batches is invisible
// until its publish, which a concurrent reader sees whole or not at all
// (never a prefix); afterwards every replica holds the same rows and
// records and no stage; the publish left one range record per run at its
// index, so a transaction that read a published key as absent before the
// publish conflicts.
func TestCopyPublishAllAtOnce(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[2].rep // a follower's gateway: proposals are forwarded
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("m"), Value: []byte("between")}}); err != nil {
		t.Fatal(err)
	}
	x := txn.New(c.nodes[1].rep, 0)
	if _, _, err := x.Get(ctx, tk("r00150")); err != nil {
		t.Fatal(err)
	}
	id := NewCopyID()
	const batches, per = 3, 100
	var n uint64
	for b := range batches {
		ops := copyOps("r", b*per, (b+1)*per, true)
		if err := rep.StageCopy(ctx, id, ops); err != nil {
			t.Fatal(err)
		}
		n += uint64(len(ops))
		if got := countRows(t, rep, "r"); got != 0 {
			t.Fatalf("after stage %d a reader sees %d staged rows", b, got)
		}
	}
	// Readers on every node while the publish applies: each scan sees
	// no row of the load or all of them.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seen sync.Map
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				kvs, err := nd.rep.ScanLocal(tk("r"), append(tk("r"), 0xff), 0, false)
				if err != nil {
					t.Error(err)
					return
				}
				seen.Store(len(kvs), true)
			}
		}()
	}
	if err := rep.PublishCopy(ctx, id, n); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for nid, nd := range c.nodes {
			if got := countRows(t, nd.rep, "r"); got != batches*per {
				return errors.Newf("node %d holds %d rows", nid, got)
			}
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	seen.Range(func(k, _ any) bool {
		if k.(int) != 0 && k.(int) != batches*per {
			t.Errorf("a reader saw %d of the %d rows", k, batches*per)
		}
		return true
	})
	if v, ok, err := rep.GetLocal(tk("ixr00042")); err != nil || !ok || !bytes.Equal(v, tk("r00042")) {
		t.Fatalf("index entry: %q %v %v", v, ok, err)
	}
	for nid, nd := range c.nodes {
		if left := stageLeft(t, nd.rep, id); left != 0 {
			t.Errorf("node %d keeps %d keys of the stage", nid, left)
		}
	}
	// Two runs, the index entries ixr... and the rows r... (m lies
	// between), so one range record per run at the publish's index.
	recs, err := c.nodes[1].rep.ScanLocal([]byte(rangeRecordPrefix), recordsEnd(rangeRecordPrefix), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, r := range recs {
		runs = append(runs, string(r.Key[len(rangeRecordPrefix)+8:])+".."+string(r.Value))
	}
	want := []string{string(tk("ixr00000")) + ".." + string(tk("ixr00299")) + "\x00", string(tk("r00000")) + ".." + string(tk("r00299")) + "\x00"}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Errorf("range records %q, want %q", runs, want)
	}
	sameState(t, c)
	if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("out"), Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Commit(ctx); !isConflict(err) {
		t.Fatalf("a transaction that read a published key as absent committed: %v", err)
	}
}

// TestCopyScatteredRecords: a load whose keys lie between existing keys
// leaves per-key records (as a bulk batch does), so a transaction reading
// beside them still commits, and one that read a written key conflicts.
func TestCopyScatteredRecords(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	var existing []kvpb.Op
	for i := 0; i < 200; i += 2 {
		existing = append(existing, kvpb.Op{Kind: kvpb.OpPut, Key: tk(fmt.Sprintf("s%05d", i)), Value: []byte("e")})
	}
	if err := rep.Write(ctx, existing); err != nil {
		t.Fatal(err)
	}
	var ops []kvpb.Op
	for i := 1; i < 200; i += 2 {
		ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, ExpectAbsent: true, Key: tk(fmt.Sprintf("s%05d", i)), Value: []byte("c")})
	}
	xr := txn.New(rep, 0)
	if _, _, err := xr.Get(ctx, tk("s00051")); err != nil {
		t.Fatal(err)
	}
	xb := txn.New(rep, 0)
	if _, _, err := xb.Get(ctx, tk("s00052")); err != nil {
		t.Fatal(err)
	}
	id := NewCopyID()
	if err := rep.StageCopy(ctx, id, ops); err != nil {
		t.Fatal(err)
	}
	if err := rep.PublishCopy(ctx, id, uint64(len(ops))); err != nil {
		t.Fatal(err)
	}
	at := rep.appliedIndex()
	if got := countRows(t, rep, "s"); got != 200 {
		t.Fatalf("%d rows, want 200", got)
	}
	for _, k := range []string{"s00051", "s00199"} {
		for _, p := range []string{writeIndexPrefix, existIndexPrefix} {
			v, ok, err := rep.GetLocal(recordKey(p, tk(k)))
			if err != nil || !ok || binary.BigEndian.Uint64(v) != at {
				t.Errorf("record %s%s: %x %v %v, want index %d", p, k, v, ok, err, at)
			}
		}
	}
	for name, x := range map[string]*txn.Txn{"read a written key": xr, "read beside": xb} {
		if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("out" + name), Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		err := x.Commit(ctx)
		if conflict := name == "read a written key"; conflict != isConflict(err) || (!conflict && err != nil) {
			t.Errorf("%s: commit %v", name, err)
		}
	}
	sameState(t, c)
}

// TestCopyPublishRunsBound: the publish decides between range records and
// per-key records by bulkRuns' rule (at most one run per bulkRunKeys keys
// staged) in one walk, abandoning range records as soon as the runs pass
// the bound: 32 keys in 2 runs leave 2 range records and no per-key
// record, 32 keys in 3 runs leave per-key records and no range record.
func TestCopyPublishRunsBound(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	for _, tc := range []struct {
		prefix string
		gaps   []int // a live key after the load's key of each of these
		ranged bool
	}{
		{prefix: "qa", gaps: []int{15}, ranged: true},
		{prefix: "qb", gaps: []int{10, 20}, ranged: false},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			var live []kvpb.Op
			for _, g := range tc.gaps {
				live = append(live, kvpb.Op{Kind: kvpb.OpPut, Key: tk(fmt.Sprintf("%s%05dx", tc.prefix, g)), Value: []byte("e")})
			}
			if err := rep.Write(ctx, live); err != nil {
				t.Fatal(err)
			}
			ops := copyOps(tc.prefix, 0, 2*bulkRunKeys, false)
			id := NewCopyID()
			if err := rep.StageCopy(ctx, id, ops); err != nil {
				t.Fatal(err)
			}
			if err := rep.PublishCopy(ctx, id, uint64(len(ops))); err != nil {
				t.Fatal(err)
			}
			at := rep.appliedIndex()
			recs, err := rep.ScanLocal(rangeRecordKey(at, nil), rangeRecordKey(at+1, nil), 0, false)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if tc.ranged {
				want = len(tc.gaps) + 1
			}
			if len(recs) != want {
				t.Errorf("%d range records at the publish's index %d, want %d", len(recs), at, want)
			}
			for _, op := range ops {
				_, ok, err := rep.GetLocal(recordKey(writeIndexPrefix, op.Key))
				if err != nil || ok == tc.ranged {
					t.Fatalf("per-key record of %q: %v %v, want one: %v", op.Key, ok, err, !tc.ranged)
				}
			}
			if got := countRows(t, rep, tc.prefix); got != len(ops)+len(tc.gaps) {
				t.Errorf("%d rows, want %d", got, len(ops)+len(tc.gaps))
			}
			sameState(t, c)
		})
	}
}

// TestCopyFailuresWriteNothing: a key twice in one load, a key already in
// the table at a stage, a key written by someone else between the stage
// and the publish, a condition (the schema fence) that changed, and a
// stage that was aborted: each fails with an error naming its cause, and
// the table holds afterwards exactly what it held before; the stage is
// gone after a failed publish.
func TestCopyFailuresWriteNothing(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[2].rep
	fence := tk("\x00fence")
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("a00007"), Value: []byte("old")}, {Kind: kvpb.OpPut, Key: fence, Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	before := func() {
		t.Helper()
		sameState(t, c)
		for nid, nd := range c.nodes {
			kvs, err := nd.rep.ScanLocal(tk(""), append(tk(""), 0xff), 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(kvs) != 2 {
				t.Fatalf("node %d: the table holds %q", nid, kvs)
			}
		}
	}
	cond := kvpb.Op{Kind: kvpb.OpCheck, Key: fence, Expected: []byte("1")}
	wantCF := func(err error, key string) {
		t.Helper()
		var cf *kvpb.ConditionFailedError
		if !errors.As(err, &cf) || !bytes.Equal(cf.Key, tk(key)) {
			t.Fatalf("got %v, want a failed condition on %q", err, key)
		}
	}

	// A key twice in the load: the second batch fails, naming it.
	id := NewCopyID()
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{cond}, copyOps("b", 0, 100, false)...)); err != nil {
		t.Fatal(err)
	}
	err := rep.StageCopy(ctx, id, append([]kvpb.Op{cond}, copyOps("b", 99, 150, false)...))
	wantCF(err, "b00099")
	if err := rep.AbortCopy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if left := stageLeft(t, rep, id); left != 0 {
		t.Fatalf("an aborted stage keeps %d keys", left)
	}
	before()

	// A key already in the table fails at once, at its stage.
	id = NewCopyID()
	wantCF(rep.StageCopy(ctx, id, copyOps("a", 0, 100, false)), "a00007")
	if left := stageLeft(t, rep, id); left != 0 {
		t.Fatalf("a failed stage wrote %d keys", left)
	}

	// A key written between the stage and the publish fails the publish.
	id = NewCopyID()
	ops := copyOps("c", 0, 300, true)
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{cond}, ops...)); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("c00250"), Value: []byte("first")}}); err != nil {
		t.Fatal(err)
	}
	wantCF(rep.PublishCopy(ctx, id, uint64(len(ops))), "c00250")
	if left := stageLeft(t, rep, id); left != 0 {
		t.Fatalf("a failed publish left %d keys of its stage", left)
	}
	if err := c.nodes[1].rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: tk("c00250")}}); err != nil {
		t.Fatal(err)
	}
	before()

	// The schema fence moved between the stage and the publish.
	id = NewCopyID()
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{cond}, ops...)); err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: fence, Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	wantCF(rep.PublishCopy(ctx, id, uint64(len(ops))), "\x00fence")
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: fence, Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	before()

	// An aborted (or collected) stage, and one with fewer writes than the
	// publish expects.
	id = NewCopyID()
	if err := rep.StageCopy(ctx, id, ops); err != nil {
		t.Fatal(err)
	}
	if err := rep.AbortCopy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := rep.PublishCopy(ctx, id, uint64(len(ops))); !errors.Is(err, kvpb.ErrCopyStageGone) {
		t.Fatalf("publish of an aborted stage: %v", err)
	}
	id = NewCopyID()
	if err := rep.StageCopy(ctx, id, ops); err != nil {
		t.Fatal(err)
	}
	if err := rep.PublishCopy(ctx, id, uint64(len(ops))+10); !errors.Is(err, kvpb.ErrCopyStageGone) {
		t.Fatalf("publish expecting more writes than staged: %v", err)
	}
	before()
	for nid, nd := range c.nodes {
		lo, hi := []byte(copyStagePrefix), recordsEnd(copyStagePrefix)
		if kvs, _ := nd.rep.ScanLocal(lo, hi, 0, false); len(kvs) != 0 {
			t.Errorf("node %d keeps %d stage keys", nid, len(kvs))
		}
	}
}

// TestCopyStageCollected: the leader's collection loop aborts a stage whose
// last batch is older than the transaction history, and keeps one that
// is staging.
func TestCopyStageCollected(t *testing.T) {
	c := newCluster(t, 0)
	c.txnGC = 300 * time.Millisecond
	c.formThree(map[string][]byte{"boot": []byte("1")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := c.leader().rep
	if err := rep.EnableTxns(ctx); err != nil {
		t.Fatal(err)
	}
	old := NewCopyID()
	if err := rep.StageCopy(ctx, old, copyOps("o", 0, 50, false)); err != nil {
		t.Fatal(err)
	}
	live := NewCopyID()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; stageLeft(t, rep, old) != 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned stage was not collected")
		}
		// The live load stages a batch every 50 ms.
		if err := rep.StageCopy(ctx, live, copyOps(fmt.Sprintf("l%03d-", i), 0, 2, false)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stageLeft(t, rep, live) == 0 {
		t.Fatal("the collection took a load that is still staging")
	}
	sameState(t, c)
	if err := rep.PublishCopy(ctx, old, 50); !errors.Is(err, kvpb.ErrCopyStageGone) {
		t.Fatalf("publish of a collected stage: %v", err)
	}
}

// TestCopyCommandsGated: the three commands are 2.1 entries: the door takes
// them from 2.1-step.2 on, the gateway stages only at 2.1, a 2.0 replica
// stops at them, the downgrade's log check counts them, and its
// cmdDisableTxns deletes a stage left behind.
func TestCopyCommandsGated(t *testing.T) {
	for _, k := range []cmdKind{cmdCopyStage, cmdCopyPublish, cmdCopyAbort} {
		data := (&command{Kind: k, CopyID: 7, CopyN: 9, Ops: copyOps("g", 0, 2, false)}).encode()
		for _, l := range []CommandLevel{Level20, Level21Fence} {
			if (&Replica{cfg: Config{CommandLevel: func() CommandLevel { return l }}}).mayAppend(data) {
				t.Errorf("kind %d: the door lets it in at level %d", k, l)
			}
		}
		if !(&Replica{cfg: Config{CommandLevel: func() CommandLevel { return Level21Txns }}}).mayAppend(data) {
			t.Errorf("kind %d: the door refuses it at 2.1-step.2", k)
		}
		if err := (&Replica{cfg: Config{Release20: true}}).applyGuard(&command{Kind: k}, 42); err == nil {
			t.Errorf("kind %d: a 2.0 replica accepted it", k)
		}
		if k.release20() {
			t.Errorf("kind %d: the downgrade's log check would not count it", k)
		}
		dec, err := decodeCommand(data)
		if err != nil || dec.Kind != k || dec.CopyID != 7 {
			t.Fatalf("kind %d decodes as %+v, %v", k, dec, err)
		}
		if k == cmdCopyStage && (len(dec.Ops) != 2 || !bytes.Equal(dec.Ops[1].Key, tk("g00001"))) {
			t.Errorf("stage decodes with ops %+v", dec.Ops)
		}
		if k != cmdCopyStage && dec.CopyN != 9 {
			t.Errorf("kind %d decodes with n %d", k, dec.CopyN)
		}
	}
	for _, l := range []CommandLevel{Level20, Level21Fence, Level21Txns} {
		if (&Replica{cfg: Config{CommandLevel: func() CommandLevel { return l }}}).AtomicCopy() {
			t.Errorf("a gateway at level %d would stage a COPY", l)
		}
	}

	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	id := NewCopyID()
	if err := rep.StageCopy(ctx, id, copyOps("d", 0, 100, false)); err != nil {
		t.Fatal(err)
	}
	c.setLevel(Level21Fence)
	if err := rep.PublishCopy(ctx, id, 100); !errors.Is(err, kvpb.ErrCommandRefused) {
		t.Fatalf("a publish at the fence: %v, want refused", err)
	}
	if first, err := rep.TxnCommandsInLog(); err != nil || first == 0 {
		t.Fatalf("the log check found no 2.1 entry: %d %v", first, err)
	}
	if _, err := rep.DisableTxns(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for nid, nd := range c.nodes {
			if left, err := nd.rep.TxnRecordsLeft(); err != nil || left {
				return errors.Newf("node %d keeps records or stages: %v %v", nid, left, err)
			}
			if got := countRows(t, nd.rep, "d"); got != 0 {
				return errors.Newf("node %d shows %d staged rows", nid, got)
			}
		}
		return nil
	})
}

// TestCopyPublishEndsCachedAbsences: the read cache and the row cache may
// hold the absence of a key the publish creates (a read of it, a condition
// on it); neither may serve that absence after the publish, on any node: a
// read must find the published row, and an insert of its key must fail.
// The ingest bypasses apply's batch, whose walk keeps both caches, so
// ingestStage must empty them itself.
func TestCopyPublishEndsCachedAbsences(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.leader().rep
	const key = "c00007"
	// The absence in every node's read cache, and in the apply loops' row
	// caches (a condition evaluated at apply reads it).
	for nid, nd := range c.nodes {
		if _, ok, err := nd.rep.Get(ctx, tk(key)); err != nil || ok {
			t.Fatalf("node %d: %v %v", nid, ok, err)
		}
	}
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCheck, Key: tk(key), ExpectAbsent: true},
		{Kind: kvpb.OpPut, Key: tk("other"), Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	id := NewCopyID()
	ops := copyOps("c", 0, 10, false)
	if err := rep.StageCopy(ctx, id, ops); err != nil {
		t.Fatal(err)
	}
	if err := rep.PublishCopy(ctx, id, uint64(len(ops))); err != nil {
		t.Fatal(err)
	}
	for nid, nd := range c.nodes {
		if v, ok, err := nd.rep.Get(ctx, tk(key)); err != nil || !ok || string(v) != "v"+key {
			t.Errorf("node %d reads the published %s as %q %v %v", nid, key, v, ok, err)
		}
	}
	err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: tk(key), ExpectAbsent: true, Value: []byte("dup")}})
	var cf *kvpb.ConditionFailedError
	if !errors.As(err, &cf) {
		t.Fatalf("an insert of a published key: %v, want a ConditionFailedError", err)
	}
}

// TestCopyPresentChecks: a COPY's foreign key checks staged as present
// checks (ExpectPresent). A parent absent when its batch is staged fails
// the stage at once, naming it; a parent deleted between the stage and the
// publish fails the publish, which writes nothing; a deferred check is met
// by a row the same load stages later (a self-reference), and fails the
// publish when no one writes its key; a parent referenced by two batches
// is one condition of the stage. Every replica ends with the same state.
func TestCopyPresentChecks(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[2].rep
	for _, k := range []string{"p1", "p2"} {
		if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: tk(k), Value: []byte("parent")}}); err != nil {
			t.Fatal(err)
		}
	}
	present := func(k string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpCheck, Key: tk(k), ExpectPresent: true} }
	deferred := func(k string) kvpb.Op {
		op := present(k)
		op.Deferred = true
		return op
	}
	wantMissing := func(err error, key string, index int) {
		t.Helper()
		var cf *kvpb.ConditionFailedError
		if !errors.As(err, &cf) || !bytes.Equal(cf.Key, tk(key)) || cf.Exists || (index >= 0 && cf.Index != index) {
			t.Fatalf("got %v (%+v), want a failed present check on %q at op %d", err, cf, key, index)
		}
	}
	conds := func(id uint64) int {
		t.Helper()
		base := copyStageKey(id, stageCond, nil)
		kvs, err := rep.ScanLocal(base, storage.PrefixEnd(base), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		return len(kvs)
	}

	// A missing parent fails its stage, at the op that checks it.
	id := NewCopyID()
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{present("p1")}, copyOps("a", 0, 100, false)...)); err != nil {
		t.Fatal(err)
	}
	ops := append([]kvpb.Op{present("p1"), present("p3")}, copyOps("a", 100, 200, false)...)
	wantMissing(rep.StageCopy(ctx, id, ops), "p3", 1)
	if err := rep.AbortCopy(ctx, id); err != nil {
		t.Fatal(err)
	}

	// A parent deleted after the stage fails the publish; nothing of the
	// load is written and the stage is gone. Two batches checking p1 left
	// one condition.
	id = NewCopyID()
	var n uint64
	for b := range 2 {
		ops := append([]kvpb.Op{present("p1"), present("p2")}, copyOps("b", b*100, (b+1)*100, true)...)
		if err := rep.StageCopy(ctx, id, ops); err != nil {
			t.Fatal(err)
		}
		n += 200
	}
	if got := conds(id); got != 2 {
		t.Fatalf("two batches checking the same two parents staged %d conditions, want 2", got)
	}
	if err := c.nodes[1].rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: tk("p2")}}); err != nil {
		t.Fatal(err)
	}
	wantMissing(rep.PublishCopy(ctx, id, n), "p2", -1)
	if got := countRows(t, rep, "b"); got != 0 {
		t.Fatalf("a failed publish wrote %d rows", got)
	}
	if left := stageLeft(t, rep, id); left != 0 {
		t.Fatalf("a failed publish left %d keys of its stage", left)
	}

	// Deferred checks: met by a row staged in a later batch; not met by a
	// key nobody writes.
	id = NewCopyID()
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{deferred("s00150"), present("p1")}, copyOps("s", 0, 100, false)...)); err != nil {
		t.Fatal(err)
	}
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{deferred("s00010")}, copyOps("s", 100, 200, false)...)); err != nil {
		t.Fatal(err)
	}
	if err := rep.PublishCopy(ctx, id, 200); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, rep, "s"); got != 200 {
		t.Fatalf("the self-referencing load published %d rows, want 200", got)
	}
	id = NewCopyID()
	if err := rep.StageCopy(ctx, id, append([]kvpb.Op{deferred("u99999")}, copyOps("u", 0, 100, false)...)); err != nil {
		t.Fatalf("a deferred check failed at its stage: %v", err)
	}
	wantMissing(rep.PublishCopy(ctx, id, 100), "u99999", -1)
	if got := countRows(t, rep, "u"); got != 0 {
		t.Fatalf("a failed publish wrote %d rows", got)
	}

	// Present checks belong to a stage only, and are well-formed.
	if err := rep.Write(ctx, []kvpb.Op{present("p1")}); err == nil {
		t.Fatal("a plain batch accepted a present check")
	}
	bad := present("p1")
	bad.ExpectAbsent = true
	for _, op := range []kvpb.Op{bad, {Kind: kvpb.OpCheck, Key: tk("p1"), Deferred: true},
		{Kind: kvpb.OpCPut, ExpectAbsent: true, ExpectPresent: true, Key: tk("p1")}} {
		if err := rep.StageCopy(ctx, NewCopyID(), []kvpb.Op{op}); err == nil {
			t.Fatalf("a stage accepted %+v", op)
		}
	}
	// The flags travel in the command.
	cmd := &command{Kind: cmdCopyStage, CopyID: 5, Ops: []kvpb.Op{present("p1"), deferred("p2")}}
	got, err := decodeCommand(cmd.encode())
	if err != nil || len(got.Ops) != 2 || !got.Ops[0].ExpectPresent || got.Ops[0].Deferred || !got.Ops[1].ExpectPresent || !got.Ops[1].Deferred {
		t.Fatalf("decoded %+v (%v)", got, err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for nid, nd := range c.nodes {
			if got := countRows(t, nd.rep, "s"); got != 200 {
				return errors.Newf("node %d holds %d rows", nid, got)
			}
		}
		return nil
	})
	sameState(t, c)
}

// TestCopyPresentChecksSerializable races a load's present check with a
// transaction that deletes the parent after checking that no child
// references it (a scan of the children's span), as a DELETE of a
// referenced row does. Whichever order they reach the log in, no child is
// published without its parent: a deletion committed before the publish
// fails the publish; a publish at p after the snapshot s of the deleting
// transaction (s < p) fails the transaction's commit, because the
// published children carry p in their write index records and its scan
// covered them.
func TestCopyPresentChecksSerializable(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[2].rep
	parent, childLo, childHi := tk("P1"), tk("c"), tk("d")
	put := func(k []byte) {
		t.Helper()
		if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: k, Value: []byte("parent")}}); err != nil {
			t.Fatal(err)
		}
	}
	stage := func() (uint64, uint64) {
		t.Helper()
		id := NewCopyID()
		ops := append([]kvpb.Op{{Kind: kvpb.OpCheck, Key: parent, ExpectPresent: true}}, copyOps("c", 0, 100, true)...)
		if err := rep.StageCopy(ctx, id, ops); err != nil {
			t.Fatal(err)
		}
		return id, uint64(len(ops) - 1)
	}
	// deleter reads the children's span (none yet), then deletes the parent.
	deleter := func() *txn.Txn {
		t.Helper()
		x := txn.New(c.nodes[1].rep, 0)
		kvs, err := x.Scan(ctx, childLo, childHi, 0, false)
		if err != nil || len(kvs) != 0 {
			t.Fatalf("children before the load: %d (%v)", len(kvs), err)
		}
		if err := x.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: parent}}); err != nil {
			t.Fatal(err)
		}
		return x
	}

	// The deletion commits first: the publish fails, nothing written.
	put(parent)
	id, n := stage()
	x := deleter()
	if err := x.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var cf *kvpb.ConditionFailedError
	if err := rep.PublishCopy(ctx, id, n); !errors.As(err, &cf) || !bytes.Equal(cf.Key, parent) {
		t.Fatalf("publish after the parent's deletion: %v", err)
	}
	if got := countRows(t, rep, "c"); got != 0 {
		t.Fatalf("%d orphans published", got)
	}

	// The publish comes between the deleting transaction's snapshot and
	// its commit: the commit fails, the parent stays.
	put(parent)
	id, n = stage()
	x = deleter()
	if err := rep.PublishCopy(ctx, id, n); err != nil {
		t.Fatal(err)
	}
	if err := x.Commit(ctx); !isConflict(err) {
		t.Fatalf("the parent's deletion committed after its children were published: %v", err)
	}
	if _, ok, err := rep.GetLocal(parent); err != nil || !ok {
		t.Fatalf("the parent is gone (%v)", err)
	}
	if got := countRows(t, rep, "c"); got != 100 {
		t.Fatalf("%d children published, want 100", got)
	}
	sameState(t, c)
}
