package mixedversion

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// executor holds what the steps of one compiled plan share besides the
// workload: the expected content of the mixed-version tables.
type executor struct {
	sc       *steps.Scenario
	expected map[string]map[int64]string // table -> k -> v
	hasCol   map[string]bool
}

// Compile turns p into a runnable plan. sc carries the workload settings;
// pass a fresh Scenario per plan.
func Compile(p *Plan, sc *steps.Scenario) *registry.Plan {
	x := &executor{sc: sc, expected: map[string]map[int64]string{}, hasCol: map[string]bool{}}
	out := &registry.Plan{Header: p.Header()}
	for i, s := range p.Steps {
		out.Add(s.String(), x.step(i, s))
	}
	return out
}

func (x *executor) step(i int, s Step) steps.Func {
	sc := x.sc
	switch s.Kind {
	case Binaries:
		return sc.Binaries(s.Releases...)
	case StartCluster:
		return sc.StartCluster(s.Releases, s.Node)
	case ProbeCapabilities:
		if s.Required {
			return sc.ProbeCapabilities(s.Node, steps.Finalization)
		}
		return sc.ProbeCapabilities(s.Node)
	case SetupWorkload:
		return sc.SetupWorkload(s.Node)
	case StartWorkload:
		return sc.StartWorkload()
	case WaitProgress:
		return sc.WaitProgress(20, 90*time.Second)
	case Restart:
		return sc.Restart(s.Node, s.To, s.Kill)
	case KillLeader:
		return sc.KillLeader(10)
	case CreateTable:
		return x.createTable(s)
	case AddColumn:
		return x.addColumn(s)
	case WriteRows:
		return x.writeRows(i, s)
	case ChangeSetting:
		return sc.Needs(steps.Settings, changeSetting(s))
	case HoldFinalize:
		return sc.Needs(steps.Finalization, func(ctx context.Context, e *registry.Env) error {
			return e.Cluster.Node(s.Node).ExecIdempotent(ctx,
				fmt.Sprintf("SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", s.From))
		})
	case Finalize:
		return sc.Needs(steps.Finalization, finalize(s))
	case CheckWorkload:
		return sc.CheckWorkload(20)
	}
	return func(context.Context, *registry.Env) error {
		return errors.AssertionFailedf("step kind %d has no executor", s.Kind)
	}
}

func (x *executor) createTable(s Step) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(s.Node)
		if err := n.ExecIdempotent(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (k INT PRIMARY KEY, v STRING)", s.Table)); err != nil {
			return err
		}
		x.expected[s.Table] = map[int64]string{}
		return steps.WaitForTable(ctx, e.Cluster, s.Table)
	}
}

func (x *executor) addColumn(s Step) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(s.Node)
		if err := n.ExecIdempotent(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS c INT DEFAULT 7", s.Table)); err != nil {
			return err
		}
		x.hasCol[s.Table] = true
		for _, m := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 30*time.Second, func() error {
				_, err := m.Query(ctx, fmt.Sprintf("SELECT k, c FROM %s LIMIT 1", s.Table))
				return err
			}); err != nil {
				return errors.Wrapf(err, "column %s.c is not visible through %s", s.Table, m)
			}
		}
		return nil
	}
}

// writeRows upserts five rows, updates the first and deletes the last,
// all through one node with statements that are safe to retry, then reads
// the whole table back through every running node and compares it with
// what the plan wrote so far.
func (x *executor) writeRows(i int, s Step) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(s.Node)
		want := x.expected[s.Table]
		if want == nil {
			return errors.AssertionFailedf("WriteRows on %s before CreateTable", s.Table)
		}
		var vals []string
		for k := s.Key; k < s.Key+5; k++ {
			v := fmt.Sprintf("step%d-n%d-%d", i+1, s.Node, k)
			vals = append(vals, fmt.Sprintf("(%d, '%s')", k, v))
			want[k] = v
		}
		stmts := []string{
			fmt.Sprintf("UPSERT INTO %s (k, v) VALUES %s", s.Table, strings.Join(vals, ", ")),
			fmt.Sprintf("UPDATE %s SET v = 'updated' WHERE k = %d", s.Table, s.Key),
			fmt.Sprintf("DELETE FROM %s WHERE k = %d", s.Table, s.Key+4),
		}
		want[s.Key] = "updated"
		delete(want, s.Key+4)
		for _, st := range stmts {
			if err := n.ExecIdempotent(ctx, st); err != nil {
				return err
			}
		}
		for _, m := range e.Cluster.Running() {
			if err := x.verify(ctx, e, m.Index, s.Table); err != nil {
				return err
			}
		}
		return nil
	}
}

func (x *executor) verify(ctx context.Context, e *registry.Env, node int, table string) error {
	n := e.Cluster.Node(node)
	if d, err := steps.WaitReadable(ctx, n, table); err != nil {
		return err
	} else if d > 0 {
		e.Logf("%s could read %s only after %s (42P01 until its schema had the table)", n, table, d.Round(time.Millisecond))
	}
	q := fmt.Sprintf("SELECT k, v FROM %s ORDER BY k", table)
	if x.hasCol[table] {
		q = fmt.Sprintf("SELECT k, v, c FROM %s ORDER BY k", table)
	}
	rows, err := n.Query(ctx, q)
	if err != nil {
		return err
	}
	want := x.expected[table]
	got := map[int64]string{}
	var problems []string
	for _, r := range rows {
		k, _ := r[0].(int64)
		v, _ := r[1].(string)
		got[k] = v
		if x.hasCol[table] {
			if c, _ := r[2].(int64); c != 7 {
				problems = append(problems, fmt.Sprintf("k=%d has c=%v, want the default 7", k, r[2]))
			}
		}
	}
	keys := map[int64]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var sorted []int64
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
	for _, k := range sorted {
		w, inWant := want[k]
		g, inGot := got[k]
		switch {
		case !inGot:
			problems = append(problems, fmt.Sprintf("k=%d missing (want %q)", k, w))
		case !inWant:
			problems = append(problems, fmt.Sprintf("k=%d present (%q) but deleted or never written", k, g))
		case w != g:
			problems = append(problems, fmt.Sprintf("k=%d is %q, want %q", k, g, w))
		}
	}
	if len(problems) > 0 {
		return errors.Newf("%s through %s (%s) differs from what was written: %s",
			table, n, n.Binary().Name(), strings.Join(problems, "; "))
	}
	return nil
}

func changeSetting(s Step) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(s.Node)
		for _, val := range []string{"false", "true"} {
			if err := n.ExecIdempotent(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = "+val); err != nil {
				return err
			}
			for _, m := range e.Cluster.Running() {
				if err := steps.Eventually(ctx, 30*time.Second, func() error {
					rows, err := m.Query(ctx, "SHOW CLUSTER SETTING cluster.auto_upgrade.enabled")
					if err != nil {
						return err
					}
					if len(rows) != 1 || len(rows[0]) != 1 || strings.ToLower(fmt.Sprint(rows[0][0])) != val {
						return errors.Newf("%s shows cluster.auto_upgrade.enabled = %v, want %s", m, rows, val)
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func finalize(s Step) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(s.Node)
		// By hand, as CockroachDB's operators do it: the cluster refuses
		// SET CLUSTER SETTING version while the preserve option holds the
		// old release, and with automatic upgrades off the RESET does not
		// finalize by itself, so the SET is what finalizes.
		target := fmt.Sprintf("'%s'", s.To)
		if s.ByExpr {
			target = "crdb_internal.node_executable_version()"
		}
		stmts := []string{
			"SET CLUSTER SETTING cluster.auto_upgrade.enabled = false",
			"RESET CLUSTER SETTING cluster.preserve_downgrade_option",
			"SET CLUSTER SETTING version = " + target,
			"SET CLUSTER SETTING cluster.auto_upgrade.enabled = true",
		}
		if s.Auto {
			stmts = []string{"RESET CLUSTER SETTING cluster.preserve_downgrade_option"}
		}
		for _, stmt := range stmts {
			if err := n.ExecIdempotent(ctx, stmt); err != nil {
				return err
			}
		}
		for _, m := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 3*time.Minute, func() error {
				v, err := m.QueryString(ctx, "SHOW CLUSTER SETTING version")
				if err != nil {
					return err
				}
				if v != s.To {
					return errors.Newf("%s reports version %s, want %s", m, v, s.To)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		e.Logf("every node reports cluster version %s", s.To)
		return nil
	}
}
