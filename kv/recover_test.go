package kv

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/testutil"
	"go.etcd.io/raft/v3/raftpb"
)

// formFive forms a five-voter group.
func (c *tcluster) formFive() {
	t := c.t
	c.formThree(map[string][]byte{"boot": []byte("1")})
	for id := nodeid.ID(4); id <= 5; id++ {
		c.start(id, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.leader().rep.AddLearner(ctx, id); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if s := c.leader().rep.Status(); len(s.Voters) != 5 {
			return fmt.Errorf("voters %v learners %v", s.Voters, s.Learners)
		}
		return nil
	})
}

func hasKeys(n *tnode, prefix string, want int) error {
	kvs, err := n.rep.ScanLocal([]byte(prefix), []byte(prefix+"\xff"), 0, false)
	if err != nil || len(kvs) != want {
		return fmt.Errorf("node %d has %d of %d keys %q… (%v)", n.id, len(kvs), want, prefix, err)
	}
	return nil
}

// TestRecoverLostMajority loses three of five voters for good. The survivor
// with the highest applied index becomes the only voter (ForceNewConfig),
// keeps every write, serves reads and writes, survives a restart (the new
// state is on disk), and the other survivor, wiped, rejoins from its
// snapshot and is promoted; a new node joins too.
func TestRecoverLostMajority(t *testing.T) {
	c := newCluster(t, 0)
	c.formFive()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := c.leader().rep.Write(ctx, put(fmt.Sprintf("w%02d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	// Every voter has applied the writes (so either survivor may seed).
	for _, n := range c.nodes {
		testutil.SucceedsWithin(t, 10*time.Second, func() error { return hasKeys(n, "w", 20) })
	}
	// Nodes 3, 4 and 5 are lost for good; 1 and 2 have no majority.
	for id := nodeid.ID(3); id <= 5; id++ {
		c.stop(id)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := c.nodes[1].rep.Write(wctx, put("lost", "1")); err == nil {
		t.Fatal("a write succeeded without a majority")
	}
	cancel()

	states := map[nodeid.ID]RaftState{}
	for _, id := range []nodeid.ID{1, 2} {
		st, err := c.nodes[id].rep.RaftState()
		if err != nil {
			t.Fatal(err)
		}
		states[id] = st
	}
	seed, other := nodeid.ID(1), nodeid.ID(2)
	if states[2].Applied > states[1].Applied {
		seed, other = 2, 1
	}
	if _, err := c.nodes[seed].rep.ForceNewConfig(map[string][]byte{"\x20recovered": []byte("yes")}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		s := c.nodes[seed].rep.Status()
		if !s.IsLeader || !slices.Equal(s.Voters, []nodeid.ID{seed}) || len(s.Learners) != 0 {
			return fmt.Errorf("seed: leader=%v voters %v learners %v", s.IsLeader, s.Voters, s.Learners)
		}
		return nil
	})
	if err := hasKeys(c.nodes[seed], "w", 20); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[seed].rep.Write(ctx, put("after", "1")); err != nil {
		t.Fatal(err)
	}
	if v, found, err := c.nodes[seed].eng.Local().Get([]byte("recovered")); err != nil || !found || string(v) != "yes" {
		t.Fatalf("local key written with the recovery: %q %v %v", v, found, err)
	}

	// Crash safety: the new configuration is what the disk says.
	dir := c.stop(seed)
	c.start(seed, dir)
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if s := c.nodes[seed].rep.Status(); !s.IsLeader || !slices.Equal(s.Voters, []nodeid.ID{seed}) {
			return fmt.Errorf("restarted seed: leader=%v voters %v", s.IsLeader, s.Voters)
		}
		return nil
	})
	if err := c.nodes[seed].rep.Write(ctx, put("after-restart", "1")); err != nil {
		t.Fatal(err)
	}

	// The other survivor is wiped and added back.
	if err := c.nodes[other].rep.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := hasKeys(c.nodes[other], "w", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[seed].rep.AddLearner(ctx, other); err != nil {
		t.Fatal(err)
	}
	// A new node joins as well.
	c.start(6, "")
	if err := c.nodes[seed].rep.AddLearner(ctx, 6); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		if s := c.nodes[seed].rep.Status(); len(s.Voters) != 3 {
			return fmt.Errorf("voters %v learners %v", s.Voters, s.Learners)
		}
		return nil
	})
	for _, id := range []nodeid.ID{other, 6} {
		n := c.nodes[id]
		testutil.SucceedsWithin(t, 10*time.Second, func() error {
			if err := hasKeys(n, "w", 20); err != nil {
				return err
			}
			_, ok, err := n.rep.Get(ctx, []byte("after-restart"))
			if err != nil || !ok {
				return fmt.Errorf("node %d: after-restart %v %v", id, ok, err)
			}
			return nil
		})
	}
	// The group has a majority again without the seed.
	c.stop(seed)
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return c.nodes[other].rep.Write(wctx, put("without-seed", "1"))
	})
}

func ccEntry(t *testing.T, index, term uint64, typ raftpb.ConfChangeType, id uint64) raftpb.Entry {
	t.Helper()
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: typ, NodeID: id}}}
	data, err := cc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raftpb.Entry{Type: raftpb.EntryConfChangeV2, Index: index, Term: term, Data: data}
}

// TestForcedConfigEntries: the configuration the recovery starts from is
// the one the committed entries lead to (a committed, unapplied promotion of
// a dead learner must not survive), the uncommitted tail is dropped, and a
// seed that is a learner becomes a voter.
func TestForcedConfigEntries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cs       raftpb.ConfState
		entries  []raftpb.Entry // after index 10 (applied)
		commit   uint64
		wantLast uint64
		wantCCs  int
	}{
		{
			name: "committed promotion of a dead learner, uncommitted tail",
			cs:   raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
			entries: []raftpb.Entry{
				ccEntry(t, 11, 2, raftpb.ConfChangeAddNode, 4),
				{Index: 12, Term: 2},
				{Index: 13, Term: 2, Data: []byte("uncommitted")},
			},
			commit: 12, wantLast: 15, wantCCs: 3, // remove 2, 3, 4 after index 12
		},
		{
			name: "committed, unapplied addition of a node that is now dead",
			cs:   raftpb.ConfState{Voters: []uint64{1, 2, 3}},
			entries: []raftpb.Entry{
				ccEntry(t, 11, 2, raftpb.ConfChangeAddLearnerNode, 6),
				ccEntry(t, 12, 2, raftpb.ConfChangeAddNode, 6),
			},
			commit: 12, wantLast: 15, wantCCs: 3, // remove 2, 3, 6
		},
		{
			name:   "seed is a learner",
			cs:     raftpb.ConfState{Voters: []uint64{2, 3, 4}, Learners: []uint64{1}},
			commit: 10, wantLast: 14, wantCCs: 4, // add 1, remove 2, 3, 4
		},
		{
			name:   "already the only voter",
			cs:     raftpb.ConfState{Voters: []uint64{1}},
			commit: 10, wantLast: 11, wantCCs: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := loaded{
				hs:      raftpb.HardState{Term: 3, Vote: 2, Commit: tc.commit},
				trunc:   truncatedState{Index: 10, Term: 2},
				applied: appliedState{Index: 10, Term: 2, ConfState: tc.cs},
				entries: tc.entries,
			}
			ents, hs, err := forcedConfigEntries(l, 1)
			if err != nil {
				t.Fatal(err)
			}
			if hs.Commit != tc.wantLast || ents[len(ents)-1].Index != tc.wantLast || ents[0].Index != tc.commit+1 {
				t.Fatalf("entries %d..%d, commit %d; want %d..%d", ents[0].Index, ents[len(ents)-1].Index, hs.Commit, tc.commit+1, tc.wantLast)
			}
			n := 0
			for _, e := range ents {
				if e.Term != 3 {
					t.Fatalf("entry %d has term %d, want the current term 3", e.Index, e.Term)
				}
				if e.Type == raftpb.EntryConfChangeV2 {
					n++
				}
			}
			if n != tc.wantCCs {
				t.Fatalf("%d configuration changes, want %d", n, tc.wantCCs)
			}
			var committed []raftpb.Entry
			for _, e := range tc.entries {
				if e.Index <= tc.commit {
					committed = append(committed, e)
				}
			}
			cs, err := configAfter(tc.cs, append(committed, ents...), hs.Commit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cs.Voters, []uint64{1}) || len(cs.Learners) != 0 {
				t.Fatalf("final configuration %v", cs)
			}
		})
	}
}
