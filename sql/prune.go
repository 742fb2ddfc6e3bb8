package sql

// Column pruning: a pass over a finished plan that tells each table scan
// which of its columns the operators above it read, so that it decodes only
// those (rowenc's DecodeInto skips the others, which read as NULL where
// nothing looks at them). The rows keep their width, so no expression's
// column positions change.
//
// The pass is conservative: an operator it does not know, an expression it
// does not see into, or a subquery (which may read the current row as its
// outer row) makes every column below that point needed. A scan reached
// twice (a WITH query read twice) decodes what either reader needs.

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

// pruneColumns tells the scans under n which columns are read, given the
// columns of n's rows read above it (need; nil: all).
func pruneColumns(n relNode, need []bool) {
	seen := map[*tableScanNode]bool{}
	pruneNode(n, need, seen)
}

func pruneNode(n relNode, need []bool, seen map[*tableScanNode]bool) {
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
		if seen[v] {
			// Another reader: decode what either needs.
			if v.need == nil || cols == nil {
				cols = nil
			} else {
				for i := range cols {
					cols[i] = cols[i] || v.need[i]
				}
			}
		}
		seen[v] = true
		v.need = cols
	case *filterNode:
		u := newColUse(need, v.width())
		u.addExpr(v.cond)
		pruneNode(v.in, u.cols, seen)
	case *projectNode:
		u := noCols(v.in.width())
		for _, x := range v.exprs {
			u.addExpr(x)
		}
		pruneNode(v.in, u.cols, seen)
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
			for _, o := range a.order {
				u.addExpr(o.e)
			}
		}
		pruneNode(v.in, u.cols, seen)
	case *sortNode:
		u := newColUse(need, v.width())
		for _, k := range v.keys {
			u.addExpr(k.e)
		}
		pruneNode(v.in, u.cols, seen)
	case *limitNode:
		pruneNode(v.in, need, seen)
	case *distinctNode:
		u := newColUse(need, v.width())
		for i := 0; i < v.n; i++ {
			u.add(i)
		}
		pruneNode(v.in, u.cols, seen)
	case *joinNode:
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
			for _, x := range v.lookup.keys {
				left.addExpr(x)
			}
			right.addExpr(v.lookup.scan.filter)
		}
		pruneNode(v.left, left.cols, seen)
		pruneNode(v.right, right.cols, seen)
	// The operators below whom the pass does not prune: every column of
	// their inputs is needed.
	case *setOpNode:
		pruneNode(v.left, nil, seen)
		pruneNode(v.right, nil, seen)
	case *windowNode:
		pruneNode(v.in, nil, seen)
	case *projectSetNode:
		pruneNode(v.in, nil, seen)
	}
	// The leaves without columns to prune (VALUES, functions, virtual
	// tables, the one row) need nothing.
}
