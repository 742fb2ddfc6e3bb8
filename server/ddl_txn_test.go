package server_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql"
)

// TestDDLTxnTwoSessions is the first slice of txn/DESIGN.md "DDL in a
// transaction" through a real driver: a transaction creates tables, an
// index and a column, writes and reads them; another session sees none of
// it (42P01) until COMMIT, then all of it, on every node; ROLLBACK and
// ROLLBACK TO SAVEPOINT leave nothing; what the slice does not cover is
// refused with 0A000 before anything changes.
func TestDDLTxnTwoSessions(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	conn := c.Conn(0)
	other := c.Conn(1)
	must := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(db *pgx.Conn, table string) (int, string) {
		t.Helper()
		var n int
		err := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		return n, sqlState(err)
	}
	// seesNothing checks that the other session sees neither the tables
	// the transaction creates nor its rows in versions.
	seesNothing := func(when string) {
		t.Helper()
		for _, tb := range []string{"authors", "books"} {
			if _, st := count(other, tb); st != "42P01" {
				t.Fatalf("%s, another session's %s: %s (want 42P01)", when, tb, st)
			}
		}
		if n, _ := count(other, "versions"); n != 0 {
			t.Fatalf("%s, another session sees %d version rows", when, n)
		}
	}
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")

	must("BEGIN")
	must("CREATE TABLE authors (id SERIAL PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE)")
	must("CREATE TABLE books (id INT PRIMARY KEY, author_id INT NOT NULL REFERENCES authors (id), title TEXT NOT NULL)")
	must("INSERT INTO authors (id, name) VALUES (1, 'ada'), (2, 'grace')")
	must("INSERT INTO books VALUES (1, 1, 'notes'), (2, 2, 'letters')")
	must("CREATE INDEX ix_books_title ON books (title)")
	must("ALTER TABLE books ADD COLUMN year INT")
	must("INSERT INTO books VALUES (3, 1, 'more notes', 1843)")
	must("INSERT INTO versions VALUES ('v1')")
	if _, err := conn.Exec(ctx, "INSERT INTO books VALUES (4, 99, 'orphan', 1)"); sqlState(err) != "23503" {
		t.Fatalf("foreign key inside the transaction: %v (want 23503)", err)
	}
	must("ROLLBACK")
	// ROLLBACK left nothing: the names are free, no row is anywhere.
	seesNothing("after ROLLBACK")

	must("BEGIN")
	must("CREATE TABLE authors (id SERIAL PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE)")
	must("SAVEPOINT s1")
	must("CREATE TABLE scratch (k INT PRIMARY KEY)")
	must("INSERT INTO scratch VALUES (1)")
	must("ROLLBACK TO SAVEPOINT s1")
	if _, err := conn.Exec(ctx, "SELECT * FROM scratch"); sqlState(err) != "42P01" {
		t.Fatalf("a table created after the savepoint survived ROLLBACK TO: %v", err)
	}
	must("ROLLBACK TO SAVEPOINT s1") // the error aborted the transaction
	must("CREATE TABLE books (id INT PRIMARY KEY, author_id INT NOT NULL REFERENCES authors (id), title TEXT NOT NULL)")
	must("INSERT INTO authors (id, name) VALUES (1, 'ada'), (2, 'grace')")
	must("INSERT INTO books VALUES (1, 1, 'notes'), (2, 2, 'letters')")
	must("CREATE INDEX ix_books_title ON books (title)")
	must("ALTER TABLE books ADD COLUMN year INT")
	must("INSERT INTO books VALUES (3, 1, 'more notes', 1843)")
	must("INSERT INTO versions VALUES ('v1')")
	var title string
	if err := conn.QueryRow(ctx, "SELECT title FROM books WHERE title = 'letters'").Scan(&title); err != nil || title != "letters" {
		t.Fatalf("read through the new index: %q %v", title, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO authors (id, name) VALUES (3, 'ada')"); sqlState(err) != "23505" {
		t.Fatalf("unique inside the transaction: %v (want 23505)", err)
	}
	// That error aborted the transaction, as in PostgreSQL.
	must("ROLLBACK")

	must("BEGIN")
	must("CREATE TABLE authors (id SERIAL PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE)")
	must("CREATE TABLE books (id INT PRIMARY KEY, author_id INT NOT NULL REFERENCES authors (id), title TEXT NOT NULL)")
	must("INSERT INTO authors (id, name) VALUES (1, 'ada'), (2, 'grace')")
	must("INSERT INTO books VALUES (1, 1, 'notes'), (2, 2, 'letters')")
	must("CREATE UNIQUE INDEX ix_books_title ON books (title)")
	must("ALTER TABLE books ADD COLUMN year INT")
	must("CREATE INDEX ix_scratch ON books (year)")
	must("DROP INDEX ix_scratch")
	must("INSERT INTO books VALUES (3, 1, 'more notes', 1843)")
	must("INSERT INTO versions VALUES ('v1')")
	// Refused, before anything changes: a change that must check every
	// row of an existing table; the transaction is then aborted.
	_, err := conn.Exec(ctx, "ALTER TABLE versions ALTER COLUMN v SET NOT NULL")
	if sqlState(err) != "0A000" || !strings.Contains(err.Error(), "it must check every row") {
		t.Fatalf("SET NOT NULL on an existing table inside a transaction: %v (want 0A000)", err)
	}
	must("ROLLBACK")

	must("BEGIN")
	must("CREATE TABLE authors (id SERIAL PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE)")
	must("CREATE TABLE books (id INT PRIMARY KEY, author_id INT NOT NULL REFERENCES authors (id), title TEXT NOT NULL)")
	must("INSERT INTO authors (id, name) VALUES (1, 'ada'), (2, 'grace')")
	must("INSERT INTO books VALUES (1, 1, 'notes'), (2, 2, 'letters')")
	must("CREATE UNIQUE INDEX ix_books_title ON books (title)")
	must("ALTER TABLE books ADD COLUMN year INT")
	must("INSERT INTO books VALUES (3, 1, 'more notes', 1843)")
	must("INSERT INTO versions VALUES ('v1')")
	// Another session, on another node, sees nothing of it.
	seesNothing("before COMMIT")
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	// After COMMIT, every node sees all of it.
	for node := 0; node < 3; node++ {
		db := c.Conn(node)
		if n, st := count(db, "books"); n != 3 || st != "" {
			t.Fatalf("node %d after COMMIT: books %d %s", node+1, n, st)
		}
		if n, _ := count(db, "versions"); n != 1 {
			t.Fatalf("node %d after COMMIT: versions %d", node+1, n)
		}
		var y *int64
		if err := db.QueryRow(ctx, "SELECT year FROM books WHERE title = 'more notes'").Scan(&y); err != nil || y == nil || *y != 1843 {
			t.Fatalf("node %d: the added column: %v %v", node+1, y, err)
		}
	}
	if _, err := other.Exec(ctx, "INSERT INTO books VALUES (9, 2, 'notes', 1)"); sqlState(err) != "23505" {
		t.Fatalf("the unique index made in the transaction, after COMMIT: %v (want 23505)", err)
	}
	if _, err := other.Exec(ctx, "INSERT INTO books VALUES (9, 77, 'x', 1)"); sqlState(err) != "23503" {
		t.Fatalf("the foreign key made in the transaction, after COMMIT: %v (want 23503)", err)
	}
	// The same name created by another session while a transaction is
	// open: the plain CREATE TABLE commits first, so the transaction's
	// intent fails and COMMIT answers 40001, leaving none of its writes.
	must("BEGIN")
	must("CREATE TABLE clash (k INT PRIMARY KEY)")
	must("INSERT INTO clash VALUES (1)")
	must("INSERT INTO versions VALUES ('clash')")
	if _, err := other.Exec(ctx, "CREATE TABLE clash (a TEXT PRIMARY KEY)"); err != nil {
		t.Fatalf("CREATE TABLE clash in another session: %v", err)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); sqlState(err) != "40001" {
		t.Fatalf("COMMIT of a transaction whose table name was taken meanwhile: %v (want 40001)", err)
	}
	if n, st := count(other, "clash"); n != 0 || st != "" {
		t.Fatalf("clash after the lost COMMIT: %d rows, %s", n, st)
	}
	var v int
	if err := other.QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = 'clash'").Scan(&v); err != nil || v != 0 {
		t.Fatalf("the lost COMMIT wrote %d version rows (%v)", v, err)
	}
	// Nothing is left pending.
	for node := 0; node < 3; node++ {
		if n := len(c.Nodes[node].Server.PendingTables()); n != 0 {
			t.Fatalf("node %d still has %d pending tables", node+1, n)
		}
	}
}

// TestDDLTxnGatewayStops stops the gateway after each step of the commit
// (the intent, the decision, the publish), as a crash there would, and
// checks that the outcome on every node is all of the transaction or none
// of it: before the decision, nothing (the resolver aborts and drops the
// pending tables once their promise ran out); after it, everything (readers
// decide by the decision key before the publish, and the resolver
// publishes).
func TestDDLTxnGatewayStops(t *testing.T) {
	var stopAt atomic.Value // sql.DDLTxnStep
	stopAt.Store(sql.DDLTxnStep(""))
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobsDDLTxn(&stopAt)})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")
	for _, tc := range []struct {
		step      sql.DDLTxnStep
		committed bool
	}{
		{sql.StepIntent, false},
		{sql.StepDecision, true},
		{sql.StepPublish, true},
		// A gateway slower than its promise: the resolver's abort races
		// its commit, and exactly one wins (here the abort: COMMIT
		// answers 40001 and nothing is left).
		{"slow", false},
	} {
		t.Run(string(tc.step), func(t *testing.T) {
			stopAt.Store(tc.step)
			defer stopAt.Store(sql.DDLTxnStep(""))
			table := "t_" + string(tc.step)
			conn := c.Conn(0)
			for _, s := range []string{"BEGIN", "CREATE TABLE " + table + " (k INT PRIMARY KEY)",
				"INSERT INTO " + table + " VALUES (1), (2)", "INSERT INTO versions VALUES ('" + table + "')"} {
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			_, err := conn.Exec(ctx, "COMMIT")
			if tc.committed != (err == nil) {
				t.Fatalf("COMMIT stopped after %s: %v", tc.step, err)
			}
			if tc.step == "slow" && sqlState(err) != "40001" {
				t.Fatalf("COMMIT of a gateway slower than its promise: %v (want 40001)", err)
			}
			stopAt.Store(sql.DDLTxnStep(""))
			// On every node: the table and its version row together, or
			// neither; and once the resolver ran, nothing is pending.
			deadline := time.Now().Add(20 * time.Second)
			for {
				settled := true
				for node := 0; node < 3; node++ {
					db := c.Conn(node)
					var n, v int
					err := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
					if verr := db.QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = $1", table).Scan(&v); verr != nil {
						t.Fatal(verr)
					}
					switch {
					case err == nil && n == 2 && v == 1 && tc.committed:
					case sqlState(err) == "42P01" && v == 0 && !tc.committed:
					default:
						t.Fatalf("node %d after a stop at %s: table %d %v, version rows %d", node+1, tc.step, n, err, v)
					}
					if len(c.Nodes[node].Server.PendingTables()) != 0 {
						settled = false
					}
				}
				if settled {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pending tables left 20 s after a stop at %s", tc.step)
				}
				time.Sleep(200 * time.Millisecond)
			}
			// The name is usable again (dropped) or taken (published).
			_, err = c.Conn(1).Exec(ctx, "CREATE TABLE "+table+" (k INT PRIMARY KEY)")
			if tc.committed && sqlState(err) != "42P07" || !tc.committed && err != nil {
				t.Fatalf("CREATE TABLE %s after the stop at %s: %v", table, tc.step, err)
			}
		})
	}
}

func knobsDDLTxn(stopAt *atomic.Value) (k server.Knobs) {
	k.DDLTxnStep = func(step sql.DDLTxnStep) error {
		if stopAt.Load().(sql.DDLTxnStep) == "slow" && step == sql.StepIntent {
			time.Sleep(4 * time.Second) // twice the promise
			return nil
		}
		if stopAt.Load().(sql.DDLTxnStep) == step {
			return errors.New("stopped here by the test")
		}
		return nil
	}
	k.PendingTTL = 2 * time.Second
	k.ResolverInterval = 500 * time.Millisecond
	return k
}

// TestDDLTxnReadersDecide runs without the resolver: a transaction whose
// gateway stopped after its decision has its table and rows seen by every
// node (the readers decide the pending table by the decision key), and the
// name is taken (42P07); one stopped after its intent has nothing seen,
// blocks the downgrade to 2.0 while its table is pending, and a CREATE
// TABLE of the same name resolves it (aborts and drops it) once its
// promise ran out, then succeeds.
func TestDDLTxnReadersDecide(t *testing.T) {
	var stopAt atomic.Value
	stopAt.Store(sql.DDLTxnStep(""))
	knobs := knobsDDLTxn(&stopAt)
	knobs.ResolverInterval = -1
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: knobs})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")
	run := func(table string, step sql.DDLTxnStep) error {
		t.Helper()
		stopAt.Store(step)
		defer stopAt.Store(sql.DDLTxnStep(""))
		conn := c.Conn(0)
		for _, s := range []string{"BEGIN", "CREATE TABLE " + table + " (k INT PRIMARY KEY, p INT REFERENCES " + table + ")",
			"INSERT INTO " + table + " VALUES (1, NULL), (2, 1)", "INSERT INTO versions VALUES ('" + table + "')"} {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		_, err := conn.Exec(ctx, "COMMIT")
		return err
	}

	if err := run("decided", sql.StepDecision); err != nil {
		t.Fatalf("COMMIT stopped after the decision: %v", err)
	}
	for node := 0; node < 3; node++ {
		if len(c.Nodes[node].Server.PendingTables()) != 1 {
			t.Fatalf("node %d: pending %v, want the one table", node+1, c.Nodes[node].Server.PendingTables())
		}
		db := c.Conn(node)
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM decided").Scan(&n); err != nil || n != 2 {
			t.Fatalf("node %d reads the committed pending table: %d %v", node+1, n, err)
		}
		if _, err := db.Exec(ctx, "INSERT INTO decided VALUES (10, 99)"); sqlState(err) != "23503" {
			t.Fatalf("node %d: the foreign key of a committed pending table: %v (want 23503)", node+1, err)
		}
		if _, err := db.Exec(ctx, "CREATE TABLE decided (k INT PRIMARY KEY)"); sqlState(err) != "42P07" {
			t.Fatalf("node %d: CREATE TABLE of a committed pending table's name: %v (want 42P07)", node+1, err)
		}
	}

	if err := run("undecided", sql.StepIntent); err == nil {
		t.Fatal("COMMIT stopped after the intent answered success")
	}
	for node := 0; node < 3; node++ {
		var n int
		if err := c.Conn(node).QueryRow(ctx, "SELECT count(*) FROM undecided").Scan(&n); sqlState(err) != "42P01" {
			t.Fatalf("node %d reads an undecided pending table: %d %v (want 42P01)", node+1, n, err)
		}
	}
	plan := planRows(t, c, "SHOW UPGRADE PLAN FOR VERSION '2.0'")
	if !strings.Contains(plan, "a transaction's schema change is being resolved: table undecided is pending") {
		t.Fatalf("the downgrade plan does not name the pending table:\n%s", plan)
	}
	time.Sleep(2 * time.Second) // the promise (PendingTTL) runs out
	if _, err := c.Conn(2).Exec(ctx, "CREATE TABLE undecided (a TEXT PRIMARY KEY)"); err != nil {
		t.Fatalf("CREATE TABLE of an undecided pending table's name after its promise: %v", err)
	}
	var v int
	if err := c.Conn(1).QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = 'undecided'").Scan(&v); err != nil || v != 0 {
		t.Fatalf("the aborted transaction's version row: %d %v", v, err)
	}
	if got := c.Nodes[2].Server.PendingTables(); len(got) != 1 || got[0] != "decided" {
		t.Fatalf("pending after the resolution: %v, want only decided (no resolver runs)", got)
	}
}

// TestDDLTxnReaderNeverSeesHalf polls, on another node, a transaction's
// new table and its row in an existing version table while transactions
// commit: a table is never seen without its version row, nor a version
// row without its table (both become visible at the one data-group
// command of the decision, whether or not the publish has run).
func TestDDLTxnReaderNeverSeesHalf(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE versions (v TEXT PRIMARY KEY)")
	waitSees(t, c, 1, "versions")
	const rounds = 5
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		db := c.Conn(1)
		for {
			select {
			case <-done:
				return
			default:
			}
			for i := 0; i < rounds; i++ {
				table := "m" + string(rune('0'+i))
				// Table first: if it is there, its version row must be.
				var n, v int
				terr := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
				if err := db.QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = $1", table).Scan(&v); err != nil {
					errc <- err
					return
				}
				if terr == nil && (v != 1 || n != 1) {
					errc <- errors.New("saw table " + table + " without its version row or its row")
					return
				}
				// Version row first: if it is there, the table must be.
				if err := db.QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = $1", table).Scan(&v); err != nil {
					errc <- err
					return
				}
				terr = db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
				if v == 1 && (terr != nil || n != 1) {
					errc <- errors.New("saw the version row of " + table + " without its table: " + sqlState(terr))
					return
				}
				if terr != nil && sqlState(terr) != "42P01" {
					errc <- terr
					return
				}
			}
		}
	}()
	conn := c.Conn(0)
	for i := 0; i < rounds; i++ {
		table := "m" + string(rune('0'+i))
		for _, s := range []string{"BEGIN", "CREATE TABLE " + table + " (k INT PRIMARY KEY)",
			"INSERT INTO " + table + " VALUES (1)", "INSERT INTO versions VALUES ('" + table + "')", "COMMIT"} {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
