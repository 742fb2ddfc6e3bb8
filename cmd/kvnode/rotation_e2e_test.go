package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCertificateRotationOnSIGHUP: a secure node (real process) serves a
// node certificate replaced on disk from its next handshake after SIGHUP,
// without a restart, while clients keep connecting and writing (none fails,
// no acknowledged write is lost): HTTPS shows the new serial, psql with verify-full and
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

	// Under load: clients keep opening new TLS connections (each a full
	// handshake, verify-full) and writing while the certificate changes
	// under them; none may fail.
	mustPsql(t, secureURL(n, certs, "root"), "CREATE TABLE kv (k INT PRIMARY KEY)")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, failures atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				conn, err := pgx.Connect(ctx, secureURL(n, certs, "root"))
				if err == nil {
					_, err = conn.Exec(ctx, "INSERT INTO kv VALUES ($1)", w*1_000_000+i)
					_ = conn.Close(ctx)
				}
				cancel()
				if err != nil {
					failures.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				} else {
					writes.Add(1)
				}
			}
		}(w)
	}
	waitFor(t, 20*time.Second, func() error {
		if writes.Load() < 20 {
			return fmt.Errorf("%d writes so far", writes.Load())
		}
		return nil
	})
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
	atReload := writes.Load()
	waitFor(t, 20*time.Second, func() error {
		if writes.Load() < atReload+20 {
			return fmt.Errorf("%d writes since the reload", writes.Load()-atReload)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d connections or writes failed during the rotation; first: %v", f, f+writes.Load(), firstErr)
	}
	if got := strings.TrimSpace(mustPsql(t, secureURL(n, certs, "root"), "SELECT count(*) FROM kv")); got != fmt.Sprint(writes.Load()) {
		t.Fatalf("rows %s, acknowledged writes %d", got, writes.Load())
	}
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
