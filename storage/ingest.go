package storage

// Tables built outside the store and ingested into it in one step (the
// publish of an atomic COPY, kv/copy.go; txn/DESIGN.md, "An atomic COPY
// outside a transaction").

import (
	"strconv"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/sstable"
)

// ingestDir is the directory of the store, beside Pebble's own files, where
// tables to ingest are written. Pebble links them into the store; what is
// left here after a crash is garbage (ClearIngestDir).
const ingestDir = "ingest"

// SST is a table being written for Ingest.
type SST struct {
	*sstable.Writer
	Path string
	done bool
}

// CreateSST creates a table file in the store's ingest directory, on the
// store's own file system, written as Pebble writes the store's tables
// (the table format its format version allows, the Bloom filter of
// bloomFilteredLevels). Keys must be added in increasing order (Set), range
// deletions by increasing start key; Close the writer before ingesting.
// name must be unique among the files being built.
func (e *Engine) CreateSST(name string) (*SST, error) {
	dir := e.fs.PathJoin(e.Dir, ingestDir)
	if err := e.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, errors.Wrapf(err, "creating %s", dir)
	}
	path := e.fs.PathJoin(dir, name+".sst")
	f, err := e.fs.Create(path)
	if err != nil {
		return nil, errors.Wrapf(err, "creating %s", path)
	}
	wo := e.opts.MakeWriterOptions(0, e.DB.FormatMajorVersion().MaxTableFormat())
	return &SST{Writer: sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo), Path: path}, nil
}

// Finish closes the table (syncing it) unless done already.
func (s *SST) Finish() error {
	if s.done {
		return nil
	}
	s.done = true
	return s.Writer.Close()
}

// Ingest adds the finished tables to the store in one atomic step: one
// sequence number for all of them, one version edit (pebble.DB.Ingest; the
// tables must not overlap each other). The files are removed afterwards,
// ingested or not.
func (e *Engine) Ingest(ssts []*SST) error {
	paths := make([]string, 0, len(ssts))
	var err error
	for _, s := range ssts {
		err = errors.CombineErrors(err, s.Finish())
		paths = append(paths, s.Path)
	}
	if err == nil {
		err = e.DB.Ingest(paths)
	}
	for _, p := range paths {
		_ = e.fs.Remove(p)
	}
	return errors.Wrap(err, "ingesting tables")
}

// StartFlush begins flushing the memtables in the background and returns at
// once. Ingest must flush, and wait for, every memtable holding a key inside
// the span of a table it ingests (the store's format has no flushable
// ingest): a caller that knows it will ingest over recent writes starts the
// flush early, so that it runs while the tables are written instead of
// inside Ingest. Ingest waits for a flush still running; the flush changes
// nothing anyone reads.
func (e *Engine) StartFlush() error {
	_, err := e.DB.AsyncFlush()
	return errors.Wrap(err, "flushing the memtables")
}

// Discard abandons tables being written and removes their files.
func (e *Engine) Discard(ssts []*SST) {
	for _, s := range ssts {
		_ = s.Finish()
		_ = e.fs.Remove(s.Path)
	}
}

// ClearIngestDir removes what an ingest interrupted by a crash left in the
// ingest directory.
func (e *Engine) ClearIngestDir() error {
	dir := e.fs.PathJoin(e.Dir, ingestDir)
	names, err := e.fs.List(dir)
	if err != nil {
		return nil // no directory: nothing left
	}
	for _, n := range names {
		if err := e.fs.Remove(e.fs.PathJoin(dir, n)); err != nil {
			return errors.Wrapf(err, "removing %s", n)
		}
	}
	return nil
}

// SSTName is a file name for the i-th table of the step at index.
func SSTName(index uint64, i int) string {
	return "apply-" + strconv.FormatUint(index, 10) + "-" + strconv.Itoa(i)
}
