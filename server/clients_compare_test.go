package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestNodePostgresMatchesPostgres runs one node-postgres program
// (testdata/clients/node_postgres_compare.js: types as pg parses them, the
// result's type OIDs, prepared statements, a transaction, SQLSTATEs, catalog
// queries) against a real PostgreSQL and against one kvnode node, and
// records in testdata/node_postgres_compare where their outputs differ, as
// TestCatalogMatchesPostgres does (a line only PostgreSQL prints is marked
// '-', one only kvnode prints '+', each explained in the file): a new
// difference, or one that went away, fails the test.
func TestNodePostgresMatchesPostgres(t *testing.T) {
	_, err := exec.LookPath("node")
	requireClient(t, err == nil, "node (Debian's nodejs)")
	requireClient(t, exists(filepath.Join(nodeModules(), "pg")), "node-postgres in $KVNODE_NODE_MODULES (npm install --prefix DIR pg; KVNODE_NODE_MODULES=DIR/node_modules)")
	pg := startRealPostgres(t)
	c := testcluster.Start(t, 1, testcluster.Options{})
	run := func(url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "clients", "node_postgres_compare.js"), url)
		cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules(), "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node_postgres_compare.js against %s: %v\n%s", url, err, out)
		}
		return string(out)
	}
	datadriven.RunTest(t, filepath.Join("testdata", "node_postgres_compare"), func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "node-postgres" {
			d.Fatalf(t, "unknown command %q (node-postgres)", d.Cmd)
		}
		pgOut := run(pg.URL("root", "defaultdb"))
		if !strings.Contains(pgOut, "drop: DROP") {
			t.Fatalf("the program did not run to its end against PostgreSQL:\n%s", pgOut)
		}
		return diffLines(normalizeOutput(pgOut), normalizeOutput(run(c.URL(0))))
	})
}

// TestPgxLoadTypeMatchesPostgres: pgx's LoadType (what an application calls
// to register a type pgx does not know by OID) on built-in types and on a
// table's row type finds, on kvnode, what it finds on PostgreSQL: the same
// OID and the same codec, and a value read through the loaded type decodes
// to the same Go value.
func TestPgxLoadTypeMatchesPostgres(t *testing.T) {
	pg := startRealPostgres(t)
	c := testcluster.Start(t, 1, testcluster.Options{})
	load := func(url string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "CREATE TABLE lt_point (x INT8 NOT NULL PRIMARY KEY, label TEXT)"); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tc := range []struct{ name, value string }{
			{"_int8", "ARRAY[1, 2, NULL]::int8[]"},
			{"int8[]", "ARRAY[3]::int8[]"},
			{"text[]", "ARRAY['a', 'b c']"},
			{"_numeric", "ARRAY[1.5, 2.25]::numeric[]"},
			{"_uuid", "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']::uuid[]"},
			{"_timestamptz", "ARRAY['2024-03-01 12:00:00+00']::timestamptz[]"},
			{"lt_point", ""},
		} {
			typ, err := conn.LoadType(ctx, tc.name)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: LoadType: %v", tc.name, err))
				continue
			}
			if cc, ok := typ.Codec.(*pgtype.CompositeCodec); ok {
				// A table's row type: its OID is each server's own.
				var fields []string
				for _, f := range cc.Fields {
					fields = append(fields, fmt.Sprintf("%s %d", f.Name, f.Type.OID))
				}
				out = append(out, fmt.Sprintf("%s: a composite of %s", tc.name, strings.Join(fields, ", ")))
				continue
			}
			// The loaded type decodes a value of its OID (registered under
			// the name LoadType was given).
			conn.TypeMap().RegisterType(typ)
			var v any
			err = conn.QueryRow(ctx, "SELECT "+tc.value).Scan(&v)
			out = append(out, fmt.Sprintf("%s: OID %d, codec %T, value %v (err %v)", tc.name, typ.OID, typ.Codec, v, err))
		}
		return out
	}
	pgOut, kvOut := load(pg.URL("root", "defaultdb")), load(c.URL(0))
	if got, want := strings.Join(kvOut, "\n"), strings.Join(pgOut, "\n"); got != want {
		t.Fatalf("LoadType on kvnode ('+') differs from PostgreSQL ('-'):\n%s", diffLines(pgOut, kvOut))
	}
	t.Logf("LoadType, the same on both:\n%s", strings.Join(kvOut, "\n"))
}

// TestPgxLoadTypesMatchesPostgres: pgx's LoadTypes (one WITH RECURSIVE
// query that finds the named types and every type they depend on, for
// registering composite, array and domain types at once) answers on kvnode
// what it answers on PostgreSQL for built-in array types and a table's row
// type: the same types in the same order, each with its OID (a row type's
// is each server's own), codec, element type or fields; and a value read
// through the registered types decodes the same.
func TestPgxLoadTypesMatchesPostgres(t *testing.T) {
	pg := startRealPostgres(t)
	c := testcluster.Start(t, 1, testcluster.Options{})
	load := func(url string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "CREATE TABLE lts_pair (a INT8 NOT NULL PRIMARY KEY, b TEXT)"); err != nil {
			t.Fatal(err)
		}
		loaded, err := conn.LoadTypes(ctx, []string{"_int8", "_text", "_numeric", "lts_pair"})
		if err != nil {
			return []string{fmt.Sprintf("LoadTypes: %v", err)}
		}
		var out []string
		for _, typ := range loaded {
			switch codec := typ.Codec.(type) {
			case *pgtype.CompositeCodec:
				var fields []string
				for _, f := range codec.Fields {
					fields = append(fields, fmt.Sprintf("%s %d", f.Name, f.Type.OID))
				}
				out = append(out, fmt.Sprintf("%s: a composite of %s", typ.Name, strings.Join(fields, ", ")))
			case *pgtype.ArrayCodec:
				out = append(out, fmt.Sprintf("%s: OID %d, an array of %s (OID %d), delimiter %q",
					typ.Name, typ.OID, codec.ElementType.Name, codec.ElementType.OID, codec.Delimiter))
			default:
				out = append(out, fmt.Sprintf("%s: OID %d, codec %T", typ.Name, typ.OID, typ.Codec))
			}
		}
		conn.TypeMap().RegisterTypes(loaded)
		for _, q := range []string{"SELECT ARRAY[1, NULL, 3]::int8[]", "SELECT ARRAY['a', 'b c']::text[]", "SELECT ARRAY[1.5]::numeric[]"} {
			var v any
			err := conn.QueryRow(ctx, q).Scan(&v)
			out = append(out, fmt.Sprintf("%s: %v (err %v)", q, v, err))
		}
		return out
	}
	pgOut, kvOut := load(pg.URL("root", "defaultdb")), load(c.URL(0))
	if got, want := strings.Join(kvOut, "\n"), strings.Join(pgOut, "\n"); got != want {
		t.Fatalf("LoadTypes on kvnode ('+') differs from PostgreSQL ('-'):\n%s", diffLines(pgOut, kvOut))
	}
	t.Logf("LoadTypes, the same on both:\n%s", strings.Join(kvOut, "\n"))
}
