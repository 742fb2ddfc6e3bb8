// Package tests holds roachtest's scenarios and registers them (Register).
// The roachtest CLI (`go run ./roachtest`) and `go test ./roachtest/...` run
// the same registry: go test runs the Short suite by default and everything
// with KVNODE_LONG=1.
//
// Scenarios today:
//
//   - basic/...: three nodes of one binary. Replication (writes through every
//     node, the same rows read through every node, every replica applied the
//     leader's log), a kill -9 of the Raft leader under the workload, and a
//     node that comes back after missing thousands of rows (by log, or by
//     snapshot after log truncation in the long variant).
//   - mixed/...: a cluster that runs in a fixed binary mix (all new,
//     minority old, majority old) under the workload, with DDL and DML through
//     old and new nodes and a kill -9 of the leader.
//   - upgrade/...: seeded rolling upgrades under the workload, with rollbacks
//     and mixed-version steps; finalization runs where the binaries can do it
//     (upgrade/finalize runs three seeded plans through every release and
//     binary mix, each on a new cluster). The cluster-version scenarios:
//     the RFC's test plan (upgrade/rfc-test-plan, five nodes; -3, three),
//     refusals of incompatible binaries and bad settings
//     (upgrade/refusals), rollback of every binary before finalizing
//     (upgrade/rollback-before-finalize), a fence persisted on some nodes
//     only (upgrade/partly-fenced: no rollback offered, the leader completes
//     it with auto-upgrade off), the 1.1 migration's coordinator
//     killed mid-job
//     (upgrade/coordinator-killed-mid-migration) and concurrent SET CLUSTER
//     SETTING version (upgrade/concurrent-set-version).
//   - lifecycle/...: decommission under load, drain and restart under load;
//     skipped as pending with a binary that lacks `kvnode node
//     decommission|drain`.
//   - txn/...: the transactional checkers of issue 18 (package
//     txnworkload): bank, write skew and Elle's list-append through every
//     node, with kill -9, restarts (txn/seeded-runs: 20 seeded rounds) and
//     a rolling upgrade to 2.1; skipped as pending while BEGIN is refused
//     with 0A000.
//
// Every scenario's plan depends only on its seed and node count
// (TestPlansAreDeterministic).
package tests
