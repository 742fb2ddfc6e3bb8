package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
)

// Secure mode. A cluster made secure with MakeSecure runs every node with
// --certs-dir (its own directory, certs/nN: ca.crt, node.crt, node.key,
// gossip.key) and every client with the client directory (certs/client:
// ca.crt, client.root.crt, client.root.key): SQL with sslmode=verify-full
// and root's certificate, HTTPS with it, the CLI with --certs-dir. The CA
// keys live in ca-keys/, which no node reads, as SECURITY.md says they
// should. The certificates are made by the binary's own `kvnode cert`
// commands, as an operator makes them.

// CertsDir is node n's certificates directory (its --certs-dir).
func (n *Node) CertsDir() string {
	return filepath.Join(n.c.opts.Dir, "certs", n.String())
}

// ClientCertsDir holds ca.crt and root's client certificate, for SQL,
// HTTPS and the CLI.
func (c *Cluster) ClientCertsDir() string { return filepath.Join(c.opts.Dir, "certs", "client") }

// CAKeyDir is where the CA keys are kept, away from the nodes.
func (c *Cluster) CAKeyDir() string { return filepath.Join(c.opts.Dir, "ca-keys") }

// Secure reports whether MakeSecure ran: nodes start with --certs-dir.
func (c *Cluster) Secure() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secure
}

// MakeSecure creates a CA (key ca-keys/ca.key), the gossip key, a node
// certificate for each node (localhost and 127.0.0.1, where it listens)
// and root's client certificate with bin's `kvnode cert` commands, and
// makes every later start, CLI command, SQL connection and HTTP request of
// the cluster secure. Call it before any node starts.
func (c *Cluster) MakeSecure(ctx context.Context, bin *Binary) error {
	caKey := filepath.Join(c.CAKeyDir(), "ca.key")
	client := c.ClientCertsDir()
	if _, err := c.CertCLI(ctx, bin, "create-ca", "--certs-dir="+client, "--ca-key="+caKey); err != nil {
		return err
	}
	if _, err := c.CertCLI(ctx, bin, "create-client", "root", "--certs-dir="+client, "--ca-key="+caKey); err != nil {
		return err
	}
	for _, n := range c.nodes {
		d := n.CertsDir()
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		for _, f := range []string{"ca.crt", "gossip.key"} {
			if err := CopyFile(filepath.Join(client, f), filepath.Join(d, f)); err != nil {
				return err
			}
		}
		if _, err := c.CertCLI(ctx, bin, "create-node", "localhost", "127.0.0.1", "--certs-dir="+d, "--ca-key="+caKey); err != nil {
			return err
		}
		// The CLI of a node's own machine (init, node commands) uses root's
		// certificate; nodes never need it, but operators keep it there.
	}
	c.mu.Lock()
	c.secure = true
	c.mu.Unlock()
	c.logf("secure mode: CA, gossip key, node and root certificates in %s", filepath.Join(c.opts.Dir, "certs"))
	return nil
}

// CertCLI runs `kvnode cert ARGS...` with bin; its output goes to
// logs/certs.log.
func (c *Cluster) CertCLI(ctx context.Context, bin *Binary, args ...string) (string, error) {
	out, err := c.runCommand(ctx, bin, "certs.log", append([]string{"cert"}, args...)...)
	if err != nil {
		return out, errors.Wrapf(err, "kvnode cert %s: %s", strings.Join(args, " "), out)
	}
	return out, nil
}

// securityFlag is the flag of a node command or `kvnode start`:
// --certs-dir=dir in secure mode, --insecure otherwise.
func (c *Cluster) securityFlag(dir string) string {
	if c.Secure() {
		return "--certs-dir=" + dir
	}
	return "--insecure"
}

// Reload sends SIGHUP: a secure node re-reads its certificates (and
// gossip key).
func (n *Node) Reload() error {
	p := n.current()
	if p == nil {
		return errors.Newf("%s is not running", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return errors.Wrapf(err, "%s: SIGHUP", n)
	}
	n.c.logf("%s: SIGHUP", n)
	return nil
}

// scheme is "https" in secure mode.
func (c *Cluster) scheme() string {
	if c.Secure() {
		return "https"
	}
	return "http"
}

// clientTLS is root's TLS configuration, read from the client directory at
// every handshake (a rotation on disk applies to the next request): it
// presents client.root.crt and checks the node against ca.crt.
func (c *Cluster) clientTLS() *tls.Config {
	dir := c.ClientCertsDir()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.root.crt"), filepath.Join(dir, "client.root.key"))
			return &pair, err
		},
		// Checked in VerifyConnection against the ca.crt of this moment.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return errors.Newf("%s/ca.crt holds no certificate", dir)
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the node presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: pool, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// http returns the client for the node's HTTP address: plain, or HTTPS
// with root's certificate (a new handshake per request, so that every
// request sees the certificates of its moment).
func (c *Cluster) http() *http.Client {
	if !c.Secure() {
		return httpClient
	}
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: c.clientTLS(), DisableKeepAlives: true}}
}

// sqlParams are the TLS parameters of a SQL URL: none (sslmode=disable) or
// verify-full with root's certificate.
func (c *Cluster) sqlParams() string {
	if !c.Secure() {
		return "sslmode=disable"
	}
	d := c.ClientCertsDir()
	v := url.Values{}
	v.Set("sslmode", "verify-full")
	v.Set("sslrootcert", filepath.Join(d, "ca.crt"))
	v.Set("sslcert", filepath.Join(d, "client.root.crt"))
	v.Set("sslkey", filepath.Join(d, "client.root.key"))
	return v.Encode()
}

// CopyFile copies src to dst (mode 0600), replacing dst through a rename
// so that a reader never sees half a file.
func CopyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return WriteFileAtomic(dst, b)
}

// WriteFileAtomic writes data to path (mode 0600) through a temporary file
// and a rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// AppendFile appends src's content to dst (a CA bundle), atomically.
func AppendFile(src, dst string) error {
	a, err := os.ReadFile(dst)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if len(a) > 0 && !bytes.HasSuffix(a, []byte("\n")) {
		a = append(a, '\n')
	}
	return WriteFileAtomic(dst, append(a, b...))
}
