package elle

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The anomaly types Check reports.
const (
	G0                 = "G0"
	G1a                = "G1a"
	G1b                = "G1b"
	G1c                = "G1c"
	GSingle            = "G-single"
	G2                 = "G2"
	IncompatibleOrder  = "incompatible-order"
	Internal           = "internal"
	GarbageRead        = "garbage-read"
	DuplicateElements  = "duplicate-elements"
	DuplicateAppends   = "duplicate-appends"
	LostAppend         = "lost-append"
	FinalReadsDisagree = "final-reads-disagree"
)

// Anomaly is one violation found, with the transactions that show it.
type Anomaly struct {
	Type string
	// Txns are the transactions involved (for a cycle: in cycle order).
	Txns []int
	// Keys are the keys involved: a transaction of many operations is
	// printed with its operations on these keys only.
	Keys []int
	// Explanation says what was observed, e.g. each edge of a cycle and why
	// it exists.
	Explanation string
}

// Options tune Check.
type Options struct {
	// MaxPerType caps the anomalies kept per type (default 8); Report.Counts
	// still counts every one found.
	MaxPerType int
	// MaxRWTries caps, per strongly connected component, the rw edges tried
	// as the start of a G-single before the component is searched for a G2
	// (default 500): a bound on the work of a badly broken history.
	MaxRWTries int
}

// Report is what Check found.
type Report struct {
	Anomalies []Anomaly
	// Counts is the number of anomalies found per type (beyond the cap).
	Counts map[string]int
	// Summary describes the history: transactions per outcome, keys,
	// edges.
	Summary string

	h History
}

// OK reports whether no anomaly was found.
func (r *Report) OK() bool { return len(r.Counts) == 0 }

// Types returns the types of anomaly found, sorted.
func (r *Report) Types() []string {
	var out []string
	for t := range r.Counts {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Has reports whether an anomaly of type t was found.
func (r *Report) Has(t string) bool { return r.Counts[t] > 0 }

// String prints the summary and every kept anomaly with its transactions.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "list-append history: %s\n", r.Summary)
	if r.OK() {
		b.WriteString("no anomalies\n")
		return b.String()
	}
	var counts []string
	for _, t := range r.Types() {
		counts = append(counts, fmt.Sprintf("%s x%d", t, r.Counts[t]))
	}
	fmt.Fprintf(&b, "ANOMALIES: %s\n", strings.Join(counts, ", "))
	for _, a := range r.Anomalies {
		fmt.Fprintf(&b, "%s: %s\n", a.Type, a.Explanation)
		for _, t := range a.Txns {
			fmt.Fprintf(&b, "    %s\n", r.h.describe(t, a.Keys))
		}
	}
	return b.String()
}

// Edge kinds, as bits so that one pair of transactions can have several.
const (
	ww uint8 = 1 << iota
	wr
	rw
)

func kindName(k uint8) string {
	switch k {
	case ww:
		return "ww"
	case wr:
		return "wr"
	case rw:
		return "rw"
	}
	return "?"
}

type edge struct {
	kinds uint8
	why   [3]string // per kind (ww, wr, rw): the first observation behind it
	key   [3]int    // per kind: the key of that observation
}

type writeRef struct {
	txn, op int
}

type checker struct {
	h    History
	opts Options
	rep  *Report
	// writer of each appended value; the history's appends in order.
	writer map[int]writeRef
	// per key, the values each transaction appended, in order.
	appends map[int]map[int][]int
	out     []map[int]*edge
	edges   int
}

// Check checks h and returns what it found.
func Check(h History, opts Options) *Report {
	if opts.MaxPerType == 0 {
		opts.MaxPerType = 8
	}
	if opts.MaxRWTries == 0 {
		opts.MaxRWTries = 500
	}
	c := &checker{
		h: h, opts: opts, rep: &Report{Counts: map[string]int{}, h: h},
		writer: map[int]writeRef{}, appends: map[int]map[int][]int{},
		out: make([]map[int]*edge, len(h)),
	}
	c.indexWrites()
	c.internal()
	orders := c.versionOrders()
	c.readChecks()
	c.finalChecks(orders)
	c.buildGraph(orders)
	c.cycles()
	c.rep.Summary = c.summary(orders)
	return c.rep
}

func (c *checker) add(a Anomaly) {
	c.rep.Counts[a.Type]++
	if c.rep.Counts[a.Type] <= c.opts.MaxPerType {
		c.rep.Anomalies = append(c.rep.Anomalies, a)
	}
}

func (c *checker) summary(orders map[int][]int) string {
	var n [3]int
	for _, t := range c.h {
		n[t.Outcome]++
	}
	return fmt.Sprintf("%d transactions (%d ok, %d failed, %d indeterminate), %d keys, %d appends, %d dependency edges",
		len(c.h), n[OK], n[Fail], n[Info], len(orders), len(c.writer), c.edges)
}

// indexWrites records who appended each value.
func (c *checker) indexWrites() {
	for i, t := range c.h {
		for j, o := range t.Ops {
			if o.Kind != Append {
				continue
			}
			if prev, dup := c.writer[o.Value]; dup {
				c.add(Anomaly{Type: DuplicateAppends, Txns: uniq(prev.txn, i), Keys: []int{o.Key},
					Explanation: fmt.Sprintf("value %d is appended twice (the workload must append unique values): the checks are meaningless", o.Value)})
				continue
			}
			c.writer[o.Value] = writeRef{txn: i, op: j}
			if c.appends[o.Key] == nil {
				c.appends[o.Key] = map[int][]int{}
			}
			c.appends[o.Key][i] = append(c.appends[o.Key][i], o.Value)
		}
	}
}

// internal checks that each committed transaction's reads agree with its
// own earlier reads and appends: a transaction sees a snapshot plus its own
// writes.
func (c *checker) internal() {
	for i, t := range c.h {
		if t.Outcome != OK {
			continue
		}
		type state struct {
			prev   []int
			known  bool
			suffix []int
		}
		st := map[int]*state{}
		for _, o := range t.Ops {
			s := st[o.Key]
			if s == nil {
				s = &state{}
				st[o.Key] = s
			}
			if o.Kind == Append {
				s.suffix = append(s.suffix, o.Value)
				continue
			}
			var want string
			switch {
			case s.known && !slices.Equal(o.List, append(slices.Clone(s.prev), s.suffix...)):
				want = listString(append(slices.Clone(s.prev), s.suffix...))
			case !s.known && len(s.suffix) > 0 && !endsWith(o.List, s.suffix):
				want = "a list ending in " + listString(s.suffix)
			}
			if want != "" {
				c.add(Anomaly{Keys: []int{o.Key}, Type: Internal, Txns: []int{i},
					Explanation: fmt.Sprintf("T%d read key %d as %s, but its own earlier operations imply %s", i, o.Key, listString(o.List), want)})
			}
			s.prev, s.known, s.suffix = o.List, true, nil
		}
	}
}

func endsWith(l, suffix []int) bool {
	return len(l) >= len(suffix) && slices.Equal(l[len(l)-len(suffix):], suffix)
}

// eachRead calls fn for every committed read: every read of an OK
// transaction.
func (c *checker) eachRead(fn func(txn int, o Op)) {
	for i, t := range c.h {
		if t.Outcome != OK {
			continue
		}
		for _, o := range t.Ops {
			if o.Kind == Read {
				fn(i, o)
			}
		}
	}
}

// versionOrders infers each key's version order: the longest committed
// read, of which every other must be a prefix. Keys with incompatible reads
// are reported and left out.
func (c *checker) versionOrders() map[int][]int {
	longest := map[int][]int{}
	from := map[int]int{}
	c.eachRead(func(i int, o Op) {
		if len(o.List) > len(longest[o.Key]) || longest[o.Key] == nil {
			longest[o.Key], from[o.Key] = o.List, i
		}
	})
	bad := map[int]bool{}
	c.eachRead(func(i int, o Op) {
		l := longest[o.Key]
		if bad[o.Key] || slices.Equal(o.List, l[:len(o.List)]) {
			return
		}
		bad[o.Key] = true
		div := 0
		for div < len(o.List) && o.List[div] == l[div] {
			div++
		}
		c.add(Anomaly{Keys: []int{o.Key}, Type: IncompatibleOrder, Txns: uniq(i, from[o.Key]),
			Explanation: fmt.Sprintf("key %d was read as %s and as %s: neither is a prefix of the other (they part at position %d: %s vs %s), so an append was lost or reordered",
				o.Key, listString(o.List), listString(l), div, around(o.List, div), around(l, div))})
	})
	for k := range bad {
		delete(longest, k)
	}
	return longest
}

// readChecks reports G1a, G1b, garbage and duplicate elements in committed
// reads.
func (c *checker) readChecks() {
	c.eachRead(func(i int, o Op) {
		seen := map[int]bool{}
		for pos, v := range o.List {
			if seen[v] {
				c.add(Anomaly{Keys: []int{o.Key}, Type: DuplicateElements, Txns: []int{i},
					Explanation: fmt.Sprintf("T%d read key %d as %s: value %d appears twice", i, o.Key, listString(o.List), v)})
			}
			seen[v] = true
			w, ok := c.writer[v]
			if !ok {
				c.add(Anomaly{Keys: []int{o.Key}, Type: GarbageRead, Txns: []int{i},
					Explanation: fmt.Sprintf("T%d read key %d as %s: nobody appended %d", i, o.Key, listString(o.List), v)})
				continue
			}
			if wk := c.h[w.txn].Ops[w.op].Key; wk != o.Key {
				c.add(Anomaly{Keys: []int{o.Key}, Type: GarbageRead, Txns: uniq(i, w.txn),
					Explanation: fmt.Sprintf("T%d read key %d as %s: %d was appended to key %d by T%d", i, o.Key, listString(o.List), v, wk, w.txn)})
				continue
			}
			if c.h[w.txn].Outcome == Fail && w.txn != i {
				c.add(Anomaly{Keys: []int{o.Key}, Type: G1a, Txns: []int{i, w.txn},
					Explanation: fmt.Sprintf("T%d read key %d as %s, which holds %d, appended by T%d, which failed (aborted read)", i, o.Key, listString(o.List), v, w.txn)})
			}
			if pos == len(o.List)-1 && w.txn != i {
				mine := c.appends[o.Key][w.txn]
				if mine[len(mine)-1] != v {
					c.add(Anomaly{Keys: []int{o.Key}, Type: G1b, Txns: []int{i, w.txn},
						Explanation: fmt.Sprintf("T%d read key %d as %s, ending in %d, but T%d appended %s to key %d: %d is an intermediate version (intermediate read)",
							i, o.Key, listString(o.List), v, w.txn, listString(mine), o.Key, v)})
				}
			}
		}
	})
}

// finalChecks compares the final reads with each other and with the
// committed appends.
func (c *checker) finalChecks(orders map[int][]int) {
	finals := map[int][]int{} // key -> final read txns
	for i, t := range c.h {
		if !t.Final || t.Outcome != OK {
			continue
		}
		for _, o := range t.Ops {
			if o.Kind == Read {
				finals[o.Key] = append(finals[o.Key], i)
			}
		}
	}
	readOf := func(txn, key int) []int {
		for _, o := range c.h[txn].Ops {
			if o.Kind == Read && o.Key == key {
				return o.List
			}
		}
		return nil
	}
	var keys []int
	for k := range finals {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		ts := finals[k]
		first := readOf(ts[0], k)
		for _, t := range ts[1:] {
			if l := readOf(t, k); !slices.Equal(l, first) {
				c.add(Anomaly{Keys: []int{k}, Type: FinalReadsDisagree, Txns: []int{ts[0], t},
					Explanation: fmt.Sprintf("the final reads of key %d disagree: %s and %s", k, listString(first), listString(l))})
			}
		}
		in := map[int]bool{}
		for _, v := range first {
			in[v] = true
		}
		var writers []int
		for w := range c.appends[k] {
			writers = append(writers, w)
		}
		sort.Ints(writers)
		for _, w := range writers {
			if c.h[w].Outcome != OK {
				continue
			}
			for _, v := range c.appends[k][w] {
				if !in[v] {
					c.add(Anomaly{Keys: []int{k}, Type: LostAppend, Txns: []int{w, ts[0]},
						Explanation: fmt.Sprintf("T%d committed append(%d, %d), but the final read of key %d is %s", w, k, v, k, listString(first))})
				}
			}
		}
	}
}

// addEdge records a dependency from -> to of kind k; self-edges and edges
// that touch a failed transaction are dropped.
func (c *checker) addEdge(from, to int, k uint8, key int, why string) {
	if from == to || c.h[from].Outcome == Fail || c.h[to].Outcome == Fail {
		return
	}
	if c.out[from] == nil {
		c.out[from] = map[int]*edge{}
	}
	e := c.out[from][to]
	if e == nil {
		e = &edge{}
		c.out[from][to] = e
		c.edges++
	}
	if e.kinds&k == 0 {
		e.kinds |= k
		e.why[bitIndex(k)] = why
		e.key[bitIndex(k)] = key
	}
}

func bitIndex(k uint8) int {
	switch k {
	case ww:
		return 0
	case wr:
		return 1
	}
	return 2
}

// buildGraph adds the ww, wr and rw edges the version orders and the
// committed reads imply.
func (c *checker) buildGraph(orders map[int][]int) {
	for k, order := range orders {
		for i := 1; i < len(order); i++ {
			a, okA := c.writer[order[i-1]]
			b, okB := c.writer[order[i]]
			if okA && okB {
				c.addEdge(a.txn, b.txn, ww, k, fmt.Sprintf("key %d: T%d's %d comes right before T%d's %d", k, a.txn, order[i-1], b.txn, order[i]))
			}
		}
	}
	c.eachRead(func(i int, o Op) {
		order, ok := orders[o.Key]
		if !ok {
			return
		}
		if n := len(o.List); n > 0 {
			if w, ok := c.writer[o.List[n-1]]; ok {
				c.addEdge(w.txn, i, wr, o.Key, fmt.Sprintf("key %d: T%d read %s, ending in T%d's %d", o.Key, i, listString(o.List), w.txn, o.List[n-1]))
			}
		}
		if n := len(o.List); n < len(order) {
			// A read that ends inside one transaction's run of appends is
			// G1b (readChecks); it implies no anti-dependency on the
			// transaction it read from.
			if w, ok := c.writer[order[n]]; ok && !c.wroteLast(w.txn, o.List) {
				c.addEdge(i, w.txn, rw, o.Key, fmt.Sprintf("key %d: T%d read %s, without T%d's %d, the next version", o.Key, i, listString(o.List), w.txn, order[n]))
			}
		}
	})
}

// wroteLast reports whether txn appended the last element of list.
func (c *checker) wroteLast(txn int, list []int) bool {
	if len(list) == 0 {
		return false
	}
	w, ok := c.writer[list[len(list)-1]]
	return ok && w.txn == txn
}

// sccs returns the strongly connected components of more than one
// transaction of the graph restricted to edges of the given kinds
// (Tarjan's algorithm, iterative).
func (c *checker) sccs(mask uint8) [][]int {
	n := len(c.h)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var out [][]int
	var st []int
	next := 0
	type frame struct {
		v    int
		succ []int
		i    int
	}
	succs := func(v int) []int {
		var s []int
		for w, e := range c.out[v] {
			if e.kinds&mask != 0 {
				s = append(s, w)
			}
		}
		sort.Ints(s)
		return s
	}
	for root := 0; root < n; root++ {
		if index[root] >= 0 || c.out[root] == nil {
			continue
		}
		call := []frame{{v: root, succ: succs(root)}}
		index[root], low[root] = next, next
		next++
		st = append(st, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(f.succ) {
				w := f.succ[f.i]
				f.i++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					st = append(st, w)
					onStack[w] = true
					call = append(call, frame{v: w, succ: succs(w)})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := st[len(st)-1]
					st = st[:len(st)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 {
					sort.Ints(comp)
					out = append(out, comp)
				}
			}
		}
	}
	return out
}

// path returns a shortest path from -> to inside comp using edges of the
// given kinds, as the list of transactions from..to, or nil.
func (c *checker) path(from, to int, mask uint8, comp map[int]bool) []int {
	prev := map[int]int{from: -1}
	queue := []int{from}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		if v == to {
			var p []int
			for x := to; x != -1; x = prev[x] {
				p = append(p, x)
			}
			slices.Reverse(p)
			return p
		}
		var ws []int
		for w, e := range c.out[v] {
			if e.kinds&mask != 0 && comp[w] {
				if _, seen := prev[w]; !seen {
					ws = append(ws, w)
				}
			}
		}
		sort.Ints(ws)
		for _, w := range ws {
			prev[w] = v
			queue = append(queue, w)
		}
	}
	return nil
}

// cycle is a list of transactions t0 t1 ... t0, with the edge kind chosen
// for each step.
type cycle struct {
	txns  []int // t0 .. tn (tn == t0)
	kinds []uint8
}

// explain prints each edge of the cycle and why it exists.
func (c *checker) explain(cy cycle) string {
	var parts []string
	for i := 0; i+1 < len(cy.txns); i++ {
		e := c.out[cy.txns[i]][cy.txns[i+1]]
		k := cy.kinds[i]
		parts = append(parts, fmt.Sprintf("T%d -%s-> T%d (%s)", cy.txns[i], kindName(k), cy.txns[i+1], e.why[bitIndex(k)]))
	}
	return "cycle " + strings.Join(parts, "; ")
}

// close makes a cycle out of the first edge first (of kind k) and a path
// back, choosing for each step of the path its weakest kind within mask
// (ww, then wr, then rw), so that the cycle's class is the least it can be.
func (c *checker) close(first [2]int, k uint8, back []int, mask uint8) cycle {
	cy := cycle{txns: []int{first[0]}, kinds: []uint8{k}}
	cy.txns = append(cy.txns, back...)
	for i := 0; i+1 < len(back); i++ {
		e := c.out[back[i]][back[i+1]]
		for _, kk := range []uint8{ww, wr, rw} {
			if e.kinds&mask&kk != 0 {
				cy.kinds = append(cy.kinds, kk)
				break
			}
		}
	}
	return cy
}

func (cy cycle) count(k uint8) int {
	n := 0
	for _, x := range cy.kinds {
		if x == k {
			n++
		}
	}
	return n
}

// cycles searches the graph for G0, G1c, G-single and G2, one cycle per
// strongly connected component and class.
func (c *checker) cycles() {
	report := func(typ string, cy cycle) {
		var keys []int
		for i := 0; i+1 < len(cy.txns); i++ {
			k := c.out[cy.txns[i]][cy.txns[i+1]].key[bitIndex(cy.kinds[i])]
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		c.add(Anomaly{Type: typ, Txns: cy.txns[:len(cy.txns)-1], Keys: keys, Explanation: c.explain(cy)})
	}
	// search finds in comp a cycle that starts with an edge of kind start
	// and comes back through edges of the kinds in back, trying at most
	// tries start edges (-1: all).
	search := func(comp []int, start, back uint8, tries int) (cycle, bool) {
		in := map[int]bool{}
		for _, v := range comp {
			in[v] = true
		}
		for _, a := range comp {
			var bs []int
			for b, e := range c.out[a] {
				if in[b] && e.kinds&start != 0 {
					bs = append(bs, b)
				}
			}
			sort.Ints(bs)
			for _, b := range bs {
				if tries == 0 {
					return cycle{}, false
				}
				tries--
				if p := c.path(b, a, back, in); p != nil {
					return c.close([2]int{a, b}, start, p, back), true
				}
			}
		}
		return cycle{}, false
	}
	for _, comp := range c.sccs(ww) {
		if cy, ok := search(comp, ww, ww, -1); ok {
			report(G0, cy)
		}
	}
	for _, comp := range c.sccs(ww | wr) {
		if cy, ok := search(comp, wr, ww|wr, -1); ok {
			report(G1c, cy)
		}
	}
	for _, comp := range c.sccs(ww | wr | rw) {
		if cy, ok := search(comp, rw, ww|wr, c.opts.MaxRWTries); ok {
			report(GSingle, cy)
			continue
		}
		if cy, ok := search(comp, rw, ww|wr|rw, -1); ok {
			typ := G2
			if cy.count(rw) == 1 {
				typ = GSingle
			}
			report(typ, cy)
		}
	}
}

func uniq(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}
