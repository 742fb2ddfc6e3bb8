package types

import (
	"reflect"
	"testing"
)

// TestText21 pins each type's text input and PostgreSQL's output for it.
func TestText21(t *testing.T) {
	for _, tc := range []struct {
		t       T
		in, out string
	}{
		{Decimal, "1.50", "1.50"},
		{Decimal, " -3e2 ", "-300"},
		{Decimal, "1E-3", "0.001"},
		{Decimal, "nan", "NaN"},
		{Date, "2024-02-29", "2024-02-29"},
		{Date, "2024-2-9 10:00", "2024-02-09"},
		{Date, "0044-03-15 BC", "0044-03-15 BC"},
		{Timestamp, "2024-01-02T03:04:05.123456789", "2024-01-02 03:04:05.123457"},
		{Timestamp, "2024-01-02 03:04:05+05", "2024-01-02 03:04:05"},
		{TimestampTZ, "2024-01-02 03:04:05+05:30", "2024-01-01 21:34:05+00"},
		{TimestampTZ, "2024-01-02 03:04:05Z", "2024-01-02 03:04:05+00"},
		{TimestampTZ, "2024-01-02", "2024-01-02 00:00:00+00"},
		{TimestampTZ, "epoch", "1970-01-01 00:00:00+00"},
		{Interval, "1 year 2 months 3 days 04:05:06.5", "1 year 2 mons 3 days 04:05:06.5"},
		{Interval, "-1 day", "-1 days"},
		{Interval, "90 minutes", "01:30:00"},
		{Interval, "1.5 months", "1 mon 15 days"},
		{Interval, "0", "00:00:00"},
		{Interval, "@ 2 hours ago", "-02:00:00"},
		{UUID, "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{JSONB, `{"b":1, "aa": [true, null, 1.10, 1e2], "b": "\u00e9\t"}`, `{"b": "é\t", "aa": [true, null, 1.10, 100]}`},
		{JSONB, ` "x" `, `"x"`},
	} {
		d, err := ParseText(tc.t, []byte(tc.in))
		if err != nil {
			t.Errorf("%s %q: %v", tc.t, tc.in, err)
			continue
		}
		if got := string(FormatText(d)); got != tc.out {
			t.Errorf("%s %q: got %q, want %q", tc.t, tc.in, got, tc.out)
		}
		if TypeOf(d) != tc.t {
			t.Errorf("%s %q: TypeOf = %s", tc.t, tc.in, TypeOf(d))
		}
		// The output reads back as the same value, in text and in binary.
		d2, err := ParseText(tc.t, FormatText(d))
		if err != nil || string(FormatText(d2)) != tc.out {
			t.Errorf("%s %q: output %q does not read back: %v", tc.t, tc.in, tc.out, err)
		}
		d3, err := ParseBinary(tc.t, tc.t.OID(), FormatBinary(tc.t, d))
		if err != nil || string(FormatText(d3)) != tc.out {
			t.Errorf("%s %q: binary round trip gave %v, %v", tc.t, tc.in, d3, err)
		}
	}
	for _, tc := range []struct {
		t  T
		in string
	}{
		{Decimal, "1..2"}, {Decimal, "Infinity"}, {Date, "2023-02-29"}, {Date, "yesterday-ish"},
		{Timestamp, "2024-01-02 25:00:00"}, {Interval, "1 fortnight"}, {UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"},
		{JSONB, `{"a":1} x`}, {JSONB, `{a:1}`},
	} {
		if d, err := ParseText(tc.t, []byte(tc.in)); err == nil {
			t.Errorf("%s %q: parsed as %v, want an error", tc.t, tc.in, d)
		}
	}
}

// TestAssign checks the column modifiers: ranges, lengths, padding,
// rounding.
func TestAssign(t *testing.T) {
	dec := func(s string) Datum { d, _ := ParseDecimal(s); return d }
	for _, tc := range []struct {
		name    string
		typ     string
		d       Datum
		want    string
		errCode string
	}{
		{"int2 max", "INT2", int64(32767), "32767", ""},
		{"int2 over", "SMALLINT", int64(32768), "", "22003"},
		{"int4 under", "INTEGER", int64(-2147483649), "", "22003"},
		{"float4 rounds", "REAL", 1.1, "1.1", ""},
		{"float4 overflow", "FLOAT4", 1e39, "", "22003"},
		{"varchar fits", "VARCHAR(3)", "äbc", "äbc", ""},
		{"varchar too long", "VARCHAR(3)", "abcd", "", "22001"},
		{"varchar trailing blanks cut", "VARCHAR(3)", "ab    ", "ab ", ""},
		{"char pads", "CHAR(4)", "ab", "ab  ", ""},
		{"char too long", "CHARACTER(1)", "ab", "", "22001"},
		{"numeric rounds half up", "NUMERIC(5,2)", dec("1.005"), "1.01", ""},
		{"numeric negative", "DECIMAL(5,2)", dec("-999.994"), "-999.99", ""},
		{"numeric overflow", "DECIMAL(5,2)", dec("999.995"), "", "22003"},
		{"numeric scale 0", "NUMERIC(3)", dec("12.5"), "13", ""},
		{"numeric NaN", "NUMERIC(3,1)", dec("NaN"), "NaN", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, mod, ok := FromNameMod(tc.typ)
			if !ok {
				t.Fatalf("type %q", tc.typ)
			}
			got, err := Assign(tc.d, typ, mod)
			if tc.errCode != "" {
				ae, ok := err.(*AssignError)
				if !ok || ae.Code != tc.errCode {
					t.Fatalf("got %v, %v; want error %s", got, err, tc.errCode)
				}
				return
			}
			if err != nil || string(FormatText(got)) != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestColumnTypeNames: every declared type prints as a name that reads
// back as the same type (descriptors store the name).
func TestColumnTypeNames(t *testing.T) {
	for _, name := range []string{"INT2", "INT4", "INT8", "FLOAT4", "FLOAT8", "STRING", "VARCHAR(10)", "CHAR(3)",
		"BYTES", "BOOL", "DECIMAL", "DECIMAL(10,2)", "DATE", "TIMESTAMP", "TIMESTAMPTZ", "INTERVAL", "UUID", "JSONB"} {
		typ, mod, ok := FromNameMod(name)
		if !ok {
			t.Fatalf("%s does not parse", name)
		}
		if got := ColumnTypeString(typ, mod); got != name {
			t.Errorf("%s prints as %s", name, got)
		}
		t2, m2, _ := FromNameMod(ColumnTypeString(typ, mod))
		if !reflect.DeepEqual([]any{t2, m2}, []any{typ, mod}) {
			t.Errorf("%s does not round-trip", name)
		}
	}
	for name, want := range map[string]string{"integer": "INT4", "smallint": "INT2", "real": "FLOAT4",
		"double precision": "FLOAT8", "character varying(7)": "VARCHAR(7)", "character": "CHAR(1)",
		"numeric(8, 3)": "DECIMAL(8,3)", "timestamp(3) with time zone": "TIMESTAMPTZ", "json": "JSONB", "varchar": "STRING"} {
		typ, mod, ok := FromNameMod(name)
		if got := ColumnTypeString(typ, mod); !ok || got != want {
			t.Errorf("%s: got %s (ok=%v), want %s", name, got, ok, want)
		}
	}
}
