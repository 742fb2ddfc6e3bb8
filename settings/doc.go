// Package settings is kvnode's cluster settings: typed, named values with a
// description, a default and validation, stored in the replicated keyspace
// so that every node sees the same value, and settable through SQL
// (SET / RESET / SHOW CLUSTER SETTING, SHOW [ALL] CLUSTER SETTINGS, which
// the server answers through the SQL executor's statement hook).
//
// # Types and storage
//
// A setting is a bool, an int, a duration or a string (a version type
// comes with cluster upgrades). Its value is stored as canonical text under
// keys.SettingKey(name) (bool "true"/"false", int decimal, duration in Go's
// notation such as "5m0s", string as is); a setting that was never set, or
// was RESET, has no key and reads as its default. SET writes the key with
// one unconditional put (last writer wins, as in CockroachDB); RESET
// deletes it. A value is validated before anything is written, so a wrong
// name (SQLSTATE 42704, with a hint naming similar settings), a value of
// the wrong type or an invalid value (22023, naming the expected type)
// changes nothing. A value is validated once, at SET: a stored value is
// taken as stored by every node at every refresh, even if the validator
// would refuse it now (its rules may depend on state that moved on, such
// as the cluster version); a stored text that cannot be decoded as the
// setting's type reads as the default and is logged once.
//
// In the same batch, SET records when it set the value and to what under
// keys.SettingChangedKey(name) (outside the span the cache reads), and
// RESET deletes that record; LastChange answers "set since when" for the
// operator's console ("cluster.preserve_downgrade_option set for 3h").
//
// # Visibility
//
// Each node keeps every setting's value in memory; readers (Get) never
// block and never touch the network. A node refreshes that cache with one
// linearizable Scan of the setting keys every RefreshInterval (500ms), so a
// value set anywhere is visible to every node that can reach a majority
// within RefreshInterval plus one read round trip. A SET on a node updates
// that node's cache at once, and SHOW refreshes before answering, so a SHOW
// always reflects every SET acknowledged before it started.
//
// # What it does not do
//
// Settings are registered per Registry (one per node), never in package
// globals, so several in-process nodes never share values. The package
// knows nothing of SQL beyond its value types and SQLSTATEs (sql/types,
// sql/pgerror); it does not interpret any setting: consumers read them.
package settings
