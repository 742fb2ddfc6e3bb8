package storage

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/kvnode/kvnode/testutil"
)

// waitSpare waits until e's spare is complete and nothing is being written.
func waitSpare(t *testing.T, e *Engine) {
	t.Helper()
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		e.spares.mu.Lock()
		defer e.spares.mu.Unlock()
		switch {
		case e.spares.ready && !e.spares.making:
			return nil
		case !e.spares.making && e.spares.err != nil:
			t.Fatalf("making a WAL spare: %v", e.spares.err)
		}
		return fmt.Errorf("no WAL spare yet (ready %v, making %v)", e.spares.ready, e.spares.making)
	})
}

// walFiles returns the sizes of the store's WAL files by name.
func walFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".log") {
			fi, err := de.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[de.Name()] = fi.Size()
		}
	}
	return out
}

// TestWALSpareBecomesTheNextLog: once a spare is ready, the next WAL Pebble
// creates (a memtable rotation) is that file, zero-filled to the spare's
// size, and the next spare is twice as large.
func TestWALSpareBecomesTheNextLog(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	waitSpare(t, e)
	before := walFiles(t, dir)
	if err := e.DB.Set([]byte{PrefixLocal, 1}, []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Flush(); err != nil { // rotates the memtable and its WAL
		t.Fatal(err)
	}
	var fresh []string
	for name, size := range walFiles(t, dir) {
		if _, ok := before[name]; !ok {
			fresh = append(fresh, fmt.Sprintf("%s:%d", name, size))
			if size != walSpareFirst {
				t.Errorf("new WAL %s has %d bytes, want the spare's %d", name, size, walSpareFirst)
			}
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("WAL files created by the flush: %v, want one", fresh)
	}
	waitSpare(t, e)
	fi, err := os.Stat(filepath.Join(dir, walSpareName))
	if err != nil || fi.Size() != 2*walSpareFirst {
		t.Fatalf("the next spare: %v, %v; want %d bytes", fi, err, 2*walSpareFirst)
	}
}

// TestWALSpareCrashImage: a store whose logs are zero-filled spares loses
// no synced write in a crash. The image of a crash is a copy of the store's
// files taken while it is open, after synced writes only (so the copy holds
// what the disk holds): the last log ends in zeroes without Pebble's EOF
// trailer, the earlier ones were closed by rotations. The copy also holds a
// half-written spare (removed at open) and a complete one (the first log of
// the reopened store).
func TestWALSpareCrashImage(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	key := func(i int) []byte { return append([]byte{PrefixReplicated}, fmt.Sprintf("k%05d", i)...) }
	const n = 2000
	waitSpare(t, e)
	for i := 0; i < n; i++ {
		if i == n/2 {
			// The memtable's rotation closes the first log (with Pebble's
			// EOF trailer) and takes the spare for the second.
			if err := e.DB.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.DB.Set(key(i), []byte(fmt.Sprintf("value %d", i)), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	waitSpare(t, e)
	logs := walFiles(t, dir)
	var last string
	for name := range logs {
		last = max(last, name)
	}
	if logs[last] != walSpareFirst {
		t.Fatalf("the last log %s has %d bytes, want the spare's %d: %v", last, logs[last], walSpareFirst, logs)
	}

	img := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if de.IsDir() || de.Name() == "kvnode.lock" {
			continue
		}
		copyFile(t, filepath.Join(dir, de.Name()), filepath.Join(img, de.Name()))
	}
	if err := os.WriteFile(filepath.Join(img, walSpareTemp), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}

	c, err := Open(img, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatalf("open the crash image: %v", err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		v, closer, err := c.DB.Get(key(i))
		if err != nil {
			t.Fatalf("key %d after the crash: %v", i, err)
		}
		if want := fmt.Sprintf("value %d", i); string(v) != want {
			t.Fatalf("key %d after the crash: %q, want %q", i, v, want)
		}
		_ = closer.Close()
	}
	if _, err := os.Stat(filepath.Join(img, walSpareTemp)); !os.IsNotExist(err) {
		t.Fatalf("the half-written spare was not removed at open: %v", err)
	}
	// The image's complete spare became its first log, and a new one is made.
	waitSpare(t, c)
	if err := c.DB.Set(key(n), []byte("after"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestWALSpareGoneFallsBack: a spare removed behind the store's back costs
// nothing but the zeroes: the next log is a plain file.
func TestWALSpareGoneFallsBack(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	waitSpare(t, e)
	if err := os.Remove(filepath.Join(dir, walSpareName)); err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Set([]byte{PrefixLocal, 1}, []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Set([]byte{PrefixLocal, 2}, []byte("y"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestWALSpareOnlyOnTheRealDisk: a store on a given file system (the crash
// harness's strict in-memory one) makes no spares.
func TestWALSpareOnlyOnTheRealDisk(t *testing.T) {
	fs := vfs.NewStrictMem()
	e, err := Open("store", Options{FS: fs, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.spares != nil {
		t.Fatal("a store on Options.FS has a WAL spare maker")
	}
	names, err := fs.List("store")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "kvnode-wal-spare") {
			t.Fatalf("spare %s on an Options.FS store", n)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
