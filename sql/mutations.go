package sql

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

// Concurrency without transactions. Every mutating statement writes all its
// rows in one atomic kvpb.DB Write, and every write that depends on what it
// read is a conditional put (OpCPut) expecting exactly the bytes it read (or
// the key's absence). A statement therefore applies entirely on the state it
// read, or not at all; when a concurrent writer got there first the Write
// fails with ConditionFailedError, and the statement re-reads and recomputes
// (up to maxRetries times, then 40001). Plain INSERT needs no retry: its
// condition is "the key is absent", and failing it is the 23505 the client
// must see.

type insertMode int

const (
	insertPlain     insertMode = iota
	insertBlind                // UPSERT writing every non-key column: OpPut
	insertDoNothing            // ON CONFLICT DO NOTHING
	insertDoUpdate             // ON CONFLICT DO UPDATE, or UPSERT of some columns
)

// setItem is one assignment of UPDATE or ON CONFLICT DO UPDATE.
type setItem struct {
	idx int // column position
	e   texpr
}

type insertPlan struct {
	e    *Executor
	ti   *tableInfo
	mode insertMode
	// rows holds, per VALUES row, one expression per table column (nil
	// means NULL).
	rows [][]texpr
	// set is evaluated over existing row ++ proposed (excluded) row.
	set       []setItem
	returning []texpr
	cols      []pgwire.Column
	// blindUpdate: ON CONFLICT DO UPDATE sets every non-key column from
	// constants, placeholders and excluded.* only, so the updated row does
	// not depend on the existing one and the statement needs no read (see
	// execBlindUpdate).
	blindUpdate bool
	// arbiter is the unique index ON CONFLICT (cols) names, when its
	// columns are not the primary key's (release 2.1); anyArbiter is ON
	// CONFLICT DO NOTHING without columns: a conflict on the primary key
	// or on any unique index skips the row.
	arbiter    *indexInfo
	anyArbiter bool
	// source is the query of INSERT ... SELECT; then rows is empty and
	// fromSource computes each table row (one expression per column, nil
	// for NULL) from a row of the query: its columns, converted to the
	// target columns' types, and the defaults of the others.
	source     *queryPlan
	fromSource []texpr
}

func (p *insertPlan) columns() []pgwire.Column { return p.cols }
func (p *insertPlan) stale() bool {
	return p.e.isStale(p.ti) || p.source != nil && p.source.stale()
}

func (e *Executor) analyzeInsert(s *parser.Insert, params *paramSet) (*insertPlan, error) {
	ti, err := e.resolveTable(params.s, params.db, s.Table)
	if err != nil {
		return nil, err
	}
	p := &insertPlan{e: e, ti: ti}
	tableName := ti.desc.Name

	// Target columns.
	targets := ti.visible
	if s.Columns != nil {
		targets = nil
		seen := map[int]bool{}
		for _, name := range s.Columns {
			i := ti.desc.ColumnIndex(name)
			if i < 0 {
				return nil, pgerror.WithHintf(undefinedColumn(name), "the columns of %s are: %s", quoteName(tableName), columnList(ti))
			}
			if seen[i] {
				return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "multiple assignments to the same column %q", name)
			}
			seen[i] = true
			targets = append(targets, i)
		}
	}

	if s.Select != nil {
		if err := p.analyzeSource(s.Select, s.Columns != nil, targets, params); err != nil {
			return nil, err
		}
	}

	// VALUES rows.
	a := &analyzer{params: params, clause: "VALUES", noCols: true}
	for _, row := range s.Rows {
		if row != nil && len(row) != len(s.Rows[0]) {
			return nil, pgerror.Newf(pgerror.CodeSyntaxError, "VALUES lists must all be the same length")
		}
		full := make([]texpr, len(ti.cols))
		copy(full, ti.defaults)
		if row != nil {
			if err := checkInsertWidth(len(row), len(targets), s.Columns != nil); err != nil {
				return nil, err
			}
			// Without a column list, fewer values fill the leading columns
			// and the rest take their defaults, as in PostgreSQL.
			for j, x := range row {
				i := targets[j]
				if _, isDefault := x.(parser.DefaultExpr); isDefault {
					continue
				}
				c := ti.cols[i]
				a.target = c.Name
				te, err := a.check(x, c.Type)
				a.target = ""
				if err != nil {
					return nil, err
				}
				if full[i], err = coerceColumn(te, &c); err != nil {
					return nil, err
				}
			}
		}
		p.rows = append(p.rows, full)
	}
	specified := map[int]bool{}
	for _, i := range targets {
		specified[i] = true
	}
	if p.source != nil && s.Columns == nil {
		specified = map[int]bool{}
		for _, i := range targets[:len(p.source.cols)] {
			specified[i] = true
		}
	}
	if len(s.Rows) > 0 && s.Columns == nil {
		// Without a column list, only the columns actually given values
		// count as specified (none for DEFAULT VALUES).
		specified = map[int]bool{}
		for _, i := range targets[:min(len(targets), len(s.Rows[0]))] {
			specified[i] = true
		}
	}

	// Conflict handling.
	switch {
	case s.Upsert:
		p.mode = insertBlind
		for i := range ti.cols {
			if !ti.inPK[i] && !specified[i] {
				p.mode = insertDoUpdate
			}
		}
		if p.mode == insertDoUpdate {
			// UPSERT of some columns updates only those in an existing row.
			for i := range ti.cols {
				if specified[i] && !ti.inPK[i] {
					p.set = append(p.set, setItem{idx: i, e: &colExpr{idx: len(ti.cols) + i, t: ti.cols[i].Type, name: ti.cols[i].Name}})
				}
			}
		}
	case s.OnConflict != nil:
		oc := s.OnConflict
		if oc.Columns != nil && !samePK(ti, oc.Columns) {
			if p.arbiter = uniqueIndexNamed(ti, oc.Columns); p.arbiter == nil {
				return nil, pgerror.WithHintf(
					pgerror.Newf(pgerror.CodeInvalidColumnReference, "there is no unique or exclusion constraint matching the ON CONFLICT specification"),
					"name the columns of the primary key (%s) or of a unique index", pkList(ti))
			}
		}
		p.anyArbiter = oc.Columns == nil && oc.DoNothing
		if oc.DoNothing {
			p.mode = insertDoNothing
			break
		}
		p.mode = insertDoUpdate
		sa := &analyzer{params: params, clause: "ON CONFLICT DO UPDATE",
			tables: []scopeTable{ti.scope(0, tableName), ti.scope(len(ti.cols), "excluded")}}
		sa.tables[1].qualifiedOnly = true
		if p.set, err = analyzeSet(sa, ti, oc.Set); err != nil {
			return nil, err
		}
		for _, si := range p.set {
			if ti.inPK[si.idx] {
				return nil, pgerror.WithHintf(
					unsupported("ON CONFLICT DO UPDATE cannot change primary key column %q", ti.cols[si.idx].Name),
					"use UPDATE to change a primary key")
			}
		}
		p.blindUpdate = setIsBlind(ti, p.set)
	}
	if ti.hasIndexes() || e.fkInvolved(ti) {
		// Maintaining an index or checking a foreign key needs the old
		// row: no blind writes.
		p.blindUpdate = false
		if p.mode == insertBlind {
			p.mode = insertDoUpdate
			for i := range ti.cols {
				if !ti.inPK[i] {
					p.set = append(p.set, setItem{idx: i, e: &colExpr{idx: len(ti.cols) + i, t: ti.cols[i].Type, name: ti.cols[i].Name}})
				}
			}
		}
	}

	if p.returning, p.cols, err = analyzeReturning(params, ti, s.Returning); err != nil {
		return nil, err
	}
	return p, nil
}

// checkInsertWidth checks that n values (a VALUES row, or the query's
// columns) fit targets columns: never more, and, when the statement lists
// its columns, not fewer.
func checkInsertWidth(n, targets int, listed bool) error {
	if n > targets {
		return pgerror.Newf(pgerror.CodeSyntaxError, "INSERT has more expressions than target columns, %d expressions for %d targets", n, targets)
	}
	if n < targets && listed {
		return pgerror.Newf(pgerror.CodeSyntaxError, "INSERT has more target columns than expressions, %d expressions for %d targets", n, targets)
	}
	return nil
}

// analyzeSource plans the query of INSERT ... SELECT: its columns go to
// targets in order (without a column list, fewer columns fill the leading
// ones and the rest take their defaults, as in PostgreSQL), each converted
// to its column's type as a VALUES item would be.
func (p *insertPlan) analyzeSource(q parser.SelectStatement, listed bool, targets []int, params *paramSet) error {
	src, err := p.e.analyzeQueryPlan(q, params)
	if err != nil {
		return err
	}
	ti := p.ti
	n := len(src.cols)
	if err := checkInsertWidth(n, len(targets), listed); err != nil {
		return err
	}
	full := make([]texpr, len(ti.cols))
	copy(full, ti.defaults)
	for j := 0; j < n; j++ {
		i := targets[j]
		c := ti.cols[i]
		t := src.outTypes[j]()
		var x texpr = &colExpr{idx: j, t: t, name: src.cols[j].Name}
		if t == types.Unknown {
			// SELECT NULL, or an untyped placeholder: it takes the
			// column's type.
			x = &castExpr{e: x, to: c.Type}
		}
		te, err := coerceColumn(x, &c)
		if err != nil {
			return err
		}
		full[i] = te
	}
	p.source, p.fromSource = src, full
	return nil
}

// sourceRows runs the query of INSERT ... SELECT and computes the table
// rows from its rows. It needs release 2.1's transactions: the query and
// the writes act on one state (runPlan runs the statement in a
// transaction of its own outside one), and the writes are bounded by a
// transaction's limits.
func (p *insertPlan) sourceRows(ec *evalCtx) ([][]texpr, [][]types.Datum, error) {
	if !p.e.txnsActive() {
		return nil, nil, pgerror.WithHintf(unsupported("INSERT ... SELECT needs cluster version 2.1"),
			"finalize the upgrade (SET CLUSTER SETTING version = '2.1'), or list the rows with VALUES (...), (...)")
	}
	rows, err := p.source.root.run(&evalCtx{ctx: ec.ctx, exec: ec.exec, params: ec.params})
	if err != nil {
		return nil, nil, err
	}
	exprs := make([][]texpr, len(rows))
	for i := range rows {
		exprs[i] = p.fromSource
	}
	return exprs, rows, nil
}

// uniqueIndexNamed returns the public unique index of ti whose columns are
// exactly cols, in any order.
func uniqueIndexNamed(ti *tableInfo, cols []string) *indexInfo {
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		if !ii.desc.Unique || ii.desc.WriteOnly || len(ii.cols) != len(cols) {
			continue
		}
		match := true
		for _, pos := range ii.cols {
			match = match && slices.Contains(cols, ti.cols[pos].Name)
		}
		if match {
			return ii
		}
	}
	return nil
}

// conflictTarget finds the existing row a proposed row (with primary key
// key) conflicts with under the statement's ON CONFLICT: the row with the
// same primary key, or with the same values of the arbiter index. Without
// a conflict, found is false; a row whose primary key is taken while the
// arbiter is an index is a unique violation, as in PostgreSQL.
func (p *insertPlan) conflictTarget(ctx context.Context, key []byte, row []types.Datum) (target, old []byte, found bool, err error) {
	db := p.e.kv(ctx)
	get := func(k []byte) ([]byte, bool, error) {
		v, ok, err := db.Get(ctx, k)
		return v, ok, kvErrorOrNil(err)
	}
	indexed := func(ii *indexInfo) ([]byte, []byte, bool, error) {
		ek, unique, err := ii.entry(p.ti.desc.ID, key, row)
		if err != nil || !unique {
			return nil, nil, false, err // a NULL never conflicts
		}
		rowKey, ok, err := get(ek)
		if err != nil || !ok {
			return nil, nil, false, err
		}
		old, ok, err := get(rowKey)
		return rowKey, old, ok, err
	}
	switch {
	case p.arbiter != nil:
		if target, old, found, err = indexed(p.arbiter); err != nil || found {
			return target, old, found, err
		}
		if _, taken, err := get(key); err != nil || taken {
			if err == nil {
				err = duplicateKey(p.ti, row)
			}
			return nil, nil, false, err
		}
		return key, nil, false, nil
	case p.anyArbiter:
		if old, found, err = get(key); err != nil || found {
			return key, old, found, err
		}
		for i := range p.ti.indexes {
			if ii := &p.ti.indexes[i]; ii.desc.Unique {
				if target, old, found, err = indexed(ii); err != nil || found {
					return target, old, found, err
				}
			}
		}
		return key, nil, false, nil
	}
	old, found, err = get(key)
	return key, old, found, err
}

// samePK reports whether cols names exactly the primary key's columns, in
// any order.
func samePK(ti *tableInfo, cols []string) bool {
	seen := map[int]bool{}
	for _, c := range cols {
		i := ti.desc.ColumnIndex(c)
		if i < 0 || !ti.inPK[i] {
			return false
		}
		seen[i] = true
	}
	return len(seen) == len(ti.pk)
}

func pkList(ti *tableInfo) string {
	var b bytes.Buffer
	for j, i := range ti.pk {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteName(ti.cols[i].Name))
	}
	return b.String()
}

func columnList(ti *tableInfo) string {
	var b bytes.Buffer
	for j, i := range ti.visible {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteName(ti.cols[i].Name))
	}
	return b.String()
}

// analyzeSet type-checks SET assignments against the table's columns.
func analyzeSet(a *analyzer, ti *tableInfo, set []*parser.UpdateExpr) ([]setItem, error) {
	var out []setItem
	seen := map[int]bool{}
	for _, u := range set {
		i := ti.desc.ColumnIndex(u.Column)
		if i < 0 {
			return nil, undefinedColumn(u.Column)
		}
		if seen[i] {
			return nil, pgerror.Newf(pgerror.CodeDuplicateColumn, "multiple assignments to the same column %q", u.Column)
		}
		seen[i] = true
		c := ti.cols[i]
		if u.Expr == nil { // SET c = DEFAULT
			out = append(out, setItem{idx: i, e: ti.defaults[i]})
			continue
		}
		a.target = c.Name
		te, err := a.check(u.Expr, c.Type)
		a.target = ""
		if err != nil {
			return nil, err
		}
		if te, err = coerceColumn(te, &c); err != nil {
			return nil, err
		}
		out = append(out, setItem{idx: i, e: te})
	}
	return out, nil
}

// analyzeReturning type-checks a RETURNING list over the table's row.
func analyzeReturning(params *paramSet, ti *tableInfo, ret []*parser.SelectExpr) ([]texpr, []pgwire.Column, error) {
	if ret == nil {
		return nil, nil, nil
	}
	a := &analyzer{params: params, clause: "RETURNING", tables: []scopeTable{ti.scope(0, ti.desc.Name)}}
	var out []texpr
	var cols []pgwire.Column
	for _, se := range ret {
		if se.Star {
			for _, i := range ti.visible {
				out = append(out, &colExpr{idx: i, t: ti.cols[i].Type, name: ti.cols[i].Name})
				cols = append(cols, pgwire.Column{Name: ti.cols[i].Name})
			}
			continue
		}
		te, err := a.check(se.Expr, types.Unknown)
		if err != nil {
			return nil, nil, err
		}
		name := se.Alias
		if name == "" {
			name = exprName(se.Expr)
		}
		out = append(out, te)
		cols = append(cols, pgwire.Column{Name: name})
	}
	return out, cols, nil
}

func finishReturning(out []texpr, cols []pgwire.Column) {
	for i := range cols {
		t := out[i].typ()
		if t == types.Unknown {
			t = types.String
		}
		cols[i].Type = t
	}
}

// checkNotNull enforces NOT NULL (primary key columns included).
func checkNotNull(ti *tableInfo, row []types.Datum) error {
	for i, c := range ti.cols {
		if row[i] == nil && (!c.Nullable || ti.inPK[i]) {
			return notNullViolation(ti.desc.Name, c.Name)
		}
	}
	return nil
}

func (p *insertPlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	if err := p.e.checkSchemaForWrite(p.ti); err != nil {
		return pgwire.Result{}, err
	}
	defer p.e.holdRowEncoding()()
	ti := p.ti
	fks := p.e.fkInvolved(ti)
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	exprRows, srcRows := p.rows, [][]types.Datum(nil)
	if p.source != nil {
		var err error
		if exprRows, srcRows, err = p.sourceRows(ec); err != nil {
			return pgwire.Result{}, err
		}
	}
	// Proposed rows are computed once: volatile defaults (unique_rowid())
	// must not change between retries.
	rows := make([][]types.Datum, len(exprRows))
	keys := make([][]byte, len(exprRows))
	for r, exprs := range exprRows {
		if srcRows != nil {
			ec.row = srcRows[r]
		}
		row := make([]types.Datum, len(exprs))
		for i, x := range exprs {
			if x == nil {
				continue
			}
			d, err := ec.eval(x)
			if err != nil {
				return pgwire.Result{}, err
			}
			row[i] = d
		}
		if err := checkRow(ctx, p.e, ti, row); err != nil {
			return pgwire.Result{}, err
		}
		key, err := ti.layout.EncodeKey(row)
		if err != nil {
			return pgwire.Result{}, err
		}
		rows[r], keys[r] = row, key
	}

	// Rows proposing the same key twice.
	seen := make(map[string]int, len(keys))
	var skip []bool
	for r, k := range keys {
		if _, dup := seen[string(k)]; !dup {
			seen[string(k)] = r
			continue
		}
		switch p.mode {
		case insertPlain:
			return pgwire.Result{}, duplicateKey(ti, rows[r])
		case insertDoNothing:
			if skip == nil {
				skip = make([]bool, len(rows))
			}
			skip[r] = true // the first row proposing the key wins
		default:
			return pgwire.Result{}, pgerror.WithHintf(
				pgerror.Newf(codeCardinalityViolation, "UPSERT or INSERT...ON CONFLICT command cannot affect row a second time"),
				"ensure that no rows proposed for insertion within the same command have duplicate primary keys")
		}
	}

	switch p.mode {
	case insertPlain, insertBlind:
		ops := make([]kvpb.Op, len(rows))
		var ix indexChanges
		var fc fkChanges
		for r, row := range rows {
			if fks {
				if err := fc.add(ec, ti, nil, row); err != nil {
					return pgwire.Result{}, err
				}
			}
			if err := ix.row(ti, nil, nil, keys[r], row); err != nil {
				return pgwire.Result{}, err
			}
			val, err := p.e.encodeRow(ti, keys[r], row, nil)
			if err != nil {
				return pgwire.Result{}, err
			}
			if p.mode == insertPlain {
				ops[r] = kvpb.Op{Kind: kvpb.OpCPut, Key: keys[r], Value: val, ExpectAbsent: true}
			} else {
				ops[r] = kvpb.Op{Kind: kvpb.OpPut, Key: keys[r], Value: val}
			}
		}
		if hook := p.e.cfg.TestingBeforeWrite; hook != nil {
			hook(ctx)
		}
		if err := p.e.writeTable(ctx, ti, ix.appendTo(ops)); err != nil {
			var cf *kvpb.ConditionFailedError
			if errors.As(err, &cf) {
				// Index names the failing op, which is row Index; fall back
				// to the key should a store not fill it in.
				if cf.Index >= 0 && cf.Index < len(rows) && bytes.Equal(keys[cf.Index], cf.Key) {
					return pgwire.Result{}, duplicateKey(ti, rows[cf.Index])
				}
				for r := range keys {
					if bytes.Equal(keys[r], cf.Key) {
						return pgwire.Result{}, duplicateKey(ti, rows[r])
					}
				}
				return pgwire.Result{}, pgerror.WithCode(errors.Wrap(err, "inserting"), pgerror.CodeUniqueViolation)
			}
			return pgwire.Result{}, kvError(err)
		}
		if err := fc.finish(ec); err != nil {
			return pgwire.Result{}, err
		}
		return p.result(ec, rows)
	}

	if p.blindUpdate && p.cols == nil {
		return p.execBlindUpdate(ec, rows, keys)
	}

	for attempt := 0; attempt < maxRetries; attempt++ {
		var ops []kvpb.Op
		var ix indexChanges
		var fc fkChanges
		var affected [][]types.Datum
		for r, row := range rows {
			if skip != nil && skip[r] {
				continue
			}
			target, old, found, err := p.conflictTarget(ctx, keys[r], row)
			if err != nil {
				return pgwire.Result{}, err
			}
			if !found {
				val, err := p.e.encodeRow(ti, keys[r], row, nil)
				if err != nil {
					return pgwire.Result{}, err
				}
				ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: keys[r], Value: val, ExpectAbsent: true})
				if fks {
					if err := fc.add(ec, ti, nil, row); err != nil {
						return pgwire.Result{}, err
					}
				}
				if err := ix.row(ti, nil, nil, keys[r], row); err != nil {
					return pgwire.Result{}, err
				}
				affected = append(affected, row)
				continue
			}
			if p.mode == insertDoNothing {
				continue
			}
			cur, extra, err := ti.layout.Decode(target, old)
			if err != nil {
				return pgwire.Result{}, err
			}
			ec.row = append(append(make([]types.Datum, 0, 2*len(cur)), cur...), row...)
			updated, err := applySet(ec, ti, cur, p.set)
			if err != nil {
				return pgwire.Result{}, err
			}
			val, err := p.e.encodeRow(ti, target, updated, extra)
			if err != nil {
				return pgwire.Result{}, err
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: target, Value: val, Expected: old})
			if fks {
				if err := fc.add(ec, ti, cur, updated); err != nil {
					return pgwire.Result{}, err
				}
			}
			if err := ix.row(ti, target, cur, target, updated); err != nil {
				return pgwire.Result{}, err
			}
			affected = append(affected, updated)
		}
		if len(ops) == 0 {
			return p.result(ec, nil)
		}
		err := p.e.writeTable(ctx, ti, ix.appendTo(ops))
		if err == nil {
			if err := fc.finish(ec); err != nil {
				return pgwire.Result{}, err
			}
			return p.result(ec, affected)
		}
		if !isConditionFailed(err) {
			return pgwire.Result{}, kvError(err)
		}
		if err := ctx.Err(); err != nil {
			return pgwire.Result{}, kvError(err)
		}
	}
	return pgwire.Result{}, retryExhausted(ti.desc.Name)
}

// setIsBlind reports whether a DO UPDATE SET list assigns every non-key
// column without reading the existing row (positions below len(ti.cols)).
func setIsBlind(ti *tableInfo, set []setItem) bool {
	assigned := map[int]bool{}
	for _, si := range set {
		assigned[si.idx] = true
		blind := true
		walkTexpr(si.e, func(x texpr) {
			if c, ok := x.(*colExpr); ok && c.idx < len(ti.cols) {
				blind = false
			}
		})
		if !blind {
			return false
		}
	}
	for i := range ti.cols {
		if !ti.inPK[i] && !assigned[i] {
			return false
		}
	}
	return true
}

// execBlindUpdate runs an ON CONFLICT DO UPDATE whose updated row is known
// without reading: each row becomes one OpInsertOrUpdate carrying both the
// row to insert and the row to write if the key exists, and the store picks
// one when it applies the batch. One consensus round instead of a read and
// a conditional write, and no retries. Like a blind UPSERT, it rewrites the
// whole row, so values of columns this node's schema does not know yet (the
// pre-Raft schema window) are not carried over.
func (p *insertPlan) execBlindUpdate(ec *evalCtx, rows [][]types.Datum, keys [][]byte) (pgwire.Result, error) {
	ti := p.ti
	ops := make([]kvpb.Op, 0, len(rows))
	for r, row := range rows {
		ins, err := p.e.encodeRow(ti, keys[r], row, nil)
		if err != nil {
			return pgwire.Result{}, err
		}
		ec.row = append(make([]types.Datum, len(row), 2*len(row)), row...)
		updated, err := applySet(ec, ti, row, p.set)
		if err != nil {
			return pgwire.Result{}, err
		}
		upd, err := p.e.encodeRow(ti, keys[r], updated, nil)
		if err != nil {
			return pgwire.Result{}, err
		}
		ops = append(ops, kvpb.Op{Kind: kvpb.OpInsertOrUpdate, Key: keys[r], Value: ins, ElseValue: upd})
	}
	if err := p.e.writeTable(ec.ctx, p.ti, ops); err != nil {
		return pgwire.Result{}, kvError(err)
	}
	return pgwire.Result{Tag: fmt.Sprintf("INSERT 0 %d", len(rows))}, nil
}

// applySet returns base with the assignments of a SET list applied, each
// evaluated over ec.row, and checks the result's NOT NULL constraints.
func applySet(ec *evalCtx, ti *tableInfo, base []types.Datum, set []setItem) ([]types.Datum, error) {
	updated := append([]types.Datum(nil), base...)
	for _, si := range set {
		var d types.Datum
		if si.e != nil {
			var err error
			if d, err = ec.eval(si.e); err != nil {
				return nil, err
			}
		}
		updated[si.idx] = d
	}
	return updated, checkRow(ec.ctx, ec.exec, ti, updated)
}

func isConditionFailed(err error) bool {
	var cf *kvpb.ConditionFailedError
	return errors.As(err, &cf)
}

func (p *insertPlan) result(ec *evalCtx, affected [][]types.Datum) (pgwire.Result, error) {
	res := pgwire.Result{Tag: fmt.Sprintf("INSERT 0 %d", len(affected))}
	return withReturning(ec, res, p.returning, p.cols, affected)
}

func withReturning(ec *evalCtx, res pgwire.Result, ret []texpr, cols []pgwire.Column, rows [][]types.Datum) (pgwire.Result, error) {
	if cols == nil {
		return res, nil
	}
	res.Rows = make([][]types.Datum, 0, len(rows))
	for _, r := range rows {
		out, err := project(ec, r, ret)
		if err != nil {
			return pgwire.Result{}, err
		}
		res.Rows = append(res.Rows, out)
	}
	return res, nil
}

// ---- UPDATE ----

type updatePlan struct {
	e         *Executor
	ti        *tableInfo
	set       []setItem
	filter    texpr
	scan      scanPlan
	pkChange  bool
	returning []texpr
	cols      []pgwire.Column
	// deltas is set when every SET item is col = col ± e (or e + col) on
	// an INT column outside the key, with e reading no column: inside a
	// transaction such an UPDATE of rows named by their key is written
	// blind (execBlindDeltas).
	deltas []intDelta
	// readsOthers: a subquery of SET or WHERE reads a table, so outside a
	// transaction the statement runs in one of its own (runPlan).
	readsOthers bool
}

// intDelta is one SET item n = n + e (neg: n = n - e).
type intDelta struct {
	idx int
	e   texpr
	neg bool
}

// blindDeltas returns the SET items as intDeltas, or nil if one is not of
// that form.
func blindDeltas(ti *tableInfo, set []setItem) []intDelta {
	var out []intDelta
	noCols := func(e texpr) bool {
		ok := true
		walkTexpr(e, func(x texpr) {
			if _, isCol := x.(*colExpr); isCol {
				ok = false
			}
		})
		return ok
	}
	isCol := func(e texpr, idx int) bool {
		c, ok := e.(*colExpr)
		return ok && c.idx == idx
	}
	for _, si := range set {
		b, ok := si.e.(*binExpr)
		if !ok || ti.inPK[si.idx] || ti.layout.Columns[si.idx].Type != types.Int || b.t != types.Int ||
			b.l.typ() != types.Int || b.r.typ() != types.Int {
			return nil
		}
		switch {
		case (b.op == parser.OpPlus || b.op == parser.OpMinus) && isCol(b.l, si.idx) && noCols(b.r):
			out = append(out, intDelta{idx: si.idx, e: b.r, neg: b.op == parser.OpMinus})
		case b.op == parser.OpPlus && isCol(b.r, si.idx) && noCols(b.l):
			out = append(out, intDelta{idx: si.idx, e: b.l})
		default:
			return nil
		}
	}
	return out
}

// execBlindDeltas runs UPDATE t SET n = n + e WHERE <key> in transaction t
// without reading the rows: it reads only whether each row exists (so that
// the tag counts the rows, and a row created or deleted concurrently still
// conflicts), and writes an OpApply that adds the deltas where the data
// group applies the commit. Two transactions that add to the same hot row
// do not conflict. ok is false when the statement must take the ordinary
// path (a delta is NULL).
func (p *updatePlan) execBlindDeltas(ec *evalCtx, t *txn.Txn) (res pgwire.Result, ok bool, err error) {
	ti := p.ti
	ds := make([]rowenc.IntDelta, len(p.deltas))
	for i, d := range p.deltas {
		v, err := ec.eval(d.e)
		if err != nil {
			return pgwire.Result{}, true, err
		}
		n, isInt := v.(int64)
		if !isInt {
			return pgwire.Result{}, false, nil // NULL: n + NULL is NULL, an ordinary write
		}
		if d.neg {
			if n == math.MinInt64 {
				return pgwire.Result{}, true, pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "integer out of range")
			}
			n = -n
		}
		col := ti.layout.Columns[d.idx]
		ds[i] = rowenc.IntDelta{ID: col.ID, Delta: n}
		if abs, isInt := col.Absent.(int64); isInt {
			ds[i].HasAbsent, ds[i].Absent = true, abs
		}
	}
	keys, err := p.scan.pointKeys(ec, ti)
	if err != nil {
		return pgwire.Result{}, true, err
	}
	arg := rowenc.EncodeIntDeltas(ds)
	var ops []kvpb.Op
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		exists, err := t.Exists(ec.ctx, k)
		if err != nil {
			return pgwire.Result{}, true, kvError(err)
		}
		if exists {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpApply, Key: k, Func: kvpb.ApplyAddToInts, Value: arg})
		}
	}
	if len(ops) > 0 {
		if err := p.e.writeTable(ec.ctx, p.ti, ops); err != nil {
			return pgwire.Result{}, true, kvError(err)
		}
	}
	return pgwire.Result{Tag: fmt.Sprintf("UPDATE %d", len(ops))}, true, nil
}

func (p *updatePlan) columns() []pgwire.Column { return p.cols }
func (p *updatePlan) stale() bool              { return p.e.isStale(p.ti) }

func (e *Executor) analyzeUpdate(s *parser.Update, params *paramSet) (plan, error) {
	if _, name, virt, err := e.classifyTableName(params.db, s.Table); err == nil && virt {
		vt, ok := e.virtualTable(name)
		if !ok {
			return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeUndefinedTable, "relation %q does not exist", name),
				"the virtual tables of this node are: %v", e.virtualNames())
		}
		return e.analyzeVirtualUpdate(s, vt, params)
	}
	ti, err := e.resolveTable(params.s, params.db, s.Table)
	if err != nil {
		return nil, err
	}
	p := &updatePlan{e: e, ti: ti}
	// qb: subqueries in SET and WHERE are planned by the query pipeline.
	a := &analyzer{params: params, clause: "UPDATE", tables: []scopeTable{ti.scope(0, ti.desc.Name)}, qb: &queryBuilder{e: e, params: params}}
	if p.set, err = analyzeSet(a, ti, s.Set); err != nil {
		return nil, err
	}
	for _, si := range p.set {
		p.pkChange = p.pkChange || ti.inPK[si.idx]
	}
	if s.Where != nil {
		a.clause = "WHERE"
		if p.filter, err = a.checkBool(s.Where, "WHERE"); err != nil {
			return nil, err
		}
	}
	p.scan = planScan(ti, p.filter, nil)
	if p.returning, p.cols, err = analyzeReturning(params, ti, s.Returning); err != nil {
		return nil, err
	}
	if (p.scan.kind == scanPoint || p.scan.kind == scanPoints) && p.scan.exact && !p.pkChange && len(s.Returning) == 0 && len(ti.checks) == 0 {
		if !ti.hasIndexes() && !e.fkInvolved(ti) { // an index and a foreign key need the old row
			p.deltas = blindDeltas(ti, p.set)
		}
	}
	p.readsOthers = len(a.qb.tables) > 0
	return p, nil
}

func (p *updatePlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	if err := p.e.checkSchemaForWrite(p.ti); err != nil {
		return pgwire.Result{}, err
	}
	defer p.e.holdRowEncoding()()
	ti := p.ti
	fks := p.e.fkInvolved(ti)
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	if t, inTxn := p.e.kv(ctx).(*txn.Txn); inTxn && p.deltas != nil {
		if res, ok, err := p.execBlindDeltas(ec, t); ok || err != nil {
			return res, err
		}
	}
	for attempt := 0; attempt < maxRetries; attempt++ {
		rows, err := p.e.readRows(ec, ti, &p.scan, 0)
		if err != nil {
			return pgwire.Result{}, err
		}
		// ops by key, so that a row moving onto a key another row leaves
		// becomes one conditional put on that key.
		opIndex := map[string]int{}
		var ops []kvpb.Op
		var affected [][]types.Datum
		type move struct {
			key, val []byte
			row      []types.Datum
		}
		var moves []move
		var ix indexChanges
		var fc fkChanges
		for _, r := range rows {
			ec.row = r.row
			ok, err := ec.evalTrue(p.filter)
			if err != nil {
				return pgwire.Result{}, err
			}
			if !ok {
				continue
			}
			updated, err := applySet(ec, ti, r.row, p.set)
			if err != nil {
				return pgwire.Result{}, err
			}
			newKey := r.key
			if p.pkChange {
				if newKey, err = ti.layout.EncodeKey(updated); err != nil {
					return pgwire.Result{}, err
				}
			}
			val, err := p.e.encodeRow(ti, newKey, updated, r.extra)
			if err != nil {
				return pgwire.Result{}, err
			}
			affected = append(affected, updated)
			if fks {
				if err := fc.add(ec, ti, r.row, updated); err != nil {
					return pgwire.Result{}, err
				}
			}
			if err := ix.row(ti, r.key, r.row, newKey, updated); err != nil {
				return pgwire.Result{}, err
			}
			if bytes.Equal(newKey, r.key) {
				opIndex[string(r.key)] = len(ops)
				ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: r.key, Value: val, Expected: r.value})
				continue
			}
			opIndex[string(r.key)] = len(ops)
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: r.key, Delete: true, Expected: r.value})
			moves = append(moves, move{key: newKey, val: val, row: updated})
		}
		newKeys := map[string]bool{}
		for _, m := range moves {
			if newKeys[string(m.key)] {
				return pgwire.Result{}, duplicateKey(ti, m.row)
			}
			newKeys[string(m.key)] = true
			if i, ok := opIndex[string(m.key)]; ok {
				if !ops[i].Delete {
					return pgwire.Result{}, duplicateKey(ti, m.row) // a row stays there
				}
				ops[i].Delete = false
				ops[i].Value = m.val
				continue
			}
			_, exists, err := p.e.kv(ctx).Get(ctx, m.key)
			if err != nil {
				return pgwire.Result{}, kvError(err)
			}
			if exists {
				return pgwire.Result{}, duplicateKey(ti, m.row)
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: m.key, Value: m.val, ExpectAbsent: true})
		}
		if len(ops) > 0 {
			if err := p.e.writeTable(ctx, ti, ix.appendTo(ops)); err != nil {
				if !isConditionFailed(err) {
					return pgwire.Result{}, kvError(err)
				}
				if err := ctx.Err(); err != nil {
					return pgwire.Result{}, kvError(err)
				}
				continue
			}
		}
		if err := fc.finish(ec); err != nil {
			return pgwire.Result{}, err
		}
		res := pgwire.Result{Tag: fmt.Sprintf("UPDATE %d", len(affected))}
		return withReturning(ec, res, p.returning, p.cols, affected)
	}
	return pgwire.Result{}, retryExhausted(ti.desc.Name)
}

// ---- DELETE ----

type deletePlan struct {
	e         *Executor
	ti        *tableInfo
	filter    texpr
	scan      scanPlan
	returning []texpr
	cols      []pgwire.Column
	// readsOthers: a subquery of WHERE reads a table (see updatePlan's).
	readsOthers bool
}

func (p *deletePlan) columns() []pgwire.Column { return p.cols }
func (p *deletePlan) stale() bool              { return p.e.isStale(p.ti) }

func (e *Executor) analyzeDelete(s *parser.Delete, params *paramSet) (*deletePlan, error) {
	ti, err := e.resolveTable(params.s, params.db, s.Table)
	if err != nil {
		return nil, err
	}
	p := &deletePlan{e: e, ti: ti}
	if s.Where != nil {
		a := &analyzer{params: params, clause: "WHERE", tables: []scopeTable{ti.scope(0, ti.desc.Name)}, qb: &queryBuilder{e: e, params: params}}
		if p.filter, err = a.checkBool(s.Where, "WHERE"); err != nil {
			return nil, err
		}
		p.readsOthers = len(a.qb.tables) > 0
	}
	p.scan = planScan(ti, p.filter, nil)
	if p.returning, p.cols, err = analyzeReturning(params, ti, s.Returning); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *deletePlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	if err := p.e.checkSchemaForWrite(p.ti); err != nil {
		return pgwire.Result{}, err
	}
	ti := p.ti
	fks := p.e.fkInvolved(ti)
	ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
	for attempt := 0; attempt < maxRetries; attempt++ {
		rows, err := p.e.readRows(ec, ti, &p.scan, 0)
		if err != nil {
			return pgwire.Result{}, err
		}
		var ops []kvpb.Op
		var ix indexChanges
		var fc fkChanges
		var deleted [][]types.Datum
		for _, r := range rows {
			ec.row = r.row
			ok, err := ec.evalTrue(p.filter)
			if err != nil {
				return pgwire.Result{}, err
			}
			if !ok {
				continue
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: r.key, Delete: true, Expected: r.value})
			if fks {
				if err := fc.add(ec, ti, r.row, nil); err != nil {
					return pgwire.Result{}, err
				}
			}
			if err := ix.row(ti, r.key, r.row, nil, nil); err != nil {
				return pgwire.Result{}, err
			}
			deleted = append(deleted, r.row)
		}
		if len(ops) > 0 {
			if err := p.e.writeTable(ctx, ti, ix.appendTo(ops)); err != nil {
				if !isConditionFailed(err) {
					return pgwire.Result{}, kvError(err)
				}
				if err := ctx.Err(); err != nil {
					return pgwire.Result{}, kvError(err)
				}
				continue
			}
		}
		if err := fc.finish(ec); err != nil {
			return pgwire.Result{}, err
		}
		res := pgwire.Result{Tag: fmt.Sprintf("DELETE %d", len(deleted))}
		return withReturning(ec, res, p.returning, p.cols, deleted)
	}
	return pgwire.Result{}, retryExhausted(ti.desc.Name)
}
