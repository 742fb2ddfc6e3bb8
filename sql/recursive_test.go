package sql

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// countTo is WITH RECURSIVE t (n) AS (<anchor> UNION [ALL] SELECT <step>
// FROM t WHERE n < limit): the recursive term over its working table.
func countTo(anchor [][]types.Datum, step texpr, limit int64, all bool) *recursiveNode {
	work := &workTableNode{name: "t", w: 1}
	rec := &projectNode{in: &filterNode{in: work, cond: lt(col(0), &constExpr{t: types.Int, d: limit})},
		exprs: []texpr{step}}
	return &recursiveNode{name: "t", anchor: &rowsNode{w: 1, rows: anchor}, rec: rec, work: work, all: all,
		casts: make([]types.T, 1)}
}

func plusConst(k int64) texpr {
	return &binExpr{op: parser.OpPlus, l: col(0), r: &constExpr{t: types.Int, d: k}, t: types.Int}
}

// TestRecursiveNode checks the iteration: each run reads the rows the last
// one added; UNION drops rows produced before (the anchor's duplicates
// too), UNION ALL keeps them; the order is the order produced.
func TestRecursiveNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		anchor [][]types.Datum
		step   texpr
		limit  int64
		all    bool
		want   []string
	}{
		{"count", [][]types.Datum{intRow(1)}, plusConst(1), 4, true, []string{"1", "2", "3", "4"}},
		{"all keeps duplicates", [][]types.Datum{intRow(1), intRow(1)}, plusConst(1), 2, true, []string{"1", "1", "2", "2"}},
		{"union drops duplicates", [][]types.Datum{intRow(1), intRow(1), intRow(2)}, plusConst(1), 3, false, []string{"1", "2", "3"}},
		// n -> n % 3 + 1 cycles 1, 2, 3, 1: UNION ends it.
		{"union ends a cycle", [][]types.Datum{intRow(1)},
			&binExpr{op: parser.OpPlus, l: &binExpr{op: parser.OpMod, l: col(0), r: &constExpr{t: types.Int, d: int64(3)}, t: types.Int},
				r: &constExpr{t: types.Int, d: int64(1)}, t: types.Int}, 100, false, []string{"1", "2", "3"}},
		{"empty anchor", nil, plusConst(1), 4, true, []string{}},
		{"null rows", [][]types.Datum{{nil}, {nil}}, plusConst(1), 4, false, []string{"NULL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runNode(t, countTo(tc.anchor, tc.step, tc.limit, tc.all))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRecursiveBound: a recursion without an end fails with 54000 at its
// bound, and stops when its statement is canceled.
func TestRecursiveBound(t *testing.T) {
	n := countTo([][]types.Datum{intRow(1)}, col(0), 2, true) // n < 2 holds for ever: 1, 1, 1, ...
	n.maxRows = 1000
	_, err := n.run(testEval())
	if code := pgerror.Flatten(err).Code; code != pgerror.CodeProgramLimitExceeded {
		t.Fatalf("got %v (%s), want 54000", err, code)
	}
	n.maxRows = 0
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.run(&evalCtx{ctx: ctx}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the context's error", err)
	}
}
