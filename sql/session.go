package sql

import (
	"context"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// plan is an analyzed statement.
type plan interface {
	// columns describes the result rows; nil when there are none.
	columns() []pgwire.Column
	// exec runs the statement once.
	exec(ctx context.Context, params []types.Datum) (pgwire.Result, error)
	// stale reports that the schema the plan was built on has changed, so
	// the statement must be analyzed again before it runs.
	stale() bool
}

// session is one client connection's state: its session variables. It is
// used by one goroutine at a time (pgwire.Session's contract).
type session struct {
	e    *Executor
	args pgwire.SessionArgs
	vars map[string]string // set values; defaults are computed
	txn  sessionTxn        // txn.go
	// ownStmts is the namespace of PREPARE outside a wire connection
	// (prepare_sql.go).
	ownStmts *localStatements
}

var _ pgwire.Session = (*session)(nil)

func newSession(e *Executor, args pgwire.SessionArgs) *session {
	return &session{e: e, args: args, vars: map[string]string{}}
}

// Parse implements pgwire.Session.
func (s *session) Parse(query string) ([]pgwire.Statement, error) {
	stmts, err := parser.Parse(query)
	if err != nil {
		return nil, err
	}
	out := make([]pgwire.Statement, len(stmts))
	for i, st := range stmts {
		out[i] = st
	}
	return out, nil
}

// recoverInternal turns a panic in the executor into an internal error for
// the one statement, instead of taking the node down. Every such panic is a
// bug; the error says so and carries the panic value.
func recoverInternal(err *error) {
	if r := recover(); r != nil {
		*err = errors.NewAssertionErrorWithWrappedErrf(errors.Newf("%v", r), "panic while executing a statement")
	}
}

// Prepare implements pgwire.Session: it analyzes the statement against the
// current schema, infers the placeholders' types and describes the result.
func (s *session) Prepare(ctx context.Context, stmt pgwire.Statement, paramTypes []types.T) (_ pgwire.Prepared, err error) {
	defer recoverInternal(&err)
	ps, ok := stmt.(*parser.Statement)
	if !ok {
		return nil, errors.AssertionFailedf("statement of type %T was not produced by this session's Parse", stmt)
	}
	n := ps.Placeholders
	if len(paramTypes) > n {
		// Clients may declare more parameters than the text uses
		// (PostgreSQL allows it); extra ones are kept as declared.
		n = len(paramTypes)
	}
	pl, params, err := s.analyze(ps.AST, paramTypes, n)
	if err != nil {
		return nil, err
	}
	prep := &prepared{s: s, stmt: ps, declared: append([]types.T(nil), paramTypes...), n: n,
		plan: pl, params: params, cols: pl.columns()}
	switch pl.(type) {
	case *copyPlan:
		return &preparedCopy{prep}, nil
	case *copyOutPlan:
		return &preparedCopyOut{prep}, nil
	}
	return prep, nil
}

// analyze builds the plan of a statement.
func (s *session) analyze(st parser.Stmt, declared []types.T, n int) (plan, *paramSet, error) {
	params := newParamSet(n, declared)
	params.db = s.database()
	params.s = s
	pl, err := s.analyzeStmt(st, params)
	if err != nil {
		return nil, nil, err
	}
	s.collectAccess(pl, params)
	params.finish()
	switch p := pl.(type) {
	case *queryPlan:
		p.finishColumns()
	case *insertPlan:
		finishReturning(p.returning, p.cols)
	case *updatePlan:
		finishReturning(p.returning, p.cols)
	case *deletePlan:
		finishReturning(p.returning, p.cols)
	}
	return pl, params, nil
}

func (s *session) analyzeStmt(st parser.Stmt, params *paramSet) (plan, error) {
	e := s.e
	switch v := st.(type) {
	case *parser.Select:
		return e.analyzeQueryPlan(v, params)
	case *parser.SetOp:
		return e.analyzeQueryPlan(v, params)
	case *parser.ValuesClause:
		return e.analyzeQueryPlan(v, params)
	case *parser.Insert:
		return e.analyzeInsert(v, params)
	case *parser.Update:
		return e.analyzeUpdate(v, params)
	case *parser.Delete:
		return e.analyzeDelete(v, params)
	case *parser.CreateTable, *parser.DropTable, *parser.AlterTableAddColumn, *parser.Truncate, *parser.AlterTableAddPrimaryKey,
		*parser.CreateDatabase, *parser.DropDatabase, *parser.CreateIndex, *parser.DropIndex, *parser.AlterTable:
		if len(params.types) > 0 {
			return nil, pgerror.WithHintf(unsupported("placeholders are not allowed in %s", st.StatementTag()),
				"write the values into the statement")
		}
		return &ddlPlan{e: e, stmt: st}, nil
	case *parser.CopyFrom:
		return e.analyzeCopy(s, v, params.db)
	case *parser.CopyTo:
		return e.analyzeCopyOut(v, params)
	case *parser.Maintenance:
		return &tagPlan{tag: v.Tag}, nil
	case *parser.Discard:
		return &discardPlan{s: s, stmt: v}, nil
	case *parser.ShowTables:
		return &showTablesPlan{e: e, db: v.Database}, nil
	case *parser.ShowCreateTable:
		return &showCreatePlan{e: e, name: v.Name}, nil
	case *parser.ShowVar:
		return s.analyzeShowVar(v)
	case *parser.SetVar:
		return s.analyzeSetVar(v, params)
	case *parser.Txn:
		return &txnPlan{s: s, stmt: v}, nil
	case *parser.Explain:
		return s.analyzeExplain(v, params)
	case *parser.Prepare:
		return &preparePlan{s: s, stmt: v}, nil
	case *parser.Execute:
		return s.analyzeExecute(v, params)
	case *parser.Deallocate:
		return &deallocatePlan{s: s, stmt: v}, nil
	case *parser.SetClusterSetting, *parser.ResetClusterSetting, *parser.ShowClusterSetting,
		*parser.ShowClusterSettings, *parser.ShowJobs, *parser.ShowUpgradeStatus, *parser.ShowUpgradePlan:
		return s.analyzeHook(st, params)
	case *parser.CreateRole, *parser.AlterRole, *parser.DropRole, *parser.Grant, *parser.ShowUsers, *parser.ShowGrants:
		if len(params.types) > 0 {
			return nil, pgerror.WithHintf(unsupported("placeholders are not allowed in %s", st.StatementTag()),
				"write the values into the statement")
		}
		return &userPlan{s: s, stmt: st}, nil
	}
	return nil, errors.AssertionFailedf("unhandled statement %T", st)
}

// prepared is a statement analyzed for one session.
type prepared struct {
	s        *session
	stmt     *parser.Statement
	declared []types.T
	n        int
	plan     plan
	params   *paramSet
	cols     []pgwire.Column
}

// ParamTypes implements pgwire.Prepared.
func (p *prepared) ParamTypes() []types.T { return p.params.types }

// Columns implements pgwire.Prepared.
func (p *prepared) Columns() []pgwire.Column { return p.cols }

// Exec implements pgwire.Prepared. If the schema changed since Prepare, the
// statement is analyzed again; when that would change its parameter or
// result types the execution fails, as in PostgreSQL, because the client
// already decoded parameters and described rows with the old types.
func (p *prepared) Exec(ctx context.Context, params []types.Datum) (_ pgwire.Result, err error) {
	defer recoverInternal(&err)
	if len(params) < len(p.params.types) {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeProtocolViolation,
			"statement needs %d parameters, got %d", len(p.params.types), len(params))
	}
	if p.plan.stale() || p.params.db != p.s.database() {
		if err := p.replan(); err != nil {
			return pgwire.Result{}, err
		}
	}
	if err := p.s.checkAccess(ctx, p.params.access); err != nil {
		return pgwire.Result{}, err
	}
	if err := p.s.checkInTxn(p.plan); err != nil {
		return pgwire.Result{}, err
	}
	if t := p.s.txn.t; t != nil {
		ctx = withTxn(ctx, t)
	}
	if timeout := p.s.statementTimeout(); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	res, err := p.execPlan(ctx, params)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return pgwire.Result{}, pgerror.WithCode(errors.Wrap(err, "canceling statement due to statement timeout"), pgerror.CodeQueryCanceled)
	}
	return res, err
}

// replan analyzes the statement again against the current schema.
func (p *prepared) replan() error {
	pl, ps, err := p.s.analyze(p.stmt.AST, p.declared, p.n)
	if err != nil {
		return err
	}
	if !sameColumns(pl.columns(), p.cols) || !sameTypes(ps.types, p.params.types) {
		return pgerror.WithHintf(
			unsupported("cached plan must not change result type"),
			"the table changed since the statement was prepared; prepare it again")
	}
	p.plan = pl
	p.params.access = ps.access
	p.params.db = ps.db
	return nil
}

// execPlan runs the plan. A statement refused because its table's schema
// moved under it, or is held by a schema change (schemachange.go), waits
// for the new schema and runs again, planned against it; inside a
// transaction, whose earlier statements used the old schema, it waits and
// then fails with 40001 for the client to retry the transaction.
func (p *prepared) execPlan(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := p.runPlan(ctx, params)
		if err == nil {
			return res, nil
		}
		var sm *schemaMovedError // on the heap (errors.As): only after an error
		if !errors.As(err, &sm) {
			return res, err
		}
		if werr := p.s.e.awaitSchema(ctx, sm); werr != nil {
			return pgwire.Result{}, werr
		}
		if p.s.txn.t != nil || attempt >= maxSchemaRetries {
			return pgwire.Result{}, sm.asRetryError()
		}
		if err := p.replan(); err != nil {
			return pgwire.Result{}, err
		}
	}
}

// runPlan runs the plan once. Outside a transaction, a write to a table
// with foreign keys (fk.go), and an UPDATE or DELETE whose subqueries read a
// table, run in a transaction of their own: its reads come from one
// snapshot and its commit fails if any of them changed before it, so the
// statement acts on one state, as PostgreSQL's statement snapshot does (an
// UPDATE whose SET added two tables' balances, read one by one, could store
// a total no state held: review finding F10).
func (p *prepared) runPlan(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	e := p.s.e
	if p.s.txn.t == nil && e.txnsActive() {
		var ti *tableInfo
		others := false
		switch pl := p.plan.(type) {
		case *insertPlan:
			ti, others = pl.ti, pl.source != nil
		case *updatePlan:
			ti, others = pl.ti, pl.readsOthers
		case *deletePlan:
			ti, others = pl.ti, pl.readsOthers
		}
		if ti != nil && (others || e.fkInvolved(ti)) {
			return e.runInTxn(ctx, func(tctx context.Context) (pgwire.Result, error) {
				return p.plan.exec(withSession(tctx, p.s), params)
			})
		}
	}
	return p.plan.exec(withSession(ctx, p.s), params)
}

func sameColumns(a, b []pgwire.Column) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameTypes(a, b []types.T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ---- cluster settings, jobs, upgrades: the hook ----

type hookPlan struct {
	e     *Executor
	stmt  parser.Stmt
	value texpr // SET CLUSTER SETTING's value
	cols  []pgwire.Column
}

func (s *session) analyzeHook(st parser.Stmt, params *paramSet) (plan, error) {
	p := &hookPlan{e: s.e, stmt: st}
	if sc, ok := st.(*parser.SetClusterSetting); ok && !sc.Default {
		a := &analyzer{params: params, clause: "SET CLUSTER SETTING", noCols: true}
		v, err := a.check(sc.Value, types.Unknown)
		if err != nil {
			return nil, err
		}
		p.value = v
	}
	h := s.e.statementHook()
	if h == nil {
		return nil, hookMissing(st)
	}
	cols, err := h.Describe(HookStatement{AST: st})
	if err != nil {
		return nil, err
	}
	p.cols = cols
	return p, nil
}

func hookMissing(st parser.Stmt) error {
	return pgerror.WithHintf(unsupported("%s is not supported yet", st.StatementTag()),
		"this node has no handler for cluster settings, jobs and upgrades")
}

func (p *hookPlan) columns() []pgwire.Column { return p.cols }
func (p *hookPlan) stale() bool              { return false }
func (p *hookPlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	h := p.e.statementHook()
	if h == nil {
		return pgwire.Result{}, hookMissing(p.stmt)
	}
	hs := HookStatement{AST: p.stmt}
	if p.value != nil {
		ec := &evalCtx{ctx: ctx, exec: p.e, params: params}
		v, err := ec.eval(p.value)
		if err != nil {
			return pgwire.Result{}, err
		}
		hs.Value = v
	}
	return h.Exec(ctx, hs)
}

// ---- session variables ----

type showVarPlan struct {
	s    *session
	name string // "all" for SHOW ALL
}

func (s *session) analyzeShowVar(v *parser.ShowVar) (plan, error) {
	name := strings.ToLower(v.Name)
	if name != "all" {
		if _, ok := s.lookupVar(name); !ok {
			return nil, unknownVar(name)
		}
	}
	return &showVarPlan{s: s, name: name}, nil
}

func (p *showVarPlan) columns() []pgwire.Column {
	if p.name == "all" {
		return []pgwire.Column{{Name: "variable", Type: types.String}, {Name: "value", Type: types.String}}
	}
	v, _ := p.s.lookupVar(p.name)
	return []pgwire.Column{{Name: v.name, Type: types.String}}
}
func (p *showVarPlan) stale() bool { return false }
func (p *showVarPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	if p.name == "all" {
		var rows [][]types.Datum
		for _, v := range sessionVars {
			rows = append(rows, []types.Datum{v.name, p.s.getVar(v)})
		}
		return pgwire.Result{Rows: rows, Tag: "SHOW"}, nil
	}
	v, ok := p.s.lookupVar(p.name)
	if !ok {
		return pgwire.Result{}, unknownVar(p.name)
	}
	return pgwire.Result{Rows: [][]types.Datum{{p.s.getVar(v)}}, Tag: "SHOW"}, nil
}

type setVarPlan struct {
	s      *session
	v      *sessionVar
	values []texpr
	reset  bool
}

func (s *session) analyzeSetVar(sv *parser.SetVar, params *paramSet) (plan, error) {
	v, err := s.varForSet(strings.ToLower(sv.Name))
	if err != nil {
		return nil, err
	}
	p := &setVarPlan{s: s, v: v, reset: sv.Default}
	a := &analyzer{params: params, clause: "SET", noCols: true}
	for _, x := range sv.Values {
		te, err := a.check(x, types.String)
		if err != nil {
			return nil, err
		}
		p.values = append(p.values, te)
	}
	return p, nil
}

func (p *setVarPlan) columns() []pgwire.Column { return nil }
func (p *setVarPlan) stale() bool              { return false }
func (p *setVarPlan) exec(ctx context.Context, params []types.Datum) (pgwire.Result, error) {
	if p.reset {
		delete(p.s.vars, p.v.name)
		return pgwire.Result{Tag: "SET", ParameterStatus: p.s.reported(p.v)}, nil
	}
	ec := &evalCtx{ctx: ctx, exec: p.s.e, params: params}
	var parts []string
	for _, x := range p.values {
		d, err := ec.eval(x)
		if err != nil {
			return pgwire.Result{}, err
		}
		if d == nil {
			return pgwire.Result{}, pgerror.Newf(pgerror.CodeInvalidParameterValue, "parameter %q cannot be NULL", p.v.name)
		}
		if b, ok := d.(bool); ok {
			// SET x = true means "on", as PostgreSQL spells booleans.
			d = map[bool]string{true: "on", false: "off"}[b]
		}
		parts = append(parts, string(types.FormatText(d)))
	}
	if err := p.s.setVar(p.v, strings.Join(parts, ", ")); err != nil {
		return pgwire.Result{}, err
	}
	return pgwire.Result{Tag: "SET", ParameterStatus: p.s.reported(p.v)}, nil
}

func (s *session) setVar(v *sessionVar, val string) error {
	norm, err := v.set(s, val)
	if err != nil {
		return err
	}
	s.vars[v.name] = norm
	return nil
}

// varValue returns the value of the session variable name ("" if there is
// no such variable).
func (s *session) varValue(name string) string {
	v, ok := lookupVar(name)
	if !ok {
		return ""
	}
	return s.getVar(v)
}

func (s *session) getVar(v *sessionVar) string {
	if val, ok := s.vars[v.name]; ok {
		return val
	}
	return v.def(s)
}

// statementTimeout is the session's statement_timeout (0: none).
func (s *session) statementTimeout() time.Duration {
	val, ok := s.vars["statement_timeout"]
	if !ok {
		return 0
	}
	d, _ := parseDuration(val)
	return d
}

// tagPlan is a statement accepted for compatibility that does nothing
// (VACUUM, ANALYZE): it only answers its command tag.
type tagPlan struct{ tag string }

func (p *tagPlan) columns() []pgwire.Column { return nil }
func (p *tagPlan) stale() bool              { return false }
func (p *tagPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	return pgwire.Result{Tag: p.tag}, nil
}

// discardPlan is DISCARD ALL (and PLANS, SEQUENCES, TEMP) and RESET ALL.
// kvnode has no temporary tables or sequences and plans nothing per
// session beyond prepared statements, so DISCARD PLANS, SEQUENCES and TEMP
// do nothing; RESET ALL resets the session's variables to their defaults;
// DISCARD ALL does that and has the wire server drop the connection's
// prepared statements and portals, as PostgreSQL does.
type discardPlan struct {
	s    *session
	stmt *parser.Discard
}

func (p *discardPlan) columns() []pgwire.Column { return nil }
func (p *discardPlan) stale() bool              { return false }

func (p *discardPlan) exec(context.Context, []types.Datum) (pgwire.Result, error) {
	res := pgwire.Result{Tag: p.stmt.StatementTag()}
	switch p.stmt.What {
	case "ALL":
		if p.s.txn.t != nil || p.s.TxnStatus() != 'I' {
			return pgwire.Result{}, pgerror.Newf(pgerror.CodeActiveSQLTransaction, "DISCARD ALL cannot run inside a transaction block")
		}
		res.ResetSession = true
		fallthrough
	case "RESET ALL":
		for name := range p.s.vars {
			delete(p.s.vars, name)
			if v, ok := lookupVar(name); ok {
				res.ParameterStatus = append(res.ParameterStatus, p.s.reported(v)...)
			}
		}
	}
	return res, nil
}
