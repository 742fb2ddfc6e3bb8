package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
)

// Recovery from a majority lost for good (`kvnode node recover`,
// docs/recovery.md): the data group, and group 0 with it, re-formed on the
// survivors. The node that receives the request coordinates:
//
//  1. Ask every node the local replica knows of (node records and the Raft
//     configuration, decommissioned ones left out) for its Raft state
//     (nodeapi.RecoverInfo). Those that do not answer are the dead.
//  2. Plan (planDataRecovery): the seed is the survivor with the highest
//     applied index; refuse if a majority of the voters answers (the
//     group is not lost), unless forced. Print it; a dry run stops here.
//  3. The seed makes itself the only voter (kv.Replica.ForceNewConfig),
//     writing a record of the recovery into its node-local keys in the
//     same batch, and elects itself.
//  4. Every other survivor wipes its data group state (kv.Replica.Wipe).
//  5. The seed marks the dead nodes decommissioned (nothing waits for them
//     any more: the upgrade, group 0's membership) and adds the survivors
//     back as learners; they get its snapshot and are promoted.
//  6. Once every survivor serves again, group 0, if it has no leader
//     either, is re-formed by its own recovery procedure (member.Recovery, started
//     by member.ReformAfterDataRecovery):
//     every survivor enters recovery, the seed of group 0 is chosen from
//     their group 0 state, a new generation is formed.
//  7. The seed's record is marked done.
//
// Every step is idempotent, and a recovery that stopped part-way is
// resumed by running the command again: the record on the seed says a
// recovery is under way, and the steps already done are skipped.

// recoveryRecordKey is the node-local key of the nodeapi.RecoveryRecord.
var recoveryRecordKey = []byte("recover/data")

// --- the participant's side ---

func (s *Server) localRecoverInfo() (*nodeapi.RecoverInfo, error) {
	rep := s.Replica()
	if rep == nil || s.NodeID() == 0 {
		return nil, errors.New("this node has not joined a cluster or is still starting")
	}
	st, err := rep.RaftState()
	if err != nil {
		return nil, err
	}
	info := &nodeapi.RecoverInfo{NodeID: s.NodeID(), Raft: st, Ready: s.lc().nl.Load() != nil && st.Applied > 0}
	if b, found, err := s.eng.Local().Get(recoveryRecordKey); err == nil && found {
		var r nodeapi.RecoveryRecord
		if json.Unmarshal(b, &r) == nil {
			info.Record = &r
		}
	}
	return info, nil
}

func (s *Server) recoverInfo(context.Context, *nodeapi.RecoverInfoRequest) (*nodeapi.RecoverInfo, error) {
	info, err := s.localRecoverInfo()
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return info, nil
}

func (s *Server) recoverApply(ctx context.Context, req *nodeapi.RecoverApplyRequest) (*nodeapi.RecoverApplyResponse, error) {
	rep := s.Replica()
	if rep == nil || s.NodeID() == 0 {
		return nil, nodeapi.WithCode(errors.New("this node has not joined a cluster or is still starting"), codes.Unavailable)
	}
	self := s.NodeID()
	var err error
	switch req.Action {
	case "reform":
		err = s.recoverReform(ctx, rep, req.Record)
	case "wipe":
		if req.Record.Seed == self {
			err = errors.AssertionFailedf("node %d is the seed of this recovery and must not wipe its state", self)
			break
		}
		var st kv.RaftState
		if st, err = rep.RaftState(); err == nil && st.Applied > 0 {
			s.log.Warn("recovery: wiping this node's data group state; it rejoins from the seed's snapshot", "seed", req.Record.Seed)
			err = rep.Wipe()
		}
	case "admit":
		err = s.recoverAdmit(ctx, rep, req.Record)
	case "done":
		req.Record.Done = true
		b, _ := json.Marshal(req.Record)
		err = s.eng.Local().Put(recoveryRecordKey, b)
	default:
		err = errors.Newf("unknown recovery step %q", req.Action)
	}
	if err != nil {
		return nil, nodeapi.WithCode(errors.Wrapf(err, "node %d: recovery step %s", self, req.Action), codes.Unavailable)
	}
	st, err := rep.RaftState()
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.RecoverApplyResponse{Raft: st}, nil
}

// recoverReform makes this node the data group's only voter and waits until
// it leads.
func (s *Server) recoverReform(ctx context.Context, rep *kv.Replica, rec nodeapi.RecoveryRecord) error {
	if rec.Seed != s.NodeID() {
		return errors.AssertionFailedf("asked to seed a recovery whose seed is node %d", rec.Seed)
	}
	b, _ := json.Marshal(rec)
	s.log.Warn("recovery: this node seeds the data group's re-formation; it becomes the only voter",
		"survivors", rec.Survivors, "dead", rec.Dead)
	if _, err := rep.ForceNewConfig(map[string][]byte{string(localEngineKey(recoveryRecordKey)): b}); err != nil {
		return err
	}
	return waitUntil(ctx, 30*time.Second, func() error {
		if st := rep.Status(); !st.IsLeader {
			return errors.Newf("node %d has not elected itself yet (term %d)", s.NodeID(), st.Term)
		}
		return nil
	})
}

// recoverAdmit, on the seed: the dead are decommissioned (they are no
// longer members), the survivors added back; it waits until the survivors
// are voters (or the group has its maximum of voters).
func (s *Server) recoverAdmit(ctx context.Context, rep *kv.Replica, rec nodeapi.RecoveryRecord) error {
	for _, id := range rec.Dead {
		if _, err := liveness.SetMembership(ctx, rep, nil, id, liveness.Decommissioned,
			[]liveness.Membership{liveness.Active, liveness.Decommissioning}, nil); err != nil {
			return errors.Wrapf(err, "marking node %d decommissioned", id)
		}
		if g := s.gossipOrNil(); g != nil {
			_ = g.Forget(id)
		}
	}
	for _, id := range rec.Survivors {
		if id == s.NodeID() {
			continue
		}
		if err := rep.AddLearner(ctx, uint64(id)); err != nil {
			return errors.Wrapf(err, "adding node %d back", id)
		}
	}
	return waitUntil(ctx, 60*time.Second, func() error {
		st := rep.Status()
		if len(st.Voters) >= rep.MaxVoters() {
			return nil
		}
		for _, id := range rec.Survivors {
			if slices.Contains(st.Voters, uint64(id)) {
				continue
			}
			if slices.Contains(st.Learners, uint64(id)) && !s.allowPromote(uint64(id)) {
				continue // decommissioning: it stays a learner
			}
			return errors.Newf("node %d is not a voter yet (voters %v, learners %v)", id, st.Voters, st.Learners)
		}
		return nil
	})
}

func localEngineKey(k []byte) []byte {
	return append([]byte{0x20}, k...) // storage.PrefixLocal
}

func waitUntil(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Wrap(err, "timed out")
		}
		select {
		case <-ctx.Done():
			return errors.Wrap(ctx.Err(), err.Error())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// --- the coordinator ---

// recoverNode is one node as the coordinator sees it.
type recoverNode struct {
	ID   int32
	Addr string
	Info *nodeapi.RecoverInfo // nil: no state reported
	Err  string
	// Starting: the node answers but cannot report its state yet (it is
	// still starting): it is not dead.
	Starting bool
}

// dataRecoveryPlan is what the coordinator will do.
type dataRecoveryPlan struct {
	Seed      *nodeapi.RecoverInfo
	Survivors []*nodeapi.RecoverInfo // the seed first
	Dead      []recoverNode
	// Resume: a recovery seeded by Seed is under way; its record says
	// what it decided.
	Resume bool
	Record nodeapi.RecoveryRecord
}

func (p dataRecoveryPlan) survivorIDs() []int32 {
	out := make([]int32, len(p.Survivors))
	for i, n := range p.Survivors {
		out[i] = n.NodeID
	}
	return out
}

func (p dataRecoveryPlan) deadIDs() []int32 {
	out := make([]int32, len(p.Dead))
	for i, n := range p.Dead {
		out[i] = n.ID
	}
	return out
}

// planDataRecovery decides the recovery from what every node answered.
func planDataRecovery(nodes []recoverNode, force bool) (dataRecoveryPlan, error) {
	var p dataRecoveryPlan
	for _, n := range nodes {
		if n.Starting {
			return p, errors.WithHintf(errors.Newf("node %d answers but cannot report its state yet: %s", n.ID, n.Err),
				"it is still starting: retry in a moment; nothing was changed")
		}
	}
	for _, n := range nodes {
		if n.Info == nil {
			p.Dead = append(p.Dead, n)
		} else {
			p.Survivors = append(p.Survivors, n.Info)
		}
	}
	slices.SortFunc(p.Survivors, func(a, b *nodeapi.RecoverInfo) int {
		return cmp.Or(
			cmp.Compare(b.Raft.Applied, a.Raft.Applied),
			cmp.Compare(b.Raft.Commit, a.Raft.Commit),
			cmp.Compare(b.Raft.LastTerm, a.Raft.LastTerm),
			cmp.Compare(b.Raft.LastIndex, a.Raft.LastIndex),
			cmp.Compare(a.NodeID, b.NodeID))
	})
	// A recovery under way is finished, from the seed it chose.
	for i, n := range p.Survivors {
		if n.Record != nil && !n.Record.Done && n.Record.Seed == n.NodeID {
			p.Resume, p.Record = true, *n.Record
			p.Survivors = append([]*nodeapi.RecoverInfo{n}, slices.Delete(slices.Clone(p.Survivors), i, i+1)...)
			break
		}
	}
	if len(p.Survivors) == 0 || p.Survivors[0].Raft.Applied == 0 {
		return p, errors.WithHint(errors.New("no node that answers holds the data group's state"),
			"start the surviving nodes on their stores and run this again; nothing was changed")
	}
	p.Seed = p.Survivors[0]
	if p.Resume {
		for _, id := range p.Record.Dead {
			if !slices.Contains(p.deadIDs(), id) {
				p.Dead = append(p.Dead, recoverNode{ID: id, Err: "dead at the recovery under way"})
			}
		}
		p.Record.Survivors = p.survivorIDs()
		p.Record.Dead = p.deadIDs()
		return p, nil
	}
	voters := p.Seed.Raft.Voters
	var live []uint64
	for _, v := range voters {
		if slices.ContainsFunc(p.Survivors, func(n *nodeapi.RecoverInfo) bool { return uint64(n.NodeID) == v }) {
			live = append(live, v)
		}
	}
	if len(live) > len(voters)/2 && !force {
		return p, errors.WithHintf(errors.Newf(
			"the data group has not lost its majority: %d of its %d voters answer (nodes %s)",
			len(live), len(voters), uint64List(live)),
			"`kvnode node recover` is for a majority lost for good. If writes fail, the voters may still be electing a leader: wait, and check `kvnode node status`; "+
				"remove dead nodes with `kvnode node decommission`. Only if the nodes that answer are not the ones that should survive, "+
				"pass --force (every node that does not answer must then never be started again on its store); nothing was changed")
	}
	p.Record = nodeapi.RecoveryRecord{Seed: p.Seed.NodeID, Survivors: p.survivorIDs(), Dead: p.deadIDs(), Time: time.Now().UnixNano()}
	return p, nil
}

func uint64List(ids []uint64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ", ")
}

// describe renders the plan: one line per survivor, the dead, and what may
// be lost.
func (p dataRecoveryPlan) describe() string {
	var b strings.Builder
	seed := p.Seed
	if p.Resume {
		fmt.Fprintf(&b, "a recovery seeded by node %d is under way; it is finished:\n", seed.NodeID)
	} else {
		fmt.Fprintf(&b, "data group recovery: node %d, the survivor with the highest applied index, becomes the seed\n", seed.NodeID)
	}
	b.WriteString("survivors:\n")
	for _, n := range p.Survivors {
		role := "wiped, rejoins from the seed's snapshot"
		if n == seed {
			role = "seed: becomes the only voter, then adds the others back"
		}
		leader := "no leader"
		if n.Raft.Leader != 0 {
			leader = fmt.Sprintf("leader %d", n.Raft.Leader)
		}
		fmt.Fprintf(&b, "  node %d: applied index %d, term %d, state %s (%s, commit %d, last index %d) -> %s\n",
			n.NodeID, n.Raft.Applied, n.Raft.Term, strings.TrimPrefix(n.Raft.Role, "State"), leader, n.Raft.Commit, n.Raft.LastIndex, role)
	}
	b.WriteString("dead (do not answer; marked decommissioned, never to return on their stores):\n")
	if len(p.Dead) == 0 {
		b.WriteString("  none\n")
	}
	for _, n := range p.Dead {
		fmt.Fprintf(&b, "  node %d at %s: %s\n", n.ID, cmp.Or(n.Addr, "unknown address"), n.Err)
	}
	if p.Resume {
		return b.String()
	}
	b.WriteString("what may be lost:\n")
	maxLast := seed.Raft.Commit
	for _, n := range p.Survivors {
		maxLast = max(maxLast, n.Raft.LastIndex)
	}
	if seed.Raft.Commit > seed.Raft.Applied {
		fmt.Fprintf(&b, "  (entries %d to %d are committed but not yet applied on the seed: they are kept and applied)\n", seed.Raft.Applied+1, seed.Raft.Commit)
	}
	if maxLast > seed.Raft.Commit {
		fmt.Fprintf(&b, "  entries %d to %d, in survivors' logs but not known to be committed, are discarded\n", seed.Raft.Commit+1, maxLast)
	}
	if len(p.Dead) > 0 {
		fmt.Fprintf(&b, "  entries above index %d that only the dead nodes (%s) may have had are lost: writes acknowledged only through them after that point\n",
			seed.Raft.Commit, group0.IDList(p.deadIDs()))
	} else {
		b.WriteString("  nothing: every member answers\n")
	}
	b.WriteString("every write a survivor acknowledged is kept (the seed has applied everything any survivor applied)\n")
	return b.String()
}

// recoverCluster is the coordinator (Recover RPC).
func (s *Server) recoverCluster(ctx context.Context, req *nodeapi.RecoverRequest) (*nodeapi.RecoverResponse, error) {
	if s.NodeID() == 0 || s.Replica() == nil {
		return nil, nodeapi.WithCode(errors.WithHint(
			errors.New("this node has not joined a cluster or is still starting"), "retry in a moment, or ask another node"), codes.Unavailable)
	}
	nodes, err := s.gatherRecoverInfo(ctx)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	plan, err := planDataRecovery(nodes, req.Force)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	resp := &nodeapi.RecoverResponse{Plan: plan.describe(), Seed: plan.Seed.NodeID, Survivors: plan.survivorIDs(), Dead: plan.deadIDs()}
	if req.DryRun {
		return resp, nil
	}
	s.log.Warn("running the recovery from a lost majority", "plan", resp.Plan)
	g0, err := s.executeDataRecovery(ctx, plan, nodes)
	if err != nil {
		return nil, nodeapi.WithCode(errors.WithHint(err,
			"the recovery stopped part-way; run `kvnode node recover` again: it finishes what was started"), codes.Unavailable)
	}
	resp.Done = true
	resp.Result = fmt.Sprintf("the data group was re-formed from node %d on node(s) %s; node(s) %s are decommissioned; %s",
		plan.Seed.NodeID, group0.IDList(resp.Survivors), cmp.Or(group0.IDList(resp.Dead), "none"), g0)
	s.log.Warn("recovery finished", "result", resp.Result)
	return resp, nil
}

// gatherRecoverInfo asks every node the local replica knows of, except
// those decommissioned, for its state, concurrently.
func (s *Server) gatherRecoverInfo(ctx context.Context) ([]recoverNode, error) {
	rep := s.Replica()
	// Where to find the nodes: the replicated node records (this node's
	// copy), gossip, and the --join addresses. A survivor wiped by a
	// recovery under way has no node records until its snapshot arrives.
	known := map[int32]string{}
	for id, r := range s.nodeRecords() {
		known[id] = r.ListenAddr
	}
	if g := s.gossipOrNil(); g != nil {
		for _, m := range g.Members() {
			if m.Meta.NodeID != 0 && m.Meta.ListenAddr != "" && m.Meta.ClusterID == s.ClusterID() {
				known[m.Meta.NodeID] = m.Meta.ListenAddr
			}
		}
	}
	for _, a := range s.otherJoinAddrs() {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if resp, err := s.node.Hello(cctx, a, &nodeapi.HelloRequest{}); err == nil &&
			resp.Bootstrapped && resp.ClusterID == s.ClusterID() && resp.NodeID != 0 {
			known[resp.NodeID] = a
		}
		cancel()
	}
	st := rep.Status()
	for _, v := range append(slices.Clone(st.Voters), st.Learners...) {
		if _, ok := known[int32(v)]; !ok {
			known[int32(v)] = ""
		}
	}
	known[s.NodeID()] = s.RPCAddr()
	var out []recoverNode
	for id := range known {
		if v, found, err := rep.GetLocal(liveness.Key(id)); err == nil && found {
			if r, err := liveness.Decode(v); err == nil && r.Membership == liveness.Decommissioned {
				continue
			}
		}
		out = append(out, recoverNode{ID: id})
	}
	slices.SortFunc(out, func(a, b recoverNode) int { return cmp.Compare(a.ID, b.ID) })
	var wg sync.WaitGroup
	for i := range out {
		n := &out[i]
		if n.ID == s.NodeID() {
			n.Addr = s.RPCAddr()
			info, err := s.localRecoverInfo()
			if err != nil {
				return nil, err
			}
			n.Info = info
			continue
		}
		addr := known[n.ID]
		if addr == "" {
			var ok bool
			if addr, ok = s.resolve(uint64(n.ID)); !ok {
				n.Err = "no known address"
				continue
			}
		}
		n.Addr = addr
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A node that has just restarted may still look down to a
			// cached connection in back-off: wait for the connection to
			// be ready (bounded) rather than take it for dead.
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			info, err := s.node.RecoverInfo(cctx, addr, &nodeapi.RecoverInfoRequest{}, grpc.WaitForReady(true))
			if err != nil {
				n.Err = err.Error()
				n.Starting = nodeapi.Code(err) == codes.Unavailable && !nodeapi.IsConnError(n.Err)
				return
			}
			if info.NodeID != n.ID {
				n.Err = fmt.Sprintf("node %d answers at this address", info.NodeID)
				return
			}
			n.Info = info
		}()
	}
	wg.Wait()
	return out, nil
}

func (s *Server) recoverStep(ctx context.Context, addr, action string, rec nodeapi.RecoveryRecord) (*nodeapi.RecoverApplyResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return s.node.RecoverApply(cctx, addr, &nodeapi.RecoverApplyRequest{Action: action, Record: rec})
}

// executeDataRecovery carries the plan out (steps 3 to 7) and says what
// became of group 0.
func (s *Server) executeDataRecovery(ctx context.Context, p dataRecoveryPlan, nodes []recoverNode) (string, error) {
	addrs := map[int32]string{}
	for _, n := range nodes {
		addrs[n.ID] = n.Addr
	}
	seed, rec := p.Seed.NodeID, p.Record
	seedAddr := addrs[seed]
	hook := func(step string) error {
		if h := s.cfg.Knobs.BeforeRecoverStep; h != nil {
			return h(step)
		}
		return nil
	}
	// 3. The seed becomes the only voter.
	members := p.Seed.Raft
	if !p.Resume {
		if err := hook("reform"); err != nil {
			return "", err
		}
		resp, err := s.recoverStep(ctx, seedAddr, "reform", rec)
		if err != nil {
			return "", err
		}
		members = resp.Raft
	}
	// 4. The others, unless the seed has them already, drop their state.
	for _, n := range p.Survivors[1:] {
		if slices.Contains(members.Voters, uint64(n.NodeID)) || slices.Contains(members.Learners, uint64(n.NodeID)) {
			continue
		}
		if err := hook("wipe"); err != nil {
			return "", err
		}
		if _, err := s.recoverStep(ctx, addrs[n.NodeID], "wipe", rec); err != nil {
			return "", err
		}
	}
	// 5. The dead are decommissioned, the survivors added back.
	if err := hook("admit"); err != nil {
		return "", err
	}
	if _, err := s.recoverStep(ctx, seedAddr, "admit", rec); err != nil {
		return "", err
	}
	// 6. Every survivor serves again; then group 0.
	if err := waitUntil(ctx, 2*time.Minute, func() error {
		for _, id := range rec.Survivors {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			info, err := s.node.RecoverInfo(cctx, addrs[id], &nodeapi.RecoverInfoRequest{})
			cancel()
			if err != nil {
				return errors.Wrapf(err, "node %d", id)
			}
			if !info.Ready {
				return errors.Newf("node %d does not serve yet (applied index %d)", id, info.Raft.Applied)
			}
		}
		return nil
	}); err != nil {
		return "", errors.Wrap(err, "waiting for the survivors to serve again")
	}
	if err := hook("group0"); err != nil {
		return "", err
	}
	g0, err := s.g0.ReformAfterDataRecovery(ctx, seedAddr, rec.Survivors, addrs)
	if err != nil {
		return "", errors.Wrap(err, "group 0")
	}
	// 7. Done.
	if err := hook("done"); err != nil {
		return "", err
	}
	if _, err := s.recoverStep(ctx, seedAddr, "done", rec); err != nil {
		return "", err
	}
	return g0, nil
}
