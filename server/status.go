package server

import (
	"context"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/status"
)

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
	rows, stale := status.ClusterNodes(ctx, nodeView{s})
	if stale {
		return nil, errors.Mark(errors.New("the data Raft group did not answer in time"), kvpb.ErrUnavailable)
	}
	return rows, nil
}
