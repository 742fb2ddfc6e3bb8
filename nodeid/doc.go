// Package nodeid is the identity of a node: ID, the one type every package
// names a node by (CockroachDB's roachpb.NodeID). The data group's leader
// hands a joining node the next value of a replicated counter
// (server/join); an ID is never reused, and 0 means "no node" or "not yet
// known" wherever an ID may be absent.
//
// # Encodings
//
// ID is an int32 underneath, and every place that stores or sends one keeps
// the width it had before this type existed: four bytes big-endian in the
// node and liveness keys (package keys), a JSON number in every record and
// message (nodeapi, liveness, storage's identity, group 0, migrations), a
// uvarint in gossip's metadata. Raft's own IDs are uint64 (raftpb): package
// kv converts at that one seam (its Config, Status and membership calls
// take an ID), so nothing above kv converts.
//
// ID has no String method on purpose: %v, %d and log attributes print a
// node as the number they always printed.
//
// Layering: a leaf of the standard library, so the leaves that name nodes
// (keys, rpc, kv's API) can use it as well as every package above them.
package nodeid
