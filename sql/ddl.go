package sql

import (
	"context"
	"fmt"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
)

// ddlPlan executes a DDL statement. DDL is analyzed when it runs, not when
// it is prepared: what it does depends on the schema at that moment.
type ddlPlan struct {
	e    *Executor
	stmt parser.Stmt
	// builder and what replace stmt for a descriptor change made by the
	// executor itself (commitSchema).
	builder func(context.Context) ([]catalog.TableDescriptor, error)
	what    string
	// pendingOK: the plan writes or settles a transaction's pending
	// records (ddltxn.go); any other plan that would rewrite a record
	// holding a pending change fails instead (its build cloned it).
	pendingOK bool
}

func (p *ddlPlan) columns() []pgwire.Column { return nil }
func (p *ddlPlan) stale() bool              { return false }

func (p *ddlPlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	if t, ok := p.stmt.(*parser.Truncate); ok {
		return p.e.truncate(ctx, t)
	}
	if s := sessionOf(ctx); s != nil && s.txn.state == txnOpen && p.builder == nil {
		return p.execInTxn(ctx, s)
	}
	p.e.ddlMu.Lock()
	defer p.e.ddlMu.Unlock()
	var tag string
	switch s := p.stmt.(type) {
	case *parser.CreateTable:
		tag = "CREATE TABLE"
	case *parser.DropTable:
		tag = "DROP TABLE"
	case *parser.AlterTableAddColumn, *parser.AlterTableAddPrimaryKey:
		tag = "ALTER TABLE"
	case *parser.CreateIndex, *parser.DropIndex, *parser.AlterTable:
		tag = s.StatementTag()
	case *parser.CreateDatabase:
		tag = "CREATE DATABASE"
	case *parser.DropDatabase:
		tag = "DROP DATABASE"
		if normalizeDatabase(currentDB(ctx)) == s.Name {
			return pgwire.Result{}, pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeObjectInUse, "cannot drop the currently open database"),
				"connect to another database first (for example \\c defaultdb in psql, or SET database = defaultdb)")
		}
	default:
		return pgwire.Result{}, errors.AssertionFailedf("not DDL: %T", p.stmt)
	}
	var (
		changed []catalog.TableDescriptor
		notices []pgwire.Notice
		err     error
	)
	switch s := p.stmt.(type) {
	case *parser.AlterTableAddPrimaryKey:
		changed, notices, err = p.e.addPrimaryKey(ctx, s)
	case *parser.CreateIndex:
		changed, notices, err = p.e.createIndex(ctx, s)
	case *parser.DropIndex:
		changed, notices, err = p.e.dropIndexes(ctx, s)
	case *parser.AlterTable:
		changed, notices, err = p.e.alterTable(ctx, s)
	default:
		changed, err = p.commit(ctx)
	}
	if len(changed) == 0 { // failed, or IF [NOT] EXISTS made it a no-op
		if err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: tag, Notices: notices}, nil
	}
	switch p.stmt.(type) {
	case *parser.DropTable, *parser.DropDatabase:
		// Delete the rows only after the tombstones are durable (here
		// and on their way to the peers, or committed in group 0): a
		// crash in between leaves unreachable garbage, never a live table
		// without its rows. At 2.1 the fence goes up first, so that a
		// node that has not learned of the DROP yet cannot write into
		// the table after its rows are deleted.
		var ops []kvpb.Op
		for _, d := range changed {
			if d.IsDatabase {
				continue
			}
			if p.e.fencesActive() {
				ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: keys.TableFenceKey(d.ID), Value: fenceValue(fenceDropped)})
			}
		}
		for _, d := range changed {
			if d.IsDatabase {
				continue
			}
			start, end := rowenc.TableSpan(d.ID)
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end})
			if p.e.fencesActive() {
				ops = append(ops, indexSpanOp(d.ID))
			}
		}
		if err := p.e.writeFencesThenRanges(ctx, ops); err != nil {
			kerr := kvError(err)
			return pgwire.Result{}, pgerror.WithHintf(pgerror.WithCode(
				errors.Wrap(kerr, "the table was dropped, but deleting its rows failed"), pgerror.GetCode(kerr)),
				"the table is gone and its rows are unreachable; they only take space")
		}
	}
	if err != nil {
		return pgwire.Result{}, err
	}
	if _, ok := p.stmt.(*parser.CreateTable); ok && len(changed) > 1 {
		// The referenced tables' fences, raised with the new table.
		if err := p.e.raiseFences(ctx, changed[1:]); err != nil {
			return pgwire.Result{}, err
		}
		changed = changed[:1]
	}
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		if err := s.afterDDL(ctx, p.stmt, changed); err != nil {
			return pgwire.Result{}, grantsAfterDDLFailed(p.stmt, changed, s.args.User, err)
		}
	}
	return pgwire.Result{Tag: tag, Notices: notices}, nil
}

// grantsAfterDDLFailed is the error of a CREATE TABLE whose creator's
// privileges, or a DROP whose grants, could not be written after the schema
// change itself committed: it says what happened and what to do.
func grantsAfterDDLFailed(stmt parser.Stmt, changed []catalog.TableDescriptor, user string, err error) error {
	code := pgerror.GetCode(err)
	if _, ok := stmt.(*parser.CreateTable); ok && len(changed) > 0 {
		return pgerror.WithHintf(pgerror.WithCode(errors.Wrapf(err,
			"table %s was created, but granting its privileges to its creator failed", changed[0].Name), code),
			"an admin can run GRANT ALL ON TABLE %s TO %s", changed[0].Name, user)
	}
	return pgerror.WithHintf(pgerror.WithCode(errors.Wrap(err, "the drop committed, but deleting its grants failed"), code),
		"the remaining grants name an object that no longer exists and grant nothing")
}

// writeFencesThenRanges writes the point ops of ops, then its range
// deletions: a batch may not mix them.
func (e *Executor) writeFencesThenRanges(ctx context.Context, ops []kvpb.Op) error {
	var points, ranges []kvpb.Op
	for _, op := range ops {
		if op.Kind == kvpb.OpDeleteRange {
			ranges = append(ranges, op)
		} else {
			points = append(points, op)
		}
	}
	for _, batch := range [][]kvpb.Op{points, ranges} {
		if len(batch) == 0 {
			continue
		}
		if err := e.cfg.DB.Write(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// build computes the descriptors the statement installs, against the
// catalog as it is now, without installing them.
func (p *ddlPlan) build(ctx context.Context) ([]catalog.TableDescriptor, error) {
	if p.builder != nil {
		return p.builder(ctx)
	}
	switch s := p.stmt.(type) {
	case *parser.CreateTable:
		d, err := p.e.createTable(ctx, s)
		if err != nil || d == nil {
			return nil, err
		}
		// The tables its foreign keys reference get their fences raised.
		return append([]catalog.TableDescriptor{*d}, p.e.parentBumps(d, d.ForeignKeys)...), nil
	case *parser.DropTable:
		return p.e.dropTables(ctx, s)
	case *parser.AlterTableAddColumn:
		return one(p.e.addColumn(ctx, s))
	case *parser.CreateDatabase:
		return one(p.e.createDatabase(ctx, s))
	case *parser.DropDatabase:
		return p.e.dropDatabase(s)
	}
	return nil, errors.AssertionFailedf("not DDL: %T", p.stmt)
}

// commit commits what the plan builds, through group 0 or the pre-Raft
// procedure.
func (p *ddlPlan) commit(ctx context.Context) ([]catalog.TableDescriptor, error) {
	if log := p.e.currentSchemaLog(); log != nil {
		return p.commitThroughLog(ctx, log)
	}
	return p.applyPreRaft(ctx)
}

// describe names the change in group 0's log.
func (p *ddlPlan) describe() string {
	if p.stmt == nil {
		return p.what
	}
	return p.stmt.String()
}

// applyPreRaft is the pre-Raft procedure: install the descriptors in this
// node's catalog one by one, then push whatever was installed to the live
// peers, even when a later table of a DROP TABLE list failed.
func (p *ddlPlan) applyPreRaft(ctx context.Context) ([]catalog.TableDescriptor, error) {
	built, err := p.build(ctx)
	var applied []catalog.TableDescriptor
	for _, d := range built {
		if aerr := p.e.catalog.Apply(d); aerr != nil {
			// Tables dropped so far stay dropped; their rows are deleted
			// by the caller.
			err = aerr
			break
		}
		applied = append(applied, d)
	}
	if len(applied) > 0 {
		p.e.pushSchema(ctx, applied)
	}
	return applied, err
}

// maxSchemaAttempts bounds how often a DDL statement is built again after
// losing a race with a concurrent schema change committed through group 0.
const maxSchemaAttempts = 10

// commitThroughLog runs the statement through the SchemaLog: a read barrier
// (BeginDDL), the descriptors built against the latest schema, and one
// commit conditional on that schema; a lost race builds the statement again
// on the newer schema (so that, for example, the second of two concurrent
// CREATE TABLE t fails with 42P07 as it would have run after the first).
func (p *ddlPlan) commitThroughLog(ctx context.Context, log SchemaLog) ([]catalog.TableDescriptor, error) {
	txn, release, err := log.BeginDDL(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { release() }()
	if txn == nil {
		return p.applyPreRaft(ctx)
	}
	for attempt := 1; ; attempt++ {
		built, err := p.build(ctx)
		if err != nil || len(built) == 0 {
			return nil, err
		}
		if !p.pendingOK {
			for _, d := range built {
				if d.Next != nil {
					// A transaction's change of this table is pending:
					// rewriting the record would lose it (or, published
					// later, lose this one).
					return nil, changingElsewhere(d.Name)
				}
			}
		}
		err = txn.Commit(ctx, built, p.describe())
		if err == nil {
			return built, nil
		}
		if !errors.Is(err, ErrSchemaChanged) {
			return nil, err
		}
		if attempt >= maxSchemaAttempts {
			return nil, pgerror.WithHintf(pgerror.WithCode(errors.Wrapf(err,
				"restart transaction: concurrent schema changes kept winning (%d attempts)", attempt),
				pgerror.CodeSerializationFailure), "retry the statement")
		}
		release()
		release = func() {}
		if txn, release, err = log.BeginDDL(ctx); err != nil {
			release = func() {}
			return nil, err
		}
		if txn == nil {
			return nil, errors.AssertionFailedf("the schema log went back to the pre-Raft procedure")
		}
	}
}

func one(d *catalog.TableDescriptor, err error) ([]catalog.TableDescriptor, error) {
	if err != nil || d == nil {
		return nil, err
	}
	return []catalog.TableDescriptor{*d}, nil
}

// truncate deletes every row of the tables in one atomic write. It is not
// DDL: the descriptors do not change, so no other node needs to hear of it.
func (e *Executor) truncate(ctx context.Context, s *parser.Truncate) (pgwire.Result, error) {
	var checks, ops []kvpb.Op
	var tables []*tableInfo
	targets, err := e.truncateTargets(ctx, s)
	if err != nil {
		return pgwire.Result{}, err
	}
	for _, ti := range targets {
		if err := checkWritable(ti); err != nil {
			return pgwire.Result{}, err
		}
		if e.fencesActive() {
			checks = append(checks, fenceCheck(ti.desc))
			tables = append(tables, ti)
		}
		start, end := rowenc.TableSpan(ti.desc.ID)
		ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end})
		if ti.hasIndexes() {
			ops = append(ops, indexSpanOp(ti.desc.ID))
		}
	}
	if err := e.kv(ctx).Write(ctx, append(checks, ops...)); err != nil {
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) && cf.Index < len(tables) {
			return pgwire.Result{}, e.fenceMoved(ctx, tables[cf.Index].desc, cf)
		}
		return pgwire.Result{}, kvError(err)
	}
	return pgwire.Result{Tag: "TRUNCATE TABLE"}, nil
}

// truncateTargets resolves the tables TRUNCATE empties: the ones it
// names and, with CASCADE, every table whose foreign keys reference one of
// them, transitively. Without CASCADE a table referenced by a table not
// named is refused, as PostgreSQL refuses it: emptying it would leave the
// other's rows pointing at nothing.
func (e *Executor) truncateTargets(ctx context.Context, s *parser.Truncate) ([]*tableInfo, error) {
	var out []*tableInfo
	named := map[uint32]bool{}
	for _, n := range s.Names {
		ti, err := e.resolveTable(sessionOf(ctx), currentDB(ctx), n)
		if err != nil {
			return nil, err
		}
		if !named[uint32(ti.desc.ID)] {
			named[uint32(ti.desc.ID)] = true
			out = append(out, ti)
		}
	}
	for i := 0; i < len(out); i++ {
		for _, in := range e.inbound(out[i].desc) {
			if named[uint32(in.child.ID)] {
				continue
			}
			if !s.Cascade {
				err := pgerror.Newf(pgerror.CodeFeatureNotSupported, "cannot truncate a table referenced in a foreign key constraint")
				err = errors.WithDetail(err, fmt.Sprintf("Table %q references %q.", in.child.Name, out[i].desc.Name))
				return nil, pgerror.WithHintf(err, "Truncate table %q at the same time, or use TRUNCATE ... CASCADE.", in.child.Name)
			}
			ti, err := e.tableInfoByName(sessionOf(ctx), in.child.Database, in.child.Name)
			if err != nil {
				return nil, err
			}
			named[uint32(in.child.ID)] = true
			out = append(out, ti)
		}
	}
	return out, nil
}

func (e *Executor) pushSchema(ctx context.Context, descs []catalog.TableDescriptor) {
	if e.cfg.Peers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.PushTimeout)
	defer cancel()
	e.cfg.Peers.PushSchema(ctx, descs)
}

// userTableName resolves the name of a table to create, drop or alter in
// the session's database: it returns the table's database as descriptors
// hold it ("" for defaultdb) and its name.
func (e *Executor) userTableName(ctx context.Context, n parser.TableName, verb string) (db, name string, err error) {
	db, name, virt, err := e.classifyTableName(currentDB(ctx), n)
	if err != nil {
		return "", "", err
	}
	if virt {
		return "", "", pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInsufficientPrivilege, "cannot %s %s: it is a virtual table", verb, n.String()),
			"user tables live in the schema public")
	}
	if db == catalog.DefaultDatabase {
		db = ""
	}
	return db, name, nil
}

// types21Active reports whether columns may use the types and type
// modifiers of release 2.1: their rows and descriptors are formats a 2.0
// binary cannot read, so they are written only once every node runs 2.1
// and the cluster is finalized to it.
func (e *Executor) types21Active() bool {
	return e.cfg.Versions != nil && clusterversion.IsActive(e.cfg.Versions, clusterversion.V2_1)
}

// columnMod returns the modifier a new column is created with. Before
// 2.1 a type of 2.1 is refused with 0A000, and a modifier is dropped as
// 2.0 did (INTEGER and VARCHAR(10) were INT8 and STRING), so that the DDL
// a 2.0 cluster accepted keeps its meaning until the cluster is finalized.
func (e *Executor) columnMod(c *parser.ColumnDef) (types.Mod, error) {
	if !types.NewInRelease21(c.Type, c.Mod) || e.types21Active() {
		return c.Mod, nil
	}
	if c.Type >= types.Decimal {
		active := "an older version"
		if e.cfg.Versions != nil {
			active = e.cfg.Versions.ActiveVersion().String()
		}
		return types.Mod{}, pgerror.WithHintf(
			unsupported("type %s needs cluster version %s; the cluster is at %s", c.Type, clusterversion.V2_1, active),
			"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s', or let it finalize automatically); "+
				"until then use INT, FLOAT, STRING, BYTES or BOOL", clusterversion.V2_1)
	}
	return types.Mod{}, nil
}

// addChecks names the CHECK constraints of a new table as PostgreSQL does
// (t_col_check, t_check, t_check1, ...) and validates them against it.
func (e *Executor) addChecks(desc *catalog.TableDescriptor, checks []*parser.CheckDef) error {
	if len(checks) == 0 {
		return nil
	}
	if !e.types21Active() {
		return pgerror.WithHintf(unsupported("CHECK constraints need cluster version %s", clusterversion.V2_1),
			"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s', or let it finalize automatically)", clusterversion.V2_1)
	}
	used := map[string]bool{desc.PrimaryKeyName(): true}
	for _, ck := range checks {
		name := ck.Name
		if name == "" {
			base := desc.Name + "_check"
			if ck.Column != "" {
				base = desc.Name + "_" + ck.Column + "_check"
			}
			name = base
			for n := 1; used[name]; n++ {
				name = fmt.Sprintf("%s%d", base, n)
			}
		}
		if used[name] {
			return pgerror.Newf("42710", "constraint %q for relation %q already exists", name, desc.Name)
		}
		used[name] = true
		desc.Checks = append(desc.Checks, catalog.CheckConstraint{Name: name, Expr: ck.Expr.String()})
	}
	_, err := buildTableInfo(desc)
	return err
}

func (e *Executor) createTable(ctx context.Context, s *parser.CreateTable) (*catalog.TableDescriptor, error) {
	db, name, err := e.userTableName(ctx, s.Name, "create")
	if err != nil {
		return nil, err
	}
	if db != "" && !e.catalog.HasDatabase(db) {
		// The session's database was dropped by another session.
		return nil, unknownDatabase(db)
	}
	exists, err := e.nameTaken(ctx, sessionOf(ctx), db, name)
	if err != nil {
		return nil, err
	}
	if exists {
		if s.IfNotExists {
			return nil, nil
		}
		return nil, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", name)
	}
	// The modification time is taken when the statement reads the catalog:
	// a newer change merged from a peer before Apply makes Apply fail.
	modTime := e.catalog.Clock().Now()

	desc := &catalog.TableDescriptor{Name: name, Database: db, Version: 1, ModTime: modTime}
	var pkNames []string
	for i, c := range s.Columns {
		if desc.ColumnIndex(c.Name) >= 0 {
			return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q specified more than once", c.Name)
		}
		mod, err := e.columnMod(c)
		if err != nil {
			return nil, err
		}
		cd := catalog.ColumnDescriptor{ID: int32(i + 1), Name: c.Name, Type: c.Type, Mod: mod,
			Nullable: c.Nullable != parser.NotNull, Hidden: c.Hidden}
		if c.PrimaryKey {
			if pkNames != nil || s.PrimaryKey != nil {
				return nil, pgerror.Newf(pgerror.CodeInvalidTableDefinition, "multiple primary keys for table %q are not allowed", name)
			}
			pkNames = []string{c.Name}
		}
		if c.Default != nil {
			if _, err := checkDefaultExpr(c.Default, c.Type, mod, c.Name); err != nil {
				return nil, err
			}
			cd.DefaultExpr = c.Default.String()
		}
		desc.Columns = append(desc.Columns, cd)
	}
	if s.PrimaryKey != nil {
		pkNames = s.PrimaryKey
	}
	if pkNames == nil {
		// Like CockroachDB: a table without a primary key gets a hidden
		// rowid key column filled by unique_rowid().
		rowid := "rowid"
		for n := 1; desc.ColumnIndex(rowid) >= 0; n++ {
			rowid = fmt.Sprintf("rowid_%d", n)
		}
		desc.Columns = append(desc.Columns, catalog.ColumnDescriptor{ID: int32(len(desc.Columns) + 1),
			Name: rowid, Type: types.Int, DefaultExpr: "unique_rowid()", Hidden: true})
		pkNames = []string{rowid}
	}
	if len(desc.Columns) == 0 {
		return nil, pgerror.Newf(pgerror.CodeInvalidTableDefinition, "table %q must have at least one column", name)
	}
	for _, pkName := range pkNames {
		i := desc.ColumnIndex(pkName)
		if i < 0 {
			return nil, pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q named in key does not exist", pkName)
		}
		for _, id := range desc.PrimaryKey {
			if id == desc.Columns[i].ID {
				return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q appears twice in primary key constraint", pkName)
			}
		}
		for _, c := range s.Columns {
			if c.Name == pkName && c.Nullable == parser.Null {
				return nil, pgerror.Newf(pgerror.CodeInvalidTableDefinition,
					"conflicting NULL/NOT NULL declarations for column %q: it is in the primary key", pkName)
			}
		}
		if !rowenc.KeyColumnAllowed(desc.Columns[i].Type) {
			return nil, pgerror.WithHintf(
				unsupported("column %q of type %s cannot be part of a primary key", pkName, desc.Columns[i].Type),
				"INTERVAL and JSONB values have no key order; key the table by another column")
		}
		desc.Columns[i].Nullable = false
		desc.PrimaryKey = append(desc.PrimaryKey, desc.Columns[i].ID)
	}
	desc.NextColumnID = int32(len(desc.Columns) + 1)
	if err := e.addChecks(desc, s.Checks); err != nil {
		return nil, err
	}
	if len(s.Uniques) > 0 && !e.fencesActive() {
		return nil, e.indexesRefused("a UNIQUE constraint or an INDEX in CREATE TABLE")
	}
	if len(s.ForeignKeys) > 0 && !e.fencesActive() {
		return nil, e.indexesRefused("FOREIGN KEY")
	}
	for _, f := range s.ForeignKeys {
		fk, _, err := e.fkDef(sessionOf(ctx), db, desc, f)
		if err != nil {
			return nil, err
		}
		desc.ForeignKeys = append(desc.ForeignKeys, fk)
	}
	for _, u := range s.Uniques {
		// The table is empty: its unique indexes are public at once.
		ix, err := e.newIndex(db, desc, u.Name, !u.NotUnique, u.Columns, u.Storing)
		if err != nil {
			return nil, err
		}
		desc.Indexes = append(desc.Indexes, ix)
		desc.NextIndexID = ix.ID + 1
	}

	n, err := e.cfg.DB.Increment(ctx, keys.TableIDGenKey(), 1)
	if err != nil {
		return nil, kvError(err)
	}
	desc.ID = n + catalog.FirstUserTableID
	for i := range desc.ForeignKeys {
		if desc.ForeignKeys[i].RefTable == 0 { // references itself
			desc.ForeignKeys[i].RefTable = desc.ID
		}
	}
	if _, err := e.cfg.DB.Increment(ctx, keys.ColumnIDGenKey(desc.ID), int64(len(desc.Columns))); err != nil {
		return nil, kvError(err)
	}
	return desc, nil
}

// dropTables builds a tombstone for each table. All names are resolved
// first, so a missing table (without IF EXISTS) drops nothing.
func (e *Executor) dropTables(ctx context.Context, s *parser.DropTable) ([]catalog.TableDescriptor, error) {
	type target struct {
		desc *catalog.TableDescriptor
		ts   catalog.Timestamp // taken when the descriptor was read
	}
	var cur []target
	for _, n := range s.Names {
		db, name, err := e.userTableName(ctx, n, "drop")
		if err != nil {
			return nil, err
		}
		d, ok := e.catalog.GetTable(db, name)
		if !ok {
			if s.IfExists {
				continue
			}
			return nil, undefinedTable(name)
		}
		cur = append(cur, target{desc: d, ts: e.catalog.Clock().Now()})
	}
	descs := make([]*catalog.TableDescriptor, len(cur))
	for i, t := range cur {
		descs[i] = t.desc
	}
	if err := e.checkDroppable(descs); err != nil {
		return nil, err
	}
	var out []catalog.TableDescriptor
	for _, t := range cur {
		tomb := t.desc.Clone()
		tomb.Dropped = true
		tomb.Version++
		tomb.ModTime = t.ts
		out = append(out, *tomb)
	}
	return out, nil
}

func (e *Executor) addColumn(ctx context.Context, s *parser.AlterTableAddColumn) (*catalog.TableDescriptor, error) {
	db, name, err := e.userTableName(ctx, s.Name, "alter")
	if err != nil {
		return nil, err
	}
	cur, ok := e.catalog.GetTable(db, name)
	if ss := sessionOf(ctx); ss != nil && ss.txn.overlay != nil {
		if d := ss.txn.overlay.get(catalog.TableKey(db, name)); d != nil {
			cur, ok = d, true
		}
	}
	if !ok {
		if s.IfExists {
			return nil, nil
		}
		return nil, undefinedTable(name)
	}
	modTime := e.catalog.Clock().Now()
	c := s.Column
	if cur.ColumnIndex(c.Name) >= 0 {
		if s.IfNotExists {
			return nil, nil
		}
		return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "column %q of relation %q already exists", c.Name, name)
	}
	if c.PrimaryKey {
		return nil, pgerror.WithHintf(unsupported("cannot add a primary key column to an existing table"),
			"the primary key is fixed when the table is created")
	}
	if len(c.Checks) > 0 {
		return nil, pgerror.WithHintf(unsupported("ALTER TABLE ADD COLUMN with a CHECK constraint is not supported"),
			"existing rows would not be checked; declare the CHECK when creating the table")
	}
	if c.Unique {
		return nil, pgerror.WithHintf(unsupported("ALTER TABLE ADD COLUMN with a UNIQUE constraint is not supported"),
			"add the column, then CREATE UNIQUE INDEX ON %s (%s)", quoteName(name), quoteName(c.Name))
	}
	if c.References != nil {
		return nil, pgerror.WithHintf(unsupported("ALTER TABLE ADD COLUMN with REFERENCES is not supported"),
			"declare the foreign key when creating the table")
	}
	mod, err := e.columnMod(c)
	if err != nil {
		return nil, err
	}
	cd := catalog.ColumnDescriptor{Name: c.Name, Type: c.Type, Mod: mod, Nullable: c.Nullable != parser.NotNull, Hidden: c.Hidden}
	var def texpr
	if c.Default != nil {
		if def, err = checkDefaultExpr(c.Default, c.Type, mod, c.Name); err != nil {
			return nil, err
		}
		if _, isConst := def.(*constExpr); !isConst {
			// Existing rows read the new column as its default, computed
			// when read; a volatile default would change on every read.
			return nil, pgerror.WithHintf(
				unsupported("ALTER TABLE ADD COLUMN with a non-constant DEFAULT (%s) is not supported", c.Default.String()),
				"use a constant DEFAULT, or add the column without one and UPDATE the rows")
		}
		cd.DefaultExpr = c.Default.String()
	}
	if !cd.Nullable && (def == nil || def.(*constExpr).d == nil) {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeNotNullViolation, "column %q of relation %q must have a non-NULL DEFAULT to be added as NOT NULL", c.Name, name),
			"existing rows read a new column as its DEFAULT: add DEFAULT <value>, or add the column as NULL")
	}
	n, err := e.cfg.DB.Increment(ctx, keys.ColumnIDGenKey(cur.ID), 1)
	if err != nil {
		return nil, kvError(err)
	}
	if n <= 0 || n > 1<<30 {
		return nil, errors.AssertionFailedf("column ID counter of table %d returned %d", cur.ID, n)
	}
	cd.ID = int32(n)
	next := cur.Clone()
	next.Columns = append(next.Columns, cd)
	if next.NextColumnID <= cd.ID {
		next.NextColumnID = cd.ID + 1
	}
	next.Version++
	next.ModTime = modTime
	return next, nil
}

// ---- SHOW TABLES / SHOW CREATE TABLE ----

type showTablesPlan struct {
	e  *Executor
	db string // "" for the session's database
}

func (p *showTablesPlan) columns() []pgwire.Column {
	return []pgwire.Column{
		{Name: "schema_name", Type: types.String}, {Name: "table_name", Type: types.String},
		{Name: "type", Type: types.String}, {Name: "owner", Type: types.String},
	}
}
func (p *showTablesPlan) stale() bool { return false }
func (p *showTablesPlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	db := p.db
	if db == "" {
		db = currentDB(ctx)
	} else if !p.e.catalog.HasDatabase(db) {
		return pgwire.Result{}, unknownDatabase(db)
	}
	var rows [][]types.Datum
	for _, d := range p.e.catalog.TablesIn(db) {
		rows = append(rows, []types.Datum{"public", d.Name, "table", "root"})
	}
	return pgwire.Result{Rows: rows, Tag: fmt.Sprintf("SELECT %d", len(rows))}, nil
}

type showCreatePlan struct {
	e    *Executor
	name parser.TableName
}

func (p *showCreatePlan) columns() []pgwire.Column {
	return []pgwire.Column{{Name: "table_name", Type: types.String}, {Name: "create_statement", Type: types.String}}
}
func (p *showCreatePlan) stale() bool { return false }
func (p *showCreatePlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	ti, err := p.e.resolveTable(sessionOf(ctx), currentDB(ctx), p.name)
	if err != nil {
		return pgwire.Result{}, err
	}
	return pgwire.Result{
		Rows: [][]types.Datum{{ti.desc.Name, p.e.createStatement(ti.desc)}},
		Tag:  "SELECT 1",
	}, nil
}
