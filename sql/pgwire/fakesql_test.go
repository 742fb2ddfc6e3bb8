package pgwire

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// fakeSQL is a test double for the SQL layer, and only for it: it lets the
// protocol be tested in isolation. It understands a tiny, PostgreSQL-
// compatible dialect, so that the same statements give the same wire output
// against a real PostgreSQL:
//
//	SELECT item [, item ...]           item: expr [AS name]
//	expr: literal | $n | -expr | expr / expr | (expr) | expr::type | f(args)
//	INSERT ... | CREATE ... | DROP ...  no rows; any text after the keyword
//
// Functions: generate_series(a, b) (a set of rows), and, for Go tests only,
// crash() (panics), block() (waits for the test), wait_for_cancel() (waits
// for its context), bad_datum() (returns a value of the wrong Go type).
type fakeSQL struct {
	// blockEntered receives when block() starts; block() returns when
	// blockRelease is closed (or its context ends).
	blockEntered chan struct{}
	blockRelease chan struct{}
	// canceled receives the cause of wait_for_cancel()'s context.
	canceled chan error

	open atomic.Int64 // sessions not yet closed
}

func newFakeSQL() *fakeSQL {
	return &fakeSQL{
		blockEntered: make(chan struct{}, 16),
		blockRelease: make(chan struct{}),
		canceled:     make(chan error, 16),
	}
}

func (f *fakeSQL) NewSession(ctx context.Context, args SessionArgs) (Session, error) {
	if args.Database != "" && args.Database != "defaultdb" {
		return nil, pgerror.Newf(pgerror.CodeInvalidCatalogName, "database %q does not exist", args.Database)
	}
	if args.Params["application_name"] == "panic-on-connect" {
		panic("fake: panic in NewSession")
	}
	f.open.Add(1)
	return &fakeSession{f: f}, nil
}

type fakeSession struct {
	f      *fakeSQL
	closed bool
}

func (s *fakeSession) Close() {
	if !s.closed {
		s.closed = true
		s.f.open.Add(-1)
	}
}

// The fake SQL layer has no transactions: the wire server's part of them
// (ReadyForQuery's status, implicit transactions, the idle timeout) is
// tested against the real executor in package sql.
func (s *fakeSession) TxnStatus() byte                         { return 'I' }
func (s *fakeSession) BeginQuery([]Statement) error            { return nil }
func (s *fakeSession) EndQuery(context.Context, bool) error    { return nil }
func (s *fakeSession) Failed()                                 {}
func (s *fakeSession) IdleInTransactionTimeout() time.Duration { return 0 }

type fakeStmt struct {
	sql  string
	toks []token
	nph  int
}

func (s *fakeStmt) SQL() string          { return s.sql }
func (s *fakeStmt) NumPlaceholders() int { return s.nph }

func (s *fakeSession) Parse(query string) ([]Statement, error) {
	toks, err := tokenize(query)
	if err != nil {
		return nil, err
	}
	var out []Statement
	start := 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && toks[i].kind != ';' {
			continue
		}
		if st := toks[start:i]; len(st) > 0 {
			switch strings.ToUpper(st[0].text) {
			case "SELECT", "INSERT", "CREATE", "DROP":
			default:
				return nil, syntaxError(st[0])
			}
			nph := 0
			for _, t := range st {
				if t.kind == '$' {
					nph = max(nph, t.param)
				}
			}
			end := len(query)
			if i < len(toks) {
				end = toks[i].off
			}
			out = append(out, &fakeStmt{sql: strings.TrimSpace(query[st[0].off:end]), toks: st, nph: nph})
		}
		start = i + 1
	}
	return out, nil
}

func (s *fakeSession) Prepare(ctx context.Context, stmt Statement, paramTypes []types.T) (Prepared, error) {
	st := stmt.(*fakeStmt)
	p := &fakePrepared{f: s.f, kw: strings.ToUpper(st.toks[0].text), params: make([]types.T, st.nph)}
	for i := range p.params {
		if i < len(paramTypes) {
			p.params[i] = paramTypes[i]
		}
	}
	if p.kw != "SELECT" {
		return p, nil
	}
	ps := &parser{toks: st.toks[1:], end: st.toks[len(st.toks)-1]}
	for {
		e, err := ps.expr()
		if err != nil {
			return nil, err
		}
		name := e.defaultName()
		if ps.peekWord("AS") {
			ps.i++
			t := ps.next()
			if t.kind != 'a' {
				return nil, syntaxError(t)
			}
			name = t.text
		}
		p.items = append(p.items, e)
		p.cols = append(p.cols, Column{Name: name})
		if ps.peek().kind != ',' {
			break
		}
		ps.i++
	}
	if ps.i < len(ps.toks) {
		return nil, syntaxError(ps.toks[ps.i])
	}
	// Placeholders take the declared type, else the type they are cast to.
	for _, e := range p.items {
		e.walk(func(e *expr) {
			if e.kind == exCast && e.args[0].kind == exParam && p.params[e.args[0].param-1] == types.Unknown {
				p.params[e.args[0].param-1] = e.typ
			}
		})
	}
	for i, e := range p.items {
		if err := e.check(p.params); err != nil {
			return nil, err
		}
		p.cols[i].Type = e.typeOf(p.params)
	}
	return p, nil
}

type fakePrepared struct {
	f      *fakeSQL
	kw     string
	params []types.T
	items  []*expr
	cols   []Column
}

func (p *fakePrepared) ParamTypes() []types.T { return p.params }

func (p *fakePrepared) Columns() []Column {
	if p.kw != "SELECT" {
		return nil
	}
	return p.cols
}

func (p *fakePrepared) Exec(ctx context.Context, params []types.Datum) (Result, error) {
	if len(params) != len(p.params) {
		return Result{}, fmt.Errorf("fake: got %d params, want %d", len(params), len(p.params))
	}
	switch p.kw {
	case "INSERT":
		return Result{Tag: "INSERT 0 1"}, nil
	case "CREATE":
		return Result{Tag: "CREATE TABLE"}, nil
	case "DROP":
		return Result{Tag: "DROP TABLE"}, nil
	}
	ev := &evaluator{ctx: ctx, f: p.f, params: params}
	// A set-returning item makes one row per element; the other items
	// repeat, as in PostgreSQL.
	cols := make([][]types.Datum, len(p.items))
	n := 1
	for i, e := range p.items {
		if e.kind == exCall && e.name == "generate_series" {
			vals, err := ev.series(e)
			if err != nil {
				return Result{}, err
			}
			cols[i] = vals
			n = len(vals)
			continue
		}
		v, err := ev.eval(e)
		if err != nil {
			return Result{}, err
		}
		cols[i] = []types.Datum{v}
	}
	rows := make([][]types.Datum, n)
	for r := range rows {
		rows[r] = make([]types.Datum, len(cols))
		for i, c := range cols {
			if len(c) == 1 {
				rows[r][i] = c[0]
			} else {
				rows[r][i] = c[r]
			}
		}
	}
	return Result{Rows: rows, Tag: "SELECT " + strconv.Itoa(n)}, nil
}

// --- tokenizer ---

// token kinds: 'n' number, 's' string, 'a' word, '$' placeholder, or the
// punctuation character itself (':' stands for "::").
type token struct {
	kind  byte
	text  string
	off   int // byte offset in the query
	pos   int // 1-based character position, as PostgreSQL reports it
	param int
}

func tokenize(q string) ([]token, error) {
	var toks []token
	for i := 0; i < len(q); {
		c := q[i]
		pos := utf8.RuneCountInString(q[:i]) + 1
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			for i < len(q) && (q[i] >= '0' && q[i] <= '9' || q[i] == '.' || q[i] == 'e' || q[i] == 'E' ||
				(q[i] == '+' || q[i] == '-') && (q[i-1] == 'e' || q[i-1] == 'E')) {
				i++
			}
			toks = append(toks, token{kind: 'n', text: q[start:i], off: start, pos: pos})
		case c == '\'':
			var sb strings.Builder
			i++
			for {
				if i >= len(q) {
					return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
						"unterminated quoted string at or near %q", q[start:]), pos)
				}
				if q[i] == '\'' {
					if i+1 < len(q) && q[i+1] == '\'' {
						sb.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				sb.WriteByte(q[i])
				i++
			}
			toks = append(toks, token{kind: 's', text: sb.String(), off: start, pos: pos})
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			for i < len(q) && (q[i] == '_' || q[i] >= 'a' && q[i] <= 'z' || q[i] >= 'A' && q[i] <= 'Z' || q[i] >= '0' && q[i] <= '9') {
				i++
			}
			toks = append(toks, token{kind: 'a', text: q[start:i], off: start, pos: pos})
		case c == '$':
			i++
			for i < len(q) && q[i] >= '0' && q[i] <= '9' {
				i++
			}
			n, err := strconv.Atoi(q[start+1 : i])
			if err != nil || n < 1 || n > 65535 {
				return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
					"syntax error at or near %q", q[start:i]), pos)
			}
			toks = append(toks, token{kind: '$', text: q[start:i], off: start, pos: pos, param: n})
		case c == ':' && strings.HasPrefix(q[i:], "::"):
			i += 2
			toks = append(toks, token{kind: ':', text: "::", off: start, pos: pos})
		case strings.IndexByte(",()/-;*+", c) >= 0:
			i++
			toks = append(toks, token{kind: c, text: q[start:i], off: start, pos: pos})
		default:
			_, size := utf8.DecodeRuneInString(q[i:])
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
				"syntax error at or near %q", q[i:i+size]), pos)
		}
	}
	return toks, nil
}

func syntaxError(t token) error {
	if t.kind == 0 {
		return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError, "syntax error at end of input"), t.pos)
	}
	return pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError, "syntax error at or near %q", t.text), t.pos)
}

// --- parser ---

type exprKind int

const (
	exLit exprKind = iota
	exParam
	exCast
	exNeg
	exDiv
	exCall
)

type expr struct {
	kind  exprKind
	tok   token
	val   types.Datum // exLit
	typ   types.T     // exLit, exCast: the type; exCall: the result type
	param int         // exParam: 1-based
	name  string      // exCast: type name as written; exCall: function
	args  []*expr
}

func (e *expr) walk(fn func(*expr)) {
	fn(e)
	for _, a := range e.args {
		a.walk(fn)
	}
}

// defaultName is PostgreSQL's column name for an unaliased item.
func (e *expr) defaultName() string {
	switch e.kind {
	case exCast:
		return strings.ToLower(e.name)
	case exCall:
		return e.name
	}
	return "?column?"
}

func (e *expr) typeOf(params []types.T) types.T {
	switch e.kind {
	case exParam:
		return params[e.param-1]
	case exNeg:
		return e.args[0].typeOf(params)
	case exDiv:
		return types.Int
	}
	return e.typ
}

func (e *expr) check(params []types.T) error {
	for _, a := range e.args {
		if err := a.check(params); err != nil {
			return err
		}
	}
	if e.kind == exNeg || e.kind == exDiv {
		for _, a := range e.args {
			if t := a.typeOf(params); t != types.Int && t != types.Float && t != types.Unknown {
				return pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedFunction,
					"operator does not exist for type %s", t), e.tok.pos)
			}
		}
	}
	return nil
}

type parser struct {
	toks []token
	i    int
	end  token
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	// Past the last token: "at end of input", positioned after it.
	return token{pos: p.end.pos + utf8.RuneCountInString(p.end.text)}
}

func (p *parser) next() token {
	t := p.peek()
	p.i++
	return t
}

func (p *parser) peekWord(w string) bool {
	t := p.peek()
	return t.kind == 'a' && strings.EqualFold(t.text, w)
}

func (p *parser) expr() (*expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == '/' {
		t := p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &expr{kind: exDiv, tok: t, args: []*expr{l, r}}
	}
	return l, nil
}

func (p *parser) unary() (*expr, error) {
	if p.peek().kind == '-' {
		t := p.next()
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &expr{kind: exNeg, tok: t, args: []*expr{e}}, nil
	}
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == ':' {
		p.i++
		t := p.next()
		if t.kind != 'a' {
			return nil, syntaxError(t)
		}
		typ, ok := types.FromName(t.text)
		if !ok {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedObject, "type %q does not exist", t.text), t.pos)
		}
		e = &expr{kind: exCast, tok: t, typ: typ, name: t.text, args: []*expr{e}}
	}
	return e, nil
}

var fakeFuncs = map[string]types.T{
	"generate_series": types.Int,
	"crash":           types.Int,
	"block":           types.Int,
	"wait_for_cancel": types.Int,
	"bad_datum":       types.Int,
}

func (p *parser) primary() (*expr, error) {
	t := p.next()
	switch t.kind {
	case 'n':
		if strings.ContainsAny(t.text, ".eE") {
			v, err := strconv.ParseFloat(t.text, 64)
			if err != nil {
				return nil, syntaxError(t)
			}
			return &expr{kind: exLit, tok: t, val: v, typ: types.Float}, nil
		}
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeNumericValueOutOfRange, "value out of range: %s", t.text), t.pos)
		}
		return &expr{kind: exLit, tok: t, val: v, typ: types.Int}, nil
	case 's':
		return &expr{kind: exLit, tok: t, val: t.text, typ: types.String}, nil
	case '$':
		return &expr{kind: exParam, tok: t, param: t.param}, nil
	case '(':
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != ')' {
			return nil, syntaxError(c)
		}
		return e, nil
	case 'a':
		switch strings.ToUpper(t.text) {
		case "TRUE":
			return &expr{kind: exLit, tok: t, val: true, typ: types.Bool}, nil
		case "FALSE":
			return &expr{kind: exLit, tok: t, val: false, typ: types.Bool}, nil
		case "NULL":
			return &expr{kind: exLit, tok: t, typ: types.Unknown}, nil
		}
		if p.peek().kind != '(' {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedColumn, "column %q does not exist", t.text), t.pos)
		}
		p.i++
		e := &expr{kind: exCall, tok: t, name: strings.ToLower(t.text)}
		for p.peek().kind != ')' {
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			e.args = append(e.args, a)
			if p.peek().kind == ',' {
				p.i++
			} else if p.peek().kind != ')' {
				return nil, syntaxError(p.peek())
			}
		}
		p.i++
		typ, ok := fakeFuncs[e.name]
		if !ok {
			return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedFunction, "function %s() does not exist", e.name), t.pos)
		}
		e.typ = typ
		return e, nil
	}
	return nil, syntaxError(t)
}

// --- evaluator ---

type evaluator struct {
	ctx    context.Context
	f      *fakeSQL
	params []types.Datum
}

func (ev *evaluator) eval(e *expr) (types.Datum, error) {
	switch e.kind {
	case exLit:
		return e.val, nil
	case exParam:
		return ev.params[e.param-1], nil
	case exNeg:
		v, err := ev.eval(e.args[0])
		switch v := v.(type) {
		case int64:
			return -v, err
		case float64:
			return -v, err
		}
		return v, err
	case exDiv:
		l, err := ev.eval(e.args[0])
		if err != nil {
			return nil, err
		}
		r, err := ev.eval(e.args[1])
		if err != nil || l == nil || r == nil {
			return nil, err
		}
		li, lok := l.(int64)
		ri, rok := r.(int64)
		if !lok || !rok {
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "fake: only INT8 division is supported")
		}
		if ri == 0 {
			return nil, pgerror.Newf(pgerror.CodeDivisionByZero, "division by zero")
		}
		return li / ri, nil
	case exCast:
		v, err := ev.eval(e.args[0])
		if err != nil || v == nil {
			return nil, err
		}
		if types.TypeOf(v) == e.typ {
			return v, nil
		}
		text := string(types.FormatText(v))
		if s, ok := v.(string); ok {
			text = s
		}
		out, perr := types.ParseText(e.typ, []byte(text))
		if perr != nil {
			return nil, pgerror.Newf(pgerror.CodeInvalidTextRepresentation, "invalid input syntax for type %s: %q", strings.ToLower(e.name), text)
		}
		return out, nil
	case exCall:
		switch e.name {
		case "crash":
			panic("fake: crash() called")
		case "bad_datum":
			return "not an int", nil
		case "block":
			notify(ev.f.blockEntered, struct{}{})
			select {
			case <-ev.f.blockRelease:
				return int64(1), nil
			case <-ev.ctx.Done():
				return nil, ev.ctx.Err()
			}
		case "wait_for_cancel":
			<-ev.ctx.Done()
			notify(ev.f.canceled, context.Cause(ev.ctx))
			return nil, ev.ctx.Err()
		case "generate_series":
			return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "fake: generate_series only at the top level")
		}
	}
	return nil, fmt.Errorf("fake: cannot evaluate %v", e.kind)
}

// notify sends v if ch has room: tests that wait read it, and the fuzzer,
// which never reads, must not block on it.
func notify[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func (ev *evaluator) series(e *expr) ([]types.Datum, error) {
	if len(e.args) != 2 {
		return nil, pgerror.WithPosition(pgerror.Newf(pgerror.CodeUndefinedFunction, "function generate_series() needs two arguments"), e.tok.pos)
	}
	var bounds [2]int64
	for i, a := range e.args {
		v, err := ev.eval(a)
		if err != nil {
			return nil, err
		}
		n, ok := v.(int64)
		if !ok {
			return nil, pgerror.Newf(pgerror.CodeDatatypeMismatch, "generate_series needs INT8 bounds")
		}
		bounds[i] = n
	}
	var out []types.Datum
	for v := bounds[0]; v <= bounds[1]; v++ {
		out = append(out, v)
	}
	return out, nil
}
