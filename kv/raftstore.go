package kv

import (
	"encoding/binary"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/storage"
)

// Engine keys of the Raft state, all in the replica-local 0x01 space.
var (
	keyHardState    = []byte("\x01raft-hs")
	keyTruncated    = []byte("\x01raft-trunc")
	keyApplied      = []byte("\x01raft-applied")
	keyLogPrefix    = []byte("\x01raft-log/")
	keyLogPrefixEnd = storage.PrefixEnd(keyLogPrefix)
)

func logKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), keyLogPrefix...), index)
}

// userKey maps a key of the kv API to its engine key.
func userKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = storage.PrefixReplicated
	copy(out[1:], k)
	return out
}

// appliedState is written in the same Pebble batch as the state machine
// writes of the entries it covers, so (data, applied index, configuration)
// are always mutually consistent on disk.
type appliedState struct {
	Index     uint64
	Term      uint64
	ConfState raftpb.ConfState
}

func (a appliedState) encode() []byte {
	cs, _ := a.ConfState.Marshal()
	b := binary.BigEndian.AppendUint64(nil, a.Index)
	b = binary.BigEndian.AppendUint64(b, a.Term)
	return append(b, cs...)
}

func decodeApplied(b []byte) (appliedState, error) {
	if len(b) < 16 {
		return appliedState{}, errors.New("corrupt applied state")
	}
	a := appliedState{Index: binary.BigEndian.Uint64(b), Term: binary.BigEndian.Uint64(b[8:])}
	if err := a.ConfState.Unmarshal(b[16:]); err != nil {
		return appliedState{}, errors.Wrap(err, "corrupt applied conf state")
	}
	return a, nil
}

// truncatedState is the index and term of the last entry removed from the
// log (the log holds entries after it).
type truncatedState struct{ Index, Term uint64 }

func (t truncatedState) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, t.Index), t.Term)
}

// raftStorage is raft.Storage over an in-memory copy of the unapplied and
// recently applied log (raft.MemoryStorage), persisted in Pebble by the
// Ready loop. It overrides two methods of MemoryStorage:
//
//   - InitialState returns the configuration as of the applied index, which
//     is what the state machine reflects (MemoryStorage would return the one
//     as of the last log truncation).
//   - Snapshot describes the state machine at its current applied index; the
//     data is read from the engine when the snapshot is sent (snapshot.go).
//     Snapshots are therefore never stored: the engine itself is the
//     snapshot, and followers that fell behind the truncated log receive a
//     fresh copy of it.
//
// It also keeps the size of every entry it holds (Append, Compact and
// ApplySnapshot keep them in step with MemoryStorage's), so that the log
// kept in memory can be bounded in bytes as well as in entries
// (maybeTruncate): 10,000 entries of a bulk load of 1,000-row statements
// are hundreds of MiB.
type raftStorage struct {
	*raft.MemoryStorage

	mu      sync.Mutex
	applied appliedState
	sizes   entrySizes
}

// entrySizes holds the sizes of the entries at first, first+1, ... and
// their sum.
type entrySizes struct {
	first uint64
	sizes []uint64
	bytes uint64
}

// Append implements raft.Storage's companion: MemoryStorage.Append, and the
// entries' sizes. As MemoryStorage does, entries below the first one held
// are ignored, and an entry replaces the one at its index and every later
// one.
func (s *raftStorage) Append(ents []raftpb.Entry) error {
	if err := s.MemoryStorage.Append(ents); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.sizes
	for _, e := range ents {
		if e.Index < l.first {
			continue
		}
		pos := e.Index - l.first
		if pos > uint64(len(l.sizes)) {
			// MemoryStorage refuses a gap; never reached.
			break
		}
		for _, n := range l.sizes[pos:] {
			l.bytes -= n
		}
		l.sizes = append(l.sizes[:pos], uint64(e.Size()))
		l.bytes += uint64(e.Size())
	}
	return nil
}

// Compact drops the entries through idx, from MemoryStorage and from the
// sizes.
func (s *raftStorage) Compact(idx uint64) error {
	if err := s.MemoryStorage.Compact(idx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.sizes
	if idx < l.first {
		return nil
	}
	n := min(idx+1-l.first, uint64(len(l.sizes)))
	for _, b := range l.sizes[:n] {
		l.bytes -= b
	}
	l.sizes = append([]uint64(nil), l.sizes[n:]...)
	l.first = idx + 1
	return nil
}

// ApplySnapshot replaces the log with a snapshot: no entries are held.
func (s *raftStorage) ApplySnapshot(snap raftpb.Snapshot) error {
	if err := s.MemoryStorage.ApplySnapshot(snap); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = entrySizes{first: snap.Metadata.Index + 1}
	return nil
}

// logBytes is the size of the entries held.
func (s *raftStorage) logBytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sizes.bytes
}

// truncationForBytes returns the index through which to truncate so that
// the applied entries kept (through applied) hold at most half of
// maxBytes, or 0 if the log holds no more than maxBytes.
func (s *raftStorage) truncationForBytes(applied, maxBytes uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.sizes
	if l.bytes <= maxBytes || applied < l.first {
		return 0
	}
	last := min(applied-l.first, uint64(len(l.sizes))-1)
	kept := uint64(0)
	for i := int64(last); i >= 0; i-- {
		if kept += l.sizes[i]; kept > maxBytes/2 {
			return l.first + uint64(i)
		}
	}
	return 0
}

var _ raft.Storage = (*raftStorage)(nil)

// InitialState implements raft.Storage.
func (s *raftStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	hs, _, err := s.MemoryStorage.InitialState()
	s.mu.Lock()
	defer s.mu.Unlock()
	return hs, s.applied.ConfState, err
}

// Snapshot implements raft.Storage: the metadata of the applied state,
// without data. The transport reads the data when it sends the snapshot
// (snapshot.go), so this is cheap on the Ready loop that calls it.
func (s *raftStorage) Snapshot() (raftpb.Snapshot, error) {
	s.mu.Lock()
	as := s.applied
	s.mu.Unlock()
	if as.Index == 0 {
		return raftpb.Snapshot{}, raft.ErrSnapshotTemporarilyUnavailable
	}
	return raftpb.Snapshot{
		Metadata: raftpb.SnapshotMetadata{Index: as.Index, Term: as.Term, ConfState: as.ConfState},
	}, nil
}

// loaded is what a replica finds on disk at start.
type loaded struct {
	hs      raftpb.HardState
	trunc   truncatedState
	applied appliedState
	entries []raftpb.Entry
}

func loadRaftState(eng *storage.Engine) (loaded, error) {
	return loadRaftStateFrom(eng.DB)
}

// loadRaftStateFrom is loadRaftState from any view of the engine (the
// crash harness reads a snapshot).
func loadRaftStateFrom(rd pebble.Reader) (loaded, error) {
	var l loaded
	get := func(k []byte, fn func([]byte) error) error {
		v, closer, err := rd.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		return fn(v)
	}
	if err := get(keyHardState, func(v []byte) error { return l.hs.Unmarshal(v) }); err != nil {
		return l, errors.Wrap(err, "reading Raft hard state")
	}
	if err := get(keyTruncated, func(v []byte) error {
		if len(v) != 16 {
			return errors.New("corrupt truncated state")
		}
		l.trunc = truncatedState{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
		return nil
	}); err != nil {
		return l, err
	}
	if err := get(keyApplied, func(v []byte) (err error) { l.applied, err = decodeApplied(v); return err }); err != nil {
		return l, err
	}
	// Entries are applied as soon as they are committed and durable here,
	// which can be before the hard state that records their commit is
	// written (Replica.handleReady), and that write is not synced. After a
	// crash the applied index may thus be ahead of the stored commit index;
	// everything applied was committed, so the commit index is raised to it
	// (Raft refuses an applied index above the commit index).
	if l.applied.Index > l.hs.Commit {
		l.hs.Commit = l.applied.Index
	}
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: logKey(l.trunc.Index + 1), UpperBound: keyLogPrefixEnd})
	if err != nil {
		return l, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var e raftpb.Entry
		if err := e.Unmarshal(it.Value()); err != nil {
			return l, errors.Wrap(err, "corrupt Raft log entry")
		}
		if want := l.trunc.Index + 1 + uint64(len(l.entries)); e.Index != want {
			return l, errors.AssertionFailedf("Raft log has a gap: found entry %d, expected %d", e.Index, want)
		}
		l.entries = append(l.entries, e)
	}
	return l, it.Error()
}

// Bootstrap writes the initial Raft state of a new cluster whose only voter
// is nodeID, with initial as the first contents of the state machine, and
// local (raw engine keys, for example the store identity) in the same
// atomic, synced batch. It is called once, by `kvnode init`, on an empty
// store.
func Bootstrap(eng *storage.Engine, nodeID nodeid.ID, initial, local map[string][]byte) error {
	return bootstrapVoters(eng, []uint64{raftID(nodeID)}, initial, local)
}

// bootstrapVoters is Bootstrap with voters as the first configuration. Every
// voter's store must be bootstrapped alike (the crash harness starts its
// groups this way, as etcd's rafttest does; a real cluster starts with one
// voter and adds the others).
func bootstrapVoters(eng *storage.Engine, voters []uint64, initial, local map[string][]byte) error {
	l, err := loadRaftState(eng)
	if err != nil {
		return err
	}
	if l.applied.Index != 0 || len(l.entries) != 0 || !raft.IsEmptyHardState(l.hs) {
		return errors.AssertionFailedf("store %s already holds Raft state", eng.Dir)
	}
	const index, term = 1, 1
	b := eng.DB.NewBatch()
	defer b.Close()
	as := appliedState{Index: index, Term: term, ConfState: raftpb.ConfState{Voters: voters}}
	hs := raftpb.HardState{Term: term, Commit: index}
	hsb, _ := hs.Marshal()
	_ = b.Set(keyApplied, as.encode(), nil)
	_ = b.Set(keyTruncated, truncatedState{index, term}.encode(), nil)
	_ = b.Set(keyHardState, hsb, nil)
	for k, v := range initial {
		_ = b.Set(userKey([]byte(k)), v, nil)
	}
	for k, v := range local {
		_ = b.Set([]byte(k), v, nil)
	}
	return b.Commit(pebble.Sync)
}
