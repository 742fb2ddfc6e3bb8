// Package security holds kvnode's certificates and the TLS configurations
// built from them (CockroachDB's layout, so its operators' habits carry over).
//
// A certificates directory (--certs-dir) holds:
//
//	ca.crt                           the cluster's CA; every peer is checked against it
//	node.crt, node.key               this node's certificate: CN=node, SANs for every
//	                                 name and address it is reached by; valid for both
//	                                 server and client authentication (nodes dial nodes)
//	client.USER.crt, client.USER.key a SQL or CLI user's certificate: CN=USER
//	gossip.key                       the cluster's gossip encryption keys (AES-256,
//	                                 base64, one per line: the first sends, all are
//	                                 accepted), the same file on every node; made by
//	                                 CreateCA when missing, or CreateGossipKey
//
// The CA key is kept outside the directory (--ca-key), so a node never holds
// what could sign a certificate. Keys are ECDSA P-256 (accepted by Go, libpq,
// JDBC and every TLS stack of note), written mode 0600; certificates are
// signed with ECDSA-SHA256. Nothing here shells out to openssl.
//
// The package creates certificates (CreateCA, CreateNode, CreateClient),
// lists them (List), and builds the tls.Configs the server and the CLI use
// (ServerTLS, ClientTLS). Who may do what once authenticated (SQL users,
// passwords, privileges) is not decided here; this package only says which
// certificate, signed by the cluster's CA, the peer presented.
//
// Password verifiers (SCRAM-SHA-256) are made and checked by package
// pgwire, and stored with the users by package sql/users.
//
// NodeTLS's configurations read the node's certificate and the CA pool from
// one state that Reload (SIGHUP) replaces, so rotation needs no restart:
// servers pick the current state per handshake (GetConfigForClient),
// clients present the current certificate (GetClientCertificate) and check
// the server against the current pool (VerifyConnection).
//
// The gossip key rotates without a restart too: RotateGossipKey's three
// steps (add, use, remove) each rewrite gossip.key, which every node re-reads
// on SIGHUP (LoadGossipKeys; the server hands the keys to memberlist's
// keyring), so every node accepts the key every other node sends with at
// every moment (SECURITY.md).
package security
