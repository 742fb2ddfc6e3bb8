package rpc

import (
	"sync/atomic"
	"time"
)

// Clock is a node's clock: what the data group's leader lease measures its
// intervals with (kv), and what the clock-offset monitor compares with the
// other nodes' clocks (ClockMonitor). A nil *Clock is the system clock.
//
// Now returns time.Now() shifted by an offset that only tests set
// (SetOffset): the shift applies to both the wall and the monotonic reading
// (time.Time.Add), so a test that moves a node's clock back makes every
// interval that spans the change look shorter to that node, the failure a
// lease must survive.
type Clock struct {
	offset atomic.Int64 // nanoseconds
}

// NewClock returns the system clock, with a test offset of zero.
func NewClock() *Clock { return &Clock{} }

// Now returns the current time of this clock.
func (c *Clock) Now() time.Time {
	t := time.Now()
	if c == nil {
		return t
	}
	if o := c.offset.Load(); o != 0 {
		t = t.Add(time.Duration(o))
	}
	return t
}

// SetOffset shifts the clock by d from now on. TESTING ONLY: it stands for
// a badly synchronized or jumping clock.
func (c *Clock) SetOffset(d time.Duration) { c.offset.Store(int64(d)) }

// Offset returns the test offset set by SetOffset.
func (c *Clock) Offset() time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(c.offset.Load())
}
