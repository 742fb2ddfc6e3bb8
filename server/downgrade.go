package server

import (
	"context"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
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

// commandLevel is what the cluster version lets this node's data group
// append (kv.Config.CommandLevel).
func (s *Server) commandLevel() kv.CommandLevel {
	v := s.ActiveVersion()
	switch {
	case !v.Less(clusterversion.V2_1.Version()):
		return kv.Level21
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
