package storage

// Zero-filled write-ahead logs: the WAL files Pebble creates on the real
// disk are written with zeroes and synced ahead of time, so that the fsync
// every Raft Ready waits for overwrites blocks the file already has instead
// of extending it.

import (
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble/vfs"
)

// The spare WAL's names in the store directory. Pebble ignores both (they
// parse as none of its file types) and never removes them.
const (
	walSpareName = "kvnode-wal-spare"     // complete: zeroed and synced
	walSpareTemp = "kvnode-wal-spare.tmp" // being written (left by a crash: removed at open)
)

// The sizes of the spares: the first is walSpareFirst, each next one twice
// the last, up to walSpareMax. Pebble's memtables ramp the same way (256 KiB
// at open, doubling up to the 64 MiB of openPebble's MemTableSize), and each
// memtable gets a WAL of its own of at most about its size; walSpareMax is
// the preallocation Pebble asks for itself (110% of MemTableSize). A store
// that writes little (most tests') zeroes a few MiB, a busy one at most
// about twice what it writes to its logs.
const (
	walSpareFirst = 2 << 20
	walSpareMax   = (64 << 20) / 10 * 11
)

// walSpareFS is the store's file system (the operating system's) with one
// change: when Pebble creates a WAL file, it gets the spare, a file already
// written with zeroes and synced (renamed to the WAL's name, as Pebble's own
// recycling of old logs does with FS.ReuseForWrite), if one is ready, and a
// goroutine starts writing the next spare.
//
// Why. Pebble's WAL is synced once per Raft Ready (the fsync every write
// waits for). An fdatasync that extends a file must also write the file's
// new size, on ext4 a second write to the device before its cache flush;
// one that overwrites blocks the file already has writes only the data
// (scripts/syncfloor.go measures both; PostgreSQL zero-fills its WAL
// segments for the same reason). Pebble recycles the logs of flushed
// memtables for this reason, but a store's first logs, and every log of a
// store that has not flushed a 64 MiB memtable yet, are new files.
//
// Why it is safe. Pebble reads a log up to its first invalid or zeroed
// chunk and treats that as the log's end (its replay does, for preallocated
// and recycled logs), and closes every log but the last with an EOF trailer
// before it creates the next, so a zeroed tail reads exactly like the
// unwritten tail of a preallocated file. The spare's zeroes are synced, and
// only then is it renamed to its complete name, so a crash leaves either a
// complete spare or a temporary file that the next open removes; the rename
// to the WAL's name is made durable by Pebble, which syncs the directory
// after creating a log. Nothing on disk changes format: an older binary
// opens the store as it is.
type walSpareFS struct {
	vfs.FS
	dir string

	mu     sync.Mutex
	ready  bool  // the spare is complete
	making bool  // a goroutine is writing the next one
	closed bool  // close was called: make no more
	next   int64 // the size of the next spare
	wg     sync.WaitGroup
	err    error // the last failure to make a spare (for tests)
}

var _ vfs.FS = (*walSpareFS)(nil)

// newWALSpareFS wraps fs for the store in dir: it removes a spare that a
// crash left half written, and keeps a complete one for the first log.
func newWALSpareFS(fs vfs.FS, dir string) *walSpareFS {
	dir = filepath.Clean(dir)
	w := &walSpareFS{FS: fs, dir: dir, next: walSpareFirst}
	_ = fs.Remove(fs.PathJoin(dir, walSpareTemp))
	if fi, err := fs.Stat(fs.PathJoin(dir, walSpareName)); err == nil && fi.Size() > 0 {
		w.ready = true
	}
	return w
}

// isWAL says whether name is one of Pebble's log files in the store
// directory (NNNNNN.log).
func (w *walSpareFS) isWAL(name string) bool {
	return strings.HasSuffix(name, ".log") && filepath.Dir(name) == w.dir
}

// Create implements vfs.FS: a WAL gets the spare if one is ready.
func (w *walSpareFS) Create(name string) (vfs.File, error) {
	if !w.isWAL(name) {
		return w.FS.Create(name)
	}
	defer w.refill()
	if f := w.takeSpare(name); f != nil {
		return f, nil
	}
	return w.FS.Create(name)
}

// takeSpare renames the spare, if one is ready, to name and opens it for
// writing from its start. No spare is being written while one is ready.
func (w *walSpareFS) takeSpare(name string) vfs.File {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ready {
		return nil
	}
	w.ready = false
	f, err := w.FS.ReuseForWrite(w.FS.PathJoin(w.dir, walSpareName), name)
	if err != nil {
		// The spare could not be taken (removed by hand?): the caller
		// creates a plain file.
		return nil
	}
	return f
}

// refill starts writing the next spare unless one is ready or being written.
func (w *walSpareFS) refill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready || w.making || w.closed {
		return
	}
	w.making = true
	size := w.next
	w.next = min(2*w.next, walSpareMax)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.makeSpare(size)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.making = false
		w.err = err
		w.ready = err == nil
		if errors.Is(err, errWALSpareNoRoom) {
			w.next = size // try the same size when the next log is created
		}
	}()
}

var (
	errWALSpareClosed = errors.New("store closing")
	errWALSpareNoRoom = errors.New("too little free space for a WAL spare")
)

// walSpareHeadroom is the free space a spare must leave on its file system:
// the spare is an optimization, and must never be what fills a disk (a node
// whose Pebble cannot write stops: quietLogger.Fatalf).
const walSpareHeadroom = 256 << 20

// makeSpare writes size bytes of zeroes to the temporary file, syncs it and
// renames it to the spare's name, if the file system has room for it and
// walSpareHeadroom besides.
func (w *walSpareFS) makeSpare(size int64) (err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(w.dir, &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < size+walSpareHeadroom {
		return errWALSpareNoRoom
	}
	tmp := w.FS.PathJoin(w.dir, walSpareTemp)
	f, err := w.FS.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = w.FS.Remove(tmp)
		}
	}()
	zeroes := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeroes)) {
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return errWALSpareClosed
		}
		if _, err := f.Write(zeroes[:min(int64(len(zeroes)), size-off)]); err != nil {
			return err
		}
	}
	if err := f.SyncData(); err != nil {
		return err
	}
	err, f = f.Close(), nil
	if err != nil {
		return err
	}
	return w.FS.Rename(tmp, w.FS.PathJoin(w.dir, walSpareName))
}

// close stops making spares and waits for the one being written (which is
// abandoned). A complete spare stays for the next open.
func (w *walSpareFS) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
}
