// Package steps holds the plan steps that scenarios share: starting a
// cluster on a set of binaries, setting up, starting and checking the
// workload, waiting for it to make progress, killing and restarting the
// Raft leader, restarting a node on another binary, and the capability
// probes that turn a missing feature into a clear skip; and, for the
// upgrade scenarios (upgrade.go), starting part of a cluster, waiting for a
// cluster version, statements that must be refused, the migration jobs of
// SHOW JOBS and searching the node logs.
//
// A Scenario value carries the state that steps of one plan share (the
// running workload, the binaries resolved so far, the capability probes'
// answers); each method returns a step function for registry.Plan. Steps
// record scenario events as notes on the workload's clock, so a checker
// failure can be read against "killed n2", "n2 ready on 1.1".
package steps
