package sql

// Transactions (release 2.1): the session's transaction state and the
// statements that drive it. The protocol itself is package txn's (see
// txn/DESIGN.md); a statement inside a transaction runs on the session's
// txn.Txn, which implements kvpb.DB, in place of the data group.
//
// The states, and what ReadyForQuery reports in each:
//
//	none      'I'  every statement commits on its own
//	implicit  'I'  a simple query of several statements, run as one
//	               transaction (PostgreSQL's rule) and ended by EndQuery
//	open      'T'  inside BEGIN ... COMMIT
//	aborted   'E'  a statement failed: only ROLLBACK [TO SAVEPOINT] and
//	               COMMIT (which rolls back) are accepted, as in PostgreSQL
//	committed 'T'  RELEASE SAVEPOINT cockroach_restart committed the
//	               transaction (CockroachDB's retry protocol); COMMIT ends it

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/txn"
)

type txnState uint8

const (
	txnNone txnState = iota
	txnImplicit
	txnOpen
	txnAborted
	txnCommitted
)

// restartSavepoint is CockroachDB's savepoint for client-side retries: its
// ROLLBACK TO restarts the transaction on a new snapshot, its RELEASE
// commits.
const restartSavepoint = "cockroach_restart"

type savepoint struct {
	name string
	mark txn.Savepoint
	// ovLen is the length of the overlay's log at the savepoint.
	ovLen int
}

// sessionTxn is a session's transaction, if any.
type sessionTxn struct {
	state      txnState
	t          *txn.Txn
	savepoints []savepoint
	// readOnly: BEGIN READ ONLY or SET TRANSACTION READ ONLY. The asked
	// isolation level is not kept: every transaction is serializable.
	readOnly bool
	// overlay holds the tables the transaction created or changed
	// (ddltxn.go).
	overlay *txnOverlay
}

// commit commits the session's transaction t with overlay o.
func (s *session) commitTxn(ctx context.Context, t *txn.Txn, o *txnOverlay) error {
	if o != nil && o.len() > 0 {
		return s.e.commitWithDDL(ctx, t, o)
	}
	s.e.endOverlay(o)
	return commitError(t.Commit(ctx))
}

type txnKey struct{}

// withTxn returns ctx carrying t, the transaction the statement runs in.
func withTxn(ctx context.Context, t *txn.Txn) context.Context {
	return context.WithValue(ctx, txnKey{}, t)
}

// kv is the store a statement reads and writes: its session's transaction
// if it runs in one, else the one state a query outside a transaction reads
// (withOneState), else the data group itself.
func (e *Executor) kv(ctx context.Context) kvpb.DB {
	if t, ok := ctx.Value(txnKey{}).(*txn.Txn); ok {
		return t
	}
	if s, ok := ctx.Value(stateKey{}).(*stateDB); ok {
		return s
	}
	return e.cfg.DB
}

type stateKey struct{}

// withOneState returns ctx for a query outside a transaction that reads
// more than one relation (a join, a subquery, a set operation, a table
// twice): its reads all come from one snapshot of the data group, taken
// after a read barrier, as PostgreSQL reads one snapshot per statement.
// Read one by one, each linearizable on its own, a transaction committed
// between two of them could show its write to one table and not its write
// to the other (review finding F7). release closes the snapshot. Below 2.1
// there is no snapshot to read, and ctx is returned as it is.
func (e *Executor) withOneState(ctx context.Context) (_ context.Context, release func(), err error) {
	if _, inTxn := ctx.Value(txnKey{}).(*txn.Txn); inTxn || e.cfg.Txns == nil || !e.txnsActive() {
		return ctx, func() {}, nil
	}
	snap, err := e.cfg.Txns.Snapshot(ctx)
	if errors.Is(err, kvpb.ErrTxnsDisabled) {
		return ctx, func() {}, nil
	}
	if err != nil {
		return nil, nil, kvError(err)
	}
	return context.WithValue(ctx, stateKey{}, &stateDB{snap: snap}), snap.Close, nil
}

// stateDB is a read-only kvpb.DB over one snapshot of the data group: the
// store of a query that reads one state (withOneState).
type stateDB struct{ snap kvpb.Snapshot }

var (
	_ kvpb.DB       = (*stateDB)(nil)
	_ kvpb.Streamer = (*stateDB)(nil)
)

func (s *stateDB) Get(_ context.Context, key []byte) ([]byte, bool, error) { return s.snap.Get(key) }

func (s *stateDB) Scan(_ context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	return s.snap.Scan(start, end, limit, reverse)
}

func (s *stateDB) Write(context.Context, []kvpb.Op) error {
	return errors.AssertionFailedf("a query reading one state wrote")
}

func (s *stateDB) Increment(context.Context, []byte, int64) (int64, error) {
	return 0, errors.AssertionFailedf("a query reading one state wrote")
}

// ScanFunc implements kvpb.Streamer, streaming from the snapshot when it
// can.
func (s *stateDB) ScanFunc(_ context.Context, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	if st, ok := s.snap.(kvpb.SnapshotStreamer); ok {
		return st.ScanFunc(start, end, limit, reverse, fn)
	}
	kvs, err := s.snap.Scan(start, end, limit, reverse)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := fn(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	return nil
}

// GetEach implements kvpb.Streamer.
func (s *stateDB) GetEach(_ context.Context, keys [][]byte, fn func(i int, value []byte) error) error {
	if st, ok := s.snap.(kvpb.SnapshotStreamer); ok {
		return st.GetEach(keys, fn)
	}
	for i, k := range keys {
		v, ok, err := s.snap.Get(k)
		if err != nil {
			return err
		}
		if ok {
			if err := fn(i, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// readsOneState reports whether every read through db comes from one
// state: a transaction's snapshot or a query's (withOneState).
func readsOneState(db kvpb.DB) bool {
	switch db.(type) {
	case *txn.Txn, *stateDB:
		return true
	}
	return false
}

// txnsActive reports whether the cluster is finalized to 2.1 (and this
// node's data plane supports transactions).
func (e *Executor) txnsActive() bool {
	return e.cfg.Txns != nil && e.cfg.Versions != nil && clusterversion.IsActive(e.cfg.Versions, clusterversion.V2_1)
}

func (e *Executor) txnsRefused() error {
	active := "an older version"
	if e.cfg.Versions != nil {
		active = e.cfg.Versions.ActiveVersion().String()
	}
	return pgerror.WithHintf(
		unsupported("explicit transactions need cluster version %s; the cluster is at %s", clusterversion.V2_1, active),
		"finalize the upgrade to 2.1 (SET CLUSTER SETTING version = '%s', or let it finalize automatically); "+
			"until then every statement commits on its own", clusterversion.V2_1)
}

// TxnStatus implements pgwire.Session.
func (s *session) TxnStatus() byte {
	switch s.txn.state {
	case txnOpen, txnCommitted:
		return 'T'
	case txnAborted:
		return 'E'
	}
	return 'I'
}

// IdleInTransactionTimeout implements pgwire.Session.
func (s *session) IdleInTransactionTimeout() time.Duration {
	val, ok := s.vars["idle_in_transaction_session_timeout"]
	if !ok {
		return 0
	}
	d, _ := parseDuration(val)
	return d
}

// BeginQuery implements pgwire.Session. Before 2.1, a string with BEGIN is
// refused whole, so that nothing of it applies (COMMIT or ROLLBACK alone
// only warn that no transaction is in progress, as in PostgreSQL).
// From 2.1, a string of several statements runs as one implicit
// transaction, unless it controls transactions itself or holds a
// statement that cannot run in one (DDL, cluster settings): those run
// statement by statement, as before 2.1.
func (s *session) BeginQuery(stmts []pgwire.Statement) error {
	hasBegin, canImplicit := false, len(stmts) > 1
	for _, st := range stmts {
		ps, ok := st.(*parser.Statement)
		if !ok {
			return errors.AssertionFailedf("statement of type %T was not produced by this session's Parse", st)
		}
		switch v := ps.AST.(type) {
		case *parser.Txn:
			hasBegin = hasBegin || v.Kind == parser.TxnBegin
			canImplicit = false
		case *parser.Select, *parser.Insert, *parser.Update, *parser.Delete, *parser.ShowVar, *parser.SetVar:
		default:
			canImplicit = false
		}
	}
	if hasBegin && !s.e.txnsActive() {
		return s.e.txnsRefused()
	}
	if canImplicit && s.txn.state == txnNone && s.e.txnsActive() {
		s.txn = sessionTxn{state: txnImplicit, t: txn.New(s.e.cfg.Txns, 0)}
	}
	return nil
}

// EndQuery implements pgwire.Session: it ends the implicit transaction.
func (s *session) EndQuery(ctx context.Context, ok bool) error {
	if s.txn.state != txnImplicit {
		return nil
	}
	t := s.txn.t
	s.txn = sessionTxn{}
	if !ok {
		t.Rollback()
		return nil
	}
	return commitError(t.Commit(ctx))
}

// Failed implements pgwire.Session.
func (s *session) Failed() {
	switch s.txn.state {
	case txnOpen:
		s.txn.state = txnAborted
	case txnImplicit:
		// EndQuery rolls it back: the query stops at its first error.
	}
}

// Close implements pgwire.Session: a transaction still open is rolled
// back (nothing of it was proposed).
func (s *session) Close() {
	if s.txn.t != nil {
		s.txn.t.Rollback()
	}
	s.e.endOverlay(s.txn.overlay)
	s.txn = sessionTxn{}
}

// commitError maps the error of a commit to what the client sees.
func commitError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, kvpb.ErrAmbiguous) {
		return pgerror.WithHintf(pgerror.WithCode(errors.Wrap(err, "result is ambiguous"), pgerror.CodeStatementCompletionUnknown),
			"the transaction may or may not have committed; check its effects before running it again")
	}
	return kvError(err)
}

// txnRetryError is the 40001 of a commit whose validation failed, worded as
// CockroachDB words it so that client retry loops recognize it.
func txnRetryError(err error) error {
	var ce *kvpb.TxnConflictError
	detail := err.Error()
	if errors.As(err, &ce) && ce.TooOld {
		detail = "the transaction's snapshot is too old"
	} else if ce != nil {
		detail = fmt.Sprintf("a key the transaction read was written at log index %d, after its snapshot", ce.Index)
	}
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeSerializationFailure,
			"restart transaction: TransactionRetryWithProtoRefreshError: TransactionRetryError: retry txn (RETRY_SERIALIZABLE - %s)", detail),
		"run the transaction again from BEGIN; another transaction changed what it read")
}

// checkInTxn refuses a statement the session's transaction state does not
// allow, before it runs.
func (s *session) checkInTxn(pl plan) error {
	tp, isTxn := pl.(*txnPlan)
	switch s.txn.state {
	case txnNone:
		return nil
	case txnOpen:
		if !s.e.txnsActive() && !(isTxn && (tp.stmt.Kind == parser.TxnRollback || tp.stmt.Kind == parser.TxnRollbackTo)) {
			// A downgrade below 2.1 ends open transactions: every statement
			// but ROLLBACK fails, and the session is then in a failed
			// transaction until it rolls back.
			return pgerror.WithHintf(unsupported("the transaction was ended: the cluster is being downgraded below %s "+
				"(it is at %s), and transactions are no longer available", clusterversion.V2_1, s.e.cfg.Versions.ActiveVersion()),
				"ROLLBACK, then run the statements without BEGIN; SHOW UPGRADE STATUS shows the downgrade")
		}
	case txnAborted:
		if isTxn && (tp.stmt.Kind == parser.TxnCommit || tp.stmt.Kind == parser.TxnRollback || tp.stmt.Kind == parser.TxnRollbackTo) {
			return nil
		}
		return pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInFailedSQLTransaction, "current transaction is aborted, commands ignored until end of transaction block"),
			"ROLLBACK ends the transaction (or ROLLBACK TO SAVEPOINT returns to a savepoint)")
	case txnCommitted:
		if isTxn && (tp.stmt.Kind == parser.TxnCommit || tp.stmt.Kind == parser.TxnRollback) {
			return nil
		}
		return pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidTransactionState, "current transaction is committed, commands ignored until end of transaction block"),
			"RELEASE SAVEPOINT %s committed it; send COMMIT", restartSavepoint)
	}
	switch p := pl.(type) {
	case *hookPlan:
		switch p.stmt.(type) {
		case *parser.SetClusterSetting, *parser.ResetClusterSetting:
			return pgerror.WithHintf(unsupported("%s cannot run inside a transaction", statementTag(pl)),
				"run it on its own, outside BEGIN ... COMMIT")
		}
	case *ddlPlan, *userPlan:
		if dp, ok := pl.(*ddlPlan); ok && ddlInTxnAllowed(dp.stmt) && s.txn.state == txnOpen {
			return nil // ddlPlan.execInTxn refuses what the slice cannot do
		}
		if dp, ok := pl.(*ddlPlan); ok {
			if _, truncate := dp.stmt.(*parser.Truncate); truncate {
				// TRUNCATE deletes rows, which a transaction buffers like
				// any other write (pgbench -i truncates and reloads its
				// tables in one transaction).
				if s.txn.readOnly {
					return pgerror.Newf(pgerror.CodeReadOnlySQLTransaction, "cannot execute TRUNCATE in a read-only transaction")
				}
				return nil
			}
		}
		if up, ok := pl.(*userPlan); ok {
			switch up.stmt.(type) {
			case *parser.ShowUsers, *parser.ShowGrants:
				return nil
			}
		}
		if _, ok := pl.(*ddlPlan); ok {
			// What migration tools and ORMs meet: their driver opens the
			// transaction by itself, so say what works and how to leave it.
			return ddlInTxnRefused(statementTag(pl), "")
		}
		return pgerror.WithHintf(unsupported("%s cannot run inside a transaction", statementTag(pl)),
			"run it on its own, outside BEGIN ... COMMIT")
	case *queryPlan:
		if p.lockStrength != "" && s.txn.readOnly {
			return pgerror.Newf(pgerror.CodeReadOnlySQLTransaction, "cannot execute SELECT FOR %s in a read-only transaction", p.lockStrength)
		}
	case *insertPlan, *updatePlan, *deletePlan, *copyPlan:
		if s.txn.readOnly {
			return pgerror.Newf(pgerror.CodeReadOnlySQLTransaction, "cannot execute %s in a read-only transaction", statementTag(pl))
		}
	}
	return nil
}

func statementTag(pl plan) string {
	switch p := pl.(type) {
	case *ddlPlan:
		return p.stmt.StatementTag()
	case *hookPlan:
		return p.stmt.StatementTag()
	case *userPlan:
		return p.stmt.StatementTag()
	case *insertPlan:
		return "INSERT"
	case *updatePlan:
		return "UPDATE"
	case *deletePlan:
		return "DELETE"
	case *copyPlan, *copyOutPlan:
		return "COPY"
	}
	return "this statement"
}

// ---- the transaction statements ----

type txnPlan struct {
	s    *session
	stmt *parser.Txn
}

func (p *txnPlan) columns() []pgwire.Column { return nil }
func (p *txnPlan) stale() bool              { return false }

func warning(code, format string, args ...any) pgwire.Notice {
	return pgwire.Notice{Severity: "WARNING", Code: code, Message: fmt.Sprintf(format, args...)}
}

func (p *txnPlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	s, st := p.s, p.stmt
	res := pgwire.Result{Tag: st.StatementTag()}
	inBlock := s.txn.state == txnOpen || s.txn.state == txnAborted || s.txn.state == txnCommitted
	switch st.Kind {
	case parser.TxnBegin:
		if !s.e.txnsActive() {
			return pgwire.Result{}, s.e.txnsRefused()
		}
		if inBlock {
			res.Notices = append(res.Notices, warning(pgerror.CodeActiveSQLTransaction, "there is already a transaction in progress"))
			return res, nil
		}
		s.txn = sessionTxn{state: txnOpen, t: txn.New(s.e.cfg.Txns, 0),
			readOnly: st.ReadOnly || s.varValue("default_transaction_read_only") == "on"}
		return res, nil

	case parser.TxnCommit:
		if !inBlock {
			res.Notices = append(res.Notices, warning(pgerror.CodeNoActiveSQLTransaction, "there is no transaction in progress"))
			return res, nil
		}
		t, state, ov := s.txn.t, s.txn.state, s.txn.overlay
		s.txn = sessionTxn{}
		switch state {
		case txnAborted:
			t.Rollback()
			s.e.endOverlay(ov)
			res.Tag = "ROLLBACK"
			return res, nil
		case txnCommitted:
			return res, nil
		}
		if err := s.commitTxn(ctx, t, ov); err != nil {
			return pgwire.Result{}, err
		}
		return res, nil

	case parser.TxnRollback:
		if !inBlock {
			res.Notices = append(res.Notices, warning(pgerror.CodeNoActiveSQLTransaction, "there is no transaction in progress"))
			return res, nil
		}
		s.txn.t.Rollback()
		s.e.endOverlay(s.txn.overlay)
		s.txn = sessionTxn{}
		return res, nil

	case parser.TxnSetTransaction:
		if !inBlock {
			res.Notices = append(res.Notices, warning(pgerror.CodeNoActiveSQLTransaction, "SET TRANSACTION can only be used in transaction blocks"))
			return res, nil
		}
		if st.ReadOnly {
			s.txn.readOnly = true
		} else if st.ReadWrite {
			if s.txn.t.HasWrites() || s.txn.t.SnapshotIndex() != 0 {
				return pgwire.Result{}, pgerror.Newf(pgerror.CodeActiveSQLTransaction,
					"transaction read-write mode must be set before any query")
			}
			s.txn.readOnly = false
		}
		return res, nil
	}

	// Savepoints.
	if !inBlock {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeNoActiveSQLTransaction, "%s can only be used in transaction blocks",
			map[parser.TxnKind]string{parser.TxnSavepoint: "SAVEPOINT", parser.TxnRelease: "RELEASE SAVEPOINT",
				parser.TxnRollbackTo: "ROLLBACK TO SAVEPOINT"}[st.Kind])
	}
	switch st.Kind {
	case parser.TxnSavepoint:
		ovLen := 0
		if s.txn.overlay != nil {
			ovLen = s.txn.overlay.len()
		}
		s.txn.savepoints = append(s.txn.savepoints, savepoint{name: st.Name, mark: s.txn.t.Savepoint(), ovLen: ovLen})
		return res, nil
	case parser.TxnRelease, parser.TxnRollbackTo:
		i := s.findSavepoint(st.Name)
		if i < 0 {
			return pgwire.Result{}, pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeInvalidSavepointSpec, "savepoint %q does not exist", st.Name),
				"SAVEPOINT %s creates it", parser.QuotedIdent(st.Name))
		}
		sp := s.txn.savepoints[i]
		if st.Kind == parser.TxnRelease {
			s.txn.savepoints = s.txn.savepoints[:i]
			if sp.name == restartSavepoint && len(s.txn.savepoints) == 0 {
				// CockroachDB's protocol: RELEASE of the restart savepoint
				// commits; a retryable error leaves the transaction waiting
				// for ROLLBACK TO SAVEPOINT cockroach_restart.
				ov := s.txn.overlay
				s.txn.overlay = nil
				if err := s.commitTxn(ctx, s.txn.t, ov); err != nil {
					s.txn.savepoints = append(s.txn.savepoints, sp)
					s.txn.t = txn.New(s.e.cfg.Txns, 0)
					s.txn.savepoints[len(s.txn.savepoints)-1].ovLen = 0
					return pgwire.Result{}, err
				}
				s.txn.state = txnCommitted
			}
			return res, nil
		}
		s.txn.savepoints = s.txn.savepoints[:i+1]
		if sp.name == restartSavepoint && i == 0 {
			// A retry: a new snapshot, nothing read or written yet.
			s.txn.t.Rollback()
			s.txn.t = txn.New(s.e.cfg.Txns, 0)
			s.txn.savepoints[0].mark = s.txn.t.Savepoint()
			s.e.endOverlay(s.txn.overlay)
			s.txn.overlay = nil
			s.txn.savepoints[0].ovLen = 0
		} else {
			s.txn.t.RollbackTo(sp.mark)
			s.e.truncateOverlay(s.txn.overlay, sp.ovLen)
		}
		s.txn.state = txnOpen
		return res, nil
	}
	return pgwire.Result{}, errors.AssertionFailedf("unhandled transaction statement %v", st)
}

// findSavepoint returns the index of the innermost savepoint called name,
// or -1.
func (s *session) findSavepoint(name string) int {
	for i := len(s.txn.savepoints) - 1; i >= 0; i-- {
		if s.txn.savepoints[i].name == name {
			return i
		}
	}
	return -1
}
