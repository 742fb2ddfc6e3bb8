package kvpb

import (
	"context"

	"github.com/cockroachdb/errors"
)

// CopyStager is implemented by a DB that can make a bulk load visible all at
// once (release 2.1; txn/DESIGN.md, "An atomic COPY outside a transaction"):
// the load's batches are staged where no read sees them, then published in
// one step, or aborted. Consumers fall back to committing batch by batch
// when a DB does not implement it or AtomicCopy is false.
type CopyStager interface {
	// AtomicCopy reports whether the cluster version allows staging now.
	AtomicCopy() bool
	// StageCopy stages one batch of the load id: OpCPut expecting absence
	// (rows, unique index entries) or OpPut (other index entries) of table
	// data keys, and OpCheck conditions that must hold now and again at
	// the publish. An ExpectPresent check (a foreign key's parent) must
	// find its key live now (unless Deferred) and, at the publish, live or
	// staged by the load. A key already present that a CPut expects absent,
	// a key staged twice in the load, or a present check failing now,
	// fails with a ConditionFailedError naming it (Exists false for a
	// present check); nothing of the batch is staged then.
	StageCopy(ctx context.Context, id uint64, ops []Op) error
	// PublishCopy makes the n staged writes of load id visible in one
	// step, if every key expected absent still is and every condition
	// still holds, present checks included (else a ConditionFailedError
	// naming the key, and nothing is written); either way the stage is
	// gone afterwards. A stage that
	// is gone or incomplete fails with ErrCopyStageGone.
	PublishCopy(ctx context.Context, id uint64, n uint64) error
	// AbortCopy deletes what load id staged (nothing if nothing is left).
	AbortCopy(ctx context.Context, id uint64) error
}

// ErrCopyStageGone: a publish found fewer staged writes than the load sent;
// its stage was collected (idle for longer than the transaction history)
// or deleted by a downgrade.
var ErrCopyStageGone = errors.WithHint(errors.New("the rows this COPY staged are gone: it was idle for too long between two batches, or a downgrade removed them"),
	"nothing of the COPY was written; run it again, sending its data without pauses of minutes")
