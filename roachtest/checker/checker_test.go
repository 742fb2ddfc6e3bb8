package checker

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/roachtest/workload"
)

const ms = time.Millisecond

// op builds a register operation between start and end (milliseconds).
func op(client, seq int, kind workload.Kind, key, value int64, start, end int, out workload.Outcome) workload.Op {
	return workload.Op{Client: client, Seq: seq, Node: 1, Kind: kind, Key: key, Value: value,
		Start: time.Duration(start) * ms, End: time.Duration(end) * ms, Outcome: out}
}

func cas(client, seq int, key, old, value int64, applied bool, start, end int, out workload.Outcome) workload.Op {
	o := op(client, seq, workload.CAS, key, value, start, end, out)
	o.Old, o.Applied = old, applied
	return o
}

func appendOp(client, seq, start, end int, out workload.Outcome) workload.Op {
	return op(client, seq, workload.Append, 0, int64(seq), start, end, out)
}

func logOf(nodes []int, rows ...workload.LogRow) map[int][]workload.LogRow {
	m := map[int][]workload.LogRow{}
	for _, n := range nodes {
		m[n] = append([]workload.LogRow(nil), rows...)
	}
	return m
}

func checkNames(r *Report) []string {
	var out []string
	for _, f := range r.Failures {
		out = append(out, f.Check)
	}
	return out
}

func TestRegisterLinearizability(t *testing.T) {
	ok, amb, failed := workload.OK, workload.Ambiguous, workload.Failed
	for _, tc := range []struct {
		name string
		ops  []workload.Op
		want bool // linearizable
	}{
		{"sequential write then read", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 5, ok),
			op(1, 1, workload.Read, 1, 10, 6, 8, ok),
		}, true},
		{"stale read after an acknowledged write", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 5, ok),
			op(1, 1, workload.Read, 1, 0, 6, 8, ok),
		}, false},
		{"concurrent read may see either", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 10, ok),
			op(1, 1, workload.Read, 1, 0, 2, 4, ok),
			op(2, 1, workload.Read, 1, 10, 3, 5, ok),
		}, true},
		{"reads may not go back in time", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 10, ok),
			op(1, 1, workload.Read, 1, 10, 2, 4, ok),
			op(2, 1, workload.Read, 1, 0, 5, 6, ok),
		}, false},
		{"an ambiguous write may have taken effect later", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 5, amb),
			op(1, 1, workload.Read, 1, 0, 6, 7, ok),
			op(1, 2, workload.Read, 1, 10, 8, 9, ok),
		}, true},
		{"an ambiguous write may never take effect", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 5, amb),
			op(1, 1, workload.Read, 1, 0, 6, 7, ok),
		}, true},
		{"a failed write never takes effect", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 5, failed),
			op(1, 1, workload.Read, 1, 10, 6, 7, ok),
		}, false},
		{"a value nobody wrote", []workload.Op{
			op(1, 1, workload.Read, 1, 99, 6, 7, ok),
		}, false},
		{"a lost row reads as absent", []workload.Op{
			op(1, 1, workload.Read, 1, workload.Absent, 6, 7, ok),
		}, false},
		{"cas applies only on a match", []workload.Op{
			cas(0, 1, 1, 0, 10, true, 0, 1, ok),
			cas(1, 1, 1, 0, 11, false, 2, 3, ok),
			op(2, 1, workload.Read, 1, 10, 4, 5, ok),
		}, true},
		{"two cas from the same old value cannot both apply", []workload.Op{
			cas(0, 1, 1, 0, 10, true, 0, 5, ok),
			cas(1, 1, 1, 0, 11, true, 0, 5, ok),
		}, false},
		{"an ambiguous cas that applied", []workload.Op{
			cas(0, 1, 1, 0, 10, false, 0, 5, amb),
			op(1, 1, workload.Read, 1, 10, 6, 7, ok),
		}, true},
		{"keys are independent", []workload.Op{
			op(0, 1, workload.Write, 1, 10, 0, 1, ok),
			op(1, 1, workload.Read, 2, 0, 2, 3, ok),
			op(1, 2, workload.Read, 1, 10, 4, 5, ok),
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := &workload.History{Ops: tc.ops, Keys: 2}
			fails, warns := CheckRegisters(h, Options{Timeout: 10 * time.Second, VisualizeDir: dir, MaxOps: 25})
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
			if got := len(fails) == 0; got != tc.want {
				t.Fatalf("linearizable = %v, want %v; failures: %+v", got, tc.want, fails)
			}
			if tc.want {
				return
			}
			// A violation names its operations and leaves a visualization.
			f := fails[0]
			if len(f.Ops) == 0 || !strings.Contains(f.Message, "not linearizable") {
				t.Errorf("failure without operations: %+v", f)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "linearizability-register-*.html")); len(files) != 1 {
				t.Errorf("visualizations: %v", files)
			}
		})
	}
}

func TestLogChecks(t *testing.T) {
	ok, amb, failed := workload.OK, workload.Ambiguous, workload.Failed
	ops := []workload.Op{
		appendOp(0, 1, 0, 1, ok),
		appendOp(0, 2, 2, 3, amb),
		appendOp(1, 1, 0, 1, failed),
		appendOp(1, 2, 2, 3, ok),
	}
	row := func(c, s int) workload.LogRow { return workload.LogRow{Client: c, Seq: s} }
	for _, tc := range []struct {
		name string
		log  map[int][]workload.LogRow
		want []string
	}{
		{"all acknowledged present, ambiguous absent", logOf([]int{1, 2}, row(0, 1), row(1, 2)), nil},
		{"ambiguous present once is fine", logOf([]int{1, 2}, row(0, 1), row(0, 2), row(1, 2)), nil},
		{"lost write", logOf([]int{1}, row(0, 1)), []string{"lost writes"}},
		{"applied twice", logOf([]int{1}, row(0, 1), row(0, 2), row(0, 2), row(1, 2)), []string{"duplicates"}},
		{"phantom", logOf([]int{1}, row(0, 1), row(1, 2), row(7, 7)), []string{"phantoms"}},
		{"failed write present", logOf([]int{1}, row(0, 1), row(1, 1), row(1, 2)), []string{"failed writes present"}},
		{"nodes disagree", map[int][]workload.LogRow{1: {row(0, 1), row(1, 2), row(0, 2)}, 2: {row(0, 1), row(1, 2)}}, []string{"nodes disagree"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &workload.History{Ops: ops, Log: tc.log}
			got := checkNames(&Report{Failures: CheckLog(h)})
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("failures %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReportPrintsOffendingOperationsAndNotes(t *testing.T) {
	h := &workload.History{
		Ops: []workload.Op{
			op(0, 1, workload.Write, 1, 10, 1000, 1005, workload.OK),
			op(1, 1, workload.Read, 1, 0, 1006, 1008, workload.OK),
			appendOp(0, 2, 1010, 1020, workload.OK),
		},
		Notes: []workload.Note{{At: 1001 * ms, Text: "killed n2"}, {At: 60 * time.Second, Text: "far away"}},
		Log:   logOf([]int{1}),
		Keys:  1,
	}
	r := Check(h, Options{})
	if r.OK() {
		t.Fatal("a stale read and a lost write passed")
	}
	s := r.String()
	for _, want := range []string{"FAILED linearizability", "FAILED lost writes", "read k=1 -> 0", "write k=1 v=10",
		"append (client 0, seq 2)", "killed n2"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "far away") {
		t.Errorf("report prints a note far from the failure:\n%s", s)
	}
}

func TestProgressCheck(t *testing.T) {
	h := &workload.History{Ops: []workload.Op{op(0, 1, workload.Write, 1, 10, 0, 5, workload.Failed)}, Keys: 1}
	r := Check(h, Options{MinAcked: 1})
	if got := checkNames(r); len(got) != 1 || got[0] != "progress" {
		t.Errorf("failures %v, want progress", got)
	}
}
