package elle

import (
	"slices"
	"strings"
	"testing"
)

// Shorthands for hand-built histories.
func ok(ops ...Op) Txn   { return Txn{Ops: ops, Outcome: OK} }
func fail(ops ...Op) Txn { return Txn{Ops: ops, Outcome: Fail} }
func info(ops ...Op) Txn { return Txn{Ops: ops, Outcome: Info} }
func final(ops ...Op) Txn {
	return Txn{Ops: ops, Outcome: OK, Final: true}
}

var (
	a = AppendOp
	r = ReadOp
)

// TestPlantedAnomalies feeds hand-built histories, each with one planted
// anomaly, and checks that Check reports exactly that anomaly by name.
func TestPlantedAnomalies(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    History
		want []string
	}{
		{
			// T0 and T1 append to keys 1 and 2 in opposite orders.
			name: "G0 write cycle",
			h: History{
				ok(a(1, 1), a(2, 2)),
				ok(a(1, 3), a(2, 4)),
				ok(r(1, 1, 3), r(2, 4, 2)),
			},
			want: []string{G0},
		},
		{
			// T0 reads T1's append and T1 reads T0's.
			name: "G1c circular information flow",
			h: History{
				ok(a(1, 1), r(2, 2)),
				ok(a(2, 2), r(1, 1)),
			},
			want: []string{G1c},
		},
		{
			// G1c through a ww edge and a wr edge.
			name: "G1c ww and wr",
			h: History{
				ok(a(1, 1), r(2, 2)), // T0 reads T1's 2: T1 -wr-> T0
				ok(a(2, 2), a(1, 3)), // T1 appends 3 after T0's 1: T0 -ww-> T1
				ok(r(1, 1, 3)),
			},
			want: []string{G1c},
		},
		{
			// Read skew: T0 sees key 1 before T1 and key 2 after it.
			name: "G-single read skew",
			h: History{
				ok(r(1), r(2, 2)),
				ok(a(1, 1), a(2, 2)),
				ok(r(1, 1)),
			},
			want: []string{GSingle},
		},
		{
			// Write skew: each reads both keys, appends to one, misses the
			// other's append.
			name: "G2 write skew",
			h: History{
				ok(r(1), r(2), a(1, 1)),
				ok(r(1), r(2), a(2, 2)),
				ok(r(1, 1), r(2, 2)),
			},
			want: []string{G2},
		},
		{
			name: "G1a aborted read",
			h: History{
				fail(a(1, 1)),
				ok(r(1, 1)),
			},
			want: []string{G1a},
		},
		{
			name: "G1b intermediate read",
			h: History{
				ok(a(1, 1), a(1, 2)),
				ok(r(1, 1)),
				ok(r(1, 1, 2)),
			},
			want: []string{G1b},
		},
		{
			name: "incompatible order (lost update)",
			h: History{
				ok(a(1, 1)),
				ok(a(1, 2)),
				ok(a(1, 3)),
				ok(r(1, 1, 2)),
				ok(r(1, 1, 3)),
			},
			want: []string{IncompatibleOrder},
		},
		{
			name: "internal: a read that misses the transaction's own append",
			h: History{
				ok(r(1), a(1, 1), r(1)),
			},
			want: []string{Internal},
		},
		{
			name: "garbage read",
			h: History{
				ok(a(1, 1)),
				ok(r(1, 1, 99)),
			},
			want: []string{GarbageRead},
		},
		{
			name: "value of another key",
			h: History{
				ok(a(1, 1), a(2, 2)),
				ok(r(1, 1, 2)),
			},
			want: []string{GarbageRead},
		},
		{
			name: "duplicate elements",
			h: History{
				ok(a(1, 1)),
				ok(r(1, 1, 1)),
			},
			want: []string{DuplicateElements},
		},
		{
			name: "duplicate appends (workload bug)",
			h: History{
				ok(a(1, 1)),
				ok(a(2, 1)),
			},
			want: []string{DuplicateAppends},
		},
		{
			name: "lost append",
			h: History{
				ok(a(1, 1)),
				ok(a(1, 2)),
				final(r(1, 1)),
			},
			want: []string{LostAppend},
		},
		{
			name: "final reads disagree",
			h: History{
				ok(a(1, 1)),
				ok(a(1, 2)),
				final(r(1, 1, 2)),
				final(r(1, 1)),
			},
			want: []string{FinalReadsDisagree},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.h, Options{})
			if got := rep.Types(); !slices.Equal(got, tc.want) {
				t.Fatalf("found %v, want %v\n%s", got, tc.want, rep)
			}
			for _, want := range tc.want {
				if !strings.Contains(rep.String(), want+": ") {
					t.Fatalf("the report does not name %s:\n%s", want, rep)
				}
			}
		})
	}
}

// TestValidHistories are histories a serializable database may produce,
// including indeterminate and failed transactions: nothing is reported.
func TestValidHistories(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    History
	}{
		{"empty", History{}},
		{"serial", History{
			ok(a(1, 1), r(1, 1)),
			ok(r(1, 1), a(1, 2), a(2, 3), r(1, 1, 2)),
			ok(r(1, 1, 2), r(2, 3)),
			final(r(1, 1, 2), r(2, 3)),
			final(r(1, 1, 2), r(2, 3)),
		}},
		{"failed appends are never seen", History{
			ok(a(1, 1)),
			fail(a(1, 2), r(1, 7, 8, 9)), // a failed transaction's reads mean nothing
			ok(r(1, 1)),
			final(r(1, 1)),
		}},
		{"an indeterminate append may be seen", History{
			ok(a(1, 1)),
			info(a(1, 2)),
			ok(r(1, 1, 2)),
			final(r(1, 1, 2)),
		}},
		{"an indeterminate append may be missing", History{
			ok(a(1, 1)),
			info(a(1, 2)),
			final(r(1, 1)),
		}},
		{"concurrent readers of older snapshots", History{
			ok(a(1, 1)),
			ok(r(1)), // serialized before the append
			ok(a(1, 2), r(2)),
			ok(r(1, 1), r(2)),
			ok(a(2, 3), r(1, 1, 2)),
		}},
		{"own appends read back", History{
			ok(a(1, 1), r(1, 1), a(1, 2), r(1, 1, 2)),
			ok(r(1, 1, 2), a(1, 3), r(1, 1, 2, 3)),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rep := Check(tc.h, Options{}); !rep.OK() {
				t.Fatalf("valid history reported:\n%s", rep)
			}
		})
	}
}

// TestReportExplainsCycle checks that a cycle is printed edge by edge with
// the observation behind each edge.
func TestReportExplainsCycle(t *testing.T) {
	rep := Check(History{
		ok(r(1), r(2), a(1, 1)),
		ok(r(1), r(2), a(2, 2)),
		ok(r(1, 1), r(2, 2)),
	}, Options{})
	s := rep.String()
	for _, want := range []string{"G2: cycle T0 -rw-> T1", "key 2: T0 read [], without T1's 2", "T1 -rw-> T0", "T0 ok: read(1) -> []"} {
		if !strings.Contains(s, want) {
			t.Fatalf("report lacks %q:\n%s", want, s)
		}
	}
}
