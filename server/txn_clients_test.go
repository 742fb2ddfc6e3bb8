package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
)

// The clients of TestTxnRealClients, as Debian and npm ship them.
// scripts/test.sh installs each and sets KVNODE_REQUIRE_CLIENTS=1, so that
// in CI a missing client fails its test instead of skipping it.
const (
	// debianPython sees Debian's python3-psycopg2, python3-psycopg and
	// python3-sqlalchemy; a python3 earlier on PATH (pyenv) may not.
	debianPython = "/usr/bin/python3"
	// jdbcJar is Debian's libpostgresql-jdbc-java.
	jdbcJar = "/usr/share/java/postgresql.jar"
)

// nodeModules is where node-postgres (npm's pg) is installed:
// $KVNODE_NODE_MODULES, which scripts/test.sh sets.
func nodeModules() string { return os.Getenv("KVNODE_NODE_MODULES") }

// requireClient skips the test when a client is missing, or fails it when
// KVNODE_REQUIRE_CLIENTS=1 (CI).
func requireClient(t *testing.T, present bool, what string) {
	t.Helper()
	if present {
		return
	}
	if os.Getenv("KVNODE_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s is missing (scripts/test.sh installs it)", what)
	}
	t.Skipf("%s is missing (scripts/test.sh installs it)", what)
}

func onPath(cmd string) bool {
	_, err := exec.LookPath(cmd)
	return err == nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return path != "" && err == nil
}

// TestTxnRealClients runs unmodified drivers and an ORM in their default
// transactional modes against a real node: each program in
// testdata/clients drives BEGIN/COMMIT/ROLLBACK, savepoints and a
// serialization failure the way an application does, and prints "ok".
func TestTxnRealClients(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	jdbcURL := "jdbc:postgresql://" + c.Nodes[0].Config.SQLAddr + "/defaultdb?user=root&sslmode=disable"
	python := func(ctx context.Context, script string) *exec.Cmd {
		return exec.CommandContext(ctx, debianPython, script, c.URL(0))
	}
	for _, tc := range []struct {
		name    string
		present bool
		what    string
		cmd     func(ctx context.Context, script string) *exec.Cmd
		script  string
	}{
		{"psycopg2", exists(debianPython), "Debian's python3 with python3-psycopg2",
			python,
			"psycopg2_txn.py"},
		{"psycopg3", exists(debianPython), "Debian's python3 with python3-psycopg",
			python,
			"psycopg3_txn.py"},
		{"sqlalchemy", exists(debianPython), "Debian's python3 with python3-sqlalchemy",
			python,
			"sqlalchemy_txn.py"},
		{"asyncpg", exists(debianPython), "Debian's python3 with python3-asyncpg",
			python,
			"asyncpg_txn.py"},
		{"ruby-pg", onPath("ruby"), "Debian's ruby-pg",
			func(ctx context.Context, s string) *exec.Cmd { return exec.CommandContext(ctx, "ruby", s, c.URL(0)) },
			"ruby_pg_txn.rb"},
		{"jdbc", exists(jdbcJar), "Debian's libpostgresql-jdbc-java (and a JRE)",
			func(ctx context.Context, s string) *exec.Cmd {
				return exec.CommandContext(ctx, "java", "-cp", jdbcJar, s, jdbcURL)
			},
			"JdbcTxn.java"},
		{"node-postgres", exists(filepath.Join(nodeModules(), "pg")), "node-postgres in $KVNODE_NODE_MODULES",
			func(ctx context.Context, s string) *exec.Cmd {
				cmd := exec.CommandContext(ctx, "node", s, c.URL(0))
				cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules())
				return cmd
			},
			"node_postgres_txn.js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireClient(t, tc.present, tc.what)
			c.Exec(0, "DROP TABLE IF EXISTS accounts")
			c.Exec(0, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT)")
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			out, err := tc.cmd(ctx, filepath.Join("testdata", "clients", tc.script)).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("%s: %v\n%s", tc.script, err, out)
			}
		})
	}
}

// TestTxnPsqlScripts: psql scripts with ON_ERROR_STOP, as migration tools
// and operators run them: a script's transaction commits whole; one whose
// statement fails stops psql with exit code 3 and commits nothing, even
// though psql sent the statements before the error one by one.
func TestTxnPsqlScripts(t *testing.T) {
	psql, err := exec.LookPath("psql")
	requireClient(t, err == nil, "psql (Debian's postgresql-client)")
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	run := func(script string) (string, int) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "script.sql")
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, psql, c.URL(0), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := run("BEGIN;\nINSERT INTO t VALUES (1, 'a');\nUPDATE t SET v = 'b' WHERE k = 1;\nCOMMIT;\n"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	out, code := run("BEGIN;\nINSERT INTO t VALUES (2, 'x');\nINSERT INTO t VALUES (1, 'dup');\nINSERT INTO t VALUES (3, 'y');\nCOMMIT;\n")
	if code != 3 || !strings.Contains(out, "duplicate key") {
		t.Fatalf("a failing script: exit %d, want 3: %s", code, out)
	}
	if n, err := c.QueryInt(0, "SELECT count(*) FROM t"); err != nil || n != 1 {
		t.Fatalf("rows %d (%v): the failed script's transaction left rows behind", n, err)
	}
	if v, err := c.QueryInt(0, "SELECT count(*) FROM t WHERE v = 'b'"); err != nil || v != 1 {
		t.Fatalf("the committed script's update: %d %v", v, err)
	}
}
