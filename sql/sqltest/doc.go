// Package sqltest holds in-memory stand-ins used only by the SQL layer's
// tests: MemDB implements kvpb.DB, MemStore the node-local store, and
// Network delivers schema pushes between executors of one process.
//
// They are deliberately simple (a mutex and a sorted slice) and are never
// used by a running node: the lead wires package sql to the replicated KV
// store and the node's Pebble engine. What they do promise is the contract
// of kvpb.DB that the executor relies on: every operation is linearizable,
// and Write applies all its ops or none, failing with
// *kvpb.ConditionFailedError when an OpCPut's expectation does not hold.
package sqltest
