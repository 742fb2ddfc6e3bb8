// Package catalog holds kvnode's table descriptors and implements the
// pre-Raft schema procedure of release 1.0: every node keeps its own copy of
// the schema in its local store, and copies converge by last-writer-wins.
// Release 2.0 replaces this with schema changes through Raft group 0; until
// a cluster has finalized that upgrade, this package is the schema.
//
// # What the package provides
//
//   - TableDescriptor: one table's schema (ID, columns with never-reused
//     column IDs, primary key, version, modification time), or the tombstone
//     of a dropped table. JSON-serializable; the column type is written by
//     name.
//   - Timestamp and Clock: a hybrid logical clock. Timestamps order by wall
//     time, logical counter and finally node ID, so two different events
//     never tie.
//   - Catalog: the descriptors of one node, persisted in that node's
//     LocalStore under "\x03schema/"+name (durable before a change returns),
//     with Get, All (tombstones included), Digest, Apply (a local DDL),
//     Merge (descriptors from a peer) and OnChange. Readers never block:
//     they load an immutable snapshot.
//
// # The pre-Raft procedure
//
//  1. A DDL statement runs on the node the client is connected to. The
//     executor allocates the table ID (CREATE) or the column ID (ADD COLUMN)
//     from counters in the replicated KV store, so IDs are unique across the
//     cluster even when two nodes run DDL at once. It builds the new
//     descriptor with ModTime = Clock.Now() and Version = old version + 1,
//     and calls Apply, which persists it locally (synced) and makes it
//     visible to the next statement on this node. DROP TABLE applies a
//     tombstone first, and only then deletes the table's key span.
//  2. The executor pushes the new descriptor to every live peer (best
//     effort, bounded by a timeout) and returns to the client. It does not
//     wait for peers to acknowledge: a DDL commits when its node has it.
//  3. A peer receiving a push calls Merge. For each table name the
//     descriptor with the higher ModTime wins; a tombstone is a descriptor
//     like any other, so a DROP beats an older CREATE and loses to a newer
//     one. Merge advances the local clock past every timestamp it sees, so
//     a later DDL on that peer wins over what it has seen.
//  4. Every node gossips Digest(), a fingerprint of all its descriptors
//     including tombstones. A node that sees a peer with a different digest
//     pulls that peer's All() and merges it. This repairs lost pushes,
//     nodes that were down during a DDL, and nodes that joined later.
//
// Merge is a join (per name, the maximum by ModTime): commutative,
// associative and idempotent. Whatever order descriptors arrive in, and
// however often, two nodes that have seen the same set of changes hold the
// same descriptors and the same digest. Tombstones are kept forever (they
// are small) so that a node that was down during a DROP cannot resurrect the
// table.
//
// # The window, and what queries see in it
//
// Between step 1 on node A and step 3 on node B (normally a network round
// trip; after a lost push, until B's next digest comparison), the two nodes
// disagree. DDL is not ordered with DML across nodes, so in this window
// kvnode is not linearizable for statements that depend on the changed
// table. Precisely:
//
//   - CREATE TABLE t on A: statements naming t on B fail with 42P01
//     (relation "t" does not exist). Nothing is written.
//   - DROP TABLE t on A: B still sees t. Its reads see the rows A has not
//     deleted yet (possibly none), and rows it writes after A deleted the
//     span are unreachable once B learns of the drop: as if they had been
//     written just before the DROP. The table ID is never reused, so those
//     rows can never reappear; 1.0 does not reclaim their space.
//   - ALTER TABLE t ADD COLUMN c on A: on B, SELECT * omits c and a
//     statement naming c fails with 42703. Rows B inserts do not store c;
//     every node reads c in such rows as c's DEFAULT, or NULL when there is
//     none (which is why ADD COLUMN accepts only a constant DEFAULT). An
//     UPDATE on B carries c's stored value over unchanged (the row codec
//     preserves columns it does not know). An UPSERT on B that writes the
//     whole row replaces it, so c reads as its DEFAULT or NULL afterwards.
//   - Prepared statements re-resolve their table at every execution. If
//     the table changed so that the statement's result columns would change,
//     execution fails with 0A000 (cached plan must not change result type);
//     otherwise the statement is re-planned silently.
//
// Conflicting DDL on two nodes inside the window is resolved by the HLC,
// and the loser's change is lost even though its client saw success:
//
//   - Two CREATE TABLE t, on A and on B: both succeed locally with
//     different table IDs. Everywhere, the one with the higher ModTime
//     wins. Rows written under the loser's table ID become unreachable; they
//     are not deleted, and 1.0 does not reclaim them.
//   - Two ADD COLUMN on one table: the later descriptor wins, the other
//     column vanishes. Its values stay in the rows under its own column ID,
//     which the winner does not know and never reuses, so they are never
//     misread as another column's values.
//   - DROP TABLE on A and ADD COLUMN (or a re-CREATE) on B: the later one
//     wins. If the ADD COLUMN is later, the table comes back with whatever
//     rows survived A's delete of the span.
//   - A DDL whose node merged a newer change to the same table after the
//     statement read the descriptor fails with 40001; retrying it applies
//     it on top of the newer change.
//
// Operators avoid all of this by running DDL from one session at a time and
// waiting for the schema digests of all nodes to agree (the server exposes
// them) before using a new table or column elsewhere.
//
// # Databases (release 2.1)
//
// defaultdb and postgres exist from bootstrap and have no record. CREATE
// DATABASE adds one: a TableDescriptor with IsDatabase, an ID from the
// tables' counter, no columns. A table records its database in Database;
// none means defaultdb, so the descriptors of a cluster from before 2.1 are
// defaultdb's as they are, without a migration. Every record lives under
// its Key: a table of defaultdb under its name (as before), a table of db
// under "db\x00name", a database under "\x00db" (a pgwire query string
// cannot hold a NUL, so no name collides). The Key is also the "name" of
// the JSON form, because a 2.0 binary keys records by that field: were it
// the bare table name, a 2.0 node would take app.t for defaultdb.t. What a
// 2.0 binary can therefore find after a downgrade is harmless: the
// downgrade is refused while any database record is live
// (sql.Executor.Release21Blockers), and the tombstones a dropped database
// leaves load as tombstones of tables no one can name. Records are written
// only once the cluster is at 2.1, when every node runs a 2.1 binary.
// Databases merge, push and commit in group 0 exactly as tables do (last
// writer wins per Key); DROP DATABASE is one change holding the tombstones
// of the database and of its tables.
//
// # What the package does not do
//
// It does not talk to peers (the server pushes and pulls; SchemaPeers in
// package sql is the push side), does not allocate IDs (the executor does,
// from the replicated store), and does not garbage-collect tombstones or
// the data of losing tables. Databases (release 2.1) are records like
// tables' (TableDescriptor.IsDatabase), under keys that keep the tables of
// each database apart (TableDescriptor.Key); every table is in the schema
// public of its database.
package catalog
