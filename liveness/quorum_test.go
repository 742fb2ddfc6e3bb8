package liveness

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
)

// cluster builds a Check: voters and learners by ID, dead lists the nodes
// that are not live, leaving those already decommissioning.
func cluster(voters, learners, dead, leaving []int32) Check {
	c := Check{Records: map[int32]Record{}, Voters: voters, Learners: learners, MaxVoters: 5}
	for _, id := range append(slices.Clone(voters), learners...) {
		m := Active
		if slices.Contains(leaving, id) {
			m = Decommissioning
		}
		c.Records[id] = Record{NodeID: id, Membership: m}
	}
	c.Live = func(id int32) bool { return !slices.Contains(dead, id) }
	return c
}

func ids(v ...int32) []int32 { return v }

func TestValidateQuorumRule(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Check
		targets []int32
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
		id   int32
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
