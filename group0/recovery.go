package group0

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeid"
)

// RecoveryKind says how the recovery procedure brings nodes out of
// recovery mode.
type RecoveryKind string

// The kinds of recovery.
const (
	// RecoverPreRaft: group 0 was never formed (no formation record); the
	// nodes in recovery go back to use_pre_raft_procedures.
	RecoverPreRaft RecoveryKind = "back-to-pre-raft"
	// RecoverRejoin: group 0 is healthy (the nodes not in recovery have a
	// leader that commits); the nodes in recovery rejoin it.
	RecoverRejoin RecoveryKind = "rejoin"
	// RecoverReform: every node is in recovery; group 0 is formed anew, in
	// a new generation, from the seed's state.
	RecoverReform RecoveryKind = "re-form"
)

// RecoveryPlan is what `kvnode node group0-recover` shows before it acts.
type RecoveryPlan struct {
	Kind       RecoveryKind `json:"kind"`
	Recovering []nodeid.ID  `json:"recovering"`
	// Seed is the node whose group 0 state the new generation starts
	// from (RecoverReform only), with its state for the operator.
	Seed     nodeid.ID `json:"seed,omitempty"`
	SeedInfo NodeInfo  `json:"-"`
	// Formation is the record the recovery writes (RecoverReform) or the
	// current one (RecoverRejoin).
	Formation *Formation `json:"formation,omitempty"`
	Prev      *Formation `json:"-"`
	// Target is the state the recovering nodes end in.
	Target State `json:"target"`
	// Candidates lists every node with its group 0 state, best seed first.
	Candidates []NodeInfo `json:"-"`
	// Steps is the plan in words, one line per step.
	Steps []string `json:"steps"`
}

// ErrNothingToRecover is returned when no node is in recovery mode.
var ErrNothingToRecover = errors.New("no node is in group 0 recovery mode")

// better orders seed candidates: the most recent group 0 state first (by
// generation, then applied Raft index), then the smallest node ID.
func better(a, b NodeInfo) bool {
	if a.Generation != b.Generation {
		return a.Generation > b.Generation
	}
	if a.Applied != b.Applied {
		return a.Applied > b.Applied
	}
	return a.NodeID < b.NodeID
}

// ChooseSeed returns the nodes ordered by how recent their group 0 state
// is; the first is the seed. Within a generation, the replica with the
// highest applied index has applied every entry any other survivor has
// applied (applied logs are prefixes of one log), so starting from it
// loses no schema change that any survivor saw.
func ChooseSeed(nodes []NodeInfo) []NodeInfo {
	out := append([]NodeInfo(nil), nodes...)
	sort.SliceStable(out, func(i, j int) bool { return better(out[i], out[j]) })
	return out
}

// PlanRecovery decides how to bring the nodes in recovery back:
// o is every non-decommissioned node; upgraded says the cluster version
// 2.0 is active (the upgrade finished); healthy says the nodes not in
// recovery have a group 0 leader that can commit.
func PlanRecovery(o Observation, upgraded, healthy bool) (RecoveryPlan, error) {
	var silent []string
	for _, n := range o.Nodes {
		if n.Err != nil {
			silent = append(silent, fmt.Sprintf("node %d: %v", n.NodeID, n.Err))
		}
	}
	if len(silent) > 0 {
		return RecoveryPlan{}, errors.WithHint(errors.Newf("every node that is not decommissioned must answer; these do not: %s",
			strings.Join(silent, "; ")),
			"decommission the nodes that are gone for good first (`kvnode node decommission ID --host=...`), and start the others; nothing was changed")
	}
	var rec, others []NodeInfo
	for _, n := range o.Nodes {
		if n.State == Recovery {
			rec = append(rec, n)
		} else {
			others = append(others, n)
		}
	}
	if len(rec) == 0 {
		return RecoveryPlan{}, errors.WithHint(ErrNothingToRecover,
			"to enter recovery on a node: UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state', then restart that node (docs/recovery.md); nothing was changed")
	}
	p := RecoveryPlan{Recovering: ids(rec), Candidates: ChooseSeed(o.Nodes)}
	switch {
	case o.Formation == nil:
		p.Kind, p.Target = RecoverPreRaft, UsePreRaft
		p.Steps = []string{
			"group 0 was never formed (no formation record): there is no group 0 state to recover",
			fmt.Sprintf("node(s) %s go back to %s; the upgrade to 2.0, if it is due, starts over", nodeid.List(p.Recovering), UsePreRaft),
		}
	case len(others) > 0:
		if !healthy {
			return RecoveryPlan{}, errors.WithHintf(errors.Newf(
				"node(s) %s are not in recovery mode, but group 0 has no leader that can commit", nodeid.List(ids(others))),
				"group 0 lost its majority: enter recovery on every surviving node (UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state', then restart it), decommission the dead ones, and run this again; nothing was changed")
		}
		f := *o.Formation
		p.Kind, p.Formation = RecoverRejoin, &f
		p.Target = rejoinTarget(others)
		p.Steps = []string{
			fmt.Sprintf("group 0 (%s) is healthy on node(s) %s", f, nodeid.List(ids(others))),
			fmt.Sprintf("node(s) %s rejoin it (a replica of another generation is wiped first and catches up by snapshot)", nodeid.List(p.Recovering)),
			fmt.Sprintf("node(s) %s enter %s", nodeid.List(p.Recovering), p.Target),
		}
	default:
		seed := p.Candidates[0]
		prev := *o.Formation
		next := Formation{Generation: prev.Generation + 1, Seed: seed.NodeID, Reason: "recovery"}
		p.Kind, p.Seed, p.SeedInfo, p.Formation, p.Prev = RecoverReform, seed.NodeID, seed, &next, &prev
		p.Target = Synchronize
		if upgraded {
			p.Target = UsePostRaft
		}
		from := fmt.Sprintf("its group 0 state (generation %d, applied index %d, state ID %d)", seed.Generation, seed.Applied, seed.StateID)
		if seed.Generation == 0 {
			from = "its schema (it never held group 0 state)"
		}
		p.Steps = []string{
			fmt.Sprintf("seed: node %d, the survivor with the most recent group 0 state", seed.NodeID),
			fmt.Sprintf("write the formation record: generation %d seeded by node %d (generation %d is abandoned: its messages are refused)", next.Generation, seed.NodeID, prev.Generation),
			fmt.Sprintf("node %d wipes its group 0 Raft state and creates generation %d from %s", seed.NodeID, next.Generation, from),
		}
		if rest := slices.DeleteFunc(ids(rec), func(id nodeid.ID) bool { return id == seed.NodeID }); len(rest) > 0 {
			p.Steps = append(p.Steps, fmt.Sprintf("node(s) %s wipe their group 0 Raft state and join generation %d as learners (snapshot, then promotion)", nodeid.List(rest), next.Generation))
		}
		if upgraded {
			p.Steps = append(p.Steps, fmt.Sprintf("every node enters %s: the cluster continues post-Raft", UsePostRaft))
		} else {
			p.Steps = append(p.Steps, fmt.Sprintf("every node enters %s; the 2.0 migration then merges every node's schema into group 0 and finishes the upgrade", Synchronize))
		}
	}
	return p, nil
}

// rejoinTarget is the state a node rejoining a healthy group 0 takes: the
// post-Raft procedures if every other node uses them, synchronize while an
// upgrade is past its discovery, else the pre-Raft procedures.
func rejoinTarget(others []NodeInfo) State {
	allPost, anyPast := true, false
	for _, n := range others {
		allPost = allPost && n.State == UsePostRaft
		anyPast = anyPast || n.State == UsePostRaft || n.State == Synchronize
	}
	switch {
	case allPost:
		return UsePostRaft
	case anyPast:
		return Synchronize
	}
	return UsePreRaft
}

// Describe renders the plan for the operator.
func (p RecoveryPlan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "recovery plan (%s) for node(s) %s:\n", p.Kind, nodeid.List(p.Recovering))
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, s)
	}
	if len(p.Candidates) > 0 {
		b.WriteString("group 0 state of every node (most recent first):\n")
		b.WriteString("  node  state                     generation  applied  state_id  digest\n")
		for _, n := range p.Candidates {
			fmt.Fprintf(&b, "  %-5d %-25s %-11d %-8d %-9d %s\n", n.NodeID, n.State, n.Generation, n.Applied, n.StateID, n.Digest)
		}
	}
	return b.String()
}
