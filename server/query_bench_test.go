package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kvnode/kvnode/server/testcluster"
)

// BenchmarkJoinAndGroupBy runs scripts/bench.sh's join and groupby queries
// (issue 19) against one real node: Pebble, the data group's leased reads,
// pgwire's extended protocol (pgx prepares each query once, as pgbench -M
// prepared does). The in-process benchmark of the same name in package sql
// measures the executor alone over the in-memory store.
//
//	go test -run '^$' -bench BenchmarkJoinAndGroupBy -benchtime=50x ./server/
func BenchmarkJoinAndGroupBy(b *testing.B) {
	c := testcluster.Start(b, 1, testcluster.Options{})
	ctx := context.Background()
	const rows = 100000
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	for start := 1; start <= rows; start += 1000 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO kv (k, v) VALUES ")
		for i := start; i < start+1000 && i <= rows; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "(%d, 'v%d')", i, i)
		}
		c.Exec(0, sb.String())
	}
	c.Exec(0, "CREATE TABLE kj (id INT PRIMARY KEY, k INT NOT NULL)")
	var sb strings.Builder
	sb.WriteString("INSERT INTO kj (id, k) VALUES ")
	for i := 1; i <= 1000; i++ {
		if i > 1 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "(%d, %d)", i, (i-1)*rows/1000+1)
	}
	c.Exec(0, sb.String())
	conn := c.Conn(0)
	for _, q := range []struct{ name, sql string }{
		{"join", "SELECT count(*), sum(length(kv.v)) FROM kj JOIN kv ON kv.k = kj.k"},
		{"groupby", "SELECT k % 16, count(*), min(v) FROM kv GROUP BY k % 16"},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, err := conn.Query(ctx, q.sql)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for r.Next() {
					n++
				}
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				if want := map[string]int{"join": 1, "groupby": 16}[q.name]; n != want {
					b.Fatalf("%s: %d rows, want %d", q.name, n, want)
				}
			}
		})
	}
}
