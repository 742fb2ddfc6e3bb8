package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// announce changes n's Extra["probe"] and waits until every other node of
// nodes has it: a message n sent (with its primary key) was read by all.
func announce(t *testing.T, nodes []*testNode, n *testNode, value string) error {
	t.Helper()
	if err := n.UpdateMeta(func(m *NodeMeta) {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra["probe"] = value
	}); err != nil && !errors.Is(err, ErrBroadcastTimeout) {
		return err
	}
	for _, o := range nodes {
		if o == n {
			continue
		}
		m, ok := o.Member(n.nodeID)
		if !ok {
			return fmt.Errorf("%s does not know %s", o.name, n.name)
		}
		if m.Meta.Extra["probe"] != value {
			return fmt.Errorf("%s sees %s's probe %q, want %q", o.name, n.name, m.Meta.Extra["probe"], value)
		}
		if m.State != StateAlive {
			return fmt.Errorf("%s sees %s %s", o.name, n.name, m.State)
		}
	}
	return nil
}

// TestGossipKeyRotation: the three steps of SECURITY.md's rotation (add
// the new key as accepted, make it the primary, drop the old one), each
// applied one node at a time, keep every node able to read every other at
// every moment (each node's metadata change reaches all the others after
// every single change); at the end a process with only the old key is
// refused. Using the new key before every node accepts it is what the
// order prevents: that node's messages are refused (the last part shows
// the check can fail).
func TestGossipKeyRotation(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	nodes := startCluster(t, 3, withKey(oldKey))
	eventually(t, "cluster formed", func() error { return seesAll(nodes) })

	probe := 0
	everyoneHearsEveryone := func(what string) {
		t.Helper()
		for _, n := range nodes {
			probe++
			v := fmt.Sprint(probe)
			eventually(t, what+": "+n.name+"'s update reaches every node", func() error { return announce(t, nodes, n, v) })
		}
	}
	steps := []struct {
		name    string
		primary []byte
		accept  [][]byte
	}{
		{"add (new key accepted)", oldKey, [][]byte{newKey}},
		{"use (new key primary)", newKey, [][]byte{oldKey}},
		{"remove (old key dropped)", newKey, nil},
	}
	for _, st := range steps {
		for _, n := range nodes {
			if err := n.SetKeys(st.primary, st.accept); err != nil {
				t.Fatalf("%s on %s: %v", st.name, n.name, err)
			}
			everyoneHearsEveryone(st.name + " on " + n.name)
		}
	}
	for _, n := range nodes {
		if got := n.keyring.GetKeys(); len(got) != 1 || !bytes.Equal(got[0], newKey) {
			t.Fatalf("%s keeps %d keys after the rotation", n.name, len(got))
		}
	}

	// A process that still has only the old key is a stranger now.
	stale := startNode(t, 9, withKey(oldKey))
	if _, err := stale.Join([]string{nodes[0].Addr()}); err == nil {
		t.Fatal("a node with only the old key joined after the rotation")
	}
	eventually(t, "the refusal is logged", func() error {
		if !strings.Contains(nodes[0].logs.String(), "refused gossip: the peer does not have this cluster's gossip key") {
			return errors.New("no refusal line")
		}
		return nil
	})

	// The wrong order: n1 sends with a key the others do not accept yet.
	third := bytes.Repeat([]byte{3}, 32)
	if err := nodes[0].SetKeys(third, [][]byte{newKey}); err != nil {
		t.Fatal(err)
	}
	consistently(t, "n1's update does not reach the others", 2*waitFor/5, func() error {
		if err := announce(t, nodes, nodes[0], "unreadable"); err == nil {
			return errors.New("the others read n1's message sent with a key they do not have")
		}
		return nil
	})

	if err := startNode(t, 10).SetKeys(newKey, nil); err == nil {
		t.Fatal("SetKeys turned encryption on for a plaintext node")
	}
	if err := nodes[1].SetKeys([]byte("short"), nil); err == nil {
		t.Fatal("SetKeys took a 5-byte key")
	}
}
