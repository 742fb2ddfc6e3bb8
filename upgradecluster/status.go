package upgradecluster

import (
	"context"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/status"
)

// Status reports the state of cluster version management as this node
// sees it: SHOW UPGRADE STATUS and GET /_status/upgrade.
func (c *Cluster) Status(ctx context.Context) (*status.UpgradeStatus, error) {
	n := c.cfg.Node
	in, statuses, err := c.input(ctx, false)
	if err != nil {
		return nil, err
	}
	rv, err := c.mgr.ReplicatedVersion(ctx)
	if err != nil {
		return nil, err
	}
	d := autoupgrade.Decide(in)
	st := &status.UpgradeStatus{
		AnsweredBy: n.NodeID(), ActiveVersion: in.Active.String(), ReplicatedVersion: rv.String(),
		AutoUpgradeEnabled: in.AutoUpgradeEnabled, PreserveDowngrade: in.PreserveDowngrade,
		Decision: d.Summary(), Blockers: d.Blockers,
	}
	if !d.UpToDate() {
		st.Target = d.Target.String()
	}
	if in.Downgrading != (clusterversion.Version{}) {
		st.DowngradingTo = in.Downgrading.String()
		st.Blockers = autoupgrade.DowngradeBlockers(in, in.Downgrading)
	}
	if in.PreserveDowngrade != "" {
		if c, ok, err := n.Settings().LastChange(ctx, "cluster.preserve_downgrade_option"); err == nil && ok {
			st.PreserveSince = c.At
		}
	}
	st.InProgress = c.mgr.InProgress()
	st.Nodes = statuses
	if c.cfg.Group0.Enabled() {
		for _, g := range c.cfg.Group0.NodeStates(ctx, statuses) {
			st.Group0 = append(st.Group0, status.Group0Status(g))
		}
	}
	jobs, err := migrations.List(ctx, n.Replica())
	if err != nil {
		return nil, err
	}
	byVersion := map[string]migrations.Job{}
	for _, j := range jobs {
		if j.Direction == "" {
			byVersion[j.Version] = j // the newest job of the version wins
		}
	}
	for _, m := range migrations.All() {
		ms := console.Migration{Version: m.Version.String(), Description: m.Description, Status: "not started"}
		if !in.Active.Less(m.Version.Version()) {
			// The cluster is past the step without a job: it was created
			// at or after that version, so the migration had nothing to do.
			ms.Status, ms.Fraction = "not needed", 1
		}
		if j, ok := byVersion[m.Version.String()]; ok {
			ms.Status, ms.JobID, ms.Fraction = string(j.Status), j.ID, j.Fraction()
			ms.Done, ms.Total, ms.Coordinator, ms.Error = j.Progress.Done, j.Progress.Total, j.Coordinator, j.Error
		}
		st.Migrations = append(st.Migrations, ms)
	}
	// Down-migrations appear once they have a job: a downgrade ran them.
	for _, m := range migrations.AllDown() {
		for _, j := range jobs {
			if j.Direction == "down" && j.Version == m.Version.String() {
				ms := console.Migration{Version: m.Version.String() + " (down)", Description: j.Description,
					Status: string(j.Status), JobID: j.ID, Fraction: j.Fraction(), Done: j.Progress.Done, Total: j.Progress.Total,
					Coordinator: j.Coordinator, Error: j.Error}
				st.Migrations = append(st.Migrations, ms)
			}
		}
	}
	return st, nil
}
