package status

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/console"
)

// TestUpgradeStatusJSON: GET /_status/upgrade names a node's fields as it
// always has (binary_version, draining; no liveness epoch, expiration or
// update time; started_at only when known), although a node is
// nodeapi.NodeStatus in Go; and it reads back into the same value.
func TestUpgradeStatusJSON(t *testing.T) {
	n := nodeapi.NodeStatus{NodeID: 2, Address: "a:1", SQLAddress: "a:2", HTTPAddress: "a:3", Build: "2.1",
		UpdatedAt: "u", IsLive: true, Membership: "active", IsDraining: true, Epoch: 7, Expiration: "e",
		Status: "draining", Raft: "voter", IsLeader: true, PersistedVersion: "2.1-step.1"}
	u := UpgradeStatus{AnsweredBy: 1, ActiveVersion: "2.0", Nodes: []nodeapi.NodeStatus{n},
		Migrations: []console.Migration{{Version: "2.1", Status: "running", JobID: 3}}}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Nodes      []map[string]any `json:"nodes"`
		Migrations []map[string]any `json:"migrations"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"node_id": 2.0, "address": "a:1", "sql_address": "a:2", "http_address": "a:3",
		"binary_version": "2.1", "is_live": true, "membership": "active", "draining": true, "status": "draining",
		"raft": "voter", "is_leader": true, "persisted_version": "2.1-step.1"}
	if len(raw.Nodes) != 1 || !reflect.DeepEqual(raw.Nodes[0], want) {
		t.Fatalf("node as GET /_status/upgrade serves it:\n got %v\nwant %v", raw.Nodes, want)
	}
	if len(raw.Migrations) != 1 || raw.Migrations[0]["job_id"] != 3.0 || raw.Migrations[0]["fraction_completed"] != 0.0 {
		t.Fatalf("migrations: %v", raw.Migrations)
	}
	var back UpgradeStatus
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// What the endpoint does not serve does not come back.
	n.UpdatedAt, n.Epoch, n.Expiration = "", 0, ""
	if u.Nodes[0] = n; !reflect.DeepEqual(back, u) {
		t.Fatalf("read back:\n got %+v\nwant %+v", back, u)
	}
}
