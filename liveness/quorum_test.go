package liveness

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/nodeid"
)

// cluster builds a Check: voters and learners by ID, dead lists the nodes
// that are not live, leaving those already decommissioning.
func cluster(voters, learners, dead, leaving []nodeid.ID) Check {
	c := Check{Records: map[nodeid.ID]Record{}, Voters: voters, Learners: learners, MaxVoters: 5}
	for _, id := range append(slices.Clone(voters), learners...) {
		m := Active
		if slices.Contains(leaving, id) {
			m = Decommissioning
		}
		c.Records[id] = Record{NodeID: id, Membership: m}
	}
	c.Live = func(id nodeid.ID) bool { return !slices.Contains(dead, id) }
	return c
}

func ids(v ...nodeid.ID) []nodeid.ID { return v }

func TestValidateQuorumRule(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Check
		targets []nodeid.ID
		want    string // "" for allowed, else a substring of the error
	}{
		{"one of three, all live", cluster(ids(1, 2, 3), nil, nil, nil), ids(3), ""},
		{"two of three, all live: one voter remains", cluster(ids(1, 2, 3), nil, nil, nil), ids(2, 3), ""},
		{"the dead one of three", cluster(ids(1, 2, 3), nil, ids(3), nil), ids(3), ""},
		{"a live one while another is dead", cluster(ids(1, 2, 3), nil, ids(3), nil), ids(2), "without a live majority"},
		{"the dead one and a live one", cluster(ids(1, 2, 3), nil, ids(3), nil), ids(2, 3), ""},
		{"every node", cluster(ids(1, 2, 3), nil, nil, nil), ids(1, 2, 3), "no node in the cluster"},
		{"the only node", cluster(ids(1), nil, nil, nil), ids(1), "no node in the cluster"},
		{"unknown node", cluster(ids(1, 2, 3), nil, nil, nil), ids(9), "node 9 does not exist"},
		{"no IDs", cluster(ids(1, 2, 3), nil, nil, nil), nil, "no node IDs"},
		{"group already without quorum", cluster(ids(1, 2, 3), nil, ids(2, 3), nil), ids(3), "no live majority"},
		{"five voters, two dead, remove a live one", cluster(ids(1, 2, 3, 4, 5), nil, ids(4, 5), nil), ids(1), "without a live majority"},
		{"five voters, two dead, remove both dead", cluster(ids(1, 2, 3, 4, 5), nil, ids(4, 5), nil), ids(4, 5), ""},
		{"others already leaving count as gone", cluster(ids(1, 2, 3), nil, nil, ids(3)), ids(2), ""},
		{"last remaining after others leave", cluster(ids(1, 2, 3), nil, nil, ids(2, 3)), ids(1), "no node in the cluster"},
		{"a live learner is promoted", cluster(ids(1, 2, 3, 4, 5), ids(6), ids(4, 5), nil), ids(1), ""},
		{"a dead learner is not counted", cluster(ids(1, 2, 3, 4, 5), ids(6), ids(4, 5, 6), nil), ids(1), "without a live majority"},
		{"remove a learner", cluster(ids(1, 2, 3, 4, 5), ids(6), nil, nil), ids(6), ""},
		{"remove every voter, a live learner remains", cluster(ids(1), ids(2), nil, nil), ids(1), ""},
		{"remove every voter, only a dead learner remains", cluster(ids(1), ids(2), ids(2), nil), ids(1), "without a voter that is live"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate(tc.targets)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			case err != nil && len(errors.GetAllHints(err)) == 0:
				t.Fatalf("error without a hint: %v", err)
			}
		})
	}
}

func TestCanRemoveAndOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Check
		id   nodeid.ID
		want string
	}{
		{"a live voter of three", cluster(ids(1, 2, 3), nil, nil, nil), 3, ""},
		{"a live voter while another is dead", cluster(ids(1, 2, 3), nil, ids(3), nil), 2, "would leave 1 live of 2"},
		{"the dead voter", cluster(ids(1, 2, 3), nil, ids(3), nil), 3, ""},
		{"a learner, always", cluster(ids(1, 2, 3), ids(4), ids(2, 3), nil), 4, ""},
		{"the last voter", cluster(ids(1), nil, nil, nil), 1, "last voter"},
		{"two of four dead", cluster(ids(1, 2, 3, 4), nil, ids(3, 4), nil), 4, "no live majority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.CanRemove(tc.id)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	c := cluster(ids(1, 2, 3, 4, 5), ids(6), ids(2), nil)
	if got := c.RemovalOrder(ids(1, 2, 6, 7)); !slices.Equal(got, ids(6, 7, 2, 1)) {
		t.Fatalf("removal order %v", got)
	}
}

// withMembership sets the membership of ids in c's records.
func withMembership(c Check, m Membership, ids ...nodeid.ID) Check {
	for _, id := range ids {
		r := c.Records[id]
		r.NodeID, r.Membership = id, m
		c.Records[id] = r
	}
	return c
}

// TestGroup0QuorumRule: the rule applied to group 0's configuration, which
// can differ from the data group's with six nodes or more (issue 16, D3):
// a decommission the data group allows is refused when it would leave
// group 0 without a live majority, naming group 0.
func TestGroup0QuorumRule(t *testing.T) {
	// Six nodes; the data group's voters are 1-5, group 0's are 2-6 (node
	// 1 is not in group 0 yet); 5 and 6 are dead.
	data := cluster(ids(1, 2, 3, 4, 5), ids(6), ids(5, 6), nil)
	g0 := cluster(ids(2, 3, 4, 5, 6), nil, ids(5, 6), nil)
	g0.Records[1] = Record{NodeID: 1, Membership: Active}
	g0.Group = "group 0"
	if err := data.Validate(ids(2)); err != nil {
		t.Fatalf("data group refuses: %v", err)
	}
	err := g0.ValidateMajority(ids(2))
	if err == nil || !strings.Contains(err.Error(), "would leave group 0 without a live majority") || !errors.Is(err, ErrQuorum) {
		t.Fatalf("group 0's rule: %v", err)
	}
	if len(errors.GetAllHints(err)) == 0 {
		t.Fatalf("no hint: %v", err)
	}
	if err := g0.ValidateMajority(ids(1)); err != nil {
		t.Fatalf("decommissioning a node outside group 0: %v", err)
	}
	// Group 0 right after a cluster formed: node 1 its only member, the
	// others still joining. Leaving it without members is a passing state
	// (they join), not a refusal; the data group's rule refuses an empty
	// cluster.
	young := cluster(ids(1), nil, nil, nil)
	young.Group = "group 0"
	young.Records[2], young.Records[3] = Record{NodeID: 2}, Record{NodeID: 3}
	if err := young.ValidateMajority(ids(1)); err != nil {
		t.Fatalf("decommissioning the only member of a young group 0: %v", err)
	}
	if err := g0.HasQuorum(); err != nil {
		t.Fatalf("HasQuorum: %v", err)
	}
	lost := cluster(ids(1, 2, 3), nil, ids(2, 3), nil)
	lost.Group = "group 0"
	if err := lost.HasQuorum(); err == nil || !strings.Contains(err.Error(), "group 0 has no live majority") {
		t.Fatalf("HasQuorum of a group without a majority: %v", err)
	}
}

// TestLifecycleStep: group 0's membership follows the node lifecycle with
// a quorum check (issue 16, D3).
func TestLifecycleStep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Check
		self    nodeid.ID
		want    Step
		waiting string
	}{
		{"all active", cluster(ids(1, 2, 3), nil, nil, nil), 1, Step{}, ""},
		{"a decommissioning voter is demoted, not removed", cluster(ids(1, 2, 3), nil, nil, ids(3)), 1, Step{Kind: StepDemote, Node: 3}, ""},
		{"a decommissioning learner stays", cluster(ids(1, 2, 3), ids(4), nil, ids(4)), 1, Step{}, ""},
		{"a decommissioned learner is removed",
			withMembership(cluster(ids(1, 2, 3), ids(4), nil, nil), Decommissioned, 4), 1, Step{Kind: StepRemove, Node: 4}, ""},
		{"a decommissioned voter is removed",
			withMembership(cluster(ids(1, 2, 3), nil, nil, nil), Decommissioned, 3), 1, Step{Kind: StepRemove, Node: 3}, ""},
		{"the leader is demoted: transfer first", cluster(ids(1, 2, 3), nil, nil, ids(1)), 1, Step{Kind: StepTransferLeadership, Node: 1}, ""},
		{"demoting a live voter while another is dead waits",
			cluster(ids(1, 2, 3), nil, ids(2), ids(3)), 1, Step{}, "would leave 1 live of 2 voters in group 0"},
		{"the dead decommissioning voter is demoted first",
			cluster(ids(1, 2, 3, 4, 5), nil, ids(5), ids(4, 5)), 1, Step{Kind: StepDemote, Node: 5}, ""},
		{"a waiting voter does not block a learner's removal",
			withMembership(cluster(ids(1, 2, 3), ids(4), ids(2), ids(3)), Decommissioned, 4), 1, Step{Kind: StepRemove, Node: 4}, ""},
		{"no majority now: wait",
			cluster(ids(1, 2, 3), nil, ids(2, 3), ids(3)), 1, Step{}, "group 0 has no live majority"},
		{"a node without a record counts as active", func() Check {
			c := cluster(ids(1, 2, 3), nil, nil, nil)
			delete(c.Records, 3)
			return c
		}(), 1, Step{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Group = "group 0"
			got := tc.c.LifecycleStep(tc.self)
			if got.Kind != tc.want.Kind || got.Node != tc.want.Node {
				t.Fatalf("step %s of node %d (%v), want %s of node %d", got.Kind, got.Node, got.Waiting, tc.want.Kind, tc.want.Node)
			}
			if (tc.waiting == "") != (got.Waiting == nil) || (got.Waiting != nil && !strings.Contains(got.Waiting.Error(), tc.waiting)) {
				t.Fatalf("waiting %v, want %q", got.Waiting, tc.waiting)
			}
		})
	}
}
