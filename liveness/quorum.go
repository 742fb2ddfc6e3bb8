package liveness

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cockroachdb/errors"
)

// ErrQuorum marks a refusal because the data group would lose (or has lost)
// its live majority.
var ErrQuorum = errors.New("decommissioning would lose quorum")

// Check is what the quorum rule for decommissioning looks at: every node's
// record, the data Raft group's configuration, and which nodes are live.
type Check struct {
	// Records holds every node's record by ID.
	Records map[int32]Record
	// Voters and Learners are the data group's current configuration.
	Voters, Learners []int32
	// MaxVoters is the voter limit up to which the leader promotes live
	// learners (0: no limit).
	MaxVoters int
	// Live reports whether a node is live (Record.IsLive at the caller's
	// now).
	Live func(id int32) bool
}

// Validate decides whether the nodes in targets may be decommissioned, and
// says why not. It changes nothing; see the package documentation for the
// rule.
func (c Check) Validate(targets []int32) error {
	if len(targets) == 0 {
		return errors.WithHint(errors.New("no node IDs given"), "name the nodes to decommission by ID, for example: kvnode node decommission 4")
	}
	for _, t := range targets {
		if _, ok := c.Records[t]; !ok {
			return unknownNodeError(t)
		}
	}
	leaving := map[int32]bool{}
	for _, t := range targets {
		leaving[t] = true
	}
	for id, r := range c.Records {
		if r.Membership != Active {
			leaving[id] = true
		}
	}
	var remaining []int32
	for _, id := range append(slices.Clone(c.Voters), c.Learners...) {
		if !leaving[id] {
			remaining = append(remaining, id)
		}
	}
	if len(remaining) == 0 {
		return errors.WithHint(errors.Newf("decommissioning %s would leave no node in the cluster",
			nodeList(targets)),
			"a cluster needs at least one node: start a new node with --join, wait until it has joined, then decommission")
	}
	if err := c.hasQuorum(c.Voters); err != nil {
		return err
	}
	var rv []int32
	for _, id := range c.Voters {
		if !leaving[id] {
			rv = append(rv, id)
		}
	}
	liveLearners := 0
	for _, id := range c.Learners {
		if !leaving[id] && c.Live(id) {
			liveLearners++
		}
	}
	promote := liveLearners
	if c.MaxVoters > 0 {
		promote = max(0, min(promote, c.MaxVoters-len(rv)))
	}
	total, live := len(rv)+promote, c.countLive(rv)+promote
	if live*2 <= total {
		var dead []int32
		for _, id := range rv {
			if !c.Live(id) {
				dead = append(dead, id)
			}
		}
		if len(dead) == 0 {
			return errors.WithHint(errors.Mark(errors.Newf(
				"decommissioning %s would leave the data Raft group without a voter that is live", nodeList(targets)), ErrQuorum),
				"start a new node with --join, wait until it is a voter, then decommission; nothing was changed")
		}
		return errors.WithHintf(errors.Mark(errors.Newf(
			"decommissioning %s would leave the data Raft group without a live majority: "+
				"%d of the %d voters that remain would be live", nodeList(targets), live, total), ErrQuorum),
			"bring the dead voters (%s) back first, or decommission them too if they are gone for good; nothing was changed",
			nodeList(dead))
	}
	return nil
}

// CanRemove decides whether node id may be removed from the data group now
// (one step of a decommission): removing a learner or a non-member is
// always safe; removing a voter needs a live majority of voters both
// before and after.
func (c Check) CanRemove(id int32) error {
	if !slices.Contains(c.Voters, id) {
		return nil
	}
	if err := c.hasQuorum(c.Voters); err != nil {
		return err
	}
	var after []int32
	for _, v := range c.Voters {
		if v != id {
			after = append(after, v)
		}
	}
	if len(after) == 0 {
		return errors.Mark(errors.Newf("node %d is the last voter of the data Raft group", id), ErrQuorum)
	}
	if live := c.countLive(after); live*2 <= len(after) {
		return errors.Mark(errors.Newf("removing node %d now would leave %d live of %d voters in the data Raft group",
			id, live, len(after)), ErrQuorum)
	}
	return nil
}

func (c Check) hasQuorum(voters []int32) error {
	if live := c.countLive(voters); live*2 <= len(voters) {
		return errors.WithHint(errors.Mark(errors.Newf(
			"the data Raft group has no live majority: only %d of its %d voters (%s) are live",
			live, len(voters), nodeList(voters)), ErrQuorum),
			"restart the dead nodes first; no membership change can be made without a majority; nothing was changed")
	}
	return nil
}

func (c Check) countLive(ids []int32) int {
	n := 0
	for _, id := range ids {
		if c.Live(id) {
			n++
		}
	}
	return n
}

// RemovalOrder orders nodes to remove so that each step keeps the most
// margin: non-members and learners first, then voters that are not live,
// then live voters; by ID within each class.
func (c Check) RemovalOrder(ids []int32) []int32 {
	rank := func(id int32) int {
		switch {
		case !slices.Contains(c.Voters, id):
			return 0
		case !c.Live(id):
			return 1
		default:
			return 2
		}
	}
	out := slices.Clone(ids)
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

func nodeList(ids []int32) string {
	if len(ids) == 0 {
		return "none"
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, id := range s {
		parts[i] = fmt.Sprint(id)
	}
	if len(parts) == 1 {
		return "node " + parts[0]
	}
	return "nodes " + strings.Join(parts, ", ")
}
