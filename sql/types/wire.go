package types

import (
	"fmt"
	"math/big"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5/pgtype"
)

// The binary wire formats of the types of release 2.1 go through pgx's
// pgtype codecs (the same code clients use to read them), converted from
// and to kvnode's datums here.

var pgtypes = pgtype.NewMap()

func formatBinaryNew(t T, d Datum) []byte {
	var v any
	switch x := d.(type) {
	case *apd.Decimal:
		n := pgtype.Numeric{Valid: true}
		if x.Form == apd.NaN {
			n.NaN = true
		} else {
			n.Int = x.Coeff.MathBigInt()
			if x.Negative {
				n.Int.Neg(n.Int)
			}
			n.Exp = x.Exponent
		}
		v = n
	case DateDatum:
		v = pgtype.Date{Time: x.Time(), Valid: true}
	case TimestampDatum:
		v = pgtype.Timestamp{Time: x.Time, Valid: true}
	case TimestampTZDatum:
		v = pgtype.Timestamptz{Time: x.Time, Valid: true}
	case IntervalDatum:
		v = pgtype.Interval{Microseconds: x.Micros, Days: int32(x.Days), Months: int32(x.Months), Valid: true}
	case UUIDDatum:
		return append([]byte(nil), x[:]...)
	case JSONDatum:
		return jsonbBinary(x)
	default:
		panic(fmt.Sprintf("types: %T is not a %s", d, t))
	}
	out, err := pgtypes.Encode(t.OID(), pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		panic(fmt.Sprintf("types: encoding %s: %v", t, err))
	}
	return out
}

func parseBinaryNew(oid uint32, b []byte) (Datum, error) {
	switch oid {
	case OIDNumeric:
		var n pgtype.Numeric
		if err := pgtypes.Scan(oid, pgtype.BinaryFormatCode, b, &n); err != nil {
			return nil, fmt.Errorf("invalid binary NUMERIC: %v", err)
		}
		if n.NaN {
			return &apd.Decimal{Form: apd.NaN}, nil
		}
		if n.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("NUMERIC infinity is not supported")
		}
		i := n.Int
		if i == nil {
			i = new(big.Int)
		}
		return apd.NewWithBigInt(new(apd.BigInt).SetMathBigInt(i), n.Exp), nil
	case OIDDate:
		var d pgtype.Date
		if err := pgtypes.Scan(oid, pgtype.BinaryFormatCode, b, &d); err != nil || d.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("invalid binary DATE (infinite dates are not supported)")
		}
		return DateFromTime(d.Time), nil
	case OIDTimestamp:
		var t pgtype.Timestamp
		if err := pgtypes.Scan(oid, pgtype.BinaryFormatCode, b, &t); err != nil || t.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("invalid binary TIMESTAMP (infinite timestamps are not supported)")
		}
		return MakeTimestamp(t.Time), nil
	case OIDTimestampTZ:
		var t pgtype.Timestamptz
		if err := pgtypes.Scan(oid, pgtype.BinaryFormatCode, b, &t); err != nil || t.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("invalid binary TIMESTAMPTZ (infinite timestamps are not supported)")
		}
		return MakeTimestampTZ(t.Time), nil
	case OIDInterval:
		var iv pgtype.Interval
		if err := pgtypes.Scan(oid, pgtype.BinaryFormatCode, b, &iv); err != nil {
			return nil, fmt.Errorf("invalid binary INTERVAL: %v", err)
		}
		return IntervalDatum{Months: int64(iv.Months), Days: int64(iv.Days), Micros: iv.Microseconds}, nil
	case OIDUUID:
		if len(b) != 16 {
			return nil, fmt.Errorf("binary UUID parameter must be 16 bytes, got %d", len(b))
		}
		var u UUIDDatum
		copy(u[:], b)
		return u, nil
	case OIDJSONB:
		if len(b) == 0 || b[0] != 1 {
			return nil, fmt.Errorf("unsupported binary JSONB version")
		}
		return ParseJSON(string(b[1:]))
	case OIDJSON:
		return ParseJSON(string(b))
	}
	return nil, fmt.Errorf("binary format is not supported for type OID %d", oid)
}
