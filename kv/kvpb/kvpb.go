package kvpb

import (
	"context"
	"fmt"
)

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpPut sets Key to Value unconditionally.
	OpPut OpKind = iota + 1
	// OpDelete removes Key unconditionally (deleting a missing key is fine).
	OpDelete
	// OpCPut is a conditional put/delete: it applies only if Key's current
	// value equals Expected (ExpectAbsent: the key must not exist). Value
	// nil with Delete=true deletes the key. If the condition fails, the whole
	// batch fails with *ConditionFailedError and nothing is written.
	OpCPut
	// OpDeleteRange removes every key in [Key, EndKey).
	OpDeleteRange
	// OpInsertOrUpdate writes Value if Key is absent and ElseValue if it
	// exists, decided when the batch is applied: an INSERT ... ON CONFLICT
	// DO UPDATE whose new row does not depend on the old one needs no read.
	OpInsertOrUpdate
	// OpApply rewrites Key's current value with the registered function
	// Func, given Value as its argument, when the batch is applied; an
	// absent key stays absent. An UPDATE ... SET n = n + 1 of a hot row
	// needs no read of it (release 2.1, inside transactions). If the
	// function fails, the whole batch fails with its error.
	OpApply
	// OpCheck writes nothing: it requires Key's current value to equal
	// Expected (ExpectAbsent: the key must not exist), or the whole batch
	// fails with *ConditionFailedError. A write to a table asserts the
	// table's schema fence with it (sql/schemachange.go): release 2.1,
	// proposed only once the cluster is finalized to 2.1.
	OpCheck
)

// Op is one operation of an atomic batch.
type Op struct {
	Kind         OpKind
	Key          []byte
	EndKey       []byte    // OpDeleteRange only
	Value        []byte    // OpPut, OpCPut
	Expected     []byte    // OpCPut: required current value (when !ExpectAbsent)
	ExpectAbsent bool      // OpCPut: the key must not exist
	Delete       bool      // OpCPut: delete the key instead of writing Value
	ElseValue    []byte    // OpInsertOrUpdate: the value written if Key exists
	Func         ApplyFunc // OpApply: the function; Value is its argument
	// ExpectPresent: an OpCheck of a COPY's stage only (CopyStager), that
	// Key exists, whatever its value: a parent row (or unique index entry)
	// that the COPY's rows reference through a foreign key. Release 2.1.
	ExpectPresent bool
	// Deferred: an ExpectPresent check decided at the publish only, where a
	// key staged by the same load counts as present (a row referencing
	// another row of the same COPY, which may come later in the data).
	Deferred bool
}

// KeyValue is one entry returned by a scan.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// ConditionFailedError is returned when an OpCPut's expectation did not hold
// at the moment the batch was applied. Nothing of the batch was written.
type ConditionFailedError struct {
	Index  int    // index of the failing op in the batch
	Key    []byte // its key
	Actual []byte // the value found; nil if the key was absent
	Exists bool
}

func (e *ConditionFailedError) Error() string {
	if e.Exists {
		return fmt.Sprintf("condition failed on key %q: key exists with a different value", e.Key)
	}
	return fmt.Sprintf("condition failed on key %q: key does not exist", e.Key)
}

// DB is the linearizable key-value API that the replicated data plane
// offers. Every read reflects every write acknowledged before it started;
// Write applies its ops atomically or not at all.
type DB interface {
	Get(ctx context.Context, key []byte) (value []byte, found bool, err error)
	// Scan returns up to limit (0: no limit) entries in [start, end), in
	// ascending key order, or descending if reverse.
	Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]KeyValue, error)
	Write(ctx context.Context, ops []Op) error
	// Increment atomically adds delta to the int64 counter at key (absent
	// means 0) and returns the new value.
	Increment(ctx context.Context, key []byte, delta int64) (int64, error)
}

// Streamer is implemented by a DB that can hand the entries of a read to a
// function as it reads them, without copying them into slices first: a
// query that aggregates a whole table then holds one entry at a time, not
// the table. Both reads have DB's linearizability, each from one
// consistent state of the store. The key and value passed to fn are valid
// only during the call (fn copies what it keeps); fn must not write
// through the DB. An error from fn stops the read and is returned as it is.
// Consumers fall back to Scan and Get when a DB does not implement it (a
// transaction's buffered view, for instance).
type Streamer interface {
	// ScanFunc calls fn with the entries Scan would return, in the same
	// order.
	ScanFunc(ctx context.Context, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error
	// GetEach reads keys, which must be sorted ascending without
	// duplicates, and calls fn with the position in keys and the value of
	// each key that exists, in key order.
	GetEach(ctx context.Context, keys [][]byte, fn func(i int, value []byte) error) error
}

// ErrAmbiguous is returned by Write when the outcome is unknown: the
// proposal may or may not have been applied (for example its leader lost
// leadership before acknowledging). Callers must not blindly retry
// non-idempotent writes.
var ErrAmbiguous = fmt.Errorf("result is ambiguous: the write may or may not have been applied")

// ErrUnavailable is returned when the replicated data plane cannot serve
// the request in time (no leader, no quorum).
var ErrUnavailable = fmt.Errorf("the replicated data plane is unavailable: no Raft leader could be reached in time")
