// Package upgradecluster is the cluster as a finalization or a downgrade
// drives it from this node (CockroachDB's upgradecluster is the model): it
// implements upgrademanager's Cluster (what the decision reads: the
// settings afresh, every node's status, with each live node's binary and
// any persisted version reported ahead asked of the node itself; persisting a version on a node,
// this one directly and the others through kvnode.Node's
// SetClusterVersion) and Migrations (each step's migration run as a job by
// migrations.Runner, with the typed dependencies it wires: the table span
// and row encodings of sql/rowenc, the users store of sql/users, group 0's
// upgrade and leave, the transaction switches of the data replica, and the
// fan-out to every node of a down-migration: leaving group 0, compacting
// the Raft logs). It builds the node's upgrademanager.Manager, and
// computes SHOW UPGRADE STATUS (Status), and tells the auto-upgrade loop
// when an interrupted finalization may be resumed (ResumeGate).
//
// Layering: it reads and acts on the node through the Node and Group0
// interfaces it declares, calls the other nodes through nodeapi's client,
// and decides nothing: the decisions are server/autoupgrade's, the
// orchestration upgrademanager's. It never imports the server, which keeps
// the node's own version state (persisting it, the SetClusterVersion
// handler) and when to finalize (the auto-upgrade loop).
package upgradecluster
