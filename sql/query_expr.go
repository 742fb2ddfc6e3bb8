package sql

import (
	"regexp"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Typed expressions of queries: CASE, subqueries, quantified comparisons,
// arrays, regular expressions, references to an enclosing query's row, IS
// [NOT] DISTINCT FROM, and the OID alias casts (regclass, ...).

type (
	// caseExpr is a searched CASE; CASE x WHEN v ... is checked as the
	// conditions x = v.
	caseExpr struct {
		conds []texpr
		vals  []texpr
		els   texpr // nil: NULL
		t     types.T
	}
	// outerColExpr reads column idx of the row of the query depth levels
	// out (1: the immediately enclosing one).
	outerColExpr struct {
		depth int
		idx   int
		t     types.T
		name  string
	}
	distinctExpr struct {
		l, r texpr
		not  bool
	}
	subqueryKind uint8
	// subqueryExpr runs a subquery: a scalar value, EXISTS, IN or a
	// quantified comparison (left op ANY/ALL), or ARRAY(subquery).
	subqueryExpr struct {
		kind       subqueryKind
		plan       relNode
		correlated bool
		left       texpr
		op         parser.CmpOp
		all        bool
		not        bool
		t          types.T
	}
	// quantExpr is left op ANY|ALL (array).
	quantExpr struct {
		left, arr texpr
		op        parser.CmpOp
		all       bool
	}
	arrayExpr struct {
		elems []texpr
		t     types.T
	}
	regexExpr struct {
		e, pat   texpr
		not, ci  bool
		compiled *regexp.Regexp
	}
	indexExpr struct {
		e, idx texpr
		t      types.T
	}
	// regCastExpr is a cast to an OID alias type: a name becomes the OID
	// of that object (int), an OID its name (text).
	regCastExpr struct {
		e      texpr
		kind   string // regclass, regtype, regnamespace, regproc, regrole
		toName bool
	}
)

const (
	subScalar subqueryKind = iota
	subExists
	subIn    // left IN (subquery)
	subQuant // left op ANY|ALL (subquery)
	subArray // ARRAY(subquery)
)

func (e *caseExpr) typ() types.T     { return e.t }
func (e *outerColExpr) typ() types.T { return e.t }
func (e *distinctExpr) typ() types.T { return types.Bool }
func (e *subqueryExpr) typ() types.T { return e.t }
func (e *quantExpr) typ() types.T    { return types.Bool }
func (e *arrayExpr) typ() types.T    { return e.t }
func (e *regexExpr) typ() types.T    { return types.Bool }
func (e *indexExpr) typ() types.T    { return e.t }
func (e *regCastExpr) typ() types.T {
	if e.toName {
		return types.String
	}
	return types.Int
}

// outerRef turns a column of the enclosing query into a reference from one
// level further in.
func outerRef(e texpr) texpr {
	switch v := e.(type) {
	case *colExpr:
		return &outerColExpr{depth: 1, idx: v.idx, t: v.t, name: v.name}
	case *outerColExpr:
		return &outerColExpr{depth: v.depth + 1, idx: v.idx, t: v.t, name: v.name}
	}
	return e
}

func walkQueryTexpr(e texpr, fn func(texpr)) {
	switch v := e.(type) {
	case *caseExpr:
		for i := range v.conds {
			walkTexpr(v.conds[i], fn)
			walkTexpr(v.vals[i], fn)
		}
		walkTexpr(v.els, fn)
	case *distinctExpr:
		walkTexpr(v.l, fn)
		walkTexpr(v.r, fn)
	case *subqueryExpr:
		walkTexpr(v.left, fn)
	case *quantExpr:
		walkTexpr(v.left, fn)
		walkTexpr(v.arr, fn)
	case *arrayExpr:
		for _, x := range v.elems {
			walkTexpr(x, fn)
		}
	case *regexExpr:
		walkTexpr(v.e, fn)
		walkTexpr(v.pat, fn)
	case *indexExpr:
		walkTexpr(v.e, fn)
		walkTexpr(v.idx, fn)
	case *regCastExpr:
		walkTexpr(v.e, fn)
	}
}

// unifyTypes is the common type of the branches of CASE or the elements
// of an array: NULL fits anything, and numbers take PostgreSQL's order of
// preference, INT8 < NUMERIC < FLOAT8 (INT8 and NUMERIC make NUMERIC, any
// of them with FLOAT8 makes FLOAT8).
func unifyTypes(what string, ts []types.T) (types.T, error) {
	out := types.Unknown
	for _, t := range ts {
		switch {
		case t == types.Unknown || t == out:
		case out == types.Unknown:
			out = t
		case isNumeric(out) && isNumeric(t):
			if out == types.Float || t == types.Float {
				out = types.Float
			} else {
				out = types.Decimal
			}
		default:
			return 0, pgerror.Newf(pgerror.CodeDatatypeMismatch, "%s types %s and %s cannot be matched", what, typeName(out), typeName(t))
		}
	}
	return out, nil
}

// settleTo converts e to type t where it is a number of a narrower kind
// (unifyTypes's order), or untyped.
func settleTo(e texpr, t types.T) texpr {
	switch {
	case e == nil || e.typ() == t || t == types.Unknown:
		return e
	case e.typ() == types.Int && t == types.Float:
		return &castExpr{e: e, to: t}
	case isNumeric(e.typ()) && (t == types.Float || t == types.Decimal && e.typ() == types.Int):
		return castTo(e, t)
	case e.typ() == types.Unknown:
		if c, ok := e.(*constExpr); ok {
			return &constExpr{t: t, d: c.d}
		}
		return &castExpr{e: e, to: t}
	}
	return e
}

func (a *analyzer) checkQueryExpr(e parser.Expr, desired types.T) (texpr, error) {
	switch v := e.(type) {
	case *parser.CaseExpr:
		return a.checkCase(v, desired)
	case *parser.Subquery:
		kind := subScalar
		if v.Exists {
			kind = subExists
		}
		return a.buildSubquery(v, kind)
	case *parser.QuantExpr:
		return a.checkQuant(v)
	case *parser.ArrayExpr:
		if v.Sub != nil {
			return a.buildSubquery(v.Sub, subArray)
		}
		want := types.Unknown
		if desired.IsArray() {
			want = desired.Elem()
		}
		elems := make([]texpr, len(v.Elems))
		ts := make([]types.T, len(v.Elems))
		for i, x := range v.Elems {
			c, err := a.check(x, want)
			if err != nil {
				return nil, err
			}
			if c.typ().IsArray() {
				return nil, unsupported("multidimensional arrays are not supported")
			}
			elems[i], ts[i] = c, c.typ()
		}
		t, err := unifyTypes("ARRAY", ts)
		if err != nil {
			return nil, err
		}
		if t == types.Unknown {
			t = hint(want, types.String)
		}
		for i := range elems {
			elems[i] = settleTo(elems[i], t)
		}
		return &arrayExpr{elems: elems, t: types.ArrayOf(t)}, nil
	case *parser.RegexExpr:
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
				return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported comparison operator: <%s> ~ <%s>", typeName(x.typ()), typeName(pat.typ()))
			}
		}
		re := &regexExpr{e: x, pat: pat, not: v.Not, ci: v.CaseInsens}
		if c, ok := pat.(*constExpr); ok && c.d != nil {
			if re.compiled, err = compileRegex(c.d.(string), v.CaseInsens); err != nil {
				return nil, err
			}
		}
		return re, nil
	case *parser.CollateExpr:
		switch strings.TrimPrefix(strings.ToLower(v.Collation), "pg_catalog.") {
		case "default", "c", "posix", "ucs_basic":
		default:
			return nil, pgerror.WithHintf(unsupported("collation %q is not supported", v.Collation),
				"kvnode compares strings bytewise, as COLLATE \"C\"; use \"default\" or \"C\"")
		}
		x, err := a.check(v.Expr, desired)
		if err != nil {
			return nil, err
		}
		if t := x.typ(); t != types.String && t != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "collations are not supported by type %s", typeName(t))
		}
		return x, nil
	case *parser.IndexExpr:
		x, err := a.check(v.Expr, types.Unknown)
		if err != nil {
			return nil, err
		}
		if !x.typ().IsArray() {
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "cannot subscript type %s because it is not an array", typeName(x.typ()))
		}
		idx, err := a.check(v.Index, types.Int)
		if err != nil {
			return nil, err
		}
		if idx.typ() != types.Int && idx.typ() != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "array subscript must have type integer")
		}
		return &indexExpr{e: x, idx: idx, t: x.typ().Elem()}, nil
	case *parser.FieldAccess:
		// kvnode's only composite values are the records (x, n) of
		// information_schema._pg_expandarray, which it represents as an
		// INT8 array {x, n}: JDBC's getPrimaryKeys and getIndexInfo read
		// them that way.
		if fc, ok := v.Expr.(*parser.FuncCall); ok && isSRFName(fc.FuncName()) {
			return nil, pgerror.WithHintf(unsupported("set-returning functions are not allowed here"),
				"call %s as a whole select-list item", fc.FuncName())
		}
		x, err := a.check(v.Expr, types.Unknown)
		if err != nil {
			return nil, err
		}
		pos := map[string]int64{"x": 1, "n": 2}[v.Field]
		if x.typ() != types.ArrayOf(types.Int) || pos == 0 {
			return nil, pgerror.WithHintf(
				pgerror.Newf("42809", "field selection (%s).%s is not supported on type %s", v.Expr, v.Field, typeName(x.typ())),
				"kvnode's only composite values are information_schema._pg_expandarray's (x, n)")
		}
		return &indexExpr{e: x, idx: &constExpr{t: types.Int, d: pos}, t: types.Int}, nil
	}
	return nil, errors.AssertionFailedf("unhandled expression %T", e)
}

func (a *analyzer) checkCase(v *parser.CaseExpr, desired types.T) (texpr, error) {
	c := &caseExpr{}
	if v.Operand != nil {
		// CASE x WHEN v ...: each WHEN is x = v.
		for _, w := range v.Whens {
			cond, err := a.check(&parser.ComparisonExpr{Op: parser.CmpEQ, Left: v.Operand, Right: w.Cond}, types.Bool)
			if err != nil {
				return nil, err
			}
			c.conds = append(c.conds, cond)
		}
	} else {
		for _, w := range v.Whens {
			cond, err := a.checkBool(w.Cond, "CASE/WHEN")
			if err != nil {
				return nil, err
			}
			c.conds = append(c.conds, cond)
		}
	}
	var ts []types.T
	for _, w := range v.Whens {
		val, err := a.check(w.Val, desired)
		if err != nil {
			return nil, err
		}
		c.vals = append(c.vals, val)
		ts = append(ts, val.typ())
	}
	if v.Else != nil {
		els, err := a.check(v.Else, hint(desired, firstKnown(ts)))
		if err != nil {
			return nil, err
		}
		c.els = els
		ts = append(ts, els.typ())
	}
	t, err := unifyTypes("CASE", ts)
	if err != nil {
		return nil, err
	}
	if t == types.Unknown {
		t = hint(desired, types.String)
	}
	// Untyped string literals take the CASE's type.
	for i, w := range v.Whens {
		if c.vals[i].typ() == types.Unknown || c.vals[i].typ() != t {
			if _, ok := w.Val.(*parser.StrVal); ok && t != types.String {
				if c.vals[i], err = a.check(w.Val, t); err != nil {
					return nil, err
				}
			}
		}
		c.vals[i] = settleTo(c.vals[i], t)
	}
	c.els = settleTo(c.els, t)
	c.t = t
	return c, nil
}

func firstKnown(ts []types.T) types.T {
	for _, t := range ts {
		if t != types.Unknown {
			return t
		}
	}
	return types.Unknown
}

func (a *analyzer) checkQuant(v *parser.QuantExpr) (texpr, error) {
	if sub, ok := v.Right.(*parser.Subquery); ok && !sub.Exists {
		se, err := a.buildSubquery(sub, subQuant)
		if err != nil {
			return nil, err
		}
		s := se.(*subqueryExpr)
		left, err := a.check(v.Left, s.t)
		if err != nil {
			return nil, err
		}
		if _, _, err := a.unifyComparison(v.Op.String(), left, &constExpr{t: s.t}); err != nil {
			return nil, err
		}
		s.left, s.op, s.all, s.t = left, v.Op, v.All, types.Bool
		return s, nil
	}
	// left op ANY (array): the array's element type is the left side's.
	left, err := a.check(v.Left, types.Unknown)
	if err != nil {
		return nil, err
	}
	want := types.Unknown
	if left.typ() != types.Unknown {
		want = types.ArrayOf(left.typ())
	}
	arr, err := a.check(v.Right, want)
	if err != nil {
		return nil, err
	}
	at := arr.typ()
	if at == types.Unknown {
		arr = settleTo(arr, types.ArrayOf(hint(left.typ(), types.String)))
		at = arr.typ()
	}
	if !at.IsArray() {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeDatatypeMismatch, "op ANY/ALL (array) requires array on right side, not %s", typeName(at)),
			"write x = ANY (ARRAY[...]) or x IN (...)")
	}
	if left.typ() == types.Unknown {
		if left, err = a.check(v.Left, at.Elem()); err != nil {
			return nil, err
		}
	}
	l, _, err := a.unifyComparison(v.Op.String(), left, &constExpr{t: at.Elem()})
	if err != nil {
		return nil, err
	}
	return &quantExpr{left: l, arr: arr, op: v.Op, all: v.All}, nil
}

func (a *analyzer) checkInSubquery(v *parser.InExpr) (texpr, error) {
	se, err := a.buildSubquery(v.Sub, subIn)
	if err != nil {
		return nil, err
	}
	s := se.(*subqueryExpr)
	left, err := a.check(v.Expr, s.t)
	if err != nil {
		return nil, err
	}
	if _, _, err := a.unifyComparison("IN", left, &constExpr{t: s.t}); err != nil {
		return nil, err
	}
	s.left, s.op, s.not, s.t = left, parser.CmpEQ, v.Not, types.Bool
	return s, nil
}

// buildSubquery plans a subquery in the analyzer's scope.
func (a *analyzer) buildSubquery(v *parser.Subquery, kind subqueryKind) (texpr, error) {
	if a.qb == nil {
		return nil, pgerror.WithHintf(unsupported("subqueries are not supported in %s", a.clauseName()),
			"compute the value in a separate statement")
	}
	sa := &analyzer{params: a.params, outer: a, qb: a.qb}
	plan, cols, err := a.qb.buildQuery(v.Select, sa)
	if err != nil {
		return nil, err
	}
	s := &subqueryExpr{kind: kind, plan: plan, correlated: sa.correlated}
	if kind != subExists && len(cols) != 1 {
		return nil, pgerror.Newf(pgerror.CodeSyntaxError, "subquery must return only one column")
	}
	switch kind {
	case subExists:
		s.t = types.Bool
	case subArray:
		et := cols[0].t
		if et == types.Unknown {
			et = types.String
		}
		s.t = types.ArrayOf(et)
	default:
		s.t = cols[0].t
	}
	return s, nil
}

func compileRegex(pat string, ci bool) (*regexp.Regexp, error) {
	if ci {
		pat = "(?i)" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, pgerror.WithCode(errors.Wrap(err, "invalid regular expression"), "2201B")
	}
	return re, nil
}

// ---- evaluation ----

func (ec *evalCtx) evalQueryExpr(e texpr) (types.Datum, error) {
	switch v := e.(type) {
	case *outerColExpr:
		if v.depth > len(ec.outer) {
			return nil, errors.AssertionFailedf("outer reference %s at depth %d beyond %d", v.name, v.depth, len(ec.outer))
		}
		return ec.outer[len(ec.outer)-v.depth][v.idx], nil
	case *caseExpr:
		for i, c := range v.conds {
			ok, err := ec.evalTrue(c)
			if err != nil {
				return nil, err
			}
			if ok {
				return ec.eval(v.vals[i])
			}
		}
		if v.els == nil {
			return nil, nil
		}
		return ec.eval(v.els)
	case *distinctExpr:
		l, err := ec.eval(v.l)
		if err != nil {
			return nil, err
		}
		r, err := ec.eval(v.r)
		if err != nil {
			return nil, err
		}
		var same bool
		switch {
		case l == nil || r == nil:
			same = l == nil && r == nil
		default:
			c, err := compareDatums(l, r)
			if err != nil {
				return nil, err
			}
			same = c == 0
		}
		return same == v.not, nil
	case *subqueryExpr:
		return ec.evalSubquery(v)
	case *quantExpr:
		x, err := ec.eval(v.left)
		if err != nil {
			return nil, err
		}
		arr, err := ec.eval(v.arr)
		if err != nil || arr == nil {
			return nil, err
		}
		a, ok := arr.(types.Array)
		if !ok {
			return nil, errors.AssertionFailedf("ANY over a %T", arr)
		}
		return quantify(x, a, v.op, v.all)
	case *arrayExpr:
		out := make(types.Array, len(v.elems))
		for i, x := range v.elems {
			d, err := ec.eval(x)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	case *regexExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		re := v.compiled
		if re == nil {
			p, err := ec.eval(v.pat)
			if err != nil || p == nil {
				return nil, err
			}
			if re, err = compileRegex(p.(string), v.ci); err != nil {
				return nil, err
			}
		}
		return re.MatchString(x.(string)) != v.not, nil
	case *indexExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		i, err := ec.eval(v.idx)
		if err != nil || i == nil {
			return nil, err
		}
		a := x.(types.Array)
		n := i.(int64)
		if n < 1 || n > int64(len(a)) {
			return nil, nil
		}
		return a[n-1], nil
	case *regCastExpr:
		x, err := ec.eval(v.e)
		if err != nil || x == nil {
			return nil, err
		}
		return ec.regCast(v, x)
	}
	return nil, errors.AssertionFailedf("unhandled typed expression %T", e)
}

// quantify is x op ANY|ALL (a) with SQL's three-valued logic.
func quantify(x types.Datum, a types.Array, op parser.CmpOp, all bool) (types.Datum, error) {
	if x == nil {
		if len(a) == 0 {
			return all, nil
		}
		return nil, nil
	}
	sawNull := false
	for _, d := range a {
		if d == nil {
			sawNull = true
			continue
		}
		c, err := compareDatums(x, d)
		if err != nil {
			return nil, err
		}
		r := cmpResult(op, c)
		if r && !all {
			return true, nil
		}
		if !r && all {
			return false, nil
		}
	}
	if sawNull {
		return nil, nil
	}
	return all, nil
}

// runSubquery returns the rows of a subquery for the current row.
func (ec *evalCtx) runSubquery(v *subqueryExpr) ([][]types.Datum, error) {
	ec.state()
	if !v.correlated {
		if rows, ok := ec.stmt.subResults[v]; ok {
			return rows, nil
		}
	}
	child := &evalCtx{ctx: ec.ctx, exec: ec.exec, params: ec.params, stmt: ec.stmt,
		outer: append(append([][]types.Datum(nil), ec.outer...), ec.row)}
	rows, err := v.plan.run(child)
	if err != nil {
		return nil, err
	}
	if !v.correlated {
		if ec.stmt.subResults == nil {
			ec.stmt.subResults = map[*subqueryExpr][][]types.Datum{}
		}
		ec.stmt.subResults[v] = rows
	}
	return rows, nil
}

func (ec *evalCtx) evalSubquery(v *subqueryExpr) (types.Datum, error) {
	rows, err := ec.runSubquery(v)
	if err != nil {
		return nil, err
	}
	switch v.kind {
	case subExists:
		return len(rows) > 0, nil
	case subScalar:
		switch len(rows) {
		case 0:
			return nil, nil
		case 1:
			return rows[0][0], nil
		}
		return nil, pgerror.Newf("21000", "more than one row returned by a subquery used as an expression")
	case subArray:
		out := make(types.Array, len(rows))
		for i, r := range rows {
			out[i] = r[0]
		}
		return out, nil
	}
	x, err := ec.eval(v.left)
	if err != nil {
		return nil, err
	}
	vals := make(types.Array, len(rows))
	for i, r := range rows {
		vals[i] = r[0]
	}
	if v.kind == subIn {
		res, err := quantify(x, vals, parser.CmpEQ, false)
		if err != nil || res == nil {
			return res, err
		}
		return res.(bool) != v.not, nil
	}
	return quantify(x, vals, v.op, v.all)
}

// checkArrayConcat types array || array, array || element and element ||
// array.
func checkArrayConcat(l, r texpr) (texpr, error) {
	lt, rt := l.typ(), r.typ()
	var t types.T
	switch {
	case lt.IsArray() && rt.IsArray():
		if lt.Elem() != rt.Elem() && lt.Elem() != types.Unknown && rt.Elem() != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> || <%s>", typeName(lt), typeName(rt))
		}
		t = lt
		if lt.Elem() == types.Unknown {
			t = rt
		}
	case lt.IsArray():
		if rt != lt.Elem() && rt != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> || <%s>", typeName(lt), typeName(rt))
		}
		t, r = lt, settleTo(r, lt.Elem())
	default:
		if lt != rt.Elem() && lt != types.Unknown {
			return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "unsupported binary operator: <%s> || <%s>", typeName(lt), typeName(rt))
		}
		t, l = rt, settleTo(l, rt.Elem())
	}
	return &funcExpr{fn: arrayCatBuiltin, args: []texpr{l, r}, t: t}, nil
}

// state returns the execution's shared state, creating it on first use.
func (ec *evalCtx) state() *stmtState {
	if ec.stmt == nil {
		ec.stmt = &stmtState{}
	}
	return ec.stmt
}
