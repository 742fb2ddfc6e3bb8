package sql

import (
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// The GROUP BY loop's fast paths. A GROUP BY over a table evaluates its
// key and feeds its aggregates once per row: through the interpreter
// (evalCtx.eval, aggState.add) that is a type switch per expression node,
// a boxed INT8 per arithmetic result and a dispatch on the aggregate's
// name. For the commonest shapes (an INT8 key computed from columns and
// constants, count(*), min or max of a column) the loop calls a function
// built once per query instead, with the interpreter's results to the
// value: same NULLs, same errors, and the interpreter itself wherever a
// row holds anything else.

// intEval is an INT8 expression compiled for a row loop. It returns the
// value, or null for NULL; ok is false when a datum of the row is not an
// INT8 (the caller then evaluates the expression with the interpreter,
// which knows what to do with it).
type intEval func(row []types.Datum) (v int64, null, ok bool, err error)

// compileIntExpr compiles e when it is an INT8 expression made of INT8
// columns, INT8 constants and intBinary's operators on them; nil
// otherwise.
func compileIntExpr(e texpr) intEval {
	switch v := e.(type) {
	case *colExpr:
		if v.t != types.Int {
			return nil
		}
		idx := v.idx
		return func(row []types.Datum) (int64, bool, bool, error) {
			switch d := row[idx].(type) {
			case int64:
				return d, false, true, nil
			case nil:
				return 0, true, true, nil
			}
			return 0, false, false, nil
		}
	case *constExpr:
		if v.t != types.Int {
			return nil
		}
		switch d := v.d.(type) {
		case int64:
			return func([]types.Datum) (int64, bool, bool, error) { return d, false, true, nil }
		case nil:
			return func([]types.Datum) (int64, bool, bool, error) { return 0, true, true, nil }
		}
		return nil
	case *binExpr:
		if v.t != types.Int || v.l.typ() != types.Int || v.r.typ() != types.Int || !intOperator(v.op) {
			return nil
		}
		op := v.op
		// A column and a constant (GROUP BY k % 16): one call, no nesting.
		if c, ok := v.l.(*colExpr); ok {
			if k, ok := v.r.(*constExpr); ok {
				if y, ok := k.d.(int64); ok {
					idx := c.idx
					return func(row []types.Datum) (int64, bool, bool, error) {
						switch x := row[idx].(type) {
						case int64:
							r, err := intBinary(op, x, y)
							return r, false, true, err
						case nil:
							return 0, true, true, nil
						}
						return 0, false, false, nil
					}
				}
			}
		}
		l, r := compileIntExpr(v.l), compileIntExpr(v.r)
		if l == nil || r == nil {
			return nil
		}
		// As the interpreter: the left operand, then the right, then
		// NULL if either is NULL, then the operation.
		return func(row []types.Datum) (int64, bool, bool, error) {
			x, xnull, ok, err := l(row)
			if !ok || err != nil {
				return 0, false, ok, err
			}
			y, ynull, ok, err := r(row)
			if !ok || err != nil {
				return 0, false, ok, err
			}
			if xnull || ynull {
				return 0, true, true, nil
			}
			res, err := intBinary(op, x, y)
			return res, false, true, err
		}
	}
	return nil
}

// intOperator reports whether intBinary computes op.
func intOperator(op parser.BinaryOp) bool {
	switch op {
	case parser.OpBitAnd, parser.OpBitOr, parser.OpPlus, parser.OpMinus, parser.OpMult, parser.OpDiv, parser.OpMod:
		return true
	}
	return false
}

// aggAdder says how the GROUP BY loop adds a row to one aggregate.
type aggAdder struct {
	kind aggFastKind
	col  int // aggMin, aggMax: the column
}

type aggFastKind uint8

const (
	aggGeneric   aggFastKind = iota // aggState.add
	aggCountStar                    // count(*) without FILTER
	aggMin                          // min(column) without FILTER or DISTINCT
	aggMax                          // max(column) without FILTER or DISTINCT
)

// fastAdder returns a's fast path in the GROUP BY loop, if it has one.
func fastAdder(a *aggregate) aggAdder {
	if a.filter != nil {
		return aggAdder{}
	}
	if a.arg == nil {
		return aggAdder{kind: aggCountStar}
	}
	c, ok := a.arg.(*colExpr)
	if !ok || a.distinct {
		return aggAdder{}
	}
	switch a.kind {
	case "min":
		return aggAdder{kind: aggMin, col: c.idx}
	case "max":
		return aggAdder{kind: aggMax, col: c.idx}
	}
	return aggAdder{}
}

// addRow adds the row in ec (its rc.row) to s, as s.add(ec) would.
func (f aggAdder) addRow(s *aggState, ec *evalCtx) error {
	switch f.kind {
	case aggCountStar:
		s.count++
		return nil
	case aggMin, aggMax:
		d := ec.row[f.col]
		if d == nil {
			return nil
		}
		s.count++
		if s.val == nil {
			s.val = s.kept(d)
			return nil
		}
		c, err := compareDatums(d, s.val)
		if err != nil {
			return err
		}
		if (f.kind == aggMin && c < 0) || (f.kind == aggMax && c > 0) {
			s.val = s.kept(d)
		}
		return nil
	}
	return s.add(ec)
}
