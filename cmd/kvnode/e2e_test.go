package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/testutil"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// These tests run the real binary as separate processes on loopback ports,
// the way an operator does, and talk to it with psql and pgx.

var kvnodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvnode-e2e-bin-")
	if err != nil {
		panic(err)
	}
	kvnodeBin = filepath.Join(dir, "kvnode")
	out, err := exec.Command("go", "build", "-o", kvnodeBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building kvnode: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	t                          *testing.T
	bin                        string // the binary to run; kvnodeBin if empty
	args                       []string
	env                        []string // added to the test's environment
	cmd                        *exec.Cmd
	log                        *logBuffer
	listen, gossip, sql, httpA string
	store                      string
}

// freeAddrs returns n free loopback addresses (see testcluster.FreeAddrs).
func freeAddrs(t *testing.T, n int) []string { return testcluster.FreeAddrs(t, n) }

func newProcs(t *testing.T, n int) []*proc {
	var ps []*proc
	var join []string
	for i := 0; i < n; i++ {
		a := freeAddrs(t, 4)
		ps = append(ps, &proc{t: t, listen: a[0], gossip: a[1], sql: a[2], httpA: a[3],
			store: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1)), log: &logBuffer{}})
		join = append(join, a[0])
	}
	for _, p := range ps {
		p.args = []string{"start", "--insecure", "--store=" + p.store, "--listen-addr=" + p.listen, "--gossip-addr=" + p.gossip,
			"--sql-addr=" + p.sql, "--http-addr=" + p.httpA, "--join=" + strings.Join(join, ",")}
	}
	t.Cleanup(func() {
		for i, p := range ps {
			p.kill()
			if t.Failed() {
				t.Logf("node %d log:\n%s", i+1, p.log.String())
			}
		}
	})
	return ps
}

// logBuffer is a node's output, safe to read while the node writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (p *proc) start() {
	p.t.Helper()
	bin := kvnodeBin
	if p.bin != "" {
		bin = p.bin
	}
	p.cmd = exec.Command(bin, p.args...)
	if len(p.env) > 0 {
		p.cmd.Env = append(os.Environ(), p.env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func (p *proc) term() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(40 * time.Second):
		p.kill()
		return errors.New("node did not stop within 40s of SIGTERM")
	}
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.httpA + "/health?ready=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node at %s not ready after 60s; log:\n%s", p.httpA, p.log.String())
}

func (p *proc) url() string {
	return "postgresql://root@" + p.sql + "/defaultdb?sslmode=disable&connect_timeout=5"
}

func psql(t *testing.T, url, stmt string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "psql", url, "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-AtqX", "-c", stmt).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestThreeProcessesWithPsqlAndPgx(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	ps := newProcs(t, 3)
	for _, p := range ps {
		p.start()
	}
	initOut, err := exec.Command(kvnodeBin, "init", "--insecure", "--host="+ps[0].listen).CombinedOutput()
	if err != nil || !strings.Contains(string(initOut), "initialized") {
		t.Fatalf("kvnode init: %v: %s", err, initOut)
	}
	for _, p := range ps {
		p.waitReady(t)
	}
	// A second init is refused, clearly.
	if out, err := exec.Command(kvnodeBin, "init", "--insecure", "--host="+ps[1].listen).CombinedOutput(); err == nil || !strings.Contains(string(out), "already been initialized") {
		t.Fatalf("second init: %v: %s", err, out)
	}

	if out, err := psql(t, ps[0].url(), "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT, b BYTES, f FLOAT, ok BOOL)"); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	if out, err := psql(t, ps[0].url(), "INSERT INTO kv VALUES (1, 'one', '\\x0102', 1.5, true), (2, 'two', NULL, -2, false)"); err != nil {
		t.Fatalf("insert: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, func() error {
		out, err := psql(t, ps[2].url(), "SELECT v FROM kv WHERE k = 2")
		if err != nil || out != "two" {
			return fmt.Errorf("node 3: %q %v", out, err)
		}
		return nil
	})
	out, err := psql(t, ps[1].url(), "INSERT INTO kv (k, v) VALUES (1, 'again')")
	if err == nil || !strings.Contains(out, "23505") {
		t.Fatalf("duplicate key via psql: %v: %s", err, out)
	}
	out, err = psql(t, ps[1].url(), "SELEC 1")
	if err == nil || !strings.Contains(out, "42601") {
		t.Fatalf("syntax error via psql: %v: %s", err, out)
	}

	// pgx, extended protocol with binary parameters and results.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ps[2].url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "INSERT INTO kv VALUES ($1, $2, $3, $4, $5)", int64(3), "three", []byte{9}, 3.25, true); err != nil {
		t.Fatal(err)
	}
	var (
		v  string
		b  []byte
		f  float64
		ok bool
	)
	if err := conn.QueryRow(ctx, "SELECT v, b, f, ok FROM kv WHERE k = $1", 3).Scan(&v, &b, &f, &ok); err != nil {
		t.Fatal(err)
	}
	if v != "three" || !bytes.Equal(b, []byte{9}) || f != 3.25 || !ok {
		t.Fatalf("pgx read back %q %v %v %v", v, b, f, ok)
	}
	_, err = conn.Exec(ctx, "SELECT * FROM nope")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("undefined table: %v", err)
	}

	// kill -9 a node: the others keep serving; it catches up when back.
	ps[0].kill()
	for k := 10; k < 20; k++ {
		if out, err := psql(t, ps[1].url(), fmt.Sprintf("UPSERT INTO kv (k, v) VALUES (%d, 'w')", k)); err != nil {
			t.Fatalf("write with node 1 down: %v: %s", err, out)
		}
	}
	ps[0].start()
	ps[0].waitReady(t)
	waitFor(t, 30*time.Second, func() error {
		out, err := psql(t, ps[0].url(), "SELECT count(*) FROM kv")
		if err != nil || out != "13" {
			return fmt.Errorf("node 1 count %q %v", out, err)
		}
		return nil
	})
	// SIGTERM stops a node cleanly.
	if err := ps[2].term(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, ps[2].log.String())
	}
}

func TestBadFlagsAndInputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"start", "--nope"}, "unknown flag"},
		{"bad listen addr", []string{"start", "--insecure", "--store=" + t.TempDir(), "--listen-addr=nonsense"}, "invalid --listen-addr"},
		{"init without host", []string{"init"}, "--host is required"},
		{"init unreachable", []string{"init", "--insecure", "--host=127.0.0.1:1", "--timeout=1s"}, "cannot reach"},
		{"same port twice", []string{"start", "--insecure", "--store=" + t.TempDir(), "--listen-addr=127.0.0.1:41000", "--sql-addr=127.0.0.1:41000"}, "its own port"},
		{"max offset not a duration", []string{"start", "--insecure", "--max-offset=500"}, `invalid argument "500" for "--max-offset"`},
		{"max offset zero", []string{"start", "--insecure", "--max-offset=0s"}, "--max-offset=0s: the maximum clock offset must be positive"},
		{"max offset negative", []string{"start-single-node", "--insecure", "--max-offset=-1s"}, "must be positive"},
		{"max offset too large", []string{"start", "--insecure", "--max-offset=1s"}, "--max-offset=1s is too large: it must be at most 600ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, kvnodeBin, tc.args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("kvnode %v: %v\n%s\nwant %q", tc.args, err, out, tc.want)
			}
		})
	}
	// A port in use is named.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := freeAddrs(t, 3)
	out, err := exec.Command(kvnodeBin, "start", "--insecure", "--store="+t.TempDir(), "--listen-addr="+a[0], "--gossip-addr="+a[1],
		"--sql-addr="+l.Addr().String(), "--http-addr="+a[2]).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--sql-addr "+l.Addr().String()+" is in use") {
		t.Fatalf("port in use: %v\n%s", err, out)
	}
	// An unknown build-time release refuses to start.
	dir := t.TempDir()
	bad := filepath.Join(dir, "kvnode-bad")
	if out, err := exec.Command("go", "build", "-o", bad, "-ldflags",
		"-X github.com/kvnode/kvnode/clusterversion.binaryVersion=9.9", ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = exec.Command(bad, "version").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "9.9") {
		t.Fatalf("binary with an unknown release: %v\n%s", err, out)
	}
}

// poll calls fn every interval until it returns nil or d has passed, and
// returns fn's last error (testutil.PollEvery: a condition here runs psql
// or a CLI command, so it is checked at an interval, not with backoff).
func poll(d, interval time.Duration, fn func() error) error {
	return testutil.PollEvery(context.Background(), d, interval, fn)
}

func waitFor(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	if err := poll(d, 100*time.Millisecond, fn); err != nil {
		t.Fatal(err)
	}
}

// TestKillNineUnderConcurrentWrites kills (SIGKILL) and restarts each node
// in turn while writers insert through every node, then checks that every
// acknowledged insert is present exactly once, nothing unattempted appeared,
// and all nodes agree.
func TestKillNineUnderConcurrentWrites(t *testing.T) {
	ps := newProcs(t, 3)
	for _, p := range ps {
		p.start()
	}
	if out, err := exec.Command(kvnodeBin, "init", "--insecure", "--host="+ps[0].listen).CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	for _, p := range ps {
		p.waitReady(t)
	}
	ctx := context.Background()
	exec1 := func(url, stmt string, args ...any) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(cctx, stmt, args...)
		return err
	}
	if err := exec1(ps[0].url(), "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		for _, p := range ps {
			if err := exec1(p.url(), "SELECT count(*) FROM kv"); err != nil {
				return err
			}
		}
		return nil
	})
	type outcome struct {
		k     int64
		acked bool
	}
	results := make(chan outcome, 100000)
	stop := make(chan struct{})
	done := make(chan struct{})
	var next atomic.Int64
	for w := 0; w < 4; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := next.Add(1)
				err := exec1(ps[(w+i)%3].url(), "INSERT INTO kv VALUES ($1, 'w')", k)
				results <- outcome{k, err == nil}
			}
		}(w)
	}
	for r := 0; r < 3; r++ {
		time.Sleep(time.Second)
		ps[r].kill()
		time.Sleep(time.Second)
		ps[r].start()
		ps[r].waitReady(t)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	for w := 0; w < 4; w++ {
		<-done
	}
	close(results)
	acked, attempted := map[int64]bool{}, map[int64]bool{}
	for o := range results {
		attempted[o.k] = true
		if o.acked {
			acked[o.k] = true
		}
	}
	if len(acked) < 50 {
		t.Fatalf("only %d of %d inserts acknowledged: the cluster was unavailable too long", len(acked), len(attempted))
	}
	var counts []int64
	for i, p := range ps {
		var rows map[int64]int
		waitFor(t, 30*time.Second, func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, err := pgx.Connect(cctx, p.url())
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			rs, err := conn.Query(cctx, "SELECT k FROM kv")
			if err != nil {
				return err
			}
			defer rs.Close()
			rows = map[int64]int{}
			for rs.Next() {
				var k int64
				if err := rs.Scan(&k); err != nil {
					return err
				}
				rows[k]++
			}
			return rs.Err()
		})
		for k := range acked {
			if rows[k] != 1 {
				t.Errorf("node %d: acknowledged key %d present %d times", i+1, k, rows[k])
			}
		}
		for k, n := range rows {
			if !attempted[k] || n != 1 {
				t.Errorf("node %d: key %d present %d times, attempted=%v", i+1, k, n, attempted[k])
			}
		}
		counts = append(counts, int64(len(rows)))
	}
	if counts[0] != counts[1] || counts[1] != counts[2] {
		t.Errorf("nodes disagree on the row count: %v", counts)
	}
	t.Logf("%d attempted, %d acknowledged, %d present", len(attempted), len(acked), counts[0])
}
