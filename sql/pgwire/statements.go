package pgwire

import (
	"sort"
	"time"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Statements is a connection's namespace of named prepared statements. The
// protocol's Parse and Close and SQL's PREPARE, EXECUTE and DEALLOCATE
// share it, as in PostgreSQL: a statement prepared one way can be executed
// or deallocated the other way, and a name is taken once. The wire server
// hands it to the session in SessionArgs; it is used by the connection's
// goroutine only.
type Statements interface {
	// Get returns the named statement; the unnamed one ("") is the
	// protocol's only.
	Get(name string) (Prepared, bool)
	// Add names a statement prepared by SQL PREPARE; 42P05 if the name is
	// taken.
	Add(name, sql string, stmt Statement, prep Prepared) error
	// Remove deletes the named statement (false if there is none);
	// RemoveAll deletes every one (DEALLOCATE ALL).
	Remove(name string) bool
	RemoveAll()
	// List describes the named statements, sorted by name, for
	// pg_prepared_statements.
	List() []StatementInfo
}

// StatementInfo is a row of pg_prepared_statements.
type StatementInfo struct {
	Name, SQL    string
	PrepareTime  time.Time
	ParamTypes   []types.T
	FromSQL      bool // PREPARE rather than the protocol's Parse
	ResultColumn []Column
}

// connStatements is the connection's Statements, over its stmts map.
type connStatements struct{ c *conn }

var _ Statements = connStatements{}

func (s connStatements) Get(name string) (Prepared, bool) {
	ps, ok := s.c.stmts[name]
	if !ok || ps.prep == nil {
		return nil, false
	}
	return ps.prep, true
}

func (s connStatements) Add(name, sql string, stmt Statement, prep Prepared) error {
	if _, ok := s.c.stmts[name]; ok {
		return pgerror.WithHintf(
			pgerror.Newf(codeDuplicatePreparedStatement, "prepared statement %q already exists", name),
			"DEALLOCATE it first, or use another name")
	}
	ps := &preparedStatement{sql: sql, stmt: stmt, prep: prep, columns: prep.Columns(), fromSQL: true, prepared: time.Now(),
		keyword: statementKeyword(stmt.SQL())}
	ps.paramTypes = prep.ParamTypes()
	ps.numExecParams = len(ps.paramTypes)
	ps.paramOIDs = make([]uint32, len(ps.paramTypes))
	for i, t := range ps.paramTypes {
		ps.paramOIDs[i] = wireOID(t)
	}
	s.c.stmts[name] = ps
	return nil
}

func (s connStatements) Remove(name string) bool {
	_, ok := s.c.stmts[name]
	delete(s.c.stmts, name)
	return ok
}

func (s connStatements) RemoveAll() { clear(s.c.stmts) }

func (s connStatements) List() []StatementInfo {
	var out []StatementInfo
	for name, ps := range s.c.stmts {
		if name == "" || ps.prep == nil {
			continue
		}
		out = append(out, StatementInfo{Name: name, SQL: ps.sql, PrepareTime: ps.prepared,
			ParamTypes: ps.paramTypes, FromSQL: ps.fromSQL, ResultColumn: ps.columns})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
