package sql

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/sqltest"
	"github.com/kvnode/kvnode/sql/types"
)

// exec runs one statement with parameters and returns the result.
func exec(t testing.TB, s pgwire.Session, query string, params ...types.Datum) (pgwire.Result, error) {
	t.Helper()
	stmts, err := s.Parse(query)
	if err != nil {
		return pgwire.Result{}, err
	}
	if len(stmts) != 1 {
		t.Fatalf("want one statement in %q", query)
	}
	p, err := s.Prepare(context.Background(), stmts[0], nil)
	if err != nil {
		return pgwire.Result{}, err
	}
	return p.Exec(context.Background(), params)
}

func mustExec(t testing.TB, s pgwire.Session, query string, params ...types.Datum) pgwire.Result {
	t.Helper()
	res, err := exec(t, s, query, params...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return res
}

func openSession(t testing.TB, e *Executor) pgwire.Session {
	t.Helper()
	s, err := e.NewSession(context.Background(), pgwire.SessionArgs{User: "root", Database: "defaultdb"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConcurrentIncrements runs read-modify-write statements from many
// sessions on three nodes against the same rows: with conditional writes
// and retries, no increment may be lost.
func TestConcurrentIncrements(t *testing.T) {
	tc := newTestCluster(t, 3)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE c (k INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, s, "INSERT INTO c VALUES (1, 0), (2, 0)")

	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			sess := openSession(t, tc.nodes[w%3])
			for i := 0; i < perWorker; i++ {
				var q string
				switch i % 3 {
				case 0:
					q = "UPDATE c SET n = n + 1 WHERE k = 1"
				case 1:
					q = "INSERT INTO c VALUES (1, 1) ON CONFLICT (k) DO UPDATE SET n = c.n + excluded.n"
				default:
					q = "UPDATE c SET n = n + 1 WHERE k >= 1 AND k <= 2"
				}
				if _, err := exec(t, sess, q); err != nil {
					errs <- fmt.Errorf("worker %d: %s: %w", w, q, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Only contention exhaustion is acceptable, and with this little
		// contention it should not happen.
		t.Fatal(err)
	}
	res := mustExec(t, s, "SELECT k, n FROM c ORDER BY k")
	// Every statement adds 1 to k=1; every third also to k=2.
	var want1, want2 int64
	for i := 0; i < perWorker; i++ {
		want1++
		if i%3 == 2 {
			want2++
		}
	}
	want1 *= workers
	want2 *= workers
	if got := res.Rows; got[0][1] != want1 || got[1][1] != want2 {
		t.Fatalf("lost updates: got %v, want [1 %d] [2 %d]", got, want1, want2)
	}
}

// TestConcurrentInsertSameKey: of many concurrent INSERTs of one key,
// exactly one succeeds and the others get 23505.
func TestConcurrentInsertSameKey(t *testing.T) {
	tc := newTestCluster(t, 3)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE u (k INT PRIMARY KEY, who INT)")
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		var ok, dup atomic.Int32
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				sess := openSession(t, tc.nodes[w%3])
				_, err := exec(t, sess, "INSERT INTO u VALUES ($1, $2)", int64(round), int64(w))
				switch {
				case err == nil:
					ok.Add(1)
				case pgerror.GetCode(err) == pgerror.CodeUniqueViolation:
					dup.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}(w)
		}
		wg.Wait()
		if ok.Load() != 1 || dup.Load() != 5 {
			t.Fatalf("round %d: %d succeeded, %d duplicates", round, ok.Load(), dup.Load())
		}
	}
}

// TestRetryOnRace makes a concurrent writer change the row between the
// statement's read and its write, deterministically: the conditional write
// fails, the statement re-reads and applies on the new value.
func TestRetryOnRace(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE r (k INT PRIMARY KEY, n INT)")
	mustExec(t, s, "INSERT INTO r VALUES (1, 10)")
	other := openSession(t, tc.nodes[0])

	for _, q := range []string{
		"UPDATE r SET n = n * 2 WHERE k = 1",
		"INSERT INTO r VALUES (1, 0) ON CONFLICT (k) DO UPDATE SET n = r.n * 2",
		"UPSERT INTO r (k) VALUES (1)", // all columns given: blind write, no race
	} {
		t.Run(q, func(t *testing.T) {
			mustExec(t, s, "UPSERT INTO r VALUES (1, 10)")
			var raced atomic.Bool
			tc.db.SetBeforeWrite(func(ops []kvpb.Op) error {
				if raced.CompareAndSwap(false, true) {
					// The concurrent writer: +5 lands first.
					tc.db.SetBeforeWrite(nil)
					if _, err := exec(t, other, "UPDATE r SET n = n + 5 WHERE k = 1"); err != nil {
						t.Error(err)
					}
				}
				return nil
			})
			defer tc.db.SetBeforeWrite(nil)
			mustExec(t, s, q)
			res := mustExec(t, s, "SELECT n FROM r WHERE k = 1")
			want := int64(30) // (10 + 5) * 2: the doubling saw the +5
			if strings.HasPrefix(q, "UPSERT") {
				want = 15 // UPSERT (k) keeps n; the +5 stays
			}
			if got := res.Rows[0][0]; got != want {
				t.Fatalf("n = %v, want %d", got, want)
			}
		})
	}

	t.Run("delete", func(t *testing.T) {
		mustExec(t, s, "UPSERT INTO r VALUES (1, 10), (2, 20)")
		var raced atomic.Bool
		tc.db.SetBeforeWrite(func(ops []kvpb.Op) error {
			if raced.CompareAndSwap(false, true) {
				tc.db.SetBeforeWrite(nil)
				// Row 2 moves out of the DELETE's WHERE before it writes.
				if _, err := exec(t, other, "UPDATE r SET n = 0 WHERE k = 2"); err != nil {
					t.Error(err)
				}
			}
			return nil
		})
		defer tc.db.SetBeforeWrite(nil)
		res := mustExec(t, s, "DELETE FROM r WHERE n >= 10")
		if res.Tag != "DELETE 1" {
			t.Fatalf("tag %q", res.Tag)
		}
		res = mustExec(t, s, "SELECT k, n FROM r")
		if len(res.Rows) != 1 || res.Rows[0][0] != int64(2) {
			t.Fatalf("rows %v", res.Rows)
		}
	})
}

// TestUpdatePrimaryKey moves rows between keys, including onto a key that
// another row of the same statement leaves.
func TestUpdatePrimaryKey(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE m (k INT PRIMARY KEY, v STRING)")
	mustExec(t, s, "INSERT INTO m VALUES (1, 'a'), (2, 'b'), (3, 'c'), (10, 'x')")
	mustExec(t, s, "UPDATE m SET k = k + 1 WHERE k <= 3")
	res := mustExec(t, s, "SELECT k, v FROM m ORDER BY k")
	if got := fmt.Sprint(res.Rows); got != "[[2 a] [3 b] [4 c] [10 x]]" {
		t.Fatalf("got %s", got)
	}
	_, err := exec(t, s, "UPDATE m SET k = 10 WHERE k = 2")
	if pgerror.GetCode(err) != pgerror.CodeUniqueViolation {
		t.Fatalf("moving onto an existing key: %v", err)
	}
	_, err = exec(t, s, "UPDATE m SET k = 7 WHERE k < 5")
	if pgerror.GetCode(err) != pgerror.CodeUniqueViolation {
		t.Fatalf("moving two rows onto one key: %v", err)
	}
	if n := mustExec(t, s, "SELECT count(*) FROM m").Rows[0][0]; n != int64(4) {
		t.Fatalf("a failed UPDATE changed the table: %v rows", n)
	}
}

// TestRestart checks that a node's schema survives a restart (the catalog
// is reloaded from the local store) and that DDL after it wins over DDL
// before it.
func TestRestart(t *testing.T) {
	db := sqltest.NewMemDB()
	local := sqltest.NewMemStore()
	cfg := Config{DB: db, Local: local, NodeID: func() nodeid.ID { return 1 }, BinaryVersion: "1.0"}
	e1, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := openSession(t, e1)
	mustExec(t, s, "CREATE TABLE a (k INT PRIMARY KEY, v STRING)")
	mustExec(t, s, "INSERT INTO a VALUES (1, 'kept')")
	mustExec(t, s, "CREATE TABLE gone (k INT PRIMARY KEY)")
	mustExec(t, s, "DROP TABLE gone")
	digest := e1.Catalog().Digest()

	// Restart with a wall clock far in the past: the HLC must still order
	// new changes after the persisted ones.
	cfg.Clock = catalog.NewClock(func() int64 { return 1 }, cfg.NodeID)
	e2, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Catalog().Digest() != digest {
		t.Fatal("schema differs after restart")
	}
	s2 := openSession(t, e2)
	if got := mustExec(t, s2, "SELECT v FROM a WHERE k = 1").Rows; len(got) != 1 || got[0][0] != "kept" {
		t.Fatalf("rows after restart: %v", got)
	}
	mustExec(t, s2, "ALTER TABLE a ADD COLUMN w INT")
	mustExec(t, s2, "CREATE TABLE gone (k INT PRIMARY KEY)")
	if _, ok := e2.Catalog().Get("gone"); !ok {
		t.Fatal("re-created table not visible")
	}
}

// TestShowCreateTableRoundTrip: the output of SHOW CREATE TABLE creates an
// identical table.
func TestShowCreateTableRoundTrip(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	for i, ddl := range []string{
		"CREATE TABLE t%d (k INT PRIMARY KEY, v STRING NOT NULL DEFAULT 'x''y', f FLOAT DEFAULT -1.5, b BYTES DEFAULT x'00', ok BOOL DEFAULT (1 = 1))",
		"CREATE TABLE t%d (a STRING, b INT, \"Odd Name\" INT DEFAULT 2 * 3, PRIMARY KEY (b, a))",
		"CREATE TABLE t%d (v STRING)",
	} {
		name := fmt.Sprintf("t%d", i)
		mustExec(t, s, fmt.Sprintf(ddl, i))
		show := mustExec(t, s, "SHOW CREATE TABLE "+name).Rows[0][1].(string)
		mustExec(t, s, "DROP TABLE "+name)
		mustExec(t, s, show)
		again := mustExec(t, s, "SHOW CREATE TABLE "+name).Rows[0][1].(string)
		if again != show {
			t.Fatalf("round trip changed the table:\n%s\n%s", show, again)
		}
		if _, err := parser.ParseOne(show); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUniqueRowID(t *testing.T) {
	tc := newTestCluster(t, 2)
	seen := map[int64]bool{}
	for i := 0; i < 1000; i++ {
		for _, e := range tc.nodes {
			id := e.uniqueRowID()
			if seen[id] {
				t.Fatalf("duplicate rowid %d", id)
			}
			seen[id] = true
		}
	}
}

// recordingPeers records pushes and checks that they carry a deadline.
type recordingPeers struct {
	mu     sync.Mutex
	pushes []string
}

func (p *recordingPeers) PushSchema(ctx context.Context, descs []catalog.TableDescriptor) {
	if _, ok := ctx.Deadline(); !ok {
		panic("PushSchema called without a deadline")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range descs {
		p.pushes = append(p.pushes, fmt.Sprintf("%s/v%d/dropped=%v", d.Name, d.Version, d.Dropped))
	}
}

func TestPushAfterDDL(t *testing.T) {
	peers := &recordingPeers{}
	e, err := NewExecutor(Config{DB: sqltest.NewMemDB(), Local: sqltest.NewMemStore(), Peers: peers,
		BinaryVersion: "1.0", PushTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	e.Catalog().OnChange(func() { changes++ })
	s := openSession(t, e)
	mustExec(t, s, "CREATE TABLE p (k INT PRIMARY KEY)")
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS p (k INT PRIMARY KEY)")
	mustExec(t, s, "ALTER TABLE p ADD COLUMN v INT")
	mustExec(t, s, "DROP TABLE p")
	want := "[p/v1/dropped=false p/v2/dropped=false p/v3/dropped=true]"
	if got := fmt.Sprint(peers.pushes); got != want {
		t.Fatalf("pushes %s, want %s", got, want)
	}
	if changes != 3 {
		t.Fatalf("OnChange ran %d times", changes)
	}
}

// TestStatementTimeout: statement_timeout cancels a statement stuck in the
// store with 57014.
func TestStatementTimeout(t *testing.T) {
	tc := newTestCluster(t, 1)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE st (k INT PRIMARY KEY)")
	mustExec(t, s, "SET statement_timeout = 50")
	tc.db.SetBeforeWrite(func([]kvpb.Op) error {
		time.Sleep(100 * time.Millisecond)
		return context.DeadlineExceeded
	})
	defer tc.db.SetBeforeWrite(nil)
	_, err := exec(t, s, "INSERT INTO st VALUES (1)")
	if pgerror.GetCode(err) != pgerror.CodeQueryCanceled {
		t.Fatalf("got %v", err)
	}
}

// FuzzExec runs arbitrary SQL against a small schema: no input may panic,
// and every error must carry a SQLSTATE other than XX000.
func FuzzExec(f *testing.F) {
	for _, q := range []string{
		"SELECT * FROM t WHERE k = 1",
		"INSERT INTO t VALUES (1, 'a', 1.5, x'00', true)",
		"UPDATE t SET v = v || 'x', f = f * 2 WHERE k BETWEEN 1 AND 3",
		"DELETE FROM t WHERE b IS NULL OR ok",
		"SELECT count(*), sum(k), min(v), max(f), avg(k) FROM t WHERE v LIKE 'a%'",
		"INSERT INTO t VALUES (2, 'b', 0, NULL, NULL) ON CONFLICT (k) DO UPDATE SET f = excluded.f / t.f",
		"SELECT k / 0, -k, abs(k), substr(v, k), coalesce(f, k) FROM t ORDER BY 2 DESC LIMIT 3",
		"SELECT CAST(v AS INT), v::FLOAT, b::STRING, ok::INT FROM t",
		"ALTER TABLE t ADD COLUMN z INT DEFAULT 3",
		"UPSERT INTO t (k, v) VALUES (3, 'c')",
		"SELECT * FROM crdb_internal.gossip_nodes WHERE node_id IN (1, 3) ORDER BY address",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		tc := newTestCluster(t, 1)
		s := openSession(t, tc.nodes[0])
		mustExec(t, s, "CREATE TABLE t (k INT PRIMARY KEY, v STRING, f FLOAT, b BYTES, ok BOOL)")
		mustExec(t, s, "INSERT INTO t VALUES (1, 'a', 1.5, x'00', true), (2, NULL, -0.5, NULL, false), (3, 'c', NULL, x'ff', NULL)")
		stmts, err := s.Parse(q)
		if err != nil {
			return
		}
		for _, st := range stmts {
			p, err := s.Prepare(context.Background(), st, nil)
			if err == nil {
				params := make([]types.Datum, len(p.ParamTypes()))
				var res pgwire.Result
				res, err = p.Exec(context.Background(), params)
				if err == nil {
					for _, r := range res.Rows {
						for i, d := range r {
							if d != nil && types.TypeOf(d) != p.Columns()[i].Type {
								t.Fatalf("%q: column %d has type %s but holds %T", q, i, p.Columns()[i].Type, d)
							}
						}
					}
				}
			}
			if err != nil && pgerror.GetCode(err) == pgerror.CodeInternal {
				t.Fatalf("%q: internal error: %+v", q, err)
			}
		}
	})
}

// TestDDLConflictsWithMergedChange: a newer change to the same table merged
// from a peer while a DDL is between reading the descriptor and applying
// its own makes the DDL fail with 40001; retrying applies it on top.
func TestDDLConflictsWithMergedChange(t *testing.T) {
	tc := newTestCluster(t, 1)
	e := tc.nodes[0]
	s := openSession(t, e)
	mustExec(t, s, "CREATE TABLE t (k INT PRIMARY KEY)")
	var once atomic.Bool
	tc.db.SetBeforeIncrement(func([]byte) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		// A peer's ADD COLUMN, stamped an hour in the future, arrives.
		cur, _ := e.Catalog().Get("t")
		peer := cur.Clone()
		peer.Columns = append(peer.Columns, catalog.ColumnDescriptor{ID: 99, Name: "from_peer", Type: types.String, Nullable: true})
		peer.NextColumnID = 100
		peer.Version++
		peer.ModTime = catalog.Timestamp{WallTime: time.Now().Add(time.Hour).UnixNano(), NodeID: 2}
		if _, err := e.Catalog().Merge([]catalog.TableDescriptor{*peer}); err != nil {
			t.Error(err)
		}
	})
	defer tc.db.SetBeforeIncrement(nil)
	_, err := exec(t, s, "ALTER TABLE t ADD COLUMN mine INT")
	if pgerror.GetCode(err) != pgerror.CodeSerializationFailure {
		t.Fatalf("want 40001, got %v", err)
	}
	mustExec(t, s, "ALTER TABLE t ADD COLUMN mine INT")
	d, _ := e.Catalog().Get("t")
	if d.ColumnIndex("from_peer") < 0 || d.ColumnIndex("mine") < 0 {
		t.Fatalf("columns after retry: %+v", d.Columns)
	}
}
