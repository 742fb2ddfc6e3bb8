package nodeapi

import (
	"encoding/json"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
)

// The messages of the kvnode.Node service. Each is a JSON document on the
// wire (see package rpc); testdata/wire holds every one as a release
// encoded it, and TestWireCompatibility checks that fields are only ever
// added.

// --- node identity, init and join ---

// HelloRequest asks a node who it is.
type HelloRequest struct{}

// HelloResponse describes a node.
type HelloResponse struct {
	ClusterID     string    `json:"cluster_id"`
	NodeID        nodeid.ID `json:"node_id"`
	Bootstrapped  bool      `json:"bootstrapped"`
	ListenAddr    string    `json:"listen_addr"`
	GossipAddr    string    `json:"gossip_addr"`
	BinaryVersion string    `json:"binary_version"`
}

// InitRequest bootstraps a new cluster on the receiving node.
type InitRequest struct{}

// InitResponse reports the new cluster.
type InitResponse struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    nodeid.ID `json:"node_id"`
}

// JoinRequest asks the cluster to admit a node with a fresh store.
type JoinRequest struct {
	Node      NodeRecord `json:"node"`
	Forwarded bool       `json:"forwarded"`
}

// JoinResponse carries the identity the joining node must persist.
type JoinResponse struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    nodeid.ID `json:"node_id"`
	// ClusterVersion is the cluster's active version, which the joining
	// node persists as its own.
	ClusterVersion string `json:"cluster_version"`
}

// SchemaMessage carries table descriptors (pre-Raft schema procedure).
type SchemaMessage struct {
	Descriptors []catalog.TableDescriptor `json:"descriptors"`
}

// Empty is an empty message.
type Empty struct{}

// NodeRecord is the replicated record of a node, written when it joins and
// updated when its addresses change. It lets every node find every other
// node's RPC address even before gossip has converged.
type NodeRecord struct {
	NodeID        nodeid.ID `json:"node_id"`
	ListenAddr    string    `json:"listen_addr"`
	GossipAddr    string    `json:"gossip_addr"`
	SQLAddr       string    `json:"sql_addr"`
	HTTPAddr      string    `json:"http_addr"`
	BinaryVersion string    `json:"binary_version"`
}

// EncodeNodeRecord is n as it is stored under keys.NodeKey.
func EncodeNodeRecord(n NodeRecord) []byte {
	b, _ := json.Marshal(n)
	return b
}

// --- node lifecycle ---

// NodeStatusRequest asks a node for the status of every node.
type NodeStatusRequest struct{}

// NodeStatus is one node that has an ID: the shape of "a node" that the
// parts share. `kvnode node status`, the crdb_internal.gossip_* views,
// SHOW UPGRADE STATUS and GET /_status/upgrade (server/status) and the
// status page's node table (server/console) all read it; the HTTP
// endpoints keep their own JSON names for it (each says how). The
// auto-upgrade decision reads its own parsed view of it (autoupgrade.Node;
// server/autoupgrade's doc.go says why).
type NodeStatus struct {
	NodeID      nodeid.ID `json:"node_id"`
	Address     string    `json:"address"`      // --listen-addr
	SQLAddress  string    `json:"sql_address"`  // --sql-addr
	HTTPAddress string    `json:"http_address"` // --http-addr
	// Build is the binary's release: what the node gossips if it is up,
	// else the release it last started with.
	Build string `json:"build"`
	// StartedAt is when the node's process started (gossip), "" if unknown.
	StartedAt string `json:"started_at"`
	// UpdatedAt is the last write of its liveness record.
	UpdatedAt  string `json:"updated_at"`
	IsLive     bool   `json:"is_live"`
	Membership string `json:"membership"`
	IsDraining bool   `json:"is_draining"`
	Epoch      int64  `json:"epoch"`
	Expiration string `json:"expiration"`
	// Status is liveness.Record.Status: live, draining, unavailable,
	// dead, decommissioning or decommissioned.
	Status string `json:"status"`
	// Raft is the node's place in the data Raft group as the answering
	// node sees it: voter, learner or none.
	Raft string `json:"raft"`
	// IsLeader: the node leads the data Raft group.
	IsLeader bool `json:"is_leader"`
	// PersistedVersion is the cluster version the node has persisted in
	// its store (what its binary must be able to run to start on it): the
	// answering node's own, the others' as they last gossiped it; "" if
	// unknown (a node that is down and was never seen since the answering
	// node started, or a release that does not gossip it). It is above the
	// replicated version while a finalization step is persisted on some
	// nodes and not yet recorded.
	PersistedVersion string `json:"persisted_version"`
}

// NodeStatusResponse lists every node that ever got an ID.
type NodeStatusResponse struct {
	AnsweredBy nodeid.ID `json:"answered_by"`
	// Stale is set when the data group could not answer in time and the
	// node answered from its own, possibly stale, copy.
	Stale bool         `json:"stale"`
	Nodes []NodeStatus `json:"nodes"`
}

// DrainRequest asks the receiving node to drain.
type DrainRequest struct{}

// DrainResponse reports a finished drain.
type DrainResponse struct {
	NodeID          nodeid.ID `json:"node_id"`
	OpenConnections int       `json:"open_connections"`
}

// MembershipRequest decommissions or recommissions nodes.
type MembershipRequest struct {
	NodeIDs   []nodeid.ID `json:"node_ids"`
	Forwarded bool        `json:"forwarded"`
}

// MembershipResponse reports the status of the nodes of a
// MembershipRequest after the change.
type MembershipResponse struct {
	Nodes []NodeStatus `json:"nodes"`
}

// LivenessRequest asks for one node's liveness record.
type LivenessRequest struct {
	NodeID nodeid.ID `json:"node_id"`
}

// LivenessResponse carries a liveness record.
type LivenessResponse struct {
	Found  bool            `json:"found"`
	Record liveness.Record `json:"record"`
}

// --- cluster versions ---

// SetClusterVersionRequest asks a node to persist a new active version.
type SetClusterVersionRequest struct {
	Version string `json:"version"`
	// Lower is set by a downgrade: the node moves its version down to
	// Version (from release 2.1 on; an older node ignores the field and
	// answers with its unchanged version, which the caller checks).
	Lower bool `json:"lower,omitempty"`
}

// SetClusterVersionResponse confirms it.
type SetClusterVersionResponse struct {
	NodeID  nodeid.ID `json:"node_id"`
	Version string    `json:"version"`
}

// --- group 0 ---

// Group0StateRequest asks a node for its group 0 state. With Probe, a node
// that runs group 0 also tries a linearizable read (is there a leader that
// answers?).
type Group0StateRequest struct {
	Probe bool `json:"probe"`
}

// Group0StateResponse is one node's group 0 state.
type Group0StateResponse struct {
	NodeID         nodeid.ID   `json:"node_id"`
	Binary         string      `json:"binary"`
	State          string      `json:"state"`
	Generation     uint64      `json:"generation"`
	Isolated       bool        `json:"isolated"`
	Applied        uint64      `json:"applied"`
	StateID        uint64      `json:"state_id"`
	CatalogStateID uint64      `json:"catalog_state_id"`
	Digest         string      `json:"digest"`
	Leader         nodeid.ID   `json:"leader"`
	Voters         []nodeid.ID `json:"voters"`
	Learners       []nodeid.ID `json:"learners"`
	Waiting        string      `json:"waiting,omitempty"`
	ProbeOK        bool        `json:"probe_ok,omitempty"`
	ProbeError     string      `json:"probe_error,omitempty"`
}

// Info is the state as group 0's decisions take it.
func (r *Group0StateResponse) Info() group0.NodeInfo {
	return group0.NodeInfo{
		NodeID: r.NodeID, Binary: r.Binary, State: group0.State(r.State), Generation: r.Generation,
		Applied: r.Applied, StateID: r.StateID, CatalogStateID: r.CatalogStateID, Digest: r.Digest,
		Leader: r.Leader, Voters: r.Voters, Learners: r.Learners, Waiting: r.Waiting, Isolated: r.Isolated,
	}
}

// Group0PrepareRequest makes the node a member of group 0 of Formation's
// generation: the seed creates it, the others join it.
type Group0PrepareRequest struct {
	Formation group0.Formation `json:"formation"`
}

// Group0PrepareResponse confirms it.
type Group0PrepareResponse struct {
	NodeID     nodeid.ID `json:"node_id"`
	Generation uint64    `json:"generation"`
}

// Group0JoinRequest asks group 0's leader to add NodeID as a learner.
// With LostReplica, it asks instead to remove NodeID, which group 0 still
// has as a member but which lost its replica (its group 0 store): it joins
// again with an empty replica afterwards. A voter is removed only if group
// 0 keeps a live majority without it. The removal comes first because an
// empty replica must not receive the group's messages as a member (Raft
// would find its log lost), and a voter that lost its log must never vote
// as if it had kept it.
type Group0JoinRequest struct {
	NodeID      nodeid.ID `json:"node_id"`
	Generation  uint64    `json:"generation"`
	Forwarded   bool      `json:"forwarded"`
	LostReplica bool      `json:"lost_replica,omitempty"`
}

// Group0JoinResponse confirms the node is a member.
type Group0JoinResponse struct {
	Leader nodeid.ID `json:"leader"`
}

// Group0SetStateRequest asks a node to persist a new upgrade state.
// FromRecovery is set by the recovery procedure only.
type Group0SetStateRequest struct {
	State        string `json:"state"`
	FromRecovery bool   `json:"from_recovery"`
	// Leave takes the node out of group 0 for a downgrade to 1.1 (State
	// must be use_pre_raft_procedures): release 2.1 and later.
	Leave bool `json:"leave,omitempty"`
}

// Group0SetStateResponse reports the node's state afterwards.
type Group0SetStateResponse struct {
	NodeID nodeid.ID `json:"node_id"`
	State  string    `json:"state"`
}

// Group0SyncRequest asks a node to have its catalog reflect group 0 state
// StateID (or later) before it answers.
type Group0SyncRequest struct {
	StateID uint64 `json:"state_id"`
}

// Group0SyncResponse reports the node's catalog, and group 0's schema as
// the node's replica holds it, read together.
type Group0SyncResponse struct {
	NodeID         nodeid.ID `json:"node_id"`
	CatalogStateID uint64    `json:"catalog_state_id"`
	Digest         string    `json:"digest"`
	// Group0StateID and Group0Digest are the state of group 0 that the
	// node compared its catalog with, and that state's schema digest: the
	// catalog holds exactly group 0's schema when Digest equals
	// Group0Digest. Empty from a node that predates them (the caller then
	// compares Digest with its own merge).
	Group0StateID uint64 `json:"group0_state_id,omitempty"`
	Group0Digest  string `json:"group0_digest,omitempty"`
}

// Group0RecoverRequest runs the recovery procedure (`kvnode node
// group0-recover`). DryRun only computes and returns the plan.
type Group0RecoverRequest struct {
	DryRun bool `json:"dry_run"`
}

// Group0RecoverResponse carries the plan, and the outcome unless DryRun.
type Group0RecoverResponse struct {
	Plan   string    `json:"plan"`
	Kind   string    `json:"kind"`
	Seed   nodeid.ID `json:"seed,omitempty"`
	Done   bool      `json:"done"`
	Result string    `json:"result,omitempty"`
}

// --- recovery from a lost majority ---

// RecoverRequest is `kvnode node recover`.
type RecoverRequest struct {
	DryRun bool `json:"dry_run"`
	// Force recovers although a majority of the data group's voters
	// answers.
	Force bool `json:"force"`
}

// RecoverResponse carries the plan, and the outcome unless DryRun.
type RecoverResponse struct {
	Plan      string      `json:"plan"`
	Seed      nodeid.ID   `json:"seed"`
	Survivors []nodeid.ID `json:"survivors"`
	Dead      []nodeid.ID `json:"dead"`
	Done      bool        `json:"done"`
	Result    string      `json:"result,omitempty"`
}

// RecoverInfoRequest asks a node for its data group state.
type RecoverInfoRequest struct{}

// RecoverInfo is one node's answer: its data replica's Raft state, whether
// it serves, and the record of a recovery it seeded.
type RecoverInfo struct {
	NodeID nodeid.ID       `json:"node_id"`
	Raft   kv.RaftState    `json:"raft"`
	Ready  bool            `json:"ready"`
	Record *RecoveryRecord `json:"record,omitempty"`
}

// RecoveryRecord is kept in the seed's node-local keys: what the recovery
// decided, so that a second run finishes it instead of starting another.
type RecoveryRecord struct {
	Seed      nodeid.ID   `json:"seed"`
	Survivors []nodeid.ID `json:"survivors"`
	Dead      []nodeid.ID `json:"dead"`
	Time      int64       `json:"time"`
	Done      bool        `json:"done"`
}

// RecoverApplyRequest asks a node to take one step of the recovery.
type RecoverApplyRequest struct {
	// Action: "reform" (the seed becomes the only voter), "wipe" (a
	// survivor drops its data group state), "admit" (the seed marks the
	// dead decommissioned and adds the survivors), "done".
	Action string         `json:"action"`
	Record RecoveryRecord `json:"record"`
}

// RecoverApplyResponse reports the node's Raft state afterwards.
type RecoverApplyResponse struct {
	Raft kv.RaftState `json:"raft"`
}

// ClockRequest asks a node for its clock's wall time: one measurement of
// the clock-offset monitor (rpc.ClockMonitor). New in release 2.1.
type ClockRequest struct {
	NodeID nodeid.ID `json:"node_id"` // the caller's
}

// ClockResponse is the node's wall time when it answered.
type ClockResponse struct {
	NodeID    nodeid.ID `json:"node_id"`
	WallNanos int64     `json:"wall_nanos"` // nanoseconds since the Unix epoch
}

// PurgeRaftLogRequest asks a node to compact its data group log through
// Through once it has applied it (release 2.1: the downgrade to 2.0 removes
// the last 2.1 command from every log this way).
type PurgeRaftLogRequest struct {
	Through uint64 `json:"through"`
}

// PurgeRaftLogResponse confirms it.
type PurgeRaftLogResponse struct {
	NodeID nodeid.ID `json:"node_id"`
}
