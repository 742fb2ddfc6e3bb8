package join

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// Node is what the admission needs of the node it runs on.
type Node interface {
	// Joined is the node's cluster and data replica once it is part of an
	// initialized cluster (rep nil before).
	Joined() (clusterID string, rep *kv.Replica)
	// ActiveVersion is the cluster version the node acts on: a joiner
	// must be able to run it.
	ActiveVersion() clusterversion.Version
	// Resolve maps a node ID to its RPC address (the leader's).
	Resolve(id nodeid.ID) (string, bool)
}

// Config is what New needs.
type Config struct {
	Node   Node
	Client *nodeapi.Client
	Log    *slog.Logger
	// BeforeAdmit, a testing knob, runs on the leader before it admits the
	// node at listenAddr.
	BeforeAdmit func(listenAddr string)
}

// Admission admits new nodes into the data group (kvnode.Node's Join).
type Admission struct {
	cfg Config
}

// New returns the node's admission.
func New(cfg Config) *Admission { return &Admission{cfg: cfg} }

// Join answers kvnode.Node's Join: forwarded to the data group's leader,
// which checks the joiner's binary against the active version, gives it a
// node ID (never reused; a retried join gets back the ID it was given and
// never used), writes its node and liveness records in one batch, and adds
// it as a learner.
func (s *Admission) Join(ctx context.Context, req *nodeapi.JoinRequest) (*nodeapi.JoinResponse, error) {
	clusterID, rep := s.cfg.Node.Joined()
	if rep == nil {
		return nil, nodeapi.WithCode(errors.New("this node is not part of an initialized cluster yet"), codes.Unavailable)
	}
	// Refuse a binary that cannot run the active version (or the fence of
	// a finalization in progress: the active version is the fence then).
	if err := s.checkVersion(req.Node); err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	st := rep.Status()
	if !st.IsLeader {
		if req.Forwarded || st.Leader == 0 {
			return nil, nodeapi.WithCode(errors.New("no Raft leader is known yet; retry"), codes.Unavailable)
		}
		addr, ok := s.cfg.Node.Resolve(st.Leader)
		if !ok {
			return nil, nodeapi.WithCode(errors.Newf("no address for leader node %d yet; retry", st.Leader), codes.Unavailable)
		}
		fwd := *req
		fwd.Forwarded = true
		return s.cfg.Client.Join(ctx, addr, &fwd)
	}
	rec := req.Node
	if h := s.cfg.BeforeAdmit; h != nil {
		h(rec.ListenAddr)
	}
	// The joiner refuses to start on a version its binary cannot run, and
	// anything written for it by then would stay behind as a ghost member
	// (records and a learner of a node that never starts, which blocks
	// finalization as "not live" until decommissioned). So the version it
	// will be given is checked here again, before anything is written: it
	// may have moved since the check above (a finalization step).
	if err := s.checkVersion(rec); err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	// A join retried after a timeout (the joiner's deadline passed while
	// the leader was adding it) must not leave a ghost: an ID with records
	// but no node, which would block finalization until decommissioned.
	// If an ID was already given to this address and no node ever started
	// under it (liveness epoch 0), hand out that ID again: it was never
	// used, so this is not reuse.
	newID, err := unstartedNodeAt(ctx, rep, rec.ListenAddr)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	if newID == 0 {
		n, err := rep.Increment(ctx, keys.NodeIDGenKey(), 1)
		if err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
		// The counter is an int64 in the store; IDs stay far below 2^31.
		newID = nodeid.ID(n)
		rec.NodeID = newID
		// The node record and the liveness record are written in one
		// batch, so that no node ever has an ID without a liveness record.
		if err := rep.Write(ctx, []kvpb.Op{
			{Kind: kvpb.OpPut, Key: keys.NodeKey(rec.NodeID), Value: nodeapi.EncodeNodeRecord(rec)},
			{Kind: kvpb.OpCPut, Key: liveness.Key(rec.NodeID), Value: liveness.NewRecord(rec.NodeID, time.Now()).Encode(), ExpectAbsent: true},
		}); err != nil {
			return nil, nodeapi.WithCode(err, codes.Unavailable)
		}
	} else {
		rec.NodeID = newID
		s.cfg.Log.Info("a join was retried: giving the node the ID it was given before and never used", "node_id", newID, "listen_addr", rec.ListenAddr)
	}
	if err := rep.AddLearner(ctx, newID); err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	// The joiner is given the version active now, and only one its binary
	// runs (the joiner's own check is the same, so it never refuses what it
	// is given). If a finalization step moved the version while the records
	// were written, undo them: nothing of a refused joiner stays behind.
	cv := s.cfg.Node.ActiveVersion()
	if err := CheckVersion(rec, cv); err != nil {
		if uerr := s.undo(ctx, rep, rec.NodeID); uerr != nil {
			s.cfg.Log.Warn("refused a joining node after its records were written; removing them failed",
				"node_id", rec.NodeID, "err", uerr,
				"hint", fmt.Sprintf("decommission node %d (it never started)", rec.NodeID))
		}
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	s.cfg.Log.Info("admitted a new node", "node_id", newID, "listen_addr", rec.ListenAddr)
	return &nodeapi.JoinResponse{ClusterID: clusterID, NodeID: rec.NodeID, ClusterVersion: cv.String()}, nil
}

// undo removes what Join wrote for node id, which never started: its
// learner, then its node and liveness records (the latter only while its
// epoch is 0, so a node that did start is never erased).
func (s *Admission) undo(ctx context.Context, rep *kv.Replica, id nodeid.ID) error {
	if err := rep.RemoveMember(ctx, id); err != nil {
		return errors.Wrap(err, "removing the learner")
	}
	v, found, err := rep.Get(ctx, liveness.Key(id))
	if err != nil {
		return err
	}
	ops := []kvpb.Op{{Kind: kvpb.OpDelete, Key: keys.NodeKey(id)}}
	if found {
		if lr, err := liveness.Decode(v); err != nil || lr.Epoch != 0 {
			return errors.Newf("node %d has started meanwhile; its records are kept", id)
		}
		ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: liveness.Key(id), Expected: v, Delete: true})
	}
	if err := rep.Write(ctx, ops); err != nil {
		return err
	}
	s.cfg.Log.Info("removed the records of a joining node that was refused", "node_id", id)
	return nil
}

// unstartedNodeAt returns the ID already given to a node at listenAddr that
// never started (its liveness epoch is 0 and it is active), or 0.
func unstartedNodeAt(ctx context.Context, rep *kv.Replica, listenAddr string) (nodeid.ID, error) {
	nstart, nend := keys.NodeSpan()
	kvs, err := rep.Scan(ctx, nstart, nend, 0, false)
	if err != nil {
		return 0, err
	}
	for _, e := range kvs {
		var r nodeapi.NodeRecord
		if json.Unmarshal(e.Value, &r) != nil || r.ListenAddr != listenAddr {
			continue
		}
		v, found, err := rep.Get(ctx, liveness.Key(r.NodeID))
		if err != nil {
			return 0, err
		}
		if !found {
			continue
		}
		if lr, err := liveness.Decode(v); err == nil && lr.Epoch == 0 && lr.Membership == liveness.Active {
			return r.NodeID, nil
		}
	}
	return 0, nil
}

// checkVersion refuses a joining node whose binary cannot run the active
// cluster version.
func (s *Admission) checkVersion(rec nodeapi.NodeRecord) error {
	return CheckVersion(rec, s.cfg.Node.ActiveVersion())
}

// CheckVersion refuses a joining node whose binary cannot run
// cluster version active.
func CheckVersion(rec nodeapi.NodeRecord, active clusterversion.Version) error {
	bv, err := clusterversion.Parse(rec.BinaryVersion)
	if err != nil {
		return errors.WithHintf(errors.Newf("the joining node reports an unreadable binary version %q", rec.BinaryVersion),
			"run a kvnode binary of release %s or newer", active)
	}
	if !clusterversion.Supports(bv, active) {
		return errors.WithHintf(errors.Newf(
			"the joining node runs release %s, which cannot run the cluster's version %s", bv, active),
			"start it with a binary of release %s or newer (it supports cluster versions %s to %s)",
			active.Release(), clusterversion.MinSupported(bv), bv)
	}
	return nil
}
