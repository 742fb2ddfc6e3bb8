package server

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
)

// Messages of the node-lifecycle calls of the kvnode.Node service.

// NodeStatusRequest asks a node for the status of every node.
type NodeStatusRequest struct{}

// NodeStatus is one node as `kvnode node status` and the
// crdb_internal.gossip_* views show it.
type NodeStatus struct {
	NodeID      int32  `json:"node_id"`
	Address     string `json:"address"`      // --listen-addr
	SQLAddress  string `json:"sql_address"`  // --sql-addr
	HTTPAddress string `json:"http_address"` // --http-addr
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

	startedAt time.Time
}

// gossipKeyClusterVersion is the NodeMeta.Extra key under which a node
// gossips the cluster version it has persisted (a hint for status views).
const gossipKeyClusterVersion = "cluster_version"

// publishClusterVersion gossips the cluster version this node has
// persisted, if it changed.
func (s *Server) publishClusterVersion() {
	g := s.gossipOrNil()
	if g == nil {
		return
	}
	v := s.ActiveVersion().String()
	if g.LocalMeta().Extra[gossipKeyClusterVersion] == v {
		return
	}
	err := g.UpdateMeta(func(m *gossip.NodeMeta) {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra[gossipKeyClusterVersion] = s.ActiveVersion().String()
	})
	if err != nil {
		s.log.Debug("gossiping the persisted cluster version", "err", err)
	}
}

// NodeStatusResponse lists every node that ever got an ID.
type NodeStatusResponse struct {
	AnsweredBy int32 `json:"answered_by"`
	// Stale is set when the data group could not answer in time and the
	// node answered from its own, possibly stale, copy.
	Stale bool         `json:"stale"`
	Nodes []NodeStatus `json:"nodes"`
}

// DrainRequest asks the receiving node to drain.
type DrainRequest struct{}

// DrainResponse reports a finished drain.
type DrainResponse struct {
	NodeID          int32 `json:"node_id"`
	OpenConnections int   `json:"open_connections"`
}

// MembershipRequest decommissions or recommissions nodes.
type MembershipRequest struct {
	NodeIDs   []int32 `json:"node_ids"`
	Forwarded bool    `json:"forwarded"`
}

// MembershipResponse reports the status of the nodes of a
// MembershipRequest after the change.
type MembershipResponse struct {
	Nodes []NodeStatus `json:"nodes"`
}

// LivenessRequest asks for one node's liveness record.
type LivenessRequest struct {
	NodeID int32 `json:"node_id"`
}

// LivenessResponse carries a liveness record.
type LivenessResponse struct {
	Found  bool            `json:"found"`
	Record liveness.Record `json:"record"`
}

func (s *Server) gossipOrNil() *gossip.Gossip {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gossip
}

// NodeStatuses returns every node's status from linearizable reads, or an
// error if the data group cannot answer in time (decisions such as the
// upgrade finalization must not use a stale view).
func (s *Server) NodeStatuses(ctx context.Context) ([]NodeStatus, error) {
	if _, _, err := s.readyReplica(); err != nil {
		return nil, errors.New(remoteMessage(err))
	}
	rows, stale := s.clusterStatus(ctx)
	if stale {
		return nil, errors.Mark(errors.New("the data Raft group did not answer in time"), kvpb.ErrUnavailable)
	}
	return rows, nil
}

// clusterStatus computes every node's status: the node list and addresses
// from the replicated node records, liveness from the replicated liveness
// records (one rule: Record.IsLive), and the running binary and start time
// from gossip. Reads are linearizable; if the data group cannot answer in
// 3s, the node answers from its local copy and stale is set.
func (s *Server) clusterStatus(ctx context.Context) (rows []NodeStatus, stale bool) {
	rep := s.lc().rep.Load()
	if rep == nil {
		return nil, true
	}
	lstart, lend := liveness.Span()
	nstart, nend := keys.NodeSpan()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	lkvs, err := rep.Scan(rctx, lstart, lend, 0, false)
	var nkvs []kvpb.KeyValue
	if err == nil {
		nkvs, err = rep.Scan(rctx, nstart, nend, 0, false)
	}
	cancel()
	if err != nil {
		stale = true
		lkvs, _ = rep.ScanLocal(lstart, lend, 0, false)
		nkvs, _ = rep.ScanLocal(nstart, nend, 0, false)
	}
	byID := map[int32]*NodeStatus{}
	row := func(id int32) *NodeStatus {
		if r, ok := byID[id]; ok {
			return r
		}
		r := &NodeStatus{NodeID: id, Membership: string(liveness.Active), Raft: "none"}
		byID[id] = r
		return r
	}
	for _, e := range nkvs {
		var n NodeRecord
		if json.Unmarshal(e.Value, &n) != nil {
			continue
		}
		r := row(n.NodeID)
		r.Address, r.SQLAddress, r.HTTPAddress, r.Build = n.ListenAddr, n.SQLAddr, n.HTTPAddr, n.BinaryVersion
	}
	now := time.Now()
	ttd := s.TimeUntilStoreDead()
	for _, e := range lkvs {
		l, err := liveness.Decode(e.Value)
		if err != nil {
			continue
		}
		r := row(l.NodeID)
		r.IsLive, r.Membership, r.IsDraining = l.IsLive(now), string(l.Membership), l.Draining
		r.Epoch, r.Expiration, r.UpdatedAt = l.Epoch, l.ExpirationString(), liveness.FormatTime(l.UpdatedAt)
		r.Status = string(l.Status(now, ttd))
	}
	if g := s.gossipOrNil(); g != nil {
		for _, m := range g.Members() {
			r, ok := byID[m.Meta.NodeID]
			if !ok || m.Meta.ClusterID != s.ClusterID() {
				continue // gossip alone never adds a node
			}
			if m.Meta.ListenAddr != "" {
				r.Address, r.SQLAddress, r.HTTPAddress = m.Meta.ListenAddr, m.Meta.SQLAddr, m.Meta.HTTPAddr
			}
			if m.Meta.BinaryVersion != "" {
				r.Build = m.Meta.BinaryVersion
			}
			if !m.Meta.StartedAt.IsZero() {
				r.startedAt = m.Meta.StartedAt
				r.StartedAt = liveness.FormatTime(m.Meta.StartedAt.UnixNano())
			}
			if v := m.Meta.Extra[gossipKeyClusterVersion]; v != "" {
				r.PersistedVersion = v
			}
		}
	}
	if r, ok := byID[s.NodeID()]; ok {
		r.PersistedVersion = s.ActiveVersion().String() // authoritative for itself
	}
	st := rep.Status()
	for id, r := range byID {
		switch {
		case slices.Contains(st.Voters, uint64(id)):
			r.Raft = "voter"
		case slices.Contains(st.Learners, uint64(id)):
			r.Raft = "learner"
		}
		r.IsLeader = st.Leader == uint64(id)
		if r.Status == "" {
			r.Status = string(liveness.StatusUnavailable)
		}
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].NodeID < rows[j].NodeID })
	return rows, stale
}
