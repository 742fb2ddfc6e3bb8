// Package testcluster is the one in-process cluster harness for kvnode's
// tests: real nodes (package server) on 127.0.0.1 and t.TempDir() stores,
// stopped by t.Cleanup. Waits poll with deadlines (testutil.SucceedsSoon);
// nothing sleeps for a fixed time to "let things settle".
//
// Ports never race the machine: a node's four ports are bound before the
// node is built (listenerutil.ListenLoopback) and handed to it as listeners
// (server.Config.Listeners), gossip's TCP and UDP socket included, so no
// port is released between being chosen and being served. A restarted node
// binds its own addresses again; they lie below the kernel's ephemeral
// range, so no outgoing connection can have taken them meanwhile. FreeAddrs
// is only for tests that start separate processes, which cannot be handed
// a listener.
package testcluster
