package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/settings"
)

// TestInterruptedFinalizationResumesWithAutoUpgradeDisabled (issue 16, D6):
// with cluster.auto_upgrade.enabled = false, the operator runs SET CLUSTER
// SETTING version = '2.0' by hand and the coordinator stops during the
// group 0 procedure (here paused before synchronize). The cluster is at
// the fence of 2.0: it cannot go back, and nodes in synchronize hold DDL.
// Once the coordinator is back, the data group's leader completes the
// finalization by itself, without anyone running the SET again, and
// auto-upgrade stays disabled.
func TestInterruptedFinalizationResumesWithAutoUpgradeDisabled(t *testing.T) {
	c := startAt11(t, server.Knobs{MigrationLease: 2 * time.Second})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	paused := make(chan int, 3)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rollTo20(t, c, func(i int) func(context.Context, group0.Action) error {
		return func(ctx context.Context, a group0.Action) error {
			if a.Step != group0.StepSynchronize {
				return nil
			}
			select {
			case <-release:
				return nil
			default:
			}
			paused <- i
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-release:
				return nil
			}
		}
	})
	done := make(chan error, 1)
	go func() { done <- execErr(c, 0, "SET CLUSTER SETTING version = '2.0'") }()
	var coord int
	select {
	case coord = <-paused:
	case err := <-done:
		t.Fatalf("the manual finalization ended before the group 0 procedure paused: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no coordinator reached the synchronize step in 60s")
	}
	c.StopNode(coord)
	<-done // the client saw its connection close, or an error
	releaseOnce.Do(func() { close(release) })
	for i := range c.Nodes {
		if i == coord {
			continue
		}
		if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "2.0-step.1" {
			t.Fatalf("node %d after the coordinator stopped: version %q %v, want 2.0-step.1", i+1, v, err)
		}
	}
	startNode(t, c, coord)
	waitVersion(t, c, "2.0")
	waitGroup0States(t, c, group0.UsePostRaft)
	checkSchemaEverywhere(t, c, []string{"kv", "other"})
	if st, err := c.Nodes[1].Server.UpgradeStatus(context.Background()); err != nil || st.AutoUpgradeEnabled {
		t.Fatalf("cluster.auto_upgrade.enabled after the resumed finalization: %+v %v", st, err)
	}
}

// TestPreserveOptionSetBehindTheFence (issue 16, D5): a finalization to 1.1
// persists the fence on some nodes and stops (a node died after the node
// list was read); that node comes back at 1.0 and the operator sets
// cluster.preserve_downgrade_option = '1.0' through it, which its version
// allows. The stored value must read as stored on the fenced nodes too
// (it read as unset there), and once the finalization completes the
// option, which names a version the cluster moved past, is reset.
func TestPreserveOptionSetBehindTheFence(t *testing.T) {
	c := startAt10(t, 10, server.Knobs{})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	var armed atomic.Bool
	armed.Store(true)
	stopped := make(chan int, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("1.1")
		c.Nodes[i].Config.Knobs.BeforeVersionStep = func(step clusterversion.Version) error {
			if step != rel("1.1-step.1") {
				return nil
			}
			if armed.CompareAndSwap(true, false) {
				// The coordinator stops another node after it read the
				// node list for the fence.
				v := (i + 1) % len(c.Nodes)
				c.StopNode(v)
				stopped <- v
				return nil
			}
			<-release // a later attempt waits until the test has set the option
			return nil
		}
		startNode(t, c, i)
	}
	// Not a bad value: a cluster not ready (issue 16: it was 22023).
	if err := execErr(c, 0, "SET CLUSTER SETTING version = '1.1'"); pgCode(err) != "55000" {
		t.Fatalf("the finalization with a node stopped during the fence: %v, want SQLSTATE 55000", err)
	}
	victim := <-stopped
	if v := c.Nodes[0].Server.ActiveVersion().String(); v != "1.1-step.1" {
		t.Fatalf("the coordinator persisted %s, want the fence 1.1-step.1", v)
	}
	startNode(t, c, victim)
	if v := c.Nodes[victim].Server.ActiveVersion().String(); v != "1.0" {
		t.Fatalf("node %d restarted at %s, want 1.0", victim+1, v)
	}
	c.Exec(victim, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0'")
	for i := range c.Nodes {
		if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil || v != "1.0" {
			t.Fatalf("node %d (at %s): preserve_downgrade_option = %q %v, want the stored 1.0",
				i+1, c.Nodes[i].Server.ActiveVersion(), v, err)
		}
	}
	checkPersistedVersions(t, c, victim)
	releaseOnce.Do(func() { close(release) })
	if err := execErr(c, 0, "SET CLUSTER SETTING version = '1.1'"); err != nil {
		t.Fatalf("completing the finalization: %v", err)
	}
	waitVersion(t, c, "1.1")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if v, found, err := c.Nodes[0].Server.Replica().Get(ctx, settings.Key("cluster.preserve_downgrade_option")); err != nil || found {
			return fmt.Errorf("preserve_downgrade_option is still stored after the finalization: %q %v", v, err)
		}
		for i := range c.Nodes {
			if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil || v != "" {
				return fmt.Errorf("node %d: preserve_downgrade_option = %q %v", i+1, v, err)
			}
		}
		return nil
	})
}

// checkPersistedVersions (issue 16, D2): with the fence of 1.1 persisted on
// every node but victim, and not replicated, every node's persisted version
// is in node status, SHOW UPGRADE STATUS and the console's JSON, and the
// console does not advise rolling back to 1.0: the fenced nodes would
// refuse to start on it.
func checkPersistedVersions(t *testing.T, c *testcluster.Cluster, victim int) {
	t.Helper()
	want := map[nodeid.ID]string{}
	for i, nd := range c.Nodes {
		want[nd.Server.NodeID()] = "1.1-step.1"
		if i == victim {
			want[nd.Server.NodeID()] = "1.0"
		}
	}
	via := victim // its view: it is the node that has not persisted the fence
	testcluster.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := nodeapi.GetNodeStatus(ctx, c.Nodes[via].Config.ListenAddr)
		if err != nil {
			return err
		}
		for _, n := range resp.Nodes {
			if n.PersistedVersion != want[n.NodeID] {
				return fmt.Errorf("node status: node %d persisted_version %q, want %q", n.NodeID, n.PersistedVersion, want[n.NodeID])
			}
		}
		return nil
	})
	rows, err := c.Conn(via).Query(context.Background(), "SHOW UPGRADE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	got := map[nodeid.ID]string{}
	for rows.Next() {
		var item, value, detail string
		var node *int64
		if err := rows.Scan(&item, &node, &value, &detail); err != nil {
			t.Fatal(err)
		}
		if item != "persisted_version" {
			continue
		}
		got[nodeid.ID(*node)] = value
		if value == "1.1-step.1" && !strings.Contains(detail, "above the cluster version 1.0") {
			t.Errorf("SHOW UPGRADE STATUS: node %d's persisted_version detail %q does not say it is above the cluster version", *node, detail)
		}
	}
	rows.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("SHOW UPGRADE STATUS persisted_version rows: %v, want %v", got, want)
	}
	resp, err := http.Get("http://" + c.Nodes[via].Config.HTTPAddr + "/_status/console")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st console.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.PersistedVersion != want[n.NodeID] {
			t.Errorf("console: node %d persisted_version %q, want %q", n.NodeID, n.PersistedVersion, want[n.NodeID])
		}
	}
	var text []string
	for _, b := range st.Banners {
		text = append(text, b.Title+" "+b.Detail+" "+strings.Join(b.Fix, " "))
	}
	all := strings.Join(text, "\n")
	if strings.Contains(all, "can still be rolled back") || !strings.Contains(all, "can no longer be rolled back") {
		t.Fatalf("console banners with the fence on some nodes:\n%s", all)
	}
	// The node behind the fence sees an interrupted finalization, which
	// the opt-outs (auto-upgrade off, the preserve option it accepted) do
	// not hold.
	if st.Target != "1.1" || len(st.Blockers) != 0 {
		t.Fatalf("node %d's decision with the fence on the others: target %q, blockers %+v", via+1, st.Target, st.Blockers)
	}
}

// TestSetClusterVersionRPCRefusesVersionsOffTheLadder (issue 16): the
// SetClusterVersion RPC persisted any version the binary could run, on
// the ladder or not (1.1-step.7 on a 1.1 binary), and answered success
// for one below the node's (0.9). It refuses both, naming the ladder, and
// persists nothing.
func TestSetClusterVersionRPCRefusesVersionsOffTheLadder(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("1.0")}})
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.BinaryVersion = rel("1.1")
	startNode(t, c, 0)
	pool := rpc.NewPool()
	defer pool.Close()
	for _, v := range []string{"1.0-step.5", "0.9", "1.1-step.7"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := nodeapi.NewClient(pool).SetClusterVersion(ctx, c.Nodes[0].Config.ListenAddr, &nodeapi.SetClusterVersionRequest{Version: v})
		cancel()
		if err == nil || nodeapi.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not on the version ladder") ||
			!errors.Is(err, clusterversion.ErrUnknownVersion) ||
			!strings.Contains(strings.Join(errors.GetAllHints(err), "\n"), "1.0, 1.1-step.1, 1.1-step.2, 1.1, 2.0-step.1, 2.0") {
			t.Errorf("SetClusterVersion %s: %+v %v, want InvalidArgument naming the ladder", v, resp, err)
		}
		if got := c.Nodes[0].Server.ActiveVersion().String(); got != "1.0" {
			t.Fatalf("after SetClusterVersion %s the node persisted %s", v, got)
		}
	}
}
