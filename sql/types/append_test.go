package types

import (
	"bytes"
	"math"
	"testing"
)

// TestAppendMatchesFormat checks that AppendText and AppendBinaryMod, which
// pgwire encodes result values with, write exactly what FormatText and
// FormatBinaryMod return, after whatever the buffer already holds.
func TestAppendMatchesFormat(t *testing.T) {
	parse := func(typ T, s string) Datum {
		d, err := ParseText(typ, []byte(s))
		if err != nil {
			t.Fatalf("%s %q: %v", typ, s, err)
		}
		return d
	}
	for _, tc := range []struct {
		t T
		m Mod
		d Datum
	}{
		{Int, Mod{}, int64(0)},
		{Int, Mod{}, int64(-9223372036854775808)},
		{Int, Mod{Width: 16}, int64(-300)},
		{Int, Mod{Width: 32}, int64(2147483647)},
		{Float, Mod{}, 1.5},
		{Float, Mod{}, math.Inf(-1)},
		{Float, Mod{}, math.NaN()},
		{Float, Mod{Width: 32}, 0.25},
		{String, Mod{}, ""},
		{String, Mod{Width: 3, Fixed: true}, "ab "},
		{String, Mod{}, "héllo\x00"},
		{Bytes, Mod{}, []byte{}},
		{Bytes, Mod{}, []byte{0, 0xff, 'a'}},
		{Bool, Mod{}, true},
		{Bool, Mod{}, false},
		{Decimal, Mod{}, parse(Decimal, "-1.50")},
		{Date, Mod{}, parse(Date, "2024-02-29")},
		{TimestampTZ, Mod{}, parse(TimestampTZ, "2024-01-02 03:04:05+05:30")},
		{Interval, Mod{}, parse(Interval, "1 year 2 days")},
		{UUID, Mod{}, parse(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
		{JSONB, Mod{}, parse(JSONB, `{"a": [1, null]}`)},
		{ArrayOf(Int), Mod{}, Array{int64(1), nil, int64(3)}},
		{ArrayOf(String), Mod{}, Array{"a b", `"`}},
		{Int, Mod{}, nil},
	} {
		prefix := []byte("prefix")
		if got, want := AppendText(bytes.Clone(prefix), tc.d), append(bytes.Clone(prefix), FormatText(tc.d)...); !bytes.Equal(got, want) {
			t.Errorf("AppendText(%s %#v) = %q, want %q", tc.t, tc.d, got, want)
		}
		if got, want := AppendBinaryMod(bytes.Clone(prefix), tc.t, tc.m, tc.d), append(bytes.Clone(prefix), FormatBinaryMod(tc.t, tc.m, tc.d)...); !bytes.Equal(got, want) {
			t.Errorf("AppendBinaryMod(%s %+v %#v) = %q, want %q", tc.t, tc.m, tc.d, got, want)
		}
	}
}
