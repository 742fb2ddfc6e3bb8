package realpg

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

// Server is a running PostgreSQL server with a superuser postgres that
// trusts every loopback connection.
type Server struct {
	Port int
	// Version is the server binary's, e.g. "postgres (PostgreSQL) 15.18 ...".
	Version string
	// Dir holds the data directory, the log (postgres.log) and the socket.
	Dir string
}

// URL is the connection URL of database db as user.
func (s *Server) URL(user, db string) string {
	return fmt.Sprintf("postgresql://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", user, s.Port, db)
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// BinDir returns /usr/lib/postgresql/<prefer>/bin if it holds initdb and
// postgres (prefer "" prefers nothing), else the newest such directory, or ""
// when no server is installed.
func BinDir(prefer string) string {
	if d := filepath.Join("/usr/lib/postgresql", prefer, "bin"); prefer != "" && hasServer(d) {
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
		if hasServer(d) {
			best = d
		}
	}
	return best
}

func hasServer(dir string) bool {
	return isExec(filepath.Join(dir, "postgres")) && isExec(filepath.Join(dir, "initdb"))
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// RunAs returns the credentials the server runs with: nil as any user but
// root, user nobody's as root, or an error when root has no user nobody.
func RunAs() (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no user nobody to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Options shape the cluster and the server.
type Options struct {
	// Locale is initdb's --locale.
	Locale string
	// Settings are the server's extra settings, each "name=value" (-c).
	Settings []string
}

// Start runs initdb and postgres from bin (see BinDir) and stops the server
// (fast shutdown) when the test ends. Durability is off (fsync,
// synchronous_commit, full_page_writes): the tests compare answers, not
// crash safety. Any failure fails the test.
func Start(t testing.TB, bin string, o Options) *Server {
	t.Helper()
	cred, err := RunAs()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kvnode-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
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
	if out, err := command(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale="+o.Locale, "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	version, _ := command(ctx, "postgres", "--version").Output()
	// postgres binds its own port: take a free one and hand it over (a
	// narrow window, retried once if another process takes it).
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		logPath := filepath.Join(dir, "postgres.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"}
		for _, s := range o.Settings {
			args = append(args, "-c", s)
		}
		cmd := command(context.Background(), "postgres", args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); _ = logFile.Close() }()
		s := &Server{Port: port, Version: strings.TrimSpace(string(version)), Dir: dir}
		if err = wait(ctx, s.URL("postgres", "postgres"), exited); err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			t.Logf("%s on %s", s.Version, s.Addr())
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logPath)
		if attempt == 2 {
			t.Fatalf("postgres did not start: %v\n%s", err, log)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// wait polls until the server accepts a connection, exits, or ctx ends.
func wait(ctx context.Context, url string, exited <-chan error) error {
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
