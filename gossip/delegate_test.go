package gossip

import (
	"log/slog"
	"net"
	"strconv"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"

	"github.com/kvnode/kvnode/nodeid"
)

// peer builds the memberlist.Node that memberlist would hand the delegates
// for an alive message from name at addr with the given record.
func peer(t *testing.T, name, addr string, raw []byte) *memberlist.Node {
	t.Helper()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	return &memberlist.Node{Name: name, Addr: net.ParseIP(host), Port: uint16(port), Meta: raw}
}

func encoded(t *testing.T, m NodeMeta) []byte {
	t.Helper()
	b, err := encodeMeta(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAliveDelegateVetting drives the delegates directly with the alive
// messages a misbehaving or foreign peer could gossip, including the ones
// that arrive through passive gossip rather than a join.
func TestAliveDelegateVetting(t *testing.T) {
	nodes := startCluster(t, 2, withAdmit(func(m NodeMeta) error {
		if m.BinaryVersion == "0.9" {
			return errors.New("binary 0.9 is too old")
		}
		return nil
	}))
	eventually(t, "cluster formed", func() error { return seesAll(nodes) })
	n1 := nodes[0]
	d := &delegate{g: n1.Gossip}
	n2addr := nodes[1].Addr()
	const elsewhere = "127.0.0.2:4242"

	meta := func(id nodeid.ID, mutate func(*NodeMeta)) NodeMeta {
		m := NodeMeta{NodeID: id, ClusterID: testClusterID, BinaryVersion: "2.0"}
		if mutate != nil {
			mutate(&m)
		}
		return m
	}
	future := encoded(t, meta(7, nil))
	future[0] = 2

	for _, tc := range []struct {
		name string
		node *memberlist.Node
		is   error // nil: admitted
	}{
		{"new member", peer(t, "n7", elsewhere, encoded(t, meta(7, nil))), nil},
		{"known member, same address", peer(t, "n2", n2addr, nodes[1].localRaw), nil},
		{"self", peer(t, "n1", n1.Addr(), n1.localRaw), nil},
		{"other cluster", peer(t, "n7", elsewhere, encoded(t, meta(7, func(m *NodeMeta) { m.ClusterID = otherClusterID }))), ErrClusterMismatch},
		{"garbage", peer(t, "n7", elsewhere, []byte("garbage")), ErrUnknownMetaVersion},
		{"truncated", peer(t, "n7", elsewhere, encoded(t, meta(7, nil))[:4]), ErrInvalidMeta},
		{"no meta", peer(t, "n7", elsewhere, nil), ErrInvalidMeta},
		{"future format", peer(t, "n7", elsewhere, future), ErrUnknownMetaVersion},
		{"name does not match node ID", peer(t, "n8", elsewhere, encoded(t, meta(7, nil))), ErrInvalidMeta},
		{"live node ID at another address", peer(t, "n2", elsewhere, encoded(t, meta(2, nil))), ErrNodeIDConflict},
		{"our own node ID at another address", peer(t, "n1", elsewhere, encoded(t, meta(1, nil))), ErrNodeIDConflict},
		{"refused by Admit", peer(t, "n7", elsewhere, encoded(t, meta(7, func(m *NodeMeta) { m.BinaryVersion = "0.9" }))), ErrPeerRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.NotifyAlive(tc.node)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}

	t.Run("merge", func(t *testing.T) {
		old := peer(t, "n9", elsewhere, encoded(t, meta(9, func(m *NodeMeta) { m.BinaryVersion = "0.9" })))
		// A long-gone member with an old binary does not block a join...
		old.State = memberlist.StateDead
		ok := peer(t, "n7", "127.0.0.3:1", encoded(t, meta(7, nil)))
		if err := d.NotifyMerge([]*memberlist.Node{ok, old}); err != nil {
			t.Fatalf("merge refused: %v", err)
		}
		// ...a live one does,
		old.State = memberlist.StateAlive
		if err := d.NotifyMerge([]*memberlist.Node{ok, old}); !errors.Is(err, ErrPeerRefused) {
			t.Fatalf("got %v, want ErrPeerRefused", err)
		}
		// and so does any member of another cluster, even dead.
		foreign := peer(t, "n9", elsewhere, encoded(t, meta(9, func(m *NodeMeta) { m.ClusterID = otherClusterID })))
		foreign.State = memberlist.StateDead
		if err := d.NotifyMerge([]*memberlist.Node{ok, foreign}); !errors.Is(err, ErrClusterMismatch) {
			t.Fatalf("got %v, want ErrClusterMismatch", err)
		}
	})

	// None of the vetted peers became members: only memberlist adds
	// members, after the delegate agreed.
	if got := len(n1.Members()); got != 2 {
		t.Fatalf("%d members", got)
	}
}

func TestParseMemberlistLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5\n", slog.LevelDebug, "Stream connection from=127.0.0.1:5"},
		{"[INFO] memberlist: Marking n3 as failed\n", slog.LevelInfo, "Marking n3 as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", slog.LevelWarn, "Refuting a suspect message"},
		{"[ERR] memberlist: Failed fallback TCP ping\n", slog.LevelError, "Failed fallback TCP ping"},
		{"[ERR] Failed to shutdown transport: x\n", slog.LevelError, "Failed to shutdown transport: x"},
		// Refusals are logged by vet; memberlist's copies are demoted.
		{"[WARN] memberlist: ignoring alive message for 'n7': refusing gossip peer n7 at x\n", slog.LevelDebug, "ignoring alive message for 'n7': refusing gossip peer n7 at x"},
		{"[ERR] memberlist: Failed push/pull merge: refusing gossip peer n7 at x from=y\n", slog.LevelDebug, "Failed push/pull merge: refusing gossip peer n7 at x from=y"},
		{"no level\n", slog.LevelInfo, "no level"},
	} {
		level, msg := parseMemberlistLine([]byte(tc.in))
		if level != tc.level || msg != tc.msg {
			t.Errorf("%q: got %v %q, want %v %q", tc.in, level, msg, tc.level, tc.msg)
		}
	}
}
