// Package migrations holds the registry of per-version data migrations and
// the job runner that executes them durably while the cluster serves
// traffic.
//
// A migration is one registry entry: the version it belongs to, a
// description, and an idempotent function. The runner executes it as a job
// whose record lives in the replicated keyspace, so that
//
//   - it runs exactly once: completion is recorded in replicated state, and
//     a finished job is never started again;
//   - it survives its coordinator: the coordinator holds a lease on the job
//     record that it renews at every checkpoint; if the coordinator dies,
//     the lease expires and the next node that asks for the migration takes
//     the job over and resumes from the last checkpoint;
//   - it reports progress: SHOW JOBS reads the records.
//
// Because a lease is time-based, two coordinators may briefly overlap after
// a pause; every migration function must be idempotent and write with
// conditional puts, so an overlap wastes work but never corrupts data.
//
// The package knows nothing of SQL or of the server: what a migration
// touches (the row encoding, the table key span) is injected through Deps by
// the server. It deliberately does not decide when a migration runs; the
// upgrade manager (package upgrademanager) calls Runner.Run for each
// version it steps through. See DESIGN.md.
package migrations
