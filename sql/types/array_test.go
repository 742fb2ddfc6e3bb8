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
