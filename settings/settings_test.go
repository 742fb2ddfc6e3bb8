package settings

import (
	"bytes"
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/pgerror"
)

type memDB struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (d *memDB) Scan(_ context.Context, start, end []byte, _ int, _ bool) ([]kvpb.KeyValue, error) {
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
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, op := range ops {
		switch op.Kind {
		case kvpb.OpPut:
			d.m[string(op.Key)] = bytes.Clone(op.Value)
		case kvpb.OpDelete:
			delete(d.m, string(op.Key))
		}
	}
	return nil
}

type testSettings struct {
	r    *Registry
	dead *DurationSetting
	auto *BoolSetting
	pdo  *StringSetting
	n    *IntSetting
}

func newTestSettings(db DB) testSettings {
	r := NewRegistry(nil)
	r.Bind(db)
	return testSettings{
		r:    r,
		dead: r.RegisterDuration("server.time_until_store_dead", "d", 5*time.Minute, MinDuration(time.Second)),
		auto: r.RegisterBool("cluster.auto_upgrade.enabled", "b", true),
		pdo:  r.RegisterString("cluster.preserve_downgrade_option", "s", "", nil),
		n:    r.RegisterInt("test.count", "i", 3, nil),
	}
}

func TestSetShowResetAcrossNodes(t *testing.T) {
	ctx := context.Background()
	db := &memDB{m: map[string][]byte{}}
	a, b := newTestSettings(db), newTestSettings(db)
	if a.dead.Get() != 5*time.Minute || !a.auto.Get() || a.pdo.Get() != "" || a.n.Get() != 3 {
		t.Fatal("defaults")
	}
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"server.time_until_store_dead", "90s"},
		{"cluster.auto_upgrade.enabled", false},
		{"cluster.preserve_downgrade_option", "1.1"},
		{"test.count", int64(7)},
	} {
		if err := a.r.Set(ctx, tc.name, tc.v); err != nil {
			t.Fatalf("SET %s: %v", tc.name, err)
		}
	}
	// The writer sees its writes at once; another node after a refresh.
	if a.dead.Get() != 90*time.Second || a.auto.Get() {
		t.Fatal("the writer's cache was not updated")
	}
	if b.dead.Get() != 5*time.Minute {
		t.Fatal("b changed before refreshing")
	}
	if err := b.r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if b.dead.Get() != 90*time.Second || b.auto.Get() || b.pdo.Get() != "1.1" || b.n.Get() != 7 {
		t.Fatal("b did not see the values after a refresh")
	}
	v, err := b.r.Show(ctx, "SERVER.time_until_store_dead")
	if err != nil || v.Datum != "1m30s" || v.Type != Duration {
		t.Fatalf("show: %+v %v", v, err)
	}
	if err := b.r.Reset(ctx, "server.time_until_store_dead"); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.r.Show(ctx, "server.time_until_store_dead"); v.Text != "5m0s" {
		t.Fatalf("after reset: %+v", v)
	}
	all := a.r.All(ctx)
	if len(all) != 4 || all[0].Name != "cluster.auto_upgrade.enabled" || all[0].Text != "false" || all[0].Type != Bool {
		t.Fatalf("all: %v", all)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	db := &memDB{m: map[string][]byte{}}
	s := newTestSettings(db)
	for _, tc := range []struct {
		name, setting string
		v             any
		code, want    string
	}{
		{"unknown name with a similar one", "server.time_until_store_ded", "1m", pgerror.CodeUndefinedObject, "did you mean server.time_until_store_dead"},
		{"unknown name by its last part", "auto_upgrade.enabled", true, pgerror.CodeUndefinedObject, "cluster.auto_upgrade.enabled"},
		{"unknown name, nothing similar", "zzz", true, pgerror.CodeUndefinedObject, "SHOW ALL CLUSTER SETTINGS"},
		{"int for a duration", "server.time_until_store_dead", int64(5), pgerror.CodeInvalidParameterValue, "has type duration"},
		{"bad duration text", "server.time_until_store_dead", "soon", pgerror.CodeInvalidParameterValue, "not a valid duration"},
		{"duration below the minimum", "server.time_until_store_dead", "500ms", pgerror.CodeInvalidParameterValue, "at least 1s"},
		{"string for a bool", "cluster.auto_upgrade.enabled", "maybe", pgerror.CodeInvalidParameterValue, "has type bool"},
		{"float for an int", "test.count", 1.5, pgerror.CodeInvalidParameterValue, "has type int"},
		{"number for a string", "cluster.preserve_downgrade_option", int64(1), pgerror.CodeInvalidParameterValue, "has type string"},
		{"NULL", "test.count", nil, pgerror.CodeInvalidParameterValue, "cannot be NULL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.r.Set(ctx, tc.setting, tc.v)
			msg := err.Error() + " " + errors.FlattenHints(err)
			if pgerror.GetCode(err) != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %s %q, want %s containing %q", pgerror.GetCode(err), msg, tc.code, tc.want)
			}
		})
	}
	if len(db.m) != 0 {
		t.Fatalf("refused SETs wrote %v", db.m)
	}
	// Strings that parse as the type are accepted, like CockroachDB's
	// untyped constants.
	if err := s.r.Set(ctx, "cluster.auto_upgrade.enabled", "false"); err != nil || s.auto.Get() {
		t.Fatalf("string for a bool: %v", err)
	}
	// A stored value this release cannot read falls back to the default.
	db.m[string(Key("test.count"))] = []byte("lots")
	if err := s.r.Refresh(ctx); err != nil || s.n.Get() != 3 {
		t.Fatalf("unreadable stored value: %v %d", err, s.n.Get())
	}
}

func TestLastChange(t *testing.T) {
	ctx := context.Background()
	db := &memDB{m: map[string][]byte{}}
	a, b := newTestSettings(db), newTestSettings(db)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	a.r.now = func() time.Time { return at }
	if _, ok, err := b.r.LastChange(ctx, "cluster.preserve_downgrade_option"); ok || err != nil {
		t.Fatalf("a default has no change: %v %v", ok, err)
	}
	if _, _, err := b.r.LastChange(ctx, "no.such.setting"); err == nil {
		t.Fatal("an unknown setting must be an error")
	}
	if err := a.r.Set(ctx, "cluster.preserve_downgrade_option", "1.1"); err != nil {
		t.Fatal(err)
	}
	c, ok, err := b.r.LastChange(ctx, "CLUSTER.preserve_downgrade_option")
	if err != nil || !ok || c.Value != "1.1" || !c.At.Equal(at) {
		t.Fatalf("after SET: %+v %v %v", c, ok, err)
	}
	// A value written without its record (say by a store restored from
	// elsewhere) has no known start: no guess.
	db.m[string(Key("cluster.preserve_downgrade_option"))] = []byte("2.0")
	if c, ok, _ := b.r.LastChange(ctx, "cluster.preserve_downgrade_option"); ok {
		t.Fatalf("a record of another value was trusted: %+v", c)
	}
	if err := a.r.Reset(ctx, "cluster.preserve_downgrade_option"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.r.LastChange(ctx, "cluster.preserve_downgrade_option"); ok {
		t.Fatal("RESET must clear the record")
	}
	if _, found := db.m[string(changedKey("cluster.preserve_downgrade_option"))]; found {
		t.Fatal("RESET left the record in the store")
	}
	// The record lives outside the span that Refresh reads.
	if err := a.r.Set(ctx, "test.count", int64(4)); err != nil {
		t.Fatal(err)
	}
	if err := b.r.Refresh(ctx); err != nil || b.n.Get() != 4 {
		t.Fatalf("refresh: %v %d", err, b.n.Get())
	}
}

// TestStoredValueIsNotValidatedAgain: a value is validated once, at SET.
// cluster.preserve_downgrade_option's validator names the node's cluster
// version, which moves on: set on a node that had not persisted the fence,
// the value must still read as stored on a node that has (issue 16, D5:
// it read as unset there, and the automatic reset never fired).
func TestStoredValueIsNotValidatedAgain(t *testing.T) {
	ctx := context.Background()
	db := &memDB{m: map[string][]byte{}}
	newNode := func(active *string) (*Registry, *StringSetting) {
		r := NewRegistry(nil)
		r.Bind(db)
		s := r.RegisterString("cluster.preserve_downgrade_option", "s", "", func(v string) error {
			if v != "" && v != *active {
				return errors.Newf("it must be the current cluster version %s", *active)
			}
			return nil
		})
		return r, s
	}
	behind, ahead := "1.1", "2.0-step.1"
	a, pa := newNode(&behind) // has not persisted the fence
	b, pb := newNode(&ahead)  // has
	if err := a.Set(ctx, "cluster.preserve_downgrade_option", "1.1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "cluster.preserve_downgrade_option", "1.1"); err == nil {
		t.Fatal("SET on the fenced node must still validate")
	}
	behind = "2.0-step.1" // a persists the fence too
	for i := 0; i < 3; i++ {
		for _, r := range []*Registry{a, b} {
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pa.Get() != "1.1" || pb.Get() != "1.1" {
		t.Fatalf("stored 1.1 reads as %q and %q", pa.Get(), pb.Get())
	}
	v, err := b.Show(ctx, "cluster.preserve_downgrade_option")
	if err != nil || v.Datum != "1.1" {
		t.Fatalf("SHOW: %v %v", v, err)
	}
}

// countingHandler counts warnings.
type countingHandler struct {
	mu    sync.Mutex
	warns []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warns = append(h.warns, r.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.warns)
}

// TestUndecodableStoredValueIsReportedOnce: a stored text that is not a
// value of the setting's type reads as the default and is reported once,
// naming the setting, the text and the fix, not at every refresh.
func TestUndecodableStoredValueIsReportedOnce(t *testing.T) {
	ctx := context.Background()
	db := &memDB{m: map[string][]byte{string(Key("test.count")): []byte("many")}}
	h := &countingHandler{}
	r := NewRegistry(slog.New(h))
	r.Bind(db)
	n := r.RegisterInt("test.count", "i", 3, nil)
	for i := 0; i < 5; i++ {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n.Get() != 3 {
		t.Fatalf("undecodable value read as %d", n.Get())
	}
	if h.count() != 1 {
		t.Fatalf("%d warnings, want 1: %q", h.count(), h.warns)
	}
	for _, want := range []string{"test.count", `"many"`, "not a valid int", "RESET CLUSTER SETTING test.count"} {
		if !strings.Contains(h.warns[0], want) {
			t.Errorf("warning %q lacks %q", h.warns[0], want)
		}
	}
	db.m[string(Key("test.count"))] = []byte("lots") // another bad value: reported again
	_ = r.Refresh(ctx)
	_ = r.Refresh(ctx)
	if h.count() != 2 {
		t.Fatalf("%d warnings after a second bad value, want 2", h.count())
	}
	if err := r.Set(ctx, "test.count", int64(7)); err != nil {
		t.Fatal(err)
	}
	_ = r.Refresh(ctx)
	if n.Get() != 7 || h.count() != 2 {
		t.Fatalf("after SET: %d, %d warnings", n.Get(), h.count())
	}
}

// gatedDB holds the first Scan it is asked for until release is closed,
// after taking its snapshot: a read that started early and answers late.
type gatedDB struct {
	*memDB
	once    sync.Once
	taken   chan struct{}
	release chan struct{}
}

func (d *gatedDB) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	kvs, err := d.memDB.Scan(ctx, start, end, limit, reverse)
	held := false
	d.once.Do(func() { held = true })
	if held {
		close(d.taken)
		<-d.release
	}
	return kvs, err
}

// TestRefreshKeepsTheNewestScan: the periodic refresh's scan starts, a
// SET on another node lands, a decision refreshes (and sees it), and the
// periodic scan finishes after that: its older values must not replace
// what the decision's refresh installed.
func TestRefreshKeepsTheNewestScan(t *testing.T) {
	ctx := context.Background()
	db := &gatedDB{memDB: &memDB{m: map[string][]byte{}}, taken: make(chan struct{}), release: make(chan struct{})}
	a, b := newTestSettings(db), newTestSettings(db.memDB)
	slow := make(chan error, 1)
	go func() { slow <- a.r.Refresh(ctx) }()
	<-db.taken
	if err := b.r.Set(ctx, "cluster.preserve_downgrade_option", "2.0"); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.pdo.Get(); got != "2.0" {
		t.Fatalf("after a refresh that started after the SET: %q", got)
	}
	close(db.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if got := a.pdo.Get(); got != "2.0" {
		t.Fatalf("an older scan that finished last replaced the value: %q", got)
	}
}
