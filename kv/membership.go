package kv

// Membership: learners, promotion, removal, demotion and leadership
// transfer.

import (
	"context"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/kvnode/kvnode/nodeid"
)

// ErrNotLeader is returned by membership changes on a non-leader; the
// leader's ID (if known) is in the error.
type ErrNotLeader struct{ Leader nodeid.ID }

func (e *ErrNotLeader) Error() string {
	return "this node is not the Raft leader"
}

// AddLearner adds nodeID to the group as a learner and waits until the
// change is applied here. Promotion to voter happens later, once it has
// caught up (see maybePromote). It must run on the leader.
func (r *Replica) AddLearner(ctx context.Context, nodeID nodeid.ID) error {
	return r.changeMembership(ctx, raftpb.ConfChangeAddLearnerNode, nodeID, func(s Status) bool {
		return slices.Contains(s.Learners, nodeID) || slices.Contains(s.Voters, nodeID)
	})
}

// RemoveMember removes nodeID from the group and waits until the change is
// applied here. It must run on the leader.
func (r *Replica) RemoveMember(ctx context.Context, nodeID nodeid.ID) error {
	return r.changeMembership(ctx, raftpb.ConfChangeRemoveNode, nodeID, func(s Status) bool {
		return !slices.Contains(s.Learners, nodeID) && !slices.Contains(s.Voters, nodeID)
	})
}

// DemoteVoter makes the voter nodeID a learner and waits until the change
// is applied here (a no-op if it is not a voter). It must run on the
// leader, and not for the leader itself (transfer leadership first).
func (r *Replica) DemoteVoter(ctx context.Context, nodeID nodeid.ID) error {
	return r.changeMembership(ctx, raftpb.ConfChangeAddLearnerNode, nodeID, func(s Status) bool {
		return !slices.Contains(s.Voters, nodeID)
	})
}

func (r *Replica) changeMembership(ctx context.Context, typ raftpb.ConfChangeType, nodeID nodeid.ID, done func(Status) bool) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		s := r.Status()
		if done(s) {
			return nil
		}
		if !s.IsLeader {
			return &ErrNotLeader{Leader: s.Leader}
		}
		req := confReq{
			cc:   raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: typ, NodeID: raftID(nodeID)}}},
			done: make(chan error, 1),
		}
		select {
		case r.confC <- req:
		case <-ctx.Done():
			return errors.Wrap(ctx.Err(), "membership change")
		case <-r.stopC:
			return errStopped
		}
		// Raft accepts one configuration change at a time and turns a
		// second one into an empty entry; poll and re-propose until ours
		// is in.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if done(r.Status()) {
				return nil
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return errors.Wrap(ctx.Err(), "membership change")
			case <-r.stopC:
				return errStopped
			}
		}
	}
}

// MaxVoters returns the configured voter limit.
func (r *Replica) MaxVoters() int { return r.cfg.MaxVoters }

// TransferLeadership asks Raft to move leadership to another voter (used
// when draining). It returns at once.
func (r *Replica) TransferLeadership(to nodeid.ID) {
	select {
	case r.reportC <- func() { r.rn.TransferLeader(raftID(to)) }:
	case <-r.stopC:
	}
}

// HandOffLeadership moves leadership away from this replica, if it leads
// and has another voter that eligible accepts (nil: every voter): to the
// eligible voter with the highest match index, the one that needs the least
// catching up. It waits until this replica no longer leads, up to 3 s or
// until ctx ends, and reports whether leadership moved. Used when a node
// drains or leaves, so the group does not wait an election timeout.
func (r *Replica) HandOffLeadership(ctx context.Context, eligible func(nodeID nodeid.ID) bool) bool {
	st := r.Status()
	if !st.IsLeader {
		return true
	}
	var best nodeid.ID
	var bestMatch uint64
	for _, v := range st.Voters {
		if v == st.NodeID || (eligible != nil && !eligible(v)) {
			continue
		}
		if best == 0 || st.Progress[v] > bestMatch {
			best, bestMatch = v, st.Progress[v]
		}
	}
	if best == 0 {
		return false
	}
	r.TransferLeadership(best)
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !r.Status().IsLeader {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		case <-r.stopC:
			return false
		}
	}
}
