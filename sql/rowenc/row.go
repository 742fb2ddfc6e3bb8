package rowenc

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"sort"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Row value encoding versions. The first byte of every row value names the
// encoding, so that a binary can read rows written in any encoding it knows
// and refuse, clearly, one it does not (release 1.1 adds v2 with a checksum).
const (
	// EncodingV1 is: 0x01, then for each stored column in ascending column
	// ID order: uvarint column ID, tag byte, payload.
	EncodingV1 byte = 0x01
	// EncodingV2 (release 1.1) is: 0x02, a 4-byte big-endian CRC-32C of the
	// row's key followed by the body, then the body, which is exactly a v1
	// value without its version byte. The key is in the checksum so that a
	// value found under the wrong key is caught too.
	EncodingV2 byte = 0x02
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func rowChecksum(key, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
}

// EncodeValueAs encodes like EncodeValue, in the given encoding version
// (EncodingV1 or EncodingV2). The writer chooses the version from the
// cluster version gate; readers accept both at all times.
func (l *Layout) EncodeValueAs(enc byte, key []byte, row []types.Datum, extra []RawColumn) ([]byte, error) {
	v1, err := l.EncodeValue(row, extra)
	if err != nil || enc == EncodingV1 {
		return v1, err
	}
	out, _, err := UpgradeValue(key, v1)
	return out, err
}

// UpgradeValue rewrites a stored value into encoding v2 without needing the
// table's descriptor (the 1.1 migration runs it over every row). It reports
// whether the value changed; a v2 value is returned as it is, after its
// checksum is verified.
func UpgradeValue(key, value []byte) ([]byte, bool, error) {
	if len(value) == 0 {
		return nil, false, corrupt("empty row value")
	}
	switch value[0] {
	case EncodingV1:
		body := value[1:]
		out := make([]byte, 5, 5+len(body))
		out[0] = EncodingV2
		binary.BigEndian.PutUint32(out[1:5], rowChecksum(key, body))
		return append(out, body...), true, nil
	case EncodingV2:
		if _, err := verifyV2(key, value); err != nil {
			return nil, false, err
		}
		return value, false, nil
	}
	return nil, false, unknownEncoding(value[0])
}

// DowngradeValue rewrites a stored value into encoding v1 (the 1.1
// down-migration runs it over every row, for a downgrade to 1.0), after
// verifying a v2 value's checksum. It reports whether the value changed; a
// v1 value is returned as it is.
func DowngradeValue(key, value []byte) ([]byte, bool, error) {
	if len(value) == 0 {
		return nil, false, corrupt("empty row value")
	}
	switch value[0] {
	case EncodingV1:
		return value, false, nil
	case EncodingV2:
		body, err := verifyV2(key, value)
		if err != nil {
			return nil, false, err
		}
		out := make([]byte, 1, 1+len(body))
		out[0] = EncodingV1
		return append(out, body...), true, nil
	}
	return nil, false, unknownEncoding(value[0])
}

// ValueEncoding returns the encoding version of a stored value.
func ValueEncoding(value []byte) byte {
	if len(value) == 0 {
		return 0
	}
	return value[0]
}

// verifyV2 checks a v2 value's checksum and returns its body.
func verifyV2(key, value []byte) ([]byte, error) {
	if len(value) < 5 {
		return nil, corrupt("row value too short for encoding v2")
	}
	body := value[5:]
	if want, got := binary.BigEndian.Uint32(value[1:5]), rowChecksum(key, body); want != got {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeDataCorrupted, "row checksum mismatch for key %x: stored %08x, computed %08x", key, want, got),
			"the row's stored bytes are damaged; restore the node's store from a healthy replica (decommission it and add a new node)")
	}
	return body, nil
}

func unknownEncoding(v byte) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"row encoding version %d is not supported by this binary (it reads versions %d and %d)", v, EncodingV1, EncodingV2),
		"the row was written by a newer kvnode release; upgrade this node's binary")
}

// Value tags of encoding v1.
const (
	tagNull   byte = 0x00 // explicit NULL, only for columns with a DEFAULT
	tagInt    byte = 0x01 // payload: zig-zag varint
	tagFloat  byte = 0x02 // payload: 8 bytes, IEEE 754 big-endian
	tagString byte = 0x03 // payload: uvarint length, bytes
	tagBytes  byte = 0x04 // payload: uvarint length, bytes
	tagFalse  byte = 0x05 // no payload
	tagTrue   byte = 0x06 // no payload

	// Tags of release 2.1's types, written only once the cluster is at
	// 2.1 (a column of these types cannot be created before): a binary of
	// 2.0 fails on them with XX001.
	tagDecimal     byte = 0x07 // payload: uvarint length, the decimal's exact text (apd's String)
	tagDate        byte = 0x08 // payload: zig-zag varint days since 1970-01-01
	tagTimestamp   byte = 0x09 // payload: zig-zag varint microseconds since 1970-01-01 00:00 UTC
	tagTimestampTZ byte = 0x0a // payload: as tagTimestamp
	tagInterval    byte = 0x0b // payload: zig-zag varints months, days, microseconds
	tagUUID        byte = 0x0c // payload: 16 bytes
	tagJSON        byte = 0x0d // payload: uvarint length, canonical JSONB text
	tagArray       byte = 0x0e // payload: uvarint count, then each element as a tagged value (tagNull for NULL)
)

// Column is what the codec needs to know about one column.
type Column struct {
	ID   int32
	Type types.T
	// Absent is the value of the column in a row that does not store it:
	// the column's constant DEFAULT, or nil. Rows written before an ALTER
	// TABLE ADD COLUMN, or by a node that had not yet learned of the
	// column, lack it.
	Absent types.Datum
	// HasDefault makes the encoder store NULL explicitly, so that a NULL
	// written on purpose is not read back as the default.
	HasDefault bool
}

// Layout describes one table's rows: its ID, its columns in declaration
// order and which of them form the primary key.
type Layout struct {
	TableID int64
	Columns []Column
	PK      []int // indexes into Columns, in key order

	inPK   []bool
	prefix []byte // TablePrefix(TableID)
	byID   map[int32]int
	// posOf[id] is 1 + the position of the column with that ID (0: none),
	// for IDs below maxDenseColumnID: a decode looks every stored column
	// up, and indexing a slice costs less than a map lookup.
	posOf  []int32
	sorted []int // indexes into Columns of non-PK columns, by column ID
}

// NewLayout validates and indexes a layout.
func NewLayout(tableID int64, cols []Column, pk []int) (*Layout, error) {
	l := &Layout{TableID: tableID, Columns: cols, PK: pk,
		inPK: make([]bool, len(cols)), prefix: TablePrefix(tableID), byID: make(map[int32]int, len(cols))}
	if len(pk) == 0 {
		return nil, errors.AssertionFailedf("table %d has no primary key", tableID)
	}
	for i, c := range cols {
		if _, dup := l.byID[c.ID]; dup {
			return nil, errors.AssertionFailedf("table %d has two columns with ID %d", tableID, c.ID)
		}
		l.byID[c.ID] = i
		if c.ID >= 0 && c.ID < maxDenseColumnID {
			if int(c.ID) >= len(l.posOf) {
				l.posOf = append(l.posOf, make([]int32, int(c.ID)+1-len(l.posOf))...)
			}
			l.posOf[c.ID] = int32(i) + 1
		}
	}
	for _, i := range pk {
		if i < 0 || i >= len(cols) || l.inPK[i] {
			return nil, errors.AssertionFailedf("table %d: bad primary key column index %d", tableID, i)
		}
		l.inPK[i] = true
	}
	for i := range cols {
		if !l.inPK[i] {
			l.sorted = append(l.sorted, i)
		}
	}
	sort.Slice(l.sorted, func(a, b int) bool { return cols[l.sorted[a]].ID < cols[l.sorted[b]].ID })
	return l, nil
}

// EncodeKey returns the key of the row: the table prefix and the primary
// key columns.
func (l *Layout) EncodeKey(row []types.Datum) ([]byte, error) {
	key := TablePrefix(l.TableID)
	var err error
	for _, i := range l.PK {
		if key, err = AppendKey(key, l.Columns[i].Type, row[i]); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// EncodeKeyPrefix encodes the first len(vals) primary key columns, for
// range scans over a key prefix.
func (l *Layout) EncodeKeyPrefix(vals []types.Datum) ([]byte, error) {
	key := TablePrefix(l.TableID)
	var err error
	for j, v := range vals {
		if key, err = AppendKey(key, l.Columns[l.PK[j]].Type, v); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// EncodeValue encodes the non-key columns of row in encoding v1. extra holds
// raw entries, as returned by Decode, of columns this layout does not know;
// they are carried over so that a node whose schema lags behind does not
// erase a newer column's value when it rewrites a row.
func (l *Layout) EncodeValue(row []types.Datum, extra []RawColumn) ([]byte, error) {
	b := make([]byte, 1, 16)
	b[0] = EncodingV1
	xi := 0
	for _, i := range l.sorted {
		c := l.Columns[i]
		for xi < len(extra) && extra[xi].ID < c.ID {
			b = appendRaw(b, extra[xi])
			xi++
		}
		if xi < len(extra) && extra[xi].ID == c.ID {
			xi++ // the layout's own column wins
		}
		d := row[i]
		if d == nil {
			if c.HasDefault {
				b = binary.AppendUvarint(b, uint64(c.ID))
				b = append(b, tagNull)
			}
			continue
		}
		b = binary.AppendUvarint(b, uint64(c.ID))
		var err error
		if b, err = appendValue(b, c.Type, d); err != nil {
			return nil, err
		}
	}
	for ; xi < len(extra); xi++ {
		b = appendRaw(b, extra[xi])
	}
	return b, nil
}

func appendRaw(b []byte, r RawColumn) []byte {
	b = binary.AppendUvarint(b, uint64(r.ID))
	return append(b, r.Data...)
}

func appendValue(b []byte, t types.T, d types.Datum) ([]byte, error) {
	switch t {
	case types.Int:
		v, ok := d.(int64)
		if !ok {
			return nil, typeErr(t, d)
		}
		return binary.AppendVarint(append(b, tagInt), v), nil
	case types.Float:
		v, ok := d.(float64)
		if !ok {
			return nil, typeErr(t, d)
		}
		return binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(v)), nil
	case types.String:
		v, ok := d.(string)
		if !ok {
			return nil, typeErr(t, d)
		}
		b = binary.AppendUvarint(append(b, tagString), uint64(len(v)))
		return append(b, v...), nil
	case types.Bytes:
		v, ok := d.([]byte)
		if !ok {
			return nil, typeErr(t, d)
		}
		b = binary.AppendUvarint(append(b, tagBytes), uint64(len(v)))
		return append(b, v...), nil
	case types.Bool:
		v, ok := d.(bool)
		if !ok {
			return nil, typeErr(t, d)
		}
		if v {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	}
	if out, ok, err := appendValue21(b, t, d); ok {
		return out, err
	}
	return nil, errors.AssertionFailedf("cannot encode type %s", t)
}

// RawColumn is a stored column entry that the decoding layout does not
// know: its ID and its tag and payload bytes, kept verbatim.
type RawColumn struct {
	ID   int32
	Data []byte
}

// Decode decodes a row from its key and value into one datum per layout
// column. Stored columns the layout lacks are returned in extra (sorted by
// ID); layout columns the row lacks get their Absent value.
func (l *Layout) Decode(key, value []byte) (row []types.Datum, extra []RawColumn, err error) {
	row = make([]types.Datum, len(l.Columns))
	if extra, err = l.decode(row, key, value, nil, true, nil); err != nil {
		return nil, nil, err
	}
	return row, extra, nil
}

// DecodeInto decodes a row for reading into row, which has one element per
// layout column, as Decode does, but without collecting the stored columns
// the layout lacks (a read never writes the row back) and, when need is not
// nil, without the columns whose need is false: those are left nil, and a
// value column among them is skipped without being decoded. It allocates
// nothing but the datums themselves, so a scan can decode every row into
// the same slice; with blk, INT8 and STRING datums take their storage from
// its blocks (nil: each allocated), or, when blk borrows (Blocks.Borrow),
// are valid only until the next row is decoded into blk.
func (l *Layout) DecodeInto(row []types.Datum, key, value []byte, need []bool, blk *Blocks) error {
	if len(row) != len(l.Columns) || (need != nil && len(need) != len(l.Columns)) {
		return errors.AssertionFailedf("DecodeInto: %d datums and %d needs for %d columns", len(row), len(need), len(l.Columns))
	}
	blk.nextRow()
	_, err := l.decode(row, key, value, need, false, blk)
	return err
}

func (l *Layout) decode(row []types.Datum, key, value []byte, need []bool, wantExtra bool, blk *Blocks) (extra []RawColumn, err error) {
	if !bytes.HasPrefix(key, l.prefix) {
		return nil, corrupt("key outside the table's span")
	}
	rest := key[len(l.prefix):]
	for _, i := range l.PK {
		if t := l.Columns[i].Type; t == types.Int && blk != nil {
			if len(rest) < 8 {
				return nil, corrupt("truncated INT8 key column")
			}
			row[i], rest = blk.Int(int64(binary.BigEndian.Uint64(rest)^(1<<63))), rest[8:]
		} else if row[i], rest, err = DecodeKey(rest, t); err != nil {
			return nil, err
		}
		if need != nil && !need[i] {
			row[i] = nil
		}
	}
	if len(rest) != 0 {
		return nil, corrupt("trailing bytes after the primary key")
	}
	if len(value) == 0 {
		return nil, corrupt("empty row value")
	}
	var body []byte
	switch value[0] {
	case EncodingV1:
		body = value[1:]
	case EncodingV2:
		if body, err = verifyV2(key, value); err != nil {
			return nil, err
		}
	default:
		return nil, unknownEncoding(value[0])
	}
	return l.decodeV1(row, body, need, wantExtra, blk)
}

func (l *Layout) decodeV1(row []types.Datum, b []byte, need []bool, wantExtra bool, blk *Blocks) ([]RawColumn, error) {
	// seen lives on the stack for up to 64 columns.
	var seenBuf [64]bool
	var seen []bool
	if len(l.Columns) <= len(seenBuf) {
		seen = seenBuf[:len(l.Columns)]
	} else {
		seen = make([]bool, len(l.Columns))
	}
	var extra []RawColumn
	for len(b) > 0 {
		id, n := uvarint(b)
		if n <= 0 || id > math.MaxInt32 {
			return nil, corrupt("invalid column ID")
		}
		b = b[n:]
		start := b
		i, known := l.columnByID(id)
		if (known && need != nil && !need[i]) || (!known && !wantExtra) {
			rest, err := skipValue(b)
			if err != nil {
				return nil, err
			}
			b = rest
			if known && !l.inPK[i] {
				seen[i] = true
			}
			continue
		}
		tag, d, rest, err := decodeValueIn(b, blk)
		if err != nil {
			return nil, err
		}
		b = rest
		if !known {
			extra = append(extra, RawColumn{ID: int32(id), Data: append([]byte(nil), start[:len(start)-len(rest)]...)})
			continue
		}
		if l.inPK[i] {
			continue // key columns live in the key
		}
		seen[i] = true
		if tag == tagNull {
			row[i] = nil
			continue
		}
		if !fits(tag, d, l.Columns[i].Type) {
			// A column ID never changes type in a descriptor; a mismatch
			// means a value written under another table generation. Ignore
			// it rather than fail every read of the row.
			seen[i] = false
			continue
		}
		row[i] = d
	}
	for i, c := range l.Columns {
		if l.inPK[i] {
			continue
		}
		switch {
		case need != nil && !need[i]:
			row[i] = nil
		case !seen[i]:
			row[i] = c.Absent
		}
	}
	return extra, nil
}

// uvarint is binary.Uvarint with the one-byte case inline: column IDs and
// the lengths of short strings, read for every column of every row a scan
// decodes.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

// fits is types.Fits(d, t) for the datum decodeValueIn returned with tag,
// answered from the tag for the commonest ones (a STRING or INT8 tag
// always decodes to a string or an int64).
func fits(tag byte, d types.Datum, t types.T) bool {
	switch tag {
	case tagString:
		return t == types.String
	case tagInt:
		return t == types.Int
	}
	return types.Fits(d, t)
}

// maxDenseColumnID bounds the column IDs that Layout.posOf indexes; a
// table whose columns were added and dropped beyond it looks the others up
// in byID.
const maxDenseColumnID = 1024

// columnByID returns the position of the layout's column with ID id.
func (l *Layout) columnByID(id uint64) (int, bool) {
	if id < uint64(len(l.posOf)) {
		p := l.posOf[id]
		return int(p) - 1, p != 0
	}
	if id < maxDenseColumnID {
		return 0, false
	}
	i, ok := l.byID[int32(id)]
	return i, ok
}

// skipValue steps over one tagged value without decoding it (the types of
// release 1 and 2.0 without allocating).
func skipValue(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, corrupt("missing value tag")
	}
	switch b[0] {
	case tagNull, tagFalse, tagTrue:
		return b[1:], nil
	case tagInt:
		if _, n := binary.Varint(b[1:]); n > 0 {
			return b[1+n:], nil
		}
		return nil, corrupt("invalid INT8 value")
	case tagFloat:
		if len(b) < 9 {
			return nil, corrupt("truncated FLOAT8 value")
		}
		return b[9:], nil
	case tagString, tagBytes:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return nil, corrupt("invalid string value length")
		}
		return b[1+k+int(n):], nil
	}
	_, _, rest, err := decodeValue(b)
	return rest, err
}

// decodeValue decodes one tagged value.
func decodeValue(b []byte) (tag byte, d types.Datum, rest []byte, err error) {
	return decodeValueIn(b, nil)
}

// decodeValueIn decodes one tagged value, its INT8 or STRING datum in blk
// (nil: allocated).
func decodeValueIn(b []byte, blk *Blocks) (tag byte, d types.Datum, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, corrupt("missing value tag")
	}
	tag, b = b[0], b[1:]
	switch tag {
	case tagNull:
		return tag, nil, b, nil
	case tagInt:
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, nil, nil, corrupt("invalid INT8 value")
		}
		return tag, blk.Int(v), b[n:], nil
	case tagFloat:
		if len(b) < 8 {
			return 0, nil, nil, corrupt("truncated FLOAT8 value")
		}
		return tag, math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case tagString, tagBytes:
		n, k := uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return 0, nil, nil, corrupt("invalid string value length")
		}
		payload := b[k : k+int(n)]
		if tag == tagString {
			return tag, blk.String(payload), b[k+int(n):], nil
		}
		return tag, append([]byte{}, payload...), b[k+int(n):], nil
	case tagFalse:
		return tag, false, b, nil
	case tagTrue:
		return tag, true, b, nil
	}
	if d, rest, ok, err := decodeValue21(tag, b); ok {
		return tag, d, rest, err
	}
	return 0, nil, nil, corrupt("unknown value tag")
}
