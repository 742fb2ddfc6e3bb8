package kv

// Transactions in the data group (release 2.1): the write index the apply
// loop keeps for them, the commit's validation, and the snapshots they read.
// txn/DESIGN.md explains the protocol and why it is serializable; this file
// is its part that runs on every replica.
//
// From the entry of the cmdEnableTxns command on (its index is stored under
// stampsFromKey), every write or delete of a key k also writes
// writeIndexKey(k) = the entry's index, and every DeleteRange leaves a
// rangeRecordKey record; a bulk batch (cmdBulkBatch) may instead leave one
// range record per run of the keys it writes (bulkRuns). A key without a
// record was last written at or before the enabling entry, or within a range
// record's span at its index. The records live under keys.TxnMetaPrefix
// (0x06), which the keys package reserves for them; keys under it are never
// recorded themselves, and transactions may not read or write them. A
// second record, existIndexKey(k), moves only when k is created or deleted:
// a transaction that read only whether k exists is validated against it. All of it is written in the apply
// batch, from the entry alone, so every replica holds the same records, and
// Raft snapshots carry them with the rest of the replicated span.

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// The transaction records' layout, under the replicated user key prefix
// 0x06 (keys.TxnMetaPrefix; a test checks the two agree).
const (
	txnMetaPrefix = "\x06"
	// stampsFromKey holds the log index (uint64BE) of the cmdEnableTxns
	// entry; absent means transactions are not enabled.
	stampsFromKey = txnMetaPrefix + "stamps-from"
	// writeIndexPrefix + k holds the log index (uint64BE) of the last
	// entry that wrote or deleted k. A deleted key keeps its record, so a
	// transaction that saw it absent notices it came back.
	writeIndexPrefix = txnMetaPrefix + "w/"
	// existIndexPrefix + k holds the log index (uint64BE) of the last
	// entry that created or deleted k: what a transaction that read only
	// whether k exists (a blind UPDATE) is validated against.
	existIndexPrefix = txnMetaPrefix + "e/"
	// rangeRecordPrefix + uint64BE(index) + start holds end: a DeleteRange
	// of [start, end) at index, or a run of keys a bulk batch wrote from
	// start to just before end (bulkRuns); either way, any key in [start,
	// end) may have been written, created or deleted at index. Ordered by
	// index, so validation reads only the records after a snapshot.
	rangeRecordPrefix = txnMetaPrefix + "rd/"
	// gcHorizonKey holds the GC horizon (uint64BE): records of writes at
	// or below it have been collected, so a key without a record was last
	// written at or below max(stamps-from, horizon), and a transaction
	// whose snapshot is below the horizon can no longer be validated.
	gcHorizonKey = txnMetaPrefix + "gc-horizon"
	// gcCursorKey holds, while a pass of cmdTxnGCStep commands is under
	// way, the record key (existIndexPrefix or writeIndexPrefix + k) at
	// which the next step begins; absent: no pass is under way.
	gcCursorKey = txnMetaPrefix + "gc-cursor"
)

// recordsEnd is the first key after every record under prefix p (which
// ends in '/').
func recordsEnd(p string) []byte { b := []byte(p); b[len(b)-1]++; return b }

func isTxnMetaKey(k []byte) bool { return len(k) > 0 && k[0] == txnMetaPrefix[0] }

// recordKey is the key of k's record under prefix (writeIndexPrefix or
// existIndexPrefix).
func recordKey(prefix string, k []byte) []byte {
	return append(append(make([]byte, 0, len(prefix)+len(k)), prefix...), k...)
}

func writeIndexKey(k []byte) []byte { return recordKey(writeIndexPrefix, k) }

func existIndexKey(k []byte) []byte { return recordKey(existIndexPrefix, k) }

func rangeRecordKey(index uint64, start []byte) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(rangeRecordPrefix), index), start...)
}

// stampsState caches keys.TxnStampsFrom for the apply loop. The zero value
// means "not read yet": it is read from the engine at the first apply after
// start or after a Raft snapshot replaced the state.
type stampsState struct {
	loaded  bool
	from    uint64 // 0: transactions are not enabled
	horizon uint64 // the GC horizon (0: nothing collected yet)
}

// writeIndexer records the index of the entry being applied for every table
// key it writes. A nil *writeIndexer records nothing (before release 2.1's
// command), so callers need not check.
type writeIndexer struct {
	index uint64
	val   [8]byte
}

func (w *writeIndexer) wrote(b *pebble.Batch, k []byte, existenceChanged bool) {
	if w == nil || isTxnMetaKey(k) {
		return
	}
	_ = b.Set(userKey(writeIndexKey(k)), w.val[:], nil)
	if existenceChanged {
		_ = b.Set(userKey(existIndexKey(k)), w.val[:], nil)
	}
}

func (w *writeIndexer) deletedRange(b *pebble.Batch, start, end []byte) {
	if w == nil || isTxnMetaKey(start) {
		return
	}
	_ = b.Set(userKey(rangeRecordKey(w.index, start)), end, nil)
}

// bulkRunKeys is the fewest keys per run, on average, for which a bulk
// batch writes range records instead of per-key ones: it bounds the range
// records a commit's validation reads to one per 16 keys bulk-written after
// its snapshot. Part of the replicated state machine (it decides which
// records are written): it never changes for cmdBulkBatch.
const bulkRunKeys = 16

// bulkRuns decides the records of a bulk batch (cmdBulkBatch) that writes
// the sorted, distinct keys ks, before any of them is written to b. It
// reads, through b, the keys that exist in [ks[0], ks[len-1]] and splits ks
// into runs: maximal sequences of keys between which no existing key lies
// that the batch does not write. If there are at most len(ks)/bulkRunKeys
// runs, it writes one range record per run (its first key to just after its
// last) and returns ranged: the caller writes no per-key record. Otherwise
// it writes nothing, and existed tells, for each key, whether it existed
// before the batch, for the per-key records. One iterator serves it,
// seeking only where a run ends: for a batch into a new table's span, once.
// A key under the transaction records' prefix is never part of a run (the
// per-key path skips it).
func (w *writeIndexer) bulkRuns(b *pebble.Batch, ks [][]byte) (existed []bool, ranged bool, err error) {
	existed = make([]bool, len(ks))
	gaps, err := walkSortedGaps(b, ks, func(i int, _ *pebble.Iterator, exists bool) { existed[i] = exists })
	if err != nil {
		return nil, false, err
	}
	if len(ks) == 0 || (len(gaps)+1)*bulkRunKeys > len(ks) {
		return existed, false, nil
	}
	for _, k := range ks {
		if isTxnMetaKey(k) {
			return existed, false, nil
		}
	}
	first := 0
	for _, last := range append(gaps, len(ks)-1) {
		_ = b.Set(userKey(rangeRecordKey(w.index, ks[first])), append(bytes.Clone(ks[last]), 0), nil)
		first = last + 1
	}
	return existed, true, nil
}

// stampsFrom returns the index from which table writes are recorded (0:
// not enabled), reading it through b if it is not cached.
func (r *Replica) stampsFrom(b *pebble.Batch) uint64 {
	if !r.stamps.loaded {
		r.stamps = stampsState{loaded: true, from: readUint64(b, userKey([]byte(stampsFromKey))),
			horizon: readUint64(b, userKey([]byte(gcHorizonKey)))}
	}
	return r.stamps.from
}

func readUint64(r pebble.Reader, k []byte) uint64 {
	v, closer, err := r.Get(k)
	if err != nil {
		return 0
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// applyEntry applies the command of the entry at index.
func (r *Replica) applyEntry(b *pebble.Batch, index uint64, cmd *command) result {
	from := r.stampsFrom(b)
	var wi *writeIndexer
	if from != 0 {
		wi = &writeIndexer{index: index}
		binary.BigEndian.PutUint64(wi.val[:], index)
	}
	switch cmd.Kind {
	case cmdDisableTxns:
		return r.applyDisableTxns(b, index)
	case cmdEnableTxns:
		if from == 0 {
			_ = b.Set(userKey([]byte(stampsFromKey)), binary.BigEndian.AppendUint64(nil, index), nil)
			r.stamps = stampsState{loaded: true, from: index, horizon: r.stamps.horizon}
			r.log.Info("transactions enabled: table writes are recorded from this log index on", "index", index)
		}
		return result{}
	case cmdTxnGC:
		if from == 0 {
			return result{}
		}
		h := min(cmd.Snapshot, index-1)
		if h <= r.stamps.horizon {
			return result{}
		}
		if err := collectTxnRecords(b, h); err != nil {
			return result{err: err}
		}
		_ = b.Set(userKey([]byte(gcHorizonKey)), binary.BigEndian.AppendUint64(nil, h), nil)
		r.stamps.horizon = h
		return result{}
	case cmdTxnGCStep:
		if from == 0 {
			return result{}
		}
		return r.applyTxnGCStep(b, index, cmd)
	case cmdCopyStage:
		if from == 0 {
			// A stage is deleted with the records (cmdDisableTxns).
			return result{err: kvpb.ErrTxnsDisabled}
		}
		return r.applyCopyStage(b, index, cmd)
	case cmdCopyAbort:
		return r.applyCopyAbort(b, cmd)
	case cmdCopyPublish:
		// apply takes it (applyCopyPublish): it needs the batch committed.
		return result{err: errors.AssertionFailedf("a COPY's publish applied in a batch")}
	case cmdTxnCommit:
		if from == 0 {
			return result{err: kvpb.ErrTxnsDisabled}
		}
		if err := validateTxn(b, max(from, r.stamps.horizon), cmd); err != nil {
			return result{err: err}
		}
		return applyCommand(b, r.rows, &command{Kind: cmdBatch, Ops: cmd.Ops}, wi)
	}
	return applyCommand(b, r.rows, cmd, wi)
}

// validateTxn checks, against the state the entries before this one leave
// (b sees its own earlier writes), that nothing cmd read has been written
// since its snapshot. It is the heart of serializability (txn/DESIGN.md).
// base is the index at or below which a key without a record was last
// written: a snapshot below it cannot be validated.
func validateTxn(b *pebble.Batch, base uint64, cmd *command) error {
	s := cmd.Snapshot
	if s < base {
		return &kvpb.TxnConflictError{TooOld: true}
	}
	// A key whose value was read conflicts with any write of it; a key of
	// which only the existence was read, with its creation or deletion.
	for _, reads := range []struct {
		keys   [][]byte
		prefix string
	}{{cmd.ReadKeys, writeIndexPrefix}, {cmd.ExistKeys, existIndexPrefix}} {
		if err := validateKeys(b, s, reads.prefix, reads.keys); err != nil {
			return err
		}
	}
	for _, sp := range cmd.ReadSpans {
		if isTxnMetaKey(sp.Start) || isTxnMetaKey(sp.End) || len(sp.End) == 0 || bytes.Compare(sp.Start, sp.End) >= 0 {
			return errors.AssertionFailedf("a transaction read span [%q, %q), which is empty or holds transaction records", sp.Start, sp.End)
		}
		if err := validateSpan(b, s, sp); err != nil {
			return err
		}
	}
	return validateRangeRecords(b, s, cmd)
}

// validateKeys fails if the record under prefix of one of ks holds an index
// above s. One iterator reads every record: the keys come sorted from the
// gateway, so it only moves forward, and most keys a transaction reads in
// bulk (a COPY's duplicate checks) have no record at all.
func validateKeys(b *pebble.Batch, s uint64, prefix string, ks [][]byte) error {
	if len(ks) == 0 {
		return nil
	}
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: userKey([]byte(prefix)), UpperBound: userKey(recordsEnd(prefix))})
	if err != nil {
		return err
	}
	defer it.Close()
	var rk []byte
	for _, k := range ks {
		if isTxnMetaKey(k) {
			return errors.AssertionFailedf("a transaction read key %q, a transaction record", k)
		}
		rk = append(append(append(rk[:0], storage.PrefixReplicated), prefix...), k...)
		if !it.SeekGE(rk) || !bytes.Equal(it.Key(), rk) {
			continue
		}
		if v := it.Value(); len(v) == 8 {
			if idx := binary.BigEndian.Uint64(v); idx > s {
				return &kvpb.TxnConflictError{Key: k, Index: idx}
			}
		}
	}
	return it.Error()
}

// validateSpan scans the write index records of the keys in sp: a key
// written after s, or deleted after s, or inserted after s, has one with an
// index above s.
func validateSpan(b *pebble.Batch, s uint64, sp kvpb.Span) error {
	it, err := b.NewIter(&pebble.IterOptions{
		LowerBound: userKey(writeIndexKey(sp.Start)),
		UpperBound: userKey(writeIndexKey(sp.End)),
	})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		v := it.Value()
		if len(v) == 8 {
			if idx := binary.BigEndian.Uint64(v); idx > s {
				k := it.Key()[1+len(writeIndexPrefix):]
				return &kvpb.TxnConflictError{Key: bytes.Clone(k), Index: idx}
			}
		}
	}
	return it.Error()
}

// validateRangeRecords fails if a range record after s (a range deletion,
// or a run of keys a bulk batch wrote) covers a key or overlaps a span cmd
// read. The records are ordered by index, so only those after s are read;
// each is checked against the keys and spans by binary search when they are
// sorted (as the gateway sends them), else one by one.
func validateRangeRecords(b *pebble.Batch, s uint64, cmd *command) error {
	lo := userKey(rangeRecordKey(s+1, nil))
	hi := userKey([]byte(rangeRecordPrefix[:len(rangeRecordPrefix)-1] + "0")) // '0' follows '/'

	it, err := b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	keySets := [][][]byte{cmd.ReadKeys, cmd.ExistKeys}
	var sortedKeys [2]bool
	for i, ks := range keySets {
		sortedKeys[i] = slices.IsSortedFunc(ks, bytes.Compare)
	}
	// Merged spans: each ends at or before the next one starts (validateTxn
	// has checked that each is non-empty), so their ends increase too.
	disjoint := true
	for i := 1; i < len(cmd.ReadSpans); i++ {
		if bytes.Compare(cmd.ReadSpans[i-1].End, cmd.ReadSpans[i].Start) > 0 {
			disjoint = false
			break
		}
	}
	for valid := it.First(); valid; valid = it.Next() {
		rec := it.Key()[1+len(rangeRecordPrefix):]
		if len(rec) < 8 {
			continue
		}
		idx := binary.BigEndian.Uint64(rec)
		start, end := rec[8:], it.Value()
		for i, ks := range keySets {
			if k := keyWithin(ks, sortedKeys[i], start, end); k != nil {
				return &kvpb.TxnConflictError{Key: k, Index: idx}
			}
		}
		if spanOverlaps(cmd.ReadSpans, disjoint, start, end) {
			return &kvpb.TxnConflictError{Key: bytes.Clone(start), Index: idx}
		}
	}
	return it.Error()
}

// keyWithin returns a key of ks in [start, end), or nil.
func keyWithin(ks [][]byte, sorted bool, start, end []byte) []byte {
	if !sorted {
		for _, k := range ks {
			if bytes.Compare(start, k) <= 0 && bytes.Compare(k, end) < 0 {
				return k
			}
		}
		return nil
	}
	i, _ := slices.BinarySearchFunc(ks, start, bytes.Compare)
	if i < len(ks) && bytes.Compare(ks[i], end) < 0 {
		return ks[i]
	}
	return nil
}

// spanOverlaps reports whether one of spans overlaps [start, end).
func spanOverlaps(spans []kvpb.Span, disjoint bool, start, end []byte) bool {
	if !disjoint {
		for _, sp := range spans {
			if bytes.Compare(sp.Start, end) < 0 && bytes.Compare(start, sp.End) < 0 {
				return true
			}
		}
		return false
	}
	// The first span that ends after start; it overlaps if it begins
	// before end.
	i, _ := slices.BinarySearchFunc(spans, start, func(sp kvpb.Span, k []byte) int {
		if bytes.Compare(sp.End, k) <= 0 {
			return -1
		}
		return 1
	})
	return i < len(spans) && bytes.Compare(spans[i].Start, end) < 0
}

// collectTxnRecords deletes, through b, every write and existence index
// record at or below h and every range deletion record at or below h. It
// reads through b, so every replica deletes exactly the same records, and
// works in chunks so that its memory stays bounded.
func collectTxnRecords(b *pebble.Batch, h uint64) error {
	const chunk = 4096
	for _, prefix := range []string{writeIndexPrefix, existIndexPrefix} {
		lo, hi := userKey([]byte(prefix)), userKey(recordsEnd(prefix))
		for {
			it, err := b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				return err
			}
			var dead [][]byte
			var last []byte
			n := 0
			for valid := it.First(); valid && n < chunk; valid = it.Next() {
				n++
				last = bytes.Clone(it.Key())
				if v := it.Value(); len(v) == 8 && binary.BigEndian.Uint64(v) <= h {
					dead = append(dead, last)
				}
			}
			err = it.Close()
			if err != nil {
				return err
			}
			for _, k := range dead {
				_ = b.Delete(k, nil)
			}
			if n < chunk {
				break
			}
			lo = append(last, 0)
		}
	}
	return b.DeleteRange(userKey(rangeRecordKey(0, nil)), userKey(rangeRecordKey(h+1, nil)), nil)
}

// applyTxnGCStep applies one step of a pass over the transaction records
// (txn/DESIGN.md, "The GC horizon: built"). Without a pass under way, a
// step whose horizon is above the stored one starts a pass: it stores the
// horizon first, in the same batch as any deletion, so that from this
// entry on a commit whose snapshot is below it fails as too old, and a
// record it deletes could never have signalled a conflict (its index is at
// or below every snapshot still validated). Then, as every step of the
// pass, it visits the existence and write index records in key order from
// the cursor, at most cmd.GCRecords of them (and about cmd.GCBytes of
// keys), deletes those at or below the stored horizon, and stores where the
// next step begins, or, at the end of the records, removes the cursor: the
// pass is over. Everything is read through b and bounded by the command,
// so every replica deletes the same records, and a Raft snapshot carries
// the cursor like any other record. The result's value is the number of
// records visited.
func (r *Replica) applyTxnGCStep(b *pebble.Batch, index uint64, cmd *command) result {
	cursorKey := userKey([]byte(gcCursorKey))
	var cursor []byte
	switch v, closer, err := b.Get(cursorKey); {
	case err == nil:
		cursor = bytes.Clone(v)
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return result{err: errors.Wrap(err, "reading the transaction records' collection cursor")}
	}
	h := r.stamps.horizon
	starts := false
	if cursor == nil {
		h = max(h, min(cmd.Snapshot, index-1))
		if h == r.stamps.horizon {
			return result{} // nothing to collect that is not collected
		}
		starts, cursor = true, []byte(existIndexPrefix)
	}
	visited, next, err := sweepTxnRecords(b, cursor, h, max(cmd.GCRecords, 1), cmd.GCBytes, sweepRangeRun)
	if err != nil {
		return result{err: err}
	}
	if starts {
		_ = b.DeleteRange(userKey(rangeRecordKey(0, nil)), userKey(rangeRecordKey(h+1, nil)), nil)
		_ = b.Set(userKey([]byte(gcHorizonKey)), binary.BigEndian.AppendUint64(nil, h), nil)
		r.stamps.horizon = h
	}
	if next == nil {
		_ = b.Delete(cursorKey, nil)
	} else {
		_ = b.Set(cursorKey, next, nil)
	}
	return result{value: int64(visited)}
}

// sweepTxnRecords visits, in key order from cursor (a record key), the
// existence and then the write index records, at most maxRecords of them
// and, if maxBytes is not 0, until their keys reach maxBytes; it deletes,
// through b, those at or below h. next is the first record key not
// visited, nil if the last record was.
//
// A run of at least rangeRun consecutive records to delete goes as one
// range deletion (the span from its first record to just after its last,
// which holds no other key: the run was read through b): a pass over a
// store loaded long ago deletes whole steps' worth of records, and
// millions of point tombstones would be written, and then skipped by every
// later pass until compactions drop them, where a range tombstone is
// stepped over at once.
func sweepTxnRecords(b *pebble.Batch, cursor []byte, h, maxRecords, maxBytes uint64, rangeRun int) (visited uint64, next []byte, err error) {
	var points, ranges [][]byte // ranges: start and end, in pairs
	var run [][]byte            // the run of records to delete so far
	flush := func() {
		if len(run) >= rangeRun {
			ranges = append(ranges, run[0], append(run[len(run)-1], 0))
		} else {
			points = append(points, run...)
		}
		run = nil
	}
	var size uint64
	for _, p := range []string{existIndexPrefix, writeIndexPrefix} {
		lo, hi := []byte(p), recordsEnd(p)
		if bytes.Compare(cursor, hi) >= 0 {
			continue
		}
		if bytes.Compare(cursor, lo) > 0 {
			lo = cursor
		}
		it, err := b.NewIter(&pebble.IterOptions{LowerBound: userKey(lo), UpperBound: userKey(hi)})
		if err != nil {
			return 0, nil, err
		}
		for valid := it.First(); valid; valid = it.Next() {
			if visited >= maxRecords || (maxBytes > 0 && size >= maxBytes) {
				next = bytes.Clone(it.Key()[1:])
				break
			}
			visited++
			size += uint64(len(it.Key()))
			if v := it.Value(); len(v) == 8 && binary.BigEndian.Uint64(v) <= h {
				run = append(run, bytes.Clone(it.Key()))
			} else {
				flush()
			}
		}
		flush() // a run never spans two prefixes: other keys lie between
		if err := it.Close(); err != nil {
			return 0, nil, err
		}
		if next != nil {
			break
		}
	}
	// After the iterators are closed: they need not see the deletions.
	for _, k := range points {
		_ = b.Delete(k, nil)
	}
	for i := 0; i < len(ranges); i += 2 {
		_ = b.DeleteRange(ranges[i], ranges[i+1], nil)
	}
	return visited, next, nil
}

// sweepRangeRun is the shortest run of records a step deletes with one
// range deletion. It is part of the replicated state machine only in how
// the deletions are written: the records left are the same. It is long
// because Pebble pays for many range deletions in a memtable: the first
// read after a batch that adds one fragments all of them again. A first
// version used 8; after a load and five minutes of random upserts the runs
// were about a dozen records, and the writer stalled for up to 1.2 s in
// that pass, likely for this reason (txn/DESIGN.md). At 1,024 a pass over
// n records writes at most n/1,024 of them, and at most 9 per step of
// 10,000 records.
const sweepRangeRun = 1024

// txnGCLoop runs on every replica and acts on the leader: every
// TxnGCInterval it notes the applied index, and collects the transaction
// records older than TxnHistory (the newest index it noted at least that
// long ago), or finishes a pass that a former leader left under way. Only
// once transactions are enabled, which implies every replica runs a binary
// that knows the command.
func (r *Replica) txnGCLoop() {
	type sample struct {
		at    time.Time
		index uint64
	}
	var samples []sample
	var proposed uint64
	t := time.NewTicker(r.cfg.TxnGCInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.stopC:
			return
		}
		now := time.Now()
		st := r.Status()
		samples = append(samples, sample{now, r.appliedIndex()})
		var horizon uint64
		for len(samples) > 0 && now.Sub(samples[0].at) >= r.cfg.TxnHistory {
			horizon = samples[0].index
			samples = samples[1:]
		}
		if st.IsLeader && horizon > 0 {
			r.collectAbandonedCopies(horizon)
		}
		if horizon <= proposed {
			horizon = 0
		}
		if !st.IsLeader || (horizon == 0 && !r.txnGCPassUnderWay()) || readUint64(r.eng.DB, userKey([]byte(stampsFromKey))) == 0 {
			continue
		}
		if err := r.collectTxnHistory(horizon); err != nil {
			r.log.Debug("could not collect old transaction records", "horizon", horizon, "err", err)
			continue
		}
		proposed = max(proposed, horizon)
	}
}

// txnGCPassUnderWay reports whether this replica's state holds a pass of
// the collection that is not finished.
func (r *Replica) txnGCPassUnderWay() bool {
	_, ok, err := r.GetLocal([]byte(gcCursorKey))
	return err == nil && ok
}

// appliedIndex is the index of the last entry applied here.
func (r *Replica) appliedIndex() uint64 {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	return r.store.applied.Index
}

// collectTxnHistory collects the transaction records at or below horizon
// (0: only finishes the pass under way): it proposes cmdTxnGCStep commands,
// each waited for until it is applied here, until no pass is under way and
// the horizon has reached horizon. Between two steps it waits as long as
// the last one took, so that the collection takes at most about half of the
// data group's time, whatever the number of records. It stops when this
// replica is no longer the leader: the next leader finishes the pass.
func (r *Replica) collectTxnHistory(horizon uint64) error {
	start := time.Now()
	var steps, visited int64
	var longest time.Duration
	for {
		began := time.Now()
		res, err := r.proposeTxnGC(&command{Kind: cmdTxnGCStep, Snapshot: horizon,
			GCRecords: r.cfg.TxnGCStepRecords, GCBytes: r.cfg.TxnGCStepBytes})
		if err != nil {
			return err
		}
		steps++
		visited += res.value
		longest = max(longest, time.Since(began))
		if !r.txnGCPassUnderWay() {
			if h := readUint64(r.eng.DB, userKey([]byte(gcHorizonKey))); h >= horizon {
				r.log.Info("collected old transaction records", "horizon", h, "steps", steps,
					"visited", visited, "took", time.Since(start).Round(time.Millisecond),
					"longest step", longest.Round(time.Millisecond))
				return nil
			} else if res.value == 0 {
				return errors.Newf("a collection step at horizon %d started no pass; the horizon is %d", horizon, h)
			}
		}
		if !r.Status().IsLeader {
			return errors.Newf("no longer the leader after %d collection steps; the leader finishes the pass", steps)
		}
		select {
		case <-r.stopC:
			return errStopped
		case <-time.After(time.Since(began)):
		}
	}
}

// proposeTxnGC proposes cmd (a collection of transaction records) and
// waits until it is applied here.
func (r *Replica) proposeTxnGC(cmd *command) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-r.stopC:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := r.submit(ctx, cmd)
	if err != nil {
		return res, err
	}
	return res, res.err
}

var _ kvpb.TxnDB = (*Replica)(nil)

// EnableTxns implements kvpb.TxnDB.
func (r *Replica) EnableTxns(ctx context.Context) error {
	res, err := r.submit(ctx, &command{Kind: cmdEnableTxns})
	if err != nil {
		return err
	}
	return res.err
}

// CommitTxn implements kvpb.TxnDB.
func (r *Replica) CommitTxn(ctx context.Context, c *kvpb.TxnCommit) error {
	for i, op := range c.Writes {
		if op.Kind != kvpb.OpPut && op.Kind != kvpb.OpDelete && op.Kind != kvpb.OpApply {
			return errors.AssertionFailedf("transaction write %d: only puts, deletes and applies are committed, not kind %d", i, op.Kind)
		}
		if isTxnMetaKey(op.Key) {
			return errors.AssertionFailedf("transaction write %d: key %q is a transaction record", i, op.Key)
		}
	}
	if _, ok := ctx.Deadline(); !ok && len(c.Writes) > 10000 {
		// A large commit (a COPY or a bulk load in one transaction) takes
		// longer to replicate and apply than the default bound allows; a
		// bound still applies, one second more per 2,000 writes.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout+time.Duration(len(c.Writes)/2000)*time.Second)
		defer cancel()
	}
	res, err := r.submit(ctx, &command{Kind: cmdTxnCommit, Snapshot: c.Snapshot,
		ReadKeys: c.ReadKeys, ExistKeys: c.ExistKeys, ReadSpans: c.ReadSpans, Ops: c.Writes})
	if err != nil {
		return err
	}
	return res.err
}

// Snapshot implements kvpb.TxnDB: a read barrier, then a Pebble snapshot,
// whose own applied-state record names the index it holds (the record is
// written in the same batch as the entries it covers).
func (r *Replica) Snapshot(ctx context.Context) (kvpb.Snapshot, error) {
	if err := r.linearize(ctx); err != nil {
		return nil, err
	}
	snap := r.eng.DB.NewSnapshot()
	v, closer, err := snap.Get(keyApplied)
	if err != nil {
		_ = snap.Close()
		return nil, errors.Wrap(err, "reading the applied index of a snapshot")
	}
	as, err := decodeApplied(v)
	_ = closer.Close()
	if err != nil {
		_ = snap.Close()
		return nil, err
	}
	from := readUint64(snap, userKey([]byte(stampsFromKey)))
	if from == 0 || as.Index < from {
		_ = snap.Close()
		return nil, kvpb.ErrTxnsDisabled
	}
	return &snapshot{snap: snap, index: as.Index}, nil
}

type snapshot struct {
	snap  *pebble.Snapshot
	index uint64
}

func (s *snapshot) Index() uint64 { return s.index }

func (s *snapshot) Close() { _ = s.snap.Close() }

func (s *snapshot) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.snap.Get(userKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func (s *snapshot) Scan(start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	return scanReader(s.snap, start, end, limit, reverse)
}

// ScanFunc implements kvpb.SnapshotStreamer.
func (s *snapshot) ScanFunc(start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	return scanReaderFunc(s.snap, start, end, limit, reverse, fn)
}

// GetEach implements kvpb.SnapshotStreamer.
func (s *snapshot) GetEach(keys [][]byte, fn func(i int, value []byte) error) error {
	return getEachReader(s.snap, keys, fn)
}

var _ kvpb.SnapshotStreamer = (*snapshot)(nil)

// TxnsEnabledRecord is the initial record (for Bootstrap) of a data group
// created at release 2.1 or later: transactions are enabled from its first
// entry, so no migration has to enable them.
func TxnsEnabledRecord() (key string, value []byte) {
	return string(stampsFromKey), binary.BigEndian.AppendUint64(nil, 1)
}
