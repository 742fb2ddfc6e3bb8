package server

// --max-offset's validation, and the node's clock: it and its monitor are
// package server/clockmon's.

import (
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv"
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
func (s *Server) Clock() *rpc.Clock { return s.clock.Clock() }

// ClockStatus is the clock-offset monitor's last verdict.
func (s *Server) ClockStatus() rpc.ClockStatus { return s.clock.Status() }
