package kv

import (
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/testutil"
)

// TestDowngradeTakesTxnCommandsOut walks the data group's part of a
// downgrade from 2.1 to 2.0: transaction commands refused once the cluster
// version is lowered, cmdDisableTxns deleting the records, every log purged
// through it, and a node restarted as a 2.0 binary then applying what
// follows. Without the purge, the log check finds the 2.1 entries.
func TestDowngradeTakesTxnCommandsOut(t *testing.T) {
	c, ctx := enabledCluster(t)
	rep := c.nodes[2].rep
	for i := 0; i < 5; i++ {
		snap, err := rep.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		idx := snap.Index()
		snap.Close()
		if err := rep.CommitTxn(ctx, &kvpb.TxnCommit{Snapshot: idx, Writes: []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("k"), Value: []byte{byte('0' + i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// A bulk batch: a 2.1 entry kind, with range records under 0x06.
	if err := rep.Write(ctx, bulkOps("bulk", 0, bulkBatchMin, 1, []byte("v"))); err != nil {
		t.Fatal(err)
	}
	// A collection left partway: its cursor is 2.1 state too.
	l := c.leader().rep
	if v := gcStep(t, l, l.appliedIndex(), 1, 0); v != 1 || !l.txnGCPassUnderWay() {
		t.Fatalf("a collection step of one record visited %d, and left no pass under way", v)
	}
	for id, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			if idx, err := n.rep.TxnCommandsInLog(); err != nil || idx == 0 {
				return errors.Newf("node %d: the log check found no 2.1 entry before the purge (%d, %v)", id, idx, err)
			}
			return nil
		})
	}

	// 2.1-step.1: transaction commands are refused at once, on any node.
	c.setLevel(Level21Fence)
	snap, err := rep.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = rep.CommitTxn(ctx, &kvpb.TxnCommit{Snapshot: snap.Index(), Writes: []kvpb.Op{{Kind: kvpb.OpPut, Key: tk("k"), Value: []byte("x")}}})
	snap.Close()
	if !errors.Is(err, kvpb.ErrCommandRefused) {
		t.Fatalf("a commit at the fence: %v, want ErrCommandRefused", err)
	}
	if _, err := l.proposeTxnGC(&command{Kind: cmdTxnGCStep, GCRecords: 1}); !errors.Is(err, kvpb.ErrCommandRefused) {
		t.Fatalf("a collection step at the fence: %v, want ErrCommandRefused", err)
	}
	// A bulk write is proposed as a 2.0 batch from the fence down.
	if err := rep.Write(ctx, bulkOps("fence", 0, bulkBatchMin, 1, []byte("v"))); err != nil {
		t.Fatalf("a bulk write at the fence: %v", err)
	}
	var through uint64
	for i := 0; i < 2; i++ { // idempotent, and resumable by another node
		if through, err = c.nodes[nodeid.ID(1+i)].rep.DisableTxns(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rep.Snapshot(ctx); !errors.Is(err, kvpb.ErrTxnsDisabled) {
		t.Fatalf("a snapshot after DisableTxns: %v, want ErrTxnsDisabled", err)
	}
	for id, n := range c.nodes {
		if err := n.rep.PurgeLogThrough(ctx, through); err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		if idx, err := n.rep.TxnCommandsInLog(); err != nil || idx != 0 {
			t.Fatalf("node %d: 2.1 entry at %d after the purge (%v)", id, idx, err)
		}
		if left, err := n.rep.TxnRecordsLeft(); err != nil || left {
			t.Fatalf("node %d: transaction records left after DisableTxns (%v)", id, err)
		}
	}

	// 2.0: not even the cleanup enters the log any more.
	c.setLevel(Level20)
	if _, err := rep.DisableTxns(ctx); !errors.Is(err, kvpb.ErrCommandRefused) {
		t.Fatalf("DisableTxns at 2.0: %v, want ErrCommandRefused", err)
	}
	// Node 3 comes back as a 2.0 binary and follows the writes that come
	// after; it would stop on any 2.1 entry.
	dir := c.stop(3)
	c.release20 = map[nodeid.ID]bool{3: true}
	c.start(3, dir)
	for i := 0; i < 20; i++ {
		if err := c.nodes[1].rep.Write(ctx, put("after", string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		v, ok, err := c.nodes[3].rep.GetLocal([]byte("after"))
		if err != nil || !ok || string(v) != "t" {
			return errors.Newf("node 3 (2.0) has %q %v %v", v, ok, err)
		}
		return nil
	})
}

// TestRelease20ReplicaRefusesTxnEntries: a replica built as release 2.0
// does not apply a 2.1 command as the 2.1 code would; it stops instead.
func TestRelease20ReplicaRefusesTxnEntries(t *testing.T) {
	r := &Replica{cfg: Config{Release20: true}}
	for _, k := range []cmdKind{cmdEnableTxns, cmdTxnCommit, cmdTxnGC, cmdTxnGCStep, cmdDisableTxns} {
		if err := r.applyGuard(&command{Kind: k}, 42); err == nil {
			t.Errorf("a 2.0 replica accepted command kind %d", k)
		}
	}
	for _, k := range []cmdKind{cmdBatch, cmdIncrement} {
		if err := r.applyGuard(&command{Kind: k}, 43); err != nil {
			t.Errorf("a 2.0 replica refused command kind %d: %v", k, err)
		}
	}
	if err := (&Replica{}).applyGuard(&command{Kind: cmdTxnCommit}, 44); err != nil {
		t.Errorf("a 2.1 replica refused a transaction commit: %v", err)
	}
}
