package decommission

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/util/stop"
)

// Node is what decommissioning needs of the node it runs on.
type Node interface {
	// ReadyReplica is the data replica of a started node that is still a
	// member, or the RPC error to answer with.
	ReadyReplica() (*kv.Replica, error)
	// Liveness is the node's liveness (nil before it runs).
	Liveness() *liveness.NodeLiveness
	// Draining: the node drains, and keeps leadership away from itself.
	Draining() bool
	// Resolve maps a node ID to its RPC address.
	Resolve(id nodeid.ID) (string, bool)
	// ForgetGossip drops gossip's record of a decommissioned node.
	ForgetGossip(id nodeid.ID)
	// LiveReplica is the data replica once the node's liveness runs (nil
	// before): the promotion gate reads the local liveness records.
	LiveReplica() *kv.Replica
	// LeftCluster: the node found itself decommissioned.
	LeftCluster() bool
	// PeerAddrs are the other nodes' RPC addresses (the --join addresses
	// and every known node record but node self's).
	PeerAddrs(self nodeid.ID) []string
	// ClusterStatus is every node's status (stale: the data group did not
	// answer in time, and the rows are this node's copy).
	ClusterStatus(ctx context.Context) (rows []nodeapi.NodeStatus, stale bool)
}

// Group0 is group 0's side of the quorum check (group0/member.Member): a
// decommission must not leave group 0 without its majority either.
type Group0 interface {
	ValidateDecommission(ctx context.Context, c liveness.Check, ids []nodeid.ID) error
}

// Config is what New needs.
type Config struct {
	Node   Node
	Group0 Group0
	Client *nodeapi.Client
	Log    *slog.Logger
	// Store is --store: a decommissioned node's error names it.
	Store string
	// Stopping is returned by the waits the node's stop interrupts.
	Stopping error
	// OnDecommissioned runs once the running node finds itself
	// decommissioned (err says so): it stops serving.
	OnDecommissioned func(err error)
	// Hold, a testing knob, keeps the leader's loop from removing nodes
	// while it holds true.
	Hold *atomic.Bool
}

// Decommissioner is the node's part of decommissioning: the membership
// requests (Decommission, Recommission) and, while the node leads the data
// group, the loop that removes decommissioning nodes (Run).
type Decommissioner struct {
	cfg Config
	// mu serializes, on the Raft leader, the loop with decommission and
	// recommission requests, so that a node is never recommissioned
	// between the loop's check and its removal.
	mu sync.Mutex
	// lastWarn rate-limits the loop's warnings; guarded by mu.
	lastWarn time.Time
	// lastPeerCheck rate-limits asking peers whether this node was
	// decommissioned while its heartbeats fail (HeartbeatFailed runs on
	// the heartbeat's goroutine only).
	lastPeerCheck time.Time
}

// New returns the node's decommissioner; nothing runs until Run.
func New(cfg Config) *Decommissioner { return &Decommissioner{cfg: cfg} }

const decommissionEvery = 500 * time.Millisecond

// Run runs on every node and acts while it leads the data
// group; while the node drains it also keeps leadership away from it. It
// returns when ctx ends (the node stops).
func (d *Decommissioner) Run(ctx context.Context, rep *kv.Replica, self nodeid.ID) {
	stop.Every(ctx, decommissionEvery, func() bool {
		if !rep.Status().IsLeader {
			return true
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if d.cfg.Node.Draining() {
			d.TransferLeadershipAway(sctx, rep)
		} else if h := d.cfg.Hold; h == nil || !h.Load() {
			d.step(sctx, rep, self)
		}
		return true
	})
}

// groupCheck builds the quorum rule's inputs from linearizable reads. raw
// holds each record's stored bytes, for conditional puts.
func groupCheck(ctx context.Context, rep *kv.Replica) (c liveness.Check, recs []liveness.Record, raw map[nodeid.ID][]byte, err error) {
	start, end := liveness.Span()
	kvs, err := rep.Scan(ctx, start, end, 0, false)
	if err != nil {
		return liveness.Check{}, nil, nil, err
	}
	st := rep.Status()
	now := time.Now()
	c = liveness.Check{Records: map[nodeid.ID]liveness.Record{}, MaxVoters: rep.MaxVoters()}
	raw = map[nodeid.ID][]byte{}
	for _, e := range kvs {
		r, err := liveness.Decode(e.Value)
		if err != nil {
			return liveness.Check{}, nil, nil, err
		}
		c.Records[r.NodeID], raw[r.NodeID] = r, e.Value
		recs = append(recs, r)
	}
	c.Voters, c.Learners = st.Voters, st.Learners
	c.Live = func(id nodeid.ID) bool { r, ok := c.Records[id]; return ok && r.IsLive(now) }
	return c, recs, raw, nil
}

func (d *Decommissioner) step(ctx context.Context, rep *kv.Replica, self nodeid.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, recs, _, err := groupCheck(ctx, rep)
	if err != nil {
		return
	}
	var leaving []nodeid.ID
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
				d.cfg.Log.Warn("decommission: could not mark a removed node decommissioned; will retry", "node", id, "err", err)
				return
			}
			d.cfg.Log.Info("decommission: node is decommissioned", "node", id)
			d.cfg.Node.ForgetGossip(id) // fine if it is still live: it will be refused
			continue
		}
		if err := c.CanRemove(id); err != nil {
			if time.Since(d.lastWarn) > 10*time.Second {
				d.lastWarn = time.Now()
				d.cfg.Log.Warn("decommission: waiting before removing a node from the data Raft group", "node", id, "reason", err)
			}
			continue
		}
		if id == self {
			d.cfg.Log.Info("decommission: this node leads and is being decommissioned; handing leadership over")
			d.TransferLeadershipAway(ctx, rep)
			return
		}
		if err := rep.RemoveMember(ctx, id); err != nil {
			d.cfg.Log.Warn("decommission: removing a node from the data Raft group failed; will retry", "node", id, "err", err)
			return
		}
		d.cfg.Log.Info("decommission: removed node from the data Raft group", "node", id)
		return // one configuration change per step; re-read the state next time
	}
}

// transferLeadershipAway moves Raft leadership to an up-to-date voter that
// is live, active and not draining, if there is one.
func (d *Decommissioner) TransferLeadershipAway(ctx context.Context, rep *kv.Replica) {
	st := rep.Status()
	if !st.IsLeader || len(st.Voters) < 2 {
		return
	}
	good := func(nodeid.ID) bool { return true }
	if nl := d.cfg.Node.Liveness(); nl != nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		recs, err := nl.Records(rctx)
		cancel()
		if err == nil {
			now := time.Now()
			byID := map[nodeid.ID]liveness.Record{}
			for _, r := range recs {
				byID[r.NodeID] = r
			}
			good = func(id nodeid.ID) bool {
				r, ok := byID[id]
				return !ok || (r.IsLive(now) && !r.Draining && r.Membership == liveness.Active)
			}
		}
	}
	rep.HandOffLeadership(ctx, good)
}

// forwardToLeader sends a membership request to the Raft leader unless
// this node leads; handled reports whether it was forwarded.
func (d *Decommissioner) forwardToLeader(ctx context.Context, rep *kv.Replica, method membershipCall, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, bool, error) {
	// Leadership may move while we look; retry briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := rep.Status()
		if st.IsLeader {
			return nil, false, nil
		}
		if st.Leader != 0 && !req.Forwarded {
			if addr, ok := d.cfg.Node.Resolve(st.Leader); ok {
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

func (d *Decommissioner) Decommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return d.changeMembership(ctx, req, d.cfg.Client.Decommission, liveness.Decommissioning)
}

func (d *Decommissioner) Recommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return d.changeMembership(ctx, req, d.cfg.Client.Recommission, liveness.Active)
}

// changeMembership validates and applies a decommission (to =
// Decommissioning) or a recommission (to = Active) on the leader, as one
// atomic batch: on any error nothing is written.
// membershipCall is the client's Decommission or Recommission.
type membershipCall func(context.Context, string, *nodeapi.MembershipRequest, ...grpc.CallOption) (*nodeapi.MembershipResponse, error)

func (d *Decommissioner) changeMembership(ctx context.Context, req *nodeapi.MembershipRequest, method membershipCall, to liveness.Membership) (*nodeapi.MembershipResponse, error) {
	rep, err := d.cfg.Node.ReadyReplica()
	if err != nil {
		return nil, err
	}
	if resp, forwarded, err := d.forwardToLeader(ctx, rep, method, req); forwarded {
		return resp, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := slices.Compact(slices.Sorted(slices.Values(req.NodeIDs)))
	for attempt := 0; attempt < 10; attempt++ {
		c, _, raw, err := groupCheck(ctx, rep)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
		var ops []kvpb.Op
		if to == liveness.Decommissioning {
			if err := c.Validate(ids); err != nil {
				return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
			}
			if err := d.cfg.Group0.ValidateDecommission(ctx, c, ids); err != nil {
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
			return d.membershipResponse(ctx, ids), nil
		}
		err = rep.Write(ctx, ops)
		var cf *kvpb.ConditionFailedError
		switch {
		case err == nil:
			d.cfg.Log.Info("membership changed", "nodes", ids, "membership", to)
			return d.membershipResponse(ctx, ids), nil
		case errors.As(err, &cf), errors.Is(err, kvpb.ErrAmbiguous):
			continue // a record changed (a heartbeat), or unknown outcome: read again and redo
		default:
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
	}
	return nil, nodeapi.WithCode(errors.WithHint(errors.New("the liveness records kept changing"), "retry"), codes.Aborted)
}

func (d *Decommissioner) membershipResponse(ctx context.Context, ids []nodeid.ID) *nodeapi.MembershipResponse {
	rows, _ := d.cfg.Node.ClusterStatus(ctx)
	resp := &nodeapi.MembershipResponse{}
	for _, r := range rows {
		if slices.Contains(ids, r.NodeID) {
			resp.Nodes = append(resp.Nodes, r)
		}
	}
	return resp
}
