package sql

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/kvnode/kvnode/sql/pgwire"
)

// TestCatalogRowsFollowTheCatalog checks the catalog rows kept per catalog
// version (catalogSnapshot.cachedRows): a statement after a CREATE TABLE
// sees the table, and sessions reading the shared rows at once, each
// sorting them its own way, while tables are created, each get a
// consistent, correctly ordered answer (run with -race).
func TestCatalogRowsFollowTheCatalog(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	tables := func(s pgwire.Session) int64 {
		t.Helper()
		return mustExec(t, s, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 2200").Rows[0][0].(int64)
	}
	const n = 8
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, order := range []string{"ASC", "DESC"} {
		r := openSession(t, tc.nodes[0])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := exec(t, r, "SELECT relname FROM pg_class WHERE relkind = 'r' ORDER BY relname "+order)
				if err != nil {
					errs <- err
					return
				}
				names := make([]string, len(res.Rows))
				for i, row := range res.Rows {
					names[i] = row[0].(string)
				}
				sorted := sort.SliceIsSorted(names, func(i, j int) bool { return names[i] < names[j] })
				if order == "DESC" {
					sorted = sort.SliceIsSorted(names, func(i, j int) bool { return names[i] > names[j] })
				}
				if !sorted {
					errs <- fmt.Errorf("ORDER BY relname %s: %q", order, names)
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if got := tables(s); got != int64(i) {
			t.Fatalf("before CREATE TABLE t%d: %d tables in pg_class, want %d", i, got, i)
		}
		mustExec(t, s, fmt.Sprintf("CREATE TABLE t%d (k INT PRIMARY KEY)", i))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tables(s); got != n {
		t.Fatalf("after %d CREATE TABLEs: %d tables in pg_class", n, got)
	}
}
