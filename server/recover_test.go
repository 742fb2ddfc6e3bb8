package server_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestRecoverLostMajority: three of five nodes are lost for good, stores
// and all; the data group and group 0 have no majority. `kvnode node
// recover` re-forms both on the two survivors: every row they had is there,
// both serve reads, writes and DDL, and a new node joins.
//
// Also: a survivor restarted after the loss (stuck starting: its data group
// cannot answer) takes part, and a recovery interrupted after its first
// steps is finished by running the command again.
func TestRecoverLostMajority(t *testing.T) {
	var failAt atomic.Pointer[string]
	c := testcluster.Start(t, 5, testcluster.Options{Knobs: server.Knobs{
		BeforeRecoverStep: func(step string) error {
			if p := failAt.Load(); p != nil && *p == step {
				return fmt.Errorf("injected failure before step %s", step)
			}
			return nil
		},
	}})
	waitGroup0States(t, c, group0.UsePostRaft)
	waitGroup0Members(t, c, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A healthy cluster is refused, and nothing changes.
	_, err := nodeapi.Recover(ctx, c.Nodes[0].Config.ListenAddr, nodeapi.RecoverRequest{DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "has not lost its majority") || len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("recover on a healthy cluster: %v", err)
	}

	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	for i := 0; i < 20; i++ {
		c.Exec(i%2, fmt.Sprintf("INSERT INTO kv VALUES (%d, 'before')", i))
	}
	// Nodes 3, 4 and 5 are gone for good. Node IDs are given in the order
	// nodes join, so they are read, not derived from the index.
	nodeIDs := make([]nodeid.ID, len(c.Nodes))
	for i, nd := range c.Nodes {
		nodeIDs[i] = nd.Server.NodeID()
	}
	for _, i := range []int{2, 3, 4} {
		c.StopNode(i)
		if err := os.RemoveAll(c.Nodes[i].Config.Store); err != nil {
			t.Fatal(err)
		}
	}
	if err := execErr(c, 0, "INSERT INTO kv VALUES (100, 'no majority')"); err == nil {
		t.Fatal("a write succeeded without a majority")
	}
	// Node 2 restarts: it cannot start without its data group.
	c.StopNode(1)
	c.StartNode(1)

	// The dry run names the seed and the dead, and changes nothing. (It
	// refuses while node 2 is still starting.)
	var plan *nodeapi.RecoverResponse
	testcluster.WaitFor(t, 30*time.Second, func() error {
		var err error
		plan, err = nodeapi.Recover(ctx, c.Nodes[0].Config.ListenAddr, nodeapi.RecoverRequest{DryRun: true})
		return err
	})
	t.Logf("plan:\n%s", plan.Plan)
	ids := func(idx ...int) []nodeid.ID {
		var out []nodeid.ID
		for _, i := range idx {
			out = append(out, nodeIDs[i])
		}
		slices.Sort(out)
		return out
	}
	if plan.Done || !slices.Equal(plan.Dead, ids(2, 3, 4)) || len(plan.Survivors) != 2 || plan.Survivors[0] != plan.Seed ||
		!strings.Contains(plan.Plan, "what may be lost") || !strings.Contains(plan.Plan, fmt.Sprintf("node %d: applied index", plan.Seed)) {
		t.Fatalf("dry run: %+v", plan)
	}
	if err := execErr(c, 0, "INSERT INTO kv VALUES (100, 'no majority')"); err == nil {
		t.Fatal("the dry run changed something: a write succeeded")
	}

	// Interrupted after the seed re-formed the group and the other
	// survivor wiped its state: the next run finishes it.
	step := "admit"
	failAt.Store(&step)
	if _, err := nodeapi.Recover(ctx, c.Nodes[0].Config.ListenAddr, nodeapi.RecoverRequest{}); err == nil ||
		!strings.Contains(err.Error(), "injected failure before step admit") ||
		!strings.Contains(strings.Join(errors.GetAllHints(err), "\n"), "run `kvnode node recover` again") {
		t.Fatalf("interrupted recovery: %v", err)
	}
	failAt.Store(nil)
	res, err := nodeapi.Recover(ctx, c.Nodes[1].Config.ListenAddr, nodeapi.RecoverRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Plan, "under way") {
		t.Fatalf("the second run did not resume the first:\n%s", res.Plan)
	}
	c.WaitUp(1)
	if !res.Done || res.Seed != plan.Seed || !slices.Equal(res.Dead, ids(2, 3, 4)) {
		t.Fatalf("recovery: %+v", res)
	}
	t.Logf("result: %s", res.Result)
	c.Nodes = c.Nodes[:2]

	// Rows, reads, writes and DDL through both survivors.
	for i := 0; i < 2; i++ {
		if n, err := c.QueryInt(i, "SELECT count(*) FROM kv WHERE k < 100"); err != nil || n != 20 {
			t.Fatalf("node %d: %d rows after recovery (%v), want 20", i+1, n, err)
		}
	}
	for i := 0; i < 2; i++ {
		c.Exec(i, fmt.Sprintf("INSERT INTO kv VALUES (%d, 'after')", 200+i))
		c.Exec(i, fmt.Sprintf("CREATE TABLE t%d (k INT PRIMARY KEY)", i))
	}
	waitGroup0States(t, c, group0.UsePostRaft)
	checkSchemaEverywhere(t, c, []string{"kv", "t0", "t1"})
	st, err := nodeapi.GetNodeStatus(ctx, c.Nodes[0].Config.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.NodeID >= 3 && n.Membership != "decommissioned" {
			t.Fatalf("dead node %d is %s, want decommissioned", n.NodeID, n.Membership)
		}
	}

	// A new node joins both groups.
	j := c.AddNode()
	testcluster.WaitFor(t, 60*time.Second, func() error {
		if n, err := c.QueryInt(j, "SELECT count(*) FROM kv"); err != nil || n != 22 {
			return fmt.Errorf("new node: %d rows (%v)", n, err)
		}
		return nil
	})
	waitGroup0States(t, c, group0.UsePostRaft)
	waitGroup0Members(t, c, 3)
	c.Exec(j, "CREATE TABLE t2 (k INT PRIMARY KEY)")
	checkSchemaEverywhere(t, c, []string{"kv", "t0", "t1", "t2"})

	// Running it again finds nothing to recover.
	if _, err := nodeapi.Recover(ctx, c.Nodes[0].Config.ListenAddr, nodeapi.RecoverRequest{DryRun: true}); err == nil ||
		!strings.Contains(err.Error(), "has not lost its majority") {
		t.Fatalf("recover after recovery: %v", err)
	}
}
