package loqrecovery

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

// recoverNode is one node as the coordinator sees it.
type recoverNode struct {
	ID   nodeid.ID
	Addr string
	Info *nodeapi.RecoverInfo // nil: no state reported
	Err  string
	// Starting: the node answers but cannot report its state yet (it is
	// still starting): it is not dead.
	Starting bool
}

// dataRecoveryPlan is what the coordinator will do.
type dataRecoveryPlan struct {
	Seed      *nodeapi.RecoverInfo
	Survivors []*nodeapi.RecoverInfo // the seed first
	Dead      []recoverNode
	// Resume: a recovery seeded by Seed is under way; its record says
	// what it decided.
	Resume bool
	Record nodeapi.RecoveryRecord
}

func (p dataRecoveryPlan) survivorIDs() []nodeid.ID {
	out := make([]nodeid.ID, len(p.Survivors))
	for i, n := range p.Survivors {
		out[i] = n.NodeID
	}
	return out
}

func (p dataRecoveryPlan) deadIDs() []nodeid.ID {
	out := make([]nodeid.ID, len(p.Dead))
	for i, n := range p.Dead {
		out[i] = n.ID
	}
	return out
}

// planDataRecovery decides the recovery from what every node answered: a
// pure function, so that the refusals and the choice of the seed are
// table-tested.
func planDataRecovery(nodes []recoverNode, force bool) (dataRecoveryPlan, error) {
	var p dataRecoveryPlan
	for _, n := range nodes {
		if n.Starting {
			return p, errors.WithHintf(errors.Newf("node %d answers but cannot report its state yet: %s", n.ID, n.Err),
				"it is still starting: retry in a moment; nothing was changed")
		}
	}
	for _, n := range nodes {
		if n.Info == nil {
			p.Dead = append(p.Dead, n)
		} else {
			p.Survivors = append(p.Survivors, n.Info)
		}
	}
	slices.SortFunc(p.Survivors, func(a, b *nodeapi.RecoverInfo) int {
		return cmp.Or(
			cmp.Compare(b.Raft.Applied, a.Raft.Applied),
			cmp.Compare(b.Raft.Commit, a.Raft.Commit),
			cmp.Compare(b.Raft.LastTerm, a.Raft.LastTerm),
			cmp.Compare(b.Raft.LastIndex, a.Raft.LastIndex),
			cmp.Compare(a.NodeID, b.NodeID))
	})
	// A recovery under way is finished, from the seed it chose.
	for i, n := range p.Survivors {
		if n.Record != nil && !n.Record.Done && n.Record.Seed == n.NodeID {
			p.Resume, p.Record = true, *n.Record
			p.Survivors = append([]*nodeapi.RecoverInfo{n}, slices.Delete(slices.Clone(p.Survivors), i, i+1)...)
			break
		}
	}
	if len(p.Survivors) == 0 || p.Survivors[0].Raft.Applied == 0 {
		return p, errors.WithHint(errors.New("no node that answers holds the data group's state"),
			"start the surviving nodes on their stores and run this again; nothing was changed")
	}
	p.Seed = p.Survivors[0]
	if p.Resume {
		for _, id := range p.Record.Dead {
			if !slices.Contains(p.deadIDs(), id) {
				p.Dead = append(p.Dead, recoverNode{ID: id, Err: "dead at the recovery under way"})
			}
		}
		p.Record.Survivors = p.survivorIDs()
		p.Record.Dead = p.deadIDs()
		return p, nil
	}
	voters := p.Seed.Raft.Voters
	var live []nodeid.ID
	for _, v := range voters {
		if slices.ContainsFunc(p.Survivors, func(n *nodeapi.RecoverInfo) bool { return n.NodeID == v }) {
			live = append(live, v)
		}
	}
	if len(live) > len(voters)/2 && !force {
		return p, errors.WithHintf(errors.Newf(
			"the data group has not lost its majority: %d of its %d voters answer (nodes %s)",
			len(live), len(voters), nodeid.List(live)),
			"`kvnode node recover` is for a majority lost for good. If writes fail, the voters may still be electing a leader: wait, and check `kvnode node status`; "+
				"remove dead nodes with `kvnode node decommission`. Only if the nodes that answer are not the ones that should survive, "+
				"pass --force (every node that does not answer must then never be started again on its store); nothing was changed")
	}
	p.Record = nodeapi.RecoveryRecord{Seed: p.Seed.NodeID, Survivors: p.survivorIDs(), Dead: p.deadIDs(), Time: time.Now().UnixNano()}
	return p, nil
}

// describe renders the plan: one line per survivor, the dead, and what may
// be lost.
func (p dataRecoveryPlan) describe() string {
	var b strings.Builder
	seed := p.Seed
	if p.Resume {
		fmt.Fprintf(&b, "a recovery seeded by node %d is under way; it is finished:\n", seed.NodeID)
	} else {
		fmt.Fprintf(&b, "data group recovery: node %d, the survivor with the highest applied index, becomes the seed\n", seed.NodeID)
	}
	b.WriteString("survivors:\n")
	for _, n := range p.Survivors {
		role := "wiped, rejoins from the seed's snapshot"
		if n == seed {
			role = "seed: becomes the only voter, then adds the others back"
		}
		leader := "no leader"
		if n.Raft.Leader != 0 {
			leader = fmt.Sprintf("leader %d", n.Raft.Leader)
		}
		fmt.Fprintf(&b, "  node %d: applied index %d, term %d, state %s (%s, commit %d, last index %d) -> %s\n",
			n.NodeID, n.Raft.Applied, n.Raft.Term, strings.TrimPrefix(n.Raft.Role, "State"), leader, n.Raft.Commit, n.Raft.LastIndex, role)
	}
	b.WriteString("dead (do not answer; marked decommissioned, never to return on their stores):\n")
	if len(p.Dead) == 0 {
		b.WriteString("  none\n")
	}
	for _, n := range p.Dead {
		fmt.Fprintf(&b, "  node %d at %s: %s\n", n.ID, cmp.Or(n.Addr, "unknown address"), n.Err)
	}
	if p.Resume {
		return b.String()
	}
	b.WriteString("what may be lost:\n")
	maxLast := seed.Raft.Commit
	for _, n := range p.Survivors {
		maxLast = max(maxLast, n.Raft.LastIndex)
	}
	if seed.Raft.Commit > seed.Raft.Applied {
		fmt.Fprintf(&b, "  (entries %d to %d are committed but not yet applied on the seed: they are kept and applied)\n", seed.Raft.Applied+1, seed.Raft.Commit)
	}
	if maxLast > seed.Raft.Commit {
		fmt.Fprintf(&b, "  entries %d to %d, in survivors' logs but not known to be committed, are discarded\n", seed.Raft.Commit+1, maxLast)
	}
	if len(p.Dead) > 0 {
		fmt.Fprintf(&b, "  entries above index %d that only the dead nodes (%s) may have had are lost: writes acknowledged only through them after that point\n",
			seed.Raft.Commit, nodeid.List(p.deadIDs()))
	} else {
		b.WriteString("  nothing: every member answers\n")
	}
	b.WriteString("every write a survivor acknowledged is kept (the seed has applied everything any survivor applied)\n")
	return b.String()
}
