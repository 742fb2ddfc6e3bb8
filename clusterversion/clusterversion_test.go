package clusterversion

import (
	"strings"
	"testing"
)

func TestLadderIsStrictlyIncreasing(t *testing.T) {
	for k := Key(1); k < numKeys; k++ {
		if (k - 1).Version().Less(k.Version()) {
			continue
		}
		t.Fatalf("ladder entry %d (%s) is not above entry %d (%s)", k, k, k-1, k-1)
	}
	for k := Key(0); k < numKeys; k++ {
		if k.Description() == "" {
			t.Errorf("ladder entry %s has no description", k)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		err  bool
	}{
		{in: "1.0", want: Version{1, 0, 0}},
		{in: "2.0", want: Version{2, 0, 0}},
		{in: " 1.1 ", want: Version{1, 1, 0}},
		{in: "2.0-step.1", want: Version{2, 0, 1}},
		{in: "", err: true},
		{in: "1", err: true},
		{in: "a.b", err: true},
		{in: "1.0-step.0", err: true},
		{in: "1.0-step.x", err: true},
		{in: "-1.0", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != trim(tc.in) {
				t.Fatalf("String() = %q, want %q", got.String(), trim(tc.in))
			}
		})
	}
}

func trim(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func TestOrder(t *testing.T) {
	ordered := []Version{{1, 0, 0}, {1, 1, 1}, {1, 1, 0}, {2, 0, 1}, {2, 0, 2}, {2, 0, 0}}
	for i := 1; i < len(ordered); i++ {
		if !ordered[i-1].Less(ordered[i]) {
			t.Errorf("%s should sort before %s", ordered[i-1], ordered[i])
		}
	}
}

func TestBinaryVersion(t *testing.T) {
	defer func(old string) { binaryVersion = old }(binaryVersion)
	for _, tc := range []struct {
		set  string
		want string
		err  bool
	}{
		{set: "", want: "2.1"},
		{set: "1.0", want: "1.0"},
		{set: "1.1", want: "1.1"},
		{set: "2.0", want: "2.0"},
		{set: "2.1", want: "2.1"},
		{set: "1.2", err: true},
		{set: "2.0-step.1", err: true},
		{set: "banana", err: true},
	} {
		binaryVersion = tc.set
		v, err := BinaryVersion()
		if tc.err != (err != nil) || (!tc.err && v.String() != tc.want) {
			t.Errorf("binaryVersion=%q: got %v, %v", tc.set, v, err)
		}
	}
}

func TestMinSupported(t *testing.T) {
	for in, want := range map[string]string{"1.0": "1.0", "1.1": "1.0", "2.0": "1.1", "2.1": "2.0"} {
		v, _ := Parse(in)
		if got := MinSupported(v).String(); got != want {
			t.Errorf("MinSupported(%s) = %s, want %s", in, got, want)
		}
	}
}

type fixed Version

func (f fixed) ActiveVersion() Version { return Version(f) }

func TestFencesAndBetween(t *testing.T) {
	if f, ok := Fence(V1_1.Version()); !ok || f != V1_1Fence.Version() || f.String() != "1.1-step.1" {
		t.Fatalf("fence of 1.1 = %v %v", f, ok)
	}
	if _, ok := Fence(V1_0.Version()); ok {
		t.Fatal("1.0 has no fence")
	}
	var got []string
	for _, v := range Between(V1_0.Version(), V2_0.Version()) {
		got = append(got, v.String())
	}
	if want := "1.1-step.1 1.1-step.2 1.1 2.0-step.1 2.0"; strings.Join(got, " ") != want {
		t.Fatalf("Between(1.0, 2.0) = %v, want %s", got, want)
	}
}

func TestGates(t *testing.T) {
	defer func(old string) { binaryVersion = old }(binaryVersion)
	for _, tc := range []struct {
		bin, active string
		key         Key
		want        bool
	}{
		{bin: "2.0", active: "1.0", key: V1_1, want: false},
		{bin: "2.0", active: "1.1", key: V1_1, want: true},
		{bin: "2.0", active: "1.1-step.1", key: V1_1, want: false},
		{bin: "2.0", active: "2.0", key: V2_0, want: true},
		// A 1.1 binary never activates a 2.0 gate, whatever it is told.
		{bin: "1.1", active: "2.0", key: V2_0, want: false},
		{bin: "1.1", active: "2.0", key: V1_1, want: true},
	} {
		binaryVersion = tc.bin
		v, err := Parse(tc.active)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsActive(fixed(v), tc.key); got != tc.want {
			t.Errorf("binary %s, active %s: IsActive(%s) = %v, want %v", tc.bin, tc.active, tc.key, got, tc.want)
		}
	}
}

func TestSupports(t *testing.T) {
	for _, tc := range []struct {
		bin, v string
		want   bool
	}{
		{"1.1", "1.0", true}, {"1.1", "1.1-step.1", true}, {"1.1", "1.1", true}, {"1.1", "2.0-step.1", false},
		{"2.0", "1.0", false}, {"2.0", "1.1", true}, {"2.0", "2.0", true}, {"1.0", "1.0", true}, {"1.0", "1.1-step.1", false},
	} {
		b, _ := Parse(tc.bin)
		v, _ := Parse(tc.v)
		if got := Supports(b, v); got != tc.want {
			t.Errorf("Supports(%s, %s) = %v, want %v", tc.bin, tc.v, got, tc.want)
		}
	}
}

func TestRelease(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.0", "1.0"}, {"1.1-step.1", "1.1"}, {"1.1-step.2", "1.1"}, {"2.0-step.1", "2.0"}, {"2.0", "2.0"},
	} {
		v, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Release().String(); got != tc.want {
			t.Errorf("%s.Release() = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPrev(t *testing.T) {
	keys := Keys()
	if _, ok := Prev(keys[0].Version()); ok {
		t.Fatal("the first release has a previous entry")
	}
	for i := 1; i < len(keys); i++ {
		if p, ok := Prev(keys[i].Version()); !ok || p != keys[i-1].Version() {
			t.Fatalf("Prev(%s) = %s %v, want %s", keys[i], p, ok, keys[i-1])
		}
	}
	for _, c := range []struct{ v, want string }{{"2.1", "2.0"}, {"2.1-step.1", "2.0"}, {"2.0-step.1", "1.1"}, {"1.1", "1.0"}} {
		v, _ := Parse(c.v)
		if p, ok := PrevRelease(v); !ok || p.String() != c.want {
			t.Errorf("PrevRelease(%s) = %s %v, want %s", c.v, p, ok, c.want)
		}
	}
	if _, ok := PrevRelease(V1_0.Version()); ok {
		t.Error("1.0 has a previous release")
	}
}
