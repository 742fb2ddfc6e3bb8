package parser

import (
	"strings"

	"github.com/kvnode/kvnode/sql/pgerror"
)

// CopyFrom is COPY t [(cols)] FROM STDIN [[WITH] options], in text or CSV
// format. COPY ... TO and COPY from a file are refused with 0A000.
type CopyFrom struct {
	Table   TableName
	Columns []string // nil: every visible column, in table order
	CSV     bool
	Binary  bool // PostgreSQL's binary COPY format (pgx's CopyFrom sends it)
	Header  bool
	// Delimiter, Null, Quote and Escape are "" for the format's defaults
	// (tab, \N for text; comma, empty unquoted string, " and " for CSV);
	// NullSet tells an explicit NULL '' from the default.
	Delimiter string
	Null      string
	NullSet   bool
	Quote     string
	Escape    string
}

// Format writes the statement with its options in the parenthesized form.
func (s *CopyFrom) Format(b *strings.Builder) {
	b.WriteString("COPY ")
	s.Table.Format(b)
	if s.Columns != nil {
		b.WriteString(" (")
		for i, c := range s.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			QuoteIdent(b, c)
		}
		b.WriteByte(')')
	}
	b.WriteString(" FROM STDIN")
	s.formatOptions(b)
}

func (s *CopyFrom) formatOptions(b *strings.Builder) {
	var opts []string
	if s.CSV {
		opts = append(opts, "FORMAT csv")
	}
	if s.Binary {
		opts = append(opts, "FORMAT binary")
	}
	if s.Header {
		opts = append(opts, "HEADER true")
	}
	lit := func(name, v string) {
		var lb strings.Builder
		FormatStringLiteral(&lb, v)
		opts = append(opts, name+" "+lb.String())
	}
	if s.Delimiter != "" {
		lit("DELIMITER", s.Delimiter)
	}
	if s.NullSet {
		lit("NULL", s.Null)
	}
	if s.Quote != "" {
		lit("QUOTE", s.Quote)
	}
	if s.Escape != "" {
		lit("ESCAPE", s.Escape)
	}
	if len(opts) > 0 {
		b.WriteString(" WITH (" + strings.Join(opts, ", ") + ")")
	}
}

func (s *CopyFrom) String() string       { return str(s) }
func (s *CopyFrom) StatementTag() string { return "COPY" }
func (*CopyFrom) stmtNode()              {}

// CopyTo is COPY t [(cols)] TO STDOUT or COPY (query) TO STDOUT, in text
// or CSV format. The embedded CopyFrom holds the table, columns and format
// options; Query is set for the query form.
type CopyTo struct {
	CopyFrom
	Query SelectStatement
}

// Format writes the statement.
func (s *CopyTo) Format(b *strings.Builder) {
	b.WriteString("COPY ")
	if s.Query != nil {
		b.WriteByte('(')
		s.Query.Format(b)
		b.WriteByte(')')
	} else {
		s.Table.Format(b)
		if s.Columns != nil {
			b.WriteString(" (")
			formatIdents(b, s.Columns)
			b.WriteByte(')')
		}
	}
	b.WriteString(" TO STDOUT")
	s.formatOptions(b)
}

func (s *CopyTo) String() string       { return str(s) }
func (s *CopyTo) StatementTag() string { return "COPY" }
func (*CopyTo) stmtNode()              {}

// Maintenance is VACUUM or ANALYZE, accepted and ignored: kvnode's storage
// needs neither (pgbench -i and ORMs' migration tools send them).
type Maintenance struct {
	Tag string // VACUUM or ANALYZE
}

// Format writes the statement.
func (s *Maintenance) Format(b *strings.Builder) { b.WriteString(s.Tag) }
func (s *Maintenance) String() string            { return str(s) }
func (s *Maintenance) StatementTag() string      { return s.Tag }
func (*Maintenance) stmtNode()                   {}

func (p *parser) parseCopy() (Stmt, error) {
	p.advance() // COPY
	s := &CopyFrom{}
	var to *CopyTo
	if p.acceptOp("(") {
		q, err := p.parseQuery()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		to = &CopyTo{Query: q}
	} else {
		name, err := p.tableName()
		if err != nil {
			return nil, err
		}
		s.Table = name
		if p.acceptOp("(") {
			if s.Columns, err = p.identList(); err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
		}
	}
	if to != nil || p.isKw("to") {
		if err := p.expectKw("to"); err != nil {
			return nil, err
		}
		if !p.acceptKw("stdout") {
			return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "COPY TO a file or program is not supported"),
				"receive the data in the client: COPY ... TO STDOUT (psql's \\copy)")
		}
		if to == nil {
			to = &CopyTo{CopyFrom: *s}
		}
		if err := p.copyOptions(&to.CopyFrom); err != nil {
			return nil, err
		}
		if to.Binary {
			return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "COPY TO in binary format is not supported; use text or csv")
		}
		return to, nil
	}
	if err := p.expectKw("from"); err != nil {
		return nil, err
	}
	if !p.acceptKw("stdin") {
		return nil, pgerror.WithHintf(p.unsupportedAt(p.peek(), "COPY FROM a file or program is not supported"),
			"send the data from the client: COPY ... FROM STDIN (psql's \\copy)")
	}
	return s, p.copyOptions(s)
}

// copyOptions reads COPY's options: [WITH] (name value, ...) or the old
// syntax's words.
func (p *parser) copyOptions(s *CopyFrom) error {
	p.acceptKw("with")
	if p.acceptOp("(") {
		for {
			opt, err := p.anyName()
			if err != nil {
				return err
			}
			if err := p.copyOption(s, opt, true); err != nil {
				return err
			}
			if !p.acceptOp(",") {
				break
			}
		}
		return p.expectOp(")")
	}
	// The old syntax: COPY t FROM STDIN [WITH] [BINARY] [DELIMITER [AS]
	// 'c'] [NULL [AS] 's'] [CSV [HEADER] [QUOTE [AS] 'q'] [ESCAPE [AS] 'e']].
	for p.peek().kind == tokIdent && !p.peek().quoted {
		opt := p.advance().val
		if err := p.copyOption(s, opt, false); err != nil {
			return err
		}
	}
	return nil
}

// copyOption reads one option's value; paren is the WITH (...) form,
// whose values follow the name directly.
func (p *parser) copyOption(s *CopyFrom, opt string, paren bool) error {
	str := func() (string, error) {
		if !paren {
			p.acceptKw("as")
		}
		t := p.peek()
		if t.kind != tokString {
			return "", p.errNear(t)
		}
		p.advance()
		return t.val, nil
	}
	char := func(what string) (string, error) {
		v, err := str()
		if err == nil && len(v) != 1 {
			return "", pgerror.Newf("22023", "COPY %s must be a single one-byte character", what)
		}
		return v, err
	}
	var err error
	switch opt {
	case "format":
		f, ferr := p.anyName()
		if ferr != nil {
			return ferr
		}
		switch f {
		case "text":
		case "csv":
			s.CSV = true
		case "binary":
			s.Binary = true
		default:
			return pgerror.Newf("22023", "COPY format %q not recognized", f)
		}
	case "csv":
		s.CSV = true
	case "binary":
		s.Binary = true
	case "header":
		s.Header = true
		if paren {
			switch t := p.peek(); {
			case t.kind == tokIdent && (t.val == "true" || t.val == "on"):
				p.advance()
			case t.kind == tokIdent && (t.val == "false" || t.val == "off"):
				p.advance()
				s.Header = false
			case t.kind == tokInt:
				p.advance()
				s.Header = t.val != "0"
			}
		}
	case "delimiter":
		s.Delimiter, err = char("delimiter")
	case "null":
		s.Null, err = str()
		s.NullSet = true
	case "quote":
		s.Quote, err = char("quote")
	case "escape":
		s.Escape, err = char("escape")
	case "freeze", "encoding", "force_not_null", "force_null", "force_quote":
		// FREEZE is an optimization hint; ENCODING must be UTF8, which is
		// all kvnode speaks.
		if t := p.peek(); t.kind == tokIdent || t.kind == tokString || t.kind == tokInt {
			p.advance()
		}
	default:
		return p.errNear(p.toks[p.i-1])
	}
	if err == nil && s.Binary && (s.CSV || s.Header || s.Delimiter != "" || s.NullSet || s.Quote != "" || s.Escape != "") {
		err = pgerror.Newf(pgerror.CodeSyntaxError, "COPY options of the text and CSV formats cannot be used with FORMAT binary")
	}
	return err
}

// parseMaintenance reads VACUUM [options] [tables] and ANALYZE [tables]
// to their end; they are accepted and do nothing.
func (p *parser) parseMaintenance() (Stmt, error) {
	tag := strings.ToUpper(p.advance().val)
	if tag == "ANALYSE" {
		tag = "ANALYZE"
	}
	for {
		t := p.peek()
		if t.kind == tokEOF || t.kind == tokOp && t.val == ";" {
			return &Maintenance{Tag: tag}, nil
		}
		p.advance()
	}
}

// Discard is DISCARD ALL | PLANS | SEQUENCES | TEMP, or RESET ALL (What
// "RESET ALL"): connection poolers (pgbouncer, Npgsql) send DISCARD ALL
// before handing a connection to the next client.
type Discard struct {
	What string // ALL, PLANS, SEQUENCES, TEMP, RESET ALL
}

// Format writes the statement.
func (s *Discard) Format(b *strings.Builder) {
	if s.What == "RESET ALL" {
		b.WriteString(s.What)
		return
	}
	b.WriteString("DISCARD " + s.What)
}
func (s *Discard) String() string { return str(s) }
func (s *Discard) StatementTag() string {
	if s.What == "RESET ALL" {
		return "RESET"
	}
	return "DISCARD " + s.What
}
func (*Discard) stmtNode() {}

func (p *parser) parseDiscard() (Stmt, error) {
	p.advance() // DISCARD
	t := p.peek()
	switch {
	case p.acceptKw("all"):
		return &Discard{What: "ALL"}, nil
	case p.acceptKw("plans"):
		return &Discard{What: "PLANS"}, nil
	case p.acceptKw("sequences"):
		return &Discard{What: "SEQUENCES"}, nil
	case p.acceptKw("temp"), p.acceptKw("temporary"):
		return &Discard{What: "TEMP"}, nil
	}
	return nil, pgerror.WithHintf(p.errNear(t), "DISCARD ALL, PLANS, SEQUENCES or TEMP")
}
