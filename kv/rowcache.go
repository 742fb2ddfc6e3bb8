package kv

// rowCache holds, for recently applied or read keys of the state machine,
// the value (or the absence of one) that the entries applied so far leave.
// It serves the reads that applying a command makes (the existence check of
// INSERT … ON CONFLICT, a conditional put's comparison, an increment), which
// otherwise cost a Pebble point read on every replica for every write: on a
// store that has not flushed yet (a fresh or restarted node, whose memtable
// grows from 256 KiB and is flushed only once 32 MiB are queued), such a read
// seeks up to eight memtables.
//
// The cache belongs to the Raft loop: only apply (through applyCommand)
// reads and writes it, so it needs no lock, and it never serves the reads of
// SQL statements, which read Pebble (GetLocal, ScanLocal). Its rules keep it
// equal to what Pebble plus the apply batch in progress hold:
//   - every write that apply adds to its batch is written through (put),
//     including deletions, which are cached as absent;
//   - a read that misses is read through the apply batch, which sees the
//     batch's own earlier writes, and cached;
//   - a range deletion or an installed snapshot empties the cache.
//
// An apply that fails leaves the cache ahead of Pebble, but the replica
// stops then (run panics on any storage error), and a restarted replica
// starts with an empty cache.
//
// Rows are evicted between apply batches (shrink), in random order (Go's
// map iteration order): cheap, and with the working set usually resident,
// good enough. A row evicted, or never cached, is simply read again. So
// the bound holds between batches; one batch's rows may exceed it until
// the batch is applied.
//
// The values get returns are the cache's own and must not be modified
// (put never changes a cached slice; it replaces it).
type rowCache struct {
	limit   int // bytes; 0 disables the cache
	bytes   int
	m       map[string]cachedRow
	hits    uint64
	miss    uint64
	metrics *Metrics
}

type cachedRow struct {
	value  []byte
	exists bool
}

// rowOverhead approximates what a row costs beyond its key and value: its
// map slot, the string and slice headers, and allocation rounding.
const rowOverhead = 96

func newRowCache(maxBytes int, m *Metrics) *rowCache {
	return &rowCache{limit: maxBytes, m: map[string]cachedRow{}, metrics: m}
}

// get returns the cached state of key, if cached.
func (c *rowCache) get(key []byte) (value []byte, exists, ok bool) {
	if c.limit == 0 {
		return nil, false, false
	}
	row, ok := c.m[string(key)]
	c.metrics.rowCacheRead(ok)
	if !ok {
		c.miss++
		return nil, false, false
	}
	c.hits++
	return row.value, row.exists, true
}

// holds reports whether key is cached, without counting a hit or a miss.
func (c *rowCache) holds(key []byte) bool {
	if c.limit == 0 {
		return false
	}
	_, ok := c.m[string(key)]
	return ok
}

// put records that key now holds value (exists) or nothing (!exists), and
// returns the cache's own copy of value (so that a value decoded from a Raft
// entry does not keep the whole entry in memory).
func (c *rowCache) put(key, value []byte, exists bool) []byte {
	if exists {
		// A copy even when the cache is off: value may be Pebble's memory,
		// valid only until the read's closer is closed.
		value = append(make([]byte, 0, len(value)), value...)
	} else {
		value = nil
	}
	if c.limit == 0 {
		return value
	}
	if old, ok := c.m[string(key)]; ok {
		c.bytes -= len(key) + len(old.value) + rowOverhead
	}
	c.m[string(key)] = cachedRow{value: value, exists: exists}
	c.bytes += len(key) + len(value) + rowOverhead
	return value
}

// putIfCached is put for a key that is cached, and does nothing for one
// that is not (which stays correct: a key not cached is read again).
func (c *rowCache) putIfCached(key, value []byte, exists bool) []byte {
	if _, ok := c.m[string(key)]; ok {
		return c.put(key, value, exists)
	}
	return nil
}

// clear forgets everything.
func (c *rowCache) clear() {
	if len(c.m) == 0 {
		return
	}
	clear(c.m)
	c.bytes = 0
	c.metrics.setRowCacheBytes(0)
}

// shrink evicts entries until the cache is within three quarters of its
// bound, once it has exceeded the bound. Called between apply batches.
func (c *rowCache) shrink() {
	defer func() { c.metrics.setRowCacheBytes(c.bytes) }()
	if c.bytes <= c.limit {
		return
	}
	target := c.limit / 4 * 3
	for k, row := range c.m {
		if c.bytes <= target {
			break
		}
		delete(c.m, k)
		c.bytes -= len(k) + len(row.value) + rowOverhead
	}
}
