package sql

import (
	"math"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// PostgreSQL's mathematical functions. Each is listed with the overloads
// PostgreSQL 15 has, FLOAT8's before NUMERIC's: an INT8 argument takes
// the FLOAT8 overload where there is one (round(1) is a double precision,
// as in PostgreSQL, whose preferred numeric type is float8) and the
// NUMERIC one otherwise (round(1, 2) is 1.00).

var (
	tFloat   = types.Float
	tDecimal = types.Decimal
)

func float1(f func(float64) float64) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(_ *evalCtx, a []types.Datum) (types.Datum, error) { return f(a[0].(float64)), nil }
}

// roundNum rounds a[0] to a[1] places (0 without a second argument).
func roundNum(mode apd.Rounder) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
		var scale int64
		if len(a) > 1 {
			scale = a[1].(int64)
		}
		out, err := types.RoundNumeric(a[0].(*apd.Decimal), int32(min(max(scale, -2000), 2000)), mode)
		if err != nil {
			return nil, errDecimal(err)
		}
		return out, nil
	}
}

func errNegativeSqrt() error {
	return pgerror.Newf(pgerror.CodeInvalidArgumentForPowerFunction, "cannot take square root of a negative number")
}

func errLogArgument(x float64) error {
	if x == 0 {
		return pgerror.Newf(pgerror.CodeInvalidArgumentForLog, "cannot take logarithm of zero")
	}
	return pgerror.Newf(pgerror.CodeInvalidArgumentForLog, "cannot take logarithm of a negative number")
}

// logFloat is PostgreSQL's dlog1/dlog10: the argument must be positive.
func logFloat(f func(float64) float64) func(*evalCtx, []types.Datum) (types.Datum, error) {
	return func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
		x := a[0].(float64)
		if x <= 0 {
			return nil, errLogArgument(x)
		}
		return f(x), nil
	}
}

// powFloat is PostgreSQL's dpow, with its two errors.
func powFloat(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	x, y := a[0].(float64), a[1].(float64)
	if x == 0 && y < 0 {
		return nil, pgerror.Newf(pgerror.CodeInvalidArgumentForPowerFunction, "zero raised to a negative power is undefined")
	}
	if x < 0 && y != math.Trunc(y) {
		return nil, pgerror.Newf(pgerror.CodeInvalidArgumentForPowerFunction, "a negative number raised to a non-integer power yields a complex result")
	}
	r := math.Pow(x, y)
	if math.IsInf(r, 0) && !math.IsInf(x, 0) && !math.IsInf(y, 0) {
		return nil, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
	}
	return r, nil
}

func signNumeric(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	d := a[0].(*apd.Decimal)
	if d.Form == apd.NaN {
		return d, nil
	}
	return apd.New(int64(d.Sign()), 0), nil
}

// modInt is PostgreSQL's int8mod: the remainder has the dividend's sign.
func modInt(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	x, y := a[0].(int64), a[1].(int64)
	if y == 0 {
		return nil, errDivByZero()
	}
	if y == -1 {
		return int64(0), nil // MinInt64 % -1 would trap
	}
	return x % y, nil
}

func modNumeric(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	x, y := a[0].(*apd.Decimal), a[1].(*apd.Decimal)
	if y.Form == apd.Finite && y.IsZero() {
		return nil, errDivByZero()
	}
	out := new(apd.Decimal)
	if _, err := types.DecimalCtx.Rem(out, x, y); err != nil {
		return nil, errDecimal(err)
	}
	return out, nil
}

// divNumeric is PostgreSQL's div(numeric, numeric): the quotient
// truncated towards zero, an integer.
func divNumeric(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	x, y := a[0].(*apd.Decimal), a[1].(*apd.Decimal)
	if y.Form == apd.Finite && y.IsZero() {
		return nil, errDivByZero()
	}
	out := new(apd.Decimal)
	if _, err := types.DecimalCtx.QuoInteger(out, x, y); err != nil {
		return nil, errDecimal(err)
	}
	if out.IsZero() {
		out.Negative = false
	}
	return out, nil
}

func sqrtNumeric(_ *evalCtx, a []types.Datum) (types.Datum, error) {
	out, err := types.SqrtNumeric(a[0].(*apd.Decimal))
	if err != nil {
		return nil, errNegativeSqrt()
	}
	return out, nil
}

func init() {
	for _, b := range []*builtin{
		{name: "round", overloads: []overload{
			{[]types.T{tFloat}, tFloat, float1(math.RoundToEven)}, // rint, as PostgreSQL's dround
			{[]types.T{tDecimal}, tDecimal, roundNum(apd.RoundHalfUp)},
			{[]types.T{tDecimal, tInt}, tDecimal, roundNum(apd.RoundHalfUp)},
		}},
		{name: "trunc", overloads: []overload{
			{[]types.T{tFloat}, tFloat, float1(math.Trunc)},
			{[]types.T{tDecimal}, tDecimal, roundNum(apd.RoundDown)},
			{[]types.T{tDecimal, tInt}, tDecimal, roundNum(apd.RoundDown)},
		}},
		{name: "ceil", overloads: []overload{
			{[]types.T{tFloat}, tFloat, float1(math.Ceil)},
			{[]types.T{tDecimal}, tDecimal, roundNum(apd.RoundCeiling)},
		}},
		{name: "floor", overloads: []overload{
			{[]types.T{tFloat}, tFloat, float1(math.Floor)},
			{[]types.T{tDecimal}, tDecimal, roundNum(apd.RoundFloor)},
		}},
		{name: "sign", overloads: []overload{
			{[]types.T{tFloat}, tFloat, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				x := a[0].(float64)
				switch {
				case x > 0:
					return 1.0, nil
				case x < 0:
					return -1.0, nil
				}
				return 0.0, nil
			}},
			{[]types.T{tDecimal}, tDecimal, signNumeric},
		}},
		{name: "mod", overloads: []overload{
			{[]types.T{tInt, tInt}, tInt, modInt},
			{[]types.T{tDecimal, tDecimal}, tDecimal, modNumeric},
		}},
		{name: "div", overloads: []overload{{[]types.T{tDecimal, tDecimal}, tDecimal, divNumeric}}},
		{name: "sqrt", overloads: []overload{
			{[]types.T{tFloat}, tFloat, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
				x := a[0].(float64)
				if x < 0 {
					return nil, errNegativeSqrt()
				}
				return math.Sqrt(x), nil
			}},
			{[]types.T{tDecimal}, tDecimal, sqrtNumeric},
		}},
		{name: "cbrt", overloads: []overload{{[]types.T{tFloat}, tFloat, float1(math.Cbrt)}}},
		{name: "exp", overloads: []overload{{[]types.T{tFloat}, tFloat, func(_ *evalCtx, a []types.Datum) (types.Datum, error) {
			r := math.Exp(a[0].(float64))
			if math.IsInf(r, 1) && !math.IsInf(a[0].(float64), 1) {
				return nil, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
			}
			return r, nil
		}}}},
		{name: "ln", overloads: []overload{{[]types.T{tFloat}, tFloat, logFloat(math.Log)}}},
		{name: "log", overloads: []overload{{[]types.T{tFloat}, tFloat, logFloat(math.Log10)}}},
		{name: "log10", overloads: []overload{{[]types.T{tFloat}, tFloat, logFloat(math.Log10)}}},
		{name: "power", overloads: []overload{{[]types.T{tFloat, tFloat}, tFloat, powFloat}}},
		{name: "pi", overloads: []overload{{nil, tFloat, func(*evalCtx, []types.Datum) (types.Datum, error) { return math.Pi, nil }}}},
		{name: "degrees", overloads: []overload{{[]types.T{tFloat}, tFloat, float1(func(x float64) float64 { return x * 180 / math.Pi })}}},
		{name: "radians", overloads: []overload{{[]types.T{tFloat}, tFloat, float1(func(x float64) float64 { return x * math.Pi / 180 })}}},
	} {
		builtins[b.name] = b
	}
	builtins["ceiling"] = builtins["ceil"]
	builtins["pow"] = builtins["power"]
}

// pgTypeName is what PostgreSQL's pg_typeof answers for e: its type's
// name as format_type writes it, with the width a column, an aggregate or
// a cast declares (integer for an INT4 column or for the literal 1).
func pgTypeName(e texpr) string {
	var mod types.Mod
	switch x := e.(type) {
	case *colExpr:
		mod = x.mod
	case *aggRef:
		mod = x.mod
	case *assignExpr:
		if x.explicit {
			mod = x.mod
		}
	case *constExpr:
		if x.int4 {
			mod = types.Mod{Width: 32}
		}
	}
	if e.typ() == types.Unknown {
		return "unknown"
	}
	if bt, ok := builtinTypeByOID(int64(types.ColumnOID(e.typ(), mod))); ok {
		return bt.sqlName
	}
	return typeName(e.typ())
}
