package parser

import (
	"strings"

	"github.com/kvnode/kvnode/sql/pgerror"
)

// unsupportedHere is a 0A000 error at the current token, with a hint.
func (p *parser) unsupportedHere(hint, format string, args ...any) error {
	return pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeFeatureNotSupported, format, args...),
		charPos(p.src, p.peek().pos)), "%s", hint)
}

const roleOptionsHint = "kvnode's role options are LOGIN, NOLOGIN, CREATEDB, NOCREATEDB, PASSWORD 'secret' and PASSWORD NULL; " +
	"make a user an admin with GRANT admin TO name"

// roleName reads a user or role name: an identifier (reserved words need
// double quotes) or a string literal, as CockroachDB accepts.
func (p *parser) roleName() (string, error) {
	if t := p.peek(); t.kind == tokString {
		if t.val == "" {
			// As "" is refused: no role has an empty name (and the
			// canonical form, an identifier, could not say it).
			return "", pgerror.WithHintf(lexErrorAt(p.src, t.pos, "''", "zero-length role name"), "name the role, for example CREATE USER alice")
		}
		p.advance()
		return t.val, nil
	}
	return p.ident()
}

func (p *parser) roleNames() ([]string, error) {
	var out []string
	for {
		n, err := p.roleName()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if !p.acceptOp(",") {
			return out, nil
		}
	}
}

// roleOptions reads [WITH] option... of CREATE/ALTER USER|ROLE.
func (p *parser) roleOptions() (RoleOptions, error) {
	var o RoleOptions
	p.acceptKw("with")
	for {
		t := p.peek()
		switch {
		case p.isKw("login") || p.isKw("nologin"):
			if o.Login != nil {
				return o, p.errAt(t, "conflicting or redundant options")
			}
			v := t.val == "login"
			o.Login = &v
			p.advance()
		case p.isKw("createdb") || p.isKw("nocreatedb"):
			if o.CreateDB != nil {
				return o, p.errAt(t, "conflicting or redundant options")
			}
			v := t.val == "createdb"
			o.CreateDB = &v
			p.advance()
		case p.isKw("password") || p.isKw("encrypted") && p.isKwAt(1, "password"):
			if p.acceptKw("encrypted") {
				t = p.peek()
			}
			if o.PasswordSet {
				return o, p.errAt(t, "conflicting or redundant options")
			}
			p.advance()
			o.PasswordSet = true
			switch v := p.peek(); {
			case v.kind == tokString:
				p.advance()
				s := v.val
				o.Password = &s
			case p.acceptKw("null"):
			default:
				// The token is not echoed: it may be a password someone
				// forgot to quote, and errors reach logs.
				return o, pgerror.WithHintf(pgerror.WithPosition(pgerror.Newf(pgerror.CodeSyntaxError,
					"syntax error: PASSWORD takes a string literal or NULL"), charPos(p.src, v.pos)),
					"write PASSWORD 'secret' (a string literal) or PASSWORD NULL")
			}
		case t.kind == tokIdent && !t.quoted && t.val != "":
			if t.kind == tokEOF || t.val == ";" {
				return o, nil
			}
			return o, p.unsupportedHere(roleOptionsHint, "role option %s is not supported", strings.ToUpper(t.val))
		default:
			return o, nil
		}
	}
}

// parseCreateRole parses CREATE USER|ROLE; the CREATE is consumed.
func (p *parser) parseCreateRole() (Stmt, error) {
	s := &CreateRole{IsRole: p.advance().val == "role"}
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
	name, err := p.roleName()
	if err != nil {
		return nil, err
	}
	s.Name = name
	if s.Options, err = p.roleOptions(); err != nil {
		return nil, err
	}
	return s, nil
}

// parseAlterRole parses ALTER USER|ROLE; the ALTER is consumed.
func (p *parser) parseAlterRole() (Stmt, error) {
	s := &AlterRole{IsRole: p.advance().val == "role"}
	if p.isKw("if") && p.isKwAt(1, "exists") {
		p.advance()
		p.advance()
		s.IfExists = true
	}
	name, err := p.roleName()
	if err != nil {
		return nil, err
	}
	s.Name = name
	if p.isKw("rename") || p.isKw("set") || p.isKw("reset") {
		return nil, p.unsupportedHere(roleOptionsHint, "ALTER %s ... %s is not supported", roleWord(s.IsRole), strings.ToUpper(p.peek().val))
	}
	if s.Options, err = p.roleOptions(); err != nil {
		return nil, err
	}
	if s.Options.Login == nil && s.Options.CreateDB == nil && !s.Options.PasswordSet {
		return nil, pgerror.WithHintf(p.errNear(p.peek()), "%s", "write ALTER USER name WITH PASSWORD 'secret' (or PASSWORD NULL, LOGIN, NOLOGIN, CREATEDB, NOCREATEDB)")
	}
	return s, nil
}

// parseDropRole parses DROP USER|ROLE; the DROP is consumed.
func (p *parser) parseDropRole() (Stmt, error) {
	s := &DropRole{IsRole: p.advance().val == "role"}
	if p.isKw("if") {
		p.advance()
		if err := p.expectKw("exists"); err != nil {
			return nil, err
		}
		s.IfExists = true
	}
	names, err := p.roleNames()
	if err != nil {
		return nil, err
	}
	s.Names = names
	return s, nil
}

var privilegeWords = map[string]bool{"select": true, "insert": true, "update": true, "delete": true,
	"create": true, "connect": true, "all": true}

// parseGrant parses GRANT and REVOKE.
func (p *parser) parseGrant() (Stmt, error) {
	s := &Grant{Revoke: p.advance().val == "revoke"}
	if s.Revoke && (p.isKw("grant") || p.isKw("admin")) && p.isKwAt(1, "option") {
		return nil, p.unsupportedHere("REVOKE the privilege or the role itself", "REVOKE %s OPTION FOR is not supported", strings.ToUpper(p.peek().val))
	}
	var words []string
	var first token
	for {
		t := p.peek()
		if t.kind != tokIdent {
			return nil, pgerror.WithHintf(p.errNear(t), "write GRANT SELECT, INSERT ON TABLE t TO name, or GRANT role TO name")
		}
		if len(words) == 0 {
			first = t
		}
		p.advance()
		w := t.val
		if w == "all" {
			p.acceptKw("privileges")
		}
		if p.isOp("(") {
			return nil, p.unsupportedHere("grant the privilege on the whole table", "column privileges are not supported")
		}
		words = append(words, w)
		if !p.acceptOp(",") {
			break
		}
	}
	if p.acceptKw("on") {
		for _, w := range words {
			if !privilegeWords[w] {
				return nil, pgerror.WithHintf(p.errAt(first, "unknown privilege "+strings.ToUpper(w)),
					"%s", "the privileges are SELECT, INSERT, UPDATE, DELETE (on tables), CREATE, CONNECT (on databases) and ALL")
			}
			s.Privileges = append(s.Privileges, strings.ToUpper(w))
		}
		target, err := p.grantTarget()
		if err != nil {
			return nil, err
		}
		s.Target = target
	} else {
		for _, w := range words {
			if privilegeWords[w] && w != "create" && w != "connect" || w == "create" && !p.isKw("to") {
				return nil, pgerror.WithHintf(p.errNear(p.peek()), "write GRANT %s ON TABLE t TO name (or ON DATABASE d)", strings.ToUpper(w))
			}
		}
		s.Roles = words
	}
	kw := "to"
	if s.Revoke {
		kw = "from"
	}
	if err := p.expectKw(kw); err != nil {
		return nil, err
	}
	if p.isKw("public") {
		return nil, p.unsupportedHere("grant to each user, or to a role its users are members of", "granting to PUBLIC is not supported")
	}
	grantees, err := p.roleNames()
	if err != nil {
		return nil, err
	}
	s.Grantees = grantees
	if p.isKw("with") {
		return nil, p.unsupportedHere("only admins grant and revoke; omit WITH ... OPTION", "WITH %s OPTION is not supported", strings.ToUpper(p.peekAt(1).val))
	}
	return s, nil
}

// grantTarget reads what follows ON: DATABASE d, ... or [TABLE] t, ...
func (p *parser) grantTarget() (*GrantTarget, error) {
	switch {
	case p.acceptKw("database"):
		names, err := p.identList()
		if err != nil {
			return nil, err
		}
		return &GrantTarget{Databases: names}, nil
	case p.isKw("schema") || p.isKw("all") || p.isKw("sequence") || p.isKw("function") || p.isKw("type"):
		return nil, p.unsupportedHere("grant on each table (ON TABLE t) or on the database (ON DATABASE d)",
			"privileges on %s are not supported", strings.ToUpper(p.peek().val))
	}
	p.acceptKw("table")
	names, err := p.tableNames()
	if err != nil {
		return nil, err
	}
	return &GrantTarget{Tables: names}, nil
}

// parseShowGrants parses SHOW GRANTS; SHOW GRANTS is consumed.
func (p *parser) parseShowGrants() (Stmt, error) {
	s := &ShowGrants{}
	if p.acceptKw("on") {
		if p.isKw("role") {
			p.advance()
			return nil, p.unsupportedHere("SHOW USERS lists each user's roles", "SHOW GRANTS ON ROLE is not supported")
		}
		target, err := p.grantTarget()
		if err != nil {
			return nil, err
		}
		s.Target = target
	}
	if p.acceptKw("for") {
		names, err := p.roleNames()
		if err != nil {
			return nil, err
		}
		s.Grantees = names
	}
	return s, nil
}
