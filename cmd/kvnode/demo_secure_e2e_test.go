package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDemo starts `kvnode demo` with args as a process (TMPDIR an empty
// directory it returns), reads its output until the cluster is up, and
// returns what it printed; the demo keeps running until stop is called.
func startDemo(t *testing.T, args ...string) (out string, stop func() string, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	cmd := exec.Command(kvnodeBin, append([]string{"demo"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var b strings.Builder
	deadline := time.After(90 * time.Second)
	stopped := false
	stop = func() string {
		if stopped {
			return b.String()
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		for l := range lines {
			b.WriteString(l + "\n")
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo exited with %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("demo did not stop within 60s of SIGTERM")
		}
		return b.String()
	}
	t.Cleanup(func() { stop() })
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early:\n%s\nstderr:\n%s", b.String(), stderr.String())
			}
			b.WriteString(l + "\n")
			if strings.HasPrefix(l, "Press Ctrl-C") {
				return b.String(), stop, tmp
			}
		case <-deadline:
			t.Fatalf("demo not up after 90s:\n%s\nstderr:\n%s", b.String(), stderr.String())
		}
	}
}

// TestDemoSecureByDefault: `kvnode demo` runs secure: it prints, for every
// node, a URL of the admin user demo with its generated password, which psql
// uses as printed (verify-full against the demo's CA); the same URL without
// the password, or in plaintext, is refused; --insecure prints plaintext
// root URLs that work as before. Both leave nothing behind.
func TestDemoSecureByDefault(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	out, stop, tmp := startDemo(t, "--nodes=2")
	urls := regexp.MustCompile(`psql "(postgresql://demo:[^"]+)"`).FindAllStringSubmatch(out, -1)
	if len(urls) != 2 || !strings.Contains(out, "status: https://") || !strings.Contains(out, "User demo (an admin)") {
		t.Fatalf("demo output:\n%s", out)
	}
	for _, u := range urls {
		got, err := psql(t, u[1], "SELECT current_user")
		if err != nil || got != "demo" {
			t.Fatalf("psql %s: %v: %s", u[1], err, got)
		}
	}
	mustPsql(t, urls[0][1], "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	mustPsql(t, urls[0][1], "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true") // demo is an admin
	noPassword := regexp.MustCompile(`demo:[^@]+@`).ReplaceAllString(urls[0][1], "demo@")
	if got, err := psqlEnv(t, nil, noPassword, "SELECT 1"); err == nil {
		t.Fatalf("psql without the password connected: %s", got)
	}
	plain := regexp.MustCompile(`\?.*`).ReplaceAllString(urls[0][1], "?sslmode=disable&connect_timeout=5")
	if got, err := psql(t, plain, "SELECT 1"); err == nil || !strings.Contains(got, "secure mode") {
		t.Fatalf("plaintext psql: %v: %s", err, got)
	}
	if final := stop(); !strings.Contains(final, "stopping the demo cluster") {
		t.Fatalf("demo output at stop:\n%s", final)
	}
	assertCleanedUp(t, tmp)

	out, stop, tmp = startDemo(t, "--nodes=1", "--insecure")
	m := regexp.MustCompile(`psql "(postgresql://root@[^"]+sslmode=disable)"`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out, "postgresql://demo:") {
		t.Fatalf("demo --insecure output:\n%s", out)
	}
	if got, err := psql(t, m[1], "SELECT current_user"); err != nil || got != "root" {
		t.Fatalf("psql %s: %v: %s", m[1], err, got)
	}
	stop()
	assertCleanedUp(t, tmp)
}
