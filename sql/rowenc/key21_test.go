package rowenc

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/kvnode/kvnode/sql/types"
)

// randDecimal makes decimals of every shape: zero, NaN, small and large
// exponents, trailing zeros, negatives.
func randDecimal(r *rand.Rand) *apd.Decimal {
	switch r.Intn(12) {
	case 0:
		return &apd.Decimal{Form: apd.NaN}
	case 1:
		return apd.New(0, int32(r.Intn(10)-5))
	}
	coeff := r.Int63n(1 << uint(r.Intn(62)+1))
	if r.Intn(2) == 0 {
		coeff = -coeff
	}
	return apd.New(coeff, int32(r.Intn(60)-30))
}

type decPair struct{ A, B *apd.Decimal }

func (decPair) Generate(r *rand.Rand, _ int) reflect.Value {
	a := randDecimal(r)
	b := randDecimal(r)
	if r.Intn(4) == 0 { // equal values written differently: 1.5 and 1.50
		b = new(apd.Decimal)
		b.Set(a)
		if a.Form == apd.Finite {
			b.Coeff.Mul(&b.Coeff, apd.NewBigInt(100))
			b.Exponent -= 2
		}
	}
	return reflect.ValueOf(decPair{a, b})
}

// TestDecimalKeyOrder: bytes.Compare on encodings agrees with comparing
// the decimals (NaN above every number, 1.5 = 1.50), also with a column
// after it, and decoding returns an equal value.
func TestDecimalKeyOrder(t *testing.T) {
	f := func(p decPair) bool {
		ka, err := AppendKey(nil, types.Decimal, p.A)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := AppendKey(nil, types.Decimal, p.B)
		if err != nil {
			t.Fatal(err)
		}
		want := types.CompareDecimals(p.A, p.B)
		if got := sign(bytes.Compare(ka, kb)); got != want {
			t.Errorf("%s vs %s: keys compare %d, values %d", p.A, p.B, got, want)
			return false
		}
		// A following column must not disturb the order.
		ka2 := append(append([]byte{}, ka...), 0xFF, 0xFF)
		kb2 := append(append([]byte{}, kb...), 0x00)
		if want != 0 && sign(bytes.Compare(ka2, kb2)) != want {
			t.Errorf("%s vs %s: order changed by a following column", p.A, p.B)
			return false
		}
		d, rest, err := DecodeKey(append(ka, 7), types.Decimal)
		if err != nil || !bytes.Equal(rest, []byte{7}) || types.CompareDecimals(d.(*apd.Decimal), p.A) != 0 {
			t.Errorf("%s: decoded %v, rest %x, err %v", p.A, d, rest, err)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 20000}); err != nil {
		t.Fatal(err)
	}
}

// TestKeyOrder21 checks the other key types of 2.1 the same way.
func TestKeyOrder21(t *testing.T) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	t.Logf("seed-free property test; types: DATE TIMESTAMP TIMESTAMPTZ UUID")
	gen := map[types.T]func() types.Datum{
		types.Date: func() types.Datum { return types.DateDatum(r.Int63n(2_000_000) - 1_000_000) },
		types.Timestamp: func() types.Datum {
			return types.MakeTimestamp(time.UnixMicro(r.Int63n(1<<50) - 1<<49))
		},
		types.TimestampTZ: func() types.Datum {
			return types.MakeTimestampTZ(time.UnixMicro(r.Int63n(1<<50) - 1<<49))
		},
		types.UUID: func() types.Datum {
			var u types.UUIDDatum
			r.Read(u[:r.Intn(17)])
			return u
		},
	}
	cmp := func(a, b types.Datum) int {
		switch x := a.(type) {
		case types.DateDatum:
			return sign(int(x - b.(types.DateDatum)))
		case types.TimestampDatum:
			return x.Compare(b.(types.TimestampDatum).Time)
		case types.TimestampTZDatum:
			return x.Compare(b.(types.TimestampTZDatum).Time)
		case types.UUIDDatum:
			y := b.(types.UUIDDatum)
			return bytes.Compare(x[:], y[:])
		}
		t.Fatalf("unexpected %T", a)
		return 0
	}
	for typ, g := range gen {
		for i := 0; i < 5000; i++ {
			a, b := g(), g()
			if i%10 == 0 {
				b = a
			}
			ka, err := AppendKey(nil, typ, a)
			if err != nil {
				t.Fatal(err)
			}
			kb, _ := AppendKey(nil, typ, b)
			if got, want := sign(bytes.Compare(ka, kb)), cmp(a, b); got != want {
				t.Fatalf("%s %v vs %v: keys %d, values %d", typ, a, b, got, want)
			}
			d, rest, err := DecodeKey(ka, typ)
			if err != nil || len(rest) != 0 || cmp(d, a) != 0 {
				t.Fatalf("%s %v: decoded %v, err %v", typ, a, d, err)
			}
		}
	}
}

// TestValues21 round-trips every type of 2.1 through the value encoding.
func TestValues21(t *testing.T) {
	cols := []Column{{ID: 1, Type: types.Int}, {ID: 2, Type: types.Decimal}, {ID: 3, Type: types.Date},
		{ID: 4, Type: types.Timestamp}, {ID: 5, Type: types.TimestampTZ}, {ID: 6, Type: types.Interval},
		{ID: 7, Type: types.UUID}, {ID: 8, Type: types.JSONB}, {ID: 9, Type: types.ArrayOf(types.String)},
		{ID: 10, Type: types.ArrayOf(types.Int)}}
	l, err := NewLayout(300, cols, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := types.ParseDecimal("-12345678901234567890.000100")
	js, _ := types.ParseJSON(`{"b": [1, 2.50], "a": "\u00e9\n"}`)
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	rows := [][]types.Datum{
		{int64(1), dec, types.DateDatum(-719162), types.MakeTimestamp(ts), types.MakeTimestampTZ(ts),
			types.IntervalDatum{Months: -14, Days: 3, Micros: -1}, types.NewRandomUUID(), js,
			types.Array{"a", nil, ""}, types.Array{}},
		{int64(2), &apd.Decimal{Form: apd.NaN}, nil, nil, nil, nil, nil, nil, nil, types.Array{int64(-1), nil}},
	}
	for _, row := range rows {
		key, err := l.EncodeKey(row)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []byte{EncodingV1, EncodingV2} {
			val, err := l.EncodeValueAs(enc, key, row, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, extra, err := l.Decode(key, val)
			if err != nil || extra != nil {
				t.Fatalf("decode: %v %v", err, extra)
			}
			if g, w := got[1].(*apd.Decimal).String(), row[1].(*apd.Decimal).String(); g != w {
				t.Fatalf("decimal %s != %s (the scale must survive)", g, w)
			}
			orig := row[1]
			got[1], row[1] = nil, nil
			if !reflect.DeepEqual(got, row) {
				t.Fatalf("got %#v\nwant %#v", got, row)
			}
			row[1] = orig
		}
	}
}

// FuzzDecimalKey: any bytes either fail to decode or decode to a decimal
// whose encoding is exactly those bytes; any two decimals order like
// their encodings.
func FuzzDecimalKey(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-1.5", "NaN", "1e-30", "-123456789012345678901234567890"} {
		d, _, _ := apd.NewFromString(s)
		f.Add(appendDecimalKey(nil, d), int64(15), int32(-1))
	}
	f.Fuzz(func(t *testing.T, b []byte, coeff int64, exp int32) {
		if d, rest, err := decodeDecimalKey(b); err == nil {
			re := appendDecimalKey(nil, d.(*apd.Decimal))
			if !bytes.Equal(re, b[:len(b)-len(rest)]) {
				t.Fatalf("%x decodes to %s which encodes to %x", b, d, re)
			}
		}
		exp %= 1000
		a := apd.New(coeff, exp)
		c := apd.New(coeff/7+1, exp/2)
		if got, want := sign(bytes.Compare(appendDecimalKey(nil, a), appendDecimalKey(nil, c))), a.Cmp(c); got != want {
			t.Fatalf("%s vs %s: keys %d, values %d", a, c, got, want)
		}
	})
}
