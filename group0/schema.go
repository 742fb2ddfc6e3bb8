package group0

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
)

// The keys of group 0's state machine. Group 0 runs on its own engine, so
// these keys share nothing with the data group's.
//
//	state                  -> state ID, 8 bytes big-endian
//	state/t/<table name>   -> the table's descriptor (JSON, opaque here)
//	history/<8-byte ID>    -> HistoryEntry (JSON) of the change that made that state
//
// "state" sorts just before "state/..." and nothing else lies in
// ["state", "state0"), so one scan reads the state ID and every descriptor
// from one consistent snapshot of the replica.
var (
	keyState        = []byte("state")
	keyTablePrefix  = []byte("state/t/")
	keyStateSpanEnd = []byte("state0")
	keyHistory      = []byte("history/")
	keyHistoryEnd   = []byte("history0")
)

func tableKey(name string) []byte { return append(append([]byte(nil), keyTablePrefix...), name...) }

func historyKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), keyHistory...), id)
}

// StateKeyBytes is the key of the state ID, for the catalog apply loop's
// cheap local check (GetLocal) before it reads a whole snapshot.
func StateKeyBytes() []byte { return append([]byte(nil), keyState...) }

func encodeID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// DecodeStateID decodes a stored state ID.
func DecodeStateID(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errors.Newf("corrupt group 0 state ID (%d bytes)", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Snapshot is group 0's schema at one state.
type Snapshot struct {
	// StateID identifies the state: it is 1 when group 0 is created and
	// grows by one with every committed schema change. It never repeats
	// and never goes back, also across a recovery (the new generation
	// starts from the seed's state).
	StateID uint64
	// Tables maps a table name to its descriptor (JSON; tombstones of
	// dropped tables included). Group 0 does not interpret them.
	Tables map[string][]byte
}

// Names returns the table names in order.
func (s Snapshot) Names() []string {
	out := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Reader reads group 0's replica: linearizably (kvpb.DB) and locally.
type Reader interface {
	Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error)
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
}

// LocalReader reads the replica's applied state without a read barrier.
type LocalReader interface {
	GetLocal(key []byte) ([]byte, bool, error)
	ScanLocal(start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error)
}

// Replica is what group 0 needs of its Raft replica: the linearizable KV
// API and local reads. *kv.Replica satisfies it (checked in server).
type Replica interface {
	kvpb.DB
	LocalReader
}

// ErrNoState is returned when the replica holds no group 0 state yet (a
// joining node before its snapshot arrived).
var ErrNoState = errors.New("this node's group 0 replica holds no state yet")

func decodeSnapshot(kvs []kvpb.KeyValue) (Snapshot, error) {
	s := Snapshot{Tables: map[string][]byte{}}
	found := false
	for _, e := range kvs {
		k := string(e.Key)
		switch {
		case k == string(keyState):
			id, err := DecodeStateID(e.Value)
			if err != nil {
				return Snapshot{}, err
			}
			s.StateID, found = id, true
		case strings.HasPrefix(k, string(keyTablePrefix)):
			s.Tables[k[len(keyTablePrefix):]] = e.Value
		}
	}
	if !found {
		return Snapshot{}, ErrNoState
	}
	return s, nil
}

// Read is the read barrier of a schema change: a linearizable read of the
// state ID and the schema, from one snapshot. Every change committed before
// Read started is in the result.
func Read(ctx context.Context, r Reader) (Snapshot, error) {
	kvs, err := r.Scan(ctx, keyState, keyStateSpanEnd, 0, false)
	if err != nil {
		return Snapshot{}, err
	}
	return decodeSnapshot(kvs)
}

// ReadStateID is a read barrier on the state ID alone: a linearizable read
// of it, for a caller whose copy of the schema may already be at that state
// (then the descriptors need not be read again).
func ReadStateID(ctx context.Context, r Reader) (uint64, error) {
	b, found, err := r.Get(ctx, keyState)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, ErrNoState
	}
	return DecodeStateID(b)
}

// ReadLocal reads the state this replica has applied, without a barrier.
func ReadLocal(r LocalReader) (Snapshot, error) {
	kvs, err := r.ScanLocal(keyState, keyStateSpanEnd, 0, false)
	if err != nil {
		return Snapshot{}, err
	}
	return decodeSnapshot(kvs)
}

// LocalStateID returns the state ID this replica has applied (0 if none).
func LocalStateID(r LocalReader) (uint64, error) {
	b, found, err := r.GetLocal(keyState)
	if err != nil || !found {
		return 0, err
	}
	return DecodeStateID(b)
}

// HistoryEntry records one committed schema change.
type HistoryEntry struct {
	StateID     uint64 `json:"state_id"`
	PrevStateID uint64 `json:"prev_state_id"`
	// ChangeID is random per change (not per attempt): it lets a proposer
	// whose write had an unknown outcome find out whether it committed.
	ChangeID    string    `json:"change_id"`
	Description string    `json:"description"`
	Tables      []string  `json:"tables,omitempty"`
	NodeID      nodeid.ID `json:"node_id"`
	// Time is the proposer's wall clock (Unix nanoseconds), informative.
	Time int64 `json:"time"`
}

// History returns the last limit entries (0: all), oldest first.
func History(r LocalReader, limit int) ([]HistoryEntry, error) {
	kvs, err := r.ScanLocal(keyHistory, keyHistoryEnd, limit, limit > 0)
	if err != nil {
		return nil, err
	}
	out := make([]HistoryEntry, 0, len(kvs))
	for _, e := range kvs {
		var h HistoryEntry
		if err := json.Unmarshal(e.Value, &h); err != nil {
			return nil, errors.Wrapf(err, "corrupt group 0 history entry %x", e.Key)
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StateID < out[j].StateID })
	return out, nil
}

// Change is one schema change to commit.
type Change struct {
	// ID must be unique to this change and the same for every attempt to
	// commit it (see HistoryEntry.ChangeID).
	ID          string
	Tables      map[string][]byte
	Description string
	NodeID      nodeid.ID
	Time        time.Time
}

// ErrConflict is returned by Commit when the state moved since the change
// was built: another change committed first. Build the change again on the
// new state and retry.
var ErrConflict = errors.New("the group 0 state changed since the schema change read it")

// commitOps is the one write that commits ch on top of state expected: a
// conditional put of the state ID, the descriptors, and the history entry.
// The conditional put makes changes built on the same state mutually
// exclusive: exactly one of them commits.
func commitOps(expected uint64, ch Change) []kvpb.Op {
	next := expected + 1
	h := HistoryEntry{StateID: next, PrevStateID: expected, ChangeID: ch.ID, Description: ch.Description,
		NodeID: ch.NodeID, Time: ch.Time.UnixNano()}
	ops := []kvpb.Op{{Kind: kvpb.OpCPut, Key: keyState, Value: encodeID(next), Expected: encodeID(expected)}}
	for _, name := range (Snapshot{Tables: ch.Tables}).Names() {
		h.Tables = append(h.Tables, name)
		ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: tableKey(name), Value: ch.Tables[name]})
	}
	hb, _ := json.Marshal(h)
	ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: historyKey(next), Value: hb})
	return ops
}

// Commit commits ch on top of state expected and returns the new state ID.
//
// It never applies a change twice and never loses one silently: when the
// write's outcome is unknown (kvpb.ErrAmbiguous) or its condition failed,
// it reads the history entry of state expected+1. If that entry carries
// ch.ID, an earlier attempt committed and Commit succeeds. If it carries
// another change, Commit returns ErrConflict (our attempts, all conditional
// on state expected, can no longer apply). If there is none yet, the
// identical write is tried again: of several attempts conditional on the
// same state, at most one applies.
func Commit(ctx context.Context, db kvpb.DB, expected uint64, ch Change) (uint64, error) {
	if ch.ID == "" {
		return 0, errors.AssertionFailedf("group 0 change without an ID")
	}
	ops := commitOps(expected, ch)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		err := db.Write(ctx, ops)
		if err == nil {
			return expected + 1, nil
		}
		var cf *kvpb.ConditionFailedError
		condFailed := errors.As(err, &cf)
		if !condFailed && !errors.Is(err, kvpb.ErrAmbiguous) {
			return 0, err
		}
		lastErr = err
		hb, found, gerr := db.Get(ctx, historyKey(expected+1))
		if gerr != nil {
			return 0, errors.CombineErrors(err, gerr)
		}
		if found {
			var h HistoryEntry
			if json.Unmarshal(hb, &h) == nil && h.ChangeID == ch.ID {
				return expected + 1, nil
			}
			return 0, ErrConflict
		}
		if condFailed {
			// The state is not `expected` and no state expected+1
			// exists: the state ID is below expected, which a caller
			// that read it from group 0 never sees.
			return 0, errors.AssertionFailedf("group 0 state is behind the state %d the change was built on", expected)
		}
	}
	return 0, lastErr
}

// InitialState returns the replicated contents of a new group 0 whose
// schema is tables, at state ID 1, with one history entry saying why it
// was created. It is the initial data of kv.Bootstrap.
func InitialState(tables map[string][]byte, description string, nodeID nodeid.ID, now time.Time) map[string][]byte {
	out := map[string][]byte{string(keyState): encodeID(1)}
	h := HistoryEntry{StateID: 1, Description: description, NodeID: nodeID, Time: now.UnixNano(), ChangeID: "initial"}
	for name, d := range tables {
		out[string(tableKey(name))] = d
		h.Tables = append(h.Tables, name)
	}
	sort.Strings(h.Tables)
	hb, _ := json.Marshal(h)
	out[string(historyKey(1))] = hb
	return out
}
