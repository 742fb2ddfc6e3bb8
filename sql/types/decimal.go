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
// significant digits (division with 20 digits after the point at least,
// see DivDecimal) and fails with 22003 beyond an exponent of ±100000.
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
