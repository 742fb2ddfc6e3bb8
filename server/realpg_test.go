package server_test

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
)

// realPostgres is a throwaway PostgreSQL server (Debian's postgresql
// package, which scripts/test.sh installs) on a free loopback port, its
// data directory and Unix socket in the test's temporary directory. It has
// a superuser root and a database defaultdb owned by root, like a kvnode
// node, so that the same client commands run against both unchanged.
type realPostgres struct {
	port    int
	version string // of the server binary: "postgres (PostgreSQL) 15.18 ..."
}

// URL is the connection URL of database defaultdb as root.
func (pg *realPostgres) URL() string {
	return fmt.Sprintf("postgresql://root@127.0.0.1:%d/defaultdb?sslmode=disable&connect_timeout=5", pg.port)
}

// Addr is the server's host:port.
func (pg *realPostgres) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.port)) }

// postgresBinDir returns /usr/lib/postgresql/15/bin if it holds initdb
// and postgres (the release the comparisons expect), else the newest such
// directory, or "".
func postgresBinDir() string {
	if d := "/usr/lib/postgresql/15/bin"; exists(filepath.Join(d, "postgres")) && exists(filepath.Join(d, "initdb")) {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	best := ""
	for _, d := range dirs {
		if exists(filepath.Join(d, "postgres")) && exists(filepath.Join(d, "initdb")) {
			best = d
		}
	}
	return best
}

// startRealPostgres runs initdb and postgres in a temporary directory (as
// user nobody when the test runs as root, since postgres refuses root) and
// stops the server when the test ends. A missing server skips the test, or
// fails it under KVNODE_REQUIRE_CLIENTS=1 (scripts/test.sh installs it).
func startRealPostgres(t *testing.T) *realPostgres {
	t.Helper()
	bin := postgresBinDir()
	requireClient(t, bin != "", "Debian's postgresql (the server: /usr/lib/postgresql/*/bin/postgres)")
	dir, err := os.MkdirTemp("", "kvnode-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root and there is no user nobody to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	command := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// C.UTF-8, the collation kvnode reports in pg_database.
	if out, err := command(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	version, _ := command(ctx, "postgres", "--version").Output()
	// postgres binds its own port: take a free one and hand it over (a
	// narrow window, retried once if another process takes it).
	for attempt := 1; ; attempt++ {
		port := freeLoopbackPort(t)
		logPath := filepath.Join(dir, "postgres.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := command(context.Background(), "postgres", "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "autovacuum=off") // no statistics change under the comparison (JDBC prints them)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); _ = logFile.Close() }()
		pg := &realPostgres{port: port, version: strings.TrimSpace(string(version))}
		superURL := fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", port)
		if err = waitPostgres(ctx, superURL, exited); err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			conn, err := pgx.Connect(ctx, superURL)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close(context.Background()) }()
			// root has the attributes kvnode's root has (\du).
			for _, stmt := range []string{
				"CREATE ROLE root SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN",
				"CREATE DATABASE defaultdb OWNER root",
			} {
				if _, err := conn.Exec(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			t.Logf("%s on %s", pg.version, pg.Addr())
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

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPostgres polls until the server accepts a connection, exits, or
// ctx ends.
func waitPostgres(ctx context.Context, url string, exited <-chan error) error {
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
