package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/rowenc"
)

func rel(s string) clusterversion.Version {
	v, err := clusterversion.Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func queryString(t *testing.T, c *testcluster.Cluster, node int, q string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(node))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var s string
	err = conn.QueryRow(ctx, q).Scan(&s)
	return s, err
}

func execErr(c *testcluster.Cluster, node int, q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(node))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, q)
	return err
}

func waitVersion(t *testing.T, c *testcluster.Cluster, want string) {
	t.Helper()
	testcluster.WaitFor(t, 60*time.Second, func() error {
		for i, nd := range c.Nodes {
			if nd.Server == nil {
				continue
			}
			v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version")
			if err != nil || v != want {
				return fmt.Errorf("node %d: version %q %v, want %s", i+1, v, err, want)
			}
		}
		return nil
	})
}

// rowEncodings counts the encodings of every stored row, as node i holds them.
func rowEncodings(t *testing.T, c *testcluster.Cluster, i int) map[byte]int {
	t.Helper()
	lo, hi := rowenc.AllTablesSpan()
	kvs, err := c.Nodes[i].Server.Replica().ScanLocal(lo, hi, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[byte]int{}
	for _, e := range kvs {
		out[rowenc.ValueEncoding(e.Value)]++
	}
	return out
}

// startAt10 starts three nodes as release 1.0 with a table of n rows.
func startAt10(t *testing.T, n int, knobs server.Knobs) *testcluster.Cluster {
	knobs.BinaryVersion = rel("1.0")
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobs})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	for i := 1; i < 3; i++ {
		waitCount(t, c, i, "kv", 0)
	}
	for k := 0; k < n; k += 100 {
		var vals []string
		for j := k; j < k+100 && j < n; j++ {
			vals = append(vals, fmt.Sprintf("(%d, 'v%d')", j, j))
		}
		c.Exec(k/100%3, "INSERT INTO kv VALUES "+strings.Join(vals, ", "))
	}
	return c
}

// upgradeBinary restarts node i as release r.
func upgradeBinary(c *testcluster.Cluster, i int, r string) {
	c.StopNode(i)
	c.Nodes[i].Config.Knobs.BinaryVersion = rel(r)
	c.StartNode(i)
	c.WaitUp(i)
}

// TestClusterVersionUpgrade: a rolling upgrade 1.0 -> 1.1 finalizes by
// itself once the last node runs 1.1, and not before; the 1.1 migration
// rewrites every row to encoding v2, exactly once; every node persists
// the new version.
func TestClusterVersionUpgrade(t *testing.T) {
	c := startAt10(t, 300, server.Knobs{MigrationBatchSize: 40})
	// Node 1's own replica may not have applied the last batch yet (the
	// rows were written through every node): wait for it.
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if enc := rowEncodings(t, c, 0); enc[rowenc.EncodingV1] != 300 {
			return fmt.Errorf("rows written at 1.0: %v, want 300 in v1", enc)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		upgradeBinary(c, i, "1.1")
		c.Exec(i, fmt.Sprintf("UPSERT INTO kv VALUES (%d, 'during')", 1000+i))
		if i < 2 {
			if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "1.0" {
				t.Fatalf("finalized with node %d still on 1.0: %q %v", 3, v, err)
			}
			st, err := c.Nodes[0].Server.UpgradeStatus(context.Background())
			if err != nil || len(st.Blockers) == 0 || st.Blockers[0].Kind != "mixed_binary_versions" {
				t.Fatalf("upgrade status mid-roll: %+v %v", st, err)
			}
		}
	}
	waitVersion(t, c, "1.1")
	for i, nd := range c.Nodes {
		if v := nd.Server.ActiveVersion(); v != rel("1.1") {
			t.Errorf("node %d acts on %s, want 1.1", i+1, v)
		}
		if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV2] != 303 || len(enc) != 1 {
			t.Errorf("node %d row encodings after 1.1: %v, want 303 in v2", i+1, enc)
		}
	}
	jobs, err := migrations.List(context.Background(), c.Nodes[0].Server.Replica())
	if err != nil || len(jobs) != 1 || jobs[0].Status != migrations.StatusSucceeded || jobs[0].Attempts != 1 {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}
	// New rows are v2 from now on.
	c.Exec(1, "INSERT INTO kv VALUES (5000, 'new')")
	if enc := rowEncodings(t, c, 2); enc[rowenc.EncodingV1] != 0 {
		t.Fatalf("a v1 row appeared after finalization: %v", enc)
	}
}

// TestConcurrentSetClusterVersion: several clients finalize at once through
// different nodes; all succeed and the migration runs once.
func TestConcurrentSetClusterVersion(t *testing.T) {
	c := startAt10(t, 200, server.Knobs{MigrationBatchSize: 20})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	for i := 0; i < 3; i++ {
		upgradeBinary(c, i, "1.1")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			errs <- execErr(c, w%3, "SET CLUSTER SETTING version = '1.1'")
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent SET CLUSTER SETTING version: %v", err)
		}
	}
	waitVersion(t, c, "1.1")
	jobs, err := migrations.List(context.Background(), c.Nodes[0].Server.Replica())
	if err != nil || len(jobs) != 1 || jobs[0].Status != migrations.StatusSucceeded || jobs[0].Attempts != 1 {
		t.Fatalf("jobs: %+v %v (the migration must run exactly once)", jobs, err)
	}
}

// TestFinalizationFailsAtEveryStepAndResumes makes the coordinator fail
// once just before each ladder step of 1.0 -> 1.1; the auto-upgrade loop
// retries and completes, and the migration still runs once.
func TestFinalizationFailsAtEveryStepAndResumes(t *testing.T) {
	var mu sync.Mutex
	failed := map[clusterversion.Version]bool{}
	hook := func(step clusterversion.Version) error {
		mu.Lock()
		defer mu.Unlock()
		if !failed[step] {
			failed[step] = true
			return errors.Newf("injected failure before step %s", step)
		}
		return nil
	}
	c := startAt10(t, 100, server.Knobs{BeforeVersionStep: hook})
	for i := 0; i < 3; i++ {
		upgradeBinary(c, i, "1.1")
	}
	waitVersion(t, c, "1.1")
	mu.Lock()
	defer mu.Unlock()
	for _, s := range []string{"1.1-step.1", "1.1-step.2", "1.1"} {
		if !failed[rel(s)] {
			t.Errorf("no failure was injected at %s", s)
		}
	}
	jobs, _ := migrations.List(context.Background(), c.Nodes[0].Server.Replica())
	if len(jobs) != 1 || jobs[0].Status != migrations.StatusSucceeded {
		t.Fatalf("jobs: %+v", jobs)
	}
}

// TestCoordinatorStopsMidMigration stops the node running the 1.1
// migration in the middle; another node resumes the job from its
// checkpoint once the lease lapses.
func TestCoordinatorStopsMidMigration(t *testing.T) {
	// The migration's coordinator pauses (a named pause point) once it has
	// done some rows, until the test stops its node. The coordinator is
	// whoever takes the job: the node the SET went through, or the leader's
	// auto-upgrade loop, which completes a finalization that has begun
	// whatever the opt-outs say (issue 16, D6).
	var coordID atomic.Int32
	var announced atomic.Bool
	paused := make(chan struct{})
	hook := func(ctx context.Context, nodeID nodeid.ID, done int64) error {
		if done < 100 || !(coordID.CompareAndSwap(0, int32(nodeID)) || coordID.Load() == int32(nodeID)) {
			return nil
		}
		if announced.CompareAndSwap(false, true) {
			close(paused)
		}
		<-ctx.Done() // held here until the node stops
		return ctx.Err()
	}
	c := startAt10(t, 1000, server.Knobs{MigrationBatchSize: 10, MigrationLease: time.Second, MigrationCheckpoint: hook})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	for i := 0; i < 3; i++ {
		upgradeBinary(c, i, "1.1")
	}
	done := make(chan error, 1)
	go func() { done <- execErr(c, 0, "SET CLUSTER SETTING version = '1.1'") }()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("finalization ended before the pause point: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the migration never reached the pause point")
	}
	coord := -1
	for i, nd := range c.Nodes {
		if nd.Server.NodeID() == nodeid.ID(coordID.Load()) {
			coord = i
		}
	}
	other := (coord + 1) % len(c.Nodes)
	c.StopNode(coord)
	if coord == 0 {
		<-done // the client saw its connection close, or an error
	}
	jobs, _ := migrations.List(context.Background(), c.Nodes[other].Server.Replica())
	if jobs[0].Status != migrations.StatusRunning || jobs[0].Progress.Done == 0 {
		t.Fatalf("job after its coordinator stopped: %+v", jobs[0])
	}
	stoppedAt := jobs[0].Progress.Done
	// The stopped node must come back (a dead node blocks finalization);
	// the finalization is resumed through another node.
	c.StartNode(coord)
	c.WaitUp(coord)
	if err := execErr(c, other, "SET CLUSTER SETTING version = '1.1'"); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, c, "1.1")
	jobs, _ = migrations.List(context.Background(), c.Nodes[other].Server.Replica())
	j := jobs[0]
	if j.Status != migrations.StatusSucceeded || j.Attempts < 2 || j.Coordinator == nodeid.ID(coordID.Load()) || j.Progress.Done != 1000 {
		t.Fatalf("job after the takeover: %+v (stopped at %d rows)", j, stoppedAt)
	}
	for i := range c.Nodes {
		if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV1] != 0 {
			t.Fatalf("node %d still has v1 rows: %v", i+1, enc)
		}
	}
}

// TestDeadNodeBlocksUntilDecommissioned follows the RFC's test plan: with a
// node down, finalization waits and names it; once the node is
// decommissioned, the cluster finalizes.
func TestDeadNodeBlocksUntilDecommissioned(t *testing.T) {
	c := startAt10(t, 50, server.Knobs{})
	upgradeBinary(c, 0, "1.1")
	upgradeBinary(c, 1, "1.1")
	deadID := c.Nodes[2].Server.NodeID()
	c.StopNode(2)
	testcluster.WaitFor(t, 30*time.Second, func() error {
		st, err := c.Nodes[0].Server.UpgradeStatus(context.Background())
		if err != nil {
			return err
		}
		for _, b := range st.Blockers {
			if b.NodeID == deadID && strings.Contains(b.Fix, fmt.Sprintf("kvnode node decommission %d", deadID)) {
				return nil
			}
		}
		return fmt.Errorf("blockers %+v do not name dead node %d", st.Blockers, deadID)
	})
	err := execErr(c, 0, "SET CLUSTER SETTING version = '1.1'")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("node %d", deadID)) {
		t.Fatalf("manual finalization with a dead node: %v", err)
	}
	if v, _ := queryString(t, c, 0, "SHOW CLUSTER SETTING version"); v != "1.0" {
		t.Fatalf("finalized with a dead node: %s", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[0].Config.ListenAddr, []nodeid.ID{deadID}, true, nil); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, c, "1.1")
}

// TestPartlyPersistedStepIsCompleted: a node dies after the coordinator
// read the node list and before the step reached it, so the step is
// persisted on some nodes but not recorded in the replicated version. Once
// the dead node is decommissioned, the finalization must redo that step
// (persist everywhere, record it) rather than take the coordinator's own
// persisted version as done: SHOW CLUSTER SETTING version must reach the
// release. (Found by the console's browser test: the page said 1.1 while
// every node had persisted 2.0.)
func TestPartlyPersistedStepIsCompleted(t *testing.T) {
	c := startAt10(t, 20, server.Knobs{})
	c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0'")
	var armed atomic.Bool
	armed.Store(true)
	stopped := make(chan [2]nodeid.ID, 1) // index and node ID of the node stopped
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("1.1")
		c.Nodes[i].Config.Knobs.BeforeVersionStep = func(step clusterversion.Version) error {
			if step != rel("1.1") || !armed.CompareAndSwap(true, false) {
				return nil
			}
			// The coordinator (node i) stops another node, after it read
			// the node list for this step.
			v := (i + 1) % len(c.Nodes)
			id := c.Nodes[v].Server.NodeID()
			c.StopNode(v)
			stopped <- [2]nodeid.ID{nodeid.ID(v), id}
			return nil
		}
		c.StartNode(i)
		c.WaitUp(i)
	}
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	var victim [2]nodeid.ID
	select {
	case victim = <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("the finalization did not reach step 1.1")
	}
	up := (int(victim[0]) + 1) % len(c.Nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[up].Config.ListenAddr, []nodeid.ID{victim[1]}, true, nil); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 60*time.Second, func() error {
		for i, nd := range c.Nodes {
			if i == int(victim[0]) {
				continue
			}
			if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "1.1" {
				return fmt.Errorf("node %d: version %q %v", i+1, v, err)
			}
			if v := nd.Server.ActiveVersion().String(); v != "1.1" {
				return fmt.Errorf("node %d persisted %s", i+1, v)
			}
		}
		return nil
	})
}
