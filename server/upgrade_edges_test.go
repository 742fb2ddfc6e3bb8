package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server"
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
	if err := execErr(c, 0, "SET CLUSTER SETTING version = '1.1'"); err == nil {
		t.Fatal("the finalization succeeded with a node stopped during the fence")
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
