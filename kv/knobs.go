package kv

// TestingKnobs let a test drive a replica's Raft loop deterministically: the
// crash harness (harness_test.go; kv/DESIGN.md, "The crash harness") runs
// real replicas with no ticker, an in-memory transport, and a callback at
// named points of the loop where it can hold the fsync or crash the node;
// other tests wait for an event the loop signals instead of sleeping.
// Nil in production, where every hook costs one nil check.
type TestingKnobs struct {
	// ManualTicks: the loop starts no ticker. The test ticks it by running
	// Replica.tick on the loop (through reportC).
	ManualTicks bool
	// Point, if set, is called on the loop's goroutine at each LoopPoint it
	// passes. It must return quickly: the loop waits for it.
	Point func(LoopPoint)
	// ApplyCommitted, if set, is called on the loop's goroutine by apply
	// after it has committed a batch of entries to Pebble and before the
	// read cache forgets what the batch wrote (readCache). It may block:
	// a test holds an apply there to race reads against it.
	ApplyCommitted func()
	// ReadCacheFill, if set, is called by Get after its Pebble read of key
	// and before it offers what it read to the read cache. It may block.
	ReadCacheFill func(key []byte)
	// ForwardDone, if set, is called when a forward of proposals to the
	// leader ends (forward.go), whatever its outcome, with the encoded
	// commands it carried: that forward sends nothing more. A test that
	// must show a write is never sent again waits for it.
	ForwardDone func(datas [][]byte)
}

// LoopPoint names a place in the Raft loop (run, handleReady, persist), in
// the order a Ready passes them. A crash "at" a point loses what the node
// had not synced when it got there: everything after it never happened
// except what already left the node (messages sent, proposers answered).
type LoopPoint string

const (
	// PointIdle: the loop is about to wait for its next event, every
	// Ready handled.
	PointIdle LoopPoint = "idle"
	// PointReady: a Ready is about to be handled; nothing of it has left
	// the node.
	PointReady LoopPoint = "ready"
	// PointSentEarly: a leader has sent the Ready's appends, heartbeats and
	// snapshots (handleReady sends them before persisting); nothing of the
	// Ready is persisted. On a follower nothing was sent.
	PointSentEarly LoopPoint = "sent-early"
	// PointBeforePersist: the committed entries that were durable before
	// the Ready are applied and their proposers answered; the Ready's own
	// entries and hard state are not written yet.
	PointBeforePersist LoopPoint = "before-persist"
	// PointSyncCommit: the loop is about to write a batch and block until
	// it is synced (the Ready's entries on a follower, a snapshot).
	PointSyncCommit LoopPoint = "sync-commit"
	// PointWritten: a leader's batch of entries and hard state is in the
	// write-ahead log, not yet synced; the loop will step messages while
	// the fsync runs (persist's whileSyncing).
	PointWritten LoopPoint = "written"
	// PointSyncWait: the loop is about to wait for that fsync, or for a
	// message to step meanwhile.
	PointSyncWait LoopPoint = "sync-wait"
	// PointSteppedWhileSyncing: during that fsync the loop stepped messages
	// and applied what they committed, answering those proposers.
	PointSteppedWhileSyncing LoopPoint = "stepped-while-syncing"
	// PointSynced: the Ready's entries and hard state are durable; its
	// other messages (votes, acknowledgements) are not sent yet.
	PointSynced LoopPoint = "synced"
	// PointSent: every message of the Ready is sent; the rest of its
	// committed entries are not applied yet.
	PointSent LoopPoint = "sent"
	// PointApplied: the Ready's committed entries are applied and their
	// proposers answered; Advance is not called yet.
	PointApplied LoopPoint = "applied"
)

// PointIngested: apply has ingested a COPY's publish (copy.go), which
// holds the applied state at its entry; the entries after it in the same
// apply are not written yet. Not in LoopPoints: only a publish passes it.
const PointIngested LoopPoint = "ingested"

// LoopPoints lists every LoopPoint in the order a Ready passes them.
var LoopPoints = []LoopPoint{PointIdle, PointReady, PointSentEarly, PointBeforePersist, PointSyncCommit,
	PointWritten, PointSyncWait, PointSteppedWhileSyncing, PointSynced, PointSent, PointApplied}

// point calls the Point knob, if any.
func (r *Replica) point(p LoopPoint) {
	if k := r.cfg.Testing; k != nil && k.Point != nil {
		k.Point(p)
	}
}
