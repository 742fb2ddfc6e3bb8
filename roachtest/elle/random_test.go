package elle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// gen simulates a serializable database (transactions run one at a time on
// a map of lists) and records the history a client would see.
type gen struct {
	rng   *rand.Rand
	keys  int
	state map[int][]int
	next  int
	h     History
}

func newGen(seed uint64) *gen {
	rng := rand.New(rand.NewPCG(seed, 7))
	return &gen{rng: rng, keys: 2 + rng.IntN(4), state: map[int][]int{}}
}

func (g *gen) value() int { g.next++; return g.next }

func (g *gen) read(k int) Op { return ReadOp(k, slices.Clone(g.state[k])...) }

func (g *gen) apply(o Op) { g.state[o.Key] = append(g.state[o.Key], o.Value) }

// txn runs one random transaction serially with a random outcome: a failed
// one is rolled back, an indeterminate one committed or not at random.
func (g *gen) txn() {
	saved := map[int][]int{}
	for k, l := range g.state {
		saved[k] = slices.Clone(l)
	}
	t := Txn{Process: g.rng.IntN(4)}
	for range 1 + g.rng.IntN(4) {
		k := g.rng.IntN(g.keys)
		if g.rng.IntN(2) == 0 {
			o := AppendOp(k, g.value())
			g.apply(o)
			t.Ops = append(t.Ops, o)
		} else {
			t.Ops = append(t.Ops, g.read(k))
		}
	}
	switch x := g.rng.IntN(10); {
	case x == 0:
		t.Outcome = Fail
		g.state = saved
	case x == 1:
		t.Outcome = Info
		if g.rng.IntN(2) == 0 {
			g.state = saved
		}
		// An indeterminate transaction's client saw no results.
		for i := range t.Ops {
			t.Ops[i].List = nil
		}
	}
	g.h = append(g.h, t)
}

func (g *gen) final() {
	t := Txn{Outcome: OK, Final: true}
	for k := range g.keys {
		t.Ops = append(t.Ops, g.read(k))
	}
	g.h = append(g.h, t, t) // through two "nodes"
}

// shuffled returns the history in a random order: Check must not rely on
// the order of the slice.
func (g *gen) shuffled() History {
	h := slices.Clone(g.h)
	g.rng.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
	return h
}

func (g *gen) twoKeys() (int, int) {
	x := g.rng.IntN(g.keys)
	y := (x + 1 + g.rng.IntN(g.keys-1)) % g.keys
	return x, y
}

// inject adds one anomaly of the given type at the current point, and
// returns the anomaly types Check must report.
func (g *gen) inject(typ string) []string {
	x, y := g.twoKeys()
	switch typ {
	case G1a:
		o := AppendOp(x, g.value())
		g.apply(o) // the failed transaction's append is visible
		g.h = append(g.h, Txn{Ops: []Op{o}, Outcome: Fail})
	case G1b:
		w1, w2 := AppendOp(x, g.value()), AppendOp(x, g.value())
		g.apply(w1)
		g.h = append(g.h, Txn{Ops: []Op{g.read(x)}}) // sees the first of two
		g.apply(w2)
		g.h = append(g.h, Txn{Ops: []Op{w1, w2}})
	case G0:
		t1x, t1y, t2x, t2y := AppendOp(x, g.value()), AppendOp(y, g.value()), AppendOp(x, g.value()), AppendOp(y, g.value())
		g.apply(t1x)
		g.apply(t2x)
		g.apply(t2y)
		g.apply(t1y)
		g.h = append(g.h, Txn{Ops: []Op{t1x, t1y}}, Txn{Ops: []Op{t2x, t2y}})
	case G1c:
		t1x := AppendOp(x, g.value())
		g.apply(t1x)
		t2 := Txn{Ops: []Op{g.read(x), AppendOp(y, g.value())}}
		g.apply(t2.Ops[1])
		t1 := Txn{Ops: []Op{t1x, g.read(y)}}
		g.h = append(g.h, t1, t2)
	case GSingle:
		t1 := Txn{Ops: []Op{g.read(x)}}
		t2 := Txn{Ops: []Op{AppendOp(x, g.value()), AppendOp(y, g.value())}}
		g.apply(t2.Ops[0])
		g.apply(t2.Ops[1])
		t1.Ops = append(t1.Ops, g.read(y))
		g.h = append(g.h, t1, t2)
	case G2:
		t1 := Txn{Ops: []Op{g.read(x), g.read(y), AppendOp(x, g.value())}}
		t2 := Txn{Ops: []Op{g.read(x), g.read(y), AppendOp(y, g.value())}}
		g.apply(t1.Ops[2])
		g.apply(t2.Ops[2])
		g.h = append(g.h, t1, t2)
	case IncompatibleOrder:
		before := slices.Clone(g.state[x])
		lost := AppendOp(x, g.value())
		g.apply(lost)
		g.h = append(g.h, Txn{Ops: []Op{lost}}, Txn{Ops: []Op{g.read(x)}})
		g.state[x] = before // the append is lost...
		o := AppendOp(x, g.value())
		g.apply(o) // ...under a later one
		g.h = append(g.h, Txn{Ops: []Op{o}})
		return []string{IncompatibleOrder, LostAppend}
	default:
		panic(typ)
	}
	return []string{typ}
}

// TestRandomSerialHistories: histories of a serial database (with failed
// and indeterminate transactions) are clean, and the same histories with
// one planted anomaly report exactly that anomaly.
func TestRandomSerialHistories(t *testing.T) {
	types := []string{G0, G1a, G1b, G1c, GSingle, G2, IncompatibleOrder}
	for seed := range uint64(300) {
		g := newGen(seed)
		n := 5 + g.rng.IntN(200)
		for range n {
			g.txn()
		}
		g.final()
		if rep := Check(g.shuffled(), Options{}); !rep.OK() {
			t.Fatalf("seed %d: a serial history is reported:\n%s", seed, rep)
		}

		typ := types[seed%uint64(len(types))]
		g = newGen(seed)
		at := g.rng.IntN(n + 1)
		var want []string
		for i := range n + 1 {
			if i == at {
				want = g.inject(typ)
			}
			if i < n {
				g.txn()
			}
		}
		g.final()
		rep := Check(g.shuffled(), Options{})
		slices.Sort(want)
		if got := rep.Types(); !slices.Equal(got, want) {
			t.Fatalf("seed %d: planted %s after %d of %d transactions: found %v, want %v\n%s", seed, typ, at, n, got, want, rep)
		}
	}
}

// BenchmarkCheck measures a long clean history (the size of a long
// roachtest run).
func BenchmarkCheck(b *testing.B) {
	g := newGen(1)
	g.keys = 20
	for range 20000 {
		g.txn()
	}
	g.final()
	h := g.shuffled()
	b.ResetTimer()
	for range b.N {
		if rep := Check(h, Options{}); !rep.OK() {
			b.Fatal(fmt.Sprint(rep))
		}
	}
}
