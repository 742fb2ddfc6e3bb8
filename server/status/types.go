package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/console"
)

// UpgradeStatus is the answer of SHOW UPGRADE STATUS and GET
// /_status/upgrade.
type UpgradeStatus struct {
	AnsweredBy         nodeid.ID `json:"answered_by"`
	ActiveVersion      string    `json:"active_version"`
	ReplicatedVersion  string    `json:"replicated_version"`
	Target             string    `json:"target,omitempty"`
	InProgress         string    `json:"in_progress,omitempty"`
	AutoUpgradeEnabled bool      `json:"auto_upgrade_enabled"`
	// DowngradingTo is the target of the downgrade under way ("" if none).
	DowngradingTo     string `json:"downgrading_to,omitempty"`
	PreserveDowngrade string `json:"preserve_downgrade_option,omitempty"`
	// PreserveSince is when the preserve option was set (zero if unset or
	// not recorded).
	PreserveSince time.Time `json:"preserve_downgrade_option_since,omitzero"`
	Decision      string    `json:"decision"`
	// Nodes is every node that has an ID (JSON: see MarshalJSON).
	Nodes      []nodeapi.NodeStatus  `json:"nodes"`
	Blockers   []autoupgrade.Blocker `json:"blockers"`
	Migrations []console.Migration   `json:"migrations"`
	// Group0 is every non-decommissioned node's group 0 state.
	Group0 []Group0NodeStatus `json:"group0"`
}

// upgradeStatusNodeJSON is nodeapi.NodeStatus as GET /_status/upgrade
// has always named its fields (binary_version, draining, no liveness
// epoch or expiration). It is a view, not a shape: it has exactly
// NodeStatus's fields, so the conversion in MarshalJSON stops compiling
// the day the two differ.
type upgradeStatusNodeJSON struct {
	NodeID           nodeid.ID `json:"node_id"`
	Address          string    `json:"address"`
	SQLAddress       string    `json:"sql_address"`
	HTTPAddress      string    `json:"http_address"`
	Build            string    `json:"binary_version"`
	StartedAt        string    `json:"started_at,omitempty"`
	UpdatedAt        string    `json:"-"`
	IsLive           bool      `json:"is_live"`
	Membership       string    `json:"membership"`
	IsDraining       bool      `json:"draining"`
	Epoch            int64     `json:"-"`
	Expiration       string    `json:"-"`
	Status           string    `json:"status"`
	Raft             string    `json:"raft"`
	IsLeader         bool      `json:"is_leader"`
	PersistedVersion string    `json:"persisted_version"`
}

// upgradeStatusJSON is UpgradeStatus without its JSON methods, its nodes
// as the endpoint names their fields.
type upgradeStatusJSON struct {
	plainUpgradeStatus
	Nodes []upgradeStatusNodeJSON `json:"nodes"`
}

type plainUpgradeStatus UpgradeStatus

// MarshalJSON is u as GET /_status/upgrade serves it: the node rows keep
// the endpoint's own field names.
func (u UpgradeStatus) MarshalJSON() ([]byte, error) {
	v := upgradeStatusJSON{plainUpgradeStatus: plainUpgradeStatus(u)}
	for _, n := range u.Nodes {
		v.Nodes = append(v.Nodes, upgradeStatusNodeJSON(n))
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads GET /_status/upgrade.
func (u *UpgradeStatus) UnmarshalJSON(b []byte) error {
	var v upgradeStatusJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*u = UpgradeStatus(v.plainUpgradeStatus)
	for _, n := range v.Nodes {
		u.Nodes = append(u.Nodes, nodeapi.NodeStatus(n))
	}
	return nil
}

// JSON is u as GET /_status/upgrade serves it.
func (u *UpgradeStatus) JSON() []byte {
	b, _ := json.MarshalIndent(u, "", "  ")
	return b
}

// Group0NodeStatus is one node's group 0 state in UpgradeStatus.
type Group0NodeStatus struct {
	NodeID     nodeid.ID `json:"node_id"`
	State      string    `json:"state,omitempty"`
	Generation uint64    `json:"generation,omitempty"`
	Role       string    `json:"role,omitempty"`
	Applied    uint64    `json:"applied,omitempty"`
	StateID    uint64    `json:"state_id,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	Waiting    string    `json:"waiting,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Group0Status is n as UpgradeStatus shows it.
func Group0Status(n group0.NodeInfo) Group0NodeStatus {
	st := Group0NodeStatus{NodeID: n.NodeID, State: string(n.State), Generation: n.Generation, Applied: n.Applied,
		StateID: n.StateID, Digest: n.Digest, Waiting: n.Waiting}
	if n.Err != nil {
		st.Error = n.Err.Error()
	}
	switch {
	case n.Generation == 0:
		st.Role = "none"
	case n.Isolated:
		st.Role = "isolated"
	case n.Leader == n.NodeID:
		st.Role = "leader"
	case n.Member(n.NodeID) && slices.Contains(n.Voters, n.NodeID):
		st.Role = "voter"
	case n.Member(n.NodeID):
		st.Role = "learner"
	default:
		st.Role = "joining"
	}
	return st
}

// Detail is SHOW UPGRADE STATUS's detail of the node's group 0 state.
func (st Group0NodeStatus) Detail() string {
	if st.Error != "" {
		return "no answer: " + st.Error
	}
	d := fmt.Sprintf("group 0 generation %d, %s, applied index %d, state_id %d, schema digest %s",
		st.Generation, st.Role, st.Applied, st.StateID, st.Digest)
	if st.Waiting != "" {
		d += "; coordinating the upgrade: " + st.Waiting
	}
	return d
}

// NodeStatusPage is GET /_status/node: what this node knows about itself
// and the data Raft group, from memory only (no cluster reads), so that
// scripts and roachtest can poll it cheaply, also while the cluster has no
// majority. Self is the serving node as the status page shows it too.
type NodeStatusPage struct {
	console.Self
	// ActiveVersion is the cluster version the node has persisted.
	ActiveVersion string `json:"active_version"`
	Draining      bool   `json:"draining"`
	// Raft is the data group as this node sees it (absent before it has
	// joined).
	Raft *NodeRaftStatus `json:"raft,omitempty"`
}

// NodeRaftStatus is one node's view of the data Raft group.
type NodeRaftStatus struct {
	Leader   nodeid.ID   `json:"leader"`
	Term     uint64      `json:"term"`
	Commit   uint64      `json:"commit"`
	Applied  uint64      `json:"applied"`
	Voters   []nodeid.ID `json:"voters"`
	Learners []nodeid.ID `json:"learners"`
}
