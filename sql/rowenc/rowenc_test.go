package rowenc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

var allTypes = []types.T{types.Int, types.Float, types.String, types.Bytes, types.Bool}

func randDatum(rng *rand.Rand, t types.T) types.Datum {
	switch t {
	case types.Int:
		switch rng.Intn(5) {
		case 0:
			return int64(math.MinInt64 + rng.Intn(3))
		case 1:
			return int64(math.MaxInt64 - rng.Intn(3))
		case 2:
			return int64(rng.Intn(7) - 3)
		}
		return rng.Int63() - rng.Int63()
	case types.Float:
		switch rng.Intn(8) {
		case 0:
			return math.Inf(1)
		case 1:
			return math.Inf(-1)
		case 2:
			return math.NaN()
		case 3:
			return math.Copysign(0, -1)
		case 4:
			return 0.0
		case 5:
			return math.SmallestNonzeroFloat64 * float64(rng.Intn(3)-1)
		}
		return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.Intn(40)-20))
	case types.String, types.Bytes:
		n := rng.Intn(6)
		b := make([]byte, n)
		for i := range b {
			// Bias towards the bytes the escaping cares about.
			switch rng.Intn(4) {
			case 0:
				b[i] = 0
			case 1:
				b[i] = 0xFF
			case 2:
				b[i] = 1
			default:
				b[i] = byte(rng.Intn(256))
			}
		}
		if t == types.String {
			return string(b)
		}
		return b
	case types.Bool:
		return rng.Intn(2) == 1
	}
	return nil
}

// compareDatums is SQL comparison as the executor does it (NaN above
// everything, -0 = +0).
func compareDatums(a, b types.Datum) int {
	switch x := a.(type) {
	case int64:
		y := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case float64:
		y := b.(float64)
		switch {
		case math.IsNaN(x) && math.IsNaN(y):
			return 0
		case math.IsNaN(x):
			return 1
		case math.IsNaN(y):
			return -1
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	panic("unreachable")
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestKeyRoundTripAndOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, typ := range allTypes {
		t.Run(typ.String(), func(t *testing.T) {
			for i := 0; i < 5000; i++ {
				a, b := randDatum(rng, typ), randDatum(rng, typ)
				ka, err := AppendKey(nil, typ, a)
				if err != nil {
					t.Fatal(err)
				}
				kb, err := AppendKey(nil, typ, b)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := sign(bytes.Compare(ka, kb)), sign(compareDatums(a, b)); got != want {
					t.Fatalf("order of %v (%x) vs %v (%x): keys say %d, values say %d", a, ka, b, kb, got, want)
				}
				// Round trip, with trailing bytes that must be left alone.
				back, rest, err := DecodeKey(append(ka, 0xAB), typ)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(rest, []byte{0xAB}) {
					t.Fatalf("rest %x", rest)
				}
				if compareDatums(back, a) != 0 {
					t.Fatalf("round trip of %v gave %v", a, back)
				}
			}
		})
	}
}

// TestCompositeKeyOrder checks that the order of composite keys is the
// lexicographic order of their columns: a string that is a prefix of another
// must sort first whatever the next column holds.
func TestCompositeKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	colTypes := []types.T{types.String, types.Int, types.Bytes}
	type rowKey struct {
		vals []types.Datum
		key  []byte
	}
	var rows []rowKey
	for i := 0; i < 2000; i++ {
		vals := make([]types.Datum, len(colTypes))
		key := TablePrefix(500)
		for j, ct := range colTypes {
			vals[j] = randDatum(rng, ct)
			var err error
			if key, err = AppendKey(key, ct, vals[j]); err != nil {
				t.Fatal(err)
			}
		}
		rows = append(rows, rowKey{vals, key})
	}
	sort.Slice(rows, func(i, j int) bool { return bytes.Compare(rows[i].key, rows[j].key) < 0 })
	for i := 1; i < len(rows); i++ {
		c := 0
		for j := range colTypes {
			if c = compareDatums(rows[i-1].vals[j], rows[i].vals[j]); c != 0 {
				break
			}
		}
		if c > 0 {
			t.Fatalf("keys out of SQL order: %v before %v", rows[i-1].vals, rows[i].vals)
		}
	}
}

func TestTableSpan(t *testing.T) {
	start, end := TableSpan(101)
	k, err := AppendKey(TablePrefix(101), types.String, "\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Compare(k, start) < 0 || bytes.Compare(k, end) >= 0 {
		t.Fatalf("key %x outside [%x, %x)", k, start, end)
	}
	if !bytes.Equal(PrefixEnd([]byte{1, 0xFF}), []byte{2}) || PrefixEnd([]byte{0xFF}) != nil {
		t.Fatal("PrefixEnd")
	}
}

func testLayout(t *testing.T) *Layout {
	t.Helper()
	l, err := NewLayout(200, []Column{
		{ID: 1, Type: types.Int},
		{ID: 2, Type: types.String},
		{ID: 3, Type: types.Float},
		{ID: 4, Type: types.Bytes},
		{ID: 5, Type: types.Bool},
		{ID: 7, Type: types.Int, Absent: int64(42), HasDefault: true},
		{ID: 6, Type: types.String},
	}, []int{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRowRoundTrip(t *testing.T) {
	l := testLayout(t)
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 3000; i++ {
		row := make([]types.Datum, len(l.Columns))
		for j, c := range l.Columns {
			if l.inPK[j] || rng.Intn(4) > 0 {
				row[j] = randDatum(rng, c.Type)
			}
		}
		key, err := l.EncodeKey(row)
		if err != nil {
			t.Fatal(err)
		}
		val, err := l.EncodeValue(row, nil)
		if err != nil {
			t.Fatal(err)
		}
		back, extra, err := l.Decode(key, val)
		if err != nil {
			t.Fatal(err)
		}
		if extra != nil {
			t.Fatalf("unexpected extra %v", extra)
		}
		for j := range row {
			if (row[j] == nil) != (back[j] == nil) || row[j] != nil && compareDatums(row[j], back[j]) != 0 {
				t.Fatalf("column %d: wrote %#v, read %#v", j, row[j], back[j])
			}
		}
	}
}

func TestSchemaSkew(t *testing.T) {
	old, err := NewLayout(200, []Column{{ID: 1, Type: types.Int}, {ID: 2, Type: types.String}}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	newer, err := NewLayout(200, []Column{
		{ID: 1, Type: types.Int}, {ID: 2, Type: types.String},
		{ID: 3, Type: types.Int, Absent: int64(7), HasDefault: true},
		{ID: 4, Type: types.String},
	}, []int{0})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("old row read by new layout gets defaults", func(t *testing.T) {
		row := []types.Datum{int64(1), "a"}
		key, _ := old.EncodeKey(row)
		val, _ := old.EncodeValue(row, nil)
		got, _, err := newer.Decode(key, val)
		if err != nil {
			t.Fatal(err)
		}
		if want := []types.Datum{int64(1), "a", int64(7), nil}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v want %v", got, want)
		}
	})
	t.Run("explicit NULL is not the default", func(t *testing.T) {
		row := []types.Datum{int64(1), "a", nil, "x"}
		key, _ := newer.EncodeKey(row)
		val, _ := newer.EncodeValue(row, nil)
		got, _, err := newer.Decode(key, val)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, row) {
			t.Fatalf("got %v want %v", got, row)
		}
	})
	t.Run("old layout rewrite keeps new columns", func(t *testing.T) {
		row := []types.Datum{int64(1), "a", int64(9), "x"}
		key, _ := newer.EncodeKey(row)
		val, _ := newer.EncodeValue(row, nil)
		oldRow, extra, err := old.Decode(key, val)
		if err != nil {
			t.Fatal(err)
		}
		if len(extra) != 2 {
			t.Fatalf("extra %v", extra)
		}
		oldRow[1] = "b" // an UPDATE on the lagging node
		val2, err := old.EncodeValue(oldRow, extra)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := newer.Decode(key, val2)
		if err != nil {
			t.Fatal(err)
		}
		if want := []types.Datum{int64(1), "b", int64(9), "x"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v want %v", got, want)
		}
		// The rewrite is canonical: what the new layout would have written.
		direct, _ := newer.EncodeValue(got, nil)
		if !bytes.Equal(direct, val2) {
			t.Fatalf("non-canonical rewrite %x vs %x", val2, direct)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	l := testLayout(t)
	row := []types.Datum{int64(1), "k", nil, nil, nil, nil, nil}
	key, _ := l.EncodeKey(row)
	for _, tc := range []struct {
		name  string
		key   []byte
		value []byte
		code  string
		msg   string
	}{
		{"unknown version", key, []byte{0x03, 1, 1, 2}, pgerror.CodeFeatureNotSupported, "row encoding version 3 is not supported"},
		{"empty value", key, nil, pgerror.CodeDataCorrupted, "empty row value"},
		{"bad tag", key, []byte{EncodingV1, 2, 0x77}, pgerror.CodeDataCorrupted, "unknown value tag"},
		{"truncated string", key, []byte{EncodingV1, 2, tagString, 10, 'a'}, pgerror.CodeDataCorrupted, "invalid string value length"},
		{"truncated key", key[:len(key)-2], []byte{EncodingV1}, pgerror.CodeDataCorrupted, ""},
		{"other table", append(TablePrefix(201), key[9:]...), []byte{EncodingV1}, pgerror.CodeDataCorrupted, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := l.Decode(tc.key, tc.value)
			if err == nil {
				t.Fatal("expected an error")
			}
			if code := pgerror.GetCode(err); code != tc.code {
				t.Fatalf("code %s want %s: %v", code, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("%q does not contain %q", err, tc.msg)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must return an error
// or a row, never panic.
func FuzzDecode(f *testing.F) {
	l, err := NewLayout(200, []Column{{ID: 1, Type: types.String}, {ID: 2, Type: types.Int}, {ID: 3, Type: types.Bytes}}, []int{0})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := l.EncodeKey([]types.Datum{"a\x00b", int64(5), []byte("x")})
	val, _ := l.EncodeValue([]types.Datum{"a\x00b", int64(5), []byte("x")}, nil)
	f.Add(key, val)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		row, extra, err := l.Decode(key, value)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same row.
		k2, err := l.EncodeKey(row)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := l.EncodeValue(row, extra)
		if err != nil {
			t.Fatal(err)
		}
		row2, _, err := l.Decode(k2, v2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(row, row2) {
			t.Fatalf("%v != %v", row, row2)
		}
	})
}

// TestDowngradeValueRoundTrips: a row rewritten to v1 (the 1.1
// down-migration) decodes to the same row, and upgrading it again gives the
// v2 bytes back; a damaged v2 value is refused, not rewritten.
func TestDowngradeValueRoundTrips(t *testing.T) {
	l, err := NewLayout(301, []Column{{ID: 1, Type: types.Int}, {ID: 2, Type: types.String}, {ID: 3, Type: types.Float}}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	row := []types.Datum{int64(7), "seven", 7.5}
	key, err := l.EncodeKey(row)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := l.EncodeValueAs(EncodingV2, key, row, nil)
	if err != nil {
		t.Fatal(err)
	}
	v1, changed, err := DowngradeValue(key, v2)
	if err != nil || !changed || ValueEncoding(v1) != EncodingV1 {
		t.Fatalf("downgrade: %x %v %v", v1, changed, err)
	}
	if again, changed, err := DowngradeValue(key, v1); err != nil || changed || string(again) != string(v1) {
		t.Fatalf("a v1 value changed: %x %v %v", again, changed, err)
	}
	got, _, err := l.Decode(key, v1)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(row) {
		t.Fatalf("decoded %v (%v), want %v", got, err, row)
	}
	if up, _, err := UpgradeValue(key, v1); err != nil || string(up) != string(v2) {
		t.Fatalf("upgrading again gave %x (%v), want %x", up, err, v2)
	}
	bad := append([]byte(nil), v2...)
	bad[len(bad)-1] ^= 1
	if _, _, err := DowngradeValue(key, bad); err == nil {
		t.Fatal("a damaged v2 value was rewritten")
	}
}
