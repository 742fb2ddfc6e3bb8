// Package console is the operator's status page that every node serves at
// "/" on its --http-addr: the nodes (ID, address, binary, liveness,
// membership, draining, group 0 state), the cluster version and any
// upgrade in progress, the migrations and their progress, and banners that
// say what needs the operator, each with the statement or command that
// fixes it.
//
// The package is pure: the server gathers a Status (from the same
// UpgradeStatus that SHOW UPGRADE STATUS prints, so the page and SQL never
// disagree), Banners turns it into banners, and Render writes the page.
// The page is server-rendered HTML; a small script served from the binary
// (assets/console.js, no build step) fetches the page's live part again
// every few seconds and swaps it in, and without JavaScript a <noscript>
// refresh reloads the whole page. The same Status is served as JSON at
// /_status/console.
//
// # Banners
//
// One rule per situation, in Banners; each banner has a stable kind (the
// page marks it with data-kind, tests and scripts select on it):
//
//   - status_unavailable: the node could not compute the cluster status
//     (the data group did not answer); the page shows the node's own view.
//   - mixed_versions: several binary releases run; finalization waits for
//     the rest, rollback is still possible while no node has persisted a
//     version the old binary cannot run (each node's persisted version,
//     not only the replicated one: a fence may have reached some nodes).
//   - not_finalized: every node runs the newer binary but the cluster
//     stays at the old version, and why: cluster.preserve_downgrade_option
//     (and for how long), or cluster.auto_upgrade.enabled = false; it
//     offers a rollback only on the same condition as mixed_versions.
//   - dead_node: a non-decommissioned node is not live; when every live
//     node already runs the newer binary it is what blocks finalization,
//     and the banner gives its decommission command (CockroachDB never
//     built this one).
//   - draining_node: a node drains; finalization waits until it stops.
//   - finalizing: a finalization is running, at which step.
//   - finalization_interrupted: the cluster version is an internal step
//     and no finalization runs on the serving node: its coordinator died or
//     failed. It cannot be rolled back; the data group's leader completes
//     it whatever the opt-outs say, once what blocks it (named) is fixed.
//   - migration_failed: a migration job failed, with its error.
//   - group0_waiting: the group 0 upgrade waits, and for what.
//   - group0_recovery: a node is in group 0 recovery mode.
//   - clock_offset: the serving node's clock is beyond --max-offset from
//     a majority of the other nodes' clocks, so it reads through
//     ReadIndex instead of its leader lease (kv/DESIGN.md).
package console
