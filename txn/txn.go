package txn

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"sort"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// A transaction's writes are committed as one Raft command that every
// replica applies in one step of its apply loop, during which the data
// group applies nothing else: the cluster's other writes wait for it
// (DESIGN.md, "Limits on a transaction's writes", measures it). The limits
// below bound that step: the keys it writes and their bytes, and the keys
// it validates one by one (those read outside the spans the transaction
// scanned, whose validation covers every key inside them). A write past a
// limit fails at once with ErrTooLarge (SQLSTATE 54000) and changes
// nothing; a commit past the read limit fails before anything is proposed.
const (
	// DefaultMaxWriteBytes bounds the bytes (keys and values) a
	// transaction may buffer. pgbench -i -s 2 writes about 25 MiB.
	DefaultMaxWriteBytes = 32 << 20
	// DefaultMaxWrites bounds the keys a transaction may write (rows and
	// their index entries; a key written twice counts once). It admits
	// pgbench -i -s 2 (200,022 rows in one transaction), whose commit
	// costs the cluster about the CPU time the former limit (131,072
	// keys) admitted before a scanned span made its reads free.
	DefaultMaxWrites = 200 << 10
	// DefaultMaxReads bounds the keys a transaction that writes may have
	// read outside the spans it scanned (each INSERT or COPY row reads
	// its key, unless a scan in the transaction, such as a TRUNCATE's,
	// covered it).
	DefaultMaxReads = 1 << 18
)

// Limits bound a transaction's write set; a zero field takes its default.
type Limits struct {
	Bytes  int // DefaultMaxWriteBytes
	Writes int // DefaultMaxWrites
	Reads  int // DefaultMaxReads
}

// tooLargeHint is the hint of every ErrTooLarge.
const tooLargeHint = "split the work into several transactions; a COPY outside an explicit transaction " +
	"is not bound by this limit, and each INSERT statement outside one commits on its own"

// ErrTooLarge is returned by a write that would take the transaction's
// buffered writes past its limit. The transaction is unchanged.
var ErrTooLarge = errors.New("transaction is too large")

// Txn is one transaction: it reads a snapshot of the data group overlaid
// with its own buffered writes, remembers what it read, and commits its
// writes in one command that the data group validates (DESIGN.md). It
// implements kvpb.DB, so the SQL executor runs statements on it unchanged.
// A Txn is used by one goroutine at a time.
type Txn struct {
	db        kvpb.TxnDB
	maxBytes  int
	maxWrites int
	maxReads  int

	snap kvpb.Snapshot // taken at the first operation

	writes map[string]buffered // the latest buffered write per key
	undo   []undoEntry         // for savepoints, oldest first
	bytes  int                 // size of the buffered writes
	// readKeys holds the keys the transaction read outside the spans it
	// scanned (scanned covers those).
	readKeys map[string]struct{}
	// scanned is the union of the spans the transaction scanned, as they
	// were really covered, sorted and merged. It is the read set's spans:
	// the commit's validation finds any change after the snapshot to any
	// key inside them, so a key read inside them needs no record of its
	// own (pgbench -i's COPY after a TRUNCATE in the same transaction
	// reads 200,000 keys, each inside the table's span the TRUNCATE
	// scanned). Never shrinks: a savepoint's rollback keeps what was read.
	scanned []kvpb.Span
	// existKeys holds the keys of which the transaction read only whether
	// they exist (Exists), and the answer.
	existKeys map[string]bool
	done      bool
}

// buffered is the transaction's pending write of one key.
type buffered struct {
	value   []byte
	deleted bool
	// blind: the key's value is not known to the transaction; at commit it
	// becomes the key's value then, with applies (OpApply ops) run on it
	// in order. A read of the key in the transaction resolves it against
	// the snapshot, and so joins the read set.
	blind   bool
	applies []kvpb.Op
}

func (w buffered) size(key string) int {
	n := len(key) + len(w.value)
	for _, op := range w.applies {
		n += len(op.Value)
	}
	return n
}

// undoEntry restores key's buffered state as it was before one write.
type undoEntry struct {
	key     string
	prev    buffered
	hadPrev bool
}

var _ kvpb.DB = (*Txn)(nil)

// New starts a transaction on db. maxBytes bounds its buffered writes
// (0: DefaultMaxWriteBytes); the keys it writes and reads are bounded by
// DefaultMaxWrites and DefaultMaxReads.
func New(db kvpb.TxnDB, maxBytes int) *Txn {
	return NewLimited(db, Limits{Bytes: maxBytes})
}

// NewLimited starts a transaction on db with the given limits.
func NewLimited(db kvpb.TxnDB, l Limits) *Txn {
	if l.Bytes <= 0 {
		l.Bytes = DefaultMaxWriteBytes
	}
	if l.Writes <= 0 {
		l.Writes = DefaultMaxWrites
	}
	if l.Reads <= 0 {
		l.Reads = DefaultMaxReads
	}
	return &Txn{db: db, maxBytes: l.Bytes, maxWrites: l.Writes, maxReads: l.Reads, writes: map[string]buffered{}, readKeys: map[string]struct{}{},
		existKeys: map[string]bool{}}
}

func (t *Txn) snapshot(ctx context.Context) (kvpb.Snapshot, error) {
	if t.done {
		return nil, errors.AssertionFailedf("transaction used after it ended")
	}
	if t.snap == nil {
		s, err := t.db.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		t.snap = s
	}
	return t.snap, nil
}

// SnapshotIndex is the log index of the transaction's snapshot (0 before
// its first operation).
func (t *Txn) SnapshotIndex() uint64 {
	if t.snap == nil {
		return 0
	}
	return t.snap.Index()
}

// HasWrites reports whether the transaction has buffered a write.
func (t *Txn) HasWrites() bool { return len(t.writes) > 0 }

// Get implements kvpb.DB: the transaction's own write if it has one,
// else the snapshot's value, and the key joins the read set.
func (t *Txn) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if w, ok := t.writes[string(key)]; ok {
		return t.resolve(ctx, key, w)
	}
	return t.snapshotGet(ctx, key)
}

// snapshotGet reads key from the snapshot, and adds it to the read set.
func (t *Txn) snapshotGet(ctx context.Context, key []byte) ([]byte, bool, error) {
	s, err := t.snapshot(ctx)
	if err != nil {
		return nil, false, err
	}
	v, found, err := s.Get(key)
	if err != nil {
		return nil, false, err
	}
	if !t.wasScanned(key) {
		t.readKeys[string(key)] = struct{}{}
	}
	return v, found, nil
}

// wasScanned reports whether key lies inside a span the transaction has
// scanned: the validation of that span covers any change of key after the
// snapshot, whether the key's value or only its existence was read.
func (t *Txn) wasScanned(key []byte) bool {
	i := sort.Search(len(t.scanned), func(i int) bool { return bytes.Compare(t.scanned[i].End, key) > 0 })
	return i < len(t.scanned) && bytes.Compare(t.scanned[i].Start, key) <= 0
}

// addScanned merges sp into the scanned spans (an empty one adds nothing).
func (t *Txn) addScanned(sp kvpb.Span) {
	if bytes.Compare(sp.Start, sp.End) >= 0 {
		return
	}
	// The spans from i to j overlap sp or touch it: they merge into one.
	i := sort.Search(len(t.scanned), func(i int) bool { return bytes.Compare(t.scanned[i].End, sp.Start) >= 0 })
	j := i
	for ; j < len(t.scanned) && bytes.Compare(t.scanned[j].Start, sp.End) <= 0; j++ {
		if bytes.Compare(t.scanned[j].Start, sp.Start) < 0 {
			sp.Start = t.scanned[j].Start
		}
		if bytes.Compare(t.scanned[j].End, sp.End) > 0 {
			sp.End = t.scanned[j].End
		}
	}
	t.scanned = slices.Replace(t.scanned, i, j, sp)
}

// resolve returns the value the buffered write w gives key: a blind one
// is run on the snapshot's value.
func (t *Txn) resolve(ctx context.Context, key []byte, w buffered) ([]byte, bool, error) {
	if !w.blind {
		if w.deleted {
			return nil, false, nil
		}
		return bytes.Clone(w.value), true, nil
	}
	base, found, err := t.snapshotGet(ctx, key)
	if err != nil || !found {
		return nil, false, err
	}
	return runApplies(key, base, w.applies)
}

// runApplies runs OpApply ops on a value, as the data group will.
func runApplies(key, v []byte, ops []kvpb.Op) ([]byte, bool, error) {
	for _, op := range ops {
		fn, ok := kvpb.LookupApplyFunc(op.Func)
		if !ok {
			return nil, false, errors.Wrapf(kvpb.ErrUnknownApplyFunc, "function %d", op.Func)
		}
		var err error
		if v, err = fn(key, v, op.Value); err != nil {
			return nil, false, err
		}
	}
	return v, true, nil
}

// Exists reports whether key exists in the transaction's view, and records
// that the transaction read only that: a concurrent write that changes the
// key's value without creating or deleting it does not conflict with it.
// A blind UPDATE (OpApply) of a row reads its existence this way.
func (t *Txn) Exists(ctx context.Context, key []byte) (bool, error) {
	if w, ok := t.writes[string(key)]; ok {
		if !w.blind {
			return !w.deleted, nil
		}
		if known, ok := t.existKeys[string(key)]; ok {
			return known, nil
		}
	}
	if _, ok := t.readKeys[string(key)]; ok || t.wasScanned(key) {
		_, found, err := t.snapshotGet(ctx, key)
		return found, err
	}
	if known, ok := t.existKeys[string(key)]; ok {
		return known, nil
	}
	s, err := t.snapshot(ctx)
	if err != nil {
		return false, err
	}
	_, found, err := s.Get(key)
	if err != nil {
		return false, err
	}
	t.existKeys[string(key)] = found
	return found, nil
}

// Scan implements kvpb.DB over the snapshot and the buffered writes. The
// span it really covered joins the read set: with a limit that was reached,
// only up to the last key returned, so a LIMIT 1 read does not conflict
// with writes beyond its row.
func (t *Txn) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	if len(end) == 0 {
		return nil, errors.AssertionFailedf("a transaction scans bounded spans only")
	}
	s, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	inRange := func(k string) bool { return k >= string(start) && k < string(end) }
	var mine []string
	for k := range t.writes {
		if inRange(k) {
			mine = append(mine, k)
		}
	}
	snapLimit := 0
	if limit > 0 {
		// Every buffered key in range can hide at most one snapshot row.
		snapLimit = limit + len(mine)
	}
	base, err := s.Scan(start, end, snapLimit, reverse)
	if err != nil {
		return nil, err
	}
	snapExhausted := snapLimit == 0 || len(base) < snapLimit
	// The snapshot's rows beyond the last one it returned are unknown: the
	// merge may only use buffered keys up to there.
	var bound []byte
	if !snapExhausted && len(base) > 0 {
		bound = base[len(base)-1].Key
	}
	merged := make(map[string][]byte, len(base)+len(mine))
	for _, kv := range base {
		merged[string(kv.Key)] = kv.Value
	}
	for _, k := range mine {
		if bound != nil && ((!reverse && k > string(bound)) || (reverse && k < string(bound))) {
			continue
		}
		switch w := t.writes[k]; {
		case w.blind:
			// The scan read the key's snapshot value (the span joins the
			// read set): run the pending applies on it.
			if base, ok := merged[k]; ok {
				v, _, err := runApplies([]byte(k), base, w.applies)
				if err != nil {
					return nil, err
				}
				merged[k] = v
			}
		case w.deleted:
			delete(merged, k)
		default:
			merged[k] = w.value
		}
	}
	ks := make([]string, 0, len(merged))
	for k := range merged {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if reverse {
		for i, j := 0, len(ks)-1; i < j; i, j = i+1, j-1 {
			ks[i], ks[j] = ks[j], ks[i]
		}
	}
	if limit > 0 && len(ks) > limit {
		ks = ks[:limit]
	}
	out := make([]kvpb.KeyValue, len(ks))
	for i, k := range ks {
		out[i] = kvpb.KeyValue{Key: []byte(k), Value: bytes.Clone(merged[k])}
	}
	covered := kvpb.Span{Start: bytes.Clone(start), End: bytes.Clone(end)}
	if limit > 0 && len(out) == limit {
		last := out[len(out)-1].Key
		if reverse {
			covered.Start = bytes.Clone(last)
		} else {
			covered.End = append(bytes.Clone(last), 0)
		}
	}
	t.addScanned(covered)
	return out, nil
}

// Write implements kvpb.DB: the ops are evaluated in order against the
// transaction's view, every condition reading (and so validating) its key,
// and buffered all together, or not at all.
func (t *Txn) Write(ctx context.Context, ops []kvpb.Op) error {
	staged := map[string]buffered{}
	var order []string
	current := func(k []byte) (buffered, bool) {
		if w, ok := staged[string(k)]; ok {
			return w, true
		}
		w, ok := t.writes[string(k)]
		return w, ok
	}
	view := func(k []byte) ([]byte, bool, error) {
		if w, ok := current(k); ok {
			return t.resolve(ctx, k, w)
		}
		return t.snapshotGet(ctx, k)
	}
	stage := func(k []byte, w buffered) {
		if _, ok := staged[string(k)]; !ok {
			order = append(order, string(k))
		}
		staged[string(k)] = w
	}
	for i, op := range ops {
		switch op.Kind {
		case kvpb.OpPut:
			stage(op.Key, buffered{value: op.Value})
		case kvpb.OpDelete:
			stage(op.Key, buffered{deleted: true})
		case kvpb.OpCPut, kvpb.OpCheck:
			// Decided against the snapshot (the key joins the read set, so
			// a change after it fails the commit), not at apply.
			cur, exists, err := view(op.Key)
			if err != nil {
				return err
			}
			ok := (op.ExpectAbsent && !exists) || (!op.ExpectAbsent && exists && bytes.Equal(cur, op.Expected))
			if !ok {
				return &kvpb.ConditionFailedError{Index: i, Key: op.Key, Actual: bytes.Clone(cur), Exists: exists}
			}
			if op.Kind == kvpb.OpCheck {
				continue
			}
			if op.Delete {
				stage(op.Key, buffered{deleted: true})
			} else {
				stage(op.Key, buffered{value: op.Value})
			}
		case kvpb.OpInsertOrUpdate:
			_, exists, err := view(op.Key)
			if err != nil {
				return err
			}
			if exists {
				stage(op.Key, buffered{value: op.ElseValue})
			} else {
				stage(op.Key, buffered{value: op.Value})
			}
		case kvpb.OpApply:
			w, ok := current(op.Key)
			switch {
			case ok && !w.blind && w.deleted:
				// Nothing to apply to.
			case ok && !w.blind:
				v, _, err := runApplies(op.Key, w.value, []kvpb.Op{op})
				if err != nil {
					return err
				}
				stage(op.Key, buffered{value: v})
			default:
				applies := append(slices.Clone(w.applies), op)
				stage(op.Key, buffered{blind: true, applies: applies})
			}
		case kvpb.OpDeleteRange:
			rows, err := t.Scan(ctx, op.Key, op.EndKey, 0, false)
			if err != nil {
				return err
			}
			for _, kv := range rows {
				stage(kv.Key, buffered{deleted: true})
			}
		default:
			return errors.AssertionFailedf("op %d: unknown kind %d", i, op.Kind)
		}
	}
	grow, added := 0, 0
	for _, k := range order {
		grow += staged[k].size(k)
		if prev, ok := t.writes[k]; ok {
			grow -= prev.size(k)
		} else {
			added++
		}
	}
	if t.bytes+grow > t.maxBytes {
		return errors.WithHint(errors.Wrapf(ErrTooLarge, "its writes would take %d bytes, more than the limit of %d bytes",
			t.bytes+grow, t.maxBytes), tooLargeHint)
	}
	if n := len(t.writes) + added; n > t.maxWrites {
		return errors.WithHint(errors.Wrapf(ErrTooLarge, "it would write %d keys, more than the limit of %d keys",
			n, t.maxWrites), tooLargeHint)
	}
	if err := t.checkReads(); err != nil {
		return err
	}
	for _, k := range order {
		prev, had := t.writes[k]
		t.undo = append(t.undo, undoEntry{key: k, prev: prev, hadPrev: had})
		t.writes[k] = staged[k]
	}
	t.bytes += grow
	return nil
}

// checkReads fails with ErrTooLarge when the transaction has read more
// keys outside the spans it scanned than its commit may validate one by
// one. (A key read before a scan covered it counts until the commit, where
// it is dropped: the bound is conservative.)
func (t *Txn) checkReads() error {
	if n := len(t.readKeys) + len(t.existKeys); n > t.maxReads {
		return errors.WithHint(errors.Wrapf(ErrTooLarge, "it read %d keys outside the spans it scanned, "+
			"more than the limit of %d keys a commit validates one by one", n, t.maxReads), tooLargeHint)
	}
	return nil
}

// Increment implements kvpb.DB: a read of the counter and a buffered write.
func (t *Txn) Increment(ctx context.Context, key []byte, delta int64) (int64, error) {
	v, found, err := t.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	var cur int64
	if found && len(v) == 8 {
		cur = int64(binary.BigEndian.Uint64(v))
	}
	cur += delta
	if err := t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: key, Value: binary.BigEndian.AppendUint64(nil, uint64(cur))}}); err != nil {
		return 0, err
	}
	return cur, nil
}

// Savepoint marks the transaction's writes so far; RollbackTo undoes every
// write after a mark.
type Savepoint int

// Savepoint returns a mark of the writes so far.
func (t *Txn) Savepoint() Savepoint { return Savepoint(len(t.undo)) }

// RollbackTo undoes the writes made after sp. What was read stays in the
// read set: the transaction's later decisions may depend on it.
func (t *Txn) RollbackTo(sp Savepoint) {
	for i := len(t.undo) - 1; i >= int(sp); i-- {
		u := t.undo[i]
		if cur, ok := t.writes[u.key]; ok {
			t.bytes -= cur.size(u.key)
		}
		if u.hadPrev {
			t.writes[u.key] = u.prev
			t.bytes += u.prev.size(u.key)
		} else {
			delete(t.writes, u.key)
		}
	}
	t.undo = t.undo[:sp]
}

// Commit commits the transaction: a read-only one just ends; one that
// wrote proposes its commit, which applies only if nothing it read changed
// since its snapshot (*kvpb.TxnConflictError otherwise). The transaction
// ends either way.
func (t *Txn) Commit(ctx context.Context) error {
	if t.done {
		return errors.AssertionFailedf("transaction committed after it ended")
	}
	defer t.Rollback()
	if len(t.writes) == 0 {
		return nil
	}
	s, err := t.snapshot(ctx)
	if err != nil {
		return err
	}
	// A key read before the transaction scanned a span holding it is
	// validated with the span.
	c := &kvpb.TxnCommit{Snapshot: s.Index(), ReadSpans: t.scanned, ReadKeys: make([][]byte, 0, len(t.readKeys))}
	for k := range t.readKeys {
		if !t.wasScanned([]byte(k)) {
			c.ReadKeys = append(c.ReadKeys, []byte(k))
		}
	}
	sort.Slice(c.ReadKeys, func(i, j int) bool { return bytes.Compare(c.ReadKeys[i], c.ReadKeys[j]) < 0 })
	ks := make([]string, 0, len(t.writes))
	for k := range t.writes {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	c.Writes = make([]kvpb.Op, 0, len(ks))
	for _, k := range ks {
		switch w := t.writes[k]; {
		case w.blind:
			c.Writes = append(c.Writes, w.applies...)
		case w.deleted:
			c.Writes = append(c.Writes, kvpb.Op{Kind: kvpb.OpDelete, Key: []byte(k)})
		default:
			c.Writes = append(c.Writes, kvpb.Op{Kind: kvpb.OpPut, Key: []byte(k), Value: w.value})
		}
	}
	for k := range t.existKeys {
		if _, read := t.readKeys[k]; !read && !t.wasScanned([]byte(k)) {
			c.ExistKeys = append(c.ExistKeys, []byte(k))
		}
	}
	sort.Slice(c.ExistKeys, func(i, j int) bool { return bytes.Compare(c.ExistKeys[i], c.ExistKeys[j]) < 0 })
	if n := len(c.ReadKeys) + len(c.ExistKeys); n > t.maxReads {
		return errors.WithHint(errors.Wrapf(ErrTooLarge, "it read %d keys outside the spans it scanned, "+
			"more than the limit of %d keys a commit validates one by one", n, t.maxReads), tooLargeHint)
	}
	return t.db.CommitTxn(ctx, c)
}

// Rollback ends the transaction without writing anything. It may be called
// more than once.
func (t *Txn) Rollback() {
	if t.snap != nil {
		t.snap.Close()
		t.snap = nil
	}
	t.done = true
}
