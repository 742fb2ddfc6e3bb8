package sql

import (
	"fmt"
	"math"
	"testing"
	"unsafe"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// TestCompileIntExprMatchesInterpreter evaluates INT8 expressions both ways,
// compiled (groupfast.go) and with the interpreter, over rows of edge
// values, NULLs and a non-INT8 datum: the compiled form must give the same
// value, the same NULL and the same error, or decline the row (ok false)
// where a datum is not an INT8.
func TestCompileIntExprMatchesInterpreter(t *testing.T) {
	col := func(i int) texpr { return &colExpr{idx: i, t: types.Int} }
	num := func(v int64) texpr { return &constExpr{t: types.Int, d: v} }
	null := &constExpr{t: types.Int}
	ops := []parser.BinaryOp{parser.OpBitAnd, parser.OpBitOr, parser.OpPlus, parser.OpMinus, parser.OpMult, parser.OpDiv, parser.OpMod}
	leaves := []texpr{col(0), col(1), num(0), num(-1), num(16), num(math.MaxInt64), num(math.MinInt64), null}
	var exprs []texpr
	exprs = append(exprs, leaves...)
	for _, op := range ops {
		for _, l := range leaves {
			for _, r := range leaves {
				exprs = append(exprs, &binExpr{op: op, l: l, r: r, t: types.Int})
			}
		}
		// Nested: (c0 op 16) % c1 and c1 - (c0 op c1).
		exprs = append(exprs,
			&binExpr{op: parser.OpMod, l: &binExpr{op: op, l: col(0), r: num(16), t: types.Int}, r: col(1), t: types.Int},
			&binExpr{op: parser.OpMinus, l: col(1), r: &binExpr{op: op, l: col(0), r: col(1), t: types.Int}, t: types.Int})
	}
	vals := []types.Datum{nil, int64(0), int64(1), int64(-1), int64(16), int64(1000003), int64(-77), int64(math.MaxInt64), int64(math.MinInt64)}
	var rows [][]types.Datum
	for _, a := range vals {
		for _, b := range vals {
			rows = append(rows, []types.Datum{a, b})
		}
	}
	rows = append(rows, []types.Datum{"x", int64(3)}, []types.Datum{int64(3), "x"})
	compiled := 0
	for _, e := range exprs {
		f := compileIntExpr(e)
		if f == nil {
			t.Fatalf("%s: not compiled", exprString(e))
		}
		compiled++
		for _, row := range rows {
			v, isNull, ok, err := f(row)
			_, strRow := row[0].(string)
			if _, s := row[1].(string); s {
				strRow = true
			}
			if !ok {
				if !strRow {
					t.Fatalf("%s on %v: declined a row of INT8s", exprString(e), row)
				}
				continue
			}
			ec := &evalCtx{row: row}
			want, wantErr := ec.eval(e)
			if got, exp := fmt.Sprint(err), fmt.Sprint(wantErr); got != exp {
				t.Fatalf("%s on %v: error %q, the interpreter's %q", exprString(e), row, got, exp)
			}
			if err != nil {
				continue
			}
			if isNull != (want == nil) || (!isNull && want != v) {
				t.Fatalf("%s on %v: %d (null %v), the interpreter's %v", exprString(e), row, v, isNull, want)
			}
		}
	}
	// What is not an INT8 expression of those parts is not compiled.
	for _, e := range []texpr{
		&colExpr{idx: 0, t: types.Float},
		&constExpr{t: types.String, d: "a"},
		&binExpr{op: parser.OpConcat, l: col(0), r: col(1), t: types.Int},
		&binExpr{op: parser.OpMinus, l: &colExpr{idx: 0, t: types.Date}, r: &colExpr{idx: 1, t: types.Date}, t: types.Int},
		&binExpr{op: parser.OpPlus, l: col(0), r: &colExpr{idx: 1, t: types.Float}, t: types.Float},
	} {
		if compileIntExpr(e) != nil {
			t.Errorf("%s: compiled", exprString(e))
		}
	}
	t.Logf("%d expressions over %d rows", compiled, len(rows))
}

func exprString(e texpr) string {
	switch v := e.(type) {
	case *colExpr:
		return fmt.Sprintf("c%d", v.idx)
	case *constExpr:
		return fmt.Sprint(v.d)
	case *binExpr:
		return fmt.Sprintf("(%s %s %s)", exprString(v.l), v.op, exprString(v.r))
	}
	return fmt.Sprintf("%T", e)
}

// TestFastAddersMatchAdd feeds the same rows to each aggregate through its
// fast path (aggAdder.addRow) and through aggState.add: the results must be
// equal, NULLs, strings, integers and booleans included; an aggregate
// without a fast path goes through add.
func TestFastAddersMatchAdd(t *testing.T) {
	col := func(i int, ty types.T) texpr { return &colExpr{idx: i, t: ty} }
	rows := [][]types.Datum{
		{int64(5), "m", nil},
		{nil, "b", true},
		{int64(-3), nil, false},
		{int64(900), "zz", nil},
		{int64(-3), "a", true},
		{nil, nil, nil},
	}
	aggs := []*aggregate{
		{kind: "count", t: types.Int},
		{kind: "count", arg: col(0, types.Int), t: types.Int},
		{kind: "min", arg: col(0, types.Int), t: types.Int},
		{kind: "max", arg: col(0, types.Int), t: types.Int},
		{kind: "min", arg: col(1, types.String), t: types.String},
		{kind: "max", arg: col(1, types.String), t: types.String},
		{kind: "min", arg: col(1, types.String), t: types.String, distinct: true},
		{kind: "max", arg: col(0, types.Int), t: types.Int, filter: col(2, types.Bool)},
		{kind: "count", t: types.Int, filter: col(2, types.Bool)},
		{kind: "bool_and", arg: col(2, types.Bool), t: types.Bool},
	}
	wantKinds := []aggFastKind{aggCountStar, aggGeneric, aggMin, aggMax, aggMin, aggMax, aggGeneric, aggGeneric, aggGeneric, aggGeneric}
	for i, a := range aggs {
		f := fastAdder(a)
		if f.kind != wantKinds[i] {
			t.Errorf("aggregate %d (%s): fast path %d, want %d", i, a.kind, f.kind, wantKinds[i])
		}
		for _, prefix := range []int{0, 1, 2, len(rows)} {
			fast := aggState{agg: a, keep: &keeper{}}
			slow := aggState{agg: a, keep: &keeper{}}
			for _, r := range rows[:prefix] {
				if err := f.addRow(&fast, &evalCtx{row: r}); err != nil {
					t.Fatal(err)
				}
				if err := slow.add(&evalCtx{row: r}); err != nil {
					t.Fatal(err)
				}
			}
			got, err1 := fast.result()
			want, err2 := slow.result()
			if fmt.Sprint(got, err1) != fmt.Sprint(want, err2) || fast.count != slow.count {
				t.Errorf("aggregate %d (%s) over %d rows: fast %v (%v, count %d), add %v (%v, count %d)",
					i, a.kind, prefix, got, err1, fast.count, want, err2, slow.count)
			}
		}
	}
	// A kept value outlives the borrowed row it came from: the fast path
	// copies it (the row's string points into a buffer overwritten next).
	s := aggState{agg: aggs[4], keep: &keeper{}}
	buf := []byte("abc")
	row := []types.Datum{nil, unsafe.String(&buf[0], len(buf)), nil}
	if err := fastAdder(aggs[4]).addRow(&s, &evalCtx{row: row}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "zzz")
	if got, _ := s.result(); got != "abc" {
		t.Errorf("min kept %v, want abc", got)
	}
}
