// Package rowenc maps SQL rows to the keys and values of the replicated
// key-value store, and back.
//
// # Keys
//
// A row's key is 0x88 | uint64 big-endian table ID | the primary key columns,
// each in an order-preserving encoding:
//
//	INT8    8 bytes big-endian with the sign bit flipped
//	FLOAT8  8 bytes: IEEE bits with the sign bit set (positives) or all bits
//	        inverted (negatives); -0 is stored as +0 and every NaN as one
//	        value sorting above +Infinity, as PostgreSQL orders them
//	STRING, BYTES  the bytes with 0x00 escaped as 0x00 0xFF, then 0x00 0x01
//	BOOL    one byte, 0 or 1
//	DATE, TIMESTAMP, TIMESTAMPTZ  days or microseconds since 1970-01-01 UTC,
//	        as INT8 (release 2.1, like the rest of this list)
//	UUID    its 16 bytes
//	DECIMAL a class byte (negative, zero, positive, NaN), then for nonzero
//	        values the exponent and the digits without trailing zeros,
//	        inverted for negatives (key21.go); 1.5 and 1.50 share a key
//	INTERVAL, JSONB, arrays  no key order: not allowed in a primary key
//
// so bytes.Compare on two keys of one table agrees with comparing their
// primary keys in SQL, column by column. Every key of table N lies in
// [TablePrefix(N), TablePrefix(N+1)), which is what DROP TABLE deletes and a
// full scan reads. NULL cannot be encoded: primary key columns are NOT NULL.
//
// # Values
//
// A row's value starts with a version byte naming its encoding. Version 1
// (EncodingV1) follows it with, for each stored non-key column in ascending
// column ID order: uvarint column ID, a type tag byte, and the payload
// (zig-zag varint for INT8, 8 bytes for FLOAT8, uvarint length and bytes for
// STRING and BYTES, nothing for the two BOOL tags; the tags of release 2.1's
// types are listed in row.go and written only once the cluster is at 2.1). NULL is normally not
// stored at all; for a column with a DEFAULT it is stored as an explicit NULL
// tag, because an absent column reads as its default (see below) and a NULL
// written on purpose must not.
//
// Version 2 (EncodingV2, release 1.1) is the version byte 0x02, a 4-byte
// CRC-32C over the row's key and the body, then the body: exactly a v1 value
// without its version byte. So UpgradeValue turns a v1 value into v2 without
// the table's descriptor, which is what the 1.1 migration runs over every
// row. A checksum mismatch is XX001 (data_corrupted), naming the key.
//
// Decoding dispatches on the version byte, reads both versions at all times
// (accept what you receive), and fails with a clear 0A000 error on a version
// this binary does not know. Which version a writer uses is the writer's
// decision, from the cluster version gate (EncodeValueAs).
//
// # Schema evolution
//
// Column IDs are never reused within a table, which makes decoding tolerant
// of schema skew between nodes (the pre-Raft schema procedure lets nodes
// disagree for a while, see package catalog):
//   - a stored column the decoding layout does not know (added by a newer
//     descriptor this node has not received yet) is returned verbatim as a
//     RawColumn, and EncodeValue writes it back when the row is rewritten, so
//     an UPDATE on a lagging node does not erase it;
//   - a layout column the row does not store (the row predates ALTER TABLE
//     ADD COLUMN, or was written by a lagging node) reads as the column's
//     constant DEFAULT, or NULL.
//
// # Decoding for reads
//
// Decode returns a new row with its unknown columns, for a row that may be
// written back. A scan uses DecodeInto instead: it decodes into a slice the
// caller reuses for every row, skips the columns the query does not read,
// drops unknown columns, and with a Blocks gives INT8 and STRING datums
// their storage in shared, append-only blocks (blocks.go: an interface built
// over a pointer into a block, so a 100,000-row scan allocates a few hundred
// blocks instead of a value per column and row). A Blocks that borrows
// (Blocks.Borrow) copies nothing: its strings are the stored value's
// bytes and its integers slots reused by the next row, for a consumer that
// copies the few datums it keeps past the row (a GROUP BY).
//
// # What it does not do
//
// No secondary indexes, no column families, and no
// knowledge of descriptors: the executor builds a Layout from a table
// descriptor, so this package depends only on sql/types.
package rowenc
