package types

import (
	"testing"

	"github.com/cockroachdb/apd/v3"
)

// TestDivNumeric: PostgreSQL's numeric_div, the expected quotients being
// PostgreSQL 15's (SELECT x::numeric / y).
func TestDivNumeric(t *testing.T) {
	for _, c := range []struct{ x, y, want string }{
		{"3", "2", "1.5000000000000000"},
		{"5", "3", "1.6666666666666667"},
		{"-3", "2", "-1.5000000000000000"},
		{"1e-20", "2", "0.0000000000000000000050000000000000000000"},
		{"100000000001", "2", "50000000000.50000000"},
		{"3.123456789012345678901", "2", "1.561728394506172839451"},
		{"0", "2", "0.00000000000000000000"},
		{"NaN", "2", "NaN"},
		{"2", "3e10", "0.0000000000666666666666666667"},
		{"123456789", "7", "17636684.142857142857"},
		{"1.000", "3.0", "0.33333333333333333333"},
	} {
		x, _, _ := apd.NewFromString(c.x)
		y, _, _ := apd.NewFromString(c.y)
		got, err := DivNumeric(x, y)
		if err != nil {
			t.Errorf("%s / %s: %v", c.x, c.y, err)
			continue
		}
		if s := got.Text('f'); s != c.want {
			t.Errorf("%s / %s = %s, want %s", c.x, c.y, s, c.want)
		}
	}
	if _, err := DivNumeric(apd.New(1, 0), apd.New(0, 0)); err == nil {
		t.Error("1 / 0: no error")
	}
}
