package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/catalog"
)

// pauseBefore returns a Group0Hook factory that blocks the coordinator
// before every action of step until release is closed, and a channel that
// is closed the first time a coordinator reaches it.
func pauseBefore(step group0.Step, release <-chan struct{}) (func(int) func(context.Context, group0.Action) error, <-chan struct{}) {
	paused := make(chan struct{})
	var once sync.Once
	return func(int) func(context.Context, group0.Action) error {
		return func(ctx context.Context, a group0.Action) error {
			if a.Step != step {
				return nil
			}
			once.Do(func() { close(paused) })
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}, paused
}

// TestGroup0JoinerDuringProcedureSeesCurrentSchema (issue 16, D7): a fresh
// node that joins while the group 0 procedure is under way (paused before
// synchronize, with the other nodes still on the pre-Raft procedures) must
// serve the schema as it is, not group 0's copy from the join step: a table
// created meanwhile is there, and a table dropped meanwhile is gone, so a
// write to it is refused rather than acknowledged and lost. Pre-Raft
// changes made after it joined reach it too, and the procedure then
// finishes with it.
func TestGroup0JoinerDuringProcedureSeesCurrentSchema(t *testing.T) {
	c := startAt11(t, server.Knobs{})
	release := make(chan struct{})
	hook, paused := pauseBefore(group0.StepSynchronize, release)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	rollTo20(t, c, hook)
	select {
	case <-paused:
	case <-time.After(90 * time.Second):
		t.Fatal("the group 0 procedure did not reach synchronize")
	}
	waitGroup0Members(t, c, 3)
	c.Exec(1, "CREATE TABLE late (k INT PRIMARY KEY)")
	c.Exec(1, "DROP TABLE other")
	n4 := c.AddNodeWith(func(cfg *server.Config) {
		cfg.Knobs.BinaryVersion = rel("2.0")
		cfg.Knobs.Group0Hook = hook(3)
	})
	if st, err := group0StateOf(t, c, n4); err != nil || st != string(group0.Synchronize) {
		t.Fatalf("the joiner's group 0 state: %q %v, want synchronize", st, err)
	}
	if err := execErr(c, n4, "INSERT INTO late VALUES (1)"); err != nil {
		t.Fatalf("a write to a table created before the node joined: %v", err)
	}
	if err := execErr(c, n4, "INSERT INTO other VALUES (1)"); pgCode(err) != "42P01" {
		t.Fatalf("a write to a table dropped before the node joined: %v, want 42P01", err)
	}
	// A pre-Raft change made after it joined reaches it as well.
	c.Exec(0, "CREATE TABLE later (k INT PRIMARY KEY)")
	waitCount(t, c, n4, "later", 0)
	c.Exec(2, "DROP TABLE later")
	waitNoTable(t, c, n4, "later")

	close(release)
	waitVersion(t, c, "2.0")
	waitGroup0States(t, c, group0.UsePostRaft)
	checkSchemaEverywhere(t, c, []string{"kv", "late"})
	if n, err := c.QueryInt(0, "SELECT count(*) FROM late"); err != nil || n != 1 {
		t.Fatalf("the row written through the joiner: count %d %v", n, err)
	}
}

// waitNoTable waits until a read of table through node i fails with 42P01.
func waitNoTable(t *testing.T, c *testcluster.Cluster, i int, table string) {
	t.Helper()
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if _, err := c.QueryInt(i, "SELECT count(*) FROM "+table); pgCode(err) != "42P01" {
			return fmt.Errorf("node %d still has table %s: %v", i+1, table, err)
		}
		return nil
	})
}

// TestJoinerDuringLastFinalizationStepCatchesUp (issue 16, D1): a node
// that joins after the coordinator read the node list for the last step
// of a finalization (here 2.0, after the group 0 procedure) gets the
// in-between version of its join. It must still end at the cluster's
// version, leave synchronize for use_post_raft_procedures, run DDL, and
// keep all that across a restart.
func TestJoinerDuringLastFinalizationStepCatchesUp(t *testing.T) {
	c := startAt11(t, server.Knobs{})
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("2.0")
		c.Nodes[i].Config.Knobs.BeforeVersionStep = func(step clusterversion.Version) error {
			if step != rel("2.0") {
				return nil
			}
			once.Do(func() { close(reached) })
			<-release
			return nil
		}
		startNode(t, c, i)
	}
	select {
	case <-reached:
	case <-time.After(120 * time.Second):
		t.Fatal("the finalization did not reach step 2.0")
	}
	n4 := c.AddNodeWith(func(cfg *server.Config) { cfg.Knobs.BinaryVersion = rel("2.0") })
	if v := c.Nodes[n4].Server.ActiveVersion().String(); v != "2.0-step.1" {
		t.Fatalf("the joiner's version at join: %s, want 2.0-step.1", v)
	}
	close(release)
	waitVersion(t, c, "2.0")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if v := c.Nodes[n4].Server.ActiveVersion().String(); v != "2.0" {
			return fmt.Errorf("the joiner persisted %s, want 2.0", v)
		}
		return nil
	})
	waitGroup0States(t, c, group0.UsePostRaft)
	c.Exec(n4, "CREATE TABLE after_join (k INT PRIMARY KEY)")
	waitCount(t, c, 0, "after_join", 0)
	restartNode(t, c, n4)
	if v := c.Nodes[n4].Server.ActiveVersion().String(); v != "2.0" {
		t.Fatalf("the joiner after a restart: %s", v)
	}
	c.Exec(n4, "DROP TABLE after_join")
	waitNoTable(t, c, 0, "after_join")
}

// TestGroup0SchemaSyncConvergesUnderDDL (issue 16, D10): while the
// upgrade's schema sync compares the nodes' catalogs with group 0, schema
// changes keep committing to group 0 (as DDL through a node already in
// use_post_raft_procedures does). The sync must still converge: each node
// is compared with group 0's state as it holds it, not with the merge the
// attempt started from.
func TestGroup0SchemaSyncConvergesUnderDDL(t *testing.T) {
	c := startAt11(t, server.Knobs{})
	var commits atomic.Int64
	var done atomic.Bool
	defer done.Store(true)
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("2.0")
		c.Nodes[i].Config.Knobs.Group0BeforeSchemaCheck = func(ctx context.Context) {
			// Every attempt sees group 0 move on, for as long as the
			// test waits for the upgrade.
			if !done.Load() {
				commitTable(t, c, fmt.Sprintf("moving_%d", commits.Add(1)))
			}
		}
		startNode(t, c, i)
	}
	waitVersion(t, c, "2.0")
	done.Store(true)
	waitGroup0States(t, c, group0.UsePostRaft)
	if commits.Load() == 0 {
		t.Fatal("the schema check was never reached")
	}
	checkSchemaEverywhere(t, c, []string{"kv", "other"})
}

// commitTable commits the tombstone of a table called name straight to
// group 0, through any node's replica, as a post-Raft DDL commits its
// descriptor (a tombstone: no rows can alias another table's).
func commitTable(t *testing.T, c *testcluster.Cluster, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for attempt := 0; attempt < 20; attempt++ {
		for _, nd := range c.Nodes {
			rep := nd.Server.Group0().Replica()
			if rep == nil {
				continue
			}
			snap, err := group0.Read(ctx, rep)
			if err != nil {
				continue
			}
			var d catalog.TableDescriptor
			if err := json.Unmarshal(snap.Tables["kv"], &d); err != nil {
				t.Errorf("group 0's descriptor of kv: %v", err)
				return
			}
			d.Name, d.Dropped = name, true
			b, _ := json.Marshal(d)
			ch := group0.Change{ID: fmt.Sprintf("test-%s", name), Tables: map[string][]byte{name: b},
				NodeID: nd.Server.NodeID(), Time: time.Now(), Description: "test: DROP TABLE " + name}
			if _, err := group0.Commit(ctx, rep, snap.StateID, ch); err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("could not commit %s to group 0", name)
}
