package server_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/txn"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func txnCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTxnSQLSurface walks the statements of DESIGN.md's transactions
// section through a real node and a real driver: what each returns, the
// ReadyForQuery status after it, and what is committed.
func TestTxnSQLSurface(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	conn := c.Conn(0)
	status := func() byte { return conn.PgConn().TxStatus() }
	run := func(sql string) error {
		_, err := conn.Exec(ctx, sql)
		return err
	}
	must := func(sql string, wantStatus byte) {
		t.Helper()
		if err := run(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if s := status(); s != wantStatus {
			t.Fatalf("after %s: ReadyForQuery %c, want %c", sql, s, wantStatus)
		}
	}
	count := func() int {
		t.Helper()
		other := c.Conn(0)
		var n int
		if err := other.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Commit: reads see the transaction's own writes; others see nothing
	// until COMMIT.
	must("BEGIN", 'T')
	must("INSERT INTO t VALUES (1, 'a'), (2, 'b')", 'T')
	must("UPDATE t SET v = 'bb' WHERE k = 2", 'T')
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE k = 2").Scan(&v); err != nil || v != "bb" {
		t.Fatalf("read own write: %q %v", v, err)
	}
	if n := count(); n != 0 {
		t.Fatalf("another session sees %d uncommitted rows", n)
	}
	must("COMMIT", 'I')
	if n := count(); n != 2 {
		t.Fatalf("after COMMIT: %d rows", n)
	}

	// Rollback discards.
	must("START TRANSACTION ISOLATION LEVEL READ COMMITTED", 'T')
	var iso string
	if err := conn.QueryRow(ctx, "SHOW TRANSACTION ISOLATION LEVEL").Scan(&iso); err != nil || iso != "serializable" {
		t.Fatalf("isolation: %q %v", iso, err)
	}
	must("DELETE FROM t WHERE k = 1", 'T')
	must("ROLLBACK", 'I')
	if n := count(); n != 2 {
		t.Fatalf("after ROLLBACK: %d rows", n)
	}

	// An error aborts the transaction: 25P02 until ROLLBACK; COMMIT then
	// rolls back.
	must("BEGIN", 'T')
	must("INSERT INTO t VALUES (3, 'c')", 'T')
	if err := run("INSERT INTO t VALUES (1, 'dup')"); sqlState(err) != "23505" {
		t.Fatalf("duplicate key: %v", err)
	}
	if s := status(); s != 'E' {
		t.Fatalf("after an error: ReadyForQuery %c, want E", s)
	}
	if err := run("SELECT 1"); sqlState(err) != "25P02" {
		t.Fatalf("statement in a failed transaction: %v", err)
	}
	tag, err := conn.PgConn().Exec(ctx, "COMMIT").ReadAll()
	if err != nil || string(tag[0].CommandTag.String()) != "ROLLBACK" {
		t.Fatalf("COMMIT of a failed transaction: %v %v", tag, err)
	}
	if n := count(); n != 2 {
		t.Fatalf("the failed transaction left %d rows", n)
	}

	// Savepoints.
	must("BEGIN", 'T')
	must("INSERT INTO t VALUES (10, 'x')", 'T')
	must("SAVEPOINT s1", 'T')
	must("INSERT INTO t VALUES (11, 'y')", 'T')
	if err := run("INSERT INTO t VALUES (10, 'dup')"); sqlState(err) != "23505" {
		t.Fatalf("duplicate key: %v", err)
	}
	must("ROLLBACK TO SAVEPOINT s1", 'T')
	if err := run("RELEASE SAVEPOINT nope"); sqlState(err) != "3B001" {
		t.Fatalf("unknown savepoint: %v", err)
	}
	must("ROLLBACK TO SAVEPOINT s1", 'T')
	must("RELEASE SAVEPOINT s1", 'T')
	must("COMMIT", 'I')
	var ks []int
	rows, _ := conn.Query(ctx, "SELECT k FROM t ORDER BY k")
	for rows.Next() {
		var k int
		_ = rows.Scan(&k)
		ks = append(ks, k)
	}
	if rows.Err() != nil || fmt.Sprint(ks) != "[1 2 10]" {
		t.Fatalf("after savepoints: %v %v", ks, rows.Err())
	}

	// Misuse outside a transaction.
	if err := run("SAVEPOINT s"); sqlState(err) != "25P01" {
		t.Fatalf("SAVEPOINT outside a transaction: %v", err)
	}
	if err := run("ROLLBACK TO SAVEPOINT s"); sqlState(err) != "25P01" {
		t.Fatalf("ROLLBACK TO outside a transaction: %v", err)
	}
	var notices []string
	cfg := conn.Config().Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Code+" "+n.Message) }
	nconn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close(ctx)
	for _, sql := range []string{"COMMIT", "BEGIN", "BEGIN", "ROLLBACK"} {
		if _, err := nconn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if fmt.Sprint(notices) != "[25P01 there is no transaction in progress 25001 there is already a transaction in progress]" {
		t.Fatalf("warnings: %q", notices)
	}

	// DDL that must check every row of an existing table, and cluster
	// settings, inside a transaction are refused before anything changes
	// (ddl_txn_test.go and ddl_txn_existing_test.go test the DDL a
	// transaction runs).
	must("BEGIN", 'T')
	if err := run("ALTER TABLE t ALTER COLUMN v SET NOT NULL"); sqlState(err) != "0A000" {
		t.Fatalf("DDL in a transaction: %v", err)
	}
	must("ROLLBACK", 'I')
	must("BEGIN", 'T')
	if err := run("SET CLUSTER SETTING cluster.auto_upgrade.enabled = false"); sqlState(err) != "0A000" {
		t.Fatalf("SET CLUSTER SETTING in a transaction: %v", err)
	}
	must("ROLLBACK", 'I')
	// Reading cluster settings is fine inside one.
	must("BEGIN", 'T')
	var ver string
	if err := conn.QueryRow(ctx, "SHOW CLUSTER SETTING version").Scan(&ver); err != nil || ver == "" {
		t.Fatalf("SHOW CLUSTER SETTING in a transaction: %q %v", ver, err)
	}
	must("COMMIT", 'I')
	if err := run("SELECT * FROM u"); sqlState(err) != "42P01" {
		t.Fatalf("the refused DDL created the table: %v", err)
	}

	// A read-only transaction refuses writes.
	must("BEGIN READ ONLY", 'T')
	if err := run("INSERT INTO t VALUES (99, 'ro')"); sqlState(err) != "25006" {
		t.Fatalf("write in a read-only transaction: %v", err)
	}
	must("ROLLBACK", 'I')
}

// TestTxnImplicitMultiStatement: a simple query of several statements is
// one transaction, so its first error undoes the statements before it.
func TestTxnImplicitMultiStatement(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	conn := c.Conn(0)
	err := conn.PgConn().Exec(ctx, "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'); INSERT INTO t VALUES (1, 'dup')").Close()
	if sqlState(err) != "23505" {
		t.Fatalf("multi-statement string: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the failed string left %d rows (%v)", n, err)
	}
	if err := conn.PgConn().Exec(ctx, "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b')").Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("the string committed %d rows (%v)", n, err)
	}
	// BEGIN ... COMMIT in one string.
	if err := conn.PgConn().Exec(ctx, "BEGIN; INSERT INTO t VALUES (3, 'c'); COMMIT").Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after BEGIN; INSERT; COMMIT: %d rows (%v)", n, err)
	}
}

// TestTxnWriteSkewAndRetry: two transactions on different nodes each read
// both rows and write one; the second to commit gets 40001 with
// CockroachDB's wording, and CockroachDB's savepoint retry protocol then
// commits it.
func TestTxnWriteSkewAndRetry(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE doctors (name TEXT PRIMARY KEY, on_call BOOL)")
	c.Exec(0, "INSERT INTO doctors VALUES ('alice', true), ('bob', true)")
	a, b := c.Conn(1), c.Conn(2)
	for _, conn := range []*pgx.Conn{a, b} {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			_, err := conn.Exec(ctx, "SELECT 1 FROM doctors")
			return err
		})
		for _, sql := range []string{"BEGIN", "SAVEPOINT cockroach_restart"} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM doctors WHERE on_call").Scan(&n); err != nil || n != 2 {
			t.Fatalf("on call: %d %v", n, err)
		}
	}
	if _, err := a.Exec(ctx, "UPDATE doctors SET on_call = false WHERE name = 'alice'"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "UPDATE doctors SET on_call = false WHERE name = 'bob'"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"RELEASE SAVEPOINT cockroach_restart", "COMMIT"} {
		if _, err := a.Exec(ctx, sql); err != nil {
			t.Fatalf("a: %s: %v", sql, err)
		}
	}
	_, err := b.Exec(ctx, "RELEASE SAVEPOINT cockroach_restart")
	if sqlState(err) != "40001" || !strings.Contains(err.Error(), "restart transaction") {
		t.Fatalf("the second commit of a write skew: %v, want 40001 restart transaction", err)
	}
	if b.PgConn().TxStatus() != 'E' {
		t.Fatalf("after a retryable error: status %c, want E", b.PgConn().TxStatus())
	}
	// The retry sees alice off call and decides otherwise.
	if _, err := b.Exec(ctx, "ROLLBACK TO SAVEPOINT cockroach_restart"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM doctors WHERE on_call").Scan(&n); err != nil || n != 1 {
		t.Fatalf("on call after the retry: %d %v", n, err)
	}
	for _, sql := range []string{"RELEASE SAVEPOINT cockroach_restart", "COMMIT"} {
		if _, err := b.Exec(ctx, sql); err != nil {
			t.Fatalf("b: %s: %v", sql, err)
		}
	}
	if err := b.QueryRow(ctx, "SELECT count(*) FROM doctors WHERE on_call").Scan(&n); err != nil || n != 1 {
		t.Fatalf("on call at the end: %d %v", n, err)
	}
}

// TestTxnBankThroughEveryNode: transfers in explicit transactions through
// all three nodes, with readers summing every balance in a transaction;
// every read sees the same total and no balance goes negative.
func TestTxnBankThroughEveryNode(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	const accounts, initial = 8, 100
	c.Exec(0, "CREATE TABLE bank (id INT PRIMARY KEY, balance INT)")
	for i := 0; i < accounts; i++ {
		c.Exec(0, fmt.Sprintf("INSERT INTO bank VALUES (%d, %d)", i, initial))
	}
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed, retried int
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for w := 0; w < 6; w++ {
		conn := c.Conn(w % 3)
		testcluster.WaitFor(t, 20*time.Second, func() error {
			_, err := conn.Exec(ctx, "SELECT 1 FROM bank")
			return err
		})
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if w%3 == 2 {
					var sum, neg int
					err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
						rows, err := tx.Query(ctx, "SELECT balance FROM bank")
						if err != nil {
							return err
						}
						sum, neg = 0, 0
						for rows.Next() {
							var b int
							if err := rows.Scan(&b); err != nil {
								return err
							}
							sum += b
							if b < 0 {
								neg++
							}
						}
						return rows.Err()
					})
					if err != nil {
						fail("reader: %v", err)
						return
					}
					if sum != accounts*initial || neg != 0 {
						fail("a reader saw a total of %d and %d negative balances", sum, neg)
					}
					continue
				}
				from, to, amt := (w*7+i)%accounts, (w*3+i*5+1)%accounts, 1+i%13
				if from == to {
					continue
				}
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					var bal int
					if err := tx.QueryRow(ctx, "SELECT balance FROM bank WHERE id = $1", from).Scan(&bal); err != nil {
						return err
					}
					if bal < amt {
						return nil
					}
					if _, err := tx.Exec(ctx, "UPDATE bank SET balance = balance - $1 WHERE id = $2", amt, from); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE bank SET balance = balance + $1 WHERE id = $2", amt, to)
					return err
				})
				mu.Lock()
				switch {
				case err == nil:
					committed++
				case sqlState(err) == "40001":
					retried++
				default:
					failures = append(failures, fmt.Sprintf("transfer: %v", err))
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures; first: %s", len(failures), failures[0])
	}
	if committed == 0 {
		t.Fatal("no transfer committed")
	}
	t.Logf("%d transfers committed, %d got 40001", committed, retried)
	for i := 0; i < 3; i++ {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			// sum of INT8 is a NUMERIC, as in PostgreSQL.
			n, err := queryString(t, c, i, "SELECT sum(balance) FROM bank")
			if want := strconv.Itoa(accounts * initial); err != nil || n != want {
				return fmt.Errorf("node %d: total %s, want %s (%v)", i+1, n, want, err)
			}
			return nil
		})
	}
}

// TestTxnRefusedBeforeFinalization: in a cluster at 2.0 whose binaries are
// 2.1 (a rolling upgrade before finalization), BEGIN is refused with 0A000
// naming 2.1 on every node, and nothing of a string holding it applies.
// After finalization BEGIN works.
func TestTxnRefusedBeforeFinalization(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY)")
	c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '2.0'")
	for i := 0; i < 3; i++ {
		upgradeBinary(c, i, "2.1")
	}
	for i := 0; i < 3; i++ {
		conn := c.Conn(i)
		err := conn.PgConn().Exec(ctx, "INSERT INTO t VALUES (1); BEGIN; INSERT INTO t VALUES (2); COMMIT").Close()
		if sqlState(err) != "0A000" || !strings.Contains(err.Error(), "2.1") {
			t.Fatalf("node %d: BEGIN before finalization: %v", i+1, err)
		}
		if _, err := conn.Exec(ctx, "BEGIN"); sqlState(err) != "0A000" {
			t.Fatalf("node %d: BEGIN: %v", i+1, err)
		}
		if conn.PgConn().TxStatus() != 'I' {
			t.Fatalf("node %d: status %c after a refused BEGIN", i+1, conn.PgConn().TxStatus())
		}
		// Several statements still run one by one, as in 2.0.
		if err := conn.PgConn().Exec(ctx, fmt.Sprintf("UPSERT INTO t VALUES (%d); UPSERT INTO t VALUES (%d)", 10+i, 20+i)).Close(); err != nil {
			t.Fatalf("node %d: multi-statement string at 2.0: %v", i+1, err)
		}
	}
	if n, err := c.QueryInt(0, "SELECT count(*) FROM t"); err != nil || n != 6 {
		t.Fatalf("rows: %d %v (the refused strings must apply nothing)", n, err)
	}
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitVersion(t, c, "2.1")
	conn := c.Conn(2)
	testcluster.WaitFor(t, 20*time.Second, func() error {
		_, err := conn.Exec(ctx, "BEGIN")
		return err
	})
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (100)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// TestTxnCockroachGoExecuteTx: cockroach-go's crdbpgx.ExecuteTx, unmodified,
// retries contended read-modify-write transactions through CockroachDB's
// savepoint protocol until each commits exactly once.
func TestTxnCockroachGoExecuteTx(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE counters (id INT PRIMARY KEY, n INT)")
	c.Exec(0, "INSERT INTO counters VALUES (1, 0)")
	const workers, each = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		conn := c.Conn(w % 3)
		testcluster.WaitFor(t, 20*time.Second, func() error {
			_, err := conn.Exec(ctx, "SELECT 1 FROM counters")
			return err
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := crdbpgx.ExecuteTx(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
					var n int
					if err := tx.QueryRow(ctx, "SELECT n FROM counters WHERE id = 1").Scan(&n); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE counters SET n = $1 WHERE id = 1", n+1)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ExecuteTx: %v", err)
	}
	if n, err := c.QueryInt(0, "SELECT n FROM counters WHERE id = 1"); err != nil || n != workers*each {
		t.Fatalf("counter %d (%v), want %d: an increment was lost or applied twice", n, err, workers*each)
	}
}

// TestTxnLimitsAndEndings: a transaction past the size limit fails with
// 54000 and changes nothing; a dropped connection and an idle-in-transaction
// timeout leave nothing of an open transaction behind.
func TestTxnLimitsAndEndings(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	count := func() int64 {
		t.Helper()
		n, err := c.QueryInt(0, "SELECT count(*) FROM t")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The limit is 32 MiB of buffered writes: 70 statements of 1 MiB go past it.
	conn := c.Conn(0)
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	var err error
	for i := 0; i < 70 && err == nil; i++ {
		_, err = conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", i, big)
	}
	if sqlState(err) != "54000" || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("a transaction past the size limit: %v, want 54000", err)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("the oversized transaction left %d rows", n)
	}

	// A connection dropped inside a transaction commits nothing.
	dropped := c.Conn(0)
	for _, sql := range []string{"BEGIN", "INSERT INTO t VALUES (1, 'a')"} {
		if _, err := dropped.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := dropped.PgConn().Conn().Close(); err != nil {
		t.Fatal(err)
	}

	// idle_in_transaction_session_timeout ends the connection with 25P03.
	idle := c.Conn(0)
	for _, sql := range []string{"SET idle_in_transaction_session_timeout = '300ms'", "BEGIN", "INSERT INTO t VALUES (2, 'b')"} {
		if _, err := idle.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond) // idle past the timeout: what is under test
	if _, err := idle.Exec(ctx, "COMMIT"); err == nil {
		t.Fatal("COMMIT after the idle-in-transaction timeout succeeded")
	} else if sqlState(err) != "25P03" && !idle.IsClosed() {
		t.Fatalf("after the idle timeout: %v (closed %v), want 25P03 and a closed connection", err, idle.IsClosed())
	}
	if n := count(); n != 0 {
		t.Fatalf("ended transactions left %d rows", n)
	}
	// Outside a transaction the timeout does not apply.
	calm := c.Conn(0)
	if _, err := calm.Exec(ctx, "SET idle_in_transaction_session_timeout = '100ms'"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := calm.Exec(ctx, "INSERT INTO t VALUES (3, 'c')"); err != nil {
		t.Fatalf("an idle connection outside a transaction was ended: %v", err)
	}
}

// TestTxnHotRowIncrements: UPDATE t SET n = n + $1 WHERE id = $2 in
// transactions is written blind, so transactions through every node that
// add to one hot row all commit without a serialization failure; the sum is
// exact. A transaction reads its own increment; a row that does not exist
// is not updated (UPDATE 0); a column added later with a DEFAULT counts
// from it.
func TestTxnHotRowIncrements(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE branches (id INT PRIMARY KEY, balance INT, name TEXT)")
	c.Exec(0, "INSERT INTO branches VALUES (1, 0, 'main')")
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		conn := c.Conn(w % 3)
		testcluster.WaitFor(t, 20*time.Second, func() error {
			_, err := conn.Exec(ctx, "SELECT 1 FROM branches")
			return err
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "UPDATE branches SET balance = balance + $1 WHERE id = $2", 2, 1)
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a hot-row increment failed (%s): %v", sqlState(err), err)
	}
	if n, err := c.QueryInt(0, "SELECT balance FROM branches WHERE id = 1"); err != nil || n != 2*workers*each {
		t.Fatalf("balance %d (%v), want %d", n, err, 2*workers*each)
	}

	conn := c.Conn(1)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, "UPDATE branches SET balance = balance - 10 WHERE id = 1"); err != nil || tag.String() != "UPDATE 1" {
		t.Fatalf("%v %v", tag, err)
	}
	if tag, err := tx.Exec(ctx, "UPDATE branches SET balance = balance + 1 WHERE id = 99"); err != nil || tag.String() != "UPDATE 0" {
		t.Fatalf("a missing row: %v %v", tag, err)
	}
	var bal int
	var name string
	if err := tx.QueryRow(ctx, "SELECT balance, name FROM branches WHERE id = 1").Scan(&bal, &name); err != nil || bal != 2*workers*each-10 || name != "main" {
		t.Fatalf("reads its own increment: %d %q %v", bal, name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.Exec(0, "ALTER TABLE branches ADD COLUMN visits INT DEFAULT 100")
	testcluster.WaitFor(t, 20*time.Second, func() error {
		_, err := conn.Exec(ctx, "SELECT visits FROM branches")
		return err
	})
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE branches SET visits = visits + 1, balance = 5 + balance WHERE id = 1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.QueryInt(2, "SELECT visits FROM branches WHERE id = 1"); err != nil || v != 101 {
		t.Fatalf("visits %d (%v), want 101: the DEFAULT of a column the row does not store", v, err)
	}
	if v, err := c.QueryInt(2, "SELECT balance FROM branches WHERE id = 1"); err != nil || v != 2*workers*each-5 {
		t.Fatalf("balance %d (%v)", v, err)
	}
}

// TestTxnKeyLimit: a COPY inside a transaction that would write more keys
// than txn.DefaultMaxWrites (204,800; every row of t writes two, its own
// and its index entry's) fails fast with 54000 and a hint, before anything
// is proposed, instead of committing one Raft command that stalls the data
// group for tens of seconds or times out; nothing is written.
func TestTxnKeyLimit(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "CREATE INDEX t_v ON t (v)")
	conn := c.Conn(0)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := txn.DefaultMaxWrites/2 + 1
	start := time.Now()
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"k", "v"}, pgx.CopyFromFunc(func() func() ([]any, error) {
		i := 0
		return func() ([]any, error) {
			if i++; i > rows {
				return nil, nil
			}
			return []any{int64(i), int64(i)}, nil
		}
	}()))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" || !strings.Contains(pe.Message, fmt.Sprintf("more than the limit of %d keys", txn.DefaultMaxWrites)) ||
		!strings.Contains(pe.Hint, "several transactions") {
		t.Fatalf("a COPY of %d rows (two keys each) in a transaction: %v, want 54000 naming the key limit, with a hint", rows, err)
	}
	t.Logf("refused after %s: %s (HINT: %s)", time.Since(start).Round(time.Millisecond), pe.Message, pe.Hint)
	_ = tx.Rollback(ctx)
	if n, err := c.QueryInt(0, "SELECT count(*) FROM t"); err != nil || n != 0 {
		t.Fatalf("the refused transaction left %d rows (%v)", n, err)
	}
}

// TestTxnSelectForUpdate: SELECT ... FOR UPDATE, what ORMs send to guard a
// read-modify-write, reads the row; kvnode takes no row lock, so of two
// transactions that read a row FOR UPDATE and write it, the second to
// commit fails with 40001 and no update is lost. A read-only transaction
// refuses it (25006), and it needs the UPDATE privilege, as in PostgreSQL.
func TestTxnSelectForUpdate(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE acct (id INT PRIMARY KEY, balance INT)")
	c.Exec(0, "INSERT INTO acct VALUES (1, 100)")
	a, b := c.Conn(0), c.Conn(0)
	read := func(conn *pgx.Conn) int {
		t.Helper()
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := conn.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1 FOR UPDATE").Scan(&bal); err != nil {
			t.Fatal(err)
		}
		return bal
	}
	ba, bb := read(a), read(b)
	if _, err := a.Exec(ctx, "UPDATE acct SET balance = $1 WHERE id = 1", ba+10); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "UPDATE acct SET balance = $1 WHERE id = 1", bb+20); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if _, err := b.Exec(ctx, "COMMIT"); sqlState(err) != "40001" {
		t.Fatalf("second read-modify-write of the row: %v, want 40001 (else +10 is lost)", err)
	}
	var bal int
	if err := a.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&bal); err != nil || bal != 110 {
		t.Fatalf("balance %d (%v), want 110", bal, err)
	}

	if _, err := a.Exec(ctx, "BEGIN READ ONLY"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SELECT * FROM acct FOR SHARE"); sqlState(err) != "25006" ||
		!strings.Contains(err.Error(), "cannot execute SELECT FOR SHARE in a read-only transaction") {
		t.Fatalf("FOR SHARE in a read-only transaction: %v", err)
	}
	if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	c.Exec(0, "CREATE USER reader")
	c.Exec(0, "GRANT SELECT ON acct TO reader")
	cfg := a.Config().Copy()
	cfg.User = "reader"
	r, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if err := r.QueryRow(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&bal); err != nil {
		t.Fatalf("SELECT with the SELECT privilege: %v", err)
	}
	if _, err := r.Exec(ctx, "SELECT balance FROM acct WHERE id = 1 FOR UPDATE"); sqlState(err) != "42501" {
		t.Fatalf("FOR UPDATE without the UPDATE privilege: %v, want 42501", err)
	}
}
