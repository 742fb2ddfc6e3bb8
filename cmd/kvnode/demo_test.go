package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests run `kvnode demo --upgrade-from` as a real process, the way a
// newcomer does, and read its transcript.

// runDemo runs the kvnode binary with args and stdin, bounded by timeout,
// with TMPDIR set to an empty directory it returns (the demo's stores and
// log go there). It returns stdout, stderr and the exit code.
func runDemoProcess(t *testing.T, timeout time.Duration, stdin string, args ...string) (stdout, stderr string, code int, tmp string) {
	t.Helper()
	return runDemoBinary(t, kvnodeBin, timeout, stdin, args...)
}

// runDemoBinary is runDemoProcess with the binary bin (a release built by
// buildRelease).
func runDemoBinary(t *testing.T, bin string, timeout time.Duration, stdin string, args ...string) (stdout, stderr string, code int, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kvnode %s did not finish within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, out.String(), errb.String())
	}
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code, tmp
}

// mustContain fails unless every want is in text, in this order.
func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	rest := text
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%s: %q is missing (or out of order); transcript:\n%s", what, w, text)
		}
		rest = rest[i+len(w):]
	}
}

// commandOutput returns what the demo printed for the prompt line
// "demo> "+line (the n-th time it was typed, from 1), up to the next prompt.
func commandOutput(t *testing.T, out, line string, n int) string {
	t.Helper()
	parts := strings.Split(out, "demo> ")
	for _, p := range parts[1:] {
		if strings.HasPrefix(p, line+"\n") {
			if n--; n == 0 {
				return p
			}
		}
	}
	t.Fatalf("no output for command %q (#%d) in transcript:\n%s", line, n, out)
	return ""
}

func assertCleanedUp(t *testing.T, tmp string) {
	t.Helper()
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("the demo left %s behind in its temporary directory", e.Name())
	}
}

// TestDemoUpgradeAuto runs the whole walk-through of a release 2.0 binary
// from 1.1 without prompts and checks what a watcher sees: the cluster on
// 1.1, mixed versions during the rolling restart, finalization to 2.0 with
// every node's group 0 state reaching use_post_raft_procedures, and every
// row intact. (TestDemoUpgradeTo21 walks the default binary's last hop.)
func TestDemoUpgradeAuto(t *testing.T) {
	out, stderr, code, tmp := runDemoBinary(t, buildRelease(t, "2.0"), 120*time.Second, "",
		"demo", "--upgrade-from=1.1", "--auto", "--exit-after-walkthrough")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s\nstdout:\n%s", code, stderr, out)
	}
	mustContain(t, "start", out,
		"starting a 3-node cluster on release 1.1 (this binary is release 2.0)",
		`node 1 (release 1.1): psql "postgresql://root@127.0.0.1:`, "status page: http://127.0.0.1:",
		`node 3 (release 1.1): psql "postgresql://root@`,
		"The table demo_rows holds 20 rows written on release 1.1")
	mustContain(t, "walk-through", out,
		"Step 1 of 12", "SHOW CLUSTER SETTING version   -> 1.1",
		"SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.1'",
		"Step 3 of 12: restart node 1 on release 2.0",
		"node 1 serves SQL again, as release 2.0",
		"MIXED VERSIONS: nodes 2, 3 on 1.1; node 1 on 2.0.",
		"MIXED VERSIONS: node 3 on 1.1; nodes 1, 2 on 2.0.",
		"Every node runs release 2.0.",
		"RESET CLUSTER SETTING cluster.preserve_downgrade_option",
		"cluster version 2.0", "The cluster finalized to 2.0",
		"SHOW CLUSTER SETTING version   -> 2.0",
		"node 1: use_post_raft_procedures", "node 2: use_post_raft_procedures", "node 3: use_post_raft_procedures",
		"node 1: 29 rows, all as written", "node 2: 29 rows, all as written", "node 3: 29 rows, all as written",
		"The walk-through is complete: the cluster runs 2.0")
	// SHOW UPGRADE STATUS is printed as an aligned table.
	if !regexp.MustCompile(`(?m)^    item +node_id +value +detail$`).MatchString(out) {
		t.Fatalf("no SHOW UPGRADE STATUS table header; transcript:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^    group0_state +3 +use_post_raft_procedures +group 0 generation`).MatchString(out) {
		t.Fatalf("SHOW UPGRADE STATUS never showed node 3 in use_post_raft_procedures; transcript:\n%s", out)
	}
	assertCleanedUp(t, tmp)
}

// TestDemoUpgradeTo21 runs the default binary's walk-through from 2.0: the
// 2.1 hop, whose migration enables transactions, ends with every row intact.
func TestDemoUpgradeTo21(t *testing.T) {
	out, stderr, code, tmp := runDemoProcess(t, 120*time.Second, "",
		"demo", "--upgrade-from=2.0", "--auto", "--exit-after-walkthrough")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s\nstdout:\n%s", code, stderr, out)
	}
	mustContain(t, "walk-through", out,
		"starting a 3-node cluster on release 2.0 (this binary is release 2.1)",
		"SET CLUSTER SETTING cluster.preserve_downgrade_option = '2.0'",
		"MIXED VERSIONS: nodes 2, 3 on 2.0; node 1 on 2.1.",
		"Every node runs release 2.1.",
		"The cluster finalized to 2.1",
		"SHOW UPGRADE PLAN FOR VERSION '2.0'", "down-migration",
		"SET CLUSTER SETTING version = '2.0'", "SHOW CLUSTER SETTING version   -> 2.0",
		"SHOW CLUSTER SETTING cluster.preserve_downgrade_option   -> 2.0",
		"node 1 serves SQL again, as release 2.0",
		"Step 12 of 12",
		"node 3: 29 rows, all as written",
		"The walk-through is complete: the cluster runs 2.1")
	assertCleanedUp(t, tmp)
}

// TestDemoUpgradeScripted drives a release 2.0 binary's demo from stdin as a user would: upgrade
// and roll back a node, look, query, run the rest of the walk-through, then
// try a rollback the finalized cluster refuses.
func TestDemoUpgradeScripted(t *testing.T) {
	script := strings.Join([]string{
		"upgrade 1",
		"rollback 1",
		"status",
		"sql SELECT count(*) FROM demo_rows",
		"sql SELEC 1",
		"upgrade 9",
		"auto",
		"rollback 1",
		"sql SELECT count(*) FROM demo_rows",
		"quit",
	}, "\n") + "\n"
	out, stderr, code, tmp := runDemoBinary(t, buildRelease(t, "2.0"), 150*time.Second, script, "demo", "--upgrade-from=1.1")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s\nstdout:\n%s", code, stderr, out)
	}
	mustContain(t, "upgrade 1", commandOutput(t, out, "upgrade 1", 1),
		"draining node 1", "stopping node 1 (release 1.1)", "written through node 2 while node 1 was down",
		"node 1 serves SQL again, as release 2.0", "MIXED VERSIONS: nodes 2, 3 on 1.1; node 1 on 2.0.")
	mustContain(t, "rollback 1", commandOutput(t, out, "rollback 1", 1),
		"stopping node 1 (release 2.0)", "node 1 serves SQL again, as release 1.1", "Every node runs release 1.1.")
	if !regexp.MustCompile(`(?m)^    node +1 +1\.1 +127\.0\.0\.1:\d+, live, active$`).MatchString(commandOutput(t, out, "status", 1)) {
		t.Fatalf("status does not show node 1 back on 1.1; transcript:\n%s", out)
	}
	// 20 rows, and one written while node 1 was down for each restart.
	mustContain(t, "sql count", commandOutput(t, out, "sql SELECT count(*) FROM demo_rows", 1),
		"    count\n", "    22\n", "SELECT 1   -- through node 1")
	mustContain(t, "sql error", commandOutput(t, out, "sql SELEC 1", 1), "ERROR:", "(SQLSTATE 42601)")
	mustContain(t, "bad node", commandOutput(t, out, "upgrade 9", 1), `ERROR: no node "9": the nodes are 1 to 3`)
	mustContain(t, "auto", commandOutput(t, out, "auto", 1),
		"Step 1 of 12", "Step 3 of 12", "node 1 serves SQL again, as release 2.0",
		"The cluster finalized to 2.0", "node 3: use_post_raft_procedures", "all as written",
		"The walk-through is complete")
	// Once finalized, the node itself refuses the old release; the demo
	// prints the refusal and brings the node back on 2.0.
	mustContain(t, "refused rollback", commandOutput(t, out, "rollback 1", 2),
		"starting node 1 on release 1.1", "node 1 refused to start on release 1.1. The server says:",
		"ERROR: this binary is release 1.1 but the store's cluster version is 2.0",
		"starting node 1 again on release 2.0", "node 1 serves SQL again, as release 2.0")
	// Nothing lost: 20 + 3 (walk-through) + 6 (its downgrade: every node
	// rolled back, then forward) + 3 (upgrade, rollback, refused rollback)
	// rows, each written while a node was down.
	mustContain(t, "sql count after", commandOutput(t, out, "sql SELECT count(*) FROM demo_rows", 2), "    32\n")
	assertCleanedUp(t, tmp)
}

// TestDemoUpgradeFromBadValues checks that invalid --upgrade-from values (and
// flags that need it) are refused before anything starts, listing the valid
// values.
func TestDemoUpgradeFromBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--upgrade-from=banana"}, []string{`invalid --upgrade-from "banana": not a release`, "valid values are the releases older than this binary's 2.1: 1.0, 1.1, 2.0"}},
		{[]string{"--upgrade-from=2.1"}, []string{`invalid --upgrade-from "2.1": this binary is release 2.1`, "1.0, 1.1, 2.0"}},
		{[]string{"--upgrade-from=3.0"}, []string{`invalid --upgrade-from "3.0": no such release`, "1.0, 1.1, 2.0"}},
		{[]string{"--upgrade-from=0.9"}, []string{`invalid --upgrade-from "0.9": no such release`, "1.0, 1.1, 2.0"}},
		{[]string{"--upgrade-from=2.0-step.1"}, []string{"an internal step between releases, not a release", "1.0, 1.1, 2.0"}},
		{[]string{"--auto"}, []string{"--auto and --exit-after-walkthrough need --upgrade-from"}},
		{[]string{"--upgrade-from=1.1", "--nodes=0"}, []string{"--nodes=0 is out of range"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, stderr, code, tmp := runDemoProcess(t, 30*time.Second, "", append([]string{"demo"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit code 0; stdout:\n%s\nstderr:\n%s", out, stderr)
			}
			mustContain(t, fmt.Sprint(tc.args), stderr, tc.want...)
			if out != "" {
				t.Errorf("printed to stdout although refused:\n%s", out)
			}
			assertCleanedUp(t, tmp) // nothing was created
		})
	}
}
