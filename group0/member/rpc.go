package member

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// The group 0 methods of the kvnode.Node service (the server's node
// service hands them here). Every one is idempotent, so a coordinator that
// crashed, or a second one, can call it again.

// info is this node's answer to Group0State.
func (m *Member) info(ctx context.Context, probe bool) *nodeapi.Group0StateResponse {
	r := &nodeapi.Group0StateResponse{NodeID: m.node.NodeID(), Binary: m.cfg.Binary.String(), State: string(m.State()),
		Generation: m.gen.Load(), Isolated: m.isolated.Load(), CatalogStateID: m.catalogStateID.Load(),
		Waiting: m.waitingFor()}
	if cat := m.catalog(); cat != nil {
		r.Digest = cat.Digest()
	}
	if rep := m.rep.Load(); rep != nil {
		st := rep.Status()
		r.Applied, r.Leader = st.Applied, st.Leader
		// Never null on the wire: every release sent [] for none.
		r.Voters, r.Learners = append([]nodeid.ID{}, st.Voters...), append([]nodeid.ID{}, st.Learners...)
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

// Group0State implements the kvnode.Node method.
func (m *Member) Group0State(ctx context.Context, req *nodeapi.Group0StateRequest) (*nodeapi.Group0StateResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	if m.node.NodeID() == 0 {
		return nil, nodeapi.WithCode(errors.New("this node has not joined a cluster yet"), codes.Unavailable)
	}
	return m.info(ctx, req.Probe), nil
}

// Group0Prepare implements the kvnode.Node method.
func (m *Member) Group0Prepare(ctx context.Context, req *nodeapi.Group0PrepareRequest) (*nodeapi.Group0PrepareResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	resp, err := m.prepareLocal(ctx, req.Formation)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return resp, nil
}

// prepareLocal makes this node a member of group 0 of f's generation.
//   - Already a (non-isolated) member of that generation: make sure the
//     leader's configuration has us (a no-op if it has).
//   - The seed: create the generation from what this node has (its old
//     group 0 state in a recovery, else its catalog).
//   - Anyone else: wipe the group 0 Raft state of another generation,
//     start an empty replica, and ask the leader to add us as a learner;
//     the leader sends a snapshot and later promotes us.
func (m *Member) prepareLocal(ctx context.Context, f group0.Formation) (*nodeapi.Group0PrepareResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	self := m.node.NodeID()
	resp := &nodeapi.Group0PrepareResponse{NodeID: self, Generation: f.Generation}
	if cur, err := m.currentFormation(ctx); err != nil {
		return nil, err
	} else if cur.Generation != f.Generation {
		return nil, errors.Newf("group 0 generation %d is not current (the formation record names %s)", f.Generation, cur)
	}
	if m.gen.Load() == f.Generation {
		if m.isolated.Load() {
			// Back from recovery into the same generation: the log is
			// intact, rejoin as it is.
			m.stopReplicaLocked()
			if err := m.startReplicaLocked(f.Generation, false); err != nil {
				return nil, err
			}
		}
		if st := m.rep.Load().Status(); slices.Contains(st.Voters, self) || slices.Contains(st.Learners, self) {
			// The configuration we applied has us; the leader's may be
			// newer, but it would have to remove us, which only
			// decommissioning does.
			return resp, nil
		}
		return resp, m.sendJoin(ctx, f, false)
	}
	if self == f.Seed {
		data, err := m.seedDataLocked(fmt.Sprintf("group 0 generation %d created by node %d (%s)", f.Generation, self, f.Reason))
		if err != nil {
			return nil, err
		}
		if err := m.bootstrapLocked(f.Generation, data, true); err != nil {
			return nil, err
		}
		m.log.Info("created group 0", "generation", f.Generation, "reason", f.Reason)
		return resp, nil
	}
	if err := m.wipeLocked(); err != nil {
		return nil, err
	}
	if err := m.openEngineLocked(); err != nil {
		return nil, err
	}
	if err := m.eng.Local().Put(genKey, fmt.Appendf(nil, "%d", f.Generation)); err != nil {
		return nil, err
	}
	if err := m.startReplicaLocked(f.Generation, false); err != nil {
		return nil, err
	}
	return resp, m.sendJoin(ctx, f, false)
}

// currentFormation reads the formation record linearizably.
func (m *Member) currentFormation(ctx context.Context) (group0.Formation, error) {
	rep := m.node.Replica()
	if rep == nil {
		return group0.Formation{}, errors.New("this node has not started yet")
	}
	f, _, found, err := readFormation(ctx, rep)
	if err != nil {
		return group0.Formation{}, err
	}
	if !found {
		return group0.Formation{}, errors.New("group 0 has not been formed (no formation record)")
	}
	return f, nil
}

// sendJoin sends this node's Group0Join (lostReplica: the removal request)
// to a member of f's generation, the seed first, then any node; members
// forward it to the leader, which adds this node as a learner.
func (m *Member) sendJoin(ctx context.Context, f group0.Formation, lostReplica bool) error {
	self := m.node.NodeID()
	var tried []string
	candidates := []nodeid.ID{f.Seed}
	for id := range m.node.NodeRecords() {
		if id != f.Seed && id != self {
			candidates = append(candidates, id)
		}
	}
	for _, id := range candidates {
		addr, ok := m.node.Resolve(id)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := m.cfg.Client.Group0Join(cctx, addr, &nodeapi.Group0JoinRequest{NodeID: self, Generation: f.Generation, LostReplica: lostReplica})
		cancel()
		if err == nil {
			m.log.Info("group 0 added this node as a learner", "generation", f.Generation, "leader", resp.Leader)
			return nil
		}
		tried = append(tried, fmt.Sprintf("node %d: %v", id, err))
	}
	return errors.Newf("no member of group 0 generation %d added this node: %s", f.Generation, strings.Join(tried, "; "))
}

// Group0Join implements the kvnode.Node method: a member forwards the
// request to group 0's leader, which adds the node as a learner.
func (m *Member) Group0Join(ctx context.Context, req *nodeapi.Group0JoinRequest) (*nodeapi.Group0JoinResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	self := m.node.NodeID()
	rep := m.rep.Load()
	if rep == nil || m.isolated.Load() || m.gen.Load() != req.Generation {
		return nil, nodeapi.WithCode(errors.Newf("node %d is not a member of group 0 generation %d", self, req.Generation), codes.Unavailable)
	}
	if data := m.node.LiveReplica(); data != nil {
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
			addr, ok := m.node.Resolve(st.Leader)
			if !ok {
				return nil, nodeapi.WithCode(errors.Newf("no address for group 0 leader node %d", st.Leader), codes.Unavailable)
			}
			fwd := *req
			fwd.Forwarded = true
			return m.cfg.Client.Group0Join(ctx, addr, &fwd)
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
		if err := m.removeLost(ctx, rep, req.NodeID); err != nil {
			return nil, err
		}
		return &nodeapi.Group0JoinResponse{Leader: self}, nil
	}
	if err := rep.AddLearner(ctx, req.NodeID); err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.Group0JoinResponse{Leader: self}, nil
}

// removeLost removes node id, which lost its group 0 replica, from group
// 0: a learner at once, a voter only if group 0 keeps a live majority
// without it (otherwise only the recovery procedure can help).
func (m *Member) removeLost(ctx context.Context, rep *kv.Replica, id nodeid.ID) error {
	st := rep.Status()
	if id == m.node.NodeID() {
		return nodeapi.WithCode(errors.Newf("node %d leads group 0 and cannot have lost its replica", id), codes.FailedPrecondition)
	}
	if !slices.Contains(st.Voters, id) && !slices.Contains(st.Learners, id) {
		return nil
	}
	data := m.node.LiveReplica()
	if data == nil {
		return nodeapi.WithCode(errors.New("this node has not started yet"), codes.Unavailable)
	}
	c, err := quorumCheck(data, st, rep.MaxVoters())
	if err != nil {
		return nodeapi.WithCode(err, codes.Unavailable)
	}
	if err := c.CanRemove(id); err != nil {
		return nodeapi.WithCode(errors.WithHint(errors.Wrapf(err,
			"node %d lost its group 0 replica but is still a voter of group 0", id),
			"bring the other voters back, or follow docs/recovery.md"), codes.FailedPrecondition)
	}
	if err := rep.RemoveMember(ctx, id); err != nil {
		return nodeapi.WithCode(err, codes.Unavailable)
	}
	m.log.Info("group 0: removed a member that lost its replica; it joins again as a learner", "node", id)
	return nil
}

// Group0SetState implements the kvnode.Node method.
func (m *Member) Group0SetState(ctx context.Context, req *nodeapi.Group0SetStateRequest) (*nodeapi.Group0SetStateResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	to := group0.State(req.State)
	if !to.Valid() {
		return nil, nodeapi.WithCode(errors.Newf("unknown group 0 upgrade state %q", req.State), codes.InvalidArgument)
	}
	if req.Leave {
		if to != group0.UsePreRaft {
			return nil, nodeapi.WithCode(errors.Newf("a node leaves group 0 for %s, not %s", group0.UsePreRaft, to), codes.InvalidArgument)
		}
		if err := m.Leave(ctx); err != nil {
			return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
		}
		return &nodeapi.Group0SetStateResponse{NodeID: m.node.NodeID(), State: string(m.State())}, nil
	}
	if to == group0.Synchronize || to == group0.UsePostRaft {
		if m.rep.Load() == nil || m.isolated.Load() {
			return nil, nodeapi.WithCode(errors.Newf(
				"node %d is not a member of group 0 and cannot enter %s", m.node.NodeID(), to), codes.FailedPrecondition)
		}
	}
	if to == group0.UsePostRaft {
		// Enter the post-Raft procedures with the catalog up to date.
		if err := m.CatchUpCatalog(); err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
	}
	if err := m.setState(to, req.FromRecovery); err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	return &nodeapi.Group0SetStateResponse{NodeID: m.node.NodeID(), State: string(m.State())}, nil
}

// Group0Sync implements the kvnode.Node method: it waits until this node's
// group 0 replica has applied state req.StateID (bounded by the caller's
// deadline), applies it to the catalog, and reports the catalog.
func (m *Member) Group0Sync(ctx context.Context, req *nodeapi.Group0SyncRequest) (*nodeapi.Group0SyncResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	self := m.node.NodeID()
	if m.isolated.Load() {
		// In recovery: it will not apply anything; do not make the caller
		// (a DDL waiting for every member) wait for it.
		return nil, nodeapi.WithCode(errors.Newf("node %d is in group 0 recovery mode", self), codes.FailedPrecondition)
	}
	for {
		rep := m.rep.Load()
		if rep != nil && !m.isolated.Load() {
			id, err := group0.LocalStateID(rep)
			if err != nil {
				return nil, nodeapi.WithCode(err, codes.Internal)
			}
			if id >= req.StateID && id > 0 {
				if err := m.CatchUpCatalog(); err != nil {
					return nil, nodeapi.WithCode(err, codes.Internal)
				}
				break
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, nodeapi.WithCode(errors.Newf("node %d has not applied group 0 state %d yet", self, req.StateID), codes.DeadlineExceeded)
		case <-m.cfg.Stopper.ShouldQuiesce():
			return nil, nodeapi.WithCode(ErrStopping, codes.Unavailable)
		}
	}
	resp := &nodeapi.Group0SyncResponse{NodeID: self, CatalogStateID: m.catalogStateID.Load()}
	cat := m.catalog()
	if cat == nil {
		return resp, nil
	}
	resp.Digest = cat.Digest()
	// Compare the catalog with group 0's schema as this replica holds it
	// now, not with a target the caller computed: DDL through group 0 may
	// go on meanwhile, and only this node can read both at one state
	// (issue 16, D10). The apply loop may merge a newer state between the
	// read and the digest; read again then.
	for attempt := 0; attempt < 20; attempt++ {
		rep := m.rep.Load()
		if rep == nil {
			break
		}
		snap, err := group0.ReadLocal(rep)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Internal)
		}
		if err := m.applySnapshot(snap); err != nil {
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
		resp.CatalogStateID, resp.Digest = m.catalogStateID.Load(), cat.Digest()
		resp.Group0StateID, resp.Group0Digest = snap.StateID, gd
		if resp.Digest == gd {
			break
		}
	}
	return resp, nil
}
