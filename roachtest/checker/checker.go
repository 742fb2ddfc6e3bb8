package checker

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kvnode/kvnode/roachtest/workload"
)

// Options tune Check.
type Options struct {
	// MinAcked is the least number of acknowledged mutations the history
	// must contain (default 1).
	MinAcked int
	// Timeout bounds the linearizability check of one key (default 60s).
	// A check that runs out of time is reported as a warning, not a failure:
	// porcupine found no violation in that time.
	Timeout time.Duration
	// VisualizeDir, if set, receives an HTML visualization of each key whose
	// history is not linearizable (porcupine's).
	VisualizeDir string
	// MaxOps caps the operations printed per failure (default 25).
	MaxOps int
}

// Failure is one violated property and the operations that show it.
type Failure struct {
	Check   string
	Message string
	Ops     []workload.Op
}

// Report is the outcome of Check.
type Report struct {
	Failures []Failure
	Warnings []string
	// Summary is one line about the history (counts, gaps).
	Summary string

	notes  []workload.Note
	maxOps int
}

// OK reports whether no check failed.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

// String prints every failure with its operations and nearby notes.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "history: %s\n", r.Summary)
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if r.OK() {
		b.WriteString("all checks passed\n")
		return b.String()
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAILED %s: %s\n", f.Check, f.Message)
		ops := f.Ops
		if len(ops) > r.maxOps {
			ops = ops[:r.maxOps]
		}
		var lo, hi time.Duration = 1<<62 - 1, 0
		for _, o := range ops {
			fmt.Fprintf(&b, "    %s\n", o)
			lo, hi = min(lo, o.Start), max(hi, o.End)
		}
		if len(f.Ops) > len(ops) {
			fmt.Fprintf(&b, "    ... and %d more\n", len(f.Ops)-len(ops))
		}
		if hi == workload.Unbounded || hi < lo {
			hi = lo
		}
		var near []string
		for _, n := range r.notes {
			if n.At >= lo-2*time.Second && n.At <= hi+2*time.Second {
				near = append(near, fmt.Sprintf("%.3fs %s", n.At.Seconds(), n.Text))
			}
		}
		if len(near) > 0 {
			fmt.Fprintf(&b, "  scenario events around then: %s\n", strings.Join(near, "; "))
		}
	}
	return b.String()
}

// Check runs every check on h.
func Check(h *workload.History, opts Options) *Report {
	if opts.MinAcked == 0 {
		opts.MinAcked = 1
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.MaxOps == 0 {
		opts.MaxOps = 25
	}
	r := &Report{Summary: h.Summary(), notes: h.Notes, maxOps: opts.MaxOps}
	acked := 0
	for _, o := range h.Ops {
		if o.Outcome == workload.OK && o.Kind != workload.Read && !o.Final {
			acked++
		}
	}
	if acked < opts.MinAcked {
		r.Failures = append(r.Failures, Failure{Check: "progress",
			Message: fmt.Sprintf("only %d mutations were acknowledged, want at least %d: the cluster did not serve writes", acked, opts.MinAcked)})
	}
	r.Failures = append(r.Failures, CheckLog(h)...)
	fails, warns := CheckRegisters(h, opts)
	r.Failures = append(r.Failures, fails...)
	r.Warnings = append(r.Warnings, warns...)
	return r
}

type logKey struct{ client, seq int }

// CheckLog checks the append-only log as read through every node.
func CheckLog(h *workload.History) []Failure {
	attempts := map[logKey]workload.Op{}
	for _, o := range h.Ops {
		if o.Kind == workload.Append {
			attempts[logKey{o.Client, o.Seq}] = o
		}
	}
	var fails []Failure
	if len(h.Log) == 0 {
		if len(attempts) > 0 {
			fails = append(fails, Failure{Check: "log", Message: "the log was not read back through any node"})
		}
		return fails
	}
	nodes := make([]int, 0, len(h.Log))
	for n := range h.Log {
		nodes = append(nodes, n)
	}
	sort.Ints(nodes)
	var lost, dup, phantom, failedPresent []workload.Op
	seen := map[int]map[logKey]int{}
	for _, n := range nodes {
		counts := map[logKey]int{}
		for _, row := range h.Log[n] {
			counts[logKey{row.Client, row.Seq}]++
		}
		seen[n] = counts
		for k, c := range counts {
			op, attempted := attempts[k]
			switch {
			case !attempted:
				phantom = append(phantom, workload.Op{Client: k.client, Seq: k.seq, Node: n, Kind: workload.Append,
					Err: fmt.Sprintf("present %d time(s) through n%d, never attempted", c, n)})
			case c > 1:
				op.Err = fmt.Sprintf("present %d times through n%d; %s", c, n, op.Err)
				dup = append(dup, op)
			case op.Outcome == workload.Failed:
				op.Err = fmt.Sprintf("present through n%d although it failed: %s", n, op.Err)
				failedPresent = append(failedPresent, op)
			}
		}
		for k, op := range attempts {
			if op.Outcome == workload.OK && counts[k] == 0 {
				op.Err = fmt.Sprintf("acknowledged but absent through n%d", n)
				lost = append(lost, op)
			}
		}
	}
	add := func(check, msg string, ops []workload.Op) {
		if len(ops) > 0 {
			sortOps(ops)
			fails = append(fails, Failure{Check: check, Message: fmt.Sprintf(msg, len(ops)), Ops: ops})
		}
	}
	add("lost writes", "%d acknowledged appends are missing", lost)
	add("duplicates", "%d appends were applied more than once", dup)
	add("phantoms", "%d rows are present that no client wrote", phantom)
	add("failed writes present", "%d appends reported as failed (definitely not applied) are present", failedPresent)
	// Every node must return the same rows: reads are linearizable, and the
	// workload was stopped before the reads.
	first := nodes[0]
	for _, n := range nodes[1:] {
		var diff []workload.Op
		for k, c := range seen[first] {
			if seen[n][k] != c {
				op := attempts[k]
				op.Err = fmt.Sprintf("present %d time(s) through n%d but %d through n%d", c, first, seen[n][k], n)
				diff = append(diff, op)
			}
		}
		for k, c := range seen[n] {
			if _, ok := seen[first][k]; !ok {
				op := attempts[k]
				op.Err = fmt.Sprintf("present %d time(s) through n%d but absent through n%d", c, n, first)
				diff = append(diff, op)
			}
		}
		add("nodes disagree", fmt.Sprintf("%%d appends read differently through n%d and n%d", first, n), diff)
	}
	return fails
}

func sortOps(ops []workload.Op) {
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Start != ops[j].Start {
			return ops[i].Start < ops[j].Start
		}
		return ops[i].Client < ops[j].Client
	})
}

// regInput and regOutput are what porcupine sees of an operation.
type regInput struct {
	kind       workload.Kind
	value, old int64
}

type regOutput struct {
	value     int64 // read: the value read
	applied   bool  // cas: it changed the row
	ambiguous bool  // cas: the outcome is unknown
}

// registerModel is one register holding an int64, initially 0 (the setup
// inserts every key with v = 0).
var registerModel = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		s := state.(int64)
		in := input.(regInput)
		out := output.(regOutput)
		switch in.kind {
		case workload.Read:
			return out.value == s, s
		case workload.Write:
			return true, in.value
		case workload.CAS:
			if out.ambiguous {
				// If it took effect here, it did what a CAS does; "never took
				// effect" is linearizing it after everything else.
				if s == in.old {
					return true, in.value
				}
				return true, s
			}
			if out.applied {
				return s == in.old, in.value
			}
			return s != in.old, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		out := output.(regOutput)
		switch in.kind {
		case workload.Read:
			return fmt.Sprintf("read -> %s", workload.FormatValue(out.value))
		case workload.Write:
			return fmt.Sprintf("write %s", workload.FormatValue(in.value))
		default:
			res := fmt.Sprintf("applied=%v", out.applied)
			if out.ambiguous {
				res = "ambiguous"
			}
			return fmt.Sprintf("cas %s -> %s (%s)", workload.FormatValue(in.old), workload.FormatValue(in.value), res)
		}
	},
	DescribeState: func(state any) string { return workload.FormatValue(state.(int64)) },
}

// CheckRegisters checks each register key's history for linearizability.
func CheckRegisters(h *workload.History, opts Options) (fails []Failure, warnings []string) {
	byKey := map[int64][]workload.Op{}
	for _, o := range h.Ops {
		if o.Kind == workload.Append {
			continue
		}
		if o.Outcome == workload.Failed || (o.Kind == workload.Read && o.Outcome != workload.OK) {
			continue
		}
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	keys := make([]int64, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		ops := byKey[k]
		hist := toPorcupine(ops)
		switch res := porcupine.CheckOperationsTimeout(registerModel, hist, opts.Timeout); res {
		case porcupine.Ok:
		case porcupine.Unknown:
			warnings = append(warnings, fmt.Sprintf("register %d: linearizability check of %d operations gave up after %s (no violation found)", k, len(ops), opts.Timeout))
		default:
			fails = append(fails, explain(k, ops, hist, opts))
		}
	}
	return fails, warnings
}

func toPorcupine(ops []workload.Op) []porcupine.Operation {
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		end := o.End
		if o.Outcome == workload.Ambiguous {
			end = workload.Unbounded
		}
		hist = append(hist, porcupine.Operation{
			ClientId: o.Client,
			Input:    regInput{kind: o.Kind, value: o.Value, old: o.Old},
			Output:   regOutput{value: o.Value, applied: o.Applied, ambiguous: o.Outcome == workload.Ambiguous},
			Call:     int64(o.Start),
			Return:   int64(end),
		})
	}
	return hist
}

// explain turns an illegal history into the operations that show it: the
// end of the longest linearizable prefix porcupine found, and the
// operations that could come next, none of which fits.
func explain(key int64, ops []workload.Op, hist []porcupine.Operation, opts Options) Failure {
	f := Failure{Check: "linearizability",
		Message: fmt.Sprintf("register %d: its %d operations are not linearizable", key, len(ops))}
	_, info := porcupine.CheckOperationsVerbose(registerModel, hist, opts.Timeout)
	if opts.VisualizeDir != "" {
		path := filepath.Join(opts.VisualizeDir, fmt.Sprintf("linearizability-register-%d.html", key))
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			f.Message += "; visualization: " + path
		}
	}
	var longest []int
	for _, part := range info.PartialLinearizations() {
		for _, lin := range part {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	done := map[int]bool{}
	for _, i := range longest {
		done[i] = true
	}
	// The next operation linearized must have started before the earliest
	// end among the rest: those are the candidates, and none fits.
	var rest []int
	earliestEnd := int64(workload.Unbounded)
	for i := range hist {
		if !done[i] {
			rest = append(rest, i)
			earliestEnd = min(earliestEnd, hist[i].Return)
		}
	}
	var out []workload.Op
	tail := longest
	if len(tail) > 5 {
		tail = tail[len(tail)-5:]
	}
	for _, i := range tail {
		o := ops[i]
		o.Err = strings.TrimSpace("linearized " + o.Err)
		out = append(out, o)
	}
	var cands []workload.Op
	for _, i := range rest {
		if hist[i].Call <= earliestEnd {
			o := ops[i]
			o.Err = strings.TrimSpace("cannot come next " + o.Err)
			cands = append(cands, o)
		}
	}
	sortOps(cands)
	f.Message += fmt.Sprintf("; the longest linearizable prefix has %d operations, its last %d and the %d candidates for the next are below",
		len(longest), len(tail), len(cands))
	f.Ops = append(out, cands...)
	return f
}
