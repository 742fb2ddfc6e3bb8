// Package cluster runs kvnode the way an operator does: real binaries, built
// at a chosen release from this tree or taken from a path, started as
// separate processes on 127.0.0.1 with their own ports, stores and log files.
//
// It offers what the scenarios of roachtest need and nothing that looks
// inside a node:
//
//   - Builder turns a release ("1.0", "1.1", "2.0", or "" for the tree's
//     default) into a kvnode binary. It builds with
//     go build -ldflags "-X github.com/kvnode/kvnode/clusterversion.binaryVersion=R"
//     and caches the result under a key made of the commit and a hash of the
//     files the binary is built from, so that a dirty tree never reuses a
//     stale binary. A binary given by path is checked with `kvnode version`
//     before it is used.
//   - Cluster is N nodes with free loopback ports and a directory for their
//     stores and logs. A Node can be started on any binary, stopped (SIGTERM,
//     then SIGKILL after a bounded wait), killed (SIGKILL) and restarted on
//     another binary; readiness is GET /health?ready=1 on its HTTP address.
//     Each node's stdout and stderr go to one log file that survives
//     restarts, so a failed scenario can keep every node's whole story.
//   - SQL goes through pgx, retrying only where a well-behaved client would:
//     when the statement never reached the server, and, for idempotent
//     statements only, after 40003 (ambiguous), 58000 (unavailable), 57P01
//     (shutdown) or a connection lost mid-statement.
//   - Status, leader and metrics come from the node's HTTP endpoints; the
//     node lifecycle commands (decommission, drain) go through the kvnode CLI,
//     gated by a capability probe because older binaries may lack them.
//   - For the upgrade scenarios (upgrade.go): GET /_status/upgrade and SHOW
//     UPGRADE STATUS parsed, SHOW JOBS parsed, a start that must be refused
//     (StartExpectExit), extra start flags (SetStartArgs) and environment
//     variables for every node (SetStartEnv) or one (Node.SetEnv), such as
//     a testing knob like KVNODE_TESTING_GROUP0_PAUSE, and Wipe, which
//     removes every store so that one scenario can run several plans, each
//     on a new cluster.
//
// Every process started here is tracked in a process-wide registry so that
// KillAll can end them when the test binary or the CLI is interrupted; on
// Linux each node also gets SIGKILL from the kernel if its parent dies
// (Pdeathsig), so an abandoned node never outlives the run.
//
// The package must not link the server: it talks to nodes only over their
// public interfaces (CLI, pgwire, HTTP), like a user would.
package cluster
