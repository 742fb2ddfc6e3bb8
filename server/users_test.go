package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/users"
)

// loadUsers reads the users store through node i.
func loadUsers(t *testing.T, c *testcluster.Cluster, i int) *users.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := users.Load(ctx, c.Nodes[i].Server.Replica())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkBootstrapUsers(t *testing.T, s *users.Snapshot) {
	t.Helper()
	if r, ok := s.Users[users.Root]; !ok || !r.Login || r.Verifier != "" {
		t.Fatalf("root: %+v %v", r, ok)
	}
	if r, ok := s.Users[users.Admin]; !ok || r.Login {
		t.Fatalf("admin: %+v %v", r, ok)
	}
	if !slices.Equal(s.RolesOf(users.Root), []string{users.Admin}) || !s.IsAdmin(users.Root) {
		t.Fatalf("root's roles: %v", s.RolesOf(users.Root))
	}
}

// TestUsersStoreBootstrapAndMigration: a cluster bootstrapped at 2.1 has
// root (admin) from the start; a cluster bootstrapped at 2.0 has no users
// store until its finalization to 2.1 runs the 2.1-step.3 migration, which
// creates it (and SHOW JOBS lists it). Databases likewise: CREATE DATABASE
// is refused until the cluster is at 2.1, and the tables of the 2.0 cluster
// are defaultdb's afterwards.
func TestUsersStoreBootstrapAndMigration(t *testing.T) {
	t.Run("bootstrap at 2.1", func(t *testing.T) {
		c := testcluster.Start(t, 1, testcluster.Options{})
		checkBootstrapUsers(t, loadUsers(t, c, 0))
	})
	t.Run("migration from 2.0", func(t *testing.T) {
		c := testcluster.Start(t, 2, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
		if s := loadUsers(t, c, 0); len(s.Users) != 0 {
			t.Fatalf("a 2.0 cluster has users: %v", s.Users)
		}
		// A table of the 2.0 cluster: it is defaultdb's after the upgrade.
		c.Exec(0, "CREATE TABLE legacy (k INT PRIMARY KEY, v STRING)")
		c.Exec(0, "INSERT INTO legacy VALUES (1, 'from 2.0')")
		// Before finalization the binaries are 2.1, the cluster is not:
		// CREATE USER is refused, naming the version.
		c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '2.0'")
		for i := range c.Nodes {
			upgradeBinary(c, i, "2.1")
		}
		_, err := c.Conn(1).Exec(context.Background(), "CREATE USER alice WITH PASSWORD 'x'")
		if sqlState(err) != "0A000" || !strings.Contains(err.Error(), "2.1") || !strings.Contains(hintOf(err), "finalize the upgrade") {
			t.Fatalf("CREATE USER before 2.1: %v (hint %q)", err, hintOf(err))
		}
		// Databases too: a 2.0 binary could not read their records.
		_, err = c.Conn(0).Exec(context.Background(), "CREATE DATABASE app")
		if sqlState(err) != "0A000" || !strings.Contains(err.Error(), "2.1") || !strings.Contains(hintOf(err), "finalize the upgrade") {
			t.Fatalf("CREATE DATABASE before 2.1: %v (hint %q)", err, hintOf(err))
		}
		if _, err := userConn(t, c, 0, "alice"); sqlState(err) != "28000" || !strings.Contains(hintOf(err), "2.1") {
			t.Fatalf("a user other than root before 2.1: %v", err)
		}
		c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
		waitVersion(t, c, "2.1")
		for i := range c.Nodes {
			checkBootstrapUsers(t, loadUsers(t, c, i))
		}
		// The 2.0 table is defaultdb's; a new database has its own tables.
		c.Exec(1, "CREATE DATABASE app")
		c.Exec(1, "CREATE TABLE app.legacy (k INT PRIMARY KEY)")
		if v, err := queryString(t, c, 0, "SELECT v FROM defaultdb.public.legacy WHERE k = 1"); err != nil || v != "from 2.0" {
			t.Fatalf("the 2.0 table after the upgrade: %q %v", v, err)
		}
		if n, err := c.QueryInt(0, "SELECT count(*) FROM app.legacy"); err != nil || n != 0 {
			t.Fatalf("app.legacy: %d rows, %v", n, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := c.Conn(0).Query(ctx, "SHOW JOBS")
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := vals[2].(string); strings.Contains(d, "create the users") && vals[3] == "succeeded" {
				found = true
			}
		}
		if rows.Close(); !found || rows.Err() != nil {
			t.Fatalf("SHOW JOBS lacks the succeeded users migration (%v)", rows.Err())
		}
		if n, err := users.NonRootUsers(ctx, c.Nodes[1].Server.Replica()); err != nil || len(n) != 0 {
			t.Fatalf("NonRootUsers: %v %v", n, err)
		}
	})
}

// userConn opens a pgx connection to node i as user (insecure mode trusts
// the name, as CockroachDB's does), closed at cleanup.
func userConn(t *testing.T, c *testcluster.Cluster, i int, user string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(c.URL(i), "root@", user+"@", 1))
	if err == nil {
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
	}
	return conn, err
}

// wantErr fails unless err carries code, and (when non-empty) a hint
// containing hint.
func wantErr(t *testing.T, what string, err error, code, hint string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Hint, hint) {
		t.Fatalf("%s: %v (hint %q), want %s with a hint containing %q", what, err, hintOf(err), code, hint)
	}
}

func hintOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Hint
	}
	return ""
}

// TestUsersAndPrivileges walks the user statements and the privilege
// checks through two nodes: a user created on node 1 logs in on node 2; each
// statement it may not run is refused with 42501 and a hint naming the GRANT
// that fixes it; a grant through a role, a revocation (of a statement already
// prepared), CREATE ON DATABASE for DDL, admin through GRANT admin, and DROP
// USER's refusals.
func TestUsersAndPrivileges(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{})
	ctx := txnCtx(t)
	root := c.Conn(0)
	mustExec := func(conn *pgx.Conn, sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(root, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	mustExec(root, "INSERT INTO t VALUES (1, 'one')")
	root2 := c.Conn(1)
	testcluster.WaitFor(t, 10*time.Second, func() error { // the schema reaches node 2
		_, err := root2.Exec(ctx, "SELECT * FROM t")
		return err
	})
	mustExec(root, "CREATE USER alice WITH PASSWORD 'correct horse'")
	_, err := root.Exec(ctx, "CREATE USER alice")
	wantErr(t, "CREATE USER twice", err, "42710", "ALTER USER alice")
	mustExec(root, "CREATE USER IF NOT EXISTS alice")
	mustExec(root, "CREATE ROLE readers")
	_, err = root.Exec(ctx, "CREATE USER public")
	wantErr(t, "a reserved name", err, "42939", "reserved")
	_, err = root.Exec(ctx, "CREATE USER bob WITH PASSWORD ''")
	wantErr(t, "an empty password", err, "22023", "PASSWORD NULL")

	// The store holds a verifier, never the password.
	s := loadUsers(t, c, 1)
	if v := s.Users["alice"].Verifier; !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Contains(v, "horse") {
		t.Fatalf("alice's verifier: %q", v)
	}
	rows, err := root.Query(ctx, "SHOW USERS")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var n, o, m string
		err := r.Scan(&n, &o, &m)
		return n + "|" + o + "|" + m, err
	})
	if want := []string{"admin|NOLOGIN|{}", "alice||{}", "readers|NOLOGIN|{}", "root||{admin}"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("SHOW USERS: %v %v, want %v", got, err, want)
	}

	// alice logs in on node 2 and may do nothing yet.
	alice, err := userConn(t, c, 1, "alice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.Exec(ctx, "SELECT v FROM t WHERE k = 1")
	wantErr(t, "SELECT without the privilege", err, "42501", "GRANT SELECT ON TABLE t TO alice")
	_, err = alice.Exec(ctx, "INSERT INTO t VALUES (2, 'two')")
	wantErr(t, "INSERT", err, "42501", "GRANT INSERT ON TABLE t TO alice")
	_, err = alice.Exec(ctx, "UPDATE t SET v = 'x' WHERE k = 1")
	wantErr(t, "UPDATE", err, "42501", "GRANT UPDATE ON TABLE t TO alice")
	_, err = alice.Exec(ctx, "DELETE FROM t WHERE k = 1")
	wantErr(t, "DELETE", err, "42501", "GRANT DELETE ON TABLE t TO alice")
	_, err = alice.Exec(ctx, "SELECT count(*) FROM (SELECT 1) AS x WHERE EXISTS (SELECT 1 FROM t)")
	wantErr(t, "a subquery reading t", err, "42501", "GRANT SELECT ON TABLE t TO alice")
	_, err = alice.Exec(ctx, "CREATE TABLE mine (k INT PRIMARY KEY)")
	wantErr(t, "CREATE TABLE", err, "42501", "GRANT CREATE ON DATABASE defaultdb TO alice")
	_, err = alice.Exec(ctx, "DROP TABLE t")
	wantErr(t, "DROP TABLE", err, "42501", "GRANT CREATE ON DATABASE defaultdb TO alice")
	for _, q := range []string{"SET CLUSTER SETTING cluster.auto_upgrade.enabled = false", "SHOW CLUSTER SETTING version",
		"SHOW JOBS", "SELECT * FROM crdb_internal.gossip_nodes", "SELECT value FROM system.local", "CREATE USER bob",
		"GRANT SELECT ON t TO alice", "ALTER USER root WITH PASSWORD 'x'", "DROP USER readers",
		"CREATE DATABASE mine", "DROP DATABASE IF EXISTS postgres"} {
		_, err = alice.Exec(ctx, q)
		wantErr(t, q, err, "42501", "GRANT admin TO alice")
	}
	// What every user may do: the catalogs (with the real users), its own
	// password, SHOW USERS and SHOW GRANTS.
	var names string
	if err := alice.QueryRow(ctx, "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_catalog.pg_roles").Scan(&names); err != nil || names != "admin,alice,readers,root" {
		t.Fatalf("pg_roles: %q %v", names, err)
	}
	if err := alice.QueryRow(ctx, "SELECT string_agg(usename, ',' ORDER BY usename) FROM pg_catalog.pg_user").Scan(&names); err != nil || names != "alice,root" {
		t.Fatalf("pg_user: %q %v", names, err)
	}
	mustExec(alice, "ALTER USER alice WITH PASSWORD 'battery staple'")
	mustExec(alice, "SHOW USERS")

	// A grant through a role; node 2 sees it within its cache's lifetime.
	mustExec(root, "GRANT SELECT ON TABLE t TO readers")
	mustExec(root, "GRANT readers TO alice")
	_, err = root.Exec(ctx, "GRANT alice TO readers")
	wantErr(t, "a membership cycle", err, "0LP01", "member of itself")
	_, err = root.Exec(ctx, "GRANT CREATE ON TABLE t TO alice")
	wantErr(t, "CREATE on a table", err, "0LP01", "ON DATABASE d")
	_, err = root.Exec(ctx, "GRANT SELECT ON t TO nobody")
	wantErr(t, "an unknown grantee", err, "42704", "CREATE USER nobody")
	testcluster.WaitFor(t, 10*time.Second, func() error {
		var v string
		return alice.QueryRow(ctx, "SELECT v FROM t WHERE k = 1").Scan(&v)
	})
	var grants string
	if err := root.QueryRow(ctx, "SELECT string_agg(grantee || ':' || privilege_type, ',') FROM [SHOW GRANTS ON TABLE t]").Scan(&grants); err != nil {
		// SHOW as a FROM source is not supported: read the rows.
		rows, err := root.Query(ctx, "SHOW GRANTS ON TABLE t")
		if err != nil {
			t.Fatal(err)
		}
		g, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			v, err := r.Values()
			return fmt.Sprintf("%v", v), err
		})
		if err != nil || len(g) != 1 || g[0] != "[defaultdb public t table readers SELECT]" {
			t.Fatalf("SHOW GRANTS ON TABLE t: %v %v", g, err)
		}
	}

	// REVOKE applies to the statement alice's connection already
	// prepared (pgx caches it).
	mustExec(root, "REVOKE SELECT ON t FROM readers")
	testcluster.WaitFor(t, 10*time.Second, func() error {
		var v string
		err := alice.QueryRow(ctx, "SELECT v FROM t WHERE k = 1").Scan(&v)
		if sqlState(err) != "42501" {
			return fmt.Errorf("after REVOKE: %v", err)
		}
		return nil
	})

	// CREATE ON DATABASE: DDL, and the creator may use what it created.
	mustExec(root, "GRANT CREATE ON DATABASE defaultdb TO alice")
	testcluster.WaitFor(t, 10*time.Second, func() error {
		_, err := alice.Exec(ctx, "CREATE TABLE mine (k INT PRIMARY KEY)")
		return err
	})
	mustExec(alice, "INSERT INTO mine VALUES (1)")
	mustExec(alice, "SELECT * FROM mine")
	mustExec(alice, "DROP TABLE mine")
	if s := loadUsers(t, c, 0); len(s.Grants) != 1 {
		t.Fatalf("DROP TABLE left grants: %v", s.Grants)
	}

	// CREATEDB: CREATE DATABASE (as in CockroachDB); DROP DATABASE stays
	// an admin's (kvnode's databases have no owner).
	mustExec(root, "ALTER USER alice CREATEDB")
	testcluster.WaitFor(t, 10*time.Second, func() error {
		_, err := alice.Exec(ctx, "CREATE DATABASE alices")
		return err
	})
	_, err = alice.Exec(ctx, "DROP DATABASE alices")
	wantErr(t, "DROP DATABASE with CREATEDB", err, "42501", "GRANT admin TO alice")
	var createdb bool
	if err := root.QueryRow(ctx, "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'alice'").Scan(&createdb); err != nil || !createdb {
		t.Fatalf("pg_roles.rolcreatedb of alice: %v %v", createdb, err)
	}
	mustExec(root, "DROP DATABASE alices")
	mustExec(root, "ALTER USER alice NOCREATEDB")

	// An admin.
	mustExec(root, "GRANT admin TO alice")
	testcluster.WaitFor(t, 10*time.Second, func() error {
		_, err := alice.Exec(ctx, "SHOW JOBS")
		return err
	})
	_, err = alice.Exec(ctx, "DROP USER alice")
	wantErr(t, "dropping oneself", err, "55006", "another admin")
	for _, n := range []string{"root", "admin"} {
		_, err = root.Exec(ctx, "DROP USER "+n)
		wantErr(t, "DROP USER "+n, err, "22023", "REVOKE admin")
	}
	_, err = root.Exec(ctx, "REVOKE admin FROM root")
	wantErr(t, "REVOKE admin FROM root", err, "0LP01", "other users")
	_, err = root.Exec(ctx, "DROP USER nobody")
	wantErr(t, "DROP USER nobody", err, "42704", "SHOW USERS")
	mustExec(root, "DROP USER IF EXISTS nobody")
	mustExec(root, "DROP USER alice")
	if s := loadUsers(t, c, 0); len(s.Grants) != 0 || len(s.MemberOf["alice"]) != 0 {
		t.Fatalf("DROP USER left grants or memberships: %v %v", s.Grants, s.MemberOf)
	}
	testcluster.WaitFor(t, 10*time.Second, func() error {
		_, err := userConn(t, c, 1, "alice")
		if sqlState(err) != "28000" || !strings.Contains(err.Error(), `role "alice" does not exist`) {
			return fmt.Errorf("alice after DROP USER: %v", err)
		}
		return nil
	})
	if _, err := userConn(t, c, 0, "readers"); sqlState(err) != "28000" || !strings.Contains(err.Error(), "not permitted to log in") {
		t.Fatalf("a NOLOGIN role logging in: %v", err)
	}
}
