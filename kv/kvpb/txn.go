package kvpb

import (
	"context"
	"fmt"
)

// Transactions (release 2.1; see txn/DESIGN.md). A transaction reads one
// Snapshot of the replicated state, buffers its writes, and commits them
// with CommitTxn, which the data group's apply loop validates at the log
// position of the commit: every key and span the transaction read must be
// unchanged since the snapshot's index.

// Span is the key range [Start, End).
type Span struct {
	Start, End []byte
}

// Snapshot is a consistent, read-only view of the replicated state as it
// was after the log entry at Index was applied.
type Snapshot interface {
	// Index is the Raft log index the snapshot holds the state of.
	Index() uint64
	Get(key []byte) (value []byte, found bool, err error)
	// Scan is DB.Scan on the snapshot.
	Scan(start, end []byte, limit int, reverse bool) ([]KeyValue, error)
	// Close releases the snapshot.
	Close()
}

// SnapshotStreamer is implemented by a Snapshot that can hand the entries
// of a read to a function as it reads them (Streamer's reads, on the
// snapshot's state).
type SnapshotStreamer interface {
	ScanFunc(start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error
	GetEach(keys [][]byte, fn func(i int, value []byte) error) error
}

// TxnCommit is a transaction's commit: what it read at Snapshot, and what
// it writes (OpPut, OpDelete and OpApply only: every condition of the
// transaction was evaluated against its snapshot and the key added to its
// reads).
type TxnCommit struct {
	Snapshot uint64
	// ReadKeys are keys whose value (or absence) the transaction read.
	ReadKeys [][]byte
	// ExistKeys are keys of which the transaction read only whether they
	// exist (a blind UPDATE's row): a write that changes their value, not
	// their existence, does not conflict.
	ExistKeys [][]byte
	ReadSpans []Span
	Writes    []Op
}

// TxnDB is the part of the data plane transactions need.
type TxnDB interface {
	DB
	// Snapshot takes a snapshot that reflects every write acknowledged
	// before the call (a linearizable read barrier first). It fails with
	// ErrTxnsDisabled until EnableTxns has been applied.
	Snapshot(ctx context.Context) (Snapshot, error)
	// CommitTxn proposes c and waits until it is applied: nil when it
	// committed, *TxnConflictError when its validation failed (nothing was
	// written), ErrAmbiguous when the outcome is unknown.
	CommitTxn(ctx context.Context, c *TxnCommit) error
	// EnableTxns proposes the command from which the apply loop records
	// the log index of every table write (idempotent). Only once every
	// replica runs a binary that knows the command (release 2.1's
	// migration).
	EnableTxns(ctx context.Context) error
}

// ErrCommandRefused is returned for a write that the cluster version no
// longer allows into the Raft log: a downgrade has lowered it below the
// step the write's command belongs to (a transaction's commit, once the
// downgrade to 2.0 is past 2.1-step.2).
var ErrCommandRefused = fmt.Errorf("the cluster version no longer allows this command into the Raft log")

// ErrTxnsDisabled is returned by Snapshot and CommitTxn before EnableTxns
// has been applied.
var ErrTxnsDisabled = fmt.Errorf("transactions are not enabled in the data group yet")

// TxnConflictError says why a transaction's commit failed validation.
type TxnConflictError struct {
	// Key is the first key found changed (for a span, the changed key in
	// it; for a deleted range, its start).
	Key []byte
	// Index is the log index of the write that changed it.
	Index uint64
	// TooOld is set when the snapshot predates what the data group can
	// still validate against.
	TooOld bool
}

func (e *TxnConflictError) Error() string {
	if e.TooOld {
		return "the transaction's snapshot is older than the data group can validate"
	}
	return fmt.Sprintf("key %q was written at log index %d, after the transaction's snapshot", e.Key, e.Index)
}
