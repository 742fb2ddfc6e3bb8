package catalog

import (
	"fmt"
	"sync"
	"time"

	"github.com/kvnode/kvnode/nodeid"
)

// Timestamp is a hybrid logical clock reading: wall time in nanoseconds, a
// logical counter for events within one wall tick, and the node that took
// it. NodeID breaks ties, so two timestamps taken on different nodes are
// never equal and last-writer-wins has exactly one winner.
type Timestamp struct {
	WallTime int64     `json:"wall_time"`
	Logical  int32     `json:"logical"`
	NodeID   nodeid.ID `json:"node_id"`
}

// Less orders timestamps by wall time, then logical counter, then node ID.
func (t Timestamp) Less(o Timestamp) bool {
	if t.WallTime != o.WallTime {
		return t.WallTime < o.WallTime
	}
	if t.Logical != o.Logical {
		return t.Logical < o.Logical
	}
	return t.NodeID < o.NodeID
}

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String formats t as wall.logical@nNodeID, with the wall time in seconds.
func (t Timestamp) String() string {
	return fmt.Sprintf("%d.%09d,%d@n%d", t.WallTime/1e9, t.WallTime%1e9, t.Logical, t.NodeID)
}

// Clock is a hybrid logical clock (Kulkarni et al., 2014). Now never returns
// the same or a smaller timestamp twice on one node, and Update makes every
// later Now greater than a timestamp received from another node, so a schema
// change made after seeing another one always wins over it, whatever the two
// nodes' wall clocks say. A node whose wall clock runs ahead drags the others'
// clocks along; that is the price of not depending on synchronized clocks.
type Clock struct {
	physical func() int64
	nodeID   func() nodeid.ID

	mu   sync.Mutex
	wall int64
	log  int32
}

// NewClock returns a clock reading physical time from physical (nil:
// time.Now) and stamping timestamps with nodeID (nil or a result of 0 before
// the node has an ID are both fine: the ID only breaks ties).
func NewClock(physical func() int64, nodeID func() nodeid.ID) *Clock {
	if physical == nil {
		physical = func() int64 { return time.Now().UnixNano() }
	}
	if nodeID == nil {
		nodeID = func() nodeid.ID { return 0 }
	}
	return &Clock{physical: physical, nodeID: nodeID}
}

// Now returns a timestamp greater than every timestamp this clock returned
// or was updated with before.
func (c *Clock) Now() Timestamp {
	pt := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.wall {
		c.wall, c.log = pt, 0
	} else {
		c.log++
		if c.log < 0 { // logical overflow: borrow a nanosecond
			c.wall++
			c.log = 0
		}
	}
	return Timestamp{WallTime: c.wall, Logical: c.log, NodeID: c.nodeID()}
}

// Update folds in a timestamp seen on another node.
func (c *Clock) Update(remote Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote.WallTime > c.wall || remote.WallTime == c.wall && remote.Logical > c.log {
		c.wall, c.log = remote.WallTime, remote.Logical
	}
}
