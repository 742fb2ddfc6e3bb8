package server

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/upgrademanager"
)

// The node's part of a downgrade (clusterversion/DESIGN.md, "How a
// downgrade moves down the ladder"): lowering its persisted version, with
// the checks and waits each step needs, and compacting its data group log
// for the downgrade to 2.0.

// Downgrade moves the cluster version down to target (SET CLUSTER SETTING
// version below the active version, or the auto-upgrade loop resuming one)
// through the upgrade manager.
func (s *Server) Downgrade(ctx context.Context, target clusterversion.Version) error {
	return s.upgrades.Downgrade(ctx, target)
}

// UpgradePlan is SHOW UPGRADE PLAN: a dry run of SET CLUSTER SETTING
// version = target (zero: the next release).
func (s *Server) UpgradePlan(ctx context.Context, target clusterversion.Version) (*upgrademanager.Plan, error) {
	return s.upgrades.Plan(ctx, target)
}

// lowerActiveVersion durably moves this node's active version down to v,
// one ladder step below it or to v itself (a no-op). Before it writes, it
// checks that the step can be lowered on this node:
//   - below the 2.1 fence, no entry a 2.0 binary cannot apply is left in
//     this node's data group log and no transaction record in its state
//     (the down-migration of 2.1-step.2 removed them);
//
// and after it writes, it waits for what must finish on this node before
// the step counts as lowered here:
//   - below 1.1-step.2, statements that encoded rows in v2 (the rewrite to
//     v1 starts once every node has answered).
//
// Open transactions need no wait below 2.1: they fail at their next
// statement (sql: checkInTxn), and the leader refuses their commit from
// 2.1-step.1 on (kv/downgrade.go).
func (s *Server) lowerActiveVersion(v clusterversion.Version) error {
	if !clusterversion.Supports(s.binVersion, v) {
		return errors.WithHintf(errors.Newf("node %d runs release %s, which cannot run cluster version %s",
			s.NodeID(), s.binVersion, v), "restart node %d on a binary of release %s first", s.NodeID(), v.Release())
	}
	cur := s.ActiveVersion()
	if !v.Less(cur) {
		return nil // lowered already (a retried step), or never above v
	}
	if p, _ := clusterversion.Prev(cur); p != v {
		return errors.AssertionFailedf("node %d is at %s: a downgrade lowers one step at a time, to %s, not %s", s.NodeID(), cur, p, v)
	}
	if v.Less(clusterversion.V2_1Fence.Version()) && !cur.Less(clusterversion.V2_1Fence.Version()) {
		if err := s.checkNo21Data(); err != nil {
			return err
		}
	}
	if v.Less(clusterversion.V2_0Fence.Version()) && !cur.Less(clusterversion.V2_0Fence.Version()) && s.g0.Enabled() {
		// Below the 2.0 fence 1.1 binaries may join, which know nothing
		// of group 0: this node must have left it.
		if st := s.g0.State(); st != group0.UsePreRaft || s.g0.InGroup0() {
			return errors.WithHintf(errors.Newf("node %d has not left group 0 (it is in %s)", s.NodeID(), st),
				"the downgrade's down-migration of %s takes every node out of group 0; it resumes and retries this step",
				clusterversion.V2_0)
		}
	}
	s.mu.Lock()
	exec := s.exec
	err := s.writeActiveVersionLocked(v)
	s.mu.Unlock()
	if err != nil {
		return errors.Wrap(err, "persisting the lowered cluster version")
	}
	s.log.Info("persisted lowered cluster version (downgrade)", "version", v.String(), "was", cur.String())
	if v.Less(clusterversion.V1_1WriteV2.Version()) && exec != nil {
		exec.WaitForV1Writers() // here: every statement that encoded v2
	}
	return nil
}

// checkNo21Data refuses to lower this node below the 2.1 fence while its
// store still holds what a 2.0 binary cannot apply.
func (s *Server) checkNo21Data() error {
	rep := s.Replica()
	if rep == nil {
		return nil
	}
	idx, err := rep.TxnCommandsInLog()
	if err != nil {
		return err
	}
	if idx != 0 {
		return errors.WithHintf(errors.Newf("node %d's Raft log still holds a 2.1 command at index %d", s.NodeID(), idx),
			"the downgrade's down-migration of %s compacts every log; it resumes and retries this step",
			clusterversion.V2_1TxnStamps)
	}
	left, err := rep.TxnRecordsLeft()
	if err != nil {
		return err
	}
	if left {
		return errors.WithHintf(errors.Newf("node %d still holds transaction records", s.NodeID()),
			"the downgrade's down-migration of %s deletes them; it resumes and retries this step", clusterversion.V2_1TxnStamps)
	}
	return nil
}

// leaveGroup0 is migrations.Deps.Group0Leave: delete the formation record
// (from then on nothing prepares a group 0 replica on any node, and a node
// that restarts does not look for group 0), have every node that is not
// decommissioned leave, then wait until the nodes' schema digests agree
// (the pre-Raft sync loop merges what each node's catalog holds).
func (s *Server) leaveGroup0(ctx context.Context) error {
	rep := s.Replica()
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: keys.Group0FormationKey()}}); err != nil {
		return errors.Wrap(err, "deleting the group 0 formation record")
	}
	err := s.onEveryNode(ctx, "not every node left group 0", func(n nodeapi.NodeStatus) error {
		if n.NodeID == s.NodeID() {
			return s.g0.Leave(ctx)
		}
		_, err := s.node.Group0SetState(ctx, n.Address, &nodeapi.Group0SetStateRequest{State: string(group0.UsePreRaft), Leave: true})
		return err
	})
	if err != nil {
		return err
	}
	return s.waitSchemaConverged(ctx, time.Minute)
}

// waitSchemaConverged waits until every live node gossips this node's
// schema digest.
func (s *Server) waitSchemaConverged(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		g, exec := s.gossip, s.exec
		s.mu.Unlock()
		var differ []int32
		if g != nil && exec != nil {
			mine := exec.Catalog().Digest()
			for _, m := range g.Members() {
				if m.IsLive() && m.Meta.SchemaDigest != mine {
					differ = append(differ, m.Meta.NodeID)
				}
			}
		}
		if g != nil && exec != nil && len(differ) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.WithHintf(errors.Newf("the schemas of %s have not converged with node %d's after leaving group 0",
				autoupgrade.NodeList(differ), s.NodeID()), "the pre-Raft schema sync merges them; the downgrade resumes this step")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// release21Blockers is what refuses a downgrade from 2.1: the schema's
// uses of 2.1's stored formats.
func (s *Server) release21Blockers() []migrations.Blocker {
	s.mu.Lock()
	exec := s.exec
	s.mu.Unlock()
	if exec == nil {
		return nil
	}
	var out []migrations.Blocker
	for _, b := range exec.Release21Blockers() {
		out = append(out, migrations.Blocker{Reason: b.Reason, Fix: b.Fix})
	}
	return out
}

// commandLevel is what the cluster version lets this node's data group
// append (kv.Config.CommandLevel).
func (s *Server) commandLevel() kv.CommandLevel {
	v := s.ActiveVersion()
	switch {
	case !v.Less(clusterversion.V2_1TxnStamps.Version()):
		return kv.Level21Txns
	case !v.Less(clusterversion.V2_1Fence.Version()):
		return kv.Level21Fence
	}
	return kv.Level20
}

func (n nodeService) PurgeRaftLog(ctx context.Context, req *nodeapi.PurgeRaftLogRequest) (*nodeapi.PurgeRaftLogResponse, error) {
	s := n.s
	rep := s.Replica()
	if rep == nil {
		return nil, nodeapi.WithCode(errors.New("this node has not joined a cluster yet"), codes.FailedPrecondition)
	}
	if err := rep.PurgeLogThrough(ctx, req.Through); err != nil {
		return nil, nodeapi.WithCode(err, codes.Unavailable)
	}
	return &nodeapi.PurgeRaftLogResponse{NodeID: s.NodeID()}, nil
}

// purgeRaftLogs has every node that is not decommissioned compact its data
// group log through index (migrations.Deps.PurgeRaftLogs).
func (s *Server) purgeRaftLogs(ctx context.Context, through uint64) error {
	return s.onEveryNode(ctx, fmt.Sprintf("not every node compacted its Raft log through %d", through), func(n nodeapi.NodeStatus) error {
		if n.NodeID == s.NodeID() {
			return s.Replica().PurgeLogThrough(ctx, through)
		}
		_, err := s.node.PurgeRaftLog(ctx, n.Address, &nodeapi.PurgeRaftLogRequest{Through: through})
		return err
	})
}

// onEveryNode runs do for every node that is not decommissioned, one after
// the other, and reports every node's failure under what (a downgrade step
// is retried once every node is reachable).
func (s *Server) onEveryNode(ctx context.Context, what string, do func(n nodeapi.NodeStatus) error) error {
	statuses, err := s.NodeStatuses(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, n := range statuses {
		if n.Membership == autoupgrade.Decommissioned {
			continue
		}
		if err := do(n); err != nil {
			errs = append(errs, fmt.Sprintf("node %d: %v", n.NodeID, err))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.WithHint(errors.Newf("%s: %v", what, errs),
			"the downgrade resumes this step once every node is reachable")
	}
	return nil
}
