package kv

import "github.com/kvnode/kvnode/nodeid"

// Raft names a node by a uint64 (raftpb); kvnode by a nodeid.ID (an int32
// underneath, never negative). kv's API (Config, Status, RaftState, the
// membership calls, the transport's Resolver) takes nodeid.ID, and the
// conversions between the two live here, at that one seam: nothing above kv
// converts.

// raftID is id as Raft names it.
func raftID(id nodeid.ID) uint64 { return uint64(id) }

// nodeID is the node Raft names id.
func nodeID(id uint64) nodeid.ID { return nodeid.ID(id) }

// appendNodeIDs appends the nodes Raft names ids to dst, in order (as
// append does, nil stays nil when ids is empty: Status and RaftState reach
// JSON, where null and [] differ).
func appendNodeIDs(dst []nodeid.ID, ids []uint64) []nodeid.ID {
	for _, id := range ids {
		dst = append(dst, nodeID(id))
	}
	return dst
}

// nodeIDs is ids as nodes, in order, nil exactly when ids is nil (as
// slices.Clone).
func nodeIDs(ids []uint64) []nodeid.ID {
	if ids == nil {
		return nil
	}
	return appendNodeIDs(make([]nodeid.ID, 0, len(ids)), ids)
}
