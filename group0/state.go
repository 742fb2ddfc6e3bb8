package group0

import (
	"github.com/cockroachdb/errors"
)

// State is a node's group 0 upgrade state, persisted in the node's own
// store (never replicated): it says which schema procedure the node uses.
type State string

// The upgrade states, in the order the upgrade procedure moves a node
// through them. Recovery is outside that order: an operator enters it by
// hand, and only the recovery procedure leaves it.
const (
	// UsePreRaft: schema changes use the pre-Raft procedure (apply locally,
	// push, gossip a digest, pull and merge). A node with no stored state
	// is in this state.
	UsePreRaft State = "use_pre_raft_procedures"
	// Synchronize: the node is a member of group 0, the pre-Raft path is
	// closed (no DDL, no push, no pull loop) and the upgrade procedure is
	// reconciling every node's schema into group 0. DDL issued now waits.
	Synchronize State = "synchronize"
	// UsePostRaft: schema changes commit through group 0.
	UsePostRaft State = "use_post_raft_procedures"
	// Recovery: the operator took the node out of group 0 (a stuck
	// upgrade, or group 0 lost its majority). The node serves reads and
	// DML and refuses DDL until the recovery procedure re-forms group 0.
	Recovery State = "recovery"
)

// StateKey is the key of the upgrade state in a node's local store.
const StateKey = "group0/upgrade_state"

// SQLKey is the key of the upgrade state in the system.local virtual table.
const SQLKey = "group0_upgrade_state"

// States lists every state.
func States() []State { return []State{UsePreRaft, Synchronize, UsePostRaft, Recovery} }

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	switch s {
	case UsePreRaft, Synchronize, UsePostRaft, Recovery:
		return true
	}
	return false
}

// rank orders the states the upgrade moves through.
func (s State) rank() int {
	switch s {
	case UsePreRaft:
		return 0
	case Synchronize:
		return 1
	case UsePostRaft:
		return 2
	}
	return -1
}

// ParseState interprets a stored value. Absent means UsePreRaft (a node
// that never heard of group 0). A value that is not one of the states
// (garbage, or a state a newer release invented) reads as Recovery, with
// garbage=true so the caller can log it: a node that does not know what it
// agreed to must not take part in group 0 or run DDL until an operator
// looks. Recovery is the one state from which nothing happens by itself.
func ParseState(b []byte, found bool) (s State, garbage bool) {
	if !found {
		return UsePreRaft, false
	}
	s = State(b)
	if !s.Valid() {
		return Recovery, true
	}
	return s, false
}

// LocalStore is the node's own durable key-value store (storage.Local).
type LocalStore interface {
	Get(key []byte) ([]byte, bool, error)
	// Put returns once the write is durable.
	Put(key, value []byte) error
}

// LoadState reads the node's upgrade state. The raw stored value is
// returned too, for the log line that reports garbage.
func LoadState(ls LocalStore) (s State, raw []byte, garbage bool, err error) {
	b, found, err := ls.Get([]byte(StateKey))
	if err != nil {
		return "", nil, false, errors.Wrap(err, "reading the group 0 upgrade state")
	}
	s, garbage = ParseState(b, found)
	return s, b, garbage, nil
}

// SaveState durably writes the node's upgrade state.
func SaveState(ls LocalStore, s State) error {
	if !s.Valid() {
		return errors.AssertionFailedf("invalid group 0 upgrade state %q", s)
	}
	return errors.Wrap(ls.Put([]byte(StateKey), []byte(s)), "persisting the group 0 upgrade state")
}

// CheckLeave says whether a node in state from may leave group 0 for a
// downgrade to 1.1 (back to use_pre_raft_procedures): from any state but
// recovery, which only the recovery procedure ends.
func CheckLeave(from State) error {
	if from == Recovery {
		return errors.WithHint(errors.Wrapf(ErrBackwards, "%s -> %s for a downgrade", from, UsePreRaft),
			"finish the recovery first (`kvnode node group0-recover`, docs/recovery.md), then downgrade")
	}
	return nil
}

// ErrBackwards is returned for a transition the state machine forbids.
var ErrBackwards = errors.New("group 0 upgrade state transition not allowed")

// CheckTransition says whether a node may go from one state to another.
//
//   - Forward along use_pre_raft_procedures -> synchronize ->
//     use_post_raft_procedures, skipping synchronize only for a node that
//     joins an already upgraded cluster (from==UsePreRaft, to==UsePostRaft
//     is allowed: the caller checks the cluster is upgraded).
//   - Into recovery from anywhere (the operator's decision).
//   - Out of recovery only by the recovery procedure (fromRecovery).
//   - Staying put is a no-op, always allowed.
//
// Everything else, in particular any step backwards, is refused: a node
// that used group 0 must never go back to a procedure that could lose a
// schema change group 0 committed.
func CheckTransition(from, to State, fromRecovery bool) error {
	if !to.Valid() {
		return errors.Wrapf(ErrBackwards, "unknown state %q", to)
	}
	switch {
	case from == to:
		return nil
	case to == Recovery:
		return nil
	case from == Recovery:
		if fromRecovery {
			return nil
		}
		return errors.WithHint(errors.Wrapf(ErrBackwards, "%s -> %s", from, to),
			"a node leaves recovery only through `kvnode node group0-recover` (docs/recovery.md)")
	case from.rank() < to.rank():
		return nil
	}
	return errors.Wrapf(ErrBackwards, "%s -> %s", from, to)
}
