package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// group0Role is node id's role in group 0 as node i's replica sees it.
func group0Role(c *testcluster.Cluster, i int, id nodeid.ID) string {
	rep := c.Nodes[i].Server.Group0().Replica()
	if rep == nil {
		return "no replica"
	}
	st := rep.Status()
	switch {
	case slices.Contains(st.Voters, id):
		return "voter"
	case slices.Contains(st.Learners, id):
		return "learner"
	}
	return "none"
}

func waitGroup0Role(t *testing.T, c *testcluster.Cluster, id nodeid.ID, want string, via ...int) {
	t.Helper()
	testcluster.WaitFor(t, 30*time.Second, func() error {
		for _, i := range via {
			if got := group0Role(c, i, id); got != want {
				return fmt.Errorf("node %d sees node %d in group 0 as %s, want %s", i+1, id, got, want)
			}
		}
		return nil
	})
}

// group0Leader returns the index of the node that leads group 0.
func group0Leader(t *testing.T, c *testcluster.Cluster) int {
	t.Helper()
	leader := -1
	testcluster.WaitFor(t, 30*time.Second, func() error {
		for i, nd := range c.Nodes {
			if nd.Server != nil && nd.Server.Group0().Replica() != nil && nd.Server.Group0().Replica().Status().IsLeader {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("group 0 has no leader")
	})
	return leader
}

// TestGroup0DecommissionRecommission (issue 16, D3): while a node is
// decommissioning, group 0 demotes it to a learner instead of removing it
// (it keeps following the schema); recommissioned, it is promoted again and
// serves DDL, later tables and drops like any member. Before the fix it was
// removed from group 0 as soon as the decommission started and never came
// back: later tables were missing on it, and DDL through it failed.
func TestGroup0DecommissionRecommission(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true) // the data group keeps node 3 while it is decommissioning
	c := testcluster.Start(t, 3, testcluster.Options{HoldDecommission: &hold})
	waitGroup0States(t, c, group0.UsePostRaft)
	waitGroup0Role(t, c, 3, "voter", 0, 1, 2)
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[0].Config.ListenAddr, []nodeid.ID{3}, false, nil); err != nil {
		t.Fatal(err)
	}
	waitGroup0Role(t, c, 3, "learner", 0, 1)
	c.Exec(1, "CREATE TABLE during (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"during", "kv"})

	if _, err := nodeapi.RecommissionNodes(ctx, c.Nodes[1].Config.ListenAddr, []nodeid.ID{3}); err != nil {
		t.Fatal(err)
	}
	waitGroup0Role(t, c, 3, "voter", 0, 1, 2)
	c.Exec(0, "CREATE TABLE later (k INT PRIMARY KEY)")
	c.Exec(2, "CREATE TABLE through3 (k INT PRIMARY KEY)") // DDL through the recommissioned node
	checkSchemaEverywhere(t, c, []string{"during", "kv", "later", "through3"})
	c.Exec(0, "DROP TABLE during")
	if err := execErr(c, 2, "INSERT INTO during VALUES (1)"); pgCode(err) != "42P01" {
		t.Fatalf("a write into a dropped table through the recommissioned node: %v, want 42P01", err)
	}
	// After a restart it is still a member, in use_post_raft_procedures.
	restartNode(t, c, 2)
	waitGroup0States(t, c, group0.UsePostRaft, 2)
	c.Exec(2, "CREATE TABLE after_restart (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"after_restart", "kv", "later", "through3"})
}

// TestGroup0NodeOutsideRejoins (issue 16, D3): a node in
// use_post_raft_procedures that is not a member of group 0 (here removed
// by hand while it was down, as the old membership loop did at the start
// of a decommission) refuses writes while it is outside and may not
// rejoin (decommissioning), so that a table dropped meanwhile cannot take
// acknowledged, lost writes through it; recommissioned, it rejoins by
// itself, catches up its catalog and serves DDL. Before the fix it stayed
// outside for good, even across restarts, and acknowledged the write.
func TestGroup0NodeOutsideRejoins(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	c := testcluster.Start(t, 3, testcluster.Options{HoldDecommission: &hold})
	waitGroup0States(t, c, group0.UsePostRaft)
	waitGroup0Role(t, c, 3, "voter", 0, 1, 2)
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	c.Exec(0, "CREATE TABLE gone (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"gone", "kv"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Node 3 is stopped, decommissioning, and removed from group 0.
	c.StopNode(2)
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[0].Config.ListenAddr, []nodeid.ID{3}, false, nil); err != nil {
		t.Fatal(err)
	}
	l := group0Leader(t, c)
	if err := c.Nodes[l].Server.Group0().Replica().RemoveMember(ctx, 3); err != nil {
		t.Fatal(err)
	}
	waitGroup0Role(t, c, 3, "none", 0, 1)
	startNode(t, c, 2)
	// Group 0 changes while it is outside.
	c.Exec(0, "DROP TABLE gone")
	c.Exec(1, "CREATE TABLE meanwhile (k INT PRIMARY KEY)")
	// Outside, it must not acknowledge a write into the dropped table.
	testcluster.WaitFor(t, 10*time.Second, func() error {
		err := execErr(c, 2, "INSERT INTO gone VALUES (1)")
		if err == nil {
			t.Fatal("node 3, outside group 0, acknowledged a write into a table dropped meanwhile")
		}
		if code := pgCode(err); code != "40001" && code != "42P01" {
			return fmt.Errorf("write through node 3: %v", err)
		}
		return nil
	})
	if err := execErr(c, 2, "INSERT INTO kv VALUES (1, 'one')"); pgCode(err) != "40001" || pgHint(err) == "" {
		t.Fatalf("a write through a node outside group 0: %v, want 40001 with a hint", err)
	}
	if got := group0Role(c, l, 3); got != "none" {
		t.Fatalf("a decommissioning node rejoined group 0: %s", got)
	}

	// Recommissioned, it rejoins and catches up by itself.
	if _, err := nodeapi.RecommissionNodes(ctx, c.Nodes[1].Config.ListenAddr, []nodeid.ID{3}); err != nil {
		t.Fatal(err)
	}
	waitGroup0Role(t, c, 3, "voter", 0, 1, 2)
	testcluster.WaitFor(t, 30*time.Second, func() error {
		return execErr(c, 2, "INSERT INTO kv VALUES (2, 'two')")
	})
	if err := execErr(c, 2, "INSERT INTO gone VALUES (1)"); pgCode(err) != "42P01" {
		t.Fatalf("write into the dropped table after rejoining: %v, want 42P01", err)
	}
	c.Exec(2, "CREATE TABLE through3 (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"kv", "meanwhile", "through3"})
	waitCount(t, c, 0, "kv", 1)

	// Its group 0 store is lost while it is down, and group 0 changes
	// meanwhile: on restart (in use_post_raft_procedures) it joins again
	// with an empty replica (the leader removes the voter that lost its
	// log first: the other two keep the majority) and catches up.
	c.StopNode(2)
	if err := os.RemoveAll(filepath.Join(c.Nodes[2].Config.Store, "group0")); err != nil {
		t.Fatal(err)
	}
	c.Exec(0, "DROP TABLE meanwhile")
	c.Exec(1, "CREATE TABLE while_down (k INT PRIMARY KEY)")
	startNode(t, c, 2)
	waitGroup0Role(t, c, 3, "voter", 0, 1, 2)
	testcluster.WaitFor(t, 30*time.Second, func() error {
		return execErr(c, 2, "INSERT INTO kv VALUES (3, 'three')")
	})
	if err := execErr(c, 2, "INSERT INTO meanwhile VALUES (1)"); pgCode(err) != "42P01" {
		t.Fatalf("write into a table dropped while the node was down: %v, want 42P01", err)
	}
	c.Exec(2, "CREATE TABLE after_wipe (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"after_wipe", "kv", "through3", "while_down"})
}

// TestGroup0UpgradeSkipsDecommissioningNode (issue 16, D3): the upgrade
// procedure does not wait for a decommissioning node (group 0 refuses it
// as a joiner, so before the fix the join step looped until its bound and
// the upgrade never finished); recommissioned after the upgrade, the node
// joins group 0 by itself and enters use_post_raft_procedures.
func TestGroup0UpgradeSkipsDecommissioningNode(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	knobs := server.Knobs{BinaryVersion: rel("1.1"), Group0Backoff: 20 * time.Millisecond}
	c := testcluster.Start(t, 4, testcluster.Options{Knobs: knobs, HoldDecommission: &hold})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	for i := 1; i < 4; i++ {
		waitCount(t, c, i, "kv", 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[0].Config.ListenAddr, []nodeid.ID{4}, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("2.0")
		c.Nodes[i].Config.Group0UpgradeTimeout = 20 * time.Second
		startNode(t, c, i)
	}
	testcluster.WaitFor(t, 90*time.Second, func() error {
		for i := 0; i < 3; i++ {
			v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version")
			if err != nil || v != "2.0" {
				return fmt.Errorf("node %d: version %q %v", i+1, v, err)
			}
		}
		return nil
	})
	waitGroup0States(t, c, group0.UsePostRaft, 0, 1, 2)
	if _, err := nodeapi.RecommissionNodes(ctx, c.Nodes[1].Config.ListenAddr, []nodeid.ID{4}); err != nil {
		t.Fatal(err)
	}
	waitGroup0States(t, c, group0.UsePostRaft, 3)
	waitGroup0Role(t, c, 4, "voter", 0, 1, 2, 3)
	c.Exec(3, "CREATE TABLE through4 (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"kv", "through4"})
}
