package parser

import "strings"

// ---- users, roles and privileges (release 2.1) ----

// RoleOptions are the options of CREATE/ALTER USER|ROLE.
type RoleOptions struct {
	// Login is nil when neither LOGIN nor NOLOGIN was given.
	Login *bool
	// CreateDB is nil when neither CREATEDB nor NOCREATEDB was given.
	CreateDB *bool
	// PasswordSet: PASSWORD was given; Password is nil for PASSWORD NULL.
	PasswordSet bool
	Password    *string
}

func (o *RoleOptions) format(b *strings.Builder) {
	if o.Login == nil && o.CreateDB == nil && !o.PasswordSet {
		return
	}
	b.WriteString(" WITH")
	if o.Login != nil {
		if *o.Login {
			b.WriteString(" LOGIN")
		} else {
			b.WriteString(" NOLOGIN")
		}
	}
	if o.CreateDB != nil {
		if *o.CreateDB {
			b.WriteString(" CREATEDB")
		} else {
			b.WriteString(" NOCREATEDB")
		}
	}
	if o.PasswordSet {
		b.WriteString(" PASSWORD ")
		if o.Password == nil {
			b.WriteString("NULL")
		} else {
			// The text of a statement is never logged with a password in
			// it: Redacted formats it as '*****'.
			FormatStringLiteral(b, *o.Password)
		}
	}
}

// CreateRole is CREATE USER|ROLE [IF NOT EXISTS] name [WITH] options.
type CreateRole struct {
	IsRole      bool // CREATE ROLE: NOLOGIN unless LOGIN is given
	IfNotExists bool
	Name        string
	Options     RoleOptions
}

// Format writes the statement.
func (s *CreateRole) Format(b *strings.Builder) {
	b.WriteString("CREATE ")
	b.WriteString(roleWord(s.IsRole))
	if s.IfNotExists {
		b.WriteString(" IF NOT EXISTS")
	}
	b.WriteByte(' ')
	QuoteIdent(b, s.Name)
	s.Options.format(b)
}
func (s *CreateRole) String() string { return str(s) }

// StatementTag returns CREATE ROLE, as PostgreSQL does for both.
func (s *CreateRole) StatementTag() string { return "CREATE ROLE" }

// AlterRole is ALTER USER|ROLE [IF EXISTS] name [WITH] options.
type AlterRole struct {
	IsRole   bool
	IfExists bool
	Name     string
	Options  RoleOptions
}

// Format writes the statement.
func (s *AlterRole) Format(b *strings.Builder) {
	b.WriteString("ALTER ")
	b.WriteString(roleWord(s.IsRole))
	if s.IfExists {
		b.WriteString(" IF EXISTS")
	}
	b.WriteByte(' ')
	QuoteIdent(b, s.Name)
	s.Options.format(b)
}
func (s *AlterRole) String() string { return str(s) }

// StatementTag returns ALTER ROLE.
func (s *AlterRole) StatementTag() string { return "ALTER ROLE" }

// DropRole is DROP USER|ROLE [IF EXISTS] name[, ...].
type DropRole struct {
	IsRole   bool
	IfExists bool
	Names    []string
}

// Format writes the statement.
func (s *DropRole) Format(b *strings.Builder) {
	b.WriteString("DROP ")
	b.WriteString(roleWord(s.IsRole))
	if s.IfExists {
		b.WriteString(" IF EXISTS")
	}
	b.WriteByte(' ')
	formatIdents(b, s.Names)
}
func (s *DropRole) String() string { return str(s) }

// StatementTag returns DROP ROLE.
func (s *DropRole) StatementTag() string { return "DROP ROLE" }

func roleWord(isRole bool) string {
	if isRole {
		return "ROLE"
	}
	return "USER"
}

// GrantTarget is what privileges are granted on: tables or databases.
type GrantTarget struct {
	Databases []string    // ON DATABASE d, ...
	Tables    []TableName // ON [TABLE] t, ...
}

func (g *GrantTarget) format(b *strings.Builder) {
	b.WriteString(" ON ")
	if len(g.Databases) > 0 {
		b.WriteString("DATABASE ")
		formatIdents(b, g.Databases)
		return
	}
	b.WriteString("TABLE ")
	for i, t := range g.Tables {
		if i > 0 {
			b.WriteString(", ")
		}
		t.Format(b)
	}
}

// Grant is GRANT privileges ON target TO grantees (Revoke false), REVOKE
// privileges ON target FROM grantees (Revoke true), or, without a target,
// GRANT roles TO members / REVOKE roles FROM members.
type Grant struct {
	Revoke bool
	// Privileges are upper case (SELECT, INSERT, UPDATE, DELETE, CREATE,
	// CONNECT, ALL); for a role grant, Roles holds the roles instead.
	Privileges []string
	Roles      []string
	Target     *GrantTarget // nil for a role grant
	Grantees   []string
}

// Format writes the statement.
func (s *Grant) Format(b *strings.Builder) {
	if s.Revoke {
		b.WriteString("REVOKE ")
	} else {
		b.WriteString("GRANT ")
	}
	if s.Target == nil {
		formatIdents(b, s.Roles)
	} else {
		b.WriteString(strings.Join(s.Privileges, ", "))
		s.Target.format(b)
	}
	if s.Revoke {
		b.WriteString(" FROM ")
	} else {
		b.WriteString(" TO ")
	}
	formatIdents(b, s.Grantees)
}
func (s *Grant) String() string { return str(s) }

// StatementTag returns GRANT, REVOKE, GRANT ROLE or REVOKE ROLE.
func (s *Grant) StatementTag() string {
	tag := "GRANT"
	if s.Revoke {
		tag = "REVOKE"
	}
	if s.Target == nil {
		tag += " ROLE"
	}
	return tag
}

// ShowUsers is SHOW USERS or SHOW ROLES.
type ShowUsers struct{}

// Format writes the statement.
func (s *ShowUsers) Format(b *strings.Builder) { b.WriteString("SHOW USERS") }
func (s *ShowUsers) String() string            { return str(s) }
func (s *ShowUsers) StatementTag() string      { return "SHOW USERS" }

// ShowGrants is SHOW GRANTS [ON target] [FOR grantee, ...].
type ShowGrants struct {
	Target   *GrantTarget
	Grantees []string
}

// Format writes the statement.
func (s *ShowGrants) Format(b *strings.Builder) {
	b.WriteString("SHOW GRANTS")
	if s.Target != nil {
		s.Target.format(b)
	}
	if len(s.Grantees) > 0 {
		b.WriteString(" FOR ")
		formatIdents(b, s.Grantees)
	}
}
func (s *ShowGrants) String() string { return str(s) }

// StatementTag returns SHOW GRANTS.
func (s *ShowGrants) StatementTag() string { return "SHOW GRANTS" }

func (*CreateRole) stmtNode() {}
func (*AlterRole) stmtNode()  {}
func (*DropRole) stmtNode()   {}
func (*Grant) stmtNode()      {}
func (*ShowUsers) stmtNode()  {}
func (*ShowGrants) stmtNode() {}

// Redacted returns the statement's text with any password replaced by
// '*****': what may be logged or shown of it.
func Redacted(st Stmt) string {
	redact := func(o RoleOptions) RoleOptions {
		if o.Password != nil {
			stars := "*****"
			o.Password = &stars
		}
		return o
	}
	switch s := st.(type) {
	case *CreateRole:
		cp := *s
		cp.Options = redact(s.Options)
		return cp.String()
	case *AlterRole:
		cp := *s
		cp.Options = redact(s.Options)
		return cp.String()
	}
	return st.String()
}
