// Package server is kvnode's composition root: it builds one node from its
// parts and runs its lifecycle: start, bootstrap (`kvnode init`) or join,
// serve, drain, stop. It is the only package that wires concrete types
// together; each part declares the interface it needs of the node, and one
// adapter (nodeView, nodeview.go) answers them.
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
//     --join admits this one (package server/join).
//  4. Start the replica, gossip and the SQL executor. A node that was
//     decommissioned stops here with a clear error; any other starts a new
//     liveness epoch (package liveness), then serves SQL and runs its
//     heartbeat, the cluster-settings refresh and the decommission loop.
//
// The parts it builds, each in its own package:
//
//   - group0/member: group 0 (release 2.0); the server keeps its SQL
//     (group0_sql.go: system.local, system.group0_history, SchemaLog).
//   - upgradecluster and upgrademanager: finalizations and downgrades; the
//     server keeps the node's own version (versions.go, downgrade.go) and
//     when to finalize (the auto-upgrade loop).
//   - liveness/decommission: decommissioning, the leader's and a node's own.
//   - kv/loqrecovery: the recovery from a lost majority.
//   - server/join: the admission of new nodes.
//   - server/schemasync: the pre-Raft schema propagation.
//   - server/status: the HTTP endpoints, the status page and its login,
//     every node's status, and the metrics no part owns.
//   - server/clustersql: cluster settings, SHOW JOBS, SHOW UPGRADE
//     STATUS/PLAN and the crdb_internal.gossip_* views.
//   - server/clockmon: the clock-offset monitor and leased reads.
//   - security/nodesec: secure mode's TLS (Config.Insecure or
//     Config.CertsDir, exactly one).
//
// Background work: every long-lived goroutine of the node is a named task
// of its stopper (package util/stop), whose context ends when Stop
// quiesces the node after its drain; Stop then waits for every task before
// it closes the store (TestStopLeavesNoGoroutine).
//
// Node control: the kvnode.Node service's messages, method names and client
// live in package nodeapi; nodeService (node_service.go) serves it, handing
// each call to the part that owns it, and every call to another node goes
// through s.node (a nodeapi.Client). A handler returns its error with
// nodeapi.WithCode; nodeapi sends it whole, so a forwarding node returns the
// error it got, with its hints and marks, never a text copy.
//
// What it deliberately does not do: it holds no SQL, Raft or gossip logic
// of its own beyond gluing them, and it never reaches into their internals.
package server
