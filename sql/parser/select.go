package parser

import (
	"strings"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Query parsing: SELECT with WITH, set operations, FROM with joins and
// derived tables, GROUP BY, HAVING, ORDER BY, LIMIT and OFFSET.
//
//	query    := [WITH cte, ...] union [ORDER BY ...] [LIMIT|OFFSET ...]
//	union    := intersect { (UNION|EXCEPT) [ALL|DISTINCT] intersect }
//	intersect:= core { INTERSECT [ALL|DISTINCT] core }
//	core     := SELECT ... | ( query )

func (p *parser) unsupportedAt(t token, format string, args ...any) error {
	return pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported, format, args...), charPos(p.src, t.pos))
}

func (p *parser) parseSelectStmt() (Stmt, error) {
	s, err := p.parseQuery()
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (p *parser) parseQuery() (SelectStatement, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
			"query nested too deeply"), charPos(p.src, p.peek().pos))
	}
	var with []*CTE
	if p.isKw("with") {
		p.advance()
		recursive := p.acceptKw("recursive")
		for {
			name, err := p.ident()
			if err != nil {
				return nil, err
			}
			c := &CTE{Name: name, Recursive: recursive}
			if p.isOp("(") {
				if c.Cols, err = p.parenIdentList(false); err != nil {
					return nil, err
				}
			}
			if err := p.expectKw("as"); err != nil {
				return nil, err
			}
			if p.isKw("materialized") || p.isKw("not") {
				p.acceptKw("not")
				if err := p.expectKw("materialized"); err != nil {
					return nil, err
				}
			}
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			if !p.isKw("select") && !p.isKw("with") && !p.isKw("values") && !p.isKw("table") && !p.isOp("(") {
				return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "WITH holding %s is not supported", strings.ToUpper(p.peek().raw)),
					"a WITH item must be a query")
			}
			if c.Select, err = p.parseQuery(); err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			with = append(with, c)
			if !p.acceptOp(",") {
				break
			}
		}
	}
	q, err := p.parseUnion()
	if err != nil {
		return nil, err
	}
	var order []*OrderBy
	var limit, offset Expr
	if p.acceptKw("order") {
		if err := p.expectKw("by"); err != nil {
			return nil, err
		}
		if order, err = p.orderByList(); err != nil {
			return nil, err
		}
	}
	// The locking clauses come before or after LIMIT and OFFSET, which
	// come in either order, as in PostgreSQL.
	var locking []*LockingClause
	if p.isKw("for") {
		if locking, err = p.lockingClauses(); err != nil {
			return nil, err
		}
	}
	for i := 0; i < 2; i++ {
		switch {
		case limit == nil && p.acceptKw("limit"):
			if p.acceptKw("all") {
				continue
			}
			if limit, err = p.parseExpr(); err != nil {
				return nil, err
			}
		case limit == nil && p.isKw("fetch"):
			if limit, err = p.fetchFirst(); err != nil {
				return nil, err
			}
		case offset == nil && p.acceptKw("offset"):
			if offset, err = p.parseExpr(); err != nil {
				return nil, err
			}
			if !p.acceptKw("rows") {
				p.acceptKw("row")
			}
		}
	}
	if locking == nil && p.isKw("for") {
		if locking, err = p.lockingClauses(); err != nil {
			return nil, err
		}
	}
	if locking != nil {
		switch q.(type) {
		case *SetOp:
			return nil, p.unsupportedAt(p.peek(), "FOR %s is not allowed with UNION/INTERSECT/EXCEPT", locking[0].Strength)
		case *ValuesClause:
			return nil, p.unsupportedAt(p.peek(), "FOR %s cannot be applied to VALUES", locking[0].Strength)
		}
	}
	if len(with) == 0 && order == nil && limit == nil && offset == nil && locking == nil {
		return q, nil
	}
	// Attach WITH, ORDER BY, LIMIT and OFFSET to the statement, wrapping
	// a parenthesized query that already has its own (and VALUES, which
	// has none of its own).
	if v, ok := q.(*ValuesClause); ok {
		q = &Select{Exprs: []*SelectExpr{{Star: true}}, From: []TableExpr{&DerivedTable{Select: v, Alias: "*VALUES*"}}}
	}
	switch v := q.(type) {
	case *Select:
		if (len(with) > 0 && len(v.With) > 0) || (order != nil && v.OrderBy != nil) ||
			(limit != nil && v.Limit != nil) || (offset != nil && v.Offset != nil) {
			q = &Select{Exprs: []*SelectExpr{{Star: true}}, From: []TableExpr{&DerivedTable{Select: v, Alias: "_"}}}
		}
	case *SetOp:
		if (len(with) > 0 && len(v.With) > 0) || (order != nil && v.OrderBy != nil) ||
			(limit != nil && v.Limit != nil) || (offset != nil && v.Offset != nil) {
			q = &Select{Exprs: []*SelectExpr{{Star: true}}, From: []TableExpr{&DerivedTable{Select: v, Alias: "_"}}}
		}
	}
	switch v := q.(type) {
	case *Select:
		if len(with) > 0 {
			v.With = with
		}
		if order != nil {
			v.OrderBy = order
		}
		if limit != nil {
			v.Limit = limit
		}
		if offset != nil {
			v.Offset = offset
		}
		if locking != nil {
			v.Locking = locking
		}
	case *SetOp:
		if len(with) > 0 {
			v.With = with
		}
		if order != nil {
			v.OrderBy = order
		}
		if limit != nil {
			v.Limit = limit
		}
		if offset != nil {
			v.Offset = offset
		}
	}
	return q, nil
}

// fetchFirst reads the SQL standard's FETCH {FIRST|NEXT} [count]
// {ROW|ROWS} ONLY, which is LIMIT count (1 when left out). As in
// PostgreSQL, the count is a constant, a parameter or a parenthesized
// expression; WITH TIES is refused.
func (p *parser) fetchFirst() (Expr, error) {
	p.advance() // FETCH
	if !p.acceptKw("first") {
		if err := p.expectKw("next"); err != nil {
			return nil, err
		}
	}
	var count Expr = &NumVal{Text: "1"}
	if !p.isKw("row") && !p.isKw("rows") {
		var err error
		if p.isOp("+") || p.isOp("-") {
			count, err = p.parseUnary()
		} else {
			count, err = p.parsePrimary()
		}
		if err != nil {
			return nil, err
		}
	}
	if !p.acceptKw("rows") {
		if err := p.expectKw("row"); err != nil {
			return nil, err
		}
	}
	if p.isKw("with") && p.isKwAt(1, "ties") {
		return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "FETCH ... WITH TIES is not supported"),
			"use FETCH ... ONLY (LIMIT), or a rank() window in a subquery")
	}
	if err := p.expectKw("only"); err != nil {
		return nil, err
	}
	return count, nil
}

// lockingClauses reads one or more FOR UPDATE | FOR NO KEY UPDATE |
// FOR SHARE | FOR KEY SHARE [OF name, ...] [NOWAIT | SKIP LOCKED].
func (p *parser) lockingClauses() ([]*LockingClause, error) {
	var out []*LockingClause
	for p.isKw("for") {
		forTok := p.peek()
		p.advance()
		lc := &LockingClause{}
		switch {
		case p.acceptKw("update"):
			lc.Strength = "UPDATE"
		case p.acceptKw("share"):
			lc.Strength = "SHARE"
		case p.isKw("no") && p.isKwAt(1, "key") && p.isKwAt(2, "update"):
			p.advance()
			p.advance()
			p.advance()
			lc.Strength = "NO KEY UPDATE"
		case p.isKw("key") && p.isKwAt(1, "share"):
			p.advance()
			p.advance()
			lc.Strength = "KEY SHARE"
		default:
			return nil, p.errNear(forTok)
		}
		if p.acceptKw("of") {
			for {
				t := p.peek()
				name, err := p.ident()
				if err != nil {
					return nil, err
				}
				if p.isOp(".") {
					return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
						"FOR %s must specify unqualified relation names", lc.Strength), charPos(p.src, t.pos))
				}
				lc.Of = append(lc.Of, name)
				if !p.acceptOp(",") {
					break
				}
			}
		}
		switch {
		case p.acceptKw("nowait"):
			lc.NoWait = true
		case p.isKw("skip") && p.isKwAt(1, "locked"):
			return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "SKIP LOCKED is not supported"),
				"kvnode takes no row locks: every transaction is serializable, and a conflict fails one of them "+
					"with 40001 at COMMIT; FOR %s without SKIP LOCKED reads every row", lc.Strength)
		}
		out = append(out, lc)
	}
	return out, nil
}

func (p *parser) orderByList() ([]*OrderBy, error) {
	var out []*OrderBy
	for {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		o := &OrderBy{Expr: e}
		if p.acceptKw("desc") {
			o.Desc = true
		} else {
			p.acceptKw("asc")
		}
		if p.isKw("using") {
			return nil, p.unsupportedAt(p.peek(), "ORDER BY ... USING is not supported")
		}
		if p.acceptKw("nulls") {
			switch {
			case p.acceptKw("first"):
				o.Nulls = NullsFirst
			case p.acceptKw("last"):
				o.Nulls = NullsLast
			default:
				return nil, p.errNear(p.peek())
			}
		}
		out = append(out, o)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

func (p *parser) setOpQuantifier() bool {
	if p.acceptKw("all") {
		return true
	}
	p.acceptKw("distinct")
	return false
}

func (p *parser) parseUnion() (SelectStatement, error) {
	left, err := p.parseIntersect()
	if err != nil {
		return nil, err
	}
	for p.isKw("union") || p.isKw("except") {
		kind := Union
		if p.advance().val == "except" {
			kind = Except
		}
		all := p.setOpQuantifier()
		right, err := p.parseIntersect()
		if err != nil {
			return nil, err
		}
		left = &SetOp{Kind: kind, All: all, Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) parseIntersect() (SelectStatement, error) {
	left, err := p.parseSelectCore()
	if err != nil {
		return nil, err
	}
	for p.acceptKw("intersect") {
		all := p.setOpQuantifier()
		right, err := p.parseSelectCore()
		if err != nil {
			return nil, err
		}
		left = &SetOp{Kind: Intersect, All: all, Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) parseSelectCore() (SelectStatement, error) {
	if p.acceptOp("(") {
		q, err := p.parseQuery()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return q, nil
	}
	if p.acceptKw("table") {
		// TABLE name is SELECT * FROM name.
		name, err := p.tableName()
		if err != nil {
			return nil, err
		}
		return &Select{Exprs: []*SelectExpr{{Star: true}}, From: []TableExpr{&AliasedTable{Name: name}}}, nil
	}
	if p.acceptKw("values") {
		v := &ValuesClause{}
		for {
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			var row []Expr
			for {
				if p.isKw("default") {
					return nil, p.unsupportedAt(p.peek(), "DEFAULT in VALUES outside INSERT is not supported")
				}
				x, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				row = append(row, x)
				if !p.acceptOp(",") {
					break
				}
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			if len(v.Rows) > 0 && len(row) != len(v.Rows[0]) {
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
					"VALUES lists must all be the same length"), charPos(p.src, p.toks[p.i-1].pos))
			}
			v.Rows = append(v.Rows, row)
			if !p.acceptOp(",") {
				return v, nil
			}
		}
	}
	if p.isKw("table") {
		return nil, p.unsupportedAt(p.peek(), "TABLE as a query is not supported yet")
	}
	if err := p.expectKw("select"); err != nil {
		return nil, err
	}
	s := &Select{}
	if p.isKw("distinct") {
		dt := p.advance()
		if p.isKw("on") {
			return nil, pgerror.WithHintf(p.unsupportedAt(dt, "SELECT DISTINCT ON is not supported"),
				"use SELECT DISTINCT, or GROUP BY")
		}
		s.Distinct = true
	} else {
		p.acceptKw("all")
	}
	exprs, err := p.selectExprs()
	if err != nil {
		return nil, err
	}
	s.Exprs = exprs
	if p.isKw("into") {
		return nil, p.unsupportedAt(p.peek(), "SELECT INTO is not supported")
	}
	if p.acceptKw("from") {
		for {
			t, err := p.tableRef()
			if err != nil {
				return nil, err
			}
			s.From = append(s.From, t)
			if !p.acceptOp(",") {
				break
			}
		}
	}
	if p.acceptKw("where") {
		if s.Where, err = p.parseExpr(); err != nil {
			return nil, err
		}
	}
	if p.acceptKw("group") {
		if err := p.expectKw("by"); err != nil {
			return nil, err
		}
		for {
			if p.isKw("rollup") || p.isKw("cube") || p.isKw("grouping") {
				return nil, p.unsupportedAt(p.peek(), "%s is not supported", strings.ToUpper(p.peek().val))
			}
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			s.GroupBy = append(s.GroupBy, e)
			if !p.acceptOp(",") {
				break
			}
		}
	}
	if p.acceptKw("having") {
		if s.Having, err = p.parseExpr(); err != nil {
			return nil, err
		}
	}
	if p.isKw("window") {
		return nil, p.unsupportedAt(p.peek(), "WINDOW is not supported")
	}
	return s, nil
}

// aliasCandidate reports whether the next token can be an alias written
// without AS.
func (p *parser) aliasCandidate() bool {
	t := p.peek()
	return t.kind == tokIdent && (t.quoted || !reservedKeywords[t.val] && !joinWords[t.val])
}

// tableAlias reads [AS] alias [(cols)].
func (p *parser) tableAlias(allowCols bool) (string, []string, error) {
	var alias string
	if p.acceptKw("as") {
		a, err := p.ident()
		if err != nil {
			return "", nil, err
		}
		alias = a
	} else if p.aliasCandidate() {
		alias = p.advance().val
	} else {
		return "", nil, nil
	}
	if allowCols && p.isOp("(") {
		cols, err := p.parenIdentList(false)
		if err != nil {
			return "", nil, err
		}
		return alias, cols, nil
	}
	return alias, nil, nil
}

// tableRef reads one FROM item with the joins that follow it.
func (p *parser) tableRef() (TableExpr, error) {
	left, err := p.tablePrimary()
	if err != nil {
		return nil, err
	}
	for {
		var kind JoinKind
		start := p.peek()
		switch {
		case p.isKw("natural"):
			return nil, pgerror.WithHintf(p.unsupportedAt(start, "NATURAL JOIN is not supported"), "write the join condition with ON or USING")
		case p.acceptKw("cross"):
			kind = JoinCross
		case p.acceptKw("inner"):
			kind = JoinInner
		case p.acceptKw("left"):
			kind = JoinLeft
		case p.acceptKw("right"):
			kind = JoinRight
		case p.acceptKw("full"):
			kind = JoinFull
		case p.isKw("join"):
			kind = JoinInner
		default:
			return left, nil
		}
		if kind == JoinLeft || kind == JoinRight || kind == JoinFull {
			p.acceptKw("outer")
		}
		if err := p.expectKw("join"); err != nil {
			return nil, err
		}
		if p.isKw("lateral") {
			return nil, p.unsupportedAt(p.peek(), "LATERAL is not supported")
		}
		right, err := p.tablePrimary()
		if err != nil {
			return nil, err
		}
		j := &JoinTable{Kind: kind, Left: left, Right: right}
		if kind != JoinCross {
			switch {
			case p.acceptKw("on"):
				if j.On, err = p.parseExpr(); err != nil {
					return nil, err
				}
			case p.isKw("using"):
				p.advance()
				if j.Using, err = p.parenIdentList(false); err != nil {
					return nil, err
				}
			default:
				return nil, pgerror.WithHintf(p.errNear(p.peek()), "a JOIN needs ON condition or USING (columns)")
			}
		}
		left = j
	}
}

// tablePrimary reads a table name, a derived table, a function call or a
// parenthesized join.
func (p *parser) tablePrimary() (TableExpr, error) {
	if p.isKw("lateral") {
		return nil, p.unsupportedAt(p.peek(), "LATERAL is not supported")
	}
	if p.isOp("(") {
		if p.isKwAt(1, "select") || p.isKwAt(1, "with") || p.isKwAt(1, "values") ||
			(p.peekAt(1).kind == tokOp && p.peekAt(1).val == "(") {
			// A derived table (or a parenthesized join starting with a
			// derived table, which is rare enough to leave out).
			p.advance()
			q, err := p.parseQuery()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			alias, cols, err := p.tableAlias(true)
			if err != nil {
				return nil, err
			}
			if alias == "" {
				return nil, pgerror.WithHintf(
					pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError, "subquery in FROM must have an alias"), charPos(p.src, p.peek().pos)),
					"for example, FROM (SELECT ...) AS foo")
			}
			return &DerivedTable{Select: q, Alias: alias, Cols: cols}, nil
		}
		p.advance()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
				"FROM nested too deeply"), charPos(p.src, p.peek().pos))
		}
		t, err := p.tableRef()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		if p.aliasCandidate() || p.isKw("as") {
			return nil, p.unsupportedAt(p.peek(), "an alias for a parenthesized join is not supported")
		}
		return t, nil
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.isOp("(") {
		// A set-returning function: generate_series(1, 3) AS s(i).
		p.advance()
		f := &FuncCall{Name: name.Parts}
		if !p.isOp(")") {
			for {
				a, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				f.Args = append(f.Args, a)
				if !p.acceptOp(",") {
					break
				}
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		ordinality := false
		if p.isKw("with") && p.isKwAt(1, "ordinality") {
			p.advance()
			p.advance()
			ordinality = true
		}
		alias, cols, err := p.tableAlias(true)
		if err != nil {
			return nil, err
		}
		return &FuncTable{Func: f, Ordinality: ordinality, Alias: alias, Cols: cols}, nil
	}
	alias, cols, err := p.tableAlias(true)
	if err != nil {
		return nil, err
	}
	if len(cols) > 0 {
		return nil, p.unsupportedAt(p.toks[p.i-1], "column aliases for a table are not supported")
	}
	if p.isKw("tablesample") {
		return nil, p.unsupportedAt(p.peek(), "TABLESAMPLE is not supported")
	}
	return &AliasedTable{Name: name, Alias: alias}, nil
}

// castType reads the target type of a cast. Besides kvnode's column types
// it accepts PostgreSQL's OID alias types, catalog types that are text in
// kvnode (name, "char"), schema-qualified names (pg_catalog.text) and
// one-dimensional array types (int8[]).
func (p *parser) castType() (types.T, types.Mod, string, error) {
	start := p.peek()
	if start.kind != tokIdent {
		return types.Unknown, types.Mod{}, "", p.errNear(start)
	}
	if !start.quoted && (start.val == "pg_catalog" || start.val == "public") && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "." {
		p.advance()
		p.advance()
	}
	t := p.peek()
	if t.kind != tokIdent {
		return types.Unknown, types.Mod{}, "", p.errNear(t)
	}
	name := t.val
	special := ""
	switch {
	case t.quoted && name == "char", !t.quoted && (name == "name" || name == "bpchar" || name == "int2vector" || name == "oidvector"):
		p.advance()
		if name == "int2vector" || name == "oidvector" {
			special = name
		}
		typ := types.String
		return p.castArraySuffixNoMod(typ, special)
	case !t.quoted && (name == "oid" || name == "regclass" || name == "regtype" || name == "regnamespace" ||
		name == "regproc" || name == "regprocedure" || name == "regrole" || name == "regoper"):
		p.advance()
		typ := types.Unknown
		if name == "oid" {
			typ = types.Int
		}
		return p.castArraySuffixNoMod(typ, name)
	}
	if typ, ok := ArrayTypeName(name); ok {
		// PostgreSQL's name of an array type (_int8 is int8[]).
		p.advance()
		if p.isOp("[") {
			return types.Unknown, types.Mod{}, "", p.noArrayOfArray(t)
		}
		return typ, types.Mod{}, name, nil
	}
	typ, mod, err := p.typeNameNoArray()
	if err != nil {
		return types.Unknown, mod, "", err
	}
	typ, special, err = p.castArraySuffix(typ, "")
	if typ.IsArray() {
		mod = types.Mod{}
	}
	return typ, mod, special, err
}

func (p *parser) castArraySuffixNoMod(t types.T, special string) (types.T, types.Mod, string, error) {
	t, special, err := p.castArraySuffix(t, special)
	return t, types.Mod{}, special, err
}

func (p *parser) castArraySuffix(t types.T, special string) (types.T, string, error) {
	if !p.isOp("[") {
		return t, special, nil
	}
	p.advance()
	if err := p.expectOp("]"); err != nil {
		return types.Unknown, "", err
	}
	if special != "" && special != "oid" || t == types.Unknown {
		return types.Unknown, "", p.unsupportedAt(p.toks[p.i-1], "arrays of %s are not supported", castTypeName(t, special))
	}
	return types.ArrayOf(t), strings.ToLower(types.ArrayOf(t).String()), nil
}
