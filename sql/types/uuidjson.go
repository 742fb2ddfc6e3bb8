package types

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
)

// UUIDDatum is a UUID's 16 bytes.
type UUIDDatum [16]byte

// String renders the UUID in its canonical lower-case, hyphenated form.
func (u UUIDDatum) String() string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NewRandomUUID returns a version 4 (random) UUID, as gen_random_uuid().
func NewRandomUUID() UUIDDatum {
	var u UUIDDatum
	if _, err := io.ReadFull(rand.Reader, u[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// ParseUUID accepts what PostgreSQL accepts: 32 hex digits, optionally
// hyphenated after any group of four and optionally in braces.
func ParseUUID(s string) (Datum, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
		t = t[1 : len(t)-1]
	}
	h := strings.ReplaceAll(t, "-", "")
	var u UUIDDatum
	if len(h) != 32 || strings.HasPrefix(t, "-") || strings.HasSuffix(t, "-") || strings.Contains(t, "--") {
		return nil, fmt.Errorf("invalid input syntax for type uuid: %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return nil, fmt.Errorf("invalid input syntax for type uuid: %q", s)
	}
	return u, nil
}

// JSONDatum is a JSONB value in its canonical text (PostgreSQL's jsonb
// output: object keys sorted by length then bytes, duplicates resolved to
// the last, ", " and ": " separators, numbers as NUMERIC prints them). Being
// a string it compares and hashes as a Go value; operators decode it.
type JSONDatum string

// ParseJSON parses JSON text into its canonical JSONB form.
func ParseJSON(s string) (Datum, error) {
	v, err := DecodeJSON(s)
	if err != nil {
		return nil, err
	}
	return JSONDatum(EncodeJSON(v)), nil
}

// DecodeJSON decodes JSON text into Go values (numbers as json.Number).
func DecodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid input syntax for type json: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid input syntax for type json: trailing data after the value")
	}
	return v, nil
}

// Decode returns the JSONB value as Go values.
func (j JSONDatum) Decode() any {
	v, err := DecodeJSON(string(j))
	if err != nil {
		panic(fmt.Sprintf("types: non-canonical JSONB datum: %v", err))
	}
	return v
}

// EncodeJSON renders a decoded value in JSONB's canonical text.
func EncodeJSON(v any) string {
	var b strings.Builder
	writeJSON(&b, v)
	return b.String()
}

func writeJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case json.Number:
		d, _, err := apd.NewFromString(string(x))
		if err != nil {
			b.WriteString(string(x))
			return
		}
		b.WriteString(d.Text('f'))
	case float64:
		b.WriteString(string(FormatText(x)))
	case string:
		writeJSONString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSON(b, x[k])
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("types: unexpected JSON value %T", v))
	}
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
}

// JSONContains reports whether a contains b, PostgreSQL's @>: an object
// contains an object whose every key it has with a contained value; an
// array contains an array whose every element some element of it
// contains, and a scalar it has as an element; scalars contain equal
// scalars.
func JSONContains(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k, bv := range y {
			av, ok := x[k]
			if !ok || !JSONContains(av, bv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok {
			if _, obj := b.(map[string]any); obj {
				return false
			}
			for _, e := range x {
				if jsonScalarEqual(e, b) {
					return true
				}
			}
			return false
		}
		for _, be := range y {
			found := false
			for _, ae := range x {
				if _, nested := ae.([]any); nested {
					if _, bnested := be.([]any); !bnested {
						continue
					}
				}
				if JSONContains(ae, be) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return jsonScalarEqual(a, b)
}

func jsonScalarEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		dx, _, err1 := apd.NewFromString(string(x))
		dy, _, err2 := apd.NewFromString(string(y))
		return err1 == nil && err2 == nil && dx.Cmp(dy) == 0
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// JSONText renders a JSON value for ->>: a string without quotes, null as
// SQL NULL (ok=false), anything else as its JSON text.
func JSONText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	}
	return EncodeJSON(v), true
}

var jsonbVersion1 = []byte{1}

func jsonbBinary(j JSONDatum) []byte { return append(bytes.Clone(jsonbVersion1), j...) }
