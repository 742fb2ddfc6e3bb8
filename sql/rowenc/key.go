package rowenc

import (
	"encoding/binary"
	"math"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// TablePrefix returns 0x88 | uint64 big-endian tableID: the prefix of every
// key of the table (package keys owns the layout).
func TablePrefix(tableID int64) []byte { return keys.TablePrefix(tableID) }

// TableSpan returns [start, end): the keys of the table's rows, and nothing
// else. end is the prefix of table ID+1.
func TableSpan(tableID int64) (start, end []byte) { return keys.TableSpan(tableID) }

// PrefixEnd returns the smallest key greater than every key that has prefix
// b, or nil when there is none (b is empty or all 0xFF).
func PrefixEnd(b []byte) []byte { return keys.PrefixEnd(b) }

// Key encodings, each ascending: bytes.Compare on encodings agrees with SQL
// comparison of the values.
const (
	escape      byte = 0x00
	escapedNul  byte = 0xFF
	terminator2 byte = 0x01
)

// AppendKey appends the order-preserving encoding of d as type t. NULL is
// refused: primary key columns are NOT NULL.
func AppendKey(b []byte, t types.T, d types.Datum) ([]byte, error) {
	if d == nil {
		return nil, errors.AssertionFailedf("NULL in a primary key column")
	}
	switch t {
	case types.Int:
		v, ok := d.(int64)
		if !ok {
			return nil, typeErr(t, d)
		}
		// Flipping the sign bit makes two's complement sort as unsigned.
		return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63)), nil
	case types.Float:
		v, ok := d.(float64)
		if !ok {
			return nil, typeErr(t, d)
		}
		return binary.BigEndian.AppendUint64(b, floatKeyBits(v)), nil
	case types.String:
		v, ok := d.(string)
		if !ok {
			return nil, typeErr(t, d)
		}
		return appendEscaped(b, v), nil
	case types.Bytes:
		v, ok := d.([]byte)
		if !ok {
			return nil, typeErr(t, d)
		}
		return appendEscaped(b, string(v)), nil
	case types.Bool:
		v, ok := d.(bool)
		if !ok {
			return nil, typeErr(t, d)
		}
		if v {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	}
	if out, ok, err := appendKey21(b, t, d); ok {
		return out, err
	}
	return nil, errors.AssertionFailedf("cannot key-encode type %s", t)
}

func typeErr(t types.T, d types.Datum) error {
	return errors.AssertionFailedf("datum of Go type %T where a %s was expected", d, t)
}

// floatKeyBits maps a float to bits that sort like the float: positive
// numbers get the sign bit set, negative numbers are inverted. -0 and +0 are
// one value in SQL, so they share an encoding; so do all NaNs, which sort
// above +Inf as in PostgreSQL.
func floatKeyBits(v float64) uint64 {
	if v == 0 {
		v = 0 // folds -0 into +0
	}
	if math.IsNaN(v) {
		return math.MaxUint64
	}
	u := math.Float64bits(v)
	if u&(1<<63) != 0 {
		return ^u
	}
	return u | 1<<63
}

func floatFromKeyBits(u uint64) float64 {
	if u == math.MaxUint64 {
		return math.NaN()
	}
	if u&(1<<63) != 0 {
		return math.Float64frombits(u &^ (1 << 63))
	}
	return math.Float64frombits(^u)
}

// appendEscaped writes s with 0x00 escaped as 0x00 0xFF and terminated by
// 0x00 0x01, so that a shorter string sorts before its extensions and
// nothing after it in a composite key can change the order.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == escape {
			b = append(b, escape, escapedNul)
			continue
		}
		b = append(b, s[i])
	}
	return append(b, escape, terminator2)
}

// DecodeKey decodes one value of type t from the front of b and returns the
// rest.
func DecodeKey(b []byte, t types.T) (types.Datum, []byte, error) {
	switch t {
	case types.Int:
		if len(b) < 8 {
			return nil, nil, corrupt("truncated INT8 key column")
		}
		return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
	case types.Float:
		if len(b) < 8 {
			return nil, nil, corrupt("truncated FLOAT8 key column")
		}
		return floatFromKeyBits(binary.BigEndian.Uint64(b)), b[8:], nil
	case types.String, types.Bytes:
		var out []byte
		for i := 0; i < len(b); i++ {
			if b[i] != escape {
				out = append(out, b[i])
				continue
			}
			if i+1 >= len(b) {
				return nil, nil, corrupt("truncated escape in key column")
			}
			switch b[i+1] {
			case escapedNul:
				out = append(out, 0)
				i++
			case terminator2:
				if t == types.String {
					return string(out), b[i+2:], nil
				}
				if out == nil {
					out = []byte{}
				}
				return out, b[i+2:], nil
			default:
				return nil, nil, corrupt("invalid escape in key column")
			}
		}
		return nil, nil, corrupt("unterminated string key column")
	case types.Bool:
		if len(b) < 1 || b[0] > 1 {
			return nil, nil, corrupt("invalid BOOL key column")
		}
		return b[0] == 1, b[1:], nil
	}
	if d, rest, ok, err := decodeKey21(b, t); ok {
		return d, rest, err
	}
	return nil, nil, errors.AssertionFailedf("cannot key-decode type %s", t)
}

func corrupt(msg string) error {
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeDataCorrupted, "corrupted row: %s", msg),
		"the stored row does not match its table's schema; report this with the node's log")
}

// AllTablesSpan returns the span holding every table's rows.
func AllTablesSpan() (start, end []byte) { return keys.AllTablesSpan() }
