package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
)

func TestSecondOpenIsRefusedWithPID(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") ||
		!strings.Contains(err.Error(), "pid") {
		t.Fatalf("second open: %v", err)
	}
}

func TestIdentAndLocalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.ReadIdent(); ok || err != nil {
		t.Fatalf("fresh store has identity: %v %v", ok, err)
	}
	want := Ident{ClusterID: "c", NodeID: 3, ClusterVersion: "1.1"}
	if err := e.WriteIdent(want); err != nil {
		t.Fatal(err)
	}
	l := e.Local()
	if err := l.Put([]byte("a/1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := l.Put([]byte("b/1"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, ok, err := e.ReadIdent()
	if err != nil || !ok || got != want {
		t.Fatalf("ident after reopen: %+v %v %v", got, ok, err)
	}
	kvs, err := e.Local().Scan([]byte("a/"))
	if err != nil || len(kvs) != 1 || string(kvs[0].Key) != "a/1" {
		t.Fatalf("local scan: %v %v", kvs, err)
	}
}

func TestReadOnlyStoreDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("read-only store: %v", err)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a": "b", "a\xff": "b", "\xff\xff": ""} {
		if got := string(PrefixEnd([]byte(in))); got != want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEstimateReplicatedSize: the estimate of a span of replicated keys
// counts what was flushed into it, in the replicated key space only (not
// the same keys under another prefix), and nothing for a span left empty;
// a closed engine refuses.
func TestEstimateReplicatedSize(t *testing.T) {
	e, err := Open(t.TempDir(), Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("v", 1000))
	// The keys under the replicated prefix, then the same keys outside it
	// (which must not count), each flushed into its own sstable.
	for _, prefix := range []byte{PrefixReplicated, PrefixLocal} {
		b := e.DB.NewBatch()
		for i := 0; i < 2000; i++ {
			if err := b.Set([]byte{prefix, 'a', byte(i >> 8), byte(i)}, value, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(nil); err != nil {
			t.Fatal(err)
		}
		if err := e.DB.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	in, err := e.EstimateReplicatedSize([]byte("a"), []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.EstimateReplicatedSize([]byte("b"), []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	// 2 MB of values, compressed by Pebble (a repeated byte compresses
	// well) but never to nothing.
	if in == 0 || out != 0 || in > 2000*1100 {
		t.Fatalf("estimate of the written span %d, of an empty one %d", in, out)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EstimateReplicatedSize([]byte("a"), []byte("b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestBlockCacheKeepsBlocksBesideAFullMemtable reads a table in SSTables
// twice with a full-sized memtable open, whose size Pebble reserves in the
// block cache: the second read must find its blocks in the cache. With a
// cache no larger than the memtable it kept none (memTableSize).
func TestBlockCacheKeepsBlocksBesideAFullMemtable(t *testing.T) {
	e, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	value := []byte(strings.Repeat("v", 1000))
	b := e.DB.NewBatch()
	for i := 0; i < 2000; i++ {
		if err := b.Set([]byte{PrefixReplicated, 'a', byte(i >> 8), byte(i)}, value, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Flush(); err != nil {
		t.Fatal(err)
	}
	// Pebble opens each memtable twice the size of the last one filled, up
	// to memTableSize: fill them (under another prefix) until one of that
	// size is open.
	big := make([]byte, 1<<20)
	for i := 0; e.DB.Metrics().MemTable.Size < memTableSize; i++ {
		if i == 300 {
			t.Fatalf("memtables of %d bytes after 300 MiB written", e.DB.Metrics().MemTable.Size)
		}
		if err := e.DB.Set([]byte{PrefixLocal, byte(i >> 8), byte(i)}, big, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	scan := func() {
		it, err := e.DB.NewIter(&pebble.IterOptions{LowerBound: []byte{PrefixReplicated}, UpperBound: []byte{PrefixReplicated + 1}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for valid := it.First(); valid; valid = it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if n != 2000 {
			t.Fatalf("scanned %d keys, want 2000", n)
		}
	}
	scan()
	before := e.DB.Metrics().BlockCache
	scan()
	after := e.DB.Metrics().BlockCache
	if before.Size == 0 || after.Hits-before.Hits == 0 || after.Misses != before.Misses {
		t.Fatalf("block cache: %d bytes after the first scan; the second scan hit %d times and missed %d times",
			before.Size, after.Hits-before.Hits, after.Misses-before.Misses)
	}
}
