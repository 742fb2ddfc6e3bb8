package sql

import (
	"fmt"
	"strings"
)

// forChildren calls fn on each direct child of e.
func forChildren(e texpr, fn func(texpr)) {
	for _, c := range children(e) {
		if c != nil {
			fn(c)
		}
	}
}

// children lists the direct children of e.
func children(e texpr) []texpr {
	switch v := e.(type) {
	case *binExpr:
		return []texpr{v.l, v.r}
	case *cmpExpr:
		return []texpr{v.l, v.r}
	case *andExpr:
		return []texpr{v.l, v.r}
	case *orExpr:
		return []texpr{v.l, v.r}
	case *notExpr:
		return []texpr{v.e}
	case *negExpr:
		return []texpr{v.e}
	case *isNullExpr:
		return []texpr{v.e}
	case *inExpr:
		return append([]texpr{v.e}, v.list...)
	case *likeExpr:
		return []texpr{v.e, v.pat}
	case *castExpr:
		return []texpr{v.e}
	case *funcExpr:
		return v.args
	case *caseExpr:
		var out []texpr
		for i := range v.conds {
			out = append(out, v.conds[i], v.vals[i])
		}
		return append(out, v.els)
	case *distinctExpr:
		return []texpr{v.l, v.r}
	case *subqueryExpr:
		return []texpr{v.left}
	case *quantExpr:
		return []texpr{v.left, v.arr}
	case *arrayExpr:
		return v.elems
	case *regexExpr:
		return []texpr{v.e, v.pat}
	case *indexExpr:
		return []texpr{v.e, v.idx}
	case *regCastExpr:
		return []texpr{v.e}
	}
	return nil
}

// mapTexpr returns a copy of e in which every node for which f returns a
// replacement is replaced; f returns nil to keep a node (and map its
// children).
func mapTexpr(e texpr, f func(texpr) texpr) texpr {
	if e == nil {
		return nil
	}
	if r := f(e); r != nil {
		return r
	}
	m := func(x texpr) texpr { return mapTexpr(x, f) }
	ms := func(xs []texpr) []texpr {
		out := make([]texpr, len(xs))
		for i, x := range xs {
			out[i] = m(x)
		}
		return out
	}
	switch v := e.(type) {
	case *binExpr:
		c := *v
		c.l, c.r = m(v.l), m(v.r)
		return &c
	case *cmpExpr:
		c := *v
		c.l, c.r = m(v.l), m(v.r)
		return &c
	case *andExpr:
		return &andExpr{l: m(v.l), r: m(v.r)}
	case *orExpr:
		return &orExpr{l: m(v.l), r: m(v.r)}
	case *notExpr:
		return &notExpr{e: m(v.e)}
	case *negExpr:
		return &negExpr{e: m(v.e)}
	case *isNullExpr:
		return &isNullExpr{e: m(v.e), not: v.not}
	case *inExpr:
		return &inExpr{e: m(v.e), list: ms(v.list), not: v.not}
	case *likeExpr:
		c := *v
		c.e, c.pat = m(v.e), m(v.pat)
		return &c
	case *castExpr:
		return &castExpr{e: m(v.e), to: v.to}
	case *funcExpr:
		return &funcExpr{fn: v.fn, args: ms(v.args), t: v.t}
	case *caseExpr:
		return &caseExpr{conds: ms(v.conds), vals: ms(v.vals), els: m(v.els), t: v.t}
	case *distinctExpr:
		return &distinctExpr{l: m(v.l), r: m(v.r), not: v.not}
	case *subqueryExpr:
		// The subquery's plan reads enclosing rows through outerColExpr,
		// evaluated against the row it is evaluated on: a shifted
		// subquery would read the wrong columns, so the planner never
		// shifts one (colRange refuses them).
		c := *v
		c.left = m(v.left)
		return &c
	case *quantExpr:
		return &quantExpr{left: m(v.left), arr: m(v.arr), op: v.op, all: v.all}
	case *arrayExpr:
		return &arrayExpr{elems: ms(v.elems), t: v.t}
	case *regexExpr:
		c := *v
		c.e, c.pat = m(v.e), m(v.pat)
		return &c
	case *indexExpr:
		return &indexExpr{e: m(v.e), idx: m(v.idx), t: v.t}
	case *regCastExpr:
		return &regCastExpr{e: m(v.e), kind: v.kind, toName: v.toName}
	}
	return e
}

// texprKey is a structural description of e: two expressions with the same
// key compute the same value on the same row.
func texprKey(e texpr) string {
	var b strings.Builder
	var visit func(texpr)
	visit = func(x texpr) {
		if x == nil {
			b.WriteString("nil")
			return
		}
		switch v := x.(type) {
		case *colExpr:
			fmt.Fprintf(&b, "col%d", v.idx)
			return
		case *constExpr:
			fmt.Fprintf(&b, "const(%d,%v)", v.t, v.d)
			return
		case *placeholderExpr:
			fmt.Fprintf(&b, "$%d", v.idx)
			return
		case *aggRef:
			fmt.Fprintf(&b, "agg%d", v.idx)
			return
		case *outerColExpr:
			fmt.Fprintf(&b, "outer%d.%d", v.depth, v.idx)
			return
		case *binExpr:
			fmt.Fprintf(&b, "bin%d", v.op)
		case *cmpExpr:
			fmt.Fprintf(&b, "cmp%d", v.op)
		case *funcExpr:
			fmt.Fprintf(&b, "fn:%s", v.fn.name)
		case *castExpr:
			fmt.Fprintf(&b, "cast%d", v.to)
		case *subqueryExpr:
			fmt.Fprintf(&b, "sub%p", v)
		default:
			fmt.Fprintf(&b, "%T", v)
		}
		b.WriteByte('(')
		for _, c := range children(x) {
			visit(c)
			b.WriteByte(',')
		}
		b.WriteByte(')')
	}
	visit(e)
	return b.String()
}
