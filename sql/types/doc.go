// Package types holds kvnode's SQL types and values (datums) and their
// PostgreSQL wire representations. It is a leaf shared by the SQL executor
// and the pgwire server, so both agree on what a value is without importing
// each other.
//
// A Datum is one of: nil (SQL NULL), int64 (INT), float64 (FLOAT), string
// (TEXT/STRING), []byte (BYTES), bool (BOOL), Array (a one-dimensional
// array; see array.go), or one of release 2.1's:
// *apd.Decimal (DECIMAL, never modified once made), DateDatum,
// TimestampDatum, TimestampTZDatum, IntervalDatum, UUIDDatum and JSONDatum
// (canonical JSONB text). Nothing else is ever stored in a Datum; code that
// receives another Go type has found a bug.
//
// A column's declared type is a T and a Mod (coltype.go): INT2/INT4,
// FLOAT4, VARCHAR(n)/CHAR(n) and DECIMAL(p,s) are their family's T with a
// modifier that Assign checks when a value is stored. Binary wire formats
// of the 2.1 types go through pgx's pgtype codecs (wire.go); text formats
// are PostgreSQL's output with DateStyle ISO, IntervalStyle postgres and
// TimeZone UTC.
package types
