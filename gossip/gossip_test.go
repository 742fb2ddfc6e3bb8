package gossip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"

	"github.com/kvnode/kvnode/nodeid"
)

const otherClusterID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// seesAll checks that every node lists every other, alive, with the
// metadata and address that node advertises.
func seesAll(nodes []*testNode) error {
	for _, a := range nodes {
		if got := len(a.Members()); got != len(nodes) {
			return fmt.Errorf("%s knows %d members, want %d", a.name, got, len(nodes))
		}
		for _, b := range nodes {
			m, ok := a.Member(b.nodeID)
			if !ok {
				return fmt.Errorf("%s does not know %s", a.name, b.name)
			}
			if m.State != StateAlive {
				return fmt.Errorf("%s sees %s %s", a.name, b.name, m.State)
			}
			if !sameMeta(m.Meta, b.LocalMeta()) {
				return fmt.Errorf("%s sees %s with meta %+v, want %+v", a.name, b.name, m.Meta, b.LocalMeta())
			}
			if m.Addr != b.Addr() {
				return fmt.Errorf("%s sees %s at %s, want %s", a.name, b.name, m.Addr, b.Addr())
			}
		}
	}
	return nil
}

func TestThreeNodesShareMetaAndUpdates(t *testing.T) {
	nodes := startCluster(t, 3)
	eventually(t, "every node sees every node", func() error { return seesAll(nodes) })

	events, cancel := nodes[0].Subscribe()
	defer cancel()
	// The subscription opens with the members already known.
	initial := map[nodeid.ID]bool{}
	for len(initial) < 3 {
		ev := nextEvent(t, events)
		if ev.Type != EventJoin || ev.Member.State != StateAlive {
			t.Fatalf("initial event %v %v", ev.Type, ev.Member.State)
		}
		initial[ev.Member.Meta.NodeID] = true
	}

	start := time.Now()
	if err := nodes[1].UpdateMeta(func(m *NodeMeta) {
		m.SchemaDigest = "c0ffee12"
		m.Draining = true
		m.Extra = map[string]string{"locality": "az=b"}
	}); err != nil {
		t.Fatal(err)
	}
	if got := nodes[1].LocalMeta(); got.SchemaDigest != "c0ffee12" || !got.Draining {
		t.Fatalf("local meta not updated: %+v", got)
	}
	// With FastTuning (20ms gossip interval) the update takes a few
	// gossip rounds; the bound leaves room for a loaded machine.
	const bound = 5 * time.Second
	eventuallyWithin(t, bound, "the update reaches every node", func() error { return seesAll(nodes) })
	t.Logf("update propagated in %s", time.Since(start))

	for {
		ev := nextEvent(t, events)
		if ev.Member.Meta.NodeID == 2 && ev.Member.Meta.SchemaDigest == "c0ffee12" {
			if ev.Type != EventUpdate || !ev.Member.Meta.Draining || ev.Member.Meta.Extra["locality"] != "az=b" {
				t.Fatalf("update event %+v", ev)
			}
			break
		}
	}
}

func nextEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-time.After(waitFor):
		t.Fatal("no event")
		return Event{}
	}
}

func TestOtherClusterRefusedBothWays(t *testing.T) {
	ours := startCluster(t, 2)
	eventually(t, "cluster formed", func() error { return seesAll(ours) })
	foreign := startNode(t, 3, withCluster(otherClusterID))

	// The foreign node joins us, and we join it: both fail, naming both
	// cluster IDs.
	for _, tc := range []struct {
		name     string
		joiner   *testNode
		contacts *testNode
	}{
		{"foreign joins ours", foreign, ours[0]},
		{"ours joins foreign", ours[1], foreign},
	} {
		_, err := tc.joiner.Join([]string{tc.contacts.Addr()})
		if !errors.Is(err, ErrClusterMismatch) {
			t.Fatalf("%s: got %v, want ErrClusterMismatch", tc.name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, testClusterID) || !strings.Contains(msg, otherClusterID) {
			t.Fatalf("%s: error does not name both clusters: %s", tc.name, msg)
		}
	}
	// Both sides logged the refusal with both cluster IDs.
	for _, n := range []*testNode{ours[0], ours[1], foreign} {
		eventually(t, n.name+" logs the refusal", func() error {
			for _, line := range strings.Split(n.logs.String(), "\n") {
				if strings.Contains(line, "refusing gossip peer") &&
					strings.Contains(line, testClusterID) && strings.Contains(line, otherClusterID) {
					return nil
				}
			}
			return errors.New("no refusal naming both cluster IDs in the log")
		})
	}
	// Nobody admits anybody across the boundary, even after a few gossip,
	// probe and push/pull rounds.
	consistently(t, "clusters stay apart", 3*time.Second, func() error {
		for _, n := range ours {
			if _, ok := n.Member(3); ok {
				return fmt.Errorf("%s admitted the foreign node", n.name)
			}
		}
		if got := foreign.Members(); len(got) != 1 {
			return fmt.Errorf("foreign node admitted %v", got)
		}
		return nil
	})
}

func TestAdmitHook(t *testing.T) {
	refuseOld := withAdmit(func(m NodeMeta) error {
		if m.BinaryVersion < "2.0" {
			return errors.Newf("binary version %s is older than the cluster version 2.0", m.BinaryVersion)
		}
		return nil
	})
	strict := startNode(t, 1, refuseOld)
	old := startNode(t, 2, func(c *Config) { c.Meta.BinaryVersion = "1.1" })

	// The strict node refuses to merge the old node's view...
	_, err := strict.Join([]string{old.Addr()})
	if !errors.Is(err, ErrPeerRefused) || !strings.Contains(err.Error(), "older than the cluster version") {
		t.Fatalf("got %v, want ErrPeerRefused with the hook's reason", err)
	}
	// ...and never admits it, even when the old node (which has no such
	// hook) contacts it and gossips its alive messages.
	if _, err := old.Join([]string{strict.Addr()}); err != nil {
		t.Fatal(err)
	}
	consistently(t, "old node stays out", 2*time.Second, func() error {
		if _, ok := strict.Member(2); ok {
			return errors.New("strict node admitted the old binary")
		}
		return nil
	})
	if !strings.Contains(strict.logs.String(), "older than the cluster version") {
		t.Fatal("refusal not logged")
	}
}

func TestMetaTooLarge(t *testing.T) {
	big := map[string]string{"blob": strings.Repeat("x", memberlist.MetaMaxSize)}

	cfg := testConfig(1, &logSink{t: t})
	cfg.Meta.Extra = big
	if _, err := New(cfg); !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), "over the gossip limit of 512 bytes") {
		t.Fatalf("New: got %v, want ErrMetaTooLarge", err)
	}

	n := startNode(t, 1)
	before := n.LocalMeta()
	err := n.UpdateMeta(func(m *NodeMeta) { m.Extra = big })
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta: got %v, want ErrMetaTooLarge", err)
	}
	if !strings.Contains(err.Error(), "bytes, over the gossip limit") {
		t.Fatalf("error does not name the size: %v", err)
	}
	if !sameMeta(n.LocalMeta(), before) {
		t.Fatal("a refused update changed the local meta")
	}

	// Identity is immutable.
	if err := n.UpdateMeta(func(m *NodeMeta) { m.NodeID = 9 }); err == nil {
		t.Fatal("node ID change accepted")
	}
	if err := n.UpdateMeta(func(m *NodeMeta) { m.ClusterID = otherClusterID }); err == nil {
		t.Fatal("cluster ID change accepted")
	}
}

func TestFailedNodeBecomesDead(t *testing.T) {
	nodes := startCluster(t, 3)
	eventually(t, "cluster formed", func() error { return seesAll(nodes) })
	events, cancel := nodes[0].Subscribe()
	defer cancel()

	stopped := time.Now()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		eventually(t, n.name+" declares n3 dead", func() error { return expectState(n.Gossip, 3, StateDead) })
	}
	m, _ := nodes[0].Member(3)
	if m.LastChange.Before(stopped) || m.Meta.ListenAddr != nodes[2].LocalMeta().ListenAddr {
		t.Fatalf("dead record %+v", m)
	}
	for {
		ev := nextEvent(t, events)
		if ev.Member.Meta.NodeID == 3 && ev.Type == EventLeave {
			if ev.Member.State != StateDead {
				t.Fatalf("leave event with state %s", ev.Member.State)
			}
			break
		}
	}

	// memberlist forgets dead nodes after GossipToTheDeadTime; our record
	// stays for status views until Forget.
	consistently(t, "dead record kept", FastTuning().GossipToTheDeadTime+time.Second, func() error {
		return expectState(nodes[0].Gossip, 3, StateDead)
	})
	if err := nodes[0].Forget(2); err == nil {
		t.Fatal("forgot a live member")
	}
	if err := nodes[0].Forget(3); err != nil {
		t.Fatal(err)
	}
	if _, ok := nodes[0].Member(3); ok {
		t.Fatal("forgotten member still listed")
	}
	if err := nodes[0].Forget(3); err != nil {
		t.Fatalf("forgetting twice: %v", err)
	}
}

func TestLeaveBecomesLeft(t *testing.T) {
	nodes := startCluster(t, 3)
	eventually(t, "cluster formed", func() error { return seesAll(nodes) })

	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, n.name+" sees n3 left", func() error { return expectState(n.Gossip, 3, StateLeft) })
	}
	if err := nodes[2].UpdateMeta(func(m *NodeMeta) { m.Draining = true }); !errors.Is(err, ErrLeft) {
		t.Fatalf("UpdateMeta after Leave: %v", err)
	}
	if err := nodes[2].Leave(time.Second); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	// Left is final until the node rejoins: shutting down does not turn
	// it into a failure.
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	consistently(t, "n3 stays left", time.Second, func() error { return expectState(nodes[0].Gossip, 3, StateLeft) })
}

func TestPortInUse(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			var addr string
			if proto == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				addr = ln.Addr().String()
			} else {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				addr = pc.LocalAddr().String()
			}
			cfg := testConfig(1, &logSink{t: t})
			cfg.BindAddr = addr
			g, err := New(cfg)
			if err == nil {
				_ = g.Shutdown()
				t.Fatal("started on a taken port")
			}
			want := fmt.Sprintf("gossip address %s is in use: choose another --gossip-addr", addr)
			if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %q, want %q", err, want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		substr string
	}{
		{"no node id", func(c *Config) { c.Meta.NodeID = 0 }, "node ID"},
		{"no cluster id", func(c *Config) { c.Meta.ClusterID = "" }, "cluster ID"},
		{"no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "invalid --gossip-addr"},
		{"bad port", func(c *Config) { c.BindAddr = "127.0.0.1:99999" }, "bad port"},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "nope" }, "advertise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(1, &logSink{t: t})
			tc.mutate(&cfg)
			g, err := New(cfg)
			if err == nil {
				_ = g.Shutdown()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want %q", err, tc.substr)
			}
		})
	}
}

func TestJoinUnreachable(t *testing.T) {
	n := startNode(t, 1)
	if _, err := n.Join(nil); err == nil {
		t.Fatal("joined nothing")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if _, err := n.Join([]string{dead}); err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("got %v, want an error naming %s", err, dead)
	}
}

func TestSubscriberNeverBlocksGossip(t *testing.T) {
	n := startNode(t, 1)
	events, cancel := n.Subscribe()
	// Nobody reads events while the node updates its meta many times.
	// Were delivery blocking, memberlist's event delegate (and so
	// UpdateMeta) would hang once the channel is full.
	const updates = 100
	for i := range updates {
		if err := n.UpdateMeta(func(m *NodeMeta) { m.SchemaDigest = fmt.Sprintf("%04x", i) }); err != nil {
			t.Fatal(err)
		}
	}
	last := fmt.Sprintf("%04x", updates-1)
	var got int
	for {
		ev := nextEvent(t, events)
		got++
		if ev.Member.Meta.SchemaDigest == last {
			break
		}
	}
	// The slow reader got coalesced events: at most a channel's worth
	// plus the latest state, not one per update.
	if got > subscriberBuffer+2 {
		t.Fatalf("read %d events for %d updates", got, updates)
	}
	cancel()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-time.After(waitFor):
			t.Fatal("subscription not closed by cancel")
		}
	}
}

func TestAfterShutdown(t *testing.T) {
	n := startNode(t, 1)
	events, _ := n.Subscribe()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for range events { // closed by Shutdown
	}
	if err := n.UpdateMeta(func(*NodeMeta) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta: %v", err)
	}
	// memberlist panics on Leave after Shutdown; Gossip must not.
	if err := n.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave: %v", err)
	}
	if _, err := n.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join: %v", err)
	}
	late, _ := n.Subscribe()
	if _, ok := <-late; ok {
		t.Fatal("subscription after Shutdown delivered an event")
	}
	if len(n.Members()) != 1 {
		t.Fatal("members lost at shutdown")
	}
}
