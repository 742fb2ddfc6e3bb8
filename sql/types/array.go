package types

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Arrays: a one-dimensional array of one of the scalar types, as catalog
// columns (pg_index.indkey, pg_roles.rolconfig), ARRAY[...], ARRAY(query),
// array_agg and = ANY(array) need, and (release 2.1) columns of user tables
// typed INT8[], FLOAT8[], STRING[], BYTES[] or BOOL[]. Its datum is an Array.

// arrayFlag marks an array type; the low bits are the element type.
const arrayFlag T = 0x40

// Array is the datum of an array type: its elements, nil for NULL.
type Array []Datum

// ArrayOf returns the type of one-dimensional arrays of elem.
func ArrayOf(elem T) T { return elem | arrayFlag }

// IsArray reports whether t is an array type.
func (t T) IsArray() bool { return t&arrayFlag != 0 }

// Elem returns an array type's element type.
func (t T) Elem() T { return t &^ arrayFlag }

var arrayOIDs = map[T]uint32{Int: 1016, Float: 1022, String: 1009, Bytes: 1001, Bool: 1000, Unknown: 1009,
	Decimal: 1231, Date: 1182, Timestamp: 1115, TimestampTZ: 1185, Interval: 1187, UUID: 2951, JSONB: 3807}

// arrayElemOIDs maps the array type OIDs clients send to their element
// type OIDs.
var arrayElemOIDs = map[uint32]uint32{
	1016: OIDInt8, 1007: OIDInt4, 1005: OIDInt2, 1022: OIDFloat8, 1021: OIDFloat4,
	1009: OIDText, 1015: OIDVarchar, 1001: OIDBytea, 1000: OIDBool,
	1231: OIDNumeric, 1182: OIDDate, 1115: OIDTimestamp, 1185: OIDTimestampTZ, 1187: OIDInterval, 2951: OIDUUID,
	3807: OIDJSONB,
}

func arrayString(t T) string { return t.Elem().String() + "[]" }

func arrayOID(t T) uint32 { return arrayOIDs[t.Elem()] }

// formatArrayText renders an array in PostgreSQL's text format: {a,b,NULL},
// quoting elements that need it.
func formatArrayText(a Array) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if d == nil {
			b.WriteString("NULL")
			continue
		}
		s := string(FormatText(d))
		if s == "" || strings.EqualFold(s, "null") || strings.ContainsAny(s, "{},\"\\ \t\n\r\v\f") {
			b.WriteByte('"')
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s))
			b.WriteByte('"')
		} else {
			b.WriteString(s)
		}
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// formatArrayBinary renders an array in PostgreSQL's binary format:
// dimensions, a has-NULL flag, the element OID, then each element's length
// and bytes.
func formatArrayBinary(t T, a Array) []byte {
	elem := t.Elem()
	if elem == Unknown {
		elem = String
	}
	out := binary.BigEndian.AppendUint32(nil, 1)
	hasNull := uint32(0)
	for _, d := range a {
		if d == nil {
			hasNull = 1
		}
	}
	if len(a) == 0 {
		out = binary.BigEndian.AppendUint32(out[:0], 0)
		out = binary.BigEndian.AppendUint32(out, 0)
		return binary.BigEndian.AppendUint32(out, elem.OID())
	}
	out = binary.BigEndian.AppendUint32(out, hasNull)
	out = binary.BigEndian.AppendUint32(out, elem.OID())
	out = binary.BigEndian.AppendUint32(out, uint32(len(a)))
	out = binary.BigEndian.AppendUint32(out, 1)
	for _, d := range a {
		if d == nil {
			out = binary.BigEndian.AppendUint32(out, 0xFFFFFFFF)
			continue
		}
		v := FormatBinary(elem, d)
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return out
}

// ParseArrayText parses a one-dimensional array literal ('{1,2,NULL}',
// '{"a b",c}') with elements of type elem.
func ParseArrayText(elem T, s string) (Array, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("malformed array literal: %q", s)
	}
	body := s[1 : len(s)-1]
	out := Array{}
	if strings.TrimSpace(body) == "" {
		return out, nil
	}
	i := 0
	for {
		for i < len(body) && body[i] == ' ' {
			i++
		}
		var raw string
		quoted := false
		if i < len(body) && body[i] == '"' {
			quoted = true
			var b strings.Builder
			i++
			for i < len(body) && body[i] != '"' {
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				b.WriteByte(body[i])
				i++
			}
			if i >= len(body) {
				return nil, fmt.Errorf("malformed array literal: %q", s)
			}
			i++
			raw = b.String()
		} else {
			j := i
			for j < len(body) && body[j] != ',' {
				if body[j] == '{' || body[j] == '}' || body[j] == '"' {
					return nil, fmt.Errorf("malformed array literal: %q (kvnode arrays are one-dimensional)", s)
				}
				j++
			}
			raw = strings.TrimSpace(body[i:j])
			i = j
		}
		if !quoted && strings.EqualFold(raw, "null") {
			out = append(out, nil)
		} else {
			d, err := ParseText(elem, []byte(raw))
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		for i < len(body) && body[i] == ' ' {
			i++
		}
		if i >= len(body) {
			return out, nil
		}
		if body[i] != ',' {
			return nil, fmt.Errorf("malformed array literal: %q", s)
		}
		i++
	}
}

// Fits reports whether d is a value of type t: NULL fits every type, an
// array fits an array type when each element fits its element type.
func Fits(d Datum, t T) bool {
	if d == nil {
		return true
	}
	if a, ok := d.(Array); ok {
		if !t.IsArray() {
			return false
		}
		for _, e := range a {
			if !Fits(e, t.Elem()) {
				return false
			}
		}
		return true
	}
	return TypeOf(d) == t
}

// parseArrayBinary parses a one-dimensional array in PostgreSQL's binary
// format (the layout formatArrayBinary writes), converting its elements to
// t's element type.
func parseArrayBinary(t T, b []byte) (Datum, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("binary array parameter too short: %d bytes", len(b))
	}
	ndim := int32(binary.BigEndian.Uint32(b))
	elemOID := binary.BigEndian.Uint32(b[8:])
	if ndim == 0 {
		return Array{}, nil
	}
	if ndim != 1 {
		return nil, fmt.Errorf("binary array parameter has %d dimensions; kvnode arrays have one", ndim)
	}
	if len(b) < 20 {
		return nil, fmt.Errorf("binary array parameter too short: %d bytes", len(b))
	}
	n := int32(binary.BigEndian.Uint32(b[12:]))
	if n < 0 || int(n) > len(b) {
		return nil, fmt.Errorf("binary array parameter with a bad length %d", n)
	}
	b = b[20:]
	out := make(Array, 0, n)
	for i := int32(0); i < n; i++ {
		if len(b) < 4 {
			return nil, fmt.Errorf("binary array parameter truncated at element %d", i+1)
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l == -1 {
			out = append(out, nil)
			continue
		}
		if l < 0 || int(l) > len(b) {
			return nil, fmt.Errorf("binary array parameter truncated at element %d", i+1)
		}
		d, err := ParseBinary(t.Elem(), elemOID, b[:l])
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("binary array parameter has %d bytes after its elements", len(b))
	}
	return out, nil
}
