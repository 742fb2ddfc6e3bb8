package liveness

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// memDB is an in-memory DB with kvpb's conditional-put semantics, and a hook
// to interfere between a read and a write.
type memDB struct {
	mu     sync.Mutex
	m      map[string][]byte
	writes int
	// beforeWrite runs (without the lock) before each Write is applied.
	beforeWrite func()
}

func newMemDB() *memDB { return &memDB{m: map[string][]byte{}} }

func (d *memDB) Get(_ context.Context, key []byte) ([]byte, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[string(key)]
	return bytes.Clone(v), ok, nil
}

func (d *memDB) Scan(_ context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []kvpb.KeyValue
	for k, v := range d.m {
		if k >= string(start) && k < string(end) {
			out = append(out, kvpb.KeyValue{Key: []byte(k), Value: bytes.Clone(v)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out, nil
}

func (d *memDB) Write(_ context.Context, ops []kvpb.Op) error {
	if f := d.beforeWrite; f != nil {
		d.beforeWrite = nil
		f()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, op := range ops {
		if op.Kind != kvpb.OpCPut {
			continue
		}
		cur, ok := d.m[string(op.Key)]
		if (op.ExpectAbsent && ok) || (!op.ExpectAbsent && (!ok || !bytes.Equal(cur, op.Expected))) {
			return &kvpb.ConditionFailedError{Index: i, Key: op.Key, Actual: bytes.Clone(cur), Exists: ok}
		}
	}
	for _, op := range ops {
		switch op.Kind {
		case kvpb.OpPut, kvpb.OpCPut:
			d.m[string(op.Key)] = bytes.Clone(op.Value)
		case kvpb.OpDelete:
			delete(d.m, string(op.Key))
		}
	}
	d.writes++
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestEpochsHeartbeatsAndLiveness(t *testing.T) {
	ctx := context.Background()
	db := newMemDB()
	clk := &clock{t: time.Unix(1000, 0)}
	db.m[string(Key(1))] = NewRecord(1, clk.now()).Encode()
	nl := New(Config{DB: db, NodeID: 1, HeartbeatInterval: time.Second, LivenessDuration: 3 * time.Second, Now: clk.now})
	if r := nl.Self(); r.IsLive(clk.now()) {
		t.Fatal("a new record must not be live")
	}
	rec, err := nl.Start(ctx)
	if err != nil || rec.Epoch != 1 || !rec.IsLive(clk.now()) || rec.Membership != Active {
		t.Fatalf("start: %+v %v", rec, err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if rec, err = nl.Heartbeat(ctx); err != nil || rec.Epoch != 1 {
		t.Fatalf("heartbeat: %+v %v", rec, err)
	}
	if want := clk.t.Add(3 * time.Second).UnixNano(); rec.Expiration != want {
		t.Fatalf("expiration %d, want %d", rec.Expiration, want)
	}
	// Stops heartbeating: live until the expiration, then unavailable,
	// then dead after time_until_store_dead.
	exp := time.Unix(0, rec.Expiration)
	for _, tc := range []struct {
		at   time.Time
		want Status
	}{
		{exp.Add(-time.Nanosecond), StatusLive},
		{exp, StatusUnavailable},
		{exp.Add(time.Minute - 1), StatusUnavailable},
		{exp.Add(time.Minute), StatusDead},
	} {
		got, _, _ := Get(ctx, db, 1)
		if s := got.Status(tc.at, time.Minute); s != tc.want {
			t.Errorf("at expiration%+v: %s, want %s", tc.at.Sub(exp), s, tc.want)
		}
	}
	// A restart increments the epoch.
	nl2 := New(Config{DB: db, NodeID: 1, Now: clk.now})
	if rec, err = nl2.Start(ctx); err != nil || rec.Epoch != 2 {
		t.Fatalf("restart: %+v %v", rec, err)
	}
	// Draining is kept by heartbeats and cleared by the next start.
	if err := nl2.SetDraining(ctx, true); err != nil {
		t.Fatal(err)
	}
	if rec, _ = nl2.Heartbeat(ctx); !rec.Draining {
		t.Fatal("heartbeat lost the draining flag")
	}
	if rec, _ = New(Config{DB: db, NodeID: 1, Now: clk.now}).Start(ctx); rec.Draining || rec.Epoch != 3 {
		t.Fatalf("start after drain: %+v", rec)
	}
}

func TestHeartbeatKeepsConcurrentMembershipChange(t *testing.T) {
	ctx := context.Background()
	db := newMemDB()
	nl := New(Config{DB: db, NodeID: 2})
	if _, err := nl.Start(ctx); err != nil { // creates the missing record
		t.Fatal(err)
	}
	// An operator decommissions the node between its read and its write.
	db.beforeWrite = func() {
		if _, err := SetMembership(ctx, db, nil, 2, Decommissioning, []Membership{Active}, nil); err != nil {
			t.Error(err)
		}
	}
	rec, err := nl.Heartbeat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Membership != Decommissioning {
		t.Fatalf("the heartbeat overwrote the membership: %+v", rec)
	}
	stored, _, _ := Get(ctx, db, 2)
	if stored.Membership != Decommissioning || stored.Epoch != 1 {
		t.Fatalf("stored %+v", stored)
	}
}

func TestMembershipTransitions(t *testing.T) {
	ctx := context.Background()
	db := newMemDB()
	db.m[string(Key(3))] = NewRecord(3, time.Now()).Encode()
	set := func(to Membership, from ...Membership) error {
		_, err := SetMembership(ctx, db, nil, 3, to, from, nil)
		return err
	}
	if err := set(Decommissioned, Decommissioning); !errors.Is(err, ErrMembership) {
		t.Fatalf("active -> decommissioned directly: %v", err)
	}
	if err := set(Decommissioning, Active); err != nil {
		t.Fatal(err)
	}
	if err := set(Decommissioning, Active); err != nil {
		t.Fatalf("repeating a transition must be a no-op: %v", err)
	}
	if err := set(Decommissioned, Decommissioning); err != nil {
		t.Fatal(err)
	}
	err := set(Active, Decommissioning)
	if !errors.Is(err, ErrMembership) || !strings.Contains(errors.FlattenHints(err), "new, empty --store") {
		t.Fatalf("recommissioning a decommissioned node: %v", err)
	}
	if _, err := SetMembership(ctx, db, nil, 9, Decommissioning, []Membership{Active}, nil); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("unknown node: %v", err)
	}
	// A decommissioned node cannot start.
	if _, err := New(Config{DB: db, NodeID: 3}).Start(ctx); !errors.Is(err, ErrDecommissioned) {
		t.Fatalf("start of a decommissioned node: %v", err)
	}
}

func TestRecordEncoding(t *testing.T) {
	r := Record{NodeID: 7, Epoch: 3, Expiration: 1700000000123456789, Draining: true, Membership: Decommissioning, UpdatedAt: 5}
	got, err := Decode(r.Encode())
	if err != nil || got != r {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := Decode([]byte(`{"node_id":1,"membership":"gone"}`)); err == nil {
		t.Fatal("unknown membership accepted")
	}
	if s := r.ExpirationString(); s != "1700000000.123456789,0" {
		t.Fatalf("expiration string %q", s)
	}
	if a, b := Key(1), Key(256); bytes.Compare(a, b) >= 0 {
		t.Fatal("keys must sort by node ID")
	}
	start, end := Span()
	if k := Key(1 << 30); bytes.Compare(k, start) < 0 || bytes.Compare(k, end) >= 0 {
		t.Fatal("key outside the span")
	}
}
