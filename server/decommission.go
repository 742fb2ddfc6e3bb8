package server

import (
	"context"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
)

// Decommissioning, as the Raft leader runs it:
//
//  1. `kvnode node decommission ID…` reaches any node, which forwards it to
//     the leader. There, under decomMu, the quorum rule (liveness.Check)
//     is evaluated on linearizable reads of every liveness record and the
//     group's configuration; if it refuses, nothing is written. Otherwise
//     one atomic batch of conditional puts marks every target
//     decommissioning.
//  2. The leader's decommission loop (every 500ms, also under decomMu)
//     removes decommissioning nodes from the data group one at a time, in
//     liveness.Check.RemovalOrder, each only while liveness.Check.CanRemove
//     allows it (so a node that dies meanwhile makes it wait instead of
//     losing quorum). If the leader itself is to be removed, it hands
//     leadership to another active, live voter first and the next leader
//     goes on. The promotion gate (allowPromote) never promotes a
//     decommissioning learner.
//  3. A decommissioning node that is no longer a member is marked
//     decommissioned (a conditional put).
//
// The loop runs on whichever node leads, so a decommission survives the
// CLI going away and leader changes. Recommissioning (also on the leader,
// under decomMu) is allowed only while the node is still a member.

const decommissionEvery = 500 * time.Millisecond

// decommissionLoop runs on every node and acts while it leads the data
// group; while the node drains it also keeps leadership away from it.
func (s *Server) decommissionLoop(rep *kv.Replica, self int32) {
	t := time.NewTicker(decommissionEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopC:
			return
		case <-t.C:
		}
		if !rep.Status().IsLeader {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s.draining.Load() {
			s.transferLeadershipAway(ctx, rep)
		} else if h := s.cfg.TestingHoldDecommission; h == nil || !h.Load() {
			s.decommissionStep(ctx, rep, self)
		}
		cancel()
	}
}

// groupCheck builds the quorum rule's inputs from linearizable reads. raw
// holds each record's stored bytes, for conditional puts.
func (s *Server) groupCheck(ctx context.Context, rep *kv.Replica) (c liveness.Check, recs []liveness.Record, raw map[int32][]byte, err error) {
	start, end := liveness.Span()
	kvs, err := rep.Scan(ctx, start, end, 0, false)
	if err != nil {
		return liveness.Check{}, nil, nil, err
	}
	st := rep.Status()
	now := time.Now()
	c = liveness.Check{Records: map[int32]liveness.Record{}, MaxVoters: rep.MaxVoters()}
	raw = map[int32][]byte{}
	for _, e := range kvs {
		r, err := liveness.Decode(e.Value)
		if err != nil {
			return liveness.Check{}, nil, nil, err
		}
		c.Records[r.NodeID], raw[r.NodeID] = r, e.Value
		recs = append(recs, r)
	}
	for _, v := range st.Voters {
		c.Voters = append(c.Voters, int32(v))
	}
	for _, l := range st.Learners {
		c.Learners = append(c.Learners, int32(l))
	}
	c.Live = func(id int32) bool { r, ok := c.Records[id]; return ok && r.IsLive(now) }
	return c, recs, raw, nil
}

func (s *Server) decommissionStep(ctx context.Context, rep *kv.Replica, self int32) {
	lc := s.lc()
	lc.decomMu.Lock()
	defer lc.decomMu.Unlock()
	c, recs, _, err := s.groupCheck(ctx, rep)
	if err != nil {
		return
	}
	var leaving []int32
	for _, r := range recs {
		if r.Membership == liveness.Decommissioning {
			leaving = append(leaving, r.NodeID)
		}
	}
	for _, id := range c.RemovalOrder(leaving) {
		member := slices.Contains(c.Voters, id) || slices.Contains(c.Learners, id)
		if !member {
			if _, err := liveness.SetMembership(ctx, rep, nil, id, liveness.Decommissioned,
				[]liveness.Membership{liveness.Decommissioning}, nil); err != nil {
				s.log.Warn("decommission: could not mark a removed node decommissioned; will retry", "node", id, "err", err)
				return
			}
			s.log.Info("decommission: node is decommissioned", "node", id)
			if g := s.gossipOrNil(); g != nil {
				_ = g.Forget(id) // fine if it is still live: it will be refused
			}
			continue
		}
		if err := c.CanRemove(id); err != nil {
			if time.Since(lc.lastWarn) > 10*time.Second {
				lc.lastWarn = time.Now()
				s.log.Warn("decommission: waiting before removing a node from the data Raft group", "node", id, "reason", err)
			}
			continue
		}
		if id == self {
			s.log.Info("decommission: this node leads and is being decommissioned; handing leadership over")
			s.transferLeadershipAway(ctx, rep)
			return
		}
		if err := rep.RemoveMember(ctx, uint64(id)); err != nil {
			s.log.Warn("decommission: removing a node from the data Raft group failed; will retry", "node", id, "err", err)
			return
		}
		s.log.Info("decommission: removed node from the data Raft group", "node", id)
		return // one configuration change per step; re-read the state next time
	}
}

// transferLeadershipAway moves Raft leadership to an up-to-date voter that
// is live, active and not draining, if there is one.
func (s *Server) transferLeadershipAway(ctx context.Context, rep *kv.Replica) {
	st := rep.Status()
	if !st.IsLeader || len(st.Voters) < 2 {
		return
	}
	good := func(uint64) bool { return true }
	if nl := s.lc().nl.Load(); nl != nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		recs, err := nl.Records(rctx)
		cancel()
		if err == nil {
			now := time.Now()
			byID := map[uint64]liveness.Record{}
			for _, r := range recs {
				byID[uint64(r.NodeID)] = r
			}
			good = func(id uint64) bool {
				r, ok := byID[id]
				return !ok || (r.IsLive(now) && !r.Draining && r.Membership == liveness.Active)
			}
		}
	}
	rep.HandOffLeadership(ctx, good)
}

// --- RPC handlers ---

// readyReplica returns the replica and liveness of a started node, or an
// Unavailable RPC error.
func (s *Server) readyReplica() (*kv.Replica, *liveness.NodeLiveness, error) {
	lc := s.lc()
	rep, nl := lc.rep.Load(), lc.nl.Load()
	if rep == nil || nl == nil {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.New("this node has not joined a cluster or is still starting"), "retry in a moment, or ask another node"), codes.Unavailable)
	}
	if lc.leftCluster.Load() {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.Newf("node %d is decommissioned and no longer part of the cluster", s.NodeID()), "ask another node"), codes.FailedPrecondition)
	}
	if st := rep.Status(); len(st.Voters) > 0 && !slices.Contains(st.Voters, st.NodeID) && !slices.Contains(st.Learners, st.NodeID) {
		return nil, nil, nodeapi.WithCode(errors.WithHint(
			errors.Newf("node %d was removed from the data Raft group", st.NodeID), "ask another node"), codes.FailedPrecondition)
	}
	return rep, nl, nil
}

// forwardToLeader sends a membership request to the Raft leader unless
// this node leads; handled reports whether it was forwarded.
func (s *Server) forwardToLeader(ctx context.Context, rep *kv.Replica, method membershipCall, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, bool, error) {
	// Leadership may move while we look; retry briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := rep.Status()
		if st.IsLeader {
			return nil, false, nil
		}
		if st.Leader != 0 && !req.Forwarded {
			if addr, ok := s.resolve(st.Leader); ok {
				fwd := *req
				fwd.Forwarded = true
				resp, err := method(ctx, addr, &fwd)
				return resp, true, err
			}
		}
		if time.Now().After(deadline) || req.Forwarded {
			return nil, true, nodeapi.WithCode(errors.WithHint(
				errors.New("no Raft leader of the data group is known"), "retry; if it persists, check that a majority of nodes is up"), codes.Unavailable)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
}

func (s *Server) decommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return s.changeMembership(ctx, req, s.node.Decommission, liveness.Decommissioning)
}

func (s *Server) recommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return s.changeMembership(ctx, req, s.node.Recommission, liveness.Active)
}

// changeMembership validates and applies a decommission (to =
// Decommissioning) or a recommission (to = Active) on the leader, as one
// atomic batch: on any error nothing is written.
// membershipCall is the client's Decommission or Recommission.
type membershipCall func(context.Context, string, *nodeapi.MembershipRequest, ...grpc.CallOption) (*nodeapi.MembershipResponse, error)

func (s *Server) changeMembership(ctx context.Context, req *nodeapi.MembershipRequest, method membershipCall, to liveness.Membership) (*nodeapi.MembershipResponse, error) {
	rep, _, err := s.readyReplica()
	if err != nil {
		return nil, err
	}
	if resp, forwarded, err := s.forwardToLeader(ctx, rep, method, req); forwarded {
		return resp, err
	}
	lc := s.lc()
	lc.decomMu.Lock()
	defer lc.decomMu.Unlock()
	ids := slices.Compact(slices.Sorted(slices.Values(req.NodeIDs)))
	for attempt := 0; attempt < 10; attempt++ {
		c, _, raw, err := s.groupCheck(ctx, rep)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
		var ops []kvpb.Op
		if to == liveness.Decommissioning {
			if err := c.Validate(ids); err != nil {
				return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
			}
			if err := s.g0.ValidateDecommission(ctx, c, ids); err != nil {
				return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
			}
		}
		for _, id := range ids {
			r, ok := c.Records[id]
			if !ok {
				return nil, nodeapi.WithCode(errors.WithHint(errors.Newf("node %d does not exist", id),
					"`kvnode node status` lists the IDs of the cluster's nodes; nothing was changed"), codes.NotFound)
			}
			next := r
			switch {
			case r.Membership == to || (to == liveness.Decommissioning && r.Membership == liveness.Decommissioned):
				continue // already there (or further): nothing to do
			case to == liveness.Active && r.Membership == liveness.Decommissioned:
				return nil, nodeapi.WithCode(errors.WithHint(
					errors.Newf("node %d is decommissioned; a finished decommission cannot be reversed", id),
					"node IDs are never reused: start the machine with a new, empty --store so that it joins as a new node; nothing was changed"), codes.FailedPrecondition)
			case to == liveness.Active && !slices.Contains(c.Voters, id) && !slices.Contains(c.Learners, id):
				return nil, nodeapi.WithCode(errors.WithHint(
					errors.Newf("node %d was already removed from the data Raft group; its decommission cannot be reversed", id),
					"start the machine with a new, empty --store so that it joins as a new node; nothing was changed"), codes.FailedPrecondition)
			}
			next.Membership = to
			next.UpdatedAt = max(time.Now().UnixNano(), r.UpdatedAt+1)
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: liveness.Key(id), Value: next.Encode(), Expected: raw[id]})
		}
		if len(ops) == 0 {
			return s.membershipResponse(ctx, ids), nil
		}
		err = rep.Write(ctx, ops)
		var cf *kvpb.ConditionFailedError
		switch {
		case err == nil:
			s.log.Info("membership changed", "nodes", ids, "membership", to)
			return s.membershipResponse(ctx, ids), nil
		case errors.As(err, &cf), errors.Is(err, kvpb.ErrAmbiguous):
			continue // a record changed (a heartbeat), or unknown outcome: read again and redo
		default:
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
	}
	return nil, nodeapi.WithCode(errors.WithHint(errors.New("the liveness records kept changing"), "retry"), codes.Aborted)
}

func (s *Server) membershipResponse(ctx context.Context, ids []int32) *nodeapi.MembershipResponse {
	rows, _ := s.clusterStatus(ctx)
	resp := &nodeapi.MembershipResponse{}
	for _, r := range rows {
		if slices.Contains(ids, r.NodeID) {
			resp.Nodes = append(resp.Nodes, r)
		}
	}
	return resp
}

func (s *Server) getLiveness(ctx context.Context, req *nodeapi.LivenessRequest) (*nodeapi.LivenessResponse, error) {
	rep, _, err := s.readyReplica()
	if err != nil {
		return nil, err
	}
	rec, found, err := liveness.Get(ctx, rep, req.NodeID)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.LivenessResponse{Found: found, Record: rec}, nil
}

func (s *Server) drain(ctx context.Context, _ *nodeapi.DrainRequest) (*nodeapi.DrainResponse, error) {
	if _, _, err := s.readyReplica(); err != nil {
		return nil, err
	}
	open, err := s.drainNode(ctx)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Internal)
	}
	return &nodeapi.DrainResponse{NodeID: s.NodeID(), OpenConnections: open}, nil
}

func (s *Server) nodeStatus(ctx context.Context, _ *nodeapi.NodeStatusRequest) (*nodeapi.NodeStatusResponse, error) {
	if _, _, err := s.readyReplica(); err != nil {
		return nil, err
	}
	rows, stale := s.clusterStatus(ctx)
	return &nodeapi.NodeStatusResponse{AnsweredBy: s.NodeID(), Stale: stale, Nodes: rows}, nil
}
