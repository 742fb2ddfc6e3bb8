package txnworkload

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/roachtest/elle"
)

// ListAppendOptions shape the list-append workload.
type ListAppendOptions struct {
	// ActiveKeys is how many keys transactions choose from at a time
	// (default 5): few keys make transactions conflict.
	ActiveKeys int
	// TxnsPerKey retires the lowest active key for a new one every
	// TxnsPerKey*ActiveKeys transactions (default 100), which bounds the
	// lists' length (and so the checker's work) in long runs.
	TxnsPerKey int
	// MaxOps is the most micro-operations in one transaction (default 4).
	MaxOps int
}

// ListAppend is the list-append workload (see the package documentation).
type ListAppend struct {
	runner
	opts    ListAppendOptions
	nextVal atomic.Int64
	started atomic.Int64 // transactions begun, for key rotation

	hmu     sync.Mutex
	history elle.History
	maxKey  int
}

var _ Workload = (*ListAppend)(nil)

// NewListAppend returns the workload; Start runs it.
func NewListAppend(cfg Config, o ListAppendOptions) *ListAppend {
	if o.ActiveKeys == 0 {
		o.ActiveKeys = 5
	}
	if o.TxnsPerKey == 0 {
		o.TxnsPerKey = 100
	}
	if o.MaxOps == 0 {
		o.MaxOps = 4
	}
	return &ListAppend{runner: newRunner(cfg), opts: o}
}

// Name implements Workload.
func (w *ListAppend) Name() string { return "list-append" }

// Tables implements Workload.
func (w *ListAppend) Tables() []string { return []string{"elle_lists"} }

// Setup implements Workload.
func (w *ListAppend) Setup(ctx context.Context, exec Execer) error {
	return exec(ctx, "CREATE TABLE IF NOT EXISTS elle_lists (k INT PRIMARY KEY, v TEXT NOT NULL)")
}

// Start implements Workload.
func (w *ListAppend) Start() {
	w.begin(w.cfg.Clients*len(w.cfg.Targets), w.one)
}

// one runs one random transaction and records it.
func (w *ListAppend) one(ctx context.Context, c *client) {
	n := w.started.Add(1)
	base := int(n) / (w.opts.TxnsPerKey * w.opts.ActiveKeys) * w.opts.ActiveKeys
	var ops []elle.Op
	for range 1 + c.rng.IntN(w.opts.MaxOps) {
		k := base + c.rng.IntN(w.opts.ActiveKeys)
		if c.rng.IntN(2) == 0 {
			ops = append(ops, elle.AppendOp(k, int(w.nextVal.Add(1))))
		} else {
			ops = append(ops, elle.ReadOp(k))
		}
	}
	done := make([]elle.Op, 0, len(ops))
	rec := c.txn(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, o := range ops {
			cur, found, err := readList(ctx, tx, o.Key)
			if err != nil {
				return err
			}
			if o.Kind == elle.Read {
				o.List = cur
				done = append(done, o)
				continue
			}
			v := strconv.Itoa(o.Value)
			if found {
				text := v
				if len(cur) > 0 {
					text = formatList(cur) + "," + v
				}
				_, err = tx.Exec(ctx, "UPDATE elle_lists SET v = $1 WHERE k = $2", text, o.Key)
			} else {
				_, err = tx.Exec(ctx, "INSERT INTO elle_lists (k, v) VALUES ($1, $2)", o.Key, v)
			}
			if err != nil {
				return err
			}
			done = append(done, o)
		}
		return nil
	})
	if !rec.started {
		return
	}
	t := elle.Txn{Outcome: rec.outcome, Process: c.id, Node: c.target.Name, Start: rec.start, End: rec.end}
	if rec.err != nil {
		t.Error = firstLine(rec.err.Error())
	}
	switch rec.outcome {
	case elle.OK:
		t.Ops = done
	default:
		// The appends may have been applied (info) or must not be (fail);
		// the reads of a transaction that did not commit tell nothing.
		for _, o := range ops {
			if o.Kind == elle.Append {
				t.Ops = append(t.Ops, o)
			}
		}
		if len(t.Ops) == 0 {
			return
		}
	}
	w.hmu.Lock()
	w.history = append(w.history, t)
	w.maxKey = max(w.maxKey, base+w.opts.ActiveKeys-1)
	w.hmu.Unlock()
}

// readList reads key k's list; found says whether its row exists.
func readList(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, k int) ([]int, bool, error) {
	rows, err := q.Query(ctx, "SELECT v FROM elle_lists WHERE k = $1", k)
	if err != nil {
		return nil, false, err
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, err
	}
	if len(texts) == 0 {
		return nil, false, nil
	}
	l, err := parseList(texts[0])
	return l, true, err
}

func parseList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, errors.Newf("list %q holds %q, not an integer", s, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func formatList(l []int) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// History returns a copy of the recorded history (final reads included
// once Check ran).
func (w *ListAppend) History() elle.History {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	return append(elle.History(nil), w.history...)
}

// ListAppendResult is the checker's report on the run.
type ListAppendResult struct {
	Report *elle.Report
	Counts Counts
	notes  string
}

// OK implements Result.
func (r *ListAppendResult) OK() bool { return r.Report.OK() }

func (r *ListAppendResult) String() string {
	return fmt.Sprintf("list-append: %s\n%s%s", r.Counts, r.Report, r.notes)
}

// Check implements Workload: one final read of every key through every
// target, then the list-append checker.
func (w *ListAppend) Check(ctx context.Context) (Result, error) {
	w.Stop()
	w.hmu.Lock()
	maxKey := w.maxKey
	w.hmu.Unlock()
	finals, _, err := readFinal(ctx, &w.runner, func(ctx context.Context, tx pgx.Tx) ([]elle.Op, string, error) {
		rows, err := tx.Query(ctx, "SELECT k, v FROM elle_lists")
		if err != nil {
			return nil, "", err
		}
		type kv struct {
			K int64
			V string
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[kv])
		if err != nil {
			return nil, "", err
		}
		lists := map[int][]int{}
		for _, r := range got {
			l, err := parseList(r.V)
			if err != nil {
				return nil, "", err
			}
			lists[int(r.K)] = l
		}
		var keys []int
		for k := range lists {
			keys = append(keys, k)
		}
		for k := 0; k <= maxKey; k++ {
			if _, ok := lists[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Ints(keys)
		var ops []elle.Op
		var text strings.Builder
		for _, k := range keys {
			ops = append(ops, elle.ReadOp(k, lists[k]...))
			fmt.Fprintf(&text, "%d:%s;", k, formatList(lists[k]))
		}
		return ops, text.String(), nil
	})
	if err != nil {
		return nil, err
	}
	w.hmu.Lock()
	for _, f := range finals {
		// Disagreeing final reads are the checker's final-reads-disagree.
		w.history = append(w.history, elle.Txn{Ops: f.value, Outcome: elle.OK, Final: true, Node: f.target.Name, Process: -1, Start: f.start, End: f.end})
	}
	w.hmu.Unlock()
	rep := elle.Check(w.History(), elle.Options{})
	return &ListAppendResult{Report: rep, Counts: w.Counts(), notes: w.notesText()}, nil
}
