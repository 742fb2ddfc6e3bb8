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
package autoupgrade
