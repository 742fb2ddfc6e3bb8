package pgwire

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// SQLSTATEs used here that pgerror does not name.
const (
	codeUndefinedParameter          = "42P02"
	codeDuplicatePreparedStatement  = "42P05"
	codeDuplicateCursor             = "42P03"
	codeInvalidBinaryRepresentation = "22P03"
	codeCharacterNotInRepertoire    = "22021"
	codeIdleInTransactionTimeout    = "25P03"
)

// preparedStatement is what Parse creates and Bind reads.
type preparedStatement struct {
	sql  string
	stmt Statement // nil for an empty query string
	prep Prepared  // nil for an empty query string
	// paramTypes has one entry per parameter Bind must supply; paramOIDs
	// is what ParameterDescription reports for each, and the OID binary
	// parameters are decoded as.
	paramTypes []types.T
	paramOIDs  []uint32
	// numExecParams is how many parameters Exec takes (the Prepared's
	// own count); a client may declare more types than there are
	// placeholders, and those extra values are checked but not passed on.
	numExecParams int
	columns       []Column // nil: the statement returns no rows
	// fromSQL marks a statement of SQL PREPARE (statements.go); prepared
	// is when it was prepared (pg_prepared_statements).
	fromSQL  bool
	prepared time.Time
	// keyword is the statement's first keyword, its metrics' label.
	keyword string
	// rowDesc is the RowDescription last sent for the statement, encoded,
	// and descFormats the result formats it describes (nil: all text).
	// libpq describes every portal it binds: the same bytes each time.
	rowDesc     []byte
	descFormats []int16
}

// sendRowDescription queues the RowDescription of ps's columns in formats
// (nil: text, as for Describe of a statement).
func (c *conn) sendRowDescription(ps *preparedStatement, formats []int16) {
	if ps.rowDesc == nil || !sameFormats(ps.descFormats, formats) {
		msg, err := rowDescription(ps.columns, formats).Encode(nil)
		if err != nil {
			c.w.err = errors.Wrap(err, "encoding RowDescription")
			return
		}
		ps.rowDesc, ps.descFormats = msg, append([]int16(nil), formats...)
	}
	c.w.raw(ps.rowDesc)
}

// sameFormats reports whether two lists of result formats describe the
// columns alike; nil is text for all.
func sameFormats(a, b []int16) bool {
	for i := range max(len(a), len(b)) {
		var fa, fb int16
		if i < len(a) {
			fa = a[i]
		}
		if i < len(b) {
			fb = b[i]
		}
		if fa != fb {
			return false
		}
	}
	return true
}

// portal is what Bind creates and Execute runs.
type portal struct {
	name    string
	stmt    *preparedStatement
	params  []types.Datum
	formats []int16 // one per result column
	// Exec runs on the first Execute; its rows are kept so that Execute
	// with a row limit can send them in pieces (PortalSuspended between).
	executed  bool
	rows      [][]types.Datum
	tag       string
	sent      int
	suspended bool // at least one Execute stopped at its row limit
	completed bool // CommandComplete was sent
	// Room for a statement's few parameters and result formats, so that
	// a Bind allocates one portal rather than three pieces.
	paramBuf  [4]types.Datum
	formatBuf [4]int16
}

// simpleQuery runs a Query message's statements in order and stops at the
// first error. The caller sends ReadyForQuery.
func (c *conn) simpleQuery(query string) {
	// A Query ends the implicit transaction and with it all portals;
	// PostgreSQL also drops the unnamed prepared statement.
	clear(c.portals)
	delete(c.stmts, "")
	if !utf8.ValidString(query) {
		c.sendError(invalidUTF8Error("query string"))
		return
	}
	var stmts []Statement
	err := c.guard("parsing", func() error {
		var err error
		stmts, err = c.sess.Parse(query)
		return err
	})
	if err != nil {
		c.sendError(err)
		return
	}
	if len(stmts) == 0 {
		c.w.send(&pgproto3.EmptyQueryResponse{})
		return
	}
	if err := c.guard("starting a query", func() error { return c.sess.BeginQuery(stmts) }); err != nil {
		c.sendError(err)
		return
	}
	ok := true
	for _, stmt := range stmts {
		if err := c.simpleStatement(stmt); err != nil {
			c.sendError(err)
			ok = false
			break
		}
		if c.w.err != nil {
			ok = false // the client is gone; do not run the rest
			break
		}
	}
	err = c.withStatementContext("ending a query", func(ctx context.Context) error { return c.sess.EndQuery(ctx, ok) })
	if err != nil {
		c.sendError(err)
	}
}

// simpleStatement prepares and executes one statement of a simple query and
// queues its RowDescription (text format), rows and CommandComplete.
func (c *conn) simpleStatement(stmt Statement) error {
	if n := stmt.NumPlaceholders(); n > 0 {
		return pgerror.WithHintf(
			pgerror.Newf(codeUndefinedParameter, "no value specified for placeholder $%d", n),
			"placeholders need the extended protocol (a prepared statement with parameters)")
	}
	var cols []Column
	var res Result
	start := time.Now()
	err := c.withStatementContext("executing a statement", func(ctx context.Context) error {
		prep, err := c.sess.Prepare(ctx, stmt, nil)
		if err != nil {
			return err
		}
		if ci, ok := prep.(CopyInStatement); ok {
			res, err = c.copyIn(ctx, ci)
			return err
		}
		if co, ok := prep.(CopyOutStatement); ok {
			res, err = c.copyOut(ctx, co)
			return err
		}
		cols = prep.Columns()
		res, err = prep.Exec(ctx, nil)
		return err
	})
	c.srv.cfg.Metrics.statement(statementKeyword(stmt.SQL()), start, err)
	if err != nil {
		return err
	}
	if cols != nil {
		c.w.send(rowDescription(cols, nil))
		if err := c.sendRows(cols, nil, res.Rows); err != nil {
			return err
		}
	}
	c.sendNotices(res.Notices)
	c.sendParameterStatus(res.ParameterStatus)
	c.w.commandComplete(res.Tag)
	if res.ResetSession {
		clear(c.stmts)
		clear(c.portals)
	}
	return nil
}

// copyIn runs a COPY FROM STDIN: CopyInResponse, then the statement reads
// the client's CopyData through copyData until CopyDone or CopyFail.
func (c *conn) copyIn(ctx context.Context, ci CopyInStatement) (Result, error) {
	n := ci.CopyColumns()
	resp := &pgproto3.CopyInResponse{ColumnFormatCodes: make([]uint16, n)}
	if ci.CopyBinary() {
		resp.OverallFormat = 1
		for i := range resp.ColumnFormatCodes {
			resp.ColumnFormatCodes[i] = 1
		}
	}
	c.w.send(resp)
	if err := c.w.flush(); err != nil {
		return Result{}, err
	}
	res, err := ci.CopyIn(ctx, &copyData{c: c})
	return res, err
}

// copyOut runs a COPY TO STDOUT: CopyOutResponse, a CopyData message per
// piece of data, CopyDone. An error midway ends the COPY with the
// ErrorResponse (PostgreSQL's behavior too: the client discards the data).
func (c *conn) copyOut(ctx context.Context, co CopyOutStatement) (Result, error) {
	c.w.send(&pgproto3.CopyOutResponse{ColumnFormatCodes: make([]uint16, co.CopyOutColumns())})
	res, err := co.CopyOut(ctx, func(data []byte) error {
		c.w.send(&pgproto3.CopyData{Data: data})
		if len(c.w.buf) > flushThreshold {
			return c.w.flush()
		}
		return c.w.err
	})
	if err != nil {
		return Result{}, err
	}
	c.w.send(&pgproto3.CopyDone{})
	return res, nil
}

// copyData reads the client's COPY data from the connection's queue.
type copyData struct {
	c    *conn
	buf  []byte
	done bool
	err  error
}

func (d *copyData) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.done {
			return 0, d.err
		}
		msg, err := d.c.next()
		if err != nil {
			// The connection is ending (the client left); Run sees it too.
			d.done, d.err = true, err
			return 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			d.buf = m.Data
		case *pgproto3.CopyDone:
			d.done, d.err = true, io.EOF
		case *pgproto3.CopyFail:
			d.done = true
			d.err = pgerror.Newf(pgerror.CodeQueryCanceled, "COPY from stdin failed: %s", m.Message)
		case *pgproto3.Flush, *pgproto3.Sync:
			// Ignored during COPY, as in PostgreSQL.
		default:
			// PostgreSQL's answer: an error, and the message is lost.
			d.done = true
			d.err = pgerror.Newf(pgerror.CodeProtocolViolation, "unexpected message %s during COPY from stdin", messageName(msg))
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (c *conn) sendParameterStatus(ps []ParameterStatus) {
	for _, p := range ps {
		c.w.send(&pgproto3.ParameterStatus{Name: p.Name, Value: p.Value})
	}
}

func (c *conn) sendNotices(ns []Notice) {
	for _, n := range ns {
		c.w.send(&pgproto3.NoticeResponse{Severity: n.Severity, SeverityUnlocalized: n.Severity, Code: n.Code, Message: n.Message})
	}
}

// parse handles Parse: it prepares exactly one statement under a name.
func (c *conn) parse(m *pgproto3.Parse) error {
	if m.Name == "" {
		// The unnamed statement is replaced even if the new one fails.
		delete(c.stmts, "")
	} else if _, ok := c.stmts[m.Name]; ok {
		return pgerror.WithHintf(
			pgerror.Newf(codeDuplicatePreparedStatement, "prepared statement %q already exists", m.Name),
			"close it first, or use another name")
	}
	if !utf8.ValidString(m.Query) {
		return invalidUTF8Error("query string")
	}
	declared := make([]types.T, len(m.ParameterOIDs))
	for i, oid := range m.ParameterOIDs {
		t, ok := types.FromOID(oid)
		if !ok {
			return pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeUndefinedObject, "type with OID %d (declared for $%d) is not supported", oid, i+1),
				"kvnode supports INT8, INT4, INT2, FLOAT8, FLOAT4, TEXT, VARCHAR, BYTEA and BOOL parameters; "+
					"declare OID 0 to let the server infer the type")
		}
		declared[i] = t
	}

	var stmts []Statement
	err := c.guard("parsing", func() error {
		var err error
		stmts, err = c.sess.Parse(m.Query)
		return err
	})
	if err != nil {
		return err
	}
	if len(stmts) > 1 {
		return pgerror.Newf(pgerror.CodeSyntaxError, "cannot insert multiple commands into a prepared statement")
	}

	ps := &preparedStatement{sql: m.Query, prepared: time.Now()}
	if len(stmts) == 1 {
		ps.stmt = stmts[0]
		ps.keyword = statementKeyword(ps.stmt.SQL())
		var inferred []types.T
		err := c.withStatementContext("preparing a statement", func(ctx context.Context) error {
			prep, err := c.sess.Prepare(ctx, ps.stmt, declared)
			if err != nil {
				return err
			}
			ps.prep = prep
			inferred = prep.ParamTypes()
			ps.columns = prep.Columns()
			return nil
		})
		if err != nil {
			return err
		}
		ps.numExecParams = len(inferred)
		n := max(len(inferred), len(declared))
		ps.paramTypes = make([]types.T, n)
		ps.paramOIDs = make([]uint32, n)
		for i := range n {
			t := types.Unknown
			if i < len(inferred) {
				t = inferred[i]
			} else {
				t = declared[i]
			}
			ps.paramTypes[i] = t
			ps.paramOIDs[i] = wireOID(t)
			// Keep the client's own OID when it names the same type
			// (INT4 for an INT parameter), so that its binary values
			// are decoded in the width it sends them.
			if i < len(declared) && declared[i] == t && t != types.Unknown {
				ps.paramOIDs[i] = m.ParameterOIDs[i]
			}
		}
	}
	c.stmts[m.Name] = ps
	c.w.send(&pgproto3.ParseComplete{})
	return nil
}

// bind handles Bind: it decodes the parameters and creates a portal.
func (c *conn) bind(m *pgproto3.Bind) error {
	ps, ok := c.stmts[m.PreparedStatement]
	if !ok {
		return unknownStatementError(m.PreparedStatement)
	}
	if m.DestinationPortal == "" {
		delete(c.portals, "")
	} else if _, ok := c.portals[m.DestinationPortal]; ok {
		return pgerror.Newf(codeDuplicateCursor, "portal %q already exists", m.DestinationPortal)
	}

	if len(m.Parameters) != len(ps.paramTypes) {
		return pgerror.Newf(pgerror.CodeProtocolViolation,
			"bind message supplies %d parameters, but prepared statement requires %d", len(m.Parameters), len(ps.paramTypes))
	}
	if n := len(m.ParameterFormatCodes); n > 1 && n != len(m.Parameters) {
		return pgerror.Newf(pgerror.CodeProtocolViolation,
			"bind message has %d parameter formats but %d parameters", n, len(m.Parameters))
	}
	p := &portal{name: m.DestinationPortal, stmt: ps}
	params := p.paramBuf[:0]
	if len(m.Parameters) > len(p.paramBuf) {
		params = make([]types.Datum, len(m.Parameters))
	}
	params = params[:len(m.Parameters)]
	for i, raw := range m.Parameters {
		if raw == nil {
			continue // NULL
		}
		format, err := formatAt(m.ParameterFormatCodes, i)
		if err != nil {
			return err
		}
		t := ps.paramTypes[i]
		var d types.Datum
		if format == pgproto3.TextFormat {
			d, err = types.ParseText(t, raw)
			if err != nil {
				return pgerror.WithCode(errors.Wrapf(err, "error in argument for $%d", i+1), pgerror.CodeInvalidTextRepresentation)
			}
		} else {
			d, err = types.ParseBinary(t, ps.paramOIDs[i], raw)
			if err != nil {
				return pgerror.WithCode(errors.Wrapf(err, "error in argument for $%d", i+1), codeInvalidBinaryRepresentation)
			}
		}
		if s, ok := d.(string); ok && !utf8.ValidString(s) {
			return invalidUTF8Error("argument for $" + strconv.Itoa(i+1))
		}
		params[i] = d
	}

	ncols := len(ps.columns)
	if n := len(m.ResultFormatCodes); n > 1 && n != ncols {
		return pgerror.Newf(pgerror.CodeProtocolViolation,
			"bind message has %d result formats but query has %d columns", n, ncols)
	}
	formats := p.formatBuf[:0]
	if ncols > len(p.formatBuf) {
		formats = make([]int16, ncols)
	}
	formats = formats[:ncols]
	for i := range formats {
		f, err := formatAt(m.ResultFormatCodes, i)
		if err != nil {
			return err
		}
		formats[i] = f
	}

	p.params = params[:min(len(params), ps.numExecParams)]
	p.formats = formats
	c.portals[m.DestinationPortal] = p
	c.w.send(&pgproto3.BindComplete{})
	return nil
}

// formatAt resolves the format of item i from a Bind's format codes: none
// means text for all, one applies to all, otherwise one per item.
func formatAt(codes []int16, i int) (int16, error) {
	var f int16
	switch len(codes) {
	case 0:
		return pgproto3.TextFormat, nil
	case 1:
		f = codes[0]
	default:
		f = codes[i]
	}
	if f != pgproto3.TextFormat && f != pgproto3.BinaryFormat {
		return 0, pgerror.Newf(pgerror.CodeInvalidParameterValue, "unsupported format code: %d", f)
	}
	return f, nil
}

// describe handles Describe of a statement or a portal.
func (c *conn) describe(m *pgproto3.Describe) error {
	switch m.ObjectType {
	case 'S':
		ps, ok := c.stmts[m.Name]
		if !ok {
			return unknownStatementError(m.Name)
		}
		c.w.send(&pgproto3.ParameterDescription{ParameterOIDs: ps.paramOIDs})
		if ps.columns == nil {
			c.w.send(&pgproto3.NoData{})
		} else {
			// Result formats are not known before Bind: the protocol
			// says to report them as text (zero).
			c.sendRowDescription(ps, nil)
		}
	case 'P':
		p, ok := c.portals[m.Name]
		if !ok {
			return unknownPortalError(m.Name)
		}
		if p.stmt.columns == nil {
			c.w.send(&pgproto3.NoData{})
		} else {
			c.sendRowDescription(p.stmt, p.formats)
		}
	default:
		return pgerror.Newf(pgerror.CodeProtocolViolation, "invalid DESCRIBE message subtype %d", m.ObjectType)
	}
	return nil
}

// execute handles Execute: it runs the portal's statement on first use and
// sends up to MaxRows rows (0: all), then PortalSuspended if rows remain
// or CommandComplete if not.
func (c *conn) execute(m *pgproto3.Execute) error {
	p, ok := c.portals[m.Portal]
	if !ok {
		return unknownPortalError(m.Portal)
	}
	ps := p.stmt
	if ps.stmt == nil {
		c.w.send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	if p.completed && ps.columns == nil {
		// As in PostgreSQL: a statement without rows runs once per Bind.
		return pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "portal %q cannot be run", p.name)
	}
	if !p.executed {
		p.executed = true
		var res Result
		start := time.Now()
		err := c.withStatementContext("executing a statement", func(ctx context.Context) error {
			var err error
			res, err = ps.prep.Exec(ctx, p.params)
			return err
		})
		c.srv.cfg.Metrics.statement(ps.keyword, start, err)
		if err != nil {
			p.completed = true
			return err
		}
		p.rows, p.tag = res.Rows, res.Tag
		c.sendNotices(res.Notices)
		c.sendParameterStatus(res.ParameterStatus)
		if ps.columns == nil {
			p.rows = nil
		}
		if res.ResetSession {
			// DISCARD ALL: this portal completes below; every other
			// statement and portal is gone.
			clear(c.stmts)
			clear(c.portals)
			c.portals[m.Portal] = p
		}
	}

	rows := p.rows[p.sent:]
	if m.MaxRows > 0 && uint64(m.MaxRows) < uint64(len(rows)) {
		rows = rows[:m.MaxRows]
	}
	if err := c.sendRows(ps.columns, p.formats, rows); err != nil {
		return err
	}
	p.sent += len(rows)
	if p.sent < len(p.rows) {
		p.suspended = true
		c.w.send(&pgproto3.PortalSuspended{})
		return nil
	}
	tag := p.tag
	if p.suspended || p.completed {
		// PostgreSQL counts the rows of this Execute only.
		tag = retagSelect(tag, len(rows))
	}
	p.completed = true
	p.rows = nil // sent; no need to hold them
	p.sent = 0
	c.w.commandComplete(tag)
	return nil
}

// retagSelect rewrites the row count of a "SELECT n" tag.
func retagSelect(tag string, n int) string {
	if strings.HasPrefix(tag, "SELECT ") {
		return "SELECT " + strconv.Itoa(n)
	}
	return tag
}

// closeObject handles Close. Closing something that does not exist is not
// an error, so that clients can close defensively.
func (c *conn) closeObject(m *pgproto3.Close) error {
	switch m.ObjectType {
	case 'S':
		// Portals made from the statement keep their own reference.
		delete(c.stmts, m.Name)
	case 'P':
		delete(c.portals, m.Name)
	default:
		return pgerror.Newf(pgerror.CodeProtocolViolation, "invalid CLOSE message subtype %d", m.ObjectType)
	}
	c.w.send(&pgproto3.CloseComplete{})
	return nil
}

// sendRows queues one DataRow per row, encoding column i in formats[i]
// (text if formats is nil), and writes the buffer whenever it grows past
// flushThreshold so that large results stream.
func (c *conn) sendRows(cols []Column, formats []int16, rows [][]types.Datum) error {
	for _, row := range rows {
		if err := c.w.dataRow(cols, formats, row); err != nil {
			return err
		}
		if len(c.w.buf) > flushThreshold {
			if err := c.w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowDescription describes cols; formats nil means text for all.
func rowDescription(cols []Column, formats []int16) *pgproto3.RowDescription {
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, col := range cols {
		f := pgproto3.FieldDescription{
			Name:         []byte(col.Name),
			DataTypeOID:  wireOID(col.Type),
			DataTypeSize: typeSize(col.Type),
			TypeModifier: -1,
		}
		if col.Type != types.Unknown && !col.Mod.IsZero() {
			f.DataTypeOID = types.ColumnOID(col.Type, col.Mod)
			f.TypeModifier = types.TypeMod(col.Type, col.Mod)
			switch f.DataTypeOID {
			case types.OIDInt2:
				f.DataTypeSize = 2
			case types.OIDInt4, types.OIDFloat4:
				f.DataTypeSize = 4
			}
		}
		if formats != nil {
			f.Format = formats[i]
		}
		fields[i] = f
	}
	return &pgproto3.RowDescription{Fields: fields}
}

// wireOID is the OID sent for t. A value of unknown type (a NULL literal, an
// uninferred placeholder) is sent and received as text, as PostgreSQL does
// since version 10.
func wireOID(t types.T) uint32 {
	if t == types.Unknown {
		return types.OIDText
	}
	return t.OID()
}

// typeSize is pg_type.typlen: the fixed width, or -1 for variable length.
func typeSize(t types.T) int16 {
	switch t {
	case types.Int, types.Float:
		return 8
	case types.Bool:
		return 1
	}
	return -1
}

func unknownStatementError(name string) error {
	if name == "" {
		return pgerror.Newf(pgerror.CodeInvalidSQLStatementName, "unnamed prepared statement does not exist")
	}
	return pgerror.Newf(pgerror.CodeInvalidSQLStatementName, "prepared statement %q does not exist", name)
}

func unknownPortalError(name string) error {
	return pgerror.Newf(pgerror.CodeInvalidCursorName, "portal %q does not exist", name)
}

func invalidUTF8Error(what string) error {
	return pgerror.Newf(codeCharacterNotInRepertoire, "invalid byte sequence for encoding \"UTF8\" in %s", what)
}
