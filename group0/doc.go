// Package group0 is release 2.0's home of schema changes: Raft group 0, a
// second Raft group of every node that holds the schema, its state IDs and
// its history, and the two procedures that move a live cluster onto it and
// back out of trouble: ScyllaDB's upgrade procedure (use_pre_raft_procedures
// -> synchronize -> use_post_raft_procedures), run as the 2.0 migration,
// and its recovery mode.
//
// # Layers
//
//   - state.go: a node's upgrade state, persisted in its own store, the
//     transitions the state machine allows, and how garbage reads (as
//     recovery).
//   - schema.go: group 0's contents (state ID, descriptors, history) and
//     the one write that commits a schema change: a conditional put of the
//     state ID it was built on, so that concurrent changes from different
//     nodes are serialized and none applies twice.
//   - formation.go: the formation record in the data group (generation and
//     seed of the current group 0) and the transport identity per
//     generation.
//   - procedure.go: the upgrade procedure as a pure decision function
//     (Decide) over an Observation of the cluster, and the loop (Upgrade)
//     that observes, decides and acts, bounded and resumable.
//   - recovery.go: the recovery plan: which nodes come back how, and which
//     survivor seeds a re-formed group 0.
//
// # What it does not do
//
// It does not run Raft: its subpackage member (group 0's runtime) runs
// group 0 as a second kv.Replica on a second Pebble engine and hands this
// package the small interfaces it declares (Replica, Cluster, LocalStore).
// It does not know SQL: table descriptors are opaque JSON here; the member
// converts them to and from the catalog. It decides nothing from gossip.
// See DESIGN.md for the states, invariants and failure cases.
package group0
