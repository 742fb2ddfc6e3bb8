package storage

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
)

// Prefixes of the key spaces; see the package comment.
const (
	PrefixRaft       byte = 0x01
	PrefixReplicated byte = 0x10
	PrefixLocal      byte = 0x20
)

// ReplicatedSpan returns the engine key span holding the replicated state.
func ReplicatedSpan() (start, end []byte) {
	return []byte{PrefixReplicated}, []byte{PrefixReplicated + 1}
}

// Engine is one node's Pebble store plus the process lock on its directory.
type Engine struct {
	DB   *pebble.DB
	Dir  string
	lock io.Closer // nil on an Options.FS store: Pebble's own lock guards it
	fs   vfs.FS
	opts *pebble.Options // what DB was opened with, for the tables Ingest takes (ingest.go)
	// spares makes the zero-filled WAL files of a store on the real disk
	// (walspare.go); nil on an Options.FS store.
	spares *walSpareFS

	// closeMu orders Close after readers that may run on goroutines the
	// node does not wait for (a /metrics scrape).
	closeMu sync.RWMutex
	closed  bool
}

// Options tune the engine; the zero value is the production default.
type Options struct {
	// CacheSize is the block cache's room for SSTable blocks in bytes
	// (0: 64 MiB). The cache is made one memtable larger than this:
	// Pebble charges its memtables to the block cache (memTableSize).
	CacheSize int64
	// FS, if set, holds the store instead of the operating system's file
	// system (nil: vfs.Default). Tests give a strict in-memory one
	// (vfs.NewStrictMem) to lose every unsynced write in a simulated crash
	// (kv's crash harness, kv/DESIGN.md). The directory is then not locked
	// against other processes, which cannot see it anyway; Pebble's own
	// lock still refuses a second open in this process.
	FS vfs.FS
}

// ErrStoreLocked is returned when another process holds the store.
var ErrStoreLocked = errors.New("store is in use by another process")

// Open opens (creating if needed) the engine in dir, taking an exclusive
// lock so that a second process on the same store fails at once with a
// message naming the holder.
func Open(dir string, opts Options) (*Engine, error) {
	if dir == "" {
		return nil, errors.WithHint(errors.New("no store directory given"), "pass --store=DIR")
	}
	if opts.FS != nil {
		return openPebble(dir, opts, opts.FS, nil)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errors.WithHintf(errors.Wrapf(err, "cannot create store directory %s", dir),
			"choose a --store directory this user can write, or fix its permissions")
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	spares := newWALSpareFS(vfs.Default, dir)
	e, err := openPebble(dir, opts, spares, lock)
	if err != nil {
		spares.close()
		return nil, err
	}
	e.spares = spares
	return e, nil
}

// openPebble opens the Pebble store in dir on fs; lock (if any) is released
// if that fails, and by Close otherwise.
func openPebble(dir string, opts Options, fs vfs.FS, lock io.Closer) (*Engine, error) {
	cacheSize := opts.CacheSize
	if cacheSize == 0 {
		cacheSize = 64 << 20
	}
	cache := pebble.NewCache(cacheSize + memTableSize)
	defer cache.Unref()
	popts := &pebble.Options{
		Cache:  cache,
		FS:     fs,
		Logger: quietLogger{},
		// The Raft log and the state machine share the WAL; the Raft loop
		// syncs once per Ready, so concurrent proposals share one fsync.
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		Levels:                      bloomFilteredLevels(),
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		if lock != nil {
			_ = lock.Close()
		}
		return nil, errors.WithHintf(errors.Wrapf(err, "cannot open the Pebble store in %s", dir),
			"check that the directory is writable and not full, or choose another --store")
	}
	popts = popts.Clone().EnsureDefaults()
	popts.Cache = nil // the DB holds its reference; the writer options need none
	e := &Engine{DB: db, Dir: dir, lock: lock, fs: fs, opts: popts}
	if err := e.ClearIngestDir(); err != nil {
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// memTableSize is the size of a full memtable. Pebble reserves each
// memtable's size in the block cache (Cache.Reserve), so a cache of
// CacheSize bytes alone would be taken whole by one full memtable of the
// same size and keep no block at all: every read of an SSTable block
// would be a pread, a decompression and a checksum. Measured before the
// cache was made one memtable larger: 0 bytes cached, 675 hits and 239,935
// misses after a few GROUP BYs over a 100,000-row table in SSTables, and
// half of such a query's CPU in reading blocks (docs/benchmarks.md, "GROUP
// BY (session 16)").
const memTableSize = 64 << 20

// bloomFilteredLevels gives every level of the LSM a Bloom filter of 10 bits
// per key (about a 1% false-positive rate, as CockroachDB configures
// Pebble). Most point reads of the apply loop are of keys that do not exist:
// INSERT's and COPY's "is this key free" check and a transaction's
// validation of its write-index records. Without a filter each such read
// walks the index and a data block of every level that overlaps the key (a
// third of a one-node COPY's CPU, docs/benchmarks.md); with one, a level is
// skipped after a hash probe of its table's filter block.
//
// Only the tables written from now on carry a filter; a store written
// without them is read as before until compactions rewrite it. A binary
// without the option (release 2.0) reads tables that have one, ignoring the
// filter block: Pebble uses a table's filter only when its policy is
// configured, so this changes nothing a downgrade depends on.
func bloomFilteredLevels() []pebble.LevelOptions {
	levels := make([]pebble.LevelOptions, 7)
	for i := range levels {
		levels[i].FilterPolicy = bloom.FilterPolicy(10)
		levels[i].FilterType = pebble.TableFilter
	}
	return levels
}

// lockDir takes an exclusive advisory lock on DIR/kvnode.lock and writes our
// PID into it, so that the refusal can name the other process.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "kvnode.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, errors.WithHintf(errors.Wrapf(err, "store directory %s is not writable", dir),
				"fix its permissions or choose another --store")
		}
		return nil, errors.Wrapf(err, "cannot open lock file %s", path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		return nil, errors.WithHintf(errors.Wrapf(ErrStoreLocked, "store %s (held by pid %s)", dir, pid),
			"stop the other kvnode process, or give this one its own --store directory")
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Close flushes nothing extra (every acknowledged write was synced) and
// releases the lock.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return nil
	}
	e.closed = true
	e.closeMu.Unlock()
	err := e.DB.Close()
	if e.spares != nil {
		e.spares.close()
	}
	if e.lock != nil {
		_ = e.lock.Close()
	}
	return err
}

// FailStop stops the process the way Pebble does on a failed commit (see
// quietLogger.Fatalf), for a write error that reaches kvnode itself rather
// than Pebble: a synced write whose fsync kvnode waits for separately
// (pebble.DB.ApplyNoSyncWait, then Batch.SyncWait). It does not return.
func (e *Engine) FailStop(err error) {
	quietLogger{}.Fatalf("pebble: fatal commit error: %v", err)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...)
}

// Fatalf is Pebble's reaction to an error it cannot continue from, such as
// a failed write of its log. The node stops at once (fail-stop): every write
// it acknowledged was synced before, and the Raft log replays the rest when
// the node restarts, so stopping is safe and continuing is not.
func (quietLogger) Fatalf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	fmt.Fprintf(os.Stderr, "pebble: fatal: %s\n", msg)
	switch {
	case strings.Contains(msg, "no space left on device"):
		fmt.Fprintln(os.Stderr, "ERROR: the store's disk is full; this node stopped to protect its data")
		fmt.Fprintln(os.Stderr, "HINT: free space on the disk that holds --store (or move the store to a bigger disk), then restart the node; every acknowledged write is safe")
	case strings.Contains(msg, "read-only file system") || strings.Contains(msg, "permission denied"):
		fmt.Fprintln(os.Stderr, "ERROR: the store can no longer be written; this node stopped to protect its data")
		fmt.Fprintln(os.Stderr, "HINT: make the disk that holds --store writable again, then restart the node")
	default:
		fmt.Fprintln(os.Stderr, "ERROR: the storage engine hit an error it cannot continue from; this node stopped to protect its data")
		fmt.Fprintln(os.Stderr, "HINT: check the disk that holds --store, then restart the node; if it fails again, decommission it and add a new node")
	}
	os.Exit(2)
}

// Ident is the store's identity, written once when the node joins a cluster
// (or bootstraps one) and checked at every start.
type Ident struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    nodeid.ID `json:"node_id"`
	// ClusterVersion is the active cluster version this node last
	// persisted; it is written before the node acts on a new version.
	ClusterVersion string `json:"cluster_version"`
}

var identKey = []byte{PrefixRaft, 'i', 'd', 'e', 'n', 't'}

// ReadIdent returns the store's identity, or ok=false for a fresh store.
func (e *Engine) ReadIdent() (Ident, bool, error) {
	v, closer, err := e.DB.Get(identKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return Ident{}, false, nil
	}
	if err != nil {
		return Ident{}, false, errors.Wrap(err, "reading store identity")
	}
	defer closer.Close()
	var id Ident
	if err := json.Unmarshal(v, &id); err != nil {
		return Ident{}, false, errors.Wrapf(err, "store identity in %s is corrupt", e.Dir)
	}
	return id, true, nil
}

// IdentRecord returns the engine key and value of an identity record, for
// writing it in the same batch as other bootstrap state.
func IdentRecord(id Ident) (key, value []byte) {
	b, _ := json.Marshal(id)
	return identKey, b
}

// WriteIdent durably records the store's identity.
func (e *Engine) WriteIdent(id Ident) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return errors.Wrap(e.DB.Set(identKey, b, pebble.Sync), "writing store identity")
}

// Local is the node-local (unreplicated) key-value view under PrefixLocal.
// Every Put is synced before it returns.
type Local struct{ e *Engine }

// Local returns the node-local view of the engine.
func (e *Engine) Local() Local { return Local{e: e} }

func localKey(k []byte) []byte { return append([]byte{PrefixLocal}, k...) }

// Get reads a local key.
func (l Local) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := l.e.DB.Get(localKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Put durably writes a local key.
func (l Local) Put(key, value []byte) error {
	return l.e.DB.Set(localKey(key), value, pebble.Sync)
}

// Delete durably removes a local key.
func (l Local) Delete(key []byte) error {
	return l.e.DB.Delete(localKey(key), pebble.Sync)
}

// Scan returns every local key with the given prefix, prefix included in the
// returned keys.
func (l Local) Scan(prefix []byte) ([]kvpb.KeyValue, error) {
	lo := localKey(prefix)
	it, err := l.e.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: PrefixEnd(lo)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []kvpb.KeyValue
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, kvpb.KeyValue{
			Key:   append([]byte(nil), it.Key()[1:]...),
			Value: append([]byte(nil), it.Value()...),
		})
	}
	return out, it.Error()
}

// PrefixEnd returns the smallest key greater than every key with prefix p
// (nil if there is none).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// ErrClosed is returned by a read of an engine that was closed.
var ErrClosed = errors.New("the store is closed")

// EstimateReplicatedSize is Pebble's estimate of the bytes on disk that the
// replicated keys in [start, end) take (keys as the replicated state names
// them, without the engine's prefix): the sstables that overlap the span,
// those that straddle one of its ends in proportion. The memtable is not
// counted, so writes not yet flushed count for nothing until a flush.
func (e *Engine) EstimateReplicatedSize(start, end []byte) (uint64, error) {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return 0, ErrClosed
	}
	lo := append([]byte{PrefixReplicated}, start...)
	hi := append([]byte{PrefixReplicated}, end...)
	return e.DB.EstimateDiskUsage(lo, hi)
}
