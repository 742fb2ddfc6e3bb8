package kv

// An atomic COPY outside a transaction (release 2.1; txn/DESIGN.md, "An
// atomic COPY outside a transaction"): a load's batches are staged under
// copyStagePrefix, where no read looks, by cmdCopyStage entries applied like
// any batch; one cmdCopyPublish entry then checks the stage against the live
// state and, if nothing conflicts, makes every staged write visible in one
// Pebble Ingest that also carries the applied index; cmdCopyAbort (from the
// gateway, or from the leader's collection of abandoned stages) deletes a
// stage. Everything here runs on every replica and must be deterministic.

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

const (
	// cmdCopyStage stages one batch of a load (CopyID, Ops).
	cmdCopyStage cmdKind = 10
	// cmdCopyPublish publishes a load's stage (CopyID; CopyN: the writes
	// staged).
	cmdCopyPublish cmdKind = 11
	// cmdCopyAbort deletes a load's stage (CopyID; CopyN: 0, or the
	// highest index of a last stage that may be deleted).
	cmdCopyAbort cmdKind = 12
)

// The stage of load id lives under copyStagePrefix + uint64BE(id), inside
// the transaction records' prefix 0x06: no read path looks there,
// transactions may not touch it, a Raft snapshot carries it, and the
// downgrade's cmdDisableTxns deletes it with the records.
//
//   - "c" + key -> flag + expected: a condition (OpCheck) to check again at
//     the publish; flag 1: key must be absent, 0: it must hold expected,
//     2: it must be present, live or staged by the load (ExpectPresent: a
//     foreign key's parent; the key is the condition's, so a parent
//     referenced by many batches is one condition).
//     Flag 2 is release 2.1's like the rest; an older 2.1 build would
//     misread it, but none is in any cluster (2.1 is not released).
//   - "h"       -> uint64BE(index of the last stage) + uint64BE(writes staged)
//   - "k" + key -> flag + value: a staged write; flag 1: key must be absent
//     at the publish (a row, a unique index entry), 0: it is overwritten.
const copyStagePrefix = txnMetaPrefix + "stg/"

const (
	stageCond   = 'c'
	stageHeader = 'h'
	stageWrite  = 'k'
)

// The flags of a staged condition ("c").
const (
	condEquals  = 0
	condAbsent  = 1
	condPresent = 2
)

func copyStageBase(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(copyStagePrefix), id)
}

// copyStageSpan is the span of every key of load id's stage.
func copyStageSpan(id uint64) (start, end []byte) {
	start = copyStageBase(id)
	return start, storage.PrefixEnd(start)
}

func copyStageKey(id uint64, part byte, k []byte) []byte {
	return append(append(copyStageBase(id), part), k...)
}

// stageHeader reads load id's header through r: the index of its last
// stage and the writes staged; ok is false if there is none.
func readStageHeader(r pebble.Reader, id uint64) (last, n uint64, ok bool) {
	v, closer, err := r.Get(userKey(copyStageKey(id, stageHeader, nil)))
	if err != nil {
		return 0, 0, false
	}
	defer closer.Close()
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
}

// validateStage checks a batch to stage before it is proposed.
func validateStage(ops []kvpb.Op) error {
	if len(ops) == 0 {
		return errors.New("empty COPY batch")
	}
	for i, op := range ops {
		if (op.ExpectPresent || op.Deferred) && (op.Kind != kvpb.OpCheck || !op.ExpectPresent || op.ExpectAbsent || op.Expected != nil) {
			return errors.AssertionFailedf("op %d: a present check is an OpCheck with ExpectPresent alone (Deferred optional)", i)
		}
		switch {
		case op.Kind == kvpb.OpCheck:
		case op.Kind == kvpb.OpCPut && op.ExpectAbsent, op.Kind == kvpb.OpPut:
			// Table data only: the published rows are ingested as one
			// table that must not overlap the records' (0x06) or the
			// applied state's.
			if len(op.Key) == 0 || op.Key[0] <= txnMetaPrefix[0] {
				return errors.AssertionFailedf("op %d: a COPY stages table data keys only, not %q", i, op.Key)
			}
		default:
			return errors.AssertionFailedf("op %d: a COPY stages CPuts expecting absence, Puts and Checks, not kind %d", i, op.Kind)
		}
		if len(op.Key) == 0 || isTxnMetaKey(op.Key) {
			return errors.AssertionFailedf("op %d: key %q may not be staged", i, op.Key)
		}
	}
	return nil
}

// AtomicCopy implements kvpb.CopyStager: the gateway stages a COPY from 2.1
// itself on, one ladder step above the door's level (as cmdBulkBatch).
func (r *Replica) AtomicCopy() bool { return r.level() >= Level21 }

// StageCopy implements kvpb.CopyStager.
func (r *Replica) StageCopy(ctx context.Context, id uint64, ops []kvpb.Op) error {
	if err := validateStage(ops); err != nil {
		return err
	}
	res, err := r.submit(ctx, &command{Kind: cmdCopyStage, CopyID: id, Ops: ops})
	if err != nil {
		return err
	}
	return res.err
}

// PublishCopy implements kvpb.CopyStager.
func (r *Replica) PublishCopy(ctx context.Context, id uint64, n uint64) error {
	res, err := r.submit(ctx, &command{Kind: cmdCopyPublish, CopyID: id, CopyN: n})
	if err != nil {
		return err
	}
	return res.err
}

// AbortCopy implements kvpb.CopyStager.
func (r *Replica) AbortCopy(ctx context.Context, id uint64) error {
	res, err := r.submit(ctx, &command{Kind: cmdCopyAbort, CopyID: id})
	if err != nil {
		return err
	}
	return res.err
}

var _ kvpb.CopyStager = (*Replica)(nil)

// NewCopyID returns a random ID for a load.
func NewCopyID() uint64 { return rand.Uint64() | 1 }

// applyCopyStage stages cmd's batch in b: it checks, against the live
// state, every condition (a present check unless it is deferred) and the
// absence of every key a CPut expects absent, and writes the stage's keys,
// all or nothing, as a batch would.
func (r *Replica) applyCopyStage(b *pebble.Batch, index uint64, cmd *command) result {
	if err := validateStage(cmd.Ops); err != nil {
		return result{err: err}
	}
	id := cmd.CopyID
	// Present checks first: applyCommand's conditions know only values
	// and absence.
	for i, op := range cmd.Ops {
		if !op.ExpectPresent || op.Deferred {
			continue
		}
		exists, err := keyExists(b, op.Key)
		if err != nil {
			return result{err: err}
		}
		if !exists {
			return result{err: &kvpb.ConditionFailedError{Index: i, Key: op.Key}}
		}
	}
	ops := make([]kvpb.Op, 0, 2*len(cmd.Ops)+1)
	origin := make([]int, 0, cap(ops)) // the op of cmd each op comes from
	for i, op := range cmd.Ops {
		switch op.Kind {
		case kvpb.OpCheck:
			if !op.ExpectPresent {
				ops, origin = append(ops, op), append(origin, i)
			}
		case kvpb.OpCPut:
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCheck, Key: op.Key, ExpectAbsent: true})
			origin = append(origin, i)
		}
	}
	var n uint64
	for i, op := range cmd.Ops {
		var flag byte
		switch op.Kind {
		case kvpb.OpCheck:
			switch {
			case op.ExpectPresent:
				flag = condPresent
			case op.ExpectAbsent:
				flag = condAbsent
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: copyStageKey(id, stageCond, op.Key),
				Value: append([]byte{flag}, op.Expected...)})
		default:
			if op.Kind == kvpb.OpCPut {
				flag = 1
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, ExpectAbsent: true, Key: copyStageKey(id, stageWrite, op.Key),
				Value: append([]byte{flag}, op.Value...)})
			n++
		}
		origin = append(origin, i)
	}
	_, staged, _ := readStageHeader(b, id)
	hdr := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), staged+n)
	ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: copyStageKey(id, stageHeader, nil), Value: hdr})
	origin = append(origin, len(cmd.Ops)-1)
	res := applyCommand(b, r.rows, &command{Kind: cmdBatch21, Ops: ops}, nil)
	var cf *kvpb.ConditionFailedError
	if errors.As(res.err, &cf) {
		// Name the table's key and the op the client sent.
		c := *cf
		if base := copyStageKey(id, stageWrite, nil); bytes.HasPrefix(c.Key, base) {
			c.Key = c.Key[len(base):]
			if c.Exists && len(c.Actual) > 0 {
				c.Actual = c.Actual[1:]
			}
		}
		if c.Index >= 0 && c.Index < len(origin) {
			c.Index = origin[c.Index]
		}
		res.err = &c
	}
	return res
}

// keyExists reports whether key is in the state r reads.
func keyExists(r pebble.Reader, key []byte) (bool, error) {
	_, closer, err := r.Get(userKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// applyCopyAbort deletes load id's stage, if its last stage is at or
// below bound (0: whatever it is).
func (r *Replica) applyCopyAbort(b *pebble.Batch, cmd *command) result {
	last, _, ok := readStageHeader(b, cmd.CopyID)
	if !ok || (cmd.CopyN != 0 && last > cmd.CopyN) {
		return result{}
	}
	deleteStage(b, r.rows, cmd.CopyID)
	return result{}
}

func deleteStage(b *pebble.Batch, rc *rowCache, id uint64) {
	start, end := copyStageSpan(id)
	_ = b.DeleteRange(userKey(start), userKey(end), nil)
	rc.clear()
}

// commitApplied commits the apply batch b with the applied state as (nil:
// unchanged) and the hard state hs, under the read cache's rule: no read
// fills the cache with a key of the batch from before its commit until the
// keys are removed (readCache.hold, readCache.applied), which happens
// before the applied index moves and before any proposer is answered, so
// that a read linearized after an acknowledgement does not find the old
// row. It does not move the replica's applied index. The end of apply and a
// COPY's publish (which commits the entries before it) both commit so.
func (r *Replica) commitApplied(b *pebble.Batch, as *appliedState, hs raftpb.HardState) error {
	if as != nil {
		if err := b.Set(keyApplied, as.encode(), nil); err != nil {
			return err
		}
	}
	if err := setHardState(b, hs); err != nil {
		return err
	}
	if err := r.readCache.hold(b); err != nil {
		return err
	}
	// The log entries are durable already; if this batch is lost in a
	// crash, the entries are applied again from the log.
	if err := b.Commit(pebble.NoSync); err != nil {
		return errors.Wrap(err, "applying Raft entries")
	}
	if k := r.cfg.Testing; k != nil && k.ApplyCommitted != nil {
		k.ApplyCommitted()
	}
	return r.readCache.applied(b)
}

// applyCopyPublish applies the publish at entry e, as applies the entries
// before it: it commits b (the apply batch, which then holds the entries
// before e) with the applied state as, and returns the batch for the
// entries after e. On success the published rows, their write index
// records, the deletion of the stage and the applied state at e are
// ingested in one step; otherwise the new batch deletes the stage.
func (r *Replica) applyCopyPublish(b *pebble.Batch, e *raftpb.Entry, cmd *command, as appliedState, hs raftpb.HardState) (*pebble.Batch, result, error) {
	if err := r.commitApplied(b, &as, hs); err != nil {
		return b, result{}, err
	}
	_ = b.Close()
	nb := r.eng.DB.NewIndexedBatch()
	id := cmd.CopyID
	if r.stampsFrom(nb) == 0 {
		return nb, result{err: kvpb.ErrTxnsDisabled}, nil
	}
	_, staged, ok := readStageHeader(r.eng.DB, id)
	if !ok || staged != cmd.CopyN {
		if ok {
			deleteStage(nb, r.rows, id)
		}
		return nb, result{err: errors.Wrapf(kvpb.ErrCopyStageGone, "%d of %d rows and index entries staged", staged, cmd.CopyN)}, nil
	}
	fail := func(err error) (*pebble.Batch, result, error) {
		deleteStage(nb, r.rows, id)
		return nb, result{err: err}, nil
	}
	if err := checkStagedConds(r.eng.DB, id); err != nil {
		return fail(err)
	}
	// The ingest overlaps the memtables (they hold the applied state just
	// committed and the last batches of the stage, which it deletes), so
	// Pebble flushes them first: start that now, beside the walk below.
	// Starting it closes the memtable's write-ahead log with a sync: the
	// loop blocks on it (a point where a crash test may stop the node).
	r.point(PointSyncCommit)
	if err := r.eng.StartFlush(); err != nil {
		return nb, result{}, err
	}
	start := time.Now()
	p := &publisher{db: r.eng.DB, id: id}
	ingested := appliedState{Index: e.Index, Term: e.Term, ConfState: as.ConfState}
	pub, err := r.ingestStage(p, e.Index, staged, ingested)
	if err != nil {
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) || errors.Is(err, kvpb.ErrCopyStageGone) {
			return fail(err)
		}
		return nb, result{}, err
	}
	r.log.Info("published a COPY", "copy", id, "index", e.Index, "writes", staged, "runs", pub.runs,
		"passes", pub.passes, "written", pub.written.Round(time.Millisecond),
		"took", time.Since(start).Round(time.Millisecond))
	return nb, result{}, nil
}

// checkStagedConds checks load id's conditions against the live state; a
// present check is also met by a write the load staged.
func checkStagedConds(db pebble.Reader, id uint64) error {
	base := copyStageKey(id, stageCond, nil)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: userKey(base), UpperBound: userKey(storage.PrefixEnd(base))})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[1+len(base):]
		v := it.Value()
		if len(v) == 0 {
			_ = it.Close()
			return errors.AssertionFailedf("staged condition on %q has no flag", k)
		}
		cur, closer, gerr := db.Get(userKey(k))
		exists := gerr == nil
		if gerr != nil && !errors.Is(gerr, pebble.ErrNotFound) {
			_ = it.Close()
			return gerr
		}
		good := (v[0] == condAbsent && !exists) || (v[0] == condEquals && exists && bytes.Equal(cur, v[1:])) ||
			(v[0] == condPresent && exists)
		var actual []byte
		if exists {
			actual = bytes.Clone(cur)
			_ = closer.Close()
		}
		if !good && v[0] == condPresent {
			// A row of the load that others of it reference.
			if good, gerr = keyExists(db, copyStageKey(id, stageWrite, k)); gerr != nil {
				_ = it.Close()
				return gerr
			}
		}
		if !good {
			err := &kvpb.ConditionFailedError{Key: bytes.Clone(k), Actual: actual, Exists: exists}
			_ = it.Close() // after the copy of k, which the iterator owns
			return err
		}
	}
	return errors.CombineErrors(it.Error(), it.Close())
}

// publisher walks a load's staged writes in key order beside the live keys.
type publisher struct {
	db *pebble.DB
	id uint64
	n  uint64 // writes walked
}

// stagedWrite is one staged write as walk hands it over; its slices are
// valid only during the call.
type stagedWrite struct {
	key, value []byte
	existed    bool // the key exists in the live state
	runStart   bool // the first key of a run (see bulkRuns)
	runs       int  // the runs so far, this one included
}

// walk visits the staged writes in key order, telling for each whether its
// key exists in the live state and whether a run begins there: a live key
// that the load does not write lies between it and the previous one. A
// write that must find its key absent and does not fails the walk with a
// ConditionFailedError naming the key. It returns the number of runs.
func (p *publisher) walk(visit func(w *stagedWrite) error) (runs int, err error) {
	p.n = 0
	base := copyStageKey(p.id, stageWrite, nil)
	sit, err := p.db.NewIter(&pebble.IterOptions{LowerBound: userKey(base), UpperBound: userKey(storage.PrefixEnd(base))})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.CombineErrors(err, sit.Close()) }()
	if !sit.First() {
		return 0, sit.Error()
	}
	first := bytes.Clone(sit.Key()[1+len(base):])
	if !sit.Last() {
		return 0, sit.Error()
	}
	last := bytes.Clone(sit.Key()[1+len(base):])
	lit, err := p.db.NewIter(&pebble.IterOptions{LowerBound: userKey(first), UpperBound: append(userKey(last), 0)})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.CombineErrors(err, lit.Close()) }()
	var uk, prev []byte
	lvalid := false
	w := &stagedWrite{}
	for ok := sit.First(); ok; ok = sit.Next() {
		k := sit.Key()[1+len(base):]
		v := sit.Value()
		if len(v) == 0 {
			return runs, errors.AssertionFailedf("staged write of %q has no flag", k)
		}
		uk = append(append(uk[:0], storage.PrefixReplicated), k...)
		gap := false
		if p.n == 0 {
			lvalid = lit.SeekGE(uk)
			gap = true
		} else {
			for lvalid && bytes.Compare(lit.Key(), uk) < 0 {
				if bytes.Equal(lit.Key(), prev) {
					lvalid = lit.Next()
					continue
				}
				gap = true // a live key the load does not write
				lvalid = lit.SeekGE(uk)
			}
		}
		if gap {
			runs++
		}
		exists := lvalid && bytes.Equal(lit.Key(), uk)
		if exists && v[0] == 1 {
			return runs, &kvpb.ConditionFailedError{Key: bytes.Clone(k), Actual: bytes.Clone(lit.Value()), Exists: true}
		}
		p.n++
		if visit != nil {
			*w = stagedWrite{key: k, value: v[1:], existed: exists, runStart: gap, runs: runs}
			if err := visit(w); err != nil {
				return runs, err
			}
		}
		prev = append(prev[:0], uk...)
	}
	if err := lit.Error(); err != nil {
		return runs, err
	}
	return runs, sit.Error()
}

// sstSet is the tables of one ingest, one per disjoint part of the
// keyspace, created when their first key comes.
type sstSet struct {
	eng   *storage.Engine
	index uint64
	ssts  []*storage.SST
	meta  *storage.SST // the range records and the stage's deletion
}

func (s *sstSet) open(into **storage.SST) (*storage.SST, error) {
	if *into != nil {
		return *into, nil
	}
	f, err := s.eng.CreateSST(storage.SSTName(s.index, len(s.ssts)))
	if err != nil {
		return nil, err
	}
	s.ssts = append(s.ssts, f)
	*into = f
	return f, nil
}

// published says how a publish went, for its log line.
type published struct {
	runs    int           // runs of the staged keys among the live ones
	passes  int           // walks of the stage: 1, or 2 when the runs are many
	written time.Duration // the walks and the tables, until the ingest
}

// errManyRuns ends a walk that writes range records once the runs are too
// many for them (bulkRuns' rule): the walk is made again with per-key
// records.
var errManyRuns = errors.New("too many runs for range records")

// ingestStage checks load id's staged writes against the live state and
// writes the published state in tables, in one walk of the stage, then
// ingests them in one step: the staged writes, their write index records
// (one range record per run when the runs are few, as bulkRuns decides;
// else per-key records), the deletion of the stage, and the applied state
// as. staged is the header's count of writes; a walk that finds another
// count fails with ErrCopyStageGone, and one that finds a key it must find
// absent fails with the ConditionFailedError naming it, having ingested
// nothing.
//
// The walk writes range records as long as the runs stay few enough for
// the count staged (runs*bulkRunKeys <= staged: the runs only grow, so the
// first walk knows as soon as they are not); past that it is abandoned and
// made again with per-key records, which is what a publish among many
// live keys pays: two walks, as a separate check pass did before.
func (r *Replica) ingestStage(p *publisher, index, staged uint64, as appliedState) (pub published, err error) {
	start := time.Now()
	for ranged := true; ; ranged = false {
		pub.passes++
		var set *sstSet
		set, pub.runs, err = r.writeStage(p, index, staged, ranged)
		if errors.Is(err, errManyRuns) {
			continue
		}
		if err == nil && p.n != staged {
			r.eng.Discard(set.ssts)
			err = errors.Wrapf(kvpb.ErrCopyStageGone, "%d of %d rows and index entries staged", p.n, staged)
		}
		if err != nil {
			return pub, err
		}
		if err := set.applied(as); err != nil {
			r.eng.Discard(set.ssts)
			return pub, err
		}
		pub.written = time.Since(start)
		return pub, r.ingestSet(p.id, index, set)
	}
}

// writeStage makes one walk of the stage, writing the tables of its
// publish (ranged: range records, one per run, else per-key records). On
// an error it has removed what it wrote.
func (r *Replica) writeStage(p *publisher, index, staged uint64, ranged bool) (set *sstSet, runs int, err error) {
	set = &sstSet{eng: r.eng, index: index}
	defer func() {
		if err != nil {
			r.eng.Discard(set.ssts)
		}
	}()
	var rows, eRecs, wRecs *storage.SST
	var val [8]byte
	binary.BigEndian.PutUint64(val[:], index)
	// The range records are written into meta as each run ends, which
	// precede the stage's range deletion in it.
	if _, err := set.open(&set.meta); err != nil {
		return set, 0, err
	}
	var runFirst, runLast []byte
	endRun := func() error {
		if runFirst == nil {
			return nil
		}
		return set.meta.Set(userKey(rangeRecordKey(index, runFirst)), append(bytes.Clone(runLast), 0))
	}
	runs, err = p.walk(func(w *stagedWrite) error {
		f, err := set.open(&rows)
		if err != nil {
			return err
		}
		if err := f.Set(userKey(w.key), w.value); err != nil {
			return err
		}
		if ranged {
			if w.runStart {
				if w.runs*bulkRunKeys > int(staged) {
					return errManyRuns
				}
				if err := endRun(); err != nil {
					return err
				}
				runFirst = append(runFirst[:0], w.key...)
			}
			runLast = append(runLast[:0], w.key...)
			return nil
		}
		if !w.existed {
			if f, err = set.open(&eRecs); err != nil {
				return err
			}
			if err := f.Set(userKey(existIndexKey(w.key)), val[:]); err != nil {
				return err
			}
		}
		if f, err = set.open(&wRecs); err != nil {
			return err
		}
		return f.Set(userKey(writeIndexKey(w.key)), val[:])
	})
	if err != nil {
		return set, runs, err
	}
	if ranged {
		if err := endRun(); err != nil {
			return set, runs, err
		}
	}
	stageStart, stageEnd := copyStageSpan(p.id)
	return set, runs, set.meta.DeleteRange(userKey(stageStart), userKey(stageEnd))
}

// applied adds the table of the applied state, the last part of the
// keyspace an ingest writes.
func (s *sstSet) applied(as appliedState) error {
	var f *storage.SST
	if _, err := s.open(&f); err != nil {
		return err
	}
	return f.Set(keyApplied, as.encode())
}

// ingestSet ingests the tables of load id's publish at index in one step,
// with the caches held and emptied around it.
func (r *Replica) ingestSet(id, index uint64, set *sstSet) error {
	// No read fills the read cache from before the ingest until it is
	// emptied after (readCache.holdAll), nor does the row cache keep an
	// absence the ingest ends.
	r.readCache.holdAll()
	// The ingest is a synchronous write: it syncs the tables and the
	// manifest, and the memtables it overlaps (the apply batch just
	// committed holds the applied state) are flushed first (StartFlush
	// began that before the walk).
	r.point(PointSyncCommit)
	ssts := set.ssts
	set.ssts = nil // Ingest removes them
	if err := r.eng.Ingest(ssts); err != nil {
		return errors.Wrapf(err, "publishing COPY %d at index %d", id, index)
	}
	r.rows.clear()
	r.readCache.clear()
	r.point(PointIngested)
	return nil
}

// collectAbandonedCopies proposes the abort of every stage whose last
// stage is at or below horizon (applied more than the transaction history
// ago): its gateway died, or its client left it idle. The abort carries
// the bound, so a stage that received a batch meanwhile is kept.
func (r *Replica) collectAbandonedCopies(horizon uint64) {
	ids, err := r.abandonedCopies(horizon)
	if err != nil {
		r.log.Debug("could not read the COPY stages", "err", err)
		return
	}
	for _, id := range ids {
		res, err := r.proposeTxnGC(&command{Kind: cmdCopyAbort, CopyID: id, CopyN: horizon})
		if err == nil {
			err = res.err
		}
		if err != nil {
			r.log.Debug("could not collect an abandoned COPY stage", "copy", id, "err", err)
			return
		}
		r.log.Info("collected the stage of an abandoned COPY", "copy", id, "horizon", horizon)
	}
}

// abandonedCopies lists the loads whose last stage is at or below horizon,
// with one seek per stage.
func (r *Replica) abandonedCopies(horizon uint64) ([]uint64, error) {
	lo, hi := userKey([]byte(copyStagePrefix)), userKey(storage.PrefixEnd([]byte(copyStagePrefix)))
	it, err := r.eng.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for ok := it.First(); ok; {
		k := it.Key()[len(lo):]
		if len(k) < 8 {
			ok = it.Next()
			continue
		}
		id := binary.BigEndian.Uint64(k)
		if last, _, found := readStageHeader(r.eng.DB, id); found && last <= horizon {
			ids = append(ids, id)
		}
		_, end := copyStageSpan(id)
		ok = it.SeekGE(userKey(end))
	}
	return ids, errors.CombineErrors(it.Error(), it.Close())
}
