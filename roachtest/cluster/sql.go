package cluster

import (
	"context"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATEs a client retries (see Retryable).
const (
	CodeAmbiguous      = "40003" // statement completion unknown
	CodeUnavailable    = "58000" // no quorum or leader in time
	CodeAdminShutdown  = "57P01" // the node is draining
	CodeCannotConnect  = "57P03" // the node is not ready for connections yet
	CodeSerialization  = "40001" // contention: nothing was written
	CodeUniqueViolated = "23505"
)

// URL is the node's PostgreSQL connection string (user root, database
// defaultdb, as in CockroachDB): over TLS with verify-full and root's
// certificate in secure mode.
func (n *Node) URL() string {
	return "postgresql://root@" + n.SQLAddr + "/defaultdb?" + n.c.sqlParams() + "&connect_timeout=5"
}

// Connect opens a pgx connection to the node, retrying while the node
// refuses connections (starting, restarting), until ctx ends.
func (n *Node) Connect(ctx context.Context) (*pgx.Conn, error) {
	var conn *pgx.Conn
	err := retry(ctx, n.String()+": connect", true, func(ctx context.Context) error {
		var err error
		conn, err = pgx.Connect(ctx, n.URL())
		return err
	})
	return conn, err
}

// Exec runs a statement that must not be repeated blindly (INSERT of new
// rows, ALTER): it is retried only when it never reached the server.
func (n *Node) Exec(ctx context.Context, stmt string, args ...any) error {
	return n.exec(ctx, false, stmt, args...)
}

// ExecIdempotent runs a statement that may safely run twice (UPSERT of
// fixed values, CREATE TABLE IF NOT EXISTS, SET CLUSTER SETTING): it is also
// retried after an ambiguous result, unavailability or a drain.
func (n *Node) ExecIdempotent(ctx context.Context, stmt string, args ...any) error {
	return n.exec(ctx, true, stmt, args...)
}

func (n *Node) exec(ctx context.Context, idempotent bool, stmt string, args ...any) error {
	return retry(ctx, n.String()+": "+stmt, idempotent, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, n.URL())
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, stmt, args...)
		return err
	})
}

// Query runs a read and returns every row's values. Reads are idempotent,
// so every retryable error is retried.
func (n *Node) Query(ctx context.Context, stmt string, args ...any) ([][]any, error) {
	var out [][]any
	err := retry(ctx, n.String()+": "+stmt, true, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, n.URL())
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(ctx, stmt, args...)
		if err != nil {
			return err
		}
		out = nil
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, vals)
		}
		return rows.Err()
	})
	return out, err
}

// QueryInt runs a read that returns one integer (count(*), a value).
func (n *Node) QueryInt(ctx context.Context, stmt string, args ...any) (int64, error) {
	rows, err := n.Query(ctx, stmt, args...)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, errors.Newf("%s: %s returned %d rows, want one value", n, stmt, len(rows))
	}
	v, ok := rows[0][0].(int64)
	if !ok {
		return 0, errors.Newf("%s: %s returned %T %v, want an integer", n, stmt, rows[0][0], rows[0][0])
	}
	return v, nil
}

// QueryString runs a read that returns one text value.
func (n *Node) QueryString(ctx context.Context, stmt string, args ...any) (string, error) {
	rows, err := n.Query(ctx, stmt, args...)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", errors.Newf("%s: %s returned %d rows, want one value", n, stmt, len(rows))
	}
	s, ok := rows[0][0].(string)
	if !ok {
		return "", errors.Newf("%s: %s returned %T %v, want text", n, stmt, rows[0][0], rows[0][0])
	}
	return s, nil
}

// DefaultSQLTimeout bounds a statement and its retries when the caller's
// context has no deadline.
const DefaultSQLTimeout = 60 * time.Second

// retry runs fn until it succeeds, fails with an error a client would not
// retry, or ctx ends; the returned error names what was tried, how often,
// and the last error.
func retry(ctx context.Context, what string, idempotent bool, fn func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultSQLTimeout)
		defer cancel()
	}
	start := time.Now()
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !Retryable(err, idempotent) {
			if attempt == 1 {
				return errors.Wrapf(err, "%s", what)
			}
			return errors.Wrapf(err, "%s (gave up after %d attempts in %s)", what, attempt, time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return errors.Wrapf(err, "%s (gave up after %d attempts in %s)", what, attempt, time.Since(start).Round(time.Millisecond))
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Retryable reports whether a client may run a statement again after err.
//
//   - Always, when the statement never reached the server: the connection
//     could not be made (refused, the node is starting or draining), or pgx
//     says nothing was sent (pgconn.SafeToRetry), or the server answered
//     40001 (nothing was written).
//   - For idempotent statements only, when the outcome is unknown or the
//     node could not serve it: 40003 (ambiguous), 58000 (unavailable), 57P01
//     (the node is shutting down) and a connection lost mid-statement.
//
// Everything else (syntax, constraint violations, missing tables) is an
// answer, and repeating the statement would get the same answer.
func Retryable(err error, idempotent bool) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	hasPgErr := errors.As(err, &pgErr)
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		// A refusal during startup is retried only if it is transient: a
		// wrong database or user will not change.
		if !hasPgErr {
			return true
		}
		switch pgErr.Code {
		case CodeAdminShutdown, CodeCannotConnect, CodeUnavailable, "53300": // too many connections
			return true
		}
		return false
	}
	if hasPgErr {
		switch pgErr.Code {
		case CodeSerialization:
			return true
		case CodeAmbiguous, CodeUnavailable, CodeAdminShutdown, CodeCannotConnect:
			return idempotent
		}
		return false
	}
	// pgx reports a connection that died while it waited for the answer
	// as "conn closed" (a connLockError, which claims SafeToRetry: the
	// read finds the connection already torn down by the failed read
	// before it). The statement was sent: its outcome is unknown. Every
	// attempt here uses a new connection, so "conn closed" never means a
	// connection that was dead before the statement.
	if pgconn.SafeToRetry(err) && !errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	return idempotent && ConnectionLost(err)
}

// ConnectionLost reports whether err is a broken connection rather than an
// answer from the server.
func ConnectionLost(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr)
}

// SQLState returns err's SQLSTATE, or "" if the server did not answer with
// one.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
