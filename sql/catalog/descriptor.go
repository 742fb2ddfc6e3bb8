package catalog

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/types"
)

// FirstUserTableID is the smallest ID of a user table: IDs are allocated as
// counter + FirstUserTableID, leaving the IDs below for system use.
const FirstUserTableID = 100

// ColumnDescriptor describes one column. Column IDs are never reused within
// a table (see package rowenc for why that matters).
type ColumnDescriptor struct {
	ID   int32   `json:"id"`
	Name string  `json:"name"`
	Type types.T `json:"-"`
	// Mod is the declared type's modifier (INT4, VARCHAR(10),
	// DECIMAL(10,2)), release 2.1; the zero Mod for the types of 2.0.
	Mod      types.Mod `json:"-"`
	Nullable bool      `json:"nullable"`
	// DefaultExpr is the DEFAULT expression in canonical SQL ("" if none).
	DefaultExpr string `json:"default_expr,omitempty"`
	// Hidden columns (the implicit rowid) are left out of SELECT * and of
	// INSERT without a column list.
	Hidden bool `json:"hidden,omitempty"`
	// AbsentExpr, when set, is how a row written before the column existed
	// reads it (a constant, "NULL" for none); when empty, such a row reads
	// the column's constant DEFAULT, or NULL. ALTER COLUMN SET|DROP
	// DEFAULT sets it (release 2.1), so that changing the default does not
	// change those rows.
	AbsentExpr string `json:"absent_expr,omitempty"`
}

// columnJSON is ColumnDescriptor's wire form: the type is written by name
// ("INT8") rather than as types.T's number, so the persisted form does not
// depend on the order of a Go enum.
type columnJSON struct {
	ID          int32  `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Nullable    bool   `json:"nullable"`
	DefaultExpr string `json:"default_expr,omitempty"`
	Hidden      bool   `json:"hidden,omitempty"`
	AbsentExpr  string `json:"absent_expr,omitempty"`
}

// MarshalJSON writes the column with its type by name.
func (c ColumnDescriptor) MarshalJSON() ([]byte, error) {
	return json.Marshal(columnJSON{ID: c.ID, Name: c.Name, Type: types.ColumnTypeString(c.Type, c.Mod),
		Nullable: c.Nullable, DefaultExpr: c.DefaultExpr, Hidden: c.Hidden, AbsentExpr: c.AbsentExpr})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *ColumnDescriptor) UnmarshalJSON(b []byte) error {
	var j columnJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	t, mod, ok := types.FromNameMod(j.Type)
	if !ok {
		return errors.Newf("column %q has unknown type %q", j.Name, j.Type)
	}
	*c = ColumnDescriptor{ID: j.ID, Name: j.Name, Type: t, Mod: mod, Nullable: j.Nullable,
		DefaultExpr: j.DefaultExpr, Hidden: j.Hidden, AbsentExpr: j.AbsentExpr}
	return nil
}

// DefaultDatabase is the database of every table a descriptor does not place
// in another one: all tables of a cluster from before release 2.1, and the
// tables created in defaultdb since.
const DefaultDatabase = "defaultdb"

// BuiltinDatabases exist from bootstrap, without a descriptor: defaultdb
// (CockroachDB's) and postgres (libpq's and many tools' default).
var BuiltinDatabases = []string{DefaultDatabase, "postgres"}

// IsBuiltinDatabase reports whether name is one of BuiltinDatabases.
func IsBuiltinDatabase(name string) bool {
	return name == DefaultDatabase || name == "postgres"
}

// TableDescriptor is the schema of one table, or the tombstone of a dropped
// one; or, with IsDatabase, the record of a database created by CREATE
// DATABASE (release 2.1). Descriptors handed out by a Catalog are shared and
// must not be modified; Clone one to derive a new version.
//
// Every record is stored, pushed, merged and committed in group 0 under its
// Key, which is also the "name" of its JSON form, so that a binary that
// predates databases (2.0, which keys records by that name) keeps every
// record apart: a table of defaultdb under its name, a table of database db
// under "db\x00name", a database under "\x00db". A 2.0 binary sees the
// tombstones of the latter two as tombstones of tables no one can name; a
// live one refuses the downgrade (sql.Executor.Release21Blockers).
type TableDescriptor struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Database is the database of a table; "" means defaultdb (never
	// "defaultdb" itself, so a table of defaultdb keeps the key it had
	// before release 2.1).
	Database string `json:"-"`
	// IsDatabase marks the record of a database (Name); it has no columns.
	IsDatabase bool               `json:"-"`
	Columns    []ColumnDescriptor `json:"columns"`
	// PrimaryKey lists the key columns' IDs in key order.
	PrimaryKey   []int32 `json:"primary_key"`
	NextColumnID int32   `json:"next_column_id"`
	// Version counts the changes made to this table (1 at CREATE).
	Version int64 `json:"version"`
	// ModTime orders changes to a table name across nodes: the descriptor
	// with the highest ModTime wins.
	ModTime Timestamp `json:"mod_time"`
	// Checks are the table's CHECK constraints (release 2.1: a 2.0 binary
	// would ignore them, so they are created only once the cluster is at
	// 2.1).
	Checks []CheckConstraint `json:"checks,omitempty"`
	// WriteFence is the value every write to the table asserts the
	// table's fence key holds (release 2.1, sql/schemachange.go); 0 means
	// the key is absent. A schema change that must not race with writes
	// planned against an older descriptor raises it.
	WriteFence uint64 `json:"write_fence,omitempty"`
	// Hold, when set, stops writes to the table while a schema change
	// rewrites its rows (release 2.1); reads go on.
	Hold *WriteHold `json:"hold,omitempty"`
	// Indexes are the table's secondary indexes (release 2.1), in the order
	// they were created; NextIndexID is the ID the next one gets (index IDs
	// are never reused within a table; 0 means 1).
	Indexes     []IndexDescriptor `json:"indexes,omitempty"`
	NextIndexID int32             `json:"next_index_id,omitempty"`
	// ForeignKeys are the table's FOREIGN KEY constraints (release 2.1):
	// this table is the referencing one; the referenced table finds them
	// by looking through the catalog (sql/fk.go).
	ForeignKeys []ForeignKey `json:"foreign_keys,omitempty"`
	// Dropped marks a tombstone: the table was dropped at ModTime. A
	// tombstone is kept forever so that a node that missed the DROP does
	// not resurrect the table when it merges.
	Dropped bool `json:"dropped,omitempty"`
	// Pending, when set, marks a table created by a transaction that has
	// not been decided yet (release 2.1, txn/DESIGN.md "DDL in a
	// transaction"): the transaction's decision key in the data group says
	// whether the table exists. Lookups skip it (Get, Tables); the readers
	// that resolve it use GetAny and Pending.
	Pending *PendingTxn `json:"pending,omitempty"`
	// Next, when set, is a transaction's pending change of this existing
	// table (release 2.1, txn/DESIGN.md "DDL in a transaction", class 2):
	// the version the transaction built (a tombstone for DROP TABLE or
	// the old name of RENAME TO), with Next.Pending naming the
	// transaction. The record itself stays the public table until the
	// transaction's decision key says committed; lookups that resolve it
	// use Catalog.Pending and PendingOf.
	Next *TableDescriptor `json:"next,omitempty"`
}

// PendingTxn names the transaction a pending record belongs to: its ID (the
// suffix of its decision key, hex), the node that made it, and until when
// (wall time, nanoseconds) that node promises to decide it; after that,
// any node may resolve it (abort it if it is undecided).
type PendingTxn struct {
	Txn   string    `json:"txn"`
	Node  nodeid.ID `json:"node"`
	Until int64     `json:"until"`
}

// WriteHold is a schema change holding a table's writes: what it is, the
// table ID its rows are being rewritten into (deleted if the hold is given
// up), and until when (HLC wall time, nanoseconds) the coordinator promises
// to finish or renew it. A writer that finds a hold past its expiry may
// release it: the coordinator is taken to be gone.
type WriteHold struct {
	Statement string `json:"statement"`
	NewID     int64  `json:"new_id,omitempty"`
	Until     int64  `json:"until"`
}

// IndexDescriptor is a secondary index: its entries are keyed by Columns
// (column IDs, ascending) and point at the row's key (keys.IndexDataPrefix).
// A unique index allows one row per value of Columns without a NULL.
type IndexDescriptor struct {
	ID      int32   `json:"id"`
	Name    string  `json:"name"`
	Unique  bool    `json:"unique,omitempty"`
	Columns []int32 `json:"columns"`
	// Storing lists the columns of STORING (INCLUDE): recorded and shown;
	// lookups read the row itself, so they change no answer.
	Storing []int32 `json:"storing,omitempty"`
	// WriteOnly: writes keep the index up to date, but no read uses it
	// yet: CREATE INDEX is filling it with the rows written before
	// (sql/index.go).
	WriteOnly bool `json:"write_only,omitempty"`
	// Build is the backfill's job while WriteOnly: who runs it until when
	// (a lease its coordinator renews; a node takes over an expired one),
	// and how far it got.
	Build *IndexBuild `json:"build,omitempty"`
}

// IndexBuild is the state of an index's backfill, as SHOW JOBS shows it.
type IndexBuild struct {
	Statement   string    `json:"statement"`
	Coordinator nodeid.ID `json:"coordinator"`
	Until       int64     `json:"until"`   // HLC wall time, ns: the lease
	Started     int64     `json:"started"` // ns
	Modified    int64     `json:"modified"`
	Done        int64     `json:"done"`   // rows backfilled
	Resume      []byte    `json:"resume"` // the row key to go on from
}

// ForeignKey is FOREIGN KEY (Columns) REFERENCES RefTable (RefColumns):
// RefColumns are the referenced table's primary key or the columns of one
// of its unique indexes. OnDelete is "" (NO ACTION), "RESTRICT",
// "CASCADE" or "SET NULL"; updates of a referenced key are NO ACTION.
type ForeignKey struct {
	Name       string  `json:"name"`
	Columns    []int32 `json:"columns"`
	RefTable   int64   `json:"ref_table"`
	RefColumns []int32 `json:"ref_columns"`
	OnDelete   string  `json:"on_delete,omitempty"`
}

// CheckConstraint is CONSTRAINT name CHECK (expr); Expr is canonical SQL
// over the table's column names.
type CheckConstraint struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
}

// Key is the record's name in the catalog, the local store and group 0.
func (d *TableDescriptor) Key() string {
	if d.IsDatabase {
		return DatabaseKey(d.Name)
	}
	return TableKey(d.Database, d.Name)
}

// TableKey is the key of table name in database db.
func TableKey(db, name string) string {
	if db == "" || db == DefaultDatabase {
		return name
	}
	return db + "\x00" + name
}

// DatabaseKey is the key of database db's record.
func DatabaseKey(db string) string { return "\x00" + db }

// DatabaseName is the database of a table, defaultdb when unset.
func (d *TableDescriptor) DatabaseName() string {
	if d.Database == "" {
		return DefaultDatabase
	}
	return d.Database
}

// splitKey is the inverse of Key.
func splitKey(key string) (db, name string, isDB bool) {
	if strings.HasPrefix(key, "\x00") {
		return "", key[1:], true
	}
	if i := strings.IndexByte(key, 0); i >= 0 {
		return key[:i], key[i+1:], false
	}
	return "", key, false
}

// descJSON is TableDescriptor without its methods, so that MarshalJSON can
// write it with the key as the name.
type descJSON TableDescriptor

// MarshalJSON writes the descriptor with its Key as "name".
func (d TableDescriptor) MarshalJSON() ([]byte, error) {
	j := descJSON(d)
	j.Name = d.Key()
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, and the descriptors of
// releases before 2.1 (a plain name: a table of defaultdb).
func (d *TableDescriptor) UnmarshalJSON(b []byte) error {
	var j descJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = TableDescriptor(j)
	d.Database, d.Name, d.IsDatabase = splitKey(j.Name)
	return nil
}

// Clone returns a deep copy.
func (d *TableDescriptor) Clone() *TableDescriptor {
	c := *d
	c.Checks = append([]CheckConstraint(nil), d.Checks...)
	c.Columns = append([]ColumnDescriptor(nil), d.Columns...)
	c.PrimaryKey = append([]int32(nil), d.PrimaryKey...)
	c.Indexes = append([]IndexDescriptor(nil), d.Indexes...)
	c.ForeignKeys = append([]ForeignKey(nil), d.ForeignKeys...)
	for i := range c.ForeignKeys {
		c.ForeignKeys[i].Columns = append([]int32(nil), c.ForeignKeys[i].Columns...)
		c.ForeignKeys[i].RefColumns = append([]int32(nil), c.ForeignKeys[i].RefColumns...)
	}
	for i := range c.Indexes {
		c.Indexes[i].Columns = append([]int32(nil), c.Indexes[i].Columns...)
		c.Indexes[i].Storing = append([]int32(nil), c.Indexes[i].Storing...)
		if b := c.Indexes[i].Build; b != nil {
			nb := *b
			nb.Resume = append([]byte(nil), b.Resume...)
			c.Indexes[i].Build = &nb
		}
	}
	if d.Hold != nil {
		h := *d.Hold
		c.Hold = &h
	}
	if d.Pending != nil {
		p := *d.Pending
		c.Pending = &p
	}
	if d.Next != nil {
		c.Next = d.Next.Clone()
	}
	return &c
}

// PendingOf returns the transaction a record waits for: its own Pending (a
// table a transaction creates) or its Next's (a change of an existing
// table); nil for a settled record.
func (d *TableDescriptor) PendingOf() *PendingTxn {
	if d.Pending != nil {
		return d.Pending
	}
	if d.Next != nil {
		return d.Next.Pending
	}
	return nil
}

// ColumnIndex returns the position of the named column, or -1.
func (d *TableDescriptor) ColumnIndex(name string) int {
	for i := range d.Columns {
		if d.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// ColumnIndexByID returns the position of the column with the given ID, or
// -1.
func (d *TableDescriptor) ColumnIndexByID(id int32) int {
	for i := range d.Columns {
		if d.Columns[i].ID == id {
			return i
		}
	}
	return -1
}

// PrimaryKeyIndexes returns the positions of the key columns, in key order.
func (d *TableDescriptor) PrimaryKeyIndexes() []int {
	out := make([]int, len(d.PrimaryKey))
	for i, id := range d.PrimaryKey {
		out[i] = d.ColumnIndexByID(id)
	}
	return out
}

// Validate checks the descriptor's internal consistency. A descriptor
// received from a peer is validated before it is merged, so that one bad
// record cannot break every query on this node.
func (d *TableDescriptor) Validate() error {
	if d.Name == "" || strings.IndexByte(d.Name, 0) >= 0 || strings.IndexByte(d.Database, 0) >= 0 {
		return errors.Newf("descriptor has an empty or invalid name %q", d.Key())
	}
	if d.ModTime.IsZero() {
		return errors.Newf("descriptor of table %q has no modification time", d.Name)
	}
	if n := d.Next; n != nil {
		// A transaction's pending change of the table: the same table
		// or its replacement (a tombstone for DROP TABLE or the old name
		// of a RENAME; a new table for DROP then CREATE under its name).
		if n.Pending == nil || n.Next != nil || n.Key() != d.Key() || d.Dropped || d.Pending != nil {
			return errors.Newf("table %q has a malformed pending change", d.Name)
		}
		if n.Dropped {
			return nil
		}
		if err := n.Validate(); err != nil {
			return errors.Wrapf(err, "the pending change of table %q", d.Name)
		}
	}
	if d.Dropped {
		return nil
	}
	if d.IsDatabase {
		if d.ID <= FirstUserTableID || len(d.Columns) > 0 || d.Version < 1 {
			return errors.Newf("database %q has ID %d, %d columns, version %d", d.Name, d.ID, len(d.Columns), d.Version)
		}
		return nil
	}
	if d.ID <= FirstUserTableID {
		return errors.Newf("table %q has ID %d, want > %d", d.Name, d.ID, FirstUserTableID)
	}
	if len(d.Columns) == 0 {
		return errors.Newf("table %q has no columns", d.Name)
	}
	names := map[string]bool{}
	ids := map[int32]bool{}
	for _, c := range d.Columns {
		if c.Name == "" || names[c.Name] {
			return errors.Newf("table %q has an empty or duplicate column name %q", d.Name, c.Name)
		}
		if c.ID <= 0 || ids[c.ID] || c.ID >= d.NextColumnID {
			return errors.Newf("table %q column %q has ID %d (next column ID %d)", d.Name, c.Name, c.ID, d.NextColumnID)
		}
		if c.Type == types.Unknown {
			return errors.Newf("table %q column %q has no type", d.Name, c.Name)
		}
		if c.DefaultExpr != "" {
			if _, err := parser.ParseExpr(c.DefaultExpr); err != nil {
				return errors.Wrapf(err, "table %q column %q has an invalid DEFAULT", d.Name, c.Name)
			}
		}
		names[c.Name] = true
		ids[c.ID] = true
	}
	if len(d.PrimaryKey) == 0 {
		return errors.Newf("table %q has no primary key", d.Name)
	}
	seen := map[int32]bool{}
	for _, id := range d.PrimaryKey {
		i := d.ColumnIndexByID(id)
		if i < 0 || seen[id] {
			return errors.Newf("table %q primary key names column ID %d twice or not at all", d.Name, id)
		}
		if d.Columns[i].Nullable {
			return errors.Newf("table %q primary key column %q is nullable", d.Name, d.Columns[i].Name)
		}
		seen[id] = true
	}
	if d.Version < 1 {
		return errors.Newf("table %q has version %d", d.Name, d.Version)
	}
	return nil
}

// PrimaryKeyName is the name of the table's primary key constraint, as
// error messages and SHOW CREATE TABLE print it.
func (d *TableDescriptor) PrimaryKeyName() string { return d.Name + "_pkey" }

// CreateStatement renders the descriptor as CockroachDB's SHOW CREATE TABLE
// does. The output parses back into the same table definition.
func (d *TableDescriptor) CreateStatement() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE public.")
	parser.QuoteIdent(&b, d.Name)
	b.WriteString(" (\n")
	for _, c := range d.Columns {
		b.WriteByte('\t')
		parser.QuoteIdent(&b, c.Name)
		b.WriteByte(' ')
		b.WriteString(types.ColumnTypeString(c.Type, c.Mod))
		if c.Hidden {
			b.WriteString(" NOT VISIBLE")
		}
		if c.Nullable {
			b.WriteString(" NULL")
		} else {
			b.WriteString(" NOT NULL")
		}
		if c.DefaultExpr != "" {
			b.WriteString(" DEFAULT ")
			if e, err := parser.ParseExpr(c.DefaultExpr); err == nil && !isSimpleDefault(e) {
				fmt.Fprintf(&b, "(%s)", c.DefaultExpr)
			} else {
				b.WriteString(c.DefaultExpr)
			}
		}
		b.WriteString(",\n")
	}
	b.WriteString("\tCONSTRAINT ")
	parser.QuoteIdent(&b, d.PrimaryKeyName())
	b.WriteString(" PRIMARY KEY (")
	for i, id := range d.PrimaryKey {
		if i > 0 {
			b.WriteString(", ")
		}
		if j := d.ColumnIndexByID(id); j >= 0 {
			parser.QuoteIdent(&b, d.Columns[j].Name)
		}
		b.WriteString(" ASC")
	}
	b.WriteString(")")
	colList := func(ids []int32, asc bool) {
		for i, id := range ids {
			if i > 0 {
				b.WriteString(", ")
			}
			if j := d.ColumnIndexByID(id); j >= 0 {
				parser.QuoteIdent(&b, d.Columns[j].Name)
			}
			if asc {
				b.WriteString(" ASC")
			}
		}
	}
	for _, ix := range d.Indexes {
		if ix.WriteOnly {
			continue // not built yet
		}
		b.WriteString(",\n\t")
		if ix.Unique {
			b.WriteString("UNIQUE ")
		}
		b.WriteString("INDEX ")
		parser.QuoteIdent(&b, ix.Name)
		b.WriteString(" (")
		colList(ix.Columns, true)
		b.WriteString(")")
		if len(ix.Storing) > 0 {
			b.WriteString(" STORING (")
			colList(ix.Storing, false)
			b.WriteString(")")
		}
	}
	for _, ck := range d.Checks {
		b.WriteString(",\n\tCONSTRAINT ")
		parser.QuoteIdent(&b, ck.Name)
		b.WriteString(" CHECK (" + ck.Expr + ")")
	}
	b.WriteString("\n)")
	return b.String()
}

func isSimpleDefault(e parser.Expr) bool {
	switch v := e.(type) {
	case *parser.NumVal:
		return !strings.HasPrefix(v.Text, "-")
	case *parser.StrVal, *parser.BoolVal, *parser.NullVal, *parser.FuncCall, *parser.CastExpr:
		return true
	}
	return false
}
