package group0

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeid"
)

// NodeInfo is what one node says about itself (the Group0State call).
type NodeInfo struct {
	NodeID nodeid.ID
	// Err is set when the node did not answer. errors.Is(Err,
	// ErrOldBinary) means it answered as a binary that has no group 0.
	Err    error
	Binary string
	State  State
	// Generation is the group 0 generation this node's replica belongs to
	// (0: it runs none).
	Generation uint64
	// Applied is the replica's applied Raft index; StateID the group 0
	// state ID it has applied; CatalogStateID the state its SQL catalog
	// reflects.
	Applied        uint64
	StateID        uint64
	CatalogStateID uint64
	// Digest is the node's catalog digest.
	Digest string
	// Leader is the group 0 leader this node knows of; Voters and
	// Learners the configuration its replica has applied.
	Leader           nodeid.ID
	Voters, Learners []nodeid.ID
	// Isolated: the node is in recovery and its replica talks to no one.
	Isolated bool
	// Waiting says what the node's coordinator work (if any) waits for.
	Waiting string
}

// Member reports whether id is in the configuration n reports.
func (n NodeInfo) Member(id nodeid.ID) bool {
	return slices.Contains(n.Voters, id) || slices.Contains(n.Learners, id)
}

// ErrOldBinary marks a node whose binary does not know group 0.
var ErrOldBinary = errors.New("the node's binary does not know group 0")

// ErrNodeInRecovery is returned by the upgrade while a node is in recovery.
var ErrNodeInRecovery = errors.New("a node is in group 0 recovery mode")

// Cluster is what the upgrade procedure needs from the cluster; the server
// implements it with RPCs. Every method is idempotent.
type Cluster interface {
	// Nodes lists every node that is not decommissioned (a linearizable
	// read of the data group).
	Nodes(ctx context.Context) ([]nodeid.ID, error)
	// Info asks one node for its state, bounded by a short timeout; a
	// node that does not answer gets NodeInfo.Err.
	Info(ctx context.Context, id nodeid.ID) NodeInfo
	// Formation reads the formation record (found=false if there is none).
	Formation(ctx context.Context) (f Formation, found bool, err error)
	// SwapFormation writes next if the record is still prev (nil: absent)
	// and returns the record that is there afterwards, ours or a
	// concurrent coordinator's.
	SwapFormation(ctx context.Context, prev *Formation, next Formation) (Formation, error)
	// Prepare makes node id a member of group 0 of f's generation: the
	// seed creates the group with its current schema, any other node
	// joins it as a learner (the leader promotes it once caught up).
	Prepare(ctx context.Context, id nodeid.ID, f Formation) error
	// SetState persists a new upgrade state on node id (a no-op if it is
	// already there; refused if it is a step backwards).
	SetState(ctx context.Context, id nodeid.ID, s State) error
	// SyncSchema merges the catalogs of the nodes into group 0 (pull,
	// last-writer-wins merge with group 0's schema, one state-checked
	// commit), then waits until each of them has applied group 0's schema
	// and their digests equal group 0's.
	SyncSchema(ctx context.Context, ids []nodeid.ID) error
}

// Step names a step of the procedure, for reports, logs and test hooks.
type Step string

// The steps.
const (
	StepDryRun      Step = "dry-run"
	StepDiscovery   Step = "discovery"
	StepJoin        Step = "join"
	StepSynchronize Step = "synchronize"
	StepSyncSchema  Step = "sync-schema"
	StepPostRaft    Step = "use-post-raft"
)

// ActionKind says what Decide wants done next.
type ActionKind int

// The actions.
const (
	// ActWait: nothing can be done until Waiting changes; observe again.
	ActWait ActionKind = iota
	// ActDone: every node uses the post-Raft procedures.
	ActDone
	// ActFormation: write Action.Formation (discovery).
	ActFormation
	// ActPrepare: make Action.Nodes members of group 0.
	ActPrepare
	// ActSynchronize: move Action.Nodes to synchronize.
	ActSynchronize
	// ActSyncAndFinish: merge Action.Nodes' schemas into group 0, then
	// move them to use_post_raft_procedures.
	ActSyncAndFinish
)

// Action is one decision of the procedure.
type Action struct {
	Kind      ActionKind
	Step      Step
	Nodes     []nodeid.ID
	Formation Formation
	// Prev is the record Formation replaces (nil: none).
	Prev *Formation
	// Waiting describes, for SHOW UPGRADE STATUS, what the procedure
	// waits for (ActWait) or does.
	Waiting string
}

// Observation is the cluster as the procedure last saw it.
type Observation struct {
	// Nodes holds one entry per non-decommissioned node, by ID.
	Nodes     []NodeInfo
	Formation *Formation
}

func ids(ns []NodeInfo) []nodeid.ID {
	out := make([]nodeid.ID, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.NodeID)
	}
	return out
}

// configOf returns group 0's configuration as its leader reports it, if a
// node of generation gen says it leads.
func configOf(o Observation, gen uint64) (NodeInfo, bool) {
	for _, n := range o.Nodes {
		if n.Err == nil && n.Generation == gen && n.Leader == n.NodeID {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// Decide is the upgrade procedure as a pure function: given what the
// cluster looks like, the next action. Run calls it in a loop, observing
// afresh before every decision, so the procedure resumes from whatever
// state a crashed coordinator (or a concurrent one) left: every decision
// depends only on persisted state (the upgrade states, the formation
// record, group 0's configuration and contents).
//
// The order of the checks is the procedure:
//
//  1. dry run: every node answers, none has an old binary, none is in
//     recovery;
//  2. discovery: the formation record names the seed (smallest ID);
//  3. join: the seed creates group 0, every other node joins it, until
//     the leader's configuration holds every node;
//  4. synchronize: every node leaves the pre-Raft procedure;
//  5. schema sync and use_post_raft_procedures, for the nodes in
//     synchronize.
func Decide(o Observation) (Action, error) {
	if len(o.Nodes) == 0 {
		return Action{}, errors.AssertionFailedf("the cluster has no nodes")
	}
	// 1. Dry run.
	var silent []string
	for _, n := range o.Nodes {
		if n.Err == nil {
			continue
		}
		if errors.Is(n.Err, ErrOldBinary) {
			return Action{}, errors.WithHintf(errors.Wrapf(n.Err,
				"node %d runs release %s, which cannot take part in group 0", n.NodeID, orUnknown(n.Binary)),
				"restart node %d on a release 2.0 binary; the upgrade resumes by itself", n.NodeID)
		}
		silent = append(silent, fmt.Sprintf("node %d (%v)", n.NodeID, n.Err))
	}
	if len(silent) > 0 {
		return Action{Kind: ActWait, Step: StepDryRun, Waiting: "waiting for every node to report its group 0 state; not answering: " +
			strings.Join(silent, "; ") + " (a node that is gone for good must be decommissioned, see docs/recovery.md)"}, nil
	}
	var recovering, pre, sync, post []nodeid.ID
	for _, n := range o.Nodes {
		switch n.State {
		case Recovery:
			recovering = append(recovering, n.NodeID)
		case UsePreRaft:
			pre = append(pre, n.NodeID)
		case Synchronize:
			sync = append(sync, n.NodeID)
		case UsePostRaft:
			post = append(post, n.NodeID)
		}
	}
	if len(recovering) > 0 {
		return Action{}, errors.WithHint(errors.Wrapf(ErrNodeInRecovery, "node(s) %s in recovery mode", nodeid.List(recovering)),
			"finish the recovery runbook (docs/recovery.md, `kvnode node group0-recover`); the upgrade resumes afterwards")
	}
	if len(post) == len(o.Nodes) {
		return Action{Kind: ActDone, Step: StepPostRaft}, nil
	}

	// 2. Discovery.
	all := ids(o.Nodes)
	lowest := slices.Min(all)
	if o.Formation == nil {
		f := Formation{Generation: 1, Seed: lowest, Reason: "upgrade"}
		return Action{Kind: ActFormation, Step: StepDiscovery, Formation: f,
			Waiting: fmt.Sprintf("discovery: node %d (the smallest ID) creates group 0", lowest)}, nil
	}
	f := *o.Formation
	seedPresent := slices.Contains(all, f.Seed)
	// The group of generation f exists among the remaining nodes if one of
	// them holds its state, knows a leader, or is its seed. A node that only
	// prepared an empty replica of it (a join the seed never answered)
	// does not count: with the seed gone, nobody can give it the state.
	formed := false
	for _, n := range o.Nodes {
		formed = formed || (n.Generation == f.Generation && (n.StateID > 0 || n.Leader != 0 || n.NodeID == f.Seed))
	}
	if !seedPresent && !formed {
		// The seed was decommissioned before anyone else got the group's
		// state (before it created the group, or before a join completed):
		// discovery runs again among the nodes that remain.
		next := Formation{Generation: f.Generation + 1, Seed: lowest, Reason: "upgrade"}
		return Action{Kind: ActFormation, Step: StepDiscovery, Formation: next, Prev: &f,
			Waiting: fmt.Sprintf("discovery: seed node %d is gone; node %d creates group 0 instead", f.Seed, lowest)}, nil
	}

	// 3. Join.
	if seedPresent && !formed {
		return Action{Kind: ActPrepare, Step: StepJoin, Nodes: []nodeid.ID{f.Seed}, Formation: f,
			Waiting: fmt.Sprintf("node %d creates group 0 (%s) with its schema", f.Seed, f)}, nil
	}
	leader, haveLeader := configOf(o, f.Generation)
	var joining []nodeid.ID
	for _, n := range o.Nodes {
		if n.Generation != f.Generation || (haveLeader && !leader.Member(n.NodeID)) {
			joining = append(joining, n.NodeID)
		}
	}
	if !haveLeader {
		return Action{Kind: ActWait, Step: StepJoin,
			Waiting: fmt.Sprintf("waiting for group 0 (generation %d) to elect a leader", f.Generation)}, nil
	}
	if len(joining) > 0 {
		return Action{Kind: ActPrepare, Step: StepJoin, Nodes: joining, Formation: f,
			Waiting: fmt.Sprintf("node(s) %s join group 0 as learners", nodeid.List(joining))}, nil
	}

	// 4. Synchronize.
	if len(pre) > 0 {
		return Action{Kind: ActSynchronize, Step: StepSynchronize, Nodes: pre,
			Waiting: fmt.Sprintf("node(s) %s enter synchronize (the pre-Raft schema path closes)", nodeid.List(pre))}, nil
	}

	// 5. Schema sync, then the post-Raft procedures. Every node is in
	// synchronize or already past it here: no pre-Raft schema change can
	// happen any more, so what the merge collects is final.
	return Action{Kind: ActSyncAndFinish, Step: StepSyncSchema, Nodes: sync,
		Waiting: fmt.Sprintf("merging the schema of node(s) %s into group 0", nodeid.List(sync))}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// Upgrade runs the upgrade procedure (the 2.0 migration).
type Upgrade struct {
	Cluster Cluster
	Log     *slog.Logger
	// Report receives what the procedure does or waits for ("" when it
	// ends); the server shows it in SHOW UPGRADE STATUS.
	Report func(string)
	// Timeout bounds one Run (default 2 minutes): a wait that does not end
	// fails the run with what it waited for; the migration job records
	// the error and the upgrade is retried later.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between observations
	// while waiting or after a failed action (defaults 100ms, 2s).
	MinBackoff, MaxBackoff time.Duration
	// Hook, if set, runs before every action (testing: pause or crash
	// points). An error from it ends Run with that error.
	Hook func(ctx context.Context, a Action) error
}

func (u *Upgrade) report(msg string) {
	if u.Report != nil {
		u.Report(msg)
	}
}

func (u *Upgrade) log() *slog.Logger {
	if u.Log != nil {
		return u.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Observe gathers an Observation: the node list, every node's state (in
// parallel) and the formation record.
func Observe(ctx context.Context, c Cluster) (Observation, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return Observation{}, errors.Wrap(err, "listing the cluster's nodes")
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i] < nodes[j] })
	o := Observation{Nodes: make([]NodeInfo, len(nodes))}
	var wg sync.WaitGroup
	for i, id := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info := c.Info(ctx, id)
			info.NodeID = id
			o.Nodes[i] = info
		}()
	}
	wg.Wait()
	f, found, err := c.Formation(ctx)
	if err != nil {
		return Observation{}, errors.Wrap(err, "reading the group 0 formation record")
	}
	if found {
		o.Formation = &f
	}
	return o, nil
}

// Run drives the cluster to use_post_raft_procedures on every node. It
// returns nil once that holds, an error that names the problem for a
// condition no waiting can fix (an old binary, a node in recovery), or,
// after Timeout, an error naming what it was waiting for.
func (u *Upgrade) Run(ctx context.Context) error {
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	minB, maxB := u.MinBackoff, u.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(2*time.Second, minB)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer u.report("")
	backoff := minB
	last := ""
	pause := func(why string) error {
		u.report(why)
		if why != last {
			u.log().Info("group 0 upgrade: " + why)
			last = why
		}
		select {
		case <-ctx.Done():
			return errors.WithHint(errors.Newf("group 0 upgrade stopped after %s: %s", timeout, why),
				"SHOW UPGRADE STATUS shows each node's group 0 state; the upgrade is retried automatically, or with SET CLUSTER SETTING version")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxB)
		return nil
	}
	for {
		o, err := Observe(ctx, u.Cluster)
		if err != nil {
			if perr := pause(fmt.Sprintf("observing the cluster: %v", err)); perr != nil {
				return perr
			}
			continue
		}
		a, err := Decide(o)
		if err != nil {
			return err
		}
		switch a.Kind {
		case ActDone:
			u.log().Info("group 0 upgrade: every node uses the post-Raft schema procedures")
			return nil
		case ActWait:
			if err := pause(a.Waiting); err != nil {
				return err
			}
			continue
		}
		u.report(a.Waiting)
		if a.Waiting != last {
			u.log().Info("group 0 upgrade: " + a.Waiting)
			last = a.Waiting
		}
		if u.Hook != nil {
			if err := u.Hook(ctx, a); err != nil {
				return err
			}
		}
		if err := u.do(ctx, a); err != nil {
			if perr := pause(fmt.Sprintf("%s failed, retrying: %v", a.Step, err)); perr != nil {
				return errors.CombineErrors(perr, err)
			}
			continue
		}
		backoff = minB
	}
}

func (u *Upgrade) do(ctx context.Context, a Action) error {
	c := u.Cluster
	switch a.Kind {
	case ActFormation:
		_, err := c.SwapFormation(ctx, a.Prev, a.Formation)
		return err
	case ActPrepare:
		var errs []string
		for _, id := range a.Nodes {
			if err := c.Prepare(ctx, id, a.Formation); err != nil {
				errs = append(errs, fmt.Sprintf("node %d: %v", id, err))
			}
		}
		if len(errs) > 0 {
			return errors.Newf("joining group 0: %s", strings.Join(errs, "; "))
		}
		return nil
	case ActSynchronize:
		return forEach(ctx, a.Nodes, func(id nodeid.ID) error { return c.SetState(ctx, id, Synchronize) })
	case ActSyncAndFinish:
		if err := c.SyncSchema(ctx, a.Nodes); err != nil {
			return err
		}
		return forEach(ctx, a.Nodes, func(id nodeid.ID) error { return c.SetState(ctx, id, UsePostRaft) })
	}
	return errors.AssertionFailedf("unknown action %d", a.Kind)
}

func forEach(ctx context.Context, ids []nodeid.ID, fn func(nodeid.ID) error) error {
	var errs []string
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(id); err != nil {
			errs = append(errs, fmt.Sprintf("node %d: %v", id, err))
		}
	}
	if len(errs) > 0 {
		return errors.Newf("%s", strings.Join(errs, "; "))
	}
	return nil
}
