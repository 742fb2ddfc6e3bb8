package pgwire

import (
	"context"
	"io"
	"time"

	"github.com/kvnode/kvnode/sql/types"
)

// SessionFactory is what the wire server needs from the SQL layer: one
// Session per client connection. The SQL executor (package sql) satisfies it;
// server wires the two together.
type SessionFactory interface {
	// NewSession is called after startup. user and database come from the
	// StartupMessage. An error (with a SQLSTATE from pgerror, such as 3D000
	// for an unknown database) is sent to the client and the connection
	// closed.
	NewSession(ctx context.Context, args SessionArgs) (Session, error)
}

// PasswordAuth may be implemented by the SessionFactory: in secure mode, a
// client that does not present a certificate for the user it connects as
// authenticates with a password (SCRAM-SHA-256), checked against what
// UserAuth returns. Without it, certificates are the only way in.
type PasswordAuth interface {
	// UserAuth says how user may authenticate by password. An error
	// (the users could not be read) refuses the connection.
	UserAuth(ctx context.Context, user string) (UserAuth, error)
}

// UserAuth is what password authentication knows of a user.
type UserAuth struct {
	// Passwords is false while password authentication is not available
	// (a cluster not yet finalized to release 2.1): only certificates
	// authenticate.
	Passwords bool
	// Exists is false for an unknown user.
	Exists bool
	// Verifier is the user's SCRAM-SHA-256 verifier (SCRAMVerifier);
	// empty when the user has no password.
	Verifier string
}

// SessionArgs are the startup parameters of a connection.
type SessionArgs struct {
	User       string
	Database   string
	RemoteAddr string
	// Params holds every startup parameter the client sent.
	Params map[string]string
	// ProcessID is the connection's BackendKeyData process ID, which
	// pg_backend_pid() returns.
	ProcessID uint32
	// Statements is the connection's namespace of prepared statements,
	// which SQL PREPARE, EXECUTE and DEALLOCATE share with the protocol
	// (nil outside a wire connection: the session keeps its own).
	Statements Statements
}

// ServerVersion is the PostgreSQL version kvnode reports in the
// server_version ParameterStatus, SHOW server_version and version(): 13.0,
// whose catalogs and protocol kvnode follows, as CockroachDB reports 13.0.0.
// PostgreSQL itself reports "MAJOR.MINOR", which is what psql and drivers
// parse.
const ServerVersion = "13.0"

// ServerVersionNum is ServerVersion as server_version_num.
const ServerVersionNum = "130000"

// Session executes statements for one connection. It is used by one
// goroutine at a time.
type Session interface {
	// Parse parses a query string that may hold several statements separated
	// by semicolons (the simple protocol allows that; Parse in the extended
	// protocol allows at most one and the wire server enforces it). An empty
	// query yields an empty slice. Syntax errors carry SQLSTATE 42601 and a
	// position (pgerror.WithPosition).
	Parse(query string) ([]Statement, error)
	// Prepare analyzes one statement. paramTypes holds what the client
	// declared for each placeholder ($1 is index 0), types.Unknown where it
	// declared nothing; the slice may be shorter than the number of
	// placeholders. The result reports the inferred type of every
	// placeholder, and the result columns.
	Prepare(ctx context.Context, stmt Statement, paramTypes []types.T) (Prepared, error)
	// Close releases the session (and rolls back an open transaction).
	Close()

	// TxnStatus is what ReadyForQuery reports: 'I' (idle), 'T' (in a
	// transaction block) or 'E' (in a failed transaction block).
	TxnStatus() byte
	// BeginQuery is called with every statement of a simple query before
	// any of them runs: the session may refuse the whole string, and it
	// opens the implicit transaction that a string of several statements
	// runs in (PostgreSQL's rule). EndQuery is called after them, with ok
	// false if one failed; it commits or rolls back that implicit
	// transaction, and its error is the query's.
	BeginQuery(stmts []Statement) error
	EndQuery(ctx context.Context, ok bool) error
	// Failed is called for every ErrorResponse sent while the session
	// runs, including errors outside a statement's execution (a Bind or
	// Parse error): a transaction block fails with any of them, as in
	// PostgreSQL.
	Failed()
	// IdleInTransactionTimeout is how long the connection may wait for
	// the client's next message while TxnStatus is not 'I' (0: forever);
	// past it the connection ends with FATAL 25P03.
	IdleInTransactionTimeout() time.Duration
}

// Statement is one parsed statement.
type Statement interface {
	// SQL is the statement's text, as parsed.
	SQL() string
	// NumPlaceholders is the highest $n used in the statement.
	NumPlaceholders() int
}

// Prepared is an analyzed statement, ready to execute with parameters.
// It may be executed many times, and must stay valid across executions
// (schema changes in between make Exec return an error with a SQLSTATE).
type Prepared interface {
	// ParamTypes has one entry per placeholder. An entry may be
	// types.Unknown only when nothing in the statement determines it; the
	// wire server then sends OID 25 (text) and passes the text as a string.
	ParamTypes() []types.T
	// Columns describes the rows Exec returns; nil when the statement
	// returns no rows (INSERT without RETURNING, CREATE TABLE, ...).
	Columns() []Column
	// Exec runs the statement. params are already decoded according to
	// ParamTypes (nil for NULL).
	Exec(ctx context.Context, params []types.Datum) (Result, error)
}

// Column describes one result column.
type Column struct {
	Name string
	Type types.T
	// Mod is the declared type's modifier when the column reads a table
	// column of type INT2, INT4, FLOAT4, VARCHAR(n), CHAR(n) or
	// DECIMAL(p,s): RowDescription then names that type (and its typmod),
	// and binary results use its width.
	Mod types.Mod
}

// Result is the outcome of one execution.
type Result struct {
	// Rows holds the result rows when Columns() is non-nil; each row has
	// one datum per column.
	Rows [][]types.Datum
	// Tag is the command tag: "SELECT 3", "INSERT 0 1", "UPDATE 2",
	// "DELETE 0", "CREATE TABLE", "DROP TABLE", "ALTER TABLE", "SET",
	// "SHOW", "SET CLUSTER SETTING", ...
	Tag string
	// Notices are sent before the command completes (for example
	// PostgreSQL's WARNING for COMMIT outside a transaction).
	Notices []Notice
	// ParameterStatus lists the reported parameters the statement changed
	// (SET application_name, TimeZone, ...), sent before the command
	// completes so that drivers track them as PostgreSQL's do.
	ParameterStatus []ParameterStatus
	// ResetSession (DISCARD ALL) has the wire server drop the
	// connection's prepared statements and portals once the statement
	// completes.
	ResetSession bool
}

// ParameterReporter is implemented by a Session whose reported parameters
// may differ from the defaults the server sends at startup (a TimeZone or
// DateStyle the client set in its startup packet): ReportedParameter
// returns the session's value of the named parameter, as reported.
type ParameterReporter interface {
	ReportedParameter(name string) (string, bool)
}

// ParameterStatus is a parameter's new value, as the ParameterStatus
// message reports it.
type ParameterStatus struct {
	Name, Value string
}

// Notice is a NoticeResponse.
type Notice struct {
	Severity string // WARNING, NOTICE
	Code     string // SQLSTATE
	Message  string
}

// CopyInStatement is implemented by a Prepared that is COPY ... FROM STDIN.
// In a simple query, the wire server answers CopyInResponse (CopyColumns
// columns, in text or binary format), then calls CopyIn with a reader of the data the
// client sends: the CopyData payloads in order, io.EOF at CopyDone, an
// error (57014) at CopyFail. Flush and Sync are ignored meanwhile, as in
// PostgreSQL; any other message is an error (08P01) and is lost. If CopyIn
// returns before the end of the data, the rest of it is discarded (the
// connection ignores CopyData, CopyDone and CopyFail outside COPY).
type CopyInStatement interface {
	Prepared
	// CopyColumns is the number of columns of the data; CopyBinary
	// whether it comes in PostgreSQL's binary COPY format.
	CopyColumns() int
	CopyBinary() bool
	CopyIn(ctx context.Context, data io.Reader) (Result, error)
}

// CopyOutStatement is implemented by a Prepared that is COPY ... TO STDOUT.
// In a simple query, the wire server answers CopyOutResponse (text format,
// CopyOutColumns columns), sends each piece CopyOut hands to send as a
// CopyData message, then CopyDone and the Result's CommandComplete.
type CopyOutStatement interface {
	Prepared
	CopyOutColumns() int
	CopyOut(ctx context.Context, send func(data []byte) error) (Result, error)
}
