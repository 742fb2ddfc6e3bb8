package server

import (
	"context"
	"time"

	"github.com/kvnode/kvnode/group0"
)

// catchUpSchema runs once at start, before the node reports ready, while
// schema changes use the pre-Raft procedure: it pulls the schema from every
// peer it can reach (bounded) and merges it, so that a node that was away
// while tables were created does not answer 42P01 for them after it says it
// is ready. Peers it cannot reach are left to the periodic sync.
func (s *Server) catchUpSchema() {
	if s.g0.State() != group0.UsePreRaft {
		return // group 0 is the schema's source
	}
	s.mu.Lock()
	exec, self := s.exec, s.ident.NodeID
	s.mu.Unlock()
	if exec == nil {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for id, r := range s.nodeRecords() {
		if id == self || r.ListenAddr == "" || time.Now().After(deadline) {
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var resp SchemaMessage
		err := s.pool.Invoke(ctx, r.ListenAddr, methodSchemaPull, &Empty{}, &resp)
		cancel()
		if err != nil {
			continue
		}
		if changed, err := exec.Catalog().Merge(resp.Descriptors); err == nil && changed {
			s.log.Info("caught up on schema changes made while this node was away", "peer", id)
		}
	}
}
