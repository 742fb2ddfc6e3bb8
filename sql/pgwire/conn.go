package pgwire

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Sentinels that end a connection without it being anyone's fault. Run
// returns nil for them.
var (
	errTerminate  = errors.New("client sent Terminate")
	errClientGone = errors.New("client closed the connection")
	errDrained    = errors.New("connection closed by drain")
	errIdleInTxn  = errors.New("idle in transaction for longer than idle_in_transaction_session_timeout")
)

// errCancelRequest is the cancellation cause of a statement stopped by a
// CancelRequest.
var errCancelRequest = errors.New("statement canceled by CancelRequest")

const (
	// msgQueueLen (batches of messages) and maxQueuedBytes bound what the
	// reader goroutine buffers ahead of the statement being executed:
	// enough for a pipelining client to keep the connection busy and for
	// the reader to notice a hang-up, little enough that a client cannot
	// make the server hold an unbounded backlog. One batch may exceed
	// maxQueuedBytes (a message of up to MaxMessageSize, with what else
	// was buffered whole behind it, at most readBufferSize); the reader
	// then waits until it is consumed.
	msgQueueLen    = 64
	maxQueuedBytes = 1 << 20
	// flushThreshold is how much output is buffered before it is written
	// mid-result, so a large result streams instead of piling up in memory.
	flushThreshold = 32 << 10
)

// conn serves one client connection. Run is its only entry point. Apart from
// the fields under mu and the reader's queue, everything in conn belongs to
// the goroutine running Run: it alone talks to the Session and writes to the
// client.
type conn struct {
	srv *Server
	nc  net.Conn // the socket: deadlines and Close go here
	// rw carries the protocol: nc, or the TLS connection over it once
	// startup has upgraded it (set by startup, on Run's goroutine, before
	// the reader starts).
	rw     net.Conn
	id     uint32  // BackendKeyData process ID
	secret [4]byte // BackendKeyData secret key
	log    *slog.Logger
	// admitted is false when the connection exceeded MaxConns; it is then
	// refused right after the startup packet.
	admitted bool

	// ctx lives as long as the connection. It is canceled when Run returns,
	// when the reader sees the client hang up, and when the server is
	// force-closed; every statement's context derives from it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// done is closed by the server once Run has returned and the connection
	// is unregistered.
	done chan struct{}

	mu sync.Mutex
	// inStartup is true while the handshake reads from nc directly; Drain
	// then interrupts the read with a deadline.
	inStartup bool
	// stmtCancel cancels the statement being prepared or executed; nil
	// between statements. CancelRequest uses it.
	stmtCancel context.CancelCauseFunc

	// Reader goroutine → Run: batches of messages, each with a body of its
	// own (frames.go), so nothing is copied before it is queued.
	msgs       chan []received
	queued     atomic.Int64  // bytes queued in msgs and pending (approximate)
	space      chan struct{} // signaled when queued drops to maxQueuedBytes
	stop       chan struct{} // closed when Run stops consuming msgs
	readerDone chan struct{}

	// Owned by Run's goroutine.
	w              msgWriter
	sess           Session
	pending        []received // the rest of the last batch taken from msgs
	stmts          map[string]*preparedStatement
	portals        map[string]*portal
	ignoreTillSync bool // an extended-protocol error occurred: skip to Sync
	idle           bool // ReadyForQuery was the last thing sent
}

// received is one item of the reader's queue: a copied message, or the error
// that ended reading.
type received struct {
	msg  pgproto3.FrontendMessage
	size int64
	err  error
	// ioErr is set when err came from the network rather than from
	// decoding: the client is gone, nothing more can be sent.
	ioErr bool
}

func newConn(s *Server, nc net.Conn, id uint32, admitted bool) *conn {
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	return &conn{
		srv:        s,
		nc:         nc,
		rw:         nc,
		id:         id,
		secret:     newSecret(),
		log:        s.log.With("conn", id, "client", nc.RemoteAddr().String()),
		admitted:   admitted,
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		inStartup:  true,
		msgs:       make(chan []received, msgQueueLen),
		space:      make(chan struct{}, 1),
		stop:       make(chan struct{}),
		readerDone: make(chan struct{}),
		w:          msgWriter{w: nc},
		stmts:      make(map[string]*preparedStatement),
		portals:    make(map[string]*portal),
	}
}

// Run serves the connection until the client leaves, the protocol breaks or
// the server shuts down, and always closes the network connection. It returns
// nil for an orderly end (Terminate, hang-up, drain, CancelRequest) and
// otherwise the reason, for the log; the client has already been told
// whatever it could be told.
func (c *conn) Run() error {
	defer c.cancel(errClientGone)
	defer c.nc.Close()

	sess, err := c.startup()
	if err != nil || sess == nil {
		return quiet(err)
	}
	c.sess = sess
	defer func() {
		_ = c.guard("closing the session", func() error { c.sess.Close(); return nil })
	}()

	go c.readLoop(newFrameReader(c.rw))
	defer func() {
		// Release the reader whether it is blocked on the queue (stop) or
		// on the socket (Close), and wait so it never outlives Run.
		close(c.stop)
		_ = c.nc.Close()
		<-c.readerDone
	}()
	return quiet(c.serve())
}

func quiet(err error) error {
	if errors.Is(err, errTerminate) || errors.Is(err, errClientGone) || errors.Is(err, errDrained) {
		return nil
	}
	return err
}

// serve is the message loop.
func (c *conn) serve() error {
	for {
		msg, err := c.next()
		if err != nil {
			return err
		}
		if err := c.handle(msg); err != nil {
			return err
		}
	}
}

// next returns the next message: the next of the batch the reader handed
// over last, or else the first of the next batch. At an idle point (after
// ReadyForQuery) it also watches for a drain, which takes precedence over a
// message that is already queued: a drain must finish even if a client
// sends statements back to back.
func (c *conn) next() (pgproto3.FrontendMessage, error) {
	var drain <-chan struct{}
	if c.idle {
		drain = c.srv.drainCh
		select {
		case <-drain:
			return nil, c.fatal(errDrained, pgerror.Newf(pgerror.CodeAdminShutdown, "server is shutting down"))
		default:
		}
	}
	if len(c.pending) == 0 {
		var idleInTxn <-chan time.Time
		if c.idle && c.sess != nil && c.sess.TxnStatus() != 'I' { // nil during startup
			if d := c.sess.IdleInTransactionTimeout(); d > 0 {
				t := time.NewTimer(d)
				defer t.Stop()
				idleInTxn = t.C
			}
		}
		select {
		case <-idleInTxn:
			return nil, c.fatal(errIdleInTxn, pgerror.WithHintf(
				pgerror.Newf(codeIdleInTransactionTimeout, "terminating connection due to idle-in-transaction timeout"),
				"the transaction was rolled back; idle_in_transaction_session_timeout sets the limit"))
		case c.pending = <-c.msgs:
		case <-drain:
			return nil, c.fatal(errDrained, pgerror.Newf(pgerror.CodeAdminShutdown, "server is shutting down"))
		case <-c.ctx.Done():
			return nil, context.Cause(c.ctx)
		}
	}
	r := c.pending[0]
	c.pending[0] = received{} // do not pin a handled message's memory
	c.pending = c.pending[1:]
	c.release(r.size)
	if r.err != nil {
		return nil, c.readFailed(r)
	}
	c.idle = false
	return r.msg, nil
}

// readFailed turns the reader's final error into the connection's end.
func (c *conn) readFailed(r received) error {
	if r.ioErr {
		return errors.Mark(r.err, errClientGone)
	}
	var tooLong *pgproto3.ExceededMaxBodyLenErr
	if errors.As(r.err, &tooLong) {
		return c.fatal(r.err, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeProtocolViolation,
				"message of %d bytes exceeds the maximum message size of %d bytes", tooLong.ActualBodyLen, MaxMessageSize),
			"send large values in smaller pieces"))
	}
	return c.fatal(r.err, pgerror.Newf(pgerror.CodeProtocolViolation, "invalid frontend message: %v", r.err))
}

// handle processes one frontend message. Its contract:
//
//   - An error the client can recover from (a failing statement, an unknown
//     portal, a bad parameter) is sent as an ErrorResponse and not
//     returned; in the extended protocol it also starts discarding messages
//     until Sync, as PostgreSQL does.
//   - A returned error ends the connection: errTerminate for the client's
//     goodbye, a write error once the client is unreachable, or a protocol
//     violation that has already been reported to the client as FATAL.
//
// Output is buffered; it is written at Sync, Flush, the end of a simple
// query, or mid-result when the buffer grows (see flushThreshold).
func (c *conn) handle(msg pgproto3.FrontendMessage) error {
	if c.ignoreTillSync {
		switch msg.(type) {
		case *pgproto3.Sync, *pgproto3.Terminate:
		default:
			return nil // discarded, even a simple Query, as in PostgreSQL
		}
	}

	var err error
	switch m := msg.(type) {
	case *pgproto3.Sync:
		c.ignoreTillSync = false
		// Sync ends the implicit transaction, and portals do not outlive
		// their transaction; inside a transaction block they live on
		// (JDBC fetches a cursor's rows across Syncs).
		if c.sess == nil || c.sess.TxnStatus() == 'I' {
			clear(c.portals)
		}
		c.readyForQuery()
		return c.w.flush()
	case *pgproto3.Terminate:
		return errTerminate
	case *pgproto3.Query:
		c.simpleQuery(m.String)
		c.readyForQuery()
		return c.w.flush()
	case *pgproto3.Parse:
		err = c.parse(m)
	case *pgproto3.Bind:
		err = c.bind(m)
	case *pgproto3.Describe:
		err = c.describe(m)
	case *pgproto3.Execute:
		err = c.execute(m)
	case *pgproto3.Close:
		err = c.closeObject(m)
	case *pgproto3.Flush:
		return c.w.flush()
	case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
		// PostgreSQL ignores these outside COPY (a client may send them
		// after the server aborted a COPY with an error).
		return nil
	case *pgproto3.FunctionCall:
		// FunctionCall is its own request cycle, which ends in
		// ReadyForQuery; answer it so the client does not hang.
		c.sendError(pgerror.Newf(pgerror.CodeFeatureNotSupported, "the function call protocol is not supported"))
		c.readyForQuery()
		return c.w.flush()
	default:
		return c.fatal(errors.Newf("unexpected %s", messageName(msg)), pgerror.Newf(pgerror.CodeProtocolViolation,
			"unexpected message %s after startup", messageName(msg)))
	}
	if err != nil {
		c.sendError(err)
		c.ignoreTillSync = true
	}
	return c.w.err
}

func messageName(msg pgproto3.FrontendMessage) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
}

func (c *conn) readyForQuery() {
	status := byte('I')
	if c.sess != nil { // nil during startup
		status = c.sess.TxnStatus()
	}
	c.w.readyForQuery(status)
	c.idle = true
}

// sendError queues err as an ErrorResponse with severity ERROR.
func (c *conn) sendError(err error) {
	c.w.send(errorResponse(err, "ERROR"))
	if c.sess != nil {
		c.sess.Failed()
	}
	if pgerror.GetCode(err) == pgerror.CodeInternal {
		c.log.Error("internal error", "err", err)
	} else {
		c.log.Debug("statement error", "err", err)
	}
}

// fatal sends clientErr with severity FATAL, flushes, and returns cause
// (annotated with clientErr's message) for Run to return: the connection
// ends.
func (c *conn) fatal(cause, clientErr error) error {
	c.w.send(errorResponse(clientErr, "FATAL"))
	_ = c.w.flush()
	if errors.Is(cause, errDrained) || errors.Is(cause, errTerminate) {
		return cause
	}
	c.log.Info("closing connection", "err", clientErr)
	if cause == clientErr {
		return cause
	}
	return errors.WithSecondaryError(cause, clientErr)
}

func errorResponse(err error, severity string) *pgproto3.ErrorResponse {
	fe := pgerror.Flatten(err)
	return &pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                fe.Code,
		Message:             fe.Message,
		Detail:              fe.Detail,
		Hint:                fe.Hint,
		Position:            int32(fe.Position),
	}
}

// guard runs fn, which calls into the Session, and turns a panic into an
// internal error: a bug in one statement must not take the node down. The
// stack goes to the log, not to the client.
func (c *conn) guard(what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in SQL session", "during", what, "panic", r, "stack", string(debug.Stack()))
			err = pgerror.WithCode(errors.AssertionFailedf("internal error while %s: %v", what, r), pgerror.CodeInternal)
		}
	}()
	return fn()
}

// withStatementContext runs fn (a Prepare or Exec) under a context that
// CancelRequest can cancel and that dies with the connection, guarded
// against panics.
func (c *conn) withStatementContext(what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(c.ctx)
	c.mu.Lock()
	c.stmtCancel = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.stmtCancel = nil
		c.mu.Unlock()
		cancel(nil)
	}()
	err := c.guard(what, func() error { return fn(ctx) })
	if err != nil && ctx.Err() != nil &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The session reports a bare context error; say who canceled.
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelRequest):
			err = pgerror.Newf(pgerror.CodeQueryCanceled, "canceling statement due to user request")
		case errors.Is(cause, errServerShutdown):
			err = pgerror.Newf(pgerror.CodeAdminShutdown, "terminating connection: server is shutting down")
		}
	}
	return err
}

// cancelStatement cancels the running statement, if any (CancelRequest).
func (c *conn) cancelStatement() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stmtCancel != nil {
		c.stmtCancel(errCancelRequest)
	}
}

// readLoop runs on its own goroutine from the end of startup until Run ends.
// Reading ahead of execution is what lets the server notice that a client
// hung up while its statement runs: the rule is that closing the client end
// of the connection cancels whatever the connection is still executing,
// since nobody will read the result (CockroachDB does the same).
//
// The reader hands over every message that arrived in one read as one batch
// (frames.go): one wake-up of Run per client round trip, not one per message.
func (c *conn) readLoop(fr *frameReader) {
	defer close(c.readerDone)
	for {
		batch := fr.batch()
		last := batch[len(batch)-1]
		if last.ioErr {
			c.cancel(errClientGone)
		}
		if !c.enqueue(batch) || last.ioErr {
			return
		}
		if _, ok := last.msg.(*pgproto3.Terminate); ok || last.err != nil {
			// Nothing after Terminate or a garbled message is
			// meaningful, but Run may still be executing what came
			// before: keep watching the socket so that a hang-up
			// still cancels it. Run closes the socket when it ends,
			// which ends this read.
			_, _ = io.Copy(io.Discard, fr.br)
			c.cancel(errClientGone)
			return
		}
	}
}

// enqueue hands a batch to Run, waiting while too many bytes are queued. It
// returns false if Run stopped consuming.
func (c *conn) enqueue(batch []received) bool {
	var size int64
	for _, r := range batch {
		size += r.size
	}
	c.queued.Add(size)
	select {
	case c.msgs <- batch:
	case <-c.stop:
		return false
	}
	for c.queued.Load() > maxQueuedBytes {
		select {
		case <-c.space:
		case <-c.stop:
			return false
		}
	}
	return true
}

// release accounts for a message Run took from the queue. The wake-up token
// is buffered, so a reader that checks the size and then waits cannot miss
// it.
func (c *conn) release(size int64) {
	if size > 0 && c.queued.Add(-size) <= maxQueuedBytes {
		select {
		case c.space <- struct{}{}:
		default:
		}
	}
}

// messageSize approximates the memory a queued message holds.
func messageSize(msg pgproto3.FrontendMessage) int64 {
	const overhead = 64
	switch m := msg.(type) {
	case *pgproto3.Query:
		return overhead + int64(len(m.String))
	case *pgproto3.Parse:
		return overhead + int64(len(m.Name)+len(m.Query)+4*len(m.ParameterOIDs))
	case *pgproto3.Bind:
		n := overhead + int64(len(m.DestinationPortal)+len(m.PreparedStatement))
		for _, p := range m.Parameters {
			n += 24 + int64(len(p))
		}
		return n + 2*int64(len(m.ParameterFormatCodes)+len(m.ResultFormatCodes))
	case *pgproto3.CopyData:
		return overhead + int64(len(m.Data))
	}
	return overhead
}

// msgWriter buffers backend messages and writes them in one call. A write
// error is sticky: after it the connection is dead and Run ends.
type msgWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (w *msgWriter) send(msg pgproto3.BackendMessage) {
	if w.err != nil {
		return
	}
	buf, err := msg.Encode(w.buf)
	if err != nil {
		w.err = errors.Wrapf(err, "encoding %T", msg)
		return
	}
	w.buf = buf
}

// The messages of every statement's answer are appended in place, without
// a message value, its slices and pgproto3's Encode (pgproto3's wire format,
// which the tests decode with pgproto3's frontend).

// begin starts a message of type typ; end fills in its length.
func (w *msgWriter) begin(typ byte) int {
	w.buf = append(w.buf, typ, 0, 0, 0, 0)
	return len(w.buf) - 4
}

func (w *msgWriter) end(at int) {
	n := len(w.buf) - at
	if n > math.MaxInt32 {
		typ := w.buf[at-1]
		w.buf = w.buf[:at-1]
		w.err = errors.Newf("a %c message of %d bytes exceeds the protocol's limit", typ, n)
		return
	}
	binary.BigEndian.PutUint32(w.buf[at:], uint32(n))
}

// readyForQuery queues ReadyForQuery.
func (w *msgWriter) readyForQuery(status byte) {
	if w.err == nil {
		w.buf = append(w.buf, 'Z', 0, 0, 0, 5, status)
	}
}

// commandComplete queues CommandComplete.
func (w *msgWriter) commandComplete(tag string) {
	if w.err != nil {
		return
	}
	at := w.begin('C')
	w.buf = append(w.buf, tag...)
	w.buf = append(w.buf, 0)
	w.end(at)
}

// raw queues a message encoded earlier (a cached RowDescription).
func (w *msgWriter) raw(msg []byte) {
	if w.err == nil {
		w.buf = append(w.buf, msg...)
	}
}

// dataRow queues a DataRow of row, column i encoded in formats[i] (text if
// formats is nil), each value appended to the buffer where it goes. A value
// whose Go type does not match its column is a bug in the SQL layer; it is
// reported (and nothing of the row queued) rather than sent, since the
// client would decode garbage.
func (w *msgWriter) dataRow(cols []Column, formats []int16, row []types.Datum) error {
	if w.err != nil {
		return w.err
	}
	if len(row) != len(cols) || len(row) > math.MaxUint16 {
		return pgerror.WithCode(errors.AssertionFailedf(
			"result row has %d values but the statement has %d columns", len(row), len(cols)), pgerror.CodeInternal)
	}
	start := len(w.buf)
	at := w.begin('D')
	w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(len(row)))
	for i, d := range row {
		if d == nil {
			w.buf = binary.BigEndian.AppendUint32(w.buf, math.MaxUint32) // -1: NULL
			continue
		}
		col := cols[i]
		if dt := types.TypeOf(d); dt == types.Unknown || (col.Type != types.Unknown && !types.Fits(d, col.Type)) {
			w.buf = w.buf[:start]
			return pgerror.WithCode(errors.AssertionFailedf(
				"column %q of type %s holds a value of Go type %T", col.Name, col.Type, d), pgerror.CodeInternal)
		}
		vat := len(w.buf)
		w.buf = append(w.buf, 0, 0, 0, 0)
		if formats != nil && formats[i] == pgproto3.BinaryFormat {
			// An Unknown column is described as text, whose binary
			// form is its text form; AppendBinaryMod does exactly that.
			w.buf = types.AppendBinaryMod(w.buf, col.Type, col.Mod, d)
		} else {
			w.buf = types.AppendText(w.buf, d)
		}
		n := len(w.buf) - vat - 4
		if n > math.MaxInt32 {
			w.buf = w.buf[:start]
			return pgerror.Newf(pgerror.CodeProgramLimitExceeded, "a value of column %q is %d bytes, more than the protocol's limit", col.Name, n)
		}
		binary.BigEndian.PutUint32(w.buf[vat:], uint32(n))
	}
	w.end(at)
	return w.err
}

func (w *msgWriter) flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin a large result's buffer for the connection's life
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		w.err = errors.Mark(errors.Wrap(err, "writing to client"), errClientGone)
	}
	return w.err
}
