package parser

import "github.com/kvnode/kvnode/sql/pgerror"

// parseCreateIndex reads CREATE [UNIQUE] INDEX after CREATE.
func (p *parser) parseCreateIndex() (Stmt, error) {
	s := &CreateIndex{Unique: p.acceptKw("unique")}
	if err := p.expectKw("index"); err != nil {
		return nil, err
	}
	p.acceptKw("concurrently")
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
	if !p.isKw("on") {
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.Name = name
	}
	if err := p.expectKw("on"); err != nil {
		return nil, err
	}
	t, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s.Table = t
	if p.acceptKw("using") {
		m, err := p.ident()
		if err != nil {
			return nil, err
		}
		if m != "btree" {
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"index method %q is not supported", m), charPos(p.src, p.toks[p.i-1].pos)),
				"leave out USING: kvnode's indexes are ordered, like btree")
		}
	}
	if s.Columns, err = p.indexColumns(); err != nil {
		return nil, err
	}
	if p.isKw("storing") || p.isKw("include") || p.isKw("covering") {
		p.advance()
		if s.Storing, err = p.parenIdentList(false); err != nil {
			return nil, err
		}
	}
	if p.isKw("where") {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"partial indexes are not supported"), charPos(p.src, p.peek().pos)),
			"index every row: leave out WHERE")
	}
	return s, nil
}

// indexColumns reads (col [ASC] [NULLS LAST], ...): an index's columns are
// ascending; DESC and expressions are refused with 0A000.
func (p *parser) indexColumns() ([]string, error) {
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	var out []string
	for {
		if p.isOp("(") || p.peekAt(1).kind == tokOp && p.peekAt(1).val == "(" {
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"indexes on expressions are not supported"), charPos(p.src, p.peek().pos)),
				"index columns by name")
		}
		id, err := p.ident()
		if err != nil {
			return nil, err
		}
		out = append(out, id)
		if p.isKw("desc") {
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"descending index columns are not supported"), charPos(p.src, p.peek().pos)),
				"remove DESC; an index is read in either direction")
		}
		p.acceptKw("asc")
		if p.isKw("nulls") && p.isKwAt(1, "last") {
			p.advance()
			p.advance()
		}
		if !p.acceptOp(",") {
			break
		}
	}
	return out, p.expectOp(")")
}

// parseDropIndex reads DROP INDEX after DROP.
func (p *parser) parseDropIndex() (Stmt, error) {
	if err := p.expectKw("index"); err != nil {
		return nil, err
	}
	p.acceptKw("concurrently")
	s := &DropIndex{}
	if p.isKw("if") {
		p.advance()
		if err := p.expectKw("exists"); err != nil {
			return nil, err
		}
		s.IfExists = true
	}
	for {
		first, err := p.tableName()
		if err != nil {
			return nil, err
		}
		n := IndexName{}
		if p.acceptOp("@") {
			t := first
			n.Table = &t
			if n.Name, err = p.ident(); err != nil {
				return nil, err
			}
		} else {
			switch len(first.Parts) {
			case 1:
				n.Name = first.Parts[0]
			default:
				// schema.index: the index is looked up by name.
				n.Name = first.Parts[len(first.Parts)-1]
			}
		}
		s.Names = append(s.Names, n)
		if !p.acceptOp(",") {
			break
		}
	}
	if p.isKw("cascade") || p.isKw("restrict") {
		p.advance()
	}
	return s, nil
}

// parseAlterAction reads the ALTER TABLE actions other than ADD.
func (p *parser) parseAlterAction(ifExists bool, name TableName) (Stmt, error) {
	s := &AlterTable{IfExists: ifExists, Name: name}
	hint := "kvnode supports ALTER TABLE ... ADD COLUMN, ADD PRIMARY KEY, ADD CONSTRAINT ... UNIQUE, DROP COLUMN, " +
		"ALTER COLUMN ... SET|DROP DEFAULT, ALTER COLUMN ... SET|DROP NOT NULL, RENAME [COLUMN] and DROP CONSTRAINT"
	var err error
	switch {
	case p.acceptKw("drop"):
		if p.acceptKw("constraint") {
			a := &DropConstraint{}
			if p.isKw("if") && p.isKwAt(1, "exists") {
				p.advance()
				p.advance()
				a.IfExists = true
			}
			if a.Name, err = p.ident(); err != nil {
				return nil, err
			}
			s.Action = a
		} else {
			p.acceptKw("column")
			a := &DropColumn{}
			if p.isKw("if") && p.isKwAt(1, "exists") {
				p.advance()
				p.advance()
				a.IfExists = true
			}
			if a.Column, err = p.ident(); err != nil {
				return nil, err
			}
			s.Action = a
		}
		if p.isKw("cascade") || p.isKw("restrict") {
			p.advance()
		}
	case p.acceptKw("alter"):
		p.acceptKw("column")
		col, err := p.ident()
		if err != nil {
			return nil, err
		}
		switch {
		case p.isKw("set") && p.isKwAt(1, "default"):
			p.advance()
			p.advance()
			e, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			s.Action = &SetDefault{Column: col, Default: e}
		case p.isKw("drop") && p.isKwAt(1, "default"):
			p.advance()
			p.advance()
			s.Action = &SetDefault{Column: col}
		case p.isKw("set") && p.isKwAt(1, "not") && p.isKwAt(2, "null"):
			p.advance()
			p.advance()
			p.advance()
			s.Action = &SetNotNull{Column: col, NotNull: true}
		case p.isKw("drop") && p.isKwAt(1, "not") && p.isKwAt(2, "null"):
			p.advance()
			p.advance()
			p.advance()
			s.Action = &SetNotNull{Column: col}
		case p.isKw("type") || p.isKw("set") && p.isKwAt(1, "data"):
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"ALTER COLUMN ... TYPE is not supported"), charPos(p.src, p.peek().pos)),
				"add a column of the new type, copy the values with UPDATE, then drop the old column")
		default:
			return nil, pgerror.WithHintf(p.errNear(p.peek()), "%s", hint)
		}
	case p.acceptKw("rename"):
		if p.acceptKw("to") {
			to, err := p.ident()
			if err != nil {
				return nil, err
			}
			s.Action = &RenameTable{To: to}
			break
		}
		if p.isKw("constraint") {
			return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
				"RENAME CONSTRAINT is not supported"), charPos(p.src, p.peek().pos)),
				"drop the constraint and add it again under the new name")
		}
		p.acceptKw("column")
		from, err := p.ident()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("to"); err != nil {
			return nil, err
		}
		to, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.Action = &RenameColumn{From: from, To: to}
	default:
		return nil, pgerror.WithHintf(p.errNear(p.peek()), "%s", hint)
	}
	if p.isOp(",") {
		return nil, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"several actions in one ALTER TABLE are not supported"), charPos(p.src, p.peek().pos)),
			"run one ALTER TABLE per action")
	}
	return s, nil
}

// foreignKeyTail reads REFERENCES t [(cols)] [ON DELETE|UPDATE action]...
// [DEFERRABLE ...] into f.
func (p *parser) foreignKeyTail(f *ForeignKeyDef) error {
	if err := p.expectKw("references"); err != nil {
		return err
	}
	t, err := p.tableName()
	if err != nil {
		return err
	}
	f.RefTable = t
	if p.isOp("(") {
		if f.RefColumns, err = p.parenIdentList(false); err != nil {
			return err
		}
	}
	for {
		switch {
		case p.isKw("on") && (p.isKwAt(1, "delete") || p.isKwAt(1, "update")):
			p.advance()
			onDelete := p.advance().val == "delete"
			var action string
			switch {
			case p.acceptKw("cascade"):
				action = "CASCADE"
			case p.acceptKw("restrict"):
				action = "RESTRICT"
			case p.isKw("no") && p.isKwAt(1, "action"):
				p.advance()
				p.advance()
			case p.isKw("set") && p.isKwAt(1, "null"):
				p.advance()
				p.advance()
				action = "SET NULL"
			case p.isKw("set") && p.isKwAt(1, "default"):
				return pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"ON DELETE|UPDATE SET DEFAULT is not supported"), charPos(p.src, p.peek().pos)),
					"use NO ACTION, RESTRICT, CASCADE or SET NULL")
			default:
				return p.errNear(p.peek())
			}
			if onDelete {
				f.OnDelete = action
			} else {
				f.OnUpdate = action
			}
		case p.isKw("match") && (p.isKwAt(1, "simple") || p.isKwAt(1, "full")):
			p.advance()
			if p.advance().val == "full" {
				return pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported,
					"MATCH FULL is not supported"), charPos(p.src, p.toks[p.i-1].pos)), "leave out MATCH: MATCH SIMPLE is the default")
			}
		case p.isKw("deferrable") || p.isKw("not") && p.isKwAt(1, "deferrable"):
			// Checked at the statement, as CockroachDB does; the client's
			// transaction is serializable either way.
			p.acceptKw("not")
			p.advance()
		case p.isKw("initially") && (p.isKwAt(1, "deferred") || p.isKwAt(1, "immediate")):
			p.advance()
			p.advance()
		default:
			return nil
		}
	}
}
