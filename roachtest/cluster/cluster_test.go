package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every process waiter must end with its process.
	goleak.VerifyTestMain(m)
}

// fakeBinary writes a shell script standing in for kvnode, for the process
// handling tests: they are about starting, stopping and reporting, not
// about kvnode.
func fakeBinary(t *testing.T, body string) *Binary {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	p := filepath.Join(t.TempDir(), "fake-kvnode")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Binary{Release: "2.0", Path: p, Origin: "test script"}
}

func newTestCluster(t *testing.T, nodes int) *Cluster {
	t.Helper()
	c, err := New(Options{Nodes: nodes, Dir: t.TempDir(), Logf: t.Logf, StopTimeout: time.Second, ReadyTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNodeThatFailsToStartIsNamedWithItsLog(t *testing.T) {
	c := newTestCluster(t, 2)
	bin := fakeBinary(t, `echo "ERROR: --sql-addr 127.0.0.1:1 is in use" >&2; exit 3`)
	n := c.Node(2)
	if err := n.Start(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	err := n.WaitReady(context.Background())
	if err == nil {
		t.Fatal("WaitReady succeeded for a process that exits")
	}
	for _, want := range []string{"n2", "exited before it was ready", "exit status 3", "--sql-addr 127.0.0.1:1 is in use", n.LogPath} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// A process that dies on its own while nobody waits for it is reported
	// once by UnexpectedExits.
	n1 := c.Node(1)
	if err := n1.Start(context.Background(), fakeBinary(t, "sleep 0.2; exit 4")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var exits []error
	for len(exits) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		exits = c.UnexpectedExits()
	}
	if len(exits) != 1 || !strings.Contains(exits[0].Error(), "n1") || !strings.Contains(exits[0].Error(), "exited on its own") {
		t.Errorf("UnexpectedExits = %v", exits)
	}
	if exits := c.UnexpectedExits(); len(exits) != 0 {
		t.Errorf("UnexpectedExits reported twice: %v", exits)
	}
}

func TestPortTakenMeanwhileIsNamed(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.Node(1)
	l, err := net.Listen("tcp", n.SQLAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = n.Start(context.Background(), fakeBinary(t, "exec sleep 60"))
	if err == nil {
		t.Fatal("Start succeeded with a port taken")
	}
	for _, want := range []string{"n1", n.SQLAddr, "--sql-addr", "taken by another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n.Running() {
		t.Error("the node runs although Start failed")
	}
}

func TestStopKillRestartAndCleanup(t *testing.T) {
	c := newTestCluster(t, 2)
	ctx := context.Background()
	sleeper := fakeBinary(t, "exec sleep 60")
	n := c.Node(1)
	if err := n.Start(ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	if !n.Running() || n.Pid() == 0 {
		t.Fatal("not running after Start")
	}
	// Nodes run in their own process group, so a terminal's Ctrl-C reaches
	// roachtest, which stops them in order.
	if pgid, err := syscall.Getpgid(n.Pid()); err != nil || pgid != n.Pid() {
		t.Errorf("node process group = %d, %v; want its own (%d)", pgid, err, n.Pid())
	}
	if err := n.Start(ctx, sleeper); err == nil {
		t.Error("a second Start of a running node succeeded")
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop of a process that exits on SIGTERM: %v", err)
	}
	if n.Running() {
		t.Fatal("running after Stop")
	}
	if err := n.Start(ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if exits := c.UnexpectedExits(); len(exits) != 0 {
		t.Errorf("stops and kills we asked for were reported as unexpected: %v", exits)
	}

	// A process that ignores SIGTERM is killed after StopTimeout, and Stop
	// says so.
	stubborn := fakeBinary(t, "trap '' TERM\nwhile :; do sleep 0.05; done")
	if err := n.Start(ctx, stubborn); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	start := time.Now()
	err := n.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not stop within") {
		t.Errorf("Stop of a process that ignores SIGTERM: %v", err)
	}
	if n.Running() || time.Since(start) > 10*time.Second {
		t.Errorf("still running %v after Stop (took %s)", n.Running(), time.Since(start))
	}

	// Close and KillAll end whatever still runs.
	for _, m := range c.Nodes() {
		if err := m.Start(ctx, sleeper); err != nil {
			t.Fatal(err)
		}
	}
	if got := KillAll(); got < 2 {
		t.Errorf("KillAll killed %d processes, want at least 2", got)
	}
	c.Close()
	for _, m := range c.Nodes() {
		if m.Running() {
			t.Errorf("%s still runs after KillAll and Close", m)
		}
	}
	// The log keeps every start and exit, across restarts.
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), "starting n1"); got != 4 {
		t.Errorf("n1's log records %d starts, want 4:\n%s", got, data)
	}
}

func TestStartArgs(t *testing.T) {
	c := newTestCluster(t, 3)
	args := strings.Join(c.Node(2).Args(), " ")
	n := c.Node(2)
	for _, want := range []string{"start", "--insecure", "--store=" + n.StoreDir, "--listen-addr=" + n.ListenAddr, "--gossip-addr=" + n.GossipAddr,
		"--sql-addr=" + n.SQLAddr, "--http-addr=" + n.HTTPAddr, "--join=" + c.JoinList()} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	seen := map[string]bool{}
	for _, m := range c.Nodes() {
		for _, a := range []string{m.ListenAddr, m.GossipAddr, m.SQLAddr, m.HTTPAddr} {
			if seen[a] {
				t.Errorf("address %s handed out twice", a)
			}
			seen[a] = true
		}
	}
}

// TestStartEnv: the cluster's StartEnv and a node's SetEnv reach that
// node's process (the node's win), show in its log, and leave the other
// nodes' environment alone; a refused start gets them too.
func TestStartEnv(t *testing.T) {
	c := newTestCluster(t, 2)
	ctx := context.Background()
	t.Setenv("ROACHTEST_ENV_TEST_INHERITED", "kept")
	c.SetStartEnv("ROACHTEST_ENV_A=cluster", "ROACHTEST_ENV_B=cluster")
	c.Node(1).SetEnv("ROACHTEST_ENV_B=n1")
	if got := strings.Join(c.Node(1).Env(), " "); got != "ROACHTEST_ENV_A=cluster ROACHTEST_ENV_B=cluster ROACHTEST_ENV_B=n1" {
		t.Errorf("n1's extra environment: %q", got)
	}
	bin := fakeBinary(t, `echo "env: a=$ROACHTEST_ENV_A b=$ROACHTEST_ENV_B inherited=$ROACHTEST_ENV_TEST_INHERITED"; exec sleep 60`)
	for _, n := range c.Nodes() {
		if err := n.Start(ctx, bin); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"env: a=cluster b=n1 inherited=kept", "env: a=cluster b=cluster inherited=kept"} {
		n := c.Node(i + 1)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(n.LogTail(5), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s's log lacks %q:\n%s", n, want, n.LogTail(5))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if tail := c.Node(1).LogTail(10); !strings.Contains(tail, "=== ROACHTEST_ENV_A=cluster ROACHTEST_ENV_B=cluster ROACHTEST_ENV_B=n1 "+bin.Path+" start") {
		t.Errorf("n1's log does not record the start's environment:\n%s", tail)
	}
	c.Close()
	c.Node(2).SetEnv("ROACHTEST_ENV_A=n2")
	out, err := c.Node(2).StartExpectExit(ctx, fakeBinary(t, `echo "refused with a=$ROACHTEST_ENV_A"; exit 1`), 10*time.Second)
	if err != nil || out != "refused with a=n2" {
		t.Errorf("StartExpectExit: %q %v", out, err)
	}
}

func TestParseNodeStatus(t *testing.T) {
	st, err := ParseNodeStatus(`{"node_id":3,"cluster_id":"850ef49d","binary_version":"1.1","active_version":"1.1","ready":true,` +
		`"draining":false,"group0_state":"use_pre_raft_procedures","raft":{"leader":2,"term":7,"commit":130,"applied":128,"voters":[1,2,3],"learners":[]}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{NodeID: 3, Binary: "1.1", Ready: true, Leader: 2, Term: 7, Commit: 130, Applied: 128}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	st, err = ParseNodeStatus(`{"node_id":0,"binary_version":"2.0","ready":false,"not_ready":"waiting"}`)
	if err != nil || st.Leader != 0 || st.Ready {
		t.Errorf("a node without Raft: %+v, %v", st, err)
	}
	for _, bad := range []string{"<html>", "{}", ""} {
		if _, err := ParseNodeStatus(bad); err == nil {
			t.Errorf("%q parsed as a node status", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m := ParseMetrics(`# HELP kvnode_raft_is_leader 1 if this node leads the data group.
# TYPE kvnode_raft_is_leader gauge
kvnode_raft_is_leader 1
kvnode_raft_log_sync_seconds_bucket{le="0.0001"} 3
kvnode_raft_snapshots_applied_total 2
go_gc_duration_seconds{quantile="0"} 1.2e-05
`)
	if m["kvnode_raft_is_leader"] != 1 || m["kvnode_raft_snapshots_applied_total"] != 2 || len(m) != 2 {
		t.Errorf("got %v", m)
	}
}

// lostMidStatement returns the error pgx gives a statement whose server
// receives it and then dies before answering (a kill -9 mid-statement):
// a fake server accepts the connection, reads the statement and hangs up.
func lostMidStatement(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		be := pgproto3.NewBackend(c, c)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			return
		}
		be.Send(&pgproto3.AuthenticationOk{})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if err := be.Flush(); err != nil {
			return
		}
		if _, err := be.Receive(); err == nil {
			close(received)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgresql://root@"+l.Addr().String()+"/defaultdb?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (1)")
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("the fake server never received the statement")
	}
	if err == nil {
		t.Fatal("a statement whose server hung up succeeded")
	}
	return err
}

func TestRetryable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A real connection refusal: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, refused := pgx.Connect(ctx, "postgresql://root@"+addr+"/defaultdb?sslmode=disable&connect_timeout=2")
	if refused == nil {
		t.Fatal("connected to a closed port")
	}
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name             string
		err              error
		plain, idempoten bool
	}{
		{"connection refused", refused, true, true},
		{"ambiguous", pg(CodeAmbiguous), false, true},
		{"unavailable", pg(CodeUnavailable), false, true},
		{"draining", pg(CodeAdminShutdown), false, true},
		{"serialization failure: nothing written", pg(CodeSerialization), true, true},
		{"duplicate key is an answer", pg(CodeUniqueViolated), false, false},
		{"syntax error is an answer", pg("42601"), false, false},
		{"connection lost mid-statement", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), false, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), false, true},
		{"connection lost after the statement was sent (pgx: conn closed)", lostMidStatement(t), false, true},
		{"context canceled", context.Canceled, false, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false, false},
		{"something else", errors.New("boom"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Retryable(tc.err, false); got != tc.plain {
				t.Errorf("Retryable(%v, non-idempotent) = %v, want %v", tc.err, got, tc.plain)
			}
			if got := Retryable(tc.err, true); got != tc.idempoten {
				t.Errorf("Retryable(%v, idempotent) = %v, want %v", tc.err, got, tc.idempoten)
			}
		})
	}
}

func TestSQLAgainstADeadNodeGivesUpWithTheLastError(t *testing.T) {
	c := newTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err := c.Node(1).Exec(ctx, "INSERT INTO t VALUES (1)")
	if err == nil {
		t.Fatal("a statement to a node that is not running succeeded")
	}
	for _, want := range []string{"n1: INSERT INTO t VALUES (1)", "gave up after", "attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestFreeAddrsStayBelowTheEphemeralRange: the ports a node is given never
// come from the range the kernel draws outgoing connections' source ports
// from, so a restarted node finds its ports free again.
func TestFreeAddrsStayBelowTheEphemeralRange(t *testing.T) {
	addrs, err := freeAddrs(40)
	if err != nil {
		t.Fatal(err)
	}
	hi, seen := ephemeralLow(), map[string]bool{}
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		if port < lowestPort || port >= hi {
			t.Errorf("port %d outside [%d, %d)", port, lowestPort, hi)
		}
		if seen[a] {
			t.Errorf("%s handed out twice", a)
		}
		seen[a] = true
	}
}
