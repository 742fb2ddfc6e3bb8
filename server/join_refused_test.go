package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/listenerutil"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestRefusedJoinerLeavesNoGhost (issue 16, D11): a joiner whose binary
// the cluster refuses leaves nothing behind, even when the cluster's
// version moves while the leader admits it. Here the leader passes the
// joiner's first version check at 1.0, a finalization to 1.1 completes
// while it is paused, and only then does it go on: the joiner (a 1.0
// binary) must be refused before any record or learner is written (before
// the fix, the leader wrote both, handed out 1.1, and the joiner refused
// it: a ghost node 4 that was never live).
func TestRefusedJoinerLeavesNoGhost(t *testing.T) {
	c := startAt10(t, 0, server.Knobs{})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	var once sync.Once
	entered, release := make(chan struct{}), make(chan struct{})
	hook := func(string) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(entered)
			<-release
		}
	}
	for i := range c.Nodes {
		c.Nodes[i].Config.Knobs.BeforeJoinAdmit = hook
		upgradeBinary(c, i, "1.1")
	}

	// A 1.0 binary joins while the cluster is still at 1.0: admissible.
	lis, err := listenerutil.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Nodes[0].Config
	cfg.Store = filepath.Join(t.TempDir(), "joiner")
	cfg.Listeners = lis
	cfg.Knobs = server.Knobs{BinaryVersion: rel("1.0")}
	var joinAddrs []string
	for _, nd := range c.Nodes {
		joinAddrs = append(joinAddrs, nd.Config.ListenAddr)
	}
	cfg.Join = joinAddrs
	joiner, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := joiner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = joiner.Stop(ctx)
	})
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader never admitted the joiner")
	}
	// The cluster finalizes to 1.1 while the leader is paused in the join.
	c.Exec(1, "SET CLUSTER SETTING version = '1.1'")
	waitVersion(t, c, "1.1")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		for i, nd := range c.Nodes {
			if v := nd.Server.ActiveVersion(); v != rel("1.1") {
				return fmt.Errorf("node %d acts on %s", i+1, v)
			}
		}
		return nil
	})
	close(release)

	waitFailed(t, joiner, "cannot run the cluster's version 1.1")
	// Nothing of it stays: three nodes, three liveness records, three
	// members of the data group, no blocker.
	testcluster.WaitFor(t, 30*time.Second, func() error {
		n, err := c.QueryInt(0, "SELECT count(*) FROM crdb_internal.gossip_liveness")
		if err != nil || n != 3 {
			return fmt.Errorf("liveness records: %d %v, want 3", n, err)
		}
		for i, nd := range c.Nodes {
			st := nd.Server.Replica().Status()
			if len(st.Voters)+len(st.Learners) != 3 {
				return fmt.Errorf("node %d: data group voters %v learners %v", i+1, st.Voters, st.Learners)
			}
		}
		ns, err := c.Nodes[0].Server.NodeStatuses(context.Background())
		if err != nil || len(ns) != 3 {
			return fmt.Errorf("node statuses: %+v %v", ns, err)
		}
		return nil
	})
	// The cluster can still finalize further (no "node 4 is not live").
	st, err := c.Nodes[2].Server.UpgradeStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.Blockers {
		if b.Kind != "mixed_binary_versions" && b.Kind != "auto_upgrade_disabled" {
			t.Fatalf("a blocker remains after the refused join: %+v", b)
		}
	}
}
