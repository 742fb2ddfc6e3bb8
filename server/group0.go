package server

import (
	"context"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0/member"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
)

// Group 0 on this node: package group0/member runs it (the replica, its
// loops, the state gate, joins, the upgrade's and the recovery's cluster);
// the server builds it (newGroup0), hands it what it needs of the node
// (group0Node) and installs its SQL (group0_sql.go).

// newGroup0 builds this node's group 0 member; nothing runs until
// startNode loads and starts it.
func newGroup0(s *Server) *member.Member {
	return member.New(member.Config{
		Node: group0Node{s}, Stopper: serverStopper{s}, Store: s.cfg.Store, Local: s.eng.Local(),
		Binary: s.binVersion, Log: s.log, Pool: s.pool, Client: s.node,
		TickInterval: s.cfg.RaftTickInterval, Timeout: s.cfg.Group0Timeout, DDLWait: s.cfg.Group0DDLWait,
		PropagationWait: s.cfg.Group0PropagationWait, UpgradeTimeout: s.cfg.Group0UpgradeTimeout,
		Knobs: member.Knobs{Hook: s.cfg.Knobs.Group0Hook, Backoff: s.cfg.Knobs.Group0Backoff,
			BeforeSchemaCheck: s.cfg.Knobs.Group0BeforeSchemaCheck},
	})
}

// Group0 returns this node's member of group 0 (its state, its replica).
func (s *Server) Group0() *member.Member { return s.g0 }

// group0Node is the node as group 0's member sees it.
type group0Node struct{ s *Server }

var _ member.Node = group0Node{}

func (n group0Node) ActiveVersion() clusterversion.Version { return n.s.ActiveVersion() }
func (n group0Node) NodeID() int32                         { return n.s.NodeID() }
func (n group0Node) ClusterID() string                     { return n.s.ClusterID() }
func (n group0Node) Replica() *kv.Replica                  { return n.s.Replica() }
func (n group0Node) LiveReplica() *kv.Replica              { return n.s.lc().rep.Load() }
func (n group0Node) Resolve(id uint64) (string, bool)      { return n.s.resolve(id) }
func (n group0Node) AllowPromote(id uint64) bool           { return n.s.allowPromote(id) }

func (n group0Node) Ready() error {
	_, _, err := n.s.readyReplica()
	return err
}

func (n group0Node) NodeRecords() map[int32]nodeapi.NodeRecord { return n.s.nodeRecords() }

func (n group0Node) NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error) {
	return n.s.NodeStatuses(ctx)
}

func (n group0Node) Gossiped(id int32) (binary string, live, ok bool) {
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

func (n group0Node) Catalog() member.Catalog {
	n.s.mu.Lock()
	exec := n.s.exec
	n.s.mu.Unlock()
	if exec == nil {
		return nil
	}
	return exec.Catalog()
}

// serverStopper runs group 0's goroutines as the node's: they end when the
// node stops, and Stop waits for them.
type serverStopper struct{ s *Server }

func (st serverStopper) ShouldQuiesce() <-chan struct{} { return st.s.stopC }

func (st serverStopper) RunAsync(f func()) {
	st.s.wg.Add(1)
	go func() { defer st.s.wg.Done(); f() }()
}
