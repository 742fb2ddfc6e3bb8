package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/listenerutil"
	"github.com/kvnode/kvnode/server/testcluster"
)

// scraped is one GET /metrics, parsed.
type scraped map[string]*dto.MetricFamily

// scrapeClient keeps no idle connections: the nodes' HTTP servers close
// at the end of each test and nothing of the client may outlive them.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}

// scrapeAddr fetches and parses http://addr/metrics, as Prometheus would.
func scrapeAddr(addr string) (scraped, error) {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	return scraped(fams), err
}

func scrape(c *testcluster.Cluster, i int) (scraped, error) {
	return scrapeAddr(c.Nodes[i].Server.HTTPAddr())
}

// get returns the value of the series of name whose labels are exactly
// labels (name, value pairs).
func (m scraped) get(name string, labels ...string) (float64, bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if len(s.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for _, l := range s.GetLabel() {
			found := false
			for j := 0; j < len(labels); j += 2 {
				if labels[j] == l.GetName() && labels[j+1] == l.GetValue() {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case s.GetGauge() != nil:
			return s.GetGauge().GetValue(), true
		case s.GetCounter() != nil:
			return s.GetCounter().GetValue(), true
		case s.GetUntyped() != nil:
			return s.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// labelValues lists the values of label across name's series, sorted.
func (m scraped) labelValues(name, label string) []string {
	var out []string
	if f := m[name]; f != nil {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// expect collects mismatches, so that a poll reports all of them.
type expect struct {
	m    scraped
	errs []string
}

func (e *expect) eq(want float64, name string, labels ...string) {
	got, ok := e.m.get(name, labels...)
	switch {
	case !ok:
		e.errs = append(e.errs, fmt.Sprintf("%s%v absent, want %v", name, labels, want))
	case got != want:
		e.errs = append(e.errs, fmt.Sprintf("%s%v = %v, want %v", name, labels, got, want))
	}
}

func (e *expect) absent(name string) {
	if f := e.m[name]; f != nil && len(f.GetMetric()) > 0 {
		e.errs = append(e.errs, fmt.Sprintf("%s present (%d series), want absent", name, len(f.GetMetric())))
	}
}

func (e *expect) err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(e.errs, "; "))
}

// waitMetrics polls node i's /metrics until check reports no mismatch (the
// cluster-wide series come from a status cached for up to 5s).
func waitMetrics(t *testing.T, c *testcluster.Cluster, i int, d time.Duration, check func(e *expect)) scraped {
	t.Helper()
	var last scraped
	testcluster.WaitFor(t, d, func() error {
		m, err := scrape(c, i)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		e := &expect{m: m}
		check(e)
		if err := e.err(); err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		last = m
		return nil
	})
	return last
}

// blockers expects each finalization blocker kind at 0 except those named.
func (e *expect) blockers(nonZero map[autoupgrade.BlockerKind]float64) {
	for _, k := range autoupgrade.BlockerKinds() {
		e.eq(nonZero[k], "kvnode_upgrade_finalization_blocked", "reason", string(k))
	}
}

// versions expects the binary and active cluster version of a node.
func (e *expect) versions(binary, active string, binaryNum, activeNum float64) {
	e.eq(1, "kvnode_build_info", "binary_version", binary)
	e.eq(binaryNum, "kvnode_binary_version")
	e.eq(1, "kvnode_cluster_version_info", "version", active)
	e.eq(activeNum, "kvnode_cluster_version")
}

// TestBlockerKindsComplete: every kind Decide reports is one the metrics
// export at zero too.
func TestBlockerKindsComplete(t *testing.T) {
	in := autoupgrade.Input{
		Active: rel("1.0"), PreserveDowngrade: "1.0",
		Nodes: []autoupgrade.Node{
			{ID: 1, BinaryVersion: rel("1.1"), Live: true, Draining: true, Membership: autoupgrade.Active},
			{ID: 2, BinaryVersion: rel("1.0"), Live: true, Membership: autoupgrade.Active},
			{ID: 3, BinaryVersion: rel("1.1"), Membership: autoupgrade.Active},
		},
	}
	kinds := map[autoupgrade.BlockerKind]bool{}
	for _, k := range autoupgrade.BlockerKinds() {
		kinds[k] = true
	}
	d := autoupgrade.Decide(in)
	seen := map[autoupgrade.BlockerKind]bool{}
	for _, b := range d.Blockers {
		seen[b.Kind] = true
		if !kinds[b.Kind] {
			t.Errorf("blocker kind %q is missing from autoupgrade.BlockerKinds", b.Kind)
		}
	}
	if len(seen) != len(kinds) {
		t.Errorf("Decide reported kinds %v; BlockerKinds has %d", seen, len(kinds))
	}
}

// TestMetricsVersionsAndFinalization follows a rolling upgrade 1.0 -> 1.1
// through node 1's /metrics: build and versions, the mixed-version and
// preserve_downgrade_option blockers appearing with their reason and
// going back to 0 once fixed, a finalization paused at an internal step
// (whose number sorts below the binary's), and the migration's progress.
func TestMetricsVersionsAndFinalization(t *testing.T) {
	// A pause point before the step after 1.1-step.1, on whichever node
	// coordinates the finalization; released by the test (or at cleanup,
	// which runs before the cluster stops).
	hold, atStep := make(chan struct{}), make(chan struct{})
	var holdOnce, atOnce sync.Once
	release := func() { holdOnce.Do(func() { close(hold) }) }
	hook := func(step clusterversion.Version) error {
		if step == rel("1.1-step.2") {
			atOnce.Do(func() { close(atStep) })
			select {
			case <-hold:
			case <-time.After(30 * time.Second):
			}
		}
		return nil
	}
	c := startAt10(t, 20, server.Knobs{BeforeVersionStep: hook})
	t.Cleanup(release)

	// The cluster-wide series come from a status each node caches for 5s:
	// each change below is checked on a node that has not been scraped
	// since the change (they would all pass on any node, only later).
	waitMetrics(t, c, 2, 15*time.Second, func(e *expect) {
		e.versions("1.0", "1.0", 1_000_000, 1_000_000)
		e.eq(1, "kvnode_upgrade_status_up")
		e.eq(3, "kvnode_cluster_nodes", "binary_version", "1.0")
		e.eq(0, "kvnode_upgrade_pending")
		e.eq(0, "kvnode_upgrade_downgrading")
		e.blockers(nil)
		e.eq(0, "kvnode_migration_fraction_completed", "version", "1.1-step.2", "status", "not_started")
		e.eq(0, "kvnode_raft_apply_lag")
		e.absent("kvnode_group0_upgrade_state") // release 1.0 has no group 0
		e.absent("kvnode_group0_raft_term")
		if v, ok := e.m.get("kvnode_raft_leader_changes_total"); !ok || v < 1 {
			e.errs = append(e.errs, fmt.Sprintf("kvnode_raft_leader_changes_total = %v %v, want >= 1", v, ok))
		}
	})

	upgradeBinary(c, 2, "1.1")
	mixed := map[autoupgrade.BlockerKind]float64{autoupgrade.BlockMixedVersions: 1}
	waitMetrics(t, c, 0, 20*time.Second, func(e *expect) {
		e.eq(1, "kvnode_upgrade_status_up")
		e.eq(2, "kvnode_cluster_nodes", "binary_version", "1.0")
		e.eq(1, "kvnode_cluster_nodes", "binary_version", "1.1")
		e.eq(1, "kvnode_upgrade_pending")
		e.blockers(mixed)
	})
	c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0'")
	waitMetrics(t, c, 1, 20*time.Second, func(e *expect) {
		e.blockers(map[autoupgrade.BlockerKind]float64{autoupgrade.BlockMixedVersions: 1, autoupgrade.BlockPreserve: 1})
	})
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitMetrics(t, c, 2, 20*time.Second, func(e *expect) {
		e.versions("1.1", "1.0", 1_001_000, 1_000_000)
		e.blockers(mixed)
	})

	// The fix for the mixed versions: the other nodes get the new binary.
	// Finalization starts and stops at the pause point with every node at
	// 1.1-step.1.
	upgradeBinary(c, 0, "1.1")
	upgradeBinary(c, 1, "1.1")
	select {
	case <-atStep:
	case <-time.After(30 * time.Second):
		t.Fatal("the finalization never reached 1.1-step.2")
	}
	// Nodes 1 and 2 were restarted since their last scrape; node 3 is
	// kept for the end.
	for i := 0; i < 2; i++ {
		m := waitMetrics(t, c, i, 20*time.Second, func(e *expect) {
			e.versions("1.1", "1.1-step.1", 1_001_000, 1_000_001)
			e.eq(1, "kvnode_upgrade_status_up")
			e.eq(3, "kvnode_cluster_nodes", "binary_version", "1.1")
			e.eq(1, "kvnode_upgrade_pending")
			e.blockers(nil)
		})
		if got := m.labelValues("kvnode_cluster_nodes", "binary_version"); len(got) != 1 {
			t.Fatalf("node %d: kvnode_cluster_nodes for releases %v, want only 1.1", i+1, got)
		}
	}
	release()
	waitVersion(t, c, "1.1")
	m := waitMetrics(t, c, 2, 20*time.Second, func(e *expect) {
		e.versions("1.1", "1.1", 1_001_000, 1_001_000)
		e.eq(0, "kvnode_upgrade_pending")
		e.blockers(nil)
		e.eq(1, "kvnode_migration_fraction_completed", "version", "1.1-step.2", "status", "succeeded")
		e.eq(0, "kvnode_migration_fraction_completed", "version", "2.0-step.1", "status", "not_started")
	})
	done, _ := m.get("kvnode_migration_rows_done", "version", "1.1-step.2")
	total, _ := m.get("kvnode_migration_rows_total", "version", "1.1-step.2")
	if done != total || total < 20 {
		t.Fatalf("migration 1.1-step.2: rows done %v of %v, want all of at least 20", done, total)
	}
	for i := 0; i < 2; i++ {
		waitMetrics(t, c, i, 10*time.Second, func(e *expect) { e.versions("1.1", "1.1", 1_001_000, 1_001_000) })
	}
}

// TestMetricsGroup0 checks group 0's series on a cluster bootstrapped at
// the newest release (2.1): the upgrade state (one series per state), group 0's Raft group,
// the state moving to recovery, and, once the data group has lost its
// majority, kvnode_upgrade_status_up 0 without the cluster-wide series
// while the local ones stay.
func TestMetricsGroup0(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	waitGroup0Members(t, c, 3)
	states := func(e *expect, want group0.State) {
		for _, st := range group0.States() {
			v := 0.0
			if st == want {
				v = 1
			}
			e.eq(v, "kvnode_group0_upgrade_state", "state", string(st))
		}
	}
	for i := range c.Nodes {
		waitMetrics(t, c, i, 20*time.Second, func(e *expect) {
			e.versions("2.1", "2.1", 2_001_000, 2_001_000)
			states(e, group0.UsePostRaft)
			e.eq(3, "kvnode_group0_raft_voters")
			e.eq(0, "kvnode_group0_raft_learners")
			e.eq(1, "kvnode_upgrade_status_up")
			e.eq(3, "kvnode_cluster_nodes", "binary_version", "2.1")
			e.eq(0, "kvnode_upgrade_pending")
			e.blockers(nil)
			e.eq(1, "kvnode_migration_fraction_completed", "version", "2.0-step.1", "status", "not_needed")
			e.eq(1, "kvnode_migration_fraction_completed", "version", "2.1-step.2", "status", "not_needed")
			for _, name := range []string{"kvnode_raft_apply_lag", "kvnode_group0_raft_apply_lag",
				"kvnode_group0_raft_term", "kvnode_group0_raft_commit_index", "kvnode_group0_raft_applied_index"} {
				if _, ok := e.m.get(name); !ok {
					e.errs = append(e.errs, name+" absent")
				}
			}
			if lag, _ := e.m.get("kvnode_raft_apply_lag"); lag > 1000 {
				e.errs = append(e.errs, fmt.Sprintf("kvnode_raft_apply_lag = %v on an idle cluster", lag))
			}
			if l, ok := e.m.get("kvnode_group0_raft_is_leader"); !ok || l != 0 && l != 1 {
				e.errs = append(e.errs, fmt.Sprintf("kvnode_group0_raft_is_leader = %v %v", l, ok))
			}
		})
	}

	c.Exec(2, "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'")
	waitMetrics(t, c, 2, 10*time.Second, func(e *expect) { states(e, group0.Recovery) })

	// Without a majority of the data group, node 1 cannot compute the
	// upgrade status: the cluster-wide series go, the local ones stay.
	c.StopNode(2)
	c.StopNode(1)
	waitMetrics(t, c, 0, 25*time.Second, func(e *expect) {
		e.eq(0, "kvnode_upgrade_status_up")
		for _, name := range []string{"kvnode_cluster_nodes", "kvnode_upgrade_finalization_blocked",
			"kvnode_upgrade_pending", "kvnode_upgrade_downgrading", "kvnode_migration_fraction_completed", "kvnode_migration_rows_done"} {
			e.absent(name)
		}
		e.versions("2.1", "2.1", 2_001_000, 2_001_000)
		states(e, group0.UsePostRaft)
		e.eq(3, "kvnode_group0_raft_voters")
	})
}

// TestMetricsBeforeJoin: a node waiting for `kvnode init` exports its
// binary but no cluster version, no group 0 state and no cluster-wide
// series, and says its upgrade status is not up.
func TestMetricsBeforeJoin(t *testing.T) {
	lis, err := listenerutil.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Config{
		Store:     filepath.Join(t.TempDir(), "n1"),
		Listeners: lis,
		Insecure:  true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := scrapeAddr(s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	bv, err := clusterversion.BinaryVersion()
	if err != nil {
		t.Fatal(err)
	}
	e := &expect{m: m}
	e.eq(1, "kvnode_build_info", "binary_version", bv.String())
	e.eq(float64(bv.Major)*1_000_000+float64(bv.Minor)*1_000, "kvnode_binary_version")
	e.eq(0, "kvnode_upgrade_status_up")
	for _, name := range []string{"kvnode_cluster_version_info", "kvnode_cluster_version", "kvnode_cluster_nodes",
		"kvnode_upgrade_finalization_blocked", "kvnode_upgrade_pending", "kvnode_upgrade_downgrading", "kvnode_migration_fraction_completed",
		"kvnode_group0_upgrade_state", "kvnode_group0_raft_term"} {
		e.absent(name)
	}
	if err := e.err(); err != nil {
		t.Fatal(err)
	}
}
