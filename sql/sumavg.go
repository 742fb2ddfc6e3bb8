package sql

import (
	"math"
	"math/bits"

	"github.com/cockroachdb/apd/v3"
	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// sum and avg: their result types, their accumulators and their results.
//
// From cluster version 2.1 they type their results as PostgreSQL does
// (issue 19):
//
//	sum(int2 | int4) -> int8      sum(int8 | numeric) -> numeric
//	sum(float4) -> float4         sum(float8) -> float8
//	avg(int2 | int4 | int8 | numeric) -> numeric
//	avg(float4 | float8) -> float8
//	sum(interval), avg(interval) -> interval
//
// and avg of integers and NUMERIC divides the sum by the count with
// PostgreSQL's numeric division (types.DivNumeric: avg of 1 and 2 is
// 1.5000000000000000). Before 2.1 they keep release 2.0's types: sum(int)
// is INT8, failing on overflow, and avg(int) is FLOAT8. The step is gated
// because a client sees it: during a rolling upgrade every gateway must
// answer a query with the same types, and a 2.0 node answers with 2.0's,
// so a 2.1 node does too until the cluster is finalized (and again after a
// downgrade). The choice is made when the statement is analyzed and kept
// in the aggregate, so a prepared statement's rows keep the types its
// Describe announced.
//
// kvnode types expressions by T alone (an INT4 column reads as INT8, see
// types.Mod), so the width PostgreSQL would give sum's integer argument is
// worked out here from the expression (pgIntWidth): a column's declared
// width, a cast to INT2/INT4, an integer literal that fits INT4, the
// functions that return INT4 in PostgreSQL, and arithmetic, CASE and
// COALESCE over those.
//
// The integer accumulators never allocate per row: sum(int2|int4) adds
// into an int64 and fails with 22003 on overflow as PostgreSQL's does;
// sum(int8) and avg of integers add into a 128-bit integer (two machine
// words, as PostgreSQL's int128 accumulator), which no count of int64
// values below 2^63 can overflow, and make a NUMERIC once, for the result.

// pgAggregateTypes reports whether sum and avg type their results as
// PostgreSQL does: from cluster version 2.1, when no node answers with
// release 2.0's types any more.
func (e *Executor) pgAggregateTypes() bool { return e.types21Active() }

// accKind is how sum or avg accumulates its argument.
type accKind uint8

const (
	accNone        accKind = iota // not sum or avg
	accInt                        // int64, 22003 on overflow: sum(int) before 2.1, sum(int2|int4) from 2.1
	accIntAsFloat                 // float64 of each integer: avg(int) before 2.1
	accInt128                     // 128-bit integer: sum(int8), avg(int*) from 2.1
	accFloat                      // float64: sum(float8); avg(float) before 2.1
	accFloat32                    // float32, PostgreSQL's float4pl: sum(float4) from 2.1
	accFloatAccum                 // PostgreSQL's float8_accum: avg(float8) from 2.1
	accFloat4Accum                // float8_accum of float4 values widened exactly: avg(float4) from 2.1
	accDecimal                    // *apd.Decimal, added in place
	accInterval                   // types.IntervalDatum
)

// sumAvgType types sum(arg) or avg(arg): the result's type, its declared
// width (FLOAT4 for sum(float4)) and the accumulator. pg selects
// PostgreSQL's types (cluster version 2.1).
func sumAvgType(kind string, arg texpr, pg bool) (types.T, types.Mod, accKind, error) {
	at := arg.typ()
	switch at {
	case types.Int:
		switch {
		case !pg && kind == "sum":
			return types.Int, types.Mod{}, accInt, nil
		case !pg:
			return types.Float, types.Mod{}, accIntAsFloat, nil
		case kind == "sum" && pgIntWidth(arg) <= 32:
			return types.Int, types.Mod{}, accInt, nil
		}
		return types.Decimal, types.Mod{}, accInt128, nil
	case types.Float:
		switch {
		case !pg:
		case kind == "sum" && pgFloatWidth(arg) == 32:
			return types.Float, types.Mod{Width: 32}, accFloat32, nil
		case kind == "avg" && pgFloatWidth(arg) == 32:
			return types.Float, types.Mod{}, accFloat4Accum, nil
		case kind == "avg":
			return types.Float, types.Mod{}, accFloatAccum, nil
		}
		return types.Float, types.Mod{}, accFloat, nil
	case types.Decimal:
		return types.Decimal, types.Mod{}, accDecimal, nil
	case types.Interval:
		return types.Interval, types.Mod{}, accInterval, nil
	}
	return types.Unknown, types.Mod{}, accNone, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: %s(%s)", kind, typeName(at))
}

// pgIntWidth is the width in bits of the integer type PostgreSQL gives
// the INT8 expression e: 16 (int2), 32 (int4) or 64 (int8). What kvnode
// cannot tell is 64; a NULL constant, which takes any type, is 16, so
// that it never widens the type of a CASE or COALESCE.
func pgIntWidth(e texpr) int32 {
	switch v := e.(type) {
	case *constExpr:
		switch {
		case v.d == nil:
			return 16
		case v.int4:
			return 32
		}
	case *colExpr:
		if v.mod.Width == 16 || v.mod.Width == 32 {
			return v.mod.Width
		}
	case *assignExpr: // a cast to INT2 or INT4
		if v.mod.Width == 16 || v.mod.Width == 32 {
			return v.mod.Width
		}
		return pgIntWidth(v.e)
	case *negExpr:
		return pgIntWidth(v.e)
	case *binExpr:
		// PostgreSQL's integer operators return the wider operand's type
		// (int2 + int4 is int4, int4 + int8 is int8).
		return max(pgIntWidth(v.l), pgIntWidth(v.r))
	case *caseExpr:
		w := int32(16)
		for _, x := range v.vals {
			w = max(w, pgIntWidth(x))
		}
		if v.els != nil {
			w = max(w, pgIntWidth(v.els))
		}
		return w
	case *funcExpr:
		if v.fn == coalesceBuiltin {
			w := int32(16)
			for _, x := range v.args {
				w = max(w, pgIntWidth(x))
			}
			return w
		}
		if pgInt4Funcs[v.fn.name] {
			return 32
		}
	}
	return 64
}

// pgInt4Funcs are kvnode's INT8 builtins that return int4 in PostgreSQL
// (sum(length(v)) is bigint there).
var pgInt4Funcs = map[string]bool{
	"length": true, "octet_length": true, "strpos": true,
	"array_length": true, "array_upper": true, "cardinality": true,
}

// pgFloatWidth is 32 when PostgreSQL types the FLOAT8 expression e as
// float4 (a REAL column or a cast to REAL), else 64.
func pgFloatWidth(e texpr) int32 {
	switch v := e.(type) {
	case *colExpr:
		if v.mod.Width == 32 {
			return 32
		}
	case *assignExpr:
		if v.mod.Width == 32 {
			return 32
		}
		return pgFloatWidth(v.e)
	case *negExpr:
		return pgFloatWidth(v.e)
	}
	return 64
}

// addSumAvg adds the non-NULL value d to a sum or avg.
func (s *aggState) addSumAvg(d types.Datum) error {
	switch s.agg.acc {
	case accInt:
		v := d.(int64)
		sum := s.isum + v
		if (sum > s.isum) != (v > 0) {
			if s.agg.pg {
				return pgerror.WithHintf(pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "bigint out of range"),
					"sum of int2 and int4 values is a bigint; sum(x::numeric) has no limit")
			}
			return errIntOutOfRange()
		}
		s.isum = sum
	case accIntAsFloat:
		s.fsum += float64(d.(int64))
	case accInt128:
		// isum is the low word (as bits), hi the high word of a two's
		// complement 128-bit integer; v>>63 is v's sign extension.
		v := d.(int64)
		lo, carry := bits.Add64(uint64(s.isum), uint64(v), 0)
		s.isum = int64(lo)
		s.hi += v>>63 + int64(carry)
	case accFloat:
		v := d.(float64)
		sum := s.fsum + v
		if s.agg.pg && math.IsInf(sum, 0) && !math.IsInf(s.fsum, 0) && !math.IsInf(v, 0) {
			return errFloatOverflow()
		}
		s.fsum = sum
	case accFloatAccum, accFloat4Accum:
		v := d.(float64)
		if s.agg.acc == accFloat4Accum {
			// PostgreSQL widens the float4 itself; kvnode holds a REAL as
			// the FLOAT8 of its shortest decimal (types.Assign).
			v = float64(float32(v))
		}
		return s.float8Accum(v)
	case accFloat32:
		v := float32(d.(float64))
		sum := s.f32 + v
		if math.IsInf(float64(sum), 0) && !math.IsInf(float64(s.f32), 0) && !math.IsInf(float64(v), 0) {
			return errFloatOverflow()
		}
		s.f32 = sum
	case accDecimal:
		// The sum is the aggregate's own value, added to in place.
		if s.val == nil {
			s.val = apd.New(0, 0)
		}
		sum := s.val.(*apd.Decimal)
		if _, err := types.DecimalCtx.Add(sum, sum, d.(*apd.Decimal)); err != nil {
			return errDecimal(err)
		}
	case accInterval:
		v := d.(types.IntervalDatum)
		if s.val == nil {
			s.val = types.IntervalDatum{}
		}
		x := s.val.(types.IntervalDatum)
		s.val = types.IntervalDatum{Months: x.Months + v.Months, Days: x.Days + v.Days, Micros: x.Micros + v.Micros}
	default:
		return errors.AssertionFailedf("%s has no accumulator for %T", s.agg.kind, d)
	}
	return nil
}

// sumAvgResult is the result of a sum or avg over s.count values (NULL
// over none).
func (s *aggState) sumAvgResult() (types.Datum, error) {
	if s.count == 0 {
		return nil, nil
	}
	avg := s.agg.kind == "avg"
	switch s.agg.acc {
	case accInt:
		return s.isum, nil
	case accIntAsFloat, accFloat, accFloatAccum, accFloat4Accum:
		if avg {
			return s.fsum / float64(s.count), nil
		}
		return s.fsum, nil
	case accFloat32:
		return types.Assign(float64(s.f32), types.Float, types.Mod{Width: 32})
	case accInt128:
		sum := int128Decimal(s.hi, uint64(s.isum))
		if avg {
			return s.avgNumeric(sum)
		}
		return sum, nil
	case accDecimal:
		sum := s.val.(*apd.Decimal)
		if !avg {
			return sum, nil
		}
		if s.agg.pg {
			return s.avgNumeric(sum)
		}
		out, _, err := evalBinary21(parser.OpDiv, types.Decimal, sum, types.DecimalFromInt(s.count))
		return out, err
	case accInterval:
		switch {
		case !avg:
			return s.val, nil
		case s.agg.pg:
			return intervalDiv(s.val.(types.IntervalDatum), float64(s.count)), nil
		}
		out, _, err := evalBinary21(parser.OpDiv, types.Interval, s.val, s.count)
		return out, err
	}
	return nil, errors.AssertionFailedf("%s has no accumulator", s.agg.kind)
}

// float8Accum is PostgreSQL's float8_accum, the transition of avg (and of
// the variance functions, which kvnode does not have) over float8: it keeps
// the sum and the sum of squared deviations (s.fsxx), and fails with 22003
// when finite values make either infinite, so avg(float8) fails where
// PostgreSQL's does. s.count already counts v.
func (s *aggState) float8Accum(v float64) error {
	n := float64(s.count)
	sum := s.fsum + v
	if s.count > 1 {
		tmp := v*n - sum
		s.fsxx += tmp * tmp / (n * (n - 1))
		if math.IsInf(sum, 0) || math.IsInf(s.fsxx, 0) {
			if !math.IsInf(s.fsum, 0) && !math.IsInf(v, 0) {
				return errFloatOverflow()
			}
			s.fsxx = math.NaN()
		}
	} else if math.IsNaN(v) || math.IsInf(v, 0) {
		s.fsxx = math.NaN()
	}
	s.fsum = sum
	return nil
}

// intervalDiv is PostgreSQL 15's interval_div (timestamp.c), which its avg
// over intervals applies to the sum and the count: months and days are
// divided and truncated, their fractions cascade down (a month is 30
// days, a day 86,400 seconds) rounded to microseconds, and the time is
// rounded half to even.
func intervalDiv(iv types.IntervalDatum, factor float64) types.IntervalDatum {
	const daysPerMonth, secsPerDay = 30, 86400
	tsround := func(x float64) float64 { return math.RoundToEven(x*1e6) / 1e6 }
	months := math.Trunc(float64(iv.Months) / factor)
	days := math.Trunc(float64(iv.Days) / factor)
	monthDays := tsround((float64(iv.Months)/factor - months) * daysPerMonth)
	secs := tsround((float64(iv.Days)/factor - days + monthDays - math.Trunc(monthDays)) * secsPerDay)
	if math.Abs(secs) >= secsPerDay {
		whole := math.Trunc(secs / secsPerDay)
		days += whole
		secs -= whole * secsPerDay
	}
	days += math.Trunc(monthDays)
	micros := math.RoundToEven(float64(iv.Micros)/factor + secs*1e6)
	return types.IntervalDatum{Months: int64(months), Days: int64(days), Micros: int64(micros)}
}

// avgNumeric divides a sum by the count as PostgreSQL's avg does.
func (s *aggState) avgNumeric(sum *apd.Decimal) (types.Datum, error) {
	out, err := types.DivNumeric(sum, types.DecimalFromInt(s.count))
	if err != nil {
		return nil, errDecimal(err)
	}
	return out, nil
}

// int128Decimal is the 128-bit two's complement integer hi:lo as a
// DECIMAL.
func int128Decimal(hi int64, lo uint64) *apd.Decimal {
	if hi == int64(lo)>>63 { // it fits in an int64
		return apd.New(int64(lo), 0)
	}
	var coeff, low apd.BigInt
	coeff.SetInt64(hi)
	coeff.Lsh(&coeff, 64)
	coeff.Add(&coeff, low.SetUint64(lo))
	return apd.NewWithBigInt(&coeff, 0)
}

func errFloatOverflow() error {
	return pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
}

// declaredWidth reports whether e carries the declared type modifier of a
// column (INT4, REAL, VARCHAR(n), NUMERIC(p,s)) or of a cast.
func declaredWidth(e texpr) bool {
	switch v := e.(type) {
	case *colExpr:
		return !v.mod.IsZero()
	case *assignExpr:
		return !v.mod.IsZero()
	}
	return false
}
