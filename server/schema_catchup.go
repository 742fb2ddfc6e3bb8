package server

import (
	"context"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
)

// takesPreRaftSchema reports whether a node in state st merges the schema
// changes of the pre-Raft procedure (pushes, and pulls from its peers).
//
// A node in synchronize does too: it runs no pre-Raft DDL itself, but until
// the procedure's schema sync, peers still in use_pre_raft_procedures may,
// and group 0 holds only the schema of the join step. Without their changes
// it would serve a table they dropped (acknowledging writes nobody can read)
// and refuse one they created (issue 16, D7), for as long as the procedure
// lasts. Merging is safe at any time: the catalog's merge keeps, per table,
// the newest descriptor (tombstones included), so merging more changes in
// any order converges on the same schema, and the schema sync takes every
// node's catalog into group 0 anyway.
func takesPreRaftSchema(st group0.State) bool {
	return st == group0.UsePreRaft || st == group0.Synchronize
}

// catchUpSchema runs once at start, before the node serves SQL, while
// schema changes may still use the pre-Raft procedure: it pulls the schema
// from every peer it can reach (bounded) and merges it, so that a node that
// was away while tables were created (or dropped), or that joins during the
// group 0 procedure, does not answer from an old schema once it says it is
// ready. Peers it cannot reach are left to the periodic sync.
func (s *Server) catchUpSchema() {
	if !takesPreRaftSchema(s.g0.State()) {
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
		resp, err := s.node.SchemaPull(ctx, r.ListenAddr, &nodeapi.Empty{})
		cancel()
		if err != nil {
			continue
		}
		if changed, err := exec.Catalog().Merge(resp.Descriptors); err == nil && changed {
			s.log.Info("caught up on schema changes made while this node was away", "peer", id)
		}
	}
}
