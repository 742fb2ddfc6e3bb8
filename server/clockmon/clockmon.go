package clockmon

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/server/console"
)

// Node is what the monitor needs of the node it runs on.
type Node interface {
	NodeID() nodeid.ID
	// ActiveVersion is the cluster version the node acts on (leased reads
	// need 2.1).
	ActiveVersion() clusterversion.Version
	// Replica is the node's data replica (nil before it has joined): the
	// other members are the peers measured.
	Replica() *kv.Replica
	// Resolve maps a node ID to its RPC address.
	Resolve(id nodeid.ID) (string, bool)
}

// Config is what New needs.
type Config struct {
	Node   Node
	Client *nodeapi.Client
	// Binary is the release the binary runs: before 2.1, no monitor and no
	// Clock method.
	Binary clusterversion.Version
	// MaxOffset is --max-offset; Interval how often to measure (0: the
	// monitor's default).
	MaxOffset time.Duration
	Interval  time.Duration
	// DisableLeaseReads is --leased-reads=false.
	DisableLeaseReads bool
	Registry          *prometheus.Registry
	Log               *slog.Logger
}

// Monitor is the node's clock and its clock-offset monitor.
type Monitor struct {
	cfg   Config
	clock *rpc.Clock
	mon   *rpc.ClockMonitor
}

// Clock is the node's clock. Tests shift it (rpc.Clock.SetOffset) to
// inject a clock offset.
func (m *Monitor) Clock() *rpc.Clock { return m.clock }

// Status is the monitor's last verdict.
func (m *Monitor) Status() rpc.ClockStatus { return m.mon.Status() }

// Console is the status page's view of the monitor (nil before its first
// measurement).
func (m *Monitor) Console() *console.Clock {
	st := m.mon.Status()
	if st.Rounds == 0 {
		return nil // nothing measured yet
	}
	c := &console.Clock{Healthy: st.Healthy, MaxOffset: st.MaxOffset.String(), Message: st.Message()}
	if rep := m.cfg.Node.Replica(); rep != nil {
		c.LeaseReads = rep.Status().LeaseReads
	}
	return c
}

// New builds the node's clock and its monitor, and registers the
// monitor's metrics.
func New(cfg Config) *Monitor {
	mon := &Monitor{cfg: cfg, clock: rpc.NewClock()}
	m := rpc.NewClockMonitor(rpc.ClockMonitorConfig{
		Clock:     mon.clock,
		MaxOffset: cfg.MaxOffset,
		Interval:  cfg.Interval,
		Peers:     mon.peers,
		Ping:      mon.ping,
		IsUnimplemented: func(err error) bool {
			return nodeapi.Code(err) == codes.Unimplemented
		},
		Logger: cfg.Log,
	})
	mon.mon = m
	gauge := func(name, help string, f func(rpc.ClockStatus) float64) {
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvnode", Subsystem: "clock_offset", Name: name, Help: help},
			func() float64 { return f(m.Status()) }))
	}
	gauge("healthy", "1 if this node's clock is within 4/5 of --max-offset of a majority of the other nodes' clocks it measured lately (0: it serves no leased reads; also before its first measurement).",
		func(st rpc.ClockStatus) float64 {
			if st.Healthy && st.Rounds > 0 {
				return 1
			}
			return 0
		})
	gauge("max_seconds", "The largest clock offset, in absolute value, measured lately between this node and another.",
		func(st rpc.ClockStatus) float64 { return st.MaxAbsOffset.Seconds() })
	gauge("max_allowed_seconds", "--max-offset: the clock offset between nodes that the leader lease tolerates.",
		func(st rpc.ClockStatus) float64 { return st.MaxOffset.Seconds() })
	gauge("beyond_peers", "How many of the other nodes measured lately have a clock beyond the tolerated offset from this node's.",
		func(st rpc.ClockStatus) float64 { return float64(st.Beyond) })
	return mon
}

// LeaseReads is kv.Config.LeaseReads: nil with --leased-reads=false.
func (m *Monitor) LeaseReads() func() bool {
	if m.cfg.DisableLeaseReads {
		return nil
	}
	return m.leaseReadsAllowed
}

// Run measures the other nodes' clocks until ctx ends. A binary built as a
// release before 2.1 has no monitor (and sends no Clock call).
func (m *Monitor) Run(ctx context.Context) {
	if m.cfg.Binary.Less(clusterversion.V2_1.Version()) {
		return
	}
	m.mon.Run(ctx)
}

// clockPeers are the other members of the data group, with their RPC
// addresses.
func (m *Monitor) peers() map[nodeid.ID]string {
	rep := m.cfg.Node.Replica()
	if rep == nil {
		return nil
	}
	st := rep.Status()
	peers := map[nodeid.ID]string{}
	for _, ids := range [][]nodeid.ID{st.Voters, st.Learners} {
		for _, id := range ids {
			if id == st.NodeID {
				continue
			}
			if addr, ok := m.cfg.Node.Resolve(id); ok {
				peers[id] = addr
			}
		}
	}
	return peers
}

func (m *Monitor) ping(ctx context.Context, addr string) (time.Time, error) {
	resp, err := m.cfg.Client.Clock(ctx, addr, &nodeapi.ClockRequest{NodeID: m.cfg.Node.NodeID()})
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, resp.WallNanos), nil
}

// Answer answers kvnode.Node's Clock. A binary built as a release
// before 2.1 answers as that release did: the method does not exist.
func (m *Monitor) Answer(_ context.Context, _ *nodeapi.ClockRequest) (*nodeapi.ClockResponse, error) {
	if m.cfg.Binary.Less(clusterversion.V2_1.Version()) {
		return nil, status.Errorf(codes.Unimplemented, "unknown method Clock for service kvnode.Node (release %s has no clock-offset monitor)", m.cfg.Binary)
	}
	return &nodeapi.ClockResponse{NodeID: m.cfg.Node.NodeID(), WallNanos: m.clock.Now().UnixNano()}, nil
}

// leaseReadsAllowed is kv.Config.LeaseReads: the data group's leader may
// serve reads from its lease while --leased-reads is on, the cluster is at
// 2.1 (every voter then runs a binary that holds its vote back after a
// restart, which the lease relies on; a downgrade turns leases off at its
// first step, before any older binary may join), and this node's clock is
// within the bound.
func (m *Monitor) leaseReadsAllowed() bool {
	if m.cfg.DisableLeaseReads {
		return false
	}
	v := clusterversion.V2_1.Version()
	if m.cfg.Binary.Less(v) || m.cfg.Node.ActiveVersion().Less(v) {
		return false
	}
	return m.mon.Healthy()
}
