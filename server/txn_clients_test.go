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

// debianPython is Debian's interpreter, which sees Debian's python3-psycopg2,
// python3-psycopg and python3-sqlalchemy (scripts/test.sh installs them); a
// python3 earlier on PATH (pyenv) may not.
const debianPython = "/usr/bin/python3"

// TestTxnRealClients runs unmodified drivers and an ORM (and the JDBC
// driver, from a single-file Java program), in their default
// transactional modes, against a real node: each script in
// testdata/clients drives BEGIN/COMMIT/ROLLBACK, savepoints and a
// serialization failure the way an application does, and prints "ok".
func TestTxnRealClients(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s is missing: install Debian's python3 with python3-psycopg2, python3-psycopg and python3-sqlalchemy (scripts/test.sh does)", debianPython)
	}
	c := testcluster.Start(t, 1, testcluster.Options{})
	for _, script := range []string{"psycopg2_txn.py", "psycopg3_txn.py", "sqlalchemy_txn.py"} {
		t.Run(strings.TrimSuffix(script, ".py"), func(t *testing.T) {
			c.Exec(0, "DROP TABLE IF EXISTS accounts")
			c.Exec(0, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT)")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "clients", script), c.URL(0)).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
		})
	}
	t.Run("jdbc", func(t *testing.T) {
		if _, err := os.Stat(jdbcJar); err != nil {
			t.Fatalf("%s is missing: install Debian's libpostgresql-jdbc-java and default-jre-headless (scripts/test.sh does)", jdbcJar)
		}
		c.Exec(0, "DROP TABLE IF EXISTS accounts")
		c.Exec(0, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT)")
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		url := "jdbc:postgresql://" + c.Nodes[0].Config.SQLAddr + "/defaultdb?user=root&sslmode=disable"
		out, err := exec.CommandContext(ctx, "java", "-cp", jdbcJar, filepath.Join("testdata", "clients", "JdbcTxn.java"), url).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("JDBC: %v\n%s", err, out)
		}
	})
}

// jdbcJar is Debian's PostgreSQL JDBC driver (libpostgresql-jdbc-java).
const jdbcJar = "/usr/share/java/postgresql.jar"
