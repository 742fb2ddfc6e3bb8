// Package pgerror attaches PostgreSQL SQLSTATE codes and positions to errors
// built with github.com/cockroachdb/errors, and flattens any error into the
// fields of a pgwire ErrorResponse. Every layer that produces an error a SQL
// client will see uses it, so the client always gets a code and a sentence
// naming the fix (as a hint) rather than an internal message.
package pgerror
