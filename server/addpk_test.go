package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestAddPrimaryKeyKeepsConcurrentWrites runs ALTER TABLE ADD PRIMARY KEY on
// node 1 while every node writes to the table: inserts, updates and
// deletes planned before the rewrite and during it (while its hold is up,
// some of them against a descriptor from before the hold). Every write
// acknowledged to its client must be in the table afterwards, under its
// new key: none may land in the rows the rewrite abandons.
func TestAddPrimaryKeyKeepsConcurrentWrites(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE pk (k INT, v INT)")
	vals := make([]string, 300)
	for k := range vals {
		vals[k] = fmt.Sprintf("(%d, 0)", k+1)
	}
	c.Exec(0, "INSERT INTO pk VALUES "+strings.Join(vals, ", "))

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.AddPKHeld = func(ctx context.Context) {
		once.Do(func() { close(held) })
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	c.StartNode(0)
	c.WaitUp(0)
	// Every node has used the table, so each holds a descriptor from
	// before the hold when it starts.
	for i := range c.Nodes {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			_, err := c.QueryInt(i, "SELECT count(*) FROM pk")
			return err
		})
	}

	altered := make(chan error, 1)
	go func() { altered <- execErr(c, 0, "ALTER TABLE pk ADD PRIMARY KEY (k)") }()
	select {
	case <-held:
	case err := <-altered:
		t.Fatalf("ALTER ended before its hold: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ALTER did not reach its hold")
	}

	// Writers on every node, while the hold is up: each statement blocks
	// until the rewrite ends, then runs against the new layout.
	type write struct {
		q   string
		err error
	}
	var wg sync.WaitGroup
	writes := make([]write, 0, 12)
	for i := range c.Nodes {
		writes = append(writes,
			write{q: fmt.Sprintf("INSERT INTO pk VALUES (%d, %d)", 1000+i, i)},
			write{q: fmt.Sprintf("UPDATE pk SET v = %d WHERE k = %d", 100+i, 10+i)},
			write{q: fmt.Sprintf("DELETE FROM pk WHERE k = %d", 20+i)},
		)
	}
	for j := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writes[j].err = execErr(c, j/3, writes[j].q)
		}()
	}
	close(release)
	if err := <-altered; err != nil {
		t.Fatalf("ALTER TABLE ADD PRIMARY KEY: %v", err)
	}
	wg.Wait()
	for _, w := range writes {
		if w.err != nil {
			t.Errorf("%s: %v", w.q, w.err)
		}
	}
	// And writes after it, from every node.
	for i := range c.Nodes {
		c.Exec(i, fmt.Sprintf("INSERT INTO pk VALUES (%d, 7)", 2000+i))
	}

	for i := range c.Nodes {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			checks := []struct {
				q    string
				want int64
			}{
				{"SELECT count(*) FROM pk", 300 + 3 - 3 + 3},
				{"SELECT count(*) FROM pk WHERE k >= 1000 AND k < 1003", 3},
				{"SELECT count(*) FROM pk WHERE k >= 2000", 3},
				{"SELECT count(*) FROM pk WHERE k IN (10, 11, 12) AND v >= 100", 3},
				{"SELECT count(*) FROM pk WHERE k IN (20, 21, 22)", 0},
			}
			for _, ck := range checks {
				n, err := c.QueryInt(i, ck.q)
				if err != nil {
					return err
				}
				if n != ck.want {
					return fmt.Errorf("node %d: %s = %d, want %d", i+1, ck.q, n, ck.want)
				}
			}
			return nil
		})
	}
	if err := execErr(c, 1, "INSERT INTO pk VALUES (1000, 0)"); err == nil {
		t.Error("a duplicate of the new primary key was accepted")
	}
}

// TestAddPrimaryKeyCoordinatorStopsWhileHeld stops the node running ALTER
// TABLE ADD PRIMARY KEY while the table's writes are held. Once the hold
// expires, a writer on another node gives it up: its write succeeds, the
// table keeps its rows and its old key, and the statement can be run again.
func TestAddPrimaryKeyCoordinatorStopsWhileHeld(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE pk (k INT, v INT)")
	c.Exec(0, "INSERT INTO pk VALUES (1, 1), (2, 2), (3, 3)")
	held := make(chan struct{})
	var once sync.Once
	c.StopNode(0)
	c.Nodes[0].Config.Knobs.SchemaHoldTTL = 2 * time.Second
	c.Nodes[0].Config.Knobs.AddPKHeld = func(ctx context.Context) {
		once.Do(func() { close(held) })
		<-ctx.Done() // until the node stops
	}
	c.StartNode(0)
	c.WaitUp(0)
	altered := make(chan error, 1)
	go func() { altered <- execErr(c, 0, "ALTER TABLE pk ADD PRIMARY KEY (k)") }()
	select {
	case <-held:
	case err := <-altered:
		t.Fatalf("ALTER ended before its hold: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ALTER did not reach its hold")
	}
	c.StopNode(0)
	if err := <-altered; err == nil {
		t.Fatal("ALTER succeeded although its node stopped while it held the table")
	}
	c.Exec(1, "INSERT INTO pk VALUES (4, 4)")
	c.Exec(2, "UPDATE pk SET v = 20 WHERE k = 2")
	testcluster.WaitFor(t, 20*time.Second, func() error {
		for i := 1; i < 3; i++ {
			// sum of INT8 is a NUMERIC, as in PostgreSQL.
			n, err := queryString(t, c, i, "SELECT sum(v) FROM pk")
			if err != nil {
				return err
			}
			if n != "28" { // 1+20+3+4
				return fmt.Errorf("node %d: sum(v) = %s, want 28", i+1, n)
			}
		}
		return nil
	})
	// The old key (the hidden rowid) is still the key: duplicates of k
	// are fine until the statement runs again, and then refuse it.
	c.Exec(1, "INSERT INTO pk VALUES (4, 0)")
	if err := execErr(c, 2, "ALTER TABLE pk ADD PRIMARY KEY (k)"); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("ALTER over a duplicate key: %v, want 23505", err)
	}
	c.Exec(1, "DELETE FROM pk WHERE k = 4 AND v = 0")
	c.Exec(2, "ALTER TABLE pk ADD PRIMARY KEY (k)")
	if n, err := c.QueryInt(1, "SELECT v FROM pk WHERE k = 4"); err != nil || n != 4 {
		t.Fatalf("row 4 after ADD PRIMARY KEY: %d, %v", n, err)
	}
}
