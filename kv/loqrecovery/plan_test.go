package loqrecovery

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
)

func survivor(id nodeid.ID, applied uint64, voters ...nodeid.ID) recoverNode {
	return recoverNode{ID: id, Info: &nodeapi.RecoverInfo{NodeID: id,
		Raft: kv.RaftState{NodeID: id, Applied: applied, Commit: applied, LastIndex: applied, Voters: voters}}}
}

func dead(id nodeid.ID) recoverNode { return recoverNode{ID: id, Err: "connection refused"} }

// TestPlanDataRecovery: the seed is the survivor with the highest applied
// index; a group whose majority answers is refused unless forced; a node
// still starting refuses the plan; a recovery under way is finished from
// the seed its record names.
func TestPlanDataRecovery(t *testing.T) {
	voters := []nodeid.ID{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name      string
		nodes     []recoverNode
		force     bool
		seed      nodeid.ID
		survivors string
		dead      string
		errPart   string
	}{
		{name: "majority lost: the most advanced survivor seeds",
			nodes: []recoverNode{survivor(1, 10, voters...), survivor(2, 12, voters...), dead(3), dead(4), dead(5)},
			seed:  2, survivors: "2, 1", dead: "3, 4, 5"},
		{name: "majority answers: refused",
			nodes:   []recoverNode{survivor(1, 10, voters...), survivor(2, 12, voters...), survivor(3, 9, voters...), dead(4), dead(5)},
			errPart: "has not lost its majority: 3 of its 5 voters answer"},
		{name: "majority answers, forced",
			nodes: []recoverNode{survivor(1, 10, voters...), survivor(2, 12, voters...), survivor(3, 9, voters...), dead(4), dead(5)},
			force: true, seed: 2, survivors: "2, 1, 3", dead: "4, 5"},
		{name: "a node still starting: retry",
			nodes:   []recoverNode{survivor(1, 10, voters...), {ID: 2, Err: "still starting", Starting: true}, dead(3)},
			errPart: "node 2 answers but cannot report its state yet"},
		{name: "nobody holds the state",
			nodes:   []recoverNode{survivor(1, 0), dead(2), dead(3)},
			errPart: "no node that answers holds the data group's state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planDataRecovery(tc.nodes, tc.force)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("got %v, want an error containing %q", err, tc.errPart)
				}
				if len(errors.GetAllHints(err)) == 0 {
					t.Errorf("error %q has no hint", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Seed.NodeID != tc.seed || nodeid.List(p.survivorIDs()) != tc.survivors || nodeid.List(p.deadIDs()) != tc.dead {
				t.Fatalf("seed %d, survivors %s, dead %s; want %d, %s, %s",
					p.Seed.NodeID, nodeid.List(p.survivorIDs()), nodeid.List(p.deadIDs()), tc.seed, tc.survivors, tc.dead)
			}
			if p.Record.Seed != tc.seed || p.Resume {
				t.Fatalf("record %+v, resume %t", p.Record, p.Resume)
			}
			if d := p.describe(); !strings.Contains(d, "becomes the seed") {
				t.Errorf("plan text does not name the seed:\n%s", d)
			}
		})
	}
	t.Run("a recovery under way is finished from its seed", func(t *testing.T) {
		rec := &nodeapi.RecoveryRecord{Seed: 1, Survivors: []nodeid.ID{1, 2}, Dead: []nodeid.ID{3, 4, 5}}
		seed := survivor(1, 5, 1) // the only voter since the reform
		seed.Info.Record = rec
		p, err := planDataRecovery([]recoverNode{seed, survivor(2, 12, voters...), dead(3)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Resume || p.Seed.NodeID != 1 || nodeid.List(p.deadIDs()) != "3, 4, 5" {
			t.Fatalf("resume %t seed %d dead %s", p.Resume, p.Seed.NodeID, nodeid.List(p.deadIDs()))
		}
		if d := p.describe(); !strings.Contains(d, "is under way; it is finished") {
			t.Errorf("plan text:\n%s", d)
		}
	})
}
