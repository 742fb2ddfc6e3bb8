package sql

import (
	"context"
	"fmt"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// virtualUpdatePlan is an UPDATE of a virtual table whose owner accepts
// updates (system.local: entering group 0 recovery mode). The rows are
// computed and filtered by the WHERE clause, and the matching rows, with
// the SET clause applied, are handed together to the table's update
// function, which decides what the change means and applies all of it or
// refuses.
type virtualUpdatePlan struct {
	e      *Executor
	vt     *virtualTable
	set    []setItem
	filter texpr
}

func (p *virtualUpdatePlan) columns() []pgwire.Column { return nil }
func (p *virtualUpdatePlan) stale() bool              { return false }

func (e *Executor) analyzeVirtualUpdate(s *parser.Update, vt *virtualTable, params *paramSet) (*virtualUpdatePlan, error) {
	if vt.update == nil {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInsufficientPrivilege, "%s is a virtual table and cannot be modified", vt.name),
			"only SELECT works on this table")
	}
	if s.Returning != nil {
		return nil, pgerror.WithHintf(unsupported("UPDATE %s ... RETURNING is not supported", vt.name),
			"read the table with SELECT after the UPDATE")
	}
	st := scopeTable{names: []string{s.Table.Table()}}
	for _, c := range vt.cols {
		st.cols = append(st.cols, scopeCol{name: c.Name, t: c.Type})
	}
	a := &analyzer{params: params, clause: "UPDATE", tables: []scopeTable{st}}
	p := &virtualUpdatePlan{e: e, vt: vt}
	seen := map[int]bool{}
	for _, u := range s.Set {
		i := -1
		for j, c := range vt.cols {
			if c.Name == u.Column {
				i = j
			}
		}
		if i < 0 {
			return nil, undefinedColumn(u.Column)
		}
		if seen[i] {
			return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "multiple assignments to the same column %q", u.Column)
		}
		seen[i] = true
		if u.Expr == nil {
			return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "column %q of %s has no DEFAULT", u.Column, vt.name)
		}
		c := vt.cols[i]
		a.target = c.Name
		te, err := a.check(u.Expr, c.Type)
		a.target = ""
		if err != nil {
			return nil, err
		}
		if te, err = coerce(te, c.Type, c.Name); err != nil {
			return nil, err
		}
		p.set = append(p.set, setItem{idx: i, e: te})
	}
	if s.Where != nil {
		a.clause = "WHERE"
		f, err := a.checkBool(s.Where, "WHERE")
		if err != nil {
			return nil, err
		}
		p.filter = f
	}
	return p, nil
}

func (p *virtualUpdatePlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	rows, err := p.vt.rows(ctx)
	if err != nil {
		return pgwire.Result{}, err
	}
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	var changes []RowUpdate
	for _, r := range rows {
		ec.row = r
		ok, err := ec.evalTrue(p.filter)
		if err != nil {
			return pgwire.Result{}, err
		}
		if !ok {
			continue
		}
		updated := append([]types.Datum(nil), r...)
		for _, si := range p.set {
			d, err := ec.eval(si.e)
			if err != nil {
				return pgwire.Result{}, err
			}
			updated[si.idx] = d
		}
		changes = append(changes, RowUpdate{Old: r, Updated: updated})
	}
	if len(changes) > 0 {
		if err := p.vt.update(ctx, changes); err != nil {
			return pgwire.Result{}, err
		}
	}
	return pgwire.Result{Tag: fmt.Sprintf("UPDATE %d", len(changes))}, nil
}
