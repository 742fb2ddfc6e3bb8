package types

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// T is a SQL column or value type.
type T int

// The SQL types kvnode supports. Unknown is the type of a NULL literal or of
// a placeholder whose type could not be inferred.
const (
	Unknown T = iota
	Int
	Float
	String
	Bytes
	Bool
	// The types of release 2.1 (see coltype.go for their modifiers and
	// the gate on storing them).
	Decimal
	Date
	Timestamp
	TimestampTZ
	Interval
	UUID
	JSONB
)

// PostgreSQL type OIDs (from pg_type.dat) used on the wire.
const (
	OIDUnknown     uint32 = 0
	OIDBool        uint32 = 16
	OIDBytea       uint32 = 17
	OIDInt8        uint32 = 20
	OIDInt2        uint32 = 21
	OIDInt4        uint32 = 23
	OIDText        uint32 = 25
	OIDFloat4      uint32 = 700
	OIDFloat8      uint32 = 701
	OIDVarchar     uint32 = 1043
	OIDBPChar      uint32 = 1042
	OIDNumeric     uint32 = 1700
	OIDDate        uint32 = 1082
	OIDTimestamp   uint32 = 1114
	OIDTimestampTZ uint32 = 1184
	OIDInterval    uint32 = 1186
	OIDUUID        uint32 = 2950
	OIDJSONB       uint32 = 3802
	OIDJSON        uint32 = 114
	OIDUntyped     uint32 = 705 // "unknown" pseudo-type
)

// Datum is a SQL value; see the package comment for the allowed Go types.
type Datum = any

// String returns the canonical SQL name of the type, as SHOW CREATE TABLE
// prints it.
func (t T) String() string {
	if t.IsArray() {
		return arrayString(t)
	}
	switch t {
	case Int:
		return "INT8"
	case Float:
		return "FLOAT8"
	case String:
		return "STRING"
	case Bytes:
		return "BYTES"
	case Bool:
		return "BOOL"
	case Decimal:
		return "DECIMAL"
	case Date:
		return "DATE"
	case Timestamp:
		return "TIMESTAMP"
	case TimestampTZ:
		return "TIMESTAMPTZ"
	case Interval:
		return "INTERVAL"
	case UUID:
		return "UUID"
	case JSONB:
		return "JSONB"
	default:
		return "UNKNOWN"
	}
}

// OID is the PostgreSQL type OID sent in RowDescription and
// ParameterDescription.
func (t T) OID() uint32 {
	if t.IsArray() {
		return arrayOID(t)
	}
	switch t {
	case Int:
		return OIDInt8
	case Float:
		return OIDFloat8
	case String:
		return OIDText
	case Bytes:
		return OIDBytea
	case Bool:
		return OIDBool
	case Decimal:
		return OIDNumeric
	case Date:
		return OIDDate
	case Timestamp:
		return OIDTimestamp
	case TimestampTZ:
		return OIDTimestampTZ
	case Interval:
		return OIDInterval
	case UUID:
		return OIDUUID
	case JSONB:
		return OIDJSONB
	default:
		return OIDUnknown
	}
}

// FromOID maps a client-supplied parameter OID to a type. OID 0 (unspecified)
// and 705 (unknown) map to Unknown with ok=true; an OID kvnode cannot handle
// returns ok=false.
func FromOID(oid uint32) (T, bool) {
	switch oid {
	case OIDUnknown, OIDUntyped:
		return Unknown, true
	case OIDInt8, OIDInt4, OIDInt2:
		return Int, true
	case OIDFloat8, OIDFloat4:
		return Float, true
	case OIDText, OIDVarchar, OIDBPChar:
		return String, true
	case OIDBytea:
		return Bytes, true
	case OIDBool:
		return Bool, true
	case OIDNumeric:
		return Decimal, true
	case OIDDate:
		return Date, true
	case OIDTimestamp:
		return Timestamp, true
	case OIDTimestampTZ:
		return TimestampTZ, true
	case OIDInterval:
		return Interval, true
	case OIDUUID:
		return UUID, true
	case OIDJSONB, OIDJSON:
		return JSONB, true
	}
	if elem, ok := arrayElemOIDs[oid]; ok {
		t, _ := FromOID(elem)
		return ArrayOf(t), true
	}
	return Unknown, false
}

// FromName resolves a type name written in SQL (case-insensitive), including
// the usual PostgreSQL and CockroachDB aliases.
func FromName(name string) (T, bool) {
	t, _, ok := FromNameMod(name)
	return t, ok
}

func fromBaseName(name string) (T, bool) {
	switch name {
	case "INT", "INT8", "INT4", "INT2", "INT64", "BIGINT", "INTEGER", "SMALLINT":
		return Int, true
	case "FLOAT", "FLOAT8", "FLOAT4", "REAL", "DOUBLE PRECISION", "DOUBLE":
		return Float, true
	case "STRING", "TEXT", "VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER":
		return String, true
	case "BYTES", "BYTEA", "BLOB":
		return Bytes, true
	case "BOOL", "BOOLEAN":
		return Bool, true
	case "DECIMAL", "NUMERIC", "DEC":
		return Decimal, true
	case "DATE":
		return Date, true
	case "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE":
		return Timestamp, true
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return TimestampTZ, true
	case "INTERVAL":
		return Interval, true
	case "UUID":
		return UUID, true
	case "JSONB", "JSON":
		return JSONB, true
	}
	return Unknown, false
}

// TypeOf returns the type of a datum; nil is Unknown.
func TypeOf(d Datum) T {
	switch v := d.(type) {
	case int64:
		return Int
	case float64:
		return Float
	case string:
		return String
	case []byte:
		return Bytes
	case bool:
		return Bool
	case *apd.Decimal:
		return Decimal
	case DateDatum:
		return Date
	case TimestampDatum:
		return Timestamp
	case TimestampTZDatum:
		return TimestampTZ
	case IntervalDatum:
		return Interval
	case UUIDDatum:
		return UUID
	case JSONDatum:
		return JSONB
	case Array:
		for _, e := range v {
			if e != nil {
				return ArrayOf(TypeOf(e))
			}
		}
		return ArrayOf(Unknown)
	}
	return Unknown
}

// FormatText renders d in PostgreSQL's text format; it returns nil for NULL.
func FormatText(d Datum) []byte {
	switch v := d.(type) {
	case nil:
		return nil
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case float64:
		switch {
		case math.IsInf(v, 1):
			return []byte("Infinity")
		case math.IsInf(v, -1):
			return []byte("-Infinity")
		case math.IsNaN(v):
			return []byte("NaN")
		}
		return formatFloat(v)
	case string:
		return []byte(v)
	case []byte:
		out := make([]byte, 2+hex.EncodedLen(len(v)))
		copy(out, `\x`)
		hex.Encode(out[2:], v)
		return out
	case bool:
		if v {
			return []byte("t")
		}
		return []byte("f")
	case Array:
		return formatArrayText(v)
	case *apd.Decimal:
		return []byte(v.Text('f'))
	case DateDatum:
		return []byte(v.String())
	case TimestampDatum:
		return []byte(v.String())
	case TimestampTZDatum:
		return []byte(v.String())
	case IntervalDatum:
		return []byte(v.String())
	case UUIDDatum:
		return []byte(v.String())
	case JSONDatum:
		return []byte(v)
	}
	panic(fmt.Sprintf("types: datum of unexpected Go type %T", d))
}

// AppendText appends d's text format (FormatText's) to b; NULL appends
// nothing. The common types are appended in place, without FormatText's
// slice: pgwire encodes every result value this way.
func AppendText(b []byte, d Datum) []byte {
	switch v := d.(type) {
	case nil:
		return b
	case int64:
		return strconv.AppendInt(b, v, 10)
	case string:
		return append(b, v...)
	case bool:
		if v {
			return append(b, 't')
		}
		return append(b, 'f')
	case []byte:
		b = append(b, `\x`...)
		return hex.AppendEncode(b, v)
	}
	return append(b, FormatText(d)...)
}

// FormatBinary renders d in PostgreSQL's binary format for type t; it returns
// nil for NULL.
func FormatBinary(t T, d Datum) []byte {
	if d == nil {
		return nil
	}
	if a, ok := d.(Array); ok && t.IsArray() {
		return formatArrayBinary(t, a)
	}
	switch t {
	case Int:
		return binary.BigEndian.AppendUint64(nil, uint64(d.(int64)))
	case Float:
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(d.(float64)))
	case String:
		return []byte(d.(string))
	case Bytes:
		// Never nil: an empty BYTES value is not NULL.
		b := d.([]byte)
		return append(make([]byte, 0, len(b)), b...)
	case Bool:
		if d.(bool) {
			return []byte{1}
		}
		return []byte{0}
	case Decimal, Date, Timestamp, TimestampTZ, Interval, UUID, JSONB:
		return formatBinaryNew(t, d)
	}
	return FormatText(d)
}

// ParseText parses a value of type t from PostgreSQL's text format. The
// returned error says which type was expected and what was received.
func ParseText(t T, b []byte) (Datum, error) {
	s := string(b)
	if t.IsArray() {
		return ParseArrayText(t.Elem(), s)
	}
	switch t {
	case Int:
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("could not parse %q as type INT8", s)
		}
		return v, nil
	case Float:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "infinity", "inf", "+infinity":
			return math.Inf(1), nil
		case "-infinity", "-inf":
			return math.Inf(-1), nil
		case "nan":
			return math.NaN(), nil
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("could not parse %q as type FLOAT8", s)
		}
		return v, nil
	case String, Unknown:
		return s, nil
	case Bytes:
		if strings.HasPrefix(s, `\x`) {
			v, err := hex.DecodeString(s[2:])
			if err != nil {
				return nil, fmt.Errorf("could not parse %q as type BYTES: invalid hexadecimal", s)
			}
			return v, nil
		}
		return parseEscapeBytes(s)
	case Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "t", "true", "y", "yes", "on", "1":
			return true, nil
		case "f", "false", "n", "no", "off", "0":
			return false, nil
		}
		return nil, fmt.Errorf("could not parse %q as type BOOL", s)
	case Decimal:
		return ParseDecimal(s)
	case Date:
		return ParseDate(s)
	case Timestamp:
		return ParseTimestamp(s)
	case TimestampTZ:
		return ParseTimestampTZ(s)
	case Interval:
		return ParseInterval(s)
	case UUID:
		return ParseUUID(s)
	case JSONB:
		return ParseJSON(s)
	}
	return nil, fmt.Errorf("cannot parse a value of type %s", t)
}

// parseEscapeBytes handles PostgreSQL's "escape" bytea input: backslash
// followed by three octal digits, or a doubled backslash.
func parseEscapeBytes(s string) (Datum, error) {
	var out bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			out.WriteByte('\\')
			i++
			continue
		}
		if i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		return nil, fmt.Errorf("could not parse %q as type BYTES: invalid escape sequence", s)
	}
	return out.Bytes(), nil
}

// ParseBinary parses a value sent in binary format with the given wire OID
// into a datum of type t.
func ParseBinary(t T, oid uint32, b []byte) (Datum, error) {
	if oid == OIDUnknown || oid == OIDUntyped {
		oid = t.OID()
	}
	if t.IsArray() {
		return parseArrayBinary(t, b)
	}
	switch oid {
	case OIDInt8:
		if len(b) != 8 {
			return nil, fmt.Errorf("binary INT8 parameter must be 8 bytes, got %d", len(b))
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	case OIDInt4:
		if len(b) != 4 {
			return nil, fmt.Errorf("binary INT4 parameter must be 4 bytes, got %d", len(b))
		}
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case OIDInt2:
		if len(b) != 2 {
			return nil, fmt.Errorf("binary INT2 parameter must be 2 bytes, got %d", len(b))
		}
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case OIDFloat8:
		if len(b) != 8 {
			return nil, fmt.Errorf("binary FLOAT8 parameter must be 8 bytes, got %d", len(b))
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case OIDFloat4:
		if len(b) != 4 {
			return nil, fmt.Errorf("binary FLOAT4 parameter must be 4 bytes, got %d", len(b))
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
	case OIDText, OIDVarchar:
		return string(b), nil
	case OIDBytea:
		return append([]byte(nil), b...), nil
	case OIDBool:
		if len(b) != 1 {
			return nil, fmt.Errorf("binary BOOL parameter must be 1 byte, got %d", len(b))
		}
		return b[0] != 0, nil
	case OIDNumeric, OIDDate, OIDTimestamp, OIDTimestampTZ, OIDInterval, OIDUUID, OIDJSONB, OIDJSON:
		return parseBinaryNew(oid, b)
	case OIDBPChar:
		return string(b), nil
	}
	return nil, fmt.Errorf("binary format is not supported for parameters of type OID %d; send it in text format", oid)
}

// formatFloat renders a finite float as PostgreSQL 12+ does: the shortest
// digits that read back exactly, in positional notation for decimal
// exponents from -4 to 14 and in exponent notation (1e+15, 1.5e-05)
// outside.
func formatFloat(v float64) []byte {
	e := strconv.AppendFloat(nil, v, 'e', -1, 64)
	i := bytes.IndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[i+1:]))
	if exp >= -4 && exp < 15 {
		return strconv.AppendFloat(nil, v, 'f', -1, 64)
	}
	return e
}
