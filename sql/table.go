package sql

import (
	"context"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// tableInfo is a descriptor prepared for execution: its row layout and its
// type-checked defaults. It is derived once per descriptor version.
type tableInfo struct {
	desc     *catalog.TableDescriptor
	cols     []catalog.ColumnDescriptor
	pk       []int // column positions, key order
	inPK     []bool
	layout   *rowenc.Layout
	defaults []texpr // nil entry: no DEFAULT (NULL)
	visible  []int   // positions of the columns SELECT * shows
	checks   []checkExpr
	indexes  []indexInfo // secondary indexes (index.go)
	// overlay is the transaction's overlay the table comes from, if a
	// session's transaction created it (ddltxn.go).
	overlay *txnOverlay
}

// checkExpr is a CHECK constraint compiled over the table's row.
type checkExpr struct {
	name string
	e    texpr
}

// tableCache maps a table (its database and name) to the tableInfo of the descriptor last
// seen for it. Descriptors are immutable, so pointer equality tells whether
// the cached entry is current; one entry per database and name keeps it
// bounded.
type tableCache struct{ m sync.Map }

// infoFor returns the tableInfo of a descriptor, building it on first use.
func (c *tableCache) infoFor(desc *catalog.TableDescriptor) (*tableInfo, error) {
	// Keyed by database and name: tables of the same name in two databases
	// are two entries (keyed by name alone they displaced each other, and
	// each statement on one rebuilt its info).
	key := tableCacheKey{db: desc.Database, name: desc.Name}
	if ti, ok := c.m.Load(key); ok && ti.(*tableInfo).desc == desc {
		return ti.(*tableInfo), nil
	}
	ti, err := buildTableInfo(desc)
	if err != nil {
		return nil, err
	}
	c.m.Store(key, ti)
	return ti, nil
}

type tableCacheKey struct{ db, name string }

func buildTableInfo(desc *catalog.TableDescriptor) (*tableInfo, error) {
	ti := &tableInfo{desc: desc, cols: desc.Columns, pk: desc.PrimaryKeyIndexes(),
		inPK: make([]bool, len(desc.Columns)), defaults: make([]texpr, len(desc.Columns))}
	for _, i := range ti.pk {
		if i < 0 {
			return nil, errors.AssertionFailedf("table %q: primary key names a missing column", desc.Name)
		}
		ti.inPK[i] = true
	}
	rcols := make([]rowenc.Column, len(desc.Columns))
	for i, c := range desc.Columns {
		rcols[i] = rowenc.Column{ID: c.ID, Type: c.Type}
		if !c.Hidden {
			ti.visible = append(ti.visible, i)
		}
		if c.AbsentExpr != "" && c.AbsentExpr != "NULL" {
			abs, err := checkDefault(c.AbsentExpr, c.Type, c.Mod, c.Name)
			if err != nil {
				return nil, errors.Wrapf(err, "table %q", desc.Name)
			}
			if k, ok := abs.(*constExpr); ok {
				rcols[i].HasDefault, rcols[i].Absent = true, k.d
			}
		}
		if c.DefaultExpr == "" {
			continue
		}
		def, err := checkDefault(c.DefaultExpr, c.Type, c.Mod, c.Name)
		if err != nil {
			return nil, errors.Wrapf(err, "table %q", desc.Name)
		}
		ti.defaults[i] = def
		if c.AbsentExpr != "" {
			continue // rows without the column read AbsentExpr
		}
		rcols[i].HasDefault = true
		// A row without the column reads as the default when the default
		// is a constant; a volatile default cannot be replayed on read.
		if k, ok := def.(*constExpr); ok {
			rcols[i].Absent = k.d
		}
	}
	layout, err := rowenc.NewLayout(desc.ID, rcols, ti.pk)
	if err != nil {
		return nil, err
	}
	ti.layout = layout
	for _, ck := range desc.Checks {
		e, err := compileCheck(ti, ck.Expr)
		if err != nil {
			return nil, errors.Wrapf(err, "table %q: CHECK constraint %q", desc.Name, ck.Name)
		}
		ti.checks = append(ti.checks, checkExpr{name: ck.Name, e: e})
	}
	if err := buildIndexInfos(ti); err != nil {
		return nil, err
	}
	return ti, nil
}

// checkDefault parses and type-checks a DEFAULT expression; constant ones
// are folded to a constExpr.
func checkDefault(src string, t types.T, mod types.Mod, col string) (texpr, error) {
	e, err := parser.ParseExpr(src)
	if err != nil {
		return nil, err
	}
	return checkDefaultExpr(e, t, mod, col)
}

func checkDefaultExpr(e parser.Expr, t types.T, mod types.Mod, col string) (texpr, error) {
	a := &analyzer{params: newParamSet(0, nil), clause: "DEFAULT", noCols: true, target: col}
	var hasPlaceholder bool
	parser.WalkExpr(e, func(x parser.Expr) bool {
		if _, ok := x.(*parser.Placeholder); ok {
			hasPlaceholder = true
		}
		return true
	})
	if hasPlaceholder {
		return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "placeholders are not allowed in DEFAULT expressions")
	}
	te, err := a.check(e, t)
	if err != nil {
		return nil, err
	}
	te, err = coerce(te, t, col)
	if err != nil {
		return nil, err
	}
	if !mod.IsZero() {
		if te, err = withMod(te, mod); err != nil {
			return nil, err
		}
	}
	if isConstant(te) {
		ec := &evalCtx{ctx: context.Background()}
		d, err := ec.eval(te)
		if err != nil {
			return nil, err
		}
		return &constExpr{t: t, d: d}, nil
	}
	return te, nil
}

// scopeFor is the scope of a statement over one table: its columns at
// offset, reachable by the table's name and alias.
func (ti *tableInfo) scope(offset int, names ...string) scopeTable {
	st := scopeTable{names: names, offset: offset}
	for _, c := range ti.cols {
		st.cols = append(st.cols, scopeCol{name: c.Name, t: c.Type, mod: c.Mod})
	}
	return st
}

// resolveTable finds a user table by a possibly qualified name; db is the
// session's database.
func (e *Executor) resolveTable(s *session, db string, n parser.TableName) (*tableInfo, error) {
	tdb, name, virt, err := e.classifyTableName(db, n)
	if err != nil {
		return nil, err
	}
	if virt {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInsufficientPrivilege, "%s is a virtual table and cannot be modified", n.String()),
			"only SELECT works on system and crdb_internal tables")
	}
	return e.tableInfoByName(s, tdb, name)
}

// tableInfoByName is the tableInfo of table name of database db as
// session s sees it (lookupTable): one of its transaction's own tables
// gets a tableInfo of its own, never cached for other sessions.
func (e *Executor) tableInfoByName(s *session, db, name string) (*tableInfo, error) {
	desc, ov, err := e.lookupTable(s, db, name)
	if err != nil {
		return nil, err
	}
	if desc == nil {
		return nil, undefinedTable(name)
	}
	if ov != nil {
		ti, err := buildTableInfo(desc)
		if err != nil {
			return nil, err
		}
		ti.overlay = ov
		return ti, nil
	}
	return e.tables.infoFor(desc)
}

// classifyTableName resolves a table name in the session's database cur:
// it returns the table's database and name, or for a name in a virtual
// schema (system, crdb_internal, ...) virt=true with the name qualified
// ("system.local"). A name qualified by a database (db.public.t, or db.t
// as CockroachDB accepts it) names a table of that database, which must
// exist.
func (e *Executor) classifyTableName(cur string, n parser.TableName) (db, name string, virt bool, err error) {
	db = normalizeDatabase(cur)
	switch len(n.Parts) {
	case 1:
		return db, n.Parts[0], false, nil
	case 2:
		switch n.Parts[0] {
		case "public", "system", "crdb_internal", "pg_catalog", "information_schema":
		default:
			if e.catalog.HasDatabase(n.Parts[0]) {
				return n.Parts[0], n.Parts[1], false, nil
			}
		}
	case 3:
		if !e.catalog.HasDatabase(n.Parts[0]) {
			return "", "", false, unknownDatabase(n.Parts[0])
		}
		db = n.Parts[0]
	}
	schema, table := n.Schema(), n.Table()
	switch schema {
	case "public":
		return db, table, false, nil
	case "system", "crdb_internal", "pg_catalog", "information_schema":
		return db, schema + "." + table, true, nil
	}
	return "", "", false, pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeUndefinedTable, "relation %q does not exist", n.String()),
		"user tables live in the schema public; virtual tables in system and crdb_internal")
}

// compileCheck type-checks a CHECK expression over the table's row: a
// BOOL of the row's columns, without subqueries or aggregates.
func compileCheck(ti *tableInfo, src string) (texpr, error) {
	e, err := parser.ParseExpr(src)
	if err != nil {
		return nil, err
	}
	var bad error
	parser.WalkExpr(e, func(x parser.Expr) bool {
		switch v := x.(type) {
		case *parser.Subquery:
			bad = unsupported("cannot use a subquery in a CHECK constraint")
		case *parser.Placeholder:
			bad = unsupported("placeholders are not allowed in CHECK constraints")
		case *parser.FuncCall:
			if isAggregateName(v.FuncName()) {
				bad = pgerror.Newf("42803", "aggregate functions are not allowed in check constraints")
			}
		}
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	a := &analyzer{params: newParamSet(0, nil), clause: "CHECK", tables: []scopeTable{ti.scope(0, ti.desc.Name)}}
	return a.checkBool(e, "CHECK")
}

// checkRow enforces a row's NOT NULL and CHECK constraints: a CHECK that
// is false fails with 23514 (NULL passes, as in SQL).
func checkRow(ctx context.Context, e *Executor, ti *tableInfo, row []types.Datum) error {
	if err := checkNotNull(ti, row); err != nil {
		return err
	}
	if len(ti.checks) == 0 {
		return nil
	}
	ec := &evalCtx{ctx: ctx, exec: e, row: row}
	for _, ck := range ti.checks {
		v, err := ec.eval(ck.e)
		if err != nil {
			return err
		}
		if v == false {
			return pgerror.Newf("23514", "new row for relation %q violates check constraint %q", ti.desc.Name, ck.name)
		}
	}
	return nil
}
