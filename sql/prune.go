package sql

import "sync/atomic"

// Column pruning: a pass over a finished plan that tells each table scan
// which of its columns the operators above it read, so that it decodes only
// those (rowenc's DecodeInto skips the others, which read as NULL where
// nothing looks at them), and has each join emit only the columns read
// above it instead of every column of both inputs (a psql catalog query
// joins rows of 30 to 90 columns to read a dozen).
//
// A join that drops columns moves the ones after them: the pass returns,
// for each operator, where each of its old output columns went (a
// colMap), and the operators above rewrite their expressions with it,
// bottom-up. Scans, projections and the operators the pass does not prune
// below keep their columns where they are (a nil colMap).
//
// The pass is conservative: an operator it does not know, an expression it
// does not see into, or a subquery (which may read the current row as its
// outer row, by position) makes every column below that point needed, so
// nothing below it moves. An operator read twice (a WITH query read twice)
// keeps every column of its output, and is rewritten once.

// colUse collects the columns of one row that expressions read.
type colUse struct {
	cols []bool // nil: every column
}

// newColUse starts from need (nil: every column) over a row of width w.
func newColUse(need []bool, w int) *colUse {
	if need == nil {
		return &colUse{}
	}
	cols := make([]bool, w)
	copy(cols, need)
	return &colUse{cols: cols}
}

// none returns an empty use of a row of width w.
func noCols(w int) *colUse { return &colUse{cols: make([]bool, w)} }

func (u *colUse) add(idx int) {
	if u.cols == nil {
		return
	}
	if idx < 0 || idx >= len(u.cols) {
		u.cols = nil // a reference the pass cannot place: keep everything
		return
	}
	u.cols[idx] = true
}

// addExpr adds the columns e reads of the row it is evaluated on.
func (u *colUse) addExpr(e texpr) {
	if e == nil || u.cols == nil {
		return
	}
	switch v := e.(type) {
	case *constExpr, *placeholderExpr, *outerColExpr:
		return
	case *colExpr:
		u.add(v.idx)
		return
	case *aggRef:
		if v.inRow {
			u.add(v.idx)
		}
		return
	case *subqueryExpr:
		u.cols = nil
		return
	case *binExpr, *cmpExpr, *andExpr, *orExpr, *notExpr, *negExpr, *isNullExpr, *inExpr,
		*likeExpr, *castExpr, *funcExpr, *caseExpr, *distinctExpr, *quantExpr, *arrayExpr,
		*regexExpr, *indexExpr, *regCastExpr:
		forChildren(e, u.addExpr)
		return
	}
	u.cols = nil // an expression this pass does not see into
}

// slice returns the part [lo, lo+w) of the use, shifted to start at 0.
func (u *colUse) slice(lo, w int) []bool {
	if u.cols == nil {
		return nil
	}
	return u.cols[lo : lo+w]
}

// testingJoinsEmitAll, set by a test, has every join emit all its columns
// (the plan before this pass's rewriting), to compare the answers.
var testingJoinsEmitAll atomic.Bool

// colMap says where each column of an operator's rows went when the pass
// dropped columns below it: m[old] is the new position, -1 for a column
// no operator reads. nil: every column stays where it was.
type colMap []int

// remap rewrites e, evaluated on rows whose columns moved by m.
func remap(e texpr, m colMap) texpr {
	if m == nil || e == nil {
		return e
	}
	return mapTexpr(e, func(x texpr) texpr {
		switch v := x.(type) {
		case *colExpr:
			return &colExpr{idx: m[v.idx], t: v.t, name: v.name}
		case *aggRef:
			if v.inRow {
				return &aggRef{idx: m[v.idx], t: v.t, mod: v.mod, inRow: true}
			}
		}
		return nil
	})
}

func remapAll(es []texpr, m colMap) []texpr {
	if m == nil {
		return es
	}
	out := make([]texpr, len(es))
	for i, e := range es {
		out[i] = remap(e, m)
	}
	return out
}

func remapOrder(os []orderItem, m colMap) []orderItem {
	if m == nil {
		return os
	}
	out := make([]orderItem, len(os))
	for i, o := range os {
		o.e = remap(o.e, m)
		out[i] = o
	}
	return out
}

// pruneColumns tells the scans under n which columns are read and has the
// joins under it emit only those, given the columns of n's rows read
// above it (need; nil: all, and then n's own columns stay where they are).
func pruneColumns(n relNode, need []bool) {
	p := &pruner{refs: map[relNode]int{}, done: map[relNode]colMap{}}
	p.count(n)
	p.node(n, need)
}

type pruner struct {
	refs map[relNode]int    // readers of each operator
	done map[relNode]colMap // operators rewritten, with their colMap
}

func (p *pruner) count(n relNode) {
	if p.refs[n]++; p.refs[n] > 1 {
		return
	}
	for _, c := range relChildren(n) {
		p.count(c)
	}
}

// node prunes under n and returns n's colMap.
func (p *pruner) node(n relNode, need []bool) colMap {
	if m, ok := p.done[n]; ok {
		return m // a second reader: every column was kept (below)
	}
	if p.refs[n] > 1 {
		need = nil
	}
	m := p.prune(n, need)
	p.done[n] = m
	return m
}

func (p *pruner) prune(n relNode, need []bool) colMap {
	switch v := n.(type) {
	case *tableScanNode:
		u := newColUse(need, v.width())
		u.addExpr(v.filter)
		cols := u.cols
		if cols != nil {
			all := true
			for _, c := range cols {
				all = all && c
			}
			if all {
				cols = nil
			}
		}
		v.need = cols
		return nil
	case *filterNode:
		u := newColUse(need, v.width())
		u.addExpr(v.cond)
		m := p.node(v.in, u.cols)
		v.cond = remap(v.cond, m)
		return m
	case *projectNode:
		u := noCols(v.in.width())
		for _, x := range v.exprs {
			u.addExpr(x)
		}
		v.exprs = remapAll(v.exprs, p.node(v.in, u.cols))
		return nil
	case *groupNode:
		w := v.in.width()
		var u *colUse
		if need == nil {
			u = &colUse{}
		} else {
			u = noCols(w)
			copy(u.cols, need[:w])
		}
		for _, k := range v.keys {
			u.addExpr(k)
		}
		for _, a := range v.aggs {
			u.addExpr(a.arg)
			u.addExpr(a.sep)
			u.addExpr(a.filter)
			for _, o := range a.order {
				u.addExpr(o.e)
			}
		}
		m := p.node(v.in, u.cols)
		if m == nil {
			return nil
		}
		v.keys = remapAll(v.keys, m)
		aggs := make([]*aggregate, len(v.aggs))
		for i, a := range v.aggs {
			c := *a
			c.arg, c.sep, c.filter, c.order = remap(a.arg, m), remap(a.sep, m), remap(a.filter, m), remapOrder(a.order, m)
			aggs[i] = &c
		}
		v.aggs = aggs
		// The aggregates follow the (narrower) input row.
		out := append(colMap(nil), m...)
		nw := v.in.width()
		for i := range v.aggs {
			out = append(out, nw+i)
		}
		return out
	case *sortNode:
		u := newColUse(need, v.width())
		for _, k := range v.keys {
			u.addExpr(k.e)
		}
		m := p.node(v.in, u.cols)
		v.keys = remapOrder(v.keys, m)
		return m
	case *limitNode:
		return p.node(v.in, need)
	case *distinctNode:
		// Its first n columns are read, so none of them moves (columns
		// move only when one before them is dropped).
		u := newColUse(need, v.width())
		for i := 0; i < v.n; i++ {
			u.add(i)
		}
		return p.node(v.in, u.cols)
	case *joinNode:
		return p.join(v, need)
	// The operators below whom the pass does not prune: every column of
	// their inputs is needed.
	case *setOpNode:
		p.node(v.left, nil)
		p.node(v.right, nil)
	case *windowNode:
		p.node(v.in, nil)
	case *projectSetNode:
		p.node(v.in, nil)
	}
	// The leaves without columns to prune (VALUES, functions, virtual
	// tables, the one row) need nothing.
	return nil
}

// join prunes under a join, rewrites its expressions for its inputs' new
// columns, and has it emit only the columns needed above it (need).
func (p *pruner) join(v *joinNode, need []bool) colMap {
	lw, rw := v.left.width(), v.right.width()
	joined := newColUse(need, lw+rw)
	joined.addExpr(v.cond)
	left, right := newColUse(joined.slice(0, lw), lw), newColUse(joined.slice(lw, rw), rw)
	for _, x := range v.eqLeft {
		left.addExpr(x)
	}
	for _, x := range v.eqRight {
		right.addExpr(x)
	}
	if v.lookup != nil {
		// Its equalities on the joined row are eqLeft's and eqRight's.
		for _, x := range v.lookup.keys {
			left.addExpr(x)
		}
		right.addExpr(v.lookup.scan.filter)
	}
	ml, mr := p.node(v.left, left.cols), p.node(v.right, right.cols)
	// inner: where each old column of the joined row is in the row of the
	// inputs' new columns, on which cond and the lookup's equalities run.
	var inner colMap
	if ml != nil || mr != nil {
		nlw := v.left.width()
		inner = make(colMap, lw+rw)
		for i := range inner {
			switch {
			case i < lw && ml != nil:
				inner[i] = ml[i]
			case i < lw:
				inner[i] = i
			case mr == nil:
				inner[i] = nlw + i - lw
			case mr[i-lw] < 0:
				inner[i] = -1
			default:
				inner[i] = nlw + mr[i-lw]
			}
		}
	}
	v.eqLeft, v.eqRight, v.cond = remapAll(v.eqLeft, ml), remapAll(v.eqRight, mr), remap(v.cond, inner)
	if v.lookup != nil {
		v.lookup.keys, v.lookup.eqs = remapAll(v.lookup.keys, ml), remapAll(v.lookup.eqs, inner)
	}
	if need == nil || testingJoinsEmitAll.Load() {
		return inner
	}
	// The output: the needed columns, in order.
	out := make(colMap, lw+rw)
	var emit []int
	for i := range out {
		out[i] = -1
		if need[i] {
			at := i
			if inner != nil {
				at = inner[i]
			}
			out[i] = len(emit)
			emit = append(emit, at)
		}
	}
	if len(emit) == v.left.width()+v.right.width() {
		return inner // every column is read
	}
	v.out = emit
	return out
}

// relChildren lists the inputs of a plan operator.
func relChildren(n relNode) []relNode {
	switch v := n.(type) {
	case *filterNode:
		return []relNode{v.in}
	case *projectNode:
		return []relNode{v.in}
	case *joinNode:
		return []relNode{v.left, v.right}
	case *groupNode:
		return []relNode{v.in}
	case *sortNode:
		return []relNode{v.in}
	case *limitNode:
		return []relNode{v.in}
	case *distinctNode:
		return []relNode{v.in}
	case *setOpNode:
		return []relNode{v.left, v.right}
	case *windowNode:
		return []relNode{v.in}
	case *projectSetNode:
		return []relNode{v.in}
	case *recursiveNode:
		return []relNode{v.anchor, v.rec}
	}
	return nil
}
