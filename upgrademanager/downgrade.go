package upgrademanager

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// DowngradeRecord is the replicated record of a downgrade under way
// (keys.Downgrade): its target release and the version it started from.
// clusterversion/DESIGN.md ("How a downgrade moves down the ladder") says
// what its presence means to every node.
type DowngradeRecord struct {
	Target  string `json:"target"`
	From    string `json:"from"`
	Started int64  `json:"started"` // Unix nanos
}

// Downgrading returns the target of the downgrade under way, or false.
func (m *Manager) Downgrading(ctx context.Context) (clusterversion.Version, bool, error) {
	rec, _, found, err := m.readDowngrade(ctx)
	if err != nil || !found {
		return clusterversion.Version{}, false, err
	}
	v, err := clusterversion.Parse(rec.Target)
	return v, err == nil, err
}

func (m *Manager) readDowngrade(ctx context.Context) (DowngradeRecord, []byte, bool, error) {
	db, err := m.db()
	if err != nil {
		return DowngradeRecord{}, nil, false, err
	}
	raw, found, err := db.Get(ctx, keys.DowngradeKey())
	if err != nil || !found {
		return DowngradeRecord{}, nil, false, err
	}
	var rec DowngradeRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return DowngradeRecord{}, nil, false, errors.Wrap(err, "corrupt downgrade record")
	}
	return rec, raw, true, nil
}

// Downgrade moves the cluster version down to target, the release just
// below the active one, one ladder step at a time (clusterversion/DESIGN.md):
// for each step S from the replicated version down, run S's "before"
// down-migration, persist the step below on every node, record it, run S's
// "after" down-migration. It first records the downgrade and sets
// cluster.preserve_downgrade_option to target in one write, and removes the
// record once target is persisted everywhere. A call on any node resumes a
// downgrade that stopped anywhere.
func (m *Manager) Downgrade(ctx context.Context, target clusterversion.Version) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.inProgress.Store(nil)
	rec, raw, found, err := m.readDowngrade(ctx)
	if err != nil {
		return err
	}
	if found && rec.Target != target.String() {
		return errors.WithHintf(errors.Wrapf(autoupgrade.ErrDowngradeInProgress, "a downgrade to %s is under way", rec.Target),
			"wait until SHOW UPGRADE STATUS says it has completed")
	}
	from, _ := clusterversion.Parse(rec.From)
	if !found {
		in, err := m.cfg.Cluster.Input(ctx)
		if err != nil {
			return err
		}
		if _, err := autoupgrade.ValidateDowngrade(in, target); err != nil {
			return err
		}
		rv, err := m.ReplicatedVersion(ctx)
		if err != nil {
			return err
		}
		if err := m.refused(ctx, rv, target); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		if raw, err = m.beginDowngrade(ctx, rv, target); err != nil {
			return err
		}
		from = rv
		m.cfg.Log.Info("downgrade started", "from", rv.String(), "target", target.String())
	}
	for resumed := true; ; resumed = false {
		rv, err := m.ReplicatedVersion(ctx)
		if err != nil {
			return err
		}
		// The step lowered last may have a cleanup that has not finished
		// (a coordinator stopped after recording the lower version).
		if above, ok := next(rv); ok && resumed && !from.Less(above) {
			if after, has := m.cfg.Migrations.DownWhen(above); has && after {
				if err := m.cfg.Migrations.RunDown(ctx, above); err != nil {
					return err
				}
			}
		}
		in, err := m.cfg.Cluster.Input(ctx)
		if err != nil {
			return err
		}
		if err := autoupgrade.ValidateDowngradeNodes(in, target); err != nil {
			return err
		}
		if err := m.refused(ctx, rv, target); err != nil {
			return err
		}
		if !target.Less(rv) {
			// Every step is lowered. A coordinator that stopped after
			// recording the last one may have left a node that joined
			// meanwhile above it: persist it everywhere again.
			if resumed {
				if err := m.persistOnEveryNode(ctx, target, in.Nodes, true); err != nil {
					return err
				}
			}
			if err := m.waitReported(ctx, target); err != nil {
				return err
			}
			return m.endDowngrade(ctx, raw, target)
		}
		step := rv
		below, _ := clusterversion.Prev(step)
		if err := m.beginStep(ctx, below, fmt.Sprintf("downgrading to %s: lowering %s to %s", target, step, below)); err != nil {
			return err
		}
		// The next upgrade through step runs its migration again.
		if err := m.cfg.Migrations.Forget(ctx, step, false); err != nil {
			return err
		}
		if after, has := m.cfg.Migrations.DownWhen(step); has && !after {
			if err := m.cfg.Migrations.RunDown(ctx, step); err != nil {
				return err
			}
		}
		if err := m.persistOnEveryNode(ctx, below, in.Nodes, true); err != nil {
			return err
		}
		if err := m.lowerReplicatedVersion(ctx, step, below); err != nil {
			return err
		}
		m.cfg.Log.Info("cluster version step lowered", "from", step.String(), "to", below.String(), "target", target.String())
		if after, has := m.cfg.Migrations.DownWhen(step); has && after {
			if err := m.cfg.Migrations.RunDown(ctx, step); err != nil {
				return err
			}
		}
	}
}

// ErrRefused marks a downgrade refused because something in use cannot be
// represented by the target release.
var ErrRefused = errors.New("the downgrade is refused: the cluster uses what the target release cannot represent")

// refused returns ErrRefused, listing every blocker with its fix, if any
// step in (target, from] refuses to be lowered now.
func (m *Manager) refused(ctx context.Context, from, target clusterversion.Version) error {
	blockers, err := m.refusals(ctx, from, target)
	if err != nil || len(blockers) == 0 {
		return err
	}
	var reasons, fixes []string
	for _, b := range blockers {
		reasons = append(reasons, b.Reason)
		fixes = append(fixes, b.Fix)
	}
	return errors.WithHint(errors.Wrapf(ErrRefused, "%s", strings.Join(reasons, "; ")), strings.Join(fixes, "; "))
}

// refusals lists what refuses lowering any step in (target, from], each
// with its fix (the downgrade's check and the plan's blockers).
func (m *Manager) refusals(ctx context.Context, from, target clusterversion.Version) ([]PlanBlocker, error) {
	var out []PlanBlocker
	for _, v := range clusterversion.Between(target, from) {
		b, err := m.cfg.Migrations.Refusals(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// next returns the ladder entry just above v.
func next(v clusterversion.Version) (clusterversion.Version, bool) {
	for _, k := range clusterversion.Keys() {
		if v.Less(k.Version()) {
			return k.Version(), true
		}
	}
	return clusterversion.Version{}, false
}

// waitReported waits until every node reports (in its status, which
// travels by gossip) a persisted version no higher than target. Until the
// record is gone nothing reads those reports as a finalization under way
// (autoupgrade.Decide); once it is, a report above the active version must
// again mean that a finalization step reached that node.
func (m *Manager) waitReported(ctx context.Context, target clusterversion.Version) error {
	for {
		nodes, err := m.cfg.Cluster.Nodes(ctx)
		if err != nil {
			return err
		}
		var behind []nodeid.ID
		for _, n := range nodes {
			if n.Membership != autoupgrade.Decommissioned && target.Less(n.Persisted) {
				behind = append(behind, n.ID)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.WithHintf(errors.Wrapf(ctx.Err(), "%s still report a cluster version above %s",
				nodeid.Names(behind), target), "the downgrade completes once their status catches up; it resumes by itself")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// beginDowngrade writes the downgrade record and sets
// cluster.preserve_downgrade_option to target, in one write.
func (m *Manager) beginDowngrade(ctx context.Context, from, target clusterversion.Version) ([]byte, error) {
	db, err := m.db()
	if err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(DowngradeRecord{Target: target.String(), From: from.String(), Started: time.Now().UnixNano()})
	ops, err := m.cfg.Cluster.PreserveOps(target)
	if err != nil {
		return nil, err
	}
	ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: keys.DowngradeKey(), Value: rec, ExpectAbsent: true})
	if err := db.Write(ctx, ops); err != nil {
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) {
			return nil, errors.WithHint(errors.Wrap(autoupgrade.ErrDowngradeInProgress, "another node started a downgrade at the same time"),
				"SHOW UPGRADE STATUS shows it; SET CLUSTER SETTING version to the same release resumes it")
		}
		return nil, err
	}
	return rec, nil
}

// endDowngrade deletes the downgrade record, setting the preserve option
// to target again in the same write (a RESET that raced with the start
// must not let the cluster finalize straight back up).
func (m *Manager) endDowngrade(ctx context.Context, raw []byte, target clusterversion.Version) error {
	db, err := m.db()
	if err != nil {
		return err
	}
	ops, err := m.cfg.Cluster.PreserveOps(target)
	if err != nil {
		return err
	}
	ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: keys.DowngradeKey(), Expected: raw, Delete: true})
	if err := db.Write(ctx, ops); err != nil {
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) && !cf.Exists {
			return nil // another coordinator ended it
		}
		return err
	}
	m.cfg.Log.Info("downgrade completed: binaries of the target release may now replace the others", "version", target.String())
	return nil
}

// lowerReplicatedVersion moves the replicated version from step down to
// below (a conditional write; a no-op if another coordinator did it).
func (m *Manager) lowerReplicatedVersion(ctx context.Context, step, below clusterversion.Version) error {
	return m.setReplicatedVersion(ctx, below, func(cur clusterversion.Version) (bool, error) {
		if step.Less(cur) {
			return false, errors.AssertionFailedf("the replicated version is %s, above %s, during a downgrade", cur, step)
		}
		return cur == step, nil // below it already: lowered by another coordinator
	})
}
