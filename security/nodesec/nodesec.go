package nodesec

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
)

// Config is what Load needs.
type Config struct {
	// CertsDir is --certs-dir.
	CertsDir string
	// AdvertiseAddr is --advertise-addr: node.crt must be valid for its
	// host.
	AdvertiseAddr string
	// IsAdmin says whether a certificate's user is an admin (nil or false
	// while SQL is not started): admins may call node RPCs.
	IsAdmin func(ctx context.Context, user string) (bool, error)
	Log     *slog.Logger
}

// State is a secure node's TLS state (nil in insecure mode): its
// certificates and gossip keys, reloaded in place.
type State struct {
	tls security.NodeTLS
	cfg Config

	// gossipMu guards the gossip keys and the gossip they were given to, so
	// that a reload (SIGHUP) racing with the start of gossip reaches it.
	gossipMu sync.Mutex
	// gossipKeys encrypt and authenticate gossip (gossip.key; more than one
	// during a rotation).
	gossipKeys security.GossipKeys
	// gossip is the node's gossip once started with gossipKeys.
	gossip *gossip.Gossip
}

// StartGossip creates the node's gossip with the current keys (secure
// mode), and keeps it for ReloadGossipKeys.
func (ns *State) StartGossip(cfg gossip.Config) (*gossip.Gossip, error) {
	ns.gossipMu.Lock()
	defer ns.gossipMu.Unlock()
	cfg.SecretKey, cfg.AcceptKeys = ns.gossipKeys.Primary, ns.gossipKeys.Others
	g, err := gossip.New(cfg)
	if err == nil {
		ns.gossip = g
	}
	return g, err
}

// Load reads the node's certificates and gossip keys from cfg.CertsDir
// and checks node.crt against the advertised host.
func Load(cfg Config) (*State, error) {
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
	return &State{tls: nt, gossipKeys: gk, cfg: cfg}, nil
}

// ServerOptions are the gRPC server's credentials in secure mode: mutual
// TLS against the CA, only nodes and root may call, and every refused
// handshake is logged (a process without the cluster's certificates, or a
// node started --insecure, learns nothing; the operator reads why here).
func (s *State) ServerOptions() []grpc.ServerOption {
	if s == nil {
		return nil
	}
	creds := loggedCreds{TransportCredentials: credentials.NewTLS(security.RequireClientCert(s.tls.Server)), log: s.cfg.Log}
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
func (s *State) authorizeRPC(ctx context.Context) error {
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
	if s.cfg.IsAdmin != nil {
		if ok, err := s.cfg.IsAdmin(ctx, user); err == nil && ok {
			return nil
		}
	}
	s.cfg.Log.Warn("refused a node RPC: the certificate's user may not control nodes", "remote", p.Addr.String(), "user", user)
	return status.Errorf(codes.PermissionDenied,
		"user %q may not call node RPCs: only nodes (node.crt), root (client.root.crt) and admins may (an admin can run GRANT admin TO %s)", user, user)
}

// ReloadCertificates re-reads node.crt, node.key and ca.crt (SIGHUP): new
// connections of every listener and every dial use them; open ones keep
// theirs. On an error nothing changes. It then re-reads gossip.key
// (ReloadGossipKeys); either may fail alone, and the error is the first.
func (s *State) ReloadCertificates() error {
	serial, err := s.tls.Reload()
	if err != nil {
		s.cfg.Log.Error("reloading the certificates failed; the node keeps the ones it had", "err", err)
	} else {
		s.cfg.Log.Info("reloaded the certificates", "certs_dir", s.cfg.CertsDir, "node_cert_serial", serial)
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
func (s *State) ReloadGossipKeys() error {
	ns := s
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
		s.cfg.Log.Error("reloading the gossip key failed; the node keeps the keys it had", "err", err)
		return err
	}
	var accepted []string
	for _, k := range keys.Others {
		accepted = append(accepted, security.Fingerprint(k))
	}
	s.cfg.Log.Info("reloaded the gossip key", "sends_with", security.Fingerprint(keys.Primary), "also_accepts", strings.Join(accepted, ","))
	return nil
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

// ClientTLS is the configuration the node dials other nodes with.
func (s *State) ClientTLS() *tls.Config { return s.tls.Client }

// ServerTLS is the configuration of the node's TLS listeners (pgwire).
func (s *State) ServerTLS() *tls.Config { return s.tls.Server }

// HTTPTLS is the HTTPS configuration: the node's certificate; a client
// certificate of the CA is verified when one is given (an admin's, for
// curl and scripts), and browsers log in with a password (package
// server/status).
func (s *State) HTTPTLS() *tls.Config {
	c := s.tls.Server.Clone()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return c
}
