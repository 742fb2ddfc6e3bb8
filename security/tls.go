package security

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/errors/oserror"
)

// caPool reads ca.crt into a pool.
func caPool(certsDir string) (*x509.CertPool, error) {
	p := filepath.Join(certsDir, CACertFile)
	certs, err := readCerts(p)
	if err != nil {
		if oserror.IsNotExist(err) {
			return nil, errors.WithHintf(errors.Wrapf(ErrNoCA, "%s", p),
				"create the certificates with `kvnode cert create-ca` and `kvnode cert create-node`, or pass --insecure for a cluster without security")
		}
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

func loadPair(certsDir, certName, keyName, hint string) (tls.Certificate, error) {
	cp, kp := filepath.Join(certsDir, certName), filepath.Join(certsDir, keyName)
	pair, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		if oserror.IsNotExist(err) {
			return tls.Certificate{}, errors.WithHint(errors.Wrapf(err, "loading %s", certName), hint)
		}
		return tls.Certificate{}, errors.Wrapf(err, "loading %s and %s", cp, kp)
	}
	return pair, nil
}

// NodeTLS is what a node serves and dials with. Both configurations read
// the node's certificate and the CA pool from one reloadable state, so that
// Reload (SIGHUP) takes effect at the next handshake of every listener and
// every dial, without a restart; connections already open keep theirs.
type NodeTLS struct {
	// Server is for the node's listeners. It verifies a client certificate
	// when one is given (VerifyClientCertIfGiven): SQL may authenticate
	// by password; the RPC server requires one with RequireClientCert.
	Server *tls.Config
	// Client is for dialing other nodes: it presents node.crt and checks the
	// peer against ca.crt.
	Client *tls.Config

	dir   string
	state *atomic.Pointer[nodeTLSState]
}

type nodeTLSState struct {
	pair tls.Certificate
	pool *x509.CertPool
}

// RequireClientCert returns a copy of c that refuses a peer without a
// certificate signed by the CA.
func RequireClientCert(c *tls.Config) *tls.Config {
	return withClientAuth(c, tls.RequireAndVerifyClientCert)
}

// withClientAuth returns a copy of c with auth, also in the configurations
// its GetConfigForClient returns.
func withClientAuth(c *tls.Config, auth tls.ClientAuthType) *tls.Config {
	c = c.Clone()
	c.ClientAuth = auth
	if f := c.GetConfigForClient; f != nil {
		c.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			cfg, err := f(h)
			if cfg != nil {
				cfg = cfg.Clone()
				cfg.ClientAuth = auth
			}
			return cfg, err
		}
	}
	return c
}

func loadNodeState(certsDir string) (*nodeTLSState, error) {
	pool, err := caPool(certsDir)
	if err != nil {
		return nil, err
	}
	pair, err := loadPair(certsDir, NodeCertFile, NodeKeyFile,
		"create it with `kvnode cert create-node HOST... --certs-dir="+certsDir+" --ca-key=...`, listing every name and address of this node")
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, errors.Wrap(err, "parsing node.crt")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, errors.WithHint(errors.Wrap(err, "node.crt is not signed by a CA of ca.crt"),
			"create node.crt with the CA of ca.crt (`kvnode cert create-node`), or put that CA into ca.crt")
	}
	pair.Leaf = leaf
	return &nodeTLSState{pair: pair, pool: pool}, nil
}

// LoadNodeTLS loads node.crt, node.key and ca.crt from certsDir.
func LoadNodeTLS(certsDir string) (NodeTLS, error) {
	st, err := loadNodeState(certsDir)
	if err != nil {
		return NodeTLS{}, err
	}
	cur := &atomic.Pointer[nodeTLSState]{}
	cur.Store(st)
	serverFor := func(st *nodeTLSState) *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{st.pair},
			ClientCAs:    st.pool,
			ClientAuth:   tls.VerifyClientCertIfGiven,
		}
	}
	server := serverFor(st)
	server.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return serverFor(cur.Load()), nil }
	client := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair := cur.Load().pair
			return &pair, nil
		},
		// The peer is checked in VerifyConnection against the current
		// pool (a reloaded ca.crt), exactly as the standard verification
		// would: the chain to a CA of ca.crt and the name dialed.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, cur.Load().pool)
		},
	}
	return NodeTLS{Server: server, Client: client, dir: certsDir, state: cur}, nil
}

// verifyServer is what crypto/tls checks of a server when
// InsecureSkipVerify is false, against pool.
func verifyServer(cs tls.ConnectionState, pool *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName: cs.ServerName, Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// Reload re-reads node.crt, node.key and ca.crt: new handshakes use them
// from now on. If a file is missing or they do not fit together (a key that
// does not match, a node.crt not signed by a CA of ca.crt), nothing changes
// and the error says why. Rotating the CA: put the new CA into ca.crt beside
// the old one on every node and Reload, then replace the node certificates
// and Reload, then drop the old CA and Reload.
func (n NodeTLS) Reload() (serial string, err error) {
	if n.state == nil {
		return "", errors.AssertionFailedf("NodeTLS not loaded by LoadNodeTLS")
	}
	st, err := loadNodeState(n.dir)
	if err != nil {
		return "", err
	}
	n.state.Store(st)
	return st.pair.Leaf.SerialNumber.Text(16), nil
}

// LoadClientTLS is the CLI's configuration: it presents client.USER.crt and
// checks the node against ca.crt.
func LoadClientTLS(certsDir, user string) (*tls.Config, error) {
	pool, err := caPool(certsDir)
	if err != nil {
		return nil, err
	}
	pair, err := loadPair(certsDir, ClientCertFile(user), ClientKeyFile(user),
		"create it with `kvnode cert create-client "+user+" --certs-dir="+certsDir+" --ca-key=...`")
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}

// PeerUser returns the user a verified TLS peer authenticated as: the common
// name of its certificate, which the handshake already checked against the
// CA. It fails if the peer presented no verified certificate.
func PeerUser(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", errors.New("no client certificate signed by the cluster's CA")
	}
	return cs.VerifiedChains[0][0].Subject.CommonName, nil
}
