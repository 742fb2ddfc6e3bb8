// Package member is group 0's runtime: this node's member of Raft group 0,
// with its effects. Package group0 decides (the upgrade state machine,
// Decide, DecideMember, PlanRecovery); this package acts on those
// decisions on one node and is the only one that does.
//
// # What it owns
//
//   - member.go: the Member, its upgrade state in memory and on disk, and
//     the state gate (pre-Raft DDL holds it shared, a state change holds it
//     exclusively, so once a node reports synchronize no pre-Raft DDL runs
//     on it).
//   - replica.go: the replica's lifecycle: a second kv.Replica on a second
//     Pebble engine in <store>/group0, its own transport (gRPC service
//     kvnode.Group0, cluster ID "<cluster>/g0/<generation>", isolated in
//     recovery mode), bootstrap (at `kvnode init` and by a seed), crash-safe
//     wipes, load at start and close at stop.
//   - loops.go: what runs once the node serves: the catch-up of the SQL
//     catalog with group 0 (the apply loop), the join of a node that is not
//     yet a member, and the leader's membership loop (group 0's
//     configuration follows the node lifecycle, liveness.Check), and the
//     group 0 side of a decommission's quorum check (ValidateDecommission).
//   - self.go: a node's own membership check (group0.DecideMember): rejoin,
//     and refuse writes while outside (CheckWrite).
//   - rpc.go: the group 0 methods of the kvnode.Node service: state,
//     prepare (join or seed a generation), join (forwarded to the leader),
//     set state, sync.
//   - cluster.go, sync.go: Cluster, group 0 as a coordinator drives it
//     (group0.Cluster, as CockroachDB's upgradecluster): the nodes, their
//     states, the formation record, and SyncSchema, the upgrade's schema
//     merge. RunUpgrade runs group0.Upgrade over it (the 2.0 migration).
//   - recovery.go: Recovery, the recovery procedure (Plan, then Run), the
//     counterpart of group0.Upgrade.Run, and ReformAfterDataRecovery, the
//     group 0 step of the data group's recovery (`kvnode node recover`).
//   - ddl.go: DDL through group 0 (BeginDDL, SchemaTxn.Commit), with
//     SQLSTATE errors; the server adapts it to sql.SchemaLog.
//
// # What it does not do
//
// It does not wire itself: the server builds it (Config) and hands it the
// node (Node: identity, data replica, addresses, gossip's view) and a
// Stopper that owns its goroutines. It knows the SQL catalog only through
// the Catalog interface it declares (descriptors, merge, digest) and never
// imports the executor; the SQL tables (system.local,
// system.group0_history) and the sql.SchemaLog adapter stay in the server.
// It decides nothing of its own that group0 could decide purely. See
// group0/DESIGN.md for the states, invariants and failure cases.
package member
