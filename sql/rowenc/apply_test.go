package rowenc

import (
	"fmt"
	"math"
	"testing"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// TestAddToInts adds to INT columns stored, stored as NULL, absent with a
// DEFAULT and absent without one, next to columns it must leave alone, in
// both encodings; the result decodes (its checksum holds) to the expected
// row.
func TestAddToInts(t *testing.T) {
	full, err := NewLayout(300, []Column{
		{ID: 1, Type: types.Int},                                       // key
		{ID: 2, Type: types.Int},                                       // stored: 10 + 5
		{ID: 3, Type: types.String},                                    // untouched
		{ID: 4, Type: types.Int, HasDefault: true},                     // stored as NULL: stays NULL
		{ID: 6, Type: types.Int},                                       // untouched INT
		{ID: 7, Type: types.Int, Absent: int64(100), HasDefault: true}, // absent, DEFAULT 100: 100 - 1
		{ID: 8, Type: types.Int},                                       // absent, no DEFAULT: stays NULL
	}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	// The row as written before columns 7 and 8 existed.
	old, err := NewLayout(300, full.Columns[:5], []int{0})
	if err != nil {
		t.Fatal(err)
	}
	row := []types.Datum{int64(1), int64(10), "keep", nil, int64(42)}
	key, err := old.EncodeKey(row)
	if err != nil {
		t.Fatal(err)
	}
	arg := EncodeIntDeltas([]IntDelta{
		{ID: 7, Delta: -1, HasAbsent: true, Absent: 100},
		{ID: 2, Delta: 5},
		{ID: 4, Delta: 3},
		{ID: 8, Delta: 9},
	})
	for _, enc := range []byte{EncodingV1, EncodingV2} {
		t.Run(fmt.Sprint("encoding ", enc), func(t *testing.T) {
			val, err := old.EncodeValueAs(enc, key, row, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := AddToInts(key, val, arg)
			if err != nil {
				t.Fatal(err)
			}
			if ValueEncoding(out) != enc {
				t.Fatalf("encoding %d became %d", enc, ValueEncoding(out))
			}
			got, extra, err := full.Decode(key, out)
			if err != nil {
				t.Fatal(err)
			}
			want := []types.Datum{int64(1), int64(15), "keep", nil, int64(42), int64(99), nil}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(extra) != 0 {
				t.Fatalf("got %v (extra %v), want %v", got, extra, want)
			}
		})
	}
	val, _ := old.EncodeValueAs(EncodingV2, key, []types.Datum{int64(1), int64(math.MaxInt64), "", nil, int64(0)}, nil)
	if _, err := AddToInts(key, val, EncodeIntDeltas([]IntDelta{{ID: 2, Delta: 1}})); pgerror.GetCode(err) != pgerror.CodeNumericValueOutOfRange {
		t.Fatalf("overflow: %v, want 22003", err)
	}
	if _, err := AddToInts(key, val, []byte{9}); err == nil {
		t.Fatal("a malformed argument was accepted")
	}
}
