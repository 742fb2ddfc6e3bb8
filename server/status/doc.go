// Package status is a node's status surface over HTTP and Prometheus:
// the HTTP handler (/health and /health?ready=1, /_status/upgrade and
// /_status/upgrade/plan, /_status/node, /_status/console, the status page
// at / with its assets, /metrics and /debug/pprof), the status page's
// login in secure mode (sessions in memory, passwords checked against the
// users' SCRAM verifiers, failed attempts throttled), the assembly of the
// page's console.Status, the shared cache of the upgrade status (the page
// and scrapes share one computation), and the collector of the metrics no
// part owns (versions, finalization, migrations, group 0). It also
// defines the answers those endpoints and SHOW UPGRADE STATUS share
// (UpgradeStatus, Group0NodeStatus, NodeStatusPage), built from the shapes
// below it: a node is nodeapi.NodeStatus (GET /_status/upgrade keeps its
// own JSON names for it), a migration console.Migration, the serving node
// console.Self.
//
// Layering: it reads the node through the Node interface it declares (the
// server implements it) and renders with package console; it computes no
// upgrade decision of its own (the node's UpgradeStatus does, from
// autoupgrade.Decide) and never imports the server. CockroachDB keeps its
// status server beside the wiring the same way.
package status
