package rowenc

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/kvnode/kvnode/sql/types"
)

// TestDecodeInto decodes random rows, some written by a layout with a
// column the reader lacks, into one reused slice, with random column
// needs: every needed column reads as Decode reads it, every other one is
// nil, and nothing of the previous row survives.
func TestDecodeInto(t *testing.T) {
	l := testLayout(t)
	// wider writes one more column (ID 9) that l does not know.
	wider, err := NewLayout(200, append(append([]Column(nil), l.Columns...), Column{ID: 9, Type: types.String}), l.PK)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(7))
	buf := make([]types.Datum, len(l.Columns))
	// Datums from blocks are kept, with what they must still read at the
	// end: later rows never rewrite them.
	var blk Blocks
	var kept, keptWant []types.Datum
	for i := 0; i < 3000; i++ {
		w := l
		if rng.Intn(3) == 0 {
			w = wider
		}
		row := make([]types.Datum, len(w.Columns))
		for j, c := range w.Columns {
			if w.inPK[j] || rng.Intn(4) > 0 {
				row[j] = randDatum(rng, c.Type)
			}
		}
		key, err := w.EncodeKey(row)
		if err != nil {
			t.Fatal(err)
		}
		val, err := w.EncodeValueAs(EncodingV2, key, row, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := l.Decode(key, val)
		if err != nil {
			t.Fatal(err)
		}
		var need []bool
		if rng.Intn(2) == 0 {
			need = make([]bool, len(l.Columns))
			for j := range need {
				need[j] = rng.Intn(2) == 0
			}
		}
		var b *Blocks
		if i%2 == 0 {
			b = &blk
		}
		if err := l.DecodeInto(buf, key, val, need, b); err != nil {
			t.Fatal(err)
		}
		for j := range want {
			exp := want[j]
			if need != nil && !need[j] {
				exp = nil
			}
			if (exp == nil) != (buf[j] == nil) || exp != nil && compareDatums(exp, buf[j]) != 0 {
				t.Fatalf("row %d column %d (need %v): Decode read %#v, DecodeInto %#v", i, j, need, exp, buf[j])
			}
			if b != nil && exp != nil {
				kept, keptWant = append(kept, buf[j]), append(keptWant, exp)
			}
		}
	}
	for i := range kept {
		if compareDatums(kept[i], keptWant[i]) != 0 || fmt.Sprintf("%T", kept[i]) != fmt.Sprintf("%T", keptWant[i]) {
			t.Fatalf("kept datum %d reads %#v, decoded as %#v", i, kept[i], keptWant[i])
		}
	}
	if err := l.DecodeInto(make([]types.Datum, 2), nil, nil, nil, nil); err == nil {
		t.Fatal("DecodeInto accepted a row of the wrong width")
	}
}

// TestDecodeIntoErrors: a value cut anywhere fails DecodeInto exactly when
// it fails Decode, with every column skipped or every column decoded.
func TestDecodeIntoErrors(t *testing.T) {
	l := testLayout(t)
	row := []types.Datum{int64(1), "k", 1.5, []byte("b"), true, int64(3), "s"}
	key, _ := l.EncodeKey(row)
	val, _ := l.EncodeValueAs(EncodingV1, key, row, nil)
	buf := make([]types.Datum, len(l.Columns))
	none := make([]bool, len(l.Columns))
	failures := 0
	for cut := 0; cut < len(val); cut++ {
		_, _, errDecode := l.Decode(key, val[:cut])
		if errDecode != nil {
			failures++
		}
		for _, need := range [][]bool{nil, none} {
			if err := l.DecodeInto(buf, key, val[:cut], need, &Blocks{}); (err == nil) != (errDecode == nil) {
				t.Fatalf("value cut at %d, need %v: DecodeInto %v, Decode %v", cut, need, err, errDecode)
			}
		}
	}
	if failures == 0 {
		t.Fatal("no cut value failed to decode")
	}
}

// BenchmarkDecode compares decoding a two-column row (an INT8 key and a
// short STRING, as the benchmark table kv) into a new slice and into a
// reused one.
func BenchmarkDecode(b *testing.B) {
	l, err := NewLayout(200, []Column{{ID: 1, Type: types.Int}, {ID: 2, Type: types.String}}, []int{0})
	if err != nil {
		b.Fatal(err)
	}
	row := []types.Datum{int64(12345), "v12345"}
	key, _ := l.EncodeKey(row)
	val, _ := l.EncodeValueAs(EncodingV2, key, row, nil)
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := l.Decode(key, val); err != nil {
				b.Fatal(err)
			}
		}
	})
	buf := make([]types.Datum, 2)
	b.Run("DecodeInto", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := l.DecodeInto(buf, key, val, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeInto-blocks", func(b *testing.B) {
		b.ReportAllocs()
		var blk Blocks
		for i := 0; i < b.N; i++ {
			if err := l.DecodeInto(buf, key, val, nil, &blk); err != nil {
				b.Fatal(err)
			}
		}
	})
	need := []bool{true, false}
	b.Run("DecodeInto-key-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := l.DecodeInto(buf, key, val, need, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestColumnIDsBeyondTheDenseTable: columns whose IDs are past
// maxDenseColumnID decode through the map, the others through the slice.
func TestColumnIDsBeyondTheDenseTable(t *testing.T) {
	l, err := NewLayout(200, []Column{{ID: 1, Type: types.Int}, {ID: 3, Type: types.String}, {ID: maxDenseColumnID + 500, Type: types.Int}}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   uint64
		pos  int
		want bool
	}{{1, 0, true}, {2, 0, false}, {3, 1, true}, {4, 0, false}, {maxDenseColumnID - 1, 0, false},
		{maxDenseColumnID + 500, 2, true}, {maxDenseColumnID + 501, 0, false}} {
		pos, ok := l.columnByID(tc.id)
		if ok != tc.want || (ok && pos != tc.pos) {
			t.Errorf("column ID %d: position %d, %v; want %d, %v", tc.id, pos, ok, tc.pos, tc.want)
		}
	}
	row := []types.Datum{int64(7), "s", int64(-9)}
	key, _ := l.EncodeKey(row)
	val, _ := l.EncodeValueAs(EncodingV2, key, row, nil)
	buf := make([]types.Datum, 3)
	if err := l.DecodeInto(buf, key, val, nil, &Blocks{}); err != nil || buf[1] != "s" || buf[2] != int64(-9) {
		t.Fatalf("decoded %v, %v", buf, err)
	}
}

// TestBlocks: datums from blocks are the values asked for, of the Go types
// of any other datum, equal to them, and unchanged by later ones.
func TestBlocks(t *testing.T) {
	var b Blocks
	var ds []types.Datum
	for i := 0; i < 3*blockValues; i++ {
		ds = append(ds, b.Int(int64(i*1000-7)), b.String([]byte(fmt.Sprintf("s%d", i))))
	}
	long := make([]byte, maxBlockText+1)
	ds = append(ds, b.String(long), b.String(nil), b.Int(5))
	for i := 0; i < 3*blockValues; i++ {
		n, ok := ds[2*i].(int64)
		s, ok2 := ds[2*i+1].(string)
		if !ok || !ok2 || n != int64(i*1000-7) || s != fmt.Sprintf("s%d", i) {
			t.Fatalf("value %d: %#v, %#v", i, ds[2*i], ds[2*i+1])
		}
		if ds[2*i] != types.Datum(int64(i*1000-7)) || ds[2*i+1] != types.Datum(fmt.Sprintf("s%d", i)) {
			t.Fatalf("value %d is not == to the same value boxed by Go", i)
		}
	}
	if s := ds[len(ds)-3].(string); len(s) != maxBlockText+1 || ds[len(ds)-2] != types.Datum("") || ds[len(ds)-1] != types.Datum(int64(5)) {
		t.Fatal("long, empty or small values")
	}
	var nilBlocks *Blocks
	if nilBlocks.Int(1000) != types.Datum(int64(1000)) || nilBlocks.String([]byte("x")) != types.Datum("x") {
		t.Fatal("nil Blocks")
	}
}

// TestDecodeIntoBorrowed: a borrowing Blocks decodes every row as Decode
// does without allocating; its strings are the value's own bytes and its
// integers slots that the next row reuses; a row needing more slots than
// it has still decodes right; CopyString copies.
func TestDecodeIntoBorrowed(t *testing.T) {
	l := testLayout(t)
	rng := rand.New(rand.NewSource(15))
	for _, slots := range []int{len(l.Columns), 1} {
		var blk Blocks
		blk.Borrow(slots)
		buf := make([]types.Datum, len(l.Columns))
		for i := 0; i < 500; i++ {
			row := make([]types.Datum, len(l.Columns))
			for j, c := range l.Columns {
				row[j] = randDatum(rng, c.Type)
			}
			key, _ := l.EncodeKey(row)
			val, err := l.EncodeValueAs(EncodingV2, key, row, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, _, _ := l.Decode(key, val)
			if err := l.DecodeInto(buf, key, val, nil, &blk); err != nil {
				t.Fatal(err)
			}
			for j := range want {
				if (want[j] == nil) != (buf[j] == nil) || want[j] != nil && compareDatums(want[j], buf[j]) != 0 {
					t.Fatalf("slots %d, row %d column %d: Decode read %#v, borrowed %#v", slots, i, j, want[j], buf[j])
				}
			}
		}
	}
	// An INT8 key, an INT8 and a STRING value column.
	l, err := NewLayout(201, []Column{{ID: 1, Type: types.Int}, {ID: 2, Type: types.Int}, {ID: 3, Type: types.String}}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	var blk Blocks
	blk.Borrow(len(l.Columns))
	buf := make([]types.Datum, len(l.Columns))
	row := []types.Datum{int64(300000), int64(100000), "borrowed"}
	key, _ := l.EncodeKey(row)
	val, _ := l.EncodeValueAs(EncodingV2, key, row, nil)
	if n := testing.AllocsPerRun(100, func() {
		if err := l.DecodeInto(buf, key, val, nil, &blk); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("a borrowed decode allocated %v times", n)
	}
	s, n := buf[2].(string), buf[1]
	kept := (&Blocks{}).CopyString(s)
	row[1] = int64(7777)
	val2, _ := l.EncodeValueAs(EncodingV1, key, row, nil)
	if err := l.DecodeInto(buf, key, val2, nil, &blk); err != nil {
		t.Fatal(err)
	}
	val[len(val)-1] = '!'
	if s != "borrowe!" || n != types.Datum(int64(7777)) || kept != types.Datum("borrowed") || buf[0] != types.Datum(int64(300000)) {
		t.Fatalf("borrowed string %q (the value's bytes), integer %v (the next row's), copy %q", s, n, kept)
	}
}
