package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// secureCerts creates, with the real binary, a CA, a node certificate for
// the loopback names, and client certificates for root and alice (SQL has
// no user but root yet: alice's certificate serves to be refused as root's).
func secureCerts(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	certs, caKey := filepath.Join(d, "certs"), filepath.Join(d, "ca.key")
	for _, args := range [][]string{
		{"cert", "create-ca"},
		{"cert", "create-node", "localhost", "127.0.0.1"},
		{"cert", "create-client", "root"},
		{"cert", "create-client", "alice"},
	} {
		args = append(args, "--certs-dir="+certs, "--ca-key="+caKey)
		if out, err := runKvnode(t, args...); err != nil {
			t.Fatalf("kvnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return certs
}

// secureURL is a libpq URL with sslmode=verify-full and user's certificate.
func secureURL(p *proc, certs, user string) string {
	return "postgresql://" + user + "@" + p.sql + "/defaultdb?connect_timeout=5&sslmode=verify-full" +
		"&sslrootcert=" + filepath.Join(certs, "ca.crt") +
		"&sslcert=" + filepath.Join(certs, "client."+user+".crt") + "&sslkey=" + filepath.Join(certs, "client."+user+".key")
}

// waitReadyTLS polls /health?ready=1 over HTTPS, trusting only the CA.
func waitReadyTLS(t *testing.T, p *proc, certs string) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer cl.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := cl.Get("https://" + p.httpA + "/health?ready=1"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node at %s not ready over HTTPS after 60s; log:\n%s", p.httpA, p.log.String())
}

// waitLog polls a node's log for s.
func waitLog(t *testing.T, p *proc, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(p.log.String(), s) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("log lacks %q after %s:\n%s", s, within, p.log.String())
}

// TestSecureCluster runs a secure three-node cluster of real processes from
// `kvnode cert` certificates: psql with sslmode=verify-full and a client
// certificate works on every node; a plaintext connection is refused with
// 28000, a connection without a certificate and one with another user's
// certificate (and no password) with 28P01; the CLI works with --certs-dir and is refused without it; the
// status endpoint is HTTPS; a node started --insecure cannot join, and both
// its log and the cluster's say why.
func TestSecureCluster(t *testing.T) {
	certs := secureCerts(t)
	ps := newProcs(t, 4)
	joiner := ps[3]
	ps = ps[:3]
	for _, p := range ps {
		if p.args[1] != "--insecure" {
			t.Fatalf("newProcs args changed: %v", p.args)
		}
		p.args[1] = "--certs-dir=" + certs
	}

	// Neither flag: start refuses, naming both.
	out, err := runKvnode(t, "start", "--store="+t.TempDir())
	if err == nil || !strings.Contains(out, "--certs-dir or --insecure") {
		t.Fatalf("start without --certs-dir or --insecure: %v\n%s", err, out)
	}

	for _, p := range ps {
		p.start()
	}
	if out, err := runKvnode(t, "init", "--host="+ps[0].listen); err == nil || !strings.Contains(out, "--certs-dir or --insecure") {
		t.Fatalf("init without a security flag: %v\n%s", err, out)
	}
	if out, err := runKvnode(t, "init", "--certs-dir="+certs, "--host="+ps[0].listen); err != nil {
		t.Fatalf("kvnode init --certs-dir: %v\n%s", err, out)
	}
	for _, p := range ps {
		waitReadyTLS(t, p, certs)
	}

	// psql, verify-full, client certificate: writes through one node are
	// read through the others.
	mustPsql(t, secureURL(ps[0], certs, "root"), "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	mustPsql(t, secureURL(ps[1], certs, "root"), "INSERT INTO t VALUES (1, 'secure')")
	if got := strings.TrimSpace(mustPsql(t, secureURL(ps[2], certs, "root"), "SELECT v FROM t WHERE k = 1")); got != "secure" {
		t.Fatalf("read through node 3: %q", got)
	}

	// Refusals, with their SQLSTATE (pgx) and as psql shows them.
	refused := func(name, url, code, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgconn.Connect(ctx, url)
		if err == nil {
			_ = c.Close(ctx)
			t.Fatalf("%s: connected", name)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, want) {
			t.Fatalf("%s: %v, want %s %q", name, err, code, want)
		}
		if pe.Hint == "" {
			t.Errorf("%s: no hint", name)
		}
	}
	plain := "postgresql://root@" + ps[0].sql + "/defaultdb?sslmode=disable&connect_timeout=5"
	refused("plaintext", plain, "28000", "connections must use TLS")
	// Without root's certificate the client must prove a password
	// (SCRAM-SHA-256, release 2.1); root has none: 28P01.
	noCert := "postgresql://root@" + ps[0].sql + "/defaultdb?connect_timeout=5&sslmode=verify-full&sslrootcert=" + filepath.Join(certs, "ca.crt")
	refused("no client certificate", noCert, "28P01", `password authentication failed for user "root"`)
	refused("another user's certificate", strings.Replace(secureURL(ps[0], certs, "alice"), "alice@", "root@", 1), "28P01", `password authentication failed for user "root"`)
	if out, err := psql(t, plain, "SELECT 1"); err == nil || !strings.Contains(out, "secure mode") {
		t.Fatalf("plaintext psql: %v\n%s", err, out)
	}
	waitLog(t, ps[0], "refused a SQL connection: plaintext in secure mode", 10*time.Second)

	// The CLI: with the certificates it works; without them it is refused.
	if out, err := runKvnode(t, "node", "status", "--certs-dir="+certs, "--host="+ps[1].listen); err != nil || strings.Count(out, "active") < 3 {
		t.Fatalf("node status --certs-dir: %v\n%s", err, out)
	}
	out, err = runKvnode(t, "node", "status", "--insecure", "--host="+ps[1].listen, "--timeout=5s")
	if err == nil || !strings.Contains(out, "pass --certs-dir") {
		t.Fatalf("node status --insecure against a secure cluster: %v\n%s", err, out)
	}
	if out, err := runKvnode(t, "node", "status", "--host="+ps[1].listen); err == nil || !strings.Contains(out, "--certs-dir or --insecure") {
		t.Fatalf("node status without a security flag: %v\n%s", err, out)
	}
	waitLog(t, ps[1], "refused an RPC connection: TLS handshake failed", 10*time.Second)

	// A node started --insecure cannot join; it says why, and so does the
	// node it tried.
	joiner.args = append(joiner.args[:len(joiner.args)-1], "--join="+ps[2].listen)
	joiner.start()
	waitLog(t, joiner, "this node runs --insecure: if the cluster is secure", 40*time.Second)
	waitLog(t, ps[2], "refused an RPC connection: TLS handshake failed", 10*time.Second)
	out, err = runKvnode(t, "node", "status", "--certs-dir="+certs, "--host="+ps[0].listen)
	if err != nil || strings.Count(out, "active") != 3 {
		t.Fatalf("after the insecure node tried to join: %v\n%s", err, out)
	}
	if resp, err := http.Get("http://" + ps[0].httpA + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered in secure mode")
		}
	}
}

// TestStartNeedsSecurityFlag: start and start-single-node refuse to start
// without --certs-dir or --insecure, and with both.
func TestStartNeedsSecurityFlag(t *testing.T) {
	for _, args := range [][]string{
		{"start", "--store=" + t.TempDir()},
		{"start-single-node", "--store=" + t.TempDir()},
		{"start", "--insecure", "--certs-dir=x", "--store=" + t.TempDir()},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, kvnodeBin, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "--certs-dir") || !strings.Contains(string(out), "--insecure") {
			t.Fatalf("kvnode %v: %v\n%s", args, err, out)
		}
	}
}

// TestSecureSingleNodeAndForeignCA: start-single-node initializes itself in
// secure mode (its own init call authenticates with node.crt) and serves
// psql with verify-full; a node whose certificates come from another CA
// cannot join it, and both logs say why.
func TestSecureSingleNodeAndForeignCA(t *testing.T) {
	certs := secureCerts(t)
	ps := newProcs(t, 2)
	single, foreign := ps[0], ps[1]
	single.args = []string{"start-single-node", "--certs-dir=" + certs, "--store=" + single.store, "--listen-addr=" + single.listen,
		"--gossip-addr=" + single.gossip, "--sql-addr=" + single.sql, "--http-addr=" + single.httpA}
	single.start()
	waitReadyTLS(t, single, certs)
	if got := strings.TrimSpace(mustPsql(t, secureURL(single, certs, "root"), "SELECT 1")); got != "1" {
		t.Fatalf("psql: %q", got)
	}

	other := filepath.Join(t.TempDir(), "other")
	for _, args := range [][]string{{"cert", "create-ca"}, {"cert", "create-node", "localhost", "127.0.0.1"}} {
		args = append(args, "--certs-dir="+other, "--ca-key="+filepath.Join(other, "ca.key"))
		if out, err := runKvnode(t, args...); err != nil {
			t.Fatalf("kvnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	foreign.args[1] = "--certs-dir=" + other
	foreign.args = append(foreign.args[:len(foreign.args)-1], "--join="+single.listen)
	foreign.start()
	waitLog(t, foreign, "certificate signed by unknown authority", 40*time.Second)
	waitLog(t, single, "refused an RPC connection: TLS handshake failed", 10*time.Second)
	if out, err := runKvnode(t, "node", "status", "--certs-dir="+certs, "--host="+single.listen); err != nil || strings.Count(out, "active") != 1 {
		t.Fatalf("after a node of another CA tried to join: %v\n%s", err, out)
	}
}

// TestSecureNodeNeedsGossipKey: `kvnode cert create-ca` writes gossip.key
// beside ca.crt; a secure node whose certificates directory lacks it
// refuses to start and names the command that makes one;
// `kvnode cert create-gossip-key` refuses to replace an existing key.
func TestSecureNodeNeedsGossipKey(t *testing.T) {
	certs := secureCerts(t)
	gk := filepath.Join(certs, "gossip.key")
	if fi, err := os.Stat(gk); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("create-ca did not write gossip.key 0600: %v %v", fi, err)
	}
	if out, err := runKvnode(t, "cert", "create-gossip-key", "--certs-dir="+certs); err == nil || !strings.Contains(out, "--overwrite") {
		t.Fatalf("create-gossip-key over an existing key: %v\n%s", err, out)
	}
	if err := os.Remove(gk); err != nil {
		t.Fatal(err)
	}
	a := freeAddrs(t, 4)
	out, err := runKvnode(t, "start-single-node", "--certs-dir="+certs, "--store="+t.TempDir(), "--listen-addr="+a[0],
		"--gossip-addr="+a[1], "--sql-addr="+a[2], "--http-addr="+a[3])
	if err == nil || !strings.Contains(out, "no gossip encryption key") || !strings.Contains(out, "kvnode cert create-gossip-key --certs-dir="+certs) {
		t.Fatalf("a secure node without gossip.key: %v\n%s", err, out)
	}
	if out, err := runKvnode(t, "cert", "create-gossip-key", "--certs-dir="+certs); err != nil || !strings.Contains(out, "gossip.key") {
		t.Fatalf("create-gossip-key: %v\n%s", err, out)
	}
}
