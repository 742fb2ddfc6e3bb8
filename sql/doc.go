// Package sql is kvnode's SQL executor: it turns statements from a client
// session into reads and atomic conditional writes on the replicated
// key-value store, and owns the node's schema.
//
// # Contract
//
// NewExecutor builds an Executor from a Config: the replicated store
// (kvpb.DB, linearizable), the node's own local store (schema), the peers to
// push schema changes to, the node ID and the binary version. The Executor
// is the pgwire.SessionFactory (and pgwire.PasswordAuth): NewSession
// accepts root, and from cluster version 2.1 every user of CREATE USER that
// may log in (users_exec.go), and any database that exists (3D000 with
// the fix otherwise).
//
// # Databases (release 2.1)
//
// defaultdb and postgres exist from bootstrap, without a record; CREATE
// DATABASE and DROP DATABASE [CASCADE|RESTRICT] (CASCADE is the default,
// as in CockroachDB) need cluster version 2.1 (0A000 before it), and
// CREATEDB or admin, respectively admin (databases.go); SHOW DATABASES, SHOW TABLES FROM db, USE db and SET
// database = db read them. A table belongs to the database it was created in
// (catalog.TableDescriptor.Database; none means defaultdb, so the tables of
// an upgraded cluster are defaultdb's without a migration); unqualified
// names resolve in the session's database, db.t and db.public.t in db;
// pg_catalog, information_schema and SHOW TABLES describe the session's
// database, pg_database lists all. A downgrade to 2.0 is refused while a
// database other than the built-in ones exists.
//
// # PREPARE, EXECUTE, DEALLOCATE
//
// SQL's prepared statements (prepare_sql.go) live in the connection's
// namespace (pgwire.Statements), with the protocol's: EXECUTE runs what a
// driver prepared, a Bind names what PREPARE made, DEALLOCATE ALL drops
// both; pg_prepared_statements lists them. PREPARE analyzes its statement
// at once (SELECT, VALUES, INSERT, UPDATE, DELETE, as in PostgreSQL);
// EXECUTE's values follow the assignment rules of the parameter types.
//
// # Users and privileges (release 2.1)
//
// Users, role memberships and privileges are replicated records (package
// sql/users). CREATE/ALTER/DROP USER|ROLE, GRANT, REVOKE need cluster
// version 2.1 (0A000 before it). Every statement's needs are collected when
// it is analyzed and checked at every execution (so a REVOKE applies to
// statements prepared before it), for every user but root and the members
// of admin: SELECT on each table a query reads (subqueries included);
// INSERT (and UPDATE for UPSERT and ON CONFLICT DO UPDATE), UPDATE, DELETE
// on the table written; CREATE on the session's database for DDL (CREATE,
// DROP, ALTER, TRUNCATE TABLE; a creator gets ALL on its table); admin or
// the role option CREATEDB for CREATE DATABASE (as in CockroachDB), admin
// for DROP DATABASE (databases have no owner); admin for
// cluster settings, SHOW JOBS, SHOW UPGRADE STATUS, system.* and
// crdb_internal.* tables, and user management (a user may change its own
// password). A refusal is 42501 with the GRANT that fixes it. A node caches
// the records for 500ms: a change made through another node applies there
// within that time. A session parses (package
// parser), prepares (analysis: name resolution, type checking, placeholder
// type inference, access-path choice) and executes statements. Every error
// a client can see carries a SQLSTATE (package pgerror) and, where there is
// something to do about it, a hint naming the fix.
//
// Other layers extend the SQL surface without this package importing them:
// RegisterVirtualTable adds read-only tables such as
// crdb_internal.gossip_nodes or system.local, computed per query;
// SetStatementHook installs the handler of SET/RESET/SHOW CLUSTER SETTING,
// SHOW [ALL] CLUSTER SETTINGS, SHOW JOBS and SHOW UPGRADE STATUS (0A000
// without one).
//
// # Layering
//
//	parser   text -> AST (no knowledge of tables)
//	catalog  table descriptors, HLC, last-writer-wins schema store
//	rowenc   rows <-> keys and values (no knowledge of descriptors)
//	sql      analysis (typecheck.go, query_expr.go), plans (plan.go), the
//	         query pipeline (query.go builds the operators of rel.go),
//	         evaluation (eval.go, builtins.go, builtins_pg.go), catalogs
//	         (pgcatalog.go), statements (select.go: reads, mutations.go, ddl.go,
//	         session.go, vars.go)
//	sqltest  in-memory store, local store and peer network, for tests only
//
// choosePlan (plan.go) is a pure function: a point lookup when the WHERE
// fixes the whole primary key with equalities; a few point lookups when it
// fixes all key columns but the last with equalities and the last with IN;
// a range scan when it fixes a key prefix and/or bounds the next key column
// (=, <, <=, >, >=, BETWEEN); a full-table scan otherwise. The WHERE is
// always re-applied to the rows read. ORDER BY a key prefix in one direction
// uses the scan order (forward or reverse); any other ORDER BY sorts in
// memory. LIMIT (+OFFSET) is pushed into the scan only when every row read
// is a result row in result order. EXPLAIN prints the decision.
//
// # The query pipeline
//
// Every SELECT (with joins, subqueries, GROUP BY/HAVING, DISTINCT, UNION,
// INTERSECT, EXCEPT, WITH [RECURSIVE], or none of them) is planned by query.go into
// relational operators (rel.go): table and virtual-table scans, filter,
// project, join (hash, lookup by primary key, or nested loop), group,
// sort, distinct, limit, set operation, window (row_number, rank,
// dense_rank), VALUES, set-returning functions in FROM and in the select
// list (unnest, generate_series, generate_subscripts,
// pg_partition_ancestors; WITH ORDINALITY in FROM).
// A join whose equalities fix the right table's primary key looks up each
// left row's match (up to 1,000 left rows); one whose right side is a
// catalog table and whose equality reads an integer column of it (an OID)
// probes that table's index (an index join); a join with another equality
// between its sides is a hash join; otherwise a nested loop. The WHERE
// clause's conjuncts go to the FROM item whose columns they read (a user
// table's scan picks its access path from them with choosePlan), and within
// a FROM item of joins down to the side they read (only the preserved side
// of an outer join), or to the first join that has all their columns; an ON
// condition's conjuncts that read one side go into it where that is the
// same (either side of an inner join, the right of a LEFT JOIN). A single table's scan also takes the ORDER BY (no sort when the
// key order is the one asked) and the LIMIT (pushed into the read, as
// above). Rows are materialized between operators, with one exception:
// a range or full scan streams its rows, decoded one at a time into one
// reused row, through the filters above it to the projection or grouping
// that consumes them (stream.go), so a GROUP BY over a table holds its
// groups, not the table; a GROUP BY takes its scan's rows borrowed (their
// strings the store's own bytes, valid only during the call) and copies
// the few datums it keeps (borrowStreamer, keeper), and computes an INT8
// key made of columns, constants and arithmetic, count(*), min and max of
// a column with functions built once per query instead of the interpreter
// (groupfast.go, with the interpreter's NULLs and errors); projections and recursive WITH items stream too,
// and a LIMIT over a streaming input stops it once it has its rows; a lookup join reads the keys of all its left
// rows in one batched, sorted read of one consistent state. A pass over
// the finished plan (prune.go) tells each table scan which of its columns
// the operators above it read, and the scan decodes only those; each join
// emits only the columns read above it (the expressions above are
// rewritten for the columns that moved), not every column of both inputs.
// A recursive WITH item (recursive.go) runs its non-recursive term once
// and its recursive term on the rows the last run added (the working
// table) until a run adds none, dropping rows already produced with UNION
// (PostgreSQL's semantics and its 42P19 rules on where the item may read
// itself). A
// correlated subquery runs once per outer row, reading the outer row's
// columns (outerColExpr); an uncorrelated one runs once per execution.
// EXPLAIN prints the operator tree.
//
// pg_catalog and information_schema are virtual tables computed from the
// catalog (pgcatalog.go), with stable OIDs, so that psql's \d commands,
// drivers and ORMs find tables, columns, types and primary keys where
// PostgreSQL puts them. The rows of the tables psql's describe queries join
// (pg_class, pg_attribute, pg_type, pg_index, pg_constraint, pg_attrdef,
// pg_namespace, pg_depend) are computed once per catalog version, with an
// index per integer column built on first use: a scan whose filter fixes
// an OID reads the rows with that OID only, and a join on an OID probes
// the index instead of hashing the table. Casts to regclass, regtype, regnamespace and
// regproc turn a name into an OID (INT8) and an OID into a name (STRING):
// kvnode has no OID types, so the direction of the cast decides the type.
//
// # Concurrency
//
// Inside a transaction (txn.go, release 2.1) a statement runs on the
// session's txn.Txn in place of the data group (Executor.kv): it reads the
// transaction's snapshot and buffers its writes, and the conditions below
// are evaluated against that snapshot and validated at COMMIT (txn/DESIGN.md).
//
// Outside one, every statement is atomic on its own. A mutating statement
// reads what it needs (Get and Scan are linearizable), computes its writes,
// and sends them in one Write whose ops are conditional on exactly what it
// read: OpCPut with ExpectAbsent for INSERT, with the old value's bytes for
// UPDATE, DELETE and INSERT ... ON CONFLICT DO UPDATE. If a concurrent
// writer got there first the whole Write fails with ConditionFailedError and
// nothing is written; the statement then re-reads, re-evaluates its WHERE
// and recomputes, up to 50 times, and fails with 40001 after that. INSERT's
// failed condition is the 23505 duplicate key error. UPSERT of every column
// is a blind OpPut (last write wins, like CockroachDB's fast path); UPSERT
// of some columns updates only those in an existing row, through the ON
// CONFLICT path. A Write whose outcome is unknown (kvpb.ErrAmbiguous) is
// reported as 40003, never retried blindly.
//
// A multi-row statement reads its rows with one Scan, which is a consistent
// snapshot, and writes them in one batch. Reads that span several
// operations (IN lists, ON CONFLICT's per-row Gets) are each linearizable but
// not a common snapshot; the conditional write still makes the statement's
// effect atomic with respect to what it read.
//
// # Choices that differ from PostgreSQL, on purpose
//
//   - A table without a PRIMARY KEY gets a hidden column rowid INT8 NOT
//     VISIBLE NOT NULL DEFAULT unique_rowid(), as in CockroachDB, instead of
//     being refused. unique_rowid() is (time in 10µs units) << 15 | node ID,
//     strictly increasing per node and unique across nodes.
//   - INT / INT is integer division (PostgreSQL's, not CockroachDB's
//     DECIMAL).
//   - INT is INT8 (CockroachDB's default_int_size); INTEGER is INT4 as in
//     PostgreSQL, from release 2.1 on. Expressions compute in the type's
//     family (an INT2 or INT4 column reads as INT8, VARCHAR(n) and
//     CHAR(n) as STRING, REAL as FLOAT8); the column's declared type
//     (types.Mod) is checked when a value is stored (22003, 22001) and
//     shown by SHOW CREATE TABLE and the catalogs.
//   - The types of release 2.1 (DECIMAL, DATE, TIMESTAMP, TIMESTAMPTZ,
//     INTERVAL, UUID, JSONB) and type modifiers are new stored formats:
//     until the cluster is finalized to 2.1, a column of such a type is
//     refused with 0A000 and a modifier is dropped as 2.0 did (INTEGER was
//     INT8, VARCHAR(10) was STRING). Values of these types in queries
//     (now(), casts, literals) need no gate. Sessions run in time zone UTC.
//   - From cluster version 2.1, sum and avg return PostgreSQL's types
//     (sumavg.go): sum(int2|int4) INT8, sum(int8|numeric) NUMERIC,
//     sum(float4) FLOAT4, avg of integers and NUMERIC a NUMERIC with
//     PostgreSQL's division scale (avg of 1 and 2 is 1.5000000000000000).
//     Since INT is INT8, sum(INT column) is a NUMERIC, as in CockroachDB.
//     Before 2.1 they keep 2.0's types (sum(int) INT8, avg(int) FLOAT8),
//     so that every gateway of a cluster being upgraded answers alike; the
//     width PostgreSQL gives sum's integer argument is inferred from the
//     expression (pgIntWidth), since expressions compute in INT8.
//   - SERIAL, BIGSERIAL and SMALLSERIAL are INT8 NOT NULL DEFAULT
//     unique_rowid(), CockroachDB's serial_normalization = rowid.
//   - ALTER TABLE ADD COLUMN accepts only a constant DEFAULT and requires one
//     for NOT NULL, because existing rows (and rows written by nodes that
//     have not seen the ALTER yet) read the column as its default.
//   - Explicit transactions (BEGIN ... COMMIT, savepoints) need cluster
//     version 2.1 and fail with 0A000 before it (txn.go). Inside one, DDL
//     and cluster settings fail with 0A000, as CockroachDB's DDL in a
//     transaction once did.
//   - A prepared statement whose table changed is re-planned at its next
//     execution; if its result or parameter types would change it fails
//     with 0A000 "cached plan must not change result type".
//
// COPY t FROM STDIN (copy.go) streams its rows in batches of 10,000 (1,000
// with foreign keys), each one conditional write: outside a transaction the
// batches before a failing row stay written (the error's detail says how
// many rows), and each batch is written while the next is read, proposed
// only once the one before it has applied; inside BEGIN ... COMMIT they
// are the transaction's writes. COPY t TO STDOUT streams the
// table in key order in batches; COPY (query) TO STDOUT runs the query like
// a SELECT. ALTER TABLE ADD PRIMARY KEY
// (addpk.go) rewrites a table created without one under a new table ID
// while a hold stops the table's writes; CREATE INDEX (createindex.go)
// builds an index online while writes go on; every write to a table
// asserts the table's schema fence (schemachange.go), so neither can lose
// or miss a write (DESIGN.md). Secondary indexes (index.go) are kept in the
// same atomic batch as their rows and used by the planner when the primary
// key would need a full scan. Foreign keys (fk.go) are checked at the end
// of each writing statement, inside its transaction. TRUNCATE may run inside a
// transaction; VACUUM and ANALYZE are accepted and do nothing. CHECK
// constraints (release 2.1) are compiled with the table (tableInfo.checks)
// and enforced by checkRow wherever a row is written, with NOT NULL.
//
// # What it deliberately does not do
//
// Of window functions only the ranking ones, without
// frames; no LATERAL or NATURAL joins (each refused with 0A000). A
// recursive WITH item (recursive.go) streams its rows, so a LIMIT directly
// above the query that reads it ends the recursion, as in PostgreSQL;
// under a sort, a grouping or a join it is computed whole, and a recursion
// with no end of its own then runs until statement_timeout or a cancel
// request (checked at every iteration) or its bound of 10,000,000 rows
// (54000; PostgreSQL has none). DDL follows the pre-Raft schema procedure described in
// package catalog, with its window of disagreement between nodes. Result
// sets are materialized in memory, and a mutating statement writes all its
// rows in one batch, so very large statements are bounded by memory and by
// the store's maximum batch size.
package sql
