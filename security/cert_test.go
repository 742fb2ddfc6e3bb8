package security_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/security"
)

// newCA creates a CA in a fresh directory and returns its options.
func newCA(t *testing.T) security.Options {
	t.Helper()
	d := t.TempDir()
	o := security.Options{CertsDir: filepath.Join(d, "certs"), CAKey: filepath.Join(d, "safe", "ca.key")}
	if err := security.CreateCA(o); err != nil {
		t.Fatal(err)
	}
	return o
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestCreateAndList creates a CA, a node and a client certificate and checks
// the files, their modes, the SANs and what List reports.
func TestCreateAndList(t *testing.T) {
	o := newCA(t)
	if err := security.CreateNode(o, []string{"localhost", "127.0.0.1", "::1", "node1.example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := security.CreateClient(o, "root"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{o.CAKey, filepath.Join(o.CertsDir, "node.key"), filepath.Join(o.CertsDir, "client.root.key")} {
		if m := mode(t, k); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", k, m)
		}
	}
	if _, err := os.Stat(filepath.Join(o.CertsDir, "ca.key")); err == nil {
		t.Error("the CA key must not be written into the certificates directory")
	}
	infos, err := security.List(o.CertsDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, in := range infos {
		files = append(files, in.File)
		if in.Problem != "" {
			t.Errorf("%s: unexpected problem %q", in.File, in.Problem)
		}
		if time.Until(in.NotAfter) < 4*365*24*time.Hour {
			t.Errorf("%s: expires too soon (%s)", in.File, in.NotAfter)
		}
	}
	if want := []string{"ca.crt", "node.crt", "client.root.crt"}; !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	if got, want := infos[1].SANs, []string{"localhost", "node1.example.com", "127.0.0.1", "::1"}; !slices.Equal(got, want) {
		t.Errorf("node SANs %v, want %v", got, want)
	}
	if !strings.Contains(infos[1].Subject, "CN=node") || !strings.Contains(infos[2].Subject, "CN=root") {
		t.Errorf("subjects %q, %q", infos[1].Subject, infos[2].Subject)
	}
}

// TestRefusals: existing files are not overwritten without Overwrite; a
// missing, a foreign CA key and a missing CA are refused with their sentinel
// and a hint.
func TestRefusals(t *testing.T) {
	o := newCA(t)
	caBefore, _ := os.ReadFile(filepath.Join(o.CertsDir, "ca.crt"))
	if err := security.CreateCA(o); !errors.Is(err, security.ErrExists) || len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("second create-ca: %v", err)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(o.CertsDir, "ca.crt")); string(caAfter) != string(caBefore) {
		t.Fatal("a refused create-ca changed ca.crt")
	}
	if err := security.CreateNode(o, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := security.CreateNode(o, []string{"localhost"}); !errors.Is(err, security.ErrExists) {
		t.Fatalf("second create-node: %v", err)
	}
	ow := o
	ow.Overwrite = true
	if err := security.CreateNode(ow, []string{"otherhost"}); err != nil {
		t.Fatalf("create-node --overwrite: %v", err)
	}

	missing := o
	missing.CAKey = filepath.Join(t.TempDir(), "nope.key")
	if err := security.CreateClient(missing, "alice"); !errors.Is(err, security.ErrCAKeyMissing) || len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("missing CA key: %v", err)
	}
	other := newCA(t)
	foreign := o
	foreign.CAKey = other.CAKey
	if err := security.CreateClient(foreign, "alice"); !errors.Is(err, security.ErrCAKeyMismatch) || len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("foreign CA key: %v", err)
	}
	noCA := security.Options{CertsDir: t.TempDir(), CAKey: o.CAKey}
	if err := security.CreateNode(noCA, []string{"localhost"}); !errors.Is(err, security.ErrNoCA) {
		t.Fatalf("no ca.crt: %v", err)
	}
	if err := security.CreateClient(o, "bad/name"); err == nil {
		t.Fatal("a user name with a slash was accepted")
	}
	if err := security.CreateNode(o, nil); err == nil {
		t.Fatal("create-node without hosts was accepted")
	}
	// List flags a certificate signed by another CA.
	if err := security.CreateClient(other, "mallory"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"client.mallory.crt", "client.mallory.key"} {
		b, _ := os.ReadFile(filepath.Join(other.CertsDir, f))
		if err := os.WriteFile(filepath.Join(o.CertsDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := security.List(o.CertsDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.File == "client.mallory.crt" && !strings.Contains(in.Problem, "not signed by ca.crt") {
			t.Errorf("foreign client certificate listed without a problem: %+v", in)
		}
	}
}

// TestHandshake: a node's server configuration accepts a client certificate
// of its CA (and PeerUser names the user), and refuses one of another CA.
func TestHandshake(t *testing.T) {
	o := newCA(t)
	if err := security.CreateNode(o, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := security.CreateClient(o, "alice"); err != nil {
		t.Fatal(err)
	}
	nt, err := security.LoadNodeTLS(o.CertsDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", security.RequireClientCert(nt.Server))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	users := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				users <- "refused"
			} else if u, err := security.PeerUser(tc.ConnectionState()); err != nil {
				users <- "no user"
			} else {
				users <- u
			}
			_ = c.Close()
		}
	}()
	dial := func(cfg *tls.Config) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err == nil {
			_, _ = c.Read(make([]byte, 1)) // the server's verdict on our certificate
			_ = c.Close()
		}
	}
	cl, err := security.LoadClientTLS(o.CertsDir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	dial(cl)
	if u := <-users; u != "alice" {
		t.Fatalf("client certificate of the CA: got %q, want alice", u)
	}
	dial(nt.Client)
	if u := <-users; u != security.NodeUser {
		t.Fatalf("node certificate: got %q, want node", u)
	}
	other := newCA(t)
	if err := security.CreateClient(other, "alice"); err != nil {
		t.Fatal(err)
	}
	foreign, err := security.LoadClientTLS(other.CertsDir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = cl.RootCAs // trusts the node, presents a foreign certificate
	dial(foreign)
	if u := <-users; u != "refused" {
		t.Fatalf("client certificate of another CA: got %q, want refused", u)
	}
	// The node's certificate verifies for the names it was created with.
	leaf, _ := x509.ParseCertificate(nt.Server.Certificates[0].Certificate[0])
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := security.LoadClientTLS(o.CertsDir, "bob"); err == nil || len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("missing client certificate: %v", err)
	}
}

// TestGossipKey: create-ca makes gossip.key (0600, kept if present);
// create-gossip-key refuses to replace it without Overwrite; a missing or
// malformed key is refused with the command that fixes it.
func TestGossipKey(t *testing.T) {
	d := t.TempDir()
	certs := filepath.Join(d, "certs")
	if _, err := security.LoadGossipKey(certs); !errors.Is(err, security.ErrNoGossipKey) || !strings.Contains(errors.FlattenHints(err), "create-gossip-key") {
		t.Fatalf("missing key: %v", err)
	}
	if err := security.CreateCA(security.Options{CertsDir: certs, CAKey: filepath.Join(d, "ca.key")}); err != nil {
		t.Fatal(err)
	}
	k1, err := security.LoadGossipKey(certs)
	if err != nil || len(k1) != 32 {
		t.Fatalf("key after create-ca: %d bytes, %v", len(k1), err)
	}
	if fi, err := os.Stat(filepath.Join(certs, security.GossipKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gossip.key mode: %v %v", fi.Mode(), err)
	}
	if err := security.CreateGossipKey(security.Options{CertsDir: certs}); !errors.Is(err, security.ErrExists) || !strings.Contains(errors.FlattenHints(err), "copy this file to every node") {
		t.Fatalf("create-gossip-key over an existing key: %v", err)
	}
	// A new CA (--overwrite) keeps the key the nodes share.
	if err := security.CreateCA(security.Options{CertsDir: certs, CAKey: filepath.Join(d, "ca.key"), Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if k2, _ := security.LoadGossipKey(certs); string(k2) != string(k1) {
		t.Fatal("create-ca --overwrite replaced the gossip key")
	}
	if err := security.CreateGossipKey(security.Options{CertsDir: certs, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if k3, _ := security.LoadGossipKey(certs); string(k3) == string(k1) {
		t.Fatal("create-gossip-key --overwrite kept the old key")
	}
	if err := os.WriteFile(filepath.Join(certs, security.GossipKeyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := security.LoadGossipKey(certs); err == nil || !strings.Contains(err.Error(), "is not a gossip key") {
		t.Fatalf("malformed key: %v", err)
	}
}

// TestReload: after a new node certificate is written, the server serves it
// and the client presents it from the next handshake on, with no restart;
// a reload that would break the pair (a key that does not match, a node.crt
// of a CA not in ca.crt) changes nothing.
func TestReload(t *testing.T) {
	o := newCA(t)
	if err := security.CreateNode(o, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	nt, err := security.LoadNodeTLS(o.CertsDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", security.RequireClientCert(nt.Server))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clientSerials := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				clientSerials <- "refused"
			} else {
				clientSerials <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
			}
			_ = c.Close()
		}
	}()
	// handshake returns the serial the server served and the one the
	// client presented.
	handshake := func() (string, string) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), nt.Client)
		if err != nil {
			t.Fatal(err)
		}
		served := c.ConnectionState().PeerCertificates[0].SerialNumber.String()
		_, _ = c.Read(make([]byte, 1))
		_ = c.Close()
		return served, <-clientSerials
	}
	s1, c1 := handshake()
	if s1 != c1 {
		t.Fatalf("one node certificate: served %s, presented %s", s1, c1)
	}
	o.Overwrite = true
	if err := security.CreateNode(o, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if s, c := handshake(); s != s1 || c != c1 {
		t.Fatalf("the new certificate was used before Reload: %s %s", s, c)
	}
	if _, err := nt.Reload(); err != nil {
		t.Fatal(err)
	}
	s2, c2 := handshake()
	if s2 == s1 || c2 != s2 {
		t.Fatalf("after Reload: served %s (was %s), presented %s", s2, s1, c2)
	}
	// A node.crt of another CA: Reload refuses, the old pair stays.
	other := newCA(t)
	if err := security.CreateNode(other, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{security.NodeCertFile, security.NodeKeyFile} {
		b, err := os.ReadFile(filepath.Join(other.CertsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(o.CertsDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nt.Reload(); err == nil || !strings.Contains(err.Error(), "not signed by a CA of ca.crt") {
		t.Fatalf("reloading a node.crt of another CA: %v", err)
	}
	if s, c := handshake(); s != s2 || c != s2 {
		t.Fatalf("a refused Reload changed the certificates: %s %s", s, c)
	}
}
