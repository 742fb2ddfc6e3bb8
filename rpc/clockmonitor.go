package rpc

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvnode/kvnode/nodeid"
)

// ClockMonitor measures the offset of this node's clock against every other
// node's, as CockroachDB's RemoteClockMonitor does, and decides whether this
// node's clock is within --max-offset of the cluster's: the assumption the
// data group's leader lease rests on (kv/DESIGN.md, "Leader lease").
//
// Each interval it asks every peer for its wall time (Ping) and takes
// offset = remote - (send + rtt/2), with an uncertainty of rtt/2. A peer is
// beyond the bound when |offset| - uncertainty exceeds the tolerated offset
// (4/5 of MaxOffset, CockroachDB's fraction: a drifting clock is caught
// before it reaches the bound). This node is unhealthy when it is beyond the
// bound against a majority of the peers it measured lately: one peer with a
// bad clock makes only that peer unhealthy (its own majority disagrees with
// it), not everyone who measures it. A peer that answers Unimplemented runs
// an older release without the method; it is left out of the count, never
// an error. With no peer measured (a single node, or only older releases),
// the node counts as healthy: nothing says otherwise.
type ClockMonitor struct {
	cfg    ClockMonitorConfig
	mu     sync.Mutex
	peers  map[nodeid.ID]PeerOffset
	old    map[nodeid.ID]bool // answered Unimplemented
	status atomic.Pointer[ClockStatus]
}

// ClockMonitorConfig configures a ClockMonitor.
type ClockMonitorConfig struct {
	Clock     *Clock
	MaxOffset time.Duration
	// Interval between two rounds of measurements (default 1s). A
	// measurement older than 3 intervals no longer counts.
	Interval time.Duration
	// Peers returns the other nodes to measure: node ID to RPC address.
	Peers func() map[nodeid.ID]string
	// Ping asks the node at addr for its wall time. IsUnimplemented tells
	// whether its error means the node's release has no such method.
	Ping            func(ctx context.Context, addr string) (time.Time, error)
	IsUnimplemented func(error) bool
	Logger          *slog.Logger
	// OnChange, if set, is called after every round with the new status
	// (metrics).
	OnChange func(ClockStatus)
}

// PeerOffset is one measurement of a peer's clock against this node's.
type PeerOffset struct {
	NodeID      nodeid.ID
	Offset      time.Duration // remote - local: positive if the peer's clock is ahead
	Uncertainty time.Duration
	MeasuredAt  time.Time
	Beyond      bool // beyond the tolerated offset
}

// ClockStatus is the monitor's verdict after its last round.
type ClockStatus struct {
	// Healthy is false when this node's clock is beyond the tolerated
	// offset against a majority of the peers measured lately.
	Healthy bool
	// MaxOffset is the configured bound, Tolerated the 4/5 of it that
	// counts.
	MaxOffset, Tolerated time.Duration
	// Peers are the recent measurements, by node ID; Older the peers whose
	// release has no clock RPC (not counted).
	Peers []PeerOffset
	Older []nodeid.ID
	// Beyond is how many of Peers are beyond the tolerated offset.
	Beyond int
	// MaxAbsOffset is the largest |offset| among Peers.
	MaxAbsOffset time.Duration
	// Rounds counts the rounds of measurements so far: before the first,
	// the monitor knows nothing and ClockMonitor.Healthy is false.
	Rounds int
}

// Message describes the status for an operator.
func (s ClockStatus) Message() string {
	if s.Healthy {
		return fmt.Sprintf("clock within %s of the other nodes' (largest offset measured %s)", s.Tolerated, s.MaxAbsOffset.Round(time.Millisecond))
	}
	return fmt.Sprintf("this node's clock is more than %s (4/5 of --max-offset=%s) away from %d of the %d other nodes measured (largest offset %s)",
		s.Tolerated, s.MaxOffset, s.Beyond, len(s.Peers), s.MaxAbsOffset.Round(time.Millisecond))
}

// NewClockMonitor returns a monitor; Run starts measuring.
func NewClockMonitor(cfg ClockMonitorConfig) *ClockMonitor {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IsUnimplemented == nil {
		cfg.IsUnimplemented = func(error) bool { return false }
	}
	m := &ClockMonitor{cfg: cfg, peers: map[nodeid.ID]PeerOffset{}, old: map[nodeid.ID]bool{}}
	st := EvaluateClockOffsets(cfg.MaxOffset, nil, nil)
	m.status.Store(&st)
	return m
}

// Healthy reports the last round's verdict; false before the first round
// (a node that just started must not serve leased reads on a clock nobody
// has compared yet).
func (m *ClockMonitor) Healthy() bool {
	st := m.status.Load()
	return st.Rounds > 0 && st.Healthy
}

// Status returns the last round's status.
func (m *ClockMonitor) Status() ClockStatus { return *m.status.Load() }

// Run measures every interval until ctx ends.
func (m *ClockMonitor) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round measures every peer once, concurrently, and evaluates the result.
func (m *ClockMonitor) Round(ctx context.Context) {
	peers := m.cfg.Peers()
	var wg sync.WaitGroup
	for id, addr := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.measure(ctx, id, addr)
		}()
	}
	wg.Wait()
	m.evaluate(peers)
}

func (m *ClockMonitor) measure(ctx context.Context, id nodeid.ID, addr string) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Interval)
	defer cancel()
	t0 := m.cfg.Clock.Now()
	remote, err := m.cfg.Ping(ctx, addr)
	t1 := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err != nil && m.cfg.IsUnimplemented(err):
		if !m.old[id] {
			m.cfg.Logger.Info("clock offset monitor: node runs a release without the clock RPC; not measured", "node", id)
		}
		m.old[id] = true
		delete(m.peers, id)
	case err != nil:
		m.cfg.Logger.Debug("clock offset monitor: no measurement", "node", id, "err", err)
	default:
		delete(m.old, id)
		rtt := t1.Sub(t0)
		mid := t0.Add(rtt / 2).Round(0) // wall reading
		m.peers[id] = PeerOffset{NodeID: id, Offset: remote.Sub(mid), Uncertainty: rtt / 2, MeasuredAt: t1}
	}
}

func (m *ClockMonitor) evaluate(current map[nodeid.ID]string) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	var recent []PeerOffset
	var older []nodeid.ID
	for id, p := range m.peers {
		_, still := current[id]
		if !still || now.Sub(p.MeasuredAt) > 3*m.cfg.Interval {
			delete(m.peers, id)
			continue
		}
		recent = append(recent, p)
	}
	for id := range m.old {
		if _, still := current[id]; !still {
			delete(m.old, id)
			continue
		}
		older = append(older, id)
	}
	m.mu.Unlock()
	st := EvaluateClockOffsets(m.cfg.MaxOffset, recent, older)
	prev := m.status.Load()
	st.Rounds = prev.Rounds + 1
	m.status.Store(&st) // only Round stores: rounds do not overlap
	switch {
	case (prev.Healthy || prev.Rounds == 0) && !st.Healthy:
		m.cfg.Logger.Warn("clock offset beyond the bound: this node stops serving leased reads (it reads through Raft's ReadIndex) until its clock is back within the bound; "+
			"synchronize the clocks of the nodes (NTP, chrony)", "status", st.Message())
	case !prev.Healthy && prev.Rounds > 0 && st.Healthy:
		m.cfg.Logger.Info("clock offset back within the bound: this node may serve leased reads again", "status", st.Message())
	}
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(st)
	}
}

// EvaluateClockOffsets is the monitor's verdict on a set of measurements: a
// pure function, table-tested.
func EvaluateClockOffsets(maxOffset time.Duration, peers []PeerOffset, older []nodeid.ID) ClockStatus {
	st := ClockStatus{MaxOffset: maxOffset, Tolerated: maxOffset * 4 / 5, Older: older}
	slices.Sort(st.Older)
	for _, p := range peers {
		abs := p.Offset
		if abs < 0 {
			abs = -abs
		}
		st.MaxAbsOffset = max(st.MaxAbsOffset, abs)
		p.Beyond = abs-p.Uncertainty > st.Tolerated
		if p.Beyond {
			st.Beyond++
		}
		st.Peers = append(st.Peers, p)
	}
	slices.SortFunc(st.Peers, func(a, b PeerOffset) int { return cmp.Compare(a.NodeID, b.NodeID) })
	st.Healthy = 2*st.Beyond <= len(st.Peers)
	return st
}
