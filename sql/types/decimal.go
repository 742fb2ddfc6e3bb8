package types

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// DECIMAL values are *apd.Decimal (cockroachdb/apd, CockroachDB's decimal
// library), never modified once made: operations allocate their result.
// NaN is a value, as in PostgreSQL (it equals itself and sorts above every
// number); infinities are not (PostgreSQL 13 has none for NUMERIC).

// DecimalCtx is the context of DECIMAL arithmetic: PostgreSQL's NUMERIC
// carries up to 131072 digits before the point; kvnode computes with 2000
// significant digits (the / operator divides with 20 digits after the point
// at least, sql's evalBinary21; avg with PostgreSQL's scale, DivNumeric) and
// fails with 22003 beyond an exponent of ±100000.
var DecimalCtx = &apd.Context{
	Precision:   2000,
	MaxExponent: 100000,
	MinExponent: -100000,
	Traps:       apd.DefaultTraps,
	Rounding:    apd.RoundHalfUp,
}

// ParseDecimal parses a DECIMAL from text ("1.50", "-3e5", "NaN").
func ParseDecimal(s string) (Datum, error) {
	t := strings.TrimSpace(s)
	d, _, err := apd.NewFromString(t)
	if err != nil || d.Form == apd.Infinite || d.Form == apd.NaNSignaling {
		return nil, fmt.Errorf("could not parse %q as type DECIMAL", s)
	}
	if d.Form == apd.NaN {
		d.Negative = false
	}
	return d, nil
}

// DecimalFromInt returns v as a DECIMAL.
func DecimalFromInt(v int64) *apd.Decimal { return apd.New(v, 0) }

// DecimalFromFloat returns v as a DECIMAL (NaN for NaN; infinities fail).
func DecimalFromFloat(v float64) (*apd.Decimal, error) {
	d := new(apd.Decimal)
	if _, err := d.SetFloat64(v); err != nil || d.Form == apd.Infinite {
		return nil, fmt.Errorf("cannot convert %v to DECIMAL", v)
	}
	return d, nil
}

// RoundDecimal rounds d to scale digits after the point and checks that
// at most precision-scale digits remain before it (22003 otherwise), as a
// NUMERIC(precision, scale) column does.
func RoundDecimal(d *apd.Decimal, precision, scale int32) (*apd.Decimal, error) {
	if d.Form != apd.Finite {
		return d, nil
	}
	out := new(apd.Decimal)
	c := DecimalCtx.WithPrecision(uint32(precision) + 2000)
	if _, err := c.Quantize(out, d, -scale); err != nil {
		return nil, &AssignError{"22003", "numeric field overflow"}
	}
	if !out.IsZero() && int32(out.NumDigits())+out.Exponent > precision-scale {
		return nil, &AssignError{"22003", fmt.Sprintf(
			"numeric field overflow: a field with precision %d, scale %d must round to an absolute value less than 10^%d",
			precision, scale, precision-scale)}
	}
	return out, nil
}

// CompareDecimals orders two DECIMALs: NaN equals NaN and is above every
// number, as in PostgreSQL.
func CompareDecimals(x, y *apd.Decimal) int {
	xn, yn := x.Form == apd.NaN, y.Form == apd.NaN
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	}
	return x.Cmp(y)
}

// DivNumeric is PostgreSQL's numeric_div, which its avg of integers and
// NUMERIC uses: x/y rounded half away from zero to the scale of
// PostgreSQL's select_div_scale, that is at least 16 significant digits,
// at least either operand's scale, at most 1000 digits after the point.
// The quotient is exact to that scale (PostgreSQL's div_var divides
// exactly). NaN divided by anything is NaN; a division by zero fails.
func DivNumeric(x, y *apd.Decimal) (*apd.Decimal, error) {
	if x.Form == apd.NaN || y.Form == apd.NaN {
		return &apd.Decimal{Form: apd.NaN}, nil
	}
	if x.Form != apd.Finite || y.Form != apd.Finite {
		return nil, fmt.Errorf("numeric division of %s by %s", x, y)
	}
	if y.IsZero() {
		return nil, fmt.Errorf("division by zero")
	}
	rscale := numericDivScale(x, y)
	out := new(apd.Decimal)
	if x.IsZero() {
		out.Exponent = -rscale
		return out, nil
	}
	// Truncate the quotient to one digit past rscale, then round that
	// digit: truncation keeps whether the rest is below one half, so the
	// result is the exact quotient rounded once.
	intDigits := adjusted(x) - adjusted(y) + 2
	c := DecimalCtx.WithPrecision(uint32(max(intDigits, 1) + rscale + 1))
	c.Rounding = apd.RoundDown
	if _, err := c.Quo(out, x, y); err != nil {
		return nil, err
	}
	c.Rounding = apd.RoundHalfUp
	if _, err := c.Quantize(out, out, -rscale); err != nil {
		return nil, err
	}
	if out.IsZero() {
		out.Negative = false
	}
	return out, nil
}

// adjusted is the power of ten of d's leading digit (d finite, not zero).
func adjusted(d *apd.Decimal) int32 { return int32(d.NumDigits()) - 1 + d.Exponent }

// numericScale is PostgreSQL's display scale of d: its digits after the
// point.
func numericScale(d *apd.Decimal) int32 { return max(-d.Exponent, 0) }

// numericDivScale is PostgreSQL's select_div_scale (numeric.c): a scale
// that gives the quotient at least 16 significant digits
// (NUMERIC_MIN_SIG_DIGITS), estimated from the operands' leading base-10000
// digits and their weights, and no less than either operand's scale.
func numericDivScale(x, y *apd.Decimal) int32 {
	w1, d1 := numericLead(x)
	w2, d2 := numericLead(y)
	qweight := w1 - w2
	if d1 <= d2 {
		qweight--
	}
	rscale := 16 - qweight*4
	rscale = max(rscale, numericScale(x), numericScale(y), 0)
	return min(rscale, 1000)
}

// numericLead is PostgreSQL's weight of d's first non-zero base-10000
// digit (the digits are grouped by four from the decimal point) and that
// digit; 0 and 0 for zero.
func numericLead(d *apd.Decimal) (weight int32, digit int) {
	if d.IsZero() {
		return 0, 0
	}
	p := adjusted(d)
	weight = p >> 2 // floor(p / 4), p may be negative
	coeff := d.Coeff.String()
	for i := int32(0); i < p-4*weight+1; i++ { // the leading group's 1 to 4 digits
		digit *= 10
		if int(i) < len(coeff) {
			digit += int(coeff[i] - '0')
		}
	}
	return weight, digit
}

// RoundNumeric is PostgreSQL's round(numeric, scale) and, with
// apd.RoundDown, trunc(numeric, scale); apd.RoundCeiling and
// apd.RoundFloor with scale 0 are ceil and floor. The result has scale
// digits after the point (none when scale is negative: round(1234.5, -2)
// is 1200). NaN stays NaN; zero is never negative.
func RoundNumeric(d *apd.Decimal, scale int32, mode apd.Rounder) (*apd.Decimal, error) {
	if d.Form != apd.Finite {
		return d, nil
	}
	scale = min(max(scale, -2000), 2000) // PostgreSQL's NUMERIC_MAX_RESULT_SCALE
	digits := max(scale, 0) + 2
	if !d.IsZero() {
		digits += max(adjusted(d), 0)
	}
	c := DecimalCtx.WithPrecision(uint32(max(digits, 1)))
	c.Rounding = mode
	out := new(apd.Decimal)
	if _, err := c.Quantize(out, d, -scale); err != nil {
		return nil, err
	}
	if scale < 0 {
		if _, err := c.Quantize(out, out, 0); err != nil {
			return nil, err
		}
	}
	if out.IsZero() {
		out.Negative = false
	}
	return out, nil
}

// SqrtNumeric is PostgreSQL's sqrt(numeric): the root rounded to a scale
// that gives about 16 significant digits, and at least x's scale
// (numeric_sqrt's rscale: 16 less the weight of the root's first
// base-10000 digit, in decimal digits). x must not be negative.
func SqrtNumeric(x *apd.Decimal) (*apd.Decimal, error) {
	if x.Form == apd.NaN {
		return x, nil
	}
	if x.Form != apd.Finite || x.Negative && !x.IsZero() {
		return nil, fmt.Errorf("cannot take square root of a negative number")
	}
	w, _ := numericLead(x)
	rscale := min(max(16-(2*w+1), numericScale(x), 0), 1000)
	out := new(apd.Decimal)
	if x.IsZero() {
		out.Exponent = -rscale
		return out, nil
	}
	c := DecimalCtx.WithPrecision(uint32(max(adjusted(x)/2+1, 1) + rscale + 4))
	c.Rounding = apd.RoundDown
	if _, err := c.Sqrt(out, x); err != nil {
		return nil, err
	}
	return RoundNumeric(out, rscale, apd.RoundHalfUp)
}
