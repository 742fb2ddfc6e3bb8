package txn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// TestScannedSpans: the scanned spans stay sorted, disjoint and not
// touching, and cover exactly the union of what was added (checked against
// a brute-force model on one-byte keys), whatever the order of the spans.
func TestScannedSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		var x Txn
		var covered [256]bool
		for i := rng.IntN(12); i >= 0; i-- {
			a, b := byte(rng.IntN(40)), byte(rng.IntN(40))
			x.addScanned(kvpb.Span{Start: []byte{a}, End: []byte{b}})
			for k := int(a); k < int(b); k++ {
				covered[k] = true
			}
		}
		for i := 1; i < len(x.scanned); i++ {
			if string(x.scanned[i-1].End) >= string(x.scanned[i].Start) {
				t.Fatalf("round %d: spans out of order, overlapping or touching: %s", round, show(x.scanned))
			}
		}
		for k := 0; k < 41; k++ {
			if got := x.wasScanned([]byte{byte(k)}); got != covered[k] {
				t.Fatalf("round %d: key %d scanned = %v, want %v (spans %s)", round, k, got, covered[k], show(x.scanned))
			}
			// A longer key between two one-byte keys.
			if got := x.wasScanned([]byte{byte(k), 0}); got != covered[k] {
				t.Fatalf("round %d: key %d,0 scanned = %v, want %v (spans %s)", round, k, got, covered[k], show(x.scanned))
			}
		}
	}
}

func show(sps []kvpb.Span) string {
	s := ""
	for _, sp := range sps {
		s += fmt.Sprintf("[%v, %v) ", sp.Start, sp.End)
	}
	return s
}
