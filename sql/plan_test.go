package sql

import (
	"testing"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// TestChoosePlan exercises the pure access-path decision over a table
// t (a INT, b STRING, c INT, f FLOAT) with primary key (a, b).
func TestChoosePlan(t *testing.T) {
	cols := []scopeCol{{name: "a", t: types.Int}, {name: "b", t: types.String}, {name: "c", t: types.Int}, {name: "f", t: types.Float}}
	pk := []int{0, 1}
	pkT := []types.T{types.Int, types.String}
	for _, tc := range []struct {
		name  string
		where string // "" for none
		order string // ORDER BY list, "" for none
		want  string
	}{
		{"no where", "", "", "full ordered exact"},
		{"full key", "a = 1 AND b = 'x'", "", "point ordered exact"},
		{"full key reversed operands", "1 = a AND 'x' = b", "", "point ordered exact"},
		{"full key with residual", "a = 1 AND b = 'x' AND c > 3", "", "point ordered"},
		{"key prefix", "a = 1", "", "range eq=1 ordered exact"},
		{"prefix and range", "a = 1 AND b >= 'm' AND b < 'p'", "", "range eq=1 lower=1 upper=1 ordered exact"},
		{"range on first column", "a > 5", "", "range lower=1 ordered exact"},
		{"between", "a BETWEEN 1 AND 9", "", "range lower=1 upper=1 ordered exact"},
		{"two lower bounds", "a > 1 AND a >= $1", "", "range lower=2 ordered exact"},
		{"second column only", "b = 'x'", "", "full ordered"},
		{"not equal", "a != 1", "", "full ordered"},
		{"or", "a = 1 OR a = 2", "", "full ordered"},
		{"placeholder", "a = $1 AND b = $2", "", "point ordered exact"},
		{"column on both sides", "a = c", "", "full ordered"},
		{"volatile value", "a = unique_rowid()", "", "full ordered"},
		{"float comparison with int key", "a < 2.5", "", "full ordered"},
		{"non-key column", "c = 1", "", "full ordered"},
		{"order by key", "", "a, b", "full ordered exact"},
		{"order by key desc", "", "a DESC, b DESC", "full reverse ordered exact"},
		{"order by key prefix", "a > 1", "a DESC", "range lower=1 reverse ordered exact"},
		{"mixed directions", "", "a, b DESC", "full exact"},
		{"order by second key column, first fixed", "a = 3", "b DESC", "range eq=1 reverse ordered exact"},
		{"order by fixed column anywhere", "a = 3", "b, a", "range eq=1 ordered exact"},
		{"order by second key column, first free", "", "b", "full exact"},
		{"order by non-key", "a = 1", "c", "range eq=1 exact"},
		{"order by expression", "", "a + 1", "full exact"},
		{"in on last key column", "a = 1 AND b IN ('x', 'y', $1)", "", "points=3 ordered exact"},
		{"in with residual, reversed", "a = 1 AND b IN ('x') AND c = 2", "b DESC", "points=1 reverse ordered"},
		{"in on first of two key columns", "a IN (1, 2)", "", "full ordered"},
		{"not in", "a = 1 AND b NOT IN ('x')", "", "range eq=1 ordered"},
		{"in with a column", "a = 1 AND b IN ('x', b)", "", "range eq=1 ordered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "SELECT * FROM t"
			if tc.where != "" {
				q += " WHERE " + tc.where
			}
			if tc.order != "" {
				q += " ORDER BY " + tc.order
			}
			st, err := parser.ParseOne(q)
			if err != nil {
				t.Fatal(err)
			}
			sel := st.AST.(*parser.Select)
			a := &analyzer{params: newParamSet(st.Placeholders, nil),
				tables: []scopeTable{{names: []string{"t"}, cols: cols}}}
			var where texpr
			if sel.Where != nil {
				if where, err = a.checkBool(sel.Where, "WHERE"); err != nil {
					t.Fatal(err)
				}
			}
			var order []orderItem
			for _, o := range sel.OrderBy {
				e, err := a.check(o.Expr, types.Unknown)
				if err != nil {
					t.Fatal(err)
				}
				order = append(order, orderItem{e: e, desc: o.Desc})
			}
			if got := choosePlan(pk, pkT, where, order).String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
