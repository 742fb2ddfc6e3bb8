package status

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server/autoupgrade"
) // UpgradeStatus is the answer of SHOW UPGRADE STATUS and GET
// /_status/upgrade.
type UpgradeStatus struct {
	AnsweredBy         int32  `json:"answered_by"`
	ActiveVersion      string `json:"active_version"`
	ReplicatedVersion  string `json:"replicated_version"`
	Target             string `json:"target,omitempty"`
	InProgress         string `json:"in_progress,omitempty"`
	AutoUpgradeEnabled bool   `json:"auto_upgrade_enabled"`
	// DowngradingTo is the target of the downgrade under way ("" if none).
	DowngradingTo     string `json:"downgrading_to,omitempty"`
	PreserveDowngrade string `json:"preserve_downgrade_option,omitempty"`
	// PreserveSince is when the preserve option was set (zero if unset or
	// not recorded).
	PreserveSince time.Time             `json:"preserve_downgrade_option_since,omitzero"`
	Decision      string                `json:"decision"`
	Nodes         []UpgradeStatusNode   `json:"nodes"`
	Blockers      []autoupgrade.Blocker `json:"blockers"`
	Migrations    []MigrationStatus     `json:"migrations"`
	// Group0 is every non-decommissioned node's group 0 state.
	Group0 []Group0NodeStatus `json:"group0"`
}

// UpgradeStatusNode is one node in UpgradeStatus.
type UpgradeStatusNode struct {
	NodeID        int32  `json:"node_id"`
	Address       string `json:"address"`
	SQLAddress    string `json:"sql_address"`
	HTTPAddress   string `json:"http_address"`
	BinaryVersion string `json:"binary_version"`
	IsLive        bool   `json:"is_live"`
	Membership    string `json:"membership"`
	Draining      bool   `json:"draining"`
	// Status is liveness' one-word status (nodeapi.NodeStatus.Status).
	Status string `json:"status"`
	// Raft is the node's place in the data group; IsLeader marks its
	// leader.
	Raft      string `json:"raft"`
	IsLeader  bool   `json:"is_leader"`
	StartedAt string `json:"started_at,omitempty"`
	// PersistedVersion is the cluster version the node has persisted
	// (nodeapi.NodeStatus.PersistedVersion; "" if unknown).
	PersistedVersion string `json:"persisted_version"`
}

// MigrationStatus is one migration in UpgradeStatus.
type MigrationStatus struct {
	Version     string  `json:"version"`
	Description string  `json:"description"`
	Status      string  `json:"status"`
	JobID       int64   `json:"job_id,omitempty"`
	Fraction    float64 `json:"fraction_completed"`
	Done        int64   `json:"done"`
	Total       int64   `json:"total"`
	Coordinator int32   `json:"coordinator,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// JSON is u as GET /_status/upgrade serves it.
func (u *UpgradeStatus) JSON() []byte {
	b, _ := json.MarshalIndent(u, "", "  ")
	return b
}

// Group0NodeStatus is one node's group 0 state in UpgradeStatus.
type Group0NodeStatus struct {
	NodeID     int32  `json:"node_id"`
	State      string `json:"state,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	Role       string `json:"role,omitempty"`
	Applied    uint64 `json:"applied,omitempty"`
	StateID    uint64 `json:"state_id,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Waiting    string `json:"waiting,omitempty"`
	Error      string `json:"error,omitempty"`
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
	case n.Member(n.NodeID) && contains32(n.Voters, n.NodeID):
		st.Role = "voter"
	case n.Member(n.NodeID):
		st.Role = "learner"
	default:
		st.Role = "joining"
	}
	return st
}

func contains32(s []int32, x int32) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
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
// majority.
type NodeStatusPage struct {
	NodeID        int32  `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	BinaryVersion string `json:"binary_version"`
	// ActiveVersion is the cluster version the node has persisted.
	ActiveVersion string `json:"active_version"`
	Ready         bool   `json:"ready"`
	NotReady      string `json:"not_ready,omitempty"`
	Draining      bool   `json:"draining"`
	Group0State   string `json:"group0_state"`
	// Raft is the data group as this node sees it (absent before it has
	// joined).
	Raft *NodeRaftStatus `json:"raft,omitempty"`
}

// NodeRaftStatus is one node's view of the data Raft group.
type NodeRaftStatus struct {
	Leader   uint64   `json:"leader"`
	Term     uint64   `json:"term"`
	Commit   uint64   `json:"commit"`
	Applied  uint64   `json:"applied"`
	Voters   []uint64 `json:"voters"`
	Learners []uint64 `json:"learners"`
}
