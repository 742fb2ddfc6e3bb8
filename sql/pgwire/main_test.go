package pgwire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// connection's reader and handler must end with Close or Drain.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests so a protocol bug shows up as
// a failure rather than a hung test binary.
const testTimeout = 20 * time.Second

// testServer is an in-process Server on a loopback port, backed by fakeSQL
// unless the test passes its own SessionFactory.
type testServer struct {
	*Server
	addr string
	sql  *fakeSQL
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeSQL()
	if cfg.Sessions == nil {
		cfg.Sessions = fake
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s := NewServer(cfg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-serveErr; err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
		if n := fake.open.Load(); n != 0 {
			t.Errorf("%d sessions were not closed", n)
		}
		if n := s.NumConns(); n != 0 {
			t.Errorf("NumConns = %d after Close", n)
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String(), sql: fake}
}

func (ts *testServer) connString() string {
	return fmt.Sprintf("postgres://root@%s/defaultdb?sslmode=disable&connect_timeout=10", ts.addr)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (ts *testServer) connect(t testing.TB, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(ts.connString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// wireClient drives the protocol message by message with pgproto3.Frontend,
// for what a driver does not let a test do (row limits, broken messages).
type wireClient struct {
	t  testing.TB
	nc net.Conn
	fe *pgproto3.Frontend
	// pid and key are from BackendKeyData.
	pid uint32
	key []byte
}

func dialWire(t testing.TB, addr string, params map[string]string) *wireClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	wc := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	if params == nil {
		params = map[string]string{"user": "root", "database": "defaultdb"}
	}
	wc.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
	return wc
}

// connectWire dials and completes the handshake.
func connectWire(t testing.TB, addr string) *wireClient {
	wc := dialWire(t, addr, nil)
	msgs := wc.until("ReadyForQuery")
	if msgs[0] != `{"Type":"AuthenticationOK"}` {
		t.Fatalf("handshake: %v", msgs)
	}
	return wc
}

func (wc *wireClient) send(msgs ...pgproto3.FrontendMessage) {
	wc.t.Helper()
	for _, m := range msgs {
		wc.fe.Send(m)
	}
	if err := wc.fe.Flush(); err != nil {
		wc.t.Fatal(err)
	}
}

// until receives messages until one of type last arrives, and returns them
// all, formatted by formatMessage.
func (wc *wireClient) until(last string) []string {
	wc.t.Helper()
	var out []string
	for {
		msg, err := wc.fe.Receive()
		if err != nil {
			wc.t.Fatalf("receiving (got so far %v): %v", out, err)
		}
		out = append(out, formatMessage(msg, true))
		if kd, ok := msg.(*pgproto3.BackendKeyData); ok {
			wc.pid, wc.key = kd.ProcessID, append([]byte(nil), kd.SecretKey...)
		}
		if messageType(msg) == last {
			return out
		}
	}
}

// untilClosed receives until the server closes the connection.
func (wc *wireClient) untilClosed() []string {
	wc.t.Helper()
	var out []string
	for {
		msg, err := wc.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				wc.t.Fatalf("server did not close the connection; got %v", out)
			}
			return out
		}
		out = append(out, formatMessage(msg, true))
	}
}

func messageType(msg pgproto3.BackendMessage) string {
	return fmt.Sprintf("%T", msg)[len("*pgproto3."):]
}

// formatMessage renders a backend message as one line of JSON (pgproto3's
// own encoding). ErrorResponse is reduced to what is portable between
// servers (severity, code, position) unless verbose, which adds the
// message, detail and hint for Go tests.
func formatMessage(msg pgproto3.BackendMessage, verbose bool) string {
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		out := struct {
			Type     string
			Severity string
			Code     string
			Message  string `json:",omitempty"`
			Detail   string `json:",omitempty"`
			Hint     string `json:",omitempty"`
			Position int32  `json:",omitempty"`
		}{Type: "ErrorResponse", Severity: e.Severity, Code: e.Code, Position: e.Position}
		if verbose {
			out.Message, out.Detail, out.Hint = e.Message, e.Detail, e.Hint
		}
		b, _ := json.Marshal(out)
		return string(b)
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Sprintf("%T: %v", msg, err)
	}
	return string(b)
}
