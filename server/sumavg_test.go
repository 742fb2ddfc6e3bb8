package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestSumAvgTypesAcrossUpgrade: in a cluster at 2.0 whose nodes run 2.0 and
// 2.1 binaries, every gateway answers sum and avg with release 2.0's types
// (sum(int) INT8, avg(int) FLOAT8) and the same values; once every binary
// is 2.1 and the cluster finalizes, every gateway answers with
// PostgreSQL's (sum(int8) and avg(int) NUMERIC, sql/sumavg.go).
func TestSumAvgTypesAcrossUpgrade(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, f FLOAT)")
	c.Exec(0, "INSERT INTO t VALUES (1, 1.5), (2, 2.5)")
	c.Exec(0, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '2.0'")
	upgradeBinary(c, 2, "2.1") // a rolling upgrade, one node of three done

	const q = "SELECT sum(k), avg(k), sum(f), avg(f) FROM t"
	answer := func(i int) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL(i))
		if err != nil {
			return "", err
		}
		defer func() { _ = conn.Close(context.Background()) }()
		res, err := conn.PgConn().Exec(ctx, q).ReadAll()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, f := range res[0].FieldDescriptions {
			fmt.Fprintf(&b, "%s:%d ", f.Name, f.DataTypeOID)
		}
		for _, v := range res[0].Rows[0] {
			fmt.Fprintf(&b, "%q ", v)
		}
		return b.String(), nil
	}
	expect := func(want string) {
		t.Helper()
		testcluster.WaitFor(t, 30*time.Second, func() error {
			for i := range c.Nodes {
				got, err := answer(i)
				if err != nil {
					return fmt.Errorf("node %d (binary %s): %w", i+1, c.Nodes[i].Config.Knobs.BinaryVersion, err)
				}
				if got != want {
					return fmt.Errorf("node %d (binary %s): %s, want %s", i+1, c.Nodes[i].Config.Knobs.BinaryVersion, got, want)
				}
			}
			return nil
		})
	}
	expect(`sum:20 avg:701 sum:701 avg:701 "3" "1.5" "4" "2" `)

	upgradeBinary(c, 0, "2.1")
	upgradeBinary(c, 1, "2.1")
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitVersion(t, c, "2.1")
	expect(`sum:1700 avg:1700 sum:701 avg:701 "3" "1.5000000000000000" "4" "2" `)
}
