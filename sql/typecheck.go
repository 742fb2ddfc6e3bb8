package sql

import (
	"math"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// texpr is a type-checked expression, ready to evaluate. Column references
// are resolved to positions in the row the expression is evaluated on.
type texpr interface {
	typ() types.T
}

type (
	constExpr struct {
		t types.T
		d types.Datum
		// int4: an integer literal that PostgreSQL types as int4 (it
		// fits), for sum's result type (pgIntWidth).
		int4 bool
	}
	colExpr struct {
		idx  int
		t    types.T
		name string
		mod  types.Mod // the declared type of the table column it reads
	}
	// placeholderExpr reads params[idx]. Its type is the statement's
	// shared inference result, so a later occurrence that determines it
	// types the earlier ones too.
	placeholderExpr struct {
		idx int
		p   *paramSet
	}
	binExpr struct {
		op   parser.BinaryOp
		l, r texpr
		t    types.T
	}
	cmpExpr struct {
		op   parser.CmpOp
		l, r texpr
	}
	andExpr    struct{ l, r texpr }
	orExpr     struct{ l, r texpr }
	notExpr    struct{ e texpr }
	negExpr    struct{ e texpr }
	isNullExpr struct {
		e   texpr
		not bool
	}
	inExpr struct {
		e    texpr
		list []texpr
		not  bool
	}
	likeExpr struct {
		e, pat   texpr
		not, ci  bool
		compiled *likeMatcher // set when the pattern is a constant
	}
	castExpr struct {
		e  texpr
		to types.T
	}
	funcExpr struct {
		fn   *builtin
		args []texpr
		t    types.T
	}
	// aggRef reads the result of the idx-th aggregate of the query (or,
	// with inRow, the row's column idx, where grouping put it).
	aggRef struct {
		idx   int
		t     types.T
		mod   types.Mod // the result's declared width (sum(float4) is FLOAT4)
		inRow bool
	}
)

func (e *constExpr) typ() types.T       { return e.t }
func (e *colExpr) typ() types.T         { return e.t }
func (e *placeholderExpr) typ() types.T { return e.p.types[e.idx] }
func (e *binExpr) typ() types.T         { return e.t }
func (e *cmpExpr) typ() types.T         { return types.Bool }
func (e *andExpr) typ() types.T         { return types.Bool }
func (e *orExpr) typ() types.T          { return types.Bool }
func (e *notExpr) typ() types.T         { return types.Bool }
func (e *negExpr) typ() types.T         { return e.e.typ() }
func (e *isNullExpr) typ() types.T      { return types.Bool }
func (e *inExpr) typ() types.T          { return types.Bool }
func (e *likeExpr) typ() types.T        { return types.Bool }
func (e *castExpr) typ() types.T        { return e.to }
func (e *funcExpr) typ() types.T        { return e.t }
func (e *aggRef) typ() types.T          { return e.t }

// paramSet holds the types of a statement's placeholders: what the client
// declared and what the analyzer inferred. It is shared by every
// placeholderExpr of the statement.
type paramSet struct {
	declared []types.T // client-declared, Unknown where not declared
	types    []types.T // final type of each placeholder
	// access collects what the statement needs of its user (privileges,
	// users_exec.go), checked at every execution.
	access []accessReq
	// db is the session's database when the statement was analyzed: the
	// one its unqualified table names resolve in ("" means defaultdb).
	db string
	// s is the session the statement is analyzed for (nil outside one):
	// its transaction's own tables resolve through it (ddltxn.go).
	s *session
}

func newParamSet(n int, declared []types.T) *paramSet {
	p := &paramSet{declared: make([]types.T, n), types: make([]types.T, n)}
	copy(p.declared, declared)
	copy(p.types, declared)
	return p
}

// finish gives every placeholder that nothing determined the type STRING:
// the wire server then sends and decodes it as text.
func (p *paramSet) finish() {
	for i, t := range p.types {
		if t == types.Unknown {
			p.types[i] = types.String
		}
	}
}

// scopeTable is one source of columns visible to an expression.
type scopeTable struct {
	names []string // qualifiers that name it: table name, alias, "excluded"
	// qualifiedOnly tables are reachable only as name.col (excluded.v).
	qualifiedOnly bool
	cols          []scopeCol
	offset        int // position of cols[0] in the evaluated row
	// hidden marks the columns * leaves out (rowid); nil: none.
	hidden []bool
	// base is the user table a FROM item scans, nil for every other
	// item (a subquery, a virtual table, a function).
	base *tableInfo
}

type scopeCol struct {
	name string
	t    types.T
	mod  types.Mod // the table column's declared type modifier
}

// analyzer type-checks expressions of one statement.
type analyzer struct {
	tables []scopeTable
	params *paramSet
	// clause names the clause being analyzed, for error messages.
	clause string
	// aggs collects aggregate calls when allowAggs; nil otherwise.
	allowAggs bool
	aggs      []*aggregate
	inAgg     bool
	// noCols: column references are an error (DEFAULT, VALUES, LIMIT).
	noCols bool
	// target names the column a value is being checked for (INSERT,
	// UPDATE SET), so that conversion errors can name it.
	target string
	// The query pipeline (query.go) sets these: outer is the enclosing
	// query's analyzer, whose columns a correlated subquery reads;
	// correlated records that this scope read one; qb builds subqueries
	// (nil: subqueries are refused); with aggsInRow an aggregate's result
	// is read from the row at aggBase+i, where the grouping operator puts
	// it.
	outer      *analyzer
	correlated bool
	qb         *queryBuilder
	aggsInRow  bool
	aggBase    int
	// allowWindows: window functions may appear (the select list and
	// ORDER BY of a query); they are collected in windows.
	allowWindows bool
	windows      []*windowFunc
}

// rank orders operands for type inference: typed expressions first, then
// literals with a natural type, then string literals, then NULL and
// placeholders that still have no type. The operand of lowest rank is
// checked first and its type is the desired type of the others.
func (a *analyzer) rank(e parser.Expr) int {
	switch v := e.(type) {
	case *parser.NumVal, *parser.BoolVal:
		return 1
	case *parser.StrVal:
		if v.Bytes {
			return 1
		}
		return 2
	case *parser.NullVal:
		return 3
	case *parser.Placeholder:
		if i := v.Idx - 1; i < len(a.params.types) && a.params.types[i] != types.Unknown {
			return 1
		}
		return 3
	}
	return 0
}

// check type-checks e. desired is a hint for untyped operands (literals,
// placeholders, NULL); the result's type may differ, and callers that need
// a specific type call coerce.
func (a *analyzer) check(e parser.Expr, desired types.T) (texpr, error) {
	switch v := e.(type) {
	case *parser.NumVal:
		return a.checkNum(v, desired)
	case *parser.StrVal:
		if v.Bytes {
			return &constExpr{t: types.Bytes, d: []byte(v.Val)}, nil
		}
		if desired == types.Unknown || desired == types.String {
			return &constExpr{t: types.String, d: v.Val}, nil
		}
		d, err := types.ParseText(desired, []byte(v.Val))
		if err != nil {
			if a.target != "" {
				err = errors.Wrapf(err, "value for column %q", a.target)
			}
			return nil, pgerror.WithCode(err, pgerror.CodeInvalidTextRepresentation)
		}
		return &constExpr{t: desired, d: d}, nil
	case *parser.NullVal:
		return &constExpr{t: desired}, nil
	case *parser.BoolVal:
		return &constExpr{t: types.Bool, d: v.Val}, nil
	case parser.DefaultExpr:
		return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSyntaxError, "DEFAULT is not allowed in %s", a.clauseName()),
			"DEFAULT can be used as a whole value in VALUES and in SET")
	case *parser.Placeholder:
		return a.checkPlaceholder(v, desired)
	case *parser.ColumnRef:
		return a.resolveColumn(v)
	case *parser.BinaryExpr:
		return a.checkBinary(v, desired)
	case *parser.ComparisonExpr:
		l, r, err := a.checkPair(v.Left, v.Right, types.Unknown)
		if err != nil {
			return nil, err
		}
		l, r, err = a.unifyComparison(v.Op.String(), l, r)
		if err != nil {
			return nil, err
		}
		if v.Op == parser.CmpIsDistinct || v.Op == parser.CmpIsNotDistinct {
			return &distinctExpr{l: l, r: r, not: v.Op == parser.CmpIsNotDistinct}, nil
		}
		return &cmpExpr{op: v.Op, l: l, r: r}, nil
	case *parser.AndExpr:
		l, err := a.checkBool(v.Left, "AND")
		if err != nil {
			return nil, err
		}
		r, err := a.checkBool(v.Right, "AND")
		if err != nil {
			return nil, err
		}
		return &andExpr{l: l, r: r}, nil
	case *parser.OrExpr:
		l, err := a.checkBool(v.Left, "OR")
		if err != nil {
			return nil, err
		}
		r, err := a.checkBool(v.Right, "OR")
		if err != nil {
			return nil, err
		}
		return &orExpr{l: l, r: r}, nil
	case *parser.NotExpr:
		x, err := a.checkBool(v.Expr, "NOT")
		if err != nil {
			return nil, err
		}
		return &notExpr{e: x}, nil
	case *parser.UnaryMinus:
		numDesired := desired
		if numDesired != types.Float && numDesired != types.Decimal && numDesired != types.Interval {
			numDesired = types.Int
		}
		x, err := a.check(v.Expr, numDesired)
		if err != nil {
			return nil, err
		}
		if x, err = a.settle(v.Expr, x, numDesired); err != nil {
			return nil, err
		}
		switch x.typ() {
		case types.Int, types.Float, types.Unknown, types.Decimal, types.Interval:
		default:
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported unary operator: -<%s>", typeName(x.typ()))
		}
		return &negExpr{e: x}, nil
	case *parser.IsNullExpr:
		x, err := a.check(v.Expr, types.Unknown)
		if err != nil {
			return nil, err
		}
		return &isNullExpr{e: x, not: v.Not}, nil
	case *parser.InExpr:
		return a.checkIn(v)
	case *parser.BetweenExpr:
		// x BETWEEN a AND b is x >= a AND x <= b; desugaring it lets the
		// planner use both bounds.
		var out parser.Expr = &parser.AndExpr{
			Left:  &parser.ComparisonExpr{Op: parser.CmpGE, Left: v.Expr, Right: v.From},
			Right: &parser.ComparisonExpr{Op: parser.CmpLE, Left: v.Expr, Right: v.To},
		}
		if v.Not {
			out = &parser.NotExpr{Expr: out}
		}
		return a.check(out, desired)
	case *parser.LikeExpr:
		x, err := a.check(v.Expr, types.String)
		if err != nil {
			return nil, err
		}
		pat, err := a.check(v.Pattern, types.String)
		if err != nil {
			return nil, err
		}
		for _, o := range []texpr{x, pat} {
			if t := o.typ(); t != types.String && t != types.Unknown {
				return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported comparison operator: <%s> LIKE <%s>", typeName(x.typ()), typeName(pat.typ()))
			}
		}
		le := &likeExpr{e: x, pat: pat, not: v.Not, ci: v.CaseInsens}
		if c, ok := pat.(*constExpr); ok && c.d != nil {
			le.compiled = compileLike(c.d.(string), v.CaseInsens)
		}
		return le, nil
	case *parser.CastExpr:
		switch v.Special {
		case "regclass", "regtype", "regnamespace", "regproc", "regprocedure", "regrole":
			x, err := a.check(v.Expr, types.Unknown)
			if err != nil {
				return nil, err
			}
			switch x.typ() {
			case types.Int:
				return &regCastExpr{e: x, kind: v.Special, toName: true}, nil
			case types.String, types.Unknown:
				return &regCastExpr{e: settleTo(x, types.String), kind: v.Special}, nil
			}
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "invalid cast: %s -> %s", typeName(x.typ()), v.Special)
		case "regoper":
			return nil, unsupported("casts to regoper are not supported")
		}
		x, err := a.check(v.Expr, v.Type)
		if err != nil {
			return nil, err
		}
		if isVectorColumn(v.Expr, x.typ()) && v.Type == types.String {
			// pg_index's int2vector columns print as "3 4", not "{3,4}":
			// SQLAlchemy's inspector splits ix.indkey::varchar on spaces.
			return a.check(&parser.FuncCall{Name: []string{"array_to_string"},
				Args: []parser.Expr{v.Expr, &parser.StrVal{Val: " "}}}, types.String)
		}
		switch k := x.(type) {
		case *constExpr:
			if k.int4 {
				x = &constExpr{t: k.t, d: k.d} // 1::INT8 is no longer an int4 literal
			}
		case *colExpr, *assignExpr:
			// A cast to INT8 or FLOAT8 drops the declared width of an
			// INT2, INT4 or REAL: b::INT8 is an int8, as in PostgreSQL.
			if (v.Type == types.Int || v.Type == types.Float) && v.Mod.IsZero() && x.typ() == v.Type && declaredWidth(x) {
				x = &castExpr{e: x, to: v.Type}
			}
		}
		if x.typ() != v.Type {
			if !castAllowed(x.typ(), v.Type) {
				return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "invalid cast: %s -> %s", typeName(x.typ()), v.Type)
			}
			if x, err = foldCast(&castExpr{e: x, to: v.Type}); err != nil {
				return nil, err
			}
		}
		if !v.Mod.IsZero() {
			return castMod(x, v.Mod)
		}
		return x, nil
	case *parser.FuncCall:
		return a.checkFunc(v, desired)
	case *parser.CaseExpr, *parser.Subquery, *parser.QuantExpr, *parser.ArrayExpr, *parser.RegexExpr,
		*parser.CollateExpr, *parser.IndexExpr, *parser.FieldAccess:
		return a.checkQueryExpr(e, desired)
	}
	return nil, errors.AssertionFailedf("unhandled expression %T", e)
}

func (a *analyzer) clauseName() string {
	if a.clause == "" {
		return "expression"
	}
	return a.clause
}

func (a *analyzer) checkNum(v *parser.NumVal, desired types.T) (texpr, error) {
	if desired == types.Decimal || v.IsFloat && (desired == types.Unknown || desired == types.Int) && a.numericLiterals() {
		return decimalLiteral(v.Text)
	}
	if v.IsFloat || desired == types.Float {
		f, err := strconv.ParseFloat(v.Text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, pgerror.Newf(pgerror.CodeInvalidTextRepresentation, "invalid number %q", v.Text)
		}
		return &constExpr{t: types.Float, d: f}, nil
	}
	n, err := strconv.ParseInt(v.Text, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range: %s", v.Text),
				"INT8 holds values from -9223372036854775808 to 9223372036854775807; write a FLOAT with a decimal point")
		}
		return nil, pgerror.Newf(pgerror.CodeInvalidTextRepresentation, "invalid number %q", v.Text)
	}
	if desired == types.String {
		// '1' would have been a string; 1 compared with a STRING column is
		// a type error, reported by the caller.
		return &constExpr{t: types.Int, d: n}, nil
	}
	return &constExpr{t: types.Int, d: n, int4: n >= math.MinInt32 && n <= math.MaxInt32}, nil
}

// numericLiterals reports whether a literal with a point or an exponent
// (1.5, 1e3) is a NUMERIC, as in PostgreSQL, rather than the FLOAT8 of
// release 2.0: from cluster version 2.1, when every node has NUMERIC, in
// the queries (select lists, WHERE, subqueries). Where a context wants a
// FLOAT8 (a FLOAT8 column compared or assigned) the literal is one still.
func (a *analyzer) numericLiterals() bool {
	return a.qb != nil && a.qb.e.types21Active()
}

func (a *analyzer) checkPlaceholder(v *parser.Placeholder, desired types.T) (texpr, error) {
	i := v.Idx - 1
	if i >= len(a.params.types) {
		return nil, errors.AssertionFailedf("placeholder $%d beyond the statement's %d", v.Idx, len(a.params.types))
	}
	p := a.params
	pe := &placeholderExpr{idx: i, p: p}
	if decl := p.declared[i]; decl != types.Unknown {
		if desired != types.Unknown && desired != decl && convertible(decl, desired) {
			// Declared as TEXT (or INT where FLOAT is needed): convert the
			// value at execution, as an untyped literal would be.
			return &castExpr{e: pe, to: desired}, nil
		}
		return pe, nil
	}
	if p.types[i] == types.Unknown && desired != types.Unknown {
		p.types[i] = desired
	}
	return pe, nil
}

// convertible reports whether a declared parameter type may be converted
// implicitly to the type its context needs.
func convertible(from, to types.T) bool {
	return from == types.String || from == types.Int && to == types.Float
}

// checkPair checks two operands, the one of lower rank first, so that an
// untyped operand takes its type from the other.
func (a *analyzer) checkPair(le, re parser.Expr, desired types.T) (texpr, texpr, error) {
	if a.rank(re) < a.rank(le) {
		r, err := a.check(re, desired)
		if err != nil {
			return nil, nil, err
		}
		l, err := a.check(le, hint(r.typ(), desired))
		if err != nil {
			return nil, nil, err
		}
		if r, err = a.settle(re, r, l.typ()); err != nil {
			return nil, nil, err
		}
		return l, r, nil
	}
	l, err := a.check(le, desired)
	if err != nil {
		return nil, nil, err
	}
	r, err := a.check(re, hint(l.typ(), desired))
	if err != nil {
		return nil, nil, err
	}
	// An operand that nothing typed yet takes the other's type: $1 = k.
	if l, err = a.settle(le, l, r.typ()); err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

// checkConcatPair checks the operands of ||: like checkPair, except that
// an untyped string literal beside a value of another type is TEXT (1 ||
// 'a' is '1a', as PostgreSQL's anynonarray || text), not a value of that
// type; beside BYTES or an array it takes that type.
func (a *analyzer) checkConcatPair(le, re parser.Expr, desired types.T) (texpr, texpr, error) {
	lv, ls := le.(*parser.StrVal)
	rv, rs := re.(*parser.StrVal)
	if ls == rs || ls && lv.Bytes || rs && rv.Bytes {
		return a.checkPair(le, re, desired)
	}
	other, lit := re, le
	if rs {
		other, lit = le, re
	}
	o, err := a.check(other, desired)
	if err != nil {
		return nil, nil, err
	}
	want := types.String
	if t := o.typ(); t == types.Bytes || t.IsArray() {
		want = t
	}
	x, err := a.check(lit, want)
	if err != nil {
		return nil, nil, err
	}
	if o, err = a.settle(other, o, x.typ()); err != nil {
		return nil, nil, err
	}
	if rs {
		return o, x, nil
	}
	return x, o, nil
}

// settle re-checks an operand that is still untyped (a placeholder nothing
// has typed yet) with the type its operator settled on, so that $1 + $2
// types both placeholders as INT8 instead of leaving them text.
//
// Any operand whose type is still unknown is re-checked (coalesce($1, $2)
// + 1 types both placeholders too), except one holding an aggregate, which
// must not be registered twice.
func (a *analyzer) settle(e parser.Expr, te texpr, t types.T) (texpr, error) {
	if te.typ() != types.Unknown || t == types.Unknown || containsAggregate(e) {
		return te, nil
	}
	return a.check(e, t)
}

func containsAggregate(e parser.Expr) bool {
	found := false
	parser.WalkExpr(e, func(x parser.Expr) bool {
		// An aggregate over a window does not make the query grouped;
		// its arguments may hold aggregates that do.
		if f, ok := x.(*parser.FuncCall); ok && f.Over == nil && isAggregateName(strings.TrimPrefix(f.FuncName(), "pg_catalog.")) {
			found = true
		}
		return !found
	})
	return found
}

func hint(t, fallback types.T) types.T {
	if t != types.Unknown {
		return t
	}
	return fallback
}

// unifyComparison makes both sides of a comparison the same type: INT8 is
// widened to FLOAT8, anything is comparable with NULL.
func (a *analyzer) unifyComparison(op string, l, r texpr) (texpr, texpr, error) {
	lt, rt := l.typ(), r.typ()
	switch {
	case lt == rt, lt == types.Unknown, rt == types.Unknown:
		return l, r, nil
	case lt == types.Int && rt == types.Float:
		return &castExpr{e: l, to: types.Float}, r, nil
	case lt == types.Float && rt == types.Int:
		return l, &castExpr{e: r, to: types.Float}, nil
	}
	if l2, r2, ok := unify21(l, r); ok {
		return l2, r2, nil
	}
	return nil, nil, pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported comparison operator: <%s> %s <%s>", typeName(lt), op, typeName(rt)),
		"cast one side to the other's type, for example x::%s", typeName(lt))
}

func (a *analyzer) checkBool(e parser.Expr, op string) (texpr, error) {
	x, err := a.check(e, types.Bool)
	if err != nil {
		return nil, err
	}
	if t := x.typ(); t != types.Bool && t != types.Unknown {
		return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "argument of %s must be type bool, not type %s", op, typeName(t))
	}
	return x, nil
}

func (a *analyzer) checkBinary(v *parser.BinaryExpr, desired types.T) (texpr, error) {
	if v.Op == parser.OpConcat {
		l, r, err := a.checkConcatPair(v.Left, v.Right, hint(desired, types.String))
		if err != nil {
			return nil, err
		}
		lt, rt := l.typ(), r.typ()
		if lt.IsArray() || rt.IsArray() {
			return checkArrayConcat(l, r)
		}
		switch {
		case lt == types.Bytes && (rt == types.Bytes || rt == types.Unknown),
			rt == types.Bytes && lt == types.Unknown:
			return &binExpr{op: v.Op, l: l, r: r, t: types.Bytes}, nil
		case lt == types.Bytes || rt == types.Bytes:
		default:
			// STRING || anything renders the other operand as text, as in
			// PostgreSQL.
			if lt == types.String || rt == types.String || lt == types.Unknown && rt == types.Unknown {
				return &binExpr{op: v.Op, l: l, r: r, t: types.String}, nil
			}
		}
		return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> || <%s>", typeName(lt), typeName(rt))
	}
	if te, handled, err := a.checkBinary21(v, desired); handled {
		return te, err
	}
	numDesired := desired
	if numDesired != types.Int && numDesired != types.Float && numDesired != types.Decimal {
		numDesired = types.Unknown
	}
	l, r, err := a.checkArithPair(v, numDesired)
	if err != nil {
		return nil, err
	}
	if is21(l.typ()) || is21(r.typ()) {
		return binary21(v, l, r)
	}
	// Operands still untyped take the other operand's type, or the
	// context's, or INT8.
	settleTo := hint(hint(l.typ(), r.typ()), hint(numDesired, types.Int))
	if l, err = a.settle(v.Left, l, settleTo); err != nil {
		return nil, err
	}
	if r, err = a.settle(v.Right, r, settleTo); err != nil {
		return nil, err
	}
	lt, rt := l.typ(), r.typ()
	var t types.T
	switch {
	case (lt == types.Int || lt == types.Unknown) && (rt == types.Int || rt == types.Unknown):
		t = types.Int
		if lt == types.Unknown && rt == types.Unknown {
			t = hint(numDesired, types.Int)
		}
	case (lt == types.Float || lt == types.Int || lt == types.Unknown) && (rt == types.Float || rt == types.Int || rt == types.Unknown):
		t = types.Float
		if lt == types.Int {
			l = &castExpr{e: l, to: types.Float}
		}
		if rt == types.Int {
			r = &castExpr{e: r, to: types.Float}
		}
	default:
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> %s <%s>", typeName(lt), v.Op, typeName(rt)),
			"arithmetic works on INT8 and FLOAT8; use || to concatenate strings")
	}
	if (v.Op == parser.OpBitAnd || v.Op == parser.OpBitOr) && t != types.Int {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> %s <%s>", typeName(lt), v.Op, typeName(rt)),
			"& and | work on integers")
	}
	return &binExpr{op: v.Op, l: l, r: r, t: t}, nil
}

func (a *analyzer) checkIn(v *parser.InExpr) (texpr, error) {
	if v.Sub != nil {
		return a.checkInSubquery(v)
	}
	// The tested expression and the list share one type; find it from the
	// best-ranked element, then check everything against it.
	all := append([]parser.Expr{v.Expr}, v.List...)
	best := 0
	for i, e := range all {
		if a.rank(e) < a.rank(all[best]) {
			best = i
		}
	}
	first, err := a.check(all[best], types.Unknown)
	if err != nil {
		return nil, err
	}
	t := first.typ()
	checked := make([]texpr, len(all))
	checked[best] = first
	for i, e := range all {
		if i == best {
			continue
		}
		if checked[i], err = a.check(e, t); err != nil {
			return nil, err
		}
		if t == types.Unknown {
			t = checked[i].typ()
		}
	}
	x := checked[0]
	list := checked[1:]
	for i := range list {
		if x, list[i], err = a.unifyComparison("IN", x, list[i]); err != nil {
			return nil, err
		}
	}
	// unifyComparison may have widened x for one element and not for
	// earlier ones; widen every INT8 element when x is FLOAT8.
	if x.typ() == types.Float {
		for i := range list {
			if list[i].typ() == types.Int {
				list[i] = &castExpr{e: list[i], to: types.Float}
			}
		}
	}
	return &inExpr{e: x, list: list, not: v.Not}, nil
}

func (a *analyzer) resolveColumn(v *parser.ColumnRef) (texpr, error) {
	if a.noCols {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidColumnReference, "column references are not allowed in %s", a.clauseName()),
			"use a constant value here")
	}
	name := v.Name()
	qual := v.Qualifier()
	if len(v.Parts) > 2 {
		// db.schema.table.col, schema.table.col or db.table.col: the
		// leading parts name the session's database and the schema public
		// (the table itself was resolved by the FROM clause).
		for _, p := range v.Parts[:len(v.Parts)-2] {
			if p != normalizeDatabase(a.params.db) && p != "public" {
				return nil, undefinedColumn(v.String())
			}
		}
	}
	var found *colExpr
	for ti := range a.tables {
		tbl := &a.tables[ti]
		if qual == "" && tbl.qualifiedOnly {
			continue
		}
		if qual != "" && !containsString(tbl.names, qual) {
			continue
		}
		for ci, c := range tbl.cols {
			if c.name != name {
				continue
			}
			if found != nil {
				return nil, pgerror.Newf(pgerror.CodeAmbiguousColumn, "column reference %q is ambiguous", name)
			}
			found = &colExpr{idx: tbl.offset + ci, t: c.t, name: name, mod: c.mod}
		}
	}
	if found == nil && a.outer != nil {
		if oe, err := a.outer.resolveColumn(v); err == nil {
			a.correlated = true
			return outerRef(oe), nil
		}
	}
	if found == nil {
		if qual != "" {
			known := false
			for _, tbl := range a.tables {
				known = known || containsString(tbl.names, qual)
			}
			if !known {
				return nil, pgerror.WithHintf(
					pgerror.Newf(pgerror.CodeUndefinedTable, "missing FROM-clause entry for table %q", qual),
					"qualify columns with the table's name or alias")
			}
		}
		return nil, undefinedColumn(v.String())
	}
	return found, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// coerce converts a checked expression to type want for assignment to a
// column (INSERT, UPDATE SET, DEFAULT): NULL and INT8 -> FLOAT8 are fine,
// anything else is a 42804 naming the column.
func coerce(e texpr, want types.T, column string) (texpr, error) {
	got := e.typ()
	switch {
	case got == want:
		return e, nil
	case got == types.Unknown:
		if c, ok := e.(*constExpr); ok {
			return &constExpr{t: want, d: c.d}, nil
		}
		return &castExpr{e: e, to: want}, nil
	case got == types.Int && want == types.Float:
		return foldCast(&castExpr{e: e, to: want})
	case assignable21(got, want):
		return foldCast(&castExpr{e: e, to: want})
	case got.IsArray() && want.IsArray() && (got.Elem() == types.Unknown || got.Elem() == types.Int && want.Elem() == types.Float):
		return foldCast(&castExpr{e: e, to: want})
	}
	return nil, pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeDatatypeMismatch, "value type %s doesn't match type %s of column %q", typeName(got), want, column),
		"convert the value explicitly, for example CAST(x AS %s)", want)
}

// foldCast evaluates a cast of a constant once, at analysis.
func foldCast(c *castExpr) (texpr, error) {
	k, ok := c.e.(*constExpr)
	if !ok {
		return c, nil
	}
	d, err := castDatum(k.d, c.to)
	if err != nil {
		return nil, err
	}
	return &constExpr{t: c.to, d: d}, nil
}

// castAllowed lists the explicit casts kvnode supports: every pair, through
// text where nothing better exists, except BYTES <-> numbers and bools.
func castAllowed(from, to types.T) bool {
	if from == types.Unknown || from == to || from == types.String || to == types.String {
		return true
	}
	if from.IsArray() || to.IsArray() {
		return false
	}
	if is21(from) || is21(to) {
		return castAllowed21(from, to)
	}
	switch from {
	case types.Int:
		return to == types.Float || to == types.Bool
	case types.Float:
		return to == types.Int
	case types.Bool:
		return to == types.Int
	}
	return false
}

// castDatum converts a value; errors carry 22P02 or 22003 like PostgreSQL.
func castDatum(d types.Datum, to types.T) (types.Datum, error) {
	if d == nil {
		return nil, nil
	}
	if out, ok, err := castDatum21(d, to); ok {
		return out, err
	}
	switch v := d.(type) {
	case int64:
		switch to {
		case types.Int:
			return v, nil
		case types.Float:
			return float64(v), nil
		case types.Bool:
			return v != 0, nil
		case types.String:
			return strconv.FormatInt(v, 10), nil
		}
	case float64:
		switch to {
		case types.Float:
			return v, nil
		case types.Int:
			r := math.RoundToEven(v)
			if math.IsNaN(r) || r < -9.223372036854775808e18 || r >= 9.223372036854775808e18 {
				return nil, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range")
			}
			return int64(r), nil
		case types.String:
			return string(types.FormatText(v)), nil
		}
	case bool:
		switch to {
		case types.Bool:
			return v, nil
		case types.Int:
			if v {
				return int64(1), nil
			}
			return int64(0), nil
		case types.String:
			// PostgreSQL's bool-to-text cast spells the value out
			// (booltext), unlike its output function's t/f.
			return map[bool]string{true: "true", false: "false"}[v], nil
		}
	case []byte:
		switch to {
		case types.Bytes:
			return v, nil
		case types.String:
			return string(types.FormatText(v)), nil
		}
	case types.Array:
		if to == types.String {
			return string(types.FormatText(v)), nil
		}
		if to.IsArray() {
			out := make(types.Array, len(v))
			for i, x := range v {
				c, err := castDatum(x, to.Elem())
				if err != nil {
					return nil, err
				}
				out[i] = c
			}
			return out, nil
		}
	case string:
		if to == types.String {
			return v, nil
		}
		out, err := types.ParseText(to, []byte(v))
		if err != nil {
			return nil, pgerror.WithCode(err, pgerror.CodeInvalidTextRepresentation)
		}
		return out, nil
	}
	return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "invalid cast: %s -> %s", typeName(types.TypeOf(d)), to)
}

// isRowIndependent reports whether e reads no column and calls no volatile
// function: its value is fixed for a whole execution, so the planner may
// evaluate it once to compute a key.
func isRowIndependent(e texpr) bool {
	ok := true
	walkTexpr(e, func(x texpr) {
		switch v := x.(type) {
		case *colExpr, *aggRef:
			ok = false
		case *subqueryExpr:
			// A subquery is evaluated against the row (correlated) or is
			// too costly to evaluate for a key.
			ok = false
		case *funcExpr:
			if v.fn.volatile {
				ok = false
			}
		}
	})
	return ok
}

// isConstant reports whether e has the same value in every execution: no
// columns, placeholders or volatile functions.
func isConstant(e texpr) bool {
	ok := isRowIndependent(e)
	walkTexpr(e, func(x texpr) {
		switch x.(type) {
		case *placeholderExpr, *outerColExpr:
			ok = false
		}
	})
	return ok
}

func walkTexpr(e texpr, fn func(texpr)) {
	if e == nil {
		return
	}
	fn(e)
	switch v := e.(type) {
	case *binExpr:
		walkTexpr(v.l, fn)
		walkTexpr(v.r, fn)
	case *cmpExpr:
		walkTexpr(v.l, fn)
		walkTexpr(v.r, fn)
	case *andExpr:
		walkTexpr(v.l, fn)
		walkTexpr(v.r, fn)
	case *orExpr:
		walkTexpr(v.l, fn)
		walkTexpr(v.r, fn)
	case *notExpr:
		walkTexpr(v.e, fn)
	case *negExpr:
		walkTexpr(v.e, fn)
	case *isNullExpr:
		walkTexpr(v.e, fn)
	case *inExpr:
		walkTexpr(v.e, fn)
		for _, x := range v.list {
			walkTexpr(x, fn)
		}
	case *likeExpr:
		walkTexpr(v.e, fn)
		walkTexpr(v.pat, fn)
	case *castExpr:
		walkTexpr(v.e, fn)
	case *assignExpr:
		walkTexpr(v.e, fn)
	case *funcExpr:
		for _, x := range v.args {
			walkTexpr(x, fn)
		}
	default:
		walkQueryTexpr(e, fn)
	}
}

// exprName is the result column name PostgreSQL gives an unaliased select
// expression.
func exprName(e parser.Expr) string {
	switch v := e.(type) {
	case *parser.ColumnRef:
		return v.Name()
	case *parser.FuncCall:
		if len(v.Name) == 2 && v.Name[0] == "crdb_internal" {
			return strings.Join(v.Name, ".") // as CockroachDB names it
		}
		return v.Name[len(v.Name)-1]
	case *parser.CastExpr:
		// A name taken from a column or function beats the cast's type
		// name; the type name of an inner cast does not (PostgreSQL's
		// FigureColname).
		if _, innerCast := v.Expr.(*parser.CastExpr); !innerCast {
			if inner := exprName(v.Expr); inner != "?column?" {
				return inner
			}
		}
		if v.Special != "" {
			return strings.TrimSuffix(v.Special, "[]")
		}
		return strings.ToLower(v.Type.String())
	case *parser.CaseExpr:
		return "case"
	case *parser.ArrayExpr:
		return "array"
	case *parser.CollateExpr:
		return exprName(v.Expr)
	case *parser.FieldAccess:
		return v.Field
	case *parser.Subquery:
		if v.Exists {
			return "exists"
		}
		if s, ok := v.Select.(*parser.Select); ok && len(s.Exprs) == 1 && !s.Exprs[0].Star {
			if s.Exprs[0].Alias != "" {
				return s.Exprs[0].Alias
			}
			return exprName(s.Exprs[0].Expr)
		}
	}
	return "?column?"
}

// isVectorColumn reports whether e names one of pg_index's int2vector
// columns (kvnode keeps them as INT8[]).
func isVectorColumn(e parser.Expr, t types.T) bool {
	ref, ok := e.(*parser.ColumnRef)
	if !ok || t != types.ArrayOf(types.Int) || len(ref.Parts) == 0 {
		return false
	}
	switch ref.Parts[len(ref.Parts)-1] {
	case "indkey", "indoption", "indclass", "indcollation":
		return true
	}
	return false
}
