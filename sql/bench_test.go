package sql

import (
	"context"
	"testing"

	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// The benchmarks measure the executor's own cost per statement over the
// in-memory store: parsing, analysis, planning, encoding and evaluation.
// The replicated store's latency comes on top in a real cluster.

func benchSetup(b *testing.B, rows int) pgwire.Session {
	b.Helper()
	tc := newTestCluster(b, 1)
	s := openSession(b, tc.nodes[0])
	mustExec(b, s, "CREATE TABLE acc (aid INT PRIMARY KEY, bid INT NOT NULL, abalance INT NOT NULL, filler STRING)")
	for i := 0; i < rows; i++ {
		mustExec(b, s, "INSERT INTO acc VALUES ($1, 1, 0, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')", int64(i))
	}
	return s
}

func prepare(b *testing.B, s pgwire.Session, q string) pgwire.Prepared {
	b.Helper()
	stmts, err := s.Parse(q)
	if err != nil {
		b.Fatal(err)
	}
	p, err := s.Prepare(context.Background(), stmts[0], nil)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPreparedPointSelect is pgbench -M prepared -b select-only.
func BenchmarkPreparedPointSelect(b *testing.B) {
	s := benchSetup(b, 1000)
	p := prepare(b, s, "SELECT abalance FROM acc WHERE aid = $1")
	params := []types.Datum{int64(0)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		params[0] = int64(i % 1000)
		if _, err := p.Exec(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimplePointSelect parses and analyzes on every execution, as the
// simple query protocol does.
func BenchmarkSimplePointSelect(b *testing.B) {
	s := benchSetup(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := exec(b, s, "SELECT abalance FROM acc WHERE aid = 42"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreparedUpdate is the read-modify-conditional-write path.
func BenchmarkPreparedUpdate(b *testing.B) {
	s := benchSetup(b, 1000)
	p := prepare(b, s, "UPDATE acc SET abalance = abalance + $1 WHERE aid = $2")
	params := []types.Datum{int64(1), int64(0)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		params[1] = int64(i % 1000)
		if _, err := p.Exec(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPreparedInsert(b *testing.B) {
	s := benchSetup(b, 0)
	p := prepare(b, s, "INSERT INTO acc VALUES ($1, $2, $3, $4)")
	params := []types.Datum{int64(0), int64(1), int64(0), "filler"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		params[0] = int64(i)
		if _, err := p.Exec(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangeScan100(b *testing.B) {
	s := benchSetup(b, 1000)
	p := prepare(b, s, "SELECT aid, abalance FROM acc WHERE aid >= $1 ORDER BY aid LIMIT 100")
	params := []types.Datum{int64(0)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		params[0] = int64(i % 900)
		if _, err := p.Exec(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}
