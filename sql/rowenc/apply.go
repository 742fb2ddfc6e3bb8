package rowenc

import (
	"encoding/binary"
	"math"
	"sort"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// AddToInts is the apply function kvpb.ApplyAddToInts: it adds constants to
// INT columns of a stored row, where the data group applies the write, so
// that UPDATE t SET n = n + $1 WHERE pk = $2 in a transaction needs no read
// of the row (a hot row does not turn into conflicts). It works on the
// encoded value alone, with no descriptor: the value names each stored
// column by ID and tags its type. A column stored as NULL stays NULL; a
// column the row does not store reads as its Absent value (a constant
// DEFAULT, carried in the argument) or NULL. The result keeps the value's
// encoding (v2: its checksum is recomputed over key and body).
//
// Its behaviour is part of the replicated state machine (see
// kvpb.ApplyFunc): change it only under a new ID.
func AddToInts(key, value, arg []byte) ([]byte, error) {
	deltas, err := decodeIntDeltas(arg)
	if err != nil {
		return nil, err
	}
	if len(value) == 0 {
		return nil, corrupt("empty row value")
	}
	enc := value[0]
	var body []byte
	switch enc {
	case EncodingV1:
		body = value[1:]
	case EncodingV2:
		if body, err = verifyV2(key, value); err != nil {
			return nil, err
		}
	default:
		return nil, unknownEncoding(enc)
	}
	out := make([]byte, 0, len(body)+8)
	done := make([]bool, len(deltas))
	// insertAbsent appends the absent columns with IDs below id (all of
	// them when id is -1) that have a value to start from, keeping the
	// body in column ID order.
	insertAbsent := func(below int64) error {
		for i, d := range deltas {
			if done[i] || (below >= 0 && int64(d.ID) >= below) {
				continue
			}
			done[i] = true
			if !d.HasAbsent {
				continue // NULL + n is NULL: the column stays absent
			}
			v, err := addInt(d.Absent, d.Delta)
			if err != nil {
				return err
			}
			out = binary.AppendUvarint(out, uint64(d.ID))
			out = binary.AppendVarint(append(out, tagInt), v)
		}
		return nil
	}
	for b := body; len(b) > 0; {
		id, n := binary.Uvarint(b)
		if n <= 0 || id > math.MaxInt32 {
			return nil, corrupt("invalid column ID")
		}
		if err := insertAbsent(int64(id)); err != nil {
			return nil, err
		}
		start := b
		tag, d, rest, err := decodeValue(b[n:])
		if err != nil {
			return nil, err
		}
		b = rest
		i := indexOfDelta(deltas, int32(id))
		if i < 0 || tag != tagInt {
			// Not a column to change, or stored as NULL (stays NULL), or
			// of another type (read as absent by the decoder): verbatim.
			if i >= 0 {
				done[i] = true
			}
			out = append(out, start[:len(start)-len(rest)]...)
			continue
		}
		done[i] = true
		v, err := addInt(d.(int64), deltas[i].Delta)
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, id)
		out = binary.AppendVarint(append(out, tagInt), v)
	}
	if err := insertAbsent(-1); err != nil {
		return nil, err
	}
	if enc == EncodingV1 {
		return append([]byte{EncodingV1}, out...), nil
	}
	v := make([]byte, 5, 5+len(out))
	v[0] = EncodingV2
	binary.BigEndian.PutUint32(v[1:], rowChecksum(key, out))
	return append(v, out...), nil
}

func init() { kvpb.RegisterApplyFunc(kvpb.ApplyAddToInts, AddToInts) }

// IntDelta is one column of an AddToInts argument.
type IntDelta struct {
	ID    int32
	Delta int64
	// HasAbsent and Absent: the value of the column in a row that does not
	// store it (its constant DEFAULT); without it, such a row's column is
	// NULL and stays so.
	HasAbsent bool
	Absent    int64
}

// EncodeIntDeltas encodes the argument of AddToInts, sorted by column ID.
func EncodeIntDeltas(ds []IntDelta) []byte {
	ds = append([]IntDelta(nil), ds...)
	sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
	b := binary.AppendUvarint(nil, uint64(len(ds)))
	for _, d := range ds {
		b = binary.AppendUvarint(b, uint64(d.ID))
		b = binary.AppendVarint(b, d.Delta)
		if d.HasAbsent {
			b = binary.AppendVarint(append(b, 1), d.Absent)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

var errBadDeltas = errors.New("malformed AddToInts argument")

func decodeIntDeltas(b []byte) ([]IntDelta, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadDeltas
	}
	b = b[k:]
	ds := make([]IntDelta, 0, n)
	for i := uint64(0); i < n; i++ {
		id, k := binary.Uvarint(b)
		if k <= 0 || id > math.MaxInt32 {
			return nil, errBadDeltas
		}
		b = b[k:]
		delta, k := binary.Varint(b)
		if k <= 0 || len(b) < k+1 {
			return nil, errBadDeltas
		}
		d := IntDelta{ID: int32(id), Delta: delta}
		has := b[k]
		b = b[k+1:]
		if has == 1 {
			abs, k := binary.Varint(b)
			if k <= 0 {
				return nil, errBadDeltas
			}
			d.HasAbsent, d.Absent = true, abs
			b = b[k:]
		}
		ds = append(ds, d)
	}
	if len(b) != 0 {
		return nil, errBadDeltas
	}
	return ds, nil
}

func indexOfDelta(ds []IntDelta, id int32) int {
	for i := range ds {
		if ds[i].ID == id {
			return i
		}
	}
	return -1
}

func addInt(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range")
	}
	return s, nil
}
