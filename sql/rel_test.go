package sql

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// rowsNode is a leaf returning fixed rows, for testing operators alone.
type rowsNode struct {
	w    int
	rows [][]types.Datum
}

func (n *rowsNode) width() int                            { return n.w }
func (n *rowsNode) run(*evalCtx) ([][]types.Datum, error) { return n.rows, nil }
func (n *rowsNode) explain(w *explainWriter)              { w.add("rows") }
func col(i int) texpr                                     { return &colExpr{idx: i, t: types.Int} }
func testEval() *evalCtx                                  { return &evalCtx{ctx: context.Background()} }
func eq(l, r texpr) texpr                                 { return &cmpExpr{op: parser.CmpEQ, l: l, r: r} }
func lt(l, r texpr) texpr                                 { return &cmpExpr{op: parser.CmpLT, l: l, r: r} }
func intRow(vals ...any) []types.Datum {
	out := make([]types.Datum, len(vals))
	for i, v := range vals {
		if n, ok := v.(int); ok {
			out[i] = int64(n)
		}
	}
	return out
}

func runNode(t *testing.T, n relNode) []string {
	t.Helper()
	rows, err := n.run(testEval())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		var parts []string
		for _, d := range r {
			parts = append(parts, string(formatForTest(d)))
		}
		out[i] = strings.Join(parts, ",")
	}
	return out
}

func formatForTest(d types.Datum) []byte {
	if d == nil {
		return []byte("NULL")
	}
	return types.FormatText(d)
}

// TestHashJoinMatchesNestedLoop checks, on random inputs with NULLs and
// duplicates, that every join kind gives the same rows with hash keys as
// with the equality left as a plain condition.
func TestHashJoinMatchesNestedLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int) *rowsNode {
		rn := &rowsNode{w: 2}
		for i := 0; i < n; i++ {
			var k any = rng.IntN(5)
			if rng.IntN(6) == 0 {
				k = nil
			}
			rn.rows = append(rn.rows, intRow(k, i))
		}
		return rn
	}
	for iter := 0; iter < 50; iter++ {
		l, r := gen(rng.IntN(8)), gen(rng.IntN(8))
		for _, kind := range []parser.JoinKind{parser.JoinInner, parser.JoinLeft, parser.JoinRight, parser.JoinFull} {
			// l.k = r.k AND l.i < r.i
			cond := &andExpr{l: eq(col(0), col(2)), r: lt(col(1), col(3))}
			nested := &joinNode{kind: kind, left: l, right: r, cond: cond}
			hashed := &joinNode{kind: kind, left: l, right: r}
			splitJoinCondition(hashed, cond, 2)
			if len(hashed.eqLeft) != 1 || hashed.cond == nil {
				t.Fatalf("split: %d keys, residual %v", len(hashed.eqLeft), hashed.cond)
			}
			a, b := runNode(t, nested), runNode(t, hashed)
			sort.Strings(a)
			sort.Strings(b)
			if strings.Join(a, ";") != strings.Join(b, ";") {
				t.Fatalf("kind %v, l=%v r=%v:\nnested %v\nhashed %v", kind, l.rows, r.rows, a, b)
			}
		}
	}
}

func TestJoinKinds(t *testing.T) {
	l := &rowsNode{w: 1, rows: [][]types.Datum{intRow(1), intRow(2), intRow(nil)}}
	r := &rowsNode{w: 1, rows: [][]types.Datum{intRow(2), intRow(3), intRow(nil)}}
	for _, tc := range []struct {
		kind parser.JoinKind
		want string
	}{
		{parser.JoinInner, "2,2"},
		{parser.JoinLeft, "1,NULL;2,2;NULL,NULL"},
		{parser.JoinRight, "2,2;NULL,3;NULL,NULL"},
		{parser.JoinFull, "1,NULL;2,2;NULL,NULL;NULL,3;NULL,NULL"},
	} {
		n := &joinNode{kind: tc.kind, left: l, right: r}
		splitJoinCondition(n, eq(col(0), col(1)), 1)
		if got := strings.Join(runNode(t, n), ";"); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.kind, got, tc.want)
		}
	}
	cross := &joinNode{kind: parser.JoinCross, left: l, right: r}
	if got := len(runNode(t, cross)); got != 9 {
		t.Errorf("cross join: %d rows, want 9", got)
	}
}

func TestGroupNode(t *testing.T) {
	in := &rowsNode{w: 2, rows: [][]types.Datum{intRow(1, 10), intRow(nil, 5), intRow(1, 20), intRow(nil, 7), intRow(2, nil)}}
	sum := &aggregate{kind: "sum", arg: col(1), t: types.Int, acc: accInt}
	cnt := &aggregate{kind: "count", t: types.Int}
	g := &groupNode{in: in, keys: []texpr{col(0)}, aggs: []*aggregate{sum, cnt}}
	// NULL keys form one group; groups come in order of first appearance.
	if got := strings.Join(runNode(t, g), ";"); got != "1,10,30,2;NULL,5,12,2;2,NULL,NULL,1" {
		t.Errorf("group by: %s", got)
	}
	// Without keys, one row even over no input.
	empty := &groupNode{in: &rowsNode{w: 2}, aggs: []*aggregate{sum, cnt}}
	if got := strings.Join(runNode(t, empty), ";"); got != "NULL,NULL,NULL,0" {
		t.Errorf("scalar aggregate over nothing: %s", got)
	}
}

func TestSetOpNode(t *testing.T) {
	l := &rowsNode{w: 1, rows: [][]types.Datum{intRow(1), intRow(1), intRow(2), intRow(nil), intRow(3)}}
	r := &rowsNode{w: 1, rows: [][]types.Datum{intRow(1), intRow(nil), intRow(4)}}
	for _, tc := range []struct {
		kind parser.SetOpKind
		all  bool
		want string
	}{
		{parser.Union, false, "1;2;NULL;3;4"},
		{parser.Union, true, "1;1;2;NULL;3;1;NULL;4"},
		{parser.Intersect, false, "1;NULL"},
		{parser.Intersect, true, "1;NULL"},
		{parser.Except, false, "2;3"},
		{parser.Except, true, "1;2;3"},
	} {
		n := &setOpNode{kind: tc.kind, all: tc.all, left: l, right: r}
		if got := strings.Join(runNode(t, n), ";"); got != tc.want {
			t.Errorf("%v all=%v: %s, want %s", tc.kind, tc.all, got, tc.want)
		}
	}
}

func TestSortDistinctLimit(t *testing.T) {
	in := &rowsNode{w: 1, rows: [][]types.Datum{intRow(2), intRow(nil), intRow(1), intRow(2)}}
	for _, tc := range []struct {
		desc  bool
		nulls parser.NullsOrder
		want  string
	}{
		{false, parser.NullsDefault, "1;2;2;NULL"},
		{true, parser.NullsDefault, "NULL;2;2;1"},
		{false, parser.NullsFirst, "NULL;1;2;2"},
		{true, parser.NullsLast, "2;2;1;NULL"},
	} {
		n := &sortNode{in: &rowsNode{w: 1, rows: append([][]types.Datum(nil), in.rows...)},
			keys: []orderItem{{e: col(0), desc: tc.desc, nulls: tc.nulls}}}
		if got := strings.Join(runNode(t, n), ";"); got != tc.want {
			t.Errorf("desc=%v nulls=%v: %s, want %s", tc.desc, tc.nulls, got, tc.want)
		}
	}
	d := &distinctNode{in: in, n: 1}
	if got := strings.Join(runNode(t, d), ";"); got != "2;NULL;1" {
		t.Errorf("distinct: %s", got)
	}
	lim := &limitNode{in: in, limit: &constExpr{t: types.Int, d: int64(2)}, offset: &constExpr{t: types.Int, d: int64(1)}}
	if got := strings.Join(runNode(t, lim), ";"); got != "NULL;1" {
		t.Errorf("limit 2 offset 1: %s", got)
	}
}

// TestCatalogTablesScan reads every pg_catalog and information_schema table
// over a schema with a table of each kind, so a row whose values do not fit
// its columns' types fails here rather than on a client.
func TestCatalogTablesScan(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE kv (k INT8 PRIMARY KEY, v TEXT DEFAULT 'x', f FLOAT, b BYTES, o BOOL)")
	mustExec(t, s, "CREATE TABLE norowid (a INT)")
	for _, ct := range catalogTables {
		if _, err := exec(t, s, "SELECT * FROM "+ct.name); err != nil {
			t.Errorf("%s: %v", ct.name, err)
		}
	}
}
