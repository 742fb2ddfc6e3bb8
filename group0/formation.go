package group0

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeid"
)

// Formation says which group 0 is current. It is stored in the data group
// (not in group 0) under keys.Group0FormationKey, because it must be
// readable when group 0 is not: it is how every node, and every coordinator
// of the upgrade or of a recovery, agrees on which group 0 is the current
// one.
type Formation struct {
	// Generation numbers the group 0s this cluster has had: 1 for the
	// first, +1 for every re-formation by the recovery procedure. Group 0
	// messages are stamped with it (the transport's cluster ID), so the
	// members of an abandoned group 0 can never talk to the current one.
	Generation uint64 `json:"generation"`
	// Seed is the node that creates (bootstraps) this generation: the
	// smallest node ID at discovery, or the survivor with the most recent
	// group 0 state at a recovery.
	Seed nodeid.ID `json:"seed"`
	// Reason is "bootstrap", "upgrade" or "recovery".
	Reason string `json:"reason"`
	// Time is when the record was written (Unix nanoseconds).
	Time int64 `json:"time"`
}

// Encode returns the record's stored form.
func (f Formation) Encode() []byte {
	b, _ := json.Marshal(f)
	return b
}

// DecodeFormation reads a stored formation record.
func DecodeFormation(b []byte) (Formation, error) {
	var f Formation
	if err := json.Unmarshal(b, &f); err != nil || f.Generation == 0 || f.Seed <= 0 {
		return Formation{}, errors.Newf("corrupt group 0 formation record %q", b)
	}
	return f, nil
}

func (f Formation) String() string {
	return fmt.Sprintf("generation %d seeded by node %d (%s)", f.Generation, f.Seed, f.Reason)
}

// TransportClusterID is the cluster ID group 0's Raft transport stamps on
// its messages: messages of another cluster or of another generation are
// refused before they reach Raft.
func TransportClusterID(clusterID string, generation uint64) string {
	return fmt.Sprintf("%s/g0/%d", clusterID, generation)
}

// ServiceName is the gRPC service of group 0's Raft transport.
const ServiceName = "kvnode.Group0"
