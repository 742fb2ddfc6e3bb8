package console

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

func node(id nodeid.ID, build string, live bool) Node {
	st := "live"
	if !live {
		st = "dead"
	}
	return Node{NodeStatus: nodeapi.NodeStatus{NodeID: id, Address: "127.0.0.1:2635" + string(rune('0'+id)), Build: build,
		IsLive: live, Membership: "active", Status: st, Raft: "voter", PersistedVersion: "1.1"}, NodeGroup0: NodeGroup0{Group0State: StatePreRaft}}
}

// persisted returns n with its persisted cluster version set to v.
func persisted(n Node, v string) Node {
	n.PersistedVersion = v
	return n
}

func inSync(n Node) Node {
	n.Group0State = StateSync
	return n
}

func TestBanners(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	base := func(nodes ...Node) Status {
		return Status{ClusterVersion: "1.1", ActiveVersion: "1.1", AutoUpgradeEnabled: true, Host: "127.0.0.1:26357", Nodes: nodes}
	}
	type want struct {
		kind     Kind
		severity Severity
		node     nodeid.ID
		// every string must appear in the title, detail or fix
		says []string
		// no string of not may appear in them
		not []string
	}
	for _, tc := range []struct {
		name string
		st   Status
		want []want // in order
	}{
		{
			name: "healthy",
			st:   base(node(1, "1.1", true), node(2, "1.1", true), node(3, "1.1", true)),
		},
		{
			name: "status unavailable",
			st:   Status{Error: "the data Raft group did not answer in time", Host: "127.0.0.1:26357", Self: Self{NodeID: 2, Group0State: StateRecovery}},
			want: []want{
				{KindStatusUnavailable, Critical, 0, []string{"did not answer in time", "kvnode node status --host=127.0.0.1:26357"}, nil},
				{KindGroup0Recovery, Critical, 0, []string{"Node 2 is in group 0 recovery mode", "group0-recover --host=127.0.0.1:26357 --dry-run"}, nil},
			},
		},
		{
			name: "rolling upgrade in progress: rollback still possible",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "1.1", true), node(3, "1.1", true))
				s.Target = "2.0"
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockMixedVersions}}
				return s
			}(),
			want: []want{{KindMixedVersions, Warning, 0, []string{
				"node 1 runs 2.0", "nodes 2, 3 run 1.1", "stays at version 1.1", "can still be rolled back: restart the upgraded nodes on the 1.1 binary",
				"restart node 2 on the 2.0 binary", "restart node 3 on the 2.0 binary"}, nil}},
		},
		{
			// Issue 16, D2: the fence reached nodes 1 and 2 and not node 3
			// (the finalization stopped), and node 3 was then restarted on
			// the old binary. Nodes 1 and 2 would refuse to start on 1.1:
			// advising it would lose the majority.
			name: "fence persisted on some nodes only: no rollback offered",
			st: func() Status {
				s := base(persisted(node(1, "2.0", true), "2.0-step.1"), persisted(node(2, "2.0", true), "2.0-step.1"), node(3, "1.1", true))
				s.Target = "2.0"
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockMixedVersions}}
				return s
			}(),
			want: []want{{KindMixedVersions, Warning, 0, []string{
				"can no longer be rolled back: nodes 1, 2 have persisted cluster version 2.0-step.1, which the 1.1 binary cannot run",
				"Finish the upgrade", "restart node 3 on the 2.0 binary"},
				[]string{"can still be rolled back", "restart the upgraded nodes on the 1.1 binary"}}},
		},
		{
			name: "an upgraded node's persisted version unknown: no rollback offered",
			st: func() Status {
				s := base(persisted(node(1, "2.0", true), ""), node(2, "1.1", true))
				s.Target = "2.0"
				return s
			}(),
			want: []want{{KindMixedVersions, Warning, 0, []string{"Whether the upgrade can still be rolled back is not known: node 1 has not reported"},
				[]string{"can still be rolled back:", "restart the upgraded nodes on the 1.1 binary"}}},
		},
		{
			name: "held back by the preserve option, a node's persisted version unknown: no rollback offered",
			st: func() Status {
				s := base(persisted(node(1, "2.0", true), ""), node(2, "2.0", true), node(3, "2.0", true))
				s.Target, s.Preserve = "2.0", "1.1"
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockPreserve}}
				return s
			}(),
			want: []want{{KindNotFinalized, Warning, 0, []string{"preserve_downgrade_option is set to '1.1'",
				"Whether the upgrade can still be rolled back is not known: node 1 has not reported"},
				[]string{"can still be rolled back."}}},
		},
		{
			// What Decide says then: the fence on node 1 makes it an
			// interrupted finalization, which the opt-outs do not hold.
			name: "fence persisted on one node, nothing blocks: interrupted, no rollback",
			st: func() Status {
				s := base(persisted(node(1, "2.0", true), "2.0-step.1"), node(2, "2.0", true), node(3, "2.0", true))
				s.Target, s.Preserve, s.AutoUpgradeEnabled = "2.0", "1.1", false
				return s
			}(),
			want: []want{{KindInterrupted, Info, 0, []string{"The upgrade to 2.0 stopped at 2.0-step.1; it resumes by itself",
				"2.0-step.1 is persisted on node 1, above the cluster version 1.1", "can no longer be rolled back"},
				[]string{"can still be rolled back", "held back"}}},
		},
		{
			// Issue 16, D6: finalized by hand with auto-upgrade off, the
			// coordinator died in the group 0 procedure. Nothing runs on
			// this node; the leader resumes it; it cannot be rolled back.
			name: "finalization interrupted at the fence with auto-upgrade disabled",
			st: func() Status {
				s := base(inSync(node(1, "2.0", true)), inSync(node(2, "2.0", true)), inSync(node(3, "2.0", true)))
				s.ClusterVersion, s.ActiveVersion, s.Target, s.AutoUpgradeEnabled = "2.0-step.1", "2.0-step.1", "2.0", false
				for i := range s.Nodes {
					s.Nodes[i].PersistedVersion = "2.0-step.1"
				}
				return s
			}(),
			want: []want{{KindInterrupted, Warning, 0, []string{
				"The upgrade to 2.0 stopped at 2.0-step.1; it resumes by itself", "can no longer be rolled back",
				"whatever cluster.auto_upgrade.enabled", "Nodes 1, 2, 3 in synchronize", "SET CLUSTER SETTING version = '2.0'"},
				[]string{"in progress", "can still be rolled back", "held back"}}},
		},
		{
			name: "finalization interrupted, waiting for a dead node",
			st: func() Status {
				s := base(persisted(node(1, "1.1", true), "1.1-step.2"), persisted(node(2, "1.1", true), "1.1-step.2"), persisted(node(3, "1.1", false), "1.1-step.2"))
				s.ClusterVersion, s.ActiveVersion, s.Target, s.AutoUpgradeEnabled = "1.1-step.2", "1.1-step.2", "1.1", false
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockDeadNode, NodeID: 3, Reason: "node 3 is not live",
					Fix: "bring node 3 back, or remove it for good: kvnode node decommission 3 --host=127.0.0.1:26357"}}
				return s
			}(),
			want: []want{
				{KindDeadNode, Critical, 3, []string{"kvnode node decommission 3"}, nil},
				{KindInterrupted, Warning, 0, []string{"The upgrade to 1.1 stopped at 1.1-step.2 and waits: node 3 is not live",
					"kvnode node decommission 3 --host=127.0.0.1:26357"}, []string{"can still be rolled back"}},
			},
		},
		{
			name: "mixed versions past the fence: no rollback offered",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "1.1", true))
				s.ClusterVersion = "2.0-step.1"
				s.Target = "2.0"
				return s
			}(),
			want: []want{{KindMixedVersions, Warning, 0, []string{"stays at version 2.0-step.1"}, nil}},
		},
		{
			name: "preserve option holds finalization, since a known time",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "2.0", true), node(3, "2.0", true))
				s.Target, s.Preserve, s.PreserveSince = "2.0", "1.1", now.Add(-(3*time.Hour + 5*time.Minute))
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockPreserve}}
				return s
			}(),
			want: []want{{KindNotFinalized, Warning, 0, []string{
				"Every node runs 2.0, but the cluster version is still 1.1", "preserve_downgrade_option is set to '1.1' (for 3h5m, since 2026-11-21 08:55 UTC)",
				"RESET CLUSTER SETTING cluster.preserve_downgrade_option;"}, nil}},
		},
		{
			name: "auto-upgrade disabled and preserve set without a record",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "2.0", true))
				s.Target, s.Preserve, s.AutoUpgradeEnabled = "2.0", "1.1", false
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockPreserve}, {Kind: autoupgrade.BlockAutoDisabled}}
				return s
			}(),
			want: []want{{KindNotFinalized, Warning, 0, []string{
				"since when is not recorded", "cluster.auto_upgrade.enabled is false", "SET CLUSTER SETTING version = '2.0';"}, nil}},
		},
		{
			name: "every live node upgraded, a dead node blocks",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "2.0", true), node(3, "1.1", false))
				s.Target = "2.0"
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockMixedVersions}, {Kind: autoupgrade.BlockDeadNode, NodeID: 3}}
				return s
			}(),
			want: []want{{KindDeadNode, Critical, 3, []string{
				"Node 3 is dead and blocks the upgrade to 2.0", "kvnode node decommission 3 --host=127.0.0.1:26357"}, nil}},
		},
		{
			name: "a dead node with nothing to finalize",
			st:   base(node(1, "1.1", true), node(2, "1.1", false)),
			want: []want{{KindDeadNode, Warning, 2, []string{"Node 2 is dead", "kvnode node decommission 2"}, nil}},
		},
		{
			name: "decommissioned nodes are ignored",
			st: func() Status {
				d := node(3, "1.0", false)
				d.Membership = "decommissioned"
				return base(node(1, "1.1", true), node(2, "1.1", true), d)
			}(),
		},
		{
			name: "draining node",
			st: func() Status {
				n := node(2, "1.1", true)
				n.IsDraining = true
				return base(node(1, "1.1", true), n)
			}(),
			want: []want{{KindDrainingNode, Warning, 2, []string{"Node 2 is draining", "restart node 2"}, nil}},
		},
		{
			name: "finalization running",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "2.0", true))
				s.Target, s.InProgress = "2.0", "2.0-step.1: running the migration"
				return s
			}(),
			want: []want{{KindFinalizing, Info, 0, []string{"Finalizing the upgrade to 2.0: 2.0-step.1"}, nil}},
		},
		{
			name: "downgrade waiting for a dead node",
			st: func() Status {
				s := base(node(1, "2.1", true), node(2, "2.1", true), node(3, "2.1", false))
				s.ClusterVersion, s.ActiveVersion, s.Preserve = "2.1-step.2", "2.1-step.2", "2.0"
				s.Target, s.DowngradingTo = "2.0", "2.0"
				s.Blockers = []autoupgrade.Blocker{{Kind: autoupgrade.BlockDeadNode, NodeID: 3, Reason: "node 3 is not live"}}
				return s
			}(),
			want: []want{
				{KindDeadNode, Critical, 3, nil, nil},
				{KindDowngrading, Warning, 0, []string{"Downgrading the cluster to 2.0", "It waits: node 3 is not live", "refused until it completes"}, nil},
			},
		},
		{
			name: "about to finalize",
			st: func() Status {
				s := base(node(1, "2.0", true), node(2, "2.0", true))
				s.Target = "2.0"
				return s
			}(),
			want: []want{{KindFinalizing, Info, 0, []string{"finalizes to 2.0 within seconds"}, nil}},
		},
		{
			name: "group 0 upgrade waits for a dead node",
			st: func() Status {
				a, b, c := node(1, "2.0", true), node(2, "2.0", true), node(3, "2.0", false)
				a.Group0Waiting = "waiting for every node to report its group 0 state; not answering: node 3"
				b.Group0State = StateSync
				s := base(a, b, c)
				s.ClusterVersion, s.Target, s.InProgress = "2.0-step.1", "2.0", "2.0-step.1"
				return s
			}(),
			want: []want{
				{KindDeadNode, Critical, 3, []string{"kvnode node decommission 3"}, nil},
				{KindGroup0Waiting, Warning, 1, []string{"not answering: node 3", "Node 2 in synchronize", "if node 3 is gone for good: kvnode node decommission 3"}, nil},
				{KindFinalizing, Info, 0, nil, nil},
			},
		},
		{
			name: "nodes in recovery",
			st: func() Status {
				a, b := node(1, "2.0", true), node(2, "2.0", true)
				a.Group0State, b.Group0State = StateRecovery, StateRecovery
				s := base(a, b)
				s.ClusterVersion = "2.0"
				return s
			}(),
			want: []want{{KindGroup0Recovery, Critical, 0, []string{"Nodes 1, 2 are in group 0 recovery mode", "group0-recover"}, nil}},
		},
		{
			name: "clock beyond the bound",
			st: func() Status {
				s := base(node(1, "2.1", true), node(2, "2.1", true))
				s.ClusterVersion = "2.1"
				s.Self = Self{NodeID: 2, Clock: &Clock{Healthy: false, MaxOffset: "500ms",
					Message: "this node's clock is more than 400ms (4/5 of --max-offset=500ms) away from 2 of the 2 other nodes measured (largest offset 2s)"}}
				return s
			}(),
			want: []want{{KindClockOffset, Warning, 2, []string{"Node 2's clock is beyond --max-offset=500ms", "away from 2 of the 2 other nodes",
				"ReadIndex", "NTP or chrony"}, nil}},
		},
		{
			name: "clock within the bound",
			st: func() Status {
				s := base(node(1, "2.1", true))
				s.ClusterVersion = "2.1"
				s.Self = Self{NodeID: 1, Clock: &Clock{Healthy: true, MaxOffset: "500ms", LeaseReads: true}}
				return s
			}(),
		},
		{
			name: "failed migration",
			st: func() Status {
				s := base(node(1, "2.0", true))
				s.Migrations = []Migration{{Version: "1.1-step.2", Description: "rewrite rows", Status: "failed", Error: "disk full"}}
				return s
			}(),
			want: []want{{KindMigrationFailed, Critical, 0, []string{"disk full", "SET CLUSTER SETTING version = '1.1';"}, nil}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Banners(tc.st, now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d banners, want %d:\n%s", len(got), len(tc.want), dump(got))
			}
			for i, w := range tc.want {
				b := got[i]
				if b.Kind != w.kind || b.Severity != w.severity || b.NodeID != w.node {
					t.Fatalf("banner %d: got %s/%s/node %d, want %s/%s/node %d\n%s", i, b.Kind, b.Severity, b.NodeID, w.kind, w.severity, w.node, dump(got))
				}
				text := b.Title + "\n" + b.Detail + "\n" + strings.Join(b.Fix, "\n")
				for _, s := range w.says {
					if !strings.Contains(text, s) {
						t.Errorf("banner %d does not say %q:\n%s", i, s, text)
					}
				}
				for _, s := range w.not {
					if strings.Contains(text, s) {
						t.Errorf("banner %d says %q:\n%s", i, s, text)
					}
				}
			}
		})
	}
}

func dump(bs []Banner) string {
	b, _ := json.MarshalIndent(bs, "", "  ")
	return string(b)
}

// The page renders every banner with its kind, the node table and the
// migrations, with untrusted text escaped.
func TestRender(t *testing.T) {
	st := Status{
		GeneratedAt:    time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
		Self:           Self{NodeID: 1, BinaryVersion: "2.0", Ready: true, Group0State: StatePreRaft},
		ClusterVersion: "1.1", ActiveVersion: "1.1", Target: "2.0", AutoUpgradeEnabled: true,
		Nodes:      []Node{node(1, "2.0", true), node(2, "1.1", true)},
		Migrations: []Migration{{Version: "2.0-step.1", Description: "group 0 <upgrade>", Status: "running", Fraction: 0.5, Done: 1, Total: 2}},
	}
	st.Banners = Banners(st, time.Now())
	var full, live bytes.Buffer
	if err := Render(&full, st); err != nil {
		t.Fatal(err)
	}
	if err := RenderLive(&live, st); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`data-kind="mixed_versions"`, `<tr data-node-id="2"`, `data-version="2.0-step.1"`,
		"group 0 &lt;upgrade&gt;", `style="width: 50.0%"`, `<script src="/_console/console.js">`} {
		if !strings.Contains(full.String(), s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(live.String(), "<script") || !strings.Contains(live.String(), `data-kind="mixed_versions"`) {
		t.Errorf("the live part is wrong:\n%s", live.String())
	}
	if !strings.Contains(full.String(), live.String()) {
		t.Error("the live part differs from the page's")
	}
}

// TestNodeJSON: GET /_status/console names a node's fields as it always
// has (binary_version, is_draining; no liveness epoch, expiration or update
// time; started_at and persisted_version only when known), although a node
// is nodeapi.NodeStatus in Go; and a row reads back into the same value.
func TestNodeJSON(t *testing.T) {
	n := Node{NodeStatus: nodeapi.NodeStatus{NodeID: 2, Address: "a:1", SQLAddress: "a:2", HTTPAddress: "a:3",
		Build: "2.1", UpdatedAt: "u", IsLive: true, Membership: "active", IsDraining: true, Epoch: 7, Expiration: "e",
		Status: "draining", Raft: "voter", IsLeader: true, StartedAt: "s"},
		NodeGroup0: NodeGroup0{Group0State: StateSync, Group0Role: "voter"}}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"node_id": 2.0, "address": "a:1", "sql_address": "a:2", "http_address": "a:3",
		"binary_version": "2.1", "is_live": true, "membership": "active", "is_draining": true, "status": "draining",
		"raft": "voter", "is_leader": true, "started_at": "s", "group0_state": StateSync, "group0_role": "voter"}
	if !reflect.DeepEqual(raw, want) {
		t.Fatalf("node as GET /_status/console serves it:\n got %v\nwant %v", raw, want)
	}
	var back Node
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	n.UpdatedAt, n.Epoch, n.Expiration = "", 0, ""
	if back != n {
		t.Fatalf("read back:\n got %+v\nwant %+v", back, n)
	}
}
