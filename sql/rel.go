package sql

import (
	"context"
	"fmt"
	"github.com/cockroachdb/apd/v3"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// The relational operators of the query pipeline (query.go builds them).
// Each operator is a unit: it reads its inputs' rows and returns its own,
// materialized, and describes itself for EXPLAIN. Expressions inside an
// operator are evaluated on the operator's input row; the rows of scans and
// joins are the concatenation of their tables' columns, so an expression
// built against a FROM clause's scope evaluates unchanged above the joins,
// filters and the grouping operator (which appends the aggregates).

// relNode is a logical plan operator.
type relNode interface {
	// width is the number of columns of the rows it returns.
	width() int
	// run returns all rows. ec carries the parameters and, in a
	// correlated subquery, the enclosing rows.
	run(ec *evalCtx) ([][]types.Datum, error)
	// explain writes one line per operator, children indented.
	explain(w *explainWriter)
}

// explainWriter collects EXPLAIN lines with indentation.
type explainWriter struct {
	lines []string
	depth int
}

func (w *explainWriter) add(format string, args ...any) {
	w.lines = append(w.lines, strings.Repeat("  ", w.depth)+fmt.Sprintf(format, args...))
}

func (w *explainWriter) child(n relNode) {
	w.depth++
	n.explain(w)
	w.depth--
}

// rowCtx returns the evaluation context for the rows of one operator. It
// is the caller's own: operators are materialized, so an operator's inputs
// have finished running before it sets the current row, and nothing reads
// the row after it returns (a subquery copies the rows it reads into its
// own context).
func rowCtx(ec *evalCtx) *evalCtx { return ec }

// ---- leaves ----

// oneRowNode is the FROM-less SELECT's single empty row.
type oneRowNode struct{}

func (n *oneRowNode) width() int                            { return 0 }
func (n *oneRowNode) run(*evalCtx) ([][]types.Datum, error) { return [][]types.Datum{{}}, nil }
func (n *oneRowNode) explain(w *explainWriter)              { w.add("one row") }

// tableScanNode reads a user table, by the access path choosePlan picked
// from the filter pushed down to it and the order asked of it. When the
// scan is exact and in order, the query's LIMIT (+OFFSET) is pushed into
// it: it reads no more rows than the result needs.
type tableScanNode struct {
	e      *Executor
	ti     *tableInfo
	alias  string
	filter texpr       // on the table's row; nil: none
	order  []orderItem // on the table's row; nil: any order
	scan   scanPlan
	// limit and offset, when set, are the query's, pushed down.
	limit, offset texpr
	// need, when set, names the columns the plan reads (pruneColumns);
	// the others are not decoded and read as NULL.
	need []bool
}

func newTableScan(e *Executor, ti *tableInfo, alias string, filter texpr, order []orderItem) *tableScanNode {
	return &tableScanNode{e: e, ti: ti, alias: alias, filter: filter, order: order,
		scan: planScan(ti, filter, order)}
}

// limitPushable reports whether the scan's rows are exactly the result's,
// in the result's order, so a LIMIT can stop the read.
func (n *tableScanNode) limitPushable() bool { return n.scan.exact && n.scan.orderDone }

func (n *tableScanNode) width() int { return len(n.ti.cols) }
func (n *tableScanNode) run(ec *evalCtx) ([][]types.Datum, error) {
	return collectRows(ec, n, n.width())
}

// stream implements rowStreamer: the rows read, filtered unless the key
// lookup enforces the filter.
func (n *tableScanNode) stream(ec *evalCtx, fn func(row []types.Datum) error) error {
	return n.streamIn(ec, false, fn)
}

// streamBorrowed implements borrowStreamer.
func (n *tableScanNode) streamBorrowed(ec *evalCtx, fn func(row []types.Datum) error) error {
	return n.streamIn(ec, true, fn)
}

func (n *tableScanNode) streamIn(ec *evalCtx, borrow bool, fn func(row []types.Datum) error) error {
	rc := rowCtx(ec)
	scanLimit := 0
	if n.limit != nil || n.offset != nil {
		limit, err := evalCount(rc, n.limit, "LIMIT", "2201W")
		if err != nil {
			return err
		}
		offset, err := evalCount(rc, n.offset, "OFFSET", "2201X")
		if err != nil {
			return err
		}
		if limit >= 0 {
			total := limit
			if offset > 0 {
				total += offset
			}
			if total == 0 {
				return nil
			}
			if total > 0 && total < 1<<30 {
				scanLimit = int(total)
			}
		}
	}
	filter := n.filter
	if n.scan.exact {
		filter = nil
	}
	if filter == nil {
		return n.e.scanStream(rc, n.ti, &n.scan, scanLimit, n.need, borrow, fn)
	}
	return n.e.scanStream(rc, n.ti, &n.scan, scanLimit, n.need, borrow, func(row []types.Datum) error {
		if filter != nil {
			rc.row = row
			ok, err := rc.evalTrue(filter)
			if err != nil || !ok {
				return err
			}
		}
		return fn(row)
	})
}
func (n *tableScanNode) explain(w *explainWriter) {
	name := quoteName(n.ti.desc.Name)
	if n.alias != "" && n.alias != n.ti.desc.Name {
		name += " AS " + quoteName(n.alias)
	}
	on, key := scanOn(n.ti, &n.scan)
	switch n.scan.kind {
	case scanPoint:
		w.add("scan %s: point lookup on %s", name, on)
	case scanPoints:
		w.add("scan %s: %d point lookups on %s", name, len(n.scan.in), on)
	case scanRange:
		w.add("scan %s: range scan on %s", name, on)
		if len(n.scan.eq) > 0 {
			w.add("  fixed key columns: %s", strings.Join(key[:len(n.scan.eq)], ", "))
		}
		if len(n.scan.lower)+len(n.scan.upper) > 0 {
			w.add("  bounded key column: %s", key[len(n.scan.eq)])
		}
	default:
		w.add("scan %s: full scan", name)
	}
	switch {
	case n.filter == nil:
	case n.scan.exact:
		w.add("  filter: none needed (the key lookup enforces the WHERE)")
	default:
		w.add("  filter: applied to each row read")
	}
	if len(n.order) > 0 && n.scan.orderDone {
		dir := "forward"
		if n.scan.reverse {
			dir = "reverse"
		}
		w.add("  order: key order (%s scan), no sort", dir)
	}
	if n.limit != nil || n.offset != nil {
		w.add("  limit: pushed into the scan")
	}
}

// virtualScanNode reads a virtual table (pg_catalog, crdb_internal, ...).
type virtualScanNode struct {
	vt     *virtualTable
	filter texpr
	// key, when set, is the value of the column keyCol that a conjunct of
	// filter (keyCol = key) requires, key reading nothing of the row: a
	// catalog table (vt.catalogRows) then reads only the rows with that
	// value, from its index, and applies the filter to them.
	keyCol int
	key    texpr
}

// newVirtualScan is a scan of vt with filter, using the index of a catalog
// table when the filter fixes one of its integer columns (an OID).
func newVirtualScan(vt *virtualTable, filter texpr) *virtualScanNode {
	n := &virtualScanNode{vt: vt, filter: filter}
	if vt.catalogRows == nil {
		return n
	}
	for _, c := range conjuncts(filter) {
		cmp, ok := c.(*cmpExpr)
		if !ok || cmp.op != parser.CmpEQ {
			continue
		}
		for _, side := range [2][2]texpr{{cmp.l, cmp.r}, {cmp.r, cmp.l}} {
			col, ok := side[0].(*colExpr)
			if ok && vt.cols[col.idx].Type == types.Int && readsNoRow(side[1]) {
				n.keyCol, n.key = col.idx, side[1]
				return n
			}
		}
	}
	return n
}

// readsNoRow reports whether e is the same for every row of the operator
// evaluating it: it reads no column of the row (an outer query's are
// fine), runs no subquery and calls no volatile function.
func readsNoRow(e texpr) bool {
	ok := true
	walkTexpr(e, func(x texpr) {
		switch v := x.(type) {
		case *colExpr, *subqueryExpr, *aggRef:
			ok = false
		case *funcExpr:
			if v.fn.volatile {
				ok = false
			}
		}
	})
	return ok
}

func (n *virtualScanNode) width() int { return len(n.vt.cols) }
func (n *virtualScanNode) run(ec *evalCtx) ([][]types.Datum, error) {
	// A virtual table is computed once per execution, however many times
	// a correlated subquery reads it; the catalog tables share the
	// execution's catalog snapshot, and their rows are computed once per
	// catalog version.
	st := ec.state()
	if n.vt.catalogRows != nil {
		cr, err := n.vt.catalogRows(context.WithValue(ec.ctx, stmtKey{}, st))
		if err != nil {
			return nil, errors.Wrapf(err, "reading %s", n.vt.name)
		}
		rows := cr.rows
		if n.key != nil {
			d, err := rowCtx(ec).eval(n.key)
			if err != nil {
				return nil, err
			}
			switch v := d.(type) {
			case nil:
				return nil, nil // col = NULL is never true
			case int64:
				idx := cr.index(n.keyCol)[v]
				rows = make([][]types.Datum, len(idx))
				for i, ri := range idx {
					rows[i] = cr.rows[ri]
				}
			}
		}
		if n.filter == nil {
			// The caller's own slice of the shared rows (operators may
			// reorder it; the rows themselves are never modified).
			return append([][]types.Datum(nil), rows...), nil
		}
		return filterRows(rowCtx(ec), rows, n.filter)
	}
	if rows, ok := st.virtRows[n.vt]; ok {
		if n.filter == nil {
			return rows, nil
		}
		return filterRows(rowCtx(ec), rows, n.filter)
	}
	rows, err := n.vt.rows(context.WithValue(ec.ctx, stmtKey{}, st))
	if err != nil {
		return nil, errors.Wrapf(err, "reading %s", n.vt.name)
	}
	if err := checkVirtualRows(n.vt, rows); err != nil {
		return nil, err
	}
	if st.virtRows == nil {
		st.virtRows = map[*virtualTable][][]types.Datum{}
	}
	st.virtRows[n.vt] = rows
	if n.filter == nil {
		return rows, nil
	}
	return filterRows(rowCtx(ec), rows, n.filter)
}

// checkVirtualRows checks the rows another layer computed for a virtual
// table here, where the error names the table, rather than let a bad datum
// reach the wire encoder.
func checkVirtualRows(vt *virtualTable, rows [][]types.Datum) error {
	for _, r := range rows {
		if len(r) != len(vt.cols) {
			return errors.AssertionFailedf("virtual table %s returned a row of %d columns, want %d", vt.name, len(r), len(vt.cols))
		}
		for i, d := range r {
			if !types.Fits(d, vt.cols[i].Type) {
				return errors.AssertionFailedf("virtual table %s column %s: a %T value in a %s column",
					vt.name, vt.cols[i].Name, d, vt.cols[i].Type)
			}
		}
	}
	return nil
}

func (n *virtualScanNode) explain(w *explainWriter) {
	if n.vt.catalogRows != nil {
		w.add("virtual table %s: rows of the catalog version", n.vt.name)
		if n.key != nil {
			w.add("  index lookup on %s", n.vt.cols[n.keyCol].Name)
		}
	} else {
		w.add("virtual table %s: all rows computed", n.vt.name)
	}
	if n.filter != nil {
		w.add("  filter: applied to each row")
	}
}

func filterRows(rc *evalCtx, rows [][]types.Datum, cond texpr) ([][]types.Datum, error) {
	out := rows[:0:0]
	for _, r := range rows {
		rc.row = r
		ok, err := rc.evalTrue(cond)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// ---- row operators ----

// filterNode keeps the rows on which cond is true.
type filterNode struct {
	in   relNode
	cond texpr
}

func (n *filterNode) width() int { return n.in.width() }
func (n *filterNode) run(ec *evalCtx) ([][]types.Datum, error) {
	if _, ok := n.in.(rowStreamer); ok {
		return collectRows(ec, n, n.width())
	}
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	return filterRows(rowCtx(ec), rows, n.cond)
}

// stream implements rowStreamer: the input's rows on which cond is true.
func (n *filterNode) stream(ec *evalCtx, fn func(row []types.Datum) error) error {
	return n.streamIn(ec, streamRows, fn)
}

// streamBorrowed implements borrowStreamer: a filter keeps nothing.
func (n *filterNode) streamBorrowed(ec *evalCtx, fn func(row []types.Datum) error) error {
	return n.streamIn(ec, streamBorrowedRows, fn)
}

func (n *filterNode) streamIn(ec *evalCtx, in func(*evalCtx, relNode, func([]types.Datum) error) error, fn func(row []types.Datum) error) error {
	rc := rowCtx(ec)
	return in(ec, n.in, func(row []types.Datum) error {
		rc.row = row
		ok, err := rc.evalTrue(n.cond)
		if err != nil || !ok {
			return err
		}
		return fn(row)
	})
}
func (n *filterNode) explain(w *explainWriter) {
	w.add("filter")
	w.child(n.in)
}

// projectNode computes exprs on each input row.
type projectNode struct {
	in    relNode
	exprs []texpr
}

func (n *projectNode) width() int { return len(n.exprs) }
func (n *projectNode) run(ec *evalCtx) ([][]types.Datum, error) {
	pr := &projectRun{n: n, rc: rowCtx(ec), alloc: rowAlloc{w: len(n.exprs)}}
	pr.out = pr.first[:0]
	if err := streamRows(ec, n.in, pr.add); err != nil {
		return nil, err
	}
	return pr.out, nil
}

// projectRun collects a projectNode's rows: one allocation for its state,
// the first row's slot among them (a point read returns one row).
type projectRun struct {
	n     *projectNode
	rc    *evalCtx
	alloc rowAlloc
	out   [][]types.Datum
	first [1][]types.Datum
}

func (pr *projectRun) add(r []types.Datum) error {
	row := pr.alloc.newRow()
	if err := pr.n.project(pr.rc, r, row); err != nil {
		return err
	}
	pr.out = append(pr.out, row)
	return nil
}

// stream implements rowStreamer: each input row's values, computed into
// one reused row.
func (n *projectNode) stream(ec *evalCtx, fn func(row []types.Datum) error) error {
	rc := rowCtx(ec)
	row := make([]types.Datum, len(n.exprs))
	return streamRows(ec, n.in, func(r []types.Datum) error {
		if err := n.project(rc, r, row); err != nil {
			return err
		}
		return fn(row)
	})
}

// project computes the expressions over input row r into row.
func (n *projectNode) project(rc *evalCtx, r, row []types.Datum) error {
	rc.row = r
	for i, x := range n.exprs {
		d, err := rc.eval(x)
		if err != nil {
			return err
		}
		row[i] = d
	}
	return nil
}

func (n *projectNode) explain(w *explainWriter) {
	w.add("project: %d columns", len(n.exprs))
	w.child(n.in)
}

// joinNode joins two inputs. With equality keys it is a hash join: the
// right input is hashed on eqRight, each left row probes with eqLeft. The
// residual condition is evaluated on the joined row. Outer joins pad the
// unmatched side with NULLs.
type joinNode struct {
	kind        parser.JoinKind
	left, right relNode
	eqLeft      []texpr // on the left row
	eqRight     []texpr // on the right row
	cond        texpr   // on the joined row; nil: none
	// lookup, when set, is the right table's primary key as expressions
	// on the left row: with few left rows, each is joined by a point
	// lookup instead of reading the whole right table.
	lookup *lookupJoin
	// out, when set, lists the columns of the joined row (left's, then
	// right's) that the join emits, in order: the ones read above it
	// (pruneColumns). nil: all of them.
	out []int
}

// lookupJoin is how a join reaches its right table by primary key.
type lookupJoin struct {
	scan *tableScanNode
	keys []texpr // on the left row, one per key column in key order
	// eqs are the join's equalities on the joined row, re-checked on
	// each row found.
	eqs []texpr
}

// lookupJoinMaxRows is the number of left rows up to which a join whose
// equalities fix the right table's primary key looks each one up, rather
// than reading the right table whole for a hash join.
const lookupJoinMaxRows = 1000

// planLookup sets the join's lookup when its equalities fix the whole
// primary key of a user table on the right, each with the key column's
// exact type, and the join keeps only matched right rows (inner, left).
func (n *joinNode) planLookup() {
	scan, ok := n.right.(*tableScanNode)
	if !ok || (n.kind != parser.JoinInner && n.kind != parser.JoinLeft) {
		return
	}
	keys := make([]texpr, len(scan.ti.pk))
	for i, r := range n.eqRight {
		c, ok := r.(*colExpr)
		if !ok {
			continue
		}
		for k, pos := range scan.ti.pk {
			if pos == c.idx && keys[k] == nil && n.eqLeft[i].typ() == scan.ti.cols[pos].Type {
				keys[k] = n.eqLeft[i]
			}
		}
	}
	for _, k := range keys {
		if k == nil {
			return
		}
	}
	lw := n.left.width()
	eqs := make([]texpr, len(n.eqLeft))
	for i := range n.eqLeft {
		eqs[i] = &cmpExpr{op: parser.CmpEQ, l: n.eqLeft[i], r: shiftCols(n.eqRight[i], lw)}
	}
	n.lookup = &lookupJoin{scan: scan, keys: keys, eqs: eqs}
}

func (n *joinNode) width() int {
	if n.out != nil {
		return len(n.out)
	}
	return n.left.width() + n.right.width()
}

// emit returns the join's row for the left row l and the right row r (nil:
// that side is padded with NULLs), carved from a (of the join's width).
func (n *joinNode) emit(a *rowAlloc, l, r []types.Datum) []types.Datum {
	row := a.newRow()
	lw := n.left.width()
	if n.out == nil {
		copy(row, l)
		copy(row[lw:], r)
		return row
	}
	for i, c := range n.out {
		switch {
		case c < lw:
			if l != nil {
				row[i] = l[c]
			}
		case r != nil:
			row[i] = r[c-lw]
		}
	}
	return row
}

// appendHashKey appends the join key of row (exprs evaluated on it) to
// key; ok is false when a key value is NULL, which never joins.
func appendHashKey(rc *evalCtx, key []byte, row []types.Datum, exprs []texpr) ([]byte, bool, error) {
	rc.row = row
	for _, x := range exprs {
		d, err := rc.eval(x)
		if err != nil {
			return nil, false, err
		}
		if d == nil {
			return nil, false, nil // NULL never joins
		}
		if f, ok := d.(float64); ok && f == 0 {
			d = float64(0) // -0 = +0
		}
		if key, err = rowenc.AppendKey(key, types.TypeOf(d), d); err != nil {
			return nil, false, err
		}
	}
	return key, true, nil
}

func (n *joinNode) run(ec *evalCtx) ([][]types.Datum, error) {
	lrows, err := n.left.run(ec)
	if err != nil {
		return nil, err
	}
	if n.lookup != nil && len(lrows) <= lookupJoinMaxRows {
		return n.runLookup(ec, lrows)
	}
	if right, k := n.catalogIndexKey(); right != nil {
		return n.runIndexJoin(ec, lrows, right, k)
	}
	rrows, err := n.right.run(ec)
	if err != nil {
		return nil, err
	}
	lw, rw := n.left.width(), n.right.width()
	rc := rowCtx(ec)
	var table map[string][]int
	if len(n.eqLeft) > 0 {
		table = make(map[string][]int, len(rrows))
		var k []byte
		for i, r := range rrows {
			var ok bool
			if k, ok, err = appendHashKey(rc, k[:0], r, n.eqRight); err != nil {
				return nil, err
			}
			if ok {
				table[string(k)] = append(table[string(k)], i)
			}
		}
	}
	rightMatched := make([]bool, len(rrows))
	var out [][]types.Datum
	alloc := rowAlloc{w: n.width()}
	scratch := make([]types.Datum, lw+rw) // the joined row the condition reads
	all := make([]int, len(rrows))
	for i := range all {
		all[i] = i
	}
	var probe []byte
	for _, l := range lrows {
		candidates := all
		if table != nil {
			var ok bool
			if probe, ok, err = appendHashKey(rc, probe[:0], l, n.eqLeft); err != nil {
				return nil, err
			}
			candidates = nil
			if ok {
				candidates = table[string(probe)]
			}
		}
		matched := false
		if n.cond != nil && len(candidates) > 0 {
			copy(scratch, l)
		}
		for _, ri := range candidates {
			if n.cond != nil {
				copy(scratch[lw:], rrows[ri])
				rc.row = scratch
				ok, err := rc.evalTrue(n.cond)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
			}
			matched = true
			rightMatched[ri] = true
			out = append(out, n.emit(&alloc, l, rrows[ri]))
		}
		if !matched && (n.kind == parser.JoinLeft || n.kind == parser.JoinFull) {
			out = append(out, n.emit(&alloc, l, nil))
		}
	}
	if n.kind == parser.JoinRight || n.kind == parser.JoinFull {
		for i, r := range rrows {
			if !rightMatched[i] {
				out = append(out, n.emit(&alloc, nil, r))
			}
		}
	}
	return out, nil
}

// runLookup joins each left row to the right table's row with the key the
// left row computes: the keys of all left rows are read in one batch
// (lookupRows), each distinct key once. The other equalities, the right
// table's own filter and the residual condition are checked on the rows
// found.
func (n *joinNode) runLookup(ec *evalCtx, lrows [][]types.Datum) ([][]types.Datum, error) {
	rc := rowCtx(ec)
	lw, rw := n.left.width(), n.right.width()
	scan := n.lookup.scan
	point := &scanPlan{kind: scanPoint, eq: n.lookup.keys}
	keys := make([][]byte, len(lrows))
	for i, l := range lrows {
		rc.row = l
		k, _, empty, err := point.keySpan(rc, scan.ti)
		if err != nil {
			return nil, err
		}
		if !empty {
			keys[i] = k
		}
	}
	found, err := scan.e.lookupRows(rc, scan.ti, keys, scan.need)
	if err != nil {
		return nil, err
	}
	alloc := rowAlloc{w: n.width()}
	scratch := make([]types.Datum, lw+rw) // the joined row the conditions read
	var out [][]types.Datum
	for i, l := range lrows {
		matched := false
		if r := found[i]; r != nil {
			rc.row = r
			ok, err := rc.evalTrue(scan.filter)
			if err != nil {
				return nil, err
			}
			if ok {
				copy(scratch, l)
				copy(scratch[lw:], r)
				rc.row = scratch
				for _, eq := range n.lookup.eqs {
					if ok, err = rc.evalTrue(eq); err != nil || !ok {
						break
					}
				}
				if err != nil {
					return nil, err
				}
				if ok {
					if ok, err = rc.evalTrue(n.cond); err != nil {
						return nil, err
					}
				}
				if ok {
					matched = true
					out = append(out, n.emit(&alloc, l, r))
				}
			}
		}
		if !matched && n.kind == parser.JoinLeft {
			out = append(out, n.emit(&alloc, l, nil))
		}
	}
	return out, nil
}

// catalogIndexKey returns the right input and the position of the
// equality key when the join can probe a catalog table's index instead of
// hashing its rows: an inner or left join whose right input is a catalog
// table (rows computed once per catalog version, vt.catalogRows) and one of
// whose equalities is an integer column of it (an OID) against an integer
// of the left row.
func (n *joinNode) catalogIndexKey() (*virtualScanNode, int) {
	right, ok := n.right.(*virtualScanNode)
	if !ok || right.vt.catalogRows == nil || (n.kind != parser.JoinInner && n.kind != parser.JoinLeft) {
		return nil, 0
	}
	for i, r := range n.eqRight {
		if c, ok := r.(*colExpr); ok && right.vt.cols[c.idx].Type == types.Int && n.eqLeft[i].typ() == types.Int {
			return right, i
		}
	}
	return nil, 0
}

// runIndexJoin joins each left row to the rows of a catalog table that its
// k-th equality key selects in the table's index (kept with the rows, per
// catalog version), instead of hashing the whole table for every
// execution; the right side's filter, the other equalities and the
// residual condition are checked on the rows found.
func (n *joinNode) runIndexJoin(ec *evalCtx, lrows [][]types.Datum, right *virtualScanNode, k int) ([][]types.Datum, error) {
	cr, err := right.vt.catalogRows(context.WithValue(ec.ctx, stmtKey{}, ec.state()))
	if err != nil {
		return nil, errors.Wrapf(err, "reading %s", right.vt.name)
	}
	index := cr.index(n.eqRight[k].(*colExpr).idx)
	rc := rowCtx(ec)
	lw, rw := n.left.width(), n.right.width()
	conds := make([]texpr, 0, len(n.eqLeft)+1)
	for i := range n.eqLeft {
		if i != k {
			conds = append(conds, &cmpExpr{op: parser.CmpEQ, l: n.eqLeft[i], r: shiftCols(n.eqRight[i], lw)})
		}
	}
	if n.cond != nil {
		conds = append(conds, n.cond)
	}
	cond := andAll(conds)
	var out [][]types.Datum
	alloc := rowAlloc{w: n.width()}
	scratch := make([]types.Datum, lw+rw) // the joined row the conditions read
	for _, l := range lrows {
		rc.row = l
		d, err := rc.eval(n.eqLeft[k])
		if err != nil {
			return nil, err
		}
		matched := false
		if v, ok := d.(int64); ok {
			copy(scratch, l)
			for _, ri := range index[v] {
				r := cr.rows[ri]
				rc.row = r
				if ok, err := rc.evalTrue(right.filter); err != nil || !ok {
					if err != nil {
						return nil, err
					}
					continue
				}
				if cond != nil {
					copy(scratch[lw:], r)
					rc.row = scratch
					ok, err := rc.evalTrue(cond)
					if err != nil {
						return nil, err
					}
					if !ok {
						continue
					}
				}
				matched = true
				out = append(out, n.emit(&alloc, l, r))
			}
		} else if d != nil {
			return nil, errors.AssertionFailedf("join key %T on an integer column", d)
		}
		if !matched && n.kind == parser.JoinLeft {
			out = append(out, n.emit(&alloc, l, nil))
		}
	}
	return out, nil
}

func (n *joinNode) explain(w *explainWriter) {
	kind := map[parser.JoinKind]string{parser.JoinInner: "inner", parser.JoinLeft: "left outer",
		parser.JoinRight: "right outer", parser.JoinFull: "full outer", parser.JoinCross: "cross"}[n.kind]
	switch {
	case n.lookup != nil:
		w.add("lookup join (%s) on the primary key of %s, or hash join on %d equality key(s) beyond %d left rows",
			kind, quoteName(n.lookup.scan.ti.desc.Name), len(n.eqLeft), lookupJoinMaxRows)
	case len(n.eqLeft) > 0:
		if right, k := n.catalogIndexKey(); right != nil {
			w.add("index join (%s) on %s of %s", kind, right.vt.cols[n.eqRight[k].(*colExpr).idx].Name, right.vt.name)
			break
		}
		w.add("hash join (%s) on %d equality key(s)", kind, len(n.eqLeft))
	default:
		w.add("nested loop join (%s)", kind)
	}
	if n.cond != nil {
		w.add("  condition: applied to each joined row")
	}
	if n.out != nil {
		w.add("  emits %d of %d columns (those read above)", len(n.out), n.left.width()+n.right.width())
	}
	w.child(n.left)
	w.child(n.right)
}

// groupNode groups its input by keys and computes the aggregates of each
// group. Each output row is the group's first input row followed by the
// aggregate results, so expressions over grouping columns evaluate as on
// the input. Without keys there is exactly one group, even over no rows.
type groupNode struct {
	in   relNode
	keys []texpr
	aggs []*aggregate
}

func (n *groupNode) width() int { return n.in.width() + len(n.aggs) }
func (n *groupNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rc := rowCtx(ec)
	type group struct {
		first  []types.Datum
		states []aggState
	}
	var groups []*group
	byKey := map[string]*group{}
	// The input's rows are borrowed (streamBorrowedRows): what a group
	// keeps of them, its first row and its aggregates' values, it copies
	// with keep.
	keep := &keeper{}
	newGroup := func(first []types.Datum) *group {
		g := &group{first: keep.ownRow(first), states: make([]aggState, len(n.aggs))}
		for i := range g.states {
			g.states[i].agg = n.aggs[i]
			g.states[i].keep = keep
		}
		groups = append(groups, g)
		return g
	}
	if len(n.keys) == 0 {
		newGroup(make([]types.Datum, n.in.width()))
	}
	// The input is streamed: a group keeps a copy of its first row, the
	// rows themselves are not held. vals and key are reused for every row
	// (looking a []byte up as a string key does not allocate).
	vals := make([]types.Datum, len(n.keys))
	var key []byte
	// One INT8 key (GROUP BY k % 16) groups by the integer itself, with
	// NULL a group of its own, instead of by its encoding; keys from 0 to
	// 255 index a slice.
	intKey := len(n.keys) == 1 && n.keys[0].typ() == types.Int
	byInt := map[int64]*group{}
	var smallInt []*group
	var keyInt intEval // the INT8 key compiled (groupfast.go), when it can be
	if intKey {
		smallInt = make([]*group, 256)
		keyInt = compileIntExpr(n.keys[0])
	}
	adders := make([]aggAdder, len(n.aggs))
	for i, a := range n.aggs {
		adders[i] = fastAdder(a)
	}
	var nullGroup *group
	err := streamBorrowedRows(ec, n.in, func(r []types.Datum) error {
		var g *group
		switch {
		case len(n.keys) == 0:
			g = groups[0]
		case intKey:
			var v int64
			var null, ok bool
			if keyInt != nil {
				var err error
				if v, null, ok, err = keyInt(r); err != nil {
					return err
				}
			}
			if !ok {
				rc.row = r
				d, err := rc.eval(n.keys[0])
				if err != nil {
					return err
				}
				if null = d == nil; !null {
					if v, ok = d.(int64); !ok {
						return errors.AssertionFailedf("GROUP BY key of type INT8 evaluated to a %T", d)
					}
				}
			}
			if null {
				if nullGroup == nil {
					nullGroup = newGroup(r)
				}
				g = nullGroup
				break
			}
			if v >= 0 && v < int64(len(smallInt)) {
				if g = smallInt[v]; g == nil {
					g = newGroup(r)
					smallInt[v] = g
				}
			} else if g = byInt[v]; g == nil {
				g = newGroup(r)
				byInt[v] = g
			}
		default:
			rc.row = r
			for i, k := range n.keys {
				d, err := rc.eval(k)
				if err != nil {
					return err
				}
				vals[i] = d
			}
			// NULLs group together, unlike in a join.
			var err error
			if key, err = appendRowKey(key[:0], vals); err != nil {
				return err
			}
			g = byKey[string(key)]
			if g == nil {
				g = newGroup(r)
				byKey[string(key)] = g
			}
		}
		rc.row = r
		for i := range g.states {
			if err := adders[i].addRow(&g.states[i], rc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]types.Datum, len(groups))
	for i, g := range groups {
		row := make([]types.Datum, 0, n.width())
		row = append(row, g.first...)
		for j := range g.states {
			if err := g.states[j].sortList(); err != nil {
				return nil, err
			}
			d, err := g.states[j].result()
			if err != nil {
				return nil, err
			}
			row = append(row, d)
		}
		out[i] = row
	}
	return out, nil
}
func (n *groupNode) explain(w *explainWriter) {
	var names []string
	for _, a := range n.aggs {
		names = append(names, a.kind)
	}
	if len(n.keys) == 0 {
		w.add("aggregate: %s over all rows", strings.Join(names, ", "))
	} else {
		w.add("hash group by %d key(s): %s", len(n.keys), strings.Join(names, ", "))
	}
	w.child(n.in)
}

// sortNode sorts by keys (NULLs last ascending, first descending, unless
// the key says otherwise), stably.
type sortNode struct {
	in   relNode
	keys []orderItem
}

func (n *sortNode) width() int { return n.in.width() }
func (n *sortNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	// Sort a copy: the input may be a virtual table's rows, cached for the
	// execution and read again by a subquery while the keys are computed.
	rows = append([][]types.Datum(nil), rows...)
	if err := sortRows(rowCtx(ec), rows, n.keys); err != nil {
		return nil, err
	}
	return rows, nil
}
func (n *sortNode) explain(w *explainWriter) {
	w.add("sort: %d key(s), in memory", len(n.keys))
	w.child(n.in)
}

// distinctNode keeps the first row of each distinct value of its first n
// columns.
type distinctNode struct {
	in relNode
	n  int
}

func (n *distinctNode) width() int { return n.in.width() }
func (n *distinctNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := rows[:0:0]
	for _, r := range rows {
		k, err := rowKey(r[:n.n])
		if err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out, nil
}
func (n *distinctNode) explain(w *explainWriter) {
	w.add("distinct: hash on %d column(s)", n.n)
	w.child(n.in)
}

// rowKey encodes a row so that equal rows (NULL equal to NULL, as DISTINCT
// and UNION compare) get equal keys.
func rowKey(r []types.Datum) (string, error) {
	key, err := appendRowKey(nil, r)
	return string(key), err
}

// appendRowKey appends rowKey's encoding of r to key.
func appendRowKey(key []byte, r []types.Datum) ([]byte, error) {
	for _, d := range r {
		if d == nil {
			key = append(key, 0)
			continue
		}
		key = append(key, 1)
		if a, ok := d.(types.Array); ok {
			key = append(key, types.FormatText(a)...)
			key = append(key, 0)
			continue
		}
		if f, ok := d.(float64); ok && f == 0 {
			d = float64(0)
		}
		var err error
		if key, err = rowenc.AppendKey(key, types.TypeOf(d), d); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// errLimitReached ends the stream a limitNode reads once it has its rows.
var errLimitReached = errors.New("LIMIT reached")

// limitNode applies OFFSET and LIMIT. Over an input that streams its rows
// (rowStreamer) it stops the input once it has them.
type limitNode struct {
	in            relNode
	limit, offset texpr
}

func (n *limitNode) width() int { return n.in.width() }
func (n *limitNode) run(ec *evalCtx) ([][]types.Datum, error) {
	limit, err := evalCount(ec, n.limit, "LIMIT", "2201W")
	if err != nil {
		return nil, err
	}
	offset, err := evalCount(ec, n.offset, "OFFSET", "2201X")
	if err != nil {
		return nil, err
	}
	if s, ok := n.in.(rowStreamer); ok && limit >= 0 {
		// Read no more rows than the result needs.
		if limit == 0 {
			return nil, nil
		}
		alloc := rowAlloc{w: n.width()}
		out := [][]types.Datum{}
		skip := offset
		err := s.stream(ec, func(r []types.Datum) error {
			if skip > 0 {
				skip--
				return nil
			}
			out = append(out, alloc.copyRow(r))
			if int64(len(out)) >= limit {
				return errLimitReached
			}
			return nil
		})
		if err != nil && !errors.Is(err, errLimitReached) {
			return nil, err
		}
		return out, nil
	}
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if offset >= int64(len(rows)) {
			rows = nil
		} else {
			rows = rows[offset:]
		}
	}
	if limit >= 0 && limit < int64(len(rows)) {
		rows = rows[:limit]
	}
	return rows, nil
}
func (n *limitNode) explain(w *explainWriter) {
	w.add("limit/offset")
	w.child(n.in)
}

// setOpNode is UNION, INTERSECT or EXCEPT, with or without ALL.
type setOpNode struct {
	kind        parser.SetOpKind
	all         bool
	left, right relNode
	casts       [2][]types.T // per side: the type each column converts to (Unknown: none)
}

func (n *setOpNode) width() int { return n.left.width() }
func (n *setOpNode) run(ec *evalCtx) ([][]types.Datum, error) {
	lrows, err := n.left.run(ec)
	if err != nil {
		return nil, err
	}
	rrows, err := n.right.run(ec)
	if err != nil {
		return nil, err
	}
	// Inputs may share their rows (a virtual table's, cached for the
	// execution): converted rows are copies.
	sides := [2][][]types.Datum{lrows, rrows}
	for side, rows := range sides {
		casts := n.casts[side]
		needed := false
		for _, t := range casts {
			needed = needed || t != types.Unknown
		}
		if !needed {
			continue
		}
		conv := make([][]types.Datum, len(rows))
		for j, r := range rows {
			r = append([]types.Datum(nil), r...)
			for i, t := range casts {
				if t != types.Unknown && r[i] != nil {
					if r[i], err = castDatum(r[i], t); err != nil {
						return nil, err
					}
				}
			}
			conv[j] = r
		}
		sides[side] = conv
	}
	lrows, rrows = sides[0], sides[1]
	switch n.kind {
	case parser.Union:
		all := append(append([][]types.Datum{}, lrows...), rrows...)
		if n.all {
			return all, nil
		}
		return dedupRows(all)
	}
	counts := map[string]int{}
	for _, r := range rrows {
		k, err := rowKey(r)
		if err != nil {
			return nil, err
		}
		counts[k]++
	}
	var out [][]types.Datum
	emitted := map[string]bool{}
	for _, r := range lrows {
		k, err := rowKey(r)
		if err != nil {
			return nil, err
		}
		inRight := counts[k] > 0
		keep := inRight == (n.kind == parser.Intersect)
		if n.all {
			if inRight {
				counts[k]--
			}
		} else {
			if emitted[k] {
				continue
			}
		}
		if keep {
			emitted[k] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func dedupRows(rows [][]types.Datum) ([][]types.Datum, error) {
	seen := map[string]bool{}
	out := rows[:0:0]
	for _, r := range rows {
		k, err := rowKey(r)
		if err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func (n *setOpNode) explain(w *explainWriter) {
	all := ""
	if n.all {
		all = " ALL"
	}
	w.add("%s%s", n.kind, all)
	w.child(n.left)
	w.child(n.right)
}

// windowFunc is a window function over partitions of the rows, in an
// order: a ranking function (row_number, rank, dense_rank), an aggregate
// (agg), or a value function (lag, lead, first_value, last_value: args).
// Its frame is PostgreSQL's default, RANGE BETWEEN UNBOUNDED PRECEDING AND
// CURRENT ROW: with ORDER BY, the partition's rows up to the current row's
// last peer; without, the whole partition.
type windowFunc struct {
	kind      string
	partition []texpr
	order     []orderItem
	agg       *aggregate // an aggregate over the frame
	args      []texpr    // lag, lead, first_value, last_value
	ref       *colExpr   // where the value is read; its idx is set by the planner
}

// checkWindow type-checks f(...) OVER (PARTITION BY ... ORDER BY ...).
// Frame clauses are refused by the parser with 0A000.
func (a *analyzer) checkWindow(name string, v *parser.FuncCall) (texpr, error) {
	if !a.allowWindows {
		return nil, pgerror.Newf(codeWindowingError, "window functions are not allowed in %s", a.clauseName())
	}
	w := &windowFunc{kind: name}
	a.allowWindows = false // no window function inside another
	defer func() { a.allowWindows = true }()
	switch {
	case name == "row_number" || name == "rank" || name == "dense_rank" || name == "percent_rank" || name == "cume_dist":
		if len(v.Args) > 0 || v.Star || v.Distinct {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "%s takes no arguments", name)
		}
		t := types.Int
		if name == "percent_rank" || name == "cume_dist" {
			t = types.Float // fractions of the partition
		}
		w.ref = &colExpr{t: t, name: name}
	case name == "ntile":
		if len(v.Args) != 1 || v.Star || v.Distinct {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "ntile takes one argument, the number of buckets")
		}
		n, err := a.check(v.Args[0], types.Int)
		if err != nil {
			return nil, err
		}
		if n, err = coerce(n, types.Int, ""); err != nil {
			return nil, err
		}
		w.args = []texpr{n}
		w.ref = &colExpr{t: types.Int, name: name}
	case isAggregateName(name):
		if v.Distinct {
			return nil, unsupported("DISTINCT is not implemented for window functions")
		}
		if len(v.OrderBy) > 0 {
			return nil, unsupported("aggregate ORDER BY is not implemented for window functions")
		}
		// The window node computes it; its arguments are read from the
		// window node's input row (after grouping, when there is one).
		agg, err := a.buildAggregate(name, v, true)
		if err != nil {
			return nil, err
		}
		w.agg = agg
		w.ref = &colExpr{t: agg.t, name: name, mod: agg.mod}
	case name == "lag" || name == "lead" || name == "first_value" || name == "last_value":
		max := 1
		if name == "lag" || name == "lead" {
			max = 3
		}
		if len(v.Args) < 1 || len(v.Args) > max || v.Star || v.Distinct {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "%s takes from 1 to %d arguments", name, max)
		}
		x, err := a.check(v.Args[0], types.Unknown)
		if err != nil {
			return nil, err
		}
		t := hint(x.typ(), types.String)
		if x, err = a.settle(v.Args[0], x, t); err != nil {
			return nil, err
		}
		w.args = []texpr{x}
		if len(v.Args) > 1 {
			off, err := a.check(v.Args[1], types.Int)
			if err != nil {
				return nil, err
			}
			if off, err = coerce(off, types.Int, ""); err != nil {
				return nil, err
			}
			w.args = append(w.args, off)
		}
		if len(v.Args) > 2 {
			def, err := a.check(v.Args[2], t)
			if err != nil {
				return nil, err
			}
			if def, err = coerce(def, t, ""); err != nil {
				return nil, err
			}
			w.args = append(w.args, def)
		}
		w.ref = &colExpr{t: t, name: name}
	default:
		return nil, pgerror.WithHintf(unsupported("window function %s is not supported", name),
			"kvnode's window functions are row_number, rank, dense_rank, percent_rank, cume_dist, ntile, lag, lead, first_value, last_value and the aggregates")
	}
	for _, x := range v.Over.PartitionBy {
		c, err := a.check(x, types.Unknown)
		if err != nil {
			return nil, err
		}
		w.partition = append(w.partition, c)
	}
	for _, o := range v.Over.OrderBy {
		c, err := a.check(o.Expr, types.Unknown)
		if err != nil {
			return nil, err
		}
		w.order = append(w.order, orderItem{e: c, desc: o.Desc, nulls: o.Nulls})
	}
	a.windows = append(a.windows, w)
	return w.ref, nil
}

// windowExprs lists the expressions the window functions read from
// their input row: in a grouped query they may read only the grouping
// keys and the aggregates, like the select list.
func windowExprs(ws []*windowFunc) []texpr {
	var out []texpr
	for _, w := range ws {
		out = append(out, w.partition...)
		for _, o := range w.order {
			out = append(out, o.e)
		}
		out = append(out, w.args...)
		if w.agg != nil {
			out = append(out, w.agg.arg, w.agg.sep, w.agg.filter)
		}
	}
	return out
}

// codeWindowingError is PostgreSQL's windowing_error.
const codeWindowingError = "42P20"

// windowNode computes its window functions over its input and appends one
// column per function, keeping the rows in input order.
type windowNode struct {
	in    relNode
	funcs []*windowFunc
}

func (n *windowNode) width() int { return n.in.width() + len(n.funcs) }
func (n *windowNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	rc := rowCtx(ec)
	out := make([][]types.Datum, len(rows))
	for i, r := range rows {
		out[i] = append(append(make([]types.Datum, 0, n.width()), r...), make([]types.Datum, len(n.funcs))...)
	}
	w0 := n.in.width()
	for fi, f := range n.funcs {
		// Rows of [partition keys..., order keys..., row index].
		np, no := len(f.partition), len(f.order)
		keyed := make([][]types.Datum, len(rows))
		for i, r := range rows {
			rc.row = r
			k := make([]types.Datum, 0, np+no+1)
			for _, x := range f.partition {
				d, err := rc.eval(x)
				if err != nil {
					return nil, err
				}
				k = append(k, d)
			}
			for _, o := range f.order {
				d, err := rc.eval(o.e)
				if err != nil {
					return nil, err
				}
				k = append(k, d)
			}
			keyed[i] = append(k, int64(i))
		}
		order := make([]orderItem, 0, np+no)
		for j := 0; j < np; j++ {
			order = append(order, orderItem{e: &colExpr{idx: j}})
		}
		for j, o := range f.order {
			order = append(order, orderItem{e: &colExpr{idx: np + j}, desc: o.desc, nulls: o.nulls})
		}
		if err := sortRows(&evalCtx{}, keyed, order); err != nil {
			return nil, err
		}
		// Partitions and, in each, groups of peers (rows equal in the
		// ORDER BY keys: the same rank, the same frame end).
		for ps := 0; ps < len(keyed); {
			pk, _ := rowKey(keyed[ps][:np])
			pe := ps + 1
			for ; pe < len(keyed); pe++ {
				if k, _ := rowKey(keyed[pe][:np]); k != pk {
					break
				}
			}
			if err := f.computePartition(rc, rows, keyed[ps:pe], np, no, out, w0+fi); err != nil {
				return nil, err
			}
			ps = pe
		}
	}
	return out, nil
}

// computePartition sets column col of out for the rows of one partition,
// given in the window's order (each keyed row ends with its row's index).
func (f *windowFunc) computePartition(rc *evalCtx, rows [][]types.Datum, part [][]types.Datum, np, no int, out [][]types.Datum, col int) error {
	idx := func(i int) int64 { return part[i][len(part[i])-1].(int64) }
	var state *aggState
	if f.agg != nil {
		state = &aggState{agg: f.agg}
	}
	var rank, dense int64
	for gs := 0; gs < len(part); {
		gk, _ := rowKey(part[gs][np : np+no])
		ge := gs + 1
		for ; ge < len(part); ge++ {
			if k, _ := rowKey(part[ge][np : np+no]); k != gk {
				break
			}
		}
		rank, dense = int64(gs)+1, dense+1
		if state != nil {
			for i := gs; i < ge; i++ {
				rc.row = rows[idx(i)]
				if err := state.add(rc); err != nil {
					return err
				}
			}
		}
		for i := gs; i < ge; i++ {
			var v types.Datum
			switch f.kind {
			case "row_number":
				v = int64(i) + 1
			case "rank":
				v = rank
			case "dense_rank":
				v = dense
			case "percent_rank":
				v = 0.0
				if len(part) > 1 {
					v = float64(rank-1) / float64(len(part)-1)
				}
			case "cume_dist":
				v = float64(ge) / float64(len(part))
			case "ntile":
				var err error
				if v, err = f.ntile(rc, rows[idx(i)], i, len(part)); err != nil {
					return err
				}
			default:
				var err error
				if state != nil {
					// The state goes on accumulating the next peers:
					// a NUMERIC it added into in place is copied.
					v, err = state.result()
					if d, ok := v.(*apd.Decimal); ok {
						v = new(apd.Decimal).Set(d)
					}
				} else {
					v, err = f.valueAt(rc, rows, part, i, ge, idx)
				}
				if err != nil {
					return err
				}
			}
			out[idx(i)][col] = v
		}
		gs = ge
	}
	return nil
}

// ntile is the bucket, from 1, of the row at position i of a partition
// of n rows divided into the number of buckets its argument gives (read
// on the row, as PostgreSQL reads it once per partition: the same unless
// it reads the row), the first n mod buckets one row larger.
func (f *windowFunc) ntile(rc *evalCtx, row []types.Datum, i, n int) (types.Datum, error) {
	rc.row = row
	d, err := rc.eval(f.args[0])
	if err != nil || d == nil {
		return nil, err
	}
	b := d.(int64)
	if b <= 0 {
		return nil, pgerror.Newf(codeInvalidArgumentForNtile, "argument of ntile must be greater than zero")
	}
	if b > int64(n) {
		return int64(i) + 1, nil
	}
	per, extra := int64(n)/b, int64(n)%b
	big := extra * (per + 1) // the rows of the larger buckets
	if int64(i) < big {
		return int64(i)/(per+1) + 1, nil
	}
	return (int64(i)-big)/per + extra + 1, nil
}

// codeInvalidArgumentForNtile is PostgreSQL's
// invalid_argument_for_ntile_function.
const codeInvalidArgumentForNtile = "22014"

// valueAt computes lag, lead, first_value or last_value for the row at
// position i of its partition, whose peers end at ge.
func (f *windowFunc) valueAt(rc *evalCtx, rows [][]types.Datum, part [][]types.Datum, i, ge int, idx func(int) int64) (types.Datum, error) {
	target := 0
	switch f.kind {
	case "first_value":
	case "last_value":
		target = ge - 1
	default: // lag, lead: offset and default are evaluated on the current row
		rc.row = rows[idx(i)]
		off := int64(1)
		if len(f.args) > 1 {
			d, err := rc.eval(f.args[1])
			if err != nil {
				return nil, err
			}
			if d == nil {
				return nil, nil
			}
			off = d.(int64)
		}
		if f.kind == "lag" {
			off = -off
		}
		t := int64(i) + off
		if t < 0 || t >= int64(len(part)) {
			if len(f.args) > 2 {
				return rc.eval(f.args[2])
			}
			return nil, nil
		}
		target = int(t)
	}
	rc.row = rows[idx(target)]
	return rc.eval(f.args[0])
}

func (n *windowNode) explain(w *explainWriter) {
	var names []string
	for _, f := range n.funcs {
		names = append(names, f.kind)
	}
	w.add("window: %s, sorting each partition in memory", strings.Join(names, ", "))
	w.child(n.in)
}
