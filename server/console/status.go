package console

import (
	"encoding/json"
	"time"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// The group 0 upgrade states (group0.State), as system.local shows them.
const (
	StatePreRaft  = "use_pre_raft_procedures"
	StateSync     = "synchronize"
	StatePostRaft = "use_post_raft_procedures"
	StateRecovery = "recovery"
)

// Status is everything the page shows, as one node sees it. The server
// fills it; Banners reads it; /_status/console serves it as JSON.
type Status struct {
	// GeneratedAt is when the cluster part was computed.
	GeneratedAt time.Time `json:"generated_at"`
	// Self is the node that serves the page.
	Self Self `json:"self"`
	// Error is set when the cluster part could not be computed (then
	// only Self is meaningful).
	Error string `json:"error,omitempty"`

	// ClusterVersion is the replicated cluster version; ActiveVersion
	// is the version persisted on the serving node (they differ only for
	// a moment during a finalization).
	ClusterVersion string `json:"cluster_version"`
	ActiveVersion  string `json:"active_version"`
	// Target is the release the cluster would finalize to, "" when
	// up to date.
	Target string `json:"target,omitempty"`
	// InProgress is the finalization step running now, if any.
	InProgress string `json:"in_progress,omitempty"`
	// DowngradingTo is the target of the downgrade under way ("" if none).
	DowngradingTo string `json:"downgrading_to,omitempty"`
	// Decision is the auto-upgrade decision in one line.
	Decision           string `json:"decision"`
	AutoUpgradeEnabled bool   `json:"auto_upgrade_enabled"`
	// Preserve is cluster.preserve_downgrade_option ("" when unset), and
	// PreserveSince when it was set (zero when unknown).
	Preserve      string    `json:"preserve_downgrade_option,omitempty"`
	PreserveSince time.Time `json:"preserve_downgrade_option_since,omitzero"`

	Nodes      []Node                `json:"nodes"`
	Migrations []Migration           `json:"migrations"`
	Blockers   []autoupgrade.Blocker `json:"blockers"`
	// Host is a --listen-addr that the fix commands name.
	Host string `json:"host"`

	Banners []Banner `json:"banners"`
}

// Self is the serving node.
type Self struct {
	NodeID        nodeid.ID `json:"node_id"`
	ClusterID     string    `json:"cluster_id"`
	BinaryVersion string    `json:"binary_version"`
	HTTPAddress   string    `json:"http_address"`
	Ready         bool      `json:"ready"`
	// NotReady says why the node does not serve SQL, when it does not.
	NotReady string `json:"not_ready,omitempty"`
	// Group0State is the node's own, locally persisted, group 0 state.
	Group0State string `json:"group0_state"`
	// Clock is the node's clock-offset monitor's verdict (nil before the
	// node runs one).
	Clock *Clock `json:"clock,omitempty"`
}

// Clock is what the serving node's clock-offset monitor found: whether its
// clock is within --max-offset of a majority of the other nodes' clocks,
// and whether it serves leased reads.
type Clock struct {
	Healthy bool `json:"healthy"`
	// MaxOffset is --max-offset; Message says what was measured.
	MaxOffset string `json:"max_offset"`
	Message   string `json:"message"`
	// LeaseReads: the node may serve reads from a leader lease now.
	LeaseReads bool `json:"lease_reads"`
}

// Node is one row of the node table: a node's status (nodeapi's one
// shape of a node) and its group 0 state.
type Node struct {
	nodeapi.NodeStatus
	NodeGroup0
}

// NodeGroup0 is a node's group 0 state as it answered; Group0Error is set
// when it did not answer.
type NodeGroup0 struct {
	Group0State   string `json:"group0_state,omitempty"`
	Group0Role    string `json:"group0_role,omitempty"`
	Group0Waiting string `json:"group0_waiting,omitempty"`
	Group0Error   string `json:"group0_error,omitempty"`
}

// nodeStatusJSON is nodeapi.NodeStatus as GET /_status/console has always
// named its fields (binary_version; no liveness epoch or expiration;
// started_at and persisted_version only when known). It is a view, not a
// shape: it has exactly NodeStatus's fields, so the conversions below stop
// compiling the day the two differ.
type nodeStatusJSON struct {
	NodeID           nodeid.ID `json:"node_id"`
	Address          string    `json:"address"`
	SQLAddress       string    `json:"sql_address"`
	HTTPAddress      string    `json:"http_address"`
	Build            string    `json:"binary_version"`
	StartedAt        string    `json:"started_at,omitempty"`
	UpdatedAt        string    `json:"-"`
	IsLive           bool      `json:"is_live"`
	Membership       string    `json:"membership"`
	IsDraining       bool      `json:"is_draining"`
	Epoch            int64     `json:"-"`
	Expiration       string    `json:"-"`
	Status           string    `json:"status"`
	Raft             string    `json:"raft"`
	IsLeader         bool      `json:"is_leader"`
	PersistedVersion string    `json:"persisted_version,omitempty"`
}

type nodeJSON struct {
	nodeStatusJSON
	NodeGroup0
}

// MarshalJSON is n as GET /_status/console serves it.
func (n Node) MarshalJSON() ([]byte, error) {
	return json.Marshal(nodeJSON{nodeStatusJSON(n.NodeStatus), n.NodeGroup0})
}

// UnmarshalJSON reads a node row of GET /_status/console.
func (n *Node) UnmarshalJSON(b []byte) error {
	var v nodeJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n.NodeStatus, n.NodeGroup0 = nodeapi.NodeStatus(v.nodeStatusJSON), v.NodeGroup0
	return nil
}

// Decommissioned reports whether the node left the cluster for good.
func (n Node) Decommissioned() bool { return n.Membership == autoupgrade.Decommissioned }

// Migration is one migration as SHOW UPGRADE STATUS, GET /_status/upgrade
// and the status page's migration table show it.
type Migration struct {
	Version     string    `json:"version"`
	Description string    `json:"description"`
	Status      string    `json:"status"`
	JobID       int64     `json:"job_id,omitempty"`
	Fraction    float64   `json:"fraction_completed"`
	Done        int64     `json:"done"`
	Total       int64     `json:"total"`
	Coordinator nodeid.ID `json:"coordinator,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// Severity orders banners: critical needs action now, warning holds
// something back, info says what is going on.
type Severity string

// The severities.
const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Kind names a banner's situation; see the package documentation.
type Kind string

// The banner kinds.
const (
	KindStatusUnavailable Kind = "status_unavailable"
	KindMixedVersions     Kind = "mixed_versions"
	KindNotFinalized      Kind = "not_finalized"
	KindDeadNode          Kind = "dead_node"
	KindDrainingNode      Kind = "draining_node"
	KindFinalizing        Kind = "finalizing"
	KindInterrupted       Kind = "finalization_interrupted"
	KindMigrationFailed   Kind = "migration_failed"
	KindGroup0Waiting     Kind = "group0_waiting"
	KindGroup0Recovery    Kind = "group0_recovery"
	KindClockOffset       Kind = "clock_offset"
	KindDowngrading       Kind = "downgrading"
)

// Banner is one thing the operator should know, with the fix.
type Banner struct {
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// NodeID is set when the banner is about one node.
	NodeID nodeid.ID `json:"node_id,omitempty"`
	Title  string    `json:"title"`
	Detail string    `json:"detail,omitempty"`
	// Fix is the statements or commands that resolve it, in order.
	Fix []string `json:"fix,omitempty"`
}
