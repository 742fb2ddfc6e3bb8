// Package nodesec is a secure node's TLS runtime (Config.CertsDir): its
// certificates (node.crt, node.key, ca.crt, checked against the advertised
// host) and gossip keys (gossip.key), both reloaded in place on SIGHUP
// (open connections keep theirs); the gRPC server's credentials (mutual
// TLS against the CA, every refused handshake logged) and its
// authorization (nodes, root and, once SQL runs, admins may call node
// RPCs); the TLS configurations of the node's dials, its pgwire and HTTPS
// listeners; and the start of gossip with the current keys.
//
// Layering: the certificates and keys themselves are package security's;
// this package adds what a running node does with them. It asks whether a
// user is an admin through a function the server gives it and never
// imports the server or SQL.
package nodesec
