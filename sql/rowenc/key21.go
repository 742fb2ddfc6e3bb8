package rowenc

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/types"
)

// Key encodings of the types of release 2.1, each ascending like those of
// key.go:
//
//	DATE                  days since 1970-01-01, as INT8
//	TIMESTAMP, TIMESTAMPTZ  microseconds since 1970-01-01 00:00 UTC, as INT8
//	UUID                  its 16 bytes
//	DECIMAL               see appendDecimalKey
//	INTERVAL, JSONB       not key columns (DDL refuses them); encoded only
//	                      for equality (hash joins, GROUP BY, DISTINCT):
//	                      INTERVAL as its 30-day-month length like FLOAT8,
//	                      JSONB as its canonical text like STRING.

// Decimal key classes: negative < zero < positive < NaN (PostgreSQL sorts
// NaN above every number).
const (
	decNeg  byte = 0x01
	decZero byte = 0x02
	decPos  byte = 0x03
	decNaN  byte = 0x04
)

// appendDecimalKey encodes a DECIMAL so that byte order is numeric order:
// a class byte, then for a nonzero value 0.d1d2...dn × 10^e (d1 != 0, no
// trailing zeros) the exponent e as a sign-flipped big-endian int64 and the
// digits d1..dn as bytes '1'..'9'/'0'+1, then a 0x00 terminator; for a
// negative value every byte after the class is inverted, so that a bigger
// magnitude sorts lower. Equal values (1.0 and 1.00) share one encoding;
// decoding returns the value without trailing zeros.
func appendDecimalKey(b []byte, d *apd.Decimal) []byte {
	switch {
	case d.Form == apd.NaN || d.Form == apd.NaNSignaling:
		return append(b, decNaN)
	case d.Form == apd.Infinite:
		// Not produced by kvnode (parsing refuses infinities); sort them at
		// the ends of the number line.
		if d.Negative {
			return append(b, decNeg, 0x00)
		}
		return append(b, decPos, 0xFF)
	case d.IsZero():
		return append(b, decZero)
	}
	digits := d.Coeff.String()
	n := len(digits)
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	exp := int64(d.Exponent) + int64(len(digits)) // value = 0.digits × 10^exp
	start := len(b)
	cls := decPos
	if d.Negative {
		cls = decNeg
	}
	b = append(b, cls)
	b = binary.BigEndian.AppendUint64(b, uint64(exp)^(1<<63))
	for i := 0; i < n; i++ {
		b = append(b, digits[i]-'0'+1)
	}
	b = append(b, 0x00)
	if d.Negative {
		for i := start + 1; i < len(b); i++ {
			b[i] = ^b[i]
		}
	}
	return b
}

func decodeDecimalKey(b []byte) (types.Datum, []byte, error) {
	if len(b) < 1 {
		return nil, nil, corrupt("truncated DECIMAL key column")
	}
	switch b[0] {
	case decNaN:
		return &apd.Decimal{Form: apd.NaN}, b[1:], nil
	case decZero:
		return apd.New(0, 0), b[1:], nil
	case decPos, decNeg:
	default:
		return nil, nil, corrupt("invalid DECIMAL key column")
	}
	neg := b[0] == decNeg
	b = b[1:]
	get := func(i int) byte {
		if neg {
			return ^b[i]
		}
		return b[i]
	}
	if len(b) < 9 {
		return nil, nil, corrupt("truncated DECIMAL key column")
	}
	var e [8]byte
	for i := range e {
		e[i] = get(i)
	}
	exp := int64(binary.BigEndian.Uint64(e[:]) ^ (1 << 63))
	var digits []byte
	i := 8
	for ; i < len(b) && get(i) != 0x00; i++ {
		c := get(i)
		if c < 1 || c > 10 {
			return nil, nil, corrupt("invalid DECIMAL key digit")
		}
		digits = append(digits, c-1+'0')
	}
	if i >= len(b) || len(digits) == 0 {
		return nil, nil, corrupt("unterminated DECIMAL key column")
	}
	if digits[0] == '0' || digits[len(digits)-1] == '0' {
		// The encoder writes neither leading nor trailing zeros.
		return nil, nil, corrupt("non-canonical DECIMAL key column")
	}
	coeff, ok := new(apd.BigInt).SetString(string(digits), 10)
	if !ok || exp-int64(len(digits)) < math.MinInt32 || exp-int64(len(digits)) > math.MaxInt32 {
		return nil, nil, corrupt("invalid DECIMAL key column")
	}
	d := apd.NewWithBigInt(coeff, int32(exp-int64(len(digits))))
	d.Negative = neg
	return d, b[i+1:], nil
}

func appendInt64Key(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

func decodeInt64Key(b []byte, what string) (int64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, corrupt("truncated " + what + " key column")
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
}

// appendKey21 encodes the types of 2.1; ok is false for another type.
func appendKey21(b []byte, t types.T, d types.Datum) (out []byte, ok bool, err error) {
	switch t {
	case types.Decimal:
		v, isT := d.(*apd.Decimal)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendDecimalKey(b, v), true, nil
	case types.Date:
		v, isT := d.(types.DateDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendInt64Key(b, int64(v)), true, nil
	case types.Timestamp:
		v, isT := d.(types.TimestampDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendInt64Key(b, v.UnixMicro()), true, nil
	case types.TimestampTZ:
		v, isT := d.(types.TimestampTZDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendInt64Key(b, v.UnixMicro()), true, nil
	case types.UUID:
		v, isT := d.(types.UUIDDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return append(b, v[:]...), true, nil
	case types.Interval:
		v, isT := d.(types.IntervalDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return binary.BigEndian.AppendUint64(b, floatKeyBits(v.Total())), true, nil
	case types.JSONB:
		v, isT := d.(types.JSONDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendEscaped(b, string(v)), true, nil
	}
	return nil, false, nil
}

// decodeKey21 decodes the key-column types of 2.1; ok is false for another
// type.
func decodeKey21(b []byte, t types.T) (d types.Datum, rest []byte, ok bool, err error) {
	switch t {
	case types.Decimal:
		d, rest, err = decodeDecimalKey(b)
		return d, rest, true, err
	case types.Date:
		v, rest, err := decodeInt64Key(b, "DATE")
		return types.DateDatum(v), rest, true, err
	case types.Timestamp:
		v, rest, err := decodeInt64Key(b, "TIMESTAMP")
		return types.TimestampDatum{Time: time.UnixMicro(v).UTC()}, rest, true, err
	case types.TimestampTZ:
		v, rest, err := decodeInt64Key(b, "TIMESTAMPTZ")
		return types.TimestampTZDatum{Time: time.UnixMicro(v).UTC()}, rest, true, err
	case types.UUID:
		if len(b) < 16 {
			return nil, nil, true, corrupt("truncated UUID key column")
		}
		var u types.UUIDDatum
		copy(u[:], b)
		return u, b[16:], true, nil
	}
	return nil, nil, false, nil
}

// KeyColumnAllowed reports whether a column of type t may be part of a
// primary key (it has an order-preserving, decodable key encoding).
func KeyColumnAllowed(t types.T) bool {
	return t != types.Interval && t != types.JSONB && !t.IsArray()
}
