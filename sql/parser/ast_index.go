package parser

import "strings"

// CreateIndex is CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (cols)
// [STORING (cols)] (release 2.1). INCLUDE is read as STORING, as
// CockroachDB does; CONCURRENTLY and USING btree are accepted and mean what
// kvnode always does (the index is built online).
type CreateIndex struct {
	// Constraint: written as ALTER TABLE t ADD CONSTRAINT name UNIQUE
	// (cols), which builds the same unique index.
	Constraint  bool
	Unique      bool
	IfNotExists bool
	Name        string // "" if not named: t_col1_col2_idx (or _key when unique)
	Table       TableName
	Columns     []string
	Storing     []string
}

// Format writes the statement.
func (s *CreateIndex) Format(b *strings.Builder) {
	if s.Constraint {
		b.WriteString("ALTER TABLE ")
		s.Table.Format(b)
		b.WriteString(" ADD ")
		if s.Name != "" {
			b.WriteString("CONSTRAINT ")
			QuoteIdent(b, s.Name)
			b.WriteByte(' ')
		}
		b.WriteString("UNIQUE (")
		formatIdents(b, s.Columns)
		b.WriteByte(')')
		return
	}
	b.WriteString("CREATE ")
	if s.Unique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString("INDEX ")
	if s.IfNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	if s.Name != "" {
		QuoteIdent(b, s.Name)
		b.WriteByte(' ')
	}
	b.WriteString("ON ")
	s.Table.Format(b)
	b.WriteString(" (")
	formatIdents(b, s.Columns)
	b.WriteByte(')')
	if len(s.Storing) > 0 {
		b.WriteString(" STORING (")
		formatIdents(b, s.Storing)
		b.WriteByte(')')
	}
}

func (s *CreateIndex) String() string { return str(s) }
func (s *CreateIndex) StatementTag() string {
	if s.Constraint {
		return "ALTER TABLE"
	}
	return "CREATE INDEX"
}
func (*CreateIndex) stmtNode() {}

// IndexName names an index: [table@]name, or a plain name looked up in
// every table of the database.
type IndexName struct {
	Table *TableName // nil when not given
	Name  string
}

// Format writes the name.
func (n IndexName) Format(b *strings.Builder) {
	if n.Table != nil {
		n.Table.Format(b)
		b.WriteByte('@')
	}
	QuoteIdent(b, n.Name)
}

// DropIndex is DROP INDEX [IF EXISTS] name [, ...] (release 2.1).
type DropIndex struct {
	IfExists bool
	Names    []IndexName
}

// Format writes the statement.
func (s *DropIndex) Format(b *strings.Builder) {
	b.WriteString("DROP INDEX ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	for i, n := range s.Names {
		if i > 0 {
			b.WriteString(", ")
		}
		n.Format(b)
	}
}

func (s *DropIndex) String() string       { return str(s) }
func (s *DropIndex) StatementTag() string { return "DROP INDEX" }
func (*DropIndex) stmtNode()              {}

// UniqueDef is a UNIQUE constraint of CREATE TABLE, [CONSTRAINT name]
// UNIQUE (cols), table-level or on one column; it becomes a unique index.
// Index is CockroachDB's [UNIQUE] INDEX name (cols) inside CREATE TABLE,
// which SHOW CREATE TABLE prints: an index, unique or not.
type UniqueDef struct {
	Name    string // "" if not named
	Columns []string
	Index   bool
	// NotUnique: INDEX name (cols) (Index only).
	NotUnique bool
	Storing   []string // Index only
}

// Format writes the constraint.
func (u *UniqueDef) Format(b *strings.Builder) {
	if u.Index {
		if !u.NotUnique {
			b.WriteString("UNIQUE ")
		}
		b.WriteString("INDEX ")
		QuoteIdent(b, u.Name)
		b.WriteString(" (")
		formatIdents(b, u.Columns)
		b.WriteByte(')')
		if len(u.Storing) > 0 {
			b.WriteString(" STORING (")
			formatIdents(b, u.Storing)
			b.WriteByte(')')
		}
		return
	}
	if u.Name != "" {
		b.WriteString("CONSTRAINT ")
		QuoteIdent(b, u.Name)
		b.WriteByte(' ')
	}
	b.WriteString("UNIQUE (")
	formatIdents(b, u.Columns)
	b.WriteByte(')')
}

// ForeignKeyDef is [CONSTRAINT name] FOREIGN KEY (cols) REFERENCES t
// [(cols)] [ON DELETE action] [ON UPDATE action], or a column's REFERENCES
// (release 2.1). Actions are "" (NO ACTION), "RESTRICT", "CASCADE",
// "SET NULL".
type ForeignKeyDef struct {
	Name       string
	Columns    []string
	RefTable   TableName
	RefColumns []string // nil: the referenced table's primary key
	OnDelete   string
	OnUpdate   string
}

// Format writes the constraint.
func (f *ForeignKeyDef) Format(b *strings.Builder) {
	if f.Name != "" {
		b.WriteString("CONSTRAINT ")
		QuoteIdent(b, f.Name)
		b.WriteByte(' ')
	}
	b.WriteString("FOREIGN KEY (")
	formatIdents(b, f.Columns)
	b.WriteString(") REFERENCES ")
	f.RefTable.Format(b)
	if f.RefColumns != nil {
		b.WriteString(" (")
		formatIdents(b, f.RefColumns)
		b.WriteByte(')')
	}
	if f.OnDelete != "" {
		b.WriteString(" ON DELETE " + f.OnDelete)
	}
	if f.OnUpdate != "" {
		b.WriteString(" ON UPDATE " + f.OnUpdate)
	}
}

// AddForeignKey is ALTER TABLE t ADD [CONSTRAINT name] FOREIGN KEY ...
type AddForeignKey struct{ FK *ForeignKeyDef }

// Format writes the action.
func (a *AddForeignKey) Format(b *strings.Builder) {
	b.WriteString("ADD ")
	a.FK.Format(b)
}

func (*AddForeignKey) alterAction() {}

func (f *ForeignKeyDef) String() string { return str(f) }
