// Package storage owns a node's Pebble engine: opening it under --store with
// an exclusive process lock, the layout of the key spaces that share it, the
// store's identity (cluster ID, node ID, persisted cluster version) and the
// node-local key-value view used by layers that keep unreplicated state.
//
// Key spaces (the first byte of every engine key):
//
//	0x01  engine and Raft metadata local to this replica (identity, hard
//	      state, log entries, truncated and applied state)
//	0x10  the replicated state machine: every key of the kv API, prefixed
//	      (package kv is the only writer, through Raft)
//	0x20  node-local application data (LocalStore), for example the
//	      pre-Raft schema copy
//
// On the real disk, the write-ahead logs Pebble creates are files already
// written with zeroes and synced (walspare.go; one spare, kvnode-wal-spare,
// waits in the store directory for the next log), so that the fsync every
// Raft Ready waits for overwrites blocks instead of extending a file, as
// Pebble's own recycling of old logs does once memtables have been flushed.
//
// The package deliberately knows nothing of Raft or SQL: it offers the
// engine, the prefixes and the identity record, and kv and sql build on them.
package storage
