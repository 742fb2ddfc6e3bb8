package sql

// Foreign keys (release 2.1).
//
// A FOREIGN KEY lives in the referencing (child) table's descriptor and
// names the referenced (parent) table by ID and its primary key or one of
// its unique indexes. Both sides are checked by the statement that writes:
//
//   - a child row written with its key columns all non-NULL (MATCH SIMPLE)
//     must find its parent: a point read of the parent's row, or of its
//     unique index entry; otherwise 23503;
//   - a parent row deleted, or updated so that its referenced values
//     change, looks for its children through a statement on the child
//     table (WHERE cols = values, which uses an index on them when there
//     is one): NO ACTION and RESTRICT refuse with 23503 when one exists,
//     ON DELETE CASCADE deletes them and ON DELETE SET NULL clears their
//     key columns, each through the child's own statement, so that its
//     indexes, its checks and its own foreign keys are kept.
//
// These reads and the writes are one serializable transaction: the
// session's, or one the statement runs in by itself (runInTxn), retried on
// a conflict. So a child inserted while its parent is deleted elsewhere
// conflicts with that delete at commit, and one of them retries and sees
// the other: no orphan. Declaring a foreign key raises the parent's schema
// fence too (schemachange.go), so that no writer of the parent still
// planned without knowing its new children can delete a parent.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

// tableByID returns the live descriptor with the given table ID.
func (e *Executor) tableByID(id int64) (*catalog.TableDescriptor, bool) {
	for _, d := range e.catalog.Tables() {
		if d.ID == id && !d.IsDatabase {
			return d, true
		}
	}
	// A table a transaction created: its session's, or committed and not
	// published yet (ddltxn.go).
	if d, _ := e.overlayByID(id); d != nil {
		return d, true
	}
	for _, d := range e.committedPending() {
		if d.ID == id {
			return d, true
		}
	}
	return nil, false
}

// inboundFK is a foreign key of another table (or of the same one) that
// references a table.
type inboundFK struct {
	child *catalog.TableDescriptor
	fk    *catalog.ForeignKey
}

// inbound lists the foreign keys that reference table d.
func (e *Executor) inbound(d *catalog.TableDescriptor) []inboundFK {
	var out []inboundFK
	tables := append(e.catalog.Tables(), e.committedPending()...)
	if _, o := e.overlayByID(d.ID); o != nil {
		// Only the tables of the same transaction can reference it.
		tables = o.tables()
	}
	for _, c := range tables {
		for i := range c.ForeignKeys {
			if c.ForeignKeys[i].RefTable == d.ID {
				out = append(out, inboundFK{child: c, fk: &c.ForeignKeys[i]})
			}
		}
	}
	return out
}

// fkInvolved reports whether writes to ti must check foreign keys.
func (e *Executor) fkInvolved(ti *tableInfo) bool {
	if !e.fencesActive() {
		return false
	}
	return len(ti.desc.ForeignKeys) > 0 || len(e.inbound(ti.desc)) > 0
}

// values returns row's values of the columns with the given IDs, and
// whether all are non-NULL.
func values(d *catalog.TableDescriptor, row []types.Datum, ids []int32) ([]types.Datum, bool) {
	out := make([]types.Datum, len(ids))
	for i, id := range ids {
		out[i] = row[d.ColumnIndexByID(id)]
		if out[i] == nil {
			return out, false
		}
	}
	return out, true
}

func sameValues(a, b []types.Datum) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if c, err := compareDatums(a[i], b[i]); err != nil || c != 0 {
			return false
		}
	}
	return true
}

// fkRow checks and carries out the foreign keys of one row of ti changing
// from old (nil: inserted) to new (nil: deleted). It runs inside the
// statement's transaction.
func (e *Executor) fkRow(ec *evalCtx, ti *tableInfo, old, new []types.Datum) error {
	if !e.fencesActive() {
		return nil
	}
	ctx := ec.ctx
	for i := range ti.desc.ForeignKeys {
		fk := &ti.desc.ForeignKeys[i]
		if new == nil {
			continue
		}
		vals, full := values(ti.desc, new, fk.Columns)
		if !full {
			continue
		}
		if old != nil {
			if ov, _ := values(ti.desc, old, fk.Columns); sameValues(ov, vals) {
				continue
			}
		}
		found, err := e.parentExists(ctx, fk, vals)
		if err != nil {
			return err
		}
		if !found {
			parent := "(dropped)"
			if p, ok := e.tableByID(fk.RefTable); ok {
				parent = p.Name
			}
			return fkMissing(ti.desc, fk, vals, parent)
		}
	}
	if old == nil {
		return nil
	}
	for _, in := range e.inbound(ti.desc) {
		vals, full := values(ti.desc, old, in.fk.RefColumns)
		if !full {
			continue
		}
		if new != nil {
			if nv, _ := values(ti.desc, new, in.fk.RefColumns); sameValues(nv, vals) {
				continue
			}
		}
		if err := e.onParentChange(ec, ti, in, vals, new == nil); err != nil {
			return err
		}
	}
	return nil
}

// fkChanges collects a statement's row changes on a table with foreign
// keys and checks them once the statement's rows are written (inside its
// transaction, which reads its own writes): PostgreSQL checks foreign keys
// at the end of the statement, so a row may reference another inserted by
// the same statement. Without a transaction (only in tests without a
// transactional store) each row is checked before it is written.
type fkChanges struct {
	ti   *tableInfo
	rows [][2][]types.Datum
}

// add records (or, without a transaction, checks) one row's change.
func (c *fkChanges) add(ec *evalCtx, ti *tableInfo, old, new []types.Datum) error {
	e := ec.exec
	if _, inTxn := e.kv(ec.ctx).(*txn.Txn); !inTxn {
		return e.fkRow(ec, ti, old, new)
	}
	c.rows = append(c.rows, [2][]types.Datum{old, new})
	c.ti = ti
	return nil
}

// finish checks the recorded changes.
func (c *fkChanges) finish(ec *evalCtx) error {
	for _, r := range c.rows {
		if err := ec.exec.fkRow(ec, c.ti, r[0], r[1]); err != nil {
			return err
		}
	}
	c.rows = nil
	return nil
}

// parentExists reads the parent row (or unique index entry) a child's key
// values reference.
func (e *Executor) parentExists(ctx context.Context, fk *catalog.ForeignKey, vals []types.Datum) (bool, error) {
	p, err := e.fkParentOf(fk)
	if err != nil || p.desc == nil {
		return false, err
	}
	key, err := p.key(vals)
	if err != nil {
		return false, err
	}
	_, found, err := e.kv(ctx).Get(ctx, key)
	return found, kvErrorOrNil(err)
}

// fkParent is what checking a foreign key needs of its parent table.
type fkParent struct {
	fk   *catalog.ForeignKey
	desc *catalog.TableDescriptor // nil: the parent table is gone
	ti   *tableInfo
	ii   *indexInfo // the unique index the key references; nil: the primary key
}

// fkParentOf looks up fk's parent table.
func (e *Executor) fkParentOf(fk *catalog.ForeignKey) (*fkParent, error) {
	p := &fkParent{fk: fk}
	parent, ok := e.tableByID(fk.RefTable)
	if !ok {
		return p, nil
	}
	pti, err := e.tables.infoFor(parent)
	if err != nil {
		return nil, err
	}
	p.desc, p.ti = parent, pti
	if !samePKColumns(parent, fk.RefColumns) {
		if p.ii = uniqueIndexOn(pti, fk.RefColumns); p.ii == nil {
			return nil, errors.AssertionFailedf("foreign key %q references no unique index of %q", fk.Name, parent.Name)
		}
	}
	return p, nil
}

// name is the parent table's name, for errors.
func (p *fkParent) name() string {
	if p.desc == nil {
		return "(dropped)"
	}
	return p.desc.Name
}

// key returns the key of the parent row (or unique index entry) whose
// referenced columns hold vals.
func (p *fkParent) key(vals []types.Datum) ([]byte, error) {
	row := make([]types.Datum, len(p.ti.cols))
	for j, id := range p.fk.RefColumns {
		row[p.desc.ColumnIndexByID(id)] = vals[j]
	}
	if p.ii == nil {
		return p.ti.layout.EncodeKey(row)
	}
	key, _, err := p.ii.entry(p.desc.ID, nil, row)
	return key, err
}

// decode returns the referenced values a key made by key holds; ok is
// false if key is not one of this parent's.
func (p *fkParent) decode(key []byte) (vals []types.Datum, ok bool) {
	if p.desc == nil {
		return nil, false
	}
	rest, marked := key, p.ii != nil
	if marked {
		rest, ok = bytes.CutPrefix(key, keys.IndexPrefix(p.desc.ID, p.ii.desc.ID))
	} else {
		rest, ok = bytes.CutPrefix(key, rowenc.TablePrefix(p.desc.ID))
	}
	if !ok {
		return nil, false
	}
	for _, id := range p.fk.RefColumns {
		if marked {
			if len(rest) == 0 || rest[0] != 0x01 {
				return nil, false
			}
			rest = rest[1:]
		}
		d, r, err := rowenc.DecodeKey(rest, p.desc.Columns[p.desc.ColumnIndexByID(id)].Type)
		if err != nil {
			return nil, false
		}
		vals, rest = append(vals, d), r
	}
	return vals, len(rest) == 0
}

// fkMissing is the error of a child row of child whose parent, with the
// referenced values vals, is not there.
func fkMissing(child *catalog.TableDescriptor, fk *catalog.ForeignKey, vals []types.Datum, parent string) error {
	return errors.WithDetail(pgerror.Newf(pgerror.CodeForeignKeyViolation,
		"insert or update on table %q violates foreign key constraint %q", child.Name, fk.Name),
		fmt.Sprintf("Key (%s)=(%s) is not present in table %q.", columnNames(child, fk.Columns), datumList(vals), parent))
}

func kvErrorOrNil(err error) error {
	if err == nil {
		return nil
	}
	return kvError(err)
}

// samePKColumns reports whether ids are d's primary key columns, in order.
func samePKColumns(d *catalog.TableDescriptor, ids []int32) bool {
	return slices.Equal(d.PrimaryKey, ids)
}

// uniqueIndexOn returns the public unique index of ti on exactly ids.
func uniqueIndexOn(ti *tableInfo, ids []int32) *indexInfo {
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		if ii.desc.Unique && !ii.desc.WriteOnly && slices.Equal(ii.desc.Columns, ids) {
			return ii
		}
	}
	return nil
}

// onParentChange applies a foreign key's action to the children of a
// parent row whose referenced values vals go away (deleted: the row is
// deleted, else updated).
func (e *Executor) onParentChange(ec *evalCtx, parent *tableInfo, in inboundFK, vals []types.Datum, deleted bool) error {
	// By ID, as inbound found it: a table the session's transaction
	// created, or one committed and not published yet, is no table of the
	// public catalog (ddltxn.go), and its rows must be checked all the same.
	child, ok := e.tableByID(in.child.ID)
	if !ok {
		return nil // dropped meanwhile
	}
	var where []string
	ptypes := make([]types.T, len(in.fk.Columns))
	for i, id := range in.fk.Columns {
		c := child.Columns[child.ColumnIndexByID(id)]
		where = append(where, fmt.Sprintf("%s = $%d", parser.QuotedIdent(c.Name), i+1))
		ptypes[i] = c.Type
	}
	table := parser.QuotedIdent(normalizeDatabase(child.Database)) + ".public." + parser.QuotedIdent(child.Name)
	cond := strings.Join(where, " AND ")
	action := in.fk.OnDelete
	if !deleted {
		action = "" // ON UPDATE is NO ACTION
	}
	var sql string
	switch action {
	case "CASCADE":
		sql = "DELETE FROM " + table + " WHERE " + cond
	case "SET NULL":
		var set []string
		for _, id := range in.fk.Columns {
			set = append(set, parser.QuotedIdent(child.Columns[child.ColumnIndexByID(id)].Name)+" = NULL")
		}
		sql = "UPDATE " + table + " SET " + strings.Join(set, ", ") + " WHERE " + cond
	default:
		sql = "DELETE FROM " + table + " WHERE " + cond // only read: see below
	}
	stmt, err := parser.ParseOne(sql)
	if err != nil {
		return errors.NewAssertionErrorWithWrappedErrf(err, "foreign key statement %q", sql)
	}
	params := newParamSet(len(ptypes), ptypes)
	params.s = sessionOf(ec.ctx) // its transaction's own tables resolve through it
	var pl plan
	switch st := stmt.AST.(type) {
	case *parser.Delete:
		pl, err = e.analyzeDelete(st, params)
	case *parser.Update:
		pl, err = e.analyzeUpdate(st, params)
	}
	if err != nil {
		return err
	}
	if action == "CASCADE" || action == "SET NULL" {
		_, err := pl.exec(ec.ctx, vals)
		return err
	}
	dp := pl.(*deletePlan)
	cec := &evalCtx{ctx: ec.ctx, exec: e, params: vals}
	rows, err := e.readRows(cec, dp.ti, &dp.scan, 0)
	if err != nil {
		return err
	}
	for _, r := range rows {
		cec.row = r.row
		if ok, err := cec.evalTrue(dp.filter); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		verb := "update"
		if deleted {
			verb = "delete"
		}
		return errors.WithDetail(pgerror.Newf(pgerror.CodeForeignKeyViolation,
			"%s on table %q violates foreign key constraint %q on table %q", verb, parent.desc.Name, in.fk.Name, child.Name),
			fmt.Sprintf("Key (%s)=(%s) is still referenced from table %q.", columnNames(parent.desc, in.fk.RefColumns), datumList(vals), child.Name))
	}
	return nil
}

func columnNames(d *catalog.TableDescriptor, ids []int32) string {
	var out []string
	for _, id := range ids {
		if i := d.ColumnIndexByID(id); i >= 0 {
			out = append(out, d.Columns[i].Name)
		}
	}
	return strings.Join(out, ", ")
}

func datumList(vals []types.Datum) string {
	var out []string
	for _, v := range vals {
		out = append(out, formatDatumForDetail(v))
	}
	return strings.Join(out, ", ")
}

// runInTxn runs a statement that writes a table with foreign keys, outside
// a transaction, in a transaction of its own, retried on a conflict.
func (e *Executor) runInTxn(ctx context.Context, run func(context.Context) (pgwire.Result, error)) (pgwire.Result, error) {
	for attempt := 1; ; attempt++ {
		t := txn.New(e.cfg.Txns, 0)
		res, err := run(withTxn(ctx, t))
		if err == nil {
			err = t.Commit(ctx)
		} else {
			t.Rollback()
		}
		if err == nil {
			return res, nil
		}
		if !errors.As(err, new(*kvpb.TxnConflictError)) || attempt >= maxRetries {
			return pgwire.Result{}, kvError(err)
		}
	}
}

// fkDefs resolves the FOREIGN KEY clauses of CREATE TABLE or ALTER TABLE
// for the table child (whose ID may still be 0 for a new table: a self
// reference then names it by name).
func (e *Executor) fkDef(s *session, db string, child *catalog.TableDescriptor, f *parser.ForeignKeyDef) (catalog.ForeignKey, *catalog.TableDescriptor, error) {
	fk := catalog.ForeignKey{Name: f.Name, OnDelete: f.OnDelete}
	if fk.Name == "" {
		fk.Name = child.Name + "_" + strings.Join(f.Columns, "_") + "_fkey"
	}
	if f.OnUpdate == "CASCADE" || f.OnUpdate == "SET NULL" {
		return fk, nil, pgerror.WithHintf(unsupported("ON UPDATE %s is not supported", f.OnUpdate),
			"leave out ON UPDATE (NO ACTION): a referenced key then cannot change while rows reference it")
	}
	pdb, pname, err := e.classifyUserTable(db, f.RefTable)
	if err != nil {
		return fk, nil, err
	}
	var parent *catalog.TableDescriptor
	if normalizeDatabase(pdb) == normalizeDatabase(child.Database) && pname == child.Name {
		parent = child
	} else {
		p, _, err := e.lookupTable(s, pdb, pname)
		if err != nil {
			return fk, nil, err
		}
		if p == nil {
			return fk, nil, undefinedTable(pname)
		}
		if normalizeDatabase(p.Database) != normalizeDatabase(child.Database) {
			return fk, nil, unsupported("foreign keys across databases are not supported")
		}
		parent = p
	}
	for _, c := range f.Columns {
		i := child.ColumnIndex(c)
		if i < 0 {
			return fk, nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q referenced in foreign key constraint does not exist", c)
		}
		fk.Columns = append(fk.Columns, child.Columns[i].ID)
		if f.OnDelete == "SET NULL" && !child.Columns[i].Nullable {
			return fk, nil, pgerror.Newf(pgerror.CodeInvalidForeignKey,
				"cannot add a SET NULL cascading action on column %q which has a NOT NULL constraint", c)
		}
	}
	if f.RefColumns == nil {
		fk.RefColumns = append([]int32(nil), parent.PrimaryKey...)
	} else {
		for _, c := range f.RefColumns {
			i := parent.ColumnIndex(c)
			if i < 0 {
				return fk, nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q referenced in foreign key constraint does not exist", c)
			}
			fk.RefColumns = append(fk.RefColumns, parent.Columns[i].ID)
		}
	}
	fk.RefTable = parent.ID // 0 for a new table referencing itself: set with its ID
	if len(fk.RefColumns) != len(fk.Columns) {
		return fk, nil, pgerror.Newf(pgerror.CodeInvalidForeignKey, "number of referencing and referenced columns for foreign key disagree")
	}
	for i := range fk.Columns {
		ct := child.Columns[child.ColumnIndexByID(fk.Columns[i])].Type
		pt := parent.Columns[parent.ColumnIndexByID(fk.RefColumns[i])].Type
		if ct != pt {
			return fk, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDatatypeMismatch,
				"foreign key constraint %q cannot be implemented: key columns are of incompatible types: %s and %s", fk.Name, ct, pt),
				"give the referencing column the referenced column's type")
		}
	}
	unique := slices.Equal(parent.PrimaryKey, fk.RefColumns)
	for _, ix := range parent.Indexes {
		unique = unique || ix.Unique && !ix.WriteOnly && slices.Equal(ix.Columns, fk.RefColumns)
	}
	if !unique {
		return fk, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidForeignKey,
			"there is no unique constraint matching given keys for referenced table %q", parent.Name),
			"reference the table's primary key, or create a unique index on the referenced columns first")
	}
	return fk, parent, nil
}

// classifyUserTable resolves a user table's name as userTableName does.
func (e *Executor) classifyUserTable(db string, n parser.TableName) (string, string, error) {
	tdb, name, virt, err := e.classifyTableName(db, n)
	if err != nil {
		return "", "", err
	}
	if virt {
		return "", "", unsupported("a foreign key cannot reference the virtual table %s", n.String())
	}
	if tdb == catalog.DefaultDatabase {
		tdb = ""
	}
	return tdb, name, nil
}

// parentBumps returns, for a descriptor d that gained foreign keys, each
// other table they reference with its fence raised: the parent's writers
// planned before d's keys existed must plan again and learn of them.
func (e *Executor) parentBumps(d *catalog.TableDescriptor, fks []catalog.ForeignKey) []catalog.TableDescriptor {
	var out []catalog.TableDescriptor
	seen := map[int64]bool{d.ID: true}
	for _, fk := range fks {
		if seen[fk.RefTable] {
			continue
		}
		seen[fk.RefTable] = true
		if p, ok := e.tableByID(fk.RefTable); ok {
			b := p.Clone()
			b.Version++
			b.WriteFence++
			b.ModTime = e.catalog.Clock().Now()
			out = append(out, *b)
		}
	}
	return out
}

// addForeignKey runs ALTER TABLE ... ADD FOREIGN KEY: the key and the
// raised fences of both tables committed, then every existing row checked;
// a row without its parent takes the key out again (23503).
func (e *Executor) addForeignKey(ctx context.Context, db string, cur *catalog.TableDescriptor, f *parser.ForeignKeyDef) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	fk, _, err := e.fkDef(sessionOf(ctx), db, cur, f)
	if err != nil {
		return nil, nil, err
	}
	if fk.RefTable == 0 {
		fk.RefTable = cur.ID
	}
	if constraintNameTaken(cur, fk.Name) {
		return nil, nil, pgerror.Newf(pgerror.CodeDuplicateObject, "constraint %q for relation %q already exists", fk.Name, cur.Name)
	}
	stmt := "ALTER TABLE " + parser.QuotedIdent(cur.Name) + " ADD " + f.String()
	p := &ddlPlan{e: e, what: stmt, builder: func(context.Context) ([]catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(cur.Key())
		if !ok || c.ID != cur.ID || c.Version != cur.Version {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: table %q changed while the foreign key was added", cur.Name), "run it again")
		}
		d := c.Clone()
		d.ForeignKeys = append(d.ForeignKeys, fk)
		d.Version++
		d.WriteFence++
		d.ModTime = e.catalog.Clock().Now()
		return append([]catalog.TableDescriptor{*d}, e.parentBumps(d, []catalog.ForeignKey{fk})...), nil
	}}
	changed, err := p.commit(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := e.raiseFences(ctx, changed); err != nil {
		return nil, nil, err
	}
	added, ok := e.catalog.Get(cur.Key())
	if !ok || added.ID != cur.ID {
		return nil, nil, undefinedTable(cur.Name)
	}
	ti, err := buildTableInfo(added)
	if err != nil {
		return nil, nil, err
	}
	var missing []types.Datum
	_, _, err = e.scanTable(ctx, added.ID, func(batch []kvpb.KeyValue) error {
		for _, kv := range batch {
			row, _, err := ti.layout.Decode(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			vals, full := values(added, row, fk.Columns)
			if !full {
				continue
			}
			found, err := e.parentExists(ctx, &fk, vals)
			if err != nil {
				return err
			}
			if !found {
				missing = vals
				return errStopScan
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, nil, err
	}
	if missing == nil {
		return changed[:1], nil, nil
	}
	verr := errors.WithDetail(pgerror.Newf(pgerror.CodeForeignKeyViolation,
		"insert or update on table %q violates foreign key constraint %q", cur.Name, fk.Name),
		fmt.Sprintf("Key (%s)=(%s) is not present in the referenced table.", columnNames(added, fk.Columns), datumList(missing)))
	if _, err := e.dropForeignKey(ctx, added, fk.Name); err != nil {
		return nil, nil, errors.WithSecondaryError(verr, err)
	}
	return nil, nil, verr
}

// dropForeignKey takes the named foreign key out of d.
func (e *Executor) dropForeignKey(ctx context.Context, d *catalog.TableDescriptor, name string) (*catalog.TableDescriptor, error) {
	return e.commitSchema(ctx, "ALTER TABLE "+parser.QuotedIdent(d.Name)+" DROP CONSTRAINT "+parser.QuotedIdent(name),
		func() (*catalog.TableDescriptor, error) {
			c, ok := e.catalog.Get(d.Key())
			if !ok || c.ID != d.ID {
				return nil, undefinedTable(d.Name)
			}
			n := c.Clone()
			n.ForeignKeys = slices.DeleteFunc(n.ForeignKeys, func(f catalog.ForeignKey) bool { return f.Name == name })
			if len(n.ForeignKeys) == len(c.ForeignKeys) {
				return nil, nil
			}
			n.Version++
			n.ModTime = e.catalog.Clock().Now()
			return n, nil
		})
}

// raiseFences moves the fence key of every descriptor in ds up to its
// WriteFence.
func (e *Executor) raiseFences(ctx context.Context, ds []catalog.TableDescriptor) error {
	for _, d := range ds {
		if d.Dropped || d.IsDatabase || d.WriteFence == 0 {
			continue
		}
		if err := e.raiseFence(ctx, d.ID, d.WriteFence-1, d.WriteFence); err != nil {
			return err
		}
	}
	return nil
}

// constraintNameTaken reports whether d has a constraint or index named
// name.
func constraintNameTaken(d *catalog.TableDescriptor, name string) bool {
	if name == d.PrimaryKeyName() {
		return true
	}
	for _, ck := range d.Checks {
		if ck.Name == name {
			return true
		}
	}
	for _, ix := range d.Indexes {
		if ix.Name == name {
			return true
		}
	}
	for _, fk := range d.ForeignKeys {
		if fk.Name == name {
			return true
		}
	}
	return false
}

// foreignKeyDef renders fk for SHOW CREATE TABLE and pg_get_constraintdef.
func (e *Executor) foreignKeyDef(d *catalog.TableDescriptor, fk *catalog.ForeignKey) string {
	var b strings.Builder
	b.WriteString("FOREIGN KEY (" + quotedColumns(d, fk.Columns) + ") REFERENCES ")
	parent, ok := e.tableByID(fk.RefTable)
	if !ok {
		b.WriteString("(dropped)")
		return b.String()
	}
	b.WriteString(parser.QuotedIdent(parent.Name) + "(" + quotedColumns(parent, fk.RefColumns) + ")")
	if fk.OnDelete != "" {
		b.WriteString(" ON DELETE " + fk.OnDelete)
	}
	return b.String()
}

func quotedColumns(d *catalog.TableDescriptor, ids []int32) string {
	var out []string
	for _, id := range ids {
		if i := d.ColumnIndexByID(id); i >= 0 {
			out = append(out, parser.QuotedIdent(d.Columns[i].Name))
		}
	}
	return strings.Join(out, ", ")
}

// createStatement is SHOW CREATE TABLE's text: the descriptor's, with its
// foreign keys, whose referenced tables only the catalog can name.
func (e *Executor) createStatement(d *catalog.TableDescriptor) string {
	stmt := d.CreateStatement()
	if len(d.ForeignKeys) == 0 {
		return stmt
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(stmt, "\n)"))
	for i := range d.ForeignKeys {
		b.WriteString(",\n\tCONSTRAINT " + parser.QuotedIdent(d.ForeignKeys[i].Name) + " " + e.foreignKeyDef(d, &d.ForeignKeys[i]))
	}
	b.WriteString("\n)")
	return b.String()
}

// checkIndexUnreferenced refuses to drop a unique index a foreign key
// relies on.
func (e *Executor) checkIndexUnreferenced(d *catalog.TableDescriptor, ix *catalog.IndexDescriptor) error {
	if !ix.Unique || slices.Equal(d.PrimaryKey, ix.Columns) {
		return nil
	}
	for _, in := range e.inbound(d) {
		if slices.Equal(in.fk.RefColumns, ix.Columns) {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
				"index %q is used by foreign key constraint %q of table %q", ix.Name, in.fk.Name, in.child.Name),
				"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
		}
	}
	return nil
}

// checkDroppable refuses to drop tables that other tables' foreign keys
// reference (unless those tables are dropped by the same statement).
func (e *Executor) checkDroppable(targets []*catalog.TableDescriptor) error {
	dropping := map[int64]bool{}
	for _, t := range targets {
		dropping[t.ID] = true
	}
	for _, t := range targets {
		for _, in := range e.inbound(t) {
			if !dropping[in.child.ID] {
				return pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
					"cannot drop table %q because foreign key constraint %q of table %q depends on it", t.Name, in.fk.Name, in.child.Name),
					"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s), or drop both tables in one DROP TABLE",
					parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
			}
		}
	}
	return nil
}
