package server

import (
	"context"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0/member"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/loqrecovery"
	"github.com/kvnode/kvnode/nodeapi"
)

// nodeView is the node as the parts that run on it see it: each declares
// the interface it needs (member.Node, loqrecovery.Node), and nodeView
// answers them from the Server.
type nodeView struct{ s *Server }

var (
	_ member.Node      = nodeView{}
	_ loqrecovery.Node = nodeView{}
)

func (n nodeView) ActiveVersion() clusterversion.Version { return n.s.ActiveVersion() }
func (n nodeView) NodeID() int32                         { return n.s.NodeID() }
func (n nodeView) ClusterID() string                     { return n.s.ClusterID() }
func (n nodeView) Replica() *kv.Replica                  { return n.s.Replica() }
func (n nodeView) LiveReplica() *kv.Replica              { return n.s.lc().rep.Load() }
func (n nodeView) Resolve(id uint64) (string, bool)      { return n.s.resolve(id) }
func (n nodeView) AllowPromote(id uint64) bool           { return n.s.allowPromote(id) }

func (n nodeView) Ready() error {
	_, _, err := n.s.readyReplica()
	return err
}

func (n nodeView) NodeRecords() map[int32]nodeapi.NodeRecord { return n.s.nodeRecords() }

func (n nodeView) NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error) {
	return n.s.NodeStatuses(ctx)
}

func (n nodeView) Gossiped(id int32) (binary string, live, ok bool) {
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

func (n nodeView) Catalog() member.Catalog {
	n.s.mu.Lock()
	exec := n.s.exec
	n.s.mu.Unlock()
	if exec == nil {
		return nil
	}
	return exec.Catalog()
}

func (n nodeView) RPCAddr() string     { return n.s.RPCAddr() }
func (n nodeView) Serving() bool       { return n.s.lc().nl.Load() != nil }
func (n nodeView) JoinAddrs() []string { return n.s.otherJoinAddrs() }

func (n nodeView) GossipAddrs() map[int32]string {
	out := map[int32]string{}
	if g := n.s.gossipOrNil(); g != nil {
		for _, m := range g.Members() {
			if m.Meta.NodeID != 0 && m.Meta.ListenAddr != "" && m.Meta.ClusterID == n.s.ClusterID() {
				out[m.Meta.NodeID] = m.Meta.ListenAddr
			}
		}
	}
	return out
}

func (n nodeView) ForgetGossip(id int32) {
	if g := n.s.gossipOrNil(); g != nil {
		_ = g.Forget(id)
	}
}

// newRecovery builds the node's part of `kvnode node recover`.
func newRecovery(s *Server) *loqrecovery.Recovery {
	return loqrecovery.New(loqrecovery.Config{
		Node: nodeView{s}, Group0: s.g0, Local: s.eng.Local(), Client: s.node, Log: s.log,
		BeforeStep: s.cfg.Knobs.BeforeRecoverStep,
	})
}
