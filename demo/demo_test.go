package demo

import "testing"

func TestParseUpgradeFrom(t *testing.T) {
	for _, ok := range []string{"1.0", "1.1", " 1.1 ", "2.0"} {
		if _, err := ParseUpgradeFrom(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "2.1", "1", "1.1.1", "v1.1", "1.2", "1.1-step.2"} {
		if v, err := ParseUpgradeFrom(bad); err == nil {
			t.Errorf("%q: accepted as %s", bad, v)
		}
	}
}
