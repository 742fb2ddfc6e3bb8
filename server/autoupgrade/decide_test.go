package autoupgrade

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeid"
)

func v(s string) clusterversion.Version {
	x, err := clusterversion.Parse(s)
	if err != nil {
		panic(err)
	}
	return x
}

func nodes(spec string) []Node {
	// spec: space-separated "id:binary[:dead][:draining][:decommissioned|:decommissioning][:at=persisted]"
	var out []Node
	for _, f := range strings.Fields(spec) {
		parts := strings.Split(f, ":")
		n := Node{BinaryVersion: v(parts[1]), Live: true, Membership: Active}
		for _, c := range parts[0] {
			n.ID = n.ID*10 + nodeid.ID(c-'0')
		}
		for _, p := range parts[2:] {
			switch {
			case p == "dead":
				n.Live = false
			case p == "draining":
				n.Draining = true
			case strings.HasPrefix(p, "at="):
				n.Persisted = v(strings.TrimPrefix(p, "at="))
			default:
				n.Membership = p
			}
		}
		out = append(out, n)
	}
	return out
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		active   string
		nodes    string
		auto     bool
		preserve string
		finalize bool
		target   string
		steps    string
		blockers string // kinds, space-separated
		reason   string // substring of the summary
	}{
		{name: "fresh cluster", active: "2.0", nodes: "1:2.0 2:2.0 3:2.0", auto: true, reason: "up to date"},
		{name: "all upgraded", active: "1.0", nodes: "1:1.1 2:1.1 3:1.1", auto: true, finalize: true,
			target: "1.1", steps: "1.1-step.1 1.1-step.2 1.1"},
		{name: "mid roll: one old binary", active: "1.0", nodes: "1:1.1 2:1.0 3:1.1", auto: true, target: "1.1",
			blockers: "mixed_binary_versions", reason: "node 2 runs 1.0"},
		{name: "minority new is still mixed", active: "1.1", nodes: "1:2.0 2:1.1 3:1.1", auto: true, target: "2.0",
			blockers: "mixed_binary_versions", reason: "nodes 2, 3 run 1.1"},
		{name: "dead node blocks", active: "1.0", nodes: "1:1.1 2:1.1 3:1.1:dead", auto: true, target: "1.1",
			blockers: "dead_node", reason: "node 3 is not live"},
		{name: "decommissioned dead node does not block", active: "1.0", nodes: "1:1.1 2:1.1 3:1.0:dead:decommissioned", auto: true,
			finalize: true, target: "1.1"},
		{name: "decommissioning node still counts", active: "1.0", nodes: "1:1.1 2:1.1 3:1.0:decommissioning", auto: true,
			target: "1.1", blockers: "mixed_binary_versions"},
		{name: "draining node blocks", active: "1.0", nodes: "1:1.1 2:1.1:draining 3:1.1", auto: true, target: "1.1",
			blockers: "draining_node"},
		{name: "preserve option blocks", active: "1.1", nodes: "1:2.0 2:2.0 3:2.0", auto: true, preserve: "1.1",
			target: "2.0", blockers: "preserve_downgrade_option", reason: "preserve_downgrade_option is set to 1.1"},
		{name: "auto upgrade disabled blocks", active: "1.1", nodes: "1:2.0 2:2.0 3:2.0", target: "2.0",
			blockers: "auto_upgrade_disabled"},
		{name: "every blocker at once", active: "1.0", nodes: "1:1.1:draining 2:1.0 3:1.1:dead", preserve: "1.0", target: "1.1",
			blockers: "mixed_binary_versions draining_node dead_node preserve_downgrade_option auto_upgrade_disabled"},
		{name: "interrupted finalization resumes", active: "1.1-step.1", nodes: "1:1.1 2:1.1 3:1.1", auto: true,
			finalize: true, target: "1.1", steps: "1.1-step.2 1.1"},
		{name: "interrupted finalization with 2.0 binaries", active: "2.0-step.1", nodes: "1:2.0 2:2.0", auto: true,
			finalize: true, target: "2.0", steps: "2.0"},
		// Issue 16, D6: the operator finalized by hand with auto-upgrade
		// off, and the coordinator died in the group 0 procedure: the
		// fence is persisted everywhere, nothing can roll it back, and the
		// nodes in synchronize refuse DDL until it completes.
		{name: "interrupted finalization resumes with auto-upgrade disabled", active: "2.0-step.1", nodes: "1:2.0 2:2.0 3:2.0",
			finalize: true, target: "2.0", steps: "2.0"},
		{name: "interrupted finalization resumes past a preserve option it moved past", active: "2.0-step.1", nodes: "1:2.0 2:2.0",
			preserve: "1.1", finalize: true, target: "2.0", steps: "2.0"},
		{name: "interrupted finalization still waits for a dead node", active: "1.1-step.2", nodes: "1:1.1 2:1.1 3:1.1:dead",
			target: "1.1", blockers: "dead_node", reason: "node 3 is not live"},
		// Issue 16, D2/D5: the fence reached node 1 and not this node (at
		// 1.1), and the preserve option was set through a node at 1.1: it
		// holds nothing, node 1 can no longer run the 1.1 binary.
		{name: "another node persisted the fence: the finalization resumes", active: "1.1",
			nodes: "1:2.0:at=2.0-step.1 2:2.0:at=1.1 3:2.0", preserve: "1.1", finalize: true, target: "2.0", steps: "2.0-step.1 2.0"},
		{name: "another node persisted the fence and is dead: waits for it", active: "1.1",
			nodes: "1:2.0:at=2.0-step.1:dead 2:2.0:at=1.1", target: "2.0", blockers: "dead_node"},
		{name: "a node reported at the active version changes nothing", active: "1.1",
			nodes: "1:2.0:at=1.1 2:2.0:at=1.1", preserve: "1.1", auto: true, target: "2.0", blockers: "preserve_downgrade_option"},
		{name: "a decommissioned node ahead does not count", active: "1.1",
			nodes: "1:2.0:at=2.0-step.1:dead:decommissioned 2:2.0:at=1.1", target: "2.0", blockers: "auto_upgrade_disabled"},
		// Issue 16, D5: a preserve option set on a node that had not yet
		// persisted the fence names a version the cluster moved past.
		{name: "preserve option naming a passed version holds nothing", active: "1.1", nodes: "1:2.0 2:2.0", auto: true,
			preserve: "1.0", finalize: true, target: "2.0"},
		{name: "preserve option that is not a version holds", active: "1.1", nodes: "1:2.0 2:2.0", auto: true,
			preserve: "banana", target: "2.0", blockers: "preserve_downgrade_option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Active: v(tc.active), Nodes: nodes(tc.nodes), AutoUpgradeEnabled: tc.auto,
				PreserveDowngrade: tc.preserve, Host: "127.0.0.1:26357"})
			if d.Finalize != tc.finalize {
				t.Errorf("Finalize = %v, want %v (%s)", d.Finalize, tc.finalize, d.Summary())
			}
			gotTarget := ""
			if !d.UpToDate() {
				gotTarget = d.Target.String()
			}
			if gotTarget != tc.target {
				t.Errorf("Target = %q, want %q", gotTarget, tc.target)
			}
			if tc.steps != "" {
				var s []string
				for _, x := range d.Steps {
					s = append(s, x.String())
				}
				if strings.Join(s, " ") != tc.steps {
					t.Errorf("Steps = %v, want %s", s, tc.steps)
				}
			}
			var kinds []string
			for _, b := range d.Blockers {
				kinds = append(kinds, string(b.Kind))
				if b.Fix == "" {
					t.Errorf("blocker %s has no fix", b.Kind)
				}
			}
			if strings.Join(kinds, " ") != tc.blockers {
				t.Errorf("blockers = %v, want %s", kinds, tc.blockers)
			}
			if tc.reason != "" && !strings.Contains(d.Summary(), tc.reason) {
				t.Errorf("summary %q lacks %q", d.Summary(), tc.reason)
			}
		})
	}
}

func TestDeadNodeFixNamesTheCommand(t *testing.T) {
	d := Decide(Input{Active: v("1.0"), Nodes: nodes("1:1.1 4:1.1:dead"), AutoUpgradeEnabled: true, Host: "127.0.0.1:26357"})
	if len(d.Blockers) != 1 || d.Blockers[0].Fix != "bring node 4 back, or remove it for good: kvnode node decommission 4 --host=127.0.0.1:26357" {
		t.Fatalf("%+v", d.Blockers)
	}
}

func TestValidateManual(t *testing.T) {
	for _, tc := range []struct {
		name     string
		active   string
		nodes    string
		preserve string
		target   string
		err      error
		msg      string
		steps    string
	}{
		{name: "upgrade", active: "1.0", nodes: "1:1.1 2:1.1", target: "1.1", steps: "1.1-step.1 1.1-step.2 1.1"},
		{name: "no-op", active: "1.1", nodes: "1:1.1", target: "1.1"},
		{name: "no-op with preserve", active: "1.1", nodes: "1:2.0", preserve: "1.1", target: "1.1"},
		{name: "downgrade", active: "1.1", nodes: "1:1.1", target: "1.0", err: ErrDowngrade, msg: "downgrade from 1.1 to 1.0"},
		{name: "beyond a binary", active: "1.0", nodes: "1:1.1 2:1.0", target: "1.1", err: ErrBeyondBinary, msg: "node 2 is running 1.0"},
		{name: "dead node", active: "1.0", nodes: "1:1.1 2:1.1:dead", target: "1.1", err: ErrNodeNotLive, msg: "node 2 is not live"},
		{name: "decommissioned node ignored", active: "1.0", nodes: "1:1.1 2:1.0:dead:decommissioned", target: "1.1", steps: "1.1-step.1 1.1-step.2 1.1"},
		{name: "preserve set", active: "1.1", nodes: "1:2.0", preserve: "1.1", target: "2.0", err: ErrPreserveSet},
		{name: "internal step", active: "1.0", nodes: "1:1.1", target: "1.1-step.1", err: ErrNotARelease},
		{name: "unknown", active: "1.0", nodes: "1:1.1", target: "1.5", err: clusterversion.ErrUnknownVersion},
		{name: "resume from fence", active: "1.1-step.1", nodes: "1:1.1", target: "1.1", steps: "1.1-step.2 1.1"},
		{name: "resume past a preserve option it moved past", active: "2.0-step.1", nodes: "1:2.0", preserve: "1.1", target: "2.0", steps: "2.0"},
		{name: "resume a fence another node persisted", active: "1.1", nodes: "1:2.0:at=2.0-step.1 2:2.0:at=1.1", preserve: "1.1",
			target: "2.0", steps: "2.0-step.1 2.0"},
		{name: "preserve option naming a passed version", active: "1.1", nodes: "1:2.0", preserve: "1.0", target: "2.0", steps: "2.0-step.1 2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := ValidateManual(Input{Active: v(tc.active), Nodes: nodes(tc.nodes), PreserveDowngrade: tc.preserve}, v(tc.target))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, x := range steps {
				s = append(s, x.String())
			}
			if strings.Join(s, " ") != tc.steps {
				t.Fatalf("steps = %v, want %q", s, tc.steps)
			}
		})
	}
}

func TestValidatePreserve(t *testing.T) {
	if err := ValidatePreserve(v("1.1"), "1.1"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"1.0", "2.0", "banana", ""} {
		err := ValidatePreserve(v("1.1"), bad)
		if err == nil || !strings.Contains(err.Error(), "current cluster version 1.1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Issue 16: at an internal step, the error named the step as the value
	// to set, and then refused it. It must name a value that is accepted.
	for _, tc := range []struct{ active, try, release string }{
		{"2.0-step.1", "2.0-step.1", "2.0"},
		{"2.0-step.1", "1.1", "2.0"},
		{"1.1-step.2", "1.1-step.2", "1.1"},
	} {
		err := ValidatePreserve(v(tc.active), tc.try)
		if err == nil {
			t.Fatalf("preserve %s at %s accepted", tc.try, tc.active)
		}
		hint := strings.Join(errors.GetAllHints(err), " ")
		want := fmt.Sprintf("cluster.preserve_downgrade_option = '%s'", tc.release)
		if !strings.Contains(hint, want) || !strings.Contains(err.Error(), "finalizing to "+tc.release) {
			t.Errorf("at %s: %v (hint %q), want the hint to say %q", tc.active, err, hint, want)
		}
		if strings.Contains(hint, "'"+tc.active+"'") {
			t.Errorf("at %s: the hint names %s, which is refused: %q", tc.active, tc.active, hint)
		}
		// The value the hint names is accepted once the cluster is there.
		if err := ValidatePreserve(v(tc.release), tc.release); err != nil {
			t.Errorf("the named value %s is refused at %s: %v", tc.release, tc.release, err)
		}
	}
}
