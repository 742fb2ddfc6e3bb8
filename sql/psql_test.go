package sql

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvnode/kvnode/sql/pgwire"
)

// servePgwire serves node 1 of a one-node test cluster on a loopback port
// and returns its address.
func servePgwire(t *testing.T) (addr string, tc *testCluster) {
	t.Helper()
	tc = newTestCluster(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := pgwire.NewServer(pgwire.Config{Sessions: tc.nodes[0],
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String(), tc
}

// TestDriverConnectQueries checks what drivers ask right after connecting:
// version() in PostgreSQL's form, consistent with the server_version
// ParameterStatus, and pg_backend_pid() equal to BackendKeyData's process ID.
func TestDriverConnectQueries(t *testing.T) {
	addr, _ := servePgwire(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, db := range []string{"defaultdb", "postgres"} {
		conn, err := pgx.Connect(ctx, "postgresql://root@"+addr+"/"+db+"?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		var version, curDB, sv string
		var pid int64
		var recovery bool
		if err := conn.QueryRow(ctx, "SELECT version(), pg_backend_pid(), pg_is_in_recovery(), current_database(), current_setting('server_version')").
			Scan(&version, &pid, &recovery, &curDB, &sv); err != nil {
			t.Fatal(err)
		}
		ps := conn.PgConn().ParameterStatus("server_version")
		if !strings.HasPrefix(version, "PostgreSQL "+ps+" on x86_64-pc-linux-gnu, kvnode ") || sv != ps {
			t.Errorf("version() = %q, server_version = %q / %q", version, ps, sv)
		}
		if uint32(pid) != conn.PgConn().PID() || recovery || curDB != db {
			t.Errorf("pg_backend_pid() = %d (BackendKeyData %d), pg_is_in_recovery() = %v, current_database() = %q",
				pid, conn.PgConn().PID(), recovery, curDB)
		}
		_ = conn.Close(ctx)
	}
}

// runPsql runs the real psql binary against addr and returns its output.
func runPsql(t *testing.T, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	psql, err := osexec.LookPath("psql")
	if err != nil {
		t.Skip("psql not found in PATH; install the PostgreSQL client to run this test")
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := osexec.CommandContext(ctx, psql, append([]string{"-X", "-h", host, "-p", port, "-U", "root", "-d", "defaultdb",
		"-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PGCONNECT_TIMEOUT=10", "LC_ALL=C.UTF-8", "PGSSLMODE=disable"}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running psql: %v", err)
	}
	return out.String(), errOut.String(), code
}

// TestPsqlDefaultDatabases connects the real psql to both databases that
// exist from bootstrap.
func TestPsqlDefaultDatabases(t *testing.T) {
	addr, _ := servePgwire(t)
	for _, db := range []string{"defaultdb", "postgres"} {
		out, errOut, code := runPsql(t, addr, "-d", db, "-At", "-c", "SELECT current_database(), current_setting('server_version')")
		if want := db + "|13.0\n"; out != want || code != 0 {
			t.Errorf("psql -d %s: %q (stderr %q, exit %d), want %q", db, out, errOut, code, want)
		}
	}
}
