// Package keys is the layout of the replicated data group's keyspace: every
// key and prefix that the layers above kv write through Raft is named here,
// once, with who writes it and who reads it (constants.go). It is modelled on
// CockroachDB's pkg/keys/constants.go.
//
// The keys here are keys of the kv API (kvpb.Op.Key, Replica.Get/Scan), that
// is, what lies below storage.PrefixReplicated (0x10) in the engine; the
// engine prefix itself is storage's business and is added by kv.
//
// The keyspace, by first byte:
//
//	0x02  system records: node records and the node ID counter, liveness
//	      records, cluster settings and the replicated cluster version,
//	      migration jobs, the group 0 formation record
//	0x04  SQL's replicated ID counters (table IDs, column IDs per table)
//	0x88  table data: 0x88 | uint64BE(table ID) | primary key (sql/rowenc
//	      encodes the primary key; the table prefix is built here)
//
// Every prefix P owns the span [P, PrefixEnd(P)); no key or prefix declared
// here lies in another's span (keys_test.go checks it), and the bytes of
// every key are pinned by a test: the layout is on disk in every store, so
// it never changes. A new record gets a new prefix, added to the table in
// constants.go and to the tests; an old prefix is never reused.
//
// # What is deliberately elsewhere
//
//   - The engine's key spaces (0x01 Raft and identity, 0x10 replicated,
//     0x20 node-local) are storage's: they partition one Pebble engine, not
//     the replicated keyspace.
//   - Raft's own keys (hard state, log, applied index, under 0x01) are kv's
//     (kv/raftstore.go): they are per replica and never replicated as data.
//   - Node-local keys (storage.Local: the pre-Raft schema copy under
//     "\x03schema/" in sql/catalog, the recovery record and the group 0
//     generation in server) are each owned by the one package that reads and
//     writes them on its own node; nothing else ever sees them.
//   - Group 0's keys (group0/schema.go) live in group 0's own engine and
//     state machine, a keyspace that shares nothing with this one.
//   - How a primary key is encoded into bytes is sql/rowenc's; this package
//     only knows where a table's keys start and end.
//
// The package imports the standard library and, of ours, only the leaf
// nodeid (the node and liveness keys take a nodeid.ID): every layer that
// writes replicated records asks it, so it must stay a leaf.
package keys
