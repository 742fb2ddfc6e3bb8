// Package rpc is kvnode's inter-node transport plumbing on top of gRPC: a
// codec, connection caching and the options every client and server uses.
//
// Services are declared by hand with grpc.ServiceDesc rather than generated
// from .proto files, so the build needs no protoc. Messages that know how to
// marshal themselves (Raft's gogoproto messages, the batch types in package
// kv) use their own binary encoding; every other message is JSON, which is
// ample for control-plane calls (join, init, schema pushes) that carry a few
// hundred bytes.
//
// Connections are plaintext in insecure mode (NewPool, Dial) and mutual TLS
// in secure mode (NewTLSPool, DialTLS with the configuration package
// security builds; the server passes its credentials to NewServer).
//
// The package deliberately holds no service of its own: each layer (kv for
// Raft, server for node control) registers what it serves.
package rpc
