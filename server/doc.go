// Package server is kvnode's composition root: it builds one node from its
// parts (the Pebble engine, the Raft-replicated data plane, gossip, the SQL
// executor and its pgwire server, the HTTP endpoints) and runs its
// lifecycle: start, bootstrap (`kvnode init`) or join, serve, drain, stop.
//
// It is the only package that wires concrete types together; the parts
// declare the small interfaces they consume and server satisfies them.
//
// Startup sequence of a node:
//
//  1. Open the store (exclusive lock) and bind every listener, so that a
//     taken port or a locked store fails at once with a clear error.
//  2. Serve gRPC (node control) and HTTP (/health answers at once,
//     /health?ready=1 says 503 until SQL is served).
//  3. If the store has an identity, check it against the peers at --join
//     (another cluster's store is refused) and start. Otherwise wait until
//     either `kvnode init` bootstraps the cluster on this node, or a node at
//     --join admits this one: the Raft leader allocates a node ID (never
//     reused) and adds the node as a learner; it is promoted to voter once
//     caught up, up to five voters.
//  4. Start the replica, gossip, the SQL executor and the pgwire listener.
//
// What it deliberately does not do: it holds no SQL, Raft or gossip logic
// of its own beyond gluing them, and it never reaches into their internals.
package server
