// Package workload is the key-value workload that runs during a roachtest
// scenario and the history it records for the checkers.
//
// Several clients, each with its own pgx connection to a node, run a mix of
// operations against two tables:
//
//   - a register table, rt_reg (k INT PRIMARY KEY, v INT), with a handful of
//     keys created at setup with v = 0. Clients read a key
//     (SELECT v ... WHERE k = $1), overwrite it with a value no other
//     operation ever writes (UPSERT), or compare-and-set it
//     (UPDATE ... SET v = new WHERE k = $1 AND v = old). The per-key history
//     is what the linearizability checker replays.
//   - an append-only log, rt_log (client INT, seq INT, node INT), with no
//     primary key of its own: kvnode gives each row a hidden rowid. Every
//     (client, seq) pair is inserted at most once by the workload, so if it
//     appears twice the database applied one statement twice. (A primary key
//     on (client, seq) would hide exactly that bug behind a 23505.)
//
// Clients spread over the nodes (client i starts on the i-th target) and move
// to the next node when their connection breaks, and now and then anyway, so
// that in a mixed-version cluster every binary serves every kind of
// operation. A client never retries an operation: each attempt is recorded
// once, with its start and end time (monotonic, since the workload started)
// and its outcome:
//
//   - ok: the server acknowledged it;
//   - failed: it definitely did not take effect (never sent, or an answer
//     that means nothing was written: 40001, 23505, 42xxx ...);
//   - ambiguous: it may or may not have taken effect (40003, 58000, 57P01,
//     a timeout, a connection lost mid-statement). The checkers treat it as
//     an operation that may take effect at any time after it started.
//
// After the workload stops, ReadFinal reads every register and the whole log
// through every running node; those reads join the history.
package workload
