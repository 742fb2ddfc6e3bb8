// Package kvpb holds the plain types of kvnode's replicated key-value API:
// the operations a client proposes and the errors it may get back. It is a
// leaf so that consumers (the SQL layer, liveness, migrations) can declare the
// small KV interface they need without importing the Raft machinery in kv.
package kvpb
