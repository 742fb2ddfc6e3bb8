package status

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// NodesSource is what every node's status is read from: the node's data
// replica (node and liveness records), gossip, and the node itself.
type NodesSource interface {
	NodeID() nodeid.ID
	ClusterID() string
	// ActiveVersion is authoritative for the node's own persisted version,
	// and BinaryVersion for the binary it runs.
	ActiveVersion() clusterversion.Version
	BinaryVersion() clusterversion.Version
	// LiveReplica is the data replica once the node's liveness runs (nil
	// before).
	LiveReplica() *kv.Replica
	// TimeUntilStoreDead is server.time_until_store_dead.
	TimeUntilStoreDead() time.Duration
	// Gossip is the node's gossip (nil before it starts).
	Gossip() *gossip.Gossip
}

// GossipKeyClusterVersion is the NodeMeta.Extra key under which a node
// gossips the cluster version it has persisted (a hint for status views).
const GossipKeyClusterVersion = "cluster_version"

// Publish gossips the cluster version this node has persisted (v), when it changed, when the last broadcast of it did not finish
// (memberlist then leaves it to the next push/pull, up to its interval
// later), and every republishEvery besides: status views and the console
// read it from gossip, and a broadcast lost while a peer restarts or dies
// must not leave them showing an old version for long.
func (vg *VersionGossip) Publish(g *gossip.Gossip, v string, log *slog.Logger) {
	if g == nil {
		return
	}
	if g.LocalMeta().Extra[GossipKeyClusterVersion] == v && !vg.pending.Load() &&
		time.Since(time.Unix(0, vg.last.Load())) < republishEvery {
		return
	}
	vg.last.Store(time.Now().UnixNano())
	err := g.UpdateMeta(func(m *gossip.NodeMeta) {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra[GossipKeyClusterVersion] = v
	})
	vg.pending.Store(err != nil)
	if err != nil {
		log.Debug("gossiping the persisted cluster version; will broadcast it again", "err", err)
	}
}

// republishEvery is how often a node gossips its persisted cluster version
// even when it has not changed.
const republishEvery = 5 * time.Second

// VersionGossip is the state of gossiping the persisted cluster version.
type VersionGossip struct {
	pending atomic.Bool  // the last broadcast did not finish
	last    atomic.Int64 // when it last broadcast (Unix nanos)
}

// olderBuild is the binary another node runs as far as this node's status
// views know it, from its replicated record (rewritten at every start) and
// its gossip metadata: the older of the two when they disagree. Each can be
// stale: the record for a moment after a restart, gossip for a while after
// one (the peers hold the metadata of the node's previous run until its new
// incarnation's reaches them) and for good when its peers refuse the node
// (a node restarted on an older binary than a fence they persisted is kept
// out of gossip). So this is a report, and the older one is the safer
// report; a finalization decision does not rest on it but asks each live
// node (upgradecluster's confirmBuilds), since a report from before a
// node's restart onto the new binary refuses the finalization for nothing.
func olderBuild(record, gossiped string) string {
	rv, err1 := clusterversion.Parse(record)
	gv, err2 := clusterversion.Parse(gossiped)
	switch {
	case err1 != nil:
		return gossiped
	case err2 != nil:
		return record
	case gv.Less(rv):
		return gossiped
	default:
		return record
	}
}

// ClusterNodes computes every node's status: the node list and addresses
// from the replicated node records, liveness from the replicated liveness
// records (one rule: Record.IsLive), and the running binary and start time
// from gossip. Reads are linearizable; if the data group cannot answer in
// 3s, the node answers from its local copy and stale is set.
func ClusterNodes(ctx context.Context, s NodesSource) (rows []nodeapi.NodeStatus, stale bool) {
	rep := s.LiveReplica()
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
	return nodeRows(s, rep, lkvs, nkvs), stale
}

// LocalNodes is clusterStatus from this node's applied state
// alone, without a read through Raft: cheap enough to poll every second,
// possibly a little behind.
func LocalNodes(s NodesSource) []nodeapi.NodeStatus {
	rep := s.LiveReplica()
	if rep == nil {
		return nil
	}
	lstart, lend := liveness.Span()
	nstart, nend := keys.NodeSpan()
	lkvs, _ := rep.ScanLocal(lstart, lend, 0, false)
	nkvs, _ := rep.ScanLocal(nstart, nend, 0, false)
	return nodeRows(s, rep, lkvs, nkvs)
}

// nodeRows builds every node's status from the liveness and node records
// read, gossip and the data group's membership.
func nodeRows(s NodesSource, rep *kv.Replica, lkvs, nkvs []kvpb.KeyValue) (rows []nodeapi.NodeStatus) {
	byID := map[nodeid.ID]*nodeapi.NodeStatus{}
	row := func(id nodeid.ID) *nodeapi.NodeStatus {
		if r, ok := byID[id]; ok {
			return r
		}
		r := &nodeapi.NodeStatus{NodeID: id, Membership: string(liveness.Active), Raft: "none"}
		byID[id] = r
		return r
	}
	for _, e := range nkvs {
		var n nodeapi.NodeRecord
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
	if g := s.Gossip(); g != nil {
		for _, m := range g.Members() {
			r, ok := byID[m.Meta.NodeID]
			if !ok || m.Meta.ClusterID != s.ClusterID() {
				continue // gossip alone never adds a node
			}
			if m.Meta.ListenAddr != "" {
				r.Address, r.SQLAddress, r.HTTPAddress = m.Meta.ListenAddr, m.Meta.SQLAddr, m.Meta.HTTPAddr
			}
			if m.Meta.BinaryVersion != "" {
				r.Build = olderBuild(r.Build, m.Meta.BinaryVersion)
			}
			if !m.Meta.StartedAt.IsZero() {
				r.StartedAt = liveness.FormatTime(m.Meta.StartedAt.UnixNano())
			}
			if v := m.Meta.Extra[GossipKeyClusterVersion]; v != "" {
				r.PersistedVersion = v
			}
		}
	}
	if r, ok := byID[s.NodeID()]; ok {
		// Authoritative for itself: its record is rewritten only once it
		// has started, and gossip is the others' view.
		r.PersistedVersion = s.ActiveVersion().String()
		r.Build = s.BinaryVersion().String()
	}
	st := rep.Status()
	for id, r := range byID {
		switch {
		case slices.Contains(st.Voters, id):
			r.Raft = "voter"
		case slices.Contains(st.Learners, id):
			r.Raft = "learner"
		}
		r.IsLeader = st.Leader == id
		if r.Status == "" {
			r.Status = string(liveness.StatusUnavailable)
		}
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].NodeID < rows[j].NodeID })
	return rows
}
