package sql

// Secondary indexes (release 2.1).
//
// An index entry's key is keys.IndexPrefix(table, index), then each indexed
// column as a marker byte (0x00 NULL, 0x01 a value) and, for a value, its
// order-preserving key encoding; then, unless the index is unique and no
// indexed column is NULL, the row's key, which makes the entry unique per
// row. Its value is the row's key. So a unique index has one entry per
// value, and a conditional put of that entry (expect absent) is the
// uniqueness check, decided where the write is applied, in the same atomic
// batch as the row; NULLs never conflict, as in PostgreSQL.
//
// Every write of a row writes the changes of every index, the ones being
// built included (WriteOnly), in the same batch: an entry is never seen
// without its row or the row without its entries. A read uses an index that
// is not WriteOnly when the WHERE fixes or bounds its leading columns and
// not the primary key's: it scans the entries, then reads each row by key,
// and applies the whole WHERE to the rows (createindex.go builds indexes).

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

// indexInfo is one secondary index of a tableInfo.
type indexInfo struct {
	desc  *catalog.IndexDescriptor
	cols  []int // positions of the indexed columns in the row
	types []types.T
}

func buildIndexInfos(ti *tableInfo) error {
	for i := range ti.desc.Indexes {
		d := &ti.desc.Indexes[i]
		ii := indexInfo{desc: d}
		for _, id := range d.Columns {
			pos := ti.desc.ColumnIndexByID(id)
			if pos < 0 {
				return errors.AssertionFailedf("table %q: index %q names a missing column", ti.desc.Name, d.Name)
			}
			ii.cols = append(ii.cols, pos)
			ii.types = append(ii.types, ti.cols[pos].Type)
		}
		ti.indexes = append(ti.indexes, ii)
	}
	return nil
}

// appendIndexColumn appends one indexed column's encoding.
func appendIndexColumn(b []byte, t types.T, d types.Datum) ([]byte, error) {
	if d == nil {
		return append(b, 0x00), nil
	}
	return rowenc.AppendKey(append(b, 0x01), t, d)
}

// entry returns the index entry of the row with key rowKey.
func (ii *indexInfo) entry(tableID int64, rowKey []byte, row []types.Datum) (key []byte, unique bool, err error) {
	key = keys.IndexPrefix(tableID, ii.desc.ID)
	hasNull := false
	for j, pos := range ii.cols {
		hasNull = hasNull || row[pos] == nil
		if key, err = appendIndexColumn(key, ii.types[j], row[pos]); err != nil {
			return nil, false, err
		}
	}
	if ii.desc.Unique && !hasNull {
		return key, true, nil
	}
	return append(key, rowKey...), false, nil
}

// indexChanges accumulates the index entries a statement's rows change:
// deletions first, then puts, so that rows trading values of a unique
// column within one statement do not conflict with each other.
type indexChanges struct {
	dels, puts []kvpb.Op
}

// row records the entries of a row going from old (nil: inserted) to new
// (nil: deleted), for every index of ti, the ones being built included.
func (c *indexChanges) row(ti *tableInfo, oldKey []byte, old []types.Datum, newKey []byte, new []types.Datum) error {
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		var ok, nk []byte
		var unique bool
		var err error
		if old != nil {
			if ok, _, err = ii.entry(ti.desc.ID, oldKey, old); err != nil {
				return err
			}
		}
		if new != nil {
			if nk, unique, err = ii.entry(ti.desc.ID, newKey, new); err != nil {
				return err
			}
		}
		if ok != nil && nk != nil && bytes.Equal(ok, nk) && bytes.Equal(oldKey, newKey) {
			continue // the entry stays as it is
		}
		if ok != nil {
			c.dels = append(c.dels, kvpb.Op{Kind: kvpb.OpDelete, Key: ok})
		}
		if nk != nil {
			if unique {
				c.puts = append(c.puts, kvpb.Op{Kind: kvpb.OpCPut, Key: nk, Value: newKey, ExpectAbsent: true})
			} else {
				c.puts = append(c.puts, kvpb.Op{Kind: kvpb.OpPut, Key: nk, Value: newKey})
			}
		}
	}
	return nil
}

// appendTo returns ops followed by the index changes.
func (c *indexChanges) appendTo(ops []kvpb.Op) []kvpb.Op {
	return append(append(ops, c.dels...), c.puts...)
}

// indexViolation turns a failed uniqueness check on an index entry into
// 23505 naming the index and the value; ok is false for other keys.
func indexViolation(ti *tableInfo, key []byte) (error, bool) {
	if len(key) < 13 || key[0] != keys.IndexDataPrefix {
		return nil, false
	}
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		prefix := keys.IndexPrefix(ti.desc.ID, ii.desc.ID)
		if !bytes.HasPrefix(key, prefix) {
			continue
		}
		err := pgerror.Newf(pgerror.CodeUniqueViolation, "duplicate key value violates unique constraint %q", ii.desc.Name)
		rest := key[len(prefix):]
		var cols, vals []string
		for j, pos := range ii.cols {
			if len(rest) == 0 || rest[0] != 0x01 {
				return err, true
			}
			d, r, derr := rowenc.DecodeKey(rest[1:], ii.types[j])
			if derr != nil {
				return err, true
			}
			rest = r
			cols = append(cols, ti.cols[pos].Name)
			vals = append(vals, formatDatumForDetail(d))
		}
		return errors.WithDetail(err, fmt.Sprintf("Key (%s)=(%s) already exists.", strings.Join(cols, ", "), strings.Join(vals, ", "))), true
	}
	return pgerror.Newf(pgerror.CodeUniqueViolation, "duplicate key value violates a unique index of %q", ti.desc.Name), true
}

// hasIndexes reports whether writes to the table must maintain indexes, so
// that they cannot be blind (the old row is needed to delete its entries).
func (ti *tableInfo) hasIndexes() bool { return len(ti.indexes) > 0 }

// indexScan is a scanPlan over a secondary index: its eq, in and bounds
// refer to the index's columns.
type indexScan struct {
	ii *indexInfo
}

// chooseIndex returns the plan of the best public index for where, when the
// primary key's plan pk is a full scan: an index whose leading column the
// WHERE fixes (point) is preferred over one it bounds (range), a unique
// one over another, and then the first created.
func chooseIndex(ti *tableInfo, where texpr, pk scanPlan) (scanPlan, bool) {
	if pk.kind != scanFull || where == nil {
		return pk, false
	}
	best, bestScore := pk, 0
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		if ii.desc.WriteOnly {
			continue
		}
		p := choosePlan(ii.cols, ii.types, where, nil)
		score := 0
		switch {
		case p.kind == scanPoint && ii.desc.Unique:
			score = 4
		case p.kind == scanPoint || p.kind == scanPoints:
			score = 3
		case p.kind == scanRange && len(p.eq) > 0:
			score = 2
		case p.kind == scanRange:
			score = 1
		}
		if score > bestScore {
			p.index = &indexScan{ii: ii}
			p.exact, p.orderDone, p.reverse = false, false, false
			best, bestScore = p, score
		}
	}
	return best, bestScore > 0
}

// indexSpans computes the spans of index entries to read for one execution.
func (p *scanPlan) indexSpans(ec *evalCtx, ti *tableInfo) ([][2][]byte, error) {
	ii := p.index.ii
	prefix := keys.IndexPrefix(ti.desc.ID, ii.desc.ID)
	for j, e := range p.eq {
		d, err := ec.eval(e)
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, nil // col = NULL matches nothing
		}
		if prefix, err = appendIndexColumn(prefix, ii.types[j], d); err != nil {
			return nil, err
		}
	}
	switch p.kind {
	case scanPoint:
		return [][2][]byte{{prefix, rowenc.PrefixEnd(prefix)}}, nil
	case scanPoints:
		var out [][2][]byte
		seen := map[string]bool{}
		for _, x := range p.in {
			d, err := ec.eval(x)
			if err != nil {
				return nil, err
			}
			if d == nil {
				continue
			}
			k, err := appendIndexColumn(append([]byte(nil), prefix...), ii.types[len(p.eq)], d)
			if err != nil {
				return nil, err
			}
			if !seen[string(k)] {
				seen[string(k)] = true
				out = append(out, [2][]byte{k, rowenc.PrefixEnd(k)})
			}
		}
		return out, nil
	}
	// A range: the next column is bounded; NULLs (marker 0x00) sort first
	// and never satisfy a bound.
	start, end := append(append([]byte(nil), prefix...), 0x01), rowenc.PrefixEnd(prefix)
	if len(p.lower) == 0 && len(p.upper) == 0 {
		return [][2][]byte{{prefix, end}}, nil
	}
	t := ii.types[len(p.eq)]
	for _, b := range p.lower {
		d, err := ec.eval(b.e)
		if err != nil || d == nil {
			return nil, err
		}
		k, err := appendIndexColumn(append([]byte(nil), prefix...), t, d)
		if err != nil {
			return nil, err
		}
		if !b.inclusive {
			k = rowenc.PrefixEnd(k)
		}
		if bytes.Compare(k, start) > 0 {
			start = k
		}
	}
	for _, b := range p.upper {
		d, err := ec.eval(b.e)
		if err != nil || d == nil {
			return nil, err
		}
		k, err := appendIndexColumn(append([]byte(nil), prefix...), t, d)
		if err != nil {
			return nil, err
		}
		if b.inclusive {
			k = rowenc.PrefixEnd(k)
		}
		if bytes.Compare(k, end) < 0 {
			end = k
		}
	}
	if bytes.Compare(start, end) >= 0 {
		return nil, nil
	}
	return [][2][]byte{{start, end}}, nil
}

// readRowsByIndex reads the rows an index plan selects: the entries in its
// spans, then each row by key, in index order. The caller applies the
// WHERE to them.
func (e *Executor) readRowsByIndex(ec *evalCtx, ti *tableInfo, p *scanPlan, limit int) ([]kvRow, error) {
	spans, err := p.indexSpans(ec, ti)
	if err != nil {
		return nil, err
	}
	db := e.kv(ec.ctx)
	ii := p.index.ii
	oneEntry := p.kind == scanPoint && ii.desc.Unique && len(p.eq) == len(ii.cols)
	if !readsOneState(db) && !oneEntry && e.txnsActive() {
		// The entries and the rows are read from one snapshot: read one
		// after the other, a row moving into the range between the two
		// reads and another moving out could give an answer the table
		// never held at any one moment. A unique point lookup reads at
		// most one entry and needs no snapshot: its value can move from
		// one row to another only through a moment when no row has it,
		// so "the row the entry named no longer matches" is the answer
		// at such a moment.
		t := txn.New(e.cfg.Txns, 0)
		defer t.Rollback()
		db = t
	}
	var out []kvRow
	for _, sp := range spans {
		entries, err := readEntries(ec, db, sp, oneEntry)
		if err != nil {
			return nil, kvError(err)
		}
		for _, en := range entries {
			v, found, err := db.Get(ec.ctx, en.Value)
			if err != nil {
				return nil, kvError(err)
			}
			if !found {
				if readsOneState(db) {
					return nil, errors.AssertionFailedf("index %q of %q has an entry for a missing row", ii.desc.Name, ti.desc.Name)
				}
				continue // deleted since the entry was read
			}
			row, extra, err := ti.layout.Decode(en.Value, v)
			if err != nil {
				return nil, err
			}
			out = append(out, kvRow{key: en.Value, value: v, row: row, extra: extra})
		}
	}
	_ = limit // the WHERE is applied to the rows, so a limit cannot be pushed down
	return out, nil
}

// readEntries reads the index entries of one span. A unique point lookup's
// span holds at most its first key (a unique entry without NULLs is the
// index prefix and the values alone, indexInfo.entry), so it is read with a
// point read, which is cheaper than opening an iterator.
func readEntries(ec *evalCtx, db kvpb.DB, sp [2][]byte, oneEntry bool) ([]kvpb.KeyValue, error) {
	if !oneEntry {
		return db.Scan(ec.ctx, sp[0], sp[1], 0, false)
	}
	v, found, err := db.Get(ec.ctx, sp[0])
	if err != nil || !found {
		return nil, err
	}
	return []kvpb.KeyValue{{Key: sp[0], Value: v}}, nil
}

// indexSpanOp deletes every index entry of a table (DROP TABLE and
// TRUNCATE).
func indexSpanOp(tableID int64) kvpb.Op {
	start, end := keys.TableIndexesSpan(tableID)
	return kvpb.Op{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}
}
