package elle

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// mvcc simulates a multi-version database with concurrent transactions:
// each reads from the snapshot of its start plus its own appends, and
// commits at a new timestamp if its validation passes. With
// validateReads, a transaction also aborts if a key it read changed since
// its snapshot (optimistic serializable validation, as in kvnode's design);
// without, only write-write conflicts abort it (first committer wins:
// snapshot isolation, PostgreSQL's REPEATABLE READ).
type mvcc struct {
	rng           *rand.Rand
	validateReads bool
	keys          int
	now           int
	versions      map[int][]version // per key, in commit order
	next          int
	h             History
}

type version struct {
	ts  int
	val int
}

type mvccTxn struct {
	start   int
	ops     []Op
	planned []Op
	own     map[int][]int
	read    map[int]bool
	wrote   map[int]bool
}

func (m *mvcc) snapshot(k, ts int) []int {
	var l []int
	for _, v := range m.versions[k] {
		if v.ts <= ts {
			l = append(l, v.val)
		}
	}
	return l
}

func (m *mvcc) lastCommit(k int) int {
	vs := m.versions[k]
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1].ts
}

func (m *mvcc) begin() *mvccTxn {
	t := &mvccTxn{start: m.now, own: map[int][]int{}, read: map[int]bool{}, wrote: map[int]bool{}}
	for range 1 + m.rng.IntN(4) {
		k := m.rng.IntN(m.keys)
		if m.rng.IntN(2) == 0 {
			m.next++
			t.planned = append(t.planned, AppendOp(k, m.next))
		} else {
			t.planned = append(t.planned, ReadOp(k))
		}
	}
	return t
}

// step runs t's next operation; it returns false when t has none left.
func (m *mvcc) step(t *mvccTxn) bool {
	if len(t.ops) == len(t.planned) {
		return false
	}
	o := t.planned[len(t.ops)]
	if o.Kind == Read {
		o.List = append(m.snapshot(o.Key, t.start), t.own[o.Key]...)
		t.read[o.Key] = true
	} else {
		t.own[o.Key] = append(t.own[o.Key], o.Value)
		t.wrote[o.Key] = true
	}
	t.ops = append(t.ops, o)
	return true
}

func (m *mvcc) commit(t *mvccTxn) {
	ok := true
	for k := range t.wrote {
		if m.lastCommit(k) > t.start {
			ok = false
		}
	}
	if m.validateReads {
		for k := range t.read {
			if m.lastCommit(k) > t.start {
				ok = false
			}
		}
	}
	rec := Txn{Ops: t.ops, Outcome: OK}
	switch {
	case !ok:
		rec.Outcome = Fail
	case m.rng.IntN(20) == 0:
		// Committed, but the client lost the answer.
		rec.Outcome = Info
	}
	if ok {
		m.now++
		for _, o := range t.ops {
			if o.Kind == Append {
				m.versions[o.Key] = append(m.versions[o.Key], version{ts: m.now, val: o.Value})
			}
		}
	}
	if rec.Outcome != OK {
		var appends []Op
		for _, o := range rec.Ops {
			if o.Kind == Append {
				appends = append(appends, o)
			}
		}
		rec.Ops = appends
	}
	m.h = append(m.h, rec)
}

// run interleaves clients transactions, n in all, then adds final reads.
func (m *mvcc) run(clients, n int) History {
	active := make([]*mvccTxn, clients)
	started := 0
	for {
		i := m.rng.IntN(clients)
		if active[i] == nil {
			if started == n {
				if slices.IndexFunc(active, func(t *mvccTxn) bool { return t != nil }) < 0 {
					break
				}
				continue
			}
			active[i] = m.begin()
			started++
			continue
		}
		if !m.step(active[i]) {
			m.commit(active[i])
			active[i] = nil
		}
	}
	final := Txn{Outcome: OK, Final: true}
	for k := range m.keys {
		final.Ops = append(final.Ops, ReadOp(k, m.snapshot(k, m.now)...))
	}
	return append(m.h, final)
}

// TestConcurrentSerializable: histories of an optimistic serializable
// database with concurrent transactions (aborts, indeterminate commits)
// are clean.
func TestConcurrentSerializable(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 11))
		m := &mvcc{rng: rng, validateReads: true, keys: 2 + rng.IntN(5), versions: map[int][]version{}}
		h := m.run(2+rng.IntN(6), 50+rng.IntN(300))
		if rep := Check(h, Options{}); !rep.OK() {
			t.Fatalf("seed %d: a serializable history is reported:\n%s", seed, rep)
		}
	}
}

// TestConcurrentSnapshotIsolation: snapshot isolation allows write skew
// and nothing weaker, so Check must find G2 (in some histories) and never
// G0, G1 or G-single: a classification that called a write skew anything
// else would be wrong.
func TestConcurrentSnapshotIsolation(t *testing.T) {
	found := 0
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 13))
		m := &mvcc{rng: rng, keys: 2 + rng.IntN(5), versions: map[int][]version{}}
		h := m.run(2+rng.IntN(6), 50+rng.IntN(300))
		rep := Check(h, Options{})
		for _, typ := range rep.Types() {
			if typ != G2 {
				t.Fatalf("seed %d: snapshot isolation cannot produce %s:\n%s", seed, typ, rep)
			}
		}
		if rep.Has(G2) {
			found++
		}
	}
	if found < 50 {
		t.Fatalf("G2 found in only %d of 200 snapshot-isolation histories", found)
	}
	t.Logf("G2 found in %d of 200 snapshot-isolation histories", found)
}
