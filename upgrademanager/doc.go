// Package upgrademanager moves the cluster version up the release ladder:
// CockroachDB's upgrademanager.Migrate, reduced to kvnode's needs.
//
// One call, Manager.Migrate(target), takes the cluster from its active
// version to target one ladder step at a time. For each step it validates
// every node (autoupgrade.ValidateManual), persists the step on every
// non-decommissioned node and lists the nodes again until no new one
// appears, records the step in the replicated `version` key, and runs the
// step's migration as a job (package migrations). The first step of a
// release is its fence. Steps persisted by an earlier, interrupted call are
// redone first; every action is idempotent and monotonic, so a call may
// stop anywhere and any node's next call resumes.
//
// The package decides nothing about *when* to migrate: SET CLUSTER SETTING
// version and the auto-upgrade loop (server) call it. It talks to the
// cluster only through the Cluster interface, which server implements with
// the node RPCs, and reads and writes one replicated key through a
// kvpb.DB. What a node does when told to persist a version (write its
// store, drain its v1 writers) is the node's own business.
//
// See clusterversion/DESIGN.md for the ladder and the invariants the
// manager keeps, and migrations/DESIGN.md for jobs.
package upgrademanager
