package liveness

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/nodeid"
)

// Membership is a node's membership status in the cluster.
type Membership string

// The membership states; see the package documentation for the
// transitions.
const (
	Active          Membership = "active"
	Decommissioning Membership = "decommissioning"
	Decommissioned  Membership = "decommissioned"
)

// Valid reports whether m is one of the known states.
func (m Membership) Valid() bool {
	return m == Active || m == Decommissioning || m == Decommissioned
}

// Record is a node's durable liveness record.
type Record struct {
	NodeID nodeid.ID `json:"node_id"`
	// Epoch is incremented every time the node starts.
	Epoch int64 `json:"epoch"`
	// Expiration is the wall-clock time (Unix nanoseconds) until which the
	// node is live, extended by every heartbeat.
	Expiration int64 `json:"expiration"`
	// Draining is set while the node drains (kvnode node drain, SIGTERM);
	// cleared when it starts again.
	Draining   bool       `json:"draining"`
	Membership Membership `json:"membership"`
	// UpdatedAt is the wall-clock time (Unix nanoseconds) of the last write
	// of this record by anyone.
	UpdatedAt int64 `json:"updated_at"`
}

// NewRecord is the record written for a node when it gets its ID: never
// live yet, active.
func NewRecord(nodeID nodeid.ID, now time.Time) Record {
	return Record{NodeID: nodeID, Membership: Active, UpdatedAt: now.UnixNano()}
}

// Encode returns the stored form of the record.
func (r Record) Encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(errors.NewAssertionErrorWithWrappedErrf(err, "encoding a liveness record"))
	}
	return b
}

// Decode parses a stored record.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, errors.Wrap(err, "decoding a liveness record")
	}
	if !r.Membership.Valid() {
		return Record{}, errors.Newf("liveness record of node %d has unknown membership %q", r.NodeID, r.Membership)
	}
	return r, nil
}

// IsLive is the one rule: the record has not expired at now.
func (r Record) IsLive(now time.Time) bool { return r.Expiration > now.UnixNano() }

// IsDead reports whether the node has not been live for timeUntilDead.
func (r Record) IsDead(now time.Time, timeUntilDead time.Duration) bool {
	return r.Expiration+int64(timeUntilDead) <= now.UnixNano()
}

// Status summarizes a record at a given time, like CockroachDB's
// NodeLivenessStatus.
type Status string

// The statuses Record.Status returns.
const (
	StatusLive            Status = "live"
	StatusDraining        Status = "draining"        // live, draining
	StatusUnavailable     Status = "unavailable"     // not live, not yet dead
	StatusDead            Status = "dead"            // not live for time_until_store_dead
	StatusDecommissioning Status = "decommissioning" // any liveness
	StatusDecommissioned  Status = "decommissioned"  // any liveness
)

// Status classifies the node at now: membership first, then liveness.
func (r Record) Status(now time.Time, timeUntilDead time.Duration) Status {
	switch {
	case r.Membership == Decommissioned:
		return StatusDecommissioned
	case r.Membership == Decommissioning:
		return StatusDecommissioning
	case r.IsLive(now) && r.Draining:
		return StatusDraining
	case r.IsLive(now):
		return StatusLive
	case r.IsDead(now, timeUntilDead):
		return StatusDead
	default:
		return StatusUnavailable
	}
}

// ExpirationString formats the expiration like CockroachDB's HLC
// timestamps: "<seconds>.<nanoseconds>,0".
func (r Record) ExpirationString() string {
	return fmt.Sprintf("%d.%09d,0", r.Expiration/1e9, r.Expiration%1e9)
}

// Key returns the key of node id's record (keys.LivenessKey).
func Key(id nodeid.ID) []byte { return keys.LivenessKey(id) }

// Span returns the key span [start, end) of every record.
func Span() (start, end []byte) { return keys.LivenessSpan() }

// FormatTime formats a Unix-nanosecond time the way the SQL views and the
// CLI print timestamps (there is no TIMESTAMP type yet): UTC, microseconds.
func FormatTime(nanos int64) string {
	if nanos == 0 {
		return ""
	}
	return time.Unix(0, nanos).UTC().Format("2006-01-02 15:04:05.000000+00:00")
}
