// Package users is the replicated store of SQL users, role memberships and
// privileges (release 2.1), and the pure rules that read it: who is an
// admin, who holds which privilege on what.
//
// # Where it lives
//
// Three prefixes of the data group's keyspace, each named in package keys:
//
//	0x04 "sql/user/" NAME                    Record: login, SCRAM-SHA-256 verifier
//	0x04 "sql/role-member/" ROLE 0x00 MEMBER Membership
//	0x04 "sql/grant/" OBJECT 0x00 GRANTEE    Grant: privileges on OBJECT
//
// OBJECT is "table/" + the table's ID in decimal (a table created again
// under the same name does not inherit its predecessor's grants) or
// "database/" + the database's name.
//
// # Who creates it, and a 2.0 node
//
// A cluster bootstrapped at 2.1 is created with BootstrapRecords: the user
// root (who may log in, with no password: it authenticates with its client
// certificate) and the role admin, with root its member. A cluster that
// predates 2.1 gets the same records from release 2.1's migration at
// 2.1-step.3 (EnsureStore, conditional puts, idempotent), which runs after
// the 2.1 fence, when every node runs a 2.1 binary.
//
// No code of release 2.0 or earlier reads or writes anything under these
// prefixes: they are plain key-value records of the data group, carried by
// its Raft log and snapshots like any other, and a 2.0 binary's only scans
// (the table span 0x88, the system records under 0x02, the ID counters)
// never cover them. A cluster downgraded from 2.1 to 2.0 therefore keeps
// them untouched and ignored; if it is finalized to 2.1 again, EnsureStore
// finds root and admin in place and every user, password and grant
// created before the downgrade is back. NonRootUsers lists the users a
// downgrade's dry run reports ("non-root users: N"), since a 2.0 cluster
// admits only root.
//
// # Privileges
//
// Table privileges: SELECT, INSERT, UPDATE, DELETE (ALL is the four).
// Database privileges: CREATE (DDL: CREATE/DROP/ALTER/TRUNCATE TABLE) and
// CONNECT (ALL is both). A member of admin (root always) holds every
// privilege and may do what only admins may: cluster settings, user
// management, GRANT and REVOKE, system and crdb_internal tables, SHOW JOBS.
// Membership is transitive. A Snapshot is a consistent read of the three
// prefixes; the executor caches one per node (sql/users_exec.go says for how
// long).
//
// Verifiers are made and checked by package pgwire (SCRAM is its
// authentication); this package stores them as text, never a password.
package users
