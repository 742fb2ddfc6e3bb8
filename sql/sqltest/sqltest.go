package sqltest

import (
	"bytes"
	"context"
	"encoding/binary"
	"sort"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
)

// Stats counts the operations a MemDB served.
type Stats struct {
	Gets, Scans, ScannedRows, Writes, WrittenOps int
}

// MemDB is an in-memory, linearizable kvpb.DB.
type MemDB struct {
	mu    sync.Mutex
	keys  []string // sorted
	vals  map[string][]byte
	stats Stats

	hookMu sync.Mutex
	// beforeWrite, when set, runs before each Write outside the lock; a
	// non-nil error fails the Write without applying it. Tests use it to
	// inject ambiguity or to race a concurrent writer into the window
	// between a statement's read and its write.
	beforeWrite func(ops []kvpb.Op) error
	// beforeIncrement, when set, runs before each Increment outside the
	// lock; DDL allocates IDs with Increment, so this is a pause point
	// inside a schema change.
	beforeIncrement func(key []byte)
}

var _ kvpb.DB = (*MemDB)(nil)

// NewMemDB returns an empty store.
func NewMemDB() *MemDB { return &MemDB{vals: map[string][]byte{}} }

// SetBeforeWrite installs (or with nil removes) the write hook.
func (db *MemDB) SetBeforeWrite(fn func(ops []kvpb.Op) error) {
	db.hookMu.Lock()
	defer db.hookMu.Unlock()
	db.beforeWrite = fn
}

// SetBeforeIncrement installs (or with nil removes) the Increment hook.
func (db *MemDB) SetBeforeIncrement(fn func(key []byte)) {
	db.hookMu.Lock()
	defer db.hookMu.Unlock()
	db.beforeIncrement = fn
}

// Stats returns the operation counters and resets them.
func (db *MemDB) Stats() Stats {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := db.stats
	db.stats = Stats{}
	return s
}

// Len returns the number of keys stored.
func (db *MemDB) Len() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.keys)
}

// Get implements kvpb.DB.
func (db *MemDB) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.stats.Gets++
	v, ok := db.vals[string(key)]
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), v...), true, nil
}

// Scan implements kvpb.DB.
func (db *MemDB) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.stats.Scans++
	lo := sort.SearchStrings(db.keys, string(start))
	hi := len(db.keys)
	if end != nil {
		hi = sort.SearchStrings(db.keys, string(end))
	}
	var out []kvpb.KeyValue
	emit := func(i int) bool {
		k := db.keys[i]
		out = append(out, kvpb.KeyValue{Key: []byte(k), Value: append([]byte(nil), db.vals[k]...)})
		return limit > 0 && len(out) >= limit
	}
	if reverse {
		for i := hi - 1; i >= lo; i-- {
			if emit(i) {
				break
			}
		}
	} else {
		for i := lo; i < hi; i++ {
			if emit(i) {
				break
			}
		}
	}
	db.stats.ScannedRows += len(out)
	return out, nil
}

var _ kvpb.Streamer = (*MemDB)(nil)

// ScanFunc implements kvpb.Streamer: the entries are read under the lock,
// as Scan reads them, and handed to fn after it is released (fn may read
// the store again).
func (db *MemDB) ScanFunc(ctx context.Context, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	kvs, err := db.Scan(ctx, start, end, limit, reverse)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := fn(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	return nil
}

// GetEach implements kvpb.Streamer: every key is read under one lock
// (one consistent state); each counts as a Get in Stats.
func (db *MemDB) GetEach(ctx context.Context, keys [][]byte, fn func(i int, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			return errors.AssertionFailedf("GetEach: keys not ascending at %d", i)
		}
	}
	vals := make([][]byte, len(keys))
	db.mu.Lock()
	db.stats.Gets += len(keys)
	for i, k := range keys {
		if v, ok := db.vals[string(k)]; ok {
			vals[i] = append([]byte{}, v...)
		}
	}
	db.mu.Unlock()
	for i, v := range vals {
		if v != nil {
			if err := fn(i, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Write implements kvpb.DB: all ops apply, in order, or none do.
func (db *MemDB) Write(ctx context.Context, ops []kvpb.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.hookMu.Lock()
	hook := db.beforeWrite
	db.hookMu.Unlock()
	if hook != nil {
		if err := hook(ops); err != nil {
			return err
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.stats.Writes++
	db.stats.WrittenOps += len(ops)
	// Stage the batch over the current state so that a failing condition
	// leaves nothing behind.
	staged := map[string][]byte{} // nil value: deleted
	get := func(k string) ([]byte, bool) {
		if v, ok := staged[k]; ok {
			return v, v != nil
		}
		v, ok := db.vals[k]
		return v, ok
	}
	var ranges [][2][]byte
	for i, op := range ops {
		k := string(op.Key)
		switch op.Kind {
		case kvpb.OpPut:
			staged[k] = append([]byte{}, op.Value...)
		case kvpb.OpDelete:
			staged[k] = nil
		case kvpb.OpCPut, kvpb.OpCheck:
			cur, exists := get(k)
			ok := exists && !op.ExpectAbsent && bytes.Equal(cur, op.Expected) || !exists && op.ExpectAbsent
			if !ok {
				return &kvpb.ConditionFailedError{Index: i, Key: append([]byte(nil), op.Key...),
					Actual: append([]byte(nil), cur...), Exists: exists}
			}
			if op.Kind == kvpb.OpCheck {
				continue
			}
			if op.Delete {
				staged[k] = nil
			} else {
				staged[k] = append([]byte{}, op.Value...)
			}
		case kvpb.OpInsertOrUpdate:
			if _, exists := get(k); exists {
				staged[k] = append([]byte{}, op.ElseValue...)
			} else {
				staged[k] = append([]byte{}, op.Value...)
			}
		case kvpb.OpDeleteRange:
			// Applied after the point ops below; the executor never mixes
			// the two in one batch.
			ranges = append(ranges, [2][]byte{op.Key, op.EndKey})
		default:
			return errors.AssertionFailedf("unknown op kind %d", op.Kind)
		}
	}
	for k, v := range staged {
		db.setLocked(k, v)
	}
	for _, r := range ranges {
		lo := sort.SearchStrings(db.keys, string(r[0]))
		hi := sort.SearchStrings(db.keys, string(r[1]))
		for _, k := range db.keys[lo:hi] {
			delete(db.vals, k)
		}
		db.keys = append(db.keys[:lo], db.keys[hi:]...)
	}
	return nil
}

func (db *MemDB) setLocked(k string, v []byte) {
	i := sort.SearchStrings(db.keys, k)
	present := i < len(db.keys) && db.keys[i] == k
	switch {
	case v == nil && present:
		db.keys = append(db.keys[:i], db.keys[i+1:]...)
		delete(db.vals, k)
	case v != nil && !present:
		db.keys = append(db.keys, "")
		copy(db.keys[i+1:], db.keys[i:])
		db.keys[i] = k
		db.vals[k] = v
	case v != nil:
		db.vals[k] = v
	}
}

// Increment implements kvpb.DB.
func (db *MemDB) Increment(ctx context.Context, key []byte, delta int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db.hookMu.Lock()
	hook := db.beforeIncrement
	db.hookMu.Unlock()
	if hook != nil {
		hook(key)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	var n int64
	if v, ok := db.vals[string(key)]; ok {
		if len(v) != 8 {
			return 0, errors.Newf("counter at %q is not an int64", key)
		}
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	db.setLocked(string(key), binary.BigEndian.AppendUint64(nil, uint64(n)))
	return n, nil
}

// MemStore is an in-memory node-local store (sql.LocalStore).
type MemStore struct {
	mu   sync.Mutex
	vals map[string][]byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{vals: map[string][]byte{}} }

// Get implements sql.LocalStore.
func (s *MemStore) Get(key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vals[string(key)]
	return append([]byte(nil), v...), ok, nil
}

// Put implements sql.LocalStore.
func (s *MemStore) Put(key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[string(key)] = append([]byte(nil), value...)
	return nil
}

// Scan implements sql.LocalStore.
func (s *MemStore) Scan(prefix []byte) ([]kvpb.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kvpb.KeyValue
	for k, v := range s.vals {
		if bytes.HasPrefix([]byte(k), prefix) {
			out = append(out, kvpb.KeyValue{Key: []byte(k), Value: append([]byte(nil), v...)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out, nil
}

// Network connects the catalogs of several in-process nodes: a push from
// one node is merged into every other node whose link is up. It stands in
// for the server's RPC push and gossip-driven pull.
type Network struct {
	mu    sync.Mutex
	nodes map[nodeid.ID]*catalog.Catalog
	down  map[nodeid.ID]bool // nodes cut off from pushes (both directions)
	order []nodeid.ID
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{nodes: map[nodeid.ID]*catalog.Catalog{}, down: map[nodeid.ID]bool{}}
}

// Add registers a node's catalog.
func (n *Network) Add(id nodeid.ID, c *catalog.Catalog) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[id] = c
	n.order = append(n.order, id)
}

// SetLink cuts (up=false) or restores a node's link to the others.
func (n *Network) SetLink(id nodeid.ID, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[id] = !up
}

// Peers returns the SchemaPeers of node id.
func (n *Network) Peers(id nodeid.ID) *Peers { return &Peers{net: n, from: id} }

// Sync runs the anti-entropy step once for every pair of connected nodes:
// a node whose digest differs from a peer's pulls and merges the peer's
// descriptors, which is what the server does on a gossiped digest change.
func (n *Network) Sync() error {
	n.mu.Lock()
	ids := append([]nodeid.ID(nil), n.order...)
	down := map[nodeid.ID]bool{}
	for k, v := range n.down {
		down[k] = v
	}
	nodes := n.nodes
	n.mu.Unlock()
	for _, a := range ids {
		for _, b := range ids {
			if a == b || down[a] || down[b] || nodes[a].Digest() == nodes[b].Digest() {
				continue
			}
			if _, err := nodes[a].Merge(nodes[b].All()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Peers is one node's view of the Network; it implements sql.SchemaPeers.
type Peers struct {
	net  *Network
	from nodeid.ID
}

// PushSchema implements sql.SchemaPeers.
func (p *Peers) PushSchema(ctx context.Context, descs []catalog.TableDescriptor) {
	n := p.net
	n.mu.Lock()
	if n.down[p.from] {
		n.mu.Unlock()
		return
	}
	var targets []*catalog.Catalog
	for _, id := range n.order {
		if id != p.from && !n.down[id] {
			targets = append(targets, n.nodes[id])
		}
	}
	n.mu.Unlock()
	for _, c := range targets {
		if ctx.Err() != nil {
			return
		}
		_, _ = c.Merge(descs) // best effort, as the real push
	}
}
