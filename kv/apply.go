package kv

// Applying committed entries and snapshots to the state machine, and log
// truncation. Everything here must be deterministic: every replica runs it
// on the same state and must reach the same result.

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// applyCommittedUpTo applies, between a Ready and its Advance, the entries
// that Raft has committed since the Ready, up to durable (the last entry this
// node had synced before the Ready's write began). Raft hands them over again
// in the next Ready, and apply skips what is applied already. Configuration
// changes are left to the Ready, which applies them through the RawNode.
//
// Only while this node is still the leader of term: a leader's commit index
// refers to its own log, which it never rewrites. A node that has stepped
// down may have entries in its log that the new leader replaced, below a
// commit index learned from that leader.
func (r *Replica) applyCommittedUpTo(term, durable uint64) error {
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.Term != term {
		return nil
	}
	hi := min(st.Commit, durable)
	if hi <= r.applied.Index {
		return nil
	}
	ents, err := r.store.Entries(r.applied.Index+1, hi+1, math.MaxUint64)
	if err != nil {
		return nil // not in memory any more: the Ready will hand them over
	}
	for i := range ents {
		if ents[i].Type != raftpb.EntryNormal {
			ents = ents[:i]
			break
		}
	}
	return r.apply(ents, raftpb.HardState{})
}

// applySnapshot replaces the state machine with the snapshot's contents and
// resets the log, atomically and durably.
func (r *Replica) applySnapshot(snap raftpb.Snapshot, hs raftpb.HardState) error {
	meta := snap.Metadata
	if meta.Index <= r.applied.Index {
		return nil
	}
	start := time.Now()
	in := r.staged.take(meta.Index)
	if in == nil {
		return errors.AssertionFailedf("Raft handed over snapshot at index %d, whose data this node did not receive", meta.Index)
	}
	b, n := in.b, in.keys // begins by clearing the replicated span
	defer b.Close()
	r.rows.clear()
	r.stamps = stampsState{} // read again from the snapshot's data
	as := appliedState{Index: meta.Index, Term: meta.Term, ConfState: meta.ConfState}
	tr := truncatedState{Index: meta.Index, Term: meta.Term}
	if err := b.DeleteRange(keyLogPrefix, keyLogPrefixEnd, nil); err != nil {
		return err
	}
	_ = b.Set(keyApplied, as.encode(), nil)
	_ = b.Set(keyTruncated, tr.encode(), nil)
	r.point(PointSyncCommit)
	r.readCache.holdAll() // no fill until the clear below (readCache.hold)
	if err := b.Commit(pebble.Sync); err != nil {
		return errors.Wrap(err, "applying Raft snapshot")
	}
	r.readCache.clear()
	snap.Data = nil
	if err := r.store.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	r.store.mu.Lock()
	r.store.applied = as
	r.store.mu.Unlock()
	r.applied, r.trunc, r.lastPersist = as, tr, meta.Index
	r.appliedIdx.Store(as.Index)
	r.noteCommit(as.Index)
	r.confEpoch++
	r.clearLease("snapshot")
	// A pending attempt may have been committed in an entry the snapshot
	// covers, which this node never applies one by one: its outcome is
	// unknown. It must not reach the term rule either (failLostProposals),
	// whose premise, that a committed attempt is applied here before any
	// entry of a later term, a snapshot breaks; a retry could apply it twice.
	r.failPending()
	r.cfg.Metrics.snapshotApplied()
	r.log.Info("applied Raft snapshot", "index", meta.Index, "keys", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// apply applies committed entries to the state machine and answers their
// proposers. If hs is not empty it is persisted in the same batch (not
// synced: only the commit index may have changed, and losing that in a crash
// is safe, see loadRaftState).
func (r *Replica) apply(ents []raftpb.Entry, hs raftpb.HardState) error {
	if len(ents) == 0 && raft.IsEmptyHardState(hs) {
		return nil
	}
	if n := len(ents); n > 0 {
		r.noteCommit(ents[n-1].Index) // before any proposer is answered
	}
	b := r.eng.DB.NewIndexedBatch()
	// b is replaced after a COPY's publish (applyCopyPublish).
	defer func() { _ = b.Close() }()
	type done struct {
		p   *proposal
		res result
	}
	var acks []done
	as := r.applied
	for i := range ents {
		e := &ents[i]
		if e.Index <= as.Index {
			continue
		}
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) == 0 {
				break // leader's empty entry at the start of its term
			}
			cmd, err := decodeCommand(e.Data)
			if err == nil {
				if err := r.applyGuard(cmd, e.Index); err != nil {
					return err
				}
			}
			var res result
			if err != nil {
				// Every replica fails the same way, so the state machines
				// stay identical; the proposer (if any) learns why.
				r.log.Error("cannot apply Raft entry", "index", e.Index, "err", err)
				res.err = err
			} else if cmd.Kind == cmdCopyPublish {
				if b, res, err = r.applyCopyPublish(b, e, cmd, as, hs); err != nil {
					return err
				}
				if p, ok := r.pending[cmd.ID]; ok {
					delete(r.pending, cmd.ID)
					acks = append(acks, done{p, res})
				}
			} else {
				res = r.applyEntry(b, e.Index, cmd)
				if p, ok := r.pending[cmd.ID]; ok {
					delete(r.pending, cmd.ID)
					acks = append(acks, done{p, res})
				}
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeI
			if e.Type == raftpb.EntryConfChange {
				var c raftpb.ConfChange
				if err := c.Unmarshal(e.Data); err != nil {
					return err
				}
				cc = c
			} else {
				var c raftpb.ConfChangeV2
				if err := c.Unmarshal(e.Data); err != nil {
					return err
				}
				cc = c
			}
			as.ConfState = *r.rn.ApplyConfChange(cc)
			r.log.Info("applied Raft configuration change", "index", e.Index,
				"voters", as.ConfState.Voters, "learners", as.ConfState.Learners)
		}
		as.Index, as.Term = e.Index, e.Term
	}
	if as.Index == r.applied.Index && raft.IsEmptyHardState(hs) {
		return nil
	}
	var newApplied *appliedState
	if as.Index != r.applied.Index {
		newApplied = &as
	}
	if err := r.commitApplied(b, newApplied, hs); err != nil {
		return err
	}
	r.rows.shrink()
	if !raft.IsEmptyHardState(hs) {
		if err := r.store.SetHardState(hs); err != nil {
			return err
		}
	}
	confChanged := !confEqual(r.applied.ConfState, as.ConfState)
	if confChanged {
		// A lease proves a quorum of the configuration it was granted in
		// (R6): a new configuration starts without one.
		r.confEpoch++
		r.clearLease("configuration change")
	}
	r.applied = as
	r.appliedIdx.Store(as.Index)
	r.store.mu.Lock()
	r.store.applied = as
	r.store.mu.Unlock()
	for _, a := range acks {
		if !a.p.proposed.IsZero() {
			r.cfg.Metrics.observeCommit(time.Since(a.p.proposed))
		}
		a.p.done <- a.res
	}
	r.failLostProposals(as.Term)
	if confChanged {
		r.publishStatus()
	}
	return nil
}

func confEqual(a, b raftpb.ConfState) bool {
	eq := func(x, y []uint64) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return eq(a.Voters, b.Voters) && eq(a.Learners, b.Learners)
}

// applyCommand applies one command to the batch. It must be deterministic:
// every replica runs it on the same state and must reach the same result.
// wi, when not nil, records the log index of every table key written (from
// release 2.1's migration on; see txn.go).
func applyCommand(b *pebble.Batch, rc *rowCache, cmd *command, wi *writeIndexer) result {
	// pre holds the keys a large batch looks up, read beforehand in one
	// pass (prefetch).
	var pre map[string]cachedRow
	// get reads the state as the entries applied so far leave it: the row
	// cache, else the apply batch (which sees its own earlier writes) and
	// Pebble beneath it.
	get := func(k []byte) ([]byte, bool) {
		if row, ok := pre[string(k)]; ok {
			return row.value, row.exists
		}
		if v, exists, ok := rc.get(k); ok {
			return v, exists
		}
		v, closer, err := b.Get(userKey(k))
		if errors.Is(err, pebble.ErrNotFound) {
			rc.put(k, nil, false)
			return nil, false
		}
		if err != nil {
			return nil, false
		}
		defer closer.Close()
		return rc.put(k, v, true), true
	}
	set := func(k, v []byte, existed bool) {
		_ = b.Set(userKey(k), v, nil)
		rc.put(k, v, true)
		wi.wrote(b, k, !existed)
	}
	switch cmd.Kind {
	case cmdIncrement:
		var cur int64
		v, existed := get(cmd.Key)
		if existed && len(v) == 8 {
			cur = int64(binary.BigEndian.Uint64(v))
		}
		cur += cmd.Delta
		set(cmd.Key, binary.BigEndian.AppendUint64(nil, uint64(cur)), existed)
		return result{value: cur}
	case cmdBatch, cmdBatch21, cmdBulkBatch:
		bulk := cmd.Kind == cmdBulkBatch
		if plainWrites(cmd.Ops) {
			return applyPlainWrites(b, rc, cmd.Ops, wi, bulk)
		}
		var err error
		if pre, err = prefetch(b, rc, cmd.Ops); err != nil {
			return result{err: err}
		}
		// Evaluate every condition against the state as the batch's own
		// earlier ops leave it, then write all or nothing.
		overlay := make(map[string]*[]byte, len(cmd.Ops))
		lookup := func(k []byte) ([]byte, bool) {
			if v, ok := overlay[string(k)]; ok {
				if v == nil {
					return nil, false
				}
				return *v, true
			}
			return get(k)
		}
		for i, op := range cmd.Ops {
			switch op.Kind {
			case kvpb.OpCPut, kvpb.OpCheck:
				cur, exists := lookup(op.Key)
				ok := (op.ExpectAbsent && !exists) || (!op.ExpectAbsent && exists && string(cur) == string(op.Expected))
				if !ok {
					// Actual leaves the loop: a copy, not the row cache's.
					return result{err: &kvpb.ConditionFailedError{Index: i, Key: op.Key, Actual: bytes.Clone(cur), Exists: exists}}
				}
				if op.Kind == kvpb.OpCheck {
					break
				}
				if op.Delete {
					overlay[string(op.Key)] = nil
				} else {
					v := op.Value
					overlay[string(op.Key)] = &v
				}
			case kvpb.OpPut:
				v := op.Value
				overlay[string(op.Key)] = &v
			case kvpb.OpInsertOrUpdate:
				v := op.Value
				if _, exists := lookup(op.Key); exists {
					v = op.ElseValue
				}
				overlay[string(op.Key)] = &v
			case kvpb.OpDelete:
				overlay[string(op.Key)] = nil
			case kvpb.OpApply:
				cur, exists := lookup(op.Key)
				if !exists {
					break
				}
				fn, ok := kvpb.LookupApplyFunc(op.Func)
				if !ok {
					return result{err: errors.Wrapf(kvpb.ErrUnknownApplyFunc, "op %d: function %d", i, op.Func)}
				}
				v, err := fn(op.Key, cur, op.Value)
				if err != nil {
					return result{err: errors.Wrapf(err, "op %d on key %q", i, op.Key)}
				}
				overlay[string(op.Key)] = &v
			case kvpb.OpDeleteRange:
				_ = b.DeleteRange(userKey(op.Key), userKey(op.EndKey), nil)
				rc.clear()
				wi.deletedRange(b, op.Key, op.EndKey)
			}
		}
		// In key order, so that whether each key existed is found by one
		// iterator moving forward (for a bulk insert into a new or empty
		// table it is exhausted at the first key, and each later seek is a
		// no-op), and the batch's index is filled in order. The order
		// changes nothing in the state: the keys are distinct.
		ks := make([][]byte, 0, len(overlay))
		for k := range overlay {
			ks = append(ks, []byte(k))
		}
		slices.SortFunc(ks, bytes.Compare)
		var existedBefore []bool
		existedBefore, wi, err = keyRecords(b, rc, pre, ks, wi, bulk)
		if err != nil {
			return result{err: err}
		}
		// A bulk write's rows are not added to the cache (see bulkRows);
		// the rows it holds are updated.
		cache := rc.put
		if len(ks) > bulkRows {
			cache = rc.putIfCached
		}
		for i, k := range ks {
			v := overlay[string(k)]
			existed := wi != nil && existedBefore[i]
			if v == nil {
				_ = b.Delete(userKey(k), nil)
				cache(k, nil, false)
				wi.wrote(b, k, existed)
			} else {
				_ = b.Set(userKey(k), *v, nil)
				cache(k, *v, true)
				wi.wrote(b, k, !existed)
			}
		}
		return result{}
	}
	return result{err: errors.AssertionFailedf("unknown command kind %d", cmd.Kind)}
}

// plainWrites reports whether ops are only puts and deletes, in strictly
// increasing key order (as a transaction's commit sends its writes): each
// op is then the final state of its key, with nothing to evaluate.
func plainWrites(ops []kvpb.Op) bool {
	for i, op := range ops {
		if op.Kind != kvpb.OpPut && op.Kind != kvpb.OpDelete {
			return false
		}
		if i > 0 && bytes.Compare(ops[i-1].Key, op.Key) >= 0 {
			return false
		}
	}
	return true
}

// bulkRows is the number of writes past which a batch does not add the rows
// it writes to the row cache (it still updates those cached): a bulk load's
// rows would only push out the working set, and filling the cache with
// them costs as much as a third of the apply.
const bulkRows = 4096

// keyRecords prepares the write index records of a batch that writes the
// sorted, distinct keys ks, before any of them is written: for a bulk
// batch (cmdBulkBatch) it may write range records (writeIndexer.bulkRuns)
// and then returns a nil writeIndexer, so that no per-key record is
// written; otherwise it returns wi and, if wi is not nil, whether each key
// existed before the batch (an insert or a delete changes existence).
func keyRecords(b *pebble.Batch, rc *rowCache, pre map[string]cachedRow, ks [][]byte, wi *writeIndexer, bulk bool) ([]bool, *writeIndexer, error) {
	if wi == nil {
		return nil, nil, nil
	}
	if bulk {
		existed, ranged, err := wi.bulkRuns(b, ks)
		if err != nil || ranged {
			return nil, nil, err
		}
		return existed, wi, nil
	}
	existed, err := existing(b, rc, pre, ks)
	return existed, wi, err
}

// applyPlainWrites applies ops for which plainWrites holds, writing the
// same state as the general path of applyCommand, without its overlay.
func applyPlainWrites(b *pebble.Batch, rc *rowCache, ops []kvpb.Op, wi *writeIndexer, bulk bool) result {
	var existedBefore []bool
	if wi != nil {
		ks := make([][]byte, len(ops))
		for i := range ops {
			ks[i] = ops[i].Key
		}
		var err error
		if existedBefore, wi, err = keyRecords(b, rc, nil, ks, wi, bulk); err != nil {
			return result{err: err}
		}
	}
	cache := rc.put
	if len(ops) > bulkRows {
		cache = rc.putIfCached
	}
	for i, op := range ops {
		existed := wi != nil && existedBefore[i]
		if op.Kind == kvpb.OpDelete {
			_ = b.Delete(userKey(op.Key), nil)
			cache(op.Key, nil, false)
			wi.wrote(b, op.Key, existed)
			continue
		}
		_ = b.Set(userKey(op.Key), op.Value, nil)
		cache(op.Key, op.Value, true)
		wi.wrote(b, op.Key, !existed)
	}
	return result{}
}

// existing reports, for each of the sorted keys ks, whether it exists in
// the state the batch b (and Pebble beneath it) holds, asking pre (what
// prefetch read) and the row cache first; one iterator serves every key
// they do not know.
func existing(b *pebble.Batch, rc *rowCache, pre map[string]cachedRow, ks [][]byte) ([]bool, error) {
	out := make([]bool, len(ks))
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	var uk []byte
	for i, k := range ks {
		if row, ok := pre[string(k)]; ok {
			out[i] = row.exists
			continue
		}
		if _, exists, ok := rc.get(k); ok {
			out[i] = exists
			continue
		}
		if it == nil {
			var err error
			it, err = b.NewIter(&pebble.IterOptions{
				LowerBound: userKey(k),
				UpperBound: append(userKey(ks[len(ks)-1]), 0),
			})
			if err != nil {
				return nil, err
			}
		}
		uk = append(append(uk[:0], storage.PrefixReplicated), k...)
		out[i] = it.SeekGE(uk) && bytes.Equal(it.Key(), uk)
	}
	if it != nil {
		if err := it.Error(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// prefetchMin is the number of keys a batch must look up for prefetch to
// read them in one pass.
var prefetchMin = 64 // a variable for tests

// prefetch reads, before a batch is evaluated, the current value of every
// key its ops look up that the row cache does not hold, in key order with
// one iterator moving forward, when there are at least prefetchMin of
// them. One point read per key (Pebble's Get) builds an iterator over every
// level for each key, loading each overlapping table's index and filter
// anew: for a bulk load into a new table (COPY, a multi-row INSERT), whose
// keys all miss, that was more than half of the apply loop's CPU
// (docs/benchmarks.md).
//
// The iterator seeks only to a key beyond the key it stands on (walkSorted):
// for keys that all miss in an empty span, the first seek finds nothing
// and answers for every key, and a key that lies before the next existing
// key is known absent without a seek. Its position only moves forward, so
// the deleted entries it steps over (a dropped table's rows, still in the
// memtable under their range deletion, can lie between a table's rows and
// its index entries) are stepped over at most once per batch. (Session
// 13's first prefetch sought every key, and under the race detector,
// where Pebble turns its own "already there" shortcut off at random, every
// seek stepped over all of them again: a 500-row batch took over 10 s. The
// second bounded the iterator to each key, which cost a full seek of every
// level per key.)
//
// It reads the state get would read at the start of the batch (the apply
// batch b, which holds the earlier entries' writes, and Pebble beneath it),
// so the evaluation and its result are the same. A batch with a range
// deletion is not prefetched: the deletion changes that state midway.
func prefetch(b *pebble.Batch, rc *rowCache, ops []kvpb.Op) (map[string]cachedRow, error) {
	n := 0
	for _, op := range ops {
		switch op.Kind {
		case kvpb.OpDeleteRange:
			return nil, nil
		case kvpb.OpCPut, kvpb.OpCheck, kvpb.OpInsertOrUpdate, kvpb.OpApply:
			n++
		}
	}
	if n < prefetchMin {
		return nil, nil
	}
	ks := make([][]byte, 0, n)
	for _, op := range ops {
		switch op.Kind {
		case kvpb.OpCPut, kvpb.OpCheck, kvpb.OpInsertOrUpdate, kvpb.OpApply:
			if !rc.holds(op.Key) {
				ks = append(ks, op.Key)
			}
		}
	}
	if len(ks) < prefetchMin {
		return nil, nil
	}
	slices.SortFunc(ks, bytes.Compare)
	pre := make(map[string]cachedRow, len(ks))
	err := walkSorted(b, ks, func(i int, it *pebble.Iterator, exists bool) {
		if exists {
			// A copy: the iterator's memory is valid only until it moves.
			pre[string(ks[i])] = cachedRow{value: bytes.Clone(it.Value()), exists: true}
		} else {
			pre[string(ks[i])] = cachedRow{}
		}
	})
	return pre, err
}

// walkSorted visits the sorted keys ks (duplicates allowed) in order with
// one iterator over b, bounded to [ks[0], ks[len-1]], and calls visit with
// whether each exists; when it does, the iterator stands on it. Before
// each visit, gap tells whether an existing key that is not one of ks lies
// between the previous key and this one (never for the first). The
// iterator seeks only when the key is beyond the one it stands on, so for
// a run of missing keys before the next existing key it seeks once, and
// its position only moves forward.
func walkSorted(b *pebble.Batch, ks [][]byte, visit func(i int, it *pebble.Iterator, exists bool)) error {
	_, err := walkSortedGaps(b, ks, visit)
	return err
}

// walkSortedGaps is walkSorted that also returns the index in ks of every
// key after which an existing key that is not one of ks lies before the
// next key (the ends of runs, as bulkRuns needs them).
func walkSortedGaps(b *pebble.Batch, ks [][]byte, visit func(i int, it *pebble.Iterator, exists bool)) (gaps []int, err error) {
	if len(ks) == 0 {
		return nil, nil
	}
	it, err := b.NewIter(&pebble.IterOptions{
		LowerBound: userKey(ks[0]),
		UpperBound: append(userKey(ks[len(ks)-1]), 0),
	})
	if err != nil {
		return nil, err
	}
	var uk []byte
	valid := false
	for i, k := range ks {
		uk = append(append(uk[:0], storage.PrefixReplicated), k...)
		switch {
		case i == 0:
			valid = it.SeekGE(uk)
		case valid && bytes.Compare(it.Key(), uk) < 0:
			// The iterator stands on an existing key before k: if it
			// is not ks[i-1] (which it passes below), it lies between.
			if !bytes.Equal(it.Key()[1:], ks[i-1]) {
				gaps = append(gaps, i-1)
			} else if valid = it.Next(); valid && bytes.Compare(it.Key(), uk) < 0 {
				gaps = append(gaps, i-1)
			}
			if valid && bytes.Compare(it.Key(), uk) < 0 {
				valid = it.SeekGE(uk)
			}
		}
		visit(i, it, valid && bytes.Equal(it.Key(), uk))
	}
	return gaps, errors.CombineErrors(it.Error(), it.Close())
}

// maybeTruncate drops applied log entries beyond LogRetain. Each replica
// truncates its own log; a follower that falls behind the leader's truncated
// log receives a snapshot.
//
// The log is bounded in bytes too (LogRetainBytes): 10,000 entries of a
// bulk load can be hundreds of MiB, all of it held in memory. Past the
// bound, the applied entries are truncated so that those kept hold at most
// half of it. Truncation is each replica's own affair (nothing of it is
// replicated), so the rule can change from one binary to the next.
func (r *Replica) maybeTruncate() error {
	retain := r.cfg.LogRetain
	// Raft may not have handed over every applied entry yet (see
	// applyCommittedUpTo); it reads those from the log.
	applied := min(r.applied.Index, r.readyApplied)
	var idx uint64
	if applied >= r.trunc.Index+2*retain {
		idx = applied - retain
	}
	idx = max(idx, r.store.truncationForBytes(applied, r.cfg.LogRetainBytes))
	if idx <= r.trunc.Index {
		return nil
	}
	if _, err := r.store.Term(idx); err != nil {
		return nil
	}
	return r.truncateThrough(idx, pebble.NoSync)
}

// truncateThrough drops the log entries up to and including idx, which
// must be applied. Without sync a crash may bring the entries back, which
// is harmless for a routine truncation.
func (r *Replica) truncateThrough(idx uint64, sync *pebble.WriteOptions) error {
	if idx <= r.trunc.Index {
		return nil
	}
	term, err := r.store.Term(idx)
	if err != nil {
		return errors.Wrapf(err, "truncating the Raft log through %d", idx)
	}
	b := r.eng.DB.NewBatch()
	defer b.Close()
	tr := truncatedState{Index: idx, Term: term}
	_ = b.DeleteRange(logKey(r.trunc.Index+1), logKey(idx+1), nil)
	_ = b.Set(keyTruncated, tr.encode(), nil)
	if err := b.Commit(sync); err != nil {
		return err
	}
	if err := r.store.Compact(idx); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	r.trunc = tr
	return nil
}
