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

// TestCopyToReadsOneState: COPY t TO STDOUT outside a transaction is one
// statement, so it reads the table as one state, as PostgreSQL's does (one
// snapshot), however many rows it streams. Statements that each move one
// unit between the table's first and last rows run meanwhile; every COPY's
// balances must add up to the same total. Reading the table in batches,
// each a read of its own, breaks it: a batch read before a move and one
// read after it see the unit twice or not at all.
func TestCopyToReadsOneState(t *testing.T) {
	const rows, each = 5000, 100
	c := testcluster.Start(t, 1, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec1, _ := onConn(t, ctx, conn)
	exec1("CREATE TABLE acc (k INT PRIMARY KEY, bal INT NOT NULL)")
	var data strings.Builder
	for k := 1; k <= rows; k++ {
		fmt.Fprintf(&data, "%d\t%d\n", k, each)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(data.String()), "COPY acc FROM STDIN"); err != nil {
		t.Fatal(err)
	}

	mover, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer mover.Close(context.Background())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var moves int
	var moveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One statement, one atomic write: the total never changes.
			if _, err := mover.Exec(ctx, fmt.Sprintf(
				"UPDATE acc SET bal = bal + CASE WHEN k = 1 THEN -1 ELSE 1 END WHERE k IN (1, %d)", rows)); err != nil {
				moveErr = err
				return
			}
			moves++
		}
	}()

	var bad []string
	for i := 0; i < 20 && len(bad) == 0; i++ {
		var out strings.Builder
		tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY acc TO STDOUT")
		if err != nil || tag.String() != fmt.Sprintf("COPY %d", rows) {
			close(stop)
			wg.Wait()
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
		if total != rows*each {
			bad = append(bad, fmt.Sprintf("COPY %d: total %d, want %d", i, total, rows*each))
		}
	}
	close(stop)
	wg.Wait()
	if moveErr != nil {
		t.Fatal(moveErr)
	}
	if len(bad) > 0 {
		t.Fatalf("COPY TO read a state no statement left (after %d moves):\n%s", moves, strings.Join(bad, "\n"))
	}
	if moves == 0 {
		t.Fatal("no move ran during the COPYs: the test showed nothing")
	}
	t.Logf("%d moves during the COPYs", moves)
}
