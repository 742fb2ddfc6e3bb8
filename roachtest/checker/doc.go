// Package checker decides whether a workload history (see package workload)
// is one a correct database could have produced. It does no I/O except
// writing an optional visualization of a non-linearizable key.
//
// The checks:
//
//   - progress: enough writes were acknowledged to make the other checks
//     mean something (a cluster that refused everything trivially loses
//     nothing);
//   - the append-only log, read back through every node: every acknowledged
//     append is present (none lost), no (client, seq) is present twice (no
//     statement applied twice, acknowledged or not), nothing is present that
//     was never attempted, nothing reported as definitely failed is present,
//     and every node returns the same rows;
//   - the registers: each key's history of reads, blind writes and
//     compare-and-sets is linearizable, checked with porcupine
//     (github.com/anishathalye/porcupine) against a single-register model.
//     An ambiguous write or compare-and-set is given an unbounded end time,
//     so it may take effect at any point after it started, or never (it can
//     be linearized after every other operation). Failed and ambiguous
//     reads tell nothing and are left out, as are writes that definitely
//     failed.
//
// A failure lists the offending operations, one per line, with the
// scenario's notes (kills, restarts) near them on the same clock.
package checker
