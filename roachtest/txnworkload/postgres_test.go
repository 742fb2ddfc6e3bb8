package txnworkload

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/roachtest/elle"
	"github.com/kvnode/kvnode/testutil/realpg"
)

// postgres is a throwaway PostgreSQL server on a loopback port.
type postgres struct {
	*realpg.Server
	url string // of database postgres
}

// startPostgres starts a throwaway PostgreSQL server (testutil/realpg),
// stopped at the end of the test. It skips the test when PostgreSQL is not
// installed, or when it cannot run (root without a user nobody).
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bin := realpg.BinDir("")
	if bin == "" {
		t.Skip("no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql): the checkers' validation against PostgreSQL is skipped")
	}
	if _, err := realpg.RunAs(); err != nil {
		t.Skip(err)
	}
	s := realpg.Start(t, bin, realpg.Options{Locale: "C", Settings: []string{"max_connections=200", "deadlock_timeout=50ms"}})
	return &postgres{Server: s, url: s.URL("postgres", "postgres")}
}

// database creates a fresh database and returns its URL.
func (pg *postgres) database(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return pg.URL("postgres", name)
}

// runAll sets up and runs the three workloads at once for d against
// url (as three targets, so that the clients spread as over three nodes)
// at the given isolation level, and returns their results.
func runAll(t *testing.T, url string, iso pgx.TxIsoLevel, seed int64, d time.Duration) (*ListAppendResult, *BankResult, *WriteSkewResult) {
	t.Helper()
	ctx := context.Background()
	var targets []Target
	for _, n := range []string{"a", "b", "c"} {
		targets = append(targets, Target{Name: "pg-" + n, URL: url})
	}
	cfg := Config{Targets: targets, Seed: seed, Clients: 3, Isolation: iso, Think: time.Millisecond}
	exec := func(ctx context.Context, stmt string, args ...any) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, stmt, args...)
		return err
	}
	ws := []Workload{NewListAppend(cfg, ListAppendOptions{}), NewBank(cfg, BankOptions{}), NewWriteSkew(cfg)}
	for _, w := range ws {
		if err := w.Setup(ctx, exec); err != nil {
			t.Fatalf("%s setup: %v", w.Name(), err)
		}
	}
	for _, w := range ws {
		w.Start()
	}
	time.Sleep(d) // the workloads' run time, not a wait for a condition
	var res []Result
	for _, w := range ws {
		w.Stop()
	}
	for _, w := range ws {
		r, err := w.Check(ctx)
		if err != nil {
			t.Fatalf("%s check: %v", w.Name(), err)
		}
		t.Logf("%s at %q:\n%s", w.Name(), iso, r)
		res = append(res, r)
	}
	return res[0].(*ListAppendResult), res[1].(*BankResult), res[2].(*WriteSkewResult)
}

// TestCheckersAgainstPostgres proves that the checkers can fail: against a
// real PostgreSQL, SERIALIZABLE must give clean results, while REPEATABLE
// READ (snapshot isolation) must show write skew (G2 in the list-append
// history, and both doctors off call) and READ COMMITTED must show lost
// updates and inconsistent snapshots. It is skipped when PostgreSQL is not
// installed.
func TestCheckersAgainstPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	pg := startPostgres(t)
	const d = 4 * time.Second

	t.Run("serializable", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_serializable"), pgx.Serializable, 1, d)
		for _, r := range []Result{la, bank, ws} {
			if !r.OK() {
				t.Errorf("PostgreSQL at SERIALIZABLE failed a check:\n%s", r)
			}
		}
		if la.Counts.OK < 100 || bank.Reads < 10 || ws.Rounds < 10 {
			t.Errorf("too little work to mean anything: %d list-append commits, %d bank reads, %d write-skew rounds", la.Counts.OK, bank.Reads, ws.Rounds)
		}
	})

	t.Run("repeatable-read", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_repeatable_read"), pgx.RepeatableRead, 2, d)
		if ws.OK() || ws.Both == 0 {
			t.Errorf("write skew not found at REPEATABLE READ:\n%s", ws)
		}
		if !la.Report.Has(elle.G2) {
			t.Errorf("list-append: no G2 at REPEATABLE READ:\n%s", la)
		}
		// Snapshot isolation forbids every weaker anomaly.
		for _, typ := range la.Report.Types() {
			if typ != elle.G2 {
				t.Errorf("list-append: %s at REPEATABLE READ, which snapshot isolation forbids:\n%s", typ, la)
			}
		}
		if !bank.OK() {
			t.Errorf("bank: snapshot isolation keeps the bank's invariants, yet:\n%s", bank)
		}
	})

	t.Run("read-committed", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_read_committed"), pgx.ReadCommitted, 3, d)
		if la.OK() {
			t.Errorf("list-append: nothing found at READ COMMITTED:\n%s", la)
		}
		if bank.OK() {
			t.Errorf("bank: nothing found at READ COMMITTED:\n%s", bank)
		}
		if ws.OK() {
			t.Errorf("write skew not found at READ COMMITTED:\n%s", ws)
		}
	})
}
