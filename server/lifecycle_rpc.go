package server

import (
	"context"
	"slices"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/status"
)

// readyReplica returns the replica and liveness of a started node, or an
// Unavailable RPC error.
func (s *Server) readyReplica() (*kv.Replica, *liveness.NodeLiveness, error) {
	lc := s.lc()
	rep, nl := lc.rep.Load(), lc.nl.Load()
	if rep == nil || nl == nil {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.New("this node has not joined a cluster or is still starting"), "retry in a moment, or ask another node"), codes.Unavailable)
	}
	if lc.leftCluster.Load() {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.Newf("node %d is decommissioned and no longer part of the cluster", s.NodeID()), "ask another node"), codes.FailedPrecondition)
	}
	if st := rep.Status(); len(st.Voters) > 0 && !slices.Contains(st.Voters, st.NodeID) && !slices.Contains(st.Learners, st.NodeID) {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.Newf("node %d was removed from the data Raft group", st.NodeID), "ask another node"), codes.FailedPrecondition)
	}
	return rep, nl, nil
}

func (n nodeService) GetLiveness(ctx context.Context, req *nodeapi.LivenessRequest) (*nodeapi.LivenessResponse, error) {
	s := n.s
	rep, _, err := s.readyReplica()
	if err != nil {
		return nil, err
	}
	rec, found, err := liveness.Get(ctx, rep, req.NodeID)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.LivenessResponse{Found: found, Record: rec}, nil
}

func (n nodeService) Drain(ctx context.Context, _ *nodeapi.DrainRequest) (*nodeapi.DrainResponse, error) {
	s := n.s
	if _, _, err := s.readyReplica(); err != nil {
		return nil, err
	}
	open, err := s.drainNode(ctx)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Internal)
	}
	return &nodeapi.DrainResponse{NodeID: s.NodeID(), OpenConnections: open}, nil
}

func (n nodeService) NodeStatus(ctx context.Context, _ *nodeapi.NodeStatusRequest) (*nodeapi.NodeStatusResponse, error) {
	s := n.s
	if _, _, err := s.readyReplica(); err != nil {
		return nil, err
	}
	rows, stale := status.ClusterNodes(ctx, nodeView{s})
	return &nodeapi.NodeStatusResponse{AnsweredBy: s.NodeID(), Stale: stale, Nodes: rows}, nil
}
