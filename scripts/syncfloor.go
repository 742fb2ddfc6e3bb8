//go:build ignore

// syncfloor.go measures what a replicated write's log fsync costs when the
// nodes of a cluster share one disk (issue 22: the physical floor of one
// client's upsert on three nodes, docs/benchmarks.md "Where one upsert's time
// goes"). Each of -writers goroutines owns a file in -dir and, -n times in
// lock step with the others, writes -size bytes and fdatasyncs the file; the
// program prints the median fdatasync latency in microseconds. With -append
// (the default) each write extends its file, as a Pebble WAL that has not
// been recycled is extended, so every fdatasync also writes the file's new
// size; with -append=false each write overwrites the start of a file
// written once beforehand, as pg_test_fsync's "one 8kB write" test does.
//
//	go run scripts/syncfloor.go -writers 3 -append=true
//
// It is a file of its own, outside every package (the ignore build tag), so
// that it runs with nothing but the Go toolchain.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

func main() {
	writers := flag.Int("writers", 3, "concurrent writers, each with a file of its own (one per node)")
	n := flag.Int("n", 2000, "fdatasyncs per writer")
	size := flag.Int("size", 512, "bytes written before each fdatasync")
	appendMode := flag.Bool("append", true, "extend the file at each write (else overwrite its start)")
	dir := flag.String("dir", os.TempDir(), "directory for the files, on the disk to measure")
	flag.Parse()
	if *writers < 1 || *n < 1 || *size < 1 {
		log.Fatalf("syncfloor: -writers, -n and -size must be at least 1, got %d, %d and %d", *writers, *n, *size)
	}
	tmp, err := os.MkdirTemp(*dir, "syncfloor")
	if err != nil {
		log.Fatalf("syncfloor: %v (-dir names the directory to measure in)", err)
	}
	defer os.RemoveAll(tmp)
	buf := make([]byte, *size)
	files := make([]*os.File, *writers)
	for i := range files {
		f, err := os.Create(filepath.Join(tmp, fmt.Sprintf("w%d", i)))
		if err != nil {
			log.Fatalf("syncfloor: %v", err)
		}
		defer f.Close()
		if !*appendMode {
			// Written and synced once, so that later writes change
			// neither the file's size nor its blocks' allocation.
			if _, err := f.Write(make([]byte, 1<<20)); err != nil {
				log.Fatalf("syncfloor: %v", err)
			}
			if err := f.Sync(); err != nil {
				log.Fatalf("syncfloor: %v", err)
			}
		}
		files[i] = f
	}
	took := make([][]time.Duration, *writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < *n; j++ {
				var err error
				if *appendMode {
					_, err = f.Write(buf)
				} else {
					_, err = f.WriteAt(buf, 0)
				}
				if err != nil {
					log.Fatalf("syncfloor: write: %v", err)
				}
				t := time.Now()
				if err := fdatasync(f); err != nil {
					log.Fatalf("syncfloor: fdatasync: %v", err)
				}
				took[i] = append(took[i], time.Since(t))
			}
		}()
	}
	close(start)
	wg.Wait()
	all := slices.Concat(took...)
	slices.Sort(all)
	fmt.Printf("%.0f\n", float64(all[len(all)/2].Nanoseconds())/1e3)
}

// fdatasync is what Pebble's WAL and PostgreSQL (wal_sync_method=fdatasync)
// call; os.File.Sync would call fsync.
func fdatasync(f *os.File) error {
	return syscall.Fdatasync(int(f.Fd()))
}
