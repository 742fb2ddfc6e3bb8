package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/sql/catalog"
)

// runGroup0Upgrade is the 2.0 migration (migrations.Deps.Group0Upgrade):
// ScyllaDB's upgrade procedure, driven by group0.Upgrade with this node as
// the coordinator. It runs at 2.0-step.1, the fence of 2.0: every node
// runs a 2.0 binary, so every node can take part.
func (s *Server) runGroup0Upgrade(ctx context.Context) error {
	u := &group0.Upgrade{
		Cluster: group0Cluster{s: s},
		Log:     s.log.With("node", s.NodeID()),
		Report:  s.g0.setWaiting,
		Timeout: s.cfg.Group0UpgradeTimeout,
		Hook:    s.cfg.Knobs.Group0Hook,
	}
	if b := s.cfg.Knobs.Group0Backoff; b > 0 {
		u.MinBackoff, u.MaxBackoff = b, 4*b
	}
	// The procedure ends when this node stops. Its waits are bounded (2
	// minutes), but the auto-upgrade loop's context is not tied to the
	// node's life, and Stop waits for that loop: a coordinator waiting for
	// a dead node would otherwise ignore SIGTERM until the bound. The job's
	// lease lapses and another node resumes the procedure.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stopC:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := u.Run(ctx)
	select {
	case <-s.stopC:
		if err != nil {
			return errors.Wrapf(err, "node %d stopped while it coordinated the group 0 upgrade; another node resumes it", s.NodeID())
		}
	default:
	}
	return err
}

// group0Cluster implements group0.Cluster with this node's data replica and
// the kvnode.Node RPCs. Calls to this node itself are made directly.
type group0Cluster struct{ s *Server }

var _ group0.Cluster = group0Cluster{}

// Nodes implements group0.Cluster: the active nodes. A decommissioning or
// decommissioned node is not a peer the procedure (or a recovery) waits
// for, consistent with group0Join, which refuses it: it is leaving, and if
// it is recommissioned it joins group 0 by itself (group0RejoinLoop).
func (c group0Cluster) Nodes(ctx context.Context) ([]int32, error) {
	statuses, err := c.s.NodeStatuses(ctx)
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, n := range statuses {
		if n.Membership != autoupgrade.Decommissioned && n.Membership != autoupgrade.Decommissioning {
			out = append(out, n.NodeID)
		}
	}
	return out, nil
}

// binaryOf is the release node id last reported (gossip, else its record).
func (s *Server) binaryOf(id int32) string {
	if g := s.gossipOrNil(); g != nil {
		if m, ok := g.Member(id); ok && m.Meta.BinaryVersion != "" {
			return m.Meta.BinaryVersion
		}
	}
	if r, ok := s.nodeRecords()[id]; ok {
		return r.BinaryVersion
	}
	return ""
}

// Info implements group0.Cluster.
func (c group0Cluster) Info(ctx context.Context, id int32) group0.NodeInfo {
	r, err := c.s.askGroup0State(ctx, id, false)
	if err != nil {
		return group0.NodeInfo{NodeID: id, Err: err, Binary: c.s.binaryOf(id)}
	}
	return r.Info()
}

// askGroup0State asks node id for its group 0 state (3s). A node whose
// binary has no Group0State method answers Unimplemented: ErrOldBinary.
func (s *Server) askGroup0State(ctx context.Context, id int32, probe bool) (*nodeapi.Group0StateResponse, error) {
	if id == s.NodeID() {
		return s.group0Info(ctx, probe), nil
	}
	addr, ok := s.resolve(uint64(id))
	if !ok {
		return nil, errors.Newf("no address known for node %d", id)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := s.node.Group0State(cctx, addr, &nodeapi.Group0StateRequest{Probe: probe})
	if nodeapi.Code(err) == codes.Unimplemented {
		return nil, errors.Mark(errors.Newf("node %d (release %s) has no group 0", id, s.binaryOf(id)), group0.ErrOldBinary)
	}
	return resp, err
}

// Formation implements group0.Cluster.
func (c group0Cluster) Formation(ctx context.Context) (group0.Formation, bool, error) {
	rep := c.s.Replica()
	if rep == nil {
		return group0.Formation{}, false, errors.New("this node has not started yet")
	}
	f, _, found, err := c.s.readFormation(ctx, rep)
	return f, found, err
}

// SwapFormation implements group0.Cluster.
func (c group0Cluster) SwapFormation(ctx context.Context, prev *group0.Formation, next group0.Formation) (group0.Formation, error) {
	rep := c.s.Replica()
	if rep == nil {
		return group0.Formation{}, errors.New("this node has not started yet")
	}
	cur, raw, found, err := c.s.readFormation(ctx, rep)
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
	cur, _, _, err = c.s.readFormation(ctx, rep)
	if err == nil && cur == next {
		c.s.log.Info("wrote the group 0 formation record", "formation", next.String())
	}
	return cur, err
}

// Prepare implements group0.Cluster.
func (c group0Cluster) Prepare(ctx context.Context, id int32, f group0.Formation) error {
	s := c.s
	if id == s.NodeID() {
		_, err := s.group0PrepareLocal(ctx, f)
		return err
	}
	_, err := callNode(ctx, s, id, 60*time.Second, s.node.Group0Prepare, &nodeapi.Group0PrepareRequest{Formation: f})
	return err
}

// SetState implements group0.Cluster.
func (c group0Cluster) SetState(ctx context.Context, id int32, st group0.State) error {
	return c.s.setNodeGroup0State(ctx, id, st, false)
}

func (s *Server) setNodeGroup0State(ctx context.Context, id int32, st group0.State, fromRecovery bool) error {
	req := &nodeapi.Group0SetStateRequest{State: string(st), FromRecovery: fromRecovery}
	if id == s.NodeID() {
		_, err := s.group0SetState(ctx, req)
		return err
	}
	_, err := callNode(ctx, s, id, 30*time.Second, s.node.Group0SetState, req)
	return err
}

// callNode calls node id with a timeout, through one of s.node's methods.
func callNode[Req, Resp any](ctx context.Context, s *Server, id int32, timeout time.Duration,
	call func(context.Context, string, *Req, ...grpc.CallOption) (*Resp, error), req *Req) (*Resp, error) {
	addr, ok := s.resolve(uint64(id))
	if !ok {
		return nil, errors.Newf("no address known for node %d", id)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return call(cctx, addr, req)
}

// SyncSchema implements group0.Cluster: the schema synchronization of the
// upgrade. It pulls the catalogs of ids, merges them with group 0's schema
// by the pre-Raft rule (per table, the highest modification time wins,
// tombstones included), commits what group 0 lacks in one change
// conditional on the state it read, then has each node apply group 0's
// state and checks that every digest equals the merged schema's. It loops
// (bounded) until they agree. Every node in ids is in synchronize, so no
// pre-Raft schema change can appear behind the merge.
func (c group0Cluster) SyncSchema(ctx context.Context, ids []int32) error {
	s := c.s
	rep := s.g0.rep.Load()
	if rep == nil || s.g0.isolated.Load() {
		return errors.Newf("the coordinator (node %d) is not a member of group 0", s.NodeID())
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rctx, cancel := context.WithTimeout(ctx, s.group0Timeout())
		snap, err := group0.Read(rctx, rep)
		cancel()
		if err != nil {
			return errors.Wrap(err, "reading group 0's schema")
		}
		current, err := decodeDescriptors(snap.Tables)
		if err != nil {
			return err
		}
		merged := map[string]catalog.TableDescriptor{}
		for _, d := range current {
			merged[d.Name] = d
		}
		changed := map[string][]byte{}
		for _, id := range ids {
			descs, err := s.pullSchema(ctx, id)
			if err != nil {
				return errors.Wrapf(err, "pulling the schema of node %d", id)
			}
			for _, d := range descs {
				if cur, ok := merged[d.Name]; ok && !cur.ModTime.Less(d.ModTime) {
					continue
				}
				merged[d.Name] = d
				b, err := json.Marshal(d)
				if err != nil {
					return err
				}
				changed[d.Name] = b
			}
		}
		target := snap.StateID
		if len(changed) > 0 {
			ch := group0.Change{ID: newUUID(), Tables: changed, NodeID: s.NodeID(), Time: time.Now(),
				Description: fmt.Sprintf("upgrade schema sync: merged the pre-Raft schema of node(s) %v", ids)}
			cctx, cancel := context.WithTimeout(ctx, s.group0Timeout())
			target, err = group0.Commit(cctx, rep, snap.StateID, ch)
			cancel()
			if errors.Is(err, group0.ErrConflict) {
				lastErr = err
				continue
			}
			if err != nil {
				return errors.Wrap(err, "committing the merged schema to group 0")
			}
			s.log.Info("group 0 upgrade: merged pre-Raft schema into group 0", "tables", len(changed), "state_id", target)
		}
		all := make([]catalog.TableDescriptor, 0, len(merged))
		for _, d := range merged {
			all = append(all, d)
		}
		want, err := schemaDigest(all)
		if err != nil {
			return err
		}
		if hook := s.cfg.Knobs.Group0BeforeSchemaCheck; hook != nil {
			hook(ctx)
		}
		var differ []string
		for _, id := range ids {
			var resp *nodeapi.Group0SyncResponse
			var err error
			req := &nodeapi.Group0SyncRequest{StateID: target}
			if id == s.NodeID() {
				if resp, err = s.group0Sync(ctx, req); err != nil {
					return err
				}
			} else if resp, err = callNode(ctx, s, id, 15*time.Second, s.node.Group0Sync, req); err != nil {
				return errors.Wrapf(err, "node %d applying group 0's schema", id)
			}
			if !inSync(*resp, target, want) {
				differ = append(differ, fmt.Sprintf("node %d has digest %s", id, resp.Digest))
			}
		}
		if len(differ) == 0 {
			return nil
		}
		lastErr = errors.Newf("schema digests differ from group 0's (%s): %v", want, differ)
	}
	return errors.Wrap(lastErr, "the schema did not converge")
}

// inSync reports whether a node's Group0Sync answer shows its catalog
// holding exactly group 0's schema at a state at or after target (so
// nothing of its pre-Raft schema is missing from group 0). A node that
// compared itself with its group 0 replica says so; for one that predates
// that, its digest must equal want, the merge's.
func inSync(resp nodeapi.Group0SyncResponse, target uint64, want string) bool {
	if resp.Group0Digest != "" {
		return resp.Group0StateID >= target && resp.Digest == resp.Group0Digest
	}
	return resp.Digest == want
}

// pullSchema fetches node id's catalog (every descriptor, tombstones too).
func (s *Server) pullSchema(ctx context.Context, id int32) ([]catalog.TableDescriptor, error) {
	if id == s.NodeID() {
		exec := s.executor()
		if exec == nil {
			return nil, errors.New("SQL is not started on this node yet")
		}
		return exec.Catalog().All(), nil
	}
	resp, err := callNode(ctx, s, id, 10*time.Second, s.node.SchemaPull, &nodeapi.Empty{})
	if err != nil {
		return nil, err
	}
	return resp.Descriptors, nil
}

// group0NodeStates asks every non-decommissioned node for its group 0
// state, for SHOW UPGRADE STATUS.
func (s *Server) group0NodeStates(ctx context.Context, statuses []nodeapi.NodeStatus) []group0.NodeInfo {
	var ids []int32
	for _, n := range statuses {
		if n.Membership != autoupgrade.Decommissioned {
			ids = append(ids, n.NodeID)
		}
	}
	out := make([]group0.NodeInfo, len(ids))
	done := make(chan struct{}, len(ids))
	for i, id := range ids {
		go func() {
			out[i] = group0Cluster{s: s}.Info(ctx, id)
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
