// Package localcluster runs a local cluster of in-process kvnode nodes on
// temporary stores and free loopback ports: what `kvnode demo` drives.
//
// Every node is a server.Server in this process. A node "on release R" is
// one started with server.Config.Knobs.BinaryVersion = R, the knob that
// makes a node behave exactly as a binary of that release; restarting a
// node on another release is stopping its server (which drains it) and
// starting a new one on the same store and ports. Whether a node may start
// on a store is the server's own decision.
//
// It holds no presentation: the demo's prompts, tables and walk-through stay
// in cmd/kvnode. For tests, use server/testcluster, which reports through
// testing.TB and binds its listeners first.
package localcluster
