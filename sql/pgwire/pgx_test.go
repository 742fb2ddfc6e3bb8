package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/testutil"
)

var allModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement,
	pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec,
	pgx.QueryExecModeSimpleProtocol,
}

func TestPgxSimpleQuery(t *testing.T) {
	ts := startServer(t, Config{})
	conn := ts.connect(t, pgx.QueryExecModeSimpleProtocol)
	ctx := testContext(t)

	rows, err := conn.Query(ctx, "SELECT generate_series(1::INT8, 3::INT8) AS n, 'x' AS s, NULL AS z")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var n int64
		var s string
		var z *string
		if err := rows.Scan(&n, &s, &z); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %v", n, s, z))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "1 x <nil>|2 x <nil>|3 x <nil>"; strings.Join(got, "|") != want {
		t.Errorf("got %q, want %q", strings.Join(got, "|"), want)
	}
	if tag := rows.CommandTag().String(); tag != "SELECT 3" {
		t.Errorf("tag %q", tag)
	}
	fds := rows.FieldDescriptions()
	if len(fds) != 3 || fds[0].Name != "n" || fds[0].DataTypeOID != types.OIDInt8 || fds[2].DataTypeOID != types.OIDText {
		t.Errorf("field descriptions %+v", fds)
	}

	// Several statements in one Query: one result each, in order.
	results, err := conn.PgConn().Exec(ctx, "SELECT 1::INT8; INSERT INTO t VALUES (1); ; SELECT 'b'").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, r := range results {
		tags = append(tags, r.CommandTag.String())
	}
	if got, want := strings.Join(tags, ","), "SELECT 1,INSERT 0 1,SELECT 1"; got != want {
		t.Errorf("tags %q, want %q", got, want)
	}
	if string(results[2].Rows[0][0]) != "b" {
		t.Errorf("third result %q", results[2].Rows)
	}

	// The first error stops the rest of the query string.
	results, err = conn.PgConn().Exec(ctx, "SELECT 1::INT8; SELECT 1/0; SELECT 2::INT8").ReadAll()
	if code := sqlState(err); code != "22012" {
		t.Fatalf("err %v, want 22012", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 {
		t.Errorf("results before the error: %+v", results)
	}

	// Empty query.
	results, err = conn.PgConn().Exec(ctx, " ; ").ReadAll()
	if err != nil || len(results) != 1 || results[0].CommandTag.String() != "" {
		t.Errorf("empty query: %+v %v", results, err)
	}

	// Placeholders need the extended protocol.
	_, err = conn.PgConn().Exec(ctx, "SELECT $1::INT8").ReadAll()
	if code := sqlState(err); code != "42P02" {
		t.Errorf("placeholder in simple query: %v", err)
	}
}

// TestPgxEveryType round-trips every kvnode type, NULLs and edge values
// through each of pgx's query modes, which between them cover text and
// binary parameters and results, named and unnamed statements, and
// client-side interpolation.
func TestPgxEveryType(t *testing.T) {
	ts := startServer(t, Config{})
	type row struct {
		I  *int64
		F  *float64
		S  *string
		B  []byte
		Bo *bool
	}
	i64 := func(v int64) *int64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	str := func(v string) *string { return &v }
	bl := func(v bool) *bool { return &v }
	cases := []row{
		{i64(42), f64(1.5), str("hello"), []byte{0, 1, 2, 255}, bl(true)},
		{i64(math.MinInt64), f64(-1e300), str(""), []byte{}, bl(false)},
		{i64(math.MaxInt64), f64(5e-324), str("héllo, 世界 'quoted' \\ back"), []byte("\\x"), bl(true)},
		{i64(0), f64(0), str("null"), []byte("NULL"), bl(false)},
		{nil, nil, nil, nil, nil},
	}
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := ts.connect(t, mode)
			ctx := testContext(t)
			for i, c := range cases {
				var got row
				err := conn.QueryRow(ctx, "SELECT $1::INT8, $2::FLOAT8, $3::TEXT, $4::BYTEA, $5::BOOL",
					c.I, c.F, c.S, c.B, c.Bo).Scan(&got.I, &got.F, &got.S, &got.B, &got.Bo)
				if err != nil {
					t.Fatalf("case %d: %v", i, err)
				}
				if fmt.Sprint(deref(got.I), deref(got.F), deref(got.S), deref(got.Bo)) !=
					fmt.Sprint(deref(c.I), deref(c.F), deref(c.S), deref(c.Bo)) ||
					!bytes.Equal(got.B, c.B) || (got.B == nil) != (c.B == nil) {
					t.Errorf("case %d: got %v %v %q %q %v, want %v %v %q %q %v", i,
						deref(got.I), deref(got.F), deref(got.S), got.B, deref(got.Bo),
						deref(c.I), deref(c.F), deref(c.S), c.B, deref(c.Bo))
				}
			}
			// Special floats: the simple protocol cannot spell them as
			// literals, so send them as text cast in SQL.
			for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
				var got float64
				arg := any(v)
				if mode == pgx.QueryExecModeSimpleProtocol {
					arg = fmt.Sprint(v)
				}
				if err := conn.QueryRow(ctx, "SELECT $1::FLOAT8", arg).Scan(&got); err != nil {
					t.Fatalf("%v: %v", v, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("got %v, want %v", got, v)
				}
			}
			// A placeholder nothing determines is text.
			var s string
			if err := conn.QueryRow(ctx, "SELECT $1", "untyped").Scan(&s); err != nil || s != "untyped" {
				t.Errorf("untyped placeholder: %q %v", s, err)
			}
			// Statements without rows.
			tag, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1)", "v")
			if err != nil || tag.String() != "INSERT 0 1" {
				t.Errorf("insert: %q %v", tag, err)
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestPgxParamFormats sends parameters in text and binary, with the client's
// own OIDs (INT4, INT2, FLOAT4, VARCHAR), and asks for mixed result formats.
func TestPgxParamFormats(t *testing.T) {
	ts := startServer(t, Config{})
	conn := ts.connect(t, pgx.QueryExecModeCacheStatement)
	ctx := testContext(t)
	pg := conn.PgConn()

	be32 := binary.BigEndian.AppendUint32(nil, uint32(0xFFFFFFFE)) // -2 as INT4
	be16 := binary.BigEndian.AppendUint16(nil, 7)
	f32 := binary.BigEndian.AppendUint32(nil, math.Float32bits(2.5))
	res := pg.ExecParams(ctx, "SELECT $1::INT8, $2::INT8, $3::FLOAT8, $4::TEXT, $5::BOOL, $6::BYTEA",
		[][]byte{be32, be16, f32, []byte("vc"), []byte("yes"), nil},
		[]uint32{types.OIDInt4, types.OIDInt2, types.OIDFloat4, types.OIDVarchar, types.OIDBool, types.OIDBytea},
		[]int16{1, 1, 1, 0, 0, 1},
		[]int16{0, 1, 0, 1, 0, 0}).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	r := res.Rows[0]
	if string(r[0]) != "-2" || binary.BigEndian.Uint64(r[1]) != 7 || string(r[2]) != "2.5" ||
		string(r[3]) != "vc" || string(r[4]) != "t" || r[5] != nil {
		t.Errorf("row %q", r)
	}
	if f := res.FieldDescriptions; f[1].Format != 1 || f[0].Format != 0 {
		t.Errorf("formats %+v", f)
	}

	// Wrong parameter count, bad binary width, bad text, bad format code.
	for _, tc := range []struct {
		params  [][]byte
		oids    []uint32
		formats []int16
		code    string
		msg     string
	}{
		{[][]byte{[]byte("1")}, nil, nil, "08P01", "bind message supplies 1 parameters, but prepared statement requires 2"},
		{[][]byte{{1, 2, 3}, []byte("1")}, nil, []int16{1, 0}, "22P03", "error in argument for $1"},
		{[][]byte{[]byte("x"), []byte("1")}, nil, nil, "22P02", `could not parse "x" as type INT8`},
		{[][]byte{[]byte("1"), []byte("1")}, nil, []int16{2}, "22023", "unsupported format code: 2"},
		{[][]byte{[]byte("1"), []byte("1")}, []uint32{1083, 0}, nil, "42704", "type with OID 1083"},
		{[][]byte{[]byte("1"), {0xff, 0xfe}}, []uint32{0, types.OIDText}, nil, "22021", "invalid byte sequence"},
	} {
		oids := tc.oids
		if oids == nil {
			oids = []uint32{0, 0}
		}
		var params [][]byte
		params = append(params, tc.params...)
		if len(tc.params) == 1 {
			// pgconn refuses to send a count that disagrees with the
			// OIDs, so go through a prepared statement instead.
			if _, err := pg.Prepare(ctx, "two", "SELECT $1::INT8, $2", nil); err != nil {
				t.Fatal(err)
			}
			err := pg.ExecPrepared(ctx, "two", params, nil, nil).Read().Err
			checkPgError(t, err, tc.code, tc.msg)
			continue
		}
		err := pg.ExecParams(ctx, "SELECT $1::INT8, $2", params, oids, tc.formats, nil).Read().Err
		checkPgError(t, err, tc.code, tc.msg)
	}
	// The connection is still fine.
	var n int64
	if err := conn.QueryRow(ctx, "SELECT 5::INT8").Scan(&n); err != nil || n != 5 {
		t.Fatalf("after errors: %v %v", n, err)
	}
}

func TestPgxErrors(t *testing.T) {
	ts := startServer(t, Config{})
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := ts.connect(t, mode)
			ctx := testContext(t)
			for _, tc := range []struct {
				sql  string
				code string
				pos  int32
				msg  string
			}{
				{"SELEC 1", "42601", 1, `syntax error at or near "SELEC"`},
				{"SELECT 1, nosuch", "42703", 11, `column "nosuch" does not exist`},
				{"SELECT 'é', nosuch", "42703", 13, `column "nosuch" does not exist`}, // positions count characters
				{"SELECT 1/0", "22012", 0, "division by zero"},
				{"SELECT 'x'::INT8", "22P02", 0, "invalid input syntax"},
				{"SELECT 1; SELECT 2", "42601", 0, "cannot insert multiple commands into a prepared statement"},
				{"SELECT crash()", "XX000", 0, "internal error while executing a statement: fake: crash() called"},
				{"SELECT bad_datum()", "XX000", 0, `column "bad_datum" of type INT8 holds a value of Go type string`},
			} {
				if mode == pgx.QueryExecModeSimpleProtocol && tc.code == "42601" && tc.pos == 0 {
					continue // two statements are fine in a simple query
				}
				rows, err := conn.Query(ctx, tc.sql)
				if err == nil {
					for rows.Next() {
					}
					err = rows.Err()
				}
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) {
					t.Fatalf("%s: got %v, want a PgError", tc.sql, err)
				}
				if pgErr.Code != tc.code || pgErr.Position != tc.pos || !strings.Contains(pgErr.Message, tc.msg) ||
					pgErr.Severity != "ERROR" {
					t.Errorf("%s: got %s %q at %d (%s), want %s %q at %d", tc.sql, pgErr.Code, pgErr.Message,
						pgErr.Position, pgErr.Severity, tc.code, tc.msg, tc.pos)
				}
				if tc.code == "XX000" && !strings.Contains(pgErr.Hint, "bug") {
					t.Errorf("%s: internal error without a hint: %+v", tc.sql, pgErr)
				}
			}
			// After all that, the connection still works.
			var n int64
			if err := conn.QueryRow(ctx, "SELECT 9::INT8").Scan(&n); err != nil || n != 9 {
				t.Fatalf("after errors: %d %v", n, err)
			}
		})
	}
}

// TestPgxManyStatements runs many statements one by one and pipelined in
// batches, in every mode.
func TestPgxManyStatements(t *testing.T) {
	ts := startServer(t, Config{})
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := ts.connect(t, mode)
			ctx := testContext(t)
			for i := range 200 {
				var got int64
				if err := conn.QueryRow(ctx, "SELECT $1::INT8 / 1", int64(i)).Scan(&got); err != nil || got != int64(i) {
					t.Fatalf("statement %d: %d %v", i, got, err)
				}
			}
			b := &pgx.Batch{}
			for i := range 300 {
				b.Queue("SELECT $1::INT8, generate_series(1::INT8, 3::INT8)", int64(i))
			}
			br := conn.SendBatch(ctx, b)
			for i := range 300 {
				rows, err := br.Query()
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for rows.Next() {
					var a, s int64
					if err := rows.Scan(&a, &s); err != nil || a != int64(i) {
						t.Fatalf("batch %d: %d %v", i, a, err)
					}
					n++
				}
				if rows.Err() != nil || n != 3 {
					t.Fatalf("batch %d: %d rows, %v", i, n, rows.Err())
				}
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			// A large result streams through several flushes.
			var count int
			rows, err := conn.Query(ctx, "SELECT generate_series(1::INT8, 20000::INT8), 'some padding text to make rows bigger'")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				count++
			}
			if rows.Err() != nil || count != 20000 {
				t.Fatalf("large result: %d rows, %v", count, rows.Err())
			}
		})
	}
}

// TestPgxBatchErrorDiscardsUntilSync checks what a pipelining driver relies
// on: after an error, the rest of the batch up to Sync is skipped, and the
// next batch runs normally.
func TestPgxBatchErrorDiscardsUntilSync(t *testing.T) {
	ts := startServer(t, Config{})
	conn := ts.connect(t, pgx.QueryExecModeDescribeExec)
	ctx := testContext(t)
	b := &pgx.Batch{}
	b.Queue("INSERT INTO t VALUES (1)")
	b.Queue("SELECT 1/0")
	b.Queue("SELECT 3::INT8")
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatalf("first: %v", err)
	}
	if _, err := br.Exec(); sqlState(err) != "22012" {
		t.Fatalf("second: %v", err)
	}
	if _, err := br.Exec(); err == nil {
		t.Fatalf("third statement ran after an error in the same batch")
	}
	_ = br.Close()
	var n int64
	if err := conn.QueryRow(ctx, "SELECT 4::INT8").Scan(&n); err != nil || n != 4 {
		t.Fatalf("next batch: %d %v", n, err)
	}
}

func TestPgxCancelRequest(t *testing.T) {
	ts := startServer(t, Config{})
	conn := ts.connect(t, pgx.QueryExecModeExec)
	ctx := testContext(t)
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT wait_for_cancel()")
		errc <- err
	}()
	// Wait until the statement runs, so the request has something to cancel.
	waitFor(t, func() bool { return statementRunning(ts.Server) })
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-ts.sql.canceled:
		if !errors.Is(cause, errCancelRequest) {
			t.Errorf("statement canceled with cause %v", cause)
		}
	case <-ctx.Done():
		t.Fatal("statement was not canceled")
	}
	if err := <-errc; sqlState(err) != "57014" {
		t.Fatalf("canceled statement returned %v, want 57014", err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("connection unusable after cancel: %v", err)
	}
}

func TestPgxStartupErrors(t *testing.T) {
	ts := startServer(t, Config{})
	ctx := testContext(t)
	_, err := pgx.Connect(ctx, strings.Replace(ts.connString(), "/defaultdb", "/nosuchdb", 1))
	checkPgError(t, err, "3D000", `database "nosuchdb" does not exist`)

	_, err = pgx.Connect(ctx, ts.connString()+"&application_name=panic-on-connect")
	checkPgError(t, err, "XX000", "panic in NewSession")

	// sslmode=prefer sends SSLRequest, gets 'N' and goes on in plaintext;
	// require gives up.
	conn, err := pgx.Connect(ctx, strings.Replace(ts.connString(), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.PgConn().ParameterStatus("server_version"); v != ServerVersion {
		t.Errorf("server_version %q", v)
	}
	_ = conn.Close(ctx)
	if _, err := pgx.Connect(ctx, strings.Replace(ts.connString(), "sslmode=disable", "sslmode=require", 1)); err == nil ||
		!strings.Contains(err.Error(), "refused TLS") {
		t.Errorf("sslmode=require: %v", err)
	}
}

func TestPgxMaxConns(t *testing.T) {
	ts := startServer(t, Config{MaxConns: 2})
	ctx := testContext(t)
	c1 := ts.connect(t, pgx.QueryExecModeExec)
	ts.connect(t, pgx.QueryExecModeExec)
	_, err := pgx.Connect(ctx, ts.connString())
	checkPgError(t, err, "53300", "too many clients")
	if n := ts.NumConns(); n != 2 {
		t.Errorf("NumConns = %d, want 2", n)
	}
	// A slot frees when a connection closes.
	_ = c1.Close(ctx)
	waitFor(t, func() bool { return ts.NumConns() == 1 })
	ts.connect(t, pgx.QueryExecModeExec)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func checkPgError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Errorf("got %v, want SQLSTATE %s", err, code)
		return
	}
	if pgErr.Code != code || !strings.Contains(pgErr.Message, msg) {
		t.Errorf("got %s %q, want %s %q", pgErr.Code, pgErr.Message, code, msg)
	}
}

// waitFor polls cond until it holds (testutil.SucceedsSoon).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		if !cond() {
			return errors.New("condition not reached")
		}
		return nil
	})
}

// statementRunning reports whether any connection is inside Prepare or Exec.
func statementRunning(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.mu.Lock()
		running := c.stmtCancel != nil
		c.mu.Unlock()
		if running {
			return true
		}
	}
	return false
}
