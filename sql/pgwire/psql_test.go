package pgwire

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPsql runs the real psql binary against the server: libpq's handshake
// (including its SSL and GSS probes), the simple protocol, multi-statement
// strings, error reports with a caret under the position, and formatting
// of every type.
func TestPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not found in PATH; install the PostgreSQL client (apt-get install postgresql-client) to run this test")
	}
	ts := startServer(t, Config{})
	host, port, _ := net.SplitHostPort(ts.addr)

	run := func(t *testing.T, db string, args ...string) (stdout, stderr string, exitCode int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		// -X: no ~/.psqlrc. Default sslmode (prefer) and gssencmode make
		// libpq probe for encryption, which the server declines.
		cmd := exec.CommandContext(ctx, psql, append([]string{
			"-X", "-h", host, "-p", port, "-U", "root", "-d", db, "-v", "ON_ERROR_STOP=1",
		}, args...)...)
		// A clean environment, so the developer's PG* variables do not
		// change what is tested.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PGCONNECT_TIMEOUT=10", "LC_ALL=C.UTF-8"}
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exitCode = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running psql: %v", err)
		}
		return out.String(), errOut.String(), exitCode
	}

	for _, tc := range []struct {
		name   string
		db     string
		args   []string
		stdout string
		stderr string // substring
		code   int
	}{
		{
			name:   "table",
			args:   []string{"-c", "SELECT generate_series(1::INT8, 3::INT8) AS n, 'x' AS s"},
			stdout: " n | s \n---+---\n 1 | x\n 2 | x\n 3 | x\n(3 rows)\n\n",
		},
		{
			name: "every type unaligned",
			args: []string{"-A", "-t", "-P", "null=(null)", "-c",
				`SELECT -7::INT8, 2.5::FLOAT8, 'héllo'::TEXT, '\x00ff'::BYTEA, true, NULL`},
			stdout: "-7|2.5|héllo|\\x00ff|t|(null)\n",
		},
		{
			name:   "several statements",
			args:   []string{"-A", "-t", "-c", "SELECT 1::INT8; CREATE TABLE t (k INT8); SELECT 2::INT8"},
			stdout: "1\nCREATE TABLE\n2\n",
		},
		{
			name:   "error with position",
			args:   []string{"-c", "SELECT 1, nosuch"},
			stderr: "ERROR:  column \"nosuch\" does not exist\nLINE 1: SELECT 1, nosuch\n                  ^\n",
			code:   1,
		},
		{
			name:   "error stops the rest",
			args:   []string{"-A", "-t", "-c", "SELECT 1::INT8; SELECT 1/0; SELECT 3::INT8"},
			stdout: "1\n",
			stderr: "ERROR:  division by zero\n",
			code:   1,
		},
		{
			name:   "unknown database",
			db:     "nosuchdb",
			args:   []string{"-c", "SELECT 1"},
			stderr: `FATAL:  database "nosuchdb" does not exist`,
			code:   2,
		},
		{
			name:   "script file",
			args:   []string{"-A", "-t", "-f", writeFile(t, "SELECT 'a';\nSELECT 'b';\n")},
			stdout: "a\nb\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db
			if db == "" {
				db = "defaultdb"
			}
			stdout, stderr, code := run(t, db, tc.args...)
			if code != tc.code || stdout != tc.stdout || !strings.Contains(stderr, tc.stderr) ||
				(tc.stderr == "" && stderr != "") {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr containing:\n%s",
					code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
