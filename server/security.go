package server

import (
	"context"
	"crypto/tls"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/security/nodesec"
	"github.com/kvnode/kvnode/sql/users"
)

// ErrSecurityMode: a node was configured with neither or both of --insecure
// and --certs-dir.
var ErrSecurityMode = errors.New("choose --certs-dir or --insecure")

// checkSecurityMode refuses a configuration that does not say, or says both,
// whether the node is secure.
func checkSecurityMode(cfg Config) error {
	switch {
	case cfg.Insecure && cfg.CertsDir != "":
		return errors.WithHint(errors.Wrap(ErrSecurityMode, "both --insecure and --certs-dir were given"),
			"pass --certs-dir=DIR for a secure node, or --insecure (without --certs-dir) for one without security")
	case !cfg.Insecure && cfg.CertsDir == "":
		return errors.WithHint(errors.Wrap(ErrSecurityMode, "neither --certs-dir nor --insecure was given"),
			"pass --certs-dir=DIR (certificates from `kvnode cert create-ca`, `create-node` and `create-client root`) "+
				"for a secure node, or --insecure for one anyone who reaches its ports can control")
	}
	return nil
}

// ClientTLS is the configuration this node dials other nodes with (and its
// own RPC port, as start-single-node does for init): nil in insecure mode.
func (s *Server) ClientTLS() *tls.Config {
	if s.sec == nil {
		return nil
	}
	return s.sec.ClientTLS()
}

// Secure reports whether the node runs in secure mode.
func (s *Server) Secure() bool { return s.sec != nil }

// NonRootUsers lists the SQL users and roles other than root and admin
// (sql/users), read through this node: what a downgrade to release 2.0,
// which admits only root, would leave unable to log in.
func (s *Server) NonRootUsers(ctx context.Context) ([]string, error) {
	rep := s.Replica()
	if rep == nil {
		return nil, errors.New("this node has not joined a cluster yet")
	}
	return users.NonRootUsers(ctx, rep)
}

// ReloadCertificates re-reads node.crt, node.key and ca.crt (SIGHUP), then
// gossip.key (package security/nodesec).
func (s *Server) ReloadCertificates() error {
	if s.sec == nil {
		return errors.New("this node runs --insecure: it has no certificates to reload")
	}
	return s.sec.ReloadCertificates()
}

// ReloadGossipKeys re-reads gossip.key (package security/nodesec).
func (s *Server) ReloadGossipKeys() error {
	if s.sec == nil {
		return errors.New("this node runs --insecure: it has no gossip key to reload")
	}
	return s.sec.ReloadGossipKeys()
}

// loadNodeSecurity reads a secure node's certificates and keys (nil in
// insecure mode); node RPCs admit admins once SQL runs.
func loadNodeSecurity(cfg Config, isAdmin func(ctx context.Context, user string) (bool, error)) (*nodesec.State, error) {
	if cfg.Insecure {
		return nil, nil
	}
	return nodesec.Load(nodesec.Config{CertsDir: cfg.CertsDir, AdvertiseAddr: cfg.AdvertiseAddr, Log: cfg.Logger,
		IsAdmin: isAdmin})
}
