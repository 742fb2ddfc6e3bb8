package server_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestSizeFunctions: pg_relation_size and friends estimate from the node's
// store what a table's rows and its index's entries take on disk (once
// flushed into sstables: the estimate does not count the memtable), and
// answer as PostgreSQL does for what has no storage or does not exist.
func TestSizeFunctions(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.Exec(0, "CREATE TABLE big (k INT8 PRIMARY KEY, v TEXT)")
	c.Exec(0, "CREATE INDEX big_v ON big (v)")
	c.Exec(0, "CREATE TABLE small (k INT8 PRIMARY KEY)")
	for start := 0; start < 20000; start += 1000 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO big VALUES ")
		for i := start; i < start+1000; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "(%d, '%x')", i, sha256.Sum256([]byte(fmt.Sprint(i))))
		}
		c.Exec(0, sb.String())
	}
	if err := c.Nodes[0].Server.TestingFlushStore(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var rel, table, idx, total, index, pkey, small, db int64
	var missing, virt, fsm *int64
	if err := conn.QueryRow(ctx, `SELECT pg_relation_size('big'), pg_table_size('big'), pg_indexes_size('big'),
		pg_total_relation_size('big'), pg_relation_size('big_v'), pg_relation_size('big_pkey'),
		pg_total_relation_size('small'), pg_database_size(current_database()),
		pg_relation_size(123456789), pg_relation_size('pg_class'::regclass), pg_relation_size('big', 'fsm')`).
		Scan(&rel, &table, &idx, &total, &index, &pkey, &small, &db, &missing, &virt, &fsm); err != nil {
		t.Fatal(err)
	}
	// 20,000 rows of about 80 bytes (64 random hex digits), and as many
	// index entries.
	if rel < 200_000 || rel > 10_000_000 || table != rel || idx < 200_000 || total != rel+idx || index != idx {
		t.Errorf("big: relation %d, table %d, indexes %d, total %d, its index %d", rel, table, idx, total, index)
	}
	// An empty table has no sstable of its own, but one that straddles its
	// span is counted in proportion: a few kB at most, nothing like big.
	if pkey != 0 || small > rel/100 || db < total {
		t.Errorf("primary key index %d (the rows are the table's), empty table %d, database %d (below big's %d)", pkey, small, db, total)
	}
	if missing != nil || virt == nil || *virt != 0 || fsm == nil || *fsm != 0 {
		t.Errorf("unknown OID %v (want NULL), a catalog table %v and the fsm fork %v (want 0)", missing, virt, fsm)
	}
	var pretty string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_total_relation_size('big'))").Scan(&pretty); err != nil || pretty == "0 bytes" {
		t.Errorf("pg_size_pretty: %q, %v", pretty, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_database_size('nosuchdb')"); err == nil {
		t.Error("pg_database_size of a missing database: no error")
	}
	if _, err := conn.Exec(ctx, "SELECT pg_relation_size('big', 'nosuchfork')"); err == nil {
		t.Error("pg_relation_size with a bad fork: no error")
	}
}
