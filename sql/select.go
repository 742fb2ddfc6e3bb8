package sql

import (
	"bytes"
	"slices"
	"sort"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// kvRow is a row read from the store, with its raw key and value kept for
// conditional writes.
type kvRow struct {
	key, value []byte
	row        []types.Datum
	extra      []rowenc.RawColumn
}

// readRows reads the rows of ti that the scan plan selects (a superset of
// the matching rows unless the plan is exact). limit > 0 caps the number of
// rows read, for pushed-down LIMITs.
func (e *Executor) readRows(ec *evalCtx, ti *tableInfo, p *scanPlan, limit int) ([]kvRow, error) {
	if p.index != nil {
		return e.readRowsByIndex(ec, ti, p, limit)
	}
	if p.kind == scanPoints || p.kind == scanPoint {
		keys, err := p.pointKeys(ec, ti)
		if err != nil {
			return nil, err
		}
		if s, ok := e.kv(ec.ctx).(kvpb.Streamer); ok && len(keys) > 1 {
			return readPoints(ec, ti, s, keys, p.reverse, limit)
		}
		var out []kvRow
		for _, k := range keys {
			if limit > 0 && len(out) >= limit {
				break
			}
			v, found, err := e.kv(ec.ctx).Get(ec.ctx, k)
			if err != nil {
				return nil, kvError(err)
			}
			if !found {
				continue
			}
			row, extra, err := ti.layout.Decode(k, v)
			if err != nil {
				return nil, err
			}
			out = append(out, kvRow{key: k, value: v, row: row, extra: extra})
		}
		return out, nil
	}
	start, end, empty, err := p.keySpan(ec, ti)
	if err != nil || empty {
		return nil, err
	}
	kvs, err := e.kv(ec.ctx).Scan(ec.ctx, start, end, limit, p.reverse)
	if err != nil {
		return nil, kvError(err)
	}
	out := make([]kvRow, 0, len(kvs))
	for _, kv := range kvs {
		row, extra, err := ti.layout.Decode(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, kvRow{key: kv.Key, value: kv.Value, row: row, extra: extra})
	}
	return out, nil
}

// readPoints reads the rows of the distinct keys, sorted in the scan's
// order (descending if reverse), from one state of the store: one read of
// them all, as PostgreSQL's statement reads one snapshot. Read one after
// the other, each a read of its own, a write moving a value between two
// of the rows could be seen twice or not at all
// (TestPointLookupsReadOneState).
func readPoints(ec *evalCtx, ti *tableInfo, s kvpb.Streamer, keys [][]byte, reverse bool, limit int) ([]kvRow, error) {
	asc := keys
	if reverse {
		asc = slices.Clone(keys)
		slices.Reverse(asc)
	}
	vals := make([][]byte, len(asc))
	found := make([]bool, len(asc))
	if err := s.GetEach(ec.ctx, asc, func(i int, v []byte) error {
		// A copy: the store's memory is valid only during the call.
		vals[i], found[i] = bytes.Clone(v), true
		return nil
	}); err != nil {
		return nil, kvError(err)
	}
	var out []kvRow
	for j := range keys {
		i := j
		if reverse {
			i = len(keys) - 1 - j
		}
		if !found[i] {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		row, extra, err := ti.layout.Decode(asc[i], vals[i])
		if err != nil {
			return nil, err
		}
		out = append(out, kvRow{key: asc[i], value: vals[i], row: row, extra: extra})
	}
	return out, nil
}

// isStale reports whether the table changed since ti was resolved.
func (e *Executor) isStale(ti *tableInfo) bool {
	if ti.overlay != nil {
		return ti.overlay.get(ti.desc.Key()) != ti.desc
	}
	// A pending table decided committed is the table until its publish,
	// and so is a changed table's pending version.
	cur, ok := e.catalog.GetAny(ti.desc.Key())
	return !ok || (cur != ti.desc && cur.Next != ti.desc)
}

func pkTypes(ti *tableInfo) []types.T {
	out := make([]types.T, len(ti.pk))
	for i, idx := range ti.pk {
		out[i] = ti.cols[idx].Type
	}
	return out
}

// checkCount type-checks a LIMIT or OFFSET expression: an INT8 that does
// not depend on rows.
func checkCount(a *analyzer, e parser.Expr, what string) (texpr, error) {
	if e == nil {
		return nil, nil
	}
	te, err := a.check(e, types.Int)
	if err != nil {
		return nil, err
	}
	if t := te.typ(); t != types.Int && t != types.Unknown {
		return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "argument of %s must be type int, not type %s", what, typeName(t))
	}
	return te, nil
}

// evalCount evaluates LIMIT or OFFSET; -1 means none.
func evalCount(ec *evalCtx, e texpr, what, code string) (int64, error) {
	if e == nil {
		return -1, nil
	}
	d, err := ec.eval(e)
	if err != nil || d == nil {
		return -1, err
	}
	n, ok := d.(int64)
	if !ok {
		return 0, errors.AssertionFailedf("%s of type %T", what, d)
	}
	if n < 0 {
		return 0, pgerror.Newf(code, "%s must not be negative", what)
	}
	return n, nil
}

func project(ec *evalCtx, r []types.Datum, exprs []texpr) ([]types.Datum, error) {
	ec.row = r
	out := make([]types.Datum, len(exprs))
	for i, x := range exprs {
		d, err := ec.eval(x)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// sortRows sorts rows by the ORDER BY items, stably, with NULLs last in
// ascending order and first in descending order, as in PostgreSQL.
func sortRows(ec *evalCtx, rows [][]types.Datum, order []orderItem) error {
	keys := make([][]types.Datum, len(rows))
	for i, r := range rows {
		ec.row = r
		k := make([]types.Datum, len(order))
		for j, o := range order {
			d, err := ec.eval(o.e)
			if err != nil {
				return err
			}
			k[j] = d
		}
		keys[i] = k
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	var sortErr error
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		for j, o := range order {
			x, y := ka[j], kb[j]
			var c int
			switch {
			case x == nil && y == nil:
				c = 0
			case x == nil || y == nil:
				// NULLs sort as larger than any value (last ascending,
				// first descending) unless NULLS FIRST/LAST says.
				nullFirst := o.desc
				switch o.nulls {
				case parser.NullsFirst:
					nullFirst = true
				case parser.NullsLast:
					nullFirst = false
				}
				c = 1
				if nullFirst {
					c = -1
				}
				if y == nil {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			default:
				var err error
				if c, err = compareDatums(x, y); err != nil && sortErr == nil {
					sortErr = err
				}
				if o.desc {
					c = -c
				}
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	if sortErr != nil {
		return sortErr
	}
	sorted := make([][]types.Datum, len(rows))
	for i, j := range idx {
		sorted[i] = rows[j]
	}
	copy(rows, sorted)
	return nil
}
