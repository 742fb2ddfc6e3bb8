package security

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"

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

// NodeTLS is what a node serves and dials with.
type NodeTLS struct {
	// Server is for the node's listeners. It verifies a client certificate
	// when one is given (VerifyClientCertIfGiven): SQL may later authenticate
	// by password; the RPC server requires one with RequireClientCert.
	Server *tls.Config
	// Client is for dialing other nodes: it presents node.crt and checks the
	// peer against ca.crt.
	Client *tls.Config
}

// RequireClientCert returns a copy of c that refuses a peer without a
// certificate signed by the CA.
func RequireClientCert(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c
}

// LoadNodeTLS loads node.crt, node.key and ca.crt from certsDir.
func LoadNodeTLS(certsDir string) (NodeTLS, error) {
	pool, err := caPool(certsDir)
	if err != nil {
		return NodeTLS{}, err
	}
	pair, err := loadPair(certsDir, NodeCertFile, NodeKeyFile,
		"create it with `kvnode cert create-node HOST... --certs-dir="+certsDir+" --ca-key=...`, listing every name and address of this node")
	if err != nil {
		return NodeTLS{}, err
	}
	return NodeTLS{
		Server: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{pair},
			ClientCAs:    pool,
			ClientAuth:   tls.VerifyClientCertIfGiven,
		},
		Client: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{pair},
			RootCAs:      pool,
		},
	}, nil
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
