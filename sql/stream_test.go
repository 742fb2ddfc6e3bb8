package sql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/sqltest"
	"github.com/kvnode/kvnode/sql/types"
)

// scribbleNode streams fixed rows through one reused slice and overwrites
// it after each call: an operator that keeps a streamed row instead of
// copying it ends up with the scribbles.
type scribbleNode struct{ rowsNode }

func (n *scribbleNode) stream(ec *evalCtx, fn func(row []types.Datum) error) error {
	buf := make([]types.Datum, n.w)
	for _, r := range n.rows {
		copy(buf, r)
		if err := fn(buf); err != nil {
			return err
		}
		for i := range buf {
			buf[i] = int64(-999)
		}
	}
	return nil
}

var _ rowStreamer = (*scribbleNode)(nil)

// TestStreamingOperatorsCopyWhatTheyKeep runs the operators that consume a
// streamed input over the same rows materialized and streamed through a
// scribbled slice: the results must agree.
func TestStreamingOperatorsCopyWhatTheyKeep(t *testing.T) {
	rows := [][]types.Datum{intRow(1, 10), intRow(nil, 5), intRow(1, 20), intRow(nil, 7), intRow(2, nil), intRow(3, 1),
		intRow(1000, 4), intRow(-3, 2), intRow(1000, 9), intRow(-3, 1), intRow(255, 3), intRow(256, 3), intRow(255, 1)}
	sum := &aggregate{kind: "sum", arg: col(1), t: types.Int, acc: accInt}
	cnt := &aggregate{kind: "count", t: types.Int}
	mx := &aggregate{kind: "max", arg: col(1), t: types.Int}
	ops := map[string]func(in relNode) relNode{
		"filter":  func(in relNode) relNode { return &filterNode{in: in, cond: lt(col(1), &constExpr{d: int64(15)})} },
		"project": func(in relNode) relNode { return &projectNode{in: in, exprs: []texpr{col(1), col(0)}} },
		"group": func(in relNode) relNode {
			return &groupNode{in: in, keys: []texpr{col(0)}, aggs: []*aggregate{sum, cnt, mx}}
		},
		"group by two keys": func(in relNode) relNode {
			return &groupNode{in: in, keys: []texpr{col(0), &binExpr{op: parser.OpMod, l: col(1), r: &constExpr{d: int64(2)}, t: types.Int}}, aggs: []*aggregate{cnt, mx}}
		},
		"scalar": func(in relNode) relNode { return &groupNode{in: in, aggs: []*aggregate{sum, cnt, mx}} },
		"group over filter": func(in relNode) relNode {
			return &groupNode{in: &filterNode{in: in, cond: lt(col(1), &constExpr{d: int64(15)})}, keys: []texpr{col(0)}, aggs: []*aggregate{cnt}}
		},
		"filter kept": func(in relNode) relNode {
			return &sortNode{in: &filterNode{in: in, cond: &isNullExpr{e: col(0), not: true}}, keys: []orderItem{{e: col(1)}}}
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			want := runNode(t, op(&rowsNode{w: 2, rows: rows}))
			got := runNode(t, op(&scribbleNode{rowsNode{w: 2, rows: rows}}))
			if strings.Join(got, ";") != strings.Join(want, ";") {
				t.Fatalf("streamed: %v\nmaterialized: %v", got, want)
			}
			if strings.Contains(strings.Join(got, ";"), "-999") {
				t.Fatalf("a streamed row was kept: %v", got)
			}
		})
	}
}

// TestRowAlloc: rows carved from one block are independent, also when one
// is appended to.
func TestRowAlloc(t *testing.T) {
	a := rowAlloc{w: 2}
	var rows [][]types.Datum
	for i := 0; i < 3*rowAllocBlock; i++ {
		rows = append(rows, a.copyRow(intRow(i, i+1)))
	}
	for i := range rows {
		_ = append(rows[i], int64(-1))
	}
	for i, r := range rows {
		if len(r) != 2 || cap(r) != 2 || r[0] != int64(i) || r[1] != int64(i+1) {
			t.Fatalf("row %d = %v (cap %d)", i, r, cap(r))
		}
	}
	if r := (&rowAlloc{}).newRow(); r == nil || len(r) != 0 {
		t.Fatalf("a row of width 0: %#v", r)
	}
}

// plainDB hides the store's kvpb.Streamer: the executor falls back to Scan
// and Get, as it does inside a transaction.
type plainDB struct{ kvpb.DB }

// streamTestSessions opens sessions on two nodes over one store: the
// first reads it as it is (a kvpb.Streamer), the second through plainDB.
func streamTestSessions(t *testing.T, db *sqltest.MemDB) (stream, plain pgwire.Session) {
	t.Helper()
	net := sqltest.NewNetwork()
	var sessions []pgwire.Session
	for i, kv := range []kvpb.DB{db, plainDB{db}} {
		id := nodeid.ID(i + 1)
		e, err := NewExecutor(Config{DB: kv, Local: sqltest.NewMemStore(), Peers: net.Peers(id),
			NodeID: func() nodeid.ID { return id }, BinaryVersion: "1.0"})
		if err != nil {
			t.Fatal(err)
		}
		net.Add(id, e.Catalog())
		sessions = append(sessions, openSession(t, e))
	}
	return sessions[0], sessions[1]
}

func sortedResult(t *testing.T, s pgwire.Session, q string) string {
	t.Helper()
	res := mustExec(t, s, q)
	out := make([]string, len(res.Rows))
	for i, r := range res.Rows {
		var parts []string
		for _, d := range r {
			parts = append(parts, string(formatForTest(d)))
		}
		out[i] = strings.Join(parts, ",")
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestStreamedScansAndLookups runs joins and GROUP BYs over random tables
// (NULL keys, duplicate and missing join keys) on a store that streams and
// on one that does not, and checks them against each other, against the
// hash join of the same equality, and against the groups computed here.
func TestStreamedScansAndLookups(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 3))
	stream, plain := streamTestSessions(t, sqltest.NewMemDB())
	mustExec(t, stream, "CREATE TABLE r (k INT PRIMARY KEY, v STRING, f FLOAT)")
	mustExec(t, stream, "CREATE TABLE l (id INT PRIMARY KEY, x INT)")
	type group struct {
		n    int
		minV string
		sum  float64
	}
	want := map[string]*group{}
	var vals []string
	for k := 0; k < 300; k += 1 + rng.IntN(3) {
		v := fmt.Sprintf("'v%d'", rng.IntN(1000))
		f := fmt.Sprintf("%d.5", rng.IntN(100))
		if rng.IntN(10) == 0 {
			v, f = "NULL", "NULL"
		}
		vals = append(vals, fmt.Sprintf("(%d, %s, %s)", k, v, f))
	}
	mustExec(t, stream, "INSERT INTO r VALUES "+strings.Join(vals, ", "))
	vals = nil
	for id := 0; id < 200; id++ {
		x := fmt.Sprint(rng.IntN(320)) // some keys missing, many repeated
		if rng.IntN(8) == 0 {
			x = "NULL"
		}
		vals = append(vals, fmt.Sprintf("(%d, %s)", id, x))
	}
	mustExec(t, stream, "INSERT INTO l VALUES "+strings.Join(vals, ", "))
	// The groups, computed from the rows as read back one by one.
	for _, r := range mustExec(t, stream, "SELECT k, v, f FROM r").Rows {
		key := "NULL"
		if r[0].(int64)%11 != 0 {
			key = fmt.Sprint(r[0].(int64) % 7)
		}
		g := want[key]
		if g == nil {
			g = &group{}
			want[key] = g
		}
		g.n++
		if v, ok := r[1].(string); ok && (g.minV == "" || v < g.minV) {
			g.minV = v
		}
		if f, ok := r[2].(float64); ok {
			g.sum += f
		}
	}
	var wantGroups []string
	for key, g := range want {
		minV := g.minV
		if minV == "" {
			minV = "NULL"
		}
		wantGroups = append(wantGroups, fmt.Sprintf("%s,%d,%s,%g", key, g.n, minV, g.sum))
	}
	sort.Strings(wantGroups)

	lookupJoin := func(kind string) string {
		return "SELECT l.id, l.x, r.k, r.v FROM l " + kind + " JOIN r ON r.k = l.x"
	}
	hashJoin := func(kind string) string {
		return "SELECT l.id, l.x, r.k, r.v FROM l " + kind + " JOIN r ON r.k + 0 = l.x"
	}
	for _, kind := range []string{"INNER", "LEFT"} {
		plan := sortedResult(t, stream, "EXPLAIN "+lookupJoin(kind))
		if !strings.Contains(plan, "lookup join") {
			t.Fatalf("%s: not a lookup join:\n%s", lookupJoin(kind), plan)
		}
		if plan := sortedResult(t, stream, "EXPLAIN "+hashJoin(kind)); !strings.Contains(plan, "hash join") || strings.Contains(plan, "lookup") {
			t.Fatalf("%s: not a hash join:\n%s", hashJoin(kind), plan)
		}
		want := sortedResult(t, stream, hashJoin(kind))
		for name, s := range map[string]pgwire.Session{"streaming store": stream, "plain store": plain} {
			if got := sortedResult(t, s, lookupJoin(kind)); got != want {
				t.Fatalf("%s join on a %s: lookup join\n%s\nhash join\n%s", kind, name, got, want)
			}
		}
	}
	groupBy := "SELECT CASE WHEN k % 11 = 0 THEN NULL ELSE k % 7 END AS g, count(*), min(v), coalesce(sum(f), 0) FROM r GROUP BY g"
	for name, s := range map[string]pgwire.Session{"streaming store": stream, "plain store": plain} {
		if got := sortedResult(t, s, groupBy); got != strings.Join(wantGroups, "\n") {
			t.Fatalf("GROUP BY on a %s:\n%s\nwant\n%s", name, got, strings.Join(wantGroups, "\n"))
		}
		// A filter in the scan, HAVING and ORDER BY over the groups.
		q := "SELECT k % 5, count(*) FROM r WHERE v IS NOT NULL AND k > 20 GROUP BY k % 5 HAVING count(*) > 1 ORDER BY 2 DESC, 1"
		if got, other := sortedResult(t, s, q), sortedResult(t, stream, q); got != other || got == "" {
			t.Fatalf("%s on a %s: %q, streaming store %q", q, name, got, other)
		}
	}
}

// TestPruneColumns plans queries and lists, for each table scan, the
// columns it decodes ("all" when every one).
func TestPruneColumns(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE p (a INT PRIMARY KEY, b STRING, c INT, d FLOAT)")
	mustExec(t, s, "CREATE TABLE q (x INT PRIMARY KEY, y INT)")
	e := tc.nodes[0]
	for _, tc := range []struct{ q, want string }{
		{"SELECT * FROM p", "p:all"},
		{"SELECT b FROM p", "p:b"},
		{"SELECT count(*) FROM p", "p:"},
		{"SELECT a % 16, count(*), min(b) FROM p GROUP BY a % 16", "p:a,b"},
		{"SELECT b FROM p WHERE c > 3 ORDER BY d", "p:b,c,d"},
		{"SELECT c, count(*) FROM p GROUP BY c HAVING sum(d) > 1", "p:c,d"},
		{"SELECT DISTINCT b FROM p", "p:b"},
		{"SELECT count(*), sum(length(p.b)) FROM q JOIN p ON p.a = q.y", "q:y p:a,b"},
		{"SELECT q.x FROM q LEFT JOIN p ON p.c = q.y AND p.d > 0", "q:all p:c,d"},
		{"SELECT b FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.y = p.c)", "p:all"},
		{"SELECT b, row_number() OVER (ORDER BY c) FROM p", "p:all"},
		{"WITH w AS (SELECT a, b FROM p) SELECT w1.b FROM w AS w1, w AS w2 WHERE w1.a = w2.a", "p:a,b"},
		{"SELECT b FROM p UNION SELECT 'x'", "p:b"},
	} {
		stmts, err := parser.Parse(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := e.analyzeQueryPlan(stmts[0].AST.(parser.SelectStatement), &paramSet{})
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		var got []string
		seen := map[*tableScanNode]bool{}
		var visit func(n relNode)
		visit = func(n relNode) {
			switch v := n.(type) {
			case *tableScanNode:
				if seen[v] {
					return
				}
				seen[v] = true
				desc := "all"
				if v.need != nil {
					var cols []string
					for i, c := range v.ti.cols {
						if v.need[i] {
							cols = append(cols, c.Name)
						}
					}
					desc = strings.Join(cols, ",")
				}
				got = append(got, v.ti.desc.Name+":"+desc)
			case *filterNode:
				visit(v.in)
			case *projectNode:
				visit(v.in)
			case *groupNode:
				visit(v.in)
			case *sortNode:
				visit(v.in)
			case *limitNode:
				visit(v.in)
			case *distinctNode:
				visit(v.in)
			case *windowNode:
				visit(v.in)
			case *joinNode:
				visit(v.left)
				visit(v.right)
			case *setOpNode:
				visit(v.left)
				visit(v.right)
			}
		}
		visit(plan.root)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: scans decode %q, want %q", tc.q, strings.Join(got, " "), tc.want)
		}
	}
}

// TestGroupByIntKey checks the single INT8 key's grouping (a slice for 0
// to 255, a map beyond, NULL apart) against the general encoded-key path,
// which a second, constant key forces.
func TestGroupByIntKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	in := &rowsNode{w: 2}
	for i := 0; i < 2000; i++ {
		var k any = rng.IntN(600) - 100
		if rng.IntN(20) == 0 {
			k = nil
		}
		in.rows = append(in.rows, intRow(k, rng.IntN(50)))
	}
	sum := &aggregate{kind: "sum", arg: col(1), t: types.Int, acc: accInt}
	cnt := &aggregate{kind: "count", t: types.Int}
	byInt := &groupNode{in: in, keys: []texpr{col(0)}, aggs: []*aggregate{sum, cnt}}
	general := &groupNode{in: in, keys: []texpr{col(0), &constExpr{d: int64(1)}}, aggs: []*aggregate{sum, cnt}}
	a, b := runNode(t, byInt), runNode(t, general)
	if len(a) < 500 || strings.Join(a, ";") != strings.Join(b, ";") {
		t.Fatalf("%d groups by the INT8 key, %d by the encoded key; they differ: %v", len(a), len(b), strings.Join(a, ";") != strings.Join(b, ";"))
	}
}

// scribbleDB hands every entry of a streamed scan in a buffer of its own
// that it overwrites once the call returns, as a store's memory may be
// reused once its iterator moves on: a consumer that keeps a borrowed
// datum, or a string that points into one, reads the scribbles.
type scribbleDB struct{ *sqltest.MemDB }

func (db scribbleDB) ScanFunc(ctx context.Context, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	var buf []byte
	return db.MemDB.ScanFunc(ctx, start, end, limit, reverse, func(k, v []byte) error {
		buf = append(append(buf[:0], k...), v...)
		err := fn(buf[:len(k)], buf[len(k):])
		for i := range buf {
			buf[i] = '#'
		}
		return err
	})
}

// TestBorrowedRowsAreOwnedWhereKept runs GROUP BYs, whose scans hand
// borrowed rows (borrowStreamer), over a store that scribbles over each
// entry after its call, and checks every kept datum (a group's first row,
// min and max, array_agg's and string_agg's values, separators and ORDER
// BY keys, strings derived from a column) against the groups computed
// here from the rows read back.
func TestBorrowedRowsAreOwnedWhereKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 19))
	mem := sqltest.NewMemDB()
	e, err := NewExecutor(Config{DB: scribbleDB{mem}, Local: sqltest.NewMemStore(), Peers: sqltest.NewNetwork().Peers(1),
		NodeID: func() nodeid.ID { return 1 }, BinaryVersion: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	s := openSession(t, e)
	mustExec(t, s, "CREATE TABLE r (k INT PRIMARY KEY, v STRING, w INT)")
	type row struct {
		k, w int64
		v    string
	}
	var rows []row
	var vals []string
	for k := int64(0); k < 400; k++ {
		r := row{k: k, w: 1000 + rng.Int64N(100000), v: fmt.Sprintf("s%d-%s", rng.IntN(40), strings.Repeat("x", rng.IntN(12)))}
		rows = append(rows, r)
		vals = append(vals, fmt.Sprintf("(%d, '%s', %d)", r.k, r.v, r.w))
	}
	mustExec(t, s, "INSERT INTO r VALUES "+strings.Join(vals, ", "))

	// By v: the group's first row holds the key; min and max of INT8s
	// above 255 (boxed in reused slots when borrowed).
	want := map[string][3]int64{}
	for _, r := range rows {
		g, ok := want[r.v]
		if !ok {
			g = [3]int64{0, r.k, r.w}
		}
		g[0]++
		g[1], g[2] = min(g[1], r.k), max(g[2], r.w)
		want[r.v] = g
	}
	var lines []string
	for v, g := range want {
		lines = append(lines, fmt.Sprintf("%s,%d,%d,%d,%s", v, g[0], g[1], g[2], v+"!"))
	}
	sort.Strings(lines)
	q := "SELECT v, count(*), min(k), max(w), max(v || '!') FROM r GROUP BY v"
	if got := sortedResult(t, s, q); got != strings.Join(lines, "\n") {
		t.Fatalf("%s:\n%s\nwant\n%s", q, got, strings.Join(lines, "\n"))
	}

	// By k % 5: min and max of the strings, the lists, their separators
	// (a column) and their ORDER BY keys.
	lines = nil
	for m := int64(0); m < 5; m++ {
		var mn, mx string
		var inK []row
		for _, r := range rows {
			if r.k%5 != m {
				continue
			}
			if mn == "" || r.v < mn {
				mn = r.v
			}
			mx = max(mx, r.v)
			inK = append(inK, r)
		}
		// string_agg(v, v ORDER BY k): each value after the first is
		// preceded by itself, the rows in k order.
		var agg strings.Builder
		for i, r := range inK {
			if i > 0 {
				agg.WriteString(r.v)
			}
			agg.WriteString(r.v)
		}
		byV := append([]row(nil), inK...)
		sort.SliceStable(byV, func(a, b int) bool { return byV[a].v > byV[b].v })
		var ws []string
		for _, r := range byV {
			ws = append(ws, fmt.Sprint(r.w))
		}
		lines = append(lines, fmt.Sprintf("%d,%s,%s,%s,{%s}", m, mn, mx, agg.String(), strings.Join(ws, ",")))
	}
	q = "SELECT k % 5, min(v), max(v), string_agg(v, v ORDER BY k), array_agg(w ORDER BY v DESC, k) FROM r GROUP BY k % 5"
	if got := sortedResult(t, s, q); got != strings.Join(lines, "\n") {
		t.Fatalf("%s:\n%s\nwant\n%s", q, got, strings.Join(lines, "\n"))
	}
}
