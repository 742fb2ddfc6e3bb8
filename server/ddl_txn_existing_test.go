package server_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql"
)

// TestDDLTxnExistingTables is class 2 of txn/DESIGN.md "DDL in a
// transaction" through a real driver: a transaction changes tables that
// existed before it (ADD COLUMN, DROP COLUMN, RENAME COLUMN, SET DEFAULT,
// DROP NOT NULL, DROP CONSTRAINT, DROP INDEX, RENAME TO, DROP TABLE);
// another session, on another node, sees the old schema until COMMIT and
// all of the new one after it, on every node; ROLLBACK and ROLLBACK TO
// SAVEPOINT leave nothing.
func TestDDLTxnExistingTables(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	conn, other := c.Conn(0), c.Conn(1)
	must := func(db *pgx.Conn, sql string) {
		t.Helper()
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	state := func(db *pgx.Conn, sql string) string {
		t.Helper()
		rows, err := db.Query(ctx, sql)
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
		return sqlState(err)
	}
	for _, s := range []string{
		"CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL, price INT DEFAULT 5, note TEXT, CONSTRAINT price_pos CHECK (price > 0))",
		"CREATE UNIQUE INDEX ix_items_name ON items (name)",
		"INSERT INTO items VALUES (1, 'one', 10, 'n1'), (2, 'two', 20, 'n2')",
		"CREATE TABLE old (k INT PRIMARY KEY)", "INSERT INTO old VALUES (1)",
		"CREATE TABLE parent (id INT PRIMARY KEY)", "CREATE TABLE child (id INT PRIMARY KEY, p INT REFERENCES parent (id))",
		"INSERT INTO parent VALUES (1)", "INSERT INTO child VALUES (1, 1)",
		"CREATE TABLE versions (v TEXT PRIMARY KEY)",
	} {
		c.Exec(0, s)
	}
	oldSchema := func(when string) {
		t.Helper()
		for _, q := range []string{"SELECT name, note FROM items", "SELECT k FROM old", "SELECT id FROM parent", "SELECT p FROM child"} {
			if st := state(other, q); st != "" {
				t.Fatalf("%s, another session: %s: %s (want the old schema)", when, q, st)
			}
		}
		for _, q := range []string{"SELECT qty FROM items", "SELECT title FROM items", "SELECT k FROM older"} {
			if st := state(other, q); st != "42703" && st != "42P01" {
				t.Fatalf("%s, another session: %s: %q (want 42703 or 42P01)", when, q, st)
			}
		}
		if _, err := other.Exec(ctx, "INSERT INTO items (id, name, price) VALUES (99, 'one', 1)"); sqlState(err) != "23505" {
			t.Fatalf("%s, another session: the unique index: %v (want 23505)", when, err)
		}
		var n int
		if err := other.QueryRow(ctx, "SELECT count(*) FROM versions").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s, another session sees %d version rows (%v)", when, n, err)
		}
	}
	change := []string{
		"ALTER TABLE items ADD COLUMN qty INT NOT NULL DEFAULT 1",
		"ALTER TABLE items DROP COLUMN note",
		"ALTER TABLE items RENAME COLUMN name TO title",
		"ALTER TABLE items ALTER COLUMN price SET DEFAULT 7",
		"ALTER TABLE items ALTER COLUMN title DROP NOT NULL",
		"ALTER TABLE items DROP CONSTRAINT price_pos",
		"DROP INDEX ix_items_name",
		"ALTER TABLE old RENAME TO older",
		"INSERT INTO items (id, title) VALUES (3, 'three')",
		"INSERT INTO versions VALUES ('v2')",
	}

	// ROLLBACK leaves nothing.
	must(conn, "BEGIN")
	for _, s := range change {
		must(conn, s)
	}
	must(conn, "DROP TABLE child")
	must(conn, "DROP TABLE parent")
	oldSchema("before ROLLBACK")
	must(conn, "ROLLBACK")
	oldSchema("after ROLLBACK")

	// ROLLBACK TO SAVEPOINT undoes the changes after it, fence moves
	// included.
	must(conn, "BEGIN")
	must(conn, "SAVEPOINT s1")
	must(conn, "ALTER TABLE items ADD COLUMN gone INT")
	must(conn, "DROP TABLE old")
	must(conn, "ROLLBACK TO SAVEPOINT s1")
	if st := state(conn, "SELECT gone FROM items"); st != "42703" {
		t.Fatalf("a column added after the savepoint survived ROLLBACK TO: %q", st)
	}
	must(conn, "ROLLBACK TO SAVEPOINT s1")
	if st := state(conn, "SELECT k FROM old"); st != "" {
		t.Fatalf("a table dropped after the savepoint is still gone after ROLLBACK TO: %q", st)
	}
	// A table referenced by a foreign key is not dropped alone (2BP01), as
	// in PostgreSQL; the transaction is then aborted.
	if _, err := conn.Exec(ctx, "DROP TABLE parent"); sqlState(err) != "2BP01" {
		t.Fatalf("DROP TABLE of a referenced table: %v (want 2BP01)", err)
	}
	must(conn, "ROLLBACK")
	oldSchema("after ROLLBACK TO SAVEPOINT")

	// COMMIT: the old schema until then, all of the new one after it.
	must(conn, "BEGIN")
	for _, s := range change {
		must(conn, s)
	}
	var qty, price int
	if err := conn.QueryRow(ctx, "SELECT qty, price FROM items WHERE id = 3").Scan(&qty, &price); err != nil || qty != 1 || price != 7 {
		t.Fatalf("inside the transaction, the new row: qty %d price %d %v (want 1, 7)", qty, price, err)
	}
	must(conn, "DROP TABLE child")
	must(conn, "DROP TABLE parent")
	must(conn, "CREATE TABLE parent (id INT PRIMARY KEY, label TEXT)")
	must(conn, "CREATE TABLE scratch (k INT PRIMARY KEY)")
	must(conn, "INSERT INTO scratch VALUES (1)")
	must(conn, "DROP TABLE scratch")
	oldSchema("before COMMIT")
	must(conn, "COMMIT")
	for node := 0; node < 3; node++ {
		db := c.Conn(node)
		rows, err := db.Query(ctx, "SELECT id, title, price, qty FROM items ORDER BY id")
		if err != nil {
			t.Fatalf("node %d after COMMIT: %v", node+1, err)
		}
		var got []string
		for rows.Next() {
			var id, price, qty int
			var title *string
			if err := rows.Scan(&id, &title, &price, &qty); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d %s %d %d", id, *title, price, qty))
		}
		rows.Close()
		if want := "[1 one 10 1 2 two 20 1 3 three 7 1]"; fmt.Sprint(got) != want {
			t.Fatalf("node %d after COMMIT: items %v, want %s", node+1, got, want)
		}
		for q, want := range map[string]string{
			"SELECT note FROM items": "42703", "SELECT name FROM items": "42703", "SELECT k FROM old": "42P01",
			"SELECT k FROM older": "", "SELECT p FROM child": "42P01", "SELECT label FROM parent": "", "SELECT k FROM scratch": "42P01",
		} {
			if st := state(db, q); st != want {
				t.Fatalf("node %d after COMMIT: %s: %q, want %q", node+1, q, st, want)
			}
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM parent").Scan(&n); err != nil || n != 0 {
			t.Fatalf("node %d: the new parent has %d rows (%v), want 0", node+1, n, err)
		}
		if err := db.QueryRow(ctx, "SELECT count(*) FROM versions").Scan(&n); err != nil || n != 1 {
			t.Fatalf("node %d: %d version rows (%v)", node+1, n, err)
		}
	}
	// The dropped constraint and index, after COMMIT, on another node.
	must(other, "INSERT INTO items (id, title, price) VALUES (4, 'one', -1)")
	// Nothing is left pending.
	waitNoPending(t, c)
	// A plain DDL statement works on the published tables.
	must(other, "ALTER TABLE items ADD COLUMN later INT")
	must(other, "DROP TABLE older")
}

// waitSees waits until node (0-based) sees table, which another node
// created: a node's catalog learns a schema change a moment after the
// statement answered on the node that made it.
func waitSees(t *testing.T, c *testcluster.Cluster, node int, table string) {
	t.Helper()
	ctx := txnCtx(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := c.Conn(node).QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d does not see table %s: %v", node+1, table, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitNoPending(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for node := 0; node < len(c.Nodes); node++ {
		for len(c.Nodes[node].Server.PendingTables()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d still has pending tables %v", node+1, c.Nodes[node].Server.PendingTables())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestDDLTxnExistingGatewayStops stops the gateway after each step of the
// commit of a transaction that changes an existing table (a column added,
// another table dropped) and writes a version row: before the decision,
// nothing of it on any node once the resolver ran; after it, all of it on
// every node, before the publish too (readers decide the pending change by
// the decision key).
func TestDDLTxnExistingGatewayStops(t *testing.T) {
	var stopAt atomic.Value
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
		{"slow", false},
	} {
		t.Run(string(tc.step), func(t *testing.T) {
			table, gone := "e_"+string(tc.step), "g_"+string(tc.step)
			c.Exec(0, "CREATE TABLE "+table+" (k INT PRIMARY KEY)")
			c.Exec(0, "INSERT INTO "+table+" VALUES (1)")
			c.Exec(0, "CREATE TABLE "+gone+" (k INT PRIMARY KEY)")
			c.Exec(0, "INSERT INTO "+gone+" VALUES (1)")
			stopAt.Store(tc.step)
			defer stopAt.Store(sql.DDLTxnStep(""))
			conn := c.Conn(0)
			for _, s := range []string{"BEGIN", "ALTER TABLE " + table + " ADD COLUMN c INT DEFAULT 7",
				"DROP TABLE " + gone, "INSERT INTO " + table + " VALUES (2, 8)", "INSERT INTO versions VALUES ('" + table + "')"} {
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			_, err := conn.Exec(ctx, "COMMIT")
			if tc.committed != (err == nil) {
				t.Fatalf("COMMIT stopped after %s: %v", tc.step, err)
			}
			stopAt.Store(sql.DDLTxnStep(""))
			check := func() {
				t.Helper()
				for node := 0; node < 3; node++ {
					db := c.Conn(node)
					var sum, v, g int
					cerr := db.QueryRow(ctx, "SELECT sum(c) FROM "+table).Scan(&sum)
					if err := db.QueryRow(ctx, "SELECT count(*) FROM versions WHERE v = $1", table).Scan(&v); err != nil {
						t.Fatal(err)
					}
					gerr := db.QueryRow(ctx, "SELECT count(*) FROM "+gone).Scan(&g)
					switch {
					case tc.committed && cerr == nil && sum == 15 && v == 1 && sqlState(gerr) == "42P01":
					case !tc.committed && sqlState(cerr) == "42703" && v == 0 && gerr == nil && g == 1:
					default:
						t.Fatalf("node %d after a stop at %s: sum(c) %d %v, version rows %d, %s: %d %v", node+1, tc.step, sum, cerr, v, gone, g, gerr)
					}
				}
			}
			check()
			waitNoPending(t, c)
			check()
			// The table takes plain DDL again.
			if _, err := c.Conn(1).Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN d INT"); err != nil {
				t.Fatalf("ALTER TABLE after the stop at %s: %v", tc.step, err)
			}
		})
	}
}

// TestDDLTxnAlterRacesWriters: writers on other nodes insert into a table
// (with its old schema, outside a transaction and inside ones) while a
// transaction adds a column with a default, drops one and renames one,
// and commits. Every acknowledged row is there afterwards and reads under
// the new schema (the added column as its default); a writer's
// transaction whose snapshot precedes the COMMIT and that writes after it
// fails with 40001 (the fence the COMMIT moved), never writes a row under
// the old descriptor.
func TestDDLTxnAlterRacesWriters(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE w (id INT PRIMARY KEY, name TEXT, note TEXT)")
	var (
		mu    sync.Mutex
		acked []int
		next  atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
		retry atomic.Int64
	)
	next.Store(1)
	writer := func(node int, inTxn bool) {
		defer wg.Done()
		db := c.Conn(node)
		for !stop.Load() {
			id := int(next.Add(1))
			var err error
			if inTxn {
				_, err = db.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO w (id, name) VALUES (%d, 'n%d'); COMMIT", id, id))
				if err != nil {
					_, _ = db.Exec(ctx, "ROLLBACK")
				}
			} else {
				_, err = db.Exec(ctx, fmt.Sprintf("INSERT INTO w (id, name) VALUES (%d, 'n%d')", id, id))
			}
			switch st := sqlState(err); st {
			case "":
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			case "40001":
				retry.Add(1) // planned before the COMMIT, run after it: refused, not written
			case "42703":
				return // replanned on the new schema: "name" is gone
			default:
				t.Errorf("writer on node %d: %v", node+1, err)
				return
			}
		}
	}
	waitSees(t, c, 1, "w")
	waitSees(t, c, 2, "w")
	wg.Add(2)
	go writer(1, false)
	go writer(2, true)
	time.Sleep(300 * time.Millisecond)
	conn := c.Conn(0)
	for _, s := range []string{"BEGIN", "ALTER TABLE w ADD COLUMN qty INT NOT NULL DEFAULT 3",
		"ALTER TABLE w DROP COLUMN note", "ALTER TABLE w RENAME COLUMN name TO title"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	// A transaction with a snapshot from before a COMMIT that changed
	// the table, writing after it: 40001.
	other := c.Conn(1)
	if _, err := other.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"BEGIN", "ALTER TABLE w ADD COLUMN extra INT", "COMMIT"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	_, err := other.Exec(ctx, "INSERT INTO w (id, title) VALUES (0, 'late')")
	if err == nil {
		_, err = other.Exec(ctx, "COMMIT")
	} else {
		_, _ = other.Exec(ctx, "ROLLBACK")
	}
	if sqlState(err) != "40001" {
		t.Fatalf("a write on a snapshot from before the ALTER's COMMIT: %v (want 40001)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 5 {
		t.Fatalf("only %d writes were acknowledged", len(acked))
	}
	for node := 0; node < 3; node++ {
		rows, err := c.Conn(node).Query(ctx, "SELECT id, title, qty FROM w")
		if err != nil {
			t.Fatalf("node %d: %v", node+1, err)
		}
		got := map[int]bool{}
		for rows.Next() {
			var id, qty int
			var title string
			if err := rows.Scan(&id, &title, &qty); err != nil {
				t.Fatalf("node %d: %v", node+1, err)
			}
			if title != fmt.Sprintf("n%d", id) || qty != 3 {
				t.Fatalf("node %d: row %d reads %q qty %d", node+1, id, title, qty)
			}
			got[id] = true
		}
		rows.Close()
		for _, id := range acked {
			if !got[id] {
				t.Fatalf("node %d: acknowledged row %d is missing", node+1, id)
			}
		}
		if len(got) != len(acked) {
			t.Fatalf("node %d: %d rows, %d acknowledged", node+1, len(got), len(acked))
		}
	}
	t.Logf("%d rows acknowledged, %d writes refused with 40001", len(acked), retry.Load())
}

// TestDDLTxnCreateIndexExisting: CREATE INDEX on a table that existed
// before the transaction fills the index inside it, from the rows as of
// its snapshot: another session sees no index until COMMIT and a working
// one after it on every node; duplicates for a UNIQUE index fail the
// statement (23505); a write to the table by another session after the
// snapshot fails the COMMIT (40001) and leaves no index.
func TestDDLTxnCreateIndexExisting(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	conn, other := c.Conn(0), c.Conn(1)
	must := func(db *pgx.Conn, sql string) {
		t.Helper()
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	c.Exec(0, "CREATE TABLE big (id INT PRIMARY KEY, v INT, u TEXT, d INT)")
	var values []string
	for i := 1; i <= 200; i++ {
		values = append(values, fmt.Sprintf("(%d, %d, 'u%d', %d)", i, i%10, i, i%3))
	}
	c.Exec(0, "INSERT INTO big VALUES "+strings.Join(values, ", "))
	indexes := func(db *pgx.Conn) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE tablename = 'big' AND indexname LIKE 'ix_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	must(conn, "BEGIN")
	if _, err := conn.Exec(ctx, "CREATE UNIQUE INDEX ix_d ON big (d)"); sqlState(err) != "23505" {
		t.Fatalf("a UNIQUE index over duplicates: %v (want 23505)", err)
	}
	must(conn, "ROLLBACK")

	must(conn, "BEGIN")
	must(conn, "CREATE INDEX ix_v ON big (v)")
	must(conn, "CREATE UNIQUE INDEX ix_u ON big (u)")
	must(conn, "INSERT INTO big VALUES (201, 7, 'u201', 0)")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM big WHERE v = 7").Scan(&n); err != nil || n != 21 {
		t.Fatalf("inside the transaction, rows with v = 7: %d %v (want 21)", n, err)
	}
	if got := indexes(other); got != 0 {
		t.Fatalf("another session sees %d new indexes before COMMIT", got)
	}
	must(conn, "COMMIT")
	for node := 0; node < 3; node++ {
		db := c.Conn(node)
		if got := indexes(db); got != 2 {
			t.Fatalf("node %d sees %d new indexes after COMMIT", node+1, got)
		}
		if err := db.QueryRow(ctx, "SELECT count(*) FROM big WHERE v = 7").Scan(&n); err != nil || n != 21 {
			t.Fatalf("node %d, rows with v = 7: %d %v (want 21)", node+1, n, err)
		}
		rows, err := db.Query(ctx, "EXPLAIN SELECT id FROM big WHERE u = 'u42'")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "\n"), "ix_u") {
			t.Fatalf("node %d: the lookup does not use ix_u: %q", node+1, plan)
		}
		var id int
		if err := db.QueryRow(ctx, "SELECT id FROM big WHERE u = 'u42'").Scan(&id); err != nil || id != 42 {
			t.Fatalf("node %d: lookup through ix_u: %d %v", node+1, id, err)
		}
	}
	if _, err := other.Exec(ctx, "INSERT INTO big VALUES (300, 1, 'u5', 0)"); sqlState(err) != "23505" {
		t.Fatalf("the unique index made in the transaction, after COMMIT: %v (want 23505)", err)
	}

	// A write by another session after the snapshot: the COMMIT fails.
	must(conn, "BEGIN")
	must(conn, "CREATE INDEX ix_d ON big (d)")
	must(other, "INSERT INTO big VALUES (400, 1, 'u400', 1)")
	if _, err := conn.Exec(ctx, "COMMIT"); sqlState(err) != "40001" {
		t.Fatalf("COMMIT of CREATE INDEX after a concurrent write to the table: %v (want 40001)", err)
	}
	if got := indexes(other); got != 2 {
		t.Fatalf("after the failed COMMIT, %d new indexes (want the 2 before it)", got)
	}
	waitNoPending(t, c)
}
