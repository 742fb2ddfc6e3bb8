package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd(context.Background(), &out)
	cmd.SetArgs(args)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

func TestList(t *testing.T) {
	out, err := runCLI(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"basic/kill-leader", "upgrade/rolling", "mixed/majority-old", "lifecycle/decommission", "short", "long"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "list", "^mixed/")
	if err != nil || strings.Contains(out, "basic/") || !strings.Contains(out, "mixed/all-new") {
		t.Errorf("list ^mixed/: %v\n%s", err, out)
	}
}

func TestRunBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "^nothing-matches$"}, "no scenario matches"},
		{[]string{"run", "("}, "scenario pattern"},
		{[]string{"run"}, "accepts 1 arg"},
		{[]string{"run", "basic", "--binary", "1.1"}, "is not R=PATH"},
		{[]string{"run", "basic", "--binary", "9.9=/bin/true"}, "9.9"},
		{[]string{"run", "basic", "--nope"}, "unknown flag"},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("roachtest %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestInterruptStopsEveryNode runs the real CLI on a real scenario,
// interrupts it once its nodes run, and checks that it exits non-zero,
// keeps the logs, says where, and leaves no node process behind.
func TestInterruptStopsEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode and runs a cluster")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "roachtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "^basic/replication$", "--seed", "1", "--artifacts", filepath.Join(dir, "artifacts"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	pidRe := regexp.MustCompile(`started .* \(pid (\d+)\)`)
	var pids []int
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	signaled := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if m := pidRe.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
		if !signaled && strings.Contains(line, "ready (node ID") {
			signaled = true
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("roachtest did not exit within 2 minutes of SIGINT:\n%s", out.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1\n%s%s", err, out.String(), stderr.String())
	}
	if !signaled || len(pids) == 0 {
		t.Fatalf("never saw a node start and become ready:\n%s%s", out.String(), stderr.String())
	}
	for _, want := range []string{"interrupted", "logs kept in", "reproduce: go run ./roachtest run"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d still exists after the interrupted run (kill -0: %v)", pid, err)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "artifacts", "basic_replication", "logs", "n1.log")); err != nil {
		t.Errorf("the interrupted scenario's logs are gone: %v", err)
	}
}
