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
//  4. Start the replica, gossip and the SQL executor. A node that was
//     decommissioned stops here with a clear error (it asks its own
//     replica, or any peer once it is no longer a member); any other starts
//     a new liveness epoch (package liveness), then serves SQL and runs its
//     liveness heartbeat, the cluster-settings refresh (package settings)
//     and the decommission loop.
//
// Node control: the kvnode.Node service's messages, method names and client
// live in package nodeapi; nodeService (node_service.go) serves it, its
// handlers written beside their concern, and every call to another node
// goes through s.node (a nodeapi.Client). A handler returns its error with
// nodeapi.WithCode (the gRPC code); nodeapi sends it whole, so a
// forwarding node returns the error it got, with its hints and marks, never
// a text copy.
//
// Node lifecycle (lifecycle.go, lifecycle_rpc.go, status.go, and package
// liveness/decommission):
// `kvnode node status` reads every node's record, liveness record and
// gossip metadata (also the crdb_internal.gossip_nodes and gossip_liveness
// views); `kvnode node drain` stops SQL, moves Raft leadership away and sets
// the draining flag while the process stays up (SIGTERM does the same, then
// stops); `kvnode node decommission` is checked against the quorum rule and
// marked on the Raft leader, whose decommission loop removes the nodes from
// the data group one at a time and marks them decommissioned (see the
// package doc of liveness/decommission). A running node that finds itself
// decommissioned reports it through Failed, and `kvnode start` exits.
// Cluster settings are answered through the SQL executor's statement hook
// (package server/clustersql).
//
// Group 0 (release 2.0) is run by package group0/member (its replica,
// loops, joins, RPCs, the upgrade's cluster and the recovery procedure);
// the decisions live in package group0. The server builds the member and
// hands it the node (group0.go), serves its kvnode.Node methods, and keeps
// its SQL (group0_sql.go: system.local, system.group0_history, the
// executor's SchemaLog). See group0/DESIGN.md and docs/recovery.md.
//
// The recovery from a lost majority (`kvnode node recover`) is package
// kv/loqrecovery's; the server builds it and serves its kvnode.Node
// methods. The HTTP endpoints, the status page and the metrics no part
// owns are package server/status's; the server serves its handler. What
// the parts that run on the node need of it, they declare as interfaces;
// nodeView (nodeview.go) answers them.
//
// Security (security.go, package security/nodesec; the HTTP login is
// package server/status's): Config.Insecure or Config.CertsDir,
// exactly one. With CertsDir (package security loads node.crt, ca.crt and
// gossip.key) the gRPC server requires mutual TLS and admits nodes
// (CN=node), root and, from 2.1, admins, and logs every refused handshake;
// the pool dials with node.crt; pgwire serves TLS only and authenticates by
// client certificate or SCRAM password; gossip is encrypted with
// gossip.key; HTTP is HTTPS, with /health and /metrics open and the rest
// behind an admin's login (a session cookie from /login) or client
// certificate.
//
// What it deliberately does not do: it holds no SQL, Raft or gossip logic
// of its own beyond gluing them, and it never reaches into their internals.
package server
