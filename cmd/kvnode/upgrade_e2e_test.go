package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildRelease builds the kvnode binary of this tree as release rel.
func buildRelease(t *testing.T, rel string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(kvnodeBin), "kvnode-"+rel)
	if b, err := exec.Command("go", "build", "-o", out, "-ldflags",
		"-X github.com/kvnode/kvnode/clusterversion.binaryVersion="+rel, ".").CombinedOutput(); err != nil {
		t.Fatalf("building release %s: %v\n%s", rel, err, b)
	}
	return out
}

func mustPsql(t *testing.T, url, stmt string) string {
	t.Helper()
	out, err := psql(t, url, stmt)
	if err != nil {
		t.Fatalf("%s: %v: %s", stmt, err, out)
	}
	return out
}

func psqlErr(t *testing.T, url, stmt, want string) {
	t.Helper()
	out, err := psql(t, url, stmt)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("%s: want an error containing %q, got %v: %s", stmt, want, err, out)
	}
}

// restartOn stops p (SIGTERM) and starts it again on bin.
func restartOn(t *testing.T, p *proc, bin string) {
	t.Helper()
	if err := p.term(); err != nil {
		t.Fatalf("stopping node: %v", err)
	}
	p.bin = bin
	p.start()
	p.waitReady(t)
}

// TestRollingUpgradeAndFinalization upgrades a three-node cluster of real
// processes 1.0 -> 1.1 (held back by the preserve option, then finalized by
// hand) -> 2.0 (finalized automatically), writing rows throughout, and
// checks the refusals of old binaries and that no row is lost.
func TestRollingUpgradeAndFinalization(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	bin10, bin11, bin20 := buildRelease(t, "1.0"), buildRelease(t, "1.1"), buildRelease(t, "2.0")
	ps := newProcs(t, 3)
	for _, p := range ps {
		p.bin = bin10
		p.args = append(p.args, "--auto-upgrade-interval=300ms")
		p.start()
	}
	if out, err := exec.Command(bin10, "init", "--insecure", "--host="+ps[0].listen).CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	for _, p := range ps {
		p.waitReady(t)
	}
	url := ps[0].url()
	rows := 0
	insert := func(via *proc, n int) {
		t.Helper()
		var vals []string
		for i := 0; i < n; i++ {
			rows++
			vals = append(vals, fmt.Sprintf("(%d, 'v%d')", rows, rows))
		}
		mustPsql(t, via.url(), "INSERT INTO kv VALUES "+strings.Join(vals, ", "))
	}
	mustPsql(t, url, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	waitFor(t, 30*time.Second, func() error {
		_, err := psql(t, ps[2].url(), "SELECT count(*) FROM kv")
		return err
	})
	insert(ps[1], 300)
	if v := mustPsql(t, url, "SHOW CLUSTER SETTING version"); v != "1.0" {
		t.Fatalf("version = %q, want 1.0", v)
	}
	// Refusals before any node is upgraded.
	psqlErr(t, url, "SET CLUSTER SETTING version = '1.1'", "cannot run cluster version 1.1")
	psqlErr(t, url, "SET CLUSTER SETTING version = '0.9'", "unknown version")
	psqlErr(t, url, "SET CLUSTER SETTING version = 'banana'", "malformed version")
	psqlErr(t, url, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.1'", "current cluster version 1.0")
	mustPsql(t, url, "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0'")

	// Rolling restart onto 1.1, writing between restarts.
	for i, p := range ps {
		restartOn(t, p, bin11)
		insert(ps[(i+1)%3], 50)
	}
	// Held back by the preserve option, with the reason shown.
	time.Sleep(2 * time.Second)
	if v := mustPsql(t, url, "SHOW CLUSTER SETTING version"); v != "1.0" {
		t.Fatalf("finalized despite cluster.preserve_downgrade_option: version %q", v)
	}
	if st := mustPsql(t, url, "SHOW UPGRADE STATUS"); !strings.Contains(st, "preserve_downgrade_option is set to 1.0") {
		t.Fatalf("SHOW UPGRADE STATUS does not name the preserve option:\n%s", st)
	}
	// Roll every binary back to 1.0 before finalizing, writing throughout,
	// then forward again: nothing is lost.
	for i, p := range ps {
		restartOn(t, p, bin10)
		insert(ps[(i+2)%3], 30)
	}
	for _, p := range ps {
		if n := mustPsql(t, p.url(), "SELECT count(*) FROM kv"); n != fmt.Sprint(rows) {
			t.Fatalf("after rolling back to 1.0, node at %s has %s rows, want %d", p.sql, n, rows)
		}
	}
	for i, p := range ps {
		restartOn(t, p, bin11)
		insert(ps[i], 10)
	}
	// Manual finalization with auto-upgrade off.
	mustPsql(t, url, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	psqlErr(t, url, "SET CLUSTER SETTING version = '1.1'", "preserve_downgrade_option is set")
	mustPsql(t, url, "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	mustPsql(t, ps[1].url(), "SET CLUSTER SETTING version = crdb_internal.node_executable_version()")
	for _, p := range ps {
		if v := mustPsql(t, p.url(), "SHOW CLUSTER SETTING version"); v != "1.1" {
			t.Fatalf("node at %s: version %q after finalization, want 1.1", p.sql, v)
		}
	}
	jobs := mustPsql(t, url, "SHOW JOBS")
	if !strings.Contains(jobs, "1.1-step.2: rewrite every row into encoding v2") || !strings.Contains(jobs, "|succeeded|1|") {
		t.Fatalf("SHOW JOBS after finalizing to 1.1:\n%s", jobs)
	}
	// A downgrade is possible now; its dry run says what it would do and
	// changes nothing.
	if plan := mustPsql(t, url, "SHOW UPGRADE PLAN FOR VERSION '1.0'"); !strings.Contains(plan, "rows in encoding v2 to rewrite into v1") {
		t.Fatalf("SHOW UPGRADE PLAN FOR VERSION '1.0':\n%s", plan)
	}
	psqlErr(t, url, "SET CLUSTER SETTING version = '1.1-step.1'", "internal step")
	insert(ps[2], 20)

	// Old binaries are refused: on a finalized store, and as a new node.
	if err := ps[2].term(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin10, ps[2].args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "store's cluster version is 1.1") {
		t.Fatalf("1.0 binary on a 1.1 store: %v\n%s", err, out)
	}
	ps[2].bin = bin11
	ps[2].start()
	ps[2].waitReady(t)
	extra := newProcs(t, 1)[0]
	extra.args = append(extra.args[:len(extra.args)-1], "--join="+ps[0].listen)
	out, err = exec.CommandContext(ctx, bin10, extra.args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot run the cluster's version 1.1") {
		t.Fatalf("1.0 binary joining a 1.1 cluster: %v\n%s", err, out)
	}

	// 1.1 -> 2.0: automatic once every node runs 2.0.
	mustPsql(t, url, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true")
	for i, p := range ps {
		restartOn(t, p, bin20)
		insert(ps[(i+1)%3], 10)
	}
	waitFor(t, 60*time.Second, func() error {
		if v, err := psql(t, url, "SHOW CLUSTER SETTING version"); err != nil || v != "2.0" {
			return fmt.Errorf("version %q %v", v, err)
		}
		return nil
	})
	// Nothing lost, through every node.
	for _, p := range ps {
		if n := mustPsql(t, p.url(), "SELECT count(*) FROM kv"); n != fmt.Sprint(rows) {
			t.Fatalf("node at %s has %s rows, want %d", p.sql, n, rows)
		}
	}
	if v := mustPsql(t, url, "SELECT v FROM kv WHERE k = 7"); v != "v7" {
		t.Fatalf("row 7 = %q", v)
	}
}
