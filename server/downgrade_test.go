package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestDowngrade21To20AndUpAgain downgrades a three-node 2.1 cluster that
// uses transactions to 2.0 with SET CLUSTER SETTING version = '2.0', while a
// session holds an open transaction and others write: the transaction is
// ended at its next statement, BEGIN is refused afterwards, no node keeps a
// 2.1 command in its Raft log or a transaction record, the preserve option
// holds the cluster at 2.0, and a node restarted as a 2.0 binary (which
// stops at any 2.1 entry) follows the writes. RESET of the option then
// upgrades the cluster again, and transactions work again.
func TestDowngrade21To20AndUpAgain(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 1), (2, 2)")
	for i := 0; i < 5; i++ {
		c.Exec(1, "BEGIN; UPDATE kv SET v = v + 1 WHERE k = 1; UPDATE kv SET v = v - 1 WHERE k = 2; COMMIT")
	}
	open := c.Conn(2)
	if _, err := open.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Exec(ctx, "UPDATE kv SET v = 100 WHERE k = 1"); err != nil {
		t.Fatal(err)
	}

	// Refused targets change nothing.
	for _, bad := range []struct{ sql, code string }{
		{"SET CLUSTER SETTING version = '1.1'", "0A000"},
		{"SET CLUSTER SETTING version = '1.0'", "0A000"},
	} {
		_, err := c.Conn(0).Exec(ctx, bad.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != bad.code || !strings.Contains(pe.Hint, "version = '2.0'") {
			t.Fatalf("%s: %v, want %s with a hint naming 2.0", bad.sql, err, bad.code)
		}
	}

	if _, err := c.Conn(0).Exec(ctx, "SET CLUSTER SETTING version = '2.0'"); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "2.0" {
			t.Fatalf("node %d: version %q %v", i+1, v, err)
		}
		if v := c.Nodes[i].Server.ActiveVersion().String(); v != "2.0" {
			t.Fatalf("node %d persisted %s", i+1, v)
		}
	}
	if v, err := queryString(t, c, 0, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil || v != "2.0" {
		t.Fatalf("preserve option %q %v", v, err)
	}
	// The open transaction was ended; nothing of it applied.
	if _, err := open.Exec(ctx, "UPDATE kv SET v = 101 WHERE k = 1"); sqlState(err) != "0A000" {
		t.Fatalf("a statement of a transaction opened before the downgrade: %v", err)
	}
	if _, err := open.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn(1).Exec(ctx, "BEGIN"); sqlState(err) != "0A000" {
		t.Fatalf("BEGIN at 2.0: %v", err)
	}
	if n, err := c.QueryInt(0, "SELECT v FROM kv WHERE k = 1"); err != nil || n != 6 {
		t.Fatalf("k=1 holds %d (%v), want 6", n, err)
	}
	for i, nd := range c.Nodes {
		rep := nd.Server.Replica()
		if idx, err := rep.TxnCommandsInLog(ctx); err != nil || idx != 0 {
			t.Fatalf("node %d keeps a 2.1 entry at %d (%v)", i+1, idx, err)
		}
		if left, err := rep.TxnRecordsLeft(); err != nil || left {
			t.Fatalf("node %d keeps transaction records (%v)", i+1, err)
		}
	}

	// A 2.0 binary on node 3's store: it would stop at any 2.1 entry.
	c.StopNode(2)
	c.Nodes[2].Config.Knobs.BinaryVersion = rel("2.0")
	c.StartNode(2)
	c.WaitUp(2)
	for i := 0; i < 20; i++ {
		c.Exec(i%3, "UPSERT INTO kv VALUES ($1, $2)", 10+i, i)
	}
	testcluster.WaitFor(t, 20*time.Second, func() error {
		n, err := c.QueryInt(2, "SELECT count(*) FROM kv")
		if err != nil || n != 22 {
			return errors.Newf("node 3 (2.0) counts %d rows (%v)", n, err)
		}
		return c.Nodes[2].Server.Failed()
	})

	// Back to the 2.1 binary, RESET: the cluster upgrades again, and the
	// 2.1 migration runs again.
	c.StopNode(2)
	c.Nodes[2].Config.Knobs.BinaryVersion = rel("2.1")
	c.StartNode(2)
	c.WaitUp(2)
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	testcluster.WaitFor(t, 60*time.Second, func() error {
		v, err := queryString(t, c, 0, "SHOW CLUSTER SETTING version")
		if err != nil || v != "2.1" {
			return errors.Newf("version %q (%v)", v, err)
		}
		return nil
	})
	testcluster.WaitFor(t, 20*time.Second, func() error {
		_, err := c.Conn(1).Exec(ctx, "BEGIN; UPDATE kv SET v = v + 1 WHERE k = 1; COMMIT")
		return err
	})
	if n, err := c.QueryInt(0, "SELECT v FROM kv WHERE k = 1"); err != nil || n != 7 {
		t.Fatalf("k=1 holds %d (%v), want 7", n, err)
	}
}
