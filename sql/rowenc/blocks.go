package rowenc

import (
	"unsafe"

	"github.com/kvnode/kvnode/sql/types"
)

// Blocks gives the strings and integers a scan decodes their storage in
// shared blocks instead of allocations of their own. A datum is an
// interface: boxing an INT8 above 255 allocates its 8 bytes, and a STRING
// costs two allocations, its bytes and the string header the interface
// points to. A GROUP BY over 100,000 rows spent a fifth of its time there
// and most of the rest of its allocator and collector time on them.
//
// The datums handed out point into blocks that are only ever appended to,
// never rewritten, so they are immutable values like any other datum; a
// datum kept (a group's first row, a materialized result) keeps its block
// alive, as the garbage collector follows interior pointers. The zero value
// is ready to use; a Blocks is not safe for concurrent use.
//
// In borrowed mode (Borrow) nothing is copied or kept: see Borrow.
type Blocks struct {
	bytes []byte
	strs  []string
	ints  []int64

	// Borrowed mode: the slots of one row, reused by the next (nextRow).
	borrow bool
	bstrs  []string
	bints  []int64
	bs, bi int
}

// Borrow switches b to borrowed datums, for a scan whose consumer keeps
// nothing it is handed past its call (a GROUP BY, which copies the few
// datums it keeps: a group's first row, a min or a max). A STRING datum
// then points at the bytes it is decoded from (the stored value, which
// the store guarantees only while the scan stands on that row) and an
// INT8 above 255 at a slot of b; DecodeInto reuses the slots for the next
// row. So a borrowed datum is valid only until the next row is decoded
// into b, and whoever keeps one longer must copy it (CopyString, Int of a
// Blocks not borrowing). slots is the most datums one row takes (the
// layout's columns); a row that needs more gets the others allocated.
// A GROUP BY over 100,000 rows spent a third of its CPU on copying its
// strings into blocks and on the collections that the blocks caused.
func (b *Blocks) Borrow(slots int) {
	b.borrow = true
	b.bstrs = make([]string, slots)
	b.bints = make([]int64, slots)
}

// nextRow makes a borrowing b's slots free for the next row.
func (b *Blocks) nextRow() {
	if b != nil {
		b.bs, b.bi = 0, 0
	}
}

const (
	blockBytes   = 32 << 10 // bytes of string data per block
	blockValues  = 256      // strings or integers per block
	maxBlockText = 1 << 10  // longer strings get their own allocation
)

// eface is the layout of an empty interface (types.Datum is any): its
// dynamic type and a pointer to its value.
type eface struct {
	typ, data unsafe.Pointer
}

var (
	stringType = typeWord("")
	int64Type  = typeWord(int64(0))
)

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// box makes the interface value of dynamic type typ whose value is at data.
func box(typ, data unsafe.Pointer) types.Datum {
	var d types.Datum
	e := (*eface)(unsafe.Pointer(&d))
	e.typ, e.data = typ, data
	return d
}

// Int returns v as a datum.
func (b *Blocks) Int(v int64) types.Datum {
	if b == nil || (v >= 0 && v < 256) {
		return v // small values are boxed without allocating
	}
	if b.borrow {
		if b.bi == len(b.bints) {
			return v
		}
		p := &b.bints[b.bi]
		*p = v
		b.bi++
		return box(int64Type, unsafe.Pointer(p))
	}
	if len(b.ints) == 0 {
		b.ints = make([]int64, blockValues)
	}
	p := &b.ints[0]
	*p = v
	b.ints = b.ints[1:]
	return box(int64Type, unsafe.Pointer(p))
}

// String returns a STRING datum holding a copy of p (borrowing p itself in
// borrowed mode).
func (b *Blocks) String(p []byte) types.Datum {
	if b != nil && b.borrow && len(p) > 0 && b.bs < len(b.bstrs) {
		sp := &b.bstrs[b.bs]
		*sp = unsafe.String(&p[0], len(p))
		b.bs++
		return box(stringType, unsafe.Pointer(sp))
	}
	if b == nil || b.borrow || len(p) == 0 || len(p) > maxBlockText {
		return string(p)
	}
	if cap(b.bytes)-len(b.bytes) < len(p) {
		b.bytes = make([]byte, 0, blockBytes)
	}
	start := len(b.bytes)
	b.bytes = append(b.bytes, p...)
	if len(b.strs) == 0 {
		b.strs = make([]string, blockValues)
	}
	sp := &b.strs[0]
	*sp = unsafe.String(&b.bytes[start], len(p))
	b.strs = b.strs[1:]
	return box(stringType, unsafe.Pointer(sp))
}

// CopyString returns a STRING datum holding a copy of s, in b's blocks as
// String does: how a consumer of borrowed datums keeps one. b must not be
// borrowing.
func (b *Blocks) CopyString(s string) types.Datum {
	return b.String(unsafe.Slice(unsafe.StringData(s), len(s)))
}
