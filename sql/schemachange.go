package sql

// Schema fences and write holds (release 2.1): how a schema change that
// rewrites a table's rows keeps every acknowledged write.
//
// A node plans a write against the descriptor its catalog holds, and the
// catalogs of the nodes learn a schema change at slightly different moments
// (group 0's log is applied everywhere, but not at once). A change that
// moves a table's rows somewhere else (ALTER TABLE ADD PRIMARY KEY rewrites
// them under a new table ID) must therefore be ordered against every write,
// wherever it was planned: a write planned against the old descriptor and
// applied after the rows were copied would land in the abandoned span and be
// lost.
//
// The order is made in the data group's log itself. Each table has a fence
// key (keys.TableFenceKey); its descriptor says which value the key holds
// (WriteFence, 0 for absent). Every write to the table's rows carries an
// OpCheck of that value, decided where the batch is applied, in log order,
// or against a transaction's snapshot and validated again at its commit. A
// schema change that must not race with writes commits a descriptor with a
// higher WriteFence, then moves the key to it: from that log position on,
// every write planned with an older descriptor fails on every replica, and
// the writer waits for its catalog to learn the new descriptor and plans
// again (awaitSchema; a statement in an explicit transaction gets 40001
// instead). A writer whose descriptor is ahead of the key (the coordinator
// committed the descriptor and died before moving the key) moves the key
// itself: the descriptor is committed, so the move is what the coordinator
// would have done. The key only ever rises, and DROP TABLE sets it to a
// value no descriptor holds, so a writer that missed the DROP cannot write
// into the dropped table either.
//
// A hold (catalog.WriteHold) is the fenced state in which the rows are
// rewritten: writers wait, readers go on. It names the table ID the rows
// are copied into and carries an expiry the coordinator renews while it
// works; a writer that finds a hold expired gives it up for the coordinator
// (a descriptor without the hold, a higher fence, the copy deleted), so a
// coordinator killed mid-way stops the table's writes only until its hold
// runs out. A coordinator that was merely slow then fails its next
// conditional commit with 40001 and deletes its copy.
//
// Everything here runs only once the cluster is finalized to 2.1: OpCheck
// travels in a Raft command kind a 2.0 binary refuses (kv's cmdBatch21),
// and the descriptor fields are 2.1's.

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
)

// fenceDropped is the fence value of a dropped table: no descriptor holds
// it, so every write planned before the DROP fails.
const fenceDropped = math.MaxUint64

const (
	// holdTTL is how long a hold lasts without renewal; the coordinator
	// renews it every holdTTL/3.
	holdTTL = 15 * time.Second
	// catalogLagWait bounds how long a writer waits for its catalog to
	// learn a descriptor that the fence says exists.
	catalogLagWait = 10 * time.Second
	// maxSchemaRetries bounds the statement's re-plans after a moved fence.
	maxSchemaRetries = 10
)

func (e *Executor) holdTTL() time.Duration {
	if e.cfg.TestingHoldTTL > 0 {
		return e.cfg.TestingHoldTTL
	}
	return holdTTL
}

func fenceValue(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// fencesActive reports whether writes assert their table's fence: only
// once the cluster is finalized to 2.1 (every node runs 2.1 and applies
// OpCheck).
func (e *Executor) fencesActive() bool { return e.types21Active() }

// fenceCheck is the op asserting d's fence.
func fenceCheck(d *catalog.TableDescriptor) kvpb.Op {
	op := kvpb.Op{Kind: kvpb.OpCheck, Key: keys.TableFenceKey(d.ID)}
	if d.WriteFence == 0 {
		op.ExpectAbsent = true
	} else {
		op.Expected = fenceValue(d.WriteFence)
	}
	return op
}

// schemaMovedError says the statement was planned against a descriptor
// that is no longer the table's (the fence moved), or that the table's
// writes are held by a schema change. The session waits and plans the
// statement again (awaitSchema).
type schemaMovedError struct {
	table string
	desc  *catalog.TableDescriptor // the descriptor the statement used
}

func (e *schemaMovedError) Error() string {
	if e.desc.Hold != nil {
		return "table \"" + e.table + "\" is being rewritten by " + e.desc.Hold.Statement
	}
	return "the schema of table \"" + e.table + "\" changed while the statement ran"
}

// asRetryError is what a client sees when the statement cannot be planned
// again by the server (inside an explicit transaction, or after too many
// attempts).
func (e *schemaMovedError) asRetryError() error {
	return pgerror.WithHintf(pgerror.WithCode(errors.Wrap(e, "restart transaction"),
		pgerror.CodeSerializationFailure), "retry the transaction; it will see the table's new schema")
}

// checkWritable refuses a write to a held table before it writes anything.
func checkWritable(ti *tableInfo) error {
	if ti.desc.Hold != nil {
		return &schemaMovedError{table: ti.desc.Name, desc: ti.desc}
	}
	return nil
}

// writeTable writes ops (rows of ti's table) in one atomic batch, asserting
// the table's fence first once fences are active. A ConditionFailedError of
// one of ops keeps its index into ops.
func (e *Executor) writeTable(ctx context.Context, ti *tableInfo, ops []kvpb.Op) error {
	return e.writeTableWith(ctx, ti, ops, e.kv(ctx).Write)
}

// writeTableWith is writeTable with the write made by write (a COPY's
// stage, copy.go).
func (e *Executor) writeTableWith(ctx context.Context, ti *tableInfo, ops []kvpb.Op, write func(context.Context, []kvpb.Op) error) error {
	if !e.fencesActive() {
		// Before 2.1 a table has no index.
		return write(ctx, ops)
	}
	// First, so that no range deletion of the batch precedes it.
	fenced := make([]kvpb.Op, 0, len(ops)+1)
	fenced = append(append(fenced, fenceCheck(ti.desc)), ops...)
	err := write(ctx, fenced)
	var cf *kvpb.ConditionFailedError
	if err == nil || !errors.As(err, &cf) {
		return err
	}
	if bytes.Equal(cf.Key, fenced[0].Key) {
		return e.fenceMoved(ctx, ti.desc, cf)
	}
	if verr, ok := indexViolation(ti, cf.Key); ok {
		return verr
	}
	c := *cf
	c.Index--
	return &c
}

// fenceMoved handles a failed fence check: a key behind the descriptor is
// moved up to it; either way the statement is planned again.
func (e *Executor) fenceMoved(ctx context.Context, d *catalog.TableDescriptor, cf *kvpb.ConditionFailedError) error {
	var actual uint64
	if cf.Exists && len(cf.Actual) == 8 {
		actual = binary.BigEndian.Uint64(cf.Actual)
	}
	if actual < d.WriteFence {
		if err := e.raiseFence(ctx, d.ID, actual, d.WriteFence); err != nil {
			return err
		}
	}
	return &schemaMovedError{table: d.Name, desc: d}
}

// raiseFence moves table id's fence key from the value from (0: absent) to
// to. It is idempotent: a key already at to or beyond is left alone.
func (e *Executor) raiseFence(ctx context.Context, id int64, from, to uint64) error {
	key := keys.TableFenceKey(id)
	for attempt := 0; attempt < 5; attempt++ {
		op := kvpb.Op{Kind: kvpb.OpCPut, Key: key, Value: fenceValue(to)}
		if from == 0 {
			op.ExpectAbsent = true
		} else {
			op.Expected = fenceValue(from)
		}
		err := e.cfg.DB.Write(ctx, []kvpb.Op{op})
		var cf *kvpb.ConditionFailedError
		if err == nil {
			return nil
		}
		if !errors.As(err, &cf) {
			return kvError(err)
		}
		from = 0
		if cf.Exists && len(cf.Actual) == 8 {
			from = binary.BigEndian.Uint64(cf.Actual)
		}
		if from >= to {
			return nil
		}
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
		"restart transaction: the schema fence of table %d kept moving", id), "retry the statement")
}

// awaitSchema waits until the statement that failed with sm can be planned
// again usefully: the catalog has a descriptor of the table other than the
// one it used, and not held (a hold past its expiry is given up here).
// Waiting on a live hold is bounded by ctx only: the hold ends when its
// schema change does, or expires.
func (e *Executor) awaitSchema(ctx context.Context, sm *schemaMovedError) error {
	lag := time.Now().Add(catalogLagWait)
	wait := time.Millisecond
	for {
		cur, ok := e.catalog.Get(sm.desc.Key())
		switch {
		case !ok:
			return nil // planning again says the table is gone
		case cur.Hold != nil:
			lag = time.Now().Add(catalogLagWait)
			if e.catalog.Clock().Now().WallTime > cur.Hold.Until {
				if err := e.giveUpHold(ctx, cur); err != nil {
					return err
				}
				continue
			}
		case cur != sm.desc:
			return nil
		case time.Now().After(lag):
			return pgerror.WithHintf(pgerror.WithCode(errors.Wrapf(sm,
				"restart transaction: this node's catalog did not learn the new schema of %q in %s", sm.table, catalogLagWait),
				pgerror.CodeSerializationFailure), "retry the statement; if it keeps failing, check that this node is in group 0 (SHOW UPGRADE STATUS)")
		}
		select {
		case <-ctx.Done():
			return kvError(ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// giveUpHold ends an expired hold for its coordinator, taken to be gone: a
// descriptor without it and with a higher fence (so that the coordinator,
// should it still be running, fails its next commit and cannot have its
// copy used), then the copy's span deleted.
func (e *Executor) giveUpHold(ctx context.Context, held *catalog.TableDescriptor) error {
	if !e.ddlMu.TryLock() {
		// A DDL of this node is running, perhaps the hold's coordinator:
		// it is alive, let it finish.
		return nil
	}
	defer e.ddlMu.Unlock()
	released, err := e.commitSchema(ctx, "give up an expired hold", func() (*catalog.TableDescriptor, error) {
		cur, ok := e.catalog.Get(held.Key())
		if !ok || cur.ID != held.ID || cur.Hold == nil || cur.Version != held.Version {
			return nil, nil // someone else moved it on
		}
		d := cur.Clone()
		d.Version++
		d.WriteFence++
		d.Hold = nil
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	if err != nil || released == nil {
		return err
	}
	if err := e.raiseFence(ctx, released.ID, held.WriteFence, released.WriteFence); err != nil {
		return err
	}
	if held.Hold.NewID != 0 {
		e.deleteSpan(ctx, held.Hold.NewID)
	}
	return nil
}

// deleteSpan deletes a table ID's rows, best effort: what is left is
// unreachable and only takes space.
func (e *Executor) deleteSpan(ctx context.Context, id int64) {
	start, end := rowenc.TableSpan(id)
	_ = e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}})
}

// commitSchema commits one descriptor change built by build against the
// catalog as it is at commit time (build may run again after a lost race,
// and returns nil for "nothing to do"), through group 0 or the pre-Raft
// procedure like any DDL. The caller holds ddlMu.
func (e *Executor) commitSchema(ctx context.Context, what string, build func() (*catalog.TableDescriptor, error)) (*catalog.TableDescriptor, error) {
	p := &ddlPlan{e: e, what: what, builder: func(context.Context) ([]catalog.TableDescriptor, error) { return one(build()) }}
	changed, err := p.commit(ctx)
	if err != nil || len(changed) == 0 {
		return nil, err
	}
	d, _ := e.catalog.Get(changed[0].Key())
	if d == nil || d.ID != changed[0].ID || d.Version != changed[0].Version {
		c := changed[0]
		d = &c
	}
	return d, nil
}
