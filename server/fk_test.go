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

// TestForeignKeysUnderConcurrency deletes parents on one node while other
// nodes insert children referencing them, for a few seconds. Each
// statement commits on its own (its own transaction); whatever wins, no
// child may be left without its parent. A statement's rows may reference
// each other, and an explicit transaction's parent and child commit
// together.
func TestForeignKeysUnderConcurrency(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE parent (id INT PRIMARY KEY)")
	c.Exec(0, "CREATE TABLE child (id INT PRIMARY KEY, pid INT NOT NULL REFERENCES parent)")
	vals := make([]string, 200)
	for i := range vals {
		vals[i] = fmt.Sprintf("(%d)", i)
	}
	c.Exec(0, "INSERT INTO parent VALUES "+strings.Join(vals, ", "))

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	wg.Add(1)
	go func() { // node 1 deletes parents
		defer wg.Done()
		conn := c.Conn(0)
		for p := 0; p < 200 && ctx.Err() == nil; p++ {
			_, err := conn.Exec(ctx, "DELETE FROM parent WHERE id = $1", p)
			switch {
			case err == nil:
				count("parent deleted")
			case strings.Contains(err.Error(), "23503"):
				count("parent kept: referenced")
			case ctx.Err() != nil:
			default:
				t.Errorf("deleting parent %d: %v", p, err)
			}
		}
	}()
	for n := 1; n < 3; n++ {
		wg.Add(1)
		go func() { // nodes 2 and 3 insert children
			defer wg.Done()
			conn := c.Conn(n)
			for i := 0; ctx.Err() == nil; i++ {
				id, p := n*1000000+i, (i*3+n)%200
				_, err := conn.Exec(ctx, "INSERT INTO child VALUES ($1, $2)", id, p)
				switch {
				case err == nil:
					count("child inserted")
				case strings.Contains(err.Error(), "23503"):
					count("child refused: no parent")
				case ctx.Err() != nil:
				default:
					t.Errorf("inserting child %d of %d: %v", id, p, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%v", counts)
	if counts["child inserted"] == 0 || counts["parent deleted"] == 0 {
		t.Fatalf("the workload did too little to test anything: %v", counts)
	}
	for n := range c.Nodes {
		orphans, err := c.QueryInt(n, "SELECT count(*) FROM child c WHERE NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.pid)")
		if err != nil || orphans != 0 {
			t.Fatalf("node %d: %d children without a parent (%v)", n+1, orphans, err)
		}
	}

	// One statement's rows may reference each other; a transaction's
	// parent and child commit together.
	c.Exec(1, "CREATE TABLE emp (id INT PRIMARY KEY, boss INT REFERENCES emp ON DELETE CASCADE)")
	c.Exec(1, "INSERT INTO emp VALUES (1, NULL), (2, 1), (3, 2)")
	conn := c.Conn(2)
	bg := context.Background()
	tx, err := conn.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"INSERT INTO parent VALUES (5000)", "INSERT INTO child VALUES (5000, 5000)"} {
		if _, err := tx.Exec(bg, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(bg); err != nil {
		t.Fatal(err)
	}
	c.Exec(0, "DELETE FROM emp WHERE id = 1")
	if n, err := c.QueryInt(0, "SELECT count(*) FROM emp"); err != nil || n != 0 {
		t.Fatalf("after deleting the top of a cascade: %d rows, %v", n, err)
	}
}
