package types

import (
	"encoding/binary"
	"testing"
)

func TestArrayText(t *testing.T) {
	for _, tc := range []struct {
		elem T
		in   string
		out  string
	}{
		{Int, "{1,2,NULL}", "{1,2,NULL}"},
		{Int, "{ 1 , 2 }", "{1,2}"},
		{Int, "{}", "{}"},
		{String, `{a,"b c","","NULL",null,"q\"x"}`, `{a,"b c","","NULL",NULL,"q\"x"}`},
		{Bool, "{t,false}", "{t,f}"},
	} {
		a, err := ParseArrayText(tc.elem, tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := string(FormatText(a)); got != tc.out {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.out)
		}
		if !Fits(a, ArrayOf(tc.elem)) || Fits(a, tc.elem) {
			t.Errorf("%s: Fits", tc.in)
		}
	}
	for _, bad := range []string{"1,2", "{1,{2}}", `{"a}`, "{x}"} {
		if _, err := ParseArrayText(Int, bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestArrayBinary(t *testing.T) {
	b := FormatBinary(ArrayOf(Int), Array{int64(7), nil})
	// ndim 1, has-null 1, elem int8, length 2, lower bound 1, 7, NULL.
	want := []uint32{1, 1, OIDInt8, 2, 1}
	for i, w := range want {
		if got := binary.BigEndian.Uint32(b[4*i:]); got != w {
			t.Fatalf("header word %d = %d, want %d", i, got, w)
		}
	}
	if n := binary.BigEndian.Uint32(b[20:]); n != 8 || binary.BigEndian.Uint64(b[24:]) != 7 {
		t.Errorf("first element: len %d", n)
	}
	if n := binary.BigEndian.Uint32(b[32:]); n != 0xFFFFFFFF {
		t.Errorf("NULL element: len %x", n)
	}
	if e := FormatBinary(ArrayOf(String), Array{}); binary.BigEndian.Uint32(e) != 0 || len(e) != 12 {
		t.Errorf("empty array: %x", e)
	}
	if ArrayOf(String).OID() != 1009 || ArrayOf(Int).String() != "INT8[]" || !ArrayOf(Bool).IsArray() || ArrayOf(Bool).Elem() != Bool {
		t.Error("array type metadata")
	}
}

func TestArrayBinaryRoundTrip(t *testing.T) {
	for _, a := range []Array{{int64(7), nil, int64(-1)}, {}} {
		b := FormatBinary(ArrayOf(Int), a)
		got, err := ParseBinary(ArrayOf(Int), 1016, b)
		if err != nil {
			t.Fatal(err)
		}
		if string(FormatText(got)) != string(FormatText(a)) {
			t.Errorf("%v -> %v", a, got)
		}
	}
	// An int4[] from a client becomes INT8 elements.
	b := []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5}
	if got, err := ParseBinary(ArrayOf(Int), 1007, b); err != nil || string(FormatText(got)) != "{5}" {
		t.Errorf("int4[]: %v %v", got, err)
	}
	for _, bad := range [][]byte{b[:10], b[:24], append(append([]byte{}, b...), 0)} {
		if _, err := ParseBinary(ArrayOf(Int), 1007, bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
	if typ, ok := FromOID(1009); !ok || typ != ArrayOf(String) {
		t.Errorf("FromOID(1009) = %v, %v", typ, ok)
	}
}
