package server_test

import (
	"context"
	"fmt"
	"math/big"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestTypesPgx round-trips every type of release 2.1 through pgx against a
// real node: parameters and results in binary (pgx's default in the
// extended protocol) and in text (the simple protocol), the values read
// back equal to what was written, and the errors a bad value gets.
func TestTypesPgx(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE typed (
		id INT4 PRIMARY KEY, s SMALLINT, r REAL, amt DECIMAL(12,3), n NUMERIC, vc VARCHAR(8), ch CHAR(4),
		d DATE, ts TIMESTAMP, tz TIMESTAMPTZ DEFAULT now(), iv INTERVAL, u UUID DEFAULT gen_random_uuid(), j JSONB)`); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	u := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	amt := pgtype.Numeric{Int: big.NewInt(-1234567), Exp: -3, Valid: true}
	iv := pgtype.Interval{Months: 14, Days: -3, Microseconds: 3723000001, Valid: true}
	j := map[string]any{"k": []any{1.0, "two"}, "n": nil}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		id := int32(mode)
		var uArg, jArg any = u, j
		if mode == pgx.QueryExecModeSimpleProtocol {
			// pgx cannot render a [16]byte or a map as text without a type
			// OID, which the simple protocol does not have.
			uArg, jArg = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `{"k": [1, "two"], "n": null}`
		}
		if _, err := conn.Exec(ctx, "INSERT INTO typed (id, s, r, amt, n, vc, ch, d, ts, tz, iv, u, j) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
			mode, id, int16(-7), float32(1.25), amt, "1e-40", "héllo", "ab", ts, ts, ts, iv, uArg, jArg); err != nil {
			t.Fatalf("mode %v: insert: %v", mode, err)
		}
		var (
			gotS    int16
			gotR    float32
			gotAmt  pgtype.Numeric
			gotN    string
			gotVC   string
			gotCh   string
			gotD    time.Time
			gotTS   time.Time
			gotTZ   time.Time
			gotIV   pgtype.Interval
			gotU    [16]byte
			gotJ    map[string]any
			gotJKey string
		)
		err := conn.QueryRow(ctx, "SELECT s, r, amt, n::STRING, vc, ch, d, ts, tz, iv, u, j, j ->> 'k' FROM typed WHERE id = $1", mode, id).
			Scan(&gotS, &gotR, &gotAmt, &gotN, &gotVC, &gotCh, &gotD, &gotTS, &gotTZ, &gotIV, &gotU, &gotJ, &gotJKey)
		if err != nil {
			t.Fatalf("mode %v: select: %v", mode, err)
		}
		if gotS != -7 || gotR != 1.25 || gotAmt.Int.Cmp(amt.Int) != 0 || gotAmt.Exp != amt.Exp || gotN != "1E-40" && gotN != "0.0000000000000000000000000000000000000001" ||
			gotVC != "héllo" || gotCh != "ab  " || !gotD.Equal(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)) ||
			!gotTS.Equal(ts) || !gotTZ.Equal(ts) || gotIV != iv || gotU != u || !reflect.DeepEqual(gotJ, j) || gotJKey != `[1, "two"]` {
			t.Fatalf("mode %v: got %v %v %v %v %q %q %v %v %v %v %x %v %q", mode, gotS, gotR, gotAmt, gotN, gotVC, gotCh,
				gotD, gotTS, gotTZ, gotIV, gotU, gotJ, gotJKey)
		}
	}
	// Result columns name the declared types (JDBC's metadata, Hibernate's
	// schema validation), with their widths in binary.
	rows, err := conn.Query(ctx, "SELECT id, s, r, amt, vc, ch, s + 1 FROM typed WHERE id = $1", int32(pgx.QueryExecModeCacheStatement))
	if err != nil {
		t.Fatal(err)
	}
	var oids []uint32
	var mods []int32
	for _, f := range rows.FieldDescriptions() {
		oids = append(oids, f.DataTypeOID)
		mods = append(mods, f.TypeModifier)
	}
	var id int32
	var s16, s64 int64
	var r32 float32
	var amtS, vc, ch string
	if !rows.Next() {
		t.Fatal("no row")
	}
	if err := rows.Scan(&id, &s16, &r32, &amtS, &vc, &ch, &s64); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if !reflect.DeepEqual(oids, []uint32{23, 21, 700, 1700, 1043, 1042, 20}) || !reflect.DeepEqual(mods, []int32{-1, -1, -1, 12<<16 | 3 + 4, 12, 8, -1}) ||
		s16 != -7 || r32 != 1.25 || s64 != -6 || ch != "ab  " {
		t.Fatalf("described %v %v; got %v %v %v %q %q %q %v", oids, mods, id, s16, r32, amtS, vc, ch, s64)
	}

	// Array columns, binary and text.
	if _, err := conn.Exec(ctx, "CREATE TABLE arrs (id INT PRIMARY KEY, tags TEXT[], nums INT8[])"); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		if _, err := conn.Exec(ctx, "INSERT INTO arrs VALUES ($1, $2, $3)", mode, i, []string{"a", "b,c"}, []int64{1, -2}); err != nil {
			t.Fatalf("mode %v: %v", mode, err)
		}
		var tags []string
		var nums []int64
		if err := conn.QueryRow(ctx, "SELECT tags, nums FROM arrs WHERE id = $1", mode, i).Scan(&tags, &nums); err != nil ||
			!reflect.DeepEqual(tags, []string{"a", "b,c"}) || !reflect.DeepEqual(nums, []int64{1, -2}) {
			t.Fatalf("mode %v: %v %v %v", mode, tags, nums, err)
		}
	}

	// Defaults, comparisons and arithmetic on parameters.
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM typed WHERE tz > $1 AND u IS NOT NULL AND amt < $2 AND d + 1 = $3",
		time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 0, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	for _, tc := range []struct {
		sql  string
		args []any
		code string
	}{
		{"INSERT INTO typed (id, s) VALUES (10, $1)", []any{40000}, "22003"},
		{"INSERT INTO typed (id, vc) VALUES (10, $1)", []any{"123456789"}, "22001"},
		{"INSERT INTO typed (id, amt) VALUES (10, $1)", []any{"1e10"}, "22003"},
		{"INSERT INTO typed (id, d) VALUES (10, $1)", []any{"2023-02-30"}, "22P02"},
		{"INSERT INTO typed (id, u) VALUES (10, 'xyz')", nil, "22P02"},
		{"INSERT INTO typed (id, j) VALUES (10, '{')", nil, "22P02"},
	} {
		_, err := conn.Exec(ctx, tc.sql, tc.args...)
		if err == nil || !strings.Contains(err.Error(), "SQLSTATE "+tc.code) {
			t.Errorf("%s %v: got %v, want SQLSTATE %s", tc.sql, tc.args, err, tc.code)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM typed").Scan(&n); err != nil || n != 2 {
		t.Fatalf("a refused value changed the table: %d rows, %v", n, err)
	}
}

// TestTypesSQLAlchemy: SQLAlchemy's create_all of a model with a serial
// id, Numeric, DateTime(timezone=True), Date, Boolean, String(n), UUID and
// JSONB, then ORM inserts, queries and updates (testdata/clients).
func TestTypesSQLAlchemy(t *testing.T) {
	requireClient(t, exists(debianPython), "Debian's python3 with python3-sqlalchemy")
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "clients", "sqlalchemy_types.py"), c.URL(0)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("sqlalchemy_types.py: %v\n%s", err, out)
	}
}

// TestRelationsSQLAlchemy: SQLAlchemy's create_all of models with a unique
// column, indexes and foreign keys, then the ORM's inserts, joins,
// cascades and IntegrityErrors, and the inspector's indexes and foreign
// keys (testdata/clients/sqlalchemy_relations.py).
func TestRelationsSQLAlchemy(t *testing.T) {
	requireClient(t, exists(debianPython), "Debian's python3 with python3-sqlalchemy")
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "clients", "sqlalchemy_relations.py"), c.URL(0)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("sqlalchemy_relations.py: %v\n%s", err, out)
	}
}

// TestTypesGatedOn21: on a cluster at 2.0 a column of a 2.1 type is refused
// with 0A000 naming 2.1 (a 2.0 binary could not read its rows), and type
// modifiers keep 2.0's meaning (INTEGER is INT8, VARCHAR(3) is STRING);
// once the node runs 2.1 and the cluster finalizes, both work, and the
// table made at 2.0 keeps its types.
func TestTypesGatedOn21(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE d (k INT PRIMARY KEY, amt DECIMAL(10,2))")
	if err == nil || !strings.Contains(err.Error(), "SQLSTATE 0A000") || !strings.Contains(err.Error(), "needs cluster version 2.1") {
		t.Fatalf("DECIMAL at 2.0: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE i (k INTEGER PRIMARY KEY, v VARCHAR(3))"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO i VALUES (3000000000, 'abcdef')"); err != nil {
		t.Fatalf("2.0's INTEGER is INT8 and VARCHAR(3) is STRING: %v", err)
	}
	conn.Close(ctx)

	c.StopNode(0)
	c.Nodes[0].Config.Knobs.BinaryVersion = clusterversion.Version{}
	c.StartNode(0)
	testcluster.WaitFor(t, 60*time.Second, func() error {
		v, err := queryString(t, c, 0, "SHOW CLUSTER SETTING version")
		if err == nil && v != "2.1" {
			err = fmt.Errorf("cluster version %s", v)
		}
		return err
	})
	conn, err = pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE d (k INT PRIMARY KEY, amt DECIMAL(10,2), v VARCHAR(3))"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO d VALUES (1, 1.005, 'abcd')"); err == nil || !strings.Contains(err.Error(), "SQLSTATE 22001") {
		t.Fatalf("VARCHAR(3) at 2.1: %v", err)
	}
	var name, create string
	if err := conn.QueryRow(ctx, "SHOW CREATE TABLE i").Scan(&name, &create); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(create, "k INT8") || !strings.Contains(create, "v STRING") {
		t.Fatalf("the table made at 2.0 changed types: %s", create)
	}
}

// TestDiscardAll: DISCARD ALL, as connection poolers send it, resets the
// session's variables and drops its prepared statements; inside a
// transaction block it is refused with 25001.
func TestDiscardAll(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Prepare(ctx, "s1", "SELECT $1::INT + 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET application_name = 'pooled'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DISCARD ALL"); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRow(ctx, "SHOW application_name").Scan(&name); err != nil || name != "" {
		t.Fatalf("application_name after DISCARD ALL: %q %v", name, err)
	}
	if rr := conn.PgConn().ExecPrepared(ctx, "s1", [][]byte{[]byte("1")}, nil, nil).Read(); rr.Err == nil ||
		!strings.Contains(rr.Err.Error(), "SQLSTATE 26000") {
		t.Fatalf("a prepared statement survived DISCARD ALL: %v", rr.Err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "DISCARD ALL"); err == nil || !strings.Contains(err.Error(), "SQLSTATE 25001") {
		t.Fatalf("DISCARD ALL in a transaction: %v", err)
	}
}
