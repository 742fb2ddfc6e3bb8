package sql

import (
	"context"
	"fmt"
	"sort"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// kvRow is a row read from the store, with its raw key and value kept for
// conditional writes.
type kvRow struct {
	key, value []byte
	row        []types.Datum
	extra      []rowenc.RawColumn
}

// readRows reads the rows of ti that the scan plan selects (a superset of
// the matching rows unless the plan is exact). limit > 0 caps the number of
// rows read, for pushed-down LIMITs.
func (e *Executor) readRows(ec *evalCtx, ti *tableInfo, p *scanPlan, limit int) ([]kvRow, error) {
	if p.kind == scanPoints {
		keys, err := p.pointKeys(ec, ti)
		if err != nil {
			return nil, err
		}
		var out []kvRow
		for _, k := range keys {
			if limit > 0 && len(out) >= limit {
				break
			}
			v, found, err := e.cfg.DB.Get(ec.ctx, k)
			if err != nil {
				return nil, kvError(err)
			}
			if !found {
				continue
			}
			row, extra, err := ti.layout.Decode(k, v)
			if err != nil {
				return nil, err
			}
			out = append(out, kvRow{key: k, value: v, row: row, extra: extra})
		}
		return out, nil
	}
	start, end, empty, err := p.keySpan(ec, ti)
	if err != nil || empty {
		return nil, err
	}
	if p.kind == scanPoint {
		v, found, err := e.cfg.DB.Get(ec.ctx, start)
		if err != nil {
			return nil, kvError(err)
		}
		if !found {
			return nil, nil
		}
		row, extra, err := ti.layout.Decode(start, v)
		if err != nil {
			return nil, err
		}
		return []kvRow{{key: start, value: v, row: row, extra: extra}}, nil
	}
	kvs, err := e.cfg.DB.Scan(ec.ctx, start, end, limit, p.reverse)
	if err != nil {
		return nil, kvError(err)
	}
	out := make([]kvRow, 0, len(kvs))
	for _, kv := range kvs {
		row, extra, err := ti.layout.Decode(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, kvRow{key: kv.Key, value: kv.Value, row: row, extra: extra})
	}
	return out, nil
}

// selectPlan is an analyzed SELECT.
type selectPlan struct {
	e      *Executor
	ti     *tableInfo    // nil unless FROM names a user table
	vt     *virtualTable // nil unless FROM names a virtual table
	filter texpr
	scan   scanPlan
	order  []orderItem
	limit  texpr
	offset texpr
	out    []texpr
	cols   []pgwire.Column
	aggs   []*aggregate
}

func (p *selectPlan) columns() []pgwire.Column { return p.cols }

func (p *selectPlan) stale() bool { return p.ti != nil && p.e.isStale(p.ti) }

// isStale reports whether the table changed since ti was resolved.
func (e *Executor) isStale(ti *tableInfo) bool {
	cur, ok := e.catalog.Get(ti.desc.Name)
	return !ok || cur != ti.desc
}

func (e *Executor) analyzeSelect(s *parser.Select, params *paramSet) (*selectPlan, error) {
	p := &selectPlan{e: e}
	a := &analyzer{params: params}
	var starCols []int // positions of the columns * expands to
	var starNames []scopeCol
	if from, ok := s.SingleTable(); ok {
		name, virt, err := classifyTableName(from.Name)
		if err != nil {
			return nil, err
		}
		if !virt && len(from.Name.Parts) == 1 {
			// pg_catalog is searched first, as in PostgreSQL.
			if _, ok := e.virtualTable("pg_catalog." + name); ok {
				name, virt = "pg_catalog."+name, true
			}
		}
		names := []string{from.Name.Table()}
		if from.Alias != "" {
			names = []string{from.Alias}
		}
		if virt {
			vt, ok := e.virtualTable(name)
			if !ok {
				return nil, e.undefinedVirtual(name)
			}
			p.vt = vt
			st := scopeTable{names: names}
			for i, c := range vt.cols {
				st.cols = append(st.cols, scopeCol{name: c.Name, t: c.Type})
				starCols = append(starCols, i)
			}
			starNames = st.cols
			a.tables = []scopeTable{st}
		} else {
			desc, ok := e.catalog.Get(name)
			if !ok {
				return nil, undefinedTable(name)
			}
			ti, err := e.tables.infoFor(desc)
			if err != nil {
				return nil, err
			}
			p.ti = ti
			st := ti.scope(0, names...)
			starCols = ti.visible
			starNames = st.cols
			a.tables = []scopeTable{st}
		}
	}

	// WHERE.
	if s.Where != nil {
		a.clause = "WHERE"
		f, err := a.checkBool(s.Where, "WHERE")
		if err != nil {
			return nil, err
		}
		p.filter = f
	}

	// Select list.
	a.clause = "SELECT"
	a.allowAggs = true
	for _, se := range s.Exprs {
		if se.Star {
			if len(s.From) == 0 {
				return nil, pgerror.Newf(pgerror.CodeSyntaxError, "SELECT * with no tables specified is not valid")
			}
			if se.StarTable != "" && !containsString(a.tables[0].names, se.StarTable) {
				return nil, pgerror.Newf(pgerror.CodeUndefinedTable, "no data source matches pattern: %s.*", se.StarTable)
			}
			for _, i := range starCols {
				p.out = append(p.out, &colExpr{idx: i, t: starNames[i].t, name: starNames[i].name})
				p.cols = append(p.cols, pgwire.Column{Name: starNames[i].name})
			}
			continue
		}
		te, err := a.check(se.Expr, types.Unknown)
		if err != nil {
			return nil, err
		}
		name := se.Alias
		if name == "" {
			name = exprName(se.Expr)
		}
		p.out = append(p.out, te)
		p.cols = append(p.cols, pgwire.Column{Name: name})
	}

	// ORDER BY: an output column by position or name, or an expression
	// over the table.
	a.clause = "ORDER BY"
	for _, o := range s.OrderBy {
		var te texpr
		switch v := o.Expr.(type) {
		case *parser.NumVal:
			n := 0
			if _, err := fmt.Sscan(v.Text, &n); err != nil || v.IsFloat || n < 1 || n > len(p.out) {
				return nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "ORDER BY position %s is not in select list", v.Text)
			}
			te = p.out[n-1]
		case *parser.ColumnRef:
			if len(v.Parts) == 1 {
				// As in PostgreSQL, a bare name matching an output column
				// (an alias) means that column.
				for i, c := range p.cols {
					if c.Name == v.Parts[0] {
						te = p.out[i]
						break
					}
				}
			}
		}
		if te == nil {
			var err error
			if te, err = a.check(o.Expr, types.Unknown); err != nil {
				return nil, err
			}
		}
		p.order = append(p.order, orderItem{e: te, desc: o.Desc})
	}
	p.aggs = a.aggs
	if len(p.aggs) > 0 {
		for _, x := range append(append([]texpr{}, p.out...), orderExprs(p.order)...) {
			var bad *colExpr
			walkTexpr(x, func(y texpr) {
				if c, ok := y.(*colExpr); ok && bad == nil {
					bad = c
				}
			})
			if bad != nil {
				return nil, pgerror.WithHintf(pgerror.Newf(codeGroupingError,
					"column %q must appear in the GROUP BY clause or be used in an aggregate function", bad.name),
					"kvnode has no GROUP BY yet; aggregate every column, for example count(*) or max(%s)", bad.name)
			}
		}
		p.order = nil // one output row: nothing to sort
	}

	// LIMIT and OFFSET.
	a.clause = "LIMIT"
	a.allowAggs = false
	a.noCols = true
	var err error
	if p.limit, err = checkCount(a, s.Limit, "LIMIT"); err != nil {
		return nil, err
	}
	a.clause = "OFFSET"
	if p.offset, err = checkCount(a, s.Offset, "OFFSET"); err != nil {
		return nil, err
	}

	if p.ti != nil && len(p.aggs) == 0 {
		p.scan = choosePlan(p.ti.pk, pkTypes(p.ti), p.filter, p.order)
	} else if p.ti != nil {
		p.scan = choosePlan(p.ti.pk, pkTypes(p.ti), p.filter, nil)
	}
	return p, nil
}

// finishColumns fills in the result column types once the placeholders'
// types are final (SELECT $1 is STRING only after inference is done).
func (p *selectPlan) finishColumns() {
	for i := range p.cols {
		t := p.out[i].typ()
		if t == types.Unknown {
			t = types.String
		}
		p.cols[i].Type = t
	}
}

func orderExprs(items []orderItem) []texpr {
	out := make([]texpr, len(items))
	for i, o := range items {
		out[i] = o.e
	}
	return out
}

func pkTypes(ti *tableInfo) []types.T {
	out := make([]types.T, len(ti.pk))
	for i, idx := range ti.pk {
		out[i] = ti.cols[idx].Type
	}
	return out
}

// checkCount type-checks a LIMIT or OFFSET expression: an INT8 that does
// not depend on rows.
func checkCount(a *analyzer, e parser.Expr, what string) (texpr, error) {
	if e == nil {
		return nil, nil
	}
	te, err := a.check(e, types.Int)
	if err != nil {
		return nil, err
	}
	if t := te.typ(); t != types.Int && t != types.Unknown {
		return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "argument of %s must be type int, not type %s", what, typeName(t))
	}
	return te, nil
}

// evalCount evaluates LIMIT or OFFSET; -1 means none.
func evalCount(ec *evalCtx, e texpr, what, code string) (int64, error) {
	if e == nil {
		return -1, nil
	}
	d, err := ec.eval(e)
	if err != nil || d == nil {
		return -1, err
	}
	n, ok := d.(int64)
	if !ok {
		return 0, errors.AssertionFailedf("%s of type %T", what, d)
	}
	if n < 0 {
		return 0, pgerror.Newf(code, "%s must not be negative", what)
	}
	return n, nil
}

func (p *selectPlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	limit, err := evalCount(ec, p.limit, "LIMIT", "2201W")
	if err != nil {
		return pgwire.Result{}, err
	}
	offset, err := evalCount(ec, p.offset, "OFFSET", "2201X")
	if err != nil {
		return pgwire.Result{}, err
	}

	// Source rows.
	var input [][]types.Datum
	switch {
	case p.ti != nil:
		scanLimit := 0
		if p.scan.exact && p.scan.orderDone && len(p.aggs) == 0 && limit >= 0 {
			// Every row read is a result row, in result order: read only
			// as many as the LIMIT (and OFFSET) need.
			n := limit
			if offset > 0 {
				n += offset
			}
			if n == 0 {
				return p.result(nil), nil
			}
			if n > 0 && n < 1<<30 {
				scanLimit = int(n)
			}
		}
		rows, err := p.e.readRows(ec, p.ti, &p.scan, scanLimit)
		if err != nil {
			return pgwire.Result{}, err
		}
		input = make([][]types.Datum, len(rows))
		for i := range rows {
			input[i] = rows[i].row
		}
	case p.vt != nil:
		rows, err := p.vt.rows(ctx)
		if err != nil {
			return pgwire.Result{}, errors.Wrapf(err, "reading %s", p.vt.name)
		}
		// The rows come from another layer: check them here, where the
		// error names the table, rather than let a bad datum reach the
		// wire encoder.
		for _, r := range rows {
			if len(r) != len(p.vt.cols) {
				return pgwire.Result{}, errors.AssertionFailedf("virtual table %s returned a row of %d columns, want %d", p.vt.name, len(r), len(p.vt.cols))
			}
			for i, d := range r {
				if d != nil && !p.vt.cols[i].Type.IsArray() && types.TypeOf(d) != p.vt.cols[i].Type {
					return pgwire.Result{}, errors.AssertionFailedf("virtual table %s column %s: a %T value in a %s column",
						p.vt.name, p.vt.cols[i].Name, d, p.vt.cols[i].Type)
				}
			}
		}
		input = rows
	default:
		input = [][]types.Datum{nil}
	}

	// Filter.
	filtered := input[:0:0]
	for _, r := range input {
		ec.row = r
		ok, err := ec.evalTrue(p.filter)
		if err != nil {
			return pgwire.Result{}, err
		}
		if ok {
			filtered = append(filtered, r)
		}
	}

	if len(p.aggs) > 0 {
		states := make([]aggState, len(p.aggs))
		for i := range states {
			states[i].agg = p.aggs[i]
		}
		for _, r := range filtered {
			ec.row = r
			for i := range states {
				if err := states[i].add(ec); err != nil {
					return pgwire.Result{}, err
				}
			}
		}
		ec.aggs = make([]types.Datum, len(states))
		for i := range states {
			ec.aggs[i] = states[i].result()
		}
		filtered = [][]types.Datum{nil}
	}

	if len(p.order) > 0 && !(p.ti != nil && p.scan.orderDone) {
		if err := sortRows(ec, filtered, p.order); err != nil {
			return pgwire.Result{}, err
		}
	}
	if offset > 0 {
		if offset >= int64(len(filtered)) {
			filtered = nil
		} else {
			filtered = filtered[offset:]
		}
	}
	if limit >= 0 && limit < int64(len(filtered)) {
		filtered = filtered[:limit]
	}
	out := make([][]types.Datum, 0, len(filtered))
	for _, r := range filtered {
		row, err := project(ec, r, p.out)
		if err != nil {
			return pgwire.Result{}, err
		}
		out = append(out, row)
	}
	return p.result(out), nil
}

func (p *selectPlan) result(rows [][]types.Datum) pgwire.Result {
	return pgwire.Result{Rows: rows, Tag: fmt.Sprintf("SELECT %d", len(rows))}
}

func project(ec *evalCtx, r []types.Datum, exprs []texpr) ([]types.Datum, error) {
	ec.row = r
	out := make([]types.Datum, len(exprs))
	for i, x := range exprs {
		d, err := ec.eval(x)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// sortRows sorts rows by the ORDER BY items, stably, with NULLs last in
// ascending order and first in descending order, as in PostgreSQL.
func sortRows(ec *evalCtx, rows [][]types.Datum, order []orderItem) error {
	keys := make([][]types.Datum, len(rows))
	for i, r := range rows {
		ec.row = r
		k := make([]types.Datum, len(order))
		for j, o := range order {
			d, err := ec.eval(o.e)
			if err != nil {
				return err
			}
			k[j] = d
		}
		keys[i] = k
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	var sortErr error
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		for j, o := range order {
			x, y := ka[j], kb[j]
			var c int
			switch {
			case x == nil && y == nil:
				c = 0
			case x == nil || y == nil:
				// NULLs sort as larger than any value (last ascending,
				// first descending) unless NULLS FIRST/LAST says.
				nullFirst := o.desc
				switch o.nulls {
				case parser.NullsFirst:
					nullFirst = true
				case parser.NullsLast:
					nullFirst = false
				}
				c = 1
				if nullFirst {
					c = -1
				}
				if y == nil {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			default:
				var err error
				if c, err = compareDatums(x, y); err != nil && sortErr == nil {
					sortErr = err
				}
				if o.desc {
					c = -c
				}
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	if sortErr != nil {
		return sortErr
	}
	sorted := make([][]types.Datum, len(rows))
	for i, j := range idx {
		sorted[i] = rows[j]
	}
	copy(rows, sorted)
	return nil
}
