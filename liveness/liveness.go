package liveness

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/util/stop"
)

// DB is what liveness needs from the replicated data plane: linearizable
// reads and atomic conditional writes. kvpb.DB (the kv.Replica) satisfies it.
type DB interface {
	Get(ctx context.Context, key []byte) (value []byte, found bool, err error)
	Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error)
	Write(ctx context.Context, ops []kvpb.Op) error
}

var _ DB = kvpb.DB(nil)

// Errors returned by this package.
var (
	// ErrDecommissioned marks an operation refused because the node is
	// decommissioned (for example starting it again).
	ErrDecommissioned = errors.New("node is decommissioned")
	// ErrUnknownNode marks a node ID without a liveness record.
	ErrUnknownNode = errors.New("unknown node")
	// ErrMembership marks a membership transition that is not allowed from
	// the record's current state.
	ErrMembership = errors.New("membership transition not allowed")
)

// Config configures a NodeLiveness.
type Config struct {
	DB     DB
	NodeID nodeid.ID
	// HeartbeatInterval is how often the node extends its record (default
	// 1.5s); LivenessDuration how far ahead (default 4.5s).
	HeartbeatInterval time.Duration
	LivenessDuration  time.Duration
	// Now is the wall clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 1500 * time.Millisecond
	}
	if c.LivenessDuration <= 0 {
		c.LivenessDuration = 3 * c.HeartbeatInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// NodeLiveness maintains this node's record and reads everyone's.
type NodeLiveness struct {
	cfg Config

	// selfMu serializes this node's writes of its own record and guards
	// the cache of its last known stored form.
	selfMu   sync.Mutex
	self     Record
	selfRaw  []byte // nil: unknown, read before writing
	draining bool

	mu            sync.Mutex
	lastHeartbeat time.Time // last successful heartbeat (local clock)
}

// New returns a NodeLiveness; nothing is written until Start.
func New(cfg Config) *NodeLiveness {
	cfg.setDefaults()
	return &NodeLiveness{cfg: cfg}
}

// HeartbeatInterval returns the configured interval.
func (nl *NodeLiveness) HeartbeatInterval() time.Duration { return nl.cfg.HeartbeatInterval }

// LivenessDuration returns the configured duration.
func (nl *NodeLiveness) LivenessDuration() time.Duration { return nl.cfg.LivenessDuration }

// Start increments this node's epoch and makes it live. It refuses, with an
// error marked ErrDecommissioned, if the node is decommissioned. A missing
// record (a store older than liveness records) is created.
func (nl *NodeLiveness) Start(ctx context.Context) (Record, error) {
	nl.selfMu.Lock()
	defer nl.selfMu.Unlock()
	nl.draining = false
	rec, err := nl.updateSelfLocked(ctx, func(r *Record) error {
		if r.Membership == Decommissioned {
			return decommissionedError(r.NodeID)
		}
		r.Epoch++
		r.Draining = false
		r.Expiration = max(r.Expiration, nl.cfg.Now().Add(nl.cfg.LivenessDuration).UnixNano())
		return nil
	})
	if err == nil {
		nl.heartbeatOK()
		nl.cfg.Logger.Info("liveness: started a new epoch", "epoch", rec.Epoch, "membership", rec.Membership)
	}
	return rec, err
}

func decommissionedError(id nodeid.ID) error {
	return errors.WithHintf(errors.Mark(errors.Newf(
		"node %d is decommissioned: it was removed from the cluster and may not rejoin", id), ErrDecommissioned),
		"node IDs are never reused: to add this machine back, start it with a new, empty --store so that it joins as a new node")
}

// Heartbeat extends this node's record once.
func (nl *NodeLiveness) Heartbeat(ctx context.Context) (Record, error) {
	nl.selfMu.Lock()
	defer nl.selfMu.Unlock()
	rec, err := nl.updateSelfLocked(ctx, func(r *Record) error {
		if r.Membership == Decommissioned {
			return decommissionedError(r.NodeID)
		}
		r.Draining = nl.draining
		r.Expiration = max(r.Expiration, nl.cfg.Now().Add(nl.cfg.LivenessDuration).UnixNano())
		return nil
	})
	if err == nil {
		nl.heartbeatOK()
	}
	return rec, err
}

func (nl *NodeLiveness) heartbeatOK() {
	nl.mu.Lock()
	nl.lastHeartbeat = time.Now()
	nl.mu.Unlock()
}

// LastHeartbeat returns when this node last heartbeat successfully (zero if
// never), by the local clock.
func (nl *NodeLiveness) LastHeartbeat() time.Time {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	return nl.lastHeartbeat
}

// SetDraining records that this node drains (or no longer does) and
// writes it at once; later heartbeats keep it.
func (nl *NodeLiveness) SetDraining(ctx context.Context, draining bool) error {
	nl.selfMu.Lock()
	defer nl.selfMu.Unlock()
	nl.draining = draining
	_, err := nl.updateSelfLocked(ctx, func(r *Record) error {
		r.Draining = draining
		return nil
	})
	return err
}

// Self returns this node's record as last written or read by this node.
func (nl *NodeLiveness) Self() Record {
	nl.selfMu.Lock()
	defer nl.selfMu.Unlock()
	return nl.self
}

// Run heartbeats every HeartbeatInterval until ctx ends. onError, if set,
// is called with every failed heartbeat (not with one that ctx's end cut
// short).
func (nl *NodeLiveness) Run(ctx context.Context, onError func(error)) {
	stop.Every(ctx, nl.cfg.HeartbeatInterval, func() bool {
		hctx, cancel := context.WithTimeout(ctx, nl.cfg.LivenessDuration)
		defer cancel()
		if _, err := nl.Heartbeat(hctx); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		return true
	})
}

// updateSelfLocked applies fn to this node's record with a conditional put
// on the bytes last seen, re-reading and retrying on conflicts.
func (nl *NodeLiveness) updateSelfLocked(ctx context.Context, fn func(*Record) error) (Record, error) {
	rec, raw, err := update(ctx, nl.cfg.DB, nl.cfg.NodeID, nl.selfRaw, nl.cfg.Now, true, fn)
	if raw != nil {
		nl.self, nl.selfRaw = rec, raw
	}
	return rec, err
}

// maxUpdateAttempts bounds the conflicts one update tolerates.
const maxUpdateAttempts = 20

// update is the read-modify-CPut loop every write of a record goes through.
// expected is the raw record the caller believes is stored (nil: read it
// first). createMissing creates an absent record (this node's own, on old
// stores); otherwise an absent record is ErrUnknownNode. It returns the
// record and raw bytes last known to be stored (raw nil if unknown), and
// fn's error unchanged if fn refused.
func update(ctx context.Context, db DB, id nodeid.ID, expected []byte, now func() time.Time, createMissing bool,
	fn func(*Record) error) (Record, []byte, error) {
	var cur Record
	known := expected != nil
	absent := false
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		if !known {
			v, found, err := db.Get(ctx, Key(id))
			if err != nil {
				return Record{}, nil, err
			}
			expected, absent, known = v, !found, true
		}
		switch {
		case absent && !createMissing:
			return Record{}, nil, unknownNodeError(id)
		case absent:
			cur = NewRecord(id, now())
		default:
			r, err := Decode(expected)
			if err != nil {
				return Record{}, nil, err
			}
			cur = r
		}
		next := cur
		if err := fn(&next); err != nil {
			if absent {
				return cur, nil, err
			}
			return cur, expected, err
		}
		next.NodeID = id
		next.UpdatedAt = max(now().UnixNano(), cur.UpdatedAt+1)
		raw := next.Encode()
		op := kvpb.Op{Kind: kvpb.OpCPut, Key: Key(id), Value: raw, Expected: expected, ExpectAbsent: absent}
		err := db.Write(ctx, []kvpb.Op{op})
		if err == nil {
			return next, raw, nil
		}
		var cf *kvpb.ConditionFailedError
		switch {
		case errors.As(err, &cf):
			expected, absent = cf.Actual, !cf.Exists
		case errors.Is(err, kvpb.ErrAmbiguous):
			known = false // read what is there and decide again
		default:
			return cur, nil, err
		}
		if ctx.Err() != nil {
			return cur, nil, ctx.Err()
		}
	}
	return cur, nil, errors.Newf("liveness record of node %d changed %d times while updating it; try again", id, maxUpdateAttempts)
}

func unknownNodeError(id nodeid.ID) error {
	return errors.WithHint(errors.Mark(errors.Newf("node %d does not exist", id), ErrUnknownNode),
		"`kvnode node status` lists the IDs of the cluster's nodes")
}

// Get reads node id's record (linearizable).
func (nl *NodeLiveness) Get(ctx context.Context, id nodeid.ID) (Record, bool, error) {
	return Get(ctx, nl.cfg.DB, id)
}

// Get reads node id's record from db.
func Get(ctx context.Context, db DB, id nodeid.ID) (Record, bool, error) {
	v, found, err := db.Get(ctx, Key(id))
	if err != nil || !found {
		return Record{}, false, err
	}
	r, err := Decode(v)
	return r, err == nil, err
}

// Records reads every record (linearizable), ordered by node ID.
func (nl *NodeLiveness) Records(ctx context.Context) ([]Record, error) {
	start, end := Span()
	kvs, err := nl.cfg.DB.Scan(ctx, start, end, 0, false)
	if err != nil {
		return nil, err
	}
	return DecodeAll(kvs)
}

// DecodeAll decodes the records of a scan of Span, ordered by node ID.
func DecodeAll(kvs []kvpb.KeyValue) ([]Record, error) {
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		r, err := Decode(kv.Value)
		if err != nil {
			return nil, errors.Wrapf(err, "key %q", kv.Key)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// SetMembership moves node id's membership to `to`, from one of the states
// in from. If the record is already in state to, it succeeds without
// writing. check, if set, runs on the current record before the write and
// may refuse it.
func (nl *NodeLiveness) SetMembership(ctx context.Context, id nodeid.ID, to Membership, from []Membership,
	check func(Record) error) (Record, error) {
	return SetMembership(ctx, nl.cfg.DB, nl.cfg.Now, id, to, from, check)
}

var errNoChange = errors.New("no change")

// SetMembership is NodeLiveness.SetMembership on any DB.
func SetMembership(ctx context.Context, db DB, now func() time.Time, id nodeid.ID, to Membership, from []Membership,
	check func(Record) error) (Record, error) {
	if now == nil {
		now = time.Now
	}
	rec, _, err := update(ctx, db, id, nil, now, false, func(r *Record) error {
		if r.Membership == to {
			return errNoChange
		}
		ok := false
		for _, f := range from {
			ok = ok || r.Membership == f
		}
		if !ok {
			return transitionError(r.NodeID, r.Membership, to)
		}
		if check != nil {
			if err := check(*r); err != nil {
				return err
			}
		}
		r.Membership = to
		return nil
	})
	if errors.Is(err, errNoChange) {
		return rec, nil
	}
	return rec, err
}

func transitionError(id nodeid.ID, from, to Membership) error {
	err := errors.Mark(errors.Newf("node %d is %s; it cannot become %s", id, from, to), ErrMembership)
	switch {
	case from == Decommissioned:
		return errors.WithHint(err, "a decommissioned node was removed from the cluster for good; "+
			"to add the machine back, start it with a new, empty --store so that it joins as a new node")
	case to == Decommissioned:
		return errors.WithHint(err, "decommission it first: kvnode node decommission")
	}
	return err
}
