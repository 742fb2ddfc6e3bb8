package server

// The node's clock, the clock-offset monitor (rpc.ClockMonitor) over the
// kvnode.Node Clock method, and the switch that lets the data group's
// leader serve reads from its lease (kv/DESIGN.md, "Leader lease").

import (
	"context"
	"math"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/rpc"
)

// DefaultMaxOffset is --max-offset's default (CockroachDB's).
const DefaultMaxOffset = kv.DefaultMaxOffset

// ValidateMaxOffset checks a --max-offset for a node whose Raft tick is
// tick (0: the default 100ms): it must be positive, and, if the node serves
// leased reads, leave a lease (kv: the least election timeout less the
// offset) of at least two ticks, so that a lease renewed every tick never
// lapses between renewals.
func ValidateMaxOffset(d, tick time.Duration, leasedReads bool) error {
	if tick <= 0 {
		tick = 100 * time.Millisecond
	}
	least := (kv.Config{ElectionTicks: 10, TickInterval: tick}).LeaseDurationFor(0)
	limit := least - 2*tick
	switch {
	case d <= 0:
		return errors.WithHintf(errors.Newf("--max-offset=%s: the maximum clock offset must be positive", d),
			"use the default, %s, with clocks synchronized by NTP or chrony", kv.DefaultMaxOffset)
	case d > limit && leasedReads:
		return errors.WithHintf(errors.Newf("--max-offset=%s is too large: it must be at most %s (the least Raft election timeout, %s, less two Raft ticks), "+
			"or no leader lease could be safe", d, limit, least),
			"synchronize the nodes' clocks (NTP or chrony) and use the default, %s; or pass --leased-reads=false, "+
				"and every read takes a ReadIndex round", kv.DefaultMaxOffset)
	}
	return nil
}

// Clock is this node's clock. Tests shift it (rpc.Clock.SetOffset) to
// inject a clock offset.
func (s *Server) Clock() *rpc.Clock { return s.clock }

// ClockStatus is the clock-offset monitor's last verdict.
func (s *Server) ClockStatus() rpc.ClockStatus { return s.clockMon.Status() }

// newClockMonitor builds the monitor and registers its metrics.
func (s *Server) newClockMonitor() *rpc.ClockMonitor {
	m := rpc.NewClockMonitor(rpc.ClockMonitorConfig{
		Clock:     s.clock,
		MaxOffset: s.cfg.MaxOffset,
		Interval:  s.cfg.ClockMonitorInterval,
		Peers:     s.clockPeers,
		Ping:      s.pingClock,
		IsUnimplemented: func(err error) bool {
			return nodeapi.Code(err) == codes.Unimplemented
		},
		Logger: s.log,
	})
	gauge := func(name, help string, f func(rpc.ClockStatus) float64) {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvnode", Subsystem: "clock_offset", Name: name, Help: help},
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
	return m
}

// leaseReadsFunc is kv.Config.LeaseReads: nil with --leased-reads=false.
func (s *Server) leaseReadsFunc() func() bool {
	if s.cfg.DisableLeaseReads {
		return nil
	}
	return s.leaseReadsAllowed
}

// runClockMonitor measures the other nodes' clocks until the node stops. A
// binary built as a release before 2.1 has no monitor (and sends no Clock
// call).
func (s *Server) runClockMonitor() {
	if s.binVersion.Less(clusterversion.V2_1.Version()) {
		return
	}
	ctx, cancel := s.stopCtx(math.MaxInt64)
	defer cancel()
	s.clockMon.Run(ctx)
}

// clockPeers are the other members of the data group, with their RPC
// addresses.
func (s *Server) clockPeers() map[uint64]string {
	rep := s.Replica()
	if rep == nil {
		return nil
	}
	st := rep.Status()
	peers := map[uint64]string{}
	for _, ids := range [][]uint64{st.Voters, st.Learners} {
		for _, id := range ids {
			if id == st.NodeID {
				continue
			}
			if addr, ok := s.resolve(id); ok {
				peers[id] = addr
			}
		}
	}
	return peers
}

func (s *Server) pingClock(ctx context.Context, addr string) (time.Time, error) {
	resp, err := s.node.Clock(ctx, addr, &nodeapi.ClockRequest{NodeID: s.NodeID()})
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, resp.WallNanos), nil
}

// Clock answers kvnode.Node's Clock. A binary built as a release
// before 2.1 answers as that release did: the method does not exist.
func (n nodeService) Clock(_ context.Context, _ *nodeapi.ClockRequest) (*nodeapi.ClockResponse, error) {
	s := n.s
	if s.binVersion.Less(clusterversion.V2_1.Version()) {
		return nil, status.Errorf(codes.Unimplemented, "unknown method Clock for service kvnode.Node (release %s has no clock-offset monitor)", s.binVersion)
	}
	return &nodeapi.ClockResponse{NodeID: s.NodeID(), WallNanos: s.clock.Now().UnixNano()}, nil
}

// leaseReadsAllowed is kv.Config.LeaseReads: the data group's leader may
// serve reads from its lease while --leased-reads is on, the cluster is at
// 2.1 (every voter then runs a binary that holds its vote back after a
// restart, which the lease relies on; a downgrade turns leases off at its
// first step, before any older binary may join), and this node's clock is
// within the bound.
func (s *Server) leaseReadsAllowed() bool {
	if s.cfg.DisableLeaseReads {
		return false
	}
	v := clusterversion.V2_1.Version()
	if s.binVersion.Less(v) || s.ActiveVersion().Less(v) {
		return false
	}
	return s.clockMon.Healthy()
}
