package status

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// Metrics for the operator that no part owns: versions, upgrade
// finalization, migrations and group 0. kv (kvnode_raft_*), pgwire
// (kvnode_sql_*) and storage register their own.
//
// Everything here is read at scrape time by one prometheus.Collector, so
// no goroutine keeps gauges up to date and nothing can go stale:
//
//   - Local series (build, binary and active cluster version, the group 0
//     upgrade state, group 0's Raft state) come from this node's memory and
//     store and never depend on the rest of the cluster.
//   - Cluster-wide series (nodes per binary, finalization blockers, pending
//     upgrade, migrations) come from the UpgradeStatus the status page
//     uses, through the shared cache (cache.go), so scrapes and
//     browser tabs share one computation. When it cannot be computed (the
//     data group does not answer, or the node has not joined a cluster
//     yet), kvnode_upgrade_status_up is 0 and those series are absent for
//     that scrape rather than stale.
//
// Group 0's Raft group is exported as kvnode_group0_raft_*, not as
// kvnode_raft_* with a group label: existing dashboards, roachtest and
// alerts read kvnode_raft_is_leader and friends without a label, and
// adding group 0's series under the same names would silently change what
// sum(kvnode_raft_is_leader) or a bare selector means. Group 0's replica is
// also stopped and recreated (wipe, recovery, a new generation), so its
// series are read from the running replica's Status at scrape time and
// vanish with it, where gauges pushed from a Ready loop would stay behind
// with their last value.

// statusMaxAge is how old a cached UpgradeStatus a scrape accepts.
const statusMaxAge = 5 * time.Second

// metricsStatusWait bounds how long one scrape waits for the status: a
// little more than statusComputeTimeout, so that a scrape arriving during a
// computation gets its result.
const metricsStatusWait = statusComputeTimeout + time.Second

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("kvnode_"+name, help, labels, nil)
}

const versionNumberHelp = " Encoded as one number that orders like versions: a release MAJOR.MINOR is " +
	"MAJOR*1000000 + MINOR*1000 (1.1 = 1001000, 2.0 = 2000000); internal step N on the way to a release " +
	"is that release's number - 1000 + N (1.1-step.1 = 1000001, 2.0-step.1 = 1999001), so it sorts after " +
	"the previous release and before its own."

var (
	descBuildInfo = newDesc("build_info",
		"Always 1; binary_version is the release this node's binary runs.", "binary_version")
	descBinaryVersion = newDesc("binary_version",
		"Release this node's binary runs."+versionNumberHelp)
	descClusterVersionInfo = newDesc("cluster_version_info",
		"Always 1; version is the cluster version this node has persisted and acts on. Absent before the node has joined a cluster.",
		"version")
	descClusterVersion = newDesc("cluster_version",
		"Cluster version this node has persisted and acts on (absent before it has joined a cluster)."+versionNumberHelp)

	descStatusUp = newDesc("upgrade_status_up",
		"1 if this node could compute the cluster's upgrade status for this scrape (the data group answered), "+
			"0 if not (or the node has not joined a cluster); the cluster-wide kvnode_cluster_nodes, kvnode_upgrade_* "+
			"and kvnode_migration_* series are then absent.")
	descClusterNodes = newDesc("cluster_nodes",
		"Nodes that are not decommissioned, by the binary release they run (or last ran, if down), as this node sees the cluster.",
		"binary_version")
	descBlocked = newDesc("upgrade_finalization_blocked",
		"Number of reasons of each kind that keep the cluster version from being finalized (0 when none); "+
			"SHOW UPGRADE STATUS names each with its fix.", "reason")
	descPending = newDesc("upgrade_pending",
		"1 if a newer cluster version than the active one is the target (every node may run a newer binary, "+
			"or a finalization is under way or blocked), 0 if the cluster version is up to date.")
	descDowngrading = newDesc("upgrade_downgrading",
		"1 while a downgrade is under way (SET CLUSTER SETTING version to the release below; SHOW UPGRADE STATUS "+
			"shows its step), 0 otherwise.")
	descMigFraction = newDesc("migration_fraction_completed",
		"Progress of the migration of each ladder version, in [0, 1]; status is not_started, not_needed, "+
			"pending, running, succeeded or failed.", "version", "status")
	descMigDone = newDesc("migration_rows_done",
		"Rows (or units of work) the migration of each ladder version has done.", "version")
	descMigTotal = newDesc("migration_rows_total",
		"Rows (or units of work) the migration of each ladder version has to do, as last counted.", "version")

	descGroup0State = newDesc("group0_upgrade_state",
		"1 for this node's group 0 upgrade state as persisted in its store, 0 for the other states "+
			"(release 2.0 and later, once the node has joined a cluster).", "state")
	descG0Leader   = newDesc("group0_raft_is_leader", "1 if this node leads group 0 (0 while its replica runs isolated, in recovery).")
	descG0Term     = newDesc("group0_raft_term", "Current Raft term of group 0 on this node.")
	descG0Commit   = newDesc("group0_raft_commit_index", "Highest group 0 log index known committed on this node.")
	descG0Applied  = newDesc("group0_raft_applied_index", "Highest group 0 log index applied on this node.")
	descG0Lag      = newDesc("group0_raft_apply_lag", "Group 0 entries known committed but not yet applied on this node.")
	descG0Voters   = newDesc("group0_raft_voters", "Number of voters in group 0's configuration as this node knows it.")
	descG0Learners = newDesc("group0_raft_learners", "Number of learners in group 0's configuration as this node knows it.")
)

// versionNumber is the numeric twin of a version (see versionNumberHelp).
// It orders exactly like Version.Compare for minor versions and internal
// steps below 1000.
func versionNumber(v clusterversion.Version) float64 {
	n := int64(v.Major)*1_000_000 + int64(v.Minor)*1_000
	if !v.IsRelease() {
		n += int64(v.Internal) - 1_000
	}
	return float64(n)
}

// metricsCollector reads the node's metrics at scrape time.
type metricsCollector struct{ s *Status }

var _ prometheus.Collector = metricsCollector{}

func (metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descBuildInfo, descBinaryVersion, descClusterVersionInfo, descClusterVersion,
		descStatusUp, descClusterNodes, descBlocked, descPending, descDowngrading, descMigFraction, descMigDone, descMigTotal,
		descGroup0State, descG0Leader, descG0Term, descG0Commit, descG0Applied, descG0Lag, descG0Voters, descG0Learners,
	} {
		ch <- d
	}
}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	c.collectVersions(ch)
	c.collectGroup0(ch)
	c.collectUpgradeStatus(ch)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c metricsCollector) collectVersions(ch chan<- prometheus.Metric) {
	s := c.s
	gauge(ch, descBuildInfo, 1, s.node.BinaryVersion().String())
	gauge(ch, descBinaryVersion, versionNumber(s.node.BinaryVersion()))
	// Only a persisted version: ActiveVersion's fallback for a node that
	// has not joined is not a cluster version.
	if v, ok := s.node.PersistedVersion(); ok {
		gauge(ch, descClusterVersionInfo, 1, v.String())
		gauge(ch, descClusterVersion, versionNumber(v))
	}
}

func (c metricsCollector) collectGroup0(ch chan<- prometheus.Metric) {
	s := c.s
	if !s.node.Group0().Enabled() || s.node.NodeID() == 0 {
		return
	}
	// The persisted state, not the in-memory copy: the copy is set after
	// the write (and only once the node starts), so the store is never
	// behind it. The engine may be closing under a late scrape.
	st, err := s.node.Group0StoredState()
	if err == nil && st != "" {
		for _, x := range group0.States() {
			gauge(ch, descGroup0State, boolGauge(x == st), string(x))
		}
	}
	rep := s.node.Group0().Replica()
	if rep == nil {
		return
	}
	rs := rep.Status()
	lag := uint64(0)
	if rs.Commit > rs.Applied {
		lag = rs.Commit - rs.Applied
	}
	// An isolated replica (recovery) takes no part in group 0: its view of
	// leadership means nothing, as in group 0's Group0State.
	gauge(ch, descG0Leader, boolGauge(rs.IsLeader && !s.node.Group0().Isolated()))
	gauge(ch, descG0Term, float64(rs.Term))
	gauge(ch, descG0Commit, float64(rs.Commit))
	gauge(ch, descG0Applied, float64(rs.Applied))
	gauge(ch, descG0Lag, float64(lag))
	gauge(ch, descG0Voters, float64(len(rs.Voters)))
	gauge(ch, descG0Learners, float64(len(rs.Learners)))
}

func (c metricsCollector) collectUpgradeStatus(ch chan<- prometheus.Metric) {
	s := c.s
	if s.node.NodeID() == 0 {
		gauge(ch, descStatusUp, 0)
		return
	}
	// Collect has no context: the wait is bounded here, the computation
	// by the cache.
	ctx, cancel := context.WithTimeout(context.Background(), metricsStatusWait)
	st, _, err := s.cachedUpgradeStatus(ctx, statusMaxAge)
	cancel()
	if err != nil || st == nil {
		gauge(ch, descStatusUp, 0)
		return
	}
	gauge(ch, descStatusUp, 1)

	nodes := map[string]int{}
	for _, n := range st.Nodes {
		if n.Membership == autoupgrade.Decommissioned {
			continue
		}
		b := n.Build
		if b == "" {
			b = "unknown"
		}
		nodes[b]++
	}
	for b, n := range nodes {
		gauge(ch, descClusterNodes, float64(n), b)
	}

	// Every kind is exported, even at 0, so that an alert on a kind
	// always has a series to look at.
	blocked := map[autoupgrade.BlockerKind]int{}
	for _, k := range autoupgrade.BlockerKinds() {
		blocked[k] = 0
	}
	for _, b := range st.Blockers {
		blocked[b.Kind]++ // a kind added later is exported too, once it occurs
	}
	for k, n := range blocked {
		gauge(ch, descBlocked, float64(n), string(k))
	}
	gauge(ch, descPending, boolGauge(st.Target != "" && st.Target != st.ActiveVersion))
	gauge(ch, descDowngrading, boolGauge(st.DowngradingTo != ""))

	for _, m := range st.Migrations {
		gauge(ch, descMigFraction, m.Fraction, m.Version, strings.ReplaceAll(m.Status, " ", "_"))
		gauge(ch, descMigDone, float64(m.Done), m.Version)
		gauge(ch, descMigTotal, float64(m.Total), m.Version)
	}
}
