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
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/sql/pgwire"
)

// servePgwire serves node 1 of a one-node test cluster on a loopback port
// and returns its address.
func servePgwire(t *testing.T) (addr string, tc *testCluster) {
	t.Helper()
	return servePgwireAt(t, nil)
}

// servePgwireAt is servePgwire on a cluster at the given version (nil: no
// version, every gate inactive).
func servePgwireAt(t *testing.T, versions clusterversion.Handle) (addr string, tc *testCluster) {
	t.Helper()
	tc = newTestClusterAt(t, 1, versions)
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
		conn, err := pgx.Connect(ctx, "postgresql://root@"+addr+"/"+db+"?sslmode=disable&timezone=America/New_York")
		if err != nil {
			t.Fatal(err)
		}
		// A TimeZone from the startup packet is reported as the client set it.
		if v := conn.PgConn().ParameterStatus("TimeZone"); v != "America/New_York" {
			t.Errorf("TimeZone at startup: %q", v)
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
		// Reported as PostgreSQL reports them (psql's prompt ends in # for
		// a superuser).
		if su, sa := conn.PgConn().ParameterStatus("is_superuser"), conn.PgConn().ParameterStatus("session_authorization"); su != "on" || sa != "root" {
			t.Errorf("is_superuser %q, session_authorization %q", su, sa)
		}
		// A SET of a reported parameter is reported, as PostgreSQL does.
		if _, err := conn.Exec(ctx, "SET application_name = 'kvtest'"); err != nil {
			t.Fatal(err)
		}
		if v := conn.PgConn().ParameterStatus("application_name"); v != "kvtest" {
			t.Errorf("application_name after SET: %q", v)
		}
		if _, err := conn.Exec(ctx, "SET TIME ZONE 'Europe/Paris'"); err != nil {
			t.Fatal(err)
		}
		if v := conn.PgConn().ParameterStatus("TimeZone"); v != "Europe/Paris" {
			t.Errorf("TimeZone after SET: %q", v)
		}
		// pgx's LoadType reads pg_type through regtype.
		for _, name := range []string{"_int8", "text[]"} {
			typ, err := conn.LoadType(ctx, name)
			if err != nil {
				t.Fatalf("LoadType(%s): %v", name, err)
			}
			if want := map[string]uint32{"_int8": 1016, "text[]": 1009}[name]; typ.OID != want {
				t.Errorf("LoadType(%s): OID %d, want %d", name, typ.OID, want)
			}
		}
		// An array parameter in pgx's binary format, for = ANY($1).
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 10) AS g WHERE g = ANY ($1)", []int64{2, 3, 42}).Scan(&n); err != nil || n != 2 {
			t.Errorf("= ANY ($1): %d, %v", n, err)
		}
		// Arrays reach pgx in its binary format.
		var strs []string
		var ints []int64
		if err := conn.QueryRow(ctx, "SELECT ARRAY['a', 'b c'], ARRAY(SELECT i FROM generate_series(1, 3) AS i)").Scan(&strs, &ints); err != nil {
			t.Fatal(err)
		}
		if len(strs) != 2 || strs[1] != "b c" || len(ints) != 3 || ints[2] != 3 {
			t.Errorf("arrays: %q %v", strs, ints)
		}
		_ = conn.Close(ctx)
	}
}

// runPsql runs the real psql binary against addr and returns its output.
func runPsql(t *testing.T, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runPsqlInput(t, addr, "", args...)
}

// runPsqlInput is runPsql with input on psql's standard input.
func runPsqlInput(t *testing.T, addr, input string, args ...string) (stdout, stderr string, code int) {
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
	cmd.Stdin = strings.NewReader(input)
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

// TestPsqlDescribe runs psql 15's describe commands, unmodified, against a
// node: each sends the catalog queries psql sends to a PostgreSQL 13 server
// (joins, subqueries, regular expressions, OPERATOR(pg_catalog.~), casts to
// regclass and regtype, ...). The expected output is PostgreSQL's for the
// same schema, but for the owner (root) and kvnode's own schemas.
func TestPsqlDescribe(t *testing.T) {
	addr, tc := servePgwire(t)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE kv (k INT8 PRIMARY KEY, v TEXT)")
	mustExec(t, s, "CREATE TABLE t2 (a INT, b TEXT NOT NULL DEFAULT 'x', c FLOAT8)")
	for _, tc := range []struct {
		cmd, want string
	}{
		{`\dt`, `       List of relations
 Schema | Name | Type  | Owner 
--------+------+-------+-------
 public | kv   | table | root
 public | t2   | table | root
(2 rows)

`},
		{`\d kv`, `                Table "public.kv"
 Column |  Type  | Collation | Nullable | Default 
--------+--------+-----------+----------+---------
 k      | bigint |           | not null | 
 v      | text   |           |          | 
Indexes:
    "kv_pkey" PRIMARY KEY, btree (k)

`},
		{`\d t2`, `                     Table "public.t2"
 Column |       Type       | Collation | Nullable | Default 
--------+------------------+-----------+----------+---------
 a      | bigint           |           |          | 
 b      | text             |           | not null | 'x'
 c      | double precision |           |          | 

`},
		{`\di`, `            List of relations
 Schema |  Name   | Type  | Owner | Table 
--------+---------+-------+-------+-------
 public | kv_pkey | index | root  | kv
(1 row)

`},
		{`\d`, `       List of relations
 Schema | Name | Type  | Owner 
--------+------+-------+-------
 public | kv   | table | root
 public | t2   | table | root
(2 rows)

`},
		{`\dn`, `    List of schemas
     Name      | Owner 
---------------+-------
 crdb_internal | root
 public        | root
 system        | root
(3 rows)

`},
		{`\du`, `                                   List of roles
 Role name |                         Attributes                         | Member of 
-----------+------------------------------------------------------------+-----------
 root      | Superuser, Create role, Create DB, Replication, Bypass RLS | {}

`},
		{`\d+ kv`, `                                    Table "public.kv"
 Column |  Type  | Collation | Nullable | Default | Storage  | Stats target | Description 
--------+--------+-----------+----------+---------+----------+--------------+-------------
 k      | bigint |           | not null |         | plain    |              | 
 v      | text   |           |          |         | extended |              | 
Indexes:
    "kv_pkey" PRIMARY KEY, btree (k)
Access method: heap

`},
		{`\dt+`, `                                  List of relations
 Schema | Name | Type  | Owner | Persistence | Access method |  Size   | Description 
--------+------+-------+-------+-------------+---------------+---------+-------------
 public | kv   | table | root  | permanent   | heap          | 0 bytes | 
 public | t2   | table | root  | permanent   | heap          | 0 bytes | 
(2 rows)

`},
		{`\df`, `                       List of functions
 Schema | Name | Result data type | Argument data types | Type 
--------+------+------------------+---------------------+------
(0 rows)

`},
		{`\l`, `                                          List of databases
   Name    | Owner | Encoding | Collate |  Ctype  | ICU Locale | Locale Provider | Access privileges 
-----------+-------+----------+---------+---------+------------+-----------------+-------------------
 defaultdb | root  | UTF8     | C.UTF-8 | C.UTF-8 |            | libc            | 
 postgres  | root  | UTF8     | C.UTF-8 | C.UTF-8 |            | libc            | 
(2 rows)

`},
	} {
		out, errOut, code := runPsql(t, addr, "-c", tc.cmd)
		if out != tc.want || code != 0 {
			t.Errorf("psql -c %s: exit %d, stderr %q\n got:\n%s\nwant:\n%s", tc.cmd, code, errOut, out, tc.want)
		}
	}
	// A relation that does not exist, as psql reports it.
	out, errOut, code := runPsql(t, addr, "-c", `\d nosuch`)
	if code != 1 || out != "" || errOut != "Did not find any relation named \"nosuch\".\n" {
		t.Errorf(`\d nosuch: exit %d, stdout %q, stderr %q`, code, out, errOut)
	}
}

// TestPsqlDatabases drives databases from the real psql: CREATE DATABASE,
// \l, \c to it, a table there that defaultdb does not see, and psql -d to
// a database that does not exist (3D000 with the fix).
func TestPsqlDatabases(t *testing.T) {
	addr, _ := servePgwireAt(t, at21)
	script := `CREATE DATABASE app;
\l
\c app
CREATE TABLE only_here (k INT PRIMARY KEY);
SELECT current_database();
\dt
\c defaultdb
\dt
`
	cmdOut, cmdErr, cmdCode := runPsqlInput(t, addr, script, "-q", "-f", "-")
	want := `                                          List of databases
   Name    | Owner | Encoding | Collate |  Ctype  | ICU Locale | Locale Provider | Access privileges 
-----------+-------+----------+---------+---------+------------+-----------------+-------------------
 app       | root  | UTF8     | C.UTF-8 | C.UTF-8 |            | libc            | 
 defaultdb | root  | UTF8     | C.UTF-8 | C.UTF-8 |            | libc            | 
 postgres  | root  | UTF8     | C.UTF-8 | C.UTF-8 |            | libc            | 
(3 rows)

 current_database 
------------------
 app
(1 row)

         List of relations
 Schema |   Name    | Type  | Owner 
--------+-----------+-------+-------
 public | only_here | table | root
(1 row)

      List of relations
 Schema | Name | Type | Owner 
--------+------+------+-------
(0 rows)

`
	if cmdOut != want || cmdCode != 0 {
		t.Errorf("psql script: exit %d, stderr %q\n got:\n%s\nwant:\n%s", cmdCode, cmdErr, cmdOut, want)
	}
	_, errOut, code := runPsql(t, addr, "-d", "nosuch", "-c", "SELECT 1")
	if code != 2 || !strings.Contains(errOut, `database "nosuch" does not exist`) || !strings.Contains(errOut, "SHOW DATABASES") {
		t.Errorf("psql -d nosuch: exit %d, stderr %q", code, errOut)
	}
}

// TestSQLPrepareSharesNamespace checks that SQL's PREPARE, EXECUTE and
// DEALLOCATE share the connection's namespace with the protocol's Parse,
// Bind and Close, as in PostgreSQL: EXECUTE runs what the driver prepared,
// a Bind names what PREPARE made, and DEALLOCATE ALL drops both.
func TestSQLPrepareSharesNamespace(t *testing.T) {
	addr, _ := servePgwire(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgresql://root@"+addr+"/defaultdb?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	pc := conn.PgConn()
	// The protocol's Parse, then SQL's EXECUTE.
	if _, err := pc.Prepare(ctx, "byproto", "SELECT $1::INT8 + 1", nil); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "EXECUTE byproto (41)", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 42 {
		t.Fatalf("EXECUTE of a protocol-prepared statement: %d %v", n, err)
	}
	// SQL's PREPARE, then the protocol's Bind and Execute.
	if _, err := conn.Exec(ctx, "PREPARE bysql (INT8) AS SELECT $1 * 2", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	res := pc.ExecPrepared(ctx, "bysql", [][]byte{[]byte("21")}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "42" {
		t.Fatalf("Bind of a SQL-prepared statement: %v %q", res.Err, res.Rows)
	}
	// One name, taken once, whichever way.
	if _, err := pc.Prepare(ctx, "bysql", "SELECT 1", nil); err == nil || !strings.Contains(err.Error(), "42P05") {
		t.Fatalf("Parse of a name PREPARE took: %v", err)
	}
	if _, err := conn.Exec(ctx, "PREPARE byproto AS SELECT 1", pgx.QueryExecModeSimpleProtocol); err == nil || !strings.Contains(err.Error(), "42P05") {
		t.Fatalf("PREPARE of a name Parse took: %v", err)
	}
	var names string
	if err := conn.QueryRow(ctx, "SELECT string_agg(name || ':' || CASE WHEN from_sql THEN 'sql' ELSE 'protocol' END, ',' ORDER BY name) FROM pg_prepared_statements",
		pgx.QueryExecModeSimpleProtocol).Scan(&names); err != nil || names != "byproto:protocol,bysql:sql" {
		t.Fatalf("pg_prepared_statements: %q %v", names, err)
	}
	if _, err := conn.Exec(ctx, "DEALLOCATE ALL", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if res := pc.ExecPrepared(ctx, "byproto", nil, nil, nil).Read(); res.Err == nil || !strings.Contains(res.Err.Error(), "26000") {
		t.Fatalf("a protocol-prepared statement after DEALLOCATE ALL: %v", res.Err)
	}
}
