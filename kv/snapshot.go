package kv

import (
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/storage"
)

// Raft snapshots, streamed.
//
// Raft asks its Storage for a snapshot when a follower needs entries the
// leader has truncated; raftStorage.Snapshot answers with the metadata of
// the applied state only (index, term, configuration), which is cheap and
// runs on the Ready loop. The data is read when the snapshot is sent, on the
// transport's goroutine: the sender opens a Pebble snapshot of the engine,
// rewrites the message's metadata to that snapshot's applied state (a newer
// one than Raft asked for, which etcd raft accepts: the follower then
// acknowledges the index it actually got), and streams the replicated key
// span in chunks of snapshotChunkBytes. So building a snapshot never stalls
// the leader's Ready loop (heartbeats go on), no single message carries the
// whole store, and the sender holds one chunk in memory at a time.
//
// The receiver writes the chunks into a Pebble batch that starts by clearing
// the replicated span, stages it under the snapshot's index, and only then
// hands the MsgSnap to Raft. When Raft returns the snapshot in a Ready,
// applySnapshot completes that batch (the log reset, the applied and
// truncated states) and commits it, synced: the state machine moves from its
// old state to the snapshot's in one atomic write.

// snapshotChunkBytes is the target size of one streamed chunk of key-value
// pairs.
const snapshotChunkBytes = 1 << 20

// outgoingSnapshot is a consistent view of the engine for sending: its
// applied state and the replicated span as of that state.
type outgoingSnapshot struct {
	applied appliedState
	snap    *pebble.Snapshot
}

// openSnapshot opens an outgoing snapshot of r's engine. The caller closes
// it.
func (r *Replica) openSnapshot() (*outgoingSnapshot, error) {
	snap := r.eng.DB.NewSnapshot()
	v, closer, err := snap.Get(keyApplied)
	if err != nil {
		_ = snap.Close()
		return nil, errors.Wrap(err, "reading the applied state for a Raft snapshot")
	}
	as, err := decodeApplied(v)
	_ = closer.Close()
	if err != nil {
		_ = snap.Close()
		return nil, err
	}
	return &outgoingSnapshot{applied: as, snap: snap}, nil
}

func (o *outgoingSnapshot) close() { _ = o.snap.Close() }

// metadata is the Raft metadata of the snapshot's state.
func (o *outgoingSnapshot) metadata() raftpb.SnapshotMetadata {
	return raftpb.SnapshotMetadata{Index: o.applied.Index, Term: o.applied.Term, ConfState: o.applied.ConfState}
}

// chunks calls send with successive chunks of the replicated span, each a
// sequence of length-prefixed key and value pairs of about
// snapshotChunkBytes. Each chunk is a new slice that send may keep.
func (o *outgoingSnapshot) chunks(send func(chunk []byte) error) error {
	lo, hi := storage.ReplicatedSpan()
	it, err := o.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var chunk []byte
	for ok := it.First(); ok; ok = it.Next() {
		chunk = appendBytes(chunk, it.Key())
		chunk = appendBytes(chunk, it.Value())
		if len(chunk) >= snapshotChunkBytes {
			if err := send(chunk); err != nil {
				return err
			}
			chunk = nil
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if len(chunk) > 0 {
		return send(chunk)
	}
	return nil
}

// incomingSnapshot collects a streamed snapshot's data into the batch that
// will install it.
type incomingSnapshot struct {
	r     *Replica
	index uint64
	b     *pebble.Batch
	keys  int
	done  bool
}

// receiveSnapshot starts receiving the data of the snapshot described by
// meta.
func (r *Replica) receiveSnapshot(meta raftpb.SnapshotMetadata) (*incomingSnapshot, error) {
	b := r.eng.DB.NewBatch()
	lo, hi := storage.ReplicatedSpan()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		_ = b.Close()
		return nil, err
	}
	return &incomingSnapshot{r: r, index: meta.Index, b: b}, nil
}

// maxSnapshotBatchBytes bounds the batch that installs a snapshot: a Pebble
// batch holds at most 4 GiB and panics beyond, so a larger snapshot is
// refused before that, with an error, and the sender retries later to no
// avail. Installing larger stores needs the data written to an sstable and
// ingested instead (not done yet).
const maxSnapshotBatchBytes = 3 << 30

// add adds one chunk of key-value pairs.
func (in *incomingSnapshot) add(chunk []byte) error {
	if in.b.Len()+len(chunk) > maxSnapshotBatchBytes {
		return errors.Newf("Raft snapshot at index %d is larger than %d bytes, the most this node can install at once",
			in.index, maxSnapshotBatchBytes)
	}
	n, err := decodeSnapshotPairs(chunk, func(k, v []byte) error { return in.b.Set(k, v, nil) })
	in.keys += n
	return err
}

// stage makes the received data available to applySnapshot, replacing any
// earlier copy of the same snapshot. Call it before the MsgSnap reaches Raft.
func (in *incomingSnapshot) stage() {
	in.done = true
	in.r.staged.put(in)
}

// abort drops the data of a snapshot that was not staged.
func (in *incomingSnapshot) abort() {
	if !in.done {
		_ = in.b.Close()
	}
}

// decodeSnapshotPairs calls fn for each key-value pair of a snapshot chunk
// and returns how many there were. Every key must lie in the replicated
// span: a snapshot never touches a replica's local state.
func decodeSnapshotPairs(chunk []byte, fn func(k, v []byte) error) (int, error) {
	d := &decoder{b: chunk}
	n := 0
	for len(d.b) > 0 {
		k, v := d.bytes(), d.bytes()
		if d.err != nil {
			return n, errors.Wrap(d.err, "corrupt Raft snapshot")
		}
		if len(k) == 0 || k[0] != storage.PrefixReplicated {
			return n, errors.AssertionFailedf("snapshot key %q outside the replicated span", k)
		}
		if err := fn(k, v); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// stagedSnapshots holds received snapshots until Raft hands them to
// applySnapshot. Raft sends one snapshot at a time to a follower, so there is
// rarely more than one; those Raft ignored (it had the entries by then) are
// dropped once the replica has applied past them.
type stagedSnapshots struct {
	mu   sync.Mutex
	byIx map[uint64]*incomingSnapshot
}

func (s *stagedSnapshots) put(in *incomingSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byIx == nil {
		s.byIx = map[uint64]*incomingSnapshot{}
	}
	if old := s.byIx[in.index]; old != nil {
		_ = old.b.Close()
	}
	s.byIx[in.index] = in
}

// take removes and returns the staged snapshot at index, or nil.
func (s *stagedSnapshots) take(index uint64) *incomingSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.byIx[index]
	delete(s.byIx, index)
	return in
}

// dropUpTo discards the staged snapshots at or below index.
func (s *stagedSnapshots) dropUpTo(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ix, in := range s.byIx {
		if ix <= index {
			_ = in.b.Close()
			delete(s.byIx, ix)
		}
	}
}
