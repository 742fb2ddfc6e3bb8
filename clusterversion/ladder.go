package clusterversion

import (
	"strings"

	"github.com/cockroachdb/errors"
)

// Key names a version on the ladder. Keys are append-only: never reorder or
// remove one, never reuse a value (see DESIGN.md, "Adding a version").
type Key int

const (
	// V1_0 is the first release: replicated KV tables, SQL, gossip,
	// liveness, cluster settings; schema changes use the pre-Raft procedure.
	V1_0 Key = iota
	// V1_1Fence is the fence of 1.1: from here on, binaries older than 1.1
	// are refused, so the 1.1 migration runs with only 1.1 binaries.
	V1_1Fence
	// V1_1WriteV2 makes writers store rows in encoding v2. Every node runs
	// a 1.1 binary from the fence on, so every reader understands v2; the
	// 1.1 migration then rewrites the remaining v1 rows, and no v1 row can
	// appear behind its scan.
	V1_1WriteV2
	// V1_1 stores rows in encoding v2 (with a checksum).
	V1_1
	// V2_0Fence is the fence of 2.0: binaries older than 2.0 are refused,
	// and the group 0 upgrade procedure runs.
	V2_0Fence
	// V2_0 moves schema changes onto Raft group 0.
	V2_0
	// V2_1Fence is the fence of 2.1: binaries older than 2.1 are refused.
	V2_1Fence
	// V2_1TxnStamps makes the data group's apply loop record, for every
	// table key it writes or deletes, the Raft log index of the write (see
	// txn/DESIGN.md). Its migration proposes the command that switches the
	// recording on, at one log entry for every replica; only 2.1 binaries
	// are left by then, and every one of them can apply it.
	V2_1TxnStamps
	// V2_1Users creates the replicated store of SQL users, role
	// memberships and privileges (root, a member of the role admin) for a
	// cluster that predates it (sql/users). A cluster bootstrapped at 2.1
	// has it from the start. CREATE USER and password authentication wait
	// for V2_1 itself, so no statement writes a user before the store
	// exists on every path.
	V2_1Users
	// V2_1 adds explicit, serializable transactions, and databases other
	// than defaultdb and postgres (CREATE DATABASE writes catalog records
	// a 2.0 binary cannot read; see sql/catalog/doc.go).
	V2_1

	numKeys
)

// ladder holds one entry per Key, in Key order, strictly increasing (checked
// by TestLadderIsStrictlyIncreasing).
var ladder = [numKeys]struct {
	Version     Version
	Description string
}{
	V1_0:          {Version{Major: 1, Minor: 0}, "first release: replicated KV tables, SQL, gossip, liveness, cluster settings"},
	V1_1Fence:     {Version{Major: 1, Minor: 1, Internal: 1}, "fence of 1.1: binaries older than 1.1 may no longer join"},
	V1_1WriteV2:   {Version{Major: 1, Minor: 1, Internal: 2}, "rows are written in encoding v2; the 1.1 migration rewrites existing rows"},
	V1_1:          {Version{Major: 1, Minor: 1}, "rows stored in encoding v2 (with a checksum)"},
	V2_0Fence:     {Version{Major: 2, Minor: 0, Internal: 1}, "fence of 2.0: binaries older than 2.0 may no longer join"},
	V2_0:          {Version{Major: 2, Minor: 0}, "schema changes through Raft group 0"},
	V2_1Fence:     {Version{Major: 2, Minor: 1, Internal: 1}, "fence of 2.1: binaries older than 2.1 may no longer join"},
	V2_1TxnStamps: {Version{Major: 2, Minor: 1, Internal: 2}, "the data group records the log index of every table write, which transactions validate against"},
	V2_1Users:     {Version{Major: 2, Minor: 1, Internal: 3}, "the replicated users, role memberships and privileges, with root as admin"},
	V2_1:          {Version{Major: 2, Minor: 1}, "explicit serializable transactions (BEGIN ... COMMIT); users, passwords and privileges; CREATE DATABASE"},
}

// Version returns the version of k.
func (k Key) Version() Version { return ladder[k].Version }

// String prints the version of k.
func (k Key) String() string { return ladder[k].Version.String() }

// Description says what reaching k adds.
func (k Key) Description() string { return ladder[k].Description }

// Latest is the newest key on the ladder: the default binary version.
const Latest = numKeys - 1

// Keys returns every key in ladder order.
func Keys() []Key {
	out := make([]Key, numKeys)
	for k := range out {
		out[k] = Key(k)
	}
	return out
}

// Fence returns the fence step of release v (its first internal step), or
// false if v has none (the first release).
func Fence(v Version) (Version, bool) {
	if _, ok := Lookup(v); !ok || !v.IsRelease() {
		return Version{}, false
	}
	for _, e := range ladder {
		if e.Version.Major == v.Major && e.Version.Minor == v.Minor && e.Version.Internal == 1 {
			return e.Version, true
		}
	}
	return Version{}, false
}

// Between returns the ladder's versions in (from, to], in order: the steps a
// finalization from `from` to `to` goes through.
func Between(from, to Version) []Version {
	var out []Version
	for _, e := range ladder {
		if from.Less(e.Version) && !to.Less(e.Version) {
			out = append(out, e.Version)
		}
	}
	return out
}

// Prev returns the ladder entry just below v, or false if v is the first
// entry or not on the ladder: the version a downgrade lowering v persists.
func Prev(v Version) (Version, bool) {
	k, ok := Lookup(v)
	if !ok || k == 0 {
		return Version{}, false
	}
	return ladder[k-1].Version, true
}

// PrevRelease returns the release just below v's release (2.0 for 2.1 and
// for 2.1-step.1), or false for the first release: the only target a
// downgrade from v may have.
func PrevRelease(v Version) (Version, bool) {
	rels := Releases()
	for i, r := range rels {
		if r == v.Release() && i > 0 {
			return rels[i-1], true
		}
	}
	return Version{}, false
}

// Releases lists every release on the ladder in order.
func Releases() []Version {
	var out []Version
	for _, e := range ladder {
		if e.Version.IsRelease() {
			out = append(out, e.Version)
		}
	}
	return out
}

// Lookup returns the key of v, or false if v is not on the ladder.
func Lookup(v Version) (Key, bool) {
	for k, e := range ladder {
		if e.Version == v {
			return Key(k), true
		}
	}
	return 0, false
}

// ErrUnknownVersion is returned for a well-formed version that is not on the
// ladder.
var ErrUnknownVersion = errors.New("unknown version")

// ParseRelease parses s and checks that it names a release on the ladder.
func ParseRelease(s string) (Version, error) {
	v, err := Parse(s)
	if err != nil {
		return Version{}, err
	}
	if _, ok := Lookup(v); !ok || !v.IsRelease() {
		return Version{}, errors.WithHintf(errors.Wrapf(ErrUnknownVersion, "%q", s),
			"the releases are %s", releaseList())
	}
	return v, nil
}

func releaseList() string {
	var parts []string
	for _, r := range Releases() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

// LadderList is every version of the ladder, oldest first, separated by
// commas: what a refusal of an unknown version lists.
func LadderList() string {
	var names []string
	for _, k := range Keys() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}
