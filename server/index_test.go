package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestCreateIndexOnlineUnderWrites builds an index on node 1 while every
// node inserts, updates and deletes rows of the table, before, during and
// after the backfill. Afterwards the index must hold exactly one entry per
// row with the row's value: a lookup through it (EXPLAIN says it is used)
// agrees with a full scan for every value, on every node.
func TestCreateIndexOnlineUnderWrites(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE ix (k INT PRIMARY KEY, v INT)")
	vals := make([]string, 2000)
	for k := range vals {
		vals[k] = fmt.Sprintf("(%d, %d)", k, k%50)
	}
	c.Exec(0, "INSERT INTO ix VALUES "+strings.Join(vals, ", "))

	writeOnly := make(chan struct{})
	var once sync.Once
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.IndexWriteOnly = func(ctx context.Context) {
		once.Do(func() { close(writeOnly) })
	}
	c.StartNode(0)
	c.WaitUp(0)

	// Writers on every node until the index is public.
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := c.Conn(n)
			ctx := context.Background()
			for i := 0; !stop.Load(); i++ {
				k := 2000 + n*100000 + i
				var err error
				switch i % 3 {
				case 0:
					_, err = conn.Exec(ctx, "INSERT INTO ix VALUES ($1, $2)", k, k%50)
				case 1:
					_, err = conn.Exec(ctx, "UPDATE ix SET v = v + 1 WHERE k = $1", (i*7+n)%2000)
				default:
					_, err = conn.Exec(ctx, "DELETE FROM ix WHERE k = $1", (i*13+n*5)%2000)
				}
				if err != nil {
					errs <- fmt.Errorf("node %d: %w", n+1, err)
					return
				}
			}
		}()
	}
	created := make(chan error, 1)
	go func() { created <- execErr(c, 0, "CREATE INDEX ix_v ON ix (v)") }()
	select {
	case <-writeOnly:
	case <-time.After(30 * time.Second):
		t.Fatal("CREATE INDEX did not reach write-only")
	}
	if err := <-created; err != nil {
		t.Fatalf("CREATE INDEX: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for n := range c.Nodes {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			conn := c.Conn(n)
			ctx := context.Background()
			var plan string
			rows, err := conn.Query(ctx, "EXPLAIN SELECT k FROM ix WHERE v = 7")
			if err != nil {
				return err
			}
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					return err
				}
				plan += line + "\n"
			}
			if !strings.Contains(plan, "index ix_v") {
				return fmt.Errorf("node %d does not use the index:\n%s", n+1, plan)
			}
			var total int64
			for v := 0; v < 120; v++ {
				var byIndex, byScan int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM ix WHERE v = $1", v).Scan(&byIndex); err != nil {
					return err
				}
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM ix WHERE v + 0 = $1", v).Scan(&byScan); err != nil {
					return err
				}
				if byIndex != byScan {
					return fmt.Errorf("node %d: v = %d: %d rows through the index, %d by a full scan", n+1, v, byIndex, byScan)
				}
				total += byScan
			}
			var rowsN int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM ix").Scan(&rowsN); err != nil {
				return err
			}
			if total != rowsN {
				return fmt.Errorf("node %d: %d rows, %d found by value", n+1, rowsN, total)
			}
			return nil
		})
	}
}

// TestCreateIndexResumesAfterCoordinatorStops stops the node running
// CREATE INDEX while the index is write-only: writes keep it up to date
// (a duplicate of the unique index is refused), SHOW JOBS lists the build,
// and once the build's lease expires the data group's leader takes it over
// and finishes it without anyone running the statement again. A unique
// index whose backfill meets a duplicate is taken out again.
func TestCreateIndexResumesAfterCoordinatorStops(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE ix (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "INSERT INTO ix VALUES (1, 10), (2, 20), (3, 30)")
	writeOnly := make(chan struct{})
	var once sync.Once
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.SchemaHoldTTL = 5 * time.Second
	c.Nodes[0].Config.Knobs.IndexWriteOnly = func(ctx context.Context) {
		once.Do(func() { close(writeOnly) })
		<-ctx.Done() // until the node stops
	}
	c.StartNode(0)
	c.WaitUp(0)
	created := make(chan error, 1)
	go func() { created <- execErr(c, 0, "CREATE UNIQUE INDEX ix_v ON ix (v)") }()
	select {
	case <-writeOnly:
	case <-time.After(30 * time.Second):
		t.Fatal("CREATE INDEX did not reach write-only")
	}
	c.StopNode(0)
	if err := <-created; err == nil {
		t.Fatal("CREATE INDEX succeeded although its node stopped")
	}
	// Write-only or public by now: maintained either way.
	c.Exec(1, "INSERT INTO ix VALUES (4, 40)")
	if err := execErr(c, 2, "INSERT INTO ix VALUES (5, 40)"); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("a duplicate of the write-only unique index: %v, want 23505", err)
	}
	// The leader finishes the build by itself.
	testcluster.WaitFor(t, 60*time.Second, func() error {
		if plan := explain(t, c, 1, "SELECT k FROM ix WHERE v = 40"); !strings.Contains(plan, "ix_v") {
			return fmt.Errorf("the index is not used yet:\n%s", plan)
		}
		return nil
	})
	if n, err := c.QueryInt(2, "SELECT k FROM ix WHERE v = 20"); err != nil || n != 2 {
		t.Fatalf("lookup through the index: %d, %v", n, err)
	}
	if jobs := schemaJobs(t, c, 1); len(jobs) != 0 {
		t.Fatalf("SHOW JOBS still lists index builds: %v", jobs)
	}
	c.Exec(2, "CREATE UNIQUE INDEX IF NOT EXISTS ix_v ON ix (v)")
	// A duplicate met by the backfill takes the index out.
	if err := execErr(c, 2, "DROP INDEX ix_v"); err != nil {
		t.Fatal(err)
	}
	c.Exec(1, "INSERT INTO ix VALUES (6, 60), (7, 60)")
	if err := execErr(c, 1, "CREATE UNIQUE INDEX ix_v2 ON ix (v, k)"); err != nil {
		t.Fatalf("a unique index without duplicates: %v", err)
	}
	if err := execErr(c, 2, "CREATE UNIQUE INDEX ix_v ON ix (v)"); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("CREATE UNIQUE INDEX over a duplicate: %v, want 23505", err)
	}
	c.Exec(1, "INSERT INTO ix VALUES (8, 60)")
}

// TestShowJobsListsIndexBuild: while an index is backfilled, SHOW JOBS
// lists its build with its coordinator.
func TestShowJobsListsIndexBuild(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.Exec(0, "CREATE TABLE ix (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "INSERT INTO ix VALUES (1, 10)")
	writeOnly, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.IndexWriteOnly = func(ctx context.Context) {
		once.Do(func() { close(writeOnly) })
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	c.StartNode(0)
	c.WaitUp(0)
	created := make(chan error, 1)
	go func() { created <- execErr(c, 0, "CREATE INDEX ix_v ON ix (v)") }()
	<-writeOnly
	jobs := schemaJobs(t, c, 0)
	if len(jobs) != 1 || !strings.Contains(jobs[0].desc, "CREATE INDEX ix_v ON ix (v)") || jobs[0].status != "running" || jobs[0].coord != 1 {
		t.Fatalf("SHOW JOBS: %+v", jobs)
	}
	close(release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
}

type schemaJob struct {
	desc, status string
	coord        int64
}

// schemaJobs returns SHOW JOBS's SCHEMA CHANGE rows on node.
func schemaJobs(t *testing.T, c *testcluster.Cluster, node int) []schemaJob {
	t.Helper()
	rows, err := c.Conn(node).Query(context.Background(), "SHOW JOBS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []schemaJob
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if v[1] == "SCHEMA CHANGE" {
			out = append(out, schemaJob{desc: v[2].(string), status: v[3].(string), coord: v[5].(int64)})
		}
	}
	return out
}

func explain(t *testing.T, c *testcluster.Cluster, node int, q string) string {
	t.Helper()
	conn := c.Conn(node)
	rows, err := conn.Query(context.Background(), "EXPLAIN "+q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan += line + "\n"
	}
	return plan
}
