package upgrademanager

import (
	"context"
	"fmt"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// Plan is the answer of SHOW UPGRADE PLAN and GET /_status/upgrade/plan: a
// dry run of SET CLUSTER SETTING version = Target from the active version.
type Plan struct {
	From   string `json:"from"`
	Target string `json:"target"`
	// Direction is "upgrade", "downgrade" or "none".
	Direction string        `json:"direction"`
	Steps     []PlanStep    `json:"steps"`
	Blockers  []PlanBlocker `json:"blockers"`
}

// PlanStep is one action the change would take, in order.
type PlanStep struct {
	Step   string `json:"step"`
	Action string `json:"action"`
	Detail string `json:"detail"`
	// Reversible says whether the cluster can come back from this step
	// with SET CLUSTER SETTING version (a downgrade, or the upgrade again).
	Reversible bool `json:"reversible"`
}

// PlanBlocker is one reason the change would be refused now, with its fix.
type PlanBlocker struct {
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// StepCheck is what a step's migration check found (Migrations.Check).
type StepCheck struct {
	Detail   string
	Blockers []PlanBlocker
}

// Plan runs every validation of a change to target (the next release if
// target is zero) and every precondition check of the migrations and
// down-migrations it would run, and reports what it would do. It changes
// nothing.
func (m *Manager) Plan(ctx context.Context, target clusterversion.Version) (*Plan, error) {
	in, err := m.cfg.Cluster.Input(ctx)
	if err != nil {
		return nil, err
	}
	if target == (clusterversion.Version{}) {
		target = in.Active.Release()
		for _, r := range clusterversion.Releases() {
			if in.Active.Release().Less(r) {
				target = r
				break
			}
		}
	}
	p := &Plan{From: in.Active.String(), Target: target.String(), Direction: "none"}
	block := func(err error) {
		fix := "see the error"
		if hs := errors.GetAllHints(err); len(hs) > 0 {
			fix = hs[0]
		}
		p.Blockers = append(p.Blockers, PlanBlocker{Reason: err.Error(), Fix: fix})
	}
	check := func(v clusterversion.Version, down bool) (StepCheck, bool) {
		c, ok, err := m.cfg.Migrations.Check(ctx, v, down)
		if err != nil {
			block(errors.Wrapf(err, "checking the %s of %s", map[bool]string{false: "migration", true: "down-migration"}[down], v))
		}
		p.Blockers = append(p.Blockers, c.Blockers...)
		return c, ok
	}
	switch {
	case target.Less(in.Active):
		p.Direction = "downgrade"
		if _, err := autoupgrade.ValidateDowngrade(in, target); err != nil {
			block(err)
		}
		if bs, err := m.refusals(ctx, in.Active, target); err != nil {
			block(err)
		} else {
			p.Blockers = append(p.Blockers, bs...)
		}
		for v := in.Active; target.Less(v); {
			below, ok := clusterversion.Prev(v)
			if !ok {
				break
			}
			after, hasDown := m.cfg.Migrations.DownWhen(v)
			if hasDown && !after {
				if c, ok := check(v, true); ok {
					p.Steps = append(p.Steps, PlanStep{Step: v.String(), Action: "down-migration", Detail: c.Detail, Reversible: true})
				}
			}
			p.Steps = append(p.Steps, PlanStep{Step: below.String(), Action: "persist on every node",
				Detail: fmt.Sprintf("lower %s: %s no longer applies", v, describe(v)), Reversible: true})
			if hasDown && after {
				if c, ok := check(v, true); ok {
					p.Steps = append(p.Steps, PlanStep{Step: below.String(), Action: "down-migration", Detail: c.Detail, Reversible: true})
				}
			}
			v = below
		}
		p.Steps = append(p.Steps, PlanStep{Step: target.String(), Action: "complete",
			Detail: fmt.Sprintf("cluster.preserve_downgrade_option stays %s; binaries of %s may then replace the others, "+
				"and RESET of the option upgrades again", target, target), Reversible: true})
	case in.Active.Less(target):
		p.Direction = "upgrade"
		if _, err := autoupgrade.ValidateManual(in, target); err != nil {
			block(err)
		}
		for _, v := range clusterversion.Between(in.Active, target) {
			p.Steps = append(p.Steps, PlanStep{Step: v.String(), Action: "persist on every node", Detail: describe(v), Reversible: true})
			if c, ok := check(v, false); ok {
				p.Steps = append(p.Steps, PlanStep{Step: v.String(), Action: "migration", Detail: c.Detail, Reversible: true})
			}
		}
	default:
		if _, err := autoupgrade.ValidateManual(in, target); err != nil {
			block(err)
		}
	}
	return p, nil
}

func describe(v clusterversion.Version) string {
	if k, ok := clusterversion.Lookup(v); ok {
		return k.Description()
	}
	return v.String()
}
