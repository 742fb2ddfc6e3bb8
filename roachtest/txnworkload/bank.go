package txnworkload

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/roachtest/elle"
)

// BankOptions shape the bank workload.
type BankOptions struct {
	// Accounts is the number of accounts (default 8), each starting with
	// InitialBalance (default 100).
	Accounts, InitialBalance int
	// Readers is the number of snapshot readers per target (default 1);
	// Config.Clients is the number of transferring clients per target.
	Readers int
}

// Bank is the bank workload (see the package documentation).
type Bank struct {
	runner
	opts BankOptions

	mu         sync.Mutex
	reads      int
	violations []string
	nviol      int
}

var _ Workload = (*Bank)(nil)

// NewBank returns the workload; Start runs it.
func NewBank(cfg Config, o BankOptions) *Bank {
	if o.Accounts == 0 {
		o.Accounts = 8
	}
	if o.InitialBalance == 0 {
		o.InitialBalance = 100
	}
	if o.Readers == 0 {
		o.Readers = 1
	}
	return &Bank{runner: newRunner(cfg), opts: o}
}

// Name implements Workload.
func (w *Bank) Name() string { return "bank" }

// Tables implements Workload.
func (w *Bank) Tables() []string { return []string{"bank_accounts"} }

func (w *Bank) total() int64 { return int64(w.opts.Accounts * w.opts.InitialBalance) }

// Setup implements Workload: the accounts, each with the initial balance
// (rows that exist are left alone).
func (w *Bank) Setup(ctx context.Context, exec Execer) error {
	if err := exec(ctx, "CREATE TABLE IF NOT EXISTS bank_accounts (id INT PRIMARY KEY, balance INT NOT NULL)"); err != nil {
		return err
	}
	var vals []string
	for i := range w.opts.Accounts {
		vals = append(vals, fmt.Sprintf("(%d, %d)", i, w.opts.InitialBalance))
	}
	return exec(ctx, "INSERT INTO bank_accounts (id, balance) VALUES "+strings.Join(vals, ", ")+" ON CONFLICT DO NOTHING")
}

// Start implements Workload: Clients transferring clients and Readers
// readers per target.
func (w *Bank) Start() {
	writers := w.cfg.Clients * len(w.cfg.Targets)
	w.begin(writers+w.opts.Readers*len(w.cfg.Targets), func(ctx context.Context, c *client) {
		if c.id < writers {
			w.transfer(ctx, c)
		} else {
			w.read(ctx, c)
		}
	})
}

func (w *Bank) transfer(ctx context.Context, c *client) {
	from := c.rng.IntN(w.opts.Accounts)
	to := (from + 1 + c.rng.IntN(w.opts.Accounts-1)) % w.opts.Accounts
	amount := int64(1 + c.rng.IntN(20))
	c.txn(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var fb, tb int64
		if err := tx.QueryRow(ctx, "SELECT balance FROM bank_accounts WHERE id = $1", from).Scan(&fb); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT balance FROM bank_accounts WHERE id = $1", to).Scan(&tb); err != nil {
			return err
		}
		if fb < amount {
			return errRollback
		}
		if _, err := tx.Exec(ctx, "UPDATE bank_accounts SET balance = $1 WHERE id = $2", fb-amount, from); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE bank_accounts SET balance = $1 WHERE id = $2", tb+amount, to)
		return err
	})
}

// read reads every balance in one transaction, with one scan or one point
// read per account (chosen at random), and checks what it saw once the
// transaction committed.
func (w *Bank) read(ctx context.Context, c *client) {
	scan := c.rng.IntN(2) == 0
	var bal map[int64]int64
	rec := c.txn(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		bal, err = w.readAll(ctx, tx, scan)
		return err
	})
	if rec.outcome != elle.OK || !rec.started {
		return // a read that did not commit promises nothing
	}
	how := "one scan"
	if !scan {
		how = fmt.Sprintf("%d point reads", w.opts.Accounts)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
	if msg := w.verify(bal); msg != "" {
		w.nviol++
		if len(w.violations) < 20 {
			w.violations = append(w.violations, fmt.Sprintf("reader %d via %s [%.3fs..%.3fs] (%s): %s",
				c.id, c.target.Name, rec.start.Seconds(), rec.end.Seconds(), how, msg))
		}
	}
}

func (w *Bank) readAll(ctx context.Context, tx pgx.Tx, scan bool) (map[int64]int64, error) {
	bal := map[int64]int64{}
	if scan {
		rows, err := tx.Query(ctx, "SELECT id, balance FROM bank_accounts")
		if err != nil {
			return nil, err
		}
		type row struct{ ID, Balance int64 }
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			bal[r.ID] = r.Balance
		}
		return bal, nil
	}
	for i := range w.opts.Accounts {
		var b int64
		if err := tx.QueryRow(ctx, "SELECT balance FROM bank_accounts WHERE id = $1", i).Scan(&b); err != nil {
			return nil, err
		}
		bal[int64(i)] = b
	}
	return bal, nil
}

// verify returns what is wrong with a snapshot of the balances, or "".
func (w *Bank) verify(bal map[int64]int64) string {
	var sum int64
	var problems []string
	for id, b := range bal {
		sum += b
		if b < 0 {
			problems = append(problems, fmt.Sprintf("account %d is negative (%d)", id, b))
		}
	}
	if len(bal) != w.opts.Accounts {
		problems = append(problems, fmt.Sprintf("%d accounts, want %d", len(bal), w.opts.Accounts))
	}
	if sum != w.total() {
		problems = append(problems, fmt.Sprintf("total %d, want %d", sum, w.total()))
	}
	if len(problems) == 0 {
		return ""
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ") + " in " + balances(bal)
}

func balances(bal map[int64]int64) string {
	var ids []int64
	for id := range bal {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%d:%d", id, bal[id]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// BankResult is the bank's verdict.
type BankResult struct {
	Counts     Counts
	Reads      int
	Violations int
	// Problems lists the first violations, then the final reads' problems.
	Problems []string
	Final    string
	notes    string
}

// OK implements Result.
func (r *BankResult) OK() bool { return len(r.Problems) == 0 }

func (r *BankResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bank: transfers and reads: %s; %d committed snapshot reads, %d violating\n", r.Counts, r.Reads, r.Violations)
	fmt.Fprintf(&b, "final balances: %s\n", r.Final)
	if r.OK() {
		b.WriteString("every read saw the same total and no negative balance\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "VIOLATION: %s\n", p)
	}
	b.WriteString(r.notes)
	return b.String()
}

// Check implements Workload: the snapshot readers' violations, and the
// final balances through every target (equal everywhere, right total, none
// negative).
func (w *Bank) Check(ctx context.Context) (Result, error) {
	w.Stop()
	res := &BankResult{Counts: w.Counts(), notes: w.notesText()}
	w.mu.Lock()
	res.Reads, res.Violations = w.reads, w.nviol
	res.Problems = append(res.Problems, w.violations...)
	w.mu.Unlock()
	finals, agree, err := readFinal(ctx, &w.runner, func(ctx context.Context, tx pgx.Tx) (map[int64]int64, string, error) {
		bal, err := w.readAll(ctx, tx, true)
		return bal, balances(bal), err
	})
	if err != nil {
		return nil, err
	}
	res.Final = finals[0].text
	for _, f := range finals {
		if msg := w.verify(f.value); msg != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("final read through %s: %s", f.target.Name, msg))
		}
		if !agree {
			res.Problems = append(res.Problems, fmt.Sprintf("final reads disagree (five rounds a second apart): %s through %s", f.text, f.target.Name))
		}
	}
	return res, nil
}
