// Package txnworkload runs the transactional checkers of issue 18 against
// any PostgreSQL-wire database: kvnode's nodes in roachtest, or a real
// PostgreSQL to prove that the checkers can fail (postgres_test.go). Each
// workload runs explicit transactions (pgx BeginTx ... Commit) through
// every target, records what every client saw, and checks it:
//
//   - ListAppend: transactions of 1-4 micro-operations, append(k, v) with
//     values unique in the run and read(k), on lists stored one row per key
//     (elle_lists: k INT PRIMARY KEY, v TEXT holding the comma-separated
//     list). An append reads the row and writes it back with the value
//     added (INSERT if absent), inside the transaction: read-then-write, the
//     pattern of an application and the one that exposes lost updates. The
//     history, final reads through every target included, goes to the
//     list-append checker of package elle (G0, G1a, G1b, G1c, G-single, G2,
//     incompatible orders, lost appends). One row per list rather than one
//     row per element keeps each list's order the database's commit order
//     (an element row would need a position, which is itself a
//     read-then-write) and makes a read a point lookup.
//   - Bank: accounts with balances; transfers read both balances and write
//     both back (absolute values, so a lost update changes the total); readers
//     read every balance in one transaction, either with one scan or with
//     one point read per account (several statements: one snapshot only
//     if the transaction has one). Every read must see the initial total and
//     no negative balance; at the end every target must show the same
//     balances with that total.
//   - WriteSkew: the on-call doctors of Cahill, Röhm and Fekete's write skew
//     example. Each round two clients, through two different targets, take
//     the two doctors of a new shift: each reads both doctors in a
//     transaction and, if both are on call, takes its own off call. The two
//     wait for each other between their reads and their writes, so they
//     overlap. Both must never commit: at least one doctor stays on call in
//     every shift, which the final read through every target checks too.
//
// A transaction's outcome is what its client can know: ok (COMMIT
// succeeded), fail (an error before COMMIT, which the database rolls back,
// or a COMMIT answered with a definite error: 40001, 25P02, a refused
// BEGIN...) or info (COMMIT answered 40003 "result is ambiguous", or the
// connection was lost during COMMIT). The workloads never retry a
// transaction: each attempt is recorded as it ended. A BEGIN refused with
// 0A000 (a cluster not yet finalized to the release with transactions) is
// counted apart (Counts.Refused), so that a scenario can skip as pending.
//
// The package imports no part of kvnode: roachtest drives real binaries.
package txnworkload
