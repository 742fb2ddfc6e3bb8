package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCertificateRotationOnSIGHUP: a secure node (real process) serves a
// node certificate replaced on disk from its next handshake after SIGHUP,
// without a restart: HTTPS shows the new serial, psql with verify-full and
// a password login (channel binding to the new certificate) work, the CLI's
// RPC works; a SIGHUP with a broken node certificate keeps the old one and
// logs why.
func TestCertificateRotationOnSIGHUP(t *testing.T) {
	certs := secureCerts(t)
	caKey := filepath.Join(filepath.Dir(certs), "ca.key")
	n := newProcs(t, 1)[0]
	n.args = []string{"start-single-node", "--certs-dir=" + certs, "--store=" + n.store, "--listen-addr=" + n.listen,
		"--gossip-addr=" + n.gossip, "--sql-addr=" + n.sql, "--http-addr=" + n.httpA}
	n.start()
	waitReadyTLS(t, n, certs)
	mustPsql(t, secureURL(n, certs, "root"), "CREATE USER alice WITH PASSWORD 'rot-pass-1'")

	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	served := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.httpA, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	}
	before := served()
	if out, err := runKvnode(t, "cert", "create-node", "localhost", "127.0.0.1", "--overwrite", "--certs-dir="+certs, "--ca-key="+caKey); err != nil {
		t.Fatalf("create-node --overwrite: %v\n%s", err, out)
	}
	if got := served(); got != before {
		t.Fatalf("the new certificate is served before SIGHUP: %s", got)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, "reloaded the certificates", 10*time.Second)
	after := served()
	if after == before || !strings.Contains(n.log.String(), "node_cert_serial="+after) {
		t.Fatalf("after SIGHUP the node serves %s (before %s)", after, before)
	}
	if out := mustPsql(t, secureURL(n, certs, "root"), "SELECT 1"); out != "1" {
		t.Fatalf("psql after rotation: %s", out)
	}
	if out, err := psqlEnv(t, []string{"PGPASSWORD=rot-pass-1"}, passwordURL(n, certs, "alice", "")+"&channel_binding=require", "SELECT current_user"); err != nil || out != "alice" {
		t.Fatalf("password login with channel binding after rotation: %v: %s", err, out)
	}
	if out, err := runKvnode(t, "node", "status", "--certs-dir="+certs, "--host="+n.listen); err != nil || !strings.Contains(out, "active") {
		t.Fatalf("node status after rotation: %v\n%s", err, out)
	}

	// A broken node.key: SIGHUP keeps the certificate in use.
	if err := os.WriteFile(filepath.Join(certs, "node.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, "reloading the certificates failed; the node keeps the ones it had", 10*time.Second)
	if got := served(); got != after {
		t.Fatalf("a failed reload changed the certificate: %s, want %s", got, after)
	}
	if out := mustPsql(t, secureURL(n, certs, "root"), "SELECT 2"); out != "2" {
		t.Fatalf("psql after a failed reload: %s", out)
	}
}
