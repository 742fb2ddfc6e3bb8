package server

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
)

// gossipKeyClusterVersion is the NodeMeta.Extra key under which a node
// gossips the cluster version it has persisted (a hint for status views).
const gossipKeyClusterVersion = "cluster_version"

// publishClusterVersion gossips the cluster version this node has
// persisted, when it changed, when the last broadcast of it did not finish
// (memberlist then leaves it to the next push/pull, up to its interval
// later), and every republishEvery besides: status views and the console
// read it from gossip, and a broadcast lost while a peer restarts or dies
// must not leave them showing an old version for long.
func (s *Server) publishClusterVersion() {
	g := s.gossipOrNil()
	if g == nil {
		return
	}
	v := s.ActiveVersion().String()
	if g.LocalMeta().Extra[gossipKeyClusterVersion] == v && !s.versionGossip.pending.Load() &&
		time.Since(time.Unix(0, s.versionGossip.last.Load())) < republishEvery {
		return
	}
	s.versionGossip.last.Store(time.Now().UnixNano())
	err := g.UpdateMeta(func(m *gossip.NodeMeta) {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra[gossipKeyClusterVersion] = v
	})
	s.versionGossip.pending.Store(err != nil)
	if err != nil {
		s.log.Debug("gossiping the persisted cluster version; will broadcast it again", "err", err)
	}
}

// republishEvery is how often a node gossips its persisted cluster version
// even when it has not changed.
const republishEvery = 5 * time.Second

// versionGossip is publishClusterVersion's state.
type versionGossip struct {
	pending atomic.Bool  // the last broadcast did not finish
	last    atomic.Int64 // when it last broadcast (Unix nanos)
}

// olderBuild is the binary a node runs as far as status views and
// finalization decisions know it, from its replicated record (rewritten at
// every start) and its gossip metadata: the older of the two when they
// disagree. Each can be stale: the record for a moment after a restart,
// gossip for good when its peers refuse the node (a node restarted on an
// older binary than a fence they persisted is kept out of gossip, so they
// hold the metadata of its previous run). The older one is never wrong for
// long and always safe: a node taken to run a newer binary than it does
// would be asked to run a version it cannot.
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

func (s *Server) gossipOrNil() *gossip.Gossip {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gossip
}

// NodeStatuses returns every node's status from linearizable reads, or an
// error if the data group cannot answer in time (decisions such as the
// upgrade finalization must not use a stale view).
func (s *Server) NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error) {
	if _, _, err := s.readyReplica(); err != nil {
		return nil, err
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
func (s *Server) clusterStatus(ctx context.Context) (rows []nodeapi.NodeStatus, stale bool) {
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
	return s.statusRows(rep, lkvs, nkvs), stale
}

// localClusterStatus is clusterStatus from this node's applied state
// alone, without a read through Raft: cheap enough to poll every second,
// possibly a little behind.
func (s *Server) localClusterStatus() []nodeapi.NodeStatus {
	rep := s.lc().rep.Load()
	if rep == nil {
		return nil
	}
	lstart, lend := liveness.Span()
	nstart, nend := keys.NodeSpan()
	lkvs, _ := rep.ScanLocal(lstart, lend, 0, false)
	nkvs, _ := rep.ScanLocal(nstart, nend, 0, false)
	return s.statusRows(rep, lkvs, nkvs)
}

// statusRows builds every node's status from the liveness and node records
// read, gossip and the data group's membership.
func (s *Server) statusRows(rep *kv.Replica, lkvs, nkvs []kvpb.KeyValue) (rows []nodeapi.NodeStatus) {
	byID := map[int32]*nodeapi.NodeStatus{}
	row := func(id int32) *nodeapi.NodeStatus {
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
				r.Build = olderBuild(r.Build, m.Meta.BinaryVersion)
			}
			if !m.Meta.StartedAt.IsZero() {
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
	return rows
}
