package txnworkload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/roachtest/elle"
)

// WriteSkew is the on-call doctors workload (see the package
// documentation).
type WriteSkew struct {
	runner
	next atomic.Int64

	mu         sync.Mutex
	rounds     int
	both       int // rounds where both took their doctor off call (committed)
	violations []string
}

var _ Workload = (*WriteSkew)(nil)

// NewWriteSkew returns the workload; Start runs it with Config.Clients
// pairs per target (rounded up to one pair), each pair's two clients on
// two different targets when there are several.
func NewWriteSkew(cfg Config) *WriteSkew { return &WriteSkew{runner: newRunner(cfg)} }

// Name implements Workload.
func (w *WriteSkew) Name() string { return "write-skew" }

// Tables implements Workload.
func (w *WriteSkew) Tables() []string { return []string{"oncall_doctors"} }

// Setup implements Workload.
func (w *WriteSkew) Setup(ctx context.Context, exec Execer) error {
	return exec(ctx, "CREATE TABLE IF NOT EXISTS oncall_doctors (id INT PRIMARY KEY, shift INT NOT NULL, on_call INT NOT NULL)")
}

// Start implements Workload.
func (w *WriteSkew) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.start = time.Now()
	w.cancel = cancel
	nt := len(w.cfg.Targets)
	for p := range max(1, w.cfg.Clients*nt/2) {
		var pair [2]*client
		for i := range pair {
			id := 2*p + i
			pair[i] = &client{r: &w.runner, id: id, target: w.cfg.Targets[id%nt],
				rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(id)+1))}
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer pair[0].close()
			defer pair[1].close()
			for ctx.Err() == nil {
				w.round(ctx, pair)
				pause(ctx, w.cfg.Think)
			}
		}()
	}
}

// round runs one shift: its two doctors are created on call, then both
// clients try at once to go off call.
func (w *WriteSkew) round(ctx context.Context, pair [2]*client) {
	s := w.next.Add(1)
	ids := [2]int64{2 * s, 2*s + 1}
	// The shift's doctors, through whichever of the two can connect (its
	// node may be down).
	ins := pair[s%2]
	conn, err := ins.connect(ctx)
	if err != nil {
		ins = pair[1-s%2]
		if conn, err = ins.connect(ctx); err != nil {
			return
		}
	}
	ictx, cancel := context.WithTimeout(ctx, w.cfg.TxnTimeout)
	_, err = conn.Exec(ictx, "INSERT INTO oncall_doctors (id, shift, on_call) VALUES ($1, $3, 1), ($2, $3, 1) ON CONFLICT DO NOTHING", ids[0], ids[1], s)
	cancel()
	if err != nil {
		ins.dropIfBroken(err)
		return // a shift whose rows may be missing or partial: the final check ignores it
	}
	var read [2]chan struct{}
	var once [2]sync.Once
	for i := range read {
		read[i] = make(chan struct{})
	}
	var recs [2]txnRecord
	var took [2]bool
	var wg sync.WaitGroup
	for i := range pair {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once[i].Do(func() { close(read[i]) })
			recs[i] = pair[i].txn(ctx, func(ctx context.Context, tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "SELECT id, on_call FROM oncall_doctors WHERE id IN ($1, $2)", ids[0], ids[1])
				if err != nil {
					return err
				}
				type row struct{ ID, OnCall int64 }
				got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
				if err != nil {
					return err
				}
				on := 0
				for _, r := range got {
					if r.OnCall == 1 {
						on++
					}
				}
				// Wait for the other's read, so that the two overlap.
				once[i].Do(func() { close(read[i]) })
				t := time.NewTimer(2 * time.Second)
				select {
				case <-read[1-i]:
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
				if on < 2 {
					return errRollback // someone must stay on call
				}
				if _, err := tx.Exec(ctx, "UPDATE oncall_doctors SET on_call = 0 WHERE id = $1", ids[i]); err != nil {
					return err
				}
				took[i] = true
				return nil
			})
		}()
	}
	wg.Wait()
	if !recs[0].started && !recs[1].started {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rounds++
	if recs[0].outcome == elle.OK && recs[1].outcome == elle.OK && took[0] && took[1] {
		w.both++
		if len(w.violations) < 20 {
			w.violations = append(w.violations, fmt.Sprintf("shift %d: both doctors went off call: client %d via %s [%.3fs..%.3fs] and client %d via %s [%.3fs..%.3fs] both committed",
				s, pair[0].id, pair[0].target.Name, recs[0].start.Seconds(), recs[0].end.Seconds(),
				pair[1].id, pair[1].target.Name, recs[1].start.Seconds(), recs[1].end.Seconds()))
		}
	}
}

// WriteSkewResult is the write-skew verdict.
type WriteSkewResult struct {
	Counts Counts
	Rounds int
	// Both is the number of rounds where both transactions committed.
	Both     int
	Problems []string
	notes    string
}

// OK implements Result.
func (r *WriteSkewResult) OK() bool { return len(r.Problems) == 0 }

func (r *WriteSkewResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "write skew: %d rounds (%s); both committed in %d\n", r.Rounds, r.Counts, r.Both)
	if r.OK() {
		b.WriteString("no shift lost both doctors\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "VIOLATION: %s\n", p)
	}
	b.WriteString(r.notes)
	return b.String()
}

// Check implements Workload: no round where both committed, and through
// every target, every shift whose two doctors exist has one on call, and
// every target shows the same rows.
func (w *WriteSkew) Check(ctx context.Context) (Result, error) {
	w.Stop()
	res := &WriteSkewResult{Counts: w.Counts(), notes: w.notesText()}
	w.mu.Lock()
	res.Rounds, res.Both = w.rounds, w.both
	res.Problems = append(res.Problems, w.violations...)
	w.mu.Unlock()
	type doctors struct{ onCall, count map[int64]int64 }
	finals, agree, err := readFinal(ctx, &w.runner, func(ctx context.Context, tx pgx.Tx) (doctors, string, error) {
		d := doctors{onCall: map[int64]int64{}, count: map[int64]int64{}}
		rows, err := tx.Query(ctx, "SELECT id, shift, on_call FROM oncall_doctors")
		if err != nil {
			return d, "", err
		}
		type row struct{ ID, Shift, OnCall int64 }
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return d, "", err
		}
		sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
		var parts []string
		for _, r := range got {
			d.onCall[r.Shift] += r.OnCall
			d.count[r.Shift]++
			parts = append(parts, fmt.Sprintf("%d:%d", r.ID, r.OnCall))
		}
		return d, strings.Join(parts, " "), nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range finals {
		var empty []int64
		for s, n := range f.value.count {
			if n == 2 && f.value.onCall[s] == 0 {
				empty = append(empty, s)
			}
		}
		sort.Slice(empty, func(i, j int) bool { return empty[i] < empty[j] })
		if len(empty) > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("final read through %s: %d shift(s) with nobody on call: %v", f.target.Name, len(empty), head(empty, 20)))
		}
	}
	if !agree {
		res.Problems = append(res.Problems, fmt.Sprintf("final reads through %s and the other nodes still disagree after five rounds a second apart", finals[0].target.Name))
	}
	return res, nil
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
