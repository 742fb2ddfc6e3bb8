package server_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestDDLTxnVisibleEverywhereAfterCommit: once COMMIT of a transaction
// that created a table has answered, every node sees the table with the
// transaction's version row. Review finding F14 (open): the only thing
// that brings the intent to the other nodes' catalogs before the decision
// is the gateway's bounded wait for group 0's live members; a node that
// has not applied the intent answers 42P01 for the table while its
// version row is there (seen once under load with the wait in place,
// every few commits here without it).
func TestDDLTxnVisibleEverywhereAfterCommit(t *testing.T) {
	if os.Getenv("KVNODE_REVIEW_OPEN") == "" {
		t.Skip("review finding F14, open: set KVNODE_REVIEW_OPEN=1 (it fails on main)")
	}
	c := testcluster.Start(t, 3, testcluster.Options{})
	{
		// The gateway's DDL does not wait for the other members, as when
		// they are slower than Group0PropagationWait (5 s), or not live
		// by gossip while they still serve SQL.
		c.StopNode(0)
		c.Nodes[0].Config.Group0PropagationWait = time.Nanosecond
		c.StartNode(0)
		c.WaitUp(0)
	}
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")
	for node := 1; node < 3; node++ {
		for deadline := time.Now().Add(20 * time.Second); ; {
			if _, err := c.QueryInt(node, "SELECT count(*) FROM versions"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	conn := c.Conn(0)
	bad := 0
	for i := 0; i < 30; i++ {
		table := fmt.Sprintf("lag%d", i)
		for _, s := range []string{"BEGIN", "CREATE TABLE " + table + " (k INT PRIMARY KEY)",
			"INSERT INTO " + table + " VALUES (1)", "INSERT INTO versions VALUES ('" + table + "')", "COMMIT"} {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		for node := 2; node >= 1; node-- {
			var v, n int
			if err := c.Conn(node).QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = $1", table).Scan(&v); err != nil {
				t.Fatal(err)
			}
			err := c.Conn(node).QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
			if v != 1 || err != nil || n != 1 {
				bad++
				t.Errorf("node %d after COMMIT of %s: version rows %d, table %d rows, %v", node+1, table, v, n, err)
			}
		}
	}
	t.Logf("%d of 60 reads saw half", bad)
}
