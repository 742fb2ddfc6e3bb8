// Package elle checks a history of list-append transactions for the
// anomalies of Adya's isolation levels, the way Jepsen's Elle does
// (Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies from
// Experimental Observations", VLDB 2020). It is pure: a History in, a
// Report out, no I/O, no clock.
//
// # The model
//
// Every key holds a list of integers. A transaction is a sequence of
// micro-operations: append(k, v) adds v at the end of k's list, read(k)
// returns k's whole list. Every append of a history writes a value never
// appended before (to any key), so a value read names the transaction that
// wrote it. A transaction ends OK (committed), Fail (definitely not
// committed: nothing of it may ever be seen) or Info (unknown: a lost
// connection, an ambiguous commit; it may or may not have committed).
//
// # What Check infers
//
//  1. Per key, the version order: the longest list any committed
//     transaction read. Every other committed read of the key must be a
//     prefix of it, since a list only grows; two reads that are not
//     prefixes of one another are an incompatible-order anomaly (the
//     database lost an append or reordered them), and the key is then left
//     out of the dependency graph.
//  2. The dependency graph between transactions, from observations only:
//     ww (T1 appended the version right before T2's), wr (T2 read a list
//     whose last element T1 appended) and rw (T1 read a list that T2's
//     append, the next in the version order, is not in: an
//     anti-dependency).
//  3. Cycles, in increasing strength of the isolation they break:
//     G0 (write cycle, ww edges only), G1c (circular information flow, ww
//     and wr edges, at least one wr), G-single (exactly one rw edge: read
//     skew, forbidden by snapshot isolation) and G2 (two or more rw edges:
//     write skew, allowed by snapshot isolation, forbidden by
//     serializability). Each strongly connected component of the graph is
//     searched once per class; the cycle reported is a shortest one through
//     the edge that starts the search, printed edge by edge with why each
//     edge exists.
//  4. Non-cyclic anomalies: G1a (aborted read: a committed transaction read
//     a value appended by a failed one), G1b (intermediate read: a committed
//     transaction read a list ending in a value that its writer followed
//     with another append to the same key), internal (a transaction's read
//     disagrees with its own earlier reads and appends), garbage-read (a
//     value nobody appended), duplicate-elements (a value twice in one
//     list), duplicate-appends (the history appends a value twice: a bug of
//     the workload, not of the database), and, when the history ends with
//     final reads (Txn.Final), lost-append (a committed append missing from
//     a final read) and final-reads-disagree.
//
// # Indeterminate transactions
//
// As in Elle, an Info transaction's reads are not used (a client that lost
// its connection did not see a committed result), and its appends are
// neither required (an Info append missing from a final read is not lost)
// nor forbidden (one that is read is not G1a). An Info transaction whose
// append was read did commit, so it takes part in the graph through the
// edges of its observed appends; one whose appends were never read has no
// edges. Failed transactions have no edges either: reading their writes is
// G1a.
//
// # What it does not do
//
// It checks serializability, not strict serializability: there are no
// real-time or per-process edges (kvnode promises serializable
// transactions, as CockroachDB does). It does not decide whether a
// non-cyclic history could still be non-serializable in ways invisible to
// list-append observations; like Elle, it reports what it can prove.
package elle
