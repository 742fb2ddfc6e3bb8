package server_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/testcluster"
)

// staleBuilds is the ReportedBuild knob of a test: while a node's entry is
// set, every other node's status view reports that binary for it, as
// gossip that still carries the metadata of the node's previous run does.
type staleBuilds struct{ m [4]atomic.Pointer[string] }

func (s *staleBuilds) set(id nodeid.ID, build string) { s.m[id].Store(&build) }

func (s *staleBuilds) knob(id nodeid.ID, reported string) string {
	if int(id) < len(s.m) {
		if b := s.m[id].Load(); b != nil {
			return *b
		}
	}
	return reported
}

// startRolling21 starts three nodes on 2.0 with automatic upgrades off, and
// restarts nodes 1 and 2 on 2.1 (node 3 stays on 2.0).
func startRolling21(t *testing.T, stale *staleBuilds) *testcluster.Cluster {
	t.Helper()
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0"), ReportedBuild: stale.knob}})
	waitVersion(t, c, "2.0")
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
	upgradeBinary(c, 0, "2.1")
	upgradeBinary(c, 1, "2.1")
	return c
}

// nodeBuild is node id's binary in st's node rows.
func nodeBuild(c *testcluster.Cluster, from int, id nodeid.ID) (string, []autoupgrade.Blocker, error) {
	st, err := c.Nodes[from].Server.UpgradeStatus(context.Background())
	if err != nil {
		return "", nil, err
	}
	for _, n := range st.Nodes {
		if n.NodeID == id {
			return n.Build, st.Blockers, nil
		}
	}
	return "", nil, errors.Newf("node %d is not in node %d's status", id, from+1)
}

// TestFinalizationAsksEachNodeItsBinary: the end of a rolling upgrade 2.0
// -> 2.1, by hand. The binary a status view reports for another node is
// the older of its record and its gossip, and gossip may still carry the
// node's previous run for a while after it restarted (roachtest
// txn/rolling-upgrade, seed 8977818634051549: SET CLUSTER SETTING version
// answered 55000 "node 3 is running 2.0" about a node that had run 2.1 for
// seconds). Finalization asks each node instead:
//   - node 3 really on 2.0, reported on 2.1 (the report a restart onto an
//     older binary leaves): SET is refused naming node 3's 2.0, before any
//     node persists the fence (taken at its word, the report let the fence
//     reach nodes 1 and 2, which could then no longer roll back);
//   - node 3 on 2.1, reported on 2.0: SHOW UPGRADE STATUS shows 2.1 and no
//     mixed-version blocker, and SET finalizes.
func TestFinalizationAsksEachNodeItsBinary(t *testing.T) {
	var stale staleBuilds
	c := startRolling21(t, &stale)

	stale.set(3, "2.1")
	err := execErr(c, 0, "SET CLUSTER SETTING version = '2.1'")
	if pgCode(err) != "55000" || !strings.Contains(err.Error(), "node 3 is running 2.0") {
		t.Fatalf("SET with node 3 on 2.0, reported on 2.1: %v, want 55000 naming node 3's 2.0", err)
	}
	for i, nd := range c.Nodes {
		if v := nd.Server.ActiveVersion().String(); v != "2.0" {
			t.Fatalf("node %d persisted %s after a refused finalization", i+1, v)
		}
	}
	if b, _, err := nodeBuild(c, 0, 3); err != nil || b != "2.0" {
		t.Fatalf("SHOW UPGRADE STATUS on node 1 says node 3 runs %q (%v), want 2.0", b, err)
	}

	upgradeBinary(c, 2, "2.1")
	stale.set(3, "2.0")
	// Node 3 is asked once its restart is live in the others' liveness
	// view (a node that is not live keeps its report: it blocks anyway).
	testcluster.WaitFor(t, 30*time.Second, func() error {
		for from := 0; from < 2; from++ {
			b, blockers, err := nodeBuild(c, from, 3)
			if err != nil || b != "2.1" {
				return errors.Newf("SHOW UPGRADE STATUS on node %d says node 3 runs %q (%v), want 2.1", from+1, b, err)
			}
			for _, bl := range blockers {
				if bl.Kind == autoupgrade.BlockMixedVersions {
					return errors.Newf("node %d blocks on %q from node 3's stale report", from+1, bl.Reason)
				}
			}
		}
		return nil
	})
	if err := execErr(c, 0, "SET CLUSTER SETTING version = '2.1'"); err != nil {
		t.Fatalf("SET with node 3 on 2.1, reported on 2.0: %v", err)
	}
	waitVersion(t, c, "2.1")
}

// TestAutoUpgradeAsksEachNodeItsBinary: the same stale report (node 3 on
// 2.1, reported on 2.0 by every other node) does not hold back the
// automatic finalization: the leader finalizes once automatic upgrades are
// back on, whichever node leads.
func TestAutoUpgradeAsksEachNodeItsBinary(t *testing.T) {
	var stale staleBuilds
	c := startRolling21(t, &stale)
	upgradeBinary(c, 2, "2.1")
	stale.set(3, "2.0")
	stale.set(2, "2.0")
	c.Exec(2, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true")
	waitVersion(t, c, "2.1")
}

// TestNodeRestartedOnOlderBinaryDuringFinalizationIsCaught: node 3 answers
// that it runs 2.1 when the finalization validates, then restarts on 2.0
// before the fence reaches it, and every other node still reports it on
// 2.1. The fence's persist on node 3 is refused (its binary cannot run
// 2.1-step.1), so SET fails with 55000 naming it, and node 3 keeps 2.0;
// the next SET is refused at validation, naming node 3's 2.0 (asked, not
// reported). Once node 3 runs 2.1 again, the finalization completes.
func TestNodeRestartedOnOlderBinaryDuringFinalizationIsCaught(t *testing.T) {
	var stale staleBuilds
	var c *testcluster.Cluster
	var armed atomic.Bool
	restarted := make(chan struct{})
	c = testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0"), ReportedBuild: stale.knob,
		BeforeVersionStep: func(step clusterversion.Version) error {
			if step == rel("2.1-step.1") && armed.CompareAndSwap(true, false) {
				c.StopNode(2)
				c.Nodes[2].Config.Knobs.BinaryVersion = rel("2.0")
				c.StartNode(2)
				c.WaitUp(2)
				close(restarted)
			}
			return nil
		}}})
	waitVersion(t, c, "2.0")
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	for i := range c.Nodes {
		upgradeBinary(c, i, "2.1")
	}
	stale.set(3, "2.1")
	armed.Store(true)
	err := execErr(c, 0, "SET CLUSTER SETTING version = '2.1'")
	select {
	case <-restarted:
	case <-time.After(time.Minute):
		t.Fatalf("the finalization never reached the fence: %v", err)
	}
	if pgCode(err) != "55000" || !strings.Contains(err.Error(), "node 3 runs release 2.0, which cannot run cluster version 2.1-step.1") {
		t.Fatalf("SET with node 3 restarted on 2.0 before the fence: %v, want 55000 naming node 3's 2.0", err)
	}
	if v := c.Nodes[2].Server.ActiveVersion().String(); v != "2.0" {
		t.Fatalf("node 3, on a 2.0 binary, persisted %s", v)
	}
	err = execErr(c, 1, "SET CLUSTER SETTING version = '2.1'")
	if pgCode(err) != "55000" || !strings.Contains(err.Error(), "node 3 is running 2.0") {
		t.Fatalf("SET again with node 3 on 2.0, reported on 2.1: %v, want 55000 naming node 3's 2.0", err)
	}
	upgradeBinary(c, 2, "2.1")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		return execErr(c, 1, "SET CLUSTER SETTING version = '2.1'")
	})
	waitVersion(t, c, "2.1")
}
