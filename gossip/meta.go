package gossip

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"

	"github.com/kvnode/kvnode/nodeid"
)

// NodeMeta is the typed record each node gossips as its memberlist node
// metadata. It is encoded by encodeMeta into at most memberlist.MetaMaxSize
// bytes and decoded exactly once per change on every receiver.
//
// Everything here is a hint for discovery and status views; nothing in it is
// authoritative (see the package documentation).
type NodeMeta struct {
	// NodeID is the node's ID, assigned by the cluster and never reused.
	// The memberlist node name is "n<NodeID>".
	NodeID nodeid.ID
	// ClusterID is the UUID of the cluster the node belongs to. Peers with a
	// different ClusterID are refused.
	ClusterID string
	// BinaryVersion is the release the binary was built as, e.g. "1.1".
	BinaryVersion string
	// ListenAddr is the node's RPC (gRPC) address.
	ListenAddr string
	// SQLAddr is the node's pgwire address.
	SQLAddr string
	// HTTPAddr is the node's HTTP (health, metrics, status) address.
	HTTPAddr string
	// StartedAt is when the node process started.
	StartedAt time.Time
	// SchemaDigest is a short hex digest of the node's schema under the
	// pre-Raft schema procedure; it may change often.
	SchemaDigest string
	// Draining is set while the node drains before shutting down.
	Draining bool
	// Extra carries small string fields that a later release adds before it
	// can rely on every peer understanding a typed field. Keys must be
	// non-empty; keys and values must be valid UTF-8.
	Extra map[string]string
}

// clone returns a deep copy, so that callers never share the Extra map with
// the records Gossip keeps (which are read concurrently).
func (m NodeMeta) clone() NodeMeta {
	if m.Extra != nil {
		m.Extra = maps.Clone(m.Extra)
	}
	return m
}

// nodeName is the memberlist node name for a node ID.
func nodeName(id nodeid.ID) string { return fmt.Sprintf("n%d", id) }

// Wire format.
//
// An encoded record is one format-version byte followed by fields, each
// encoded as
//
//	tag (uvarint) | length (uvarint) | value (length bytes)
//
// The encoder writes known fields in ascending tag order, omits zero values
// and sorts Extra by key, so that the same NodeMeta always yields the same
// bytes: memberlist compares raw meta bytes to decide whether a node updated
// and whether to refute an alive message about the local node, so a
// non-deterministic encoding would cause spurious updates.
//
// Compatibility rules, in the spirit of protobuf and consul's vsn tags:
//   - A decoder skips fields with tags it does not know, so a later release
//     can add an optional field under a new tag without changing the format
//     version, and older peers keep admitting it.
//   - A tag's meaning and value encoding never change; a retired tag is
//     never reused.
//   - The format version byte changes only for a change that older decoders
//     cannot skip. A node must not send a new format version before every
//     node can decode it (gate what you send): peers reject a record whose
//     version they do not know, and memberlist's delegate protocol range
//     (DelegateProtocolMin/Max) reflects the same number.
const (
	// metaFormatV1 is the current and only format version.
	metaFormatV1 byte = 1
)

// Field tags of format version 1. Append only.
const (
	tagNodeID        = 1  // uvarint, 1..MaxInt32
	tagClusterID     = 2  // UTF-8 string
	tagBinaryVersion = 3  // UTF-8 string
	tagListenAddr    = 4  // UTF-8 string
	tagSQLAddr       = 5  // UTF-8 string
	tagHTTPAddr      = 6  // UTF-8 string
	tagStartedAt     = 7  // varint Unix seconds, then uvarint nanoseconds (< 1e9)
	tagSchemaDigest  = 8  // UTF-8 string
	tagFlags         = 9  // uvarint bit set, see flag*
	tagExtra         = 10 // uvarint key length, key, value; repeated, one per entry
)

// metaFlags are boolean fields packed into tagFlags. Bits a decoder does not
// know are ignored, so later releases can add flags freely.
type metaFlags uint64

const (
	flagDraining metaFlags = 1 << 0
	// flagLeaving announces a graceful Leave just before memberlist's own
	// leave message. memberlist reports a departed node through the same
	// NotifyLeave callback whether it left or failed, so peers use this flag
	// to tell Left from Dead (serf does the same with its leave intents).
	// It is not part of NodeMeta: it is a statement about the gossip
	// session, not about the node.
	flagLeaving metaFlags = 1 << 1
)

// Encoding and decoding errors.
var (
	// ErrMetaTooLarge is returned when an encoded NodeMeta would exceed
	// memberlist.MetaMaxSize.
	ErrMetaTooLarge = errors.New("gossip metadata too large")
	// ErrInvalidMeta marks a NodeMeta that cannot be encoded or a record
	// that cannot be decoded.
	ErrInvalidMeta = errors.New("invalid gossip metadata")
	// ErrUnknownMetaVersion marks a record whose format version this binary
	// does not know, typically from a newer release that was allowed to send
	// it too early.
	ErrUnknownMetaVersion = errors.New("unknown gossip metadata format version")
)

// maxExtraKeyLen bounds a key of NodeMeta.Extra; the record as a whole is
// bounded by memberlist.MetaMaxSize anyway.
const maxExtraKeyLen = 64

// validateMeta checks the invariants both encodeMeta and decodeMeta enforce,
// so that anything one node can encode every peer can decode.
func validateMeta(m *NodeMeta) error {
	if m.NodeID <= 0 {
		return errors.Mark(errors.Newf("node ID %d is not positive", m.NodeID), ErrInvalidMeta)
	}
	if m.ClusterID == "" {
		return errors.Mark(errors.New("cluster ID is empty"), ErrInvalidMeta)
	}
	for _, f := range []struct {
		name, v string
	}{
		{"cluster ID", m.ClusterID},
		{"binary version", m.BinaryVersion},
		{"listen address", m.ListenAddr},
		{"SQL address", m.SQLAddr},
		{"HTTP address", m.HTTPAddr},
		{"schema digest", m.SchemaDigest},
	} {
		if !utf8.ValidString(f.v) {
			return errors.Mark(errors.Newf("%s %q is not valid UTF-8", f.name, f.v), ErrInvalidMeta)
		}
	}
	for k, v := range m.Extra {
		if k == "" || len(k) > maxExtraKeyLen || !utf8.ValidString(k) {
			return errors.Mark(errors.Newf("extra key %q must be 1..%d bytes of valid UTF-8", k, maxExtraKeyLen), ErrInvalidMeta)
		}
		if !utf8.ValidString(v) {
			return errors.Mark(errors.Newf("extra value for %q is not valid UTF-8", k), ErrInvalidMeta)
		}
	}
	return nil
}

// encodeMeta encodes m (plus the session flags) and refuses a record larger
// than memberlist.MetaMaxSize: memberlist panics on oversized metadata, so
// the check must happen here, where the caller can still get an error.
func encodeMeta(m NodeMeta, flags metaFlags) ([]byte, error) {
	if err := validateMeta(&m); err != nil {
		return nil, err
	}
	if m.Draining {
		flags |= flagDraining
	} else {
		flags &^= flagDraining
	}
	b := make([]byte, 0, 128)
	b = append(b, metaFormatV1)
	b = appendField(b, tagNodeID, binary.AppendUvarint(nil, uint64(m.NodeID)))
	b = appendString(b, tagClusterID, m.ClusterID)
	b = appendString(b, tagBinaryVersion, m.BinaryVersion)
	b = appendString(b, tagListenAddr, m.ListenAddr)
	b = appendString(b, tagSQLAddr, m.SQLAddr)
	b = appendString(b, tagHTTPAddr, m.HTTPAddr)
	if !m.StartedAt.IsZero() {
		v := binary.AppendVarint(nil, m.StartedAt.Unix())
		v = binary.AppendUvarint(v, uint64(m.StartedAt.Nanosecond()))
		b = appendField(b, tagStartedAt, v)
	}
	b = appendString(b, tagSchemaDigest, m.SchemaDigest)
	if flags != 0 {
		b = appendField(b, tagFlags, binary.AppendUvarint(nil, uint64(flags)))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Extra)) {
		v := binary.AppendUvarint(nil, uint64(len(k)))
		v = append(v, k...)
		v = append(v, m.Extra[k]...)
		b = appendField(b, tagExtra, v)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, errors.WithHint(
			errors.Mark(errors.Newf("node metadata of n%d encodes to %d bytes, over the gossip limit of %d bytes (memberlist.MetaMaxSize)",
				m.NodeID, len(b), memberlist.MetaMaxSize), ErrMetaTooLarge),
			"shorten the addresses or the Extra fields of the node metadata")
	}
	return b, nil
}

func appendField(b []byte, tag uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, tag uint64, s string) []byte {
	if s == "" {
		return b
	}
	b = binary.AppendUvarint(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeMeta decodes a record produced by encodeMeta. It never panics on
// arbitrary input (FuzzDecodeMeta checks that): gossip metadata arrives from
// the network, and a peer that sends garbage is refused, not a crash.
func decodeMeta(b []byte) (NodeMeta, metaFlags, error) {
	var m NodeMeta
	if len(b) == 0 {
		return m, 0, errors.Mark(errors.New("empty record"), ErrInvalidMeta)
	}
	if b[0] != metaFormatV1 {
		return m, 0, errors.Mark(errors.Newf("format version %d, this binary knows %d", b[0], metaFormatV1), ErrUnknownMetaVersion)
	}
	var flags metaFlags
	var seen uint64 // bit per known non-repeated tag
	rest := b[1:]
	for len(rest) > 0 {
		tag, n := binary.Uvarint(rest)
		if n <= 0 {
			return NodeMeta{}, 0, corrupt("bad field tag")
		}
		rest = rest[n:]
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return NodeMeta{}, 0, corrupt("bad length of field %d", tag)
		}
		v := rest[n : n+int(l)]
		rest = rest[n+int(l):]

		if tag >= tagNodeID && tag < tagExtra {
			if seen&(1<<tag) != 0 {
				return NodeMeta{}, 0, corrupt("field %d repeated", tag)
			}
			seen |= 1 << tag
		}
		var err error
		switch tag {
		case tagNodeID:
			id, ok := exactUvarint(v)
			if !ok || id == 0 || id > math.MaxInt32 {
				return NodeMeta{}, 0, corrupt("bad node ID")
			}
			m.NodeID = nodeid.ID(id)
		case tagClusterID:
			m.ClusterID, err = decodeString(v, "cluster ID")
		case tagBinaryVersion:
			m.BinaryVersion, err = decodeString(v, "binary version")
		case tagListenAddr:
			m.ListenAddr, err = decodeString(v, "listen address")
		case tagSQLAddr:
			m.SQLAddr, err = decodeString(v, "SQL address")
		case tagHTTPAddr:
			m.HTTPAddr, err = decodeString(v, "HTTP address")
		case tagStartedAt:
			sec, n := binary.Varint(v)
			if n <= 0 {
				return NodeMeta{}, 0, corrupt("bad start time")
			}
			nsec, ok := exactUvarint(v[n:])
			if !ok || nsec >= uint64(time.Second) {
				return NodeMeta{}, 0, corrupt("bad start time")
			}
			m.StartedAt = time.Unix(sec, int64(nsec)).UTC()
			if m.StartedAt.IsZero() {
				// The encoder omits the zero time; accepting it here
				// would make two encodings of one value.
				return NodeMeta{}, 0, corrupt("bad start time")
			}
		case tagSchemaDigest:
			m.SchemaDigest, err = decodeString(v, "schema digest")
		case tagFlags:
			f, ok := exactUvarint(v)
			if !ok {
				return NodeMeta{}, 0, corrupt("bad flags")
			}
			flags = metaFlags(f)
		case tagExtra:
			kl, n := binary.Uvarint(v)
			if n <= 0 || kl > uint64(len(v)-n) {
				return NodeMeta{}, 0, corrupt("bad extra entry")
			}
			k, val := string(v[n:n+int(kl)]), string(v[n+int(kl):])
			if m.Extra == nil {
				m.Extra = make(map[string]string)
			}
			if _, dup := m.Extra[k]; dup {
				return NodeMeta{}, 0, corrupt("extra key %q repeated", k)
			}
			m.Extra[k] = val
		default:
			// A field from a later release: skip it (see the wire format).
		}
		if err != nil {
			return NodeMeta{}, 0, err
		}
	}
	m.Draining = flags&flagDraining != 0
	if err := validateMeta(&m); err != nil {
		return NodeMeta{}, 0, err
	}
	return m, flags, nil
}

func corrupt(format string, args ...any) error {
	return errors.Mark(errors.Newf("corrupt record: "+format, args...), ErrInvalidMeta)
}

// exactUvarint decodes a uvarint that must fill v exactly.
func exactUvarint(v []byte) (uint64, bool) {
	x, n := binary.Uvarint(v)
	return x, n > 0 && n == len(v)
}

func decodeString(v []byte, what string) (string, error) {
	if len(v) == 0 {
		// The encoder omits empty strings.
		return "", corrupt("empty %s field", what)
	}
	return string(v), nil
}
