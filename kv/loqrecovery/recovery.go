package loqrecovery

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/storage"
)

// Node is what the recovery needs of the node it runs on.
type Node interface {
	NodeID() nodeid.ID
	ClusterID() string
	// RPCAddr is the node's own RPC address.
	RPCAddr() string
	// Replica is the node's data replica (nil before it has joined).
	Replica() *kv.Replica
	// Serving reports whether the node's liveness runs: it serves.
	Serving() bool
	// NodeRecords is every node record in this node's copy of the data
	// group (possibly stale; none on a survivor wiped by a recovery under
	// way until the seed's snapshot arrives).
	NodeRecords() map[nodeid.ID]nodeapi.NodeRecord
	// JoinAddrs are the --join addresses other than the node's own.
	JoinAddrs() []string
	// GossipAddrs maps the node IDs gossip knows in this cluster to their
	// RPC addresses.
	GossipAddrs() map[nodeid.ID]string
	// ForgetGossip drops gossip's record of a node marked decommissioned.
	ForgetGossip(id nodeid.ID)
	// Resolve maps a node ID to its RPC address.
	Resolve(id nodeid.ID) (string, bool)
	// AllowPromote is the data group's promotion gate.
	AllowPromote(id nodeid.ID) bool
}

// Group0 is group 0's side of the recovery (group0/member.Member):
// re-form group 0 on the survivors once the data group serves again,
// and say what became of it.
type Group0 interface {
	ReformAfterDataRecovery(ctx context.Context, seedAddr string, survivors []nodeid.ID, addrs map[nodeid.ID]string) (string, error)
}

// LocalStore is the node's own durable key-value store (storage.Local),
// where the seed keeps its record of the recovery.
type LocalStore interface {
	Get(key []byte) ([]byte, bool, error)
	Put(key, value []byte) error
}

// Config is what New needs.
type Config struct {
	Node   Node
	Group0 Group0
	Local  LocalStore
	Client *nodeapi.Client
	Log    *slog.Logger
	// BeforeStep, a testing knob, runs on the coordinator before each
	// step ("reform", "wipe", "admit", "group0", "done"); an error stops
	// the recovery there.
	BeforeStep func(step string) error
}

// Recovery is this node's part of the recovery: the participant's side
// (Info, Apply) and the coordinator (Recover), the three kvnode.Node
// methods of `kvnode node recover`.
type Recovery struct {
	cfg Config
}

// New returns the node's recovery; it starts nothing.
func New(cfg Config) *Recovery { return &Recovery{cfg: cfg} }

// recordKey is the node-local key of the nodeapi.RecoveryRecord.
var recordKey = []byte("recover/data")

// errNotStarted is what a node that cannot take part yet answers.
func errNotStarted() error {
	return errors.New("this node has not joined a cluster or is still starting")
}

// --- the participant's side ---

func (r *Recovery) localInfo() (*nodeapi.RecoverInfo, error) {
	n := r.cfg.Node
	rep := n.Replica()
	if rep == nil || n.NodeID() == 0 {
		return nil, errNotStarted()
	}
	st, err := rep.RaftState()
	if err != nil {
		return nil, err
	}
	info := &nodeapi.RecoverInfo{NodeID: n.NodeID(), Raft: st, Ready: n.Serving() && st.Applied > 0}
	if b, found, err := r.cfg.Local.Get(recordKey); err == nil && found {
		var rec nodeapi.RecoveryRecord
		if json.Unmarshal(b, &rec) == nil {
			info.Record = &rec
		}
	}
	return info, nil
}

// Info answers kvnode.Node's RecoverInfo: this node's Raft state and its
// record of a recovery under way.
func (r *Recovery) Info(context.Context, *nodeapi.RecoverInfoRequest) (*nodeapi.RecoverInfo, error) {
	info, err := r.localInfo()
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return info, nil
}

// Apply answers kvnode.Node's RecoverApply: one step of the coordinator's
// plan on this node.
func (r *Recovery) Apply(ctx context.Context, req *nodeapi.RecoverApplyRequest) (*nodeapi.RecoverApplyResponse, error) {
	n := r.cfg.Node
	rep := n.Replica()
	if rep == nil || n.NodeID() == 0 {
		return nil, nodeapi.WithCode(errNotStarted(), codes.Unavailable)
	}
	self := n.NodeID()
	var err error
	switch req.Action {
	case "reform":
		err = r.reform(ctx, rep, req.Record)
	case "wipe":
		if req.Record.Seed == self {
			err = errors.AssertionFailedf("node %d is the seed of this recovery and must not wipe its state", self)
			break
		}
		var st kv.RaftState
		if st, err = rep.RaftState(); err == nil && st.Applied > 0 {
			r.cfg.Log.Warn("recovery: wiping this node's data group state; it rejoins from the seed's snapshot", "seed", req.Record.Seed)
			err = rep.Wipe()
		}
	case "admit":
		err = r.admit(ctx, rep, req.Record)
	case "done":
		req.Record.Done = true
		b, _ := json.Marshal(req.Record)
		err = r.cfg.Local.Put(recordKey, b)
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

// reform makes this node the data group's only voter and waits until it
// leads.
func (r *Recovery) reform(ctx context.Context, rep *kv.Replica, rec nodeapi.RecoveryRecord) error {
	self := r.cfg.Node.NodeID()
	if rec.Seed != self {
		return errors.AssertionFailedf("asked to seed a recovery whose seed is node %d", rec.Seed)
	}
	b, _ := json.Marshal(rec)
	r.cfg.Log.Warn("recovery: this node seeds the data group's re-formation; it becomes the only voter",
		"survivors", rec.Survivors, "dead", rec.Dead)
	if _, err := rep.ForceNewConfig(map[string][]byte{string(localEngineKey(recordKey)): b}); err != nil {
		return err
	}
	return waitUntil(ctx, 30*time.Second, func() error {
		if st := rep.Status(); !st.IsLeader {
			return errors.Newf("node %d has not elected itself yet (term %d)", self, st.Term)
		}
		return nil
	})
}

// admit, on the seed: the dead are decommissioned (they are no longer
// members), the survivors added back; it waits until the survivors are
// voters (or the group has its maximum of voters).
func (r *Recovery) admit(ctx context.Context, rep *kv.Replica, rec nodeapi.RecoveryRecord) error {
	n := r.cfg.Node
	for _, id := range rec.Dead {
		if _, err := liveness.SetMembership(ctx, rep, nil, id, liveness.Decommissioned,
			[]liveness.Membership{liveness.Active, liveness.Decommissioning}, nil); err != nil {
			return errors.Wrapf(err, "marking node %d decommissioned", id)
		}
		n.ForgetGossip(id)
	}
	for _, id := range rec.Survivors {
		if id == n.NodeID() {
			continue
		}
		if err := rep.AddLearner(ctx, id); err != nil {
			return errors.Wrapf(err, "adding node %d back", id)
		}
	}
	return waitUntil(ctx, 60*time.Second, func() error {
		st := rep.Status()
		if len(st.Voters) >= rep.MaxVoters() {
			return nil
		}
		for _, id := range rec.Survivors {
			if slices.Contains(st.Voters, id) {
				continue
			}
			if slices.Contains(st.Learners, id) && !n.AllowPromote(id) {
				continue // decommissioning: it stays a learner
			}
			return errors.Newf("node %d is not a voter yet (voters %v, learners %v)", id, st.Voters, st.Learners)
		}
		return nil
	})
}

// localEngineKey is k in the engine's node-local key space, for a write
// in the same batch as the seed's new configuration.
func localEngineKey(k []byte) []byte {
	return append([]byte{storage.PrefixLocal}, k...)
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

// Recover answers kvnode.Node's Recover: this node coordinates the
// recovery (or, with DryRun, only plans it).
func (r *Recovery) Recover(ctx context.Context, req *nodeapi.RecoverRequest) (*nodeapi.RecoverResponse, error) {
	if r.cfg.Node.NodeID() == 0 || r.cfg.Node.Replica() == nil {
		return nil, nodeapi.WithCode(errors.WithHint(errNotStarted(), "retry in a moment, or ask another node"), codes.Unavailable)
	}
	nodes, err := r.gather(ctx)
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
	r.cfg.Log.Warn("running the recovery from a lost majority", "plan", resp.Plan)
	g0, err := r.execute(ctx, plan, nodes)
	if err != nil {
		return nil, nodeapi.WithCode(errors.WithHint(err,
			"the recovery stopped part-way; run `kvnode node recover` again: it finishes what was started"), codes.Unavailable)
	}
	resp.Done = true
	resp.Result = fmt.Sprintf("the data group was re-formed from node %d on node(s) %s; node(s) %s are decommissioned; %s",
		plan.Seed.NodeID, nodeid.List(resp.Survivors), cmp.Or(nodeid.List(resp.Dead), "none"), g0)
	r.cfg.Log.Warn("recovery finished", "result", resp.Result)
	return resp, nil
}

// gather asks every node the local replica knows of, except those
// decommissioned, for its state, concurrently.
func (r *Recovery) gather(ctx context.Context) ([]recoverNode, error) {
	n := r.cfg.Node
	self := n.NodeID()
	rep := n.Replica()
	// Where to find the nodes: the replicated node records (this node's
	// copy), gossip, and the --join addresses. A survivor wiped by a
	// recovery under way has no node records until its snapshot arrives.
	known := map[nodeid.ID]string{}
	for id, rec := range n.NodeRecords() {
		known[id] = rec.ListenAddr
	}
	for id, addr := range n.GossipAddrs() {
		known[id] = addr
	}
	for _, a := range n.JoinAddrs() {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if resp, err := r.cfg.Client.Hello(cctx, a, &nodeapi.HelloRequest{}); err == nil &&
			resp.Bootstrapped && resp.ClusterID == n.ClusterID() && resp.NodeID != 0 {
			known[resp.NodeID] = a
		}
		cancel()
	}
	st := rep.Status()
	for _, v := range append(slices.Clone(st.Voters), st.Learners...) {
		if _, ok := known[v]; !ok {
			known[v] = ""
		}
	}
	known[self] = n.RPCAddr()
	var out []recoverNode
	for id := range known {
		if v, found, err := rep.GetLocal(liveness.Key(id)); err == nil && found {
			if rec, err := liveness.Decode(v); err == nil && rec.Membership == liveness.Decommissioned {
				continue
			}
		}
		out = append(out, recoverNode{ID: id})
	}
	slices.SortFunc(out, func(a, b recoverNode) int { return cmp.Compare(a.ID, b.ID) })
	var wg sync.WaitGroup
	for i := range out {
		rn := &out[i]
		if rn.ID == self {
			rn.Addr = n.RPCAddr()
			info, err := r.localInfo()
			if err != nil {
				return nil, err
			}
			rn.Info = info
			continue
		}
		addr := known[rn.ID]
		if addr == "" {
			var ok bool
			if addr, ok = n.Resolve(rn.ID); !ok {
				rn.Err = "no known address"
				continue
			}
		}
		rn.Addr = addr
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A node that has just restarted may still look down to a
			// cached connection in back-off: wait for the connection to
			// be ready (bounded) rather than take it for dead.
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			info, err := r.cfg.Client.RecoverInfo(cctx, addr, &nodeapi.RecoverInfoRequest{}, grpc.WaitForReady(true))
			if err != nil {
				rn.Err = err.Error()
				rn.Starting = nodeapi.Code(err) == codes.Unavailable && !nodeapi.IsConnError(rn.Err)
				return
			}
			if info.NodeID != rn.ID {
				rn.Err = fmt.Sprintf("node %d answers at this address", info.NodeID)
				return
			}
			rn.Info = info
		}()
	}
	wg.Wait()
	return out, nil
}

func (r *Recovery) step(ctx context.Context, addr, action string, rec nodeapi.RecoveryRecord) (*nodeapi.RecoverApplyResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return r.cfg.Client.RecoverApply(cctx, addr, &nodeapi.RecoverApplyRequest{Action: action, Record: rec})
}

// execute carries the plan out (steps 3 to 7) and says what became of
// group 0.
func (r *Recovery) execute(ctx context.Context, p dataRecoveryPlan, nodes []recoverNode) (string, error) {
	addrs := map[nodeid.ID]string{}
	for _, n := range nodes {
		addrs[n.ID] = n.Addr
	}
	seed, rec := p.Seed.NodeID, p.Record
	seedAddr := addrs[seed]
	hook := func(step string) error {
		if h := r.cfg.BeforeStep; h != nil {
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
		resp, err := r.step(ctx, seedAddr, "reform", rec)
		if err != nil {
			return "", err
		}
		members = resp.Raft
	}
	// 4. The others, unless the seed has them already, drop their state.
	for _, n := range p.Survivors[1:] {
		if slices.Contains(members.Voters, n.NodeID) || slices.Contains(members.Learners, n.NodeID) {
			continue
		}
		if err := hook("wipe"); err != nil {
			return "", err
		}
		if _, err := r.step(ctx, addrs[n.NodeID], "wipe", rec); err != nil {
			return "", err
		}
	}
	// 5. The dead are decommissioned, the survivors added back.
	if err := hook("admit"); err != nil {
		return "", err
	}
	if _, err := r.step(ctx, seedAddr, "admit", rec); err != nil {
		return "", err
	}
	// 6. Every survivor serves again; then group 0.
	if err := waitUntil(ctx, 2*time.Minute, func() error {
		for _, id := range rec.Survivors {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			info, err := r.cfg.Client.RecoverInfo(cctx, addrs[id], &nodeapi.RecoverInfoRequest{})
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
	g0, err := r.cfg.Group0.ReformAfterDataRecovery(ctx, seedAddr, rec.Survivors, addrs)
	if err != nil {
		return "", errors.Wrap(err, "group 0")
	}
	// 7. Done.
	if err := hook("done"); err != nil {
		return "", err
	}
	if _, err := r.step(ctx, seedAddr, "done", rec); err != nil {
		return "", err
	}
	return g0, nil
}
