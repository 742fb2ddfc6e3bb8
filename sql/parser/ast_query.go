package parser

import (
	"strings"

	"github.com/kvnode/kvnode/sql/types"
)

// This file holds the AST of queries: the SELECT statement with its FROM
// clause (joins, derived tables), set operations, WITH, and the
// expressions only queries use (subqueries, CASE, arrays, regular
// expressions, COLLATE).

// SelectStatement is a query: *Select, *SetOp or *ValuesClause.
type SelectStatement interface {
	Stmt
	selectStatement()
}

// CTE is one WITH item: name [(cols)] AS (query). Recursive is set on
// every item of a WITH RECURSIVE list (the keyword belongs to the list, as
// in PostgreSQL: an item that does not read itself is an ordinary one).
type CTE struct {
	Name      string
	Cols      []string
	Select    SelectStatement
	Recursive bool
}

func formatWith(b *strings.Builder, with []*CTE) {
	if len(with) == 0 {
		return
	}
	b.WriteString("WITH ")
	if with[0].Recursive {
		b.WriteString("RECURSIVE ")
	}
	for i, c := range with {
		if i > 0 {
			b.WriteString(", ")
		}
		QuoteIdent(b, c.Name)
		if len(c.Cols) > 0 {
			b.WriteString(" (")
			formatIdents(b, c.Cols)
			b.WriteByte(')')
		}
		b.WriteString(" AS (")
		c.Select.Format(b)
		b.WriteByte(')')
	}
	b.WriteByte(' ')
}

func formatOrderLimit(b *strings.Builder, order []*OrderBy, limit, offset Expr) {
	if len(order) > 0 {
		b.WriteString(" ORDER BY ")
		for i, o := range order {
			if i > 0 {
				b.WriteString(", ")
			}
			o.Expr.Format(b)
			if o.Desc {
				b.WriteString(" DESC")
			}
			switch o.Nulls {
			case NullsFirst:
				b.WriteString(" NULLS FIRST")
			case NullsLast:
				b.WriteString(" NULLS LAST")
			}
		}
	}
	if limit != nil {
		b.WriteString(" LIMIT ")
		limit.Format(b)
	}
	if offset != nil {
		b.WriteString(" OFFSET ")
		offset.Format(b)
	}
}

// NullsOrder is ORDER BY's NULLS FIRST / NULLS LAST (default: as PostgreSQL,
// last ascending, first descending).
type NullsOrder uint8

// NULLS placement.
const (
	NullsDefault NullsOrder = iota
	NullsFirst
	NullsLast
)

// SetOpKind is UNION, INTERSECT or EXCEPT.
type SetOpKind uint8

// Set operations.
const (
	Union SetOpKind = iota + 1
	Intersect
	Except
)

func (k SetOpKind) String() string {
	switch k {
	case Union:
		return "UNION"
	case Intersect:
		return "INTERSECT"
	}
	return "EXCEPT"
}

// SetOp is Left UNION|INTERSECT|EXCEPT [ALL] Right, with the ORDER BY,
// LIMIT and OFFSET that apply to the combined result.
type SetOp struct {
	With        []*CTE
	Kind        SetOpKind
	All         bool
	Left, Right SelectStatement
	OrderBy     []*OrderBy
	Limit       Expr
	Offset      Expr
}

// Format writes the operation with both sides parenthesized.
func (s *SetOp) Format(b *strings.Builder) {
	formatWith(b, s.With)
	b.WriteByte('(')
	s.Left.Format(b)
	b.WriteString(") ")
	b.WriteString(s.Kind.String())
	if s.All {
		b.WriteString(" ALL")
	}
	b.WriteString(" (")
	s.Right.Format(b)
	b.WriteByte(')')
	formatOrderLimit(b, s.OrderBy, s.Limit, s.Offset)
}

func (s *SetOp) String() string       { return str(s) }
func (s *SetOp) StatementTag() string { return "SELECT" }
func (*SetOp) stmtNode()              {}
func (*SetOp) selectStatement()       {}

// ValuesClause is VALUES (a, b), (c, d) as a query.
type ValuesClause struct {
	Rows [][]Expr
}

// Format writes the rows.
func (s *ValuesClause) Format(b *strings.Builder) {
	b.WriteString("VALUES ")
	for i, r := range s.Rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, x := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			x.Format(b)
		}
		b.WriteByte(')')
	}
}

func (s *ValuesClause) String() string       { return str(s) }
func (s *ValuesClause) StatementTag() string { return "SELECT" }
func (*ValuesClause) stmtNode()              {}
func (*ValuesClause) selectStatement()       {}
func (*Select) selectStatement()             {}

// TableExpr is an item of FROM: *AliasedTable, *DerivedTable, *FuncTable
// or *JoinTable.
type TableExpr interface {
	Node
	tableExpr()
}

// AliasedTable is a table name with an optional alias.
type AliasedTable struct {
	Name  TableName
	Alias string
}

// DerivedTable is (query) [AS] alias [(cols)].
type DerivedTable struct {
	Select SelectStatement
	Alias  string
	Cols   []string
}

// FuncTable is a set-returning function in FROM:
// f(args) [WITH ORDINALITY] [AS] alias [(cols)]. WITH ORDINALITY adds a
// column numbering the function's rows from 1.
type FuncTable struct {
	Func       *FuncCall
	Ordinality bool
	Alias      string
	Cols       []string
}

// JoinKind is the kind of a join.
type JoinKind uint8

// Join kinds.
const (
	JoinInner JoinKind = iota + 1
	JoinLeft
	JoinRight
	JoinFull
	JoinCross
)

func (k JoinKind) String() string {
	switch k {
	case JoinInner:
		return "JOIN"
	case JoinLeft:
		return "LEFT JOIN"
	case JoinRight:
		return "RIGHT JOIN"
	case JoinFull:
		return "FULL JOIN"
	}
	return "CROSS JOIN"
}

// JoinTable is Left kind JOIN Right [ON cond | USING (cols)].
type JoinTable struct {
	Kind        JoinKind
	Left, Right TableExpr
	On          Expr
	Using       []string
}

func formatAlias(b *strings.Builder, alias string, cols []string) {
	if alias == "" {
		return
	}
	b.WriteString(" AS ")
	QuoteIdent(b, alias)
	if len(cols) > 0 {
		b.WriteString(" (")
		formatIdents(b, cols)
		b.WriteByte(')')
	}
}

// Format writes the table and its alias.
func (t *AliasedTable) Format(b *strings.Builder) {
	t.Name.Format(b)
	formatAlias(b, t.Alias, nil)
}

// Format writes the parenthesized query and its alias.
func (t *DerivedTable) Format(b *strings.Builder) {
	b.WriteByte('(')
	t.Select.Format(b)
	b.WriteByte(')')
	formatAlias(b, t.Alias, t.Cols)
}

// Format writes the call and its alias.
func (t *FuncTable) Format(b *strings.Builder) {
	t.Func.Format(b)
	if t.Ordinality {
		b.WriteString(" WITH ORDINALITY")
	}
	formatAlias(b, t.Alias, t.Cols)
}

// Format writes the join, parenthesizing a join on the right.
func (t *JoinTable) Format(b *strings.Builder) {
	t.Left.Format(b)
	b.WriteByte(' ')
	b.WriteString(t.Kind.String())
	b.WriteByte(' ')
	if _, ok := t.Right.(*JoinTable); ok {
		b.WriteByte('(')
		t.Right.Format(b)
		b.WriteByte(')')
	} else {
		t.Right.Format(b)
	}
	switch {
	case t.On != nil:
		b.WriteString(" ON ")
		t.On.Format(b)
	case len(t.Using) > 0:
		b.WriteString(" USING (")
		formatIdents(b, t.Using)
		b.WriteByte(')')
	}
}

func (t *AliasedTable) String() string { return str(t) }
func (t *DerivedTable) String() string { return str(t) }
func (t *FuncTable) String() string    { return str(t) }
func (t *JoinTable) String() string    { return str(t) }
func (*AliasedTable) tableExpr()       {}
func (*DerivedTable) tableExpr()       {}
func (*FuncTable) tableExpr()          {}
func (*JoinTable) tableExpr()          {}

// ---- query expressions ----

// Subquery is (query) as a value, or EXISTS (query).
type Subquery struct {
	Select SelectStatement
	Exists bool
}

// When is one WHEN cond THEN val of a CASE.
type When struct{ Cond, Val Expr }

// CaseExpr is CASE [operand] WHEN ... THEN ... [ELSE ...] END.
type CaseExpr struct {
	Operand Expr
	Whens   []*When
	Else    Expr
}

// QuantExpr is Left op ANY|SOME|ALL (Right), where Right is an array or a
// *Subquery.
type QuantExpr struct {
	Op    CmpOp
	All   bool
	Left  Expr
	Right Expr
}

// ArrayExpr is ARRAY[elems] or ARRAY(subquery).
type ArrayExpr struct {
	Elems []Expr
	Sub   *Subquery
}

// RegexExpr is Expr ~ Pattern and its variants !~, ~*, !~*.
type RegexExpr struct {
	Expr, Pattern   Expr
	Not, CaseInsens bool
}

// CollateExpr is Expr COLLATE name.
type CollateExpr struct {
	Expr      Expr
	Collation string
}

// IndexExpr is Expr[Index] (array subscript).
type IndexExpr struct {
	Expr, Index Expr
}

// Format writes the subquery.
func (e *Subquery) Format(b *strings.Builder) {
	if e.Exists {
		b.WriteString("EXISTS ")
	}
	b.WriteByte('(')
	e.Select.Format(b)
	b.WriteByte(')')
}

// Format writes the CASE.
func (e *CaseExpr) Format(b *strings.Builder) {
	b.WriteString("CASE")
	if e.Operand != nil {
		b.WriteByte(' ')
		formatOperand(b, e.Operand)
	}
	for _, w := range e.Whens {
		b.WriteString(" WHEN ")
		formatOperand(b, w.Cond)
		b.WriteString(" THEN ")
		formatOperand(b, w.Val)
	}
	if e.Else != nil {
		b.WriteString(" ELSE ")
		formatOperand(b, e.Else)
	}
	b.WriteString(" END")
}

// Format writes the quantified comparison.
func (e *QuantExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Left)
	b.WriteByte(' ')
	b.WriteString(e.Op.String())
	if e.All {
		b.WriteString(" ALL ")
	} else {
		b.WriteString(" ANY ")
	}
	if s, ok := e.Right.(*Subquery); ok && !s.Exists {
		s.Format(b)
		return
	}
	b.WriteByte('(')
	e.Right.Format(b)
	b.WriteByte(')')
}

// Format writes the array constructor.
func (e *ArrayExpr) Format(b *strings.Builder) {
	b.WriteString("ARRAY")
	if e.Sub != nil {
		e.Sub.Format(b)
		return
	}
	b.WriteByte('[')
	for i, x := range e.Elems {
		if i > 0 {
			b.WriteString(", ")
		}
		x.Format(b)
	}
	b.WriteByte(']')
}

// Format writes the match.
func (e *RegexExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	b.WriteByte(' ')
	if e.Not {
		b.WriteByte('!')
	}
	b.WriteByte('~')
	if e.CaseInsens {
		b.WriteByte('*')
	}
	b.WriteByte(' ')
	formatOperand(b, e.Pattern)
}

// Format writes the COLLATE clause.
func (e *CollateExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	b.WriteString(" COLLATE ")
	formatDottedIdent(b, e.Collation)
}

// Format writes the subscript.
func (e *IndexExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	b.WriteByte('[')
	e.Index.Format(b)
	b.WriteByte(']')
}

func formatDottedIdent(b *strings.Builder, name string) {
	for i, p := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		QuoteIdent(b, p)
	}
}

func (e *Subquery) String() string    { return str(e) }
func (e *CaseExpr) String() string    { return str(e) }
func (e *QuantExpr) String() string   { return str(e) }
func (e *ArrayExpr) String() string   { return str(e) }
func (e *RegexExpr) String() string   { return str(e) }
func (e *CollateExpr) String() string { return str(e) }
func (e *IndexExpr) String() string   { return str(e) }
func (*Subquery) exprNode()           {}
func (*CaseExpr) exprNode()           {}
func (*QuantExpr) exprNode()          {}
func (*ArrayExpr) exprNode()          {}
func (*RegexExpr) exprNode()          {}
func (*CollateExpr) exprNode()        {}
func (*IndexExpr) exprNode()          {}

// castTypeName renders the target of a cast: the special name when there
// is one (regclass, oid, int8[]), the type otherwise.
func castTypeName(t types.T, special string) string {
	if special != "" {
		return special
	}
	return t.String()
}
