package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mount runs mount(8) with args, skipping the test where this machine does
// not allow it (not root, no mount namespace).
func mount(t *testing.T, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small or read-only file system")
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount %v: %v: %s", args, err, out)
	}
}

func umount(dir string) { _ = exec.Command("umount", "-l", dir).Run() }

// TestFullDiskStopsTheNodeAndLosesNothing fills a node's store (a 3 MiB
// tmpfs): the node stops with an error that names the fix, and once space is
// freed it restarts with every acknowledged row.
func TestFullDiskStopsTheNodeAndLosesNothing(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "-t", "tmpfs", "-o", "size=3m", "tmpfs", dir)
	t.Cleanup(func() { umount(dir) })
	p := newProcs(t, 1)[0]
	p.store = filepath.Join(dir, "store")
	p.args = []string{"start-single-node", "--insecure", "--store=" + p.store, "--listen-addr=" + p.listen,
		"--gossip-addr=" + p.gossip, "--sql-addr=" + p.sql, "--http-addr=" + p.httpA}
	p.start()
	p.waitReady(t)
	mustPsql(t, p.url(), "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	big := strings.Repeat("x", 100_000)
	acked := 0
	for k := 1; k <= 200; k++ {
		if _, err := psql(t, p.url(), fmt.Sprintf("INSERT INTO t VALUES (%d, '%s')", k, big)); err != nil {
			break
		}
		acked = k
	}
	if acked == 200 {
		t.Fatal("the disk never filled up")
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the node kept running on a full disk")
	}
	if log := p.log.String(); !strings.Contains(log, "the store's disk is full") || !strings.Contains(log, "free space on the disk") {
		t.Fatalf("the node did not say why it stopped and what to do:\n%s", log)
	}
	// Free space and restart: every acknowledged row is there.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	p.start()
	p.waitReady(t)
	if n := mustPsql(t, p.url(), "SELECT count(*) FROM t"); n != fmt.Sprint(acked) && n != fmt.Sprint(acked+1) {
		t.Fatalf("after restart %s rows, want the %d acknowledged (or one more, whose acknowledgement was lost)", n, acked)
	}
	if v := mustPsql(t, p.url(), fmt.Sprintf("SELECT length(v) FROM t WHERE k = %d", acked)); v != "100000" {
		t.Fatalf("last acknowledged row: length %q", v)
	}
}

// TestReadOnlyStore: a store on a read-only file system is refused at start
// with an error that names the fix.
func TestReadOnlyStore(t *testing.T) {
	src, dir := t.TempDir(), filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "--bind", src, dir)
	t.Cleanup(func() { umount(dir) })
	mount(t, "-o", "remount,bind,ro", dir)
	a := freeAddrs(t, 4)
	out, err := exec.Command(kvnodeBin, "start-single-node", "--insecure", "--store="+filepath.Join(dir, "s"), "--listen-addr="+a[0],
		"--gossip-addr="+a[1], "--sql-addr="+a[2], "--http-addr="+a[3]).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "read-only file system") || !strings.Contains(string(out), "HINT") {
		t.Fatalf("read-only store: %v\n%s", err, out)
	}
}
