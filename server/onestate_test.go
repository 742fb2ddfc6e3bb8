package server_test

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvnode/kvnode/server/testcluster"
)

// Statements outside a transaction that read several rows read them from
// one state, as PostgreSQL's statements read one snapshot. Each test loads
// a table whose balances add up to a total, runs statements that each move
// one unit between two rows (one atomic write: the total never changes)
// while it reads, and checks every read's total. Reads of the rows one
// after the other, each a read of its own, break it: one read before a
// move and one after it see the unit twice or not at all.

const oneStateEach = 100 // each row's starting balance

// oneStateTable creates acc (k, bal) with rows 1..rows through conn.
func oneStateTable(t *testing.T, ctx context.Context, conn *pgx.Conn, rows int) {
	t.Helper()
	exec1, _ := onConn(t, ctx, conn)
	exec1("CREATE TABLE acc (k INT PRIMARY KEY, bal INT NOT NULL)")
	var data strings.Builder
	for k := 1; k <= rows; k++ {
		fmt.Fprintf(&data, "%d\t%d\n", k, oneStateEach)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(data.String()), "COPY acc FROM STDIN"); err != nil {
		t.Fatal(err)
	}
}

// moveUnits moves one unit from row a to row b of acc, again and again, on
// a connection of its own, until the returned function is called; that
// function returns how many moves ran, and fails the test if one failed.
func moveUnits(t *testing.T, ctx context.Context, url string, a, b int) (stop func() int) {
	t.Helper()
	mover, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var moves int
	var moveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := mover.Exec(ctx, fmt.Sprintf(
				"UPDATE acc SET bal = bal + CASE WHEN k = %d THEN -1 ELSE 1 END WHERE k IN (%d, %d)", a, a, b)); err != nil {
				moveErr = err
				return
			}
			moves++
		}
	}()
	return func() int {
		t.Helper()
		close(done)
		wg.Wait()
		mover.Close(context.Background())
		if moveErr != nil {
			t.Fatal(moveErr)
		}
		if moves == 0 {
			t.Fatal("no move ran during the reads: the test showed nothing")
		}
		return moves
	}
}

// TestCopyToReadsOneState: COPY t TO STDOUT, however many rows it streams.
func TestCopyToReadsOneState(t *testing.T) {
	const rows = 5000
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	oneStateTable(t, ctx, conn, rows)
	stop := moveUnits(t, ctx, c.URL(0), 1, rows)
	var bad []string
	for i := 0; i < 20 && len(bad) == 0; i++ {
		var out strings.Builder
		tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY acc TO STDOUT")
		if err != nil || tag.String() != fmt.Sprintf("COPY %d", rows) {
			stop()
			t.Fatalf("COPY TO: %v %v", tag, err)
		}
		total := 0
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			_, bal, _ := strings.Cut(sc.Text(), "\t")
			n, err := strconv.Atoi(bal)
			if err != nil {
				t.Fatalf("COPY TO line %q: %v", sc.Text(), err)
			}
			total += n
		}
		if total != rows*oneStateEach {
			bad = append(bad, fmt.Sprintf("COPY %d: total %d, want %d", i, total, rows*oneStateEach))
		}
	}
	moves := stop()
	if len(bad) > 0 {
		t.Fatalf("COPY TO read a state no statement left (after %d moves):\n%s", moves, strings.Join(bad, "\n"))
	}
}

// TestPointLookupsReadOneState: a SELECT by a list of primary keys.
func TestPointLookupsReadOneState(t *testing.T) {
	const rows = 100
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	oneStateTable(t, ctx, conn, rows)
	stop := moveUnits(t, ctx, c.URL(0), 1, rows)
	var bad []string
	for i := 0; i < 2000 && len(bad) < 3; i++ {
		var total int64
		// Both orders: the rows are read in key order either way.
		q := fmt.Sprintf("SELECT sum(bal)::INT8 FROM acc WHERE k IN (1, %d)", rows)
		if i%2 == 1 {
			q = fmt.Sprintf("SELECT sum(bal)::INT8 FROM acc WHERE k IN (%d, 1)", rows)
		}
		if err := conn.QueryRow(ctx, q).Scan(&total); err != nil {
			stop()
			t.Fatal(err)
		}
		if total != 2*oneStateEach {
			bad = append(bad, fmt.Sprintf("read %d: total %d, want %d", i, total, 2*oneStateEach))
		}
	}
	moves := stop()
	if len(bad) > 0 {
		t.Fatalf("a SELECT by keys read a state no statement left (after %d moves):\n%s", moves, strings.Join(bad, "\n"))
	}
}
