package rowenc

import (
	"encoding/binary"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/types"
)

func appendLenBytes(b []byte, tag byte, s string) []byte {
	b = binary.AppendUvarint(append(b, tag), uint64(len(s)))
	return append(b, s...)
}

// appendValue21 encodes a value of a type of release 2.1; ok is false for
// another type.
func appendValue21(b []byte, t types.T, d types.Datum) (out []byte, ok bool, err error) {
	if t.IsArray() {
		a, isT := d.(types.Array)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		b = binary.AppendUvarint(append(b, tagArray), uint64(len(a)))
		for _, e := range a {
			if e == nil {
				b = append(b, tagNull)
				continue
			}
			if b, err = appendValue(b, t.Elem(), e); err != nil {
				return nil, true, err
			}
		}
		return b, true, nil
	}
	switch t {
	case types.Decimal:
		v, isT := d.(*apd.Decimal)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendLenBytes(b, tagDecimal, v.String()), true, nil
	case types.Date:
		v, isT := d.(types.DateDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return binary.AppendVarint(append(b, tagDate), int64(v)), true, nil
	case types.Timestamp:
		v, isT := d.(types.TimestampDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return binary.AppendVarint(append(b, tagTimestamp), v.UnixMicro()), true, nil
	case types.TimestampTZ:
		v, isT := d.(types.TimestampTZDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return binary.AppendVarint(append(b, tagTimestampTZ), v.UnixMicro()), true, nil
	case types.Interval:
		v, isT := d.(types.IntervalDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		b = binary.AppendVarint(append(b, tagInterval), v.Months)
		b = binary.AppendVarint(b, v.Days)
		return binary.AppendVarint(b, v.Micros), true, nil
	case types.UUID:
		v, isT := d.(types.UUIDDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return append(append(b, tagUUID), v[:]...), true, nil
	case types.JSONB:
		v, isT := d.(types.JSONDatum)
		if !isT {
			return nil, true, typeErr(t, d)
		}
		return appendLenBytes(b, tagJSON, string(v)), true, nil
	}
	return nil, false, nil
}

func decodeValue21(tag byte, b []byte) (d types.Datum, rest []byte, ok bool, err error) {
	varint := func(what string) (int64, error) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, corrupt("invalid " + what + " value")
		}
		b = b[n:]
		return v, nil
	}
	lenBytes := func(what string) (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", corrupt("invalid " + what + " value length")
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	switch tag {
	case tagArray:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return nil, nil, true, corrupt("invalid ARRAY value length")
		}
		b = b[k:]
		a := make(types.Array, 0, n)
		for i := uint64(0); i < n; i++ {
			_, e, rest, err := decodeValue(b)
			if err != nil {
				return nil, nil, true, err
			}
			if _, nested := e.(types.Array); nested {
				return nil, nil, true, corrupt("nested ARRAY value")
			}
			a = append(a, e)
			b = rest
		}
		return a, b, true, nil
	case tagDecimal:
		s, err := lenBytes("DECIMAL")
		if err != nil {
			return nil, nil, true, err
		}
		v, _, perr := apd.NewFromString(s)
		if perr != nil {
			return nil, nil, true, corrupt("invalid DECIMAL value")
		}
		return v, b, true, nil
	case tagDate:
		v, err := varint("DATE")
		return types.DateDatum(v), b, true, err
	case tagTimestamp:
		v, err := varint("TIMESTAMP")
		return types.TimestampDatum{Time: time.UnixMicro(v).UTC()}, b, true, err
	case tagTimestampTZ:
		v, err := varint("TIMESTAMPTZ")
		return types.TimestampTZDatum{Time: time.UnixMicro(v).UTC()}, b, true, err
	case tagInterval:
		var iv types.IntervalDatum
		if iv.Months, err = varint("INTERVAL"); err != nil {
			return nil, nil, true, err
		}
		if iv.Days, err = varint("INTERVAL"); err != nil {
			return nil, nil, true, err
		}
		if iv.Micros, err = varint("INTERVAL"); err != nil {
			return nil, nil, true, err
		}
		return iv, b, true, nil
	case tagUUID:
		if len(b) < 16 {
			return nil, nil, true, corrupt("truncated UUID value")
		}
		var u types.UUIDDatum
		copy(u[:], b)
		return u, b[16:], true, nil
	case tagJSON:
		s, err := lenBytes("JSONB")
		return types.JSONDatum(s), b, true, err
	}
	return nil, nil, false, nil
}
