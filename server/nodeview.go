package server

import (
	"context"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/group0/member"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/loqrecovery"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/liveness/decommission"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/clockmon"
	"github.com/kvnode/kvnode/server/clustersql"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/join"
	"github.com/kvnode/kvnode/server/schemasync"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/settings"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/upgradecluster"
	"github.com/kvnode/kvnode/upgrademanager"
)

// nodeView is the node as the parts that run on it see it: each declares
// the interface it needs (member.Node, loqrecovery.Node, status.Node,
// decommission.Node, upgradecluster.Node, clustersql.Node, clockmon.Node, schemasync.Node, join.Node), and
// nodeView
// answers them from the Server. It only reads and forwards: what a part
// does with the node is that part's.
type nodeView struct{ s *Server }

var (
	_ member.Node         = nodeView{}
	_ loqrecovery.Node    = nodeView{}
	_ status.Node         = nodeView{}
	_ decommission.Node   = nodeView{}
	_ upgradecluster.Node = nodeView{}
	_ clustersql.Node     = nodeView{}
	_ clockmon.Node       = nodeView{}
	_ schemasync.Node     = nodeView{}
	_ join.Node           = nodeView{}
	_ status.NodesSource  = nodeView{}
)

func (n nodeView) ActiveVersion() clusterversion.Version { return n.s.ActiveVersion() }
func (n nodeView) NodeID() nodeid.ID                     { return n.s.NodeID() }
func (n nodeView) ClusterID() string                     { return n.s.ClusterID() }
func (n nodeView) Replica() *kv.Replica                  { return n.s.Replica() }
func (n nodeView) LiveReplica() *kv.Replica              { return n.s.lc().rep.Load() }
func (n nodeView) Resolve(id nodeid.ID) (string, bool)   { return n.s.resolve(id) }
func (n nodeView) AllowPromote(id nodeid.ID) bool        { return n.s.decom.AllowPromote(id) }

func (n nodeView) Ready() error {
	_, _, err := n.s.readyReplica()
	return err
}

func (n nodeView) NodeRecords() map[nodeid.ID]nodeapi.NodeRecord { return n.s.nodeRecords() }

func (n nodeView) NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error) {
	return n.s.NodeStatuses(ctx)
}

func (n nodeView) Gossiped(id nodeid.ID) (binary string, live, ok bool) {
	g := n.s.gossipOrNil()
	if g == nil {
		return "", false, false
	}
	m, ok := g.Member(id)
	if !ok {
		return "", false, false
	}
	return m.Meta.BinaryVersion, m.IsLive(), true
}

// exec is the SQL executor once SQL is started (nil before).
func (n nodeView) exec() *sql.Executor {
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	return n.s.exec
}

func (n nodeView) Catalog() member.Catalog {
	exec := n.exec()
	if exec == nil {
		return nil
	}
	return exec.Catalog()
}

func (n nodeView) RPCAddr() string     { return n.s.RPCAddr() }
func (n nodeView) Serving() bool       { return n.s.lc().nl.Load() != nil }
func (n nodeView) JoinAddrs() []string { return n.s.otherJoinAddrs() }

func (n nodeView) GossipAddrs() map[nodeid.ID]string {
	out := map[nodeid.ID]string{}
	if g := n.s.gossipOrNil(); g != nil {
		for _, m := range g.Members() {
			if m.Meta.NodeID != 0 && m.Meta.ListenAddr != "" && m.Meta.ClusterID == n.s.ClusterID() {
				out[m.Meta.NodeID] = m.Meta.ListenAddr
			}
		}
	}
	return out
}

func (n nodeView) ForgetGossip(id nodeid.ID) {
	if g := n.s.gossipOrNil(); g != nil {
		_ = g.Forget(id)
	}
}

func (n nodeView) BinaryVersion() clusterversion.Version { return n.s.binVersion }
func (n nodeView) Draining() bool                        { return n.s.draining.Load() }
func (n nodeView) AdvertisedRPCAddr() string             { return n.s.AdvertisedRPCAddr() }
func (n nodeView) AdvertisedHTTPAddr() string            { return n.s.AdvertisedHTTPAddr() }
func (n nodeView) Group0() status.Group0                 { return n.s.g0 }

func (n nodeView) LocalNodeStatuses() []nodeapi.NodeStatus { return status.LocalNodes(n) }

// PersistedVersion is the version the node has persisted: none before it
// has joined (ActiveVersion's fallback is not a cluster version).
func (n nodeView) PersistedVersion() (clusterversion.Version, bool) {
	if v := n.s.ver.active.Load(); v != nil {
		return *v, true
	}
	return clusterversion.Version{}, false
}

func (n nodeView) UpgradeStatus(ctx context.Context) (*status.UpgradeStatus, error) {
	return n.s.UpgradeStatus(ctx)
}

func (n nodeView) UpgradePlan(ctx context.Context, target clusterversion.Version) (*upgrademanager.Plan, error) {
	return n.s.UpgradePlan(ctx, target)
}

// Readiness says whether the node serves SQL, and if not, why.
func (n nodeView) Readiness() (bool, string) {
	s := n.s
	if err := s.Failed(); err != nil {
		return false, "start failed: " + err.Error()
	}
	if s.draining.Load() {
		return false, "draining"
	}
	select {
	case <-s.up:
	default:
		if s.NodeID() == 0 {
			return false, "waiting to join a cluster or for `kvnode init`"
		}
		return false, "starting"
	}
	rep := s.Replica()
	if rep == nil || rep.Status().Leader == 0 {
		return false, "no Raft leader known"
	}
	return true, ""
}

// Group0StoredState reads the group 0 upgrade state from the store (the
// engine may be closing under a late scrape: then nothing).
func (n nodeView) Group0StoredState() (group0.State, error) {
	s := n.s
	s.engMu.RLock()
	defer s.engMu.RUnlock()
	if s.engClosed {
		return "", nil
	}
	st, _, _, err := group0.LoadState(s.eng.Local())
	return st, err
}

// Users is the executor once SQL is started (nil before).
func (n nodeView) Users() status.Users {
	exec := n.exec()
	if exec == nil {
		return nil
	}
	return exec
}

// ConsoleClock is the status page's view of the clock-offset monitor.
func (n nodeView) ConsoleClock() *console.Clock { return n.s.clock.Console() }

func (n nodeView) Liveness() *liveness.NodeLiveness { return n.s.Liveness() }

func (n nodeView) ReadyReplica() (*kv.Replica, error) {
	rep, _, err := n.s.readyReplica()
	return rep, err
}

func (n nodeView) ClusterStatus(ctx context.Context) ([]nodeapi.NodeStatus, bool) {
	return status.ClusterNodes(ctx, n)
}

func (n nodeView) Settings() *settings.Registry { return n.s.Settings() }
func (n nodeView) AutoUpgradeEnabled() bool     { return n.s.lc().autoUpgrade.Get() }
func (n nodeView) PreserveDowngrade() string    { return n.s.lc().preserveDowngrade.Get() }

func (n nodeView) PersistActiveVersion(v clusterversion.Version) error {
	return n.s.persistActiveVersion(v)
}

func (n nodeView) LowerActiveVersion(v clusterversion.Version) error {
	return n.s.lowerActiveVersion(v)
}

func (n nodeView) SchemaDigests() (mine string, live map[nodeid.ID]string, ok bool) {
	g, exec := n.s.gossipOrNil(), n.exec()
	if g == nil || exec == nil {
		return "", nil, false
	}
	live = map[nodeid.ID]string{}
	for _, m := range g.Members() {
		if m.IsLive() {
			live[m.Meta.NodeID] = m.Meta.SchemaDigest
		}
	}
	return exec.Catalog().Digest(), live, true
}

// Release21Blockers is what refuses a downgrade from 2.1: the schema's
// uses of 2.1's stored formats.
func (n nodeView) Release21Blockers() []migrations.Blocker {
	exec := n.exec()
	if exec == nil {
		return nil
	}
	var out []migrations.Blocker
	for _, b := range exec.Release21Blockers() {
		out = append(out, migrations.Blocker{Reason: b.Reason, Fix: b.Fix})
	}
	return out
}

func (n nodeView) ReplicatedVersion(ctx context.Context) (clusterversion.Version, error) {
	return n.s.upgrades.ReplicatedVersion(ctx)
}

func (n nodeView) Downgrading(ctx context.Context) (clusterversion.Version, bool, error) {
	return n.s.upgrades.Downgrading(ctx)
}

func (n nodeView) Finalize(ctx context.Context, target clusterversion.Version) error {
	return n.s.Finalize(ctx, target)
}

func (n nodeView) Downgrade(ctx context.Context, target clusterversion.Version) error {
	return n.s.Downgrade(ctx, target)
}

// newRecovery builds the node's part of `kvnode node recover`.
func newRecovery(s *Server) *loqrecovery.Recovery {
	return loqrecovery.New(loqrecovery.Config{
		Node: nodeView{s}, Group0: s.g0, Local: s.eng.Local(), Client: s.node, Log: s.log,
		BeforeStep: s.cfg.Knobs.BeforeRecoverStep,
	})
}

func (n nodeView) Gossip() *gossip.Gossip    { return n.s.gossipOrNil() }
func (n nodeView) Group0State() group0.State { return n.s.g0.State() }

// SchemaCatalog is the executor's catalog once SQL is started (nil before).
func (n nodeView) SchemaCatalog() schemasync.Catalog {
	exec := n.exec()
	if exec == nil {
		return nil
	}
	return exec.Catalog()
}

// Joined is the node's cluster and data replica once it is part of an
// initialized cluster.
func (n nodeView) Joined() (string, *kv.Replica) {
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	if !n.s.joined || n.s.replica == nil {
		return "", nil
	}
	return n.s.ident.ClusterID, n.s.replica
}

func (n nodeView) TimeUntilStoreDead() time.Duration { return n.s.TimeUntilStoreDead() }

func (n nodeView) LeftCluster() bool { return n.s.lc().leftCluster.Load() }

// PeerAddrs are the --join addresses and every known node record's address
// but node self's and this node's own.
func (n nodeView) PeerAddrs(self nodeid.ID) []string {
	s := n.s
	addrs := map[string]bool{}
	for _, a := range s.otherJoinAddrs() {
		addrs[a] = true
	}
	for nid, r := range s.nodeRecords() {
		if nid != self && r.ListenAddr != "" && r.ListenAddr != s.RPCAddr() && r.ListenAddr != s.AdvertisedRPCAddr() {
			addrs[r.ListenAddr] = true
		}
	}
	out := make([]string, 0, len(addrs))
	for a := range addrs {
		out = append(out, a)
	}
	return out
}
