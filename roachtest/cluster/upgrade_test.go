package cluster

import (
	"encoding/json"
	"testing"
)

func TestUpgradeStatusJSON(t *testing.T) {
	// As kvnode writes it today: the blockers' fields have no JSON tags.
	today := `{"answered_by": 2, "active_version": "1.0", "replicated_version": "1.0", "target": "1.1",
		"auto_upgrade_enabled": true, "preserve_downgrade_option": "1.0", "decision": "finalization blocked: ...",
		"nodes": [{"node_id": 4, "address": "127.0.0.1:1", "binary_version": "1.1", "is_live": false, "membership": "active"}],
		"blockers": [{"Kind": "dead_node", "NodeID": 4, "Reason": "node 4 is not live", "Fix": "kvnode node decommission 4 --host=h:1"},
		             {"Kind": "preserve_downgrade_option", "NodeID": 0, "Reason": "r", "Fix": "f"}],
		"migrations": [{"version": "1.1-step.2", "status": "running", "job_id": 1, "fraction_completed": 0.5, "coordinator": 2}]}`
	// With snake_case tags, as they may be one day.
	tagged := `{"blockers": [{"kind": "dead_node", "node_id": 4, "reason": "node 4 is not live", "fix": "kvnode node decommission 4 --host=h:1"}]}`
	for name, body := range map[string]string{"today": today, "tagged": tagged} {
		var st UpgradeStatus
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, ok := st.Blocker("dead_node")
		if !ok || b.NodeID != 4 || b.Reason != "node 4 is not live" || b.Fix != "kvnode node decommission 4 --host=h:1" {
			t.Errorf("%s: dead-node blocker %+v (found %v)", name, b, ok)
		}
	}
	var st UpgradeStatus
	if err := json.Unmarshal([]byte(today), &st); err != nil {
		t.Fatal(err)
	}
	if got := st.BlockerKinds(); len(got) != 2 || got[1] != "preserve_downgrade_option" {
		t.Errorf("BlockerKinds() = %v", got)
	}
	if st.Target != "1.1" || st.PreserveDowngrade != "1.0" || len(st.Nodes) != 1 || st.Nodes[0].IsLive ||
		len(st.Migrations) != 1 || st.Migrations[0].Fraction != 0.5 || st.Migrations[0].Coordinator != 2 {
		t.Errorf("parsed %+v", st)
	}
}
