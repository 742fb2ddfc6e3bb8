package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/rowenc"
)

// TestDowngrade21To20AndUpAgain downgrades a three-node 2.1 cluster that
// uses transactions to 2.0 with SET CLUSTER SETTING version = '2.0', while a
// session holds an open transaction and others write: the transaction is
// ended at its next statement, BEGIN is refused afterwards, no node keeps a
// 2.1 command in its Raft log or a transaction record, the preserve option
// holds the cluster at 2.0, and a node restarted as a 2.0 binary (which
// stops at any 2.1 entry) follows the writes. RESET of the option then
// upgrades the cluster again, and transactions work again.
func TestDowngrade21To20AndUpAgain(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 1), (2, 2)")
	// A multi-row INSERT of 100 rows is one bulk batch (kv's cmdBulkBatch,
	// a 2.1 entry kind): the downgrade purges it from every log with the
	// transaction commands, and its range records with theirs.
	var rows []string
	for i := 1; i <= 100; i++ {
		rows = append(rows, fmt.Sprintf("(%d)", i))
	}
	c.Exec(0, "CREATE TABLE loaded (k INT PRIMARY KEY)")
	c.Exec(0, "INSERT INTO loaded VALUES "+strings.Join(rows, ", "))
	for i := 0; i < 5; i++ {
		c.Exec(1, "BEGIN; UPDATE kv SET v = v + 1 WHERE k = 1; UPDATE kv SET v = v - 1 WHERE k = 2; COMMIT")
	}
	open := c.Conn(2)
	if _, err := open.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Exec(ctx, "UPDATE kv SET v = 100 WHERE k = 1"); err != nil {
		t.Fatal(err)
	}

	// Refused targets change nothing.
	for _, bad := range []struct{ sql, code string }{
		{"SET CLUSTER SETTING version = '1.1'", "0A000"},
		{"SET CLUSTER SETTING version = '1.0'", "0A000"},
	} {
		_, err := c.Conn(0).Exec(ctx, bad.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != bad.code || !strings.Contains(pe.Hint, "version = '2.0'") {
			t.Fatalf("%s: %v, want %s with a hint naming 2.0", bad.sql, err, bad.code)
		}
	}

	// What 2.0 cannot read refuses the downgrade up front, in the plan and
	// in the statement, with the fix; users stay, dormant.
	c.Exec(0, "CREATE TABLE money (id INT PRIMARY KEY, amount DECIMAL(10,2))")
	c.Exec(0, "CREATE TABLE positive (id INT PRIMARY KEY, n INT CHECK (n > 0))")
	c.Exec(0, "CREATE USER alice")
	c.Exec(0, "CREATE DATABASE app")
	c.Exec(0, "CREATE TABLE app.public.kv (k INT PRIMARY KEY)")
	c.Exec(0, "CREATE TABLE rel_p (id INT PRIMARY KEY)")
	c.Exec(0, "CREATE TABLE rel_c (id INT PRIMARY KEY, p INT REFERENCES rel_p)")
	c.Exec(0, "CREATE INDEX rel_c_p ON rel_c (p)")
	c.Exec(0, "INSERT INTO rel_p VALUES (1)")
	c.Exec(0, "INSERT INTO rel_c VALUES (1, 1)")
	plan := planRows(t, c, "SHOW UPGRADE PLAN FOR VERSION '2.0'")
	if !strings.Contains(plan, "table rel_c has the index rel_c_p") || !strings.Contains(plan, "DROP INDEX rel_c@rel_c_p") ||
		!strings.Contains(plan, "table rel_c has the foreign key rel_c_p_fkey") {
		t.Fatalf("plan:\n%s", plan)
	}
	if !strings.Contains(plan, "blocker: database app exists (1 tables)") || !strings.Contains(plan, "DROP DATABASE app CASCADE") {
		t.Fatalf("plan:\n%s", plan)
	}
	if !strings.Contains(plan, "blocker: column money.amount is of type DECIMAL(10,2)") || !strings.Contains(plan, "DROP TABLE money") ||
		!strings.Contains(plan, "non-root users: 1, kept dormant") || !strings.Contains(plan, "DROP USER alice") ||
		!strings.Contains(plan, "table positive has the CHECK constraint") {
		t.Fatalf("plan:\n%s", plan)
	}
	// The same plan as JSON; a malformed version is a 400 with the fix.
	var jp struct {
		Direction string `json:"direction"`
		Steps     []struct{ Step, Action string }
		Blockers  []struct{ Reason, Fix string }
	}
	if code := getJSON(t, "http://"+c.Nodes[1].Config.HTTPAddr+"/_status/upgrade/plan?version=2.0", &jp); code != 200 ||
		jp.Direction != "downgrade" || len(jp.Blockers) != 5 || !strings.Contains(jp.Blockers[0].Fix, "DROP TABLE money") {
		t.Fatalf("GET /_status/upgrade/plan: %d %+v", code, jp)
	}
	var bad struct{ Error, Hint string }
	if code := getJSON(t, "http://"+c.Nodes[1].Config.HTTPAddr+"/_status/upgrade/plan?version=two", &bad); code != 400 ||
		!strings.Contains(bad.Hint, "MAJOR.MINOR") {
		t.Fatalf("GET /_status/upgrade/plan?version=two: %d %+v", code, bad)
	}
	_, err := c.Conn(0).Exec(ctx, "SET CLUSTER SETTING version = '2.0'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55000" || !strings.Contains(pe.Message, "money.amount") || !strings.Contains(pe.Hint, "DROP TABLE money") {
		t.Fatalf("a downgrade with a DECIMAL column: %v", err)
	}
	if v, _ := queryString(t, c, 0, "SHOW CLUSTER SETTING version"); v != "2.1" {
		t.Fatalf("the refused downgrade moved the version to %s", v)
	}
	c.Exec(0, "DROP TABLE money")
	c.Exec(0, "DROP TABLE positive")
	c.Exec(0, "DROP TABLE rel_c, rel_p")
	if _, err := c.Conn(0).Exec(ctx, "SET CLUSTER SETTING version = '2.0'"); !errors.As(err, &pe) || pe.Code != "55000" ||
		!strings.Contains(pe.Message, "database app") || !strings.Contains(pe.Hint, "DROP DATABASE app CASCADE") {
		t.Fatalf("a downgrade with a database: %v", err)
	}
	// Dropped, the database leaves tombstones that 2.0 (the binary on node
	// 3 below) loads as tables no one can name.
	c.Exec(0, "DROP DATABASE app")
	if _, err := c.Conn(0).Exec(ctx, "SET CLUSTER SETTING version = '2.0'"); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "2.0" {
			t.Fatalf("node %d: version %q %v", i+1, v, err)
		}
		if v := c.Nodes[i].Server.ActiveVersion().String(); v != "2.0" {
			t.Fatalf("node %d persisted %s", i+1, v)
		}
	}
	if v, err := queryString(t, c, 0, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil || v != "2.0" {
		t.Fatalf("preserve option %q %v", v, err)
	}
	// The open transaction was ended; nothing of it applied.
	if _, err := open.Exec(ctx, "UPDATE kv SET v = 101 WHERE k = 1"); sqlState(err) != "0A000" {
		t.Fatalf("a statement of a transaction opened before the downgrade: %v", err)
	}
	if _, err := open.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn(1).Exec(ctx, "BEGIN"); sqlState(err) != "0A000" {
		t.Fatalf("BEGIN at 2.0: %v", err)
	}
	if n, err := c.QueryInt(0, "SELECT v FROM kv WHERE k = 1"); err != nil || n != 6 {
		t.Fatalf("k=1 holds %d (%v), want 6", n, err)
	}
	for i, nd := range c.Nodes {
		rep := nd.Server.Replica()
		if idx, err := rep.TxnCommandsInLog(); err != nil || idx != 0 {
			t.Fatalf("node %d keeps a 2.1 entry at %d (%v)", i+1, idx, err)
		}
		if left, err := rep.TxnRecordsLeft(); err != nil || left {
			t.Fatalf("node %d keeps transaction records (%v)", i+1, err)
		}
	}

	// A 2.0 binary on node 3's store: it would stop at any 2.1 entry.
	c.StopNode(2)
	c.Nodes[2].Config.Knobs.BinaryVersion = rel("2.0")
	c.StartNode(2)
	c.WaitUp(2)
	for i := 0; i < 20; i++ {
		c.Exec(i%3, "UPSERT INTO kv VALUES ($1, $2)", 10+i, i)
	}
	testcluster.WaitFor(t, 20*time.Second, func() error {
		n, err := c.QueryInt(2, "SELECT count(*) FROM kv")
		if err != nil || n != 22 {
			return errors.Newf("node 3 (2.0) counts %d rows (%v)", n, err)
		}
		if n, err := c.QueryInt(2, "SELECT count(*) FROM loaded"); err != nil || n != 100 {
			return errors.Newf("node 3 (2.0) counts %d rows of the bulk insert (%v)", n, err)
		}
		return c.Nodes[2].Server.Failed()
	})

	// Back to the 2.1 binary, RESET: the cluster upgrades again, and the
	// 2.1 migration runs again.
	c.StopNode(2)
	c.Nodes[2].Config.Knobs.BinaryVersion = rel("2.1")
	c.StartNode(2)
	c.WaitUp(2)
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	testcluster.WaitFor(t, 60*time.Second, func() error {
		v, err := queryString(t, c, 0, "SHOW CLUSTER SETTING version")
		if err != nil || v != "2.1" {
			return errors.Newf("version %q (%v)", v, err)
		}
		return nil
	})
	testcluster.WaitFor(t, 20*time.Second, func() error {
		_, err := c.Conn(1).Exec(ctx, "BEGIN; UPDATE kv SET v = v + 1 WHERE k = 1; COMMIT")
		return err
	})
	if n, err := c.QueryInt(0, "SELECT v FROM kv WHERE k = 1"); err != nil || n != 7 {
		t.Fatalf("k=1 holds %d (%v), want 7", n, err)
	}
}

// TestDowngrade11To10WithPlanAndResume: on a 1.1 cluster with rows in v2,
// SHOW UPGRADE PLAN FOR VERSION '1.0' lists what the downgrade then does
// (and changes nothing); a downgrade whose coordinator stops at a step is
// resumed by the data group's leader; every row ends in encoding v1 while
// writes go on, 1.0 binaries then run the cluster, and after RESET the
// rows are rewritten to v2 again.
func TestDowngrade11To10WithPlanAndResume(t *testing.T) {
	var failOnce atomic.Bool
	knobs := server.Knobs{MigrationBatchSize: 10,
		BeforeVersionStep: func(step clusterversion.Version) error {
			if step == clusterversion.V1_1Fence.Version() && failOnce.CompareAndSwap(true, false) {
				return errors.New("the coordinator stopped here (testing knob)")
			}
			return nil
		}}
	c := startAt10(t, 120, knobs)
	for i := range c.Nodes {
		upgradeBinary(c, i, "1.1")
	}
	waitVersion(t, c, "1.1")
	ctx := txnCtx(t)
	for i := range c.Nodes {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV2] != 120 {
				return errors.Newf("node %d: %v", i+1, enc)
			}
			return nil
		})
	}

	rows, err := c.Conn(0).Query(ctx, "SHOW UPGRADE PLAN FOR VERSION '1.0'")
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var step, action, detail *string
		var rev *bool
		if err := rows.Scan(&step, &action, &detail, &rev); err != nil {
			t.Fatal(err)
		}
		if *action == "blocker" {
			t.Fatalf("blocker: %s", *detail)
		}
		plan = append(plan, *step+" "+*action+": "+*detail)
	}
	want := []string{"1.1-step.2 persist on every node", "1.1-step.1 persist on every node",
		"1.1-step.1 down-migration: rows in encoding v2 to rewrite into v1: 120", "1.0 persist on every node", "1.0 complete"}
	if len(plan) != len(want) {
		t.Fatalf("plan:\n%s", strings.Join(plan, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(plan[i], w) {
			t.Fatalf("plan row %d is %q, want %q...\n%s", i, plan[i], w, strings.Join(plan, "\n"))
		}
	}
	if v, _ := queryString(t, c, 0, "SHOW CLUSTER SETTING version"); v != "1.1" {
		t.Fatalf("the plan changed the version to %s", v)
	}

	stop := make(chan struct{})
	writes := make(chan error, 1)
	go func() {
		var err error
		for i := 0; err == nil; i++ {
			select {
			case <-stop:
				writes <- nil
				return
			default:
			}
			err = execErr(c, i%3, fmt.Sprintf("UPSERT INTO kv VALUES (%d, 'w%d')", 1000+i%50, i))
		}
		writes <- err
	}()
	// The knob stops whichever coordinator reaches the step first: the
	// SET's, if it runs on the leader (the leader's loop, which would
	// resume the downgrade, waits for the node's upgrade manager).
	failOnce.Store(true)
	if err := execErr(c, leaderIndex(t, c), "SET CLUSTER SETTING version = '1.0'"); err == nil {
		t.Fatal("the stopped coordinator reported success")
	}
	if v, _ := queryString(t, c, 1, "SHOW CLUSTER SETTING cluster.preserve_downgrade_option"); v != "1.0" {
		t.Fatalf("preserve option %q during the downgrade", v)
	}
	if err := execErr(c, 1, "RESET CLUSTER SETTING cluster.preserve_downgrade_option"); sqlState(err) != "55000" {
		t.Fatalf("RESET during the downgrade: %v", err)
	}
	waitVersion(t, c, "1.0") // the leader's loop resumes it
	close(stop)
	if err := <-writes; err != nil {
		t.Fatalf("a write during the downgrade: %v", err)
	}
	for i := range c.Nodes {
		if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV1] < 120 || len(enc) != 1 {
			t.Fatalf("node %d row encodings after the downgrade: %v", i+1, enc)
		}
	}
	before, err := c.QueryInt(0, "SELECT count(*) FROM kv")
	if err != nil || before < 121 {
		t.Fatalf("count after the downgrade: %d %v", before, err)
	}
	for i := range c.Nodes {
		upgradeBinary(c, i, "1.0")
	}
	c.Exec(0, "INSERT INTO kv VALUES (5000, 'on 1.0')")
	if n, err := c.QueryInt(2, "SELECT count(*) FROM kv"); err != nil || n != before+1 {
		t.Fatalf("count on 1.0: %d %v, want %d", n, err, before+1)
	}
	for i := range c.Nodes {
		upgradeBinary(c, i, "1.1")
	}
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitVersion(t, c, "1.1")
	for i := range c.Nodes {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV1] != 0 {
				return errors.Newf("node %d after the upgrade again: %v", i+1, enc)
			}
			return nil
		})
	}
}

// planRows runs a SHOW UPGRADE PLAN statement on node 1 and returns its rows
// as "step action: detail" lines.
func planRows(t *testing.T, c *testcluster.Cluster, sql string) string {
	t.Helper()
	rows, err := c.Conn(0).Query(txnCtx(t), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var step, action, detail *string
		var rev *bool
		if err := rows.Scan(&step, &action, &detail, &rev); err != nil {
			t.Fatal(err)
		}
		s := ""
		if step != nil {
			s = *step + " "
		}
		out = append(out, s+*action+": "+*detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// TestDowngrade20To11AndUpAgain: a 2.0 cluster with tables downgrades to
// 1.1: every node leaves group 0 (use_pre_raft_procedures, no group 0
// store) with the schema intact on every node; DDL works through the
// pre-Raft procedure, on 2.0 binaries and then on 1.1 binaries; RESET
// upgrades again, group 0 is formed anew, and DDL goes through it.
func TestDowngrade20To11AndUpAgain(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
	waitVersion(t, c, "2.0")
	waitGroup0States(t, c, group0.UsePostRaft)
	c.Exec(0, "CREATE TABLE a (k INT PRIMARY KEY, v STRING)")
	c.Exec(1, "CREATE TABLE b (k INT PRIMARY KEY)")
	c.Exec(2, "INSERT INTO a VALUES (1, 'one'), (2, 'two')")
	if plan := planRows(t, c, "SHOW UPGRADE PLAN FOR VERSION '1.1'"); strings.Contains(plan, "blocker") ||
		!strings.Contains(plan, "each node moves to use_pre_raft_procedures") {
		t.Fatalf("plan:\n%s", plan)
	}
	if err := execErr(c, 1, "SET CLUSTER SETTING version = '1.1'"); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, c, "1.1")
	waitGroup0States(t, c, group0.UsePreRaft)
	for i, nd := range c.Nodes {
		if _, err := os.Stat(filepath.Join(nd.Config.Store, "group0")); !os.IsNotExist(err) {
			t.Fatalf("node %d still has a group 0 store (%v)", i+1, err)
		}
	}
	waitTables(t, c, "a", "b")
	c.Exec(2, "CREATE TABLE c (k INT PRIMARY KEY)") // the pre-Raft procedure
	waitTables(t, c, "a", "b", "c")
	for i := range c.Nodes {
		upgradeBinary(c, i, "1.1")
	}
	c.Exec(0, "CREATE TABLE d (k INT PRIMARY KEY)")
	waitTables(t, c, "a", "b", "c", "d")
	if n, err := c.QueryInt(1, "SELECT count(*) FROM a"); err != nil || n != 2 {
		t.Fatalf("rows of a on 1.1: %d %v", n, err)
	}
	for i := range c.Nodes {
		upgradeBinary(c, i, "2.0")
	}
	c.Exec(0, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitVersion(t, c, "2.0")
	waitGroup0States(t, c, group0.UsePostRaft)
	c.Exec(1, "CREATE TABLE e (k INT PRIMARY KEY)") // through group 0 again
	waitTables(t, c, "a", "b", "c", "d", "e")
}

// waitTables waits until every node lists exactly tables in SHOW TABLES.
func waitTables(t *testing.T, c *testcluster.Cluster, tables ...string) {
	t.Helper()
	want := strings.Join(tables, ",")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		for i := range c.Nodes {
			rows, err := c.Conn(i).Query(txnCtx(t), "SHOW TABLES")
			if err != nil {
				return err
			}
			col := 0
			for k, f := range rows.FieldDescriptions() {
				if f.Name == "table_name" {
					col = k
				}
			}
			var got []string
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					rows.Close()
					return err
				}
				got = append(got, fmt.Sprint(vals[col]))
			}
			rows.Close()
			if strings.Join(got, ",") != want {
				return errors.Newf("node %d lists tables %v, want %s", i+1, got, want)
			}
		}
		return nil
	})
}

// getJSON fetches url and decodes its JSON body into v, returning the
// status code.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

// TestStaleReportAfterDowngradeDoesNotFinalize: right after a downgrade
// 2.1 -> 2.0, a node's gossip may still carry another node's report from
// before it (2.1). Taken at its word, that report reads as a finalization
// under way, which goes on whatever cluster.preserve_downgrade_option says,
// and the next leader would upgrade the cluster straight back (seen in the
// demo, when the leader changed as the first node was drained for its 2.0
// binary). Every node must instead ask the node and decide on what it has
// persisted: SHOW UPGRADE STATUS names the preserve option as the blocker,
// the version stays 2.0 across a change of leader, and RESET finalizes.
func TestStaleReportAfterDowngradeDoesNotFinalize(t *testing.T) {
	var stale atomic.Bool
	c := testcluster.Start(t, 3, testcluster.Options{Knobs: server.Knobs{
		ReportedVersion: func(id nodeid.ID, reported string) string {
			if stale.Load() && id == 2 {
				return "2.1"
			}
			return reported
		}}})
	ctx := txnCtx(t)
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
	if _, err := c.Conn(0).Exec(ctx, "SET CLUSTER SETTING version = '2.0'"); err != nil {
		t.Fatal(err)
	}
	stale.Store(true)
	for i, nd := range c.Nodes {
		if v := nd.Server.ActiveVersion().String(); v != "2.0" {
			t.Fatalf("node %d persisted %s after the downgrade", i+1, v)
		}
		st, err := nd.Server.UpgradeStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st.Decision, "cluster.preserve_downgrade_option is set to 2.0") {
			t.Fatalf("node %d decides %q from node 2's stale report of 2.1", i+1, st.Decision)
		}
	}
	// Move the leadership: the new leader's first decision reads node 2's
	// stale report too.
	lead := leaderIndex(t, c)
	to := (lead + 1) % 3
	testcluster.WaitFor(t, 10*time.Second, func() error {
		c.Nodes[lead].Server.Replica().TransferLeadership(c.Nodes[to].Server.NodeID())
		if rep := c.Nodes[to].Server.Replica(); rep == nil || !rep.Status().IsLeader {
			return errors.Newf("node %d does not lead yet", to+1)
		}
		return nil
	})
	// The new leader's loop has decided (and would have finalized) once its
	// summary is logged; its decision is the status's.
	testcluster.WaitFor(t, 10*time.Second, func() error {
		st, err := c.Nodes[to].Server.UpgradeStatus(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(st.Decision, "preserve_downgrade_option") {
			return errors.Newf("the new leader decides %q", st.Decision)
		}
		return nil
	})
	for i := range c.Nodes {
		if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "2.0" {
			t.Fatalf("node %d: version %q %v after the leader changed", i+1, v, err)
		}
	}
	c.Exec(1, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	waitVersion(t, c, "2.1")
}
