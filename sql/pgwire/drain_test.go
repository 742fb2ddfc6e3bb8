package pgwire

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

const shuttingDown = `{"Type":"ErrorResponse","Severity":"FATAL","Code":"57P01","Message":"server is shutting down"}`

// TestDrainIdle: idle connections are closed with 57P01 at once, a
// connection still in its handshake with 57P03, and nothing new is
// accepted.
func TestDrainIdle(t *testing.T) {
	ts := startServer(t, Config{})
	ctx := testContext(t)
	conn := ts.connect(t, pgx.QueryExecModeCacheStatement)
	idle := connectWire(t, ts.addr)
	handshaking := dial(t, ts.addr)
	waitFor(t, func() bool { return ts.NumConns() == 3 })

	if err := ts.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	checkMessages(t, idle.untilClosed(), shuttingDown)
	hs := &wireClient{t: t, nc: handshaking, fe: pgproto3.NewFrontend(handshaking, handshaking)}
	checkMessages(t, hs.untilClosed(),
		`{"Type":"ErrorResponse","Severity":"FATAL","Code":"57P03","Message":"the database system is shutting down"}`)
	if err := conn.Ping(ctx); err == nil {
		t.Error("pgx connection still works after Drain")
	} else if code := sqlState(err); code != "" && code != "57P01" {
		t.Errorf("pgx after drain: %v", err)
	}
	if n := ts.NumConns(); n != 0 {
		t.Errorf("NumConns = %d after Drain", n)
	}
	if nc, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		_ = nc.Close()
		t.Error("listener still accepts after Drain")
	}
	// Drain and Close after Drain are no-ops.
	if err := ts.Drain(ctx); err != nil {
		t.Error(err)
	}
}

// TestDrainInFlight: a running statement finishes and its client gets the
// result before its connection is closed; idle connections do not wait for
// it.
func TestDrainInFlight(t *testing.T) {
	ts := startServer(t, Config{})
	ctx := testContext(t)
	busy := ts.connect(t, pgx.QueryExecModeExec)
	idle := connectWire(t, ts.addr)

	result := make(chan error, 1)
	go func() {
		var n int64
		err := busy.QueryRow(ctx, "SELECT block()").Scan(&n)
		if err == nil && n != 1 {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	<-ts.sql.blockEntered

	drained := make(chan error, 1)
	go func() { drained <- ts.Drain(ctx) }()

	// The idle connection goes first, while the statement still runs.
	checkMessages(t, idle.untilClosed(), shuttingDown)
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while a statement was running", err)
	case err := <-result:
		t.Fatalf("statement ended early: %v", err)
	default:
	}

	close(ts.sql.blockRelease)
	if err := <-result; err != nil {
		t.Fatalf("in-flight statement: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := busy.Ping(ctx); err == nil {
		t.Error("connection still usable after Drain")
	}
}

// TestDrainDeadline: statements still running at the deadline are canceled,
// with the server shutdown as the cause, and their connections closed.
func TestDrainDeadline(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(&pgproto3.Query{String: "SELECT wait_for_cancel()"})
	waitFor(t, func() bool { return statementRunning(ts.Server) })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: %v, want DeadlineExceeded", err)
	}
	if cause := <-ts.sql.canceled; !errors.Is(cause, errServerShutdown) {
		t.Errorf("statement canceled with cause %v", cause)
	}
	// The client learns nothing useful, since its socket was closed, but
	// it must see the connection end.
	_ = wc.untilClosed()
	if n := ts.NumConns(); n != 0 {
		t.Errorf("NumConns = %d", n)
	}
}

// TestCloseAndServeAfterClose: Close ends everything at once; Serve on a
// closed server returns nil and closes the listener.
func TestCloseAndServeAfterClose(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(&pgproto3.Query{String: "SELECT wait_for_cancel()"})
	waitFor(t, func() bool { return statementRunning(ts.Server) })
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if cause := <-ts.sql.canceled; !errors.Is(cause, errServerShutdown) {
		t.Errorf("cause %v", cause)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(ln); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := ln.Accept(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("listener not closed: %v", err)
	}
}
