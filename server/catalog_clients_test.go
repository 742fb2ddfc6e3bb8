package server_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestCatalogRealClients runs the introspection of unmodified ORMs and
// drivers against a real node: SQLAlchemy 1.4's inspector with psycopg2
// (what Alembic autogenerate and reflection use) and JDBC's
// DatabaseMetaData read kvnode's pg_catalog, and each program prints "ok"
// when what it found matches the schema.
func TestCatalogRealClients(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.Exec(0, "CREATE TABLE kv (k INT8 PRIMARY KEY, v TEXT DEFAULT 'x', f FLOAT8)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 'one', 1.5)")
	c.Exec(0, "CREATE TABLE two (a INT, b TEXT, PRIMARY KEY (b, a))")
	jdbcURL := "jdbc:postgresql://" + c.Nodes[0].Config.SQLAddr + "/defaultdb?user=root&sslmode=disable"
	runSQLAlchemyAndJDBC(t, "sqlalchemy_inspect.py", []string{c.URL(0)}, "JdbcMetaData.java", jdbcURL)
}

// TestDatabasesRealClients runs SQLAlchemy's inspector (psycopg2) and JDBC's
// DatabaseMetaData against two databases of one node: each connection's
// introspection sees the tables of its own database, and only those, the
// same table name holding different tables in each.
func TestDatabasesRealClients(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.Exec(0, "CREATE DATABASE app")
	c.Exec(0, "CREATE TABLE only_default (k INT PRIMARY KEY)")
	c.Exec(0, "CREATE TABLE shared_name (id INT8 PRIMARY KEY, in_default BOOL)")
	c.Exec(0, "CREATE TABLE app.public.shared_name (id INT8 PRIMARY KEY, in_app TEXT)")
	c.Exec(0, "CREATE TABLE app.only_app (a INT8, b TEXT, PRIMARY KEY (a, b))")
	c.Exec(0, "INSERT INTO app.shared_name VALUES (1, 'app''s')")
	appURL := strings.Replace(c.URL(0), "/defaultdb?", "/app?", 1)
	jdbcURL := "jdbc:postgresql://" + c.Nodes[0].Config.SQLAddr + "/app?user=root&sslmode=disable"
	runSQLAlchemyAndJDBC(t, "sqlalchemy_databases.py", []string{c.URL(0), appURL}, "JdbcDatabases.java", jdbcURL)
}

// runSQLAlchemyAndJDBC runs, each as a subtest that expects the output "ok",
// a SQLAlchemy script of testdata/clients with Debian's python3 and pyArgs,
// and a JDBC program of testdata/clients with jdbcURL.
func runSQLAlchemyAndJDBC(t *testing.T, pyScript string, pyArgs []string, javaProgram, jdbcURL string) {
	t.Helper()
	for _, tc := range []struct {
		name    string
		present bool
		what    string
		cmd     func(ctx context.Context, script string) *exec.Cmd
		script  string
	}{
		{"sqlalchemy", exists(debianPython), "Debian's python3 with python3-sqlalchemy",
			func(ctx context.Context, s string) *exec.Cmd {
				return exec.CommandContext(ctx, debianPython, append([]string{s}, pyArgs...)...)
			},
			pyScript},
		{"jdbc", exists(jdbcJar), "Debian's libpostgresql-jdbc-java (and a JRE)",
			func(ctx context.Context, s string) *exec.Cmd {
				return exec.CommandContext(ctx, "java", "-cp", jdbcJar, s, jdbcURL)
			},
			javaProgram},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireClient(t, tc.present, tc.what)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			out, err := tc.cmd(ctx, filepath.Join("testdata", "clients", tc.script)).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("%s: %v\n%s", tc.script, err, out)
			}
		})
	}
}
