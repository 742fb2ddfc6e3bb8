package group0

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
)

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stored  string
		found   bool
		want    State
		garbage bool
	}{
		{"absent", "", false, UsePreRaft, false},
		{"pre", "use_pre_raft_procedures", true, UsePreRaft, false},
		{"sync", "synchronize", true, Synchronize, false},
		{"post", "use_post_raft_procedures", true, UsePostRaft, false},
		{"recovery", "recovery", true, Recovery, false},
		{"empty value", "", true, Recovery, true},
		{"garbage", "\x00\xffbanana", true, Recovery, true},
		{"wrong case", "RECOVERY", true, Recovery, true},
		{"future state", "use_post_raft_procedures_v2", true, Recovery, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, garbage := ParseState([]byte(tc.stored), tc.found)
			if got != tc.want || garbage != tc.garbage {
				t.Fatalf("ParseState(%q, %t) = %s, %t; want %s, %t", tc.stored, tc.found, got, garbage, tc.want, tc.garbage)
			}
		})
	}
}

func TestCheckTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{UsePreRaft, Synchronize}:  true,
		{UsePreRaft, UsePostRaft}:  true, // a node joining an upgraded cluster
		{Synchronize, UsePostRaft}: true,
		{UsePreRaft, Recovery}:     true,
		{Synchronize, Recovery}:    true,
		{UsePostRaft, Recovery}:    true,
	}
	for _, from := range States() {
		for _, to := range States() {
			err := CheckTransition(from, to, false)
			want := from == to || allowed[[2]State{from, to}]
			if (err == nil) != want {
				t.Errorf("%s -> %s: %v, want allowed=%t", from, to, err, want)
			}
			if from == Recovery && to != Recovery {
				if err := CheckTransition(from, to, true); err != nil {
					t.Errorf("%s -> %s by the recovery procedure: %v", from, to, err)
				}
			}
		}
	}
	if err := CheckTransition(UsePreRaft, "banana", false); err == nil {
		t.Error("transition to an unknown state allowed")
	}
}

// memDB is an in-memory kvpb.DB with the replica's conditional-put
// semantics, and a way to make a write's outcome unknown.
type memDB struct {
	mu sync.Mutex
	m  map[string][]byte
	// ambiguous, if set, decides per write whether to report
	// kvpb.ErrAmbiguous; apply says whether the write applies anyway.
	ambiguous func(ops []kvpb.Op) (report, apply bool)
	writes    int
}

func newMemDB() *memDB { return &memDB{m: map[string][]byte{}} }

func (d *memDB) Get(_ context.Context, key []byte) ([]byte, bool, error) {
	return d.GetLocal(key)
}

func (d *memDB) GetLocal(key []byte) ([]byte, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[string(key)]
	return v, ok, nil
}

func (d *memDB) Scan(_ context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	return d.ScanLocal(start, end, limit, reverse)
}

func (d *memDB) ScanLocal(start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []kvpb.KeyValue
	for k, v := range d.m {
		if k >= string(start) && (end == nil || k < string(end)) {
			out = append(out, kvpb.KeyValue{Key: []byte(k), Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 != reverse })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (d *memDB) Write(_ context.Context, ops []kvpb.Op) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	report, apply := false, true
	if d.ambiguous != nil {
		report, apply = d.ambiguous(ops)
	}
	if apply {
		for i, op := range ops {
			if op.Kind == kvpb.OpCPut {
				cur, ok := d.m[string(op.Key)]
				if ok != !op.ExpectAbsent || (ok && !bytes.Equal(cur, op.Expected)) {
					if report {
						return kvpb.ErrAmbiguous
					}
					return &kvpb.ConditionFailedError{Index: i, Key: op.Key, Actual: cur, Exists: ok}
				}
			}
		}
		for _, op := range ops {
			d.m[string(op.Key)] = op.Value
		}
	}
	if report {
		return kvpb.ErrAmbiguous
	}
	return nil
}

func (d *memDB) Increment(context.Context, []byte, int64) (int64, error) {
	return 0, errors.New("not used")
}

var _ Replica = (*memDB)(nil)

func seeded(tables map[string][]byte) *memDB {
	d := newMemDB()
	for k, v := range InitialState(tables, "test", 1, time.Unix(0, 0)) {
		d.m[k] = v
	}
	return d
}

func TestCommitSerializesAndNeverAppliesTwice(t *testing.T) {
	ctx := context.Background()
	d := seeded(map[string][]byte{"a": []byte(`{"a":1}`)})
	snap, err := Read(ctx, d)
	if err != nil || snap.StateID != 1 || string(snap.Tables["a"]) != `{"a":1}` {
		t.Fatalf("initial state: %+v %v", snap, err)
	}
	// Two changes built on state 1: the first commits, the second
	// conflicts and commits after being rebuilt on state 2.
	c1 := Change{ID: "c1", Tables: map[string][]byte{"b": []byte("B1")}, Description: "CREATE TABLE b", NodeID: 1}
	c2 := Change{ID: "c2", Tables: map[string][]byte{"b": []byte("B2")}, Description: "CREATE TABLE b", NodeID: 2}
	if id, err := Commit(ctx, d, 1, c1); err != nil || id != 2 {
		t.Fatalf("first commit: %d %v", id, err)
	}
	if _, err := Commit(ctx, d, 1, c2); !errors.Is(err, ErrConflict) {
		t.Fatalf("second commit on the same state: %v, want ErrConflict", err)
	}
	// Committing c1 again (a retry after an unknown outcome) recognizes it.
	if id, err := Commit(ctx, d, 1, c1); err != nil || id != 2 {
		t.Fatalf("re-commit of a committed change: %d %v", id, err)
	}
	if id, err := Commit(ctx, d, 2, c2); err != nil || id != 3 {
		t.Fatalf("rebuilt commit: %d %v", id, err)
	}
	snap, _ = Read(ctx, d)
	if snap.StateID != 3 || string(snap.Tables["b"]) != "B2" {
		t.Fatalf("state after two changes: %+v", snap)
	}
	hs, err := History(d, 0)
	if err != nil || len(hs) != 3 {
		t.Fatalf("history: %+v %v", hs, err)
	}
	for i, h := range hs {
		if h.StateID != uint64(i+1) || (i > 0 && h.PrevStateID != uint64(i)) {
			t.Fatalf("history entry %d: %+v", i, h)
		}
	}
	if hs[1].ChangeID != "c1" || hs[2].ChangeID != "c2" || hs[2].NodeID != 2 || hs[2].Tables[0] != "b" {
		t.Fatalf("history: %+v", hs)
	}
	if last, _ := History(d, 1); len(last) != 1 || last[0].StateID != 3 {
		t.Fatalf("last history entry: %+v", last)
	}
}

func TestCommitWithUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// outcome of each write: report ambiguous, and apply
		outcomes [][2]bool
		wantErr  error
		wantID   uint64
	}{
		{"applied but reported ambiguous", [][2]bool{{true, true}}, nil, 2},
		{"lost, then applied on retry", [][2]bool{{true, false}, {false, true}}, nil, 2},
		{"never known", [][2]bool{{true, false}, {true, false}, {true, false}}, kvpb.ErrAmbiguous, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := seeded(nil)
			n := 0
			d.ambiguous = func([]kvpb.Op) (bool, bool) {
				o := tc.outcomes[min(n, len(tc.outcomes)-1)]
				n++
				return o[0], o[1]
			}
			id, err := Commit(ctx, d, 1, Change{ID: "x", Tables: map[string][]byte{"t": []byte("T")}})
			if !errors.Is(err, tc.wantErr) || id != tc.wantID {
				t.Fatalf("Commit = %d, %v; want %d, %v", id, err, tc.wantID, tc.wantErr)
			}
			hs, _ := History(d, 0)
			applied := 0
			for _, h := range hs {
				if h.ChangeID == "x" {
					applied++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantErr == nil]; applied != want {
				t.Fatalf("change applied %d times, want %d", applied, want)
			}
		})
	}
	// Another change won while ours had an unknown outcome: conflict.
	d := seeded(nil)
	d.ambiguous = func(ops []kvpb.Op) (bool, bool) {
		if string(ops[1].Key) == string(tableKey("mine")) {
			d.m[string(keyState)] = encodeID(2)
			d.m[string(historyKey(2))] = []byte(`{"state_id":2,"change_id":"theirs"}`)
			return true, false
		}
		return false, true
	}
	if _, err := Commit(ctx, d, 1, Change{ID: "mine", Tables: map[string][]byte{"mine": []byte("M")}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("lost race with an unknown outcome: %v, want ErrConflict", err)
	}
}

func TestReadWithoutState(t *testing.T) {
	if _, err := Read(context.Background(), newMemDB()); !errors.Is(err, ErrNoState) {
		t.Fatalf("Read of an empty replica: %v", err)
	}
	if id, err := LocalStateID(newMemDB()); id != 0 || err != nil {
		t.Fatalf("LocalStateID of an empty replica: %d %v", id, err)
	}
}

func TestFormationRecord(t *testing.T) {
	f := Formation{Generation: 3, Seed: 2, Reason: "recovery", Time: 42}
	g, err := DecodeFormation(f.Encode())
	if err != nil || g != f {
		t.Fatalf("round trip: %+v %v", g, err)
	}
	for _, bad := range []string{"", "{}", `{"generation":1}`, "garbage"} {
		if _, err := DecodeFormation([]byte(bad)); err == nil {
			t.Errorf("DecodeFormation(%q) accepted", bad)
		}
	}
	if got := TransportClusterID("c", 2); got != "c/g0/2" {
		t.Errorf("TransportClusterID = %q", got)
	}
}

// node builds a NodeInfo for the decision tables.
// node is a node in state st whose replica is of generation gen (0: none)
// and holds that group's state.
func node(id nodeid.ID, st State, gen uint64) NodeInfo {
	n := NodeInfo{NodeID: id, State: st, Generation: gen, Binary: "2.0"}
	if gen > 0 {
		n.StateID = 1
	}
	return n
}

func leaderOf(n NodeInfo, members ...nodeid.ID) NodeInfo {
	n.Leader, n.Voters = n.NodeID, members
	return n
}

func TestDecide(t *testing.T) {
	f1 := &Formation{Generation: 1, Seed: 1, Reason: "upgrade"}
	for _, tc := range []struct {
		name  string
		o     Observation
		want  ActionKind
		nodes []nodeid.ID
		step  Step
		err   string
		wait  string
	}{
		{name: "a node does not answer",
			o:    Observation{Nodes: []NodeInfo{node(1, UsePreRaft, 0), {NodeID: 2, Err: errors.New("connection refused")}}},
			want: ActWait, step: StepDryRun, wait: "node 2 (connection refused)"},
		{name: "old binary",
			o:   Observation{Nodes: []NodeInfo{node(1, UsePreRaft, 0), {NodeID: 2, Binary: "1.1", Err: fmt.Errorf("x: %w", ErrOldBinary)}}},
			err: "node 2 runs release 1.1"},
		{name: "a node in recovery",
			o:   Observation{Nodes: []NodeInfo{node(1, UsePreRaft, 0), node(2, Recovery, 0)}},
			err: "node(s) 2 in recovery mode"},
		{name: "all done",
			o:    Observation{Nodes: []NodeInfo{node(1, UsePostRaft, 1), node(2, UsePostRaft, 1)}, Formation: f1},
			want: ActDone, step: StepPostRaft},
		{name: "discovery picks the smallest ID",
			o:    Observation{Nodes: []NodeInfo{node(2, UsePreRaft, 0), node(5, UsePreRaft, 0)}},
			want: ActFormation, step: StepDiscovery},
		{name: "the seed creates group 0",
			o:    Observation{Nodes: []NodeInfo{node(1, UsePreRaft, 0), node(2, UsePreRaft, 0)}, Formation: f1},
			want: ActPrepare, step: StepJoin, nodes: []nodeid.ID{1}},
		{name: "seed gone before creating: discovery again",
			o:    Observation{Nodes: []NodeInfo{node(2, UsePreRaft, 0), node(3, UsePreRaft, 0)}, Formation: f1},
			want: ActFormation, step: StepDiscovery},
		{name: "seed gone after creating, before anyone got its state: discovery again",
			o:    Observation{Nodes: []NodeInfo{{NodeID: 2, State: UsePreRaft, Generation: 1, Binary: "2.0"}, node(3, UsePreRaft, 0)}, Formation: f1},
			want: ActFormation, step: StepDiscovery},
		{name: "seed gone after creating, a survivor holds its state: wait for a leader (or recovery)",
			o:    Observation{Nodes: []NodeInfo{node(2, UsePreRaft, 1), node(3, UsePreRaft, 0)}, Formation: f1},
			want: ActWait, step: StepJoin, wait: "elect a leader"},
		{name: "no leader yet",
			o:    Observation{Nodes: []NodeInfo{node(1, UsePreRaft, 1), node(2, UsePreRaft, 0)}, Formation: f1},
			want: ActWait, step: StepJoin, wait: "elect a leader"},
		{name: "others join",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(1, UsePreRaft, 1), 1), node(2, UsePreRaft, 0), node(3, UsePreRaft, 1)}, Formation: f1},
			want: ActPrepare, step: StepJoin, nodes: []nodeid.ID{2, 3}},
		{name: "seed gone after creating: the others join through the group",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(2, UsePreRaft, 1), 1, 2), node(3, UsePreRaft, 0)}, Formation: f1},
			want: ActPrepare, step: StepJoin, nodes: []nodeid.ID{3}},
		{name: "everyone in: synchronize the pre-Raft ones",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(1, Synchronize, 1), 1, 2, 3), node(2, UsePreRaft, 1), node(3, UsePreRaft, 1)}, Formation: f1},
			want: ActSynchronize, step: StepSynchronize, nodes: []nodeid.ID{2, 3}},
		{name: "all in synchronize: schema sync",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(1, Synchronize, 1), 1, 2), node(2, Synchronize, 1)}, Formation: f1},
			want: ActSyncAndFinish, step: StepSyncSchema, nodes: []nodeid.ID{1, 2}},
		{name: "one finished (crash half-way): finish the others",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(1, UsePostRaft, 1), 1, 2), node(2, Synchronize, 1)}, Formation: f1},
			want: ActSyncAndFinish, step: StepSyncSchema, nodes: []nodeid.ID{2}},
		{name: "a new node joined late: joins, then synchronize",
			o:    Observation{Nodes: []NodeInfo{leaderOf(node(1, UsePostRaft, 1), 1, 2), node(2, UsePostRaft, 1), node(4, Synchronize, 0)}, Formation: f1},
			want: ActPrepare, step: StepJoin, nodes: []nodeid.ID{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decide(tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Decide = %+v, %v; want error %q", a, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != tc.want || a.Step != tc.step || (tc.nodes != nil && fmt.Sprint(a.Nodes) != fmt.Sprint(tc.nodes)) {
				t.Fatalf("Decide = %+v, want kind %d step %s nodes %v", a, tc.want, tc.step, tc.nodes)
			}
			if tc.wait != "" && !strings.Contains(a.Waiting, tc.wait) {
				t.Fatalf("waiting %q does not mention %q", a.Waiting, tc.wait)
			}
			if a.Kind == ActFormation && a.Formation.Seed != tc.o.Nodes[0].NodeID {
				t.Fatalf("discovery chose seed %d", a.Formation.Seed)
			}
		})
	}
}

// fakeCluster runs the procedure against simulated nodes, with a crash
// (an error) injectable before any call.
type fakeCluster struct {
	mu        sync.Mutex
	nodes     map[nodeid.ID]*fakeNode
	formation *Formation
	fail      func(call string, id nodeid.ID) error
	calls     []string
}

type fakeNode struct {
	state State
	gen   uint64
}

func (c *fakeCluster) call(name string, id nodeid.ID) error {
	c.calls = append(c.calls, fmt.Sprintf("%s(%d)", name, id))
	if c.fail != nil {
		return c.fail(name, id)
	}
	return nil
}

func (c *fakeCluster) Nodes(context.Context) ([]nodeid.ID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []nodeid.ID
	for id := range c.nodes {
		out = append(out, id)
	}
	return out, nil
}

func (c *fakeCluster) Info(_ context.Context, id nodeid.ID) NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	info := NodeInfo{NodeID: id, State: n.state, Generation: n.gen}
	// The seed leads; every node with the generation is a member.
	if c.formation != nil && id == c.formation.Seed && n.gen == c.formation.Generation {
		info.Leader = id
		for mid, m := range c.nodes {
			if m.gen == c.formation.Generation {
				info.Voters = append(info.Voters, mid)
			}
		}
	}
	return info
}

func (c *fakeCluster) Formation(context.Context) (Formation, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.formation == nil {
		return Formation{}, false, nil
	}
	return *c.formation, true, nil
}

func (c *fakeCluster) SwapFormation(_ context.Context, prev *Formation, next Formation) (Formation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("formation", next.Seed); err != nil {
		return Formation{}, err
	}
	if (prev == nil) == (c.formation == nil) {
		c.formation = &next
	}
	return *c.formation, nil
}

func (c *fakeCluster) Prepare(_ context.Context, id nodeid.ID, f Formation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("prepare", id); err != nil {
		return err
	}
	c.nodes[id].gen = f.Generation
	return nil
}

func (c *fakeCluster) SetState(_ context.Context, id nodeid.ID, s State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("set-"+string(s), id); err != nil {
		return err
	}
	n := c.nodes[id]
	if err := CheckTransition(n.state, s, false); err != nil {
		return err
	}
	n.state = s
	return nil
}

func (c *fakeCluster) SyncSchema(_ context.Context, ids []nodeid.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if err := c.call("sync", id); err != nil {
			return err
		}
		if c.nodes[id].state != Synchronize {
			return fmt.Errorf("node %d synced in state %s", id, c.nodes[id].state)
		}
	}
	return nil
}

// TestUpgradeResumesAfterEveryFailure: the procedure is interrupted before
// every single call it makes, once each; a new Run (a new coordinator)
// always finishes it, and no node ever moves backwards or enters
// use_post_raft_procedures before the schema sync of its state.
func TestUpgradeResumesAfterEveryFailure(t *testing.T) {
	newCluster := func() *fakeCluster {
		return &fakeCluster{nodes: map[nodeid.ID]*fakeNode{
			1: {state: UsePreRaft}, 2: {state: UsePreRaft}, 3: {state: UsePreRaft}}}
	}
	ctx := context.Background()
	// The calls of an undisturbed run.
	ref := newCluster()
	u := &Upgrade{Cluster: ref, MinBackoff: time.Millisecond, Timeout: 10 * time.Second}
	if err := u.Run(ctx); err != nil {
		t.Fatal(err)
	}
	total := len(ref.calls)
	t.Logf("an undisturbed upgrade makes %d calls: %v", total, ref.calls)
	for k := 0; k < total; k++ {
		c := newCluster()
		n := 0
		c.fail = func(call string, id nodeid.ID) error {
			n++
			if n == k+1 {
				return fmt.Errorf("coordinator died before %s(%d)", call, id)
			}
			return nil
		}
		// First coordinator: fails once, gives up quickly.
		u := &Upgrade{Cluster: c, MinBackoff: time.Millisecond, Timeout: 10 * time.Second,
			Hook: func(context.Context, Action) error {
				if n > k {
					return errors.New("stop")
				}
				return nil
			}}
		_ = u.Run(ctx)
		// Second coordinator finishes.
		u2 := &Upgrade{Cluster: c, MinBackoff: time.Millisecond, Timeout: 10 * time.Second}
		if err := u2.Run(ctx); err != nil {
			t.Fatalf("failure before call %d: resume: %v", k+1, err)
		}
		for id, nd := range c.nodes {
			if nd.state != UsePostRaft || nd.gen != 1 {
				t.Fatalf("failure before call %d: node %d ends in %s generation %d", k+1, id, nd.state, nd.gen)
			}
		}
	}
}

func TestUpgradeTimesOutNamingWhatItWaitsFor(t *testing.T) {
	c := &fakeCluster{nodes: map[nodeid.ID]*fakeNode{1: {state: UsePreRaft}}}
	var reports []string
	u := &Upgrade{Cluster: failingInfo{c}, MinBackoff: time.Millisecond, Timeout: 200 * time.Millisecond,
		Report: func(s string) { reports = append(reports, s) }}
	err := u.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not answering: node 2") {
		t.Fatalf("Run = %v", err)
	}
	if len(reports) == 0 || !strings.Contains(reports[0], "node 2") || reports[len(reports)-1] != "" {
		t.Fatalf("reports: %q", reports)
	}
}

// failingInfo adds a node 2 that never answers.
type failingInfo struct{ *fakeCluster }

func (f failingInfo) Nodes(ctx context.Context) ([]nodeid.ID, error) {
	ids, err := f.fakeCluster.Nodes(ctx)
	return append(ids, 2), err
}

func (f failingInfo) Info(ctx context.Context, id nodeid.ID) NodeInfo {
	if id == 2 {
		return NodeInfo{NodeID: 2, Err: errors.New("i/o timeout")}
	}
	return f.fakeCluster.Info(ctx, id)
}

func TestPlanRecovery(t *testing.T) {
	f1 := &Formation{Generation: 1, Seed: 1, Reason: "upgrade"}
	applied := func(n NodeInfo, idx uint64) NodeInfo { n.Applied = idx; return n }
	for _, tc := range []struct {
		name              string
		o                 Observation
		upgraded, healthy bool
		kind              RecoveryKind
		seed              nodeid.ID
		target            State
		err               string
	}{
		{name: "nobody in recovery",
			o:   Observation{Nodes: []NodeInfo{node(1, UsePostRaft, 1)}, Formation: f1},
			err: "no node is in group 0 recovery mode"},
		{name: "a node does not answer",
			o:   Observation{Nodes: []NodeInfo{node(1, Recovery, 1), {NodeID: 2, Err: errors.New("refused")}}, Formation: f1},
			err: "node 2: refused"},
		{name: "never formed: back to pre-Raft",
			o:    Observation{Nodes: []NodeInfo{node(1, Recovery, 0), node(2, UsePreRaft, 0)}},
			kind: RecoverPreRaft, target: UsePreRaft},
		{name: "healthy group: rejoin, post",
			o:       Observation{Nodes: []NodeInfo{node(1, UsePostRaft, 1), node(2, Recovery, 1), node(3, UsePostRaft, 1)}, Formation: f1},
			healthy: true, upgraded: true, kind: RecoverRejoin, target: UsePostRaft},
		{name: "healthy group mid-upgrade: rejoin, synchronize",
			o:       Observation{Nodes: []NodeInfo{node(1, Synchronize, 1), node(2, Recovery, 1), node(3, UsePostRaft, 1)}, Formation: f1},
			healthy: true, kind: RecoverRejoin, target: Synchronize},
		{name: "unhealthy group and nodes not in recovery",
			o:   Observation{Nodes: []NodeInfo{node(1, UsePostRaft, 1), node(2, Recovery, 1)}, Formation: f1},
			err: "node(s) 1 are not in recovery mode, but group 0 has no leader"},
		{name: "all in recovery: re-form from the highest applied index",
			o: Observation{Nodes: []NodeInfo{applied(node(1, Recovery, 1), 10), applied(node(2, Recovery, 1), 12),
				applied(node(3, Recovery, 1), 12)}, Formation: f1},
			upgraded: true, kind: RecoverReform, seed: 2, target: UsePostRaft},
		{name: "a newer generation beats a higher index",
			o: Observation{Nodes: []NodeInfo{applied(node(1, Recovery, 1), 100), applied(node(2, Recovery, 2), 3)},
				Formation: &Formation{Generation: 2, Seed: 2}},
			upgraded: true, kind: RecoverReform, seed: 2, target: UsePostRaft},
		{name: "stuck upgrade: re-form, then synchronize",
			o:    Observation{Nodes: []NodeInfo{node(2, Recovery, 0), node(3, Recovery, 0)}, Formation: f1},
			kind: RecoverReform, seed: 2, target: Synchronize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanRecovery(tc.o, tc.upgraded, tc.healthy)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("PlanRecovery = %+v, %v; want error %q", p, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tc.kind || p.Seed != tc.seed || p.Target != tc.target {
				t.Fatalf("plan %+v, want kind %s seed %d target %s", p, tc.kind, tc.seed, tc.target)
			}
			if p.Kind == RecoverReform && p.Formation.Generation != tc.o.Formation.Generation+1 {
				t.Fatalf("re-formation to generation %d", p.Formation.Generation)
			}
			if d := p.Describe(); !strings.Contains(d, string(tc.kind)) {
				t.Fatalf("description: %s", d)
			}
		})
	}
}
