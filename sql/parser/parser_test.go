package parser

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// formatResult renders what Parse returns: one canonical statement per line
// with its placeholder count, or the flattened error with a caret under the
// reported position (as psql would draw it).
func formatResult(input string, stmts []*Statement, err error) string {
	var b strings.Builder
	if err != nil {
		fe := pgerror.Flatten(err)
		fmt.Fprintf(&b, "ERROR: %s (SQLSTATE %s)\n", fe.Message, fe.Code)
		if fe.Hint != "" {
			fmt.Fprintf(&b, "HINT: %s\n", fe.Hint)
		}
		if fe.Position > 0 && !strings.Contains(input, "\n") {
			b.WriteString(input + "\n")
			b.WriteString(strings.Repeat(" ", fe.Position-1) + "^\n")
		} else if fe.Position > 0 {
			fmt.Fprintf(&b, "position %d\n", fe.Position)
		}
		return b.String()
	}
	if len(stmts) == 0 {
		return "(empty)\n"
	}
	for _, s := range stmts {
		b.WriteString(s.AST.String())
		if s.Placeholders > 0 {
			fmt.Fprintf(&b, " -- placeholders: %d", s.Placeholders)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestParseDataDriven runs testdata/parse. Commands:
//
//	parse       prints the canonical form of each statement, or the error
//	parse-text  prints each statement's source text (Statement.SQL)
//	expr        parses a standalone expression
func TestParseDataDriven(t *testing.T) {
	datadriven.RunTest(t, "testdata/parse", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "parse":
			stmts, err := Parse(d.Input)
			out := formatResult(d.Input, stmts, err)
			if err == nil {
				checkRoundTrip(t, d.Input, stmts)
			}
			return out
		case "parse-text":
			stmts, err := Parse(d.Input)
			if err != nil {
				return formatResult(d.Input, nil, err)
			}
			var b strings.Builder
			for _, s := range stmts {
				fmt.Fprintf(&b, "%q\n", s.SQL())
			}
			return b.String()
		case "expr":
			e, err := ParseExpr(d.Input)
			if err != nil {
				return formatResult(d.Input, nil, err)
			}
			return e.String() + "\n"
		}
		t.Fatalf("unknown command %q", d.Cmd)
		return ""
	})
}

// checkRoundTrip asserts that the canonical text parses back to itself.
func checkRoundTrip(t testing.TB, input string, stmts []*Statement) {
	t.Helper()
	for _, s := range stmts {
		canon := s.AST.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form of %q does not parse: %q: %v", input, canon, err)
		}
		if len(again) != 1 {
			t.Fatalf("canonical form %q of %q parsed into %d statements", canon, input, len(again))
		}
		if got := again[0].AST.String(); got != canon {
			t.Fatalf("round trip of %q changed the canonical form:\n first: %s\nsecond: %s", input, canon, got)
		}
		if again[0].Placeholders != s.Placeholders {
			t.Fatalf("round trip of %q changed the placeholder count %d -> %d", input, s.Placeholders, again[0].Placeholders)
		}
	}
}

func TestIdentifiersAndLiterals(t *testing.T) {
	for _, tc := range []struct {
		name string
		sql  string
		want string
	}{
		{"unquoted lowercased", "SELECT Foo FROM Bar", "SELECT foo FROM bar"},
		{"quoted keeps case", `SELECT "Foo" FROM "Bar"`, `SELECT "Foo" FROM "Bar"`},
		{"quoted reserved", `SELECT "order" FROM t`, `SELECT "order" FROM t`},
		{"quote in quoted ident", `SELECT "a""b" FROM t`, `SELECT "a""b" FROM t`},
		{"string escape", `SELECT 'it''s'`, `SELECT 'it''s'`},
		{"E string", `SELECT E'a\nb\x41\\'`, "SELECT 'a\nbA\\'"},
		{"hex bytes", `SELECT x'6869'`, `SELECT x'6869'`},
		{"b bytes", `SELECT b'hi'`, `SELECT x'6869'`},
		{"int and float", `SELECT 1, 1.5, .5, 1e3, 2.`, `SELECT 1, 1.5, .5, 1e3, 2.`},
		{"negative literal", `SELECT -9223372036854775808`, `SELECT -9223372036854775808`},
		{"double negative", `SELECT - -1`, `SELECT -(-1)`},
		{"cast forms", `SELECT '1'::INT, CAST(2 AS TEXT), 3::double precision`, `SELECT '1'::INT8, 2::STRING, 3::FLOAT8`},
		{"comments", "SELECT /* a /* nested */ comment */ 1 -- trailing", "SELECT 1"},
		{"placeholders", "SELECT $2 + $1", "SELECT $2 + $1"},
		{"keywords as names", "SELECT key, value, version, name FROM system.local", "SELECT key, value, version, name FROM system.local"},
		{"qualified", "SELECT t.k FROM defaultdb.public.t", "SELECT t.k FROM defaultdb.public.t"},
		{"precedence", "SELECT 1 + 2 * 3 - 4 / 2 % 3", "SELECT (1 + (2 * 3)) - ((4 / 2) % 3)"},
		{"boolean precedence", "SELECT a OR b AND NOT c = d", "SELECT a OR (b AND (NOT (c = d)))"},
		{"concat below plus", "SELECT a || b + c", "SELECT a || (b + c)"},
		{"between and", "SELECT * FROM t WHERE k BETWEEN 1 AND 2 AND v", "SELECT * FROM t WHERE (k BETWEEN 1 AND 2) AND v"},
		{"unicode ident", "SELECT größe FROM t", `SELECT "größe" FROM t`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != 1 {
				t.Fatalf("got %d statements", len(stmts))
			}
			if got := stmts[0].AST.String(); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			checkRoundTrip(t, tc.sql, stmts)
		})
	}
}

func TestErrorPositions(t *testing.T) {
	for _, tc := range []struct {
		name string
		sql  string
		code string
		pos  int
		msg  string
	}{
		{"bad keyword", "SELEC 1", pgerror.CodeSyntaxError, 1, `at or near "SELEC": syntax error`},
		{"second statement", "SELECT 1; SELECT FROM", pgerror.CodeSyntaxError, 18, `at or near "FROM": syntax error`},
		{"eof", "SELECT 1 +", pgerror.CodeSyntaxError, 11, `at or near "EOF": syntax error`},
		{"multibyte position", "SELECT 'é', )", pgerror.CodeSyntaxError, 13, `at or near ")": syntax error`},
		{"unterminated string", "SELECT 'abc", pgerror.CodeSyntaxError, 8, "unterminated quoted string"},
		{"unterminated comment", "SELECT 1 /* x", pgerror.CodeSyntaxError, 10, "unterminated comment"},
		{"placeholder zero", "SELECT $0", pgerror.CodeSyntaxError, 8, "placeholder numbers"},
		{"reserved as column", "CREATE TABLE t (order INT)", pgerror.CodeSyntaxError, 17, `at or near "order"`},
		{"unknown type", "CREATE TABLE t (a FOO)", pgerror.CodeUndefinedObject, 19, `type "foo" does not exist`},
		{"unsupported type", "CREATE TABLE t (a TIME)", pgerror.CodeFeatureNotSupported, 19, "not supported yet"},
		{"join without condition", "SELECT * FROM a JOIN b", pgerror.CodeSyntaxError, 23, `at or near "EOF"`},
		{"natural join", "SELECT * FROM a NATURAL JOIN b", pgerror.CodeFeatureNotSupported, 17, "NATURAL JOIN is not supported"},
		{"two primary keys", "CREATE TABLE t (a INT PRIMARY KEY, PRIMARY KEY (a), PRIMARY KEY (a))", pgerror.CodeInvalidTableDefinition, 53, "multiple primary keys"},
		{"trailing junk", "SELECT 123abc", pgerror.CodeSyntaxError, 8, "trailing junk"},
		{"invalid utf8", "SELECT \xff", pgerror.CodeSyntaxError, 8, "invalid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.sql)
			if err == nil {
				t.Fatalf("expected an error")
			}
			fe := pgerror.Flatten(err)
			if fe.Code != tc.code {
				t.Errorf("code %s, want %s (%v)", fe.Code, tc.code, err)
			}
			if fe.Position != tc.pos {
				t.Errorf("position %d, want %d (%v)", fe.Position, tc.pos, err)
			}
			if !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", fe.Message, tc.msg)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	for _, q := range []string{
		"SELECT " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000),
		"SELECT " + strings.Repeat("NOT ", 100000) + "true",
		"SELECT " + strings.Repeat("- ", 100000) + "x",
	} {
		_, err := Parse(q)
		if err == nil {
			t.Fatalf("expected a nesting error")
		}
		if code := pgerror.GetCode(err); code != pgerror.CodeProgramLimitExceeded {
			t.Fatalf("code %s: %v", code, err)
		}
	}
}

// FuzzParse checks that Parse never panics, that errors always carry a
// SQLSTATE and a position inside the input, and that the canonical form of
// anything it accepts round-trips.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT 1",
		"CREATE TABLE IF NOT EXISTS t (k INT PRIMARY KEY, v STRING NOT NULL DEFAULT 'x', b BYTES, f FLOAT NULL)",
		"CREATE TABLE t (a INT, b STRING, CONSTRAINT p PRIMARY KEY (a, b))",
		"INSERT INTO t (k, v) VALUES (1, 'a'), ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v || t.v RETURNING *",
		"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
		"UPSERT INTO t VALUES (1, 'a')",
		"SELECT k, count(*) AS c FROM public.t WHERE k BETWEEN 1 AND $1 AND v IN ('a', 'b') OR v IS NOT NULL ORDER BY k DESC LIMIT $2 OFFSET 3",
		"UPDATE t SET v = lower(v), f = -f * 2.5e3 WHERE k >= 10 RETURNING k",
		"DELETE FROM t WHERE NOT (k <> 3)",
		"SHOW TABLES; SHOW CREATE TABLE t; SHOW server_version",
		"SET application_name = 'x'; SET SESSION datestyle TO ISO, MDY; RESET timezone",
		"SET CLUSTER SETTING version = crdb_internal.node_executable_version()",
		"RESET CLUSTER SETTING cluster.preserve_downgrade_option; SHOW ALL CLUSTER SETTINGS; SHOW JOBS; SHOW UPGRADE STATUS",
		"SHOW UPGRADE PLAN; SHOW UPGRADE PLAN FOR VERSION '2.0'",
		"BEGIN; COMMIT; ROLLBACK",
		"SELECT E'\\x41', x'00ff', '\\x00'::BYTES, CAST(1 AS FLOAT8)",
		"ALTER TABLE t ADD COLUMN IF NOT EXISTS c INT NOT NULL DEFAULT 0",
		"SELECT \"Weird\"\"Name\" FROM \"T\" /* c */ -- d",
		"SELECT v FROM t WHERE v LIKE 'a%' AND v NOT ILIKE '_b'",
		"EXPLAIN SELECT * FROM t WHERE k IN (1, 2); TRUNCATE t; DROP TABLE IF EXISTS a, b",
		"SELECT n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
			"WHERE c.relkind IN ('r','p','') AND n.nspname !~ '^pg_toast' AND c.relname OPERATOR(pg_catalog.~) '^(kv)$' COLLATE pg_catalog.default ORDER BY 1,2",
		"SELECT a.attname, (SELECT pg_get_expr(d.adbin, d.adrelid, true) FROM pg_attrdef d WHERE d.adrelid = a.attrelid), " +
			"CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, 'kv'::regclass::oid FROM a, b",
		"WITH w (x) AS (SELECT 1) SELECT DISTINCT x, count(*) FROM w JOIN t USING (x) CROSS JOIN u GROUP BY 1 HAVING count(*) > 1 " +
			"UNION ALL (SELECT 1, 2 EXCEPT SELECT 3, 4) ORDER BY 1 DESC NULLS LAST LIMIT 1 OFFSET 1",
		"SELECT ARRAY(SELECT 1), ARRAY[1, 2], x = ANY ('{1}'), y <> ALL (SELECT 1), EXISTS (SELECT 1), z NOT IN (SELECT 1), " +
			"a IS DISTINCT FROM b, indkey[1], '{a}'::text[] FROM generate_series(1, 2) AS g (i), (SELECT 1) s",
		"SELECT t.tgname FROM pg_trigger AS u, pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth), " +
			"unnest(ARRAY[1]) WITH ORDINALITY, generate_series(1, 2) WITH ORDINALITY g",
		"SELECT position('a' IN b), substring(x FROM 1 FOR 2), trim(leading 'x' FROM y), $$a$$, $t$b$t$, x @> y, a<-1, a!=-1, date '2020', -x^2",
		"SELECT string_agg(v, ',' ORDER BY v DESC NULLS FIRST, k), array_agg(DISTINCT k) FROM t GROUP BY g",
		"WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10), s AS (SELECT DISTINCT 0::oid, 1 " +
			"UNION ALL SELECT 2, 3 UNION SELECT s.a, r.n FROM s JOIN r ON true) SELECT * FROM r, s",
		"VALUES (1, 'a'), ($1, NULL) ORDER BY 1; SELECT * FROM (VALUES (1)) AS v (x) JOIN t ON t.k = v.x",
		"SELECT row_number() OVER (), rank() OVER (PARTITION BY a, b ORDER BY c DESC NULLS LAST), 1 + dense_rank() OVER (ORDER BY d) FROM t",
		"PREPARE q (INT, VARCHAR(3)) AS SELECT $1 + $2 FROM t; EXECUTE q (1, $1); DEALLOCATE PREPARE q; DEALLOCATE ALL; PREPARE i AS INSERT INTO t VALUES ($1)",
		"SELECT (information_schema._pg_expandarray(i.indkey)).n, (r.keys).x, a & 1::smallint | b, (x).\"Y\" FROM t",
		"CREATE USER u WITH LOGIN CREATEDB PASSWORD 'x'; ALTER ROLE u NOCREATEDB",
		"CREATE DATABASE IF NOT EXISTS app; DROP DATABASE IF EXISTS \"a b\" CASCADE; DROP DATABASE app RESTRICT; USE app; SHOW TABLES FROM app.public",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := Parse(sql)
		if err != nil {
			fe := pgerror.Flatten(err)
			if fe.Code == pgerror.CodeInternal {
				t.Fatalf("error without a SQLSTATE for %q: %v", sql, err)
			}
			if fe.Position < 0 || fe.Position > utf8.RuneCountInString(sql)+1 {
				t.Fatalf("position %d outside the input %q", fe.Position, sql)
			}
			return
		}
		checkRoundTrip(t, sql, stmts)
	})
}
