package sql

import (
	"context"
	"fmt"
	"strings"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// explainPlan answers EXPLAIN: one row per line describing how the
// statement reads and writes, so an operator can check that a benchmark's
// query is a point lookup and not a full scan.
type explainPlan struct {
	inner plan
	lines []string
}

func (s *session) analyzeExplain(v *parser.Explain, params *paramSet) (plan, error) {
	inner, err := s.analyzeStmt(v.Stmt, params)
	if err != nil {
		return nil, err
	}
	p := &explainPlan{inner: inner}
	add := func(format string, args ...any) { p.lines = append(p.lines, fmt.Sprintf(format, args...)) }
	var where parser.Expr
	switch st := v.Stmt.(type) {
	case *parser.Select:
		where = st.Where
	case *parser.Update:
		where = st.Where
	case *parser.Delete:
		where = st.Where
	}
	switch ip := inner.(type) {
	case *queryPlan:
		w := &explainWriter{}
		ip.root.explain(w)
		p.lines = w.lines
	case *updatePlan:
		describeScan(add, ip.ti, &ip.scan, where)
		add("write: one atomic batch of conditional puts on the rows read; re-read and retry on conflict")
	case *deletePlan:
		describeScan(add, ip.ti, &ip.scan, where)
		add("write: one atomic batch of conditional deletes on the rows read; re-read and retry on conflict")
	}
	return p, nil
}

func describeScan(add func(string, ...any), ti *tableInfo, sp *scanPlan, where parser.Expr) {
	on, key := scanOn(ti, sp)
	switch sp.kind {
	case scanPoint:
		add("table %s: point lookup on %s", quoteName(ti.desc.Name), on)
	case scanPoints:
		add("table %s: %d point lookups on %s", quoteName(ti.desc.Name), len(sp.in), on)
	case scanRange:
		add("table %s: range scan on %s", quoteName(ti.desc.Name), on)
		if len(sp.eq) > 0 {
			add("  fixed key columns: %s", strings.Join(key[:len(sp.eq)], ", "))
		}
		if len(sp.lower)+len(sp.upper) > 0 {
			add("  bounded key column: %s", key[len(sp.eq)])
		}
	case scanFull:
		add("table %s: full scan", quoteName(ti.desc.Name))
	}
	switch {
	case where == nil:
	case sp.exact:
		add("filter: none needed (the key lookup enforces the WHERE)")
	default:
		add("filter: %s", where)
	}
}

func (p *explainPlan) columns() []pgwire.Column {
	return []pgwire.Column{{Name: "info", Type: types.String}}
}
func (p *explainPlan) stale() bool { return p.inner.stale() }
func (p *explainPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	rows := make([][]types.Datum, len(p.lines))
	for i, l := range p.lines {
		rows[i] = []types.Datum{l}
	}
	return pgwire.Result{Rows: rows, Tag: fmt.Sprintf("SELECT %d", len(rows))}, nil
}
