package settings

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/util/stop"
)

// DB is what settings needs from the replicated data plane.
type DB interface {
	Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error)
	Write(ctx context.Context, ops []kvpb.Op) error
}

var _ DB = kvpb.DB(nil)

// RefreshInterval is how often a node re-reads every setting.
const RefreshInterval = 500 * time.Millisecond

// Type is a setting's type; its string is CockroachDB's one-letter
// setting_type.
type Type string

// The setting types.
const (
	Bool     Type = "b"
	Int      Type = "i"
	Duration Type = "d"
	String   Type = "s"
)

// Name is the type's name in error messages.
func (t Type) Name() string {
	switch t {
	case Bool:
		return "bool"
	case Int:
		return "int"
	case Duration:
		return "duration"
	default:
		return "string"
	}
}

// Key returns the replicated key of a setting (keys.SettingKey).
func Key(name string) []byte { return keys.SettingKey(name) }

// changedKey holds, for a setting with a stored value, when it was set and
// to what (a Change). It sorts outside keys.SettingSpan, so the refresh
// scan never sees it and a release that does not know it ignores it.
func changedKey(name string) []byte { return keys.SettingChangedKey(name) }

// Change records when a setting was last set, and to what.
type Change struct {
	// Value is the stored text the setting was set to.
	Value string `json:"value"`
	// At is when the node that ran the SET wrote it (its wall clock).
	At time.Time `json:"at"`
}

// LastChange returns when setting name was set to its current stored
// value. ok is false when the setting has its default, or when the
// stored value was not written with a record of the change (the record
// does not match the value; for example the value was written by a store
// restored from elsewhere): then nobody knows since when it is set.
func (r *Registry) LastChange(ctx context.Context, name string) (c Change, ok bool, err error) {
	d, err := r.def(name)
	if err != nil {
		return Change{}, false, err
	}
	r.mu.RLock()
	db := r.db
	r.mu.RUnlock()
	if db == nil {
		return Change{}, false, nil
	}
	key := Key(d.name)
	kvs, err := db.Scan(ctx, key, append(append([]byte(nil), key...), 0), 1, false)
	if err != nil || len(kvs) == 0 {
		return Change{}, false, err
	}
	ck := changedKey(d.name)
	cs, err := db.Scan(ctx, ck, append(append([]byte(nil), ck...), 0), 1, false)
	if err != nil || len(cs) == 0 {
		return Change{}, false, err
	}
	if json.Unmarshal(cs[0].Value, &c) != nil || c.Value != string(kvs[0].Value) {
		return Change{}, false, nil
	}
	return c, true, nil
}

// def is one registered setting.
type def struct {
	name, desc string
	typ        Type
	dflt       any
	// validate checks a decoded value (nil: any value of the type).
	validate func(any) error
	// exampleHint says how to write a value of this setting.
	example string
}

// Registry holds one node's settings and their current values.
type Registry struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.RWMutex
	defs    map[string]*def
	db      DB
	values  map[string]any // decoded stored values; absent: default
	gen     uint64         // bumped by every local Set/Reset
	fresher time.Time      // when values were last read from the store
	// scans numbers the scans of Refresh in the order they start, and
	// installed is the number of the scan whose values are installed: a
	// scan that started earlier and finished later may have missed a write
	// the installed one saw, so it is dropped.
	scans, installed uint64
	// undecodable maps a setting whose stored text cannot be decoded to
	// that text, so that Refresh reports it once, not at every refresh.
	undecodable map[string]string
}

// NewRegistry returns an empty registry.
func NewRegistry(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, now: time.Now, defs: map[string]*def{}, values: map[string]any{}, undecodable: map[string]string{}}
}

// Bind connects the registry to the replicated store. Until then every
// setting reads as its default and Set fails.
func (r *Registry) Bind(db DB) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.db = db
}

func (r *Registry) register(d *def) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.defs[d.name]; dup {
		panic(errors.AssertionFailedf("cluster setting %q registered twice", d.name))
	}
	if d.validate != nil {
		if err := d.validate(d.dflt); err != nil {
			panic(errors.NewAssertionErrorWithWrappedErrf(err, "default of cluster setting %q", d.name))
		}
	}
	r.defs[d.name] = d
}

func (r *Registry) get(name string) any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if v, ok := r.values[name]; ok {
		return v
	}
	return r.defs[name].dflt
}

// BoolSetting is a registered bool setting.
type BoolSetting struct {
	r    *Registry
	name string
}

// Get returns the current value.
func (s *BoolSetting) Get() bool { return s.r.get(s.name).(bool) }

// Name returns the setting's name.
func (s *BoolSetting) Name() string { return s.name }

// IntSetting is a registered int setting.
type IntSetting struct {
	r    *Registry
	name string
}

// Get returns the current value.
func (s *IntSetting) Get() int64 { return s.r.get(s.name).(int64) }

// Name returns the setting's name.
func (s *IntSetting) Name() string { return s.name }

// DurationSetting is a registered duration setting.
type DurationSetting struct {
	r    *Registry
	name string
}

// Get returns the current value.
func (s *DurationSetting) Get() time.Duration { return s.r.get(s.name).(time.Duration) }

// Name returns the setting's name.
func (s *DurationSetting) Name() string { return s.name }

// StringSetting is a registered string setting.
type StringSetting struct {
	r    *Registry
	name string
}

// Get returns the current value.
func (s *StringSetting) Get() string { return s.r.get(s.name).(string) }

// Name returns the setting's name.
func (s *StringSetting) Name() string { return s.name }

// RegisterBool registers a bool setting.
func (r *Registry) RegisterBool(name, desc string, dflt bool) *BoolSetting {
	r.register(&def{name: name, desc: desc, typ: Bool, dflt: dflt, example: "true or false"})
	return &BoolSetting{r: r, name: name}
}

// RegisterInt registers an int setting; validate (optional) checks values.
func (r *Registry) RegisterInt(name, desc string, dflt int64, validate func(int64) error) *IntSetting {
	d := &def{name: name, desc: desc, typ: Int, dflt: dflt, example: "an integer such as 42"}
	if validate != nil {
		d.validate = func(v any) error { return validate(v.(int64)) }
	}
	r.register(d)
	return &IntSetting{r: r, name: name}
}

// RegisterDuration registers a duration setting; validate (optional)
// checks values.
func (r *Registry) RegisterDuration(name, desc string, dflt time.Duration, validate func(time.Duration) error) *DurationSetting {
	d := &def{name: name, desc: desc, typ: Duration, dflt: dflt, example: "a duration in quotes, such as '90s' or '10m'"}
	if validate != nil {
		d.validate = func(v any) error { return validate(v.(time.Duration)) }
	}
	r.register(d)
	return &DurationSetting{r: r, name: name}
}

// RegisterString registers a string setting; validate (optional) checks
// values.
func (r *Registry) RegisterString(name, desc, dflt string, validate func(string) error) *StringSetting {
	d := &def{name: name, desc: desc, typ: String, dflt: dflt, example: "a string in quotes"}
	if validate != nil {
		d.validate = func(v any) error { return validate(v.(string)) }
	}
	r.register(d)
	return &StringSetting{r: r, name: name}
}

// MinDuration returns a validator that refuses durations below min.
func MinDuration(min time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < min {
			return errors.Newf("must be at least %s", min)
		}
		return nil
	}
}

// Encode returns the stored text of a value of type t.
func Encode(t Type, v any) string {
	switch t {
	case Bool:
		return strconv.FormatBool(v.(bool))
	case Int:
		return strconv.FormatInt(v.(int64), 10)
	case Duration:
		return v.(time.Duration).String()
	default:
		return v.(string)
	}
}

// decode parses stored text of type t.
func decode(t Type, s string) (any, error) {
	switch t {
	case Bool:
		return strconv.ParseBool(s)
	case Int:
		return strconv.ParseInt(s, 10, 64)
	case Duration:
		return time.ParseDuration(s)
	default:
		return s, nil
	}
}

// fromDatum converts the value of SET CLUSTER SETTING to the setting's
// type. A string converts to any type if it parses as one (like
// CockroachDB's untyped string constants); other values must have the
// setting's type.
func fromDatum(d *def, v types.Datum) (any, error) {
	wrongType := func() error {
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue,
			"cluster setting %q has type %s; %s has type %s", d.name, d.typ.Name(), types.FormatText(v), datumTypeName(v)),
			"write %s", d.example)
	}
	unparsable := func(err error) error {
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue,
			"cluster setting %q has type %s; %q is not a valid %s: %v", d.name, d.typ.Name(), v, d.typ.Name(), err),
			"write %s", d.example)
	}
	if v == nil {
		return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue,
			"cluster setting %q cannot be NULL", d.name), "RESET CLUSTER SETTING %s restores its default", d.name)
	}
	switch d.typ {
	case Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, unparsable(errors.New("want true or false"))
			}
			return b, nil
		}
	case Int:
		switch x := v.(type) {
		case int64:
			return x, nil
		case string:
			i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, unparsable(errors.New("want an integer"))
			}
			return i, nil
		}
	case Duration:
		if x, ok := v.(string); ok {
			dur, err := time.ParseDuration(strings.TrimSpace(x))
			if err != nil {
				return nil, unparsable(errors.New("want a number with a unit: ns, us, ms, s, m or h"))
			}
			return dur, nil
		}
	case String:
		if x, ok := v.(string); ok {
			return x, nil
		}
	}
	return nil, wrongType()
}

func datumTypeName(v types.Datum) string {
	switch v.(type) {
	case int64:
		return "INT"
	case float64:
		return "FLOAT"
	case bool:
		return "BOOL"
	case []byte:
		return "BYTES"
	default:
		return "STRING"
	}
}

// unknown is the error for a name that is not a registered setting.
func (r *Registry) unknown(name string) error {
	err := pgerror.Newf(pgerror.CodeUndefinedObject, "unknown cluster setting %q", name)
	if sim := r.similar(name); len(sim) > 0 {
		return pgerror.WithHintf(err, "did you mean %s? SHOW ALL CLUSTER SETTINGS lists every setting", strings.Join(sim, " or "))
	}
	return pgerror.WithHintf(err, "SHOW ALL CLUSTER SETTINGS lists every setting")
}

// Lookup reports whether name is a registered setting.
func (r *Registry) Lookup(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.defs[strings.ToLower(name)]
	return ok
}

func (r *Registry) def(name string) (*def, error) {
	r.mu.RLock()
	d, ok := r.defs[strings.ToLower(name)]
	r.mu.RUnlock()
	if !ok {
		return nil, r.unknown(name)
	}
	return d, nil
}

// Set validates v for setting name and stores it. Nothing is written if it
// is refused.
func (r *Registry) Set(ctx context.Context, name string, v types.Datum) error {
	d, err := r.def(name)
	if err != nil {
		return err
	}
	val, err := fromDatum(d, v)
	if err != nil {
		return err
	}
	if d.validate != nil {
		if verr := d.validate(val); verr != nil {
			hint := "write " + d.example
			if hs := errors.GetAllHints(verr); len(hs) > 0 {
				hint = strings.Join(hs, "\n")
			}
			// 22023 unless the validator says otherwise (55000: the value
			// may be fine, the cluster is not in a state that takes it).
			code := pgerror.CodeInvalidParameterValue
			if c := pgerror.GetCode(verr); c != pgerror.CodeInternal {
				code = c
			}
			return pgerror.WithHintf(pgerror.Newf(code,
				"invalid value for cluster setting %q: %v", d.name, verr), "%s", hint)
		}
	}
	return r.write(ctx, d, val)
}

// Ops returns the writes that set name to v, unvalidated, for a caller
// that must set it atomically with writes of its own (the downgrade record
// and cluster.preserve_downgrade_option, which the upgrade manager sets
// together to a value the validator would refuse at that moment: the
// release being downgraded to). The cache catches up at its next refresh.
func (r *Registry) Ops(name string, v types.Datum) ([]kvpb.Op, error) {
	d, err := r.def(name)
	if err != nil {
		return nil, err
	}
	val, err := fromDatum(d, v)
	if err != nil {
		return nil, err
	}
	text := Encode(d.typ, val)
	rec, _ := json.Marshal(Change{Value: text, At: r.now()})
	return []kvpb.Op{
		{Kind: kvpb.OpPut, Key: Key(d.name), Value: []byte(text)},
		{Kind: kvpb.OpPut, Key: changedKey(d.name), Value: rec},
	}, nil
}

// Reset restores setting name's default.
func (r *Registry) Reset(ctx context.Context, name string) error {
	d, err := r.def(name)
	if err != nil {
		return err
	}
	return r.write(ctx, d, nil)
}

func (r *Registry) write(ctx context.Context, d *def, val any) error {
	r.mu.RLock()
	db := r.db
	r.mu.RUnlock()
	if db == nil {
		return pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "cluster settings are not available until the node has joined a cluster")
	}
	op := kvpb.Op{Kind: kvpb.OpDelete, Key: Key(d.name)}
	changed := kvpb.Op{Kind: kvpb.OpDelete, Key: changedKey(d.name)}
	if val != nil {
		text := Encode(d.typ, val)
		op = kvpb.Op{Kind: kvpb.OpPut, Key: Key(d.name), Value: []byte(text)}
		rec, _ := json.Marshal(Change{Value: text, At: r.now()})
		changed = kvpb.Op{Kind: kvpb.OpPut, Key: changedKey(d.name), Value: rec}
	}
	if err := db.Write(ctx, []kvpb.Op{op, changed}); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	if val == nil {
		delete(r.values, d.name)
	} else {
		r.values[d.name] = val
	}
	return nil
}

// Refresh re-reads every setting from the store (linearizable).
//
// A stored value is taken as stored: it was validated once, when it was
// SET, and is not validated again. A validator may depend on state that
// moves on (cluster.preserve_downgrade_option names the node's cluster
// version), so validating again would silently turn a value that was valid
// when it was set into the default, differently on each node. A stored
// text that cannot be decoded as the setting's type at all (written by
// hand, or by a release where the setting had another type) reads as the
// default, and is logged once per stored text, not at every refresh.
//
// When Refresh returns nil, every value it leaves cached is at least as new
// as a linearizable read that started after the call did (decisions such as
// the auto-upgrade's read the cache right after a Refresh): a scan raced by
// a local Set is taken again, and a scan that started before another one
// that is already installed changes nothing.
func (r *Registry) Refresh(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		raced, err := r.refreshOnce(ctx)
		if err != nil || !raced {
			return err
		}
		if attempt == 4 {
			return errors.New("cluster settings keep changing on this node while they are re-read; try again")
		}
	}
}

// refreshOnce is one scan of Refresh; raced reports a local Set that ran
// during the scan (its result was dropped).
func (r *Registry) refreshOnce(ctx context.Context) (raced bool, err error) {
	r.mu.Lock()
	db, gen := r.db, r.gen
	r.scans++
	seq := r.scans
	r.mu.Unlock()
	if db == nil {
		return false, nil
	}
	start, end := keys.SettingSpan()
	kvs, err := db.Scan(ctx, start, end, 0, false)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen {
		return true, nil // a local Set raced with the scan
	}
	if seq < r.installed {
		return false, nil // a scan that started later is installed already
	}
	r.installed = seq
	vals := map[string]any{}
	for _, e := range kvs {
		name := string(e.Key[len(keys.SettingPrefix):])
		d, ok := r.defs[name]
		if !ok {
			continue // a setting of another release: kept in the store, ignored here
		}
		v, err := decode(d.typ, string(e.Value))
		if err != nil {
			if r.undecodable[name] != string(e.Value) {
				r.undecodable[name] = string(e.Value)
				r.log.Warn(fmt.Sprintf("cluster setting %s: the stored value %q is not a valid %s; using its default %q until it is set again "+
					"(SET CLUSTER SETTING %s = ..., or RESET CLUSTER SETTING %s)",
					name, e.Value, d.typ.Name(), Encode(d.typ, d.dflt), name, name), "setting", name, "err", err)
			}
			continue
		}
		delete(r.undecodable, name)
		vals[name] = v
	}
	for name := range r.undecodable {
		if !storedIn(kvs, name) {
			delete(r.undecodable, name) // RESET since: report it again if it comes back
		}
	}
	r.values = vals
	r.fresher = time.Now()
	return false, nil
}

func storedIn(kvs []kvpb.KeyValue, name string) bool {
	for _, e := range kvs {
		if string(e.Key[len(keys.SettingPrefix):]) == name {
			return true
		}
	}
	return false
}

// Run refreshes every RefreshInterval until ctx ends.
func (r *Registry) Run(ctx context.Context) {
	stop.Every(ctx, RefreshInterval, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := r.Refresh(rctx); err != nil && ctx.Err() == nil {
			r.log.Debug("refreshing cluster settings", "err", err)
		}
		return true
	})
}

// Value is one setting as SHOW reports it.
type Value struct {
	Name, Description string
	Type              Type
	// Datum is the value as SQL returns it from SHOW CLUSTER SETTING: bool,
	// int64, or string (durations as text, e.g. "5m0s").
	Datum types.Datum
	// Text is the value as SHOW ALL CLUSTER SETTINGS prints it.
	Text string
	// Default is the default's text.
	Default string
}

func (r *Registry) valueLocked(d *def) Value {
	v, ok := r.values[d.name]
	if !ok {
		v = d.dflt
	}
	out := Value{Name: d.name, Description: d.desc, Type: d.typ, Text: Encode(d.typ, v), Default: Encode(d.typ, d.dflt)}
	switch d.typ {
	case Bool, Int:
		out.Datum = v
	default:
		out.Datum = out.Text
	}
	return out
}

// Show returns setting name's current value, refreshed from the store
// first (if it cannot be read, the node's cached value).
func (r *Registry) Show(ctx context.Context, name string) (Value, error) {
	d, err := r.def(name)
	if err != nil {
		return Value{}, err
	}
	r.refreshForShow(ctx)
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.valueLocked(d), nil
}

// Describe returns setting name's description and type without reading
// the store.
func (r *Registry) Describe(name string) (Value, error) {
	d, err := r.def(name)
	if err != nil {
		return Value{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.valueLocked(d), nil
}

// All returns every setting, ordered by name, refreshed from the store
// first.
func (r *Registry) All(ctx context.Context) []Value {
	r.refreshForShow(ctx)
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Value, 0, len(r.defs))
	for _, d := range r.defs {
		out = append(out, r.valueLocked(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Registry) refreshForShow(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.Refresh(cctx); err != nil {
		r.log.Warn("cluster settings could not be refreshed; showing this node's cached values", "err", err)
	}
}

// similar returns up to three registered names close to name.
func (r *Registry) similar(name string) []string {
	name = strings.ToLower(name)
	r.mu.RLock()
	defer r.mu.RUnlock()
	type cand struct {
		n    string
		dist int
	}
	var cs []cand
	last := name[strings.LastIndexByte(name, '.')+1:]
	for n := range r.defs {
		dist := levenshtein(name, n)
		nl := n[strings.LastIndexByte(n, '.')+1:]
		switch {
		case dist <= max(3, len(n)/4):
		case strings.Contains(n, name) || (len(last) >= 4 && strings.Contains(n, last)) || (len(nl) >= 4 && strings.Contains(name, nl)):
			dist += 100
		default:
			continue
		}
		cs = append(cs, cand{n, dist})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return cs[i].n < cs[j].n
	})
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].n)
	}
	return out
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// String implements fmt.Stringer for debugging.
func (v Value) String() string { return fmt.Sprintf("%s = %s (%s)", v.Name, v.Text, v.Type.Name()) }
