package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// livenessRow is one row of crdb_internal.gossip_liveness.
type livenessRow struct {
	epoch           int64
	expiration      string
	draining        bool
	decommissioning bool
	membership      string
	updatedAt       string
}

func livenessOf(t *testing.T, c *testcluster.Cluster, via int, id nodeid.ID) (livenessRow, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(via))
	if err != nil {
		return livenessRow{}, err
	}
	defer conn.Close(context.Background())
	var r livenessRow
	err = conn.QueryRow(ctx, "SELECT epoch, expiration, draining, decommissioning, membership, updated_at "+
		"FROM crdb_internal.gossip_liveness WHERE node_id = $1", id).
		Scan(&r.epoch, &r.expiration, &r.draining, &r.decommissioning, &r.membership, &r.updatedAt)
	return r, err
}

func isLive(t *testing.T, c *testcluster.Cluster, via int, id nodeid.ID) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(via))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var live bool
	err = conn.QueryRow(ctx, "SELECT is_live FROM crdb_internal.gossip_nodes WHERE node_id = $1", id).Scan(&live)
	return live, err
}

func waitLive(t *testing.T, c *testcluster.Cluster, via int, id nodeid.ID, want bool) {
	t.Helper()
	testcluster.WaitFor(t, 20*time.Second, func() error {
		live, err := isLive(t, c, via, id)
		if err != nil {
			return err
		}
		if live != want {
			return fmt.Errorf("node %d is_live = %v, want %v", id, live, want)
		}
		return nil
	})
}

func statusOf(t *testing.T, c *testcluster.Cluster, via int, id nodeid.ID) (nodeapi.NodeStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := nodeapi.GetNodeStatus(ctx, c.Nodes[via].Config.ListenAddr)
	if err != nil {
		return nodeapi.NodeStatus{}, err
	}
	for _, n := range resp.Nodes {
		if n.NodeID == id {
			return n, nil
		}
	}
	return nodeapi.NodeStatus{}, fmt.Errorf("node %d not in the status", id)
}

func waitFailed(t *testing.T, s *server.Server, want string) {
	t.Helper()
	testcluster.WaitFor(t, 30*time.Second, func() error {
		err := s.Failed()
		if err == nil {
			return errors.New("node has not failed")
		}
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("node failed with %q, want %q", err, want)
		}
		return nil
	})
}

func TestLivenessEpochsExpiryAndViews(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	// Every node has a record; the views answer on every node; node_id_of
	// of the smoke scripts works.
	for i := range c.Nodes {
		id := c.Nodes[i].Server.NodeID()
		n, err := c.QueryInt(i, fmt.Sprintf("SELECT node_id FROM crdb_internal.gossip_nodes WHERE sql_address = '%s'", c.Nodes[i].Config.SQLAddr))
		if err != nil || n != int64(id) {
			t.Fatalf("node_id_of node %d: %d %v", i+1, n, err)
		}
		if n, err := c.QueryInt(i, "SELECT count(*) FROM crdb_internal.gossip_nodes WHERE is_live"); err != nil || n != 3 {
			t.Fatalf("live nodes seen by node %d: %d %v", i+1, n, err)
		}
		r, err := livenessOf(t, c, (i+1)%3, id)
		if err != nil || r.epoch != 1 || r.membership != "active" || r.decommissioning || r.draining {
			t.Fatalf("liveness of node %d: %+v %v", id, r, err)
		}
	}
	var version, build string
	if err := c.Conn(0).QueryRow(context.Background(),
		"SELECT server_version, build_tag FROM crdb_internal.gossip_nodes WHERE node_id = 2").Scan(&version, &build); err != nil || build != "v"+version {
		t.Fatalf("server_version %q build_tag %q %v", version, build, err)
	}

	// A stopped node stops being live within the liveness duration (2s
	// here), and is dead after server.time_until_store_dead.
	c.StopNode(2)
	// SIGTERM (Stop) records draining in the liveness record.
	if r, err := livenessOf(t, c, 0, 3); err != nil || !r.draining {
		t.Fatalf("a stopped node's record says draining=%v (%v)", r.draining, err)
	}
	waitLive(t, c, 0, 3, false)
	if st, err := statusOf(t, c, 1, 3); err != nil || st.Status != "unavailable" {
		t.Fatalf("status before time_until_store_dead: %+v %v", st, err)
	}
	c.Exec(0, "SET CLUSTER SETTING server.time_until_store_dead = '1s'")
	testcluster.WaitFor(t, 20*time.Second, func() error {
		st, err := statusOf(t, c, 1, 3)
		if err == nil && st.Status != "dead" {
			err = fmt.Errorf("status %q", st.Status)
		}
		return err
	})
	// A restart increments the epoch and clears draining.
	c.StartNode(2)
	c.WaitUp(2)
	waitLive(t, c, 1, 3, true)
	if r, err := livenessOf(t, c, 1, 3); err != nil || r.epoch != 2 || r.draining {
		t.Fatalf("after restart: %+v %v", r, err)
	}
}

func TestClusterSettingsSQL(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{})
	ctx := context.Background()
	a, b := c.Conn(0), c.Conn(1)
	show := func(conn *pgx.Conn, name string) string {
		t.Helper()
		rows, err := conn.Query(ctx, "SHOW CLUSTER SETTING "+name)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if !rows.Next() {
			t.Fatalf("SHOW %s: no row (%v)", name, rows.Err())
		}
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(rows.FieldDescriptions()[0].Name); got != name {
			t.Fatalf("column %q, want %q", got, name)
		}
		return fmt.Sprint(vals[0])
	}
	if v := show(b, "server.time_until_store_dead"); v != "5m0s" {
		t.Fatalf("default: %s", v)
	}
	if _, err := a.Exec(ctx, "SET CLUSTER SETTING server.time_until_store_dead = '2m'"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false"); err != nil {
		t.Fatal(err)
	}
	// The preserve option may only name the current cluster version.
	if _, err := a.Exec(ctx, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.1'"); err == nil ||
		!strings.Contains(err.Error(), "must be the current cluster version "+clusterversion.Latest.String()) {
		t.Fatalf("preserve option for another version: %v", err)
	}
	if _, err := a.Exec(ctx, fmt.Sprintf("SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", clusterversion.Latest)); err != nil {
		t.Fatal(err)
	}
	// SHOW on another node sees every SET acknowledged before it.
	if v := show(b, "server.time_until_store_dead"); v != "2m0s" {
		t.Fatalf("node 2 sees %s", v)
	}
	if v := show(b, "cluster.auto_upgrade.enabled"); v != "false" {
		t.Fatalf("node 2 sees %s", v)
	}
	// Go readers on every node see it within the refresh interval.
	testcluster.WaitFor(t, 5*time.Second, func() error {
		if d := c.Nodes[1].Server.TimeUntilStoreDead(); d != 2*time.Minute {
			return fmt.Errorf("node 2's cache: %s", d)
		}
		return nil
	})
	// Errors: unknown name, wrong type, invalid value; none changes anything.
	for _, tc := range []struct{ stmt, code, want string }{
		{"SET CLUSTER SETTING server.time_until_store_ded = '1m'", "42704", "server.time_until_store_dead"},
		{"SHOW CLUSTER SETTING nope.nope", "42704", "SHOW ALL CLUSTER SETTINGS"},
		{"RESET CLUSTER SETTING cluster.auto_upgrade", "42704", "cluster.auto_upgrade.enabled"},
		{"SET CLUSTER SETTING server.time_until_store_dead = 5", "22023", "duration"},
		{"SET CLUSTER SETTING server.time_until_store_dead = '10ms'", "22023", "at least 1s"},
		{"SET CLUSTER SETTING cluster.auto_upgrade.enabled = 'sometimes'", "22023", "bool"},
		{"SET CLUSTER SETTING cluster.preserve_downgrade_option = 1.1", "22023", "string"},
		{"SET CLUSTER SETTING version = '1.1'", "0A000", "cannot downgrade from"},
		{"SET CLUSTER SETTING version = '3.7'", "22023", "unknown version"},
		{"SET CLUSTER SETTING version = '2.0-step.1'", "22023", "internal step"},
		{"SET CLUSTER SETTING version = 'two'", "22023", ""},
		{"RESET CLUSTER SETTING version", "0A000", "cannot be reset"},
	} {
		_, err := b.Exec(ctx, tc.stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != tc.code || !strings.Contains(pgErr.Message+" "+pgErr.Hint, tc.want) {
			t.Errorf("%s: %v, want %s mentioning %q", tc.stmt, err, tc.code, tc.want)
		}
	}
	if v := show(a, "server.time_until_store_dead"); v != "2m0s" {
		t.Fatalf("a refused SET changed the value: %s", v)
	}
	if _, err := b.Exec(ctx, "RESET CLUSTER SETTING server.time_until_store_dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = DEFAULT"); err != nil {
		t.Fatal(err)
	}
	if v := show(a, "server.time_until_store_dead"); v != "5m0s" {
		t.Fatalf("after RESET: %s", v)
	}
	if v := show(a, "cluster.auto_upgrade.enabled"); v != "true" {
		t.Fatalf("after = DEFAULT: %s", v)
	}
	// version is read-only: the store's cluster version.
	var exe string
	if err := a.QueryRow(ctx, "SELECT crdb_internal.node_executable_version()").Scan(&exe); err != nil {
		t.Fatal(err)
	}
	if v := show(a, "version"); v != exe {
		t.Fatalf("SHOW CLUSTER SETTING version = %s, binary %s", v, exe)
	}
	for _, stmt := range []string{"SHOW ALL CLUSTER SETTINGS", "SHOW CLUSTER SETTINGS"} {
		rows, err := a.Query(ctx, stmt)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, f := range rows.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		got := map[string][]string{}
		for rows.Next() {
			var name, value, typ, desc string
			if err := rows.Scan(&name, &value, &typ, &desc); err != nil {
				t.Fatal(err)
			}
			got[name] = []string{value, typ}
		}
		rows.Close()
		if !slices.Equal(cols, []string{"variable", "value", "setting_type", "description"}) {
			t.Fatalf("%s columns %v", stmt, cols)
		}
		for name, want := range map[string][]string{
			"server.time_until_store_dead":      {"5m0s", "d"},
			"cluster.auto_upgrade.enabled":      {"true", "b"},
			"cluster.preserve_downgrade_option": {clusterversion.Latest.String(), "s"},
			"version":                           {exe, "m"},
		} {
			if !slices.Equal(got[name], want) {
				t.Errorf("%s: %s = %v, want %v", stmt, name, got[name], want)
			}
		}
	}
}

func TestDecommissionLiveNodeRecommissionAndRejoinRefusal(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	c := testcluster.Start(t, 3, testcluster.Options{HoldDecommission: &hold})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 'a')")
	host := c.Nodes[0].Config.ListenAddr

	// Marked decommissioning; while the leader holds off, it is still a
	// voter and can be recommissioned.
	if err := nodeapi.DecommissionNodes(ctx, host, []nodeid.ID{3}, false, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := livenessOf(t, c, 1, 3); err != nil || r.membership != "decommissioning" || !r.decommissioning {
		t.Fatalf("after decommission: %+v %v", r, err)
	}
	if st, err := statusOf(t, c, 1, 3); err != nil || st.Raft != "voter" || !st.IsLive {
		t.Fatalf("status: %+v %v", st, err)
	}
	resp, err := nodeapi.RecommissionNodes(ctx, c.Nodes[1].Config.ListenAddr, []nodeid.ID{3})
	if err != nil || len(resp.Nodes) != 1 || resp.Nodes[0].Membership != "active" {
		t.Fatalf("recommission: %+v %v", resp, err)
	}
	if r, err := livenessOf(t, c, 0, 3); err != nil || r.membership != "active" {
		t.Fatalf("after recommission: %+v %v", r, err)
	}

	// Decommission for real, through a node that is not the target, and
	// wait with progress.
	hold.Store(false)
	var seen []string
	err = nodeapi.DecommissionNodes(ctx, c.Nodes[1].Config.ListenAddr, []nodeid.ID{3}, true, func(ns []nodeapi.NodeStatus) {
		for _, n := range ns {
			seen = append(seen, n.Membership+"/"+n.Raft)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 || seen[len(seen)-1] != "decommissioned/none" {
		t.Fatalf("progress %v", seen)
	}
	for i := 0; i < 2; i++ {
		testcluster.WaitFor(t, 10*time.Second, func() error {
			st := c.Nodes[i].Server.Replica().Status()
			if !slices.Equal(st.Voters, []nodeid.ID{1, 2}) || len(st.Learners) != 0 {
				return fmt.Errorf("node %d sees voters %v learners %v", i+1, st.Voters, st.Learners)
			}
			return nil
		})
	}
	// The running node finds out and reports it.
	waitFailed(t, c.Nodes[2].Server, "decommissioned")
	// The cluster serves on.
	c.Exec(1, "INSERT INTO kv VALUES (2, 'b')")
	waitCount(t, c, 0, "kv", 2)
	// Decommissioning it again is a no-op; recommissioning is refused.
	if err := nodeapi.DecommissionNodes(ctx, host, []nodeid.ID{3}, true, nil); err != nil {
		t.Fatalf("repeated decommission: %v", err)
	}
	if _, err := nodeapi.RecommissionNodes(ctx, host, []nodeid.ID{3}); err == nil || !strings.Contains(err.Error(), "cannot be reversed") {
		t.Fatalf("recommissioning a decommissioned node: %v", err)
	}
	// Restarting it on its store is refused with the reason.
	c.StopNode(2)
	c.StartNode(2)
	waitFailed(t, c.Nodes[2].Server, "node 3 is decommissioned")
	if hints := fmt.Sprintf("%+v", c.Nodes[2].Server.Failed()); !strings.Contains(hints, "new, empty --store") {
		t.Fatalf("refusal without the fix: %s", hints)
	}
	if r, err := livenessOf(t, c, 0, 3); err != nil || r.membership != "decommissioned" {
		t.Fatalf("final record: %+v %v", r, err)
	}
}

func TestDecommissionDeadNodeAndRefusals(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host := c.Nodes[0].Config.ListenAddr
	c.StopNode(2)
	waitLive(t, c, 0, 3, false)

	// Bad input: each refused with a clear error, nothing changed.
	for _, tc := range []struct {
		ids  []nodeid.ID
		want string
	}{
		{[]nodeid.ID{9}, "node 9 does not exist"},
		{[]nodeid.ID{2}, "without a live majority"},
		{[]nodeid.ID{1, 2, 3}, "no node in the cluster"},
	} {
		err := nodeapi.DecommissionNodes(ctx, host, tc.ids, true, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(errors.GetAllHints(err)) == 0 {
			t.Errorf("decommission %v: %v, want %q with a hint", tc.ids, err, tc.want)
		}
	}
	for id := nodeid.ID(1); id <= 3; id++ {
		if r, err := livenessOf(t, c, 1, id); err != nil || r.membership != "active" {
			t.Fatalf("a refused decommission changed node %d: %+v %v", id, r, err)
		}
	}
	if st := c.Nodes[0].Server.Replica().Status(); len(st.Voters) != 3 {
		t.Fatalf("a refused decommission changed the group: %v", st.Voters)
	}

	// The dead node can be decommissioned.
	if err := nodeapi.DecommissionNodes(ctx, host, []nodeid.ID{3}, true, nil); err != nil {
		t.Fatal(err)
	}
	if st := c.Nodes[1].Server.Replica().Status(); !slices.Equal(st.Voters, []nodeid.ID{1, 2}) {
		t.Fatalf("voters %v", st.Voters)
	}
	// Both remaining nodes would leave no node.
	if err := nodeapi.DecommissionNodes(ctx, host, []nodeid.ID{1, 2}, true, nil); err == nil || !strings.Contains(err.Error(), "no node in the cluster") {
		t.Fatalf("decommissioning the rest: %v", err)
	}
	// It comes back on its old store: refused (peers tell it), clearly.
	c.StartNode(2)
	waitFailed(t, c.Nodes[2].Server, "node 3 is decommissioned")
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY)")
	c.Exec(1, "INSERT INTO t VALUES (1)")
}

func TestDrainWithOpenConnections(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	waitCount(t, c, 1, "kv", 0)
	// Drain the node that leads, so that the drain must move leadership.
	// (Transferring leadership to a chosen node first, as this test once
	// did, could take longer than any fixed bound on a loaded machine.)
	d := -1
	testcluster.WaitFor(t, 20*time.Second, func() error {
		for i, nd := range c.Nodes {
			if nd.Server.Replica().Status().IsLeader {
				d = i
				return nil
			}
		}
		return errors.New("no leader")
	})
	id := c.Nodes[d].Server.NodeID()
	other := (d + 1) % 3
	conn, err := pgx.Connect(ctx, c.URL(d))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "INSERT INTO kv VALUES (1, 'before')"); err != nil {
		t.Fatal(err)
	}

	resp, err := nodeapi.DrainNode(ctx, c.Nodes[d].Config.ListenAddr)
	if err != nil || resp.NodeID != id || resp.OpenConnections < 1 {
		t.Fatalf("drain: %+v %v", resp, err)
	}
	// The open connection was closed at its idle point; new ones are refused.
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a connection survived the drain")
	}
	if _, err := pgx.Connect(ctx, c.URL(d)); err == nil {
		t.Fatal("a drained node accepted a new SQL connection")
	}
	get := func(path string) int {
		r, err := http.Get("http://" + c.Nodes[d].Config.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if code := get("/health?ready=1"); code != http.StatusServiceUnavailable {
		t.Fatalf("/health?ready=1 on a drained node: %d", code)
	}
	if code := get("/health"); code != http.StatusOK {
		t.Fatalf("/health on a drained node: %d", code)
	}
	if c.Nodes[d].Server.Replica().Status().IsLeader {
		t.Fatal("the drained node still leads")
	}
	r, err := livenessOf(t, c, other, id)
	if err != nil || !r.draining {
		t.Fatalf("liveness of the drained node: %+v %v", r, err)
	}
	// It stays up and live, and keeps leadership away: its heartbeats go
	// on after the drain (its liveness record is renewed twice: counted,
	// not timed), so it is live (on a loaded machine a heartbeat may come
	// late: liveness is waited for, not sampled), and meanwhile it has not
	// taken leadership back.
	for renewed, exp := 0, r.expiration; renewed < 2; renewed++ {
		testcluster.WaitFor(t, 20*time.Second, func() error {
			r, err := livenessOf(t, c, other, id)
			if err != nil {
				return err
			}
			if r.expiration == exp {
				return fmt.Errorf("the drained node's liveness record was not renewed since %s", exp)
			}
			exp = r.expiration
			return nil
		})
	}
	waitLive(t, c, other, id, true)
	if err := c.Nodes[d].Server.Failed(); err != nil {
		t.Fatalf("the drained node failed: %v", err)
	}
	if st, err := statusOf(t, c, other, id); err != nil || !st.IsDraining || st.IsLeader {
		t.Fatalf("status of the drained node: %+v %v", st, err)
	}
	c.Exec(other, "INSERT INTO kv VALUES (2, 'after')")
	// Draining again is fine; an unreachable host is a clear error.
	if _, err := nodeapi.DrainNode(ctx, c.Nodes[d].Config.ListenAddr); err != nil {
		t.Fatalf("second drain: %v", err)
	}
	if _, err := nodeapi.DrainNode(ctx, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cannot reach a kvnode node at 127.0.0.1:1") {
		t.Fatalf("drain of an unreachable host: %v", err)
	}
	// A restart ends the drain.
	c.StopNode(d)
	c.StartNode(d)
	c.WaitUp(d)
	if r, err := livenessOf(t, c, d, id); err != nil || r.draining || r.epoch != 2 {
		t.Fatalf("after restart: %+v %v", r, err)
	}
}

func TestDecommissionTheLeader(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := -1
	testcluster.WaitFor(t, 10*time.Second, func() error {
		for i, nd := range c.Nodes {
			if nd.Server.Replica().Status().IsLeader {
				leader = i
				return nil
			}
		}
		return errors.New("no leader")
	})
	id := c.Nodes[leader].Server.NodeID()
	other := (leader + 1) % 3
	if err := nodeapi.DecommissionNodes(ctx, c.Nodes[leader].Config.ListenAddr, []nodeid.ID{id}, true, nil); err != nil {
		t.Fatal(err)
	}
	st := c.Nodes[other].Server.Replica().Status()
	if slices.Contains(st.Voters, id) || len(st.Voters) != 2 || st.Leader == id {
		t.Fatalf("after decommissioning the leader: %+v", st)
	}
	waitFailed(t, c.Nodes[leader].Server, "decommissioned")
	c.Exec(other, "CREATE TABLE t (k INT PRIMARY KEY)")
}
