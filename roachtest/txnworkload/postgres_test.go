package txnworkload

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/roachtest/elle"
)

// postgres is a throwaway PostgreSQL server on a loopback port.
type postgres struct {
	url  string // of database postgres
	port int
}

// pgBinDir returns the newest /usr/lib/postgresql/<v>/bin with initdb and
// postgres, or "".
func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	best := ""
	for _, d := range dirs {
		if isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "initdb")) {
			best = d
		}
	}
	return best
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// startPostgres runs initdb and postgres in a temporary directory, as user
// nobody when the test runs as root (PostgreSQL refuses root), and stops
// it at the end of the test. It skips the test when PostgreSQL is not
// installed.
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		t.Skip("no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql): the checkers' validation against PostgreSQL is skipped")
	}
	dir, err := os.MkdirTemp("", "kvnode-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("running as root and there is no user nobody to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	command := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := command(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// PostgreSQL binds its own port; take a free one and hand it over
	// (a narrow window, retried once if another process takes it).
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		logPath := filepath.Join(dir, "postgres.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := command(context.Background(), "postgres", "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "deadlock_timeout=50ms")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); _ = logFile.Close() }()
		pg := &postgres{port: port, url: fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", port)}
		err = waitSQL(ctx, pg.url, exited)
		if err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			out, _ := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
			t.Logf("%s on 127.0.0.1:%d", strings.TrimSpace(string(out)), port)
			return pg
		}
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logPath)
		if attempt == 2 {
			t.Fatalf("postgres did not start: %v\n%s", err, log)
		}
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitSQL(ctx context.Context, url string, exited <-chan error) error {
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case e := <-exited:
			return fmt.Errorf("postgres exited: %v (last connect error: %v)", e, err)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// database creates a fresh database and returns its URL.
func (pg *postgres) database(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", pg.port, name)
}

// runAll sets up and runs the three workloads at once for d against
// url (as three targets, so that the clients spread as over three nodes)
// at the given isolation level, and returns their results.
func runAll(t *testing.T, url string, iso pgx.TxIsoLevel, seed int64, d time.Duration) (*ListAppendResult, *BankResult, *WriteSkewResult) {
	t.Helper()
	ctx := context.Background()
	var targets []Target
	for _, n := range []string{"a", "b", "c"} {
		targets = append(targets, Target{Name: "pg-" + n, URL: url})
	}
	cfg := Config{Targets: targets, Seed: seed, Clients: 3, Isolation: iso, Think: time.Millisecond}
	exec := func(ctx context.Context, stmt string, args ...any) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, stmt, args...)
		return err
	}
	ws := []Workload{NewListAppend(cfg, ListAppendOptions{}), NewBank(cfg, BankOptions{}), NewWriteSkew(cfg)}
	for _, w := range ws {
		if err := w.Setup(ctx, exec); err != nil {
			t.Fatalf("%s setup: %v", w.Name(), err)
		}
	}
	for _, w := range ws {
		w.Start()
	}
	time.Sleep(d) // the workloads' run time, not a wait for a condition
	var res []Result
	for _, w := range ws {
		w.Stop()
	}
	for _, w := range ws {
		r, err := w.Check(ctx)
		if err != nil {
			t.Fatalf("%s check: %v", w.Name(), err)
		}
		t.Logf("%s at %q:\n%s", w.Name(), iso, r)
		res = append(res, r)
	}
	return res[0].(*ListAppendResult), res[1].(*BankResult), res[2].(*WriteSkewResult)
}

// TestCheckersAgainstPostgres proves that the checkers can fail: against a
// real PostgreSQL, SERIALIZABLE must give clean results, while REPEATABLE
// READ (snapshot isolation) must show write skew (G2 in the list-append
// history, and both doctors off call) and READ COMMITTED must show lost
// updates and inconsistent snapshots. It is skipped when PostgreSQL is not
// installed.
func TestCheckersAgainstPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	pg := startPostgres(t)
	const d = 4 * time.Second

	t.Run("serializable", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_serializable"), pgx.Serializable, 1, d)
		for _, r := range []Result{la, bank, ws} {
			if !r.OK() {
				t.Errorf("PostgreSQL at SERIALIZABLE failed a check:\n%s", r)
			}
		}
		if la.Counts.OK < 100 || bank.Reads < 10 || ws.Rounds < 10 {
			t.Errorf("too little work to mean anything: %d list-append commits, %d bank reads, %d write-skew rounds", la.Counts.OK, bank.Reads, ws.Rounds)
		}
	})

	t.Run("repeatable-read", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_repeatable_read"), pgx.RepeatableRead, 2, d)
		if ws.OK() || ws.Both == 0 {
			t.Errorf("write skew not found at REPEATABLE READ:\n%s", ws)
		}
		if !la.Report.Has(elle.G2) {
			t.Errorf("list-append: no G2 at REPEATABLE READ:\n%s", la)
		}
		// Snapshot isolation forbids every weaker anomaly.
		for _, typ := range la.Report.Types() {
			if typ != elle.G2 {
				t.Errorf("list-append: %s at REPEATABLE READ, which snapshot isolation forbids:\n%s", typ, la)
			}
		}
		if !bank.OK() {
			t.Errorf("bank: snapshot isolation keeps the bank's invariants, yet:\n%s", bank)
		}
	})

	t.Run("read-committed", func(t *testing.T) {
		la, bank, ws := runAll(t, pg.database(t, "iso_read_committed"), pgx.ReadCommitted, 3, d)
		if la.OK() {
			t.Errorf("list-append: nothing found at READ COMMITTED:\n%s", la)
		}
		if bank.OK() {
			t.Errorf("bank: nothing found at READ COMMITTED:\n%s", bank)
		}
		if ws.OK() {
			t.Errorf("write skew not found at READ COMMITTED:\n%s", ws)
		}
	})
}
