package kv

import (
	"math"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/storage"
)

// Recovery of a group that lost a majority of its voters for good
// (`kvnode node recover`, package kv/loqrecovery; docs/recovery.md).
//
// Raft cannot leave such a state by itself: no configuration change
// commits without the lost majority. The way out is etcd's
// --force-new-cluster (etcdserver's restartAsStandaloneNode) and
// CockroachDB's `debug recover`: one survivor, the seed, rewrites its own
// Raft state so that it is the group's only voter, and every other
// survivor throws its state away and joins again from the seed's
// snapshot. Concretely (ForceNewConfig, on the seed):
//
//  1. The log is cut after the commit index: what this node does not know to
//     be committed is discarded (an uncommitted entry was never
//     acknowledged by this node; a write acknowledged by a dead node may be
//     lost, which the dry run says).
//  2. Configuration changes are appended after it, in the seed's current
//     term, and the commit index is moved to the last of them: leave a
//     joint configuration if one is in effect, make the seed a voter if it
//     is a learner, remove every other member. The configuration they
//     start from is the one the committed entries lead to, computed with
//     Raft's own confchange package, so a committed but not yet applied
//     change (say, a promotion of a dead learner) cannot bring a dead
//     voter back after the removals.
//  3. One synced Pebble batch writes it all (with whatever node-local keys
//     the caller adds, such as a record of the recovery): a crash leaves
//     either the old state, and the recovery is run again, or the new one.
//  4. The RawNode is rebuilt from the disk. Raft hands the committed entries
//     over as usual and the loop applies them through ApplyConfChange; the
//     configuration ends as {seed}, and after an election timeout the seed
//     elects itself.
//
// Every other survivor's replica is wiped (Wipe): its Raft state and
// replicated data, in one synced batch, the store's identity kept. It then
// waits, like a node that has just joined, for the seed to add it as a
// learner and send it a snapshot. Its node ID is unchanged: the Raft group
// removed it (step 2) and adds it back with an empty log, which Raft
// allows; the ID is not given to anyone else.
//
// Both run on the Ready loop, between two Readys, when everything the
// loop has handed over is on disk. Pending proposals end as ambiguous
// (their entries may have been kept or discarded); pending reads are issued
// again in the new configuration.

// RaftState is the part of a replica's Raft state that recovery decides
// from.
type RaftState struct {
	NodeID      nodeid.ID `json:"node_id"`
	Applied     uint64    `json:"applied"`
	AppliedTerm uint64    `json:"applied_term"`
	// Commit is the highest index this node knows to be committed; Raft
	// may not have handed the entries between Applied and Commit over yet.
	Commit    uint64    `json:"commit"`
	LastIndex uint64    `json:"last_index"`
	LastTerm  uint64    `json:"last_term"`
	Term      uint64    `json:"term"`
	Leader    nodeid.ID `json:"leader"`
	// Role is Raft's: StateFollower, StateLeader, StatePreCandidate, ...
	Role     string      `json:"role"`
	Voters   []nodeid.ID `json:"voters"`
	Learners []nodeid.ID `json:"learners"`
}

// RaftState returns the replica's Raft state, read on the Ready loop.
func (r *Replica) RaftState() (RaftState, error) {
	var out RaftState
	err := r.onLoop(func() error {
		st := r.rn.Status()
		last, _ := r.store.LastIndex()
		lastTerm, _ := r.store.Term(last)
		out = RaftState{
			NodeID: r.cfg.NodeID, Applied: r.applied.Index, AppliedTerm: r.applied.Term,
			Commit: max(st.Commit, r.applied.Index), LastIndex: max(last, r.applied.Index), LastTerm: max(lastTerm, r.applied.Term),
			Term: st.Term, Leader: nodeID(st.Lead), Role: st.RaftState.String(),
			Voters:   nodeIDs(r.applied.ConfState.Voters),
			Learners: nodeIDs(r.applied.ConfState.Learners),
		}
		return nil
	})
	return out, err
}

// onLoop runs fn on the Ready loop and returns its error.
func (r *Replica) onLoop(fn func() error) error {
	done := make(chan error, 1)
	select {
	case r.reportC <- func() { done <- fn() }:
	case <-r.stopC:
		return errStopped
	}
	select {
	case err := <-done:
		return err
	case <-r.doneC:
		return errStopped
	}
}

// ForceNewConfig makes this replica the only voter of its group, keeping
// every entry it knows to be committed (see the comment at the top of this
// file). local holds node-local engine keys (raw, with their prefix) written
// in the same batch. It returns the index of the last configuration change
// appended. Running it again on its result changes nothing but the term of
// a few no-op configuration changes.
func (r *Replica) ForceNewConfig(local map[string][]byte) (uint64, error) {
	var last uint64
	err := r.onLoop(func() error {
		l, err := loadRaftState(r.eng)
		if err != nil {
			return err
		}
		if l.applied.Index == 0 {
			return errors.New("this replica holds no state (it has joined but never received a snapshot); it cannot seed the group")
		}
		ents, hs, err := forcedConfigEntries(l, raftID(r.cfg.NodeID))
		if err != nil {
			return err
		}
		b := r.eng.DB.NewBatch()
		defer b.Close()
		if len(ents) > 0 {
			if err := b.DeleteRange(logKey(ents[0].Index), keyLogPrefixEnd, nil); err != nil {
				return err
			}
		}
		for i := range ents {
			data, err := ents[i].Marshal()
			if err != nil {
				return err
			}
			_ = b.Set(logKey(ents[i].Index), data, nil)
		}
		if err := setHardState(b, hs); err != nil {
			return err
		}
		for k, v := range local {
			if len(k) == 0 || k[0] != storage.PrefixLocal {
				return errors.AssertionFailedf("recovery may write node-local keys only, not %q", k)
			}
			_ = b.Set([]byte(k), v, nil)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return errors.Wrap(err, "writing the recovered Raft state")
		}
		last = hs.Commit
		r.log.Warn("recovery: this replica is now its group's only voter", "commit", hs.Commit,
			"term", hs.Term, "conf_changes", len(ents))
		return r.reloadLocked()
	})
	return last, err
}

// forcedConfigEntries computes step 1 and 2: the entries that replace the
// log after the commit index, and the hard state that commits them.
func forcedConfigEntries(l loaded, self uint64) ([]raftpb.Entry, raftpb.HardState, error) {
	hs := l.hs
	last := l.trunc.Index + uint64(len(l.entries))
	commit := min(max(hs.Commit, l.applied.Index), last)
	if commit < l.applied.Index {
		return nil, hs, errors.AssertionFailedf("applied index %d beyond the log's last index %d", l.applied.Index, last)
	}
	// The configuration the committed entries lead to.
	var committed []raftpb.Entry
	for _, e := range l.entries {
		if e.Index > l.applied.Index && e.Index <= commit {
			committed = append(committed, e)
		}
	}
	cs, err := configAfter(l.applied.ConfState, committed, commit)
	if err != nil {
		return nil, hs, err
	}
	var ccs []raftpb.ConfChangeV2
	if len(cs.VotersOutgoing) > 0 {
		ccs = append(ccs, raftpb.ConfChangeV2{}) // leave the joint configuration
	}
	if !slices.Contains(cs.Voters, self) {
		ccs = append(ccs, raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: self}}})
	}
	others := map[uint64]bool{}
	for _, set := range [][]uint64{cs.Voters, cs.Learners, cs.VotersOutgoing, cs.LearnersNext} {
		for _, id := range set {
			if id != self {
				others[id] = true
			}
		}
	}
	for _, id := range slices.Sorted(func(yield func(uint64) bool) {
		for id := range others {
			if !yield(id) {
				return
			}
		}
	}) {
		ccs = append(ccs, raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode, NodeID: id}}})
	}
	if hs.Term == 0 {
		hs.Term = max(l.applied.Term, 1)
	}
	ents := make([]raftpb.Entry, len(ccs))
	for i, cc := range ccs {
		data, err := cc.Marshal()
		if err != nil {
			return nil, hs, err
		}
		ents[i] = raftpb.Entry{Type: raftpb.EntryConfChangeV2, Term: hs.Term, Index: commit + 1 + uint64(i), Data: data}
	}
	// Check that the result is what we promise, with Raft's own rules.
	final, err := configAfter(cs, ents, commit+uint64(len(ents)))
	if err != nil {
		return nil, hs, errors.Wrap(err, "the recovery's configuration changes")
	}
	if len(final.Voters) != 1 || final.Voters[0] != self || len(final.Learners)+len(final.VotersOutgoing)+len(final.LearnersNext) != 0 {
		return nil, hs, errors.AssertionFailedf("recovery would leave configuration %v, not {%d}", final, self)
	}
	// Entries after commit are dropped: replace the log's tail from there.
	if len(ents) == 0 {
		// Already the only voter: still drop the uncommitted tail, with an
		// empty entry that marks where the new log goes on.
		ents = []raftpb.Entry{{Type: raftpb.EntryNormal, Term: hs.Term, Index: commit + 1}}
	}
	hs.Commit = ents[len(ents)-1].Index
	return ents, hs, nil
}

// configAfter applies the configuration changes among ents to cs, as Raft
// would.
func configAfter(cs raftpb.ConfState, ents []raftpb.Entry, lastIndex uint64) (raftpb.ConfState, error) {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: lastIndex}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return raftpb.ConfState{}, errors.Wrap(err, "restoring the Raft configuration")
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	for _, e := range ents {
		var cc raftpb.ConfChangeV2
		switch e.Type {
		case raftpb.EntryConfChange:
			var c1 raftpb.ConfChange
			if err := c1.Unmarshal(e.Data); err != nil {
				return raftpb.ConfState{}, err
			}
			cc = c1.AsV2()
		case raftpb.EntryConfChangeV2:
			if err := cc.Unmarshal(e.Data); err != nil {
				return raftpb.ConfState{}, err
			}
		default:
			continue
		}
		var err error
		switch autoLeave, enter := cc.EnterJoint(); {
		case cc.LeaveJoint():
			cfg, prs, err = chg.LeaveJoint()
		case enter:
			cfg, prs, err = chg.EnterJoint(autoLeave, cc.Changes...)
		default:
			cfg, prs, err = chg.Simple(cc.Changes...)
		}
		if err != nil {
			return raftpb.ConfState{}, errors.Wrapf(err, "configuration change at index %d", e.Index)
		}
		chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	}
	return chg.Tracker.ConfState(), nil
}

// Wipe throws away this replica's Raft state and replicated data, keeping
// the store's identity and node-local keys, in one synced batch; the
// replica then waits, empty, for a leader to send it a snapshot.
func (r *Replica) Wipe() error {
	return r.onLoop(func() error {
		b := r.eng.DB.NewBatch()
		defer b.Close()
		raftLo := []byte("\x01raft-")
		if err := b.DeleteRange(raftLo, storage.PrefixEnd(raftLo), nil); err != nil {
			return err
		}
		lo, hi := storage.ReplicatedSpan()
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
		r.readCache.holdAll() // until reloadLocked's clear (readCache.hold)
		if err := b.Commit(pebble.Sync); err != nil {
			return errors.Wrap(err, "wiping the Raft state")
		}
		r.log.Warn("recovery: wiped this replica's Raft state and data; waiting for a snapshot from the leader")
		return r.reloadLocked()
	})
}

// reloadLocked rebuilds the RawNode and the loop's state from the disk.
// It runs on the loop.
func (r *Replica) reloadLocked() error {
	l, err := loadRaftState(r.eng)
	if err != nil {
		return err
	}
	st, rn, err := openRaft(r.cfg, l)
	if err != nil {
		return err
	}
	r.failPending()
	r.store, r.rn = st, rn
	r.applied, r.readyApplied, r.trunc = l.applied, l.applied.Index, l.trunc
	r.appliedIdx.Store(l.applied.Index)
	r.commitIdx.Store(max(l.hs.Commit, l.applied.Index))
	r.confEpoch++
	r.clearLease("Raft state reloaded")
	r.startedAt = r.clock.Now()
	r.lastPersist = l.trunc.Index + uint64(len(l.entries))
	r.forwarded = forwardedIDs{}
	r.lostCheckTerm = 0
	r.rows.clear()
	r.readCache.clear()
	r.staged.dropUpTo(math.MaxUint64)
	// Reads waiting for an index of the old state are issued again.
	for id, b := range r.readBatches {
		delete(r.readBatches, id)
		r.reads = append(r.reads, b.reqs...)
	}
	r.reads = append(r.reads, r.readyReads...)
	r.readyReads = nil
	r.publishStatus()
	return nil
}
