package parser

import (
	"encoding/hex"
	"strings"

	"github.com/kvnode/kvnode/sql/types"
)

// Node is any AST node. Format writes the node's canonical SQL, which parses
// back into an equal tree; String returns it.
type Node interface {
	Format(b *strings.Builder)
	String() string
}

// Stmt is a statement node.
type Stmt interface {
	Node
	// StatementTag is the statement's command tag stem ("SELECT",
	// "CREATE TABLE", ...), used for logs and tags.
	StatementTag() string
	stmtNode()
}

// Expr is an expression node.
type Expr interface {
	Node
	exprNode()
}

// Statement is one parsed statement of a query string. It satisfies
// pgwire.Statement.
type Statement struct {
	AST Stmt
	// Text is the statement's source text without the separating ';'.
	Text string
	// Placeholders is the highest $n used in the statement.
	Placeholders int
}

// SQL returns the statement's text as written.
func (s *Statement) SQL() string { return s.Text }

// NumPlaceholders is the highest $n in the statement.
func (s *Statement) NumPlaceholders() int { return s.Placeholders }

func str(n Node) string {
	var b strings.Builder
	n.Format(&b)
	return b.String()
}

// ---- names ----

// reservedKeywords cannot be used as bare identifiers: as in PostgreSQL,
// they start or delimit clauses. Every other keyword is usable as a column
// or table name ("key", "value", "version", "name" are common ones).
var reservedKeywords = map[string]bool{
	"all": true, "and": true, "as": true, "asc": true, "between": true, "case": true,
	"cast": true, "check": true, "collate": true, "column": true, "constraint": true,
	"create": true, "default": true, "desc": true, "distinct": true, "do": true,
	"else": true, "end": true, "false": true, "for": true, "foreign": true, "from": true, "group": true,
	"having": true, "in": true, "into": true, "is": true, "isnull": true, "join": true,
	"like": true, "ilike": true, "limit": true, "not": true, "notnull": true, "null": true,
	"offset": true, "on": true, "or": true, "order": true, "primary": true,
	"references": true, "returning": true, "select": true, "set": true, "table": true,
	"then": true, "to": true, "true": true, "union": true, "unique": true, "user": true,
	"using": true, "values": true, "when": true, "where": true, "with": true,
	"current_user": true, "session_user": true, "current_timestamp": true,
	"except": true, "intersect": true, "array": true, "any": true, "some": true,
	"window": true, "fetch": true,
}

// joinWords cannot be a table alias written without AS: they start or
// continue a join.
var joinWords = map[string]bool{
	"inner": true, "left": true, "right": true, "full": true, "cross": true,
	"natural": true, "outer": true, "join": true, "on": true, "using": true, "lateral": true,
	"tablesample": true,
}

// niladicFuncs are SQL-standard functions called without parentheses.
var niladicFuncs = map[string]bool{"current_user": true, "session_user": true, "current_timestamp": true}

// IsReserved reports whether word (lowercase) is a reserved keyword.
func IsReserved(word string) bool { return reservedKeywords[word] }

// QuoteIdent writes name as an identifier, quoting it when it would not
// read back as itself unquoted (upper case, punctuation, reserved words).
func QuoteIdent(b *strings.Builder, name string) {
	if identNeedsQuotes(name) {
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(name, `"`, `""`))
		b.WriteByte('"')
		return
	}
	b.WriteString(name)
}

// QuotedIdent is QuoteIdent returning a string.
func QuotedIdent(name string) string {
	var b strings.Builder
	QuoteIdent(&b, name)
	return b.String()
}

func identNeedsQuotes(name string) bool {
	if name == "" || reservedKeywords[name] {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9' || c == '$') && i > 0:
		default:
			return true
		}
	}
	return false
}

// TableName is a possibly qualified table name: t, public.t,
// defaultdb.public.t, crdb_internal.gossip_nodes.
type TableName struct {
	Parts []string
}

// Table is the last part of the name.
func (n TableName) Table() string {
	if len(n.Parts) == 0 {
		return ""
	}
	return n.Parts[len(n.Parts)-1]
}

// Schema is the schema part ("" when unqualified).
func (n TableName) Schema() string {
	if len(n.Parts) < 2 {
		return ""
	}
	return n.Parts[len(n.Parts)-2]
}

// Catalog is the database part ("" unless fully qualified).
func (n TableName) Catalog() string {
	if len(n.Parts) < 3 {
		return ""
	}
	return n.Parts[0]
}

// Format writes the qualified name.
func (n TableName) Format(b *strings.Builder) {
	for i, p := range n.Parts {
		if i > 0 {
			b.WriteByte('.')
		}
		QuoteIdent(b, p)
	}
}

func (n TableName) String() string { return str(n) }

func formatIdents(b *strings.Builder, names []string) {
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		QuoteIdent(b, n)
	}
}

// ---- DDL ----

// Nullability is what a column definition says about NULL.
type Nullability uint8

// Nullability values.
const (
	NullUnspecified Nullability = iota
	NotNull
	Null
)

// ColumnDef is one column of CREATE TABLE or ALTER TABLE ADD COLUMN.
type ColumnDef struct {
	Name       string
	Type       types.T
	Mod        types.Mod // INT4, VARCHAR(n), DECIMAL(p,s): see types.Mod
	PrimaryKey bool
	Nullable   Nullability
	Default    Expr // nil if none
	// Checks are the column's CHECK constraints; CREATE TABLE moves them
	// to the table's.
	Checks []*CheckDef
	// Hidden is NOT VISIBLE: the column is left out of SELECT * and of
	// INSERT without a column list (CockroachDB's syntax; SHOW CREATE TABLE
	// prints it for the implicit rowid column).
	Hidden bool
	// Unique is a column-level UNIQUE while parsing; CREATE TABLE moves it
	// to the table's Uniques.
	Unique bool
	// References is a column-level REFERENCES while parsing; CREATE TABLE
	// moves it to the table's ForeignKeys.
	References *ForeignKeyDef
}

// Format writes the column definition.
func (c *ColumnDef) Format(b *strings.Builder) {
	QuoteIdent(b, c.Name)
	b.WriteByte(' ')
	b.WriteString(types.ColumnTypeString(c.Type, c.Mod))
	if c.Hidden {
		b.WriteString(" NOT VISIBLE")
	}
	if c.PrimaryKey {
		b.WriteString(" PRIMARY KEY")
	}
	switch c.Nullable {
	case NotNull:
		b.WriteString(" NOT NULL")
	case Null:
		b.WriteString(" NULL")
	}
	if c.Default != nil {
		b.WriteString(" DEFAULT ")
		// Parenthesize compound defaults: DEFAULT binds tighter than the
		// constraint keywords that may follow it.
		formatOperand(b, c.Default)
	}
	for _, ck := range c.Checks {
		b.WriteByte(' ')
		ck.Format(b)
	}
	if c.Unique {
		b.WriteString(" UNIQUE")
	}
	if c.References != nil {
		b.WriteString(" REFERENCES ")
		c.References.RefTable.Format(b)
		if c.References.RefColumns != nil {
			b.WriteString(" (")
			formatIdents(b, c.References.RefColumns)
			b.WriteByte(')')
		}
		if c.References.OnDelete != "" {
			b.WriteString(" ON DELETE " + c.References.OnDelete)
		}
		if c.References.OnUpdate != "" {
			b.WriteString(" ON UPDATE " + c.References.OnUpdate)
		}
	}
}

func (c *ColumnDef) String() string { return str(c) }

// CreateTable is CREATE TABLE.
type CreateTable struct {
	IfNotExists bool
	Name        TableName
	Columns     []*ColumnDef
	// PrimaryKey lists the columns of a table-level PRIMARY KEY (a, b)
	// constraint; nil when there is none.
	PrimaryKey []string
	// PKName is the constraint name of CONSTRAINT name PRIMARY KEY (..).
	PKName string
	// Checks are the table's CHECK constraints, table-level and
	// column-level alike (release 2.1).
	Checks []*CheckDef
	// Uniques are the table's UNIQUE constraints, table-level and
	// column-level alike (release 2.1): each becomes a unique index.
	Uniques []*UniqueDef
	// ForeignKeys are the table's FOREIGN KEY constraints and columns'
	// REFERENCES (release 2.1).
	ForeignKeys []*ForeignKeyDef
}

// CheckDef is [CONSTRAINT name] CHECK (expr).
type CheckDef struct {
	Name string // "" if not named
	Expr Expr
	// Column is the column a column-level CHECK was declared on (for its
	// default name), "" for a table-level one.
	Column string
}

// Format writes the constraint.
func (c *CheckDef) Format(b *strings.Builder) {
	if c.Name != "" {
		b.WriteString("CONSTRAINT ")
		QuoteIdent(b, c.Name)
		b.WriteByte(' ')
	}
	b.WriteString("CHECK (")
	c.Expr.Format(b)
	b.WriteByte(')')
}

// Format writes the statement.
func (s *CreateTable) Format(b *strings.Builder) {
	b.WriteString("CREATE TABLE ")
	if s.IfNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	s.Name.Format(b)
	b.WriteString(" (")
	for i, c := range s.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		c.Format(b)
	}
	if s.PrimaryKey != nil {
		if len(s.Columns) > 0 {
			b.WriteString(", ")
		}
		if s.PKName != "" {
			b.WriteString("CONSTRAINT ")
			QuoteIdent(b, s.PKName)
			b.WriteByte(' ')
		}
		b.WriteString("PRIMARY KEY (")
		formatIdents(b, s.PrimaryKey)
		b.WriteByte(')')
	}
	for _, c := range s.Checks {
		b.WriteString(", ")
		c.Format(b)
	}
	for _, u := range s.Uniques {
		b.WriteString(", ")
		u.Format(b)
	}
	for _, f := range s.ForeignKeys {
		b.WriteString(", ")
		f.Format(b)
	}
	b.WriteByte(')')
}

func (s *CreateTable) String() string       { return str(s) }
func (s *CreateTable) StatementTag() string { return "CREATE TABLE" }

// DropTable is DROP TABLE [IF EXISTS] t [, ...].
type DropTable struct {
	IfExists bool
	Names    []TableName
}

// Format writes the statement.
func (s *DropTable) Format(b *strings.Builder) {
	b.WriteString("DROP TABLE ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	formatTableNames(b, s.Names)
}

func formatTableNames(b *strings.Builder, names []TableName) {
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		n.Format(b)
	}
}

// Truncate is TRUNCATE [TABLE] t [, ...]: delete every row.
type Truncate struct {
	Names []TableName
	// Cascade: the tables whose foreign keys reference them are emptied
	// too (RESTRICT, the default, refuses such a table).
	Cascade bool
}

// Format writes the statement.
func (s *Truncate) Format(b *strings.Builder) {
	b.WriteString("TRUNCATE TABLE ")
	formatTableNames(b, s.Names)
	if s.Cascade {
		b.WriteString(" CASCADE")
	}
}

func (s *Truncate) String() string       { return str(s) }
func (s *Truncate) StatementTag() string { return "TRUNCATE" }

func (s *DropTable) String() string       { return str(s) }
func (s *DropTable) StatementTag() string { return "DROP TABLE" }

// AlterTableAddColumn is ALTER TABLE t ADD COLUMN.
type AlterTableAddColumn struct {
	IfExists    bool // ALTER TABLE IF EXISTS t
	Name        TableName
	IfNotExists bool // ADD COLUMN IF NOT EXISTS c
	Column      *ColumnDef
}

// Format writes the statement.
func (s *AlterTableAddColumn) Format(b *strings.Builder) {
	b.WriteString("ALTER TABLE ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	s.Name.Format(b)
	b.WriteString(" ADD COLUMN ")
	if s.IfNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	s.Column.Format(b)
}

// AlterTableAddPrimaryKey is ALTER TABLE t ADD [CONSTRAINT c] PRIMARY KEY
// (cols), for a table created without a primary key.
type AlterTableAddPrimaryKey struct {
	IfExists   bool
	Name       TableName
	Constraint string // "" if not named
	Columns    []string
}

// Format writes the statement.
func (s *AlterTableAddPrimaryKey) Format(b *strings.Builder) {
	b.WriteString("ALTER TABLE ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	s.Name.Format(b)
	b.WriteString(" ADD ")
	if s.Constraint != "" {
		b.WriteString("CONSTRAINT ")
		QuoteIdent(b, s.Constraint)
		b.WriteByte(' ')
	}
	b.WriteString("PRIMARY KEY (")
	for i, c := range s.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		QuoteIdent(b, c)
	}
	b.WriteByte(')')
}

func (s *AlterTableAddPrimaryKey) String() string       { return str(s) }
func (s *AlterTableAddPrimaryKey) StatementTag() string { return "ALTER TABLE" }
func (*AlterTableAddPrimaryKey) stmtNode()              {}

func (s *AlterTableAddColumn) String() string       { return str(s) }
func (s *AlterTableAddColumn) StatementTag() string { return "ALTER TABLE" }

// ---- DML ----

// SelectExpr is one item of a select list or RETURNING clause.
type SelectExpr struct {
	Expr  Expr   // nil for *
	Star  bool   // * (or t.* with StarTable set)
	Alias string // AS alias, "" if none
	// StarTable qualifies a star: t.*.
	StarTable string
}

// Format writes the item.
func (e *SelectExpr) Format(b *strings.Builder) {
	if e.Star {
		if e.StarTable != "" {
			QuoteIdent(b, e.StarTable)
			b.WriteByte('.')
		}
		b.WriteByte('*')
		return
	}
	e.Expr.Format(b)
	if e.Alias != "" {
		b.WriteString(" AS ")
		QuoteIdent(b, e.Alias)
	}
}

func (e *SelectExpr) String() string { return str(e) }

func formatSelectExprs(b *strings.Builder, exprs []*SelectExpr) {
	for i, e := range exprs {
		if i > 0 {
			b.WriteString(", ")
		}
		e.Format(b)
	}
}

func formatReturning(b *strings.Builder, r []*SelectExpr) {
	if r != nil {
		b.WriteString(" RETURNING ")
		formatSelectExprs(b, r)
	}
}

// UpdateExpr is one assignment col = expr of SET.
type UpdateExpr struct {
	Column string
	Expr   Expr // nil means DEFAULT
}

// Format writes the assignment.
func (u *UpdateExpr) Format(b *strings.Builder) {
	QuoteIdent(b, u.Column)
	b.WriteString(" = ")
	if u.Expr == nil {
		b.WriteString("DEFAULT")
		return
	}
	u.Expr.Format(b)
}

func (u *UpdateExpr) String() string { return str(u) }

func formatUpdateExprs(b *strings.Builder, set []*UpdateExpr) {
	for i, u := range set {
		if i > 0 {
			b.WriteString(", ")
		}
		u.Format(b)
	}
}

// OnConflict is INSERT's ON CONFLICT clause.
type OnConflict struct {
	Columns   []string // the conflict target; nil when omitted
	DoNothing bool
	Set       []*UpdateExpr // DO UPDATE SET
}

// Insert is INSERT INTO or UPSERT INTO.
type Insert struct {
	Upsert  bool
	Table   TableName
	Columns []string // nil: all visible columns in order
	// Rows are the VALUES rows; a nil element stands for DEFAULT VALUES.
	Rows [][]Expr
	// Select is the query of INSERT ... SELECT (nil with Rows).
	Select     SelectStatement
	OnConflict *OnConflict
	Returning  []*SelectExpr // nil: no RETURNING
}

// Format writes the statement.
func (s *Insert) Format(b *strings.Builder) {
	if s.Upsert {
		b.WriteString("UPSERT INTO ")
	} else {
		b.WriteString("INSERT INTO ")
	}
	s.Table.Format(b)
	if s.Columns != nil {
		b.WriteString(" (")
		formatIdents(b, s.Columns)
		b.WriteByte(')')
	}
	switch {
	case s.Select != nil:
		b.WriteByte(' ')
		s.Select.Format(b)
	case len(s.Rows) == 1 && s.Rows[0] == nil:
		b.WriteString(" DEFAULT VALUES")
	default:
		b.WriteString(" VALUES ")
		for i, row := range s.Rows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, e := range row {
				if j > 0 {
					b.WriteString(", ")
				}
				e.Format(b)
			}
			b.WriteByte(')')
		}
	}
	if oc := s.OnConflict; oc != nil {
		b.WriteString(" ON CONFLICT")
		if oc.Columns != nil {
			b.WriteString(" (")
			formatIdents(b, oc.Columns)
			b.WriteByte(')')
		}
		if oc.DoNothing {
			b.WriteString(" DO NOTHING")
		} else {
			b.WriteString(" DO UPDATE SET ")
			formatUpdateExprs(b, oc.Set)
		}
	}
	formatReturning(b, s.Returning)
}

func (s *Insert) String() string { return str(s) }

// StatementTag returns INSERT or UPSERT.
func (s *Insert) StatementTag() string {
	if s.Upsert {
		return "UPSERT"
	}
	return "INSERT"
}

// DefaultExpr stands for the keyword DEFAULT in a VALUES row.
type DefaultExpr struct{}

// Format writes DEFAULT.
func (DefaultExpr) Format(b *strings.Builder) { b.WriteString("DEFAULT") }
func (e DefaultExpr) String() string          { return str(e) }

// OrderBy is one ORDER BY item.
type OrderBy struct {
	Expr  Expr
	Desc  bool
	Nulls NullsOrder
}

// Select is SELECT.
type Select struct {
	With     []*CTE
	Distinct bool
	Exprs    []*SelectExpr
	From     []TableExpr // nil: SELECT without FROM
	Where    Expr
	GroupBy  []Expr
	Having   Expr
	OrderBy  []*OrderBy
	Limit    Expr
	Offset   Expr
	// Locking holds the FOR UPDATE / FOR SHARE clauses, nil if none.
	Locking []*LockingClause
}

// LockingClause is FOR UPDATE | FOR NO KEY UPDATE | FOR SHARE | FOR KEY
// SHARE [OF name, ...] [NOWAIT].
type LockingClause struct {
	Strength string   // "UPDATE", "NO KEY UPDATE", "SHARE" or "KEY SHARE"
	Of       []string // the FROM items it names; nil: all of them
	NoWait   bool
}

// Format writes the clause.
func (lc *LockingClause) Format(b *strings.Builder) {
	b.WriteString("FOR ")
	b.WriteString(lc.Strength)
	if len(lc.Of) > 0 {
		b.WriteString(" OF ")
		formatIdents(b, lc.Of)
	}
	if lc.NoWait {
		b.WriteString(" NOWAIT")
	}
}

// SingleTable returns the table of FROM when FROM names exactly one table
// (with its alias), the case the simple single-table planner handles.
func (s *Select) SingleTable() (*AliasedTable, bool) {
	if len(s.From) != 1 {
		return nil, false
	}
	t, ok := s.From[0].(*AliasedTable)
	return t, ok
}

// Format writes the statement.
func (s *Select) Format(b *strings.Builder) {
	formatWith(b, s.With)
	b.WriteString("SELECT ")
	if s.Distinct {
		b.WriteString("DISTINCT ")
	}
	formatSelectExprs(b, s.Exprs)
	if len(s.From) > 0 {
		b.WriteString(" FROM ")
		for i, t := range s.From {
			if i > 0 {
				b.WriteString(", ")
			}
			t.Format(b)
		}
	}
	if s.Where != nil {
		b.WriteString(" WHERE ")
		s.Where.Format(b)
	}
	if len(s.GroupBy) > 0 {
		b.WriteString(" GROUP BY ")
		for i, g := range s.GroupBy {
			if i > 0 {
				b.WriteString(", ")
			}
			g.Format(b)
		}
	}
	if s.Having != nil {
		b.WriteString(" HAVING ")
		s.Having.Format(b)
	}
	formatOrderLimit(b, s.OrderBy, s.Limit, s.Offset)
	for _, lc := range s.Locking {
		b.WriteByte(' ')
		lc.Format(b)
	}
}

func (s *Select) String() string       { return str(s) }
func (s *Select) StatementTag() string { return "SELECT" }

// Update is UPDATE.
type Update struct {
	Table     TableName
	Set       []*UpdateExpr
	Where     Expr
	Returning []*SelectExpr
}

// Format writes the statement.
func (s *Update) Format(b *strings.Builder) {
	b.WriteString("UPDATE ")
	s.Table.Format(b)
	b.WriteString(" SET ")
	formatUpdateExprs(b, s.Set)
	if s.Where != nil {
		b.WriteString(" WHERE ")
		s.Where.Format(b)
	}
	formatReturning(b, s.Returning)
}

func (s *Update) String() string       { return str(s) }
func (s *Update) StatementTag() string { return "UPDATE" }

// Delete is DELETE FROM.
type Delete struct {
	Table     TableName
	Where     Expr
	Returning []*SelectExpr
}

// Format writes the statement.
func (s *Delete) Format(b *strings.Builder) {
	b.WriteString("DELETE FROM ")
	s.Table.Format(b)
	if s.Where != nil {
		b.WriteString(" WHERE ")
		s.Where.Format(b)
	}
	formatReturning(b, s.Returning)
}

func (s *Delete) String() string       { return str(s) }
func (s *Delete) StatementTag() string { return "DELETE" }

// ---- SHOW / SET ----

// ShowTables is SHOW TABLES.
type ShowTables struct {
	// Database is the database of SHOW TABLES FROM db; "" for the
	// session's.
	Database string
}

// Format writes the statement.
func (s *ShowTables) Format(b *strings.Builder) {
	b.WriteString("SHOW TABLES")
	if s.Database != "" {
		b.WriteString(" FROM ")
		QuoteIdent(b, s.Database)
	}
}
func (s *ShowTables) String() string       { return str(s) }
func (s *ShowTables) StatementTag() string { return "SHOW TABLES" }

// ShowCreateTable is SHOW CREATE TABLE t.
type ShowCreateTable struct {
	Name TableName
}

// Format writes the statement.
func (s *ShowCreateTable) Format(b *strings.Builder) {
	b.WriteString("SHOW CREATE TABLE ")
	s.Name.Format(b)
}
func (s *ShowCreateTable) String() string       { return str(s) }
func (s *ShowCreateTable) StatementTag() string { return "SHOW CREATE TABLE" }

// ShowVar is SHOW var (a session variable) or SHOW ALL.
type ShowVar struct {
	Name string // lowercase; "all" for SHOW ALL
}

// Format writes the statement.
func (s *ShowVar) Format(b *strings.Builder) {
	b.WriteString("SHOW ")
	if s.Name == "all" {
		b.WriteString("ALL")
		return
	}
	formatSettingName(b, s.Name, showKeywords)
}
func (s *ShowVar) String() string       { return str(s) }
func (s *ShowVar) StatementTag() string { return "SHOW" }

// SetVar is SET [SESSION] var = value[, ...] | TO ... | DEFAULT.
type SetVar struct {
	Name    string
	Values  []Expr // empty with Default
	Default bool
}

// Format writes the statement.
func (s *SetVar) Format(b *strings.Builder) {
	b.WriteString("SET ")
	formatSettingName(b, s.Name, setKeywords)
	b.WriteString(" = ")
	if s.Default {
		b.WriteString("DEFAULT")
		return
	}
	for i, v := range s.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		v.Format(b)
	}
}
func (s *SetVar) String() string       { return str(s) }
func (s *SetVar) StatementTag() string { return "SET" }

// formatDottedName writes a setting name such as
// cluster.preserve_downgrade_option, quoting each part as needed.
func formatDottedName(b *strings.Builder, name string) {
	for i, p := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		QuoteIdent(b, p)
	}
}

// showKeywords and setKeywords are the words that, first after SHOW or SET,
// start another statement form; a variable with such a name must be quoted.
var (
	showKeywords = map[string]bool{"tables": true, "create": true, "cluster": true, "jobs": true,
		"upgrade": true, "all": true, "public": true, "transaction": true, "time": true}
	setKeywords = map[string]bool{"cluster": true, "local": true, "session": true,
		"transaction": true, "characteristics": true, "time": true, "names": true}
)

// formatSettingName is formatDottedName that also quotes a first part found
// in avoid.
func formatSettingName(b *strings.Builder, name string, avoid map[string]bool) {
	first, rest, dotted := strings.Cut(name, ".")
	if avoid[first] {
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(first, `"`, `""`))
		b.WriteByte('"')
	} else {
		QuoteIdent(b, first)
	}
	if dotted {
		b.WriteByte('.')
		formatDottedName(b, rest)
	}
}

// SetClusterSetting is SET CLUSTER SETTING name = value | DEFAULT.
type SetClusterSetting struct {
	Name    string
	Value   Expr // nil with Default
	Default bool
}

// Format writes the statement.
func (s *SetClusterSetting) Format(b *strings.Builder) {
	b.WriteString("SET CLUSTER SETTING ")
	formatDottedName(b, s.Name)
	b.WriteString(" = ")
	if s.Default {
		b.WriteString("DEFAULT")
		return
	}
	s.Value.Format(b)
}
func (s *SetClusterSetting) String() string       { return str(s) }
func (s *SetClusterSetting) StatementTag() string { return "SET CLUSTER SETTING" }

// ResetClusterSetting is RESET CLUSTER SETTING name.
type ResetClusterSetting struct {
	Name string
}

// Format writes the statement.
func (s *ResetClusterSetting) Format(b *strings.Builder) {
	b.WriteString("RESET CLUSTER SETTING ")
	formatDottedName(b, s.Name)
}
func (s *ResetClusterSetting) String() string       { return str(s) }
func (s *ResetClusterSetting) StatementTag() string { return "RESET CLUSTER SETTING" }

// ShowClusterSetting is SHOW CLUSTER SETTING name.
type ShowClusterSetting struct {
	Name string
}

// Format writes the statement.
func (s *ShowClusterSetting) Format(b *strings.Builder) {
	b.WriteString("SHOW CLUSTER SETTING ")
	formatDottedName(b, s.Name)
}
func (s *ShowClusterSetting) String() string       { return str(s) }
func (s *ShowClusterSetting) StatementTag() string { return "SHOW CLUSTER SETTING" }

// ShowClusterSettings is SHOW [ALL|PUBLIC] CLUSTER SETTINGS.
type ShowClusterSettings struct {
	All bool
}

// Format writes the statement.
func (s *ShowClusterSettings) Format(b *strings.Builder) {
	b.WriteString("SHOW ")
	if s.All {
		b.WriteString("ALL ")
	}
	b.WriteString("CLUSTER SETTINGS")
}
func (s *ShowClusterSettings) String() string       { return str(s) }
func (s *ShowClusterSettings) StatementTag() string { return "SHOW CLUSTER SETTINGS" }

// ShowJobs is SHOW JOBS.
type ShowJobs struct{}

// Format writes the statement.
func (s *ShowJobs) Format(b *strings.Builder) { b.WriteString("SHOW JOBS") }
func (s *ShowJobs) String() string            { return str(s) }
func (s *ShowJobs) StatementTag() string      { return "SHOW JOBS" }

// ShowUpgradeStatus is SHOW UPGRADE STATUS.
type ShowUpgradeStatus struct{}

// Format writes the statement.
func (s *ShowUpgradeStatus) Format(b *strings.Builder) { b.WriteString("SHOW UPGRADE STATUS") }
func (s *ShowUpgradeStatus) String() string            { return str(s) }
func (s *ShowUpgradeStatus) StatementTag() string      { return "SHOW UPGRADE STATUS" }

// ShowUpgradePlan is SHOW UPGRADE PLAN [FOR VERSION 'X']: a dry run of SET
// CLUSTER SETTING version = 'X' (default: the next release).
type ShowUpgradePlan struct {
	Version    string
	HasVersion bool
}

// Format writes the statement.
func (s *ShowUpgradePlan) Format(b *strings.Builder) {
	b.WriteString("SHOW UPGRADE PLAN")
	if s.HasVersion {
		b.WriteString(" FOR VERSION ")
		FormatStringLiteral(b, s.Version)
	}
}
func (s *ShowUpgradePlan) String() string       { return str(s) }
func (s *ShowUpgradePlan) StatementTag() string { return "SHOW UPGRADE PLAN" }

// Explain is EXPLAIN stmt: describe how a statement would run.
type Explain struct {
	Stmt Stmt
}

// Format writes the statement.
func (s *Explain) Format(b *strings.Builder) {
	b.WriteString("EXPLAIN ")
	s.Stmt.Format(b)
}
func (s *Explain) String() string       { return str(s) }
func (s *Explain) StatementTag() string { return "EXPLAIN" }

// TxnKind says which transaction control statement a Txn is.
type TxnKind uint8

// Transaction control statements.
const (
	TxnBegin          TxnKind = iota + 1 // BEGIN, START TRANSACTION
	TxnCommit                            // COMMIT, END
	TxnRollback                          // ROLLBACK, ABORT
	TxnSavepoint                         // SAVEPOINT name
	TxnRelease                           // RELEASE [SAVEPOINT] name
	TxnRollbackTo                        // ROLLBACK [TRANSACTION] TO [SAVEPOINT] name
	TxnSetTransaction                    // SET TRANSACTION modes
)

// Txn is a transaction control statement.
type Txn struct {
	Kind TxnKind
	// Name is the savepoint of TxnSavepoint, TxnRelease, TxnRollbackTo.
	Name string
	// Isolation is the level asked for by BEGIN or SET TRANSACTION, in
	// lower case ("" if none): every transaction runs serializable anyway.
	Isolation string
	// ReadOnly is set by READ ONLY, ReadWrite by READ WRITE.
	ReadOnly, ReadWrite bool
}

// Format writes the statement.
func (s *Txn) Format(b *strings.Builder) {
	switch s.Kind {
	case TxnBegin:
		b.WriteString("BEGIN")
		s.formatModes(b)
	case TxnSetTransaction:
		b.WriteString("SET TRANSACTION")
		s.formatModes(b)
	case TxnCommit:
		b.WriteString("COMMIT")
	case TxnRollback:
		b.WriteString("ROLLBACK")
	case TxnSavepoint:
		b.WriteString("SAVEPOINT ")
		QuoteIdent(b, s.Name)
	case TxnRelease:
		b.WriteString("RELEASE SAVEPOINT ")
		QuoteIdent(b, s.Name)
	case TxnRollbackTo:
		b.WriteString("ROLLBACK TO SAVEPOINT ")
		QuoteIdent(b, s.Name)
	}
}

func (s *Txn) formatModes(b *strings.Builder) {
	sep := " "
	if s.Isolation != "" {
		b.WriteString(sep + "ISOLATION LEVEL " + strings.ToUpper(s.Isolation))
		sep = ", "
	}
	if s.ReadOnly {
		b.WriteString(sep + "READ ONLY")
	} else if s.ReadWrite {
		b.WriteString(sep + "READ WRITE")
	}
}

func (s *Txn) String() string { return str(s) }

// StatementTag returns the command tag PostgreSQL sends for the statement.
func (s *Txn) StatementTag() string {
	switch s.Kind {
	case TxnBegin:
		return "BEGIN"
	case TxnCommit:
		return "COMMIT"
	case TxnSavepoint:
		return "SAVEPOINT"
	case TxnRelease:
		return "RELEASE"
	case TxnSetTransaction:
		return "SET"
	}
	return "ROLLBACK"
}

func (*CreateTable) stmtNode()         {}
func (*DropTable) stmtNode()           {}
func (*CreateDatabase) stmtNode()      {}
func (*DropDatabase) stmtNode()        {}
func (*Truncate) stmtNode()            {}
func (*Explain) stmtNode()             {}
func (*AlterTableAddColumn) stmtNode() {}
func (*Insert) stmtNode()              {}
func (*Select) stmtNode()              {}
func (*Update) stmtNode()              {}
func (*Delete) stmtNode()              {}
func (*ShowTables) stmtNode()          {}
func (*ShowCreateTable) stmtNode()     {}
func (*ShowVar) stmtNode()             {}
func (*SetVar) stmtNode()              {}
func (*SetClusterSetting) stmtNode()   {}
func (*ResetClusterSetting) stmtNode() {}
func (*ShowClusterSetting) stmtNode()  {}
func (*ShowClusterSettings) stmtNode() {}
func (*ShowJobs) stmtNode()            {}
func (*ShowUpgradeStatus) stmtNode()   {}
func (*ShowUpgradePlan) stmtNode()     {}
func (*Txn) stmtNode()                 {}

// ---- expressions ----

// NumVal is a numeric literal, kept as written so that the analyzer can
// decide between INT and FLOAT from context and report overflow precisely.
// A leading '-' is folded into Text by the parser.
type NumVal struct {
	Text    string
	IsFloat bool
}

// StrVal is a string literal ('...') or, with Bytes, a bytes literal
// (x'..', b'..'). A string literal has no type of its own: like an untyped
// literal in PostgreSQL it takes the type its context asks for.
type StrVal struct {
	Val   string
	Bytes bool
}

// NullVal is NULL.
type NullVal struct{}

// BoolVal is TRUE or FALSE.
type BoolVal struct{ Val bool }

// Placeholder is $n (Idx = n, 1-based).
type Placeholder struct{ Idx int }

// ColumnRef is a possibly qualified column name: k, t.k, excluded.v.
type ColumnRef struct{ Parts []string }

// Name is the column part.
func (c *ColumnRef) Name() string { return c.Parts[len(c.Parts)-1] }

// Qualifier is the table part ("" when unqualified).
func (c *ColumnRef) Qualifier() string {
	if len(c.Parts) < 2 {
		return ""
	}
	return c.Parts[len(c.Parts)-2]
}

// BinaryOp is an arithmetic or string operator.
type BinaryOp uint8

// Binary operators.
const (
	OpPlus BinaryOp = iota + 1
	OpMinus
	OpMult
	OpDiv
	OpMod
	OpConcat
	// JSONB operators (release 2.1's types): ->, ->>, @>, <@.
	OpJSONGet
	OpJSONGetText
	OpContains
	OpContainedBy
	// Bitwise operators on integers: &, | (JDBC's getIndexInfo uses &).
	OpBitAnd
	OpBitOr
)

var binaryOpText = map[BinaryOp]string{
	OpPlus: "+", OpMinus: "-", OpMult: "*", OpDiv: "/", OpMod: "%", OpConcat: "||",
	OpJSONGet: "->", OpJSONGetText: "->>", OpContains: "@>", OpContainedBy: "<@",
	OpBitAnd: "&", OpBitOr: "|",
}

func (o BinaryOp) String() string { return binaryOpText[o] }

// FieldAccess is (Expr).Field, the selection of a field of a composite
// value.
type FieldAccess struct {
	Expr  Expr
	Field string
}

// Format writes the expression.
func (e *FieldAccess) Format(b *strings.Builder) {
	b.WriteByte('(')
	e.Expr.Format(b)
	b.WriteString(").")
	QuoteIdent(b, e.Field)
}

func (e *FieldAccess) String() string { return str(e) }
func (*FieldAccess) exprNode()        {}

// BinaryExpr is Left Op Right.
type BinaryExpr struct {
	Op          BinaryOp
	Left, Right Expr
}

// CmpOp is a comparison operator.
type CmpOp uint8

// Comparison operators.
const (
	CmpEQ CmpOp = iota + 1
	CmpNE
	CmpLT
	CmpLE
	CmpGT
	CmpGE
	CmpIsDistinct
	CmpIsNotDistinct
)

var cmpOpText = map[CmpOp]string{
	CmpEQ: "=", CmpNE: "!=", CmpLT: "<", CmpLE: "<=", CmpGT: ">", CmpGE: ">=",
	CmpIsDistinct: "IS DISTINCT FROM", CmpIsNotDistinct: "IS NOT DISTINCT FROM",
}

func (o CmpOp) String() string { return cmpOpText[o] }

// Flip returns the operator with its operands swapped: a < b is b > a.
func (o CmpOp) Flip() CmpOp {
	switch o {
	case CmpLT:
		return CmpGT
	case CmpLE:
		return CmpGE
	case CmpGT:
		return CmpLT
	case CmpGE:
		return CmpLE
	}
	return o
}

// ComparisonExpr is Left Op Right.
type ComparisonExpr struct {
	Op          CmpOp
	Left, Right Expr
}

// AndExpr is Left AND Right.
type AndExpr struct{ Left, Right Expr }

// OrExpr is Left OR Right.
type OrExpr struct{ Left, Right Expr }

// NotExpr is NOT Expr.
type NotExpr struct{ Expr Expr }

// UnaryMinus is -Expr (for non-literals; -5 is a NumVal).
type UnaryMinus struct{ Expr Expr }

// IsNullExpr is Expr IS [NOT] NULL.
type IsNullExpr struct {
	Expr Expr
	Not  bool
}

// InExpr is Expr [NOT] IN (List) or Expr [NOT] IN (Sub).
type InExpr struct {
	Expr Expr
	List []Expr
	Sub  *Subquery
	Not  bool
}

// BetweenExpr is Expr [NOT] BETWEEN From AND To.
type BetweenExpr struct {
	Expr, From, To Expr
	Not            bool
}

// LikeExpr is Expr [NOT] LIKE|ILIKE Pattern.
type LikeExpr struct {
	Expr, Pattern   Expr
	Not, CaseInsens bool
}

// FuncCall is name(args), count(*) (Star) or name(DISTINCT args).
type FuncCall struct {
	Name     []string // lowercased parts: ["crdb_internal", "node_executable_version"]
	Args     []Expr
	Star     bool
	Distinct bool
	// OrderBy is an aggregate's ORDER BY: string_agg(v, ',' ORDER BY v).
	OrderBy []*OrderBy
	// Over makes the call a window function: f() OVER (...).
	Over *WindowSpec
	// Filter is an aggregate's FILTER (WHERE ...): only the rows for
	// which it is true are aggregated.
	Filter Expr
}

// WindowSpec is OVER (PARTITION BY ... ORDER BY ...).
type WindowSpec struct {
	PartitionBy []Expr
	OrderBy     []*OrderBy
}

// FuncName is the dotted function name.
func (f *FuncCall) FuncName() string { return strings.Join(f.Name, ".") }

// CastExpr is Expr::Type or CAST(Expr AS Type). Special names a target
// that is not one of kvnode's column types: an OID alias type (oid,
// regclass, regtype, regnamespace, regproc, regrole) or an array type
// (int8[]); Type is then the type the value has, or Unknown.
type CastExpr struct {
	Expr    Expr
	Type    types.T
	Mod     types.Mod // x::VARCHAR(3), x::NUMERIC(10,2), x::INT4
	Special string
}

// ---- expression formatting ----
//
// Compound operands are parenthesized whenever they are themselves
// operators, so the output never depends on precedence rules and always
// parses back to the same tree.

func isAtomic(e Expr) bool {
	switch v := e.(type) {
	case *NumVal:
		return !strings.HasPrefix(v.Text, "-")
	case *StrVal, *NullVal, *BoolVal, *Placeholder, *ColumnRef, *FuncCall, DefaultExpr,
		*CaseExpr, *ArrayExpr:
		return true
	case *Subquery:
		return !v.Exists
	case *CastExpr:
		return true
	}
	return false
}

func formatOperand(b *strings.Builder, e Expr) {
	if isAtomic(e) {
		e.Format(b)
		return
	}
	b.WriteByte('(')
	e.Format(b)
	b.WriteByte(')')
}

// Format writes the literal as written.
func (e *NumVal) Format(b *strings.Builder) { b.WriteString(e.Text) }

// Format writes a quoted literal.
func (e *StrVal) Format(b *strings.Builder) {
	if e.Bytes {
		b.WriteString("x'")
		b.WriteString(hex.EncodeToString([]byte(e.Val)))
		b.WriteByte('\'')
		return
	}
	FormatStringLiteral(b, e.Val)
}

// FormatStringLiteral writes s as a standard SQL string literal (” for ').
func FormatStringLiteral(b *strings.Builder, s string) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

// Format writes NULL.
func (NullVal) Format(b *strings.Builder) { b.WriteString("NULL") }

// String returns NULL.
func (e *NullVal) String() string { return "NULL" }

// Format writes TRUE or FALSE.
func (e *BoolVal) Format(b *strings.Builder) {
	if e.Val {
		b.WriteString("true")
	} else {
		b.WriteString("false")
	}
}

// Format writes $n.
func (e *Placeholder) Format(b *strings.Builder) {
	b.WriteByte('$')
	b.WriteString(itoa(e.Idx))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// Format writes the qualified name.
func (e *ColumnRef) Format(b *strings.Builder) {
	for i, p := range e.Parts {
		if i > 0 {
			b.WriteByte('.')
		}
		QuoteIdent(b, p)
	}
}

// Format writes the expression.
func (e *BinaryExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Left)
	b.WriteByte(' ')
	b.WriteString(e.Op.String())
	b.WriteByte(' ')
	formatOperand(b, e.Right)
}

// Format writes the expression.
func (e *ComparisonExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Left)
	b.WriteByte(' ')
	b.WriteString(e.Op.String())
	b.WriteByte(' ')
	formatOperand(b, e.Right)
}

// Format writes the expression.
func (e *AndExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Left)
	b.WriteString(" AND ")
	formatOperand(b, e.Right)
}

// Format writes the expression.
func (e *OrExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Left)
	b.WriteString(" OR ")
	formatOperand(b, e.Right)
}

// Format writes the expression.
func (e *NotExpr) Format(b *strings.Builder) {
	b.WriteString("NOT ")
	formatOperand(b, e.Expr)
}

// Format writes the expression.
func (e *UnaryMinus) Format(b *strings.Builder) {
	b.WriteByte('-')
	// Always parenthesize: "-" followed by "-1" would start a comment.
	b.WriteByte('(')
	e.Expr.Format(b)
	b.WriteByte(')')
}

// Format writes the expression.
func (e *IsNullExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	if e.Not {
		b.WriteString(" IS NOT NULL")
	} else {
		b.WriteString(" IS NULL")
	}
}

// Format writes the expression.
func (e *InExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	if e.Not {
		b.WriteString(" NOT")
	}
	b.WriteString(" IN ")
	if e.Sub != nil {
		e.Sub.Format(b)
		return
	}
	b.WriteByte('(')
	for i, x := range e.List {
		if i > 0 {
			b.WriteString(", ")
		}
		x.Format(b)
	}
	b.WriteByte(')')
}

// Format writes the expression.
func (e *BetweenExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	if e.Not {
		b.WriteString(" NOT")
	}
	b.WriteString(" BETWEEN ")
	formatOperand(b, e.From)
	b.WriteString(" AND ")
	formatOperand(b, e.To)
}

// Format writes the expression.
func (e *LikeExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	if e.Not {
		b.WriteString(" NOT")
	}
	if e.CaseInsens {
		b.WriteString(" ILIKE ")
	} else {
		b.WriteString(" LIKE ")
	}
	formatOperand(b, e.Pattern)
}

// Format writes the call.
func (e *FuncCall) Format(b *strings.Builder) {
	if len(e.Name) == 1 && niladicFuncs[e.Name[0]] && len(e.Args) == 0 && !e.Star {
		b.WriteString(e.Name[0])
		return
	}
	for i, p := range e.Name {
		if i > 0 {
			b.WriteByte('.')
		}
		QuoteIdent(b, p)
	}
	b.WriteByte('(')
	if e.Star {
		b.WriteByte('*')
	}
	if e.Distinct {
		b.WriteString("DISTINCT ")
	}
	for i, a := range e.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.Format(b)
	}
	if len(e.OrderBy) > 0 {
		formatOrderLimit(b, e.OrderBy, nil, nil)
	}
	b.WriteByte(')')
	if e.Filter != nil {
		b.WriteString(" FILTER (WHERE ")
		e.Filter.Format(b)
		b.WriteByte(')')
	}
	if e.Over != nil {
		b.WriteString(" OVER (")
		if len(e.Over.PartitionBy) > 0 {
			b.WriteString("PARTITION BY ")
			for i, x := range e.Over.PartitionBy {
				if i > 0 {
					b.WriteString(", ")
				}
				x.Format(b)
			}
		}
		if len(e.Over.OrderBy) > 0 {
			if len(e.Over.PartitionBy) > 0 {
				b.WriteByte(' ')
			}
			var ob strings.Builder
			formatOrderLimit(&ob, e.Over.OrderBy, nil, nil)
			b.WriteString(strings.TrimPrefix(ob.String(), " "))
		}
		b.WriteByte(')')
	}
}

// Format writes the cast as expr::TYPE.
func (e *CastExpr) Format(b *strings.Builder) {
	formatOperand(b, e.Expr)
	b.WriteString("::")
	if !e.Mod.IsZero() {
		b.WriteString(types.ColumnTypeString(e.Type, e.Mod))
		return
	}
	b.WriteString(castTypeName(e.Type, e.Special))
}

func (e *NumVal) String() string         { return str(e) }
func (e *StrVal) String() string         { return str(e) }
func (e *BoolVal) String() string        { return str(e) }
func (e *Placeholder) String() string    { return str(e) }
func (e *ColumnRef) String() string      { return str(e) }
func (e *BinaryExpr) String() string     { return str(e) }
func (e *ComparisonExpr) String() string { return str(e) }
func (e *AndExpr) String() string        { return str(e) }
func (e *OrExpr) String() string         { return str(e) }
func (e *NotExpr) String() string        { return str(e) }
func (e *UnaryMinus) String() string     { return str(e) }
func (e *IsNullExpr) String() string     { return str(e) }
func (e *InExpr) String() string         { return str(e) }
func (e *BetweenExpr) String() string    { return str(e) }
func (e *LikeExpr) String() string       { return str(e) }
func (e *FuncCall) String() string       { return str(e) }
func (e *CastExpr) String() string       { return str(e) }

func (*NumVal) exprNode()         {}
func (*StrVal) exprNode()         {}
func (*NullVal) exprNode()        {}
func (*BoolVal) exprNode()        {}
func (*Placeholder) exprNode()    {}
func (*ColumnRef) exprNode()      {}
func (*BinaryExpr) exprNode()     {}
func (*ComparisonExpr) exprNode() {}
func (*AndExpr) exprNode()        {}
func (*OrExpr) exprNode()         {}
func (*NotExpr) exprNode()        {}
func (*UnaryMinus) exprNode()     {}
func (*IsNullExpr) exprNode()     {}
func (*InExpr) exprNode()         {}
func (*BetweenExpr) exprNode()    {}
func (*LikeExpr) exprNode()       {}
func (*FuncCall) exprNode()       {}
func (*CastExpr) exprNode()       {}
func (DefaultExpr) exprNode()     {}

// WalkExpr calls fn on e and, while fn returns true, on its children,
// depth first. It lets the analyzer find placeholders, column references and
// aggregates without a switch of its own.
func WalkExpr(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch v := e.(type) {
	case *BinaryExpr:
		WalkExpr(v.Left, fn)
		WalkExpr(v.Right, fn)
	case *ComparisonExpr:
		WalkExpr(v.Left, fn)
		WalkExpr(v.Right, fn)
	case *AndExpr:
		WalkExpr(v.Left, fn)
		WalkExpr(v.Right, fn)
	case *OrExpr:
		WalkExpr(v.Left, fn)
		WalkExpr(v.Right, fn)
	case *NotExpr:
		WalkExpr(v.Expr, fn)
	case *UnaryMinus:
		WalkExpr(v.Expr, fn)
	case *IsNullExpr:
		WalkExpr(v.Expr, fn)
	case *InExpr:
		WalkExpr(v.Expr, fn)
		for _, x := range v.List {
			WalkExpr(x, fn)
		}
	case *BetweenExpr:
		WalkExpr(v.Expr, fn)
		WalkExpr(v.From, fn)
		WalkExpr(v.To, fn)
	case *LikeExpr:
		WalkExpr(v.Expr, fn)
		WalkExpr(v.Pattern, fn)
	case *FuncCall:
		for _, a := range v.Args {
			WalkExpr(a, fn)
		}
		for _, o := range v.OrderBy {
			WalkExpr(o.Expr, fn)
		}
		if v.Over != nil {
			for _, x := range v.Over.PartitionBy {
				WalkExpr(x, fn)
			}
			for _, o := range v.Over.OrderBy {
				WalkExpr(o.Expr, fn)
			}
		}
	case *CastExpr:
		WalkExpr(v.Expr, fn)
	case *CaseExpr:
		WalkExpr(v.Operand, fn)
		for _, w := range v.Whens {
			WalkExpr(w.Cond, fn)
			WalkExpr(w.Val, fn)
		}
		WalkExpr(v.Else, fn)
	case *QuantExpr:
		WalkExpr(v.Left, fn)
		WalkExpr(v.Right, fn)
	case *ArrayExpr:
		for _, x := range v.Elems {
			WalkExpr(x, fn)
		}
	case *RegexExpr:
		WalkExpr(v.Expr, fn)
		WalkExpr(v.Pattern, fn)
	case *CollateExpr:
		WalkExpr(v.Expr, fn)
	case *IndexExpr:
		WalkExpr(v.Expr, fn)
		WalkExpr(v.Index, fn)
	}
	// Subqueries are not entered: their expressions belong to another
	// scope.
}

// CreateDatabase is CREATE DATABASE [IF NOT EXISTS] name (release 2.1).
type CreateDatabase struct {
	IfNotExists bool
	Name        string
}

// Format writes the statement.
func (s *CreateDatabase) Format(b *strings.Builder) {
	b.WriteString("CREATE DATABASE ")
	if s.IfNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	QuoteIdent(b, s.Name)
}

func (s *CreateDatabase) String() string       { return str(s) }
func (s *CreateDatabase) StatementTag() string { return "CREATE DATABASE" }

// DropDatabase is DROP DATABASE [IF EXISTS] name [CASCADE | RESTRICT]
// (release 2.1). CASCADE is the default, as in CockroachDB (PostgreSQL has
// neither word and always drops the tables); with RESTRICT a database that
// has tables is not dropped.
type DropDatabase struct {
	IfExists bool
	Name     string
	Restrict bool
}

// Format writes the statement.
func (s *DropDatabase) Format(b *strings.Builder) {
	b.WriteString("DROP DATABASE ")
	if s.IfExists {
		b.WriteString("IF EXISTS ")
	}
	QuoteIdent(b, s.Name)
	if s.Restrict {
		b.WriteString(" RESTRICT")
	}
}

func (s *DropDatabase) String() string       { return str(s) }
func (s *DropDatabase) StatementTag() string { return "DROP DATABASE" }
