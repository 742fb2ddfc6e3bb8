package sql

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// The types of release 2.1 in expressions: DECIMAL arithmetic, date and
// time arithmetic with INTERVAL, JSONB's operators, their comparisons,
// casts and assignment to columns with a modifier (INT4, VARCHAR(n),
// DECIMAL(p,s)).

// assignExpr applies a column's type modifier to the value assigned to it
// (types.Assign): range checks (22003), length checks (22001), padding
// and rounding.
type assignExpr struct {
	e        texpr
	mod      types.Mod
	explicit bool // a cast: strings are cut, not refused
}

func (e *assignExpr) typ() types.T { return e.e.typ() }

func assignErr(err error) error {
	var ae *types.AssignError
	if errors.As(err, &ae) {
		return pgerror.Newf(ae.Code, "%s", ae.Msg)
	}
	return err
}

// coerceColumn converts e for assignment to column c: coerce, then c's
// modifier.
func coerceColumn(e texpr, c *catalog.ColumnDescriptor) (texpr, error) {
	te, err := coerce(e, c.Type, c.Name)
	if err != nil || c.Mod.IsZero() {
		return te, err
	}
	return withMod(te, c.Mod)
}

// withMod wraps te with a modifier, folding constants.
func withMod(te texpr, mod types.Mod) (texpr, error) { return applyMod(te, mod, false) }

// castMod wraps te with the modifier of an explicit cast.
func castMod(te texpr, mod types.Mod) (texpr, error) { return applyMod(te, mod, true) }

func applyMod(te texpr, mod types.Mod, explicit bool) (texpr, error) {
	if k, ok := te.(*constExpr); ok {
		d, err := (&assignExpr{mod: mod, explicit: explicit}).apply(k.d, k.t)
		if err != nil {
			return nil, err
		}
		return &constExpr{t: k.t, d: d}, nil
	}
	return &assignExpr{e: te, mod: mod, explicit: explicit}, nil
}

func (e *assignExpr) apply(d types.Datum, t types.T) (types.Datum, error) {
	var err error
	if e.explicit {
		d, err = types.Cast(d, t, e.mod)
	} else {
		d, err = types.Assign(d, t, e.mod)
	}
	return d, assignErr(err)
}

func isTemporal(t types.T) bool {
	return t == types.Date || t == types.Timestamp || t == types.TimestampTZ
}

func isNumeric(t types.T) bool { return t == types.Int || t == types.Float || t == types.Decimal }

// widerTemporal is the type two temporal types compare in: DATE <
// TIMESTAMP < TIMESTAMPTZ.
func widerTemporal(a, b types.T) types.T {
	if a == types.TimestampTZ || b == types.TimestampTZ {
		return types.TimestampTZ
	}
	if a == types.Timestamp || b == types.Timestamp {
		return types.Timestamp
	}
	return types.Date
}

// unify21 makes two operands of release 2.1's types comparable: INT8 and
// FLOAT8 with DECIMAL compare as DECIMAL, dates and timestamps as the
// wider of the two. ok is false when it does not apply.
func unify21(l, r texpr) (texpr, texpr, bool) {
	lt, rt := l.typ(), r.typ()
	switch {
	case isNumeric(lt) && isNumeric(rt) && (lt == types.Decimal || rt == types.Decimal):
		return castTo(l, types.Decimal), castTo(r, types.Decimal), true
	case isTemporal(lt) && isTemporal(rt):
		w := widerTemporal(lt, rt)
		return castTo(l, w), castTo(r, w), true
	}
	return nil, nil, false
}

func castTo(e texpr, t types.T) texpr {
	if e.typ() == t {
		return e
	}
	out, err := foldCast(&castExpr{e: e, to: t})
	if err != nil {
		return &castExpr{e: e, to: t}
	}
	return out
}

// checkBinary21 types the arithmetic and JSONB operators on release 2.1's
// types. handled is false when neither operand is one of them.
func (a *analyzer) checkBinary21(v *parser.BinaryExpr, desired types.T) (texpr, bool, error) {
	switch v.Op {
	case parser.OpJSONGet, parser.OpJSONGetText:
		l, err := a.check(v.Left, types.JSONB)
		if err != nil {
			return nil, true, err
		}
		r, err := a.check(v.Right, types.Unknown)
		if err != nil {
			return nil, true, err
		}
		if r, err = a.settle(v.Right, r, types.String); err != nil {
			return nil, true, err
		}
		if l.typ() == types.Unknown {
			l = castTo(l, types.JSONB)
		}
		if r.typ() == types.Unknown {
			r = castTo(r, types.String)
		}
		if l.typ() != types.JSONB || (r.typ() != types.String && r.typ() != types.Int) {
			return nil, true, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> %s <%s>",
				typeName(l.typ()), v.Op, typeName(r.typ()))
		}
		t := types.JSONB
		if v.Op == parser.OpJSONGetText {
			t = types.String
		}
		return &binExpr{op: v.Op, l: l, r: r, t: t}, true, nil
	case parser.OpContains, parser.OpContainedBy:
		l, r, err := a.checkPair(v.Left, v.Right, types.JSONB)
		if err != nil {
			return nil, true, err
		}
		if l.typ() == types.Unknown {
			l = castTo(l, types.JSONB)
		}
		if r.typ() == types.Unknown {
			r = castTo(r, types.JSONB)
		}
		if l.typ() != types.JSONB || r.typ() != types.JSONB {
			return nil, true, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> %s <%s>",
				typeName(l.typ()), v.Op, typeName(r.typ()))
		}
		return &binExpr{op: v.Op, l: l, r: r, t: types.Bool}, true, nil
	}
	return nil, false, nil
}

// checkArithPair checks the operands of an arithmetic operator like
// checkPair, except that an untyped string literal beside a date, a
// time or an interval takes the type PostgreSQL's operator resolution
// gives it: ts + 'literal' and ts - 'literal'... an INTERVAL for +, the
// other operand's type for - (ts - '2024-01-01' is ts - ts).
func (a *analyzer) checkArithPair(v *parser.BinaryExpr, desired types.T) (texpr, texpr, error) {
	first, second := v.Left, v.Right
	swapped := a.rank(v.Right) < a.rank(v.Left)
	if swapped {
		first, second = v.Right, v.Left
	}
	f, err := a.check(first, desired)
	if err != nil {
		return nil, nil, err
	}
	ft := f.typ()
	hintT := hint(ft, desired)
	if isTemporal(ft) || ft == types.Interval {
		switch second.(type) {
		case *parser.StrVal:
			if ft == types.Interval || v.Op == parser.OpPlus || swapped {
				hintT = types.Interval
			}
		case *parser.NumVal:
			hintT = types.Int
		}
	}
	s, err := a.check(second, hintT)
	if err != nil {
		return nil, nil, err
	}
	if f, err = a.settle(first, f, s.typ()); err != nil {
		return nil, nil, err
	}
	if swapped {
		return s, f, nil
	}
	return f, s, nil
}

// is21 reports whether t is one of release 2.1's types.
func is21(t types.T) bool { return t >= types.Decimal && !t.IsArray() }

// binary21 types arithmetic where an operand is of release 2.1's types.
func binary21(v *parser.BinaryExpr, l, r texpr) (texpr, error) {
	lt, rt := l.typ(), r.typ()
	bad := func() (texpr, error) {
		return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> %s <%s>",
			typeName(lt), v.Op, typeName(rt))
	}
	arith := v.Op == parser.OpPlus || v.Op == parser.OpMinus || v.Op == parser.OpMult || v.Op == parser.OpDiv || v.Op == parser.OpMod
	if !arith {
		return bad()
	}
	switch {
	case (lt == types.Decimal || rt == types.Decimal) && (isNumeric(lt) || lt == types.Unknown) && (isNumeric(rt) || rt == types.Unknown):
		if lt == types.Float || rt == types.Float {
			return &binExpr{op: v.Op, l: castTo(l, types.Float), r: castTo(r, types.Float), t: types.Float}, nil
		}
		return &binExpr{op: v.Op, l: castTo(l, types.Decimal), r: castTo(r, types.Decimal), t: types.Decimal}, nil
	case lt == types.Date && rt == types.Int && (v.Op == parser.OpPlus || v.Op == parser.OpMinus),
		lt == types.Int && rt == types.Date && v.Op == parser.OpPlus:
		return &binExpr{op: v.Op, l: l, r: r, t: types.Date}, nil
	case lt == types.Date && rt == types.Date && v.Op == parser.OpMinus:
		return &binExpr{op: v.Op, l: l, r: r, t: types.Int}, nil
	case isTemporal(lt) && rt == types.Interval && (v.Op == parser.OpPlus || v.Op == parser.OpMinus),
		lt == types.Interval && isTemporal(rt) && v.Op == parser.OpPlus:
		t := lt
		if t == types.Interval {
			t = rt
		}
		if t == types.Date {
			t = types.Timestamp
		}
		return &binExpr{op: v.Op, l: l, r: r, t: t}, nil
	case isTemporal(lt) && isTemporal(rt) && v.Op == parser.OpMinus:
		w := widerTemporal(lt, rt)
		if w == types.Date {
			return &binExpr{op: v.Op, l: l, r: r, t: types.Int}, nil
		}
		return &binExpr{op: v.Op, l: castTo(l, w), r: castTo(r, w), t: types.Interval}, nil
	case lt == types.Interval && rt == types.Interval && (v.Op == parser.OpPlus || v.Op == parser.OpMinus):
		return &binExpr{op: v.Op, l: l, r: r, t: types.Interval}, nil
	case lt == types.Interval && (rt == types.Int || rt == types.Float) && (v.Op == parser.OpMult || v.Op == parser.OpDiv),
		(lt == types.Int || lt == types.Float) && rt == types.Interval && v.Op == parser.OpMult:
		return &binExpr{op: v.Op, l: l, r: r, t: types.Interval}, nil
	}
	return bad()
}

func errDecimal(err error) error {
	return pgerror.WithCode(errors.Wrap(err, "numeric"), pgerror.CodeNumericValueOutOfRange)
}

// evalBinary21 evaluates the operators checkBinary21 typed; ok is false
// for another operator.
func evalBinary21(op parser.BinaryOp, t types.T, l, r types.Datum) (types.Datum, bool, error) {
	switch op {
	case parser.OpJSONGet, parser.OpJSONGetText:
		j, ok := l.(types.JSONDatum)
		if !ok {
			return nil, true, errors.AssertionFailedf("%s on %T", op, l)
		}
		v := j.Decode()
		var out any
		found := false
		switch k := r.(type) {
		case string:
			if m, ok := v.(map[string]any); ok {
				out, found = m[k]
			}
		case int64:
			if arr, ok := v.([]any); ok {
				if k < 0 {
					k += int64(len(arr))
				}
				if k >= 0 && k < int64(len(arr)) {
					out, found = arr[k], true
				}
			}
		}
		if !found {
			return nil, true, nil
		}
		if op == parser.OpJSONGet {
			return types.JSONDatum(types.EncodeJSON(out)), true, nil
		}
		s, ok := types.JSONText(out)
		if !ok {
			return nil, true, nil
		}
		return s, true, nil
	case parser.OpContains, parser.OpContainedBy:
		x, ok1 := l.(types.JSONDatum)
		y, ok2 := r.(types.JSONDatum)
		if !ok1 || !ok2 {
			return nil, true, errors.AssertionFailedf("%s on %T and %T", op, l, r)
		}
		if op == parser.OpContainedBy {
			x, y = y, x
		}
		return types.JSONContains(x.Decode(), y.Decode()), true, nil
	}
	switch t {
	case types.Decimal:
		x, ok1 := l.(*apd.Decimal)
		y, ok2 := r.(*apd.Decimal)
		if !ok1 || !ok2 {
			return nil, true, errors.AssertionFailedf("DECIMAL %s on %T and %T", op, l, r)
		}
		out := new(apd.Decimal)
		var err error
		switch op {
		case parser.OpPlus:
			_, err = types.DecimalCtx.Add(out, x, y)
		case parser.OpMinus:
			_, err = types.DecimalCtx.Sub(out, x, y)
		case parser.OpMult:
			_, err = types.DecimalCtx.Mul(out, x, y)
		case parser.OpDiv, parser.OpMod:
			if y.IsZero() && y.Form == apd.Finite {
				return nil, true, errDivByZero()
			}
			if op == parser.OpMod {
				_, err = types.DecimalCtx.Rem(out, x, y)
				break
			}
			// PostgreSQL's numeric_div: at least 16 significant digits
			// and at least either operand's scale (select_div_scale).
			out, err = types.DivNumeric(x, y)
		default:
			return nil, true, errors.AssertionFailedf("DECIMAL %s", op)
		}
		if err != nil {
			return nil, true, errDecimal(err)
		}
		return out, true, nil
	case types.Date:
		switch x := l.(type) {
		case types.DateDatum:
			n := r.(int64)
			if op == parser.OpMinus {
				n = -n
			}
			return x + types.DateDatum(n), true, nil
		case int64:
			return r.(types.DateDatum) + types.DateDatum(x), true, nil
		}
	case types.Int:
		if x, ok := l.(types.DateDatum); ok {
			return int64(x - r.(types.DateDatum)), true, nil
		}
	case types.Timestamp, types.TimestampTZ:
		var base time.Time
		var iv types.IntervalDatum
		sign := int64(1)
		switch x := l.(type) {
		case types.DateDatum:
			base = x.Time()
			iv = r.(types.IntervalDatum)
		case types.TimestampDatum:
			base = x.Time
			iv = r.(types.IntervalDatum)
		case types.TimestampTZDatum:
			base = x.Time
			iv = r.(types.IntervalDatum)
		case types.IntervalDatum:
			iv = x
			switch y := r.(type) {
			case types.DateDatum:
				base = y.Time()
			case types.TimestampDatum:
				base = y.Time
			case types.TimestampTZDatum:
				base = y.Time
			}
		}
		if op == parser.OpMinus {
			sign = -1
		}
		res := types.AddInterval(base, iv, sign)
		if t == types.TimestampTZ {
			return types.MakeTimestampTZ(res), true, nil
		}
		return types.MakeTimestamp(res), true, nil
	case types.Interval:
		switch x := l.(type) {
		case types.TimestampDatum:
			return types.SubTimes(x.Time, r.(types.TimestampDatum).Time), true, nil
		case types.TimestampTZDatum:
			return types.SubTimes(x.Time, r.(types.TimestampTZDatum).Time), true, nil
		case types.IntervalDatum:
			switch y := r.(type) {
			case types.IntervalDatum:
				if op == parser.OpMinus {
					y = types.IntervalDatum{Months: -y.Months, Days: -y.Days, Micros: -y.Micros}
				}
				return types.IntervalDatum{Months: x.Months + y.Months, Days: x.Days + y.Days, Micros: x.Micros + y.Micros}, true, nil
			default:
				f := toFloat(y)
				if op == parser.OpDiv {
					if f == 0 {
						return nil, true, errDivByZero()
					}
					f = 1 / f
				}
				return scaleInterval(x, f), true, nil
			}
		default:
			return scaleInterval(r.(types.IntervalDatum), toFloat(x)), true, nil
		}
	}
	return nil, false, nil
}

func toFloat(d types.Datum) float64 {
	switch v := d.(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

// scaleInterval multiplies an interval, cascading fractions of months
// into days and of days into microseconds, as PostgreSQL does.
func scaleInterval(iv types.IntervalDatum, f float64) types.IntervalDatum {
	months := float64(iv.Months) * f
	wm := math.Trunc(months)
	days := float64(iv.Days)*f + (months-wm)*30
	wd := math.Trunc(days)
	micros := float64(iv.Micros)*f + (days-wd)*86400e6
	return types.IntervalDatum{Months: int64(wm), Days: int64(wd), Micros: int64(math.Round(micros))}
}

// compareDatums21 compares values of release 2.1's types; ok is false for
// other types.
func compareDatums21(a, b types.Datum) (int, bool) {
	switch x := a.(type) {
	case *apd.Decimal:
		if y, ok := b.(*apd.Decimal); ok {
			return types.CompareDecimals(x, y), true
		}
	case types.DateDatum:
		if y, ok := b.(types.DateDatum); ok {
			return cmpInt(int64(x), int64(y)), true
		}
	case types.TimestampDatum:
		if y, ok := b.(types.TimestampDatum); ok {
			return x.Compare(y.Time), true
		}
	case types.TimestampTZDatum:
		if y, ok := b.(types.TimestampTZDatum); ok {
			return x.Compare(y.Time), true
		}
	case types.IntervalDatum:
		if y, ok := b.(types.IntervalDatum); ok {
			return types.CompareIntervals(x, y), true
		}
	case types.UUIDDatum:
		if y, ok := b.(types.UUIDDatum); ok {
			return strings.Compare(string(x[:]), string(y[:])), true
		}
	case types.JSONDatum:
		if y, ok := b.(types.JSONDatum); ok {
			return strings.Compare(string(x), string(y)), true
		}
	}
	return 0, false
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// castAllowed21 lists the casts between release 2.1's types and the
// others (every type casts to and from STRING through its text form).
func castAllowed21(from, to types.T) bool {
	switch {
	case isNumeric(from) && isNumeric(to):
		return true
	case isTemporal(from) && isTemporal(to):
		return true
	case from == types.JSONB && (to == types.Int || to == types.Float || to == types.Decimal || to == types.Bool):
		return true
	case from == types.Bytes && to == types.UUID, from == types.UUID && to == types.Bytes:
		return true
	case from == types.Int && to == types.Interval:
		return false
	}
	return false
}

// castDatum21 converts a value of, or to, one of release 2.1's types; ok
// is false when neither side is one.
func castDatum21(d types.Datum, to types.T) (types.Datum, bool, error) {
	from := types.TypeOf(d)
	if from < types.Decimal && to < types.Decimal {
		return nil, false, nil
	}
	if from == to {
		return d, true, nil
	}
	if to == types.String {
		return string(types.FormatText(d)), true, nil
	}
	outOfRange := func() error {
		return pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "%s out of range", strings.ToLower(to.String()))
	}
	switch v := d.(type) {
	case string:
		out, err := types.ParseText(to, []byte(v))
		if err != nil {
			return nil, true, pgerror.WithCode(err, pgerror.CodeInvalidTextRepresentation)
		}
		return out, true, nil
	case int64:
		if to == types.Decimal {
			return types.DecimalFromInt(v), true, nil
		}
	case float64:
		if to == types.Decimal {
			out, err := types.DecimalFromFloat(v)
			if err != nil {
				return nil, true, pgerror.WithCode(err, pgerror.CodeInvalidParameterValue)
			}
			return out, true, nil
		}
	case *apd.Decimal:
		switch to {
		case types.Float:
			if v.Form == apd.NaN {
				return math.NaN(), true, nil
			}
			f, err := v.Float64()
			if err != nil {
				return nil, true, outOfRange()
			}
			return f, true, nil
		case types.Int:
			if v.Form == apd.NaN {
				return nil, true, pgerror.Newf(pgerror.CodeInvalidParameterValue, "cannot convert NaN to integer")
			}
			r := new(apd.Decimal)
			if _, err := types.DecimalCtx.RoundToIntegralValue(r, v); err != nil {
				return nil, true, outOfRange()
			}
			n, err := r.Int64()
			if err != nil {
				return nil, true, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range")
			}
			return n, true, nil
		}
	case types.DateDatum:
		switch to {
		case types.Timestamp:
			return types.TimestampDatum{Time: v.Time()}, true, nil
		case types.TimestampTZ:
			return types.TimestampTZDatum{Time: v.Time()}, true, nil
		}
	case types.TimestampDatum:
		switch to {
		case types.Date:
			return types.DateFromTime(v.Time), true, nil
		case types.TimestampTZ:
			return types.TimestampTZDatum(v), true, nil
		}
	case types.TimestampTZDatum:
		switch to {
		case types.Date:
			return types.DateFromTime(v.Time), true, nil
		case types.Timestamp:
			return types.TimestampDatum(v), true, nil
		}
	case types.JSONDatum:
		x := v.Decode()
		switch to {
		case types.Bool:
			if b, ok := x.(bool); ok {
				return b, true, nil
			}
		case types.Int, types.Float, types.Decimal:
			if n, ok := x.(interface{ String() string }); ok {
				if _, isStr := x.(string); !isStr {
					dec, err := types.ParseDecimal(n.String())
					if err == nil {
						out, _, err := castDatum21(dec, to)
						return out, true, err
					}
				}
			}
		}
		return nil, true, pgerror.Newf(pgerror.CodeInvalidParameterValue, "cannot cast jsonb %s to type %s", string(v), strings.ToLower(to.String()))
	case []byte:
		if to == types.UUID && len(v) == 16 {
			var u types.UUIDDatum
			copy(u[:], v)
			return u, true, nil
		}
	case types.UUIDDatum:
		if to == types.Bytes {
			return append([]byte(nil), v[:]...), true, nil
		}
	}
	return nil, true, pgerror.Newf(pgerror.CodeDatatypeMismatch, "invalid cast: %s -> %s", typeName(from), to)
}

// assignable21 lists the implicit conversions of assignment (INSERT,
// UPDATE, DEFAULT) that involve release 2.1's types.
func assignable21(got, want types.T) bool {
	switch {
	case isNumeric(got) && isNumeric(want) && (got == types.Decimal || want == types.Decimal):
		return true
	case isTemporal(got) && isTemporal(want):
		return true
	case want == types.String && got >= types.Decimal:
		return true
	}
	return false
}

// decimalLiteral types a numeric literal in a DECIMAL context exactly.
func decimalLiteral(text string) (texpr, error) {
	d, err := types.ParseDecimal(text)
	if err != nil {
		return nil, pgerror.Newf(pgerror.CodeInvalidTextRepresentation, "invalid number %q", text)
	}
	return &constExpr{t: types.Decimal, d: d}, nil
}

var _ = strconv.Itoa
