package sql

import (
	"bytes"
	"sort"
	"strings"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// Streaming rows through the pipeline. Every operator's run returns rows it
// owns (the pipeline is materialized), but the operators that read every
// row of a large input once — filtering, projecting, grouping — need not
// hold that input: an operator that is a rowStreamer hands its rows one at
// a time, decoded into one reused slice, to the operator above it, which
// copies only what it keeps (a group's first row, a projected row). A
// GROUP BY over a table then holds its groups, not the table.

// rowStreamer is a relNode that can hand its rows to a function one at a
// time, in the order run would return them. The row passed to fn is valid
// only during the call: fn copies what it keeps (datums themselves are
// immutable values and may be kept).
type rowStreamer interface {
	stream(ec *evalCtx, fn func(row []types.Datum) error) error
}

var (
	_ rowStreamer = (*tableScanNode)(nil)
	_ rowStreamer = (*filterNode)(nil)
	_ rowStreamer = (*projectNode)(nil)
	_ rowStreamer = (*recursiveNode)(nil)
)

// borrowStreamer is a rowStreamer that can also hand borrowed rows: rows
// whose datums, too, are valid only during the call (a STRING may point
// into the store's memory, an INT8 into a slot the next row reuses:
// rowenc.Blocks.Borrow). A consumer that asks for them copies every datum
// it keeps past the call, and anything built from one (a keeper). A scan
// then copies nothing: the GROUP BY of issue 19's benchmark spent a third
// of its CPU on copying strings it only compared and on the collections
// those copies caused.
type borrowStreamer interface {
	streamBorrowed(ec *evalCtx, fn func(row []types.Datum) error) error
}

var (
	_ borrowStreamer = (*tableScanNode)(nil)
	_ borrowStreamer = (*filterNode)(nil)
)

// streamBorrowedRows calls fn with each row of n, borrowed when n can
// hand them so (borrowStreamer), else as streamRows does: fn must treat
// every datum as borrowed.
func streamBorrowedRows(ec *evalCtx, n relNode, fn func(row []types.Datum) error) error {
	if s, ok := n.(borrowStreamer); ok {
		return s.streamBorrowed(ec, fn)
	}
	return streamRows(ec, n, fn)
}

// keeper copies the datums a consumer of borrowed rows keeps, its strings
// and integers in shared blocks as a scan's own are (rowenc.Blocks).
type keeper struct {
	blk rowenc.Blocks
}

// own returns a copy of d that stays valid after the row it came from:
// d itself for the values that cannot point into a borrowed row.
func (k *keeper) own(d types.Datum) types.Datum {
	switch v := d.(type) {
	case string:
		return k.blk.CopyString(v)
	case int64:
		return k.blk.Int(v)
	case types.JSONDatum:
		// A string type of its own: a conversion from a borrowed string
		// would share its bytes.
		return types.JSONDatum(strings.Clone(string(v)))
	case types.Array:
		out := make(types.Array, len(v))
		for i, e := range v {
			out[i] = k.own(e)
		}
		return out
	}
	return d
}

// ownRow returns an owned copy of a borrowed row.
func (k *keeper) ownRow(r []types.Datum) []types.Datum {
	out := make([]types.Datum, len(r))
	for i, d := range r {
		out[i] = k.own(d)
	}
	return out
}

// streamRows calls fn with each row of n: streamed when n can, else from
// its materialized rows.
func streamRows(ec *evalCtx, n relNode, fn func(row []types.Datum) error) error {
	if s, ok := n.(rowStreamer); ok {
		return s.stream(ec, fn)
	}
	rows, err := n.run(ec)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// collectRows materializes what s streams: an owned copy of each row, the
// copies carved from shared blocks (rowAlloc) of rows width wide.
func collectRows(ec *evalCtx, s rowStreamer, width int) ([][]types.Datum, error) {
	alloc := rowAlloc{w: width}
	out := [][]types.Datum{}
	err := s.stream(ec, func(row []types.Datum) error {
		out = append(out, alloc.copyRow(row))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// rowAllocBlock is how many rows a rowAlloc carves from one allocation at
// most; its first block holds rowAllocFirst rows and each next one twice as
// many, so that a result of a few wide rows (a catalog query's joined rows
// are over 100 columns) does not allocate and clear 256 of them.
const (
	rowAllocBlock = 256
	rowAllocFirst = 4
)

// rowAlloc hands out rows of one width carved from shared blocks, one
// allocation per block of rows instead of one per row. Each row is capped
// at its width, so appending to one never writes into the next.
type rowAlloc struct {
	w     int
	buf   []types.Datum
	block int // rows in the last block (0: none yet)
}

// copyRow returns an owned copy of r (len(r) == a.w).
func (a *rowAlloc) copyRow(r []types.Datum) []types.Datum {
	out := a.newRow()
	copy(out, r)
	return out
}

// newRow returns an owned row of NULLs.
func (a *rowAlloc) newRow() []types.Datum {
	if a.w == 0 {
		return []types.Datum{}
	}
	if len(a.buf) < a.w {
		a.block = min(max(2*a.block, rowAllocFirst), rowAllocBlock)
		a.buf = make([]types.Datum, a.w*a.block)
	}
	out := a.buf[:a.w:a.w]
	a.buf = a.buf[a.w:]
	return out
}

// scanStream reads the rows of ti that the scan plan selects, as readRows
// does, and calls fn with each, decoded into one reused row (valid only
// during the call; its datums live in shared blocks, rowenc.Blocks, or
// with borrow may be borrowed: borrowStreamer). need, when not nil, names
// the columns to decode; the others read as NULL. A range or full scan of
// a store that streams (kvpb.Streamer) never holds more than one row;
// point lookups and index scans read their rows first.
func (e *Executor) scanStream(ec *evalCtx, ti *tableInfo, p *scanPlan, limit int, need []bool, borrow bool, fn func(row []types.Datum) error) error {
	if p.index == nil && p.kind == scanPoint {
		return e.pointStream(ec, ti, p, need, fn)
	}
	if p.index != nil || p.kind == scanPoints {
		rows, err := e.readRows(ec, ti, p, limit)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r.row); err != nil {
				return err
			}
		}
		return nil
	}
	start, end, empty, err := p.keySpan(ec, ti)
	if err != nil || empty {
		return err
	}
	row := make([]types.Datum, len(ti.cols))
	var blk rowenc.Blocks
	if borrow {
		blk.Borrow(len(ti.cols))
	}
	// fnErr keeps the consumer's error apart from the store's, which
	// kvError translates.
	var fnErr error
	decode := func(k, v []byte) error {
		if fnErr = ti.layout.DecodeInto(row, k, v, need, &blk); fnErr == nil {
			fnErr = fn(row)
		}
		return fnErr
	}
	db := e.kv(ec.ctx)
	if s, ok := db.(kvpb.Streamer); ok {
		// The entries ScanFunc hands are valid only during the call, as
		// a borrowed row is.
		err := s.ScanFunc(ec.ctx, start, end, limit, p.reverse, decode)
		if fnErr != nil {
			return fnErr
		}
		return kvError(err)
	}
	kvs, err := db.Scan(ec.ctx, start, end, limit, p.reverse) // owned: borrowing them is safe too
	if err != nil {
		return kvError(err)
	}
	for _, kv := range kvs {
		if err := decode(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	return nil
}

// pointStream reads the one row of a primary key lookup (a prepared SELECT
// by key, the most frequent statement there is) and calls fn with it:
// readRows' point read, without its slices of keys and rows, decoding only
// the columns needed.
func (e *Executor) pointStream(ec *evalCtx, ti *tableInfo, p *scanPlan, need []bool, fn func(row []types.Datum) error) error {
	k, _, empty, err := p.keySpan(ec, ti)
	if err != nil || empty {
		return err
	}
	v, found, err := e.kv(ec.ctx).Get(ec.ctx, k)
	if err != nil {
		return kvError(err)
	}
	if !found {
		return nil
	}
	row := make([]types.Datum, len(ti.cols))
	if err := ti.layout.DecodeInto(row, k, v, need, nil); err != nil {
		return err
	}
	return fn(row)
}

// lookupRows reads the rows of ti with the given primary keys: one row per
// key, nil where the key is nil (a NULL key value) or no row has it. Each
// distinct key is read once, in key order, with one batched read of a
// store that streams (kvpb.Streamer: one consistent state, one iterator),
// else with one Get each. need, when not nil, names the columns to decode.
func (e *Executor) lookupRows(ec *evalCtx, ti *tableInfo, keys [][]byte, need []bool) ([][]types.Datum, error) {
	order := make([]int, 0, len(keys))
	for i, k := range keys {
		if k != nil {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return bytes.Compare(keys[order[a]], keys[order[b]]) < 0 })
	// uniq are the distinct keys in order; of[i] is keys[i]'s position in
	// uniq (-1: none).
	var uniq [][]byte
	of := make([]int, len(keys))
	for i := range of {
		of[i] = -1
	}
	for _, i := range order {
		if len(uniq) == 0 || !bytes.Equal(uniq[len(uniq)-1], keys[i]) {
			uniq = append(uniq, keys[i])
		}
		of[i] = len(uniq) - 1
	}
	found := make([][]types.Datum, len(uniq))
	alloc := rowAlloc{w: len(ti.cols)}
	var blk rowenc.Blocks
	var decodeErr error
	decode := func(u int, v []byte) error {
		row := alloc.newRow()
		if decodeErr = ti.layout.DecodeInto(row, uniq[u], v, need, &blk); decodeErr == nil {
			found[u] = row
		}
		return decodeErr
	}
	db := e.kv(ec.ctx)
	if s, ok := db.(kvpb.Streamer); ok {
		err := s.GetEach(ec.ctx, uniq, decode)
		if decodeErr != nil {
			return nil, decodeErr
		}
		if err != nil {
			return nil, kvError(err)
		}
	} else {
		for u, k := range uniq {
			v, ok, err := db.Get(ec.ctx, k)
			if err != nil {
				return nil, kvError(err)
			}
			if ok {
				if err := decode(u, v); err != nil {
					return nil, err
				}
			}
		}
	}
	out := make([][]types.Datum, len(keys))
	for i, u := range of {
		if u >= 0 {
			out[i] = found[u]
		}
	}
	return out, nil
}
