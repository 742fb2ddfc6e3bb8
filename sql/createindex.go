package sql

// CREATE INDEX on a table that may hold rows and take writes meanwhile, and
// DROP INDEX (release 2.1), built on the table's schema fence
// (schemachange.go) in F1's order, as CockroachDB does:
//
//  1. Write-only: a descriptor with the index marked WriteOnly and a higher
//     fence is committed, and the fence key moved to it. From that log
//     position every successful write maintains the index: a writer with
//     an older descriptor fails on the fence and plans again. No read uses
//     the index yet. (F1 needs a delete-only state before this one because
//     two descriptor versions may write at once; the fence allows one.)
//  2. Backfill: the rows are read in batches of backfillBatch, and each
//     batch's entries are written in one atomic batch that also checks,
//     for every row read, that it still holds the value read (OpCheck).
//     A row changed or deleted since the read fails the batch, which is
//     read again; a row written since has its entry from its writer. A
//     unique index's entry is a conditional put: one found pointing at the
//     same row was written by that row's writer; one pointing at another
//     row is a duplicate (23505), and the index is taken out again.
//  3. Public: the descriptor without WriteOnly is committed; reads may use
//     the index from then on.
//
// The build is a job (SHOW JOBS): the write-only index carries its
// coordinator, a lease the coordinator renews, and how far it got. A
// coordinator that dies in step 2 leaves the index write-only: kept up to
// date by every write, used by no read; once the lease expires, the data
// group's leader takes the build over and finishes it (ResumeSchemaChanges;
// the backfill is idempotent). Running the same CREATE INDEX again waits for
// the build; DROP INDEX removes it.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
)

const (
	backfillBatch    = 500
	backfillAttempts = 50
)

// indexesRefused is the error of index DDL before 2.1.
func (e *Executor) indexesRefused(what string) error {
	active := "an older version"
	if e.cfg.Versions != nil {
		active = e.cfg.Versions.ActiveVersion().String()
	}
	return pgerror.WithHintf(
		unsupported("%s needs cluster version %s; the cluster is at %s", what, clusterversion.V2_1, active),
		"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s')", clusterversion.V2_1)
}

// defaultIndexName is PostgreSQL's: table_col1_col2_idx, or _key for a
// unique one.
func defaultIndexName(table string, cols []string, unique bool) string {
	suffix := "idx"
	if unique {
		suffix = "key"
	}
	return table + "_" + strings.Join(cols, "_") + "_" + suffix
}

// findIndex returns the table of database db holding an index named name.
func (e *Executor) findIndex(db, name string) (*catalog.TableDescriptor, int) {
	for _, t := range e.catalog.TablesIn(db) {
		for i := range t.Indexes {
			if t.Indexes[i].Name == name {
				return t, i
			}
		}
	}
	return nil, -1
}

// newIndex builds the descriptor of an index on desc; it checks the name
// against every relation of the database.
func (e *Executor) newIndex(db string, desc *catalog.TableDescriptor, name string, unique bool, cols, storing []string) (catalog.IndexDescriptor, error) {
	if name == "" {
		name = defaultIndexName(desc.Name, cols, unique)
	}
	if t, _ := e.findIndex(db, name); t != nil || name == desc.PrimaryKeyName() {
		return catalog.IndexDescriptor{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", name)
	}
	if _, ok := e.catalog.GetTable(db, name); ok {
		return catalog.IndexDescriptor{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", name)
	}
	for _, ix := range desc.Indexes {
		if ix.Name == name {
			return catalog.IndexDescriptor{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", name)
		}
	}
	ix := catalog.IndexDescriptor{Name: name, Unique: unique}
	resolve := func(c string) (int32, error) {
		i := desc.ColumnIndex(c)
		if i < 0 || desc.Columns[i].Hidden && !strings.HasPrefix(c, "rowid") {
			return 0, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q does not exist", c)
		}
		return desc.Columns[i].ID, nil
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c] {
			return ix, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q appears twice in index %q", c, name)
		}
		seen[c] = true
		id, err := resolve(c)
		if err != nil {
			return ix, err
		}
		if t := desc.Columns[desc.ColumnIndexByID(id)].Type; !rowenc.KeyColumnAllowed(t) {
			return ix, pgerror.WithHintf(unsupported("column %q of type %s cannot be indexed", c, t),
				"INTERVAL and JSONB values have no key order; index another column")
		}
		ix.Columns = append(ix.Columns, id)
	}
	for _, c := range storing {
		id, err := resolve(c)
		if err != nil {
			return ix, err
		}
		ix.Storing = append(ix.Storing, id)
	}
	ix.ID = max(desc.NextIndexID, 1)
	return ix, nil
}

// createIndex runs CREATE INDEX; it returns the table's final descriptor,
// or nothing when IF NOT EXISTS found the index.
func (e *Executor) createIndex(ctx context.Context, s *parser.CreateIndex) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	if !e.fencesActive() {
		return nil, nil, e.indexesRefused("CREATE INDEX")
	}
	db, name, err := e.userTableName(ctx, s.Table, "create an index on")
	if err != nil {
		return nil, nil, err
	}
	cur, ok := e.catalog.GetTable(db, name)
	if !ok {
		return nil, nil, undefinedTable(name)
	}
	if cur.Hold != nil {
		return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectInUse,
			"table %q is being rewritten by %s", name, cur.Hold.Statement), "run CREATE INDEX once it is done")
	}
	idxName := s.Name
	if idxName == "" {
		idxName = defaultIndexName(name, s.Columns, s.Unique)
	}
	if t, i := e.findIndex(db, idxName); t != nil {
		if !t.Indexes[i].WriteOnly || t.ID != cur.ID {
			if s.IfNotExists {
				return nil, []pgwire.Notice{noticef("relation %q already exists, skipping", idxName)}, nil
			}
			return nil, nil, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", idxName)
		}
		// A build under way or interrupted: wait for it, or take it over.
		return one3(e.awaitBuild(ctx, t, t.Indexes[i].ID))
	}
	ix, err := e.newIndex(db, cur, idxName, s.Unique, s.Columns, s.Storing)
	if err != nil {
		return nil, nil, err
	}
	ix.WriteOnly = true
	stmt := s.String()
	now := e.catalog.Clock().Now().WallTime
	ix.Build = &catalog.IndexBuild{Statement: stmt, Coordinator: e.cfg.NodeID(), Until: e.holdUntil(), Started: now, Modified: now}
	written, err := e.commitSchema(ctx, stmt, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(cur.Key())
		if !ok || c.ID != cur.ID || c.Version != cur.Version {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: table %q changed while CREATE INDEX started", name), "run it again")
		}
		d := c.Clone()
		d.Indexes = append(d.Indexes, ix)
		d.NextIndexID = ix.ID + 1
		d.Version++
		d.WriteFence++
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := e.raiseFence(ctx, written.ID, cur.WriteFence, written.WriteFence); err != nil {
		return nil, nil, err
	}
	if hook := e.cfg.TestingIndexWriteOnly; hook != nil {
		hook(ctx)
	}
	d, err := e.backfillAndPublish(ctx, written, ix.ID)
	if errors.Is(err, errBuildLost) {
		err = pgerror.WithHintf(pgerror.WithCode(errors.Wrapf(err, "CREATE INDEX %s stopped here", parser.QuotedIdent(ix.Name)),
			pgerror.CodeObjectInUse), "if another node took the build over, it goes on there: SHOW JOBS shows it, and running the statement again waits for it")
	}
	return one3(d, err)
}

// noticef is a NOTICE, as PostgreSQL sends for an IF [NOT] EXISTS that
// skipped.
func noticef(format string, args ...any) pgwire.Notice {
	return pgwire.Notice{Severity: "NOTICE", Code: "00000", Message: fmt.Sprintf(format, args...)}
}

func one3(d *catalog.TableDescriptor, err error) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	ds, err := one(d, err)
	return ds, nil, err
}

// backfillAndPublish runs steps 2 and 3 for the write-only index id of
// desc, whose build this node holds; a duplicate takes the index out again.
func (e *Executor) backfillAndPublish(ctx context.Context, desc *catalog.TableDescriptor, id int32) (*catalog.TableDescriptor, error) {
	name := fmt.Sprintf("index %d of %s", id, desc.Name)
	if err := e.backfill(ctx, desc, id); err != nil {
		if pgerror.GetCode(err) == pgerror.CodeUniqueViolation {
			if derr := e.removeIndex(ctx, desc, id); derr != nil {
				return nil, errors.WithSecondaryError(err, derr)
			}
		}
		return nil, err
	}
	return e.commitSchema(ctx, "publish "+name, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(desc.Key())
		if !ok || c.ID != desc.ID {
			return nil, pgerror.Newf(pgerror.CodeSerializationFailure, "restart transaction: table %q was dropped while its index was built", desc.Name)
		}
		d := c.Clone()
		for i := range d.Indexes {
			if d.Indexes[i].ID == id {
				if !d.Indexes[i].WriteOnly {
					return nil, nil // published by another run of the statement
				}
				d.Indexes[i].WriteOnly = false
				d.Indexes[i].Build = nil
				d.Version++
				d.ModTime = e.catalog.Clock().Now()
				return d, nil
			}
		}
		return nil, pgerror.Newf(pgerror.CodeSerializationFailure, "restart transaction: %s was dropped while it was built", name)
	})
}

// errBuildLost: another node took over the index's build.
var errBuildLost = errors.New("the index build was taken over")

// updateBuild commits a change to the build of index id of the table with
// key key: the index must still be write-only, and its build held by this
// node (unless take: then its lease must have expired).
func (e *Executor) updateBuild(ctx context.Context, key string, tableID int64, id int32, take bool, change func(*catalog.IndexBuild)) (*catalog.TableDescriptor, error) {
	self := e.cfg.NodeID()
	return e.commitSchema(ctx, "update an index build", func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(key)
		if !ok || c.ID != tableID {
			return nil, errors.Wrap(errBuildLost, "the table was dropped")
		}
		d := c.Clone()
		for i := range d.Indexes {
			ix := &d.Indexes[i]
			if ix.ID != id {
				continue
			}
			if !ix.WriteOnly {
				return nil, nil // built
			}
			if ix.Build == nil {
				ix.Build = &catalog.IndexBuild{Statement: "CREATE INDEX " + ix.Name}
			}
			now := e.catalog.Clock().Now().WallTime
			switch {
			case take && ix.Build.Until > now && ix.Build.Coordinator != self:
				return nil, nil // still held
			case !take && ix.Build.Coordinator != self:
				return nil, errors.Wrapf(errBuildLost, "node %d builds it now", ix.Build.Coordinator)
			}
			ix.Build.Coordinator = self
			ix.Build.Until = e.holdUntil()
			ix.Build.Modified = now
			if change != nil {
				change(ix.Build)
			}
			d.Version++
			d.ModTime = e.catalog.Clock().Now()
			return d, nil
		}
		return nil, errors.Wrap(errBuildLost, "the index was dropped")
	})
}

// awaitBuild is CREATE INDEX for an index another run already started: it
// waits while that build's coordinator holds it, takes it over when its
// lease expires, and returns once the index is public.
func (e *Executor) awaitBuild(ctx context.Context, desc *catalog.TableDescriptor, id int32) (*catalog.TableDescriptor, error) {
	for {
		c, ok := e.catalog.Get(desc.Key())
		if !ok || c.ID != desc.ID {
			return nil, undefinedTable(desc.Name)
		}
		var ix *catalog.IndexDescriptor
		for i := range c.Indexes {
			if c.Indexes[i].ID == id {
				ix = &c.Indexes[i]
			}
		}
		switch {
		case ix == nil:
			return nil, pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: the index was taken out while this statement waited for its build (a duplicate, or DROP INDEX)")
		case !ix.WriteOnly:
			return c, nil
		case ix.Build == nil || ix.Build.Until < e.catalog.Clock().Now().WallTime:
			held, err := e.updateBuild(ctx, desc.Key(), desc.ID, id, true, nil)
			if err != nil {
				return nil, err
			}
			if held != nil {
				return e.backfillAndPublish(ctx, held, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil, kvError(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ResumeSchemaChanges takes over the index builds whose coordinator is gone
// (their lease expired) and runs them to the end. The server calls it
// periodically on the data group's leader; it returns when there is
// nothing to take over.
func (e *Executor) ResumeSchemaChanges(ctx context.Context) error {
	if !e.fencesActive() || !e.ddlMu.TryLock() {
		return nil
	}
	defer e.ddlMu.Unlock()
	now := e.catalog.Clock().Now().WallTime
	for _, t := range e.catalog.Tables() {
		for _, ix := range t.Indexes {
			if !ix.WriteOnly || ix.Build != nil && ix.Build.Until > now {
				continue
			}
			held, err := e.updateBuild(ctx, t.Key(), t.ID, ix.ID, true, nil)
			if err != nil || held == nil {
				continue
			}
			if _, err := e.backfillAndPublish(ctx, held, ix.ID); err != nil {
				return errors.Wrapf(err, "resuming the build of index %q of %q", ix.Name, t.Name)
			}
		}
	}
	return nil
}

// SchemaJob is an index build as SHOW JOBS shows it.
type SchemaJob struct {
	ID                int64
	Description       string
	Status            string
	Done              int64
	Coordinator       nodeid.ID
	Created, Modified int64
}

// SchemaChangeJobs lists the index builds under way.
func (e *Executor) SchemaChangeJobs() []SchemaJob {
	var out []SchemaJob
	now := e.catalog.Clock().Now().WallTime
	for _, t := range e.catalog.Tables() {
		for _, ix := range t.Indexes {
			if !ix.WriteOnly || ix.Build == nil {
				continue
			}
			status := "running"
			if ix.Build.Until < now {
				status = "paused: its coordinator is gone; the leader takes it over"
			}
			out = append(out, SchemaJob{ID: t.ID*1000 + int64(ix.ID),
				Description: fmt.Sprintf("%s (%d rows backfilled)", ix.Build.Statement, ix.Build.Done),
				Status:      status, Done: ix.Build.Done, Coordinator: ix.Build.Coordinator,
				Created: ix.Build.Started, Modified: ix.Build.Modified})
		}
	}
	return out
}

// backfill writes the entries of every row of the table into write-only
// index id, from where its build left off, renewing the build's lease and
// recording its progress every third of the lease.
func (e *Executor) backfill(ctx context.Context, desc *catalog.TableDescriptor, id int32) error {
	start, end := rowenc.TableSpan(desc.ID)
	var done int64
	for _, ix := range desc.Indexes {
		if ix.ID == id && ix.Build != nil && len(ix.Build.Resume) > 0 {
			start, done = ix.Build.Resume, ix.Build.Done
		}
	}
	ti, ii, err := e.indexTI(desc, id)
	if err != nil {
		return err
	}
	renewAt := time.Now().Add(e.holdTTL() / 3)
	for {
		batch, err := e.cfg.DB.Scan(ctx, start, end, backfillBatch, false)
		if err != nil {
			return kvError(err)
		}
		if len(batch) == 0 {
			return nil
		}
		err = e.backfillBatch(ctx, ti, ii, batch)
		var sm *schemaMovedError
		if errors.As(err, &sm) {
			// Another schema change moved the table's fence: go on with
			// the table's new descriptor.
			if err := e.awaitSchema(ctx, sm); err != nil {
				return err
			}
			cur, ok := e.catalog.Get(desc.Key())
			if !ok || cur.ID != desc.ID {
				return undefinedTable(desc.Name)
			}
			if ti, ii, err = e.indexTI(cur, id); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		done += int64(len(batch))
		if len(batch) < backfillBatch {
			return nil
		}
		start = append(append([]byte(nil), batch[len(batch)-1].Key...), 0)
		if time.Now().After(renewAt) {
			resume := start
			if _, err := e.updateBuild(ctx, desc.Key(), desc.ID, id, false, func(b *catalog.IndexBuild) {
				b.Done, b.Resume = done, resume
			}); err != nil {
				return err
			}
			renewAt = time.Now().Add(e.holdTTL() / 3)
		}
	}
}

// indexTI builds the tableInfo of d and finds its index id.
func (e *Executor) indexTI(d *catalog.TableDescriptor, id int32) (*tableInfo, *indexInfo, error) {
	ti, err := buildTableInfo(d)
	if err != nil {
		return nil, nil, err
	}
	for i := range ti.indexes {
		if ti.indexes[i].desc.ID == id {
			if !ti.indexes[i].desc.WriteOnly {
				return nil, nil, errors.Wrap(errBuildLost, "the index is built already")
			}
			return ti, &ti.indexes[i], nil
		}
	}
	return nil, nil, errors.Wrap(errBuildLost, "the index was dropped")
}

// backfillBatch writes one batch's entries, re-reading the rows whenever
// one of them changed under it.
func (e *Executor) backfillBatch(ctx context.Context, ti *tableInfo, ii *indexInfo, batch []kvpb.KeyValue) error {
	skip := map[string]bool{} // unique entries already written by their row's writer
	for attempt := 0; attempt < backfillAttempts; attempt++ {
		var checks, puts []kvpb.Op
		for _, kv := range batch {
			row, _, err := ti.layout.Decode(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			checks = append(checks, kvpb.Op{Kind: kvpb.OpCheck, Key: kv.Key, Expected: kv.Value})
			k, unique, err := ii.entry(ti.desc.ID, kv.Key, row)
			if err != nil {
				return err
			}
			switch {
			case skip[string(k)]:
			case unique:
				puts = append(puts, kvpb.Op{Kind: kvpb.OpCPut, Key: k, Value: kv.Key, ExpectAbsent: true})
			default:
				puts = append(puts, kvpb.Op{Kind: kvpb.OpPut, Key: k, Value: kv.Key})
			}
		}
		err := e.writeTable(ctx, ti, append(checks, puts...))
		var cf *kvpb.ConditionFailedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &cf) && cf.Key[0] == keys.IndexDataPrefix:
			// Unreachable: writeTable reports these as 23505.
			return kvError(err)
		case errors.As(err, &cf):
			// A row changed since it was read: read the batch again.
			first, last := batch[0].Key, batch[len(batch)-1].Key
			if batch, err = e.cfg.DB.Scan(ctx, first, append(append([]byte(nil), last...), 0), 0, false); err != nil {
				return kvError(err)
			}
			if len(batch) == 0 {
				return nil
			}
		case pgerror.GetCode(err) == pgerror.CodeUniqueViolation:
			// Is the entry found this row's own, written by its writer?
			k, owner, ok := e.conflictingEntry(ctx, ti, ii, batch)
			if !ok {
				return err
			}
			if owner {
				skip[string(k)] = true
				continue
			}
			return err
		default:
			return err
		}
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
		"restart transaction: rows of %q kept changing while index %q was built", ti.desc.Name, ii.desc.Name),
		"run CREATE INDEX again: it resumes the index")
}

// conflictingEntry finds a unique entry of the batch that exists already,
// and says whether it points at the batch's own row for it.
func (e *Executor) conflictingEntry(ctx context.Context, ti *tableInfo, ii *indexInfo, batch []kvpb.KeyValue) ([]byte, bool, bool) {
	for _, kv := range batch {
		row, _, err := ti.layout.Decode(kv.Key, kv.Value)
		if err != nil {
			return nil, false, false
		}
		k, unique, err := ii.entry(ti.desc.ID, kv.Key, row)
		if err != nil || !unique {
			continue
		}
		v, found, err := e.cfg.DB.Get(ctx, k)
		if err != nil || !found {
			continue
		}
		if bytes.Equal(v, kv.Key) {
			return k, true, true
		}
		return k, false, true
	}
	return nil, false, false
}

// removeIndex takes index id out of the table: a descriptor without it and
// with a higher fence (so no writer keeps writing its entries), then its
// entries deleted.
func (e *Executor) removeIndex(ctx context.Context, desc *catalog.TableDescriptor, id int32) error {
	var from uint64
	removed, err := e.commitSchema(ctx, fmt.Sprintf("remove index %d of %s", id, desc.Name), func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(desc.Key())
		if !ok || c.ID != desc.ID {
			return nil, nil
		}
		d := c.Clone()
		d.Indexes = d.Indexes[:0]
		for _, ix := range c.Indexes {
			if ix.ID != id {
				d.Indexes = append(d.Indexes, ix)
			}
		}
		if len(d.Indexes) == len(c.Indexes) {
			return nil, nil
		}
		from = c.WriteFence
		d.Version++
		d.WriteFence++
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	if err != nil || removed == nil {
		return err
	}
	if err := e.raiseFence(ctx, removed.ID, from, removed.WriteFence); err != nil {
		return err
	}
	start, end := keys.IndexSpan(removed.ID, id)
	return kvError(e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}}))
}

// dropIndexes runs DROP INDEX: each index is removed in turn.
func (e *Executor) dropIndexes(ctx context.Context, s *parser.DropIndex) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	if !e.fencesActive() {
		return nil, nil, e.indexesRefused("DROP INDEX")
	}
	db := currentDB(ctx)
	type target struct {
		desc *catalog.TableDescriptor
		id   int32
	}
	var targets []target
	var notices []pgwire.Notice
	for _, n := range s.Names {
		var t *catalog.TableDescriptor
		i := -1
		if n.Table != nil {
			tdb, tname, err := e.userTableName(ctx, *n.Table, "drop an index of")
			if err != nil {
				return nil, nil, err
			}
			if d, ok := e.catalog.GetTable(tdb, tname); ok {
				for j := range d.Indexes {
					if d.Indexes[j].Name == n.Name {
						t, i = d, j
					}
				}
			}
		} else {
			t, i = e.findIndex(db, n.Name)
		}
		if t == nil {
			if s.IfExists {
				notices = append(notices, noticef("index %q does not exist, skipping", n.Name))
				continue
			}
			return nil, nil, pgerror.Newf(pgerror.CodeUndefinedObject, "index %q does not exist", n.Name)
		}
		if err := e.checkIndexUnreferenced(t, &t.Indexes[i]); err != nil {
			return nil, nil, err
		}
		targets = append(targets, target{desc: t, id: t.Indexes[i].ID})
	}
	var changed []catalog.TableDescriptor
	for _, t := range targets {
		if err := e.removeIndex(ctx, t.desc, t.id); err != nil {
			return changed, notices, err
		}
		if d, ok := e.catalog.Get(t.desc.Key()); ok {
			changed = append(changed, *d)
		}
	}
	return changed, notices, nil
}
