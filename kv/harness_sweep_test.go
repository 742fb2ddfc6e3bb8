package kv

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestRaftHarnessCrashAtEveryPoint crashes the leader, then a follower, at
// each LoopPoint in turn, in the middle of a run that passes every point
// (the leader's fsync is held while its followers' answers arrive, so it
// applies while syncing), then restarts it and lets the group converge. The
// harness's invariants are checked after every command, and at the end
// every node holds the same state, with every acknowledged write in it.
func TestRaftHarnessCrashAtEveryPoint(t *testing.T) {
	for _, victim := range []int{1, 2} {
		for _, p := range LoopPoints {
			t.Run(fmt.Sprintf("node%d/%s", victim, p), func(t *testing.T) {
				h := newHarness(t)
				defer h.close()
				var log strings.Builder
				do := func(line string) {
					d := parseCommand(t, line)
					out := h.run(d)
					fmt.Fprintf(&log, "%s\n%s", line, out)
					if v := h.check(); len(v) > 0 {
						t.Fatalf("after %q: invariant violated:\n%s\nrun so far:\n%s\nnode logs:\n%s",
							line, strings.Join(v, "\n"), log.String(), h.logs.String())
					}
				}
				for _, line := range []string{
					"add-nodes n=3", "campaign node=1", "stabilize",
					"propose node=1 key=a value=1", "stabilize",
					fmt.Sprintf("crash node=%d at=%s", victim, p),
					"propose node=1 key=b value=2",
				} {
					do(line)
				}
				if h.nodes[0].rep != nil {
					for _, line := range []string{
						"hold-sync node=1", "propose node=1 key=c value=3",
						"deliver to=2", "deliver to=3", "deliver to=1",
					} {
						do(line)
					}
					if h.nodes[0].rep != nil {
						do("release-sync node=1")
					}
				}
				do("stabilize")
				leader := 1
				if h.nodes[0].rep == nil {
					leader = 2
					do("elect node=2")
					do("stabilize")
				}
				if v := h.nodes[victim-1]; v.rep == nil {
					do(fmt.Sprintf("restart node=%d", victim))
				}
				for _, line := range []string{
					fmt.Sprintf("tick node=%d", leader), "stabilize",
					fmt.Sprintf("propose node=%d key=d value=4", leader), "stabilize",
					fmt.Sprintf("tick node=%d", leader), "stabilize",
				} {
					do(line)
				}
				want := h.describeState(h.nodes[leader-1])
				for _, n := range h.nodes {
					if got := h.describeState(n); got != want {
						t.Fatalf("node %d holds %s, the leader %s\nrun:\n%s", n.id, got, want, log.String())
					}
				}
				for _, p := range h.props {
					if p.state == "acked" && !strings.Contains(" "+want+" ", fmt.Sprintf(" %s=%s ", p.key, p.value)) {
						t.Fatalf("%s (%s=%s) was acknowledged but the group's state is %s\nrun:\n%s", p.name, p.key, p.value, want, log.String())
					}
				}
				crashed := strings.Contains(log.String(), fmt.Sprintf("node %d crashed at %s;", victim, p))
				// A follower takes the synchronous path (it never writes
				// before its fsync, nor steps during one), a leader the
				// other.
				async := p == PointWritten || p == PointSyncWait || p == PointSteppedWhileSyncing
				unreached := (victim != 1 && async) || (victim == 1 && p == PointSyncCommit)
				if !crashed && !unreached {
					t.Fatalf("node %d never reached %s\nrun:\n%s", victim, p, log.String())
				}
				do("power-cycle")
			})
		}
	}
}

// parseCommand reads a script line ("cmd k=v ...") as datadriven would.
func parseCommand(t *testing.T, line string) *datadriven.TestData {
	fields := strings.Fields(line)
	d := &datadriven.TestData{Pos: "sweep", Cmd: fields[0]}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("bad argument %q in %q", f, line)
		}
		d.CmdArgs = append(d.CmdArgs, datadriven.CmdArg{Key: k, Vals: []string{v}})
	}
	return d
}
