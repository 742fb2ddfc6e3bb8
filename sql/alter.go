package sql

// ALTER TABLE's actions other than ADD COLUMN and ADD PRIMARY KEY (release
// 2.1): DROP COLUMN, ALTER COLUMN SET|DROP DEFAULT, SET|DROP NOT NULL,
// RENAME [COLUMN], DROP CONSTRAINT; ADD CONSTRAINT UNIQUE builds a unique
// index (createindex.go).
//
// Most are descriptor changes that a writer with the previous descriptor
// cannot get wrong: rows are written by column ID, never by name, so a
// rename or a dropped column changes nothing a late writer writes (a value
// for a dropped column stays in its row under an ID the table never reuses,
// and no read sees it). SET NOT NULL is the exception: it raises the
// table's schema fence (schemachange.go), so that no writer still allowed
// to write NULL can, and then checks the rows.
//
// A DEFAULT also says how a row written before its column existed reads
// (rowenc's Absent); SET and DROP DEFAULT keep that reading as it was by
// recording it in the column's AbsentExpr first.

import (
	"context"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
)

// alterTable runs ALTER TABLE with one of the actions above.
func (e *Executor) alterTable(ctx context.Context, s *parser.AlterTable) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	if !e.fencesActive() {
		return nil, nil, e.indexesRefused("this ALTER TABLE")
	}
	db, name, err := e.userTableName(ctx, s.Name, "alter")
	if err != nil {
		return nil, nil, err
	}
	cur, ok := e.catalog.GetTable(db, name)
	if !ok {
		if s.IfExists {
			return nil, []pgwire.Notice{noticef("relation %q does not exist, skipping", name)}, nil
		}
		return nil, nil, undefinedTable(name)
	}
	if cur.Hold != nil {
		return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectInUse,
			"table %q is being rewritten by %s", name, cur.Hold.Statement), "run it once that is done")
	}
	switch a := s.Action.(type) {
	case *parser.DropConstraint:
		return e.dropConstraint(ctx, cur, a)
	case *parser.SetNotNull:
		if a.NotNull {
			return e.setNotNull(ctx, cur, a.Column)
		}
	case *parser.RenameTable:
		return e.renameTable(ctx, db, cur, a.To)
	case *parser.AddForeignKey:
		return e.addForeignKey(ctx, db, cur, a.FK)
	case *parser.DropColumn:
		if i := cur.ColumnIndex(a.Column); i >= 0 {
			for _, in := range e.inbound(cur) {
				if slices.Contains(in.fk.RefColumns, cur.Columns[i].ID) {
					return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDependentObjectsStillExist,
						"column %q is referenced by foreign key constraint %q of table %q", a.Column, in.fk.Name, in.child.Name),
						"drop that constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(in.child.Name), parser.QuotedIdent(in.fk.Name))
				}
			}
		}
	}
	var notices []pgwire.Notice
	d, err := e.commitSchema(ctx, s.String(), func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(cur.Key())
		if !ok || c.ID != cur.ID {
			return nil, undefinedTable(name)
		}
		d := c.Clone()
		skip, err := applyAlter(d, s.Action, &notices)
		if err != nil || skip {
			return nil, err
		}
		if _, err := buildTableInfo(d); err != nil {
			return nil, err
		}
		d.Version++
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	ds, err := one(d, err)
	return ds, notices, err
}

// applyAlter applies a descriptor-only action to d; skip reports an IF
// EXISTS that found nothing.
func applyAlter(d *catalog.TableDescriptor, action parser.AlterAction, notices *[]pgwire.Notice) (skip bool, _ error) {
	column := func(name string) (int, error) {
		i := d.ColumnIndex(name)
		if i < 0 || d.Columns[i].Hidden {
			return -1, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, d.Name)
		}
		return i, nil
	}
	switch a := action.(type) {
	case *parser.DropColumn:
		i, err := column(a.Column)
		if err != nil {
			if a.IfExists {
				*notices = append(*notices, noticef("column %q of relation %q does not exist, skipping", a.Column, d.Name))
				return true, nil
			}
			return false, err
		}
		id := d.Columns[i].ID
		if slices.Contains(d.PrimaryKey, id) {
			return false, pgerror.WithHintf(unsupported("column %q is part of the primary key of %q", a.Column, d.Name),
				"a primary key column cannot be dropped")
		}
		for _, ix := range d.Indexes {
			if slices.Contains(ix.Columns, id) || slices.Contains(ix.Storing, id) {
				return false, pgerror.WithHintf(unsupported("column %q is used by index %q", a.Column, ix.Name),
					"drop the index first (DROP INDEX %s)", parser.QuotedIdent(ix.Name))
			}
		}
		for _, fk := range d.ForeignKeys {
			if slices.Contains(fk.Columns, id) {
				return false, pgerror.WithHintf(unsupported("column %q is used by foreign key constraint %q", a.Column, fk.Name),
					"drop the constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(d.Name), parser.QuotedIdent(fk.Name))
			}
		}
		if ck, ok := checkUsing(d, a.Column); ok {
			return false, pgerror.WithHintf(unsupported("column %q is used by CHECK constraint %q", a.Column, ck),
				"drop the constraint first (ALTER TABLE %s DROP CONSTRAINT %s)", parser.QuotedIdent(d.Name), parser.QuotedIdent(ck))
		}
		if len(d.Columns) == 1 {
			return false, pgerror.Newf(pgerror.CodeInvalidTableDefinition, "table %q must keep at least one column", d.Name)
		}
		d.Columns = slices.Delete(d.Columns, i, i+1)
	case *parser.SetDefault:
		i, err := column(a.Column)
		if err != nil {
			return false, err
		}
		c := &d.Columns[i]
		if a.Default != nil {
			if _, err := checkDefaultExpr(a.Default, c.Type, c.Mod, c.Name); err != nil {
				return false, err
			}
		}
		if c.AbsentExpr == "" {
			// Rows written before the column existed keep reading as
			// they did.
			c.AbsentExpr = c.DefaultExpr
			if c.AbsentExpr == "" {
				c.AbsentExpr = "NULL"
			}
		}
		c.DefaultExpr = ""
		if a.Default != nil {
			c.DefaultExpr = a.Default.String()
		}
	case *parser.SetNotNull: // DROP NOT NULL (SET NOT NULL is setNotNull)
		i, err := column(a.Column)
		if err != nil {
			return false, err
		}
		if slices.Contains(d.PrimaryKey, d.Columns[i].ID) {
			return false, pgerror.Newf(pgerror.CodeInvalidTableDefinition, "column %q is in a primary key", a.Column)
		}
		d.Columns[i].Nullable = true
	case *parser.RenameColumn:
		i, err := column(a.From)
		if err != nil {
			return false, err
		}
		if d.ColumnIndex(a.To) >= 0 {
			return false, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q of relation %q already exists", a.To, d.Name)
		}
		if ck, ok := checkUsing(d, a.From); ok {
			return false, pgerror.WithHintf(unsupported("column %q is used by CHECK constraint %q", a.From, ck),
				"drop the constraint, rename the column, then add the constraint again")
		}
		d.Columns[i].Name = a.To
	}
	return false, nil
}

// checkUsing returns the name of a CHECK constraint of d that mentions
// column col.
func checkUsing(d *catalog.TableDescriptor, col string) (string, bool) {
	for _, ck := range d.Checks {
		e, err := parser.ParseExpr(ck.Expr)
		if err != nil {
			return ck.Name, true // cannot tell: assume it does
		}
		found := false
		parser.WalkExpr(e, func(x parser.Expr) bool {
			if r, ok := x.(*parser.ColumnRef); ok && len(r.Parts) > 0 && r.Parts[len(r.Parts)-1] == col {
				found = true
			}
			return !found
		})
		if found {
			return ck.Name, true
		}
	}
	return "", false
}

// setNotNull runs SET NOT NULL: the descriptor with the column NOT NULL and
// a higher fence, the fence moved (from here every successful write obeys
// the constraint), then every row checked; a NULL found puts the column
// back as it was (the fence stays up) and fails with 23502.
func (e *Executor) setNotNull(ctx context.Context, cur *catalog.TableDescriptor, col string) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	i := cur.ColumnIndex(col)
	if i < 0 || cur.Columns[i].Hidden {
		return nil, nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", col, cur.Name)
	}
	if !cur.Columns[i].Nullable {
		return nil, nil, nil
	}
	stmt := "ALTER TABLE " + parser.QuotedIdent(cur.Name) + " ALTER COLUMN " + parser.QuotedIdent(col) + " SET NOT NULL"
	set, err := e.commitSchema(ctx, stmt, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(cur.Key())
		if !ok || c.ID != cur.ID || c.Version != cur.Version {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: table %q changed while SET NOT NULL started", cur.Name), "run it again")
		}
		d := c.Clone()
		d.Columns[i].Nullable = false
		d.Version++
		d.WriteFence++
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := e.raiseFence(ctx, set.ID, cur.WriteFence, set.WriteFence); err != nil {
		return nil, nil, err
	}
	ti, err := buildTableInfo(set)
	if err != nil {
		return nil, nil, err
	}
	var found bool
	_, _, err = e.scanTable(ctx, set.ID, func(batch []kvpb.KeyValue) error {
		for _, kv := range batch {
			row, _, err := ti.layout.Decode(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			if row[i] == nil {
				found = true
				return errStopScan
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, nil, err
	}
	if !found {
		return []catalog.TableDescriptor{*set}, nil, nil
	}
	_, rerr := e.commitSchema(ctx, "undo "+stmt, func() (*catalog.TableDescriptor, error) {
		c, ok := e.catalog.Get(set.Key())
		if !ok || c.ID != set.ID || c.Version != set.Version {
			return nil, nil
		}
		d := c.Clone()
		d.Columns[i].Nullable = true
		d.Version++
		d.ModTime = e.catalog.Clock().Now()
		return d, nil
	})
	err = pgerror.WithHintf(pgerror.Newf(pgerror.CodeNotNullViolation,
		"column %q of relation %q contains null values", col, cur.Name), "set a value in those rows first (UPDATE ... WHERE %s IS NULL)", parser.QuotedIdent(col))
	if rerr != nil {
		err = pgerror.WithHintf(err, "undoing SET NOT NULL failed too (%v); run ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL", rerr)
	}
	return nil, nil, err
}

var errStopScan = errors.New("stop the scan")

// dropConstraint drops a UNIQUE constraint (its index) or a CHECK
// constraint.
func (e *Executor) dropConstraint(ctx context.Context, cur *catalog.TableDescriptor, a *parser.DropConstraint) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	if a.Name == cur.PrimaryKeyName() {
		return nil, nil, pgerror.WithHintf(unsupported("the primary key of %q cannot be dropped", cur.Name),
			"create a new table with the key you want and copy the rows into it")
	}
	for _, fk := range cur.ForeignKeys {
		if fk.Name == a.Name {
			return one3(e.dropForeignKey(ctx, cur, a.Name))
		}
	}
	for _, ix := range cur.Indexes {
		if ix.Name == a.Name {
			if err := e.checkIndexUnreferenced(cur, &ix); err != nil {
				return nil, nil, err
			}
			if err := e.removeIndex(ctx, cur, ix.ID); err != nil {
				return nil, nil, err
			}
			d, _ := e.catalog.Get(cur.Key())
			return one3(d, nil)
		}
	}
	for _, ck := range cur.Checks {
		if ck.Name != a.Name {
			continue
		}
		d, err := e.commitSchema(ctx, "ALTER TABLE "+parser.QuotedIdent(cur.Name)+" DROP CONSTRAINT "+parser.QuotedIdent(a.Name),
			func() (*catalog.TableDescriptor, error) {
				c, ok := e.catalog.Get(cur.Key())
				if !ok || c.ID != cur.ID {
					return nil, undefinedTable(cur.Name)
				}
				d := c.Clone()
				d.Checks = slices.DeleteFunc(d.Checks, func(x catalog.CheckConstraint) bool { return x.Name == a.Name })
				d.Version++
				d.ModTime = e.catalog.Clock().Now()
				return d, nil
			})
		return one3(d, err)
	}
	if a.IfExists {
		return nil, []pgwire.Notice{noticef("constraint %q of relation %q does not exist, skipping", a.Name, cur.Name)}, nil
	}
	return nil, nil, pgerror.Newf(pgerror.CodeUndefinedObject, "constraint %q of relation %q does not exist", a.Name, cur.Name)
}

// renameTable renames a table: a tombstone under the old name and the
// descriptor under the new one, in one schema change. Rows, grants and
// indexes are keyed by the table's ID, which does not change.
func (e *Executor) renameTable(ctx context.Context, db string, cur *catalog.TableDescriptor, to string) ([]catalog.TableDescriptor, []pgwire.Notice, error) {
	// nameTaken, not the catalog alone: a pending record of a
	// transaction's new table (ddltxn.go) holds the name, and renaming onto
	// it would replace it (a committed one's table and rows would be lost).
	if taken, err := e.nameTaken(ctx, nil, db, to); err != nil {
		return nil, nil, err
	} else if taken {
		return nil, nil, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", to)
	}
	if t, _ := e.findIndex(db, to); t != nil {
		return nil, nil, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", to)
	}
	p := &ddlPlan{e: e, what: "ALTER TABLE " + parser.QuotedIdent(cur.Name) + " RENAME TO " + parser.QuotedIdent(to),
		builder: func(ctx context.Context) ([]catalog.TableDescriptor, error) {
			c, ok := e.catalog.Get(cur.Key())
			if !ok || c.ID != cur.ID {
				return nil, undefinedTable(cur.Name)
			}
			if taken, err := e.nameTaken(ctx, nil, db, to); err != nil {
				return nil, err
			} else if taken {
				return nil, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", to)
			}
			now := e.catalog.Clock().Now()
			tomb := c.Clone()
			tomb.Dropped = true
			tomb.Version++
			tomb.ModTime = now
			renamed := c.Clone()
			renamed.Name = to
			renamed.Version++
			renamed.ModTime = now
			return []catalog.TableDescriptor{*tomb, *renamed}, nil
		}}
	changed, err := p.commit(ctx)
	return changed, nil, err
}
