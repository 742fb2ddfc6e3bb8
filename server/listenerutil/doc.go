// Package listenerutil picks and binds loopback ports for in-process nodes
// (test harnesses, `kvnode demo`): ListenLoopback binds a node's four
// ports and keeps them bound until server.New takes them
// (server.Config.Listeners), so nothing can race the node for a port;
// FreeLoopbackAddrs picks free addresses for callers that bind by address.
// Ports come from below Linux's ephemeral range so that a restarted node
// can bind its own port again. It imports the server only for the
// Listeners type; nothing in a production node's start uses it.
package listenerutil
