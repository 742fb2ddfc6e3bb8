package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/security"
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

// nodeSecurity is a secure node's TLS state; nil in insecure mode.
type nodeSecurity struct {
	tls security.NodeTLS

	// gossipMu guards the gossip keys and the gossip they were given to, so
	// that a reload (SIGHUP) racing with the start of gossip reaches it.
	gossipMu sync.Mutex
	// gossipKeys encrypt and authenticate gossip (gossip.key; more than one
	// during a rotation).
	gossipKeys security.GossipKeys
	// gossip is the node's gossip once started with gossipKeys.
	gossip *gossip.Gossip
}

// startGossip creates the node's gossip with the current keys (secure
// mode), and keeps it for ReloadGossipKeys.
func (ns *nodeSecurity) startGossip(cfg gossip.Config) (*gossip.Gossip, error) {
	ns.gossipMu.Lock()
	defer ns.gossipMu.Unlock()
	cfg.SecretKey, cfg.AcceptKeys = ns.gossipKeys.Primary, ns.gossipKeys.Others
	g, err := gossip.New(cfg)
	if err == nil {
		ns.gossip = g
	}
	return g, err
}

func loadNodeSecurity(cfg Config) (*nodeSecurity, error) {
	if cfg.Insecure {
		return nil, nil
	}
	nt, err := security.LoadNodeTLS(cfg.CertsDir)
	if err != nil {
		return nil, errors.Wrapf(err, "--certs-dir=%s", cfg.CertsDir)
	}
	gk, err := security.LoadGossipKeys(cfg.CertsDir)
	if err != nil {
		return nil, errors.Wrapf(err, "--certs-dir=%s", cfg.CertsDir)
	}
	// Other nodes dial the advertised address and verify it against
	// node.crt: a certificate without it would refuse every one of them.
	if host, _, err := net.SplitHostPort(cfg.AdvertiseAddr); err == nil && host != "" {
		if leaf := nt.Server.Certificates[0].Leaf; leaf != nil {
			if err := leaf.VerifyHostname(host); err != nil {
				return nil, errors.WithHintf(errors.Newf("node.crt is not valid for --advertise-addr's host %q: %v", host, err),
					"create node.crt with that name among its hosts: `kvnode cert create-node %s ... --certs-dir=%s --ca-key=... --overwrite`",
					host, cfg.CertsDir)
			}
		}
	}
	return &nodeSecurity{tls: nt, gossipKeys: gk}, nil
}

// ClientTLS is the configuration this node dials other nodes with (and its
// own RPC port, as start-single-node does for init): nil in insecure mode.
func (s *Server) ClientTLS() *tls.Config {
	if s.sec == nil {
		return nil
	}
	return s.sec.tls.Client
}

// Secure reports whether the node runs in secure mode.
func (s *Server) Secure() bool { return s.sec != nil }

// rpcServerOptions are the gRPC server's credentials in secure mode: mutual
// TLS against the CA, only nodes and root may call, and every refused
// handshake is logged (a process without the cluster's certificates, or a
// node started --insecure, learns nothing; the operator reads why here).
func (s *Server) rpcServerOptions() []grpc.ServerOption {
	if s.sec == nil {
		return nil
	}
	creds := loggedCreds{TransportCredentials: credentials.NewTLS(security.RequireClientCert(s.sec.tls.Server)), log: s.log}
	return []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.authorizeRPC(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.authorizeRPC(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// authorizeRPC admits a node (CN=node), root, and from cluster version 2.1
// the admins (members of the role admin): node control is an admin's.
// Other users' certificates are for SQL.
func (s *Server) authorizeRPC(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return status.Error(codes.Unauthenticated, "not a TLS connection")
	}
	user, err := security.PeerUser(ti.State)
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if user == security.NodeUser || user == security.RootUser {
		return nil
	}
	s.mu.Lock()
	exec := s.exec
	s.mu.Unlock()
	if exec != nil {
		if ok, err := exec.IsAdmin(ctx, user); err == nil && ok {
			return nil
		}
	}
	s.log.Warn("refused a node RPC: the certificate's user may not control nodes", "remote", p.Addr.String(), "user", user)
	return status.Errorf(codes.PermissionDenied,
		"user %q may not call node RPCs: only nodes (node.crt), root (client.root.crt) and admins may (an admin can run GRANT admin TO %s)", user, user)
}

// ReloadCertificates re-reads node.crt, node.key and ca.crt (SIGHUP): new
// connections of every listener and every dial use them; open ones keep
// theirs. On an error nothing changes. It then re-reads gossip.key
// (ReloadGossipKeys); either may fail alone, and the error is the first.
func (s *Server) ReloadCertificates() error {
	if s.sec == nil {
		return errors.New("this node runs --insecure: it has no certificates to reload")
	}
	serial, err := s.sec.tls.Reload()
	if err != nil {
		s.log.Error("reloading the certificates failed; the node keeps the ones it had", "err", err)
	} else {
		s.log.Info("reloaded the certificates", "certs_dir", s.cfg.CertsDir, "node_cert_serial", serial)
	}
	if gerr := s.ReloadGossipKeys(); err == nil {
		err = gerr
	}
	return err
}

// ReloadGossipKeys re-reads gossip.key: its first key encrypts what this
// node gossips from now on, and every key of the file (and only those) is
// accepted from peers. On an error nothing changes. Keys are logged by
// fingerprint (security.Fingerprint), never themselves.
func (s *Server) ReloadGossipKeys() error {
	if s.sec == nil {
		return errors.New("this node runs --insecure: it has no gossip key to reload")
	}
	ns := s.sec
	keys, err := security.LoadGossipKeys(s.cfg.CertsDir)
	if err == nil {
		ns.gossipMu.Lock()
		if ns.gossip != nil {
			err = ns.gossip.SetKeys(keys.Primary, keys.Others)
		}
		if err == nil {
			ns.gossipKeys = keys
		}
		ns.gossipMu.Unlock()
	}
	if err != nil {
		s.log.Error("reloading the gossip key failed; the node keeps the keys it had", "err", err)
		return err
	}
	var accepted []string
	for _, k := range keys.Others {
		accepted = append(accepted, security.Fingerprint(k))
	}
	s.log.Info("reloaded the gossip key", "sends_with", security.Fingerprint(keys.Primary), "also_accepts", strings.Join(accepted, ","))
	return nil
}

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

// loggedCreds logs every refused server handshake.
type loggedCreds struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (c loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, ai, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.log.Warn("refused an RPC connection: TLS handshake failed (a process without this cluster's certificates, "+
			"a node or CLI started --insecure, or a certificate of another CA)", "remote", conn.RemoteAddr().String(), "err", err)
	}
	return out, ai, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// httpTLS is the HTTPS configuration: the node's certificate; a client
// certificate of the CA is verified when one is given (an admin's, for
// curl and scripts), and browsers log in with a password (package server/status).
func (s *Server) httpTLS() *tls.Config {
	c := s.sec.tls.Server.Clone()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return c
}
