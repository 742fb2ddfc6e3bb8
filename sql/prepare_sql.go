package sql

import (
	"context"
	"sort"
	"time"

	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// SQL-level PREPARE, EXECUTE and DEALLOCATE. They share the connection's
// namespace of prepared statements with the protocol's Parse and Close
// (pgwire.Statements), as in PostgreSQL: EXECUTE runs a statement a driver
// prepared, a Bind may name one of PREPARE, and DEALLOCATE ALL drops both.

// statements is the session's namespace: the connection's, or (outside a
// wire connection, in tests) one of its own.
func (s *session) statements() pgwire.Statements {
	if s.args.Statements != nil {
		return s.args.Statements
	}
	if s.ownStmts == nil {
		s.ownStmts = &localStatements{m: map[string]pgwire.StatementInfo{}, preps: map[string]pgwire.Prepared{}}
	}
	return s.ownStmts
}

type preparePlan struct {
	s    *session
	stmt *parser.Prepare
}

func (p *preparePlan) columns() []pgwire.Column { return nil }
func (p *preparePlan) stale() bool              { return false }
func (p *preparePlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	if _, ok := p.s.statements().Get(p.stmt.Name); ok {
		return pgwire.Result{}, duplicatePrepared(p.stmt.Name)
	}
	// The statement is analyzed now, against the current schema, as
	// PostgreSQL does; errors (an unknown table) are PREPARE's.
	prep, err := p.s.Prepare(ctx, p.stmt.Stmt, p.stmt.Types)
	if err != nil {
		return pgwire.Result{}, err
	}
	if err := p.s.statements().Add(p.stmt.Name, p.stmt.Stmt.Text, p.stmt.Stmt, prep); err != nil {
		return pgwire.Result{}, err
	}
	return pgwire.Result{Tag: "PREPARE"}, nil
}

func duplicatePrepared(name string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeDuplicatePreparedStatement, "prepared statement %q already exists", name),
		"DEALLOCATE it first, or use another name")
}

func unknownPrepared(name string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeInvalidSQLStatementName, "prepared statement %q does not exist", name),
		"PREPARE it first; SELECT name FROM pg_prepared_statements lists this session's")
}

// executePlan is EXECUTE name (args): the arguments are checked against
// the prepared statement's parameter types when EXECUTE is analyzed.
type executePlan struct {
	s    *session
	stmt *parser.Execute
	prep pgwire.Prepared
	args []texpr
}

func (s *session) analyzeExecute(st *parser.Execute, params *paramSet) (plan, error) {
	prep, ok := s.statements().Get(st.Name)
	if !ok {
		return nil, unknownPrepared(st.Name)
	}
	want := prep.ParamTypes()
	if len(st.Params) != len(want) {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeSyntaxError, "wrong number of parameters for prepared statement %q: expected %d, got %d",
				st.Name, len(want), len(st.Params)),
			"pass one value per parameter: EXECUTE %s (%s)", parser.QuotedIdent(st.Name), placeholderList(len(want)))
	}
	p := &executePlan{s: s, stmt: st, prep: prep}
	a := &analyzer{params: params, clause: "EXECUTE", noCols: true}
	for i, x := range st.Params {
		t := want[i]
		te, err := a.check(x, t)
		if err != nil {
			return nil, err
		}
		// Assignment rules, as PostgreSQL applies to EXECUTE's values.
		got := te.typ()
		if te, err = coerce(te, t, ""); err != nil {
			if pgerror.GetCode(err) != pgerror.CodeDatatypeMismatch {
				return nil, err
			}
			return nil, pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeDatatypeMismatch, "parameter $%d of type %s cannot be coerced to the expected type %s",
					i+1, typeName(got), t), "convert the value explicitly, for example CAST(x AS %s)", t)
		}
		p.args = append(p.args, te)
	}
	return p, nil
}

func placeholderList(n int) string {
	out := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			out += ", "
		}
		out += "$" + itoa64(int64(i+1))
	}
	return out
}

func (p *executePlan) columns() []pgwire.Column { return p.prep.Columns() }
func (p *executePlan) stale() bool {
	// DEALLOCATE, or a new statement under the name, since analysis.
	cur, ok := p.s.statements().Get(p.stmt.Name)
	return !ok || cur != p.prep
}
func (p *executePlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	ec := &evalCtx{ctx: ctx, exec: p.s.e, params: params}
	args := make([]types.Datum, len(p.args))
	for i, x := range p.args {
		d, err := ec.eval(x)
		if err != nil {
			return pgwire.Result{}, err
		}
		args[i] = d
	}
	return p.prep.Exec(ctx, args)
}

type deallocatePlan struct {
	s    *session
	stmt *parser.Deallocate
}

func (p *deallocatePlan) columns() []pgwire.Column { return nil }
func (p *deallocatePlan) stale() bool              { return false }
func (p *deallocatePlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	if p.stmt.All {
		p.s.statements().RemoveAll()
	} else if !p.s.statements().Remove(p.stmt.Name) {
		return pgwire.Result{}, unknownPrepared(p.stmt.Name)
	}
	return pgwire.Result{Tag: p.stmt.StatementTag()}, nil
}

// preparedStatementRows are pg_prepared_statements' rows (PostgreSQL 13's
// columns).
func (s *session) preparedStatementRows(cat *catalogSnapshot) [][]types.Datum {
	var out [][]types.Datum
	for _, st := range s.statements().List() {
		pts := types.Array{}
		for _, t := range st.ParamTypes {
			name, ok := cat.typeNameByOID(int64(t.OID()))
			if !ok {
				name = t.String()
			}
			pts = append(pts, name)
		}
		out = append(out, []types.Datum{st.Name, st.SQL, types.MakeTimestampTZ(st.PrepareTime), pts, st.FromSQL})
	}
	return out
}

// localStatements is a session's own namespace outside a wire connection.
type localStatements struct {
	m     map[string]pgwire.StatementInfo
	preps map[string]pgwire.Prepared
}

func (l *localStatements) Get(name string) (pgwire.Prepared, bool) {
	p, ok := l.preps[name]
	return p, ok
}

func (l *localStatements) Add(name, sql string, _ pgwire.Statement, prep pgwire.Prepared) error {
	if _, ok := l.preps[name]; ok {
		return duplicatePrepared(name)
	}
	l.preps[name] = prep
	l.m[name] = pgwire.StatementInfo{Name: name, SQL: sql, PrepareTime: time.Now(), ParamTypes: prep.ParamTypes(),
		FromSQL: true, ResultColumn: prep.Columns()}
	return nil
}

func (l *localStatements) Remove(name string) bool {
	_, ok := l.preps[name]
	delete(l.preps, name)
	delete(l.m, name)
	return ok
}

func (l *localStatements) RemoveAll() {
	clear(l.preps)
	clear(l.m)
}

func (l *localStatements) List() []pgwire.StatementInfo {
	var out []pgwire.StatementInfo
	for _, st := range l.m {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
