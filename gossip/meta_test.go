package gossip

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

const testClusterID = "5f3c1f9e-3b7a-4c1e-9d2a-1b2c3d4e5f60"

func fullMeta() NodeMeta {
	return NodeMeta{
		NodeID:        42,
		ClusterID:     testClusterID,
		BinaryVersion: "2.0",
		ListenAddr:    "10.0.0.1:26257",
		SQLAddr:       "10.0.0.1:26258",
		HTTPAddr:      "10.0.0.1:8080",
		StartedAt:     time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		SchemaDigest:  "9f86d081884c7d65",
		Draining:      true,
		Extra:         map[string]string{"locality": "region=eu", "b": "", "ünï": "cødé"},
	}
}

// sameMeta compares two metas the way a reader would: times by instant.
func sameMeta(a, b NodeMeta) bool {
	if !a.StartedAt.Equal(b.StartedAt) {
		return false
	}
	a.StartedAt, b.StartedAt = time.Time{}, time.Time{}
	if len(a.Extra) == 0 && len(b.Extra) == 0 {
		a.Extra, b.Extra = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestMetaRoundTrip(t *testing.T) {
	local := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name  string
		meta  NodeMeta
		flags metaFlags
	}{
		{"minimal", NodeMeta{NodeID: 1, ClusterID: "c"}, 0},
		{"full", fullMeta(), 0},
		{"leaving", fullMeta(), flagLeaving},
		{"max node id", NodeMeta{NodeID: 1<<31 - 1, ClusterID: "c"}, 0},
		{"time before epoch", NodeMeta{NodeID: 7, ClusterID: "c", StartedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}, 0},
		{"time with zone", NodeMeta{NodeID: 7, ClusterID: "c", StartedAt: local}, 0},
		{"empty extra map", NodeMeta{NodeID: 7, ClusterID: "c", Extra: map[string]string{}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMeta(tc.meta, tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != metaFormatV1 {
				t.Fatalf("version byte %d", b[0])
			}
			got, flags, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameMeta(got, tc.meta) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.meta)
			}
			wantFlags := tc.flags
			if tc.meta.Draining {
				wantFlags |= flagDraining
			}
			if flags != wantFlags {
				t.Fatalf("flags %b, want %b", flags, wantFlags)
			}
		})
	}
}

func TestMetaEncodingIsCompactAndDeterministic(t *testing.T) {
	m := fullMeta()
	m.Extra = map[string]string{}
	for i := range 10 {
		m.Extra[string(rune('a'+i))] = "v"
	}
	first, err := encodeMeta(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	// memberlist compares raw bytes to detect updates, so map iteration
	// order must not leak into the encoding.
	for range 20 {
		b, err := encodeMeta(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatal("encoding is not deterministic")
		}
	}
	// A typical record leaves most of the 512 bytes for Extra.
	typical := fullMeta()
	typical.Extra = nil
	b, _ := encodeMeta(typical, 0)
	if len(b) > 160 {
		t.Fatalf("typical record is %d bytes", len(b))
	}
	t.Logf("typical record: %d bytes", len(b))
}

func TestMetaEncodeRefuses(t *testing.T) {
	big := fullMeta()
	big.Extra = map[string]string{"blob": strings.Repeat("x", memberlist.MetaMaxSize)}
	for _, tc := range []struct {
		name   string
		meta   NodeMeta
		is     error
		substr string
	}{
		{"too large", big, ErrMetaTooLarge, "over the gossip limit of 512 bytes"},
		{"no node id", NodeMeta{ClusterID: "c"}, ErrInvalidMeta, "node ID 0"},
		{"negative node id", NodeMeta{NodeID: -3, ClusterID: "c"}, ErrInvalidMeta, "node ID -3"},
		{"no cluster id", NodeMeta{NodeID: 1}, ErrInvalidMeta, "cluster ID is empty"},
		{"bad utf8", NodeMeta{NodeID: 1, ClusterID: "c", SQLAddr: "\xff"}, ErrInvalidMeta, "SQL address"},
		{"empty extra key", NodeMeta{NodeID: 1, ClusterID: "c", Extra: map[string]string{"": "v"}}, ErrInvalidMeta, "extra key"},
		{"long extra key", NodeMeta{NodeID: 1, ClusterID: "c", Extra: map[string]string{strings.Repeat("k", 65): "v"}}, ErrInvalidMeta, "extra key"},
		{"bad extra value", NodeMeta{NodeID: 1, ClusterID: "c", Extra: map[string]string{"k": "\xc3"}}, ErrInvalidMeta, "extra value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeMeta(tc.meta, 0)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want %v containing %q", err, tc.is, tc.substr)
			}
		})
	}
}

// field builds one raw TLV field.
func field(tag uint64, v []byte) []byte { return appendField(nil, tag, v) }

func uv(x uint64) []byte { return binary.AppendUvarint(nil, x) }

func rawRecord(fields ...[]byte) []byte {
	b := []byte{metaFormatV1}
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

var (
	fID      = field(tagNodeID, uv(3))
	fCluster = field(tagClusterID, []byte("c"))
)

func TestMetaDecode(t *testing.T) {
	valid, err := encodeMeta(fullMeta(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		is   error // nil: must decode
	}{
		{"valid", valid, nil},
		{"minimal", rawRecord(fID, fCluster), nil},
		{"fields out of order", rawRecord(fCluster, fID), nil},
		{"unknown field is skipped", rawRecord(fID, field(99, []byte("from the future")), fCluster), nil},
		{"unknown flag bit is ignored", rawRecord(fID, fCluster, field(tagFlags, uv(1<<20))), nil},
		{"nil", nil, ErrInvalidMeta},
		{"empty", []byte{}, ErrInvalidMeta},
		{"version 0", append([]byte{0}, valid[1:]...), ErrUnknownMetaVersion},
		{"future version", append([]byte{2}, valid[1:]...), ErrUnknownMetaVersion},
		{"json", []byte(`{"NodeID":1}`), ErrUnknownMetaVersion},
		{"version only", []byte{metaFormatV1}, ErrInvalidMeta},
		{"truncated", valid[:len(valid)-3], ErrInvalidMeta},
		{"missing node id", rawRecord(fCluster), ErrInvalidMeta},
		{"missing cluster id", rawRecord(fID), ErrInvalidMeta},
		{"zero node id", rawRecord(field(tagNodeID, uv(0)), fCluster), ErrInvalidMeta},
		{"node id overflows int32", rawRecord(field(tagNodeID, uv(1<<31)), fCluster), ErrInvalidMeta},
		{"node id with trailing bytes", rawRecord(field(tagNodeID, []byte{3, 0}), fCluster), ErrInvalidMeta},
		{"repeated field", rawRecord(fID, fCluster, fCluster), ErrInvalidMeta},
		{"empty string field", rawRecord(fID, fCluster, field(tagSQLAddr, nil)), ErrInvalidMeta},
		{"invalid utf8", rawRecord(fID, field(tagClusterID, []byte{0xff})), ErrInvalidMeta},
		{"length past end", rawRecord(fID, fCluster, []byte{tagSQLAddr, 50, 'x'}), ErrInvalidMeta},
		{"huge length", rawRecord(fID, fCluster, append([]byte{tagSQLAddr}, uv(1<<62)...)), ErrInvalidMeta},
		{"unterminated tag", rawRecord(fID, fCluster, []byte{0x80}), ErrInvalidMeta},
		{"nanoseconds out of range", rawRecord(fID, fCluster, field(tagStartedAt, append(binary.AppendVarint(nil, 5), uv(1e9)...))), ErrInvalidMeta},
		{"zero time encoded", rawRecord(fID, fCluster, field(tagStartedAt, append(binary.AppendVarint(nil, time.Time{}.Unix()), 0))), ErrInvalidMeta},
		{"extra key longer than entry", rawRecord(fID, fCluster, field(tagExtra, []byte{9, 'k'})), ErrInvalidMeta},
		{"empty extra key", rawRecord(fID, fCluster, field(tagExtra, []byte{0, 'v'})), ErrInvalidMeta},
		{"repeated extra key", rawRecord(fID, fCluster, field(tagExtra, []byte{1, 'k'}), field(tagExtra, []byte{1, 'k', 'v'})), ErrInvalidMeta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := decodeMeta(tc.in)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v (%+v), want %v", err, m, tc.is)
			}
		})
	}
}

// FuzzDecodeMeta checks that decoding never panics and that whatever
// decodes re-encodes to a record that decodes to the same value: a peer's
// record either is refused or means exactly one thing.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []NodeMeta{fullMeta(), {NodeID: 1, ClusterID: "c"}} {
		b, err := encodeMeta(m, flagLeaving)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2, 1, 1, 3})
	f.Add(rawRecord(fID, fCluster, field(99, []byte("x"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2*memberlist.MetaMaxSize {
			// Longer inputs exercise nothing new (every field is bounded
			// by its length prefix) and make minimization crawl.
			return
		}
		m, flags, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) && !errors.Is(err, ErrUnknownMetaVersion) {
				t.Fatalf("unmarked error %v", err)
			}
			return
		}
		again, err := encodeMeta(m, flags)
		if err != nil {
			if errors.Is(err, ErrMetaTooLarge) && len(b) > memberlist.MetaMaxSize {
				return // memberlist never delivers such a record
			}
			t.Fatalf("decoded %+v but cannot re-encode: %v", m, err)
		}
		m2, flags2, err := decodeMeta(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) || flags != flags2 {
			t.Fatalf("unstable round trip:\n%+v %b\n%+v %b", m, flags, m2, flags2)
		}
	})
}
