package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kvnodeCLI runs the binary with args and returns its combined output.
func kvnodeCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(args) > 0 && (args[0] == "node" || args[0] == "init") && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--certs-dir") }) {
		args = append(args, "--insecure")
	}
	out, err := exec.CommandContext(ctx, kvnodeBin, args...).CombinedOutput()
	return string(out), err
}

// statusLine returns the `kvnode node status` row of node id.
func statusLine(t *testing.T, host string, id string) (string, error) {
	out, err := kvnodeCLI(t, "node", "status", "--host="+host)
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return l, nil
		}
	}
	return "", fmt.Errorf("no row for node %s in:\n%s", id, out)
}

// TestNodeLifecycleWithCLIAndPsql drives the node lifecycle through the
// real binary: status, cluster settings and the crdb_internal views over
// psql, drain, SIGTERM and restart, refusals that change nothing,
// decommissioning a live node (which exits) and the refusal of its restart.
func TestNodeLifecycleWithCLIAndPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	ps := newProcs(t, 3)
	for _, p := range ps {
		p.start()
	}
	if out, err := kvnodeCLI(t, "init", "--insecure", "--host="+ps[0].listen); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	for _, p := range ps {
		p.waitReady(t)
	}
	ids := make([]string, 3)
	for i, p := range ps {
		// node_id_of of the smoke scripts, asked through the node itself.
		out, err := psql(t, p.url(), "SELECT node_id FROM crdb_internal.gossip_nodes WHERE sql_address = '"+p.sql+"'")
		if err != nil || out == "" {
			t.Fatalf("node_id_of node %d: %v: %s", i+1, err, out)
		}
		ids[i] = out
	}

	// node status: one row per node, all live and active.
	out, err := kvnodeCLI(t, "node", "status", "--host="+ps[2].listen)
	if err != nil {
		t.Fatalf("node status: %v: %s", err, out)
	}
	if !strings.HasPrefix(out, "id ") || !strings.Contains(out, "sql_address") || !strings.Contains(out, "is_draining") {
		t.Fatalf("node status header:\n%s", out)
	}
	for i, p := range ps {
		l, err := statusLine(t, ps[0].listen, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(l, p.listen) || !strings.Contains(l, p.sql) || !strings.Contains(l, " true ") || !strings.Contains(l, "active") {
			t.Fatalf("status of node %s: %q", ids[i], l)
		}
	}

	// Cluster settings through psql, visible from another node.
	if out, err := psql(t, ps[0].url(), "SET CLUSTER SETTING server.time_until_store_dead = '90s'"); err != nil {
		t.Fatalf("SET: %v: %s", err, out)
	}
	if out, err := psql(t, ps[1].url(), "SHOW CLUSTER SETTING server.time_until_store_dead"); err != nil || out != "1m30s" {
		t.Fatalf("SHOW on node 2: %v: %q", err, out)
	}
	if out, err := psql(t, ps[1].url(), "SET CLUSTER SETTING server.time_until_store_dead = 'soon'"); err == nil || !strings.Contains(out, "22023") {
		t.Fatalf("bad value: %v: %s", err, out)
	}
	if out, err := psql(t, ps[1].url(), "SHOW CLUSTER SETTING server.time_until_dead"); err == nil || !strings.Contains(out, "42704") ||
		!strings.Contains(out, "server.time_until_store_dead") {
		t.Fatalf("unknown setting: %v: %s", err, out)
	}
	if out, err := psql(t, ps[2].url(), "SELECT count(*) FROM crdb_internal.gossip_liveness WHERE membership = 'active' AND NOT draining"); err != nil || out != "3" {
		t.Fatalf("gossip_liveness: %v: %s", err, out)
	}

	// Drain node 2: not ready, no new SQL connections, still up.
	if out, err := kvnodeCLI(t, "node", "drain", "--host="+ps[1].listen); err != nil || !strings.Contains(out, "is drained") {
		t.Fatalf("drain: %v: %s", err, out)
	}
	resp, err := http.Get("http://" + ps[1].httpA + "/health?ready=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/health?ready=1 of a drained node: %d", resp.StatusCode)
	}
	if out, err := psql(t, ps[1].url(), "SELECT 1"); err == nil {
		t.Fatalf("a drained node accepted SQL: %s", out)
	}
	// is_draining is the column before persisted_version, the last.
	if l, err := statusLine(t, ps[0].listen, ids[1]); err != nil || len(strings.Fields(l)) < 2 || strings.Fields(l)[len(strings.Fields(l))-2] != "true" {
		t.Fatalf("status of the drained node: %q %v", l, err)
	}
	if ps[1].cmd.ProcessState != nil {
		t.Fatal("the drained node exited")
	}
	// SIGTERM, restart: it serves again.
	if err := ps[1].term(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	ps[1].start()
	ps[1].waitReady(t)

	// Bad input: clear errors, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "decommission", "99", "--host=" + ps[0].listen}, "node 99 does not exist"},
		{[]string{"node", "decommission", ids[0], ids[1], ids[2], "--host=" + ps[0].listen}, "no node in the cluster"},
		{[]string{"node", "decommission", "x", "--host=" + ps[0].listen}, "invalid node ID"},
		{[]string{"node", "decommission", ids[0], "--host=" + ps[0].listen, "--wait=some"}, "--wait"},
		{[]string{"node", "drain", "--host=127.0.0.1:1", "--timeout=3s"}, "cannot reach a kvnode node at 127.0.0.1:1"},
		{[]string{"node", "status"}, "--host is required"},
	} {
		if out, err := kvnodeCLI(t, tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("kvnode %v: %v: %s (want %q)", tc.args, err, out, tc.want)
		}
	}
	// A refusal decided on the Raft leader (whichever node --host is, the
	// request may go through it to the leader) prints the leader's message
	// and its hint, each once.
	for _, p := range ps {
		out, err := kvnodeCLI(t, "node", "decommission", "99", "--host="+p.listen)
		if err == nil || strings.Count(out, "ERROR: node 99 does not exist") != 1 ||
			strings.Count(out, "HINT: `kvnode node status` lists the IDs of the cluster's nodes") != 1 || strings.Count(out, "HINT:") != 1 {
			t.Errorf("decommission 99 through %s: %v:\n%s", p.listen, err, out)
		}
	}
	// With node 3 down, decommissioning node 2 would lose quorum.
	ps[2].kill()
	waitFor(t, 30*time.Second, func() error {
		l, err := statusLine(t, ps[0].listen, ids[2])
		if f := strings.Fields(l); err == nil && (len(f) < 4 || f[len(f)-4] != "false") { // is_live, before membership, is_draining, persisted_version
			err = fmt.Errorf("node 3 still live: %q", l)
		}
		return err
	})
	if out, err := kvnodeCLI(t, "node", "decommission", ids[1], "--host="+ps[0].listen); err == nil || !strings.Contains(out, "live majority") {
		t.Fatalf("decommission losing quorum: %v: %s", err, out)
	}
	if out, err := psql(t, ps[0].url(), "SELECT count(*) FROM crdb_internal.gossip_liveness WHERE membership = 'active'"); err != nil || out != "3" {
		t.Fatalf("a refused decommission changed something: %v: %s", err, out)
	}
	ps[2].start()
	ps[2].waitReady(t)

	// Decommission node 3 while it runs: progress, then it exits.
	out, err = kvnodeCLI(t, "node", "decommission", ids[2], "--host="+ps[0].listen)
	if err != nil || !strings.Contains(out, "decommissioning") || !strings.Contains(out, "decommissioned") {
		t.Fatalf("decommission: %v: %s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- ps[2].cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(ps[2].log.String(), "is decommissioned") {
			t.Fatalf("the decommissioned node exited with %v; log:\n%s", err, ps[2].log.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the decommissioned node did not exit")
	}
	if out, err := kvnodeCLI(t, "node", "recommission", ids[2], "--host="+ps[1].listen); err == nil || !strings.Contains(out, "cannot be reversed") {
		t.Fatalf("recommissioning a decommissioned node: %v: %s", err, out)
	}
	// Restarted on its store, it is refused and exits non-zero, saying why.
	rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	restart := exec.CommandContext(rctx, kvnodeBin, ps[2].args...)
	rout, err := restart.CombinedOutput()
	if err == nil || !strings.Contains(string(rout), "is decommissioned") || !strings.Contains(string(rout), "HINT") {
		t.Fatalf("restart of a decommissioned node: %v\n%s", err, rout)
	}
	// The two others serve on.
	if out, err := psql(t, ps[1].url(), "CREATE TABLE kv (k INT PRIMARY KEY)"); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, func() error {
		out, err := psql(t, ps[0].url(), "INSERT INTO kv VALUES (1)")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if l, err := statusLine(t, ps[0].listen, ids[2]); err != nil || !strings.Contains(l, "decommissioned") {
		t.Fatalf("final status of node 3: %q %v", l, err)
	}
}
