package sql

// DDL inside a transaction on tables that existed before it (class 2 of
// txn/DESIGN.md "DDL in a transaction"): the descriptor-only ALTER TABLE
// actions, ADD COLUMN, DROP INDEX and DROP TABLE.
//
// A changed existing table lives in the session's overlay like a table
// the transaction created, with two differences. Its first change moves
// its schema fence (schemachange.go): the transaction reads the fence key
// (it joins the read set: a schema change committed by anyone after the
// snapshot fails the COMMIT) and buffers its move one higher, or to
// fenceDropped for DROP TABLE, so that from the commit on every write
// planned with the old descriptor fails and is planned again. And at
// COMMIT its intent is the public record with the new version under Next
// (catalog.TableDescriptor.Next), which readers decide by the decision
// key as they decide a pending new table.

import (
	"context"
	"slices"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/users"
)

// changingElsewhere is the error of a change of a table another
// transaction's committed-or-pending change holds.
func changingElsewhere(name string) error {
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
		"restart transaction: another transaction is changing the schema of %q", name),
		"retry once that transaction has committed or rolled back (its COMMIT settles it within seconds)")
}

// putChange adds next, a new version of table cur as session s sees it,
// to the overlay. For a table the transaction did not create, the first
// change reads the table's fence key and buffers its move to
// next.WriteFence (set here: one higher than the public descriptor's, or
// fenceDropped when next is a tombstone); a later DROP moves it again.
func (e *Executor) putChange(ctx context.Context, s *session, cur, next *catalog.TableDescriptor) error {
	if next.Next != nil || next.Pending != nil {
		return changingElsewhere(cur.Name)
	}
	o := s.overlayOf()
	orig, inOverlay := o.origOf(cur.ID)
	if !inOverlay {
		// cur is the catalog's: it must be settled.
		if cur.Pending != nil || cur.Next != nil {
			return changingElsewhere(cur.Name)
		}
		orig = cur
	}
	if orig != nil {
		target := orig.WriteFence + 1
		if next.Dropped && next.ID == cur.ID && o.byIDOther(next.ID, next.Key()) == nil {
			target = fenceDropped
		}
		if cur.WriteFence == orig.WriteFence {
			// The first change: the fence must still be the public one.
			key := keys.TableFenceKey(cur.ID)
			v, found, err := s.txn.t.Get(ctx, key)
			if err != nil {
				return kvError(err)
			}
			if (orig.WriteFence == 0 && found) || (orig.WriteFence != 0 && string(v) != string(fenceValue(orig.WriteFence))) {
				return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
					"restart transaction: the schema of %q changed while this transaction ran", cur.Name),
					"run the transaction again; it will see the table's new schema")
			}
		}
		if next.WriteFence != target {
			next.WriteFence = target
			if err := s.txn.t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: keys.TableFenceKey(cur.ID), Value: fenceValue(target)}}); err != nil {
				return kvError(err)
			}
		}
	}
	base, touched := o.baseAt(next.Key())
	if !touched {
		if b, ok := e.catalog.Get(next.Key()); ok {
			if b.Next != nil {
				return changingElsewhere(b.Name)
			}
			base = b
		}
	}
	o.mu.Lock()
	o.log = append(o.log, overlayEntry{d: next, base: base, orig: orig})
	o.mu.Unlock()
	if orig == nil {
		e.overlays.Store(next.ID, o)
	}
	return nil
}

// byIDOther returns the live version of table id under a key other than
// key (a renamed table's new name), or nil.
func (o *txnOverlay) byIDOther(id int64, key string) *catalog.TableDescriptor {
	d := o.byID(id)
	if d == nil || d.Key() == key {
		return nil
	}
	return d
}

// tableInTxn returns table n as session s sees it, refusing one whose
// writes are held or whose indexes are being built (their schema change
// runs outside the transaction).
func (e *Executor) tableInTxn(ctx context.Context, s *session, n parser.TableName, verb string) (db string, d *catalog.TableDescriptor, err error) {
	db, name, err := e.userTableName(ctx, n, verb)
	if err != nil {
		return "", nil, err
	}
	d, err = e.sessionTable(s, db, name)
	return db, d, err
}

// sessionTable is tableInTxn for a resolved name.
func (e *Executor) sessionTable(s *session, db, name string) (*catalog.TableDescriptor, error) {
	d, _, err := e.lookupTable(s, db, name)
	if err != nil || d == nil {
		return nil, err
	}
	if d.Pending != nil || d.Next != nil {
		return nil, changingElsewhere(name)
	}
	if d.Hold != nil {
		return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectInUse,
			"table %q is being rewritten by %s", name, d.Hold.Statement), "run the transaction once that is done")
	}
	for _, ix := range d.Indexes {
		if ix.WriteOnly {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectInUse,
				"index %q of table %q is being built", ix.Name, name), "run the transaction once CREATE INDEX is done (SHOW JOBS)")
		}
	}
	return d, nil
}

// sessionTables is every live table of database db as session s sees it:
// the catalog's, minus the ones its transaction changed, plus the
// overlay's.
func (e *Executor) sessionTables(s *session, db string) []*catalog.TableDescriptor {
	o := s.txn.overlay
	var out []*catalog.TableDescriptor
	for _, t := range e.catalog.TablesIn(db) {
		if o == nil || !o.touched(t.ID) {
			out = append(out, t)
		}
	}
	if o != nil {
		for _, t := range o.tables() {
			if normalizeDatabase(t.DatabaseName()) == normalizeDatabase(db) {
				out = append(out, t)
			}
		}
	}
	return out
}

// inboundIn lists the foreign keys referencing table d among the tables
// session s sees.
func (e *Executor) inboundIn(s *session, d *catalog.TableDescriptor) []inboundFK {
	var out []inboundFK
	for _, c := range e.sessionTables(s, d.DatabaseName()) {
		for i := range c.ForeignKeys {
			if c.ForeignKeys[i].RefTable == d.ID {
				out = append(out, inboundFK{child: c, fk: &c.ForeignKeys[i]})
			}
		}
	}
	return out
}

// alterInTxn runs ALTER TABLE's descriptor-only actions inside the
// session's transaction, on any table it sees.
func (e *Executor) alterInTxn(ctx context.Context, s *session, st *parser.AlterTable) (pgwire.Result, error) {
	res := pgwire.Result{Tag: "ALTER TABLE"}
	db, cur, err := e.tableInTxn(ctx, s, st.Name, "alter")
	if err != nil {
		return pgwire.Result{}, err
	}
	if cur == nil {
		if st.IfExists {
			res.Notices = append(res.Notices, noticef("relation %q does not exist, skipping", st.Name.Parts[len(st.Name.Parts)-1]))
			return res, nil
		}
		return pgwire.Result{}, undefinedTable(st.Name.Parts[len(st.Name.Parts)-1])
	}
	d := cur.Clone()
	switch a := st.Action.(type) {
	case *parser.SetNotNull:
		if a.NotNull {
			return pgwire.Result{}, ddlInTxnRefused("ALTER TABLE ... SET NOT NULL", ": it must check every row")
		}
	case *parser.AddForeignKey:
		return pgwire.Result{}, ddlInTxnRefused("ALTER TABLE ... ADD FOREIGN KEY", ": it must check every row")
	case *parser.RenameTable:
		return e.renameInTxn(ctx, s, db, cur, a.To)
	case *parser.DropColumn:
		if i := cur.ColumnIndex(a.Column); i >= 0 {
			for _, in := range e.inboundIn(s, cur) {
				if slices.Contains(in.fk.RefColumns, cur.Columns[i].ID) {
					return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
						"column %q is referenced by foreign key constraint %q of table %q", a.Column, in.fk.Name, in.child.Name),
						"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
				}
			}
		}
	case *parser.DropConstraint:
		done, err := e.dropConstraintInTxn(ctx, s, cur, d, a)
		if err != nil {
			return pgwire.Result{}, err
		}
		if !done {
			res.Notices = append(res.Notices, noticef("constraint %q of relation %q does not exist, skipping", a.Name, cur.Name))
			return res, nil
		}
	}
	if _, ok := st.Action.(*parser.DropConstraint); !ok {
		skip, err := applyAlter(d, st.Action, &res.Notices)
		if err != nil || skip {
			return res, err
		}
	}
	if _, err := buildTableInfo(d); err != nil {
		return pgwire.Result{}, err
	}
	d.Version++
	d.ModTime = e.catalog.Clock().Now()
	if err := e.putChange(ctx, s, cur, d); err != nil {
		return pgwire.Result{}, err
	}
	return res, nil
}

// dropConstraintInTxn applies DROP CONSTRAINT to d (a clone of cur): a
// CHECK, a foreign key, or a UNIQUE constraint's index (its entries
// deleted through the transaction). done is false when IF EXISTS found
// nothing.
func (e *Executor) dropConstraintInTxn(ctx context.Context, s *session, cur, d *catalog.TableDescriptor, a *parser.DropConstraint) (done bool, _ error) {
	if a.Name == cur.PrimaryKeyName() {
		return false, pgerror.WithHintf(unsupported("the primary key of %q cannot be dropped", cur.Name),
			"create a new table with the key you want and copy the rows into it")
	}
	if i := slices.IndexFunc(d.ForeignKeys, func(f catalog.ForeignKey) bool { return f.Name == a.Name }); i >= 0 {
		d.ForeignKeys = slices.Delete(d.ForeignKeys, i, i+1)
		return true, nil
	}
	if i := slices.IndexFunc(d.Checks, func(c catalog.CheckConstraint) bool { return c.Name == a.Name }); i >= 0 {
		d.Checks = slices.Delete(d.Checks, i, i+1)
		return true, nil
	}
	if i := slices.IndexFunc(d.Indexes, func(ix catalog.IndexDescriptor) bool { return ix.Name == a.Name }); i >= 0 {
		if err := e.checkIndexUnreferencedInTxn(s, cur, &cur.Indexes[i]); err != nil {
			return false, err
		}
		lo := keys.IndexPrefix(d.ID, d.Indexes[i].ID)
		if err := s.txn.t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: keys.PrefixEnd(lo)}}); err != nil {
			return false, kvError(err)
		}
		d.Indexes = slices.Delete(d.Indexes, i, i+1)
		return true, nil
	}
	if a.IfExists {
		return false, nil
	}
	return false, pgerror.Newf(pgerror.CodeUndefinedObject, "constraint %q of relation %q does not exist", a.Name, cur.Name)
}

// checkIndexUnreferencedInTxn refuses to drop a unique index a foreign key
// the session sees relies on.
func (e *Executor) checkIndexUnreferencedInTxn(s *session, t *catalog.TableDescriptor, ix *catalog.IndexDescriptor) error {
	if !ix.Unique || slices.Equal(t.PrimaryKey, ix.Columns) {
		return nil
	}
	for _, in := range e.inboundIn(s, t) {
		if slices.Equal(in.fk.RefColumns, ix.Columns) {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
				"cannot drop index %q because constraint %q on table %q requires it", ix.Name, in.fk.Name, in.child.Name),
				"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
		}
	}
	return nil
}

// renameInTxn renames a table inside the transaction: a tombstone under
// the old name and the table under the new one, as renameTable commits
// them alone.
func (e *Executor) renameInTxn(ctx context.Context, s *session, db string, cur *catalog.TableDescriptor, to string) (pgwire.Result, error) {
	taken, err := e.nameTaken(ctx, s, db, to)
	if err != nil {
		return pgwire.Result{}, err
	}
	if t, _ := e.findIndexFor(s, db, to); taken || t != nil {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", to)
	}
	now := e.catalog.Clock().Now()
	renamed := cur.Clone()
	renamed.Name = to
	renamed.Version++
	renamed.ModTime = now
	if err := e.putChange(ctx, s, cur, renamed); err != nil {
		return pgwire.Result{}, err
	}
	tomb := renamed.Clone()
	tomb.Name = cur.Name
	tomb.Dropped = true
	if err := e.putChange(ctx, s, renamed, tomb); err != nil {
		return pgwire.Result{}, err
	}
	return pgwire.Result{Tag: "ALTER TABLE"}, nil
}

// dropTablesInTxn drops tables inside the transaction. A table the
// transaction created leaves nothing (its rows, buffered, are deleted
// with it); an existing one becomes a tombstone whose fence the commit
// moves to fenceDropped, its rows deleted after the commit (as DROP TABLE
// alone deletes them after its tombstone), its grants with the commit.
func (e *Executor) dropTablesInTxn(ctx context.Context, s *session, st *parser.DropTable) (pgwire.Result, error) {
	res := pgwire.Result{Tag: "DROP TABLE"}
	var targets []*catalog.TableDescriptor
	for _, n := range st.Names {
		_, d, err := e.tableInTxn(ctx, s, n, "drop")
		if err != nil {
			return pgwire.Result{}, err
		}
		if d == nil {
			name := n.Parts[len(n.Parts)-1]
			if st.IfExists {
				res.Notices = append(res.Notices, noticef("table %q does not exist, skipping", name))
				continue
			}
			return pgwire.Result{}, undefinedTable(name)
		}
		targets = append(targets, d)
	}
	dropping := map[int64]bool{}
	for _, t := range targets {
		dropping[t.ID] = true
	}
	for _, t := range targets {
		for _, in := range e.inboundIn(s, t) {
			if !dropping[in.child.ID] {
				return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
					"cannot drop table %q because foreign key constraint %q of table %q depends on it", t.Name, in.fk.Name, in.child.Name),
					"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s), or drop both tables in one DROP TABLE",
					parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
			}
		}
	}
	for _, t := range targets {
		created := false
		if orig, ok := s.overlayOf().origOf(t.ID); ok && orig == nil {
			created = true
		}
		var ops []kvpb.Op
		if created {
			start, end := rowenc.TableSpan(t.ID)
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}, indexSpanOp(t.ID))
		}
		if e.usersActive() {
			lo, hi := keys.GrantObjectSpan(users.TableObject(t.ID))
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi})
		}
		if len(ops) > 0 {
			if err := s.txn.t.Write(ctx, ops); err != nil {
				return pgwire.Result{}, kvError(err)
			}
		}
		tomb := t.Clone()
		tomb.Dropped = true
		tomb.Version++
		tomb.ModTime = e.catalog.Clock().Now()
		if err := e.putChange(ctx, s, t, tomb); err != nil {
			return pgwire.Result{}, err
		}
	}
	return res, nil
}

// droppedExisting returns the IDs of the existing tables the overlay drops
// (no live version of the ID is left: not renamed, perhaps replaced by a
// new table under its name).
func (o *txnOverlay) droppedExisting() []int64 {
	live := map[int64]bool{}
	for _, d := range o.tables() {
		live[d.ID] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int64
	for _, en := range o.log {
		if en.orig != nil && !live[en.orig.ID] && !slices.Contains(out, en.orig.ID) {
			out = append(out, en.orig.ID)
		}
	}
	return out
}

// deleteDroppedRows deletes the rows and index entries of the tables ids
// after the commit that dropped them (best effort: a failure leaves
// unreachable rows, which only take space, as a crash of DROP TABLE alone
// between its tombstone and its deletion does).
func (e *Executor) deleteDroppedRows(ctx context.Context, ids []int64) {
	var ops []kvpb.Op
	for _, id := range ids {
		start, end := rowenc.TableSpan(id)
		ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}, indexSpanOp(id))
	}
	if len(ops) > 0 {
		_ = e.writeFencesThenRanges(ctx, ops)
	}
}
