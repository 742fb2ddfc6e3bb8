package member

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// Recovery is the recovery procedure (`kvnode node group0-recover`),
// coordinated by the node that receives the request, as group0.Upgrade is
// the upgrade's. It needs the data group (the node list and the formation
// record are replicated there); group 0 itself may be dead.
//
//  1. Plan: ask every non-decommissioned node for its group 0 state (all
//     must answer: the dead ones must be decommissioned first), then
//     group0.PlanRecovery: back to the pre-Raft procedures if group 0 was
//     never formed; rejoin the healthy group 0 if only some nodes are in
//     recovery and group 0 answers; otherwise re-form group 0 in a new
//     generation from the survivor with the most recent state.
//  2. Run: carry the plan out. Every step is idempotent; a recovery that
//     stops half-way is run again.
type Recovery struct {
	c Cluster
}

// Recovery returns the recovery procedure with this node as coordinator.
func (m *Member) Recovery() *Recovery { return &Recovery{c: Cluster{m: m}} }

// Group0Recover implements the kvnode.Node method.
func (m *Member) Group0Recover(ctx context.Context, req *nodeapi.Group0RecoverRequest) (*nodeapi.Group0RecoverResponse, error) {
	if err := m.require(); err != nil {
		return nil, err
	}
	if err := m.node.Ready(); err != nil {
		return nil, err
	}
	r := m.Recovery()
	plan, err := r.Plan(ctx)
	if err != nil {
		return nil, nodeapi.WithCode(err, codes.FailedPrecondition)
	}
	resp := &nodeapi.Group0RecoverResponse{Plan: plan.Describe(), Kind: string(plan.Kind), Seed: plan.Seed}
	if req.DryRun {
		return resp, nil
	}
	m.log.Warn("running the group 0 recovery procedure", "plan", plan.Describe())
	if err := r.Run(ctx, plan); err != nil {
		return nil, nodeapi.WithCode(errors.WithHint(err,
			"the recovery stopped part-way; run `kvnode node group0-recover` again: every step is idempotent"), codes.Unavailable)
	}
	resp.Done = true
	resp.Result = fmt.Sprintf("node(s) %s are in %s", nodeid.List(plan.Recovering), plan.Target)
	if plan.Kind == group0.RecoverReform {
		resp.Result = fmt.Sprintf("group 0 re-formed (%s); every node is in %s", plan.Formation, plan.Target)
	}
	m.log.Warn("group 0 recovery finished", "result", resp.Result)
	return resp, nil
}

// Plan observes the cluster and plans the recovery.
func (r *Recovery) Plan(ctx context.Context) (group0.RecoveryPlan, error) {
	m := r.c.m
	o, err := group0.Observe(ctx, r.c)
	if err != nil {
		return group0.RecoveryPlan{}, err
	}
	healthy := false
	if o.Formation != nil {
		for _, n := range o.Nodes {
			if n.Err != nil || n.State == group0.Recovery || n.Generation != o.Formation.Generation {
				continue
			}
			if st, err := m.askState(ctx, n.NodeID, true); err == nil && st.ProbeOK {
				healthy = true
				break
			}
		}
	}
	return group0.PlanRecovery(o, m.upgraded(), healthy)
}

// Run carries plan p out.
func (r *Recovery) Run(ctx context.Context, p group0.RecoveryPlan) error {
	c, m := r.c, r.c.m
	setTarget := func(id nodeid.ID) error { return m.setNodeState(ctx, id, p.Target, true) }
	switch p.Kind {
	case group0.RecoverPreRaft:
		return forEachNode(p.Recovering, setTarget)
	case group0.RecoverRejoin:
		if err := forEachNode(p.Recovering, func(id nodeid.ID) error { return c.Prepare(ctx, id, *p.Formation) }); err != nil {
			return err
		}
		if err := r.waitConfig(ctx, p.Formation.Generation, p.Recovering); err != nil {
			return err
		}
		return forEachNode(p.Recovering, setTarget)
	case group0.RecoverReform:
		cur, err := c.SwapFormation(ctx, p.Prev, *p.Formation)
		if err != nil {
			return errors.Wrap(err, "writing the new formation record")
		}
		if cur.Generation != p.Formation.Generation || cur.Seed != p.Formation.Seed {
			return errors.Newf("another recovery changed the formation record meanwhile (now %s); nothing was done by this one", cur)
		}
		f := cur
		if err := c.Prepare(ctx, f.Seed, f); err != nil {
			return errors.Wrapf(err, "node %d creating group 0 generation %d", f.Seed, f.Generation)
		}
		var rest []nodeid.ID
		for _, n := range p.Candidates {
			if n.NodeID != f.Seed {
				rest = append(rest, n.NodeID)
			}
		}
		if err := forEachNode(rest, func(id nodeid.ID) error { return c.Prepare(ctx, id, f) }); err != nil {
			return err
		}
		all := append([]nodeid.ID{f.Seed}, rest...)
		if err := r.waitConfig(ctx, f.Generation, all); err != nil {
			return err
		}
		return forEachNode(all, setTarget)
	}
	return errors.AssertionFailedf("unknown recovery kind %q", p.Kind)
}

// waitConfig waits (up to a minute) until group 0's leader of generation
// gen has every node of want in its configuration.
func (r *Recovery) waitConfig(ctx context.Context, gen uint64, want []nodeid.ID) error {
	deadline := time.Now().Add(time.Minute)
	last := ""
	for {
		o, err := group0.Observe(ctx, r.c)
		if err == nil {
			var leader *group0.NodeInfo
			for i, n := range o.Nodes {
				if n.Err == nil && n.Generation == gen && n.Leader == n.NodeID {
					leader = &o.Nodes[i]
				}
			}
			if leader == nil {
				last = fmt.Sprintf("group 0 generation %d has no leader yet", gen)
			} else {
				missing := slices.DeleteFunc(slices.Clone(want), leader.Member)
				if len(missing) == 0 {
					return nil
				}
				last = fmt.Sprintf("group 0's configuration lacks node(s) %s", nodeid.List(missing))
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return errors.Newf("timed out: %s", last)
		}
		select {
		case <-ctx.Done():
			return errors.Wrap(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// forEachNode calls fn for every node. One failure is returned whole (its
// hints and marks kept), as "node N: …"; several are listed in one message
// that keeps every hint.
func forEachNode(ids []nodeid.ID, fn func(nodeid.ID) error) error {
	var errs []error
	for _, id := range ids {
		if err := fn(id); err != nil {
			errs = append(errs, errors.Wrapf(err, "node %d", id))
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	var msgs, hints []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
		hints = append(hints, errors.GetAllHints(err)...)
	}
	err := errors.New(strings.Join(msgs, "; "))
	for _, h := range slices.Compact(hints) {
		err = errors.WithHint(err, h)
	}
	return err
}

// ReformAfterDataRecovery is the group 0 step of the data group's
// recovery (`kvnode node recover`), run by its coordinator once every
// survivor serves again: if group 0 has no leader that answers either,
// every survivor enters recovery mode and group 0's recovery procedure
// (Recovery, coordinated by the data group's seed at seedAddr) re-forms
// it. addrs maps the survivors to their RPC addresses. It returns what it
// did, in one sentence.
func (m *Member) ReformAfterDataRecovery(ctx context.Context, seedAddr string, survivors []nodeid.ID, addrs map[nodeid.ID]string) (string, error) {
	if !m.Enabled() {
		return "this release has no group 0", nil
	}
	if _, _, found, err := readFormation(ctx, m.node.Replica()); err != nil {
		return "", err
	} else if !found {
		return "group 0 was never formed", nil
	}
	var states []*nodeapi.Group0StateResponse
	for _, id := range survivors {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := m.cfg.Client.Group0State(cctx, addrs[id], &nodeapi.Group0StateRequest{Probe: true})
		cancel()
		if err != nil {
			return "", errors.Wrapf(err, "node %d", id)
		}
		states = append(states, st)
	}
	healthy := slices.ContainsFunc(states, func(st *nodeapi.Group0StateResponse) bool {
		return st.ProbeOK && st.State != string(group0.Recovery)
	})
	if healthy {
		return "group 0 kept its majority: it removes the decommissioned nodes by itself", nil
	}
	for _, id := range survivors {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := m.cfg.Client.Group0SetState(cctx, addrs[id], &nodeapi.Group0SetStateRequest{State: string(group0.Recovery)})
		cancel()
		if err != nil {
			return "", errors.Wrapf(err, "node %d entering group 0 recovery", id)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	resp, err := m.cfg.Client.Group0Recover(cctx, seedAddr, &nodeapi.Group0RecoverRequest{})
	if err != nil {
		return "", err
	}
	return resp.Result, nil
}
