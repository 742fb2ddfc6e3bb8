package security

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/errors/oserror"
)

// File names inside a certificates directory.
const (
	CACertFile   = "ca.crt"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// NodeUser is the common name of every node certificate. A peer presenting
// it is a node of the cluster.
const NodeUser = "node"

// RootUser is the administrator; the CLI's node commands authenticate as root.
const RootUser = "root"

// ClientCertFile and ClientKeyFile name a user's certificate and key.
func ClientCertFile(user string) string { return "client." + user + ".crt" }

// ClientKeyFile names a user's key; see ClientCertFile.
func ClientKeyFile(user string) string { return "client." + user + ".key" }

// Default lifetimes (CockroachDB's): ten years for the CA, five for the rest.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultCertLifetime = 5 * 365 * 24 * time.Hour
)

// Sentinel errors; each is returned wrapped with the paths involved and a hint.
var (
	// ErrExists: a file would be overwritten and --overwrite was not given.
	ErrExists = errors.New("certificate file already exists")
	// ErrCAKeyMissing: the --ca-key file does not exist.
	ErrCAKeyMissing = errors.New("CA key not found")
	// ErrCAKeyMismatch: the --ca-key does not belong to the directory's ca.crt.
	ErrCAKeyMismatch = errors.New("CA key does not match ca.crt")
	// ErrNoCA: the directory holds no ca.crt.
	ErrNoCA = errors.New("no CA certificate")
)

// Options are what every create command takes.
type Options struct {
	// CertsDir is the certificates directory; created (0700) if missing.
	CertsDir string
	// CAKey is the path of the CA's private key (kept outside CertsDir by
	// convention, so that nodes never hold it).
	CAKey string
	// Overwrite allows replacing existing files.
	Overwrite bool
	// Lifetime of the certificate; zero means the default.
	Lifetime time.Duration
	// Now is the clock (tests); zero means time.Now.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) check() error {
	if o.CertsDir == "" {
		return errors.WithHint(errors.New("--certs-dir is required"), "pass the directory that holds (or will hold) ca.crt, e.g. --certs-dir=certs")
	}
	if o.CAKey == "" {
		return errors.WithHint(errors.New("--ca-key is required"), "pass the CA's key file, kept outside the certificates directory, e.g. --ca-key=my-safe-directory/ca.key")
	}
	return nil
}

// CreateCA creates a self-signed CA: the key at o.CAKey and ca.crt in
// o.CertsDir.
func CreateCA(o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	caCert := filepath.Join(o.CertsDir, CACertFile)
	if !o.Overwrite {
		for _, p := range []string{caCert, o.CAKey} {
			if err := refuseExisting(p); err != nil {
				return errors.WithHint(err, "a CA already exists: keep it (create node and client certificates with it), or pass --overwrite to replace it (every certificate it signed must then be recreated)")
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return errors.Wrap(err, "generating the CA key")
	}
	now := o.now()
	lifetime := o.Lifetime
	if lifetime == 0 {
		lifetime = DefaultCALifetime
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"kvnode"}, CommonName: "kvnode CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return errors.Wrap(err, "signing the CA certificate")
	}
	if err := os.MkdirAll(o.CertsDir, 0o700); err != nil {
		return errors.Wrap(err, "creating the certificates directory")
	}
	if dir := filepath.Dir(o.CAKey); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return errors.Wrap(err, "creating the CA key's directory")
		}
	}
	if err := writeKey(o.CAKey, key, o.Overwrite); err != nil {
		return err
	}
	if err := writeFile(caCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644, o.Overwrite); err != nil {
		return err
	}
	// The cluster's gossip key goes with its CA; an existing one is kept
	// (nodes may share it already).
	if _, err := os.Stat(filepath.Join(o.CertsDir, GossipKeyFile)); oserror.IsNotExist(err) {
		return CreateGossipKey(Options{CertsDir: o.CertsDir})
	}
	return nil
}

// CreateNode creates node.crt and node.key, signed by the CA, with a SAN for
// every host (a name or an IP address) given.
func CreateNode(o Options, hosts []string) error {
	if err := o.check(); err != nil {
		return err
	}
	if len(hosts) == 0 {
		return errors.WithHint(errors.New("create-node needs at least one host"),
			"list every name and address clients and other nodes use to reach this node, e.g. `kvnode cert create-node localhost 127.0.0.1 node1.example.com`")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"kvnode"}, CommonName: NodeUser},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return createSigned(o, tmpl, NodeCertFile, NodeKeyFile)
}

var userRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.\-]*$`)

// CreateClient creates client.USER.crt and client.USER.key, CN=user.
func CreateClient(o Options, user string) error {
	if err := o.check(); err != nil {
		return err
	}
	if !userRE.MatchString(user) || len(user) > 63 {
		return errors.WithHint(errors.Newf("invalid user name %q", user),
			"a user name starts with a letter or underscore and holds letters, digits, '_', '.' or '-' (at most 63)")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"kvnode"}, CommonName: user},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return createSigned(o, tmpl, ClientCertFile(user), ClientKeyFile(user))
}

func createSigned(o Options, tmpl *x509.Certificate, certName, keyName string) error {
	certPath, keyPath := filepath.Join(o.CertsDir, certName), filepath.Join(o.CertsDir, keyName)
	if !o.Overwrite {
		for _, p := range []string{certPath, keyPath} {
			if err := refuseExisting(p); err != nil {
				return errors.WithHint(err, "pass --overwrite to replace it (clients and nodes using the old one must pick up the new one)")
			}
		}
	}
	ca, caKey, err := loadCA(o.CertsDir, o.CAKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return errors.Wrap(err, "generating a key")
	}
	now := o.now()
	lifetime := o.Lifetime
	if lifetime == 0 {
		lifetime = DefaultCertLifetime
	}
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(lifetime)
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return errors.WithHintf(errors.Newf("the CA in %s expired on %s", o.CertsDir, ca.NotAfter.Format(time.RFC3339)),
			"create a new CA with `kvnode cert create-ca --overwrite` and recreate every certificate")
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.SubjectKeyId = keyID(&key.PublicKey)
	if tmpl.SerialNumber, err = serial(); err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return errors.Wrap(err, "signing the certificate")
	}
	if err := writeKey(keyPath, key, o.Overwrite); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644, o.Overwrite)
}

// loadCA reads ca.crt from certsDir and the key at caKeyPath, and checks that
// they belong together.
func loadCA(certsDir, caKeyPath string) (*x509.Certificate, crypto.Signer, error) {
	caPath := filepath.Join(certsDir, CACertFile)
	certs, err := readCerts(caPath)
	if err != nil {
		if oserror.IsNotExist(err) {
			return nil, nil, errors.WithHintf(errors.Wrapf(ErrNoCA, "%s", caPath),
				"create the CA first: `kvnode cert create-ca --certs-dir=%s --ca-key=%s`", certsDir, caKeyPath)
		}
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(caKeyPath)
	if err != nil {
		if oserror.IsNotExist(err) {
			return nil, nil, errors.WithHintf(errors.Wrapf(ErrCAKeyMissing, "%s", caKeyPath),
				"pass the --ca-key that `kvnode cert create-ca` wrote for %s", caPath)
		}
		return nil, nil, errors.Wrap(err, "reading the CA key")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, errors.Wrapf(err, "CA key %s", caKeyPath)
	}
	// ca.crt may hold several CAs (during a rotation); sign with the one the
	// key belongs to.
	for _, c := range certs {
		if c.IsCA && publicKeyEqual(c.PublicKey, key.Public()) {
			return c, key, nil
		}
	}
	return nil, nil, errors.WithHintf(errors.Wrapf(ErrCAKeyMismatch, "%s is not the key of %s", caKeyPath, caPath),
		"pass the --ca-key that `kvnode cert create-ca` wrote together with %s (a key of another CA would sign certificates this cluster refuses)", caPath)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

func parseKey(pemBytes []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM-encoded key found")
	}
	var k any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, errors.Wrap(err, "parsing the key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.Newf("unsupported key type %T", k)
	}
	return s, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errors.Wrapf(err, "parsing %s", path)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.Newf("%s holds no PEM certificate", path)
	}
	return out, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, errors.Wrap(err, "generating a serial number")
	}
	return n, nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha256.Sum256(b)
	return h[:20]
}

func refuseExisting(path string) error {
	if _, err := os.Stat(path); err == nil {
		return errors.Wrapf(ErrExists, "%s", path)
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey, overwrite bool) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return errors.Wrap(err, "encoding the key")
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600, overwrite)
}

// writeFile writes through a temporary file and a rename, so a reader never
// sees half a file; a key is never readable by others, even briefly.
func writeFile(path string, data []byte, mode os.FileMode, overwrite bool) error {
	if !overwrite {
		if err := refuseExisting(path); err != nil {
			return errors.WithHint(err, "pass --overwrite to replace it")
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return errors.Wrapf(err, "writing %s", path)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return errors.Wrapf(err, "writing %s", path)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return errors.Wrapf(err, "writing %s", path)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return errors.Wrapf(err, "writing %s", path)
	}
	if err := f.Close(); err != nil {
		return errors.Wrapf(err, "writing %s", path)
	}
	return errors.Wrapf(os.Rename(tmp, path), "writing %s", path)
}

// CertInfo describes one certificate of a directory, for `kvnode cert list`.
type CertInfo struct {
	File      string
	Usage     string // "CA", "node" or "client"
	Subject   string
	SANs      []string
	NotBefore time.Time
	NotAfter  time.Time
	// KeyFile is the matching key's file name, or "" if it is missing.
	KeyFile string
	// Problem says what is wrong with this file (unreadable, key missing or
	// not matching, not signed by ca.crt), or "".
	Problem string
}

// List describes every certificate in certsDir (ca.crt first, then node, then
// clients by user), with any problem found: a missing or mismatched key, a
// certificate not signed by ca.crt, an expired one.
func List(certsDir string, now time.Time) ([]CertInfo, error) {
	entries, err := os.ReadDir(certsDir)
	if err != nil {
		if oserror.IsNotExist(err) {
			return nil, errors.WithHintf(errors.Newf("certificates directory %s does not exist", certsDir),
				"create it with `kvnode cert create-ca --certs-dir=%s --ca-key=...`", certsDir)
		}
		return nil, errors.Wrap(err, "reading the certificates directory")
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".crt") {
			names = append(names, n)
		}
	}
	rank := func(n string) int {
		switch {
		case n == CACertFile:
			return 0
		case n == NodeCertFile:
			return 1
		default:
			return 2
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if ri, rj := rank(names[i]), rank(names[j]); ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	var roots *x509.CertPool
	if cas, err := readCerts(filepath.Join(certsDir, CACertFile)); err == nil {
		roots = x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
	}
	var out []CertInfo
	for _, n := range names {
		certs, err := readCerts(filepath.Join(certsDir, n))
		if err != nil {
			out = append(out, CertInfo{File: n, Problem: err.Error()})
			continue
		}
		for _, c := range certs {
			info := CertInfo{File: n, Subject: c.Subject.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter}
			info.SANs = append(info.SANs, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				info.SANs = append(info.SANs, ip.String())
			}
			var problems []string
			switch {
			case n == CACertFile:
				info.Usage = "CA"
			case n == NodeCertFile:
				info.Usage = "node"
			default:
				info.Usage = "client"
			}
			if now.After(c.NotAfter) {
				problems = append(problems, "expired")
			}
			if n != CACertFile {
				keyName := strings.TrimSuffix(n, ".crt") + ".key"
				if keyPEM, err := os.ReadFile(filepath.Join(certsDir, keyName)); err != nil {
					problems = append(problems, "key "+keyName+" missing")
				} else if k, err := parseKey(keyPEM); err != nil || !publicKeyEqual(c.PublicKey, k.Public()) {
					problems = append(problems, "key "+keyName+" does not match")
				} else {
					info.KeyFile = keyName
				}
				if roots == nil {
					problems = append(problems, "no ca.crt to verify against")
				} else if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil && !now.After(c.NotAfter) {
					problems = append(problems, "not signed by ca.crt")
				}
			}
			info.Problem = strings.Join(problems, "; ")
			out = append(out, info)
		}
	}
	return out, nil
}
