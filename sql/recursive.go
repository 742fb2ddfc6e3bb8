package sql

import (
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Recursive WITH (PostgreSQL's semantics, section 7.8 of its manual): an
// item of a WITH RECURSIVE list that reads itself has the form
// non-recursive-term UNION [ALL] recursive-term. The non-recursive term
// runs once; its rows are the first working table. The recursive term
// then runs again and again, its reference to the item reading the
// working table, each time on the rows the previous run added, until a
// run adds none. With UNION, rows equal to a row already produced (NULLs
// equal) are dropped, from the non-recursive term's rows as well; with
// UNION ALL every row is kept. The result is every row produced, in the
// order produced.
//
// The item hands its rows on as they are produced (it is a rowStreamer), so
// a LIMIT directly above the query that reads it, with no sort, grouping
// or join between, ends the recursion once it has its rows, as in
// PostgreSQL. Otherwise the item is computed whole: a recursion without a
// termination condition runs until the statement is canceled
// (statement_timeout or a cancel request, checked before every iteration)
// or its rows reach recursiveMaxRows (54000, the hint says how to bound
// it). PostgreSQL has no such bound; it would run until canceled.

// recursiveMaxRows bounds the rows of one recursive WITH item (as
// generate_series is bounded), so that a recursion without an end fails
// with an error instead of exhausting the node's memory.
const recursiveMaxRows = 10_000_000

// codeInvalidRecursion is PostgreSQL's invalid_recursion.
const codeInvalidRecursion = "42P19"

// workTableNode is the recursive term's reference to its own WITH item: the
// rows of the working table of the current iteration (kept in the
// execution's state, so that a plan can be run by any number of executions).
type workTableNode struct {
	name  string
	w     int
	outer *analyzer // the outer scope of the item's query: a reference from deeper is in a subquery
	refs  int       // references planned so far
}

func (n *workTableNode) width() int { return n.w }
func (n *workTableNode) run(ec *evalCtx) ([][]types.Datum, error) {
	// The caller's own slice: operators may reorder it.
	return append([][]types.Datum(nil), ec.state().work[n]...), nil
}
func (n *workTableNode) explain(w *explainWriter) {
	w.add("working table of %s", quoteName(n.name))
}

// recursiveNode computes a recursive WITH item (see above).
type recursiveNode struct {
	name   string
	anchor relNode // the non-recursive term
	rec    relNode // the recursive term, reading work
	work   *workTableNode
	all    bool      // UNION ALL
	casts  []types.T // per column: the type the recursive term's value converts to (Unknown: none)
	// maxRows bounds the rows produced (0: recursiveMaxRows; tests set
	// less).
	maxRows int
}

func (n *recursiveNode) width() int { return n.anchor.width() }

func (n *recursiveNode) run(ec *evalCtx) ([][]types.Datum, error) {
	var out [][]types.Datum
	err := n.iterate(ec, func(row []types.Datum) error {
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// stream implements rowStreamer: the rows in the order they are produced,
// so that a LIMIT above ends the recursion once it has its rows (as
// PostgreSQL evaluates only the rows its reader fetches).
func (n *recursiveNode) stream(ec *evalCtx, fn func(row []types.Datum) error) error {
	return n.iterate(ec, fn)
}

// iterate computes the item, handing fn each row produced (rows it may
// keep) until fn fails, the recursion ends, the statement is canceled or
// the rows reach the bound.
func (n *recursiveNode) iterate(ec *evalCtx, fn func(row []types.Datum) error) error {
	rows, err := n.anchor.run(ec)
	if err != nil {
		return err
	}
	var seen map[string]bool
	if !n.all {
		seen = map[string]bool{}
	}
	// keep returns the rows of batch not produced before (all of them
	// with UNION ALL).
	keep := func(batch [][]types.Datum) ([][]types.Datum, error) {
		if n.all {
			return batch, nil
		}
		out := batch[:0:0]
		for _, r := range batch {
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
	maxRows := n.maxRows
	if maxRows == 0 {
		maxRows = recursiveMaxRows
	}
	produced := 0
	emit := func(batch [][]types.Datum, iteration int) error {
		if produced += len(batch); produced > maxRows {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
				"recursive query %q produced more than %d rows (iteration %d)", n.name, maxRows, iteration),
				"give the recursive term a condition that ends it (WHERE depth < n)")
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	if rows, err = keep(rows); err != nil {
		return err
	}
	if err := emit(rows, 0); err != nil {
		return err
	}
	st := ec.state()
	if st.work == nil {
		st.work = map[*workTableNode][][]types.Datum{}
	}
	defer delete(st.work, n.work)
	for iteration := 1; len(rows) > 0; iteration++ {
		if err := ec.ctx.Err(); err != nil {
			return err
		}
		st.work[n.work] = rows
		next, err := n.rec.run(ec)
		if err != nil {
			return err
		}
		if next, err = n.convert(next); err != nil {
			return err
		}
		if rows, err = keep(next); err != nil {
			return err
		}
		if err := emit(rows, iteration); err != nil {
			return err
		}
	}
	return nil
}

// convert casts the recursive term's values to the item's column types
// (copies: the term's rows may be shared).
func (n *recursiveNode) convert(rows [][]types.Datum) ([][]types.Datum, error) {
	needed := false
	for _, t := range n.casts {
		needed = needed || t != types.Unknown
	}
	if !needed {
		return rows, nil
	}
	out := make([][]types.Datum, len(rows))
	for j, r := range rows {
		r = append([]types.Datum(nil), r...)
		for i, t := range n.casts {
			if t != types.Unknown && r[i] != nil {
				var err error
				if r[i], err = castDatum(r[i], t); err != nil {
					return nil, err
				}
			}
		}
		out[j] = r
	}
	return out, nil
}

func (n *recursiveNode) explain(w *explainWriter) {
	all := ""
	if n.all {
		all = " ALL"
	}
	w.add("recursive UNION%s of %s: the second input runs on the rows the last run added, until none", all, quoteName(n.name))
	w.child(n.anchor)
	w.child(n.rec)
}

// buildRecursiveCTE plans an item of a WITH RECURSIVE list. One that does
// not read itself is an ordinary WITH item; one that does must have the
// form non-recursive-term UNION [ALL] recursive-term, with the reference in
// the recursive term, once, and not inside a subquery, an outer join's
// nullable side, INTERSECT, EXCEPT or an aggregate (PostgreSQL's rules:
// 42P19, or 0A000 for ORDER BY, LIMIT and OFFSET on the item's query).
func (b *queryBuilder) buildRecursiveCTE(c *parser.CTE, a *analyzer) (relNode, []outCol, error) {
	so, isSetOp := c.Select.(*parser.SetOp)
	if !isSetOp || so.Kind != parser.Union || len(so.With) > 0 {
		// Not the recursive form: fine as long as it does not read itself.
		refused := pgerror.WithHintf(pgerror.Newf(codeInvalidRecursion,
			"recursive query %q does not have the form non-recursive-term UNION [ALL] recursive-term", c.Name),
			"write it as SELECT ... UNION [ALL] SELECT ... FROM %s, or drop RECURSIVE", c.Name)
		return b.buildRefusingSelf(c, c.Select, a, refused)
	}
	for _, clause := range []struct {
		set  bool
		name string
	}{{so.OrderBy != nil, "ORDER BY"}, {so.Limit != nil, "LIMIT"}, {so.Offset != nil, "OFFSET"}} {
		if clause.set {
			return nil, nil, pgerror.WithHintf(unsupported("%s in a recursive query is not implemented", clause.name),
				"apply it in the query that reads %s", c.Name)
		}
	}
	anchor, cols, err := b.buildRefusingSelf(c, so.Left, a, pgerror.Newf(codeInvalidRecursion,
		"recursive reference to query %q must not appear within its non-recursive term", c.Name))
	if err != nil {
		return nil, nil, err
	}
	if len(c.Cols) > len(cols) {
		return nil, nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "WITH query %q has %d columns available but %d columns specified",
			c.Name, len(cols), len(c.Cols))
	}
	cols = append([]outCol(nil), cols...)
	for i, name := range c.Cols {
		cols[i].name = name
	}
	for i := range cols {
		// Placeholders and literals of the non-recursive term settle on
		// their final type here: the working table has one type per column.
		cols[i].t, cols[i].te = cols[i].typ(), nil
		if cols[i].t == types.Unknown {
			cols[i].t = types.String
		}
	}
	work := &workTableNode{name: c.Name, w: len(cols), outer: a.outer}
	n := len(b.ctes)
	b.ctes = append(b.ctes, &cteDef{name: c.Name, node: work, cols: cols, work: work})
	b.works = append(b.works, work)
	ra := &analyzer{params: b.params, outer: a.outer, qb: b}
	rec, rcols, err := b.buildQuery(so.Right, ra)
	b.ctes, b.works = b.ctes[:n], b.works[:len(b.works)-1]
	if err != nil {
		return nil, nil, err
	}
	if ra.correlated {
		a.correlated = true
	}
	if work.refs == 0 {
		// It does not read itself: an ordinary UNION.
		sa := &analyzer{params: b.params, outer: a.outer, qb: b}
		node, cols, err := b.buildQuery(c.Select, sa)
		if sa.correlated {
			a.correlated = true
		}
		return node, cols, err
	}
	if len(rcols) != len(cols) {
		return nil, nil, pgerror.Newf(pgerror.CodeSyntaxError, "each UNION query must have the same number of columns")
	}
	if hasAggregate(rec) {
		return nil, nil, pgerror.Newf(codeInvalidRecursion, "aggregate functions are not allowed in a recursive query's recursive term")
	}
	node := &recursiveNode{name: c.Name, anchor: anchor, rec: rec, work: work, all: so.All, casts: make([]types.T, len(cols))}
	for i := range cols {
		rt := rcols[i].typ()
		t, err := unifyTypes("UNION", []types.T{cols[i].t, rt})
		if err != nil {
			return nil, nil, err
		}
		if t != cols[i].t {
			return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDatatypeMismatch,
				"recursive query %q column %d has type %s in non-recursive term but type %s overall",
				c.Name, i+1, typeName(cols[i].t), typeName(t)),
				"Cast the output of the non-recursive term to the correct type.")
		}
		if rt != t && rt != types.Unknown {
			node.casts[i] = t
		}
	}
	return node, cols, nil
}

// buildRefusingSelf plans q with c's name refused (refused is the error):
// the non-recursive term, or an item that is not of the recursive form.
func (b *queryBuilder) buildRefusingSelf(c *parser.CTE, q parser.SelectStatement, a *analyzer, refused error) (relNode, []outCol, error) {
	n := len(b.ctes)
	b.ctes = append(b.ctes, &cteDef{name: c.Name, refused: refused})
	defer func() { b.ctes = b.ctes[:n] }()
	sa := &analyzer{params: b.params, outer: a.outer, qb: b}
	node, cols, err := b.buildQuery(q, sa)
	if sa.correlated {
		a.correlated = true
	}
	return node, cols, err
}

// readWorkTable checks a reference to a recursive item from its recursive
// term (made with analyzer a).
func (b *queryBuilder) readWorkTable(w *workTableNode, a *analyzer) error {
	if a.outer != w.outer {
		return pgerror.Newf(codeInvalidRecursion, "recursive reference to query %q must not appear within a subquery", w.name)
	}
	if w.refs++; w.refs > 1 {
		return pgerror.Newf(codeInvalidRecursion, "recursive reference to query %q must not appear more than once", w.name)
	}
	return nil
}

// checkRecursiveRefs refuses a working table on a side of a join that pads
// rows with NULLs, or in either input of INTERSECT or EXCEPT (what names
// the construct): the fixed point the iteration computes is not the
// query's answer there.
func (b *queryBuilder) checkRecursiveRefs(what string, nodes ...relNode) error {
	for _, w := range b.works {
		for _, n := range nodes {
			if relContains(n, w) {
				return pgerror.Newf(codeInvalidRecursion, "recursive reference to query %q must not appear within %s", w.name, what)
			}
		}
	}
	return nil
}

// hasAggregate reports whether the query level of n (not its subqueries,
// not its derived tables below a projection) groups with aggregates.
func hasAggregate(n relNode) bool {
	switch v := n.(type) {
	case *groupNode:
		return len(v.aggs) > 0
	case *projectNode:
		return hasAggregate(v.in)
	case *filterNode:
		return hasAggregate(v.in)
	case *sortNode:
		return hasAggregate(v.in)
	case *limitNode:
		return hasAggregate(v.in)
	case *distinctNode:
		return hasAggregate(v.in)
	case *windowNode:
		return hasAggregate(v.in)
	}
	return false
}

// relContains reports whether target is n or an operator under it.
func relContains(n, target relNode) bool {
	if n == target {
		return true
	}
	for _, c := range relChildren(n) {
		if relContains(c, target) {
			return true
		}
	}
	return false
}
