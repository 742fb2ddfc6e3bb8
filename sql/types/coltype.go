package types

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
)

// Mod is what a declared column type adds to its type T: a width, a
// length, a precision and scale. Expressions are typed by T alone (an INT4
// column reads as INT8, a VARCHAR(10) as STRING, as PostgreSQL's operators
// mostly do); the modifier is checked when a value is assigned to the
// column (Assign) and shown where the column's declared type is (SHOW
// CREATE TABLE, pg_attribute, format_type). The zero Mod is no modifier.
type Mod struct {
	// Width is, for Int, 16 (INT2) or 32 (INT4); for Float, 32 (FLOAT4);
	// for String, the maximum length in characters of VARCHAR(n) or CHAR(n).
	// 0 is none.
	Width int32 `json:"width,omitempty"`
	// Fixed marks CHAR(n): values are blank-padded to Width.
	Fixed bool `json:"fixed,omitempty"`
	// Precision and Scale of DECIMAL(p,s); Precision 0 is unconstrained.
	Precision int32 `json:"precision,omitempty"`
	Scale     int32 `json:"scale,omitempty"`
}

// IsZero reports whether m is no modifier.
func (m Mod) IsZero() bool { return m == Mod{} }

// NewInRelease21 reports whether a column of type t with modifier m is a
// stored format that release 2.1 introduced: a type of 2.1, or a modifier
// (binaries of 2.0 read the type name INT4 or VARCHAR(10) as INT8 or fail).
func NewInRelease21(t T, m Mod) bool {
	return t.IsArray() || t >= Decimal || !m.IsZero()
}

// ColumnTypeString renders a column's declared type: INT4, VARCHAR(10),
// DECIMAL(10,2), or t's name without a modifier. FromNameMod reads it back.
func ColumnTypeString(t T, m Mod) string {
	switch t {
	case Int:
		switch m.Width {
		case 16:
			return "INT2"
		case 32:
			return "INT4"
		}
	case Float:
		if m.Width == 32 {
			return "FLOAT4"
		}
	case String:
		switch {
		case m.Fixed:
			return fmt.Sprintf("CHAR(%d)", m.Width)
		case m.Width > 0:
			return fmt.Sprintf("VARCHAR(%d)", m.Width)
		}
	case Decimal:
		if m.Precision > 0 {
			return fmt.Sprintf("DECIMAL(%d,%d)", m.Precision, m.Scale)
		}
	}
	return t.String()
}

// ColumnOID is the wire type OID of a column's declared type.
func ColumnOID(t T, m Mod) uint32 {
	switch t {
	case Int:
		switch m.Width {
		case 16:
			return OIDInt2
		case 32:
			return OIDInt4
		}
	case Float:
		if m.Width == 32 {
			return OIDFloat4
		}
	case String:
		switch {
		case m.Fixed:
			return OIDBPChar
		case m.Width > 0:
			return OIDVarchar
		}
	}
	return t.OID()
}

// TypeMod is PostgreSQL's atttypmod of a column: -1 for none, n+4 for
// VARCHAR(n)/CHAR(n), ((p << 16) | s) + 4 for NUMERIC(p,s).
func TypeMod(t T, m Mod) int32 {
	switch {
	case t == String && m.Width > 0:
		return m.Width + 4
	case t == Decimal && m.Precision > 0:
		return (m.Precision<<16 | m.Scale) + 4
	}
	return -1
}

// FromNameMod resolves a type name, with its modifiers written in
// parentheses ("VARCHAR(10)", "numeric(10, 2)", "timestamp(6) with time
// zone"), to a type and its modifier.
func FromNameMod(name string) (T, Mod, bool) {
	s := strings.ToUpper(strings.TrimSpace(name))
	if base, ok := strings.CutSuffix(s, "[]"); ok {
		t, _, ok := FromNameMod(base)
		if !ok || t.IsArray() {
			return Unknown, Mod{}, false
		}
		return ArrayOf(t), Mod{}, true
	}
	var args []int32
	if i := strings.IndexByte(s, '('); i >= 0 {
		j := strings.IndexByte(s, ')')
		if j < i {
			return Unknown, Mod{}, false
		}
		for _, a := range strings.Split(s[i+1:j], ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(a), 10, 32)
			if err != nil {
				return Unknown, Mod{}, false
			}
			args = append(args, int32(n))
		}
		s = s[:i] + " " + s[j+1:]
	}
	s = strings.Join(strings.Fields(s), " ")
	t, m, err := TypeWithArgs(s, args)
	return t, m, err == nil
}

// TypeWithArgs resolves an upper-case type name (words separated by one
// space) and its parenthesized arguments. The error says what is wrong
// with the arguments.
func TypeWithArgs(name string, args []int32) (T, Mod, error) {
	var m Mod
	switch name {
	case "INT2", "SMALLINT":
		m.Width = 16
	case "INT4", "INTEGER":
		m.Width = 32
	case "FLOAT4", "REAL":
		m.Width = 32
	case "FLOAT":
		// FLOAT(p): p <= 24 is REAL, as in PostgreSQL.
		if len(args) == 1 && args[0] >= 1 && args[0] <= 24 {
			return Float, Mod{Width: 32}, nil
		}
		if len(args) == 1 && (args[0] < 1 || args[0] > 53) {
			return Unknown, m, fmt.Errorf("precision for type float must be between 1 and 53 bits")
		}
		return Float, m, nil
	case "VARCHAR", "CHARACTER VARYING", "CHAR VARYING":
		if len(args) == 0 {
			return String, m, nil
		}
		m.Width = args[0]
		return checkLen(String, m, args)
	case "CHAR", "CHARACTER", "BPCHAR":
		m.Fixed = true
		m.Width = 1
		if len(args) > 0 {
			m.Width = args[0]
		}
		return checkLen(String, m, args)
	case "DECIMAL", "NUMERIC", "DEC":
		switch len(args) {
		case 0:
		case 1, 2:
			m.Precision = args[0]
			if len(args) == 2 {
				m.Scale = args[1]
			}
			if m.Precision < 1 || m.Precision > 1000 {
				return Unknown, m, fmt.Errorf("NUMERIC precision %d must be between 1 and 1000", m.Precision)
			}
			if m.Scale < 0 || m.Scale > m.Precision {
				return Unknown, m, fmt.Errorf("NUMERIC scale %d must be between 0 and precision %d", m.Scale, m.Precision)
			}
		default:
			return Unknown, m, fmt.Errorf("type modifier of NUMERIC takes at most two arguments")
		}
		return Decimal, m, nil
	case "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITHOUT TIME ZONE":
		// TIMESTAMP(p): kvnode keeps microseconds whatever p is.
		if len(args) > 1 || len(args) == 1 && (args[0] < 0 || args[0] > 6) {
			return Unknown, m, fmt.Errorf("TIMESTAMP precision must be between 0 and 6")
		}
		t, _ := fromBaseName(name)
		return t, m, nil
	}
	t, ok := fromBaseName(name)
	if !ok {
		return Unknown, m, fmt.Errorf("type %q does not exist", strings.ToLower(name))
	}
	if len(args) > 0 && t != String && t != Bytes && t != Int && t != Float {
		return Unknown, m, fmt.Errorf("type %s takes no modifier", t)
	}
	return t, m, nil
}

func checkLen(t T, m Mod, args []int32) (T, Mod, error) {
	if len(args) > 1 || m.Width < 1 || m.Width > 10485760 {
		kind := "varchar"
		if m.Fixed {
			kind = "char"
		}
		return Unknown, m, fmt.Errorf("length for type %s must be between 1 and 10485760", kind)
	}
	return t, m, nil
}

// AssignError is the error Assign returns; Code is its SQLSTATE (22003
// numeric value out of range, 22001 string data right truncation).
type AssignError struct {
	Code string
	Msg  string
}

func (e *AssignError) Error() string { return e.Msg }

// Assign checks and adjusts a value of type t stored into a column of type
// t with modifier m: INT2/INT4 range (22003), FLOAT4 rounding and range,
// VARCHAR(n)/CHAR(n) length (22001; trailing blanks beyond n are cut, as in
// PostgreSQL) and CHAR(n) padding, DECIMAL(p,s) rounding to s digits and
// its precision (22003).
func Assign(d Datum, t T, m Mod) (Datum, error) { return assign(d, m, false) }

// Cast applies a modifier as an explicit cast does (x::VARCHAR(3)): like
// Assign, except that a string too long is cut, not refused.
func Cast(d Datum, t T, m Mod) (Datum, error) { return assign(d, m, true) }

func assign(d Datum, m Mod, explicit bool) (Datum, error) {
	if d == nil || m.IsZero() {
		return d, nil
	}
	switch v := d.(type) {
	case int64:
		if m.Width == 16 && (v < math.MinInt16 || v > math.MaxInt16) {
			return nil, &AssignError{"22003", "smallint out of range"}
		}
		if m.Width == 32 && (v < math.MinInt32 || v > math.MaxInt32) {
			return nil, &AssignError{"22003", "integer out of range"}
		}
	case float64:
		if m.Width == 32 {
			if !math.IsInf(v, 0) && !math.IsNaN(v) && math.Abs(v) > math.MaxFloat32 {
				return nil, &AssignError{"22003", "value out of range: overflow"}
			}
			// Round to float32 and back to the shortest decimal that
			// reads as the same float32, as PostgreSQL shows a REAL.
			f32 := float32(v)
			r, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f32), 'g', -1, 32), 64)
			return r, nil
		}
	case string:
		n := utf8.RuneCountInString(v)
		if m.Width > 0 && n > int(m.Width) {
			trimmed := strings.TrimRight(v, " ")
			if !explicit && utf8.RuneCountInString(trimmed) > int(m.Width) {
				kind := "character varying"
				if m.Fixed {
					kind = "character"
				}
				return nil, &AssignError{"22001", fmt.Sprintf("value too long for type %s(%d)", kind, m.Width)}
			}
			v = string([]rune(v)[:m.Width])
			n = int(m.Width)
		}
		if m.Fixed && n < int(m.Width) {
			v += strings.Repeat(" ", int(m.Width)-n)
		}
		return v, nil
	case *apd.Decimal:
		if m.Precision > 0 {
			return RoundDecimal(v, m.Precision, m.Scale)
		}
	}
	return d, nil
}

// AppendBinaryMod appends FormatBinaryMod(t, m, d) to b, the common types in
// place; NULL appends nothing.
func AppendBinaryMod(b []byte, t T, m Mod, d Datum) []byte {
	switch {
	case d == nil:
		return b
	case t == Int && m.Width == 16:
		return binary.BigEndian.AppendUint16(b, uint16(int16(d.(int64))))
	case t == Int && m.Width == 32:
		return binary.BigEndian.AppendUint32(b, uint32(int32(d.(int64))))
	case t == Float && m.Width == 32:
		return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(d.(float64))))
	case t == Int:
		return binary.BigEndian.AppendUint64(b, uint64(d.(int64)))
	case t == Float:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(d.(float64)))
	case t == String:
		return append(b, d.(string)...)
	case t == Bytes:
		return append(b, d.([]byte)...)
	case t == Bool:
		if d.(bool) {
			return append(b, 1)
		}
		return append(b, 0)
	}
	return append(b, FormatBinaryMod(t, m, d)...)
}

// FormatBinaryMod renders d in the binary format of a column's declared
// type: INT2, INT4 and FLOAT4 in their own widths (the values fit: Assign
// checked them when they were stored), anything else as FormatBinary.
func FormatBinaryMod(t T, m Mod, d Datum) []byte {
	switch {
	case d == nil:
		return nil
	case t == Int && m.Width == 16:
		return binary.BigEndian.AppendUint16(nil, uint16(int16(d.(int64))))
	case t == Int && m.Width == 32:
		return binary.BigEndian.AppendUint32(nil, uint32(int32(d.(int64))))
	case t == Float && m.Width == 32:
		return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(d.(float64))))
	}
	return FormatBinary(t, d)
}
