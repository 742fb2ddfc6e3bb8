// Package txn is the transaction coordinator of release 2.1: a Txn reads a
// snapshot of the data Raft group overlaid with its own buffered writes,
// records what it read (keys, and the spans its scans really covered), and
// commits all its writes in one command that every replica validates at
// the commit's log position (kv/txn.go). DESIGN.md gives the protocol and
// the argument that it is serializable.
//
// A Txn implements kvpb.DB, so the SQL executor runs its statements on a
// transaction exactly as on the data group itself; only BEGIN, COMMIT,
// ROLLBACK and savepoints (package sql) know the difference.
package txn
