package sql

import (
	"strings"
	"testing"
)

// TestJoinPruningKeepsAnswers runs queries whose joins emit only the
// columns read above them (pruneColumns), under grouping, sorting,
// DISTINCT, subqueries, WITH items read twice, set operations, windows and
// outer joins, and checks each answers exactly what it answers with every
// join emitting all its columns; and that the pass did drop columns.
func TestJoinPruningKeepsAnswers(t *testing.T) {
	tc := newTestClusterAt(t, 1, at21)
	s := tc.session(1, "default", "root")
	for _, q := range []string{
		"CREATE TABLE a (k INT PRIMARY KEY, v STRING, n INT, x FLOAT, y STRING)",
		"CREATE TABLE b (k INT PRIMARY KEY, ak INT, w STRING, z INT, q STRING)",
		"CREATE TABLE c (k INT PRIMARY KEY, bk INT, note STRING)",
		"INSERT INTO a VALUES (1, 'one', 10, 1.5, 'p'), (2, 'two', 20, NULL, 'q'), (3, 'three', NULL, 3.5, 'r'), (4, 'four', 20, 4.5, NULL)",
		"INSERT INTO b VALUES (10, 1, 'x', 7, 'bq'), (11, 1, 'y', 8, NULL), (12, 2, 'z', NULL, 'bz'), (13, 9, 'orphan', 9, 'bo')",
		"INSERT INTO c VALUES (100, 10, 'c1'), (101, 12, 'c2'), (102, 99, NULL)",
	} {
		if out := tc.run(s, q, false); strings.HasPrefix(out, "ERROR") {
			t.Fatalf("%s: %s", q, out)
		}
	}
	queries := []string{
		"SELECT a.v, b.w FROM a JOIN b ON b.ak = a.k ORDER BY b.k",
		"SELECT a.v, b.w, c.note FROM a LEFT JOIN b ON b.ak = a.k LEFT JOIN c ON c.bk = b.k ORDER BY a.k, b.k",
		"SELECT a.y, b.q FROM a RIGHT JOIN b ON b.ak = a.k ORDER BY b.k",
		"SELECT a.v, b.w FROM a FULL JOIN b ON b.ak = a.k AND b.z > 7 ORDER BY a.k NULLS FIRST, b.k",
		"SELECT a.n, count(*), sum(b.z), max(b.w), string_agg(b.q, ',' ORDER BY b.k) FROM a JOIN b ON b.ak = a.k GROUP BY a.n ORDER BY 1",
		"SELECT a.n, count(*) FROM a JOIN b ON b.ak = a.k GROUP BY a.n HAVING max(b.z) > 7 ORDER BY a.n",
		"SELECT DISTINCT a.n FROM a JOIN b ON b.ak = a.k ORDER BY 1",
		"SELECT a.v, (SELECT count(*) FROM c WHERE c.bk = b.k) FROM a JOIN b ON b.ak = a.k ORDER BY b.k",
		"SELECT a.v FROM a JOIN b ON b.ak = a.k WHERE EXISTS (SELECT 1 FROM c WHERE c.bk = b.k) ORDER BY a.v",
		"WITH j AS (SELECT a.k, a.v, b.w FROM a JOIN b ON b.ak = a.k) SELECT j1.v, j2.w FROM j j1 JOIN j j2 ON j1.k = j2.k ORDER BY 1, 2",
		"SELECT a.v FROM a JOIN b ON b.ak = a.k UNION SELECT b.w FROM b JOIN c ON c.bk = b.k ORDER BY 1",
		"SELECT a.v, row_number() OVER (ORDER BY b.k DESC) FROM a JOIN b ON b.ak = a.k ORDER BY 2",
		"SELECT x.v, y.w FROM a x, b y, c z WHERE y.ak = x.k AND z.bk = y.k ORDER BY 1",
		"SELECT a.k + b.z, upper(b.w) FROM a JOIN b ON a.k = b.ak AND a.x < b.z ORDER BY 1",
		"SELECT b.w, a.v FROM b JOIN a ON a.k = b.ak ORDER BY length(a.v) DESC, b.w LIMIT 2 OFFSET 1",
		"SELECT * FROM a JOIN b ON b.ak = a.k ORDER BY b.k",
		"SELECT t.a FROM (SELECT a.v AS a, b.w AS b FROM a JOIN b ON b.ak = a.k) t ORDER BY 1",
		"SELECT c.relname, n.nspname, i.indisprimary FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
			"LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid " +
			"WHERE n.nspname = 'public' ORDER BY 1",
		"SELECT n, count(*) FROM (SELECT a.n FROM a CROSS JOIN b) s GROUP BY n ORDER BY n",
		"WITH RECURSIVE r (k, depth) AS (SELECT k, 0 FROM a WHERE k = 1 UNION ALL SELECT b.k, r.depth + 1 FROM r JOIN b ON b.ak = r.k) " +
			"SELECT r.k, r.depth, c.note FROM r LEFT JOIN c ON c.bk = r.k ORDER BY 1",
	}
	pruned := map[string]string{}
	for _, q := range queries {
		pruned[q] = tc.run(s, q, false)
		if strings.HasPrefix(pruned[q], "ERROR") {
			t.Errorf("%s: %s", q, pruned[q])
		}
	}
	explain := tc.run(s, "EXPLAIN "+queries[1], false)
	if !strings.Contains(explain, "emits") {
		t.Errorf("no join of %q drops a column:\n%s", queries[1], explain)
	}
	testingJoinsEmitAll.Store(true)
	defer testingJoinsEmitAll.Store(false)
	for _, q := range queries {
		if all := tc.run(s, q, false); all != pruned[q] {
			t.Errorf("%s\nwith every column: %s\nwith the columns read: %s", q, all, pruned[q])
		}
	}
}
