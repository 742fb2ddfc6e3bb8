// Package autoupgrade holds the decisions of cluster version finalization
// as pure functions: given the active version, every node's binary version,
// liveness, membership and draining state, and the two opt-outs, may the
// cluster finalize automatically, to which version, through which steps, and
// if not, what blocks it (each blocker with the statement that clears it);
// and is a manual `SET CLUSTER SETTING version = X` allowed.
//
// Keeping the decisions free of I/O makes every one of them a table test.
// The server's auto-upgrade loop gathers the inputs, calls Decide, and
// carries out the fence, validate, migrate, bump, persist sequence.
//
// # A decision reads its own view of a node
//
// Input.Nodes is a []Node, not the node-status shape the rest of kvnode
// shares (nodeapi.NodeStatus), on purpose. NodeStatus is a record on the
// wire and on screen: sixteen fields, versions and times as the strings a
// release sent (pinned per release by nodeapi's wire fixtures), the node's
// liveness epoch and place in the data Raft group. Node is the seven facts
// a decision reads, with versions already parsed into
// clusterversion.Version, which orders and compares: no decision parses,
// and no decision test spells a version as a string. Taking NodeStatus
// would also link nodeapi (and through it kv, liveness, group0 and rpc)
// into a package that must stay pure (architecture_test.go allows it
// clusterversion and nodeid only); moving NodeStatus to a leaf for it would
// turn every decision into a parser of reports.
//
// So Node is a narrower view, not a second shape: it is made in exactly one
// place, upgradecluster's autoupgradeNodes (the input as read from the
// cluster), which holds the two rules for reading a report (a build that
// does not parse counts as the oldest, so it blocks as a mixed version
// does; a persisted version that does not parse is unknown, zero), and the
// status views show NodeStatus itself.
package autoupgrade
