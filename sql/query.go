package sql

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/sql/users"
)

// The query pipeline: parse -> analyze (name resolution and type checking,
// typecheck.go and query_expr.go) -> logical plan (this file builds the
// operators of rel.go) -> execution (each operator's run). It plans every
// SELECT and set operation.

// outCol is a result column of a query: its name and type.
type outCol struct {
	name string
	t    types.T
	mod  types.Mod // a table column's declared type, passed through
	// typ reads the final type, once placeholders' types are settled
	// (nil: t).
	te texpr
}

func (c outCol) typ() types.T {
	if c.te != nil {
		return c.te.typ()
	}
	return c.t
}

// cteDef is a WITH item visible to the query being built.
type cteDef struct {
	name string
	node relNode
	cols []outCol
	// work is set while a recursive item's recursive term is planned
	// (node is work); refused, while a reference to the item is an error
	// (its non-recursive term).
	work    *workTableNode
	refused error
}

// queryBuilder builds the plan of one statement.
type queryBuilder struct {
	e      *Executor
	params *paramSet
	ctes   []*cteDef // innermost last
	tables []*tableInfo
	// works are the working tables of the recursive terms being planned.
	works []*workTableNode
	// lockStrength is the strength of the first FOR UPDATE / FOR SHARE
	// clause of the query's SELECTs ("UPDATE", "SHARE", ...); "" if none.
	lockStrength string
}

// fromItem is a planned FROM item with the scope of its columns (offsets
// relative to its own rows).
type fromItem struct {
	node   relNode
	tables []scopeTable
}

func (b *queryBuilder) lookupCTE(name string) *cteDef {
	for i := len(b.ctes) - 1; i >= 0; i-- {
		if b.ctes[i].name == name {
			return b.ctes[i]
		}
	}
	return nil
}

// buildQuery plans a query. a is the analyzer of the query's own scope
// (its outer field set for a subquery); its tables are filled here.
func (b *queryBuilder) buildQuery(q parser.SelectStatement, a *analyzer) (relNode, []outCol, error) {
	switch v := q.(type) {
	case *parser.Select:
		return b.buildSelect(v, a)
	case *parser.SetOp:
		return b.buildSetOp(v, a)
	case *parser.ValuesClause:
		return b.buildValues(v, a)
	}
	return nil, nil, pgerror.Newf(pgerror.CodeInternal, "unexpected query %T", q)
}

func (b *queryBuilder) pushWith(with []*parser.CTE, a *analyzer) (pop func(), err error) {
	n := len(b.ctes)
	pop = func() { b.ctes = b.ctes[:n] }
	for _, c := range with {
		var node relNode
		var cols []outCol
		if c.Recursive {
			node, cols, err = b.buildRecursiveCTE(c, a)
		} else {
			sa := &analyzer{params: b.params, outer: a.outer, qb: b}
			node, cols, err = b.buildQuery(c.Select, sa)
			if sa.correlated {
				a.correlated = true
			}
		}
		if err != nil {
			pop()
			return nil, err
		}
		if len(c.Cols) > len(cols) {
			pop()
			return nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "WITH query %q has %d columns available but %d columns specified",
				c.Name, len(cols), len(c.Cols))
		}
		cols = append([]outCol(nil), cols...)
		for i, name := range c.Cols {
			cols[i].name = name
		}
		b.ctes = append(b.ctes, &cteDef{name: c.Name, node: node, cols: cols})
	}
	return pop, nil
}

func (b *queryBuilder) buildSetOp(s *parser.SetOp, a *analyzer) (relNode, []outCol, error) {
	pop, err := b.pushWith(s.With, a)
	if err != nil {
		return nil, nil, err
	}
	defer pop()
	la := &analyzer{params: b.params, outer: a.outer, qb: b}
	left, lcols, err := b.buildQuery(s.Left, la)
	if err != nil {
		return nil, nil, err
	}
	ra := &analyzer{params: b.params, outer: a.outer, qb: b}
	right, rcols, err := b.buildQuery(s.Right, ra)
	if err != nil {
		return nil, nil, err
	}
	if la.correlated || ra.correlated {
		a.correlated = true
	}
	if len(lcols) != len(rcols) {
		return nil, nil, pgerror.Newf(pgerror.CodeSyntaxError, "each %s query must have the same number of columns", s.Kind)
	}
	if s.Kind != parser.Union {
		if err := b.checkRecursiveRefs(s.Kind.String(), left, right); err != nil {
			return nil, nil, err
		}
	}
	n := &setOpNode{kind: s.Kind, all: s.All, left: left, right: right}
	n.casts[0] = make([]types.T, len(lcols))
	n.casts[1] = make([]types.T, len(lcols))
	cols := make([]outCol, len(lcols))
	for i := range lcols {
		t, err := unifyTypes(s.Kind.String(), []types.T{lcols[i].t, rcols[i].t})
		if err != nil {
			return nil, nil, err
		}
		if lcols[i].t != t {
			n.casts[0][i] = t
		}
		if rcols[i].t != t {
			n.casts[1][i] = t
		}
		cols[i] = outCol{name: lcols[i].name, t: t}
	}
	var node relNode = n
	if len(s.OrderBy) > 0 {
		var keys []orderItem
		for _, o := range s.OrderBy {
			idx, ok := outputPosition(o.Expr, cols)
			if n, isNum := o.Expr.(*parser.NumVal); isNum && !ok {
				return nil, nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "ORDER BY position %s is not in select list", n.Text)
			}
			if !ok {
				return nil, nil, pgerror.WithHintf(unsupported("ORDER BY on a %s result must name an output column", s.Kind),
					"order by a column name or position of the result")
			}
			keys = append(keys, orderItem{e: &colExpr{idx: idx, t: cols[idx].t, name: cols[idx].name}, desc: o.Desc, nulls: o.Nulls})
		}
		node = &sortNode{in: node, keys: keys}
	}
	if node, err = b.limit(node, s.Limit, s.Offset); err != nil {
		return nil, nil, err
	}
	return node, cols, nil
}

// outputPosition resolves an ORDER BY item that names an output column:
// a position (ORDER BY 2) or an output name.
func outputPosition(e parser.Expr, cols []outCol) (int, bool) {
	switch v := e.(type) {
	case *parser.NumVal:
		n, err := strconv.Atoi(v.Text)
		if err == nil && !v.IsFloat && n >= 1 && n <= len(cols) {
			return n - 1, true
		}
	case *parser.ColumnRef:
		if len(v.Parts) == 1 {
			for i, c := range cols {
				if c.name == v.Parts[0] {
					return i, true
				}
			}
		}
	}
	return 0, false
}

func (b *queryBuilder) limit(node relNode, limit, offset parser.Expr) (relNode, error) {
	if limit == nil && offset == nil {
		return node, nil
	}
	l, o, err := b.limitExprs(limit, offset)
	if err != nil {
		return nil, err
	}
	return &limitNode{in: node, limit: l, offset: o}, nil
}

func (b *queryBuilder) limitExprs(limit, offset parser.Expr) (l, o texpr, err error) {
	a := &analyzer{params: b.params, noCols: true, clause: "LIMIT"}
	if l, err = checkCount(a, limit, "LIMIT"); err != nil {
		return nil, nil, err
	}
	a.clause = "OFFSET"
	if o, err = checkCount(a, offset, "OFFSET"); err != nil {
		return nil, nil, err
	}
	return l, o, nil
}

// buildFrom plans one FROM item.
func (b *queryBuilder) buildFrom(t parser.TableExpr, a *analyzer) (*fromItem, error) {
	switch v := t.(type) {
	case *parser.AliasedTable:
		return b.buildTable(v, a)
	case *parser.DerivedTable:
		sa := &analyzer{params: b.params, outer: a.outer, qb: b}
		node, cols, err := b.buildQuery(v.Select, sa)
		if err != nil {
			return nil, err
		}
		if sa.correlated {
			a.correlated = true
		}
		return derivedItem(node, cols, v.Alias, v.Cols)
	case *parser.FuncTable:
		return b.buildFuncTable(v, a)
	case *parser.JoinTable:
		left, err := b.buildFrom(v.Left, a)
		if err != nil {
			return nil, err
		}
		right, err := b.buildFrom(v.Right, a)
		if err != nil {
			return nil, err
		}
		return b.join(v, left, right, a)
	}
	return nil, pgerror.Newf(pgerror.CodeInternal, "unexpected FROM item %T", t)
}

func derivedItem(node relNode, cols []outCol, alias string, colAliases []string) (*fromItem, error) {
	if len(colAliases) > len(cols) {
		return nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "table %q has %d columns available but %d columns specified",
			alias, len(cols), len(colAliases))
	}
	st := scopeTable{names: []string{alias}}
	for i, c := range cols {
		name := c.name
		if i < len(colAliases) {
			name = colAliases[i]
		}
		st.cols = append(st.cols, scopeCol{name: name, t: c.t, mod: c.mod})
	}
	return &fromItem{node: node, tables: []scopeTable{st}}, nil
}

func (b *queryBuilder) buildTable(v *parser.AliasedTable, a *analyzer) (*fromItem, error) {
	alias := v.Alias
	if alias == "" {
		alias = v.Name.Table()
	}
	if len(v.Name.Parts) == 1 {
		if c := b.lookupCTE(v.Name.Parts[0]); c != nil {
			if c.refused != nil {
				return nil, c.refused
			}
			if c.work != nil {
				if err := b.readWorkTable(c.work, a); err != nil {
					return nil, err
				}
			}
			return derivedItem(c.node, c.cols, alias, nil)
		}
	}
	db, name, virt, err := b.e.classifyTableName(b.params.db, v.Name)
	if err != nil {
		return nil, err
	}
	if !virt && len(v.Name.Parts) == 1 {
		// pg_catalog is searched first, as in PostgreSQL.
		if _, ok := b.e.virtualTable("pg_catalog." + name); ok {
			name, virt = "pg_catalog."+name, true
		}
	}
	if virt {
		vt, ok := b.e.virtualTable(name)
		if !ok {
			return nil, b.e.undefinedVirtual(name)
		}
		if virtualNeedsAdmin(name) {
			b.params.need(accessReq{kind: accessAdmin, what: "read " + name})
		}
		st := scopeTable{names: []string{alias}}
		for _, c := range vt.cols {
			st.cols = append(st.cols, scopeCol{name: c.Name, t: c.Type})
		}
		return &fromItem{node: newVirtualScan(vt, nil), tables: []scopeTable{st}}, nil
	}
	ti, err := b.e.tableInfoByName(b.params.s, db, name)
	if err != nil {
		return nil, err
	}
	b.tables = append(b.tables, ti)
	b.params.need(accessReq{kind: accessTable, priv: users.Select, table: ti.desc})
	st := ti.scope(0, alias)
	st.hidden = hiddenCols(ti)
	st.base = ti
	// The access path is chosen once the WHERE clause's conjuncts are
	// pushed down (combineFrom), or the order is known (buildSelect).
	return &fromItem{node: &tableScanNode{e: b.e, ti: ti, alias: v.Alias, scan: scanPlan{kind: scanFull}}, tables: []scopeTable{st}}, nil
}

func hiddenCols(ti *tableInfo) []bool {
	h := make([]bool, len(ti.cols))
	for i := range h {
		h[i] = true
	}
	for _, i := range ti.visible {
		h[i] = false
	}
	return h
}

func shiftScope(tables []scopeTable, by int) []scopeTable {
	out := make([]scopeTable, len(tables))
	for i, t := range tables {
		t.offset += by
		out[i] = t
	}
	return out
}

// join plans an explicit JOIN.
func (b *queryBuilder) join(v *parser.JoinTable, left, right *fromItem, a *analyzer) (*fromItem, error) {
	lw := left.node.width()
	tables := append(append([]scopeTable{}, left.tables...), shiftScope(right.tables, lw)...)
	n := &joinNode{kind: v.Kind, left: left.node, right: right.node}
	var padded []relNode // the sides an outer join pads with NULLs
	switch v.Kind {
	case parser.JoinLeft:
		padded = []relNode{right.node}
	case parser.JoinRight:
		padded = []relNode{left.node}
	case parser.JoinFull:
		padded = []relNode{left.node, right.node}
	}
	if err := b.checkRecursiveRefs("an outer join", padded...); err != nil {
		return nil, err
	}
	ja := &analyzer{params: b.params, tables: tables, outer: a.outer, qb: b, clause: "JOIN/ON"}
	var cond texpr
	switch {
	case v.On != nil:
		c, err := ja.checkBool(v.On, "JOIN/ON")
		if err != nil {
			return nil, err
		}
		cond = c
	case len(v.Using) > 0:
		for _, col := range v.Using {
			l, err := (&analyzer{params: b.params, tables: left.tables}).resolveColumn(&parser.ColumnRef{Parts: []string{col}})
			if err != nil {
				return nil, err
			}
			r, err := (&analyzer{params: b.params, tables: shiftScope(right.tables, lw)}).resolveColumn(&parser.ColumnRef{Parts: []string{col}})
			if err != nil {
				return nil, err
			}
			l, r, err = ja.unifyComparison("=", l, r)
			if err != nil {
				return nil, err
			}
			var eq texpr = &cmpExpr{op: parser.CmpEQ, l: l, r: r}
			if cond == nil {
				cond = eq
			} else {
				cond = &andExpr{l: cond, r: eq}
			}
		}
	}
	if ja.correlated {
		a.correlated = true
	}
	splitJoinCondition(n, cond, lw)
	pushJoinCondition(n)
	return &fromItem{node: n, tables: tables}, nil
}

// pushJoinCondition moves the conjuncts of an ON condition that read one
// side only into that side, where filtering before the join is the same as
// filtering the joined rows: either side of an inner join, the right side
// of a LEFT JOIN (it decides which right rows match; a left row without a
// match is kept either way), the left side of a RIGHT JOIN. psql's
// `LEFT JOIN pg_constraint con ON (conrelid = i.indrelid AND ... AND
// contype IN ('p','u','x'))` so filters pg_constraint before hashing it.
func pushJoinCondition(n *joinNode) {
	if n.cond == nil {
		return
	}
	lw := n.left.width()
	var rest []texpr
	for _, c := range conjuncts(n.cond) {
		lo, hi, ok := colRange(c)
		switch {
		case ok && hi < lw && (n.kind == parser.JoinInner || n.kind == parser.JoinRight):
			n.left = pushFilter(n.left, c)
		case ok && lo >= lw && (n.kind == parser.JoinInner || n.kind == parser.JoinLeft):
			n.right = pushFilter(n.right, shiftCols(c, -lw))
		default:
			rest = append(rest, c)
		}
	}
	n.cond = andAll(rest)
	n.lookup = nil
	n.planLookup()
}

// pushFilter applies conjunct c (on node's rows) to node as deep in it as
// it may go: into a scan's filter (a user table's scan picks its access
// path from it, a catalog table's its index), into the side of a join it
// alone reads (the preserved side of an outer join only), or into an inner
// join's condition (an equality between the sides becomes a hash key);
// otherwise into a filter above node. So a WHERE clause over a FROM clause
// of joins, such as psql's `FROM pg_class c LEFT JOIN pg_namespace n ...
// WHERE c.relkind IN (...)`, filters pg_class before the joins.
func pushFilter(node relNode, c texpr) relNode {
	switch n := node.(type) {
	case *tableScanNode:
		return newTableScan(n.e, n.ti, n.alias, andOpt(n.filter, c), nil)
	case *virtualScanNode:
		return newVirtualScan(n.vt, andOpt(n.filter, c))
	case *filterNode:
		return &filterNode{in: n.in, cond: andOpt(n.cond, c)}
	case *joinNode:
		lw := n.left.width()
		lo, hi, ok := colRange(c)
		if !ok {
			break
		}
		inner := n.kind == parser.JoinInner || n.kind == parser.JoinCross
		switch {
		case hi < lw && (inner || n.kind == parser.JoinLeft):
			n.left = pushFilter(n.left, c)
		case lo >= lw && (inner || n.kind == parser.JoinRight):
			n.right = pushFilter(n.right, shiftCols(c, -lw))
		case lo >= lw && n.kind == parser.JoinLeft && nullOnRightRejects(c, lw):
			// The WHERE drops every row whose right side is NULLs, so the
			// LEFT JOIN keeps no row an inner join would not: psql's
			// n.nspname <> 'pg_catalog' over LEFT JOIN pg_namespace n
			// filters pg_namespace instead of every joined row.
			n.kind = parser.JoinInner
			n.right = pushFilter(n.right, shiftCols(c, -lw))
		case inner:
			n.kind = parser.JoinInner
			splitJoinCondition(n, andOpt(n.cond, c), lw)
			return n
		default:
			return &filterNode{in: n, cond: c}
		}
		n.lookup = nil
		n.planLookup()
		return n
	}
	return &filterNode{in: node, cond: c}
}

// nullOnRightRejects reports whether conjunct c of a join's rows is NULL
// (so the row is dropped) whenever the right side's columns (from lw on)
// are NULL: a comparison, LIKE or regular expression match of one of them
// directly, or the negation of one, each NULL when that operand is.
func nullOnRightRejects(c texpr, lw int) bool {
	right := func(e texpr) bool {
		x, ok := e.(*colExpr)
		return ok && x.idx >= lw
	}
	switch v := c.(type) {
	case *cmpExpr:
		return right(v.l) || right(v.r)
	case *likeExpr:
		return right(v.e)
	case *regexExpr:
		return right(v.e)
	case *notExpr:
		return nullOnRightRejects(v.e, lw)
	}
	return false
}

// andOpt is a AND b, where a may be nil.
func andOpt(a, b texpr) texpr {
	if a == nil {
		return b
	}
	return &andExpr{l: a, r: b}
}

// splitJoinCondition takes the equalities between a column expression of
// each side out of cond as hash keys; the rest stays a residual condition.
func splitJoinCondition(n *joinNode, cond texpr, lw int) {
	if cond == nil {
		return
	}
	var rest []texpr
	for _, c := range conjuncts(cond) {
		if cmp, ok := c.(*cmpExpr); ok && cmp.op == parser.CmpEQ {
			lmin, lmax, lok := colRange(cmp.l)
			rmin, rmax, rok := colRange(cmp.r)
			switch {
			case lok && rok && lmax < lw && rmin >= lw:
				n.eqLeft = append(n.eqLeft, cmp.l)
				n.eqRight = append(n.eqRight, shiftCols(cmp.r, -lw))
				continue
			case lok && rok && rmax < lw && lmin >= lw:
				n.eqLeft = append(n.eqLeft, cmp.r)
				n.eqRight = append(n.eqRight, shiftCols(cmp.l, -lw))
				continue
			}
		}
		rest = append(rest, c)
	}
	n.cond = andAll(rest)
	n.planLookup()
}

func andAll(cs []texpr) texpr {
	var out texpr
	for _, c := range cs {
		if out == nil {
			out = c
		} else {
			out = &andExpr{l: out, r: c}
		}
	}
	return out
}

// colRange returns the lowest and highest column an expression reads of
// its own row; ok is false when it reads none, or reads something that
// is not a plain column of the row (a subquery, an aggregate).
func colRange(e texpr) (lo, hi int, ok bool) {
	lo, hi = -1, -1
	bad := false
	walkTexpr(e, func(x texpr) {
		switch v := x.(type) {
		case *colExpr:
			if lo < 0 || v.idx < lo {
				lo = v.idx
			}
			if v.idx > hi {
				hi = v.idx
			}
		case *subqueryExpr, *aggRef:
			bad = true
		case *funcExpr:
			if v.fn.volatile {
				bad = true
			}
		}
	})
	return lo, hi, lo >= 0 && !bad
}

// shiftCols returns e with every column reference of its own row moved by
// delta, for evaluating a condition on one input of a join.
func shiftCols(e texpr, delta int) texpr {
	if delta == 0 {
		return e
	}
	return mapTexpr(e, func(x texpr) texpr {
		if c, ok := x.(*colExpr); ok {
			return &colExpr{idx: c.idx + delta, t: c.t, name: c.name}
		}
		return nil
	})
}

// checkLocking checks a SELECT's FOR UPDATE / FOR SHARE clauses as
// PostgreSQL does, against the FROM items in scope, and asks for the UPDATE
// privilege on the tables they lock (PostgreSQL's rule). kvnode takes no row
// locks: every transaction is serializable, so a row read FOR UPDATE that
// another transaction writes before this one commits fails the commit with
// 40001, as any row read does (txn/DESIGN.md).
func (b *queryBuilder) checkLocking(s *parser.Select, scope []scopeTable) error {
	if len(s.Locking) == 0 {
		return nil
	}
	strength := s.Locking[0].Strength
	if b.lockStrength == "" {
		b.lockStrength = strength
	}
	switch {
	case s.Distinct:
		return unsupported("FOR %s is not allowed with DISTINCT clause", strength)
	case len(s.GroupBy) > 0:
		return unsupported("FOR %s is not allowed with GROUP BY clause", strength)
	case s.Having != nil:
		return unsupported("FOR %s is not allowed with HAVING clause", strength)
	}
	for _, se := range s.Exprs {
		if se.Expr != nil && containsAggregate(se.Expr) {
			return unsupported("FOR %s is not allowed with aggregate functions", strength)
		}
	}
	locked := map[int]bool{}
	for _, lc := range s.Locking {
		if lc.Of == nil {
			for i := range scope {
				locked[i] = true
			}
			continue
		}
		for _, name := range lc.Of {
			found := false
			for i, st := range scope {
				if !st.qualifiedOnly && len(st.names) > 0 && st.names[0] == name {
					locked[i], found = true, true
				}
			}
			if !found {
				return pgerror.Newf(pgerror.CodeUndefinedTable,
					"relation %q in FOR %s clause not found in FROM clause", name, lc.Strength)
			}
		}
	}
	for i := range locked {
		if ti := scope[i].base; ti != nil {
			b.params.need(accessReq{kind: accessTable, priv: users.Update, table: ti.desc})
		}
	}
	return nil
}

// buildSelect plans a SELECT.
func (b *queryBuilder) buildSelect(s *parser.Select, a *analyzer) (relNode, []outCol, error) {
	pop, err := b.pushWith(s.With, a)
	if err != nil {
		return nil, nil, err
	}
	defer pop()
	a.qb = b
	a.params = b.params

	// FROM: the items, each with its scope.
	var items []*fromItem
	for _, t := range s.From {
		it, err := b.buildFrom(t, a)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
	}
	var offsets []int
	width := 0
	a.tables = nil
	for _, it := range items {
		offsets = append(offsets, width)
		a.tables = append(a.tables, shiftScope(it.tables, width)...)
		width += it.node.width()
	}
	if err := b.checkLocking(s, a.tables); err != nil {
		return nil, nil, err
	}

	// WHERE, its conjuncts pushed to the FROM item they read, or to the
	// first join that has all their columns.
	var where []texpr
	if s.Where != nil {
		a.clause = "WHERE"
		w, err := a.checkBool(s.Where, "WHERE")
		if err != nil {
			return nil, nil, err
		}
		where = conjuncts(w)
	}
	node, rest := b.combineFrom(items, offsets, where)

	// Aggregation.
	grouping := len(s.GroupBy) > 0 || s.Having != nil
	for _, se := range s.Exprs {
		if se.Expr != nil && containsAggregate(se.Expr) {
			grouping = true
		}
	}
	for _, o := range s.OrderBy {
		if containsAggregate(o.Expr) {
			grouping = true
		}
	}
	if len(rest) > 0 {
		node = &filterNode{in: node, cond: andAll(rest)}
	}
	var groupKeys []texpr
	if grouping {
		a.clause = "GROUP BY"
		for _, g := range s.GroupBy {
			ge := g
			// GROUP BY 1 and GROUP BY an output alias name the select
			// list's expression.
			if n, ok := g.(*parser.NumVal); ok {
				i, err := strconv.Atoi(n.Text)
				if err != nil || n.IsFloat || i < 1 || i > len(s.Exprs) || s.Exprs[i-1].Star {
					return nil, nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "GROUP BY position %s is not in select list", n.Text)
				}
				ge = s.Exprs[i-1].Expr
			} else if c, ok := g.(*parser.ColumnRef); ok && len(c.Parts) == 1 {
				if _, err := a.resolveColumn(c); err != nil {
					for _, se := range s.Exprs {
						if se.Alias == c.Parts[0] {
							ge = se.Expr
						}
					}
				}
			}
			if containsAggregate(ge) {
				return nil, nil, pgerror.Newf(codeGroupingError, "aggregate functions are not allowed in GROUP BY")
			}
			k, err := a.check(ge, types.Unknown)
			if err != nil {
				return nil, nil, err
			}
			groupKeys = append(groupKeys, k)
		}
		a.allowAggs, a.aggsInRow, a.aggBase = true, true, width
	}

	// The select list.
	a.clause = "SELECT"
	a.allowWindows = true
	var outs []texpr
	var cols []outCol
	var outExprs []parser.Expr
	hasSRF := false
	for _, se := range s.Exprs {
		if se.Star {
			if len(s.From) == 0 {
				return nil, nil, pgerror.Newf(pgerror.CodeSyntaxError, "SELECT * with no tables specified is not valid")
			}
			found := false
			for _, st := range a.tables {
				if se.StarTable != "" && !containsString(st.names, se.StarTable) {
					continue
				}
				found = true
				for i, c := range st.cols {
					if st.hidden != nil && st.hidden[i] {
						continue
					}
					outs = append(outs, &colExpr{idx: st.offset + i, t: c.t, name: c.name, mod: c.mod})
					cols = append(cols, outCol{name: c.name, t: c.t, mod: c.mod})
					outExprs = append(outExprs, nil)
				}
			}
			if !found {
				return nil, nil, pgerror.Newf(pgerror.CodeUndefinedTable, "no data source matches pattern: %s.*", se.StarTable)
			}
			continue
		}
		var te texpr
		var err error
		if fc, field, ok := srfItem(se.Expr); ok {
			te, err = checkSRF(a, fc, field)
			hasSRF = true
		} else {
			te, err = a.check(se.Expr, types.Unknown)
		}
		if err != nil {
			return nil, nil, err
		}
		name := se.Alias
		if name == "" {
			name = exprName(se.Expr)
		}
		outs = append(outs, te)
		oc := outCol{name: name, t: te.typ(), te: te}
		switch x := te.(type) {
		case *colExpr:
			oc.mod = x.mod
		case *aggRef:
			oc.mod = x.mod
		case *assignExpr:
			if x.explicit { // b::INT4 is an int4, v::VARCHAR(3) a varchar(3)
				oc.mod = x.mod
			}
		}
		cols = append(cols, oc)
		outExprs = append(outExprs, se.Expr)
	}

	if len(s.Locking) > 0 && len(a.windows) > 0 {
		return nil, nil, unsupported("FOR %s is not allowed with window functions", s.Locking[0].Strength)
	}

	var having texpr
	if s.Having != nil {
		a.allowWindows = false
		a.clause = "HAVING"
		h, err := a.checkBool(s.Having, "HAVING")
		if err != nil {
			return nil, nil, err
		}
		having = h
	}

	// ORDER BY: an output column (position, name or the same expression),
	// or an expression computed for the sort only.
	a.clause = "ORDER BY"
	a.allowWindows = true
	var keys []orderItem
	var extra []texpr
	for _, o := range s.OrderBy {
		// An output column's position or name (PostgreSQL prefers the
		// output name to an input column of the same name), or the same
		// expression as an output column.
		idx, ok := outputPosition(o.Expr, cols)
		if n, isNum := o.Expr.(*parser.NumVal); isNum && !ok {
			return nil, nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "ORDER BY position %s is not in select list", n.Text)
		}
		if !ok {
			text := o.Expr.String()
			for i, e := range outExprs {
				if e != nil && e.String() == text {
					idx, ok = i, true
					break
				}
			}
		}
		if !ok {
			te, err := a.check(o.Expr, types.Unknown)
			if err != nil {
				return nil, nil, err
			}
			if s.Distinct {
				return nil, nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "for SELECT DISTINCT, ORDER BY expressions must appear in select list")
			}
			idx = len(outs) + len(extra)
			extra = append(extra, te)
		}
		keys = append(keys, orderItem{e: &colExpr{idx: idx}, desc: o.Desc, nulls: o.Nulls})
	}

	// The window functions' values follow the row they are computed on
	// (the FROM row, then the aggregates when grouping).
	base := width
	if grouping {
		base += len(a.aggs)
	}
	for i, w := range a.windows {
		w.ref.idx = base + i
	}

	// A single table read in key order needs no sort, and its scan stops
	// at the LIMIT.
	var pushLimit *tableScanNode
	if scan, ok := node.(*tableScanNode); ok && !grouping && !s.Distinct && !hasSRF && len(a.windows) == 0 {
		all := append(append([]texpr{}, outs...), extra...)
		var order []orderItem
		for _, k := range keys {
			order = append(order, orderItem{e: all[k.e.(*colExpr).idx], desc: k.desc, nulls: k.nulls})
		}
		scan = newTableScan(scan.e, scan.ti, scan.alias, scan.filter, order)
		node = scan
		if scan.scan.orderDone {
			keys = nil
		}
		if scan.limitPushable() && (s.Limit != nil || s.Offset != nil) {
			pushLimit = scan
		}
	}
	if pushLimit != nil {
		if pushLimit.limit, pushLimit.offset, err = b.limitExprs(s.Limit, s.Offset); err != nil {
			return nil, nil, err
		}
	}

	if grouping {
		if err := checkGrouped(append(append(append(append([]texpr{}, outs...), extra...), having), windowExprs(a.windows)...), groupKeys, width); err != nil {
			return nil, nil, err
		}
		node = &groupNode{in: node, keys: groupKeys, aggs: a.aggs}
		if having != nil {
			node = &filterNode{in: node, cond: having}
		}
	}
	if len(a.windows) > 0 {
		node = &windowNode{in: node, funcs: a.windows}
	}
	if hasSRF {
		node = &projectSetNode{in: node, exprs: append(append([]texpr{}, outs...), extra...)}
	} else {
		node = &projectNode{in: node, exprs: append(append([]texpr{}, outs...), extra...)}
	}
	if s.Distinct {
		node = &distinctNode{in: node, n: len(outs)}
	}
	if len(keys) > 0 {
		node = &sortNode{in: node, keys: keys}
	}
	if node, err = b.limit(node, s.Limit, s.Offset); err != nil {
		return nil, nil, err
	}
	if len(extra) > 0 {
		keep := make([]texpr, len(outs))
		for i := range outs {
			keep[i] = &colExpr{idx: i, t: cols[i].t, name: cols[i].name}
		}
		node = &projectNode{in: node, exprs: keep}
	}
	return node, cols, nil
}

// checkGrouped refuses a column outside an aggregate that is not a
// grouping key: every expression after GROUP BY must be one value per
// group. A key may be a column or any expression, matched structurally.
func checkGrouped(exprs []texpr, keys []texpr, width int) error {
	keyCols := map[int]bool{}
	var keyTexts []string
	for _, k := range keys {
		if c, ok := k.(*colExpr); ok {
			keyCols[c.idx] = true
		}
		keyTexts = append(keyTexts, texprKey(k))
	}
	var bad *colExpr
	var visit func(e texpr)
	visit = func(e texpr) {
		if e == nil || bad != nil {
			return
		}
		for _, kt := range keyTexts {
			if texprKey(e) == kt {
				return
			}
		}
		switch v := e.(type) {
		case *colExpr:
			if v.idx < width && !keyCols[v.idx] {
				bad = v
			}
			return
		case *aggRef:
			return
		}
		forChildren(e, visit)
	}
	for _, e := range exprs {
		visit(e)
	}
	if bad != nil {
		return pgerror.Newf(codeGroupingError,
			"column %q must appear in the GROUP BY clause or be used in an aggregate function", bad.name)
	}
	return nil
}

// combineFrom joins the FROM items. A WHERE conjunct that reads one item
// only filters that item (and is a key for its scan); one that reads several
// becomes a condition of the first join that has them all (an equality
// becomes a hash join key). The items are joined from the first one on,
// each time with the first remaining item that a conjunct connects to those
// joined already (else the next one), so that psql's `FROM pg_class c,
// pg_class c2, pg_index i ... WHERE c.oid = '16390' AND c.oid = i.indrelid
// AND i.indexrelid = c2.oid` joins c with i, then c2, rather than building c
// x c2 first; a projection puts the columns back in FROM order. The
// conjuncts left over (with subqueries, or reading no column) are returned.
func (b *queryBuilder) combineFrom(items []*fromItem, offsets []int, where []texpr) (relNode, []texpr) {
	if len(items) == 0 {
		return &oneRowNode{}, where
	}
	where = withImpliedEqualities(where)
	nodes := make([]relNode, len(items))
	for i, it := range items {
		nodes[i] = it.node
	}
	itemOf := func(col int) int {
		for i := len(items) - 1; i > 0; i-- {
			if col >= offsets[i] {
				return i
			}
		}
		return 0
	}
	var rest, multi []texpr
	var multiItems [][]int
	perItem := make([][]texpr, len(items))
	for _, c := range where {
		lo, hi, ok := colRange(c)
		if !ok {
			rest = append(rest, c)
			continue
		}
		if i := itemOf(lo); i == itemOf(hi) {
			perItem[i] = append(perItem[i], shiftCols(c, -offsets[i]))
			continue
		}
		seen := map[int]bool{}
		var its []int
		walkTexpr(c, func(x texpr) {
			if col, ok := x.(*colExpr); ok && !seen[itemOf(col.idx)] {
				seen[itemOf(col.idx)] = true
				its = append(its, itemOf(col.idx))
			}
		})
		multi, multiItems = append(multi, c), append(multiItems, its)
	}
	for i, conds := range perItem {
		switch n := nodes[i].(type) {
		case *tableScanNode:
			// One scan with the whole filter: its access path is chosen
			// from all the conjuncts at once.
			if len(conds) > 0 {
				nodes[i] = newTableScan(n.e, n.ti, n.alias, andAll(conds), nil)
			}
			continue
		}
		for _, c := range conds {
			nodes[i] = pushFilter(nodes[i], c)
		}
	}

	// The join order, and where each column of the FROM row lands in it.
	joined := make([]bool, len(items))
	within := func(its []int, extra int) bool {
		for _, i := range its {
			if !joined[i] && i != extra {
				return false
			}
		}
		return true
	}
	order := []int{0}
	joined[0] = true
	for len(order) < len(items) {
		next := -1
		for j := range items {
			if joined[j] {
				continue
			}
			if next < 0 {
				next = j // the next one in FROM order, unless one is connected
			}
			connected := false
			for k := range multi {
				connected = connected || (slices.Contains(multiItems[k], j) && within(multiItems[k], j))
			}
			if connected {
				next = j
				break
			}
		}
		order = append(order, next)
		joined[next] = true
	}
	pos := make([]int, offsets[len(items)-1]+items[len(items)-1].node.width())
	at := 0
	for _, i := range order {
		for c := 0; c < items[i].node.width(); c++ {
			pos[offsets[i]+c] = at + c
		}
		at += items[i].node.width()
	}
	remap := func(e texpr) texpr {
		return mapTexpr(e, func(x texpr) texpr {
			if c, ok := x.(*colExpr); ok {
				return &colExpr{idx: pos[c.idx], t: c.t, name: c.name, mod: c.mod}
			}
			return nil
		})
	}

	clear(joined)
	joined[order[0]] = true
	node := nodes[order[0]]
	placed := make([]bool, len(multi))
	for _, j := range order[1:] {
		joined[j] = true
		var conds []texpr
		for k, c := range multi {
			if !placed[k] && within(multiItems[k], -1) {
				placed[k] = true
				conds = append(conds, remap(c))
			}
		}
		kind := parser.JoinCross
		if len(conds) > 0 {
			kind = parser.JoinInner
		}
		jn := &joinNode{kind: kind, left: node, right: nodes[j]}
		splitJoinCondition(jn, andAll(conds), node.width())
		node = jn
	}
	if !slices.IsSorted(order) {
		// Back to FROM order, which the rest of the query reads.
		exprs := make([]texpr, len(pos))
		for i, it := range items {
			for _, st := range it.tables {
				for c, col := range st.cols {
					idx := offsets[i] + st.offset + c
					exprs[idx] = &colExpr{idx: pos[idx], t: col.t, name: col.name, mod: col.mod}
				}
			}
		}
		for idx := range exprs {
			if exprs[idx] == nil {
				exprs[idx] = &colExpr{idx: pos[idx]}
			}
		}
		node = &projectNode{in: node, exprs: exprs}
	}
	return node, rest
}

// withImpliedEqualities adds to a WHERE clause's conjuncts the equalities
// that follow from them: from x = k (k the same for every row: a constant,
// a parameter, an outer column) and x = y, with x and y columns of one
// type, y = k. Adding what the WHERE implies changes no result, and the
// new conjunct can fix a key of y's table: psql's `c.oid = '16390' AND
// c.oid = i.indrelid` reads pg_index by indrelid.
func withImpliedEqualities(where []texpr) []texpr {
	fixed := map[int]texpr{}
	type pair struct{ x, y *colExpr }
	var pairs []pair
	for _, c := range where {
		cmp, ok := c.(*cmpExpr)
		if !ok || cmp.op != parser.CmpEQ {
			continue
		}
		lc, lok := cmp.l.(*colExpr)
		rc, rok := cmp.r.(*colExpr)
		switch {
		case lok && rok:
			if lc.t == rc.t && lc.idx != rc.idx {
				pairs = append(pairs, pair{lc, rc})
			}
		case lok && readsNoRow(cmp.r):
			if _, ok := fixed[lc.idx]; !ok {
				fixed[lc.idx] = cmp.r
			}
		case rok && readsNoRow(cmp.l):
			if _, ok := fixed[rc.idx]; !ok {
				fixed[rc.idx] = cmp.l
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, p := range pairs {
			for _, xy := range [2][2]*colExpr{{p.x, p.y}, {p.y, p.x}} {
				k, ok := fixed[xy[0].idx]
				if _, done := fixed[xy[1].idx]; !ok || done {
					continue
				}
				fixed[xy[1].idx] = k
				where = append(where, &cmpExpr{op: parser.CmpEQ, l: xy[1], r: k})
				changed = true
			}
		}
	}
	return where
}

// queryPlan is an analyzed query run by the pipeline.
type queryPlan struct {
	e        *Executor
	root     relNode
	cols     []pgwire.Column
	outTypes []func() types.T
	tables   []*tableInfo
	// lockStrength: the query reads FOR UPDATE or FOR SHARE (the first
	// clause's strength), which a read-only transaction may not (25006), as
	// in PostgreSQL; "" if it does not.
	lockStrength string
}

func (p *queryPlan) columns() []pgwire.Column { return p.cols }
func (p *queryPlan) stale() bool {
	for _, ti := range p.tables {
		if p.e.isStale(ti) {
			return true
		}
	}
	return false
}
func (p *queryPlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	if len(p.tables) > 1 {
		// More than one relation (or one twice): one state for all.
		c, release, err := p.e.withOneState(ctx)
		if err != nil {
			return pgwire.Result{}, err
		}
		defer release()
		ctx = c
	}
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	rows, err := p.root.run(ec)
	if err != nil {
		return pgwire.Result{}, err
	}
	return pgwire.Result{Rows: rows, Tag: selectTag(len(rows))}, nil
}

// selectTag is the command tag of a query that returned n rows.
func selectTag(n int) string {
	switch n {
	case 0:
		return "SELECT 0"
	case 1:
		return "SELECT 1"
	}
	return "SELECT " + strconv.Itoa(n)
}

// finishColumns fills in the result types once placeholder types are final
// (SELECT $1 is STRING only after inference is done).
func (p *queryPlan) finishColumns() {
	for i := range p.cols {
		t := p.outTypes[i]()
		if t == types.Unknown {
			t = types.String
		}
		p.cols[i].Type = t
	}
}

// analyzeQueryPlan plans a query with the pipeline.
func (e *Executor) analyzeQueryPlan(q parser.SelectStatement, params *paramSet) (*queryPlan, error) {
	b := &queryBuilder{e: e, params: params}
	root, cols, err := b.buildQuery(q, &analyzer{params: params, qb: b})
	if err != nil {
		return nil, err
	}
	pruneColumns(root, nil)
	p := &queryPlan{e: e, root: root, tables: b.tables, lockStrength: b.lockStrength}
	for _, c := range cols {
		p.cols = append(p.cols, pgwire.Column{Name: c.name, Mod: c.mod})
		p.outTypes = append(p.outTypes, c.typ)
	}
	return p, nil
}

// funcScanNode is a set-returning function in FROM: generate_series,
// unnest or pg_partition_ancestors; WITH ORDINALITY adds a second column,
// the row's number from 1.
type funcScanNode struct {
	name       string
	args       []texpr
	ordinality bool
}

func (n *funcScanNode) width() int {
	if n.ordinality {
		return 2
	}
	return 1
}
func (n *funcScanNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rc := rowCtx(ec)
	args := make([]types.Datum, len(n.args))
	for i, x := range n.args {
		d, err := rc.eval(x)
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, nil
		}
		args[i] = d
	}
	vals, err := srfValues(n.name, args)
	if err != nil {
		return nil, err
	}
	out := make([][]types.Datum, len(vals))
	for i, d := range vals {
		out[i] = []types.Datum{d}
		if n.ordinality {
			out[i] = append(out[i], int64(i+1))
		}
	}
	return out, nil
}

// srfValues computes a set-returning function's values from its non-NULL
// arguments.
func srfValues(name string, args []types.Datum) ([]types.Datum, error) {
	var out []types.Datum
	switch name {
	case "unnest":
		return args[0].(types.Array), nil
	case "information_schema._pg_expandarray":
		// Records (x, n) as INT8 arrays {x, n} (see FieldAccess).
		for i, x := range args[0].(types.Array) {
			out = append(out, types.Array{x, int64(i + 1)})
		}
	case "pg_partition_ancestors":
		// PostgreSQL lists a partition and its ancestors, and nothing for
		// a relation outside a partition tree: kvnode has no partitioned
		// tables, so every relation is outside one.
		return nil, nil
	case "generate_subscripts":
		if args[1].(int64) != 1 {
			return nil, nil // kvnode arrays have one dimension
		}
		for i := range args[0].(types.Array) {
			out = append(out, int64(i+1))
		}
	case "generate_series":
		start, stop, step := args[0].(int64), args[1].(int64), int64(1)
		if len(args) == 3 {
			step = args[2].(int64)
		}
		if step == 0 {
			return nil, pgerror.Newf(pgerror.CodeInvalidParameterValue, "step size cannot equal zero")
		}
		for v := start; (step > 0 && v <= stop) || (step < 0 && v >= stop); v += step {
			out = append(out, v)
			if len(out) > 10_000_000 {
				return nil, pgerror.Newf(pgerror.CodeProgramLimitExceeded, "generate_series would return more than 10000000 rows")
			}
			if (step > 0 && v > stop-step) || (step < 0 && v < stop-step) {
				break // the next step would overflow or pass stop
			}
		}
	}
	return out, nil
}

// isSRFName reports whether name is a set-returning function kvnode has.
func isSRFName(name string) bool {
	switch name {
	case "unnest", "generate_series", "generate_subscripts", "information_schema._pg_expandarray", "pg_partition_ancestors":
		return true
	}
	return false
}

// srfItem recognizes a select-list item that is a set-returning function
// call, or a field of one ((information_schema._pg_expandarray(a)).n);
// field is "" for the whole call.
func srfItem(e parser.Expr) (fc *parser.FuncCall, field string, ok bool) {
	if fa, isField := e.(*parser.FieldAccess); isField {
		e, field = fa.Expr, fa.Field
	}
	fc, isCall := e.(*parser.FuncCall)
	if !isCall || !isSRFName(strings.TrimPrefix(fc.FuncName(), "pg_catalog.")) {
		return nil, "", false
	}
	return fc, field, true
}

// srfExpr is a set-returning function as a whole select-list item: the
// projectSetNode expands each input row into one row per value.
type srfExpr struct {
	name string
	args []texpr
	t    types.T
	// field is the position, from 1, of the field selected from each
	// record (_pg_expandarray's x or n); 0 for the whole value.
	field int
}

func (e *srfExpr) typ() types.T { return e.t }

// checkSRF type-checks a set-returning function call of the select list.
func checkSRF(a *analyzer, v *parser.FuncCall, field string) (*srfExpr, error) {
	name := strings.TrimPrefix(v.FuncName(), "pg_catalog.")
	e := &srfExpr{name: name}
	if field != "" {
		e.field = map[string]int{"x": 1, "n": 2}[field]
		if name != "information_schema._pg_expandarray" || e.field == 0 {
			return nil, pgerror.WithHintf(
				pgerror.Newf("42809", "field selection .%s from %s is not supported", field, name),
				"kvnode's only composite values are information_schema._pg_expandarray's (x, n)")
		}
	}
	switch name {
	case "information_schema._pg_expandarray":
		if len(v.Args) != 1 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "%s takes 1 argument", name)
		}
		c, err := a.check(v.Args[0], types.Unknown)
		if err != nil {
			return nil, err
		}
		if c.typ() != types.ArrayOf(types.Int) {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: %s(%s)", name, typeName(c.typ()))
		}
		e.args = []texpr{c}
		e.t = types.ArrayOf(types.Int)
		if e.field != 0 {
			e.t = types.Int
		}
	case "generate_series":
		if len(v.Args) < 2 || len(v.Args) > 3 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "generate_series takes 2 or 3 arguments")
		}
		for _, x := range v.Args {
			c, err := a.check(x, types.Int)
			if err != nil {
				return nil, err
			}
			if c.typ() != types.Int && c.typ() != types.Unknown {
				return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: generate_series(%s)", typeName(c.typ()))
			}
			e.args = append(e.args, settleTo(c, types.Int))
		}
		e.t = types.Int
	case "pg_partition_ancestors":
		c, err := checkPartitionAncestorsArg(a, v.Args)
		if err != nil {
			return nil, err
		}
		e.args = []texpr{c}
		e.t = types.Int
	case "unnest", "generate_subscripts":
		want := 1
		if name == "generate_subscripts" {
			want = 2
		}
		if len(v.Args) != want {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "%s takes %d argument(s)", name, want)
		}
		c, err := a.check(v.Args[0], types.Unknown)
		if err != nil {
			return nil, err
		}
		if !c.typ().IsArray() {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: %s(%s)", name, typeName(c.typ()))
		}
		e.args = []texpr{c}
		e.t = c.typ().Elem()
		if name == "generate_subscripts" {
			d, err := a.check(v.Args[1], types.Int)
			if err != nil {
				return nil, err
			}
			e.args = append(e.args, settleTo(d, types.Int))
			e.t = types.Int
		}
	}
	return e, nil
}

// projectSetNode is a projection with set-returning functions: each input
// row becomes as many rows as its longest function result, the shorter ones
// padded with NULL (PostgreSQL's rule since 10); a row whose functions all
// return nothing yields nothing.
type projectSetNode struct {
	in    relNode
	exprs []texpr
}

func (n *projectSetNode) width() int { return len(n.exprs) }
func (n *projectSetNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rows, err := n.in.run(ec)
	if err != nil {
		return nil, err
	}
	rc := rowCtx(ec)
	var out [][]types.Datum
	for _, r := range rows {
		rc.row = r
		fixed := make([]types.Datum, len(n.exprs))
		sets := make([][]types.Datum, len(n.exprs))
		longest := 0
		for i, x := range n.exprs {
			srf, ok := x.(*srfExpr)
			if !ok {
				if fixed[i], err = rc.eval(x); err != nil {
					return nil, err
				}
				continue
			}
			args := make([]types.Datum, len(srf.args))
			null := false
			for j, ax := range srf.args {
				if args[j], err = rc.eval(ax); err != nil {
					return nil, err
				}
				null = null || args[j] == nil
			}
			if !null {
				if sets[i], err = srfValues(srf.name, args); err != nil {
					return nil, err
				}
			}
			longest = max(longest, len(sets[i]))
		}
		for k := 0; k < longest; k++ {
			row := make([]types.Datum, len(n.exprs))
			for i := range n.exprs {
				switch {
				case sets[i] != nil && k < len(sets[i]):
					row[i] = sets[i][k]
					if f := n.exprs[i].(*srfExpr).field; f > 0 {
						row[i] = row[i].(types.Array)[f-1]
					}
				case sets[i] == nil:
					if _, ok := n.exprs[i].(*srfExpr); !ok {
						row[i] = fixed[i]
					}
				}
			}
			out = append(out, row)
		}
	}
	return out, nil
}
func (n *projectSetNode) explain(w *explainWriter) {
	w.add("project set: %d columns, with set-returning functions", len(n.exprs))
	w.child(n.in)
}
func (n *funcScanNode) explain(w *explainWriter) { w.add("function %s", n.name) }

func (b *queryBuilder) buildFuncTable(v *parser.FuncTable, a *analyzer) (*fromItem, error) {
	name := strings.TrimPrefix(v.Func.FuncName(), "pg_catalog.")
	fa := &analyzer{params: b.params, outer: a.outer, qb: b, clause: "FROM"}
	n := &funcScanNode{name: name}
	var t types.T
	switch name {
	case "generate_series":
		if len(v.Func.Args) < 2 || len(v.Func.Args) > 3 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "generate_series takes 2 or 3 arguments")
		}
		for _, x := range v.Func.Args {
			c, err := fa.check(x, types.Int)
			if err != nil {
				return nil, err
			}
			if c.typ() != types.Int && c.typ() != types.Unknown {
				return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: generate_series(%s)", typeName(c.typ())),
					"kvnode's generate_series counts integers")
			}
			n.args = append(n.args, settleTo(c, types.Int))
		}
		t = types.Int
	case "unnest":
		if len(v.Func.Args) != 1 {
			return nil, unsupported("unnest of several arrays is not supported")
		}
		c, err := fa.check(v.Func.Args[0], types.Unknown)
		if err != nil {
			return nil, err
		}
		if !c.typ().IsArray() {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: unnest(%s)", typeName(c.typ()))
		}
		n.args = []texpr{c}
		t = c.typ().Elem()
	case "pg_partition_ancestors":
		c, err := checkPartitionAncestorsArg(fa, v.Func.Args)
		if err != nil {
			return nil, err
		}
		n.args = []texpr{c}
		t = types.Int
	default:
		return nil, pgerror.WithHintf(unsupported("function %s in FROM is not supported", v.Func.FuncName()),
			"kvnode supports generate_series, unnest and pg_partition_ancestors in FROM")
	}
	if fa.correlated {
		a.correlated = true
	}
	alias := v.Alias
	if alias == "" {
		alias = name
	}
	colName := name
	n.ordinality = v.Ordinality
	width := n.width()
	if len(v.Cols) > width {
		return nil, pgerror.Newf(pgerror.CodeInvalidColumnReference, "too many column aliases for function %s", name)
	}
	if len(v.Cols) >= 1 {
		colName = v.Cols[0]
	} else if v.Alias != "" {
		colName = v.Alias
	}
	cols := []scopeCol{{name: colName, t: t}}
	if n.ordinality {
		ordName := "ordinality"
		if len(v.Cols) == 2 {
			ordName = v.Cols[1]
		}
		cols = append(cols, scopeCol{name: ordName, t: types.Int})
	}
	st := scopeTable{names: []string{alias}, cols: cols}
	return &fromItem{node: n, tables: []scopeTable{st}}, nil
}

// valuesNode is VALUES as a query: its rows' expressions, evaluated once
// per execution.
type valuesNode struct {
	rows [][]texpr
}

func (n *valuesNode) width() int { return len(n.rows[0]) }
func (n *valuesNode) run(ec *evalCtx) ([][]types.Datum, error) {
	rc := rowCtx(ec)
	out := make([][]types.Datum, len(n.rows))
	for i, r := range n.rows {
		var err error
		if out[i], err = project(rc, nil, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}
func (n *valuesNode) explain(w *explainWriter) { w.add("values: %d row(s)", len(n.rows)) }

// buildValues plans VALUES: each column's type is the one its rows share
// (INT8 and FLOAT8 make FLOAT8; an untyped literal takes the column's
// type, as in PostgreSQL); the columns are named column1, column2, ...
func (b *queryBuilder) buildValues(v *parser.ValuesClause, a *analyzer) (relNode, []outCol, error) {
	a.qb, a.params, a.clause = b, b.params, "VALUES"
	width := len(v.Rows[0])
	rows := make([][]texpr, len(v.Rows))
	cols := make([]outCol, width)
	for c := 0; c < width; c++ {
		// The best-ranked expression of the column decides its type.
		best := 0
		for r := range v.Rows {
			if a.rank(v.Rows[r][c]) < a.rank(v.Rows[best][c]) {
				best = r
			}
		}
		first, err := a.check(v.Rows[best][c], types.Unknown)
		if err != nil {
			return nil, nil, err
		}
		ts := []types.T{first.typ()}
		col := make([]texpr, len(v.Rows))
		col[best] = first
		for r := range v.Rows {
			if r == best {
				continue
			}
			x, err := a.check(v.Rows[r][c], first.typ())
			if err != nil {
				return nil, nil, err
			}
			col[r] = x
			ts = append(ts, x.typ())
		}
		t, err := unifyTypes("VALUES", ts)
		if err != nil {
			return nil, nil, err
		}
		for r := range v.Rows {
			if rows[r] == nil {
				rows[r] = make([]texpr, width)
			}
			rows[r][c] = settleTo(col[r], t)
		}
		cols[c] = outCol{name: "column" + strconv.Itoa(c+1), t: t, te: rows[0][c]}
	}
	return &valuesNode{rows: rows}, cols, nil
}

// checkPartitionAncestorsArg type-checks pg_partition_ancestors's one
// argument, a relation's OID (regclass): an OID, or a string PostgreSQL
// would cast to regclass (psql sends '16390').
func checkPartitionAncestorsArg(a *analyzer, args []parser.Expr) (texpr, error) {
	if len(args) != 1 {
		return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "pg_partition_ancestors takes 1 argument")
	}
	c, err := a.check(args[0], types.Unknown)
	if err != nil {
		return nil, err
	}
	switch c.typ() {
	case types.Int:
		return c, nil
	case types.String, types.Unknown:
		// A relation's name or OID as text, cast to regclass as
		// PostgreSQL casts it: a name that is no relation's fails.
		return &regCastExpr{e: settleTo(c, types.String), kind: "regclass"}, nil
	}
	return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unknown signature: pg_partition_ancestors(%s)", typeName(c.typ()))
}
