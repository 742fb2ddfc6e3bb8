package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvnode/kvnode/nodeid"
)

func TestEvaluateClockOffsets(t *testing.T) {
	const max = 500 * time.Millisecond // tolerated: 400ms
	peer := func(id nodeid.ID, off, unc time.Duration) PeerOffset {
		return PeerOffset{NodeID: id, Offset: off, Uncertainty: unc}
	}
	for _, tc := range []struct {
		name        string
		peers       []PeerOffset
		wantHealthy bool
		wantBeyond  int
	}{
		{name: "no peer measured", wantHealthy: true},
		{name: "all close", peers: []PeerOffset{peer(2, 10*time.Millisecond, 0), peer(3, -20*time.Millisecond, 0)}, wantHealthy: true},
		{name: "one peer of two beyond: that peer's clock is the odd one",
			peers: []PeerOffset{peer(2, 2*time.Second, 0), peer(3, 0, 0)}, wantHealthy: true, wantBeyond: 1},
		{name: "both peers beyond: this node's clock is the odd one",
			peers: []PeerOffset{peer(2, 2*time.Second, 0), peer(3, 2*time.Second, 0)}, wantBeyond: 2},
		{name: "the only peer measured is beyond", peers: []PeerOffset{peer(2, -time.Second, 0)}, wantBeyond: 1},
		{name: "beyond 4/5 of the bound counts", peers: []PeerOffset{peer(2, 450*time.Millisecond, 0)}, wantBeyond: 1},
		{name: "within the uncertainty does not",
			peers: []PeerOffset{peer(2, 450*time.Millisecond, 100*time.Millisecond)}, wantHealthy: true},
		{name: "two of four beyond is not a majority",
			peers:       []PeerOffset{peer(2, time.Second, 0), peer(3, time.Second, 0), peer(4, 0, 0), peer(5, 0, 0)},
			wantHealthy: true, wantBeyond: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := EvaluateClockOffsets(max, tc.peers, nil)
			if st.Healthy != tc.wantHealthy || st.Beyond != tc.wantBeyond || st.Tolerated != 400*time.Millisecond {
				t.Fatalf("got healthy %v, beyond %d: %s", st.Healthy, st.Beyond, st.Message())
			}
		})
	}
}

// TestClockMonitorRound: a round measures each peer once; a peer whose
// release has no Clock method is listed as older and not counted, one that
// fails otherwise is left out, and an offset beyond the bound against
// every measured peer makes the node unhealthy.
func TestClockMonitorRound(t *testing.T) {
	errUnimplemented := errors.New("unimplemented")
	clock := NewClock()
	var peerOffset time.Duration
	m := NewClockMonitor(ClockMonitorConfig{
		Clock:     clock,
		MaxOffset: 500 * time.Millisecond,
		Interval:  time.Second,
		Peers:     func() map[nodeid.ID]string { return map[nodeid.ID]string{2: "new", 3: "old", 4: "down"} },
		Ping: func(_ context.Context, addr string) (time.Time, error) {
			switch addr {
			case "old":
				return time.Time{}, errUnimplemented
			case "down":
				return time.Time{}, errors.New("connection refused")
			}
			return time.Now().Add(peerOffset), nil
		},
		IsUnimplemented: func(err error) bool { return errors.Is(err, errUnimplemented) },
	})
	if m.Healthy() {
		t.Fatal("healthy before any measurement")
	}
	ctx := context.Background()
	m.Round(ctx)
	st := m.Status()
	if !st.Healthy || len(st.Peers) != 1 || st.Peers[0].NodeID != 2 || len(st.Older) != 1 || st.Older[0] != 3 {
		t.Fatalf("first round: %+v", st)
	}
	peerOffset = 3 * time.Second
	m.Round(ctx)
	if st := m.Status(); st.Healthy || st.Beyond != 1 || st.MaxAbsOffset < 2*time.Second {
		t.Fatalf("peer 3s ahead: %+v", st)
	}
	// The same, seen from a clock 3s ahead of the system's.
	peerOffset = 0
	clock.SetOffset(-3 * time.Second)
	m.Round(ctx)
	if m.Healthy() {
		t.Fatalf("this clock 3s behind: %s", m.Status().Message())
	}
	clock.SetOffset(0)
	m.Round(ctx)
	if !m.Healthy() {
		t.Fatalf("clock back: %s", m.Status().Message())
	}
}
