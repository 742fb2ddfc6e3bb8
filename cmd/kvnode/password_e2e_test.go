package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/security"
)

// passwordURL is a libpq URL for user with a password over TLS: sslmode
// require (no certificate at all), or verify-full against the CA when
// certs is not empty.
func passwordURL(p *proc, certs, user, password string) string {
	u := "postgresql://" + url.UserPassword(user, password).String() + "@" + p.sql + "/defaultdb?connect_timeout=5"
	if certs == "" {
		return u + "&sslmode=require"
	}
	return u + "&sslmode=verify-full&sslrootcert=" + filepath.Join(certs, "ca.crt")
}

// psqlEnv runs psql with extra environment (PGPASSWORD).
func psqlEnv(t *testing.T, env []string, url, stmt string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", url, "-w", "-v", "ON_ERROR_STOP=1", "-AtqX", "-c", stmt)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSecurePasswordAuth: on a secure node (real process) at 2.1, a user
// created with a password logs in with SCRAM-SHA-256 over TLS from psql
// (PGPASSWORD, sslmode=require and verify-full), psycopg2 and pgx; its
// client certificate still works; a wrong password, an unknown user and a
// user without a password are refused with 28P01 and a line in the node's
// log that says which (and never the password); a plaintext connection is
// refused with 28000 as before; ALTER USER changes the password.
func TestSecurePasswordAuth(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	certs := secureCerts(t)
	n := newProcs(t, 1)[0]
	n.args = []string{"start-single-node", "--certs-dir=" + certs, "--store=" + n.store, "--listen-addr=" + n.listen,
		"--gossip-addr=" + n.gossip, "--sql-addr=" + n.sql, "--http-addr=" + n.httpA}
	n.start()
	waitReadyTLS(t, n, certs)
	rootURL := secureURL(n, certs, "root")
	const pw, pw2 = "s3cret pass'word", "second-Secret"
	mustPsql(t, rootURL, "CREATE USER alice WITH PASSWORD 's3cret pass''word'")
	mustPsql(t, rootURL, "CREATE USER carol")
	mustPsql(t, rootURL, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	mustPsql(t, rootURL, "INSERT INTO t VALUES (1, 'one')")
	mustPsql(t, rootURL, "GRANT SELECT ON TABLE t TO alice")

	// psql with PGPASSWORD, without a certificate, sslmode=require and
	// verify-full.
	for _, u := range []string{passwordURL(n, "", "alice", ""), passwordURL(n, certs, "alice", "")} {
		out, err := psqlEnv(t, []string{"PGPASSWORD=" + pw}, u, "SELECT v FROM t WHERE k = 1")
		if err != nil || out != "one" {
			t.Fatalf("psql as alice (%s): %v: %s", u, err, out)
		}
	}
	// libpq's channel_binding=require: SCRAM-SHA-256-PLUS, bound to the TLS
	// session (tls-server-end-point).
	if out, err := psqlEnv(t, []string{"PGPASSWORD=" + pw}, passwordURL(n, "", "alice", "")+"&channel_binding=require", "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("psql with channel_binding=require: %v: %s", err, out)
	}
	// alice's client certificate still authenticates her.
	if out := mustPsql(t, secureURL(n, certs, "alice"), "SELECT current_user"); out != "alice" {
		t.Fatalf("certificate login as alice: current_user %q", out)
	}

	// pgx, with a password in the URL.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, passwordURL(n, certs, "alice", pw))
	if err != nil {
		t.Fatalf("pgx as alice: %v", err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE k = $1", 1).Scan(&v); err != nil || v != "one" {
		t.Fatalf("pgx SELECT: %q %v", v, err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (2, 'two')")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Hint, "GRANT INSERT ON TABLE t TO alice") {
		t.Fatalf("pgx INSERT without the privilege: %v", err)
	}
	_ = conn.Close(ctx)

	// psycopg2 (Debian's python3).
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		script := `
import sys, psycopg2
c = psycopg2.connect(sys.argv[1])
cur = c.cursor()
cur.execute("SELECT v FROM t WHERE k = %s", (1,))
print(cur.fetchone()[0])
try:
    psycopg2.connect(sys.argv[2])
    print("wrong password accepted")
except psycopg2.OperationalError as e:
    print("refused:", str(e).strip().splitlines()[0])
`
		out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", script,
			passwordURL(n, certs, "alice", pw), passwordURL(n, "", "alice", "bad-guess-7")).CombinedOutput()
		if err != nil && strings.Contains(string(out), "No module named") {
			t.Logf("psycopg2 is not installed: %s", out)
		} else if err != nil || !strings.HasPrefix(string(out), "one\n") ||
			!strings.Contains(string(out), `password authentication failed for user "alice"`) {
			t.Fatalf("psycopg2: %v\n%s", err, out)
		}
	}

	// Refusals: 28P01 for each, a log line saying which.
	refused := func(name, u, code, want, logReason string) {
		t.Helper()
		c, err := pgconn.Connect(ctx, u)
		if err == nil {
			_ = c.Close(ctx)
			t.Fatalf("%s: connected", name)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, want) || pe.Hint == "" {
			t.Fatalf("%s: %v, want %s %q with a hint", name, err, code, want)
		}
		if logReason != "" {
			waitLog(t, n, logReason, 10*time.Second)
		}
	}
	refused("wrong password", passwordURL(n, certs, "alice", "bad-guess-7"), "28P01", `password authentication failed for user "alice"`,
		`reason="wrong password"`)
	refused("unknown user", passwordURL(n, "", "mallory", "x"), "28P01", `password authentication failed for user "mallory"`,
		`reason="the user does not exist"`)
	refused("user without a password", passwordURL(n, "", "carol", "x"), "28P01", `password authentication failed for user "carol"`,
		`reason="the user has no password"`)
	refused("root without its certificate", passwordURL(n, certs, "root", "x"), "28P01", `password authentication failed for user "root"`, "")
	refused("plaintext", "postgresql://alice:x@"+n.sql+"/defaultdb?sslmode=disable&connect_timeout=5", "28000", "connections must use TLS", "")
	if out, err := psqlEnv(t, []string{"PGPASSWORD=bad-guess-7"}, passwordURL(n, "", "alice", ""), "SELECT 1"); err == nil ||
		!strings.Contains(out, `password authentication failed for user "alice"`) {
		t.Fatalf("psql with a wrong password: %v: %s", err, out)
	}
	if out, err := psqlEnv(t, nil, passwordURL(n, "", "alice", ""), "SELECT 1"); err == nil || !strings.Contains(out, "no password") {
		t.Fatalf("psql without a password: %v: %s", err, out)
	}

	// ALTER USER: the old password stops working, the new one works.
	mustPsql(t, rootURL, "ALTER USER alice WITH PASSWORD '"+pw2+"'")
	refused("the old password", passwordURL(n, "", "alice", pw), "28P01", "password authentication failed", "")
	if out, err := psqlEnv(t, []string{"PGPASSWORD=" + pw2}, passwordURL(n, "", "alice", ""), "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("psql with the new password: %v: %s", err, out)
	}
	// Node control over RPC: alice's certificate is refused until she is
	// an admin.
	aliceTLS, err := security.LoadClientTLS(certs, "alice")
	if err != nil {
		t.Fatal(err)
	}
	rctx := nodeapi.WithTLS(ctx, aliceTLS)
	if _, err := nodeapi.GetNodeStatus(rctx, n.listen); err == nil || !strings.Contains(err.Error(), "GRANT admin TO alice") {
		t.Fatalf("node status with alice's certificate: %v", err)
	}
	mustPsql(t, rootURL, "GRANT admin TO alice")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := nodeapi.GetNodeStatus(rctx, n.listen)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node status as admin alice: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// psql's \du lists the users and their roles.
	if out := mustPsql(t, rootURL, `\du`); !strings.Contains(out, "alice") || !strings.Contains(out, "carol") || !strings.Contains(out, "{admin}") {
		t.Fatalf("\\du:\n%s", out)
	}

	// No password, nor a fragment of one, reaches the log.
	for _, s := range []string{"s3cret", "second-Secret", "bad-guess-7"} {
		if strings.Contains(n.log.String(), s) {
			t.Fatalf("the node's log contains %q:\n%s", s, n.log.String())
		}
	}
}
