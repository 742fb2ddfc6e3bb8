// Package clustersql is the SQL a node answers about the cluster rather
// than about tables, through the executor's statement hook and virtual
// tables: SET / RESET / SHOW CLUSTER SETTING and SHOW [ALL] CLUSTER
// SETTINGS (from the settings registry; the setting "version" reads the
// replicated cluster version, and SET finalizes to a new one or downgrades
// to the release below, with the SQLSTATE of each refusal), SHOW JOBS
// (migration and schema-change jobs), SHOW UPGRADE STATUS, SHOW UPGRADE
// PLAN, and the crdb_internal.gossip_nodes and gossip_liveness views.
//
// Layering: the server installs it on its executor (Install) and hands it
// the node through the Node interface it declares; it renders rows and
// errors and decides nothing of the upgrade itself (upgrademanager and
// server/autoupgrade do). It never imports the server.
package clustersql
