package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
)

// The group 0 methods of the kvnode.Node service. Every one is idempotent,
// so a coordinator that crashed, or a second one, can call it again.

// hasGroup0 reports whether this binary's release has group 0 (2.0 on).
// A node running as an older release (in-process tests) behaves exactly
// as that release: no group 0, no group 0 RPCs.
func (s *Server) hasGroup0() bool { return !s.binVersion.Less(clusterversion.V2_0.Version()) }

// requireGroup0 answers a group 0 RPC on a node without group 0 as an old
// binary would: Unimplemented.
func (s *Server) requireGroup0() error {
	if s.hasGroup0() {
		return nil
	}
	return status.Errorf(codes.Unimplemented, "unknown method for service kvnode.Node (release %s has no group 0)", s.binVersion)
}

func toInt32s(ids []uint64) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// group0Info is this node's answer to Group0State.
func (s *Server) group0Info(ctx context.Context, probe bool) *nodeapi.Group0StateResponse {
	g := &s.g0
	r := &nodeapi.Group0StateResponse{NodeID: s.NodeID(), Binary: s.binVersion.String(), State: string(g.State()),
		Generation: g.gen.Load(), Isolated: g.isolated.Load(), CatalogStateID: g.catalogStateID.Load(),
		Waiting: g.waitingFor()}
	if exec := s.executor(); exec != nil {
		r.Digest = exec.Catalog().Digest()
	}
	if rep := g.rep.Load(); rep != nil {
		st := rep.Status()
		r.Applied, r.Leader = st.Applied, int32(st.Leader)
		r.Voters, r.Learners = toInt32s(st.Voters), toInt32s(st.Learners)
		r.StateID, _ = group0.LocalStateID(rep)
		if r.Isolated {
			r.Leader = 0 // an isolated replica's view of leadership means nothing
		}
		if probe && !r.Isolated {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := group0.Read(pctx, rep)
			cancel()
			r.ProbeOK = err == nil
			if err != nil {
				r.ProbeError = err.Error()
			}
		}
	}
	return r
}

func (s *Server) group0State(ctx context.Context, req *nodeapi.Group0StateRequest) (*nodeapi.Group0StateResponse, error) {
	if err := s.requireGroup0(); err != nil {
		return nil, err
	}
	if s.NodeID() == 0 {
		return nil, nodeapi.WithCode(errors.New("this node has not joined a cluster yet"), codes.Unavailable)
	}
	return s.group0Info(ctx, req.Probe), nil
}

func (s *Server) group0Prepare(ctx context.Context, req *nodeapi.Group0PrepareRequest) (*nodeapi.Group0PrepareResponse, error) {
	if err := s.requireGroup0(); err != nil {
		return nil, err
	}
	resp, err := s.group0PrepareLocal(ctx, req.Formation)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return resp, nil
}

// group0PrepareLocal makes this node a member of group 0 of f's generation.
//   - Already a (non-isolated) member of that generation: make sure the
//     leader's configuration has us (a no-op if it has).
//   - The seed: create the generation from what this node has (its old
//     group 0 state in a recovery, else its catalog).
//   - Anyone else: wipe the group 0 Raft state of another generation,
//     start an empty replica, and ask the leader to add us as a learner;
//     the leader sends a snapshot and later promotes us.
func (s *Server) group0PrepareLocal(ctx context.Context, f group0.Formation) (*nodeapi.Group0PrepareResponse, error) {
	g := &s.g0
	g.mu.Lock()
	defer g.mu.Unlock()
	self := s.NodeID()
	resp := &nodeapi.Group0PrepareResponse{NodeID: self, Generation: f.Generation}
	if cur, err := s.currentFormation(ctx); err != nil {
		return nil, err
	} else if cur.Generation != f.Generation {
		return nil, errors.Newf("group 0 generation %d is not current (the formation record names %s)", f.Generation, cur)
	}
	if g.gen.Load() == f.Generation {
		if g.isolated.Load() {
			// Back from recovery into the same generation: the log is
			// intact, rejoin as it is.
			s.stopGroup0ReplicaLocked()
			if err := s.startGroup0ReplicaLocked(f.Generation, false); err != nil {
				return nil, err
			}
		}
		if st := g.rep.Load().Status(); slices.Contains(st.Voters, uint64(self)) || slices.Contains(st.Learners, uint64(self)) {
			// The configuration we applied has us; the leader's may be
			// newer, but it would have to remove us, which only
			// decommissioning does.
			return resp, nil
		}
		return resp, s.joinGroup0Locked(ctx, f)
	}
	if self == f.Seed {
		data, err := s.group0SeedDataLocked(fmt.Sprintf("group 0 generation %d created by node %d (%s)", f.Generation, self, f.Reason))
		if err != nil {
			return nil, err
		}
		if err := s.bootstrapGroup0Locked(f.Generation, data, true); err != nil {
			return nil, err
		}
		s.log.Info("created group 0", "generation", f.Generation, "reason", f.Reason)
		return resp, nil
	}
	if err := s.wipeGroup0Locked(); err != nil {
		return nil, err
	}
	if err := s.openGroup0EngineLocked(); err != nil {
		return nil, err
	}
	if err := g.eng.Local().Put(group0GenKey, fmt.Appendf(nil, "%d", f.Generation)); err != nil {
		return nil, err
	}
	if err := s.startGroup0ReplicaLocked(f.Generation, false); err != nil {
		return nil, err
	}
	return resp, s.joinGroup0Locked(ctx, f)
}

// currentFormation reads the formation record linearizably.
func (s *Server) currentFormation(ctx context.Context) (group0.Formation, error) {
	rep := s.Replica()
	if rep == nil {
		return group0.Formation{}, errors.New("this node has not started yet")
	}
	f, _, found, err := s.readFormation(ctx, rep)
	if err != nil {
		return group0.Formation{}, err
	}
	if !found {
		return group0.Formation{}, errors.New("group 0 has not been formed (no formation record)")
	}
	return f, nil
}

// joinGroup0Locked asks a member of f's generation (the seed first, then
// any node) to have the leader add this node as a learner.
func (s *Server) joinGroup0Locked(ctx context.Context, f group0.Formation) error {
	return s.sendGroup0Join(ctx, f, false)
}

// sendGroup0Join sends this node's Group0Join (lostReplica: the removal
// request) to a member of f's generation, the seed first, then any node;
// members forward it to the leader.
func (s *Server) sendGroup0Join(ctx context.Context, f group0.Formation, lostReplica bool) error {
	self := s.NodeID()
	var tried []string
	candidates := []int32{f.Seed}
	for id := range s.nodeRecords() {
		if id != f.Seed && id != self {
			candidates = append(candidates, id)
		}
	}
	for _, id := range candidates {
		addr, ok := s.resolve(uint64(id))
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.node.Group0Join(cctx, addr, &nodeapi.Group0JoinRequest{NodeID: self, Generation: f.Generation, LostReplica: lostReplica})
		cancel()
		if err == nil {
			s.log.Info("group 0 added this node as a learner", "generation", f.Generation, "leader", resp.Leader)
			return nil
		}
		tried = append(tried, fmt.Sprintf("node %d: %v", id, err))
	}
	return errors.Newf("no member of group 0 generation %d added this node: %s", f.Generation, strings.Join(tried, "; "))
}

func (s *Server) group0Join(ctx context.Context, req *nodeapi.Group0JoinRequest) (*nodeapi.Group0JoinResponse, error) {
	if err := s.requireGroup0(); err != nil {
		return nil, err
	}
	g := &s.g0
	rep := g.rep.Load()
	if rep == nil || g.isolated.Load() || g.gen.Load() != req.Generation {
		return nil, nodeapi.WithCode(errors.Newf("node %d is not a member of group 0 generation %d", s.NodeID(), req.Generation), codes.Unavailable)
	}
	if data := s.lc().rep.Load(); data != nil {
		if v, found, err := data.GetLocal(liveness.Key(req.NodeID)); err == nil && found {
			if rec, err := liveness.Decode(v); err == nil && rec.Membership != liveness.Active {
				return nil, nodeapi.WithCode(errors.Newf("node %d is %s and may not join group 0", req.NodeID, rec.Membership), codes.FailedPrecondition)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := rep.Status()
		if st.IsLeader {
			break
		}
		if st.Leader != 0 && !req.Forwarded {
			addr, ok := s.resolve(st.Leader)
			if !ok {
				return nil, nodeapi.WithCode(errors.Newf("no address for group 0 leader node %d", st.Leader), codes.Unavailable)
			}
			fwd := *req
			fwd.Forwarded = true
			return s.node.Group0Join(ctx, addr, &fwd)
		}
		if time.Now().After(deadline) || req.Forwarded {
			return nil, nodeapi.WithCode(errors.WithHint(errors.New("group 0 has no leader"),
				"a majority of group 0's voters must be up; if it is lost for good, see docs/recovery.md"), codes.Unavailable)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, nodeapi.WithCode(ctx.Err(), codes.DeadlineExceeded)
		}
	}
	if req.LostReplica {
		if err := s.removeLostGroup0Member(ctx, rep, req.NodeID); err != nil {
			return nil, err
		}
		return &nodeapi.Group0JoinResponse{Leader: s.NodeID()}, nil
	}
	if err := rep.AddLearner(ctx, uint64(req.NodeID)); err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.Group0JoinResponse{Leader: s.NodeID()}, nil
}

// removeLostGroup0Member removes node id, which lost its group 0 replica,
// from group 0: a learner at once, a voter only if group 0 keeps a live
// majority without it (otherwise only the recovery procedure can help).
func (s *Server) removeLostGroup0Member(ctx context.Context, rep *kv.Replica, id int32) error {
	st := rep.Status()
	if id == s.NodeID() {
		return nodeapi.WithCode(errors.Newf("node %d leads group 0 and cannot have lost its replica", id), codes.FailedPrecondition)
	}
	if !slices.Contains(st.Voters, uint64(id)) && !slices.Contains(st.Learners, uint64(id)) {
		return nil
	}
	data := s.lc().rep.Load()
	if data == nil {
		return nodeapi.WithCode(errors.New("this node has not started yet"), codes.Unavailable)
	}
	c, err := group0Check(data, st, rep.MaxVoters())
	if err != nil {
		return nodeapi.WithCode(err, codes.Unavailable)
	}
	if err := c.CanRemove(id); err != nil {
		return nodeapi.WithCode(errors.WithHint(errors.Wrapf(err,
			"node %d lost its group 0 replica but is still a voter of group 0", id),
			"bring the other voters back, or follow docs/recovery.md"), codes.FailedPrecondition)
	}
	if err := rep.RemoveMember(ctx, uint64(id)); err != nil {
		return nodeapi.WithCode(err, codes.Unavailable)
	}
	s.log.Info("group 0: removed a member that lost its replica; it joins again as a learner", "node", id)
	return nil
}

func (s *Server) group0SetState(_ context.Context, req *nodeapi.Group0SetStateRequest) (*nodeapi.Group0SetStateResponse, error) {
	if err := s.requireGroup0(); err != nil {
		return nil, err
	}
	to := group0.State(req.State)
	if !to.Valid() {
		return nil, nodeapi.WithCode(errors.Newf("unknown group 0 upgrade state %q", req.State), codes.InvalidArgument)
	}
	g := &s.g0
	if to == group0.Synchronize || to == group0.UsePostRaft {
		if g.rep.Load() == nil || g.isolated.Load() {
			return nil, nodeapi.WithCode(errors.Newf(
				"node %d is not a member of group 0 and cannot enter %s", s.NodeID(), to), codes.FailedPrecondition)
		}
	}
	if to == group0.UsePostRaft {
		// Enter the post-Raft procedures with the catalog up to date.
		if err := s.catchUpCatalog(); err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
	}
	if err := s.setGroup0State(to, req.FromRecovery); err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	return &nodeapi.Group0SetStateResponse{NodeID: s.NodeID(), State: string(g.State())}, nil
}

// group0Sync waits until this node's group 0 replica has applied state
// req.StateID (bounded by the caller's deadline), applies it to the
// catalog, and reports the catalog.
func (s *Server) group0Sync(ctx context.Context, req *nodeapi.Group0SyncRequest) (*nodeapi.Group0SyncResponse, error) {
	if err := s.requireGroup0(); err != nil {
		return nil, err
	}
	g := &s.g0
	if g.isolated.Load() {
		// In recovery: it will not apply anything; do not make the caller
		// (a DDL waiting for every member) wait for it.
		return nil, nodeapi.WithCode(errors.Newf("node %d is in group 0 recovery mode", s.NodeID()), codes.FailedPrecondition)
	}
	for {
		rep := g.rep.Load()
		if rep != nil && !g.isolated.Load() {
			id, err := group0.LocalStateID(rep)
			if err != nil {
				return nil, nodeapi.WithCode(err, codes.Internal)
			}
			if id >= req.StateID && id > 0 {
				if err := s.catchUpCatalog(); err != nil {
					return nil, nodeapi.WithCode(err, codes.Internal)
				}
				break
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, nodeapi.WithCode(errors.Newf("node %d has not applied group 0 state %d yet", s.NodeID(), req.StateID), codes.DeadlineExceeded)
		case <-s.stopC:
			return nil, nodeapi.WithCode(errStopping, codes.Unavailable)
		}
	}
	resp := &nodeapi.Group0SyncResponse{NodeID: s.NodeID(), CatalogStateID: g.catalogStateID.Load()}
	exec := s.executor()
	if exec == nil {
		return resp, nil
	}
	resp.Digest = exec.Catalog().Digest()
	// Compare the catalog with group 0's schema as this replica holds it
	// now, not with a target the caller computed: DDL through group 0 may
	// go on meanwhile, and only this node can read both at one state
	// (issue 16, D10). The apply loop may merge a newer state between the
	// read and the digest; read again then.
	for attempt := 0; attempt < 20; attempt++ {
		rep := g.rep.Load()
		if rep == nil {
			break
		}
		snap, err := group0.ReadLocal(rep)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Internal)
		}
		if err := s.applyGroup0Snapshot(snap); err != nil {
			return nil, nodeapi.WithCode(err, codes.Internal)
		}
		descs, err := decodeDescriptors(snap.Tables)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Internal)
		}
		gd, err := schemaDigest(descs)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Internal)
		}
		resp.CatalogStateID, resp.Digest = g.catalogStateID.Load(), exec.Catalog().Digest()
		resp.Group0StateID, resp.Group0Digest = snap.StateID, gd
		if resp.Digest == gd {
			break
		}
	}
	return resp, nil
}

// enterRecovery is UPDATE system.local SET value = 'recovery' WHERE key =
// 'group0_upgrade_state': it persists the state and stops DDL on this node
// at once. Like ScyllaDB, the node is then restarted, after which its group
// 0 replica (if any) runs isolated.
func (s *Server) enterRecovery() error {
	if err := s.setGroup0State(group0.Recovery, false); err != nil {
		return err
	}
	s.log.Warn("this node entered group 0 recovery mode: DDL is refused; restart the node, then follow docs/recovery.md",
		"node", s.NodeID())
	return nil
}
