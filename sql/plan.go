package sql

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// scanKind is how a statement reads its table.
type scanKind int

const (
	// scanFull reads every row of the table.
	scanFull scanKind = iota
	// scanRange reads the rows whose leading key columns are fixed by
	// equalities and whose next key column is bounded.
	scanRange
	// scanPoint reads one row: the WHERE fixes the whole key.
	scanPoint
	// scanPoints reads a few rows by key: the WHERE fixes every key column
	// but the last with equalities and lists the last with IN.
	scanPoints
)

// bound is a lower or upper bound on a key column.
type bound struct {
	e         texpr
	inclusive bool
}

// orderItem is one ORDER BY item over the input row.
type orderItem struct {
	e     texpr
	desc  bool
	nulls parser.NullsOrder // NULLS FIRST/LAST; default: last ascending, first descending
}

// scanPlan is the access decision for one table read. It is computed once
// per statement (choosePlan) and turned into key spans per execution.
type scanPlan struct {
	kind scanKind
	// eq holds the values of the first len(eq) key columns.
	eq []texpr
	// in lists the values of the last key column (scanPoints only).
	in []texpr
	// lower and upper bound key column len(eq) (scanRange only). Several
	// bounds may apply; the tightest wins at execution.
	lower, upper []bound
	// reverse scans in descending key order.
	reverse bool
	// orderDone: the scan order is the requested ORDER BY, no sort needed.
	orderDone bool
	// exact: the span enforces every WHERE conjunct, so no row read is
	// filtered out and a LIMIT can be pushed into the scan.
	exact bool
	// index, when set, makes this a scan of a secondary index (index.go):
	// eq, in and the bounds are on the index's columns.
	index *indexScan
}

// planScan decides how a statement reads ti: by primary key, or by a
// secondary index when the primary key would need a full scan.
func planScan(ti *tableInfo, where texpr, order []orderItem) scanPlan {
	p, _ := chooseIndex(ti, where, choosePlan(ti.pk, pkTypes(ti), where, order))
	return p
}

// scanOn names what a scan reads and its key columns, for EXPLAIN.
func scanOn(ti *tableInfo, sp *scanPlan) (string, []string) {
	var key []string
	cols := ti.pk
	if sp.index != nil {
		cols = sp.index.ii.cols
	}
	for _, i := range cols {
		key = append(key, quoteName(ti.cols[i].Name))
	}
	if sp.index != nil {
		return fmt.Sprintf("index %s (%s)", quoteName(sp.index.ii.desc.Name), strings.Join(key, ", ")), key
	}
	return fmt.Sprintf("primary key (%s)", strings.Join(key, ", ")), key
}

func (p scanPlan) String() string {
	var b strings.Builder
	switch p.kind {
	case scanPoint:
		b.WriteString("point")
	case scanPoints:
		fmt.Fprintf(&b, "points=%d", len(p.in))
	case scanRange:
		b.WriteString("range")
	default:
		b.WriteString("full")
	}
	if len(p.eq) > 0 && p.kind != scanPoint && p.kind != scanPoints {
		fmt.Fprintf(&b, " eq=%d", len(p.eq))
	}
	if len(p.lower) > 0 {
		fmt.Fprintf(&b, " lower=%d", len(p.lower))
	}
	if len(p.upper) > 0 {
		fmt.Fprintf(&b, " upper=%d", len(p.upper))
	}
	if p.reverse {
		b.WriteString(" reverse")
	}
	if p.orderDone {
		b.WriteString(" ordered")
	}
	if p.exact {
		b.WriteString(" exact")
	}
	if p.index != nil {
		b.WriteString(" index=" + p.index.ii.desc.Name)
	}
	return b.String()
}

// conjuncts flattens a predicate's top-level ANDs.
func conjuncts(e texpr) []texpr {
	if e == nil {
		return nil
	}
	if a, ok := e.(*andExpr); ok {
		return append(conjuncts(a.l), conjuncts(a.r)...)
	}
	return []texpr{e}
}

// keyCondition recognizes "keycol op value" (either way around) where value
// is fixed for the execution and has exactly the column's type, so that it
// can be key-encoded. It returns the key column's position in pk.
func keyCondition(c texpr, pk []int, pkTypes []types.T) (pos int, op parser.CmpOp, val texpr, ok bool) {
	cmp, isCmp := c.(*cmpExpr)
	if !isCmp || cmp.op == parser.CmpNE {
		return 0, 0, nil, false
	}
	try := func(col, other texpr, op parser.CmpOp) (int, parser.CmpOp, texpr, bool) {
		ce, isCol := col.(*colExpr)
		if !isCol || !isRowIndependent(other) {
			return 0, 0, nil, false
		}
		for j, idx := range pk {
			if idx == ce.idx && ce.t == pkTypes[j] && other.typ() == pkTypes[j] {
				return j, op, other, true
			}
		}
		return 0, 0, nil, false
	}
	if pos, op, val, ok := try(cmp.l, cmp.r, cmp.op); ok {
		return pos, op, val, ok
	}
	return try(cmp.r, cmp.l, cmp.op.Flip())
}

// choosePlan decides how to read a table: a point lookup when the WHERE
// fixes the whole primary key with equalities, a range scan when it fixes a
// prefix of the key and/or bounds the next key column, a full scan
// otherwise. The WHERE is always re-applied to the rows read, so the plan
// only has to read a superset of the matching rows. pk holds the key
// columns' positions in the row, pkTypes their types; order is the ORDER
// BY over the same row.
func choosePlan(pk []int, pkTypes []types.T, where texpr, order []orderItem) scanPlan {
	var p scanPlan
	conds := conjuncts(where)
	used := make([]bool, len(conds))

	// Equalities on a prefix of the key.
	for j := range pk {
		found := false
		for ci, c := range conds {
			if used[ci] {
				continue
			}
			if pos, op, val, ok := keyCondition(c, pk, pkTypes); ok && pos == j && op == parser.CmpEQ {
				p.eq = append(p.eq, val)
				used[ci] = true
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	switch {
	case len(p.eq) == len(pk):
		p.kind = scanPoint
	case len(p.eq) == len(pk)-1 && inCondition(conds, used, pk[len(pk)-1], pkTypes[len(pk)-1], &p):
		p.kind = scanPoints
	default:
		// Bounds on the next key column.
		next := len(p.eq)
		for ci, c := range conds {
			if used[ci] {
				continue
			}
			pos, op, val, ok := keyCondition(c, pk, pkTypes)
			if !ok || pos != next {
				continue
			}
			switch op {
			case parser.CmpGT, parser.CmpGE:
				p.lower = append(p.lower, bound{e: val, inclusive: op == parser.CmpGE})
				used[ci] = true
			case parser.CmpLT, parser.CmpLE:
				p.upper = append(p.upper, bound{e: val, inclusive: op == parser.CmpLE})
				used[ci] = true
			}
		}
		if len(p.eq) > 0 || len(p.lower) > 0 || len(p.upper) > 0 {
			p.kind = scanRange
		}
	}
	p.exact = true
	for _, u := range used {
		p.exact = p.exact && u
	}

	// ORDER BY: satisfied by the scan when it lists key columns in key
	// order, all in one direction; key columns fixed by equalities may be
	// skipped or included anywhere.
	p.orderDone = true
	if len(order) > 0 {
		desc := order[0].desc
		j := 0
		for _, o := range order {
			ce, isCol := o.e.(*colExpr)
			if !isCol || o.desc != desc {
				p.orderDone = false
				break
			}
			for j < len(pk) && pk[j] != ce.idx && j < len(p.eq) {
				j++
			}
			if j < len(pk) && pk[j] == ce.idx {
				j++
				continue
			}
			// A column fixed by an equality has one value: ordering by it
			// is a no-op wherever it appears.
			fixed := false
			for k := 0; k < len(p.eq); k++ {
				fixed = fixed || pk[k] == ce.idx
			}
			if !fixed {
				p.orderDone = false
				break
			}
		}
		if p.orderDone {
			p.reverse = desc
		}
	}
	return p
}

// inCondition looks for "col IN (values)" on the key column at position
// idx, with values fixed for the execution and of the column's type. It
// records the values in p and marks the conjunct used.
func inCondition(conds []texpr, used []bool, idx int, t types.T, p *scanPlan) bool {
	for ci, c := range conds {
		in, ok := c.(*inExpr)
		if used[ci] || !ok || in.not {
			continue
		}
		ce, isCol := in.e.(*colExpr)
		if !isCol || ce.idx != idx || ce.t != t {
			continue
		}
		fits := true
		for _, x := range in.list {
			fits = fits && x.typ() == t && isRowIndependent(x)
		}
		if fits {
			p.in = in.list
			used[ci] = true
			return true
		}
	}
	return false
}

// pointKeys computes the keys of a scanPoint or scanPoints plan for one
// execution: distinct, in scan order.
func (p *scanPlan) pointKeys(ec *evalCtx, ti *tableInfo) ([][]byte, error) {
	if p.kind == scanPoint {
		k, _, empty, err := p.keySpan(ec, ti)
		if err != nil || empty {
			return nil, err
		}
		return [][]byte{k}, nil
	}
	prefix, _, empty, err := (&scanPlan{kind: scanPoint, eq: p.eq}).keySpan(ec, ti)
	if err != nil || empty {
		return nil, err
	}
	colType := ti.cols[ti.pk[len(p.eq)]].Type
	seen := map[string]bool{}
	var keys [][]byte
	for _, x := range p.in {
		d, err := ec.eval(x)
		if err != nil {
			return nil, err
		}
		if d == nil {
			continue // k IN (NULL) matches nothing
		}
		k, err := rowenc.AppendKey(append([]byte(nil), prefix...), colType, d)
		if err != nil {
			return nil, err
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return bytes.Compare(keys[i], keys[j]) < 0 != p.reverse
	})
	return keys, nil
}

// keySpan computes the span to read for one execution. empty reports that
// no row can match (a bound is NULL, or the bounds cross).
func (p *scanPlan) keySpan(ec *evalCtx, ti *tableInfo) (start, end []byte, empty bool, err error) {
	var buf [4]types.Datum
	vals := buf[:0]
	if len(p.eq) > len(buf) {
		vals = make([]types.Datum, 0, len(p.eq))
	}
	vals = vals[:len(p.eq)]
	for i, e := range p.eq {
		d, err := ec.eval(e)
		if err != nil {
			return nil, nil, false, err
		}
		if d == nil {
			return nil, nil, true, nil // key = NULL matches nothing
		}
		vals[i] = d
	}
	prefix, err := ti.layout.EncodeKeyPrefix(vals)
	if err != nil {
		return nil, nil, false, err
	}
	if p.kind == scanPoint {
		return prefix, nil, false, nil
	}
	start, end = prefix, rowenc.PrefixEnd(prefix)
	if len(p.lower) == 0 && len(p.upper) == 0 {
		return start, end, false, nil
	}
	colType := ti.cols[ti.pk[len(p.eq)]].Type
	encode := func(b bound) ([]byte, bool, error) {
		d, err := ec.eval(b.e)
		if err != nil || d == nil {
			return nil, d == nil, err
		}
		k, err := rowenc.AppendKey(append([]byte(nil), prefix...), colType, d)
		return k, false, err
	}
	for _, b := range p.lower {
		k, null, err := encode(b)
		if err != nil {
			return nil, nil, false, err
		}
		if null {
			return nil, nil, true, nil
		}
		if !b.inclusive {
			k = rowenc.PrefixEnd(k)
		}
		if bytes.Compare(k, start) > 0 {
			start = k
		}
	}
	for _, b := range p.upper {
		k, null, err := encode(b)
		if err != nil {
			return nil, nil, false, err
		}
		if null {
			return nil, nil, true, nil
		}
		if b.inclusive {
			k = rowenc.PrefixEnd(k)
		}
		if bytes.Compare(k, end) < 0 {
			end = k
		}
	}
	return start, end, bytes.Compare(start, end) >= 0, nil
}
