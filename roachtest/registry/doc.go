// Package registry is the contract between roachtest's scenarios and the
// two ways of running them (the roachtest CLI and `go test`), and the runner
// both use.
//
// A scenario is a Spec: a name, a suite (Short runs by default, Long only
// with KVNODE_LONG=1 under go test), a cluster size, and a Plan function.
// Plan turns a seed into the scenario's whole plan, an ordered list of
// named steps, without touching any process: every random choice of the
// scenario (which node upgrades first, whether it rolls back, which node a
// statement goes through) is made there, from the seed. The runner logs the
// seed and the whole plan before it acts, so one line reproduces a failure
// (the model is CockroachDB's roachtest mixedversion framework), and the
// same seed always gives the same plan (TestPlansAreDeterministic checks
// every registered scenario).
//
// Run executes a plan: it creates the scenario's directory and cluster,
// runs the steps in order printing which step of which plan is running,
// checks after every step that no node died on its own, and always cleans
// up: deferred steps' cleanups, then every node process. A failed or
// interrupted scenario keeps its directory (every node's log, the stores,
// the plan, the workload history) and says where; a passed or skipped one
// removes it unless asked to keep it.
//
// A step that finds a missing capability (a CLI command or SQL statement
// the binaries do not have yet) returns Skipf: the scenario is reported as
// skipped with that reason, not as passed.
package registry
