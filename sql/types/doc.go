// Package types holds kvnode's SQL types and values (datums) and their
// PostgreSQL wire representations. It is a leaf shared by the SQL executor
// and the pgwire server, so both agree on what a value is without importing
// each other.
//
// A Datum is one of: nil (SQL NULL), int64 (INT), float64 (FLOAT), string
// (TEXT/STRING), []byte (BYTES), bool (BOOL) or Array (a one-dimensional
// array, in query results only; see array.go). Nothing else is ever stored
// in a Datum; code that receives another Go type has found a bug.
package types
