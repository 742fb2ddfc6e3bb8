package server_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql"
)

// TestDDLTxnRenameOntoPending: a table committed by a transaction whose
// gateway stopped before the publish is a table (readers see it, CREATE
// TABLE of its name is 42P07); ALTER TABLE ... RENAME TO its name must be
// 42P07 too, not replace the pending record (which loses the committed
// table and leaves its rows unreachable). Review finding F11.
func TestDDLTxnRenameOntoPending(t *testing.T) {
	var stopAt atomic.Value
	stopAt.Store(sql.DDLTxnStep(""))
	knobs := knobsDDLTxn(&stopAt)
	knobs.ResolverInterval = -1
	// atIntent, when set, runs between the intent and the decision.
	var atIntent atomic.Value
	atIntent.Store(func() {})
	stop := knobs.DDLTxnStep
	knobs.DDLTxnStep = func(step sql.DDLTxnStep) error {
		if step == sql.StepIntent {
			atIntent.Load().(func())()
		}
		return stop(step)
	}
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobs})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")
	c.Exec(1, "CREATE TABLE other (a TEXT PRIMARY KEY)")
	stopAt.Store(sql.StepDecision)
	conn := c.Conn(0)
	for _, s := range []string{"BEGIN", "CREATE TABLE decided (k INT PRIMARY KEY)",
		"INSERT INTO decided VALUES (1), (2)", "INSERT INTO versions VALUES ('decided')", "COMMIT"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	stopAt.Store(sql.DDLTxnStep(""))
	var n int
	if err := c.Conn(1).QueryRow(ctx, "SELECT count(*) FROM decided").Scan(&n); err != nil || n != 2 {
		t.Fatalf("the committed pending table: %d %v", n, err)
	}
	if _, err := c.Conn(1).Exec(ctx, "ALTER TABLE other RENAME TO decided"); sqlState(err) != "42P07" {
		t.Errorf("ALTER TABLE other RENAME TO a committed pending table's name: %v (want 42P07)", err)
	}
	for node := 0; node < 3; node++ {
		if err := c.Conn(node).QueryRow(ctx, "SELECT count(*) FROM decided").Scan(&n); err != nil || n != 2 {
			t.Errorf("node %d: the committed table after the rename: %d rows, %v (want 2)", node+1, n, err)
		}
	}

	// Without a stop: a rename onto the name of a transaction's table
	// between its intent and its decision. Either the rename loses (42P07
	// or 40001) and the transaction's table is there with its rows, or the
	// rename wins and COMMIT fails; never both succeeding.
	var renameErr error
	atIntent.Store(func() {
		_, renameErr = c.Conn(1).Exec(ctx, "ALTER TABLE other2 RENAME TO racing")
	})
	c.Exec(1, "CREATE TABLE other2 (a TEXT PRIMARY KEY)")
	for _, s := range []string{"BEGIN", "CREATE TABLE racing (k INT PRIMARY KEY)",
		"INSERT INTO racing VALUES (1), (2)", "INSERT INTO versions VALUES ('racing')"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	start := time.Now()
	_, commitErr := conn.Exec(ctx, "COMMIT")
	atIntent.Store(func() {})
	t.Logf("rename: %v; COMMIT: %v (%s)", renameErr, commitErr, time.Since(start))
	if renameErr == nil && commitErr == nil {
		t.Errorf("both the rename onto the transaction's table name and its COMMIT succeeded")
	}
	var v int
	if err := c.Conn(2).QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = 'racing'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	err := c.Conn(2).QueryRow(ctx, "SELECT count(*) FROM racing").Scan(&n)
	if commitErr == nil && (err != nil || n != 2 || v != 1) || commitErr != nil && v != 0 {
		t.Errorf("after COMMIT (%v): racing has %d rows (%v), version rows %d", commitErr, n, err, v)
	}
}

// TestDDLTxnDropDatabaseMeanwhile: a transaction creates a table in
// database app while another session drops app. Either its COMMIT fails,
// or the table goes with the database; never a table of a dropped database
// that comes back, with its rows, when a database of the same name is
// created again. Review finding F12.
func TestDDLTxnDropDatabaseMeanwhile(t *testing.T) {
	var stopAt atomic.Value
	stopAt.Store(sql.DDLTxnStep(""))
	knobs := knobsDDLTxn(&stopAt)
	var atIntent atomic.Value
	atIntent.Store(func() {})
	stop := knobs.DDLTxnStep
	knobs.DDLTxnStep = func(step sql.DDLTxnStep) error {
		if step == sql.StepIntent {
			atIntent.Load().(func())()
		}
		return stop(step)
	}
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobs})
	ctx := txnCtx(t)
	appURL := func(i int) string { return strings.Replace(c.URL(i), "/defaultdb?", "/app?", 1) }
	for _, tc := range []struct {
		name string
		stop sql.DDLTxnStep // "": the drop comes before COMMIT
	}{{"before-commit", ""}, {"after-intent", "intent-hook"}, {"after-decision", sql.StepDecision}} {
		t.Run(tc.name, func(t *testing.T) {
			c.Exec(0, "CREATE DATABASE app")
			conn, err := pgx.Connect(ctx, appURL(0))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close(ctx) }()
			for _, s := range []string{"BEGIN", "CREATE TABLE t (k INT PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)"} {
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			var commitErr error
			switch tc.stop {
			case "":
				c.Exec(1, "DROP DATABASE app CASCADE")
				_, commitErr = conn.Exec(ctx, "COMMIT")
			case "intent-hook":
				atIntent.Store(func() { c.Exec(1, "DROP DATABASE app CASCADE") })
				_, commitErr = conn.Exec(ctx, "COMMIT")
				atIntent.Store(func() {})
			default:
				stopAt.Store(tc.stop)
				_, commitErr = conn.Exec(ctx, "COMMIT")
				stopAt.Store(sql.DDLTxnStep(""))
				c.Exec(1, "DROP DATABASE app CASCADE")
			}
			t.Logf("COMMIT: %v", commitErr)
			// Let the resolver publish or drop what is pending.
			deadline := time.Now().Add(20 * time.Second)
			for len(c.Nodes[2].Server.PendingTables()) > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			c.Exec(1, "CREATE DATABASE app")
			again, err := pgx.Connect(ctx, appURL(2))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = again.Close(ctx) }()
			var n int
			if err := again.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); sqlState(err) != "42P01" {
				t.Errorf("the new database app has the dropped database's table t: %d rows, %v (want 42P01)", n, err)
			}
			c.Exec(1, "DROP DATABASE app CASCADE")
		})
	}
}

// TestDDLTxnForeignKeysOfNewTables: a foreign key between two tables a
// transaction created holds for the parent's deletes inside the
// transaction (RESTRICT: 23503; CASCADE: the children go) and, once
// committed but not yet published, for another session's deletes. The
// parent side looked the child up in the public catalog only, found
// nothing, and let the delete through: orphans committed. Review finding
// F13.
func TestDDLTxnForeignKeysOfNewTables(t *testing.T) {
	var stopAt atomic.Value
	stopAt.Store(sql.DDLTxnStep(""))
	knobs := knobsDDLTxn(&stopAt)
	knobs.ResolverInterval = -1
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobs})
	ctx := txnCtx(t)
	conn := c.Conn(0)
	must := func(s string) {
		t.Helper()
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	must("BEGIN")
	must("CREATE TABLE p (k INT PRIMARY KEY)")
	must("CREATE TABLE ch (k INT PRIMARY KEY, p INT REFERENCES p)")
	must("CREATE TABLE cd (k INT PRIMARY KEY, p INT REFERENCES p ON DELETE CASCADE)")
	must("INSERT INTO p VALUES (1), (2), (3)")
	must("INSERT INTO ch VALUES (1, 1), (3, 3)")
	must("INSERT INTO cd VALUES (1, 2)")
	must("SAVEPOINT s")
	if _, err := conn.Exec(ctx, "DELETE FROM p WHERE k = 1"); sqlState(err) != "23503" {
		t.Errorf("DELETE of a referenced parent row inside the transaction: %v (want 23503)", err)
	}
	must("ROLLBACK TO SAVEPOINT s")
	must("DELETE FROM p WHERE k = 2")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM cd").Scan(&n); err != nil || n != 0 {
		t.Errorf("ON DELETE CASCADE inside the transaction: %d child rows left (%v), want 0", n, err)
	}
	stopAt.Store(sql.StepDecision)
	must("COMMIT")
	stopAt.Store(sql.DDLTxnStep(""))
	// Committed, not published (no resolver): the foreign key holds for
	// another node's delete.
	if _, err := c.Conn(1).Exec(ctx, "DELETE FROM p WHERE k = 3"); sqlState(err) != "23503" {
		t.Errorf("DELETE of a referenced parent row of a committed pending table: %v (want 23503)", err)
	}
	var orphans int
	if err := c.Conn(2).QueryRow(ctx, "SELECT count(*) FROM ch WHERE p NOT IN (SELECT k FROM p)").Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("orphan child rows: %d (%v)", orphans, err)
	}
}
