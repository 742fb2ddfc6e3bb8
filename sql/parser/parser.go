package parser

import (
	"strconv"
	"strings"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// supportedHint is attached to errors on an unknown statement keyword.
const supportedHint = "kvnode supports SELECT, INSERT, UPSERT, UPDATE, DELETE, COPY, TRUNCATE, " +
	"CREATE/ALTER/DROP TABLE, CREATE/DROP INDEX, CREATE/DROP DATABASE, BEGIN/COMMIT/ROLLBACK and savepoints, " +
	"PREPARE/EXECUTE, SET, SHOW, EXPLAIN, the CLUSTER SETTING statements, users and roles, GRANT and REVOKE"

// maxDepth bounds expression nesting so that hostile input such as
// "((((((..." fails with an error instead of exhausting the stack.
const maxDepth = 1000

// Parse splits sql into statements separated by ';' and parses each one.
// An empty or comment-only query yields no statements. Errors carry SQLSTATE
// 42601 and the 1-based character position of the offending token.
func Parse(sql string) ([]*Statement, error) {
	toks, err := tokenize(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{src: sql, toks: toks}
	var out []*Statement
	for {
		for p.isOp(";") {
			p.advance()
		}
		if p.peek().kind == tokEOF {
			return out, nil
		}
		startTok := p.peek()
		p.maxPlaceholder = 0
		st, err := p.parseStmt()
		if err != nil {
			return nil, err
		}
		endTok := p.toks[p.i-1]
		if !p.isOp(";") && p.peek().kind != tokEOF {
			return nil, p.errNear(p.peek())
		}
		out = append(out, &Statement{
			AST:          st,
			Text:         sql[startTok.pos:endTok.end],
			Placeholders: p.maxPlaceholder,
		})
	}
}

// ParseOne parses a query that must hold exactly one statement.
func ParseOne(sql string) (*Statement, error) {
	stmts, err := Parse(sql)
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeSyntaxError, "expected exactly one statement, found %d", len(stmts)),
			"send one statement at a time here")
	}
	return stmts[0], nil
}

// ParseExpr parses a standalone scalar expression, as stored in a column's
// DEFAULT.
func ParseExpr(sql string) (Expr, error) {
	toks, err := tokenize(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{src: sql, toks: toks}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tokEOF {
		return nil, p.errNear(p.peek())
	}
	return e, nil
}

type parser struct {
	src            string
	toks           []token
	i              int
	depth          int
	maxPlaceholder int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// errNear is the standard syntax error at token t.
func (p *parser) errNear(t token) error {
	near := t.raw
	if t.kind == tokEOF {
		near = "EOF"
	}
	return syntaxErrorAt(p.src, t.pos, near)
}

// errAt is a syntax error at token t with a reason.
func (p *parser) errAt(t token, reason string) error {
	near := t.raw
	if t.kind == tokEOF {
		near = "EOF"
	}
	return lexErrorAt(p.src, t.pos, near, reason)
}

// isKw reports whether the current token is the unquoted keyword kw.
func (p *parser) isKw(kw string) bool {
	t := &p.toks[p.i]
	return t.kind == tokIdent && !t.quoted && t.val == kw
}

func (p *parser) isKwAt(k int, kw string) bool {
	if p.i+k >= len(p.toks) {
		return false
	}
	t := &p.toks[p.i+k]
	return t.kind == tokIdent && !t.quoted && t.val == kw
}

func (p *parser) acceptKw(kw string) bool {
	if p.isKw(kw) {
		p.advance()
		return true
	}
	return false
}

func (p *parser) expectKw(kw string) error {
	if !p.acceptKw(kw) {
		return p.errNear(p.peek())
	}
	return nil
}

func (p *parser) isOp(op string) bool {
	t := &p.toks[p.i]
	return t.kind == tokOp && t.val == op
}

// isOpAt reports whether the token k ahead of the current one is op.
func (p *parser) isOpAt(k int, op string) bool {
	t := p.peekAt(k)
	return t.kind == tokOp && t.val == op
}

func (p *parser) acceptOp(op string) bool {
	if p.isOp(op) {
		p.advance()
		return true
	}
	return false
}

func (p *parser) expectOp(op string) error {
	if !p.acceptOp(op) {
		return p.errNear(p.peek())
	}
	return nil
}

// ident reads an identifier; unquoted reserved keywords are refused, with a
// hint since "the column is called order" is a common surprise.
func (p *parser) ident() (string, error) {
	t := p.peek()
	if t.kind != tokIdent {
		return "", p.errNear(t)
	}
	if !t.quoted && reservedKeywords[t.val] {
		return "", pgerror.WithHintf(p.errNear(t),
			"%q is a reserved keyword; to use it as a name, double-quote it: \"%s\"", t.val, t.val)
	}
	p.advance()
	return t.val, nil
}

// anyName reads an identifier where keywords are unambiguous (after a '.',
// or as a setting name), so reserved words are allowed.
func (p *parser) anyName() (string, error) {
	t := p.peek()
	if t.kind != tokIdent {
		return "", p.errNear(t)
	}
	p.advance()
	return t.val, nil
}

func (p *parser) identList() ([]string, error) {
	var out []string
	for {
		id, err := p.ident()
		if err != nil {
			return nil, err
		}
		out = append(out, id)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

// parenIdentList reads "(a, b, ...)", each optionally followed by ASC (the
// only direction the key encoding has; DESC is refused with a hint).
func (p *parser) parenIdentList(allowAsc bool) ([]string, error) {
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	var out []string
	for {
		id, err := p.ident()
		if err != nil {
			return nil, err
		}
		out = append(out, id)
		if allowAsc {
			if p.isKw("desc") {
				return nil, pgerror.WithHintf(
					pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
						"descending primary key columns are not supported"), charPos(p.src, p.peek().pos)),
					"remove DESC; ORDER BY ... DESC still reads the table in descending key order")
			}
			p.acceptKw("asc")
		}
		if !p.acceptOp(",") {
			break
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *parser) tableName() (TableName, error) {
	first, err := p.ident()
	if err != nil {
		return TableName{}, err
	}
	parts := []string{first}
	for p.isOp(".") {
		p.advance()
		n, err := p.anyName()
		if err != nil {
			return TableName{}, err
		}
		parts = append(parts, n)
		if len(parts) > 3 {
			return TableName{}, p.errAt(p.toks[p.i-1], "a table name has at most three parts: database.schema.table")
		}
	}
	return TableName{Parts: parts}, nil
}

// dottedName reads a setting name like cluster.preserve_downgrade_option.
func (p *parser) dottedName() (string, error) {
	first, err := p.anyName()
	if err != nil {
		return "", err
	}
	parts := []string{first}
	for p.acceptOp(".") {
		n, err := p.anyName()
		if err != nil {
			return "", err
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, "."), nil
}

// ---- statements ----

func (p *parser) parseStmt() (Stmt, error) {
	t := p.peek()
	if t.kind == tokOp && t.val == "(" {
		return p.parseSelectStmt()
	}
	if t.kind != tokIdent || t.quoted {
		return nil, p.errNear(t)
	}
	switch t.val {
	case "create":
		return p.parseCreate()
	case "drop":
		return p.parseDrop()
	case "alter":
		return p.parseAlter()
	case "truncate":
		return p.parseTruncate()
	case "copy":
		return p.parseCopy()
	case "vacuum", "analyze", "analyse":
		return p.parseMaintenance()
	case "discard":
		return p.parseDiscard()
	case "grant", "revoke":
		return p.parseGrant()
	case "explain":
		p.advance()
		if err := p.explainOptions(); err != nil {
			return nil, err
		}
		if !p.isKw("select") && !p.isKw("with") && !p.isKw("update") && !p.isKw("delete") && !p.isKw("values") && !p.isKw("table") && !p.isOp("(") {
			if t := p.peek(); t.kind == tokIdent && !t.quoted && pgStatementWords[t.val] {
				return nil, p.unsupportedHere("EXPLAIN works on SELECT, UPDATE and DELETE", "EXPLAIN %s is not supported", strings.ToUpper(t.val))
			}
			return nil, pgerror.WithHintf(p.errNear(p.peek()), "EXPLAIN works on SELECT, UPDATE and DELETE")
		}
		inner, err := p.parseStmt()
		if err != nil {
			return nil, err
		}
		return &Explain{Stmt: inner}, nil
	case "insert", "upsert":
		return p.parseInsert()
	case "select", "with", "values", "table":
		return p.parseSelectStmt()
	case "update":
		return p.parseUpdate()
	case "delete":
		return p.parseDelete()
	case "show":
		return p.parseShow()
	case "set":
		return p.parseSet()
	case "prepare":
		return p.parsePrepare()
	case "execute":
		return p.parseExecute()
	case "deallocate":
		return p.parseDeallocate()
	case "use":
		// CockroachDB's USE db is SET database = db.
		p.advance()
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		return &SetVar{Name: "database", Values: []Expr{&StrVal{Val: name}}}, nil
	case "reset":
		return p.parseReset()
	case "begin", "start":
		return p.parseBegin()
	case "commit", "end":
		p.advance()
		if !p.acceptKw("transaction") {
			p.acceptKw("work")
		}
		return &Txn{Kind: TxnCommit}, nil
	case "rollback", "abort":
		p.advance()
		if !p.acceptKw("transaction") {
			p.acceptKw("work")
		}
		if t.val == "rollback" && p.acceptKw("to") {
			return p.savepointName(TxnRollbackTo, true)
		}
		return &Txn{Kind: TxnRollback}, nil
	case "savepoint":
		p.advance()
		return p.savepointName(TxnSavepoint, false)
	case "release":
		p.advance()
		return p.savepointName(TxnRelease, true)
	}
	if name, ok := unsupportedStatements[t.val]; ok {
		return nil, p.unsupportedHere(supportedHint, "%s is not supported", name)
	}
	return nil, pgerror.WithHintf(p.errNear(t), supportedHint)
}

// unsupportedStatements are PostgreSQL statements kvnode does not run, by
// their first word: they fail with 0A000, never a syntax error, since they
// are valid SQL.
var unsupportedStatements = map[string]string{
	"call": "CALL", "checkpoint": "CHECKPOINT", "close": "CLOSE", "cluster": "CLUSTER",
	"comment": "COMMENT", "declare": "DECLARE (cursors)", "do": "DO", "fetch": "FETCH (cursors)",
	"import": "IMPORT FOREIGN SCHEMA", "listen": "LISTEN", "load": "LOAD", "lock": "LOCK",
	"merge": "MERGE", "move": "MOVE (cursors)", "notify": "NOTIFY", "reassign": "REASSIGN OWNED",
	"refresh": "REFRESH MATERIALIZED VIEW", "reindex": "REINDEX", "security": "SECURITY LABEL",
	"unlisten": "UNLISTEN",
}

// pgStatementWords are the first words of the statements PostgreSQL knows,
// to tell a statement kvnode cannot EXPLAIN (0A000) from a mistyped one
// (42601).
var pgStatementWords = func() map[string]bool {
	m := map[string]bool{"insert": true, "upsert": true, "create": true, "drop": true, "alter": true,
		"truncate": true, "copy": true, "grant": true, "revoke": true, "set": true, "show": true,
		"prepare": true, "execute": true, "deallocate": true, "vacuum": true, "analyze": true,
		"discard": true, "begin": true, "start": true, "commit": true, "rollback": true, "reset": true}
	for w := range unsupportedStatements {
		m[w] = true
	}
	return m
}()

// unsupportedObjects are the kinds of object PostgreSQL's CREATE, ALTER and
// DROP know that kvnode does not have, by the word after the verb.
var unsupportedObjects = map[string]string{
	"view": "VIEW", "materialized": "MATERIALIZED VIEW", "sequence": "SEQUENCE", "function": "FUNCTION",
	"procedure": "PROCEDURE", "routine": "ROUTINE", "trigger": "TRIGGER", "type": "TYPE", "domain": "DOMAIN",
	"schema": "SCHEMA", "extension": "EXTENSION", "aggregate": "AGGREGATE", "cast": "CAST",
	"collation": "COLLATION", "conversion": "CONVERSION", "server": "SERVER", "language": "LANGUAGE",
	"operator": "OPERATOR", "policy": "POLICY", "publication": "PUBLICATION", "subscription": "SUBSCRIPTION",
	"rule": "RULE", "statistics": "STATISTICS", "tablespace": "TABLESPACE", "transform": "TRANSFORM",
	"event": "EVENT TRIGGER", "foreign": "FOREIGN TABLE (or DATA WRAPPER)", "text": "TEXT SEARCH",
	"access": "ACCESS METHOD", "group": "GROUP", "owned": "OWNED", "default": "DEFAULT PRIVILEGES",
	"large": "LARGE OBJECT", "system": "SYSTEM", "constraint": "CONSTRAINT TRIGGER", "recursive": "RECURSIVE VIEW",
	"temp": "TEMPORARY TABLE", "temporary": "TEMPORARY TABLE", "unlogged": "UNLOGGED TABLE",
	"global": "GLOBAL TEMPORARY TABLE", "local": "LOCAL TEMPORARY TABLE",
}

// unsupportedObject is the error for verb (CREATE, ALTER or DROP) followed
// by the current token: 0A000 naming the object if PostgreSQL has that kind
// of object, else a syntax error; hint says what kvnode supports.
func (p *parser) unsupportedObject(verb, hint string) error {
	t := p.peek()
	if t.kind != tokIdent || t.quoted {
		return pgerror.WithHintf(p.errNear(t), "%s", hint)
	}
	name, ok := unsupportedObjects[t.val]
	// OR REPLACE and TEMPORARY name the object after them.
	if next := p.peekAt(1); (t.val == "or" && next.val == "replace" || t.val == "temp" || t.val == "temporary") && next.kind == tokIdent {
		prefix := "TEMPORARY "
		if t.val == "or" {
			prefix, next = "OR REPLACE ", p.peekAt(2)
		}
		if next.val == "table" {
			name, ok = prefix+"TABLE", true
		} else if obj, known := unsupportedObjects[next.val]; known {
			name, ok = prefix+obj, true
		}
	}
	if !ok {
		return pgerror.WithHintf(p.errNear(t), "%s", hint)
	}
	return p.unsupportedHere(hint, "%s %s is not supported", verb, name)
}

// explainOptions reads EXPLAIN's options: ANALYZE, VERBOSE, or a
// parenthesized list. kvnode's EXPLAIN shows the plan; VERBOSE, COSTS,
// SETTINGS, SUMMARY and FORMAT TEXT change nothing in it. Running the
// statement to measure it (ANALYZE, BUFFERS, WAL, TIMING) and other formats
// are refused with 0A000.
func (p *parser) explainOptions() error {
	refuse := func(what string) error {
		return p.unsupportedHere("EXPLAIN shows the plan without running the statement; psql's \\timing times it",
			"EXPLAIN %s is not supported", what)
	}
	if p.isKw("analyze") || p.isKw("analyse") {
		return refuse("ANALYZE")
	}
	if p.acceptKw("verbose") {
		return nil
	}
	if !p.isOp("(") {
		return nil
	}
	switch t := p.peekAt(1); {
	case t.kind != tokIdent || t.quoted:
		return nil
	case t.val == "select" || t.val == "with" || t.val == "values" || t.val == "table":
		return nil // EXPLAIN (SELECT ...)
	}
	p.advance() // (
	for {
		t := p.peek()
		opt, err := p.ident()
		if err != nil {
			return err
		}
		var val string
		if v := p.peek(); !(v.kind == tokOp && (v.val == "," || v.val == ")")) {
			p.advance()
			val = strings.ToLower(v.val)
		}
		off := val == "false" || val == "off" || val == "0"
		switch opt {
		case "analyze", "analyse", "buffers", "wal", "timing":
			if !off {
				return refuse(strings.ToUpper(opt))
			}
		case "verbose", "costs", "settings", "summary":
		case "format":
			if val != "text" {
				return refuse("FORMAT " + strings.ToUpper(val))
			}
		default:
			return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
				"unrecognized EXPLAIN option %q", opt), charPos(p.src, t.pos))
		}
		if !p.acceptOp(",") {
			break
		}
	}
	return p.expectOp(")")
}

func (p *parser) parseBegin() (Stmt, error) {
	if p.acceptKw("start") {
		if err := p.expectKw("transaction"); err != nil {
			return nil, err
		}
	} else {
		p.advance() // BEGIN
		if !p.acceptKw("transaction") {
			p.acceptKw("work")
		}
	}
	return p.txnModes(&Txn{Kind: TxnBegin})
}

// txnModes reads the transaction modes after BEGIN or SET TRANSACTION.
func (p *parser) txnModes(s *Txn) (Stmt, error) {
	for {
		switch {
		case p.acceptKw("isolation"):
			if err := p.expectKw("level"); err != nil {
				return nil, err
			}
			switch {
			case p.acceptKw("serializable"):
				s.Isolation = "serializable"
			case p.acceptKw("snapshot"):
				s.Isolation = "snapshot"
			case p.acceptKw("repeatable"):
				if err := p.expectKw("read"); err != nil {
					return nil, err
				}
				s.Isolation = "repeatable read"
			case p.acceptKw("read"):
				switch {
				case p.acceptKw("committed"):
					s.Isolation = "read committed"
				case p.acceptKw("uncommitted"):
					s.Isolation = "read uncommitted"
				default:
					return nil, p.errNear(p.peek())
				}
			default:
				return nil, p.errNear(p.peek())
			}
		case p.acceptKw("read"):
			switch {
			case p.acceptKw("only"):
				s.ReadOnly, s.ReadWrite = true, false
			case p.acceptKw("write"):
				s.ReadOnly, s.ReadWrite = false, true
			default:
				return nil, p.errNear(p.peek())
			}
		case p.isKw("not") && p.isKwAt(1, "deferrable"):
			p.advance()
			p.advance()
		case p.acceptKw("deferrable"):
		default:
			return s, nil
		}
		p.acceptOp(",")
	}
}

// savepointName reads [SAVEPOINT] name (the keyword only where optional).
func (p *parser) savepointName(kind TxnKind, optionalKw bool) (Stmt, error) {
	if optionalKw {
		p.acceptKw("savepoint")
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	return &Txn{Kind: kind, Name: name}, nil
}

func (p *parser) parseCreate() (Stmt, error) {
	p.advance() // CREATE
	if p.isKw("user") || p.isKw("role") {
		return p.parseCreateRole()
	}
	if p.acceptKw("database") {
		s := &CreateDatabase{}
		if p.isKw("if") {
			p.advance()
			if err := p.expectKw("not"); err != nil {
				return nil, err
			}
			if err := p.expectKw("exists"); err != nil {
				return nil, err
			}
			s.IfNotExists = true
		}
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.Name = name
		if t := p.peek(); t.kind != tokEOF && !(t.kind == tokOp && t.val == ";") {
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"CREATE DATABASE options are not supported"), charPos(p.src, t.pos)),
				"write CREATE DATABASE name; every database is UTF8 with collation C.UTF-8")
		}
		return s, nil
	}
	if p.isKw("index") || p.isKw("unique") && p.isKwAt(1, "index") {
		return p.parseCreateIndex()
	}
	if !p.isKw("table") {
		return nil, p.unsupportedObject("CREATE", "kvnode supports CREATE TABLE, CREATE [UNIQUE] INDEX, CREATE DATABASE and CREATE USER/ROLE")
	}
	p.advance()
	s := &CreateTable{}
	if p.isKw("if") {
		p.advance()
		if err := p.expectKw("not"); err != nil {
			return nil, err
		}
		if err := p.expectKw("exists"); err != nil {
			return nil, err
		}
		s.IfNotExists = true
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s.Name = name
	if p.isKw("as") || p.isOp("(") && p.isKwAt(1, "select") {
		return nil, p.unsupportedHere("create the table with its columns, then load it with INSERT or COPY",
			"CREATE TABLE ... AS is not supported")
	}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isKw("primary"):
			if s.PrimaryKey != nil {
				return nil, p.multiplePK()
			}
			p.advance()
			if err := p.expectKw("key"); err != nil {
				return nil, err
			}
			cols, err := p.parenIdentList(true)
			if err != nil {
				return nil, err
			}
			s.PrimaryKey = cols
		case p.isKw("check"):
			ck, err := p.checkDef("")
			if err != nil {
				return nil, err
			}
			s.Checks = append(s.Checks, ck)
		case p.isKw("constraint") && p.isKwAt(2, "check"):
			p.advance()
			cname, err := p.ident()
			if err != nil {
				return nil, err
			}
			ck, err := p.checkDef(cname)
			if err != nil {
				return nil, err
			}
			s.Checks = append(s.Checks, ck)
		case p.isKw("index") || p.isKw("unique") && p.isKwAt(1, "index"):
			u := &UniqueDef{Index: true, NotUnique: !p.acceptKw("unique")}
			p.advance() // INDEX
			name, err := p.ident()
			if err != nil {
				return nil, err
			}
			u.Name = name
			if u.Columns, err = p.indexColumns(); err != nil {
				return nil, err
			}
			if p.isKw("storing") || p.isKw("include") || p.isKw("covering") {
				p.advance()
				if u.Storing, err = p.parenIdentList(false); err != nil {
					return nil, err
				}
			}
			s.Uniques = append(s.Uniques, u)
		case p.isKw("unique"):
			p.advance()
			cols, err := p.parenIdentList(true)
			if err != nil {
				return nil, err
			}
			s.Uniques = append(s.Uniques, &UniqueDef{Columns: cols})
		case p.isKw("constraint") && p.isKwAt(2, "foreign"):
			p.advance()
			cname, err := p.ident()
			if err != nil {
				return nil, err
			}
			f, err := p.foreignKeyDef(cname)
			if err != nil {
				return nil, err
			}
			s.ForeignKeys = append(s.ForeignKeys, f)
		case p.isKw("constraint") && p.isKwAt(2, "unique"):
			p.advance()
			cname, err := p.ident()
			if err != nil {
				return nil, err
			}
			p.advance() // UNIQUE
			cols, err := p.parenIdentList(true)
			if err != nil {
				return nil, err
			}
			s.Uniques = append(s.Uniques, &UniqueDef{Name: cname, Columns: cols})
		case p.isKw("constraint"):
			p.advance()
			cname, err := p.ident()
			if err != nil {
				return nil, err
			}
			if !p.isKw("primary") {
				return nil, pgerror.WithHintf(p.errNear(p.peek()),
					"the table constraints kvnode supports are PRIMARY KEY, UNIQUE, FOREIGN KEY and CHECK")
			}
			if s.PrimaryKey != nil {
				return nil, p.multiplePK()
			}
			p.advance()
			if err := p.expectKw("key"); err != nil {
				return nil, err
			}
			cols, err := p.parenIdentList(true)
			if err != nil {
				return nil, err
			}
			s.PrimaryKey = cols
			s.PKName = cname
		case p.isKw("foreign"):
			f, err := p.foreignKeyDef("")
			if err != nil {
				return nil, err
			}
			s.ForeignKeys = append(s.ForeignKeys, f)
		default:
			col, err := p.columnDef()
			if err != nil {
				return nil, err
			}
			s.Columns = append(s.Columns, col)
			for _, ck := range col.Checks {
				ck.Column = col.Name
			}
			s.Checks = append(s.Checks, col.Checks...)
			col.Checks = nil
			if col.Unique {
				s.Uniques = append(s.Uniques, &UniqueDef{Columns: []string{col.Name}})
				col.Unique = false
			}
			if col.References != nil {
				col.References.Columns = []string{col.Name}
				s.ForeignKeys = append(s.ForeignKeys, col.References)
				col.References = nil
			}
		}
		if !p.acceptOp(",") {
			break
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	// Storage parameters, WITH (fillfactor = 100) as pgbench -i writes
	// them: accepted and ignored, as CockroachDB does.
	if p.isKw("with") && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "(" {
		p.advance()
		p.advance()
		for {
			if _, err := p.anyName(); err != nil {
				return nil, err
			}
			if p.acceptOp("=") {
				if t := p.peek(); t.kind == tokInt || t.kind == tokFloat || t.kind == tokString || t.kind == tokIdent {
					p.advance()
				} else {
					return nil, p.errNear(t)
				}
			}
			if !p.acceptOp(",") {
				break
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// foreignKeyDef reads FOREIGN KEY (cols) REFERENCES ...
func (p *parser) foreignKeyDef(name string) (*ForeignKeyDef, error) {
	if err := p.expectKw("foreign"); err != nil {
		return nil, err
	}
	if err := p.expectKw("key"); err != nil {
		return nil, err
	}
	cols, err := p.parenIdentList(false)
	if err != nil {
		return nil, err
	}
	f := &ForeignKeyDef{Name: name, Columns: cols}
	return f, p.foreignKeyTail(f)
}

func (p *parser) multiplePK() error {
	return pgerror.WithPosition(pgerror.Newf(pgerror.CodeInvalidTableDefinition,
		"multiple primary keys for table are not allowed"), charPos(p.src, p.peek().pos))
}

// typeName reads a type: one or more words (DOUBLE PRECISION, CHARACTER
// VARYING, TIMESTAMP WITH TIME ZONE) with an optional length, precision or
// scale in parentheses, which become the type's modifier (types.Mod).
func (p *parser) typeName() (types.T, types.Mod, error) {
	if t := p.peek(); t.kind == tokIdent {
		if typ, ok := ArrayTypeName(t.val); ok {
			// PostgreSQL's name of an array type: _int8 is int8[].
			p.advance()
			if p.isOp("[") {
				return types.Unknown, types.Mod{}, p.noArrayOfArray(t)
			}
			if !columnArrayElem(typ.Elem()) {
				return types.Unknown, types.Mod{}, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"arrays of %s are not supported", typ.Elem()), charPos(p.src, t.pos))
			}
			return typ, types.Mod{}, nil
		}
	}
	typ, mod, err := p.typeNameNoArray()
	if err != nil {
		return types.Unknown, mod, err
	}
	if p.isOp("[") {
		// A one-dimensional array: T[] (a size, T[3], is accepted and
		// ignored, as PostgreSQL does).
		p.advance()
		if p.peek().kind == tokInt {
			p.advance()
		}
		if err := p.expectOp("]"); err != nil {
			return types.Unknown, mod, err
		}
		if p.isOp("[") {
			return types.Unknown, mod, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"arrays of more than one dimension are not supported"), charPos(p.src, p.peek().pos))
		}
		if typ.IsArray() || !columnArrayElem(typ) {
			return types.Unknown, mod, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"arrays of %s are not supported", typ), charPos(p.src, p.toks[p.i-1].pos))
		}
		return types.ArrayOf(typ), types.Mod{}, nil
	}
	return typ, mod, nil
}

// noArrayOfArray is PostgreSQL's answer to an array type's name followed by
// [] (_int8[]): there is no such type.
func (p *parser) noArrayOfArray(name token) error {
	return pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedObject,
		"type \"%s[]\" does not exist", name.val), charPos(p.src, name.pos)),
		"%s is already an array type; write %s or %s[]", name.val, name.val, name.val[1:])
}

// columnArrayElem reports whether a column may be an array of t (a
// stored format kvnode has).
func columnArrayElem(t types.T) bool {
	switch t {
	case types.JSONB, types.Interval, types.Decimal, types.Date, types.Timestamp, types.TimestampTZ, types.UUID:
		return false
	}
	return !t.IsArray()
}

// arrayTypeNames are PostgreSQL's names of the array types of kvnode's
// types (pg_type's typname of each): _int8 is int8[].
var arrayTypeNames = map[string]string{
	"_bool": "BOOL", "_bytea": "BYTEA", "_int2": "INT2", "_int4": "INT4", "_int8": "INT8",
	"_float4": "FLOAT4", "_float8": "FLOAT8", "_numeric": "NUMERIC", "_text": "TEXT",
	"_varchar": "VARCHAR", "_bpchar": "CHAR", "_name": "TEXT", "_date": "DATE",
	"_timestamp": "TIMESTAMP", "_timestamptz": "TIMESTAMPTZ", "_interval": "INTERVAL",
	"_uuid": "UUID", "_jsonb": "JSONB", "_oid": "INT8",
}

// ArrayTypeName resolves PostgreSQL's name of an array type (_int8).
func ArrayTypeName(name string) (types.T, bool) {
	elem, ok := arrayTypeNames[name]
	if !ok {
		return types.Unknown, false
	}
	t, ok := types.FromName(elem)
	if !ok {
		return types.Unknown, false
	}
	return types.ArrayOf(t), true
}

func (p *parser) typeNameNoArray() (types.T, types.Mod, error) {
	t := p.peek()
	if t.kind != tokIdent {
		return types.Unknown, types.Mod{}, p.errNear(t)
	}
	p.advance()
	name := t.val
	switch {
	case name == "double" && p.isKw("precision"),
		(name == "character" || name == "char") && p.isKw("varying"):
		name += " " + p.advance().val
	}
	var args []int32
	if p.acceptOp("(") {
		for {
			nt := p.peek()
			if nt.kind != tokInt {
				return types.Unknown, types.Mod{}, p.errNear(nt)
			}
			p.advance()
			n, err := strconv.ParseInt(nt.val, 10, 32)
			if err != nil {
				return types.Unknown, types.Mod{}, p.errNear(nt)
			}
			args = append(args, int32(n))
			if !p.acceptOp(",") {
				break
			}
		}
		if err := p.expectOp(")"); err != nil {
			return types.Unknown, types.Mod{}, err
		}
	}
	if name == "timestamp" && (p.isKw("with") || p.isKw("without")) && p.isKwAt(1, "time") && p.isKwAt(2, "zone") {
		name += " " + p.advance().val + " time zone"
		p.advance()
		p.advance()
	}
	upper := strings.ToUpper(name)
	if _, known := types.FromName(upper); !known {
		code := pgerror.CodeUndefinedObject
		msg := "type \"%s\" does not exist"
		switch name {
		case "time", "timetz", "inet", "oid", "bit", "varbit", "money", "xml", "point":
			code = pgerror.CodeFeatureNotSupported
			msg = "type \"%s\" is not supported yet"
		}
		return types.Unknown, types.Mod{}, pgerror.WithHintf(
			pgerror.WithPosition(pgerror.Newf(code, msg, name), charPos(p.src, t.pos)),
			"kvnode's types: INT2, INT4, INT8, FLOAT4, FLOAT8, DECIMAL, STRING (TEXT, VARCHAR, CHAR), BYTES, BOOL, DATE, TIMESTAMP, TIMESTAMPTZ, INTERVAL, UUID, JSONB")
	}
	typ, mod, err := types.TypeWithArgs(upper, args)
	if err != nil {
		return types.Unknown, types.Mod{}, pgerror.WithPosition(pgerror.Newf(pgerror.CodeInvalidParameterValue, "%s", err.Error()), charPos(p.src, t.pos))
	}
	return typ, mod, nil
}

func (p *parser) columnDef() (*ColumnDef, error) {
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	if p.isKw("serial") || p.isKw("bigserial") || p.isKw("smallserial") || p.isKw("serial8") || p.isKw("serial4") || p.isKw("serial2") {
		// SERIAL is INT8 DEFAULT unique_rowid() NOT NULL, as in
		// CockroachDB (serial_normalization = rowid).
		p.advance()
		c := &ColumnDef{Name: name, Type: types.Int, Nullable: NotNull,
			Default: &FuncCall{Name: []string{"unique_rowid"}}}
		return p.columnConstraints(c)
	}
	typ, mod, err := p.typeName()
	if err != nil {
		return nil, err
	}
	c := &ColumnDef{Name: name, Type: typ, Mod: mod}
	return p.columnConstraints(c)
}

func (p *parser) columnConstraints(c *ColumnDef) (*ColumnDef, error) {
	identity := false
	for {
		switch {
		case p.isKw("generated") && identity:
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
				"multiple identity specifications for column %q", c.Name), charPos(p.src, p.peek().pos))
		case p.isKw("generated"):
			if err := p.identity(c); err != nil {
				return nil, err
			}
			identity = true
		case p.isKw("primary"):
			p.advance()
			if err := p.expectKw("key"); err != nil {
				return nil, err
			}
			c.PrimaryKey = true
		case p.isKw("not") && p.isKwAt(1, "null"):
			p.advance()
			p.advance()
			if c.Nullable == Null {
				return nil, p.conflictingNull(c)
			}
			c.Nullable = NotNull
		case p.isKw("not") && p.isKwAt(1, "visible"):
			p.advance()
			p.advance()
			c.Hidden = true
		case p.isKw("null") && identity:
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
				"conflicting NULL/NOT NULL declarations for column %q", c.Name), charPos(p.src, p.peek().pos))
		case p.isKw("null"):
			p.advance()
			if c.Nullable == NotNull {
				return nil, p.conflictingNull(c)
			}
			c.Nullable = Null
		case p.isKw("default") && identity:
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
				"both default and identity specified for column %q", c.Name), charPos(p.src, p.peek().pos))
		case p.isKw("default"):
			if c.Default != nil {
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
					"multiple default values specified for column %q", c.Name), charPos(p.src, p.peek().pos))
			}
			p.advance()
			// The default binds tighter than the following constraint
			// keywords (as in PostgreSQL's b_expr): "DEFAULT 1 NOT NULL".
			e, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			c.Default = e
		case p.isKw("check"):
			ck, err := p.checkDef("")
			if err != nil {
				return nil, err
			}
			c.Checks = append(c.Checks, ck)
		case p.isKw("constraint") && p.isKwAt(2, "check"):
			p.advance()
			cname, err := p.ident()
			if err != nil {
				return nil, err
			}
			ck, err := p.checkDef(cname)
			if err != nil {
				return nil, err
			}
			c.Checks = append(c.Checks, ck)
		case p.isKw("unique"):
			p.advance()
			c.Unique = true
		case p.isKw("references") || p.isKw("constraint") && p.isKwAt(2, "references"):
			f := &ForeignKeyDef{}
			if p.acceptKw("constraint") {
				name, err := p.ident()
				if err != nil {
					return nil, err
				}
				f.Name = name
			}
			if err := p.foreignKeyTail(f); err != nil {
				return nil, err
			}
			c.References = f
		case p.isKw("collate") || p.isKw("constraint"):
			return nil, pgerror.WithHintf(p.errNear(p.peek()),
				"kvnode supports the column constraints PRIMARY KEY, NOT NULL, NULL, DEFAULT, UNIQUE, REFERENCES and CHECK")
		default:
			return c, nil
		}
	}
}

// identity reads GENERATED BY DEFAULT AS IDENTITY, which makes c what
// SERIAL makes a column: INT8 NOT NULL DEFAULT unique_rowid() (CockroachDB's
// serial_normalization = rowid), values unique but not consecutive, which
// an explicit value may override, as in PostgreSQL. Django and SQLAlchemy
// (Identity()) declare their generated keys this way. GENERATED ALWAYS,
// which refuses explicit values, sequence options and generated columns
// (GENERATED ALWAYS AS (expr) STORED) are refused with 0A000.
func (p *parser) identity(c *ColumnDef) error {
	start := p.peek()
	p.advance() // GENERATED
	always := p.acceptKw("always")
	if !always {
		if err := p.expectKw("by"); err != nil {
			return err
		}
		if err := p.expectKw("default"); err != nil {
			return err
		}
	}
	if err := p.expectKw("as"); err != nil {
		return err
	}
	if always && p.isOp("(") {
		return pgerror.WithHintf(p.unsupportedAt(start, "generated columns are not supported"),
			"compute the value in the INSERT, or in a view of the query")
	}
	if err := p.expectKw("identity"); err != nil {
		return err
	}
	if always {
		return pgerror.WithHintf(p.unsupportedAt(start, "GENERATED ALWAYS AS IDENTITY is not supported"),
			"use GENERATED BY DEFAULT AS IDENTITY (or SERIAL): the column gets unique_rowid() unless a value is given")
	}
	if p.isOp("(") {
		return pgerror.WithHintf(p.unsupportedAt(p.peek(), "identity sequence options are not supported"),
			"leave them out: the column's values come from unique_rowid(), unique but not consecutive")
	}
	if c.Default != nil {
		return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
			"both default and identity specified for column %q", c.Name), charPos(p.src, start.pos))
	}
	if c.Type != types.Int {
		return pgerror.WithPosition(pgerror.Newf(pgerror.CodeInvalidParameterValue,
			"identity column type must be smallint, integer, or bigint"), charPos(p.src, start.pos))
	}
	if c.Nullable == Null {
		return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
			"conflicting NULL/NOT NULL declarations for column %q", c.Name), charPos(p.src, start.pos))
	}
	c.Mod = types.Mod{}
	c.Nullable = NotNull
	c.Default = &FuncCall{Name: []string{"unique_rowid"}}
	return nil
}

// checkDef reads CHECK (expr).
func (p *parser) checkDef(name string) (*CheckDef, error) {
	if err := p.expectKw("check"); err != nil {
		return nil, err
	}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	return &CheckDef{Name: name, Expr: e}, p.expectOp(")")
}

func (p *parser) conflictingNull(c *ColumnDef) error {
	return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
		"conflicting NULL/NOT NULL declarations for column %q", c.Name), charPos(p.src, p.toks[p.i-1].pos))
}

func (p *parser) parseDrop() (Stmt, error) {
	p.advance() // DROP
	if p.isKw("user") || p.isKw("role") {
		return p.parseDropRole()
	}
	if p.acceptKw("database") {
		s := &DropDatabase{}
		if p.isKw("if") {
			p.advance()
			if err := p.expectKw("exists"); err != nil {
				return nil, err
			}
			s.IfExists = true
		}
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.Name = name
		if !p.acceptKw("cascade") {
			s.Restrict = p.acceptKw("restrict")
		}
		return s, nil
	}
	if p.isKw("index") {
		return p.parseDropIndex()
	}
	if !p.isKw("table") {
		return nil, p.unsupportedObject("DROP", "kvnode supports DROP TABLE, DROP INDEX, DROP DATABASE and DROP USER/ROLE")
	}
	p.advance()
	s := &DropTable{}
	if p.isKw("if") {
		p.advance()
		if err := p.expectKw("exists"); err != nil {
			return nil, err
		}
		s.IfExists = true
	}
	names, err := p.tableNames()
	if err != nil {
		return nil, err
	}
	s.Names = names
	if p.isKw("cascade") || p.isKw("restrict") {
		p.advance()
	}
	return s, nil
}

func (p *parser) tableNames() ([]TableName, error) {
	var out []TableName
	for {
		name, err := p.tableName()
		if err != nil {
			return nil, err
		}
		out = append(out, name)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

func (p *parser) parseTruncate() (Stmt, error) {
	p.advance() // TRUNCATE
	p.acceptKw("table")
	names, err := p.tableNames()
	if err != nil {
		return nil, err
	}
	// RESTART IDENTITY resets the sequences behind identity and serial
	// columns; kvnode's come from unique_rowid(), which has nothing to
	// reset, so both forms mean what CONTINUE IDENTITY does.
	if (p.isKw("restart") || p.isKw("continue")) && p.isKwAt(1, "identity") {
		p.advance()
		p.advance()
	}
	cascade := p.acceptKw("cascade")
	if !cascade {
		p.acceptKw("restrict")
	}
	return &Truncate{Names: names, Cascade: cascade}, nil
}

func (p *parser) parseAlter() (Stmt, error) {
	p.advance() // ALTER
	if p.isKw("user") || p.isKw("role") {
		return p.parseAlterRole()
	}
	if !p.isKw("table") {
		return nil, p.unsupportedObject("ALTER", "kvnode supports ALTER TABLE and ALTER USER/ROLE")
	}
	p.advance()
	s := &AlterTableAddColumn{}
	if p.isKw("if") && p.isKwAt(1, "exists") {
		p.advance()
		p.advance()
		s.IfExists = true
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s.Name = name
	if !p.isKw("add") {
		return p.parseAlterAction(s.IfExists, name)
	}
	p.advance()
	if p.isKw("foreign") || p.isKw("constraint") && p.isKwAt(2, "foreign") {
		var cname string
		if p.acceptKw("constraint") {
			if cname, err = p.ident(); err != nil {
				return nil, err
			}
		}
		f, err := p.foreignKeyDef(cname)
		if err != nil {
			return nil, err
		}
		return &AlterTable{IfExists: s.IfExists, Name: name, Action: &AddForeignKey{FK: f}}, nil
	}
	if p.isKw("unique") || p.isKw("constraint") && p.isKwAt(2, "unique") {
		ci := &CreateIndex{Constraint: true, Unique: true, Table: name}
		if p.acceptKw("constraint") {
			if ci.Name, err = p.ident(); err != nil {
				return nil, err
			}
		}
		p.advance() // UNIQUE
		if ci.Columns, err = p.parenIdentList(true); err != nil {
			return nil, err
		}
		return ci, nil
	}
	if p.isKw("primary") || p.isKw("constraint") && p.isKwAt(2, "primary") {
		pk := &AlterTableAddPrimaryKey{IfExists: s.IfExists, Name: s.Name}
		if p.acceptKw("constraint") {
			if pk.Constraint, err = p.ident(); err != nil {
				return nil, err
			}
		}
		p.advance() // PRIMARY
		if err := p.expectKw("key"); err != nil {
			return nil, err
		}
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		if pk.Columns, err = p.identList(); err != nil {
			return nil, err
		}
		return pk, p.expectOp(")")
	}
	p.acceptKw("column")
	if p.isKw("if") {
		p.advance()
		if err := p.expectKw("not"); err != nil {
			return nil, err
		}
		if err := p.expectKw("exists"); err != nil {
			return nil, err
		}
		s.IfNotExists = true
	}
	if p.isKw("constraint") || p.isKw("primary") || p.isKw("unique") || p.isKw("check") {
		return nil, pgerror.WithHintf(p.errNear(p.peek()), "kvnode supports ALTER TABLE ... ADD COLUMN")
	}
	col, err := p.columnDef()
	if err != nil {
		return nil, err
	}
	s.Column = col
	return s, nil
}

func (p *parser) parseInsert() (Stmt, error) {
	s := &Insert{Upsert: p.isKw("upsert")}
	p.advance()
	if err := p.expectKw("into"); err != nil {
		return nil, err
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s.Table = name
	if p.isKw("as") {
		return nil, pgerror.WithHintf(p.errNear(p.peek()), "table aliases are not supported in INSERT")
	}
	if p.isOp("(") && !p.startsQuery() {
		p.advance()
		cols, err := p.identList()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		s.Columns = cols
	}
	switch {
	case p.isKw("default") && p.isKwAt(1, "values"):
		p.advance()
		p.advance()
		s.Rows = [][]Expr{nil}
	case p.isKw("values") && !p.valuesQueryAhead():
		p.advance()
		for {
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			var row []Expr
			for {
				var e Expr
				if p.isKw("default") {
					p.advance()
					e = DefaultExpr{}
				} else {
					e, err = p.parseExpr()
					if err != nil {
						return nil, err
					}
				}
				row = append(row, e)
				if !p.acceptOp(",") {
					break
				}
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			s.Rows = append(s.Rows, row)
			if !p.acceptOp(",") {
				break
			}
		}
	case p.startsQuery() || p.isKw("table"):
		q, err := p.parseQuery()
		if err != nil {
			return nil, err
		}
		s.Select = q
	default:
		return nil, p.errNear(p.peek())
	}
	if p.isKw("on") {
		if s.Upsert {
			return nil, pgerror.WithHintf(p.errNear(p.peek()), "UPSERT has no ON CONFLICT clause; use INSERT ... ON CONFLICT")
		}
		p.advance()
		if err := p.expectKw("conflict"); err != nil {
			return nil, err
		}
		oc := &OnConflict{}
		if p.isOp("(") {
			cols, err := p.parenIdentList(false)
			if err != nil {
				return nil, err
			}
			oc.Columns = cols
		}
		if err := p.expectKw("do"); err != nil {
			return nil, err
		}
		switch {
		case p.acceptKw("nothing"):
			oc.DoNothing = true
		case p.acceptKw("update"):
			if oc.Columns == nil {
				return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
					"ON CONFLICT DO UPDATE requires a conflict target"), charPos(p.src, p.toks[p.i-1].pos)),
					"name the primary key columns: ON CONFLICT (k) DO UPDATE SET ...")
			}
			if err := p.expectKw("set"); err != nil {
				return nil, err
			}
			set, err := p.updateExprs()
			if err != nil {
				return nil, err
			}
			oc.Set = set
			if p.isKw("where") {
				return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"ON CONFLICT DO UPDATE ... WHERE is not supported yet"), charPos(p.src, p.peek().pos)),
					"use a CASE-free SET, or an UPDATE with WHERE after the INSERT")
			}
		default:
			return nil, p.errNear(p.peek())
		}
		s.OnConflict = oc
	}
	ret, err := p.returning()
	if err != nil {
		return nil, err
	}
	s.Returning = ret
	return s, nil
}

func (p *parser) updateExprs() ([]*UpdateExpr, error) {
	var out []*UpdateExpr
	for {
		col, err := p.ident()
		if err != nil {
			return nil, err
		}
		if p.isOp(".") {
			return nil, pgerror.WithHintf(p.errNear(p.peek()), "write the column without a table name: SET v = ...")
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		u := &UpdateExpr{Column: col}
		if p.isKw("default") {
			p.advance()
		} else {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			u.Expr = e
		}
		out = append(out, u)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

func (p *parser) returning() ([]*SelectExpr, error) {
	if !p.acceptKw("returning") {
		return nil, nil
	}
	if p.acceptKw("nothing") {
		return nil, nil
	}
	return p.selectExprs()
}

func (p *parser) selectExprs() ([]*SelectExpr, error) {
	var out []*SelectExpr
	for {
		se := &SelectExpr{}
		switch {
		case p.isOp("*"):
			p.advance()
			se.Star = true
		case p.peek().kind == tokIdent && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "." &&
			p.peekAt(2).kind == tokOp && p.peekAt(2).val == "*":
			tbl, err := p.ident()
			if err != nil {
				return nil, err
			}
			p.advance()
			p.advance()
			se.Star = true
			se.StarTable = tbl
		default:
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			se.Expr = e
			if p.acceptKw("as") {
				alias, err := p.anyName()
				if err != nil {
					return nil, err
				}
				se.Alias = alias
			} else if t := p.peek(); t.kind == tokIdent && (t.quoted || !reservedKeywords[t.val]) {
				p.advance()
				se.Alias = t.val
			}
		}
		out = append(out, se)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

func (p *parser) parseUpdate() (Stmt, error) {
	p.advance() // UPDATE
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s := &Update{Table: name}
	if err := p.expectKw("set"); err != nil {
		return nil, err
	}
	set, err := p.updateExprs()
	if err != nil {
		return nil, err
	}
	s.Set = set
	if p.isKw("from") {
		return nil, p.unsupportedHere("read the other tables in subqueries of SET and WHERE",
			"UPDATE ... FROM is not supported")
	}
	if p.acceptKw("where") {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		s.Where = e
	}
	ret, err := p.returning()
	if err != nil {
		return nil, err
	}
	s.Returning = ret
	return s, nil
}

func (p *parser) parseDelete() (Stmt, error) {
	p.advance() // DELETE
	if err := p.expectKw("from"); err != nil {
		return nil, err
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s := &Delete{Table: name}
	if p.isKw("using") {
		return nil, p.unsupportedHere("name the other tables' rows in the WHERE clause: WHERE ... IN (SELECT ...) or EXISTS (SELECT ...)",
			"DELETE ... USING is not supported")
	}
	if p.acceptKw("where") {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		s.Where = e
	}
	ret, err := p.returning()
	if err != nil {
		return nil, err
	}
	s.Returning = ret
	return s, nil
}

// showQuery parses the query a SHOW statement stands for.
func showQuery(q string) Stmt {
	st, err := ParseOne(q)
	if err != nil {
		panic("parser: bad built-in query: " + err.Error())
	}
	return st.AST
}

func (p *parser) parseShow() (Stmt, error) {
	p.advance() // SHOW
	switch {
	case p.isKw("databases") && (p.peekAt(1).kind == tokEOF || p.peekAt(1).kind == tokOp && p.peekAt(1).val == ";"):
		// SHOW DATABASES and SHOW SCHEMAS read the catalog, as queries.
		p.advance()
		return showQuery("SELECT datname AS database_name, pg_catalog.pg_get_userbyid(datdba) AS owner FROM pg_catalog.pg_database ORDER BY 1"), nil
	case p.isKw("schemas") && (p.peekAt(1).kind == tokEOF || p.peekAt(1).kind == tokOp && p.peekAt(1).val == ";"):
		p.advance()
		return showQuery("SELECT nspname AS schema_name, pg_catalog.pg_get_userbyid(nspowner) AS owner FROM pg_catalog.pg_namespace ORDER BY 1"), nil
	case p.isKw("tables"):
		p.advance()
		if p.acceptKw("from") || p.acceptKw("in") {
			// SHOW TABLES FROM db[.public] (or FROM public: the
			// session's database).
			n, err := p.tableName()
			if err != nil {
				return nil, err
			}
			if len(n.Parts) == 1 && n.Parts[0] == "public" {
				return &ShowTables{}, nil
			}
			return &ShowTables{Database: n.Parts[0]}, nil
		}
		return &ShowTables{}, nil
	case p.isKw("create"):
		p.advance()
		p.acceptKw("table")
		name, err := p.tableName()
		if err != nil {
			return nil, err
		}
		return &ShowCreateTable{Name: name}, nil
	case p.isKw("cluster") && p.isKwAt(1, "setting"):
		p.advance()
		p.advance()
		name, err := p.dottedName()
		if err != nil {
			return nil, err
		}
		return &ShowClusterSetting{Name: name}, nil
	case p.isKw("cluster") && p.isKwAt(1, "settings"):
		p.advance()
		p.advance()
		return &ShowClusterSettings{}, nil
	case p.isKw("all") && p.isKwAt(1, "cluster"):
		p.advance()
		p.advance()
		if err := p.expectKw("settings"); err != nil {
			return nil, err
		}
		return &ShowClusterSettings{All: true}, nil
	case p.isKw("public") && p.isKwAt(1, "cluster"):
		p.advance()
		p.advance()
		if err := p.expectKw("settings"); err != nil {
			return nil, err
		}
		return &ShowClusterSettings{}, nil
	case p.isKw("jobs"):
		p.advance()
		return &ShowJobs{}, nil
	case p.isKw("users") || p.isKw("roles"):
		p.advance()
		return &ShowUsers{}, nil
	case p.isKw("grants"):
		p.advance()
		return p.parseShowGrants()
	case p.isKw("upgrade") && p.isKwAt(1, "status"):
		p.advance()
		p.advance()
		return &ShowUpgradeStatus{}, nil
	case p.isKw("upgrade") && p.isKwAt(1, "plan"):
		p.advance()
		p.advance()
		st := &ShowUpgradePlan{}
		if p.isKw("for") {
			p.advance()
			if err := p.expectKw("version"); err != nil {
				return nil, err
			}
			t := p.peek()
			if t.kind != tokString {
				return nil, p.errNear(t)
			}
			p.advance()
			st.Version, st.HasVersion = t.val, true
		}
		return st, nil
	case p.isKw("all"):
		p.advance()
		return &ShowVar{Name: "all"}, nil
	case p.isKw("transaction") && p.isKwAt(1, "isolation"):
		p.advance()
		p.advance()
		if err := p.expectKw("level"); err != nil {
			return nil, err
		}
		return &ShowVar{Name: "transaction_isolation"}, nil
	case p.isKw("time") && p.isKwAt(1, "zone"):
		p.advance()
		p.advance()
		return &ShowVar{Name: "timezone"}, nil
	}
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	return &ShowVar{Name: name}, nil
}

func (p *parser) parseSet() (Stmt, error) {
	p.advance() // SET
	if p.isKw("cluster") && p.isKwAt(1, "setting") {
		p.advance()
		p.advance()
		name, err := p.dottedName()
		if err != nil {
			return nil, err
		}
		if !p.acceptOp("=") && !p.acceptKw("to") {
			return nil, p.errNear(p.peek())
		}
		if p.acceptKw("default") {
			return &SetClusterSetting{Name: name, Default: true}, nil
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		return &SetClusterSetting{Name: name, Value: e}, nil
	}
	if p.isKw("local") {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"SET LOCAL is not supported"), charPos(p.src, p.peek().pos)),
			"use SET, which lasts for the session")
	}
	if p.acceptKw("transaction") {
		s, err := p.txnModes(&Txn{Kind: TxnSetTransaction})
		if err != nil {
			return nil, err
		}
		if t := s.(*Txn); t.Isolation == "" && !t.ReadOnly && !t.ReadWrite {
			return nil, pgerror.WithHintf(p.errNear(p.peek()), "SET TRANSACTION takes ISOLATION LEVEL or READ ONLY / READ WRITE")
		}
		return s, nil
	}
	p.acceptKw("session")
	if p.isKw("characteristics") {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"SET SESSION CHARACTERISTICS is not supported"), charPos(p.src, p.peek().pos)),
			"every transaction is serializable; use SET default_transaction_isolation")
	}
	if p.isKw("time") && p.isKwAt(1, "zone") {
		p.advance()
		p.advance()
		s := &SetVar{Name: "timezone"}
		if p.acceptKw("default") || p.acceptKw("local") {
			s.Default = true
			return s, nil
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		s.Values = []Expr{e}
		return s, nil
	}
	if p.acceptKw("names") {
		s := &SetVar{Name: "client_encoding"}
		if p.acceptKw("default") {
			s.Default = true
			return s, nil
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		s.Values = []Expr{e}
		return s, nil
	}
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	s := &SetVar{Name: name}
	if !p.acceptOp("=") && !p.acceptKw("to") {
		return nil, p.errNear(p.peek())
	}
	if p.acceptKw("default") {
		s.Default = true
		return s, nil
	}
	for {
		var e Expr
		// Bare words are values here (SET datestyle = ISO, MDY); "on" is
		// reserved elsewhere but a common value.
		if t := p.peek(); t.kind == tokIdent && !t.quoted &&
			(p.peekAt(1).kind == tokEOF || p.peekAt(1).kind == tokOp && (p.peekAt(1).val == "," || p.peekAt(1).val == ";")) &&
			t.val != "true" && t.val != "false" && t.val != "null" {
			p.advance()
			e = &StrVal{Val: t.val}
		} else {
			e, err = p.parseExpr()
			if err != nil {
				return nil, err
			}
			// A lone name that only parsed as an expression (SET x TO +iso)
			// is a bare word too, so that its canonical form, the word,
			// means the same.
			if c, ok := e.(*ColumnRef); ok && len(c.Parts) == 1 {
				e = &StrVal{Val: c.Parts[0]}
			}
		}
		s.Values = append(s.Values, e)
		if !p.acceptOp(",") {
			return s, nil
		}
	}
}

func (p *parser) parseReset() (Stmt, error) {
	p.advance() // RESET
	if p.isKw("all") && (p.peekAt(1).kind == tokEOF || p.peekAt(1).kind == tokOp && p.peekAt(1).val == ";") {
		p.advance()
		return &Discard{What: "RESET ALL"}, nil
	}
	if p.isKw("cluster") && p.isKwAt(1, "setting") {
		p.advance()
		p.advance()
		name, err := p.dottedName()
		if err != nil {
			return nil, err
		}
		return &ResetClusterSetting{Name: name}, nil
	}
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	return &SetVar{Name: name, Default: true}, nil
}

// ---- expressions ----
//
// Precedence, lowest first, as in PostgreSQL: OR; AND; NOT; IS; comparison;
// IN, BETWEEN, LIKE; ||; + -; * / %; unary -; ::.

func (p *parser) parseExpr() (Expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
			"expression nested too deeply"), charPos(p.src, p.peek().pos)), "simplify the expression")
	}
	return p.parseOr()
}

func (p *parser) parseOr() (Expr, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.acceptKw("or") {
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		left = &OrExpr{Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) parseAnd() (Expr, error) {
	left, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.acceptKw("and") {
		right, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		left = &AndExpr{Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) parseNot() (Expr, error) {
	if p.acceptKw("not") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
				"expression nested too deeply"), charPos(p.src, p.peek().pos))
		}
		e, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &NotExpr{Expr: e}, nil
	}
	return p.parseIs()
}

func (p *parser) parseIs() (Expr, error) {
	e, err := p.parseComparison()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isKw("is"):
			p.advance()
			not := p.acceptKw("not")
			if p.acceptKw("distinct") {
				if err := p.expectKw("from"); err != nil {
					return nil, err
				}
				right, err := p.parseComparison()
				if err != nil {
					return nil, err
				}
				op := CmpIsDistinct
				if not {
					op = CmpIsNotDistinct
				}
				e = &ComparisonExpr{Op: op, Left: e, Right: right}
				continue
			}
			if p.isKw("of") || p.isKw("document") || p.isKw("normalized") || p.isKw("json") {
				return nil, p.unsupportedAt(p.peek(), "IS %s is not supported", strings.ToUpper(p.peek().val))
			}
			if p.isKw("true") || p.isKw("false") || p.isKw("unknown") {
				return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "IS %s is not supported yet", strings.ToUpper(p.peek().val)),
					"compare with = true, or use IS NULL")
			}
			if !p.acceptKw("null") {
				return nil, pgerror.WithHintf(p.errNear(p.peek()), "kvnode supports IS NULL, IS NOT NULL and IS [NOT] DISTINCT FROM")
			}
			e = &IsNullExpr{Expr: e, Not: not}
		case p.acceptKw("isnull"):
			e = &IsNullExpr{Expr: e}
		case p.acceptKw("notnull"):
			e = &IsNullExpr{Expr: e, Not: true}
		default:
			return e, nil
		}
	}
}

var cmpOps = map[string]CmpOp{
	"=": CmpEQ, "<>": CmpNE, "!=": CmpNE, "<": CmpLT, "<=": CmpLE, ">": CmpGT, ">=": CmpGE,
}

func (p *parser) parseComparison() (Expr, error) {
	left, err := p.parsePredicate()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op CmpOp
		switch {
		case t.kind == tokOp && cmpOps[t.val] != 0:
			op = cmpOps[t.val]
			p.advance()
		case p.isOperatorKw():
			save := p.i
			name, err := p.operatorName()
			if err != nil {
				return nil, err
			}
			if cmpOps[name] == 0 {
				p.i = save
				return left, nil
			}
			op = cmpOps[name]
		default:
			return left, nil
		}
		if (p.isKw("any") || p.isKw("some") || p.isKw("all")) && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "(" {
			all := p.advance().val == "all"
			p.advance() // (
			var right Expr
			if p.isKw("select") || p.isKw("with") {
				q, err := p.parseQuery()
				if err != nil {
					return nil, err
				}
				right = &Subquery{Select: q}
			} else {
				r, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				right = r
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			left = &QuantExpr{Op: op, All: all, Left: left, Right: right}
			continue
		}
		right, err := p.parsePredicate()
		if err != nil {
			return nil, err
		}
		left = &ComparisonExpr{Op: op, Left: left, Right: right}
	}
}

// isOperatorKw reports whether OPERATOR( starts here.
func (p *parser) isOperatorKw() bool {
	return p.isKw("operator") && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "("
}

// operatorName reads OPERATOR(schema.op) and returns op. Only pg_catalog
// operators exist.
func (p *parser) operatorName() (string, error) {
	p.advance() // OPERATOR
	p.advance() // (
	for p.peek().kind == tokIdent {
		sch := p.advance()
		if sch.val != "pg_catalog" {
			return "", pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedFunction,
				"operator does not exist: %s", sch.val), charPos(p.src, sch.pos))
		}
		if err := p.expectOp("."); err != nil {
			return "", err
		}
	}
	t := p.peek()
	if t.kind != tokOp || t.val == ")" {
		return "", p.errNear(t)
	}
	p.advance()
	name := t.val
	// The lexer splits operators it does not know, such as ~~ (LIKE),
	// into single characters: join them back.
	for p.peek().kind == tokOp && p.peek().val != ")" && p.peek().pos == p.toks[p.i-1].end {
		name += p.advance().val
	}
	if err := p.expectOp(")"); err != nil {
		return "", err
	}
	return name, nil
}

func (p *parser) parsePredicate() (Expr, error) {
	e, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	for {
		not := false
		if p.isKw("not") && (p.isKwAt(1, "in") || p.isKwAt(1, "between") || p.isKwAt(1, "like") || p.isKwAt(1, "ilike")) {
			p.advance()
			not = true
		}
		switch {
		case p.acceptKw("in"):
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			if p.isKw("select") || p.isKw("with") {
				q, err := p.parseQuery()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(")"); err != nil {
					return nil, err
				}
				e = &InExpr{Expr: e, Sub: &Subquery{Select: q}, Not: not}
				continue
			}
			var list []Expr
			for {
				x, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				list = append(list, x)
				if !p.acceptOp(",") {
					break
				}
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			e = &InExpr{Expr: e, List: list, Not: not}
		case p.acceptKw("between"):
			p.acceptKw("symmetric") // not distinguished; rarely used
			from, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			if err := p.expectKw("and"); err != nil {
				return nil, err
			}
			to, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			e = &BetweenExpr{Expr: e, From: from, To: to, Not: not}
		case p.isKw("like") || p.isKw("ilike"):
			ci := p.advance().val == "ilike"
			if (p.isKw("any") || p.isKw("all") || p.isKw("some")) && p.peekAt(1).kind == tokOp && p.peekAt(1).val == "(" {
				return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "LIKE %s (...) is not supported", strings.ToUpper(p.peek().val)),
					"combine LIKE conditions with OR or AND")
			}
			pat, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			if p.isKw("escape") {
				return nil, p.unsupportedAt(p.peek(), "LIKE ... ESCAPE is not supported")
			}
			e = &LikeExpr{Expr: e, Pattern: pat, Not: not, CaseInsens: ci}
		case p.isKw("similar") && !not:
			return nil, p.unsupportedAt(p.peek(), "SIMILAR TO is not supported")
		case !not && p.peek().kind == tokOp && regexOps[p.peek().val] != nil:
			ro := regexOps[p.advance().val]
			pat, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			e = &RegexExpr{Expr: e, Pattern: pat, Not: ro[0], CaseInsens: ro[1]}
		case !not && p.isOperatorKw():
			save := p.i
			name, err := p.operatorName()
			if err != nil {
				return nil, err
			}
			ro, lo := regexOps[name], likeOps[name]
			if ro == nil && lo == nil {
				if cmpOps[name] != 0 {
					p.i = save
					return e, nil
				}
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"operator %s is not supported", name), charPos(p.src, p.toks[save].pos))
			}
			pat, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			if ro != nil {
				e = &RegexExpr{Expr: e, Pattern: pat, Not: ro[0], CaseInsens: ro[1]}
			} else {
				e = &LikeExpr{Expr: e, Pattern: pat, Not: lo[0], CaseInsens: lo[1]}
			}
		case !not && p.isUnknownOperator():
			return nil, p.unknownOperator()
		default:
			return e, nil
		}
	}
}

// regexOps and likeOps map an operator to {not, case-insensitive}.
var (
	regexOps = map[string]*[2]bool{"~": {false, false}, "!~": {true, false}, "~*": {false, true}, "!~*": {true, true}}
	likeOps  = map[string]*[2]bool{"~~": {false, false}, "!~~": {true, false}, "~~*": {false, true}, "!~~*": {true, true}}
)

// knownOps are the operator tokens the grammar uses.
var knownOps = map[string]bool{
	"+": true, "-": true, "*": true, "/": true, "%": true, "||": true, "=": true, "<>": true, "!=": true,
	"<": true, "<=": true, ">": true, ">=": true, "~": true, "!~": true, "~*": true, "!~*": true,
	"->": true, "->>": true, "@>": true, "<@": true, "&": true, "|": true,
}

// otherOps are the operators of PostgreSQL's "any other operator"
// precedence level, left-associative, between + - and comparisons.
var otherOps = map[string]BinaryOp{"||": OpConcat, "->": OpJSONGet, "->>": OpJSONGetText, "@>": OpContains, "<@": OpContainedBy,
	"&": OpBitAnd, "|": OpBitOr}

// isUnknownOperator reports whether the next token is an operator of
// PostgreSQL's syntax that kvnode does not have (@>, ->, #, &, <<, ...).
func (p *parser) isUnknownOperator() bool {
	t := p.peek()
	return t.kind == tokOp && isOpChar(t.val[0]) && !knownOps[t.val]
}

func (p *parser) unknownOperator() error {
	t := p.peek()
	return pgerror.WithHintf(p.unsupportedAt(t, "operator %s is not supported", t.val),
		"kvnode's operators: + - * / %% || & | -> ->> @> <@ = <> < <= > >= ~ !~ ~* !~* LIKE ILIKE IN BETWEEN IS")
}

func (p *parser) parseConcat() (Expr, error) {
	left, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op, ok := otherOps[t.val]
		if t.kind != tokOp || !ok {
			return left, nil
		}
		p.advance()
		right, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		left = &BinaryExpr{Op: op, Left: left, Right: right}
	}
}

func (p *parser) parseAdditive() (Expr, error) {
	left, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for {
		var op BinaryOp
		switch {
		case p.isOp("+"):
			op = OpPlus
		case p.isOp("-"):
			op = OpMinus
		default:
			return left, nil
		}
		p.advance()
		right, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		left = &BinaryExpr{Op: op, Left: left, Right: right}
	}
}

func (p *parser) parseMultiplicative() (Expr, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		var op BinaryOp
		switch {
		case p.isOp("*"):
			op = OpMult
		case p.isOp("/"):
			op = OpDiv
		case p.isOp("%"):
			op = OpMod
		default:
			return left, nil
		}
		p.advance()
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		left = &BinaryExpr{Op: op, Left: left, Right: right}
	}
}

func (p *parser) parseUnary() (Expr, error) {
	if p.isOp("-") || p.isOp("+") {
		minus := p.advance().val == "-"
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeProgramLimitExceeded,
				"expression nested too deeply"), charPos(p.src, p.peek().pos))
		}
		// Fold the sign into a numeric literal so that the smallest INT8,
		// -9223372036854775808, is representable.
		if t := p.peek(); minus && (t.kind == tokInt || t.kind == tokFloat) {
			p.advance()
			var e Expr = &NumVal{Text: "-" + t.val, IsFloat: t.kind == tokFloat}
			return p.parsePostfix(e)
		}
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if !minus {
			return e, nil
		}
		return &UnaryMinus{Expr: e}, nil
	}
	e, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	return p.parsePostfix(e)
}

func (p *parser) parsePostfix(e Expr) (Expr, error) {
	for {
		switch {
		case p.acceptOp("::"):
			typ, mod, special, err := p.castType()
			if err != nil {
				return nil, err
			}
			e = &CastExpr{Expr: e, Type: typ, Mod: mod, Special: special}
		case p.isOp("["):
			p.advance()
			if p.isOp(":") {
				return nil, p.unsupportedAt(p.peek(), "array slices are not supported")
			}
			idx, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(":") {
				return nil, p.unsupportedAt(p.peek(), "array slices are not supported")
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			e = &IndexExpr{Expr: e, Index: idx}
		case p.isKw("at") && p.isKwAt(1, "time") && p.isKwAt(2, "zone"):
			return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "AT TIME ZONE is not supported"),
				"kvnode shows a TIMESTAMPTZ in UTC whatever TimeZone is set, and takes a TIMESTAMP as UTC")
		case p.isKw("collate"):
			p.advance()
			name, err := p.dottedName()
			if err != nil {
				return nil, err
			}
			e = &CollateExpr{Expr: e, Collation: name}
		default:
			return e, nil
		}
	}
}

func (p *parser) parsePrimary() (Expr, error) {
	t := p.peek()
	switch t.kind {
	case tokInt, tokFloat:
		p.advance()
		return &NumVal{Text: t.val, IsFloat: t.kind == tokFloat}, nil
	case tokString:
		p.advance()
		return &StrVal{Val: t.val}, nil
	case tokBytes:
		p.advance()
		return &StrVal{Val: t.val, Bytes: true}, nil
	case tokPlaceholder:
		p.advance()
		if t.n > p.maxPlaceholder {
			p.maxPlaceholder = t.n
		}
		return &Placeholder{Idx: t.n}, nil
	case tokOp:
		if isOpChar(t.val[0]) && !knownOps[t.val] {
			return nil, p.unknownOperator()
		}
		if t.val == "(" {
			p.advance()
			if p.isKw("select") || p.isKw("with") {
				q, err := p.parseQuery()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(")"); err != nil {
					return nil, err
				}
				return &Subquery{Select: q}, nil
			}
			if p.isOp("(") && p.startsQuery() {
				// ((SELECT 1) UNION (SELECT 2)) is a query, ((SELECT 1) + 2)
				// an expression: try the query, and read an expression if
				// it is not one (PostgreSQL's grammar resolves the same).
				save := p.i
				if q, err := p.parseQuery(); err == nil && p.isOp(")") {
					p.advance()
					return &Subquery{Select: q}, nil
				}
				p.i = save
			}
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") {
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"tuples are not supported yet"), charPos(p.src, p.peek().pos))
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			if p.isOp(".") {
				// (expr).field: kvnode's only composite values are
				// information_schema._pg_expandarray's (x, n).
				p.advance()
				field, err := p.anyName()
				if err != nil {
					return nil, err
				}
				return &FieldAccess{Expr: e, Field: field}, nil
			}
			return e, nil
		}
		return nil, p.errNear(t)
	case tokIdent:
		if !t.quoted {
			switch t.val {
			case "null":
				p.advance()
				return &NullVal{}, nil
			case "true", "false":
				p.advance()
				return &BoolVal{Val: t.val == "true"}, nil
			case "cast":
				return p.parseCast()
			case "case":
				return p.parseCase()
			case "exists", "array":
				nt := p.peekAt(1)
				if nt.kind == tokOp && nt.val == "(" && p.startsQueryAt(2) {
					p.advance()
					p.advance()
					q, err := p.parseQuery()
					if err != nil {
						return nil, err
					}
					if err := p.expectOp(")"); err != nil {
						return nil, err
					}
					if t.val == "exists" {
						return &Subquery{Select: q, Exists: true}, nil
					}
					return &ArrayExpr{Sub: &Subquery{Select: q}}, nil
				}
				if t.val == "array" && nt.kind == tokOp && nt.val == "[" {
					p.advance()
					p.advance()
					a := &ArrayExpr{}
					if !p.isOp("]") {
						for {
							if p.isOp("[") {
								return nil, p.unsupportedAt(p.peek(), "multidimensional arrays are not supported")
							}
							x, err := p.parseExpr()
							if err != nil {
								return nil, err
							}
							a.Elems = append(a.Elems, x)
							if !p.acceptOp(",") {
								break
							}
						}
					}
					if err := p.expectOp("]"); err != nil {
						return nil, err
					}
					return a, nil
				}
				if t.val == "array" {
					return nil, p.errNear(nt)
				}
			case "row":
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"%s expressions are not supported yet", strings.ToUpper(t.val)), charPos(p.src, t.pos))
			case "position", "substring", "trim", "extract", "overlay":
				if nt := p.peekAt(1); nt.kind == tokOp && nt.val == "(" {
					if e, ok, err := p.parseSpecialFunc(); ok || err != nil {
						return e, err
					}
				}
			case "timestamp", "timestamptz", "date", "time", "int", "integer", "int2", "int4", "int8", "bigint",
				"smallint", "text", "varchar", "bool", "boolean", "float", "float4", "float8", "real", "bytea",
				"numeric", "decimal", "uuid", "json", "jsonb", "inet", "oid", "regclass", "regtype", "name", "double", "interval":
				// A typed literal: TIMESTAMP '2020-01-01' is CAST('...' AS
				// TIMESTAMP).
				if nt := p.peekAt(1); nt.kind == tokString || (t.val == "double" && p.isKwAt(1, "precision") && p.peekAt(2).kind == tokString) {
					typ, mod, special, err := p.castType()
					if err != nil {
						return nil, err
					}
					lit := p.advance()
					return p.parsePostfix(&CastExpr{Expr: &StrVal{Val: lit.val}, Type: typ, Mod: mod, Special: special})
				}
			case "current_user", "session_user", "current_timestamp", "current_date", "localtimestamp":
				// SQL-standard functions written without parentheses.
				p.advance()
				if p.acceptOp("(") {
					if err := p.expectOp(")"); err != nil {
						return nil, err
					}
				}
				return &FuncCall{Name: []string{t.val}}, nil
			}
		}
		return p.parseNameOrCall()
	}
	return nil, p.errNear(t)
}

// parseSpecialFunc reads the SQL-standard call syntaxes with keywords
// between the arguments: position(a IN b), substring(s FROM i FOR n),
// trim([BOTH|LEADING|TRAILING] [chars] FROM s). ok is false when the call
// is an ordinary one (substring(s, 1, 2)).
func (p *parser) parseSpecialFunc() (Expr, bool, error) {
	name := p.peek()
	save := p.i
	p.advance()
	p.advance() // (
	switch name.val {
	case "overlay":
		return nil, true, p.unsupportedAt(name, "%s is not supported", strings.ToUpper(name.val))
	case "extract":
		// EXTRACT(field FROM source) is date_part('field', source).
		ft := p.peek()
		if ft.kind != tokIdent && ft.kind != tokString {
			return nil, true, p.errNear(ft)
		}
		p.advance()
		if err := p.expectKw("from"); err != nil {
			return nil, true, err
		}
		src, err := p.parseExpr()
		if err != nil {
			return nil, true, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, true, err
		}
		return &FuncCall{Name: []string{"date_part"}, Args: []Expr{&StrVal{Val: strings.ToLower(ft.val)}, src}}, true, nil
	case "position":
		sub, err := p.parseConcat()
		if err != nil {
			return nil, true, err
		}
		if !p.acceptKw("in") {
			p.i = save
			return nil, false, nil
		}
		str, err := p.parseExpr()
		if err != nil {
			return nil, true, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, true, err
		}
		return &FuncCall{Name: []string{"strpos"}, Args: []Expr{str, sub}}, true, nil
	case "substring":
		str, err := p.parseExpr()
		if err != nil {
			return nil, true, err
		}
		if !p.isKw("from") && !p.isKw("for") {
			p.i = save
			return nil, false, nil
		}
		var from, length Expr = &NumVal{Text: "1"}, nil
		if p.acceptKw("from") {
			if from, err = p.parseExpr(); err != nil {
				return nil, true, err
			}
		}
		if p.acceptKw("for") {
			if length, err = p.parseExpr(); err != nil {
				return nil, true, err
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, true, err
		}
		args := []Expr{str, from}
		if length != nil {
			args = append(args, length)
		}
		return &FuncCall{Name: []string{"substr"}, Args: args}, true, nil
	case "trim":
		fn := "btrim"
		switch {
		case p.acceptKw("both"):
		case p.acceptKw("leading"):
			fn = "ltrim"
		case p.acceptKw("trailing"):
			fn = "rtrim"
		}
		var chars Expr
		if !p.isKw("from") {
			x, err := p.parseExpr()
			if err != nil {
				return nil, true, err
			}
			if p.isOp(",") || p.isOp(")") {
				// trim(s) or trim(s, chars): an ordinary call.
				var args = []Expr{x}
				if p.acceptOp(",") {
					c, err := p.parseExpr()
					if err != nil {
						return nil, true, err
					}
					args = append(args, c)
				}
				if err := p.expectOp(")"); err != nil {
					return nil, true, err
				}
				return &FuncCall{Name: []string{fn}, Args: args}, true, nil
			}
			chars = x
		}
		if err := p.expectKw("from"); err != nil {
			return nil, true, err
		}
		str, err := p.parseExpr()
		if err != nil {
			return nil, true, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, true, err
		}
		args := []Expr{str}
		if chars != nil {
			args = append(args, chars)
		}
		return &FuncCall{Name: []string{fn}, Args: args}, true, nil
	}
	p.i = save
	return nil, false, nil
}

// valuesQueryAhead reports whether the VALUES at the current token is
// followed, after its rows, by a clause that makes it a query (UNION,
// ORDER BY, LIMIT, ...): INSERT ... VALUES (1) UNION SELECT 2 inserts the
// query's rows.
func (p *parser) valuesQueryAhead() bool {
	depth := 0
	for k := 1; ; k++ {
		t := p.peekAt(k)
		switch {
		case t.kind == tokEOF:
			return false
		case t.kind == tokOp && t.val == "(":
			depth++
		case t.kind == tokOp && t.val == ")":
			depth--
		case depth == 0 && t.kind == tokOp && t.val == ",":
		case depth == 0 && t.kind == tokOp:
			return false
		case depth == 0:
			for _, kw := range []string{"union", "intersect", "except", "order", "limit", "offset", "fetch"} {
				if p.isKwAt(k, kw) {
					return true
				}
			}
			return false
		}
	}
}

// startsQuery reports whether a query starts at the current token (after
// any number of opening parentheses).
func (p *parser) startsQuery() bool { return p.startsQueryAt(0) }

func (p *parser) startsQueryAt(k int) bool {
	for {
		t := p.peekAt(k)
		if t.kind == tokOp && t.val == "(" {
			k++
			continue
		}
		return p.isKwAt(k, "select") || p.isKwAt(k, "with") || p.isKwAt(k, "values")
	}
}

func (p *parser) parseCase() (Expr, error) {
	p.advance() // CASE
	c := &CaseExpr{}
	if !p.isKw("when") {
		op, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Operand = op
	}
	for p.acceptKw("when") {
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("then"); err != nil {
			return nil, err
		}
		val, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Whens = append(c.Whens, &When{Cond: cond, Val: val})
	}
	if len(c.Whens) == 0 {
		return nil, pgerror.WithHintf(p.errNear(p.peek()), "CASE needs at least one WHEN ... THEN ...")
	}
	if p.acceptKw("else") {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Else = e
	}
	if err := p.expectKw("end"); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parser) parseCast() (Expr, error) {
	p.advance() // CAST
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expectKw("as"); err != nil {
		return nil, err
	}
	typ, mod, special, err := p.castType()
	if err != nil {
		return nil, err
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	return &CastExpr{Expr: e, Type: typ, Mod: mod, Special: special}, nil
}

// parseNameOrCall reads a column reference (a, t.a, db.t.a) or a function
// call (f(...), crdb_internal.node_executable_version()).
func (p *parser) parseNameOrCall() (Expr, error) {
	first, err := p.ident()
	if err != nil {
		return nil, err
	}
	parts := []string{first}
	for p.isOp(".") && p.peekAt(1).kind == tokIdent {
		p.advance()
		parts = append(parts, p.advance().val)
		if len(parts) > 4 {
			return nil, p.errNear(p.toks[p.i-1])
		}
	}
	if !p.isOp("(") {
		return &ColumnRef{Parts: parts}, nil
	}
	p.advance() // (
	f := &FuncCall{Name: parts}
	if p.acceptOp("*") {
		f.Star = true
	} else if !p.isOp(")") {
		if p.acceptKw("distinct") {
			f.Distinct = true
		} else {
			p.acceptKw("all")
		}
		for {
			a, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			f.Args = append(f.Args, a)
			if !p.acceptOp(",") {
				break
			}
		}
		if p.acceptKw("order") {
			if err := p.expectKw("by"); err != nil {
				return nil, err
			}
			order, err := p.orderByList()
			if err != nil {
				return nil, err
			}
			f.OrderBy = order
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if p.isKw("within") {
		return nil, p.unsupportedAt(p.peek(), "WITHIN GROUP is not supported")
	}
	if p.isKw("filter") && p.isOpAt(1, "(") {
		p.advance()
		p.advance()
		if err := p.expectKw("where"); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		f.Filter = e
	}
	if p.acceptKw("over") {
		if p.peek().kind == tokIdent {
			return nil, p.unsupportedAt(p.peek(), "named windows are not supported")
		}
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		w := &WindowSpec{}
		if p.isKw("partition") {
			p.advance()
			if err := p.expectKw("by"); err != nil {
				return nil, err
			}
			for {
				e, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				w.PartitionBy = append(w.PartitionBy, e)
				if !p.acceptOp(",") {
					break
				}
			}
		}
		if p.acceptKw("order") {
			if err := p.expectKw("by"); err != nil {
				return nil, err
			}
			order, err := p.orderByList()
			if err != nil {
				return nil, err
			}
			w.OrderBy = order
		}
		if p.isKw("rows") || p.isKw("range") || p.isKw("groups") {
			return nil, p.unsupportedAt(p.peek(), "window frames are not supported")
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		f.Over = w
		return f, nil
	}
	return f, nil
}
