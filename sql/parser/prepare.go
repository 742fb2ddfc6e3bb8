package parser

import (
	"strings"

	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/types"
)

// Prepare is PREPARE name [(type, ...)] AS statement. The statement's own
// placeholders are its parameters; they are not the PREPARE's.
type Prepare struct {
	Name  string
	Types []types.T
	Mods  []types.Mod
	Stmt  *Statement
}

// Format writes the statement.
func (s *Prepare) Format(b *strings.Builder) {
	b.WriteString("PREPARE ")
	QuoteIdent(b, s.Name)
	if len(s.Types) > 0 {
		b.WriteString(" (")
		for i, t := range s.Types {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(types.ColumnTypeString(t, s.Mods[i]))
		}
		b.WriteString(")")
	}
	b.WriteString(" AS ")
	s.Stmt.AST.Format(b)
}

func (s *Prepare) String() string       { return str(s) }
func (s *Prepare) StatementTag() string { return "PREPARE" }

// Execute is EXECUTE name [(expr, ...)].
type Execute struct {
	Name   string
	Params []Expr
}

// Format writes the statement.
func (s *Execute) Format(b *strings.Builder) {
	b.WriteString("EXECUTE ")
	QuoteIdent(b, s.Name)
	if len(s.Params) > 0 {
		b.WriteString(" (")
		for i, e := range s.Params {
			if i > 0 {
				b.WriteString(", ")
			}
			e.Format(b)
		}
		b.WriteString(")")
	}
}

func (s *Execute) String() string       { return str(s) }
func (s *Execute) StatementTag() string { return "EXECUTE" }

// Deallocate is DEALLOCATE [PREPARE] name | ALL.
type Deallocate struct {
	Name string
	All  bool
}

// Format writes the statement.
func (s *Deallocate) Format(b *strings.Builder) {
	if s.All {
		b.WriteString("DEALLOCATE ALL")
		return
	}
	// PREPARE always: a statement named prepare would otherwise read as
	// the keyword.
	b.WriteString("DEALLOCATE PREPARE ")
	QuoteIdent(b, s.Name)
}

func (s *Deallocate) String() string { return str(s) }
func (s *Deallocate) StatementTag() string {
	if s.All {
		return "DEALLOCATE ALL"
	}
	return "DEALLOCATE"
}

func (*Prepare) stmtNode()    {}
func (*Execute) stmtNode()    {}
func (*Deallocate) stmtNode() {}

// preparable are the statements PREPARE takes, as in PostgreSQL.
func preparable(s Stmt) bool {
	switch s.(type) {
	case *Select, *SetOp, *ValuesClause, *Insert, *Update, *Delete:
		return true
	}
	return false
}

func (p *parser) parsePrepare() (Stmt, error) {
	p.advance() // PREPARE
	if p.isKw("transaction") && p.peekAt(1).kind == tokString {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"PREPARE TRANSACTION (two-phase commit) is not supported"), charPos(p.src, p.peek().pos)),
			"commit the transaction with COMMIT")
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	s := &Prepare{Name: name}
	if p.acceptOp("(") {
		for {
			t, mod, err := p.typeName()
			if err != nil {
				return nil, err
			}
			s.Types, s.Mods = append(s.Types, t), append(s.Mods, mod)
			if !p.acceptOp(",") {
				break
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	if err := p.expectKw("as"); err != nil {
		return nil, err
	}
	outer := p.maxPlaceholder
	p.maxPlaceholder = 0
	start := p.peek()
	inner, err := p.parseStmt()
	if err != nil {
		return nil, err
	}
	if !preparable(inner) {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
			"at or near %q: syntax error", start.val), charPos(p.src, start.pos)),
			"PREPARE takes SELECT, VALUES, INSERT, UPDATE or DELETE")
	}
	s.Stmt = &Statement{AST: inner, Text: p.src[start.pos:p.toks[p.i-1].end], Placeholders: p.maxPlaceholder}
	p.maxPlaceholder = outer
	return s, nil
}

func (p *parser) parseExecute() (Stmt, error) {
	p.advance() // EXECUTE
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	s := &Execute{Name: name}
	if p.acceptOp("(") {
		for {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			s.Params = append(s.Params, e)
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

func (p *parser) parseDeallocate() (Stmt, error) {
	p.advance() // DEALLOCATE
	p.acceptKw("prepare")
	if p.acceptKw("all") {
		return &Deallocate{All: true}, nil
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	return &Deallocate{Name: name}, nil
}
