package tests

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// rowValue is the value row k of a bulk table gets: recognizable in a diff.
func rowValue(k int64) string { return fmt.Sprintf("row-%d", k) }

// createTable creates a (k INT PRIMARY KEY, v STRING) table through node
// via and waits until every running node can read it.
func createTable(table string, via int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		if err := e.Cluster.Node(via).ExecIdempotent(ctx,
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (k INT PRIMARY KEY, v STRING)", table)); err != nil {
			return err
		}
		return steps.WaitForTable(ctx, e.Cluster, table)
	}
}

// upsertRows writes keys [from, from+count) with rowValue, batch rows per
// UPSERT, round-robin through the given nodes. UPSERT of fixed values is
// idempotent, so an ambiguous statement is simply retried.
func upsertRows(table string, from, count int64, batch int, through []int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		start := time.Now()
		stmt := 0
		for k := from; k < from+count; k += int64(batch) {
			var vals []string
			for j := k; j < min(k+int64(batch), from+count); j++ {
				vals = append(vals, fmt.Sprintf("(%d, '%s')", j, rowValue(j)))
			}
			n := e.Cluster.Node(through[stmt%len(through)])
			stmt++
			if err := n.ExecIdempotent(ctx, fmt.Sprintf("UPSERT INTO %s (k, v) VALUES %s", table, strings.Join(vals, ", "))); err != nil {
				return err
			}
		}
		e.Logf("wrote %d rows into %s in %d statements in %s", count, table, stmt, time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// upsertSingleRows writes keys [from, from+count) one statement each (one
// Raft entry each), with one writer per node in through, to grow the Raft
// log quickly.
func upsertSingleRows(table string, from, count int64, through []int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(through))
		for w, idx := range through {
			wg.Add(1)
			go func(w int, n *cluster.Node) {
				defer wg.Done()
				conn, err := n.Connect(ctx)
				if err != nil {
					errs[w] = err
					return
				}
				defer func() { _ = conn.Close(context.Background()) }()
				for k := from + int64(w); k < from+count; k += int64(len(through)) {
					stmt := fmt.Sprintf("UPSERT INTO %s (k, v) VALUES (%d, '%s')", table, k, rowValue(k))
					if _, err := conn.Exec(ctx, stmt); err != nil {
						// The connection may be gone; the retrying path reconnects.
						if err := n.ExecIdempotent(ctx, stmt); err != nil {
							errs[w] = err
							return
						}
					}
				}
			}(w, e.Cluster.Node(idx))
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		e.Logf("wrote %d rows into %s one statement each in %s", count, table, time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// checkRows reads table through node and checks that it holds exactly the
// keys [from, from+count) with rowValue.
func checkRows(ctx context.Context, n *cluster.Node, table string, from, count int64) error {
	rows, err := n.Query(ctx, fmt.Sprintf("SELECT k, v FROM %s ORDER BY k", table))
	if err != nil {
		return err
	}
	var problems []string
	next := from
	for _, r := range rows {
		k, _ := r[0].(int64)
		v, _ := r[1].(string)
		switch {
		case k != next:
			problems = append(problems, fmt.Sprintf("expected key %d, found key %d", next, k))
			next = k
		case v != rowValue(k):
			problems = append(problems, fmt.Sprintf("key %d has %q, want %q", k, v, rowValue(k)))
		}
		next++
		if len(problems) >= 10 {
			break
		}
	}
	if int64(len(rows)) != count {
		problems = append(problems, fmt.Sprintf("%d rows, want %d", len(rows), count))
	}
	if len(problems) > 0 {
		return errors.Newf("%s read through %s (%s) is wrong: %s", table, n, n.Binary().Name(), strings.Join(problems, "; "))
	}
	return nil
}

// checkRowsEverywhere is checkRows through every running node.
func checkRowsEverywhere(table string, from, count int64) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := checkRows(ctx, n, table, from, count); err != nil {
				return err
			}
		}
		return nil
	}
}

// waitCaughtUp waits until node's applied index reaches the commit index
// the leader reports now, and returns how long that took.
func waitCaughtUp(ctx context.Context, c *cluster.Cluster, n *cluster.Node, within time.Duration) (time.Duration, error) {
	leader, err := c.Leader(ctx)
	if err != nil {
		return 0, err
	}
	lst, err := leader.Status(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = steps.Eventually(ctx, within, func() error {
		st, err := n.Status(ctx)
		if err != nil {
			return err
		}
		if st.Applied < lst.Commit {
			return errors.Newf("%s applied %d of the leader %s's commit index %d", n, st.Applied, leader, lst.Commit)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// allCaughtUp checks that every running node applies the leader's log.
func allCaughtUp() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			d, err := waitCaughtUp(ctx, e.Cluster, n, 30*time.Second)
			if err != nil {
				return err
			}
			st, _ := n.Status(ctx)
			e.Logf("%s: applied index %d (caught up in %s)", n, st.Applied, d.Round(time.Millisecond))
		}
		return nil
	}
}

// others returns the nodes 1..n except skip.
func others(n int, skip ...int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		keep := true
		for _, s := range skip {
			if i == s {
				keep = false
			}
		}
		if keep {
			out = append(out, i)
		}
	}
	return out
}

func nodeList(ns []int) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprintf("n%d", n))
	}
	return strings.Join(parts, ", ")
}
