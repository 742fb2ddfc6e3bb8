package workload

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/roachtest/cluster"
)

// Target is a node the workload may connect to.
type Target struct {
	Node int    // 1-based index, for the history
	URL  string // PostgreSQL connection string
}

// TargetsOf returns every node of c as a target.
func TargetsOf(c *cluster.Cluster) []Target {
	var out []Target
	for _, n := range c.Nodes() {
		out = append(out, Target{Node: n.Index, URL: n.URL()})
	}
	return out
}

// Config shapes the workload. Zero values take the defaults.
type Config struct {
	// Targets are the nodes clients connect to.
	Targets []Target
	// Clients is the number of concurrent clients (default 4).
	Clients int
	// Keys is the number of register keys (default 4). Few keys make
	// operations on one key overlap, which is what linearizability checking
	// needs; the checker's cost grows with the overlap, not with the keys.
	Keys int
	// Seed seeds the clients' choices.
	Seed int64
	// Think is a client's pause between operations (default 20ms), so that
	// the workload leaves CPU to the nodes on a small machine.
	Think time.Duration
	// OpTimeout bounds one operation (default 10s); an operation that times
	// out is ambiguous.
	OpTimeout time.Duration
	// Percentages of each kind; zero for all means 40 read, 25 write, 15 cas,
	// 20 append.
	ReadPct, WritePct, CASPct, AppendPct int
}

func (c *Config) defaults() {
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.Keys == 0 {
		c.Keys = 4
	}
	if c.Think == 0 {
		c.Think = 20 * time.Millisecond
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.ReadPct+c.WritePct+c.CASPct+c.AppendPct == 0 {
		c.ReadPct, c.WritePct, c.CASPct, c.AppendPct = 40, 25, 15, 20
	}
}

// Execer runs one statement with the retries a client would use; the
// cluster's Node.ExecIdempotent fits.
type Execer func(ctx context.Context, stmt string, args ...any) error

// Setup creates the workload's tables and its register rows (v = 0). It is
// idempotent.
func Setup(ctx context.Context, exec Execer, cfg Config) error {
	cfg.defaults()
	for _, stmt := range []string{
		"CREATE TABLE IF NOT EXISTS rt_reg (k INT PRIMARY KEY, v INT)",
		"CREATE TABLE IF NOT EXISTS rt_log (client INT, seq INT, node INT)",
	} {
		if err := exec(ctx, stmt); err != nil {
			return errors.Wrap(err, "workload setup")
		}
	}
	for k := 1; k <= cfg.Keys; k++ {
		if err := exec(ctx, "UPSERT INTO rt_reg (k, v) VALUES ($1, 0)", int64(k)); err != nil {
			return errors.Wrap(err, "workload setup")
		}
	}
	return nil
}

// Workload is a running workload. Start it with Start, end it with Stop.
type Workload struct {
	cfg   Config
	start time.Time

	mu      sync.Mutex
	ops     []Op
	notes   []Note
	lastErr map[int]string // client -> its last error, for progress failures
	log     map[int][]LogRow

	acked   atomic.Int64 // acknowledged mutations
	stopped atomic.Bool
	stopC   chan struct{}
	wg      sync.WaitGroup
}

// Start launches the clients. The tables must exist (Setup).
func Start(cfg Config) (*Workload, error) {
	cfg.defaults()
	if len(cfg.Targets) == 0 {
		return nil, errors.New("workload: no targets")
	}
	w := &Workload{cfg: cfg, start: time.Now(), lastErr: map[int]string{}, stopC: make(chan struct{})}
	for c := 0; c < cfg.Clients; c++ {
		w.wg.Add(1)
		go w.client(c)
	}
	return w, nil
}

// Since is the workload clock.
func (w *Workload) Since() time.Duration { return time.Since(w.start) }

// Note records a scenario event on the workload's clock.
func (w *Workload) Note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, Note{At: w.Since(), Text: fmt.Sprintf(format, args...)})
}

// Acked is the number of acknowledged mutations so far.
func (w *Workload) Acked() int64 { return w.acked.Load() }

// WaitProgress waits until n more mutations than now have been
// acknowledged: the cluster serves writes. The error says how far it got
// and what the clients last saw.
func (w *Workload) WaitProgress(ctx context.Context, n int64, timeout time.Duration) error {
	base := w.Acked()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if got := w.Acked() - base; got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			w.mu.Lock()
			var errs []string
			for c, e := range w.lastErr {
				errs = append(errs, fmt.Sprintf("client %d: %s", c, e))
			}
			w.mu.Unlock()
			sort.Strings(errs)
			return errors.Newf("the workload got %d of %d acknowledged writes in %s; the clients' last errors: %v",
				w.Acked()-base, n, time.Since(start).Round(time.Millisecond), errs)
		case <-tick.C:
		}
	}
}

// Stop ends the clients after their current operation and waits for them.
func (w *Workload) Stop() {
	if w.stopped.CompareAndSwap(false, true) {
		close(w.stopC)
	}
	w.wg.Wait()
}

func (w *Workload) sleep(d time.Duration) bool {
	select {
	case <-w.stopC:
		return false
	case <-time.After(d):
		return true
	}
}

func (w *Workload) client(id int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(id)+1))
	targets := w.cfg.Targets
	target := id % len(targets)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	lastSeen := map[int64]int64{} // key -> last value this client read or wrote
	seq := 0
	for !w.stopped.Load() {
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := pgx.Connect(ctx, targets[target].URL)
			cancel()
			if err != nil {
				w.setLastErr(id, fmt.Sprintf("connect to n%d: %v", targets[target].Node, err))
				target = (target + 1) % len(targets)
				if !w.sleep(100 * time.Millisecond) {
					return
				}
				continue
			}
			conn = c
		}
		seq++
		op := w.pick(rng, id, seq, targets[target].Node, lastSeen)
		broken := w.run(conn, &op)
		w.record(op)
		switch {
		case op.Outcome == OK && (op.Kind == Read || op.Kind == Write || (op.Kind == CAS && op.Applied)):
			lastSeen[op.Key] = op.Value
		case op.Outcome != OK:
			w.setLastErr(id, fmt.Sprintf("n%d: %s", op.Node, op.Err))
		}
		// Move on after a broken connection, and now and then anyway so that
		// every node serves every client over a run.
		if broken || rng.IntN(100) == 0 {
			_ = conn.Close(context.Background())
			conn = nil
			target = (target + 1) % len(targets)
		}
		if !w.sleep(w.cfg.Think) {
			return
		}
	}
}

func (w *Workload) setLastErr(client int, e string) {
	w.mu.Lock()
	w.lastErr[client] = e
	w.mu.Unlock()
}

func (w *Workload) pick(rng *rand.Rand, client, seq, node int, lastSeen map[int64]int64) Op {
	op := Op{Client: client, Seq: seq, Node: node, Key: int64(1 + rng.IntN(w.cfg.Keys))}
	c := w.cfg
	switch r := rng.IntN(c.ReadPct + c.WritePct + c.CASPct + c.AppendPct); {
	case r < c.ReadPct:
		op.Kind = Read
	case r < c.ReadPct+c.WritePct:
		op.Kind, op.Value = Write, valueOf(client, seq)
	case r < c.ReadPct+c.WritePct+c.CASPct:
		op.Kind, op.Value, op.Old = CAS, valueOf(client, seq), lastSeen[op.Key]
	default:
		op.Kind, op.Key, op.Value = Append, 0, int64(seq)
	}
	return op
}

// run executes op on conn and fills in its times and outcome. It reports
// whether the connection is no longer usable.
func (w *Workload) run(conn *pgx.Conn, op *Op) (broken bool) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.OpTimeout)
	defer cancel()
	op.Start = w.Since()
	var err error
	switch op.Kind {
	case Read:
		var v int64
		err = conn.QueryRow(ctx, "SELECT v FROM rt_reg WHERE k = $1", op.Key).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v, err = Absent, nil
		}
		op.Value = v
	case Write:
		_, err = conn.Exec(ctx, "UPSERT INTO rt_reg (k, v) VALUES ($1, $2)", op.Key, op.Value)
	case CAS:
		var tag pgconn.CommandTag
		tag, err = conn.Exec(ctx, "UPDATE rt_reg SET v = $1 WHERE k = $2 AND v = $3", op.Value, op.Key, op.Old)
		op.Applied = err == nil && tag.RowsAffected() == 1
	case Append:
		_, err = conn.Exec(ctx, "INSERT INTO rt_log (client, seq, node) VALUES ($1, $2, $3)", int64(op.Client), int64(op.Seq), int64(op.Node))
	}
	op.End = w.Since()
	op.Outcome = Classify(err)
	if err != nil {
		op.Err = oneLine(err.Error())
		if code := cluster.SQLState(err); code != "" {
			op.Err = code + " " + op.Err
		}
	}
	if op.Outcome == OK {
		if op.Kind != Read {
			w.acked.Add(1)
		}
		return false
	}
	return conn.IsClosed() || cluster.ConnectionLost(err) || ctx.Err() != nil ||
		cluster.SQLState(err) == cluster.CodeAdminShutdown
}

// Classify says what an operation's error means for its effect. Only
// answers that guarantee nothing was written are Failed; anything the
// client cannot be sure about is Ambiguous.
func Classify(err error) Outcome {
	if err == nil {
		return OK
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		// pgx's "conn closed" (which claims SafeToRetry) is what a
		// statement gets when its connection dies while it waits for the
		// answer: it was sent. (A client never reuses a connection after
		// an error, so it cannot mean a connection dead beforehand.)
		return Ambiguous
	}
	if pgconn.SafeToRetry(err) {
		return Failed // never sent
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return Failed
	}
	code := cluster.SQLState(err)
	switch {
	case code == "":
		return Ambiguous // timeout, connection lost mid-statement
	case code == cluster.CodeSerialization, code == cluster.CodeUniqueViolated:
		return Failed
	case len(code) == 5 && (code[:2] == "42" || code[:2] == "22" || code[:2] == "0A" || code[:2] == "23"):
		return Failed // rejected before it was run
	}
	// 40003, 58000, 57P01, 57014 (canceled), XX000 and anything unknown.
	return Ambiguous
}

func (w *Workload) record(op Op) {
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// ReadFinal reads every register key and the whole log through each
// target, after Stop. The reads join the history as final operations; a
// node that cannot be read (with retries for a minute) is an error.
func (w *Workload) ReadFinal(ctx context.Context, nodes []*cluster.Node) error {
	if !w.stopped.Load() {
		return errors.AssertionFailedf("ReadFinal before Stop")
	}
	log := map[int][]LogRow{}
	for _, n := range nodes {
		for k := 1; k <= w.cfg.Keys; k++ {
			start := w.Since()
			rows, err := n.Query(ctx, "SELECT v FROM rt_reg WHERE k = $1", int64(k))
			if err != nil {
				return errors.Wrapf(err, "final read of register %d through %s", k, n)
			}
			v := Absent
			if len(rows) > 0 {
				v, _ = rows[0][0].(int64)
			}
			w.record(Op{Client: w.cfg.Clients + n.Index, Node: n.Index, Kind: Read, Key: int64(k), Value: v,
				Start: start, End: w.Since(), Outcome: OK, Final: true})
		}
		rows, err := n.Query(ctx, "SELECT client, seq FROM rt_log")
		if err != nil {
			return errors.Wrapf(err, "final read of rt_log through %s", n)
		}
		var lr []LogRow
		for _, r := range rows {
			c, _ := r[0].(int64)
			s, _ := r[1].(int64)
			lr = append(lr, LogRow{Client: int(c), Seq: int(s)})
		}
		log[n.Index] = lr
	}
	w.mu.Lock()
	w.log = log
	w.mu.Unlock()
	return nil
}

// History returns what was recorded so far (call after Stop and ReadFinal).
func (w *Workload) History() *History {
	w.mu.Lock()
	defer w.mu.Unlock()
	return &History{Ops: append([]Op(nil), w.ops...), Notes: append([]Note(nil), w.notes...), Log: w.log, Keys: w.cfg.Keys}
}

func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Unbounded is the end time the checkers give an ambiguous operation: it
// may take effect at any time after it started.
const Unbounded = time.Duration(math.MaxInt64)
