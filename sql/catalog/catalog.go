package catalog

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"hash"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// KeyPrefix is the prefix, in the node's local store, of the persisted
// descriptors: KeyPrefix + the descriptor's Key.
const KeyPrefix = "\x03schema/"

// LocalStore is the node's own, unreplicated, durable store. The catalog
// keeps its descriptors there because under the pre-Raft procedure each node
// owns its copy of the schema.
type LocalStore interface {
	Get(key []byte) ([]byte, bool, error)
	// Put returns once the write is durable (synced).
	Put(key, value []byte) error
	Scan(prefix []byte) ([]kvpb.KeyValue, error)
}

// ErrConcurrentChange is returned by Apply when the table was changed by a
// newer schema change (merged from a peer) after the caller read it.
var ErrConcurrentChange = errors.New("concurrent schema change")

// snapshot is an immutable view of the catalog; readers load it without
// locking, so statement planning never waits for a DDL's fsync.
type snapshot struct {
	byName map[string]*TableDescriptor // by Key; includes tombstones
	sorted []*TableDescriptor          // by Key
	// enc[i] is sorted[i]'s canonical encoding (JSON and a newline), and
	// states[i] the SHA-256 state after hashing enc[:i] (len(sorted)+1 of
	// them): a change at position p re-hashes from p on only, and encodes
	// only the descriptors that changed (see install).
	enc    [][]byte
	states [][]byte
	digest string
	// version counts the snapshots this node installed: each change of the
	// catalog makes a new one (see Version).
	version uint64
}

// Catalog is this node's set of table descriptors, persisted in a
// LocalStore, merged with peers' by last-writer-wins per table name. It is
// safe for concurrent use.
type Catalog struct {
	store LocalStore
	clock *Clock

	mu   sync.Mutex // serializes writers (Apply, Merge)
	snap atomic.Pointer[snapshot]

	cbMu      sync.Mutex
	callbacks []func()
}

// New loads the catalog persisted in store. The clock is advanced past every
// loaded modification time, so schema changes made after a restart order
// after the ones made before it even if the wall clock went backwards.
func New(store LocalStore, clock *Clock) (*Catalog, error) {
	if clock == nil {
		clock = NewClock(nil, nil)
	}
	c := &Catalog{store: store, clock: clock}
	kvs, err := store.Scan([]byte(KeyPrefix))
	if err != nil {
		return nil, errors.Wrap(err, "loading the schema from the local store")
	}
	byName := make(map[string]*TableDescriptor, len(kvs))
	for _, kv := range kvs {
		var d TableDescriptor
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, errors.WithHint(
				errors.Wrapf(err, "decoding the stored descriptor at key %q", kv.Key),
				"the node's store is damaged; restore it from a healthy node or a backup")
		}
		if err := d.Validate(); err != nil {
			return nil, errors.Wrapf(err, "stored descriptor at key %q is invalid", kv.Key)
		}
		clock.Update(d.ModTime)
		byName[d.Key()] = &d
	}
	c.snap.Store(newSnapshot(byName))
	return c, nil
}

func newSnapshot(byName map[string]*TableDescriptor) *snapshot {
	s := &snapshot{byName: byName}
	for _, d := range byName {
		s.sorted = append(s.sorted, d)
	}
	sort.Slice(s.sorted, func(i, j int) bool { return s.sorted[i].Key() < s.sorted[j].Key() })
	s.enc = make([][]byte, len(s.sorted))
	for i, d := range s.sorted {
		s.enc[i] = digestEncoding(d)
	}
	s.hashFrom(nil, 0)
	return s
}

// digestEncoding is a descriptor's canonical encoding as the digest covers
// it: what json.Encoder.Encode writes (json.Marshal's bytes and a newline).
func digestEncoding(d *TableDescriptor) []byte {
	b, _ := json.Marshal(d) // a descriptor always encodes (persist encodes it the same way)
	return append(b, '\n')
}

// hashFrom sets s.states and s.digest from s.enc. The digest is SHA-256 over
// the canonical encoding of every descriptor in Key order, tombstones
// included: two nodes agree on it exactly when their schemas (and the
// knowledge of drops) agree. The states up to position from are prev's (the
// encodings before from are the same), so only the rest is hashed again:
// creating the tables t0001, t0002, ... in order hashes one descriptor per
// change, whatever the number of tables.
func (s *snapshot) hashFrom(prev [][]byte, from int) {
	s.states = make([][]byte, len(s.sorted)+1)
	h := sha256.New()
	if from == 0 {
		s.states[0] = marshalState(h)
	} else {
		copy(s.states[:from+1], prev[:from+1])
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.states[from]); err != nil {
			panic(errors.NewAssertionErrorWithWrappedErrf(err, "restoring the schema digest's hash state"))
		}
	}
	for i := from; i < len(s.sorted); i++ {
		_, _ = h.Write(s.enc[i]) // hashing cannot fail
		s.states[i+1] = marshalState(h)
	}
	s.digest = hex.EncodeToString(h.Sum(nil)[:8])
}

func marshalState(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(errors.NewAssertionErrorWithWrappedErrf(err, "saving the schema digest's hash state"))
	}
	return b
}

// Clock returns the catalog's hybrid logical clock; DDL takes its
// modification times from it.
func (c *Catalog) Clock() *Clock { return c.clock }

// Get returns the live (not dropped) descriptor with the given Key (for a
// table of defaultdb, its name). The descriptor is shared: do not modify it.
func (c *Catalog) Get(key string) (*TableDescriptor, bool) {
	d, ok := c.snap.Load().byName[key]
	if !ok || d.Dropped || d.Pending != nil {
		return nil, false
	}
	return d, true
}

// GetTable returns the live descriptor of table name in database db.
func (c *Catalog) GetTable(db, name string) (*TableDescriptor, bool) {
	return c.Get(TableKey(db, name))
}

// GetAny returns the descriptor with the given Key when it is live or
// pending (not a tombstone): what a name check and the resolution of
// pending records need.
func (c *Catalog) GetAny(key string) (*TableDescriptor, bool) {
	d, ok := c.snap.Load().byName[key]
	if !ok || d.Dropped {
		return nil, false
	}
	return d, true
}

// Pending returns the pending records (tables created, and existing tables
// changed, by transactions not decided yet), sorted by Key (shared,
// read-only).
func (c *Catalog) Pending() []*TableDescriptor {
	s := c.snap.Load()
	var out []*TableDescriptor
	for _, d := range s.sorted {
		if d.PendingOf() != nil && !d.Dropped {
			out = append(out, d)
		}
	}
	return out
}

// GetRecord returns the descriptor with the given Key even when it is a
// tombstone.
func (c *Catalog) GetRecord(key string) (*TableDescriptor, bool) {
	d, ok := c.snap.Load().byName[key]
	return d, ok
}

// HasDatabase reports whether database db exists: a built-in one, or one
// with a live record.
func (c *Catalog) HasDatabase(db string) bool {
	if IsBuiltinDatabase(db) {
		return true
	}
	_, ok := c.Get(DatabaseKey(db))
	return ok
}

// Databases returns the live records of the databases created by CREATE
// DATABASE, sorted by name (the built-in ones have none).
func (c *Catalog) Databases() []*TableDescriptor {
	s := c.snap.Load()
	var out []*TableDescriptor
	for _, d := range s.sorted {
		if d.IsDatabase && !d.Dropped {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TablesIn returns the live tables of database db sorted by name (shared,
// read-only).
func (c *Catalog) TablesIn(db string) []*TableDescriptor {
	if db == DefaultDatabase {
		db = ""
	}
	var out []*TableDescriptor
	for _, d := range c.Tables() {
		if d.Database == db {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// All returns every descriptor, tombstones included, sorted by name. This is
// what a peer pulls to converge with this node.
func (c *Catalog) All() []TableDescriptor {
	s := c.snap.Load()
	out := make([]TableDescriptor, len(s.sorted))
	for i, d := range s.sorted {
		out[i] = *d.Clone()
	}
	return out
}

// Tables returns the live tables of every database, sorted by Key (shared,
// read-only). Pending records are not live.
func (c *Catalog) Tables() []*TableDescriptor {
	s := c.snap.Load()
	out := make([]*TableDescriptor, 0, len(s.sorted))
	for _, d := range s.sorted {
		if !d.Dropped && !d.IsDatabase && d.Pending == nil {
			out = append(out, d)
		}
	}
	return out
}

// Digest is a short hex fingerprint of the whole schema, tombstones
// included. Nodes gossip it; equal digests mean equal schemas.
func (c *Catalog) Digest() string { return c.snap.Load().digest }

// OnChange registers fn to run after every change to the catalog (local or
// merged). fn runs synchronously on the changing goroutine, after the change
// is durable and visible, and must not block.
func (c *Catalog) OnChange(fn func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.callbacks = append(c.callbacks, fn)
}

func (c *Catalog) notify() {
	c.cbMu.Lock()
	cbs := append([]func(){}, c.callbacks...)
	c.cbMu.Unlock()
	for _, fn := range cbs {
		fn()
	}
}

// Apply installs a descriptor produced by a DDL statement on this node,
// durably, before returning. desc.ModTime must come from this catalog's
// clock after the caller read the version it modifies; if a newer change
// to the same name arrived from a peer in between, Apply refuses with a
// retryable 40001 error wrapping ErrConcurrentChange, because installing
// the older change here would make this node disagree with every other node
// until the next merge.
func (c *Catalog) Apply(desc TableDescriptor) error {
	if err := desc.Validate(); err != nil {
		return errors.NewAssertionErrorWithWrappedErrf(err, "invalid descriptor produced by DDL")
	}
	c.mu.Lock()
	err := c.applyLocked(&desc)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.notify()
	return nil
}

func (c *Catalog) applyLocked(desc *TableDescriptor) error {
	cur := c.snap.Load()
	if old, ok := cur.byName[desc.Key()]; ok && !old.ModTime.Less(desc.ModTime) {
		return pgerror.WithHintf(pgerror.WithCode(
			errors.Wrapf(ErrConcurrentChange, "table %q was changed concurrently on another node (at %s)", desc.Name, old.ModTime),
			pgerror.CodeSerializationFailure), "retry the statement")
	}
	c.clock.Update(desc.ModTime)
	if err := c.persist(desc); err != nil {
		return err
	}
	c.install(cur, []*TableDescriptor{desc.Clone()})
	return nil
}

// Merge folds in descriptors received from a peer: for each table name the
// descriptor with the higher ModTime wins, tombstones included. It advances
// the clock past every received timestamp, persists each winner before
// making it visible, and reports whether anything changed. Invalid
// descriptors are refused and nothing is merged.
func (c *Catalog) Merge(descs []TableDescriptor) (changed bool, err error) {
	for i := range descs {
		if err := descs[i].Validate(); err != nil {
			return false, errors.Wrap(err, "refusing to merge an invalid descriptor from a peer")
		}
	}
	c.mu.Lock()
	changed, err = c.mergeLocked(descs)
	c.mu.Unlock()
	if changed {
		c.notify()
	}
	return changed, err
}

func (c *Catalog) mergeLocked(descs []TableDescriptor) (bool, error) {
	cur := c.snap.Load()
	var winners []*TableDescriptor
	pending := map[string]*TableDescriptor{}
	var err error
	for i := range descs {
		d := &descs[i]
		c.clock.Update(d.ModTime)
		old, ok := pending[d.Key()]
		if !ok {
			old, ok = cur.byName[d.Key()]
		}
		if ok && !old.ModTime.Less(d.ModTime) {
			continue
		}
		if err = c.persist(d); err != nil {
			// Still install what was persisted so far.
			break
		}
		cl := d.Clone()
		pending[d.Key()] = cl
		winners = append(winners, cl)
	}
	if len(winners) > 0 {
		c.install(cur, winners)
	}
	return len(winners) > 0, err
}

func (c *Catalog) persist(d *TableDescriptor) error {
	b, err := json.Marshal(d)
	if err != nil {
		return errors.NewAssertionErrorWithWrappedErrf(err, "encoding descriptor %q", d.Name)
	}
	if err := c.store.Put([]byte(KeyPrefix+d.Key()), b); err != nil {
		return pgerror.WithHintf(pgerror.WithCode(
			errors.Wrapf(err, "persisting the schema of table %q", d.Name), pgerror.CodeUnavailable),
			"check the node's disk; the schema change was not applied on this node")
	}
	return nil
}

// install publishes a new snapshot with winners replacing their names.
// Called with c.mu held. Its cost grows with the number of descriptors
// only through copying pointers (the map and the sorted list) and hashing
// the encodings from the first changed position on; only the winners are
// encoded.
func (c *Catalog) install(cur *snapshot, winners []*TableDescriptor) {
	byName := make(map[string]*TableDescriptor, len(cur.byName)+len(winners))
	for k, v := range cur.byName {
		byName[k] = v
	}
	next := &snapshot{byName: byName, version: cur.version + 1,
		sorted: slices.Clone(cur.sorted), enc: slices.Clone(cur.enc)}
	from := len(next.sorted)
	for _, w := range winners {
		key := w.Key()
		byName[key] = w
		i := sort.Search(len(next.sorted), func(i int) bool { return next.sorted[i].Key() >= key })
		if i < len(next.sorted) && next.sorted[i].Key() == key {
			next.sorted[i], next.enc[i] = w, digestEncoding(w)
		} else {
			next.sorted = slices.Insert(next.sorted, i, w)
			next.enc = slices.Insert(next.enc, i, digestEncoding(w))
		}
		from = min(from, i)
	}
	next.hashFrom(cur.states, from)
	c.snap.Store(next)
}

// Version identifies what the catalog holds now: it changes with every
// change of any descriptor, so a view computed from the catalog (the SQL
// layer's pg_catalog rows) stays valid while Version is the same. It is
// this node's own count, not comparable between nodes or restarts.
func (c *Catalog) Version() uint64 { return c.snap.Load().version }
