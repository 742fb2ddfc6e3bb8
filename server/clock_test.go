package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/testcluster"
)

// leaderIndex returns the index of the data group's leader.
func leaderIndex(t *testing.T, c *testcluster.Cluster) int {
	t.Helper()
	idx := -1
	testcluster.WaitFor(t, 20*time.Second, func() error {
		for i, n := range c.Nodes {
			if rep := n.Server.Replica(); rep != nil && rep.Status().IsLeader {
				idx = i
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	return idx
}

// metric returns the value of a metric line of node i's /metrics.
func metric(t *testing.T, c *testcluster.Cluster, i int, name string) string {
	t.Helper()
	code, body := httpGet(t, "http://"+c.Nodes[i].Config.HTTPAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestClockOffsetStopsLeasedReads: the leader of a 2.1 cluster serves reads
// from its lease; a clock offset injected on it (2s, beyond --max-offset)
// makes its clock-offset monitor find it beyond the bound against both
// other nodes, and it stops serving leased reads, says so (metric, the
// status page's banner) and still answers reads (through ReadIndex). The
// other nodes, whose clocks agree, stay healthy. Once the offset is gone,
// it serves leased reads again.
func TestClockOffsetStopsLeasedReads(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "INSERT INTO t VALUES (1, 10)")
	l := leaderIndex(t, c)
	rep := c.Nodes[l].Server.Replica()
	testcluster.WaitFor(t, 20*time.Second, func() error {
		if st := rep.Status(); !st.Lease {
			return fmt.Errorf("the leader holds no lease (leased reads allowed: %v)", st.LeaseReads)
		}
		return nil
	})
	if v := metric(t, c, l, "kvnode_clock_offset_healthy"); v != "1" {
		t.Fatalf("kvnode_clock_offset_healthy = %q before the offset", v)
	}
	leased := metric(t, c, l, "kvnode_raft_lease_reads_total")
	if n, err := c.QueryInt(l, "SELECT v FROM t WHERE k = 1"); err != nil || n != 10 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if after := metric(t, c, l, "kvnode_raft_lease_reads_total"); after == leased {
		t.Fatalf("the read was not served from the lease (kvnode_raft_lease_reads_total still %s)", after)
	}

	c.Nodes[l].Server.Clock().SetOffset(2 * time.Second)
	testcluster.WaitFor(t, 20*time.Second, func() error {
		if st := c.Nodes[l].Server.ClockStatus(); st.Healthy || st.Beyond != 2 {
			return fmt.Errorf("monitor: %s", st.Message())
		}
		if st := rep.Status(); st.LeaseReads || st.Lease {
			return fmt.Errorf("leased reads still on (lease %v)", st.Lease)
		}
		return nil
	})
	for i := range c.Nodes {
		if st := c.Nodes[i].Server.ClockStatus(); i != l && !st.Healthy {
			t.Errorf("node %d, whose clock agrees with a majority, is unhealthy: %s", i+1, st.Message())
		}
	}
	if v := metric(t, c, l, "kvnode_clock_offset_healthy"); v != "0" {
		t.Errorf("kvnode_clock_offset_healthy = %q with the offset", v)
	}
	if v := metric(t, c, l, "kvnode_raft_lease_reads_enabled"); v != "0" {
		t.Errorf("kvnode_raft_lease_reads_enabled = %q with the offset", v)
	}
	st := consoleJSON(t, c, l)
	var found bool
	for _, b := range st.Banners {
		if b.Kind == console.KindClockOffset && b.NodeID == c.Nodes[l].Server.NodeID() && strings.Contains(b.Title, "beyond --max-offset") {
			found = true
		}
	}
	if !found || st.Self.Clock == nil || st.Self.Clock.Healthy || st.Self.Clock.LeaseReads {
		t.Fatalf("status page of the node: banners %v, clock %+v", bannerKinds(st), st.Self.Clock)
	}
	if other := consoleJSON(t, c, (l+1)%3); len(other.Banners) != 0 {
		t.Errorf("status page of a node with a good clock: banners %v", bannerKinds(other))
	}
	leased = metric(t, c, l, "kvnode_raft_lease_reads_total")
	c.Exec(l, "UPDATE t SET v = 11 WHERE k = 1")
	if n, err := c.QueryInt(l, "SELECT v FROM t WHERE k = 1"); err != nil || n != 11 {
		t.Fatalf("read without the lease: %d, %v", n, err)
	}
	if after := metric(t, c, l, "kvnode_raft_lease_reads_total"); after != leased {
		t.Fatalf("a read was served from the lease with the clock beyond the bound (%s -> %s)", leased, after)
	}

	c.Nodes[l].Server.Clock().SetOffset(0)
	testcluster.WaitFor(t, 20*time.Second, func() error {
		if st := rep.Status(); !st.Lease || !c.Nodes[l].Server.ClockStatus().Healthy {
			return fmt.Errorf("no lease again yet")
		}
		return nil
	})
}

// TestClockMonitorWithOlderPeers: a 2.1 node in a cluster of 2.0 nodes
// measures nobody (they answer Clock with Unimplemented), lists them as
// older, and stays healthy whatever its clock; the 2.0 nodes send no Clock
// call at all; and no node serves leased reads before the cluster is at
// 2.1.
func TestClockMonitorWithOlderPeers(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
	n4 := c.AddNodeWith(func(cfg *server.Config) { cfg.Knobs.BinaryVersion = rel("2.1") })
	s4 := c.Nodes[n4].Server
	s4.Clock().SetOffset(5 * time.Second)
	testcluster.WaitFor(t, 20*time.Second, func() error {
		if st := s4.ClockStatus(); len(st.Older) != 3 || len(st.Peers) != 0 || !st.Healthy {
			return fmt.Errorf("monitor of the 2.1 node: older %v, peers %v, healthy %v", st.Older, st.Peers, st.Healthy)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if st := c.Nodes[i].Server.ClockStatus(); len(st.Peers)+len(st.Older) != 0 {
			t.Errorf("2.0 node %d runs a clock monitor: %+v", i+1, st)
		}
	}
	for i, n := range c.Nodes {
		if st := n.Server.Replica().Status(); st.LeaseReads || st.Lease {
			t.Errorf("node %d serves leased reads in a 2.0 cluster", i+1)
		}
	}
	if n, err := c.QueryInt(n4, "SELECT count(*) FROM crdb_internal.gossip_nodes"); err != nil || n < 1 {
		t.Fatalf("read through the 2.1 node: %d, %v", n, err)
	}
}
