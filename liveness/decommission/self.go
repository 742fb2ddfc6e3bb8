package decommission

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// This node's own side of decommissioning: refusing to start once
// decommissioned, finding out while running (its heartbeats fail once it
// is no longer a member), and the promotion gate that keeps a leaving
// learner from becoming a voter.

// CheckNotDecommissioned reads this node's liveness record, through the
// local replica if it can still read (it cannot once it was removed from
// the data group) or else from any peer, and refuses a decommissioned
// node. It waits until one of them answers, or ctx ends (the node stops:
// Config.Stopping).
func (d *Decommissioner) CheckNotDecommissioned(ctx context.Context, rep *kv.Replica, id nodeid.ID) error {
	for attempt := 0; ; attempt++ {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		rec, found, err := liveness.Get(gctx, rep, id)
		cancel()
		if err == nil {
			if found && rec.Membership == liveness.Decommissioned {
				return d.DecommissionedError(id)
			}
			return nil
		}
		if rec, found, ok := d.askPeersForLiveness(ctx, id); ok {
			if found && rec.Membership == liveness.Decommissioned {
				return d.DecommissionedError(id)
			}
			return nil
		}
		if attempt%10 == 9 {
			d.cfg.Log.Warn("waiting for the data Raft group or a peer to answer (is a majority of voters up?)", "err", err)
		}
		select {
		case <-ctx.Done():
			return d.cfg.Stopping
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// DecommissionedError is what a decommissioned node says when it refuses
// to start or stops serving.
func (d *Decommissioner) DecommissionedError(id nodeid.ID) error {
	return errors.WithHintf(errors.Mark(errors.Newf(
		"node %d is decommissioned: it was removed from the cluster for good and may not rejoin", id),
		liveness.ErrDecommissioned),
		"node IDs are never reused: to run a node on this machine again, start it with a new, empty --store (not %s) so that it joins as a new node",
		d.cfg.Store)
}

// askPeersForLiveness asks the other nodes (Node.PeerAddrs) for node id's liveness record. ok is false if none
// answered.
func (d *Decommissioner) askPeersForLiveness(ctx context.Context, id nodeid.ID) (rec liveness.Record, found, ok bool) {
	for _, a := range d.cfg.Node.PeerAddrs(id) {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := d.cfg.Client.GetLiveness(actx, a, &nodeapi.LivenessRequest{NodeID: id})
		cancel()
		if err == nil {
			return resp.Record, resp.Found, true
		}
	}
	return liveness.Record{}, false, false
}

// HeartbeatFailed decides, when heartbeats fail for longer than the
// liveness duration, whether this node has been decommissioned (it can no
// longer reach the data group then), by asking its peers. A decommissioned
// node reports so through Failed, and `kvnode start` exits.
// ctx is the heartbeat's: it ends when the node stops.
func (d *Decommissioner) HeartbeatFailed(ctx context.Context, nl *liveness.NodeLiveness, id nodeid.ID, err error) {
	if d.cfg.Node.LeftCluster() {
		return
	}
	decommissioned := errors.Is(err, liveness.ErrDecommissioned)
	if !decommissioned {
		if time.Since(nl.LastHeartbeat()) < nl.LivenessDuration() || time.Since(d.lastPeerCheck) < nl.LivenessDuration() {
			return
		}
		d.lastPeerCheck = time.Now()
		d.cfg.Log.Warn("liveness heartbeats are failing; is this node still a member of the cluster?", "err", err)
		rec, found, ok := d.askPeersForLiveness(ctx, id)
		decommissioned = ok && found && rec.Membership == liveness.Decommissioned
	}
	if !decommissioned {
		return
	}
	ferr := d.DecommissionedError(id)
	d.cfg.Log.Error("this node has been decommissioned; it no longer serves and should be stopped", "err", ferr.Error())
	d.cfg.OnDecommissioned(ferr)
}

// AllowPromote is the data group's promotion gate (kv.Config.Promote): a
// learner whose membership is not active is never promoted to voter. It
// runs in the Ready loop, so it reads only the local applied state.
func (d *Decommissioner) AllowPromote(id nodeid.ID) bool {
	rep := d.cfg.Node.LiveReplica()
	if rep == nil {
		return false
	}
	v, found, err := rep.GetLocal(liveness.Key(id))
	if err != nil {
		return false
	}
	if !found {
		return true
	}
	rec, err := liveness.Decode(v)
	return err == nil && rec.Membership == liveness.Active
}
