package member

import (
	"context"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// RunUpgrade is the 2.0 migration (migrations.Deps.Group0Upgrade):
// ScyllaDB's upgrade procedure, driven by group0.Upgrade with this node as
// the coordinator over Cluster. It runs at 2.0-step.1, the fence of 2.0:
// every node runs a 2.0 binary, so every node can take part.
func (m *Member) RunUpgrade(ctx context.Context) error {
	self := m.node.NodeID()
	u := &group0.Upgrade{
		Cluster: Cluster{m: m},
		Log:     m.log.With("node", self),
		Report:  m.setWaiting,
		Timeout: m.cfg.UpgradeTimeout,
		Hook:    m.cfg.Knobs.Hook,
	}
	if b := m.cfg.Knobs.Backoff; b > 0 {
		u.MinBackoff, u.MaxBackoff = b, 4*b
	}
	// The procedure ends when this node stops. Its waits are bounded (2
	// minutes), but the auto-upgrade loop's context is not tied to the
	// node's life, and the node's stop waits for that loop: a coordinator
	// waiting for a dead node would otherwise ignore SIGTERM until the
	// bound. The job's lease lapses and another node resumes the procedure.
	stop := m.cfg.Stopper.ShouldQuiesce()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := u.Run(ctx)
	select {
	case <-stop:
		if err != nil {
			return errors.Wrapf(err, "node %d stopped while it coordinated the group 0 upgrade; another node resumes it", self)
		}
	default:
	}
	return err
}

// Cluster is group 0 as the procedures (the upgrade, the recovery) drive
// it from a coordinator (CockroachDB's upgradecluster): the node's data
// replica and the kvnode.Node RPCs. Calls to this node itself are made
// directly.
type Cluster struct{ m *Member }

var _ group0.Cluster = Cluster{}

// Cluster returns the cluster this node coordinates the procedures over.
func (m *Member) Cluster() Cluster { return Cluster{m: m} }

// Nodes implements group0.Cluster: the active nodes. A decommissioning or
// decommissioned node is not a peer the procedure (or a recovery) waits
// for, consistent with Group0Join, which refuses it: it is leaving, and if
// it is recommissioned it joins group 0 by itself (self.go).
func (c Cluster) Nodes(ctx context.Context) ([]nodeid.ID, error) {
	statuses, err := c.m.node.NodeStatuses(ctx)
	if err != nil {
		return nil, err
	}
	var out []nodeid.ID
	for _, n := range statuses {
		if n.Membership != string(liveness.Decommissioned) && n.Membership != string(liveness.Decommissioning) {
			out = append(out, n.NodeID)
		}
	}
	return out, nil
}

// binaryOf is the release node id last reported (gossip, else its record).
func (m *Member) binaryOf(id nodeid.ID) string {
	if b, _, ok := m.node.Gossiped(id); ok && b != "" {
		return b
	}
	if r, ok := m.node.NodeRecords()[id]; ok {
		return r.BinaryVersion
	}
	return ""
}

// Info implements group0.Cluster.
func (c Cluster) Info(ctx context.Context, id nodeid.ID) group0.NodeInfo {
	r, err := c.m.askState(ctx, id, false)
	if err != nil {
		return group0.NodeInfo{NodeID: id, Err: err, Binary: c.m.binaryOf(id)}
	}
	return r.Info()
}

// askState asks node id for its group 0 state (3s). A node whose binary
// has no Group0State method answers Unimplemented: ErrOldBinary.
func (m *Member) askState(ctx context.Context, id nodeid.ID, probe bool) (*nodeapi.Group0StateResponse, error) {
	if id == m.node.NodeID() {
		return m.info(ctx, probe), nil
	}
	addr, ok := m.node.Resolve(id)
	if !ok {
		return nil, errors.Newf("no address known for node %d", id)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := m.cfg.Client.Group0State(cctx, addr, &nodeapi.Group0StateRequest{Probe: probe})
	if nodeapi.Code(err) == codes.Unimplemented {
		return nil, errors.Mark(errors.Newf("node %d (release %s) has no group 0", id, m.binaryOf(id)), group0.ErrOldBinary)
	}
	return resp, err
}

// Formation implements group0.Cluster.
func (c Cluster) Formation(ctx context.Context) (group0.Formation, bool, error) {
	rep := c.m.node.Replica()
	if rep == nil {
		return group0.Formation{}, false, errors.New("this node has not started yet")
	}
	f, _, found, err := readFormation(ctx, rep)
	return f, found, err
}

// SwapFormation implements group0.Cluster.
func (c Cluster) SwapFormation(ctx context.Context, prev *group0.Formation, next group0.Formation) (group0.Formation, error) {
	rep := c.m.node.Replica()
	if rep == nil {
		return group0.Formation{}, errors.New("this node has not started yet")
	}
	cur, raw, found, err := readFormation(ctx, rep)
	if err != nil {
		return group0.Formation{}, err
	}
	if (prev == nil) != !found || (prev != nil && cur != *prev) {
		return cur, nil // someone else moved it: theirs stands
	}
	next.Time = time.Now().UnixNano()
	op := kvpb.Op{Kind: kvpb.OpCPut, Key: keys.Group0FormationKey(), Value: next.Encode()}
	if found {
		op.Expected = raw
	} else {
		op.ExpectAbsent = true
	}
	err = rep.Write(ctx, []kvpb.Op{op})
	var cf *kvpb.ConditionFailedError
	if err != nil && !errors.As(err, &cf) && !errors.Is(err, kvpb.ErrAmbiguous) {
		return group0.Formation{}, err
	}
	cur, _, _, err = readFormation(ctx, rep)
	if err == nil && cur == next {
		c.m.log.Info("wrote the group 0 formation record", "formation", next.String())
	}
	return cur, err
}

// Prepare implements group0.Cluster.
func (c Cluster) Prepare(ctx context.Context, id nodeid.ID, f group0.Formation) error {
	m := c.m
	if id == m.node.NodeID() {
		_, err := m.prepareLocal(ctx, f)
		return err
	}
	_, err := callNode(ctx, m, id, 60*time.Second, m.cfg.Client.Group0Prepare, &nodeapi.Group0PrepareRequest{Formation: f})
	return err
}

// SetState implements group0.Cluster.
func (c Cluster) SetState(ctx context.Context, id nodeid.ID, st group0.State) error {
	return c.m.setNodeState(ctx, id, st, false)
}

func (m *Member) setNodeState(ctx context.Context, id nodeid.ID, st group0.State, fromRecovery bool) error {
	req := &nodeapi.Group0SetStateRequest{State: string(st), FromRecovery: fromRecovery}
	if id == m.node.NodeID() {
		_, err := m.Group0SetState(ctx, req)
		return err
	}
	_, err := callNode(ctx, m, id, 30*time.Second, m.cfg.Client.Group0SetState, req)
	return err
}

// callNode calls node id with a timeout, through one of the client's
// methods.
func callNode[Req, Resp any](ctx context.Context, m *Member, id nodeid.ID, timeout time.Duration,
	call func(context.Context, string, *Req, ...grpc.CallOption) (*Resp, error), req *Req) (*Resp, error) {
	addr, ok := m.node.Resolve(id)
	if !ok {
		return nil, errors.Newf("no address known for node %d", id)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return call(cctx, addr, req)
}

// NodeStates asks every node of statuses but the decommissioned ones for
// its group 0 state (SHOW UPGRADE STATUS), in node order.
func (m *Member) NodeStates(ctx context.Context, statuses []nodeapi.NodeStatus) []group0.NodeInfo {
	var ids []nodeid.ID
	for _, n := range statuses {
		if n.Membership != string(liveness.Decommissioned) {
			ids = append(ids, n.NodeID)
		}
	}
	out := make([]group0.NodeInfo, len(ids))
	done := make(chan struct{}, len(ids))
	for i, id := range ids {
		go func() {
			out[i] = Cluster{m: m}.Info(ctx, id)
			out[i].NodeID = id
			done <- struct{}{}
		}()
	}
	for range ids {
		<-done
	}
	slices.SortFunc(out, func(a, b group0.NodeInfo) int { return int(a.NodeID) - int(b.NodeID) })
	return out
}
