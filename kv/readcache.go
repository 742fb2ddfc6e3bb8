package kv

import (
	"hash/maphash"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/storage"
)

// readCache serves the linearizable point reads of Replica.Get (a SQL
// statement's read by primary key) from memory: the value, or the absence of
// one, that the applied state holds for recently read keys. A Pebble point
// read of a store that has not flushed (a fresh or restarted node: its
// memtable grows from 256 KiB and is flushed only once 32 MiB are queued)
// seeks up to eight memtable skiplists; in a one-node CPU profile of
// bench.sh's read script it was 16% of the node's CPU (issue 22).
//
// Unlike rowCache, which belongs to the Raft loop, this cache is read by any
// goroutine, so it is sharded, each shard under a mutex. Its rule: an entry
// never holds a value older than the applied state it was read from, and
// every applied write removes its key before the write is acknowledged.
//   - Readers fill it: a miss reads Pebble (the applied state, at least as
//     new as the index the read was linearized at) and caches what it read,
//     but only if no write to the shard was applied since before that read
//     began (the shard's generation is unchanged): a read that raced an
//     apply may have read the older value, and must not cache it.
//   - apply, before committing its batch to Pebble, holds every shard the
//     batch writes (hold: bumps its generation and refuses every fill
//     until the release); after the commit, and before it moves the
//     applied index or answers any proposer, it removes every key the
//     batch wrote and releases the shards (applied); a range deletion in
//     the replicated span holds and empties every shard. An installed
//     snapshot and the recovery's reload hold and empty it too. Without
//     the hold, a read that found the old value before the commit could
//     fill the cache after another read had returned the new value from
//     Pebble, and a third read, begun after that one returned, would
//     find the old value (TestReadCacheNoFillAfterNewerRead).
//
// So a read linearized after a write was acknowledged finds either nothing
// (and reads Pebble, which holds the write) or an entry cached after the
// write was applied. A read concurrent with a write may see either value,
// as from Pebble.
//
// Entries are evicted in random order (map iteration) once a shard exceeds
// its share of the bound.
type readCache struct {
	seed      maphash.Seed
	shardMax  int // bytes per shard; 0 disables the cache
	shards    [readCacheShards]readShard
	metrics   *Metrics
	userStart byte // first byte of an engine key in the replicated span
}

const readCacheShards = 16

type readShard struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every hold, removal and clear
	held  bool   // a batch that writes keys of the shard is being committed: no fill
	bytes int
	m     map[string]cachedRow
}

func newReadCache(maxBytes int, m *Metrics) *readCache {
	c := &readCache{seed: maphash.MakeSeed(), shardMax: max(maxBytes, 0) / readCacheShards, metrics: m,
		userStart: storage.PrefixReplicated}
	for i := range c.shards {
		c.shards[i].m = map[string]cachedRow{}
	}
	return c
}

func (c *readCache) shard(key []byte) *readShard {
	return &c.shards[maphash.Bytes(c.seed, key)%readCacheShards]
}

// get returns a copy of the cached value of key, if cached; otherwise the
// shard's generation, which fill needs.
func (c *readCache) get(key []byte) (value []byte, exists, ok bool, gen uint64) {
	if c.shardMax == 0 {
		return nil, false, false, 0
	}
	s := c.shard(key)
	s.mu.Lock()
	row, ok := s.m[string(key)]
	if !ok {
		gen = s.gen
		s.mu.Unlock()
		c.metrics.readCacheRead(false)
		return nil, false, false, gen
	}
	if row.exists {
		value = append(make([]byte, 0, len(row.value)), row.value...)
	}
	s.mu.Unlock()
	c.metrics.readCacheRead(true)
	return value, row.exists, true, 0
}

// fill caches what a read of key found in Pebble, unless a write to the
// shard was applied since gen (get's) was read.
func (c *readCache) fill(key, value []byte, exists bool, gen uint64) {
	if c.shardMax == 0 {
		return
	}
	s := c.shard(key)
	k := string(key)
	if exists {
		value = append(make([]byte, 0, len(value)), value...)
	} else {
		value = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.held {
		return
	}
	limit := c.shardMax
	if old, ok := s.m[k]; ok {
		s.bytes -= len(k) + len(old.value) + rowOverhead
	}
	s.m[k] = cachedRow{value: value, exists: exists}
	s.bytes += len(k) + len(value) + rowOverhead
	if s.bytes > limit {
		target := limit / 4 * 3
		for k, row := range s.m {
			if s.bytes <= target {
				break
			}
			delete(s.m, k)
			s.bytes -= len(k) + len(row.value) + rowOverhead
		}
	}
}

// remove forgets key (a kv key, not an engine key), refuses every fill of a
// read that began before it, and holds key's shard (no fill) if hold, else
// releases it.
func (c *readCache) remove(key []byte, hold bool) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	s.held = hold
	if old, ok := s.m[string(key)]; ok {
		delete(s.m, string(key))
		s.bytes -= len(key) + len(old.value) + rowOverhead
	}
	s.mu.Unlock()
}

// clear forgets everything, refuses every fill of a read that began before
// it, and releases every shard.
func (c *readCache) clear() { c.clearAll(false) }

// holdAll forgets everything and refuses every fill until the next clear:
// call it before committing a batch that replaces the replicated span (a
// snapshot, a wipe), and clear after.
func (c *readCache) holdAll() { c.clearAll(true) }

func (c *readCache) clearAll(hold bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.gen++
		s.held = hold
		if len(s.m) > 0 {
			s.m = map[string]cachedRow{}
			s.bytes = 0
		}
		s.mu.Unlock()
	}
}

// hold holds every shard that b, about to be committed, writes a key of
// (every shard, for a range deletion or range key that reaches into the
// span): from now until applied(b) no fill is taken there, since a read may
// find either the old or the new value in Pebble meanwhile. It must run
// before b is committed.
func (c *readCache) hold(b *pebble.Batch) error { return c.walk(b, true) }

// applied removes every key of the replicated span that b, just committed,
// wrote, and releases the shards hold(b) held; a range deletion (or range
// key) that reaches into the span empties the cache. It must run after b
// is committed and before the applied index moves past b's entries or
// their proposers are answered.
func (c *readCache) applied(b *pebble.Batch) error { return c.walk(b, false) }

func (c *readCache) walk(b *pebble.Batch, hold bool) error {
	if c.shardMax == 0 {
		return nil
	}
	r := b.Reader()
	for {
		kind, ukey, value, ok, err := r.Next()
		if err != nil {
			return errors.Wrap(err, "reading back an applied batch")
		}
		if !ok {
			return nil
		}
		switch kind {
		case pebble.InternalKeyKindLogData:
		case pebble.InternalKeyKindRangeDelete, pebble.InternalKeyKindRangeKeySet,
			pebble.InternalKeyKindRangeKeyUnset, pebble.InternalKeyKindRangeKeyDelete:
			// [ukey, value) reaches into the span if it starts before the
			// span's end and ends after its start.
			if (len(ukey) == 0 || ukey[0] <= c.userStart) && (len(value) == 0 || value[0] >= c.userStart) {
				c.clearAll(hold)
			}
		default:
			if len(ukey) > 0 && ukey[0] == c.userStart {
				c.remove(ukey[1:], hold)
			}
		}
	}
}
