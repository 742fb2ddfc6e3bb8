// Package nodeapi is the kvnode.Node service, the control plane between
// nodes and between the CLI and a node: every request and response type
// (types.go), the method names and the gRPC service descriptor
// (service.go), a typed client with one method per RPC (service.go), the
// one-shot calls of the CLI (cli.go), and how errors cross the wire
// (errors.go).
//
// Errors are not flattened to text: a handler's error travels in the gRPC
// status details as cockroachdb/errors' EncodedError, with its gRPC code
// (WithCode) in the status and in the error itself. The client decodes it,
// so errors.Is against the remote package's sentinels, errors.GetAllHints
// and the code survive any number of hops (a node that forwards a call
// returns the error it got, and it is encoded again whole).
//
// Messages are JSON (package rpc's codec). kvnode lives by rolling
// upgrades, so a message of release R must decode in R+1 and back:
// testdata/wire/<release>/ holds every message as that release encodes it,
// and TestWireCompatibility decodes each into the current types and
// re-encodes it equal. Fields may be added; never renamed, retyped or
// removed. Method names are part of the wire too.
//
// Layering: nodeapi is imported by server (which serves the service and
// calls its peers) and by cmd/kvnode. It imports rpc and the packages
// whose records travel inside its messages (catalog descriptors, liveness
// records, group 0's formation and node info, the data group's Raft
// state), so there is one definition of each record's JSON. It never
// imports server: it holds no behaviour beyond the calls themselves.
package nodeapi
