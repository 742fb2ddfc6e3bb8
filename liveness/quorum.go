package liveness

import (
	"slices"
	"sort"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeid"
)

// ErrQuorum marks a refusal because the data group would lose (or has lost)
// its live majority.
var ErrQuorum = errors.New("decommissioning would lose quorum")

// Check is what the quorum rule for decommissioning looks at: every node's
// record, one Raft group's configuration (the data group's, or group 0's),
// and which nodes are live.
type Check struct {
	// Group names the Raft group in messages ("" reads as "the data Raft
	// group"; "group 0" for group 0).
	Group string
	// Records holds every node's record by ID.
	Records map[nodeid.ID]Record
	// Voters and Learners are the group's current configuration.
	Voters, Learners []nodeid.ID
	// MaxVoters is the voter limit up to which the leader promotes live
	// learners (0: no limit).
	MaxVoters int
	// Live reports whether a node is live (Record.IsLive at the caller's
	// now).
	Live func(id nodeid.ID) bool

	// needsMember: a group left without any voter is refused (Validate).
	needsMember bool
}

// Validate decides whether the nodes in targets may be decommissioned, and
// says why not. It changes nothing; see the package documentation for the
// rule.
func (c Check) Validate(targets []nodeid.ID) error {
	if len(targets) == 0 {
		return errors.WithHint(errors.New("no node IDs given"), "name the nodes to decommission by ID, for example: kvnode node decommission 4")
	}
	for _, t := range targets {
		if _, ok := c.Records[t]; !ok {
			return unknownNodeError(t)
		}
	}
	leaving := map[nodeid.ID]bool{}
	for _, t := range targets {
		leaving[t] = true
	}
	for id, r := range c.Records {
		if r.Membership != Active {
			leaving[id] = true
		}
	}
	var remaining []nodeid.ID
	for _, id := range append(slices.Clone(c.Voters), c.Learners...) {
		if !leaving[id] {
			remaining = append(remaining, id)
		}
	}
	if len(remaining) == 0 {
		return errors.WithHint(errors.Newf("decommissioning %s would leave no node in the cluster",
			nodeid.Names(targets)),
			"a cluster needs at least one node: start a new node with --join, wait until it has joined, then decommission")
	}
	c.needsMember = true
	return c.ValidateMajority(targets)
}

// ValidateMajority is the majority part of Validate alone: it refuses only
// when the group has no live majority now, or when the voters that remain
// (after promoting live learners) would not have one. A group left with
// no voter and no learner to promote is not refused: group 0 uses it, for
// which that is a passing state (every active node joins it, the data
// group's Validate refuses to let the cluster itself become empty).
func (c Check) ValidateMajority(targets []nodeid.ID) error {
	leaving := map[nodeid.ID]bool{}
	for _, t := range targets {
		leaving[t] = true
	}
	for id, r := range c.Records {
		if r.Membership != Active {
			leaving[id] = true
		}
	}
	if err := c.hasQuorum(c.Voters); err != nil {
		return err
	}
	var rv []nodeid.ID
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
	if total == 0 && !c.needsMember {
		return nil
	}
	if live*2 <= total {
		var dead []nodeid.ID
		for _, id := range rv {
			if !c.Live(id) {
				dead = append(dead, id)
			}
		}
		if len(dead) == 0 {
			return errors.WithHint(errors.Mark(errors.Newf(
				"decommissioning %s would leave %s without a voter that is live", nodeid.Names(targets), c.group()), ErrQuorum),
				"start a new node with --join, wait until it is a voter, then decommission; nothing was changed")
		}
		return errors.WithHintf(errors.Mark(errors.Newf(
			"decommissioning %s would leave %s without a live majority: "+
				"%d of the %d voters that remain would be live", nodeid.Names(targets), c.group(), live, total), ErrQuorum),
			"bring the dead voters (%s) back first, or decommission them too if they are gone for good; nothing was changed",
			nodeid.Names(dead))
	}
	return nil
}

// CanRemove decides whether node id may be removed from the data group now
// (one step of a decommission): removing a learner or a non-member is
// always safe; removing a voter needs a live majority of voters both
// before and after.
func (c Check) CanRemove(id nodeid.ID) error {
	if !slices.Contains(c.Voters, id) {
		return nil
	}
	if err := c.hasQuorum(c.Voters); err != nil {
		return err
	}
	var after []nodeid.ID
	for _, v := range c.Voters {
		if v != id {
			after = append(after, v)
		}
	}
	if len(after) == 0 {
		return errors.Mark(errors.Newf("node %d is the last voter of %s", id, c.group()), ErrQuorum)
	}
	if live := c.countLive(after); live*2 <= len(after) {
		return errors.Mark(errors.Newf("removing node %d now would leave %d live of %d voters in %s",
			id, live, len(after), c.group()), ErrQuorum)
	}
	return nil
}

func (c Check) hasQuorum(voters []nodeid.ID) error {
	if live := c.countLive(voters); live*2 <= len(voters) {
		return errors.WithHint(errors.Mark(errors.Newf(
			"%s has no live majority: only %d of its %d voters (%s) are live",
			c.group(), live, len(voters), nodeid.Names(voters)), ErrQuorum),
			"restart the dead nodes first; no membership change can be made without a majority; nothing was changed")
	}
	return nil
}

// HasQuorum reports (nil) whether the group's voters have a live majority
// now, or says why not.
func (c Check) HasQuorum() error { return c.hasQuorum(c.Voters) }

func (c Check) group() string {
	if c.Group == "" {
		return "the data Raft group"
	}
	return c.Group
}

func (c Check) countLive(ids []nodeid.ID) int {
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
func (c Check) RemovalOrder(ids []nodeid.ID) []nodeid.ID {
	rank := func(id nodeid.ID) int {
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

// StepKind is what LifecycleStep asks the group's leader to do.
type StepKind int

const (
	// StepNone: nothing to do now.
	StepNone StepKind = iota
	// StepTransferLeadership: the leader itself is to be demoted or
	// removed; it hands leadership to another voter first.
	StepTransferLeadership
	// StepDemote: make the voter Node a learner.
	StepDemote
	// StepRemove: remove Node from the group.
	StepRemove
)

func (k StepKind) String() string {
	switch k {
	case StepTransferLeadership:
		return "transfer leadership"
	case StepDemote:
		return "demote to learner"
	case StepRemove:
		return "remove"
	}
	return "none"
}

// Step is one membership change of a Raft group that follows the node
// lifecycle (LifecycleStep).
type Step struct {
	Kind StepKind
	Node nodeid.ID
	// Waiting, for StepNone, says why a change that is due is not made
	// now (a quorum check failed); nil if nothing is due.
	Waiting error
}

// LifecycleStep is the next membership change, one at a time, of a Raft
// group whose membership follows the node lifecycle (group 0), as its
// leader self sees it:
//
//   - active: a member (voter or learner; the leader promotes learners);
//   - decommissioning: a learner. A voter is demoted only while CanRemove
//     allows it (a live majority of voters before and after); the node
//     still receives every change, so if it is recommissioned it is
//     promoted again and has missed nothing;
//   - decommissioned: not a member. A learner is removed at once, a voter
//     (one that could not be demoted) only while CanRemove allows it.
//
// A node without a record counts as active. Changes are taken in
// RemovalOrder (learners first, then dead voters, then live ones); a change
// that concerns self asks for a leadership transfer first.
func (c Check) LifecycleStep(self nodeid.ID) Step {
	var due []nodeid.ID
	for _, id := range append(slices.Clone(c.Voters), c.Learners...) {
		r, ok := c.Records[id]
		if !ok || r.Membership == Active {
			continue
		}
		if r.Membership == Decommissioning && !slices.Contains(c.Voters, id) {
			continue // a decommissioning learner stays, and follows
		}
		due = append(due, id)
	}
	var waiting error
	for _, id := range c.RemovalOrder(due) {
		kind := StepRemove
		if c.Records[id].Membership == Decommissioning {
			kind = StepDemote
		}
		if err := c.CanRemove(id); err != nil {
			if waiting == nil {
				waiting = errors.Wrapf(err, "%s: waiting before the change of node %d (%s)", c.group(), id, kind)
			}
			continue
		}
		if id == self && slices.Contains(c.Voters, id) {
			return Step{Kind: StepTransferLeadership, Node: id}
		}
		return Step{Kind: kind, Node: id}
	}
	return Step{Kind: StepNone, Waiting: waiting}
}
