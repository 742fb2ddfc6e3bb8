package keys

import (
	"bytes"
	"fmt"
	"testing"
)

// TestLayoutBytes pins the exact bytes of every key and span: they are on
// disk in every store, so a change here is a change of the on-disk format
// and must not happen.
func TestLayoutBytes(t *testing.T) {
	span := func(s, e []byte) string { return fmt.Sprintf("[%q, %q)", s, e) }
	for _, tc := range []struct {
		name      string
		got, want string
	}{
		{"NodeIDGenKey", string(NodeIDGenKey()), "\x02node-id-gen"},
		{"NodeKey(7)", string(NodeKey(7)), "\x02node/\x00\x00\x00\x07"},
		{"NodeKey(0x01020304)", string(NodeKey(0x01020304)), "\x02node/\x01\x02\x03\x04"},
		{"NodeSpan", span(NodeSpan()), span([]byte("\x02node/"), []byte("\x02node0"))},
		{"Group0FormationKey", string(Group0FormationKey()), "\x02group0/formation"},
		{"JobIDGenKey", string(JobIDGenKey()), "\x02job-id-gen"},
		{"JobKey(3)", string(JobKey(3)), "\x02job/\x00\x00\x00\x00\x00\x00\x00\x03"},
		{"JobSpan", span(JobSpan()), span([]byte("\x02job/"), []byte("\x02job0"))},
		{"LivenessKey(2)", string(LivenessKey(2)), "\x02liveness/\x00\x00\x00\x02"},
		{"LivenessSpan", span(LivenessSpan()), span([]byte("\x02liveness/"), []byte("\x02liveness0"))},
		{"MigrationKey", string(MigrationKey("1.1-step.2")), "\x02migration/1.1-step.2"},
		{"SettingChangedKey", string(SettingChangedKey("a.b")), "\x02setting-changed/a.b"},
		{"ClusterVersionKey", string(ClusterVersionKey()), "\x02setting-version"},
		{"DowngradeKey", string(DowngradeKey()), "\x02downgrade"},
		{"SettingKey", string(SettingKey("a.b")), "\x02setting/a.b"},
		{"SettingSpan", span(SettingSpan()), span([]byte("\x02setting/"), []byte("\x02setting0"))},
		{"TableIDGenKey", string(TableIDGenKey()), "\x04sql/table-id-gen"},
		{"ColumnIDGenKey(5)", string(ColumnIDGenKey(5)), "\x04sql/column-id-gen/\x00\x00\x00\x00\x00\x00\x00\x05"},
		{"UserKey", string(UserKey("alice")), "\x04sql/user/alice"},
		{"UserSpan", span(UserSpan()), span([]byte("\x04sql/user/"), []byte("\x04sql/user0"))},
		{"RoleMemberKey", string(RoleMemberKey("admin", "root")), "\x04sql/role-member/admin\x00root"},
		{"RoleMemberSpan", span(RoleMemberSpan()), span([]byte("\x04sql/role-member/"), []byte("\x04sql/role-member0"))},
		{"GrantKey", string(GrantKey("table/52", "bob")), "\x04sql/grant/table/52\x00bob"},
		{"GrantObjectSpan", span(GrantObjectSpan("table/5")), span([]byte("\x04sql/grant/table/5\x00"), []byte("\x04sql/grant/table/5\x01"))},
		{"GrantSpan", span(GrantSpan()), span([]byte("\x04sql/grant/"), []byte("\x04sql/grant0"))},
		{"TablePrefix(260)", string(TablePrefix(260)), "\x88\x00\x00\x00\x00\x00\x00\x01\x04"},
		{"TableSpan(1)", span(TableSpan(1)), span([]byte("\x88\x00\x00\x00\x00\x00\x00\x00\x01"), []byte("\x88\x00\x00\x00\x00\x00\x00\x00\x02"))},
		{"AllTablesSpan", span(AllTablesSpan()), span([]byte{0x88}, []byte{0x89})},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q: the keyspace layout is on disk and must not change", tc.name, tc.got, tc.want)
		}
	}
}

// entry is one declared key or prefix of the layout.
type entry struct {
	name   string
	b      []byte
	prefix bool
}

// layout lists every key and prefix declared in constants.go, except the
// top-level prefixes (SystemPrefix, SQLPrefix, TableDataPrefix, IndexDataPrefix), which
// contain the others and are checked on their own. A new key or prefix must
// be added here.
var layout = []entry{
	{"NodeIDGen", []byte(NodeIDGen), false},
	{"NodePrefix", []byte(NodePrefix), true},
	{"Group0Formation", []byte(Group0Formation), false},
	{"JobIDGen", []byte(JobIDGen), false},
	{"JobPrefix", []byte(JobPrefix), true},
	{"LivenessPrefix", []byte(LivenessPrefix), true},
	{"MigrationPrefix", []byte(MigrationPrefix), true},
	{"SettingChangedPrefix", []byte(SettingChangedPrefix), true},
	{"ClusterVersion", []byte(ClusterVersion), false},
	{"Downgrade", []byte(Downgrade), false},
	{"SettingPrefix", []byte(SettingPrefix), true},
	{"TableIDGen", []byte(TableIDGen), false},
	{"ColumnIDGenPrefix", []byte(ColumnIDGenPrefix), true},
	{"UserPrefix", []byte(UserPrefix), true},
	{"RoleMemberPrefix", []byte(RoleMemberPrefix), true},
	{"GrantPrefix", []byte(GrantPrefix), true},
	{"TableFencePrefix", []byte(TableFencePrefix), true},
}

// span returns the span an entry owns: [P, PrefixEnd(P)) for a prefix, the
// key alone for a key.
func (e entry) span() (start, end []byte) {
	if e.prefix {
		return e.b, PrefixEnd(e.b)
	}
	return e.b, append(append([]byte(nil), e.b...), 0)
}

func overlap(a, b entry) bool {
	as, ae := a.span()
	bs, be := b.span()
	return bytes.Compare(as, be) < 0 && bytes.Compare(bs, ae) < 0
}

// TestNoOverlap checks that no two declared keys or prefixes share a key:
// a key never lies in a prefix's span and two prefixes' spans are disjoint,
// so a scan of one record type never reads another's.
func TestNoOverlap(t *testing.T) {
	for i, a := range layout {
		for _, b := range layout[i+1:] {
			if overlap(a, b) {
				t.Errorf("%s (%q) and %s (%q) overlap", a.name, a.b, b.name, b.b)
			}
		}
	}
	top := []entry{
		{"SystemPrefix", []byte(SystemPrefix), true},
		{"SQLPrefix", []byte(SQLPrefix), true},
		{"TableDataPrefix", []byte{TableDataPrefix}, true},
		{"IndexDataPrefix", []byte{IndexDataPrefix}, true},
	}
	for i, a := range top {
		for _, b := range top[i+1:] {
			if overlap(a, b) {
				t.Errorf("%s and %s overlap", a.name, b.name)
			}
		}
	}
	// Every declared entry lies in exactly one top-level space.
	for _, e := range layout {
		n := 0
		for _, p := range top {
			if bytes.HasPrefix(e.b, p.b) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s (%q) lies in %d top-level spaces, want 1", e.name, e.b, n)
		}
	}
	// The self-check: overlap does find what it should.
	if !overlap(entry{"a", []byte("\x02setting/"), true}, entry{"b", []byte("\x02setting/x"), false}) {
		t.Fatal("overlap missed a key inside a prefix's span")
	}
}

// TestPrefixEndSortsRightAfterSpan checks that every prefix's End is the
// first key after its span: every key with the prefix sorts before it, and
// every key from the prefix up to (not including) End has the prefix, so
// nothing foreign can sort into [P, End).
func TestPrefixEndSortsRightAfterSpan(t *testing.T) {
	prefixes := append([]entry{
		{"SystemPrefix", []byte(SystemPrefix), true},
		{"SQLPrefix", []byte(SQLPrefix), true},
		{"TableDataPrefix", []byte{TableDataPrefix}, true},
		{"IndexDataPrefix", []byte{IndexDataPrefix}, true},
	}, layout...)
	for _, e := range prefixes {
		if !e.prefix {
			continue
		}
		end := PrefixEnd(e.b)
		n := len(e.b)
		if e.b[n-1] == 0xff {
			t.Errorf("%s (%q) ends in 0xff: its End would be shorter than the prefix; pick another name", e.name, e.b)
			continue
		}
		// End is the prefix with its last byte incremented: the immediate
		// successor of every key with the prefix.
		if want := append(append([]byte(nil), e.b[:n-1]...), e.b[n-1]+1); !bytes.Equal(end, want) {
			t.Errorf("PrefixEnd(%s) = %q, want %q", e.name, end, want)
		}
		for _, suffix := range [][]byte{nil, {0}, {0xff}, bytes.Repeat([]byte{0xff}, 64)} {
			k := append(append([]byte(nil), e.b...), suffix...)
			if bytes.Compare(k, end) >= 0 {
				t.Errorf("%q (prefix %s) sorts at or after End %q", k, e.name, end)
			}
		}
	}
	// The span helpers return exactly [P, PrefixEnd(P)).
	for name, f := range map[string]func() ([]byte, []byte){
		NodePrefix: NodeSpan, JobPrefix: JobSpan, LivenessPrefix: LivenessSpan, SettingPrefix: SettingSpan,
	} {
		s, e := f()
		if !bytes.Equal(s, []byte(name)) || !bytes.Equal(e, PrefixEnd([]byte(name))) {
			t.Errorf("span of %q = [%q, %q)", name, s, e)
		}
	}
	if s, e := AllTablesSpan(); !bytes.Equal(e, PrefixEnd(s)) {
		t.Errorf("AllTablesSpan = [%q, %q)", s, e)
	}
	if _, e := TableSpan(41); !bytes.Equal(e, PrefixEnd(TablePrefix(41))) {
		t.Errorf("TableSpan(41) ends at %q, want %q", e, PrefixEnd(TablePrefix(41)))
	}
}

// TestFreshSlices checks that the helpers return slices the caller may
// append to without changing the layout.
func TestFreshSlices(t *testing.T) {
	a := NodeKey(1)
	_ = append(a[:len(NodePrefix)], 'x')
	if string(NodeKey(1)) != "\x02node/\x00\x00\x00\x01" || NodePrefix != "\x02node/" {
		t.Fatal("a returned key aliases the layout")
	}
}
