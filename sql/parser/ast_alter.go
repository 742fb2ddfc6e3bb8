package parser

import "strings"

// AlterTable is ALTER TABLE [IF EXISTS] t with one of the actions below
// (release 2.1; ADD COLUMN and ADD PRIMARY KEY have statements of their own,
// ADD CONSTRAINT UNIQUE is a CreateIndex).
type AlterTable struct {
	IfExists bool
	Name     TableName
	Action   AlterAction
}

// AlterAction is one action of ALTER TABLE.
type AlterAction interface {
	Format(b *strings.Builder)
	alterAction()
}

// DropColumn is DROP [COLUMN] [IF EXISTS] c.
type DropColumn struct {
	IfExists bool
	Column   string
}

// SetDefault is ALTER [COLUMN] c SET DEFAULT e, or DROP DEFAULT (Default
// nil).
type SetDefault struct {
	Column  string
	Default Expr
}

// SetNotNull is ALTER [COLUMN] c SET NOT NULL, or DROP NOT NULL.
type SetNotNull struct {
	Column  string
	NotNull bool
}

// RenameColumn is RENAME [COLUMN] a TO b.
type RenameColumn struct{ From, To string }

// RenameTable is RENAME TO name.
type RenameTable struct{ To string }

// DropConstraint is DROP CONSTRAINT [IF EXISTS] name.
type DropConstraint struct {
	IfExists bool
	Name     string
}

// Format writes the statement.
func (s *AlterTable) Format(b *strings.Builder) {
	b.WriteString("ALTER TABLE ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	s.Name.Format(b)
	b.WriteByte(' ')
	s.Action.Format(b)
}

func (s *AlterTable) String() string       { return str(s) }
func (s *AlterTable) StatementTag() string { return "ALTER TABLE" }
func (*AlterTable) stmtNode()              {}

// Format writes the action.
func (a *DropColumn) Format(b *strings.Builder) {
	b.WriteString("DROP COLUMN ")
	if a.IfExists {
		b.WriteString("IF EXISTS ")
	}
	QuoteIdent(b, a.Column)
}

// Format writes the action.
func (a *SetDefault) Format(b *strings.Builder) {
	b.WriteString("ALTER COLUMN ")
	QuoteIdent(b, a.Column)
	if a.Default == nil {
		b.WriteString(" DROP DEFAULT")
		return
	}
	b.WriteString(" SET DEFAULT ")
	formatOperand(b, a.Default)
}

// Format writes the action.
func (a *SetNotNull) Format(b *strings.Builder) {
	b.WriteString("ALTER COLUMN ")
	QuoteIdent(b, a.Column)
	if a.NotNull {
		b.WriteString(" SET NOT NULL")
	} else {
		b.WriteString(" DROP NOT NULL")
	}
}

// Format writes the action.
func (a *RenameColumn) Format(b *strings.Builder) {
	b.WriteString("RENAME COLUMN ")
	QuoteIdent(b, a.From)
	b.WriteString(" TO ")
	QuoteIdent(b, a.To)
}

// Format writes the action.
func (a *RenameTable) Format(b *strings.Builder) {
	b.WriteString("RENAME TO ")
	QuoteIdent(b, a.To)
}

// Format writes the action.
func (a *DropConstraint) Format(b *strings.Builder) {
	b.WriteString("DROP CONSTRAINT ")
	if a.IfExists {
		b.WriteString("IF EXISTS ")
	}
	QuoteIdent(b, a.Name)
}

func (*DropColumn) alterAction()     {}
func (*SetDefault) alterAction()     {}
func (*SetNotNull) alterAction()     {}
func (*RenameColumn) alterAction()   {}
func (*RenameTable) alterAction()    {}
func (*DropConstraint) alterAction() {}
