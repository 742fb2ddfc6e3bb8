package sql

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/testutil/realpg"
)

// sumAvgSetup is the schema and rows both servers hold: every type sum and
// avg take, NULLs, negatives, scales, and INT8 values whose sum overflows
// INT8.
var sumAvgSetup = []string{
	`CREATE TABLE agg (k INT8 PRIMARY KEY, g INT8, a INT2, b INT4, c INT8, d NUMERIC, e REAL, f DOUBLE PRECISION,
		i INTERVAL, n NUMERIC(10,3), s TEXT)`,
	`INSERT INTO agg VALUES
		(1, 1, 1, 1, 1, 1.5, 1.5, 1.5, '1 day', 1.125, 'a'),
		(2, 1, 2, 2, 2, 2.25, 2.5, 2.5, '2 hours', 2.5, 'bb'),
		(3, 2, -7, -70000, -700000000000, -0.001, 0.1, 0.1, '-3 days 4 minutes', -3.333, 'ccc'),
		(4, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(5, 3, 32767, 2147483647, 9223372036854775807, 12345678901234567890.123456789, 3.4e38, 1e308, '1 month', 9999999.999, 'dddd'),
		(6, 3, 32767, 2147483647, 9223372036854775807, 1e-20, 1e38, 1e-300, '1 second', 0.001, ''),
		(7, 4, 3, 3, 3, 10, 0.3, 0.3, '00:00:01.5', 0, 'e'),
		(8, 4, 3, 3, 3, 20, 0.7, 0.7, '00:00:00.5', 0, 'ff')`,
	`CREATE TABLE huge (k INT8 PRIMARY KEY, f DOUBLE PRECISION, e REAL)`,
	`INSERT INTO huge VALUES (1, 1e308, 3e38), (2, 1e308, 3e38)`,
}

// sumAvgQueries are compared between kvnode (at 2.1) and PostgreSQL: the
// result types and every value, or the SQLSTATE of the error.
var sumAvgQueries = []string{
	"SELECT sum(a), sum(b), sum(c), sum(d), sum(e), sum(f), sum(i), sum(n) FROM agg",
	"SELECT avg(a), avg(b), avg(c), avg(d), avg(e), avg(f), avg(i), avg(n) FROM agg",
	"SELECT sum(a), sum(b), sum(c), sum(d), sum(e), sum(f), sum(i), sum(n) FROM agg WHERE k < 5",
	"SELECT avg(a), avg(b), avg(c), avg(d), avg(e), avg(f), avg(i), avg(n) FROM agg WHERE k < 5",
	"SELECT g, sum(a), sum(b), sum(c), avg(a), avg(b), avg(c), avg(d), sum(e), avg(e), avg(n) FROM agg GROUP BY g ORDER BY g",
	"SELECT g, sum(c), avg(c) FROM agg GROUP BY g HAVING sum(c) > 2 ORDER BY g",
	"SELECT g, avg(b) FROM agg GROUP BY g HAVING avg(b) > 1.4 ORDER BY avg(b) DESC",
	"SELECT g, sum(k) FROM agg GROUP BY g ORDER BY sum(k) DESC, g",
	"SELECT sum(DISTINCT c), avg(DISTINCT b), sum(DISTINCT g), avg(DISTINCT g) FROM agg",
	"SELECT sum(c ORDER BY k DESC), avg(d ORDER BY k) FROM agg",
	"SELECT sum(c), avg(c), sum(b), avg(d), sum(e) FROM agg WHERE k > 100",
	"SELECT sum(1), sum(b + 1), sum(c + 1), sum(a * 2), sum(-b), sum(CASE WHEN c > 2 THEN 1 ELSE 0 END), " +
		"sum(coalesce(b, 0)), sum(length(s)), sum(2147483648) FROM agg WHERE k <> 5",
	"SELECT sum(c::INT4), sum(b::INT8), sum(1::INT8), sum(a::INT2), avg(c::INT4), sum(f::REAL), sum(d::INT8) FROM agg WHERE k IN (1, 2, 7, 8)",
	"SELECT b::INT8, a::INT4, e::REAL, f::REAL FROM agg WHERE k IN (1, 2, 7, 8) ORDER BY k",
	"SELECT x, y FROM (SELECT sum(e) AS x, avg(b) AS y FROM agg WHERE k < 5) AS sub",
	"SELECT avg(c) FROM agg WHERE k IN (3, 5)",
	"SELECT avg(d) FROM agg WHERE k IN (5, 6)",
	"SELECT avg(d) FROM agg WHERE k IN (6)",
	"SELECT avg(n), sum(n) FROM agg WHERE k IN (4, 7, 8)",
	"SELECT avg(b - b) FROM agg",
	"SELECT sum(f) FROM huge",
	"SELECT sum(e) FROM huge",
	"SELECT avg(f) FROM huge",
	"SELECT avg(e) FROM huge",
}

// TestSumAvgMatchesPostgres runs the same schema and queries on kvnode at
// cluster version 2.1 and on a real PostgreSQL, and requires the same
// RowDescription type OIDs and the same values (or the same SQLSTATE): in
// text through the simple protocol, and in binary through the extended
// protocol (Parse, Describe, Bind with binary results, Execute), as a
// driver's prepared statement reads them.
func TestSumAvgMatchesPostgres(t *testing.T) {
	bin := realpg.BinDir("15")
	if bin == "" {
		if os.Getenv("KVNODE_REQUIRE_CLIENTS") == "1" {
			t.Fatal("Debian's postgresql (the server) is missing (scripts/test.sh installs it)")
		}
		t.Skip("Debian's postgresql (the server) is missing (scripts/test.sh installs it)")
	}
	pg := realpg.Start(t, bin, realpg.Options{Locale: "C.UTF-8"})
	addr, _ := servePgwireAt(t, at21)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func(url string) *pgx.Conn {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		for _, stmt := range sumAvgSetup {
			if _, err := c.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %s: %v", url, stmt, err)
			}
		}
		return c
	}
	pgConn := connect(pg.URL("postgres", "postgres"))
	kvConn := connect("postgresql://root@" + addr + "/defaultdb?sslmode=disable")

	for _, q := range sumAvgQueries {
		want := simpleResult(ctx, pgConn.PgConn(), q)
		if got := simpleResult(ctx, kvConn.PgConn(), q); got != want {
			t.Errorf("%s (text)\nkvnode:     %s\npostgresql: %s", q, got, want)
		}
		want = binaryResult(ctx, pgConn.PgConn(), q)
		if got := binaryResult(ctx, kvConn.PgConn(), q); got != want {
			t.Errorf("%s (binary)\nkvnode:     %s\npostgresql: %s", q, got, want)
		}
	}

	// A prepared statement with a parameter, through pgx as an
	// application runs it: decoded values equal.
	const prepared = "SELECT g, sum(c), avg(c), sum(b), avg(d), sum(e), avg(i) FROM agg WHERE k >= $1 AND k <> 6 GROUP BY g ORDER BY g"
	read := func(c *pgx.Conn) string {
		rows, err := c.Query(ctx, prepared, int64(2))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%#v", vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n")
	}
	if got, want := read(kvConn), read(pgConn); got != want {
		t.Errorf("prepared through pgx:\nkvnode:\n%s\npostgresql:\n%s", got, want)
	}
}

// simpleResult runs q with the simple protocol: each column's type OID and
// every value in text, or the error's SQLSTATE.
func simpleResult(ctx context.Context, c *pgconn.PgConn, q string) string {
	res, err := c.Exec(ctx, q).ReadAll()
	if err != nil {
		return "ERROR " + sqlState(err)
	}
	return describeResult(res[0].FieldDescriptions, res[0].Rows)
}

// binaryResult runs q with the extended protocol, every result in binary,
// decoded by pgx's codecs: NUMERIC's binary form may differ in trailing
// zero base-10000 digits (kvnode's is pgtype's encoding), which the
// display scale makes the same value with the same scale.
func binaryResult(ctx context.Context, c *pgconn.PgConn, q string) string {
	res := c.ExecParams(ctx, q, nil, nil, nil, []int16{pgx.BinaryFormatCode}).Read()
	if res.Err != nil {
		return "ERROR " + sqlState(res.Err)
	}
	m := pgtype.NewMap()
	var b strings.Builder
	for _, f := range res.FieldDescriptions {
		fmt.Fprintf(&b, "%s:%d ", f.Name, f.DataTypeOID)
	}
	for _, r := range res.Rows {
		b.WriteString("|")
		for i, v := range r {
			oid := res.FieldDescriptions[i].DataTypeOID
			typ, ok := m.TypeForOID(oid)
			if !ok {
				fmt.Fprintf(&b, " <OID %d>", oid)
				continue
			}
			d, err := typ.Codec.DecodeValue(m, oid, pgx.BinaryFormatCode, v)
			switch n, isNum := d.(pgtype.Numeric); {
			case err != nil:
				fmt.Fprintf(&b, " <%v>", err)
			case isNum && n.Valid && !n.NaN && n.Int.Sign() == 0:
				b.WriteString(" 0") // pgx decodes PostgreSQL's zero without its scale
			case isNum && n.Valid && !n.NaN:
				fmt.Fprintf(&b, " %se%d", n.Int, n.Exp)
			default:
				fmt.Fprintf(&b, " %#v", d)
			}
		}
	}
	return b.String()
}

func describeResult(fields []pgconn.FieldDescription, rows [][][]byte) string {
	var b bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&b, "%s:%d ", f.Name, f.DataTypeOID)
	}
	for _, r := range rows {
		b.WriteString("|")
		for _, v := range r {
			if v == nil {
				b.WriteString(" NULL")
			} else {
				fmt.Fprintf(&b, " %q", v)
			}
		}
	}
	return b.String()
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return err.Error()
}

// movableVersion is a cluster version handle a test moves, as a
// finalization or a downgrade moves a node's.
type movableVersion struct{ v atomic.Value }

func (m *movableVersion) ActiveVersion() clusterversion.Version {
	return m.v.Load().(clusterversion.Version)
}

func (m *movableVersion) set(k clusterversion.Key) { m.v.Store(k.Version()) }

// TestSumAvgTypesGated: until the cluster is finalized to 2.1, sum and avg
// answer with release 2.0's types (sum(int) INT8, avg(int) FLOAT8), as a
// 2.0 node of the same cluster does, so every gateway answers a query the
// same way during the upgrade; from 2.1 on, PostgreSQL's; after a
// downgrade to 2.0, 2.0's again. A statement prepared before the
// finalization keeps the types its Describe announced.
func TestSumAvgTypesGated(t *testing.T) {
	v := &movableVersion{}
	v.set(clusterversion.V2_0)
	addr, _ := servePgwireAt(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, "postgresql://root@"+addr+"/defaultdb?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	for _, stmt := range []string{
		"CREATE TABLE t (k INT PRIMARY KEY, g INT, f FLOAT)",
		"INSERT INTO t VALUES (1, 1, 1.5), (2, 1, 2.5), (3, 2, NULL)",
	} {
		if _, err := conn.Exec(ctx, stmt).ReadAll(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	const q = "SELECT g, sum(k), avg(k), sum(f), avg(f) FROM t GROUP BY g ORDER BY g"
	const at20 = `g:20 sum:20 avg:701 sum:701 avg:701 | "1" "3" "1.5" "4" "2"| "2" "3" "3" NULL NULL`
	const at21 = `g:20 sum:1700 avg:1700 sum:701 avg:701 | "1" "3" "1.5000000000000000" "4" "2"| "2" "3" "3.0000000000000000" NULL NULL`
	if got := simpleResult(ctx, conn, q); got != at20 {
		t.Fatalf("at 2.0:\n got %s\nwant %s", got, at20)
	}
	sd, err := conn.Prepare(ctx, "before", q, nil)
	if err != nil {
		t.Fatal(err)
	}

	v.set(clusterversion.V2_1)
	if got := simpleResult(ctx, conn, q); got != at21 {
		t.Fatalf("at 2.1:\n got %s\nwant %s", got, at21)
	}
	// The statement prepared at 2.0 described sum(k) as INT8 and avg(k)
	// as FLOAT8: its rows, in binary, are those types still.
	res := conn.ExecPrepared(ctx, "before", nil, nil, []int16{pgx.BinaryFormatCode}).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("prepared before the finalization: %d rows", len(res.Rows))
	}
	for i, f := range sd.Fields {
		if f.DataTypeOID != res.FieldDescriptions[i].DataTypeOID {
			t.Errorf("column %s: described as OID %d, executed as %d", f.Name, f.DataTypeOID, res.FieldDescriptions[i].DataTypeOID)
		}
	}
	m := pgtype.NewMap()
	var sum int64
	var avg float64
	if err := m.Scan(types.OIDInt8, pgx.BinaryFormatCode, res.Rows[0][1], &sum); err != nil || sum != 3 {
		t.Errorf("sum(k) prepared at 2.0: %d, %v", sum, err)
	}
	if err := m.Scan(types.OIDFloat8, pgx.BinaryFormatCode, res.Rows[0][2], &avg); err != nil || avg != 1.5 {
		t.Errorf("avg(k) prepared at 2.0: %v, %v", avg, err)
	}

	v.set(clusterversion.V2_0) // a downgrade
	if got := simpleResult(ctx, conn, q); got != at20 {
		t.Fatalf("after a downgrade to 2.0:\n got %s\nwant %s", got, at20)
	}
}

// TestSumAccumulators checks what the comparison with PostgreSQL does not
// reach: the 128-bit sum past both ends of INT8 (the expected values are
// PostgreSQL 15's), and sum(int4)'s overflow of its INT8 result (2^32 rows
// in PostgreSQL).
func TestSumAccumulators(t *testing.T) {
	add := func(acc accKind, kind string, vals ...int64) (types.Datum, error) {
		s := &aggState{agg: &aggregate{kind: kind, acc: acc, pg: true}}
		for _, v := range vals {
			s.count++
			if err := s.addSumAvg(v); err != nil {
				return nil, err
			}
		}
		return s.result()
	}
	const maxI, minI = math.MaxInt64, math.MinInt64
	for _, c := range []struct {
		name string
		acc  accKind
		kind string
		vals []int64
		want string
	}{
		{"int64 range", accInt128, "sum", []int64{1, -5, 7}, "3"},
		{"above int64", accInt128, "sum", []int64{maxI, maxI, 2}, "18446744073709551616"},
		{"below int64", accInt128, "sum", []int64{maxI, maxI, minI, minI, minI}, "-9223372036854775810"},
		{"back into int64", accInt128, "sum", []int64{maxI, 1, -1, minI}, "-1"},
		{"far below", accInt128, "sum", []int64{minI, minI, minI, minI}, "-36893488147419103232"},
		{"avg above int64", accInt128, "avg", []int64{maxI, maxI, maxI}, "9223372036854775807"},
		{"avg below", accInt128, "avg", []int64{minI, minI, -1}, "-6148914691236517206"},
		{"int4 sum", accInt, "sum", []int64{math.MaxInt32, math.MaxInt32}, "4294967294"},
	} {
		d, err := add(c.acc, c.kind, c.vals...)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := string(types.FormatText(d)); got != c.want {
			t.Errorf("%s: %s(%v) = %s, want %s", c.name, c.kind, c.vals, got, c.want)
		}
	}
	_, err := add(accInt, "sum", maxI-1, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "bigint out of range") {
		t.Errorf("sum(int4) past INT8: %v", err)
	}
}

// BenchmarkSumAccumulate is the cost of one row in each integer and float
// accumulator (no allocation in any).
func BenchmarkSumAccumulate(b *testing.B) {
	for _, c := range []struct {
		name string
		acc  accKind
		kind string
		d    types.Datum
	}{
		{"int-2.0-sum", accInt, "sum", int64(7)},
		{"int-2.0-avg", accIntAsFloat, "avg", int64(7)},
		{"int128-2.1-sum-avg", accInt128, "sum", int64(7)},
		{"float8-2.1-avg", accFloatAccum, "avg", 7.5},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			s := &aggState{agg: &aggregate{kind: c.kind, acc: c.acc, pg: true}}
			for i := 0; i < b.N; i++ {
				s.count++
				if err := s.addSumAvg(c.d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
