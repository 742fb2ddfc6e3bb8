package gossip

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
)

// EventType says what happened to a member.
type EventType int

const (
	// EventJoin: the member became alive (new, or back from dead or left).
	EventJoin EventType = iota
	// EventUpdate: the member's metadata changed.
	EventUpdate
	// EventLeave: the member is gone; Member.State says Dead or Left.
	EventLeave
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	default:
		return "event(" + strconv.Itoa(int(t)) + ")"
	}
}

// Event reports a change of one member, with the member as it was right
// after the change.
type Event struct {
	Type   EventType
	Member Member
}

// subscriberBuffer is the channel capacity of a subscription. Beyond it,
// events wait in the subscriber's pending set, coalesced per member.
const subscriberBuffer = 16

// subscriber is one Subscribe call. Events are never dropped outright:
// memberlist's delegates put them in pending, keyed by member, replacing
// an older undelivered event for the same member, and the pump goroutine
// moves them to the channel at the pace of the reader. So a slow reader
// never blocks memberlist, memory stays bounded by the number of members,
// and the reader always ends up with the latest state of every member.
type subscriber struct {
	out  chan Event
	wake chan struct{} // capacity 1: "pending is not empty"
	done chan struct{}
	once sync.Once
	// pending is guarded by Gossip.mu.
	pending map[string]pendingEvent
}

type pendingEvent struct {
	ev  Event
	seq uint64
}

func (s *subscriber) stop() { s.once.Do(func() { close(s.done) }) }

// Subscribe returns a channel of membership events and a function that
// ends the subscription and closes the channel. The subscription starts
// with one event per member already known (EventJoin, or EventLeave for a
// dead or left one), so that a subscriber needs no separate call to
// Members and misses nothing between the two.
//
// A slow reader gets coalesced events: if several changes of one member
// are pending, only the latest is delivered (a pending join followed by an
// update is delivered as a join). Shutdown closes every subscription.
func (g *Gossip) Subscribe() (<-chan Event, func()) {
	s := &subscriber{
		out:     make(chan Event, subscriberBuffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[string]pendingEvent),
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		close(s.out)
		return s.out, func() {}
	}
	for name, r := range g.records {
		typ := EventJoin
		if !r.member().IsLive() {
			typ = EventLeave
		}
		g.seq++
		s.pending[name] = pendingEvent{ev: Event{Type: typ, Member: r.member()}, seq: g.seq}
	}
	g.subs[s] = struct{}{}
	g.pumps.Add(1)
	g.mu.Unlock()
	s.wake <- struct{}{}
	go g.pump(s)
	return s.out, func() {
		g.mu.Lock()
		delete(g.subs, s)
		g.mu.Unlock()
		s.stop()
	}
}

// publishLocked queues an event for every subscriber without blocking.
func (g *Gossip) publishLocked(typ EventType, m Member) {
	if len(g.subs) == 0 {
		return
	}
	g.seq++
	name := nodeName(m.Meta.NodeID)
	for s := range g.subs {
		t := typ
		if prev, ok := s.pending[name]; ok && prev.ev.Type == EventJoin && t == EventUpdate {
			t = EventJoin // the reader has not seen the join yet
		}
		s.pending[name] = pendingEvent{ev: Event{Type: t, Member: m}, seq: g.seq}
		select {
		case s.wake <- struct{}{}:
		default: // already signalled
		}
	}
}

// pump delivers a subscriber's pending events in the order they happened.
func (g *Gossip) pump(s *subscriber) {
	defer g.pumps.Done()
	defer close(s.out)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		g.mu.Lock()
		batch := make([]pendingEvent, 0, len(s.pending))
		for _, p := range s.pending {
			batch = append(batch, p)
		}
		clear(s.pending)
		g.mu.Unlock()
		slices.SortFunc(batch, func(a, b pendingEvent) int { return cmp.Compare(a.seq, b.seq) })
		for _, p := range batch {
			ev := p.ev
			// Records share their decoded metadata; give each reader its
			// own Extra map.
			ev.Member.Meta = ev.Member.Meta.clone()
			select {
			case s.out <- ev:
			case <-s.done:
				return
			}
		}
	}
}
