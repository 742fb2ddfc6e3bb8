package kv

// Taking release 2.1's commands back out of the data group, for a downgrade
// to 2.0 (upgrademanager/DESIGN.md, "Down from 2.1").
//
// A 2.0 binary knows cmdBatch and cmdIncrement only. Before the 2.1 fence is
// lowered and 2.0 binaries may join, nothing else may be in any node's Raft
// log or under the transaction records' prefix. Three pieces do it:
//
//   - The leader appends a command only if the cluster version the server
//     reports (Config.CommandLevel) still allows it: transaction commands
//     while transactions' step is active, cmdDisableTxns while the fence is
//     up, the 2.0 commands always. This is the one door into the log
//     (flushProposals for local proposals, proposeForwarded for a
//     follower's), so once every node has persisted a version below a
//     command's step, no entry of it is appended any more, however late a
//     proposal arrives.
//   - cmdDisableTxns, proposed by the down-migration at the fence, deletes
//     every transaction record; a transaction command applied after it
//     fails the same way on every replica (ErrTxnsDisabled).
//   - PurgeLogThrough compacts a replica's log through an index at or after
//     the last 2.1 entry, once that entry is applied there; a follower that
//     needs older entries gets a snapshot, which holds no 0x06 record.
//
// TxnCommandsInLog and TxnRecordsLeft let a node check, before it persists
// 2.0, that all of this has happened on its own store.

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// cmdDisableTxns ends release 2.1's transaction records (release 2.1,
// proposed only by the downgrade to 2.0, while the 2.1 fence is up).
const cmdDisableTxns cmdKind = 6

// CommandLevel says which commands the cluster version allows the leader to
// append. Its order matters: each level allows what the levels below it do.
type CommandLevel int

const (
	// Level20 allows what a 2.0 binary applies: cmdBatch, cmdIncrement.
	Level20 CommandLevel = iota
	// Level21Fence (the 2.1 fence: only 2.1 binaries in the cluster) also
	// allows cmdDisableTxns, the downgrade's cleanup.
	Level21Fence
	// Level21Txns (2.1-step.2 and up) allows every command.
	Level21Txns
	// Level21 (2.1 itself) is where a gateway starts proposing
	// cmdBulkBatch, which the door accepts from Level21Txns on: a sender
	// one ladder step above the receiver's gate, so that the leader never
	// refuses one that a node whose version is a step ahead of or behind
	// its own sends (the version moves one step at a time, persisted on
	// every node before the next; a refused forwarded proposal would be
	// retried until its deadline).
	Level21
)

// level is the lowest CommandLevel at which a command of kind k may be
// appended.
func (k cmdKind) level() CommandLevel {
	switch k {
	case cmdBatch, cmdIncrement:
		return Level20
	case cmdDisableTxns:
		return Level21Fence
	case cmdBatch21:
		// Writers propose it only at 2.1 itself; the door closes with the
		// transaction commands', before the downgrade purges the logs.
		return Level21Txns
	case cmdBulkBatch:
		// Issue 20; like cmdTxnGCStep below, it needs no step of its own.
		// Its range records live under 0x06, which cmdDisableTxns deletes.
		return Level21Txns
	case cmdCopyStage, cmdCopyPublish, cmdCopyAbort:
		// Session 15 (copy.go), proposed at Level21 like cmdBulkBatch
		// and for its reasons needing no step of its own; a stage lives
		// under 0x06, which cmdDisableTxns deletes.
		return Level21Txns
	case cmdEnableTxns, cmdTxnCommit, cmdTxnGC, cmdTxnGCStep:
		// cmdTxnGCStep (issue 22) came after cmdTxnGC in the 2.1 tree but
		// needs no step of its own: 2.1-step.1 fences out every binary
		// older than 2.1, and 2.1 has not been released without it, so
		// every node that may apply the entries of 2.1-step.2 knows it.
		// Its state (the cursor under 0x06) goes with cmdDisableTxns.
		return Level21Txns
	default:
		return Level21Txns
	}
}

// release20 reports whether a 2.0 binary knows commands of kind k.
func (k cmdKind) release20() bool { return k.level() == Level20 }

// level is the CommandLevel the cluster version gives this replica's
// proposals (every command's, without Config.CommandLevel).
func (r *Replica) level() CommandLevel {
	if r.cfg.CommandLevel == nil {
		return Level21
	}
	return r.cfg.CommandLevel()
}

// mayAppend reports whether the leader may append data (an encoded
// command) at the current cluster version.
func (r *Replica) mayAppend(data []byte) bool {
	if r.cfg.CommandLevel == nil || len(data) < 10 {
		return true
	}
	return cmdKind(data[9]).level() <= r.cfg.CommandLevel()
}

func refusedProposal(kind cmdKind) error {
	return errors.WithHint(errors.Wrapf(kvpb.ErrCommandRefused, "command kind %d", kind),
		"a downgrade has lowered the cluster version below the step this command belongs to; "+
			"SHOW UPGRADE STATUS shows it")
}

// DisableTxns proposes cmdDisableTxns and returns the log index at which it
// applied (the downgrade's down-migration at the 2.1 fence). It is
// idempotent.
func (r *Replica) DisableTxns(ctx context.Context) (uint64, error) {
	res, err := r.submit(ctx, &command{Kind: cmdDisableTxns})
	if err != nil {
		return 0, err
	}
	return uint64(res.value), res.err
}

// applyDisableTxns deletes every transaction record; later transaction
// commands fail with ErrTxnsDisabled until a cmdEnableTxns.
func (r *Replica) applyDisableTxns(b *pebble.Batch, index uint64) result {
	_ = b.DeleteRange(userKey([]byte(txnMetaPrefix)), userKey(storage.PrefixEnd([]byte(txnMetaPrefix))), nil)
	r.rows.clear()
	if r.stamps.from != 0 {
		r.log.Info("transactions disabled for a downgrade: their records are deleted", "index", index)
	}
	r.stamps = stampsState{loaded: true}
	return result{value: int64(index)}
}

// PurgeLogThrough waits until this replica has applied index, then drops
// its log through it (keeping none of LogRetain's tail). Entries after it
// stay.
func (r *Replica) PurgeLogThrough(ctx context.Context, index uint64) error {
	for r.appliedIndex() < index {
		select {
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "node %d has applied the data group's log up to %d, not yet %d",
				r.cfg.NodeID, r.appliedIndex(), index)
		case <-r.stopC:
			return errStopped
		case <-time.After(10 * time.Millisecond):
		}
	}
	return r.onLoop(func() error {
		if min(r.applied.Index, r.readyApplied) < index {
			return errors.Newf("index %d is not yet handed over as applied; retry", index)
		}
		// Synced: a crash must not bring 2.1 entries back into the log.
		return r.truncateThrough(index, pebble.Sync)
	})
}

// TxnCommandsInLog returns the index of the first entry in this replica's
// log (after its truncation point) whose command a 2.0 binary does not
// know, or 0 if there is none.
func (r *Replica) TxnCommandsInLog() (uint64, error) {
	var found uint64
	err := r.onLoop(func() error {
		last, err := r.store.LastIndex()
		if err != nil {
			return err
		}
		for lo, hi := r.trunc.Index+1, last+1; lo < hi; {
			ents, err := r.store.Entries(lo, hi, 4<<20)
			if err != nil || len(ents) == 0 {
				return err
			}
			for _, e := range ents {
				if len(e.Data) >= 10 && e.Data[0] == commandVersion && !cmdKind(e.Data[9]).release20() {
					found = e.Index
					return nil
				}
			}
			lo = ents[len(ents)-1].Index + 1
		}
		return nil
	})
	return found, err
}

// TxnRecordsLeft reports whether any transaction record is left in this
// replica's state.
func (r *Replica) TxnRecordsLeft() (bool, error) {
	kvs, err := scanReader(r.eng.DB, []byte(txnMetaPrefix), storage.PrefixEnd([]byte(txnMetaPrefix)), 1, false)
	return len(kvs) > 0, err
}

// applyGuard stops a replica built as release 2.0 (Config.Release20) at an
// entry a real 2.0 binary would not know, rather than apply it.
func (r *Replica) applyGuard(cmd *command, index uint64) error {
	if !r.cfg.Release20 || cmd.Kind.release20() {
		return nil
	}
	return errors.WithHint(errors.Newf("the Raft entry at index %d holds command kind %d, which needs release 2.1; "+
		"this binary is release 2.0", index, cmd.Kind),
		"a downgrade to 2.0 removes every 2.1 entry before a 2.0 binary may start; restart this node on its 2.1 binary")
}
