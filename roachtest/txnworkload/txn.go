package txnworkload

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/roachtest/elle"
)

// Target is a database endpoint clients connect to (a node).
type Target struct {
	Name string // for reports: "n1"
	URL  string // PostgreSQL connection string
}

// Config is what every workload needs. Zero values take the defaults.
type Config struct {
	// Targets are the endpoints; clients are spread over them.
	Targets []Target
	// Seed seeds every client's choices.
	Seed int64
	// Clients is the number of concurrent clients per target (default 2).
	Clients int
	// Isolation is the level asked at BEGIN (pgx.TxIsoLevel: "serializable",
	// "repeatable read", "read committed"); empty sends a plain BEGIN (the
	// database's default).
	Isolation pgx.TxIsoLevel
	// Think is a client's pause between transactions (default 5ms), so that
	// the workload leaves CPU to the nodes on a small machine.
	Think time.Duration
	// TxnTimeout bounds one transaction (default 10s).
	TxnTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Clients == 0 {
		c.Clients = 2
	}
	if c.Think == 0 {
		c.Think = 5 * time.Millisecond
	}
	if c.TxnTimeout == 0 {
		c.TxnTimeout = 10 * time.Second
	}
}

// Execer runs one idempotent statement with the retries a client would use
// (roachtest's Node.ExecIdempotent fits).
type Execer func(ctx context.Context, stmt string, args ...any) error

// Counts are the transactions of a workload by outcome.
type Counts struct {
	OK, Fail, Info int64
	// Refused counts BEGINs refused with 0A000 (also in Fail).
	Refused int64
	// Retry counts 40001 serialization failures (also in Fail).
	Retry int64
}

func (c Counts) String() string {
	return fmt.Sprintf("%d committed, %d failed (%d serialization failures, %d BEGIN refused), %d indeterminate",
		c.OK, c.Fail, c.Retry, c.Refused, c.Info)
}

// Result is a workload's verdict.
type Result interface {
	OK() bool
	String() string
}

// Workload is what a scenario drives: set up, start, note events, wait for
// progress, stop, check.
type Workload interface {
	Name() string
	// Setup creates the workload's tables and rows, idempotently.
	Setup(ctx context.Context, exec Execer) error
	// Tables are the tables Setup creates.
	Tables() []string
	Start()
	// Stop ends every client and waits for them; it may be called twice.
	Stop()
	Counts() Counts
	// Note records a scenario event (a kill, a restart) on the workload's
	// clock, printed with a failed check.
	Note(format string, args ...any)
	// Check reads the final state through every target and checks the
	// history; call it after Stop.
	Check(ctx context.Context) (Result, error)
}

// runner is the part every workload shares: clients, outcomes, notes.
type runner struct {
	cfg    Config
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	fail   atomic.Int64
	info   atomic.Int64
	refuse atomic.Int64
	retry  atomic.Int64

	mu    sync.Mutex
	notes []string
	// lastRefusal is the error of the last refused BEGIN.
	lastRefusal error
}

func newRunner(cfg Config) runner {
	cfg.defaults()
	return runner{cfg: cfg}
}

func (r *runner) Counts() Counts {
	return Counts{OK: r.ok.Load(), Fail: r.fail.Load(), Info: r.info.Load(), Refused: r.refuse.Load(), Retry: r.retry.Load()}
}

// LastRefusal returns the error of the last BEGIN refused with 0A000.
func (r *runner) LastRefusal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastRefusal
}

func (r *runner) since() time.Duration { return time.Since(r.start) }

func (r *runner) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf("%8.3fs %s", r.since().Seconds(), fmt.Sprintf(format, args...)))
}

func (r *runner) notesText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.notes) == 0 {
		return ""
	}
	return "scenario events:\n  " + strings.Join(r.notes, "\n  ") + "\n"
}

// begin starts the clients: fn runs in a loop for each client until Stop.
func (r *runner) begin(clients int, fn func(ctx context.Context, c *client)) {
	ctx, cancel := context.WithCancel(context.Background())
	r.start = time.Now()
	r.cancel = cancel
	for i := range clients {
		t := r.cfg.Targets[i%len(r.cfg.Targets)]
		c := &client{r: r, id: i, target: t, rng: rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(i)+1))}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.close()
			for ctx.Err() == nil {
				fn(ctx, c)
				pause(ctx, r.cfg.Think)
			}
		}()
	}
}

func (r *runner) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// client is one connection's worth of work, bound to one target; it
// reconnects when its connection is lost.
type client struct {
	r       *runner
	id      int
	target  Target
	rng     *rand.Rand
	conn    *pgx.Conn
	backoff time.Duration
}

func (c *client) close() {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.conn.Close(ctx)
		c.conn = nil
	}
}

// connect returns the client's connection, opening one if needed; after a
// failure it waits (backing off up to a second) so that a dead target is
// not hammered.
func (c *client) connect(ctx context.Context) (*pgx.Conn, error) {
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	c.close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, c.target.URL)
	if err != nil {
		c.backoff = min(max(2*c.backoff, 50*time.Millisecond), time.Second)
		pause(ctx, c.backoff)
		return nil, err
	}
	c.backoff = 0
	c.conn = conn
	return conn, nil
}

// txnRecord is one transaction attempt as its client saw it.
type txnRecord struct {
	outcome    elle.Outcome
	err        error
	start, end time.Duration
	// started: the client reached the database (a failed connect is not a
	// transaction and is not recorded).
	started bool
}

// txn runs body in one explicit transaction and classifies the outcome.
// body's error rolls the transaction back (fail). A nil error from body
// with abort set (e.g. a transfer with too little money) rolls back too.
func (c *client) txn(ctx context.Context, body func(ctx context.Context, tx pgx.Tx) error) (rec txnRecord) {
	rec.start = c.r.since()
	defer func() { rec.end = c.r.since() }()
	conn, err := c.connect(ctx)
	if err != nil {
		rec.outcome, rec.err = elle.Fail, err
		return rec
	}
	rec.started = true
	tctx, cancel := context.WithTimeout(ctx, c.r.cfg.TxnTimeout)
	defer cancel()
	tx, err := conn.BeginTx(tctx, pgx.TxOptions{IsoLevel: c.r.cfg.Isolation})
	if err != nil {
		c.r.fail.Add(1)
		if sqlState(err) == "0A000" {
			c.r.refuse.Add(1)
			c.r.mu.Lock()
			c.r.lastRefusal = errors.Wrapf(err, "BEGIN through %s", c.target.Name)
			c.r.mu.Unlock()
			// A cluster that refuses transactions (not finalized yet)
			// refuses them all: do not spin.
			pause(ctx, 100*time.Millisecond)
		}
		c.dropIfBroken(err)
		rec.outcome, rec.err = elle.Fail, err
		return rec
	}
	if err := body(tctx, tx); err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tx.Rollback(rctx)
		rcancel()
		c.dropIfBroken(err)
		if errors.Is(err, errRollback) {
			err = nil
		}
		// Nothing was committed: COMMIT was never sent (a connection
		// lost here rolls the transaction back on the server).
		rec.outcome, rec.err = elle.Fail, err
		c.countFail(err)
		return rec
	}
	err = tx.Commit(tctx)
	rec.err = err
	switch {
	case err == nil:
		rec.outcome = elle.OK
		c.r.ok.Add(1)
	case definite(err):
		rec.outcome = elle.Fail
		c.countFail(err)
	default:
		rec.outcome = elle.Info
		c.r.info.Add(1)
	}
	c.dropIfBroken(err)
	return rec
}

func (c *client) countFail(err error) {
	c.r.fail.Add(1)
	if sqlState(err) == "40001" {
		c.r.retry.Add(1)
	}
}

// errRollback is returned by a transaction body that decided to roll back
// (nothing to do); the transaction counts as failed, with no error.
var errRollback = errors.New("rolled back by the workload")

// definite reports whether a COMMIT error guarantees that nothing was
// committed.
func definite(err error) bool {
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return true // the server answered ROLLBACK to COMMIT
	}
	switch sqlState(err) {
	case "40001", // serialization failure: restart transaction
		"40P01",                            // deadlock detected
		"25P02",                            // in failed transaction
		"0A000",                            // not supported
		"54000",                            // too large
		"23505", "23503", "23514", "23502": // constraint checked at COMMIT
		return true
	}
	return false
}

// dropIfBroken closes the client's connection after an error that may have
// left it unusable (lost, timed out mid-statement), so the next
// transaction reconnects.
func (c *client) dropIfBroken(err error) {
	if err == nil || c.conn == nil {
		return
	}
	if sqlState(err) != "" && !c.conn.IsClosed() {
		return // an answer from the server: the connection is fine
	}
	c.close()
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// connectionLost reports whether err is a broken connection rather than an
// answer from the server.
func connectionLost(err error) bool {
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

// retryRead runs a read-only transaction body through target until it
// succeeds or timeout passes (the final reads: a node may still be
// catching up or electing a leader).
func retryRead(ctx context.Context, t Target, iso pgx.TxIsoLevel, timeout time.Duration, body func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for attempt := 1; ; attempt++ {
		last = func() error {
			conn, err := pgx.Connect(ctx, t.URL)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close(context.Background()) }()
			return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: iso}, func(tx pgx.Tx) error {
				return body(ctx, tx)
			})
		}()
		if last == nil {
			return nil
		}
		if s := sqlState(last); s != "" && s != "40001" && s != "40003" && s != "58000" && s != "57P01" && s != "57P03" && !connectionLost(last) {
			return errors.Wrapf(last, "final read through %s", t.Name)
		}
		pause(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return errors.Wrapf(last, "final read through %s: still failing after %s (%d attempts)", t.Name, timeout, attempt)
		}
	}
}

// finalRead is one target's final read.
type finalRead[T any] struct {
	target     Target
	value      T
	text       string // canonical form, compared across targets
	start, end time.Duration
}

// readFinal reads the final state through every target; read returns the
// value and its canonical text. While the targets disagree (a commit whose
// answer was lost may still be being applied) it reads again, up to five
// rounds a second apart, and returns the last round and whether its reads
// agree.
func readFinal[T any](ctx context.Context, r *runner, read func(ctx context.Context, tx pgx.Tx) (T, string, error)) ([]finalRead[T], bool, error) {
	for round := 1; ; round++ {
		var out []finalRead[T]
		for _, t := range r.cfg.Targets {
			f := finalRead[T]{target: t, start: r.since()}
			err := retryRead(ctx, t, r.cfg.Isolation, 90*time.Second, func(ctx context.Context, tx pgx.Tx) error {
				var err error
				f.value, f.text, err = read(ctx, tx)
				return err
			})
			if err != nil {
				return nil, false, err
			}
			f.end = r.since()
			out = append(out, f)
		}
		agree := true
		for _, f := range out[1:] {
			agree = agree && f.text == out[0].text
		}
		if agree || round == 5 || ctx.Err() != nil {
			return out, agree, nil
		}
		pause(ctx, time.Second)
	}
}
