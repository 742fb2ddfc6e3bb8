// Command roachtest runs kvnode's process-level scenarios: real binaries
// (built at several releases from this tree, or given by path), real
// processes on loopback ports, rolling upgrades, kills and restarts under a
// checked workload.
//
//	go run ./roachtest list [REGEX]
//	go run ./roachtest run REGEX [--seed N] [--nodes N] [--keep] [--binary R=PATH]...
//
// run prints the seed and each scenario's whole plan before acting, then
// which step of which plan is running, and a summary with a reproduction
// command per scenario. The exit status is 1 if a scenario failed (or the
// run was interrupted), 2 for bad usage. A failed scenario keeps its
// directory (every node's log, the stores, the plan, the workload's
// history) and prints where it is. SIGINT or SIGTERM stops the running
// scenario, ends every node it started and keeps its logs; a second signal
// kills the nodes at once.
//
// The scenarios live in package roachtest/tests; the same ones run under
// `go test ./roachtest/...` (the short suite; KVNODE_LONG=1 for all). See
// roachtest/README.md.
package main
