package sql

import (
	"bytes"
	"context"
	"math"
	"regexp"
	"strings"

	"github.com/cockroachdb/apd/v3"
	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// evalCtx is what expressions see when evaluated: the statement's
// parameters, the current row and, after aggregation, the aggregate results.
type evalCtx struct {
	ctx    context.Context
	exec   *Executor
	params []types.Datum
	row    []types.Datum
	aggs   []types.Datum
	// outer holds the rows of the enclosing queries while a correlated
	// subquery runs, innermost last.
	outer [][]types.Datum
	// stmt is shared by every context of one execution (nil outside the
	// query pipeline).
	stmt *stmtState
}

// stmtState is what one execution of a query computes once: the rows of
// uncorrelated subqueries and of virtual tables, and the catalog snapshot
// that pg_catalog functions and reg* casts read.
type stmtState struct {
	subResults map[*subqueryExpr][][]types.Datum
	cat        *catalogSnapshot
	virtRows   map[*virtualTable][][]types.Datum
	// work holds the working table of each recursive WITH item being
	// computed (recursive.go).
	work map[*workTableNode][][]types.Datum
}

func errIntOutOfRange() error {
	return pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range")
}

func errDivByZero() error {
	return pgerror.Newf(pgerror.CodeDivisionByZero, "division by zero")
}

// eval evaluates e. SQL NULL is nil.
func (ec *evalCtx) eval(e texpr) (types.Datum, error) {
	// A column, the commonest expression of a row's loop, before the type
	// switch's search of its cases.
	if c, ok := e.(*colExpr); ok {
		return ec.row[c.idx], nil
	}
	switch v := e.(type) {
	case *constExpr:
		return v.d, nil
	case *colExpr:
		return ec.row[v.idx], nil
	case *placeholderExpr:
		if v.idx >= len(ec.params) {
			return nil, pgerror.Newf(pgerror.CodeProtocolViolation, "no value supplied for placeholder $%d", v.idx+1)
		}
		d := ec.params[v.idx]
		if d == nil {
			return nil, nil
		}
		// The wire server decoded the value according to ParamTypes; a
		// value of another Go type means a caller bypassed it.
		if want := v.p.types[v.idx]; types.TypeOf(d) != want {
			if s, ok := d.(string); ok {
				return castDatum(s, want)
			}
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch,
				"placeholder $%d has type %s, expected %s", v.idx+1, typeName(types.TypeOf(d)), want)
		}
		return d, nil
	case *aggRef:
		if v.inRow {
			return ec.row[v.idx], nil
		}
		return ec.aggs[v.idx], nil
	case *binExpr:
		l, err := ec.eval(v.l)
		if err != nil {
			return nil, err
		}
		r, err := ec.eval(v.r)
		if err != nil {
			return nil, err
		}
		if l == nil || r == nil {
			return nil, nil
		}
		return evalBinary(v.op, v.t, l, r)
	case *cmpExpr:
		l, err := ec.eval(v.l)
		if err != nil {
			return nil, err
		}
		r, err := ec.eval(v.r)
		if err != nil {
			return nil, err
		}
		if l == nil || r == nil {
			return nil, nil
		}
		c, err := compareDatums(l, r)
		if err != nil {
			return nil, err
		}
		return cmpResult(v.op, c), nil
	case *andExpr:
		l, err := ec.eval(v.l)
		if err != nil {
			return nil, err
		}
		if l == false {
			return false, nil
		}
		r, err := ec.eval(v.r)
		if err != nil {
			return nil, err
		}
		switch {
		case r == false:
			return false, nil
		case l == nil || r == nil:
			return nil, nil
		}
		return true, nil
	case *orExpr:
		l, err := ec.eval(v.l)
		if err != nil {
			return nil, err
		}
		if l == true {
			return true, nil
		}
		r, err := ec.eval(v.r)
		if err != nil {
			return nil, err
		}
		switch {
		case r == true:
			return true, nil
		case l == nil || r == nil:
			return nil, nil
		}
		return false, nil
	case *notExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		b, ok := x.(bool)
		if !ok {
			return nil, errors.AssertionFailedf("NOT of a %T", x)
		}
		return !b, nil
	case *negExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		switch n := x.(type) {
		case int64:
			if n == math.MinInt64 {
				return nil, errIntOutOfRange()
			}
			return -n, nil
		case float64:
			return -n, nil
		case *apd.Decimal:
			return new(apd.Decimal).Neg(n), nil
		case types.IntervalDatum:
			return types.IntervalDatum{Months: -n.Months, Days: -n.Days, Micros: -n.Micros}, nil
		}
		return nil, errors.AssertionFailedf("negation of %T", x)
	case *isNullExpr:
		x, err := ec.eval(v.e)
		if err != nil {
			return nil, err
		}
		return (x == nil) != v.not, nil
	case *inExpr:
		return ec.evalIn(v)
	case *likeExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		m := v.compiled
		if m == nil {
			p, err := ec.eval(v.pat)
			if err != nil || p == nil {
				return nil, err
			}
			pat, ok := p.(string)
			if !ok {
				return nil, errors.AssertionFailedf("LIKE pattern of type %T", p)
			}
			m = compileLike(pat, v.ci)
		}
		if m.err != nil {
			return nil, m.err
		}
		str, ok := x.(string)
		if !ok {
			return nil, errors.AssertionFailedf("LIKE on a %T", x)
		}
		return m.re.MatchString(str) != v.not, nil
	case *castExpr:
		x, err := ec.eval(v.e)
		if err != nil {
			return nil, err
		}
		return castDatum(x, v.to)
	case *funcExpr:
		return ec.evalFunc(v)
	case *assignExpr:
		x, err := ec.eval(v.e)
		if err != nil {
			return nil, err
		}
		return v.apply(x, v.e.typ())
	default:
		return ec.evalQueryExpr(e)
	}
}

func (ec *evalCtx) evalIn(v *inExpr) (types.Datum, error) {
	x, err := ec.eval(v.e)
	if err != nil || x == nil {
		return nil, err
	}
	sawNull := false
	for _, item := range v.list {
		d, err := ec.eval(item)
		if err != nil {
			return nil, err
		}
		if d == nil {
			sawNull = true
			continue
		}
		c, err := compareDatums(x, d)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return !v.not, nil
		}
	}
	if sawNull {
		return nil, nil
	}
	return v.not, nil
}

// evalTrue evaluates a predicate: only TRUE passes, NULL and FALSE do not.
func (ec *evalCtx) evalTrue(e texpr) (bool, error) {
	if e == nil {
		return true, nil
	}
	d, err := ec.eval(e)
	if err != nil {
		return false, err
	}
	return d == true, nil
}

func cmpResult(op parser.CmpOp, c int) bool {
	switch op {
	case parser.CmpEQ:
		return c == 0
	case parser.CmpNE:
		return c != 0
	case parser.CmpLT:
		return c < 0
	case parser.CmpLE:
		return c <= 0
	case parser.CmpGT:
		return c > 0
	default:
		return c >= 0
	}
}

// compareDatums compares two non-NULL values of one type. The order agrees
// with the key encoding (package rowenc): NaN equals NaN and is above every
// other float, -0 equals +0.
func compareDatums(a, b types.Datum) (int, error) {
	// The commonest pairs first, before the types of release 2.1: min and
	// max compare every row they read.
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmpInt(x, y), nil
		}
	}
	if c, ok := compareDatums21(a, b); ok {
		return c, nil
	}
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			switch {
			case x < y:
				return -1, nil
			case x > y:
				return 1, nil
			}
			return 0, nil
		case float64:
			return compareFloats(float64(x), y), nil
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return compareFloats(x, y), nil
		case int64:
			return compareFloats(x, float64(y)), nil
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case []byte:
		if y, ok := b.([]byte); ok {
			return bytes.Compare(x, y), nil
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0, nil
			case !x:
				return -1, nil
			}
			return 1, nil
		}
	}
	return 0, errors.AssertionFailedf("comparing %T with %T", a, b)
}

func compareFloats(x, y float64) int {
	switch xn, yn := math.IsNaN(x), math.IsNaN(y); {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func evalBinary(op parser.BinaryOp, t types.T, l, r types.Datum) (types.Datum, error) {
	// INT8 on INT8 first (GROUP BY k % 16 computes it for every row):
	// none of release 2.1's operations takes two INT8s.
	if t == types.Int {
		if x, ok := l.(int64); ok {
			if y, ok := r.(int64); ok {
				return evalIntBinary(op, x, y)
			}
		}
	}
	if out, ok, err := evalBinary21(op, t, l, r); ok {
		return out, err
	}
	if op == parser.OpConcat {
		if t == types.Bytes {
			x, ok1 := l.([]byte)
			y, ok2 := r.([]byte)
			if !ok1 || !ok2 {
				return nil, errors.AssertionFailedf("BYTES || on %T and %T", l, r)
			}
			return append(append([]byte{}, x...), y...), nil
		}
		return string(types.FormatText(l)) + string(types.FormatText(r)), nil
	}
	switch t {
	case types.Int:
		x, ok1 := l.(int64)
		y, ok2 := r.(int64)
		if !ok1 || !ok2 {
			return nil, errors.AssertionFailedf("INT8 %s on %T and %T", op, l, r)
		}
		return evalIntBinary(op, x, y)
	case types.Float:
		x, ok1 := l.(float64)
		y, ok2 := r.(float64)
		if !ok1 || !ok2 {
			return nil, errors.AssertionFailedf("FLOAT8 %s on %T and %T", op, l, r)
		}
		switch op {
		case parser.OpPlus:
			return x + y, nil
		case parser.OpMinus:
			return x - y, nil
		case parser.OpMult:
			return x * y, nil
		case parser.OpDiv:
			if y == 0 {
				return nil, errDivByZero()
			}
			return x / y, nil
		case parser.OpMod:
			if y == 0 {
				return nil, errDivByZero()
			}
			return math.Mod(x, y), nil
		}
	}
	return nil, errors.AssertionFailedf("binary %s on %s", op, t)
}

// evalIntBinary computes an INT8 operation on two INT8s.
func evalIntBinary(op parser.BinaryOp, x, y int64) (types.Datum, error) {
	v, err := intBinary(op, x, y)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// intBinary is evalIntBinary without the boxing: a compiled INT8
// expression (intEval) computes with it.
func intBinary(op parser.BinaryOp, x, y int64) (int64, error) {
	switch op {
	case parser.OpBitAnd:
		return x & y, nil
	case parser.OpBitOr:
		return x | y, nil
	case parser.OpPlus:
		s := x + y
		if (s > x) != (y > 0) {
			return 0, errIntOutOfRange()
		}
		return s, nil
	case parser.OpMinus:
		s := x - y
		if (s < x) != (y > 0) {
			return 0, errIntOutOfRange()
		}
		return s, nil
	case parser.OpMult:
		if x == 0 || y == 0 {
			return 0, nil
		}
		p := x * y
		if p/y != x || (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
			return 0, errIntOutOfRange()
		}
		return p, nil
	case parser.OpDiv:
		if y == 0 {
			return 0, errDivByZero()
		}
		if x == math.MinInt64 && y == -1 {
			return 0, errIntOutOfRange()
		}
		return x / y, nil
	case parser.OpMod:
		if y == 0 {
			return 0, errDivByZero()
		}
		if y == -1 {
			return 0, nil
		}
		return x % y, nil
	}
	return 0, errors.AssertionFailedf("binary %s on %s", op, types.Int)
}

// likeMatcher is a compiled LIKE pattern. LIKE is translated to an RE2
// regular expression, which matches in linear time whatever the pattern.
type likeMatcher struct {
	re  *regexp.Regexp
	err error
}

func compileLike(pattern string, caseInsensitive bool) *likeMatcher {
	var b strings.Builder
	b.WriteString("(?s)")
	if caseInsensitive {
		b.WriteString("(?i)")
	}
	b.WriteByte('^')
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteByte('.')
		case '\\':
			if i+1 >= len(pattern) {
				return &likeMatcher{err: pgerror.Newf("22025", "LIKE pattern must not end with escape character")}
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteByte('$')
	re, err := regexp.Compile(b.String())
	if err != nil {
		return &likeMatcher{err: pgerror.WithCode(err, pgerror.CodeInvalidParameterValue)}
	}
	return &likeMatcher{re: re}
}
