package sql

import (
	"context"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// pg_catalog and information_schema: virtual tables computed from the
// node's own catalog (those of catalogOnly once per catalog version, with
// their OID indexes; the others per query), filled the way PostgreSQL fills them so that
// psql, drivers and ORMs find what they look for (a table's primary key in
// pg_index and pg_constraint, pg_attribute.atttypid joining pg_type, the
// schemas in pg_namespace). server/pgcompare_test.go runs psql's describe
// commands, SQLAlchemy's inspector and JDBC's DatabaseMetaData against a
// node and a real PostgreSQL with the same schema; its testdata records,
// with a reason, every line where kvnode's answer differs.
//
// OIDs are stable: they are computed from what they name, never allocated.
// A user table with descriptor ID n has OID 100000 + 1000n; its primary key
// index +1, the primary key constraint +2, its row type +3, the DEFAULT of
// its column with ID c +100+c. A virtual table's OID is a hash of its name in
// [1e9, 2e9). Built-in objects (types, schemas, access methods, collations)
// have PostgreSQL's own OIDs.

const (
	oidPgCatalog    = 11
	oidPublic       = 2200
	oidInfoSchema   = 14000
	oidCrdbInternal = 14001
	oidSystem       = 14002
	oidRoot         = 10
	oidHeapAM       = 2
	oidBtreeAM      = 403
	oidDefaultColl  = 100
	oidDBPostgres   = 5
	oidDBDefaultdb  = 16384
)

func tableOID(d *catalog.TableDescriptor) int64 { return 100000 + 1000*d.ID }
func pkeyIndexOID(d *catalog.TableDescriptor) int64 {
	return tableOID(d) + 1
}
func pkeyConstraintOID(d *catalog.TableDescriptor) int64 { return tableOID(d) + 2 }

// foreignKeyOID is the OID of the table's i-th foreign key (fewer than
// maxFKOIDs of them get one).
func foreignKeyOID(d *catalog.TableDescriptor, i int) int64 { return tableOID(d) + 700 + int64(i) }

const maxFKOIDs = 100

// secondaryIndexOID is the OID of the table's secondary index with ID id
// (indexes with an ID below maxIndexOIDs get one).
func secondaryIndexOID(d *catalog.TableDescriptor, id int32) int64 {
	return tableOID(d) + 900 + int64(id)
}

const maxIndexOIDs = 100

// catIndex is an index as the catalogs show it: the primary key's (ii nil)
// or a secondary one.
type catIndex struct {
	ti      *tableInfo
	ii      *indexInfo
	oid     int64
	name    string
	cols    []int // positions in the row
	unique  bool
	primary bool
}

// indexesOf lists the indexes of ti the catalogs show: the primary key's
// when its columns are visible, then the public secondary indexes.
func indexesOf(ti *tableInfo) []catIndex {
	var out []catIndex
	if hasVisiblePK(ti) {
		out = append(out, catIndex{ti: ti, oid: pkeyIndexOID(ti.desc), name: pkeyName(ti), cols: ti.pk, unique: true, primary: true})
	}
	for i := range ti.indexes {
		ii := &ti.indexes[i]
		if ii.desc.WriteOnly || ii.desc.ID >= maxIndexOIDs {
			continue
		}
		out = append(out, catIndex{ti: ti, ii: ii, oid: secondaryIndexOID(ti.desc, ii.desc.ID), name: ii.desc.Name,
			cols: ii.cols, unique: ii.desc.Unique})
	}
	return out
}

// referencedIndexOID is the OID of the unique index of the referenced
// table whose columns are a foreign key's referenced columns (in any
// order), as pg_constraint.conindid gives it; 0 if there is none.
func referencedIndexOID(parent *tableInfo, refCols []int32) int64 {
	want := map[int32]bool{}
	for _, id := range refCols {
		want[id] = true
	}
	for _, ci := range indexesOf(parent) {
		if !ci.unique || len(ci.cols) != len(want) {
			continue
		}
		same := true
		for _, pos := range ci.cols {
			same = same && want[parent.cols[pos].ID]
		}
		if same {
			return ci.oid
		}
	}
	return 0
}

func (ci *catIndex) attnums() types.Array {
	var out types.Array
	for _, p := range ci.cols {
		out = append(out, attnum(ci.ti, p))
	}
	return out
}

// checkConstraintOID is the OID of the table's i-th CHECK constraint
// (fewer than maxCheckOIDs of them get one).
func checkConstraintOID(d *catalog.TableDescriptor, i int) int64 { return tableOID(d) + 10 + int64(i) }

const maxCheckOIDs = 80

func rowTypeOID(d *catalog.TableDescriptor) int64 { return tableOID(d) + 3 }
func attrdefOID(d *catalog.TableDescriptor, colID int32) int64 {
	return tableOID(d) + 100 + int64(colID)
}

func virtualOID(name string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return 1_000_000_000 + int64(h.Sum32()%1_000_000_000)
}

// builtinType is a row of pg_type for a built-in type.
type builtinType struct {
	oid      int64
	name     string
	len      int64
	category string
	elem     int64 // element type of an array type
	array    int64 // array type of this type
	sqlName  string
}

// storage is the type's typstorage, as PostgreSQL's catalog has it: plain
// for fixed-length types and the vectors, main for numeric, extended for
// the other variable-length types.
func (t builtinType) storage() string {
	switch {
	case t.len >= 0, t.name == "int2vector", t.name == "oidvector", t.name == "unknown":
		return "p"
	case t.name == "numeric":
		return "m"
	}
	return "x"
}

var builtinTypes = []builtinType{
	{16, "bool", 1, "B", 0, 1000, "boolean"},
	{17, "bytea", -1, "U", 0, 1001, "bytea"},
	{18, "char", 1, "S", 0, 1002, "\"char\""},
	{19, "name", 64, "S", 0, 1003, "name"},
	{20, "int8", 8, "N", 0, 1016, "bigint"},
	{21, "int2", 2, "N", 0, 1005, "smallint"},
	{22, "int2vector", -1, "A", 21, 1006, "int2vector"},
	{23, "int4", 4, "N", 0, 1007, "integer"},
	{24, "regproc", 4, "N", 0, 1008, "regproc"},
	{25, "text", -1, "S", 0, 1009, "text"},
	{26, "oid", 4, "N", 0, 1028, "oid"},
	{30, "oidvector", -1, "A", 26, 1013, "oidvector"},
	{700, "float4", 4, "N", 0, 1021, "real"},
	{701, "float8", 8, "N", 0, 1022, "double precision"},
	{705, "unknown", -2, "X", 0, 0, "unknown"},
	{1043, "varchar", -1, "S", 0, 1015, "character varying"},
	{2205, "regclass", 4, "N", 0, 2210, "regclass"},
	{2206, "regtype", 4, "N", 0, 2211, "regtype"},
	{1000, "_bool", -1, "A", 16, 0, "boolean[]"},
	{1001, "_bytea", -1, "A", 17, 0, "bytea[]"},
	{1005, "_int2", -1, "A", 21, 0, "smallint[]"},
	{1007, "_int4", -1, "A", 23, 0, "integer[]"},
	{1009, "_text", -1, "A", 25, 0, "text[]"},
	{1016, "_int8", -1, "A", 20, 0, "bigint[]"},
	{1021, "_float4", -1, "A", 700, 0, "real[]"},
	{1022, "_float8", -1, "A", 701, 0, "double precision[]"},
	{1015, "_varchar", -1, "A", 1043, 0, "character varying[]"},
	{1028, "_oid", -1, "A", 26, 0, "oid[]"},
	{1042, "bpchar", -1, "S", 0, 1014, "character"},
	{1014, "_bpchar", -1, "A", 1042, 0, "character[]"},
	{1700, "numeric", -1, "N", 0, 1231, "numeric"},
	{1231, "_numeric", -1, "A", 1700, 0, "numeric[]"},
	{1082, "date", 4, "D", 0, 1182, "date"},
	{1182, "_date", -1, "A", 1082, 0, "date[]"},
	{1114, "timestamp", 8, "D", 0, 1115, "timestamp without time zone"},
	{1115, "_timestamp", -1, "A", 1114, 0, "timestamp without time zone[]"},
	{1184, "timestamptz", 8, "D", 0, 1185, "timestamp with time zone"},
	{1185, "_timestamptz", -1, "A", 1184, 0, "timestamp with time zone[]"},
	{1186, "interval", 16, "T", 0, 1187, "interval"},
	{1187, "_interval", -1, "A", 1186, 0, "interval[]"},
	{2950, "uuid", 16, "U", 0, 2951, "uuid"},
	{2951, "_uuid", -1, "A", 2950, 0, "uuid[]"},
	{3802, "jsonb", -1, "U", 0, 3807, "jsonb"},
	{3807, "_jsonb", -1, "A", 3802, 0, "jsonb[]"},
	{4089, "regnamespace", 4, "N", 0, 4090, "regnamespace"},
	{4096, "regrole", 4, "N", 0, 4097, "regrole"},
}

func builtinTypeByOID(oid int64) (builtinType, bool) {
	for _, t := range builtinTypes {
		if t.oid == oid {
			return t, true
		}
	}
	return builtinType{}, false
}

// colTypeOID is the pg_type OID of a column type.
func colTypeOID(t types.T) int64 { return int64(t.OID()) }

// catCols parses a column list "name type, ..." (types: int, float, text,
// bool, int[], text[]).
func catCols(spec string) []pgwire.Column {
	var out []pgwire.Column
	for _, f := range strings.Split(spec, ",") {
		parts := strings.Fields(f)
		t := map[string]types.T{"int": types.Int, "float": types.Float, "text": types.String, "bool": types.Bool,
			"int[]": types.ArrayOf(types.Int), "text[]": types.ArrayOf(types.String), "timestamptz": types.TimestampTZ}[parts[1]]
		out = append(out, pgwire.Column{Name: parts[0], Type: t})
	}
	return out
}

// catalogSnapshot is what one query's catalog tables and functions are
// computed from, with its lookups indexed.
type catalogSnapshot struct {
	e         *Executor
	tables    []*tableInfo
	byOID     map[int64]*tableInfo // table, primary key index and constraint OIDs
	byName    map[string]*tableInfo
	virtNames []string
	virtByOID map[int64]string
	// referenced holds the IDs of the tables a foreign key references.
	referenced map[int64]bool

	// version is the catalog's (catalog.Catalog.Version) when the snapshot
	// was taken. A snapshot is immutable once built, and shared by every
	// statement that runs while the catalog keeps that version; the rows
	// of the tables computed from it alone (catalogOnly) are kept in
	// rowCache.
	version  uint64
	rowMu    sync.Mutex
	rowCache map[string]*catalogRows
}

// catalogRows are the rows of a catalogOnly table at one catalog version,
// shared by every statement (never modified), with the indexes that scans
// and joins on an OID use (built on first use).
type catalogRows struct {
	rows  [][]types.Datum
	mu    sync.Mutex
	byCol map[int]map[int64][]int32
}

// index maps each value of the integer column col to the positions of the
// rows holding it (NULLs are left out: they equal nothing).
func (r *catalogRows) index(col int) map[int64][]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ix, ok := r.byCol[col]; ok {
		return ix
	}
	ix := make(map[int64][]int32, len(r.rows))
	for i, row := range r.rows {
		if v, ok := row[col].(int64); ok {
			ix[v] = append(ix[v], int32(i))
		}
	}
	if r.byCol == nil {
		r.byCol = map[int]map[int64][]int32{}
	}
	r.byCol[col] = ix
	return ix
}

// catalogOnly are the virtual tables whose rows are computed from the
// catalog snapshot alone (no session, user or cluster state): psql's
// describe queries join them, and they are computed once per catalog
// version.
var catalogOnly = map[string]bool{
	"pg_catalog.pg_namespace": true, "pg_catalog.pg_class": true, "pg_catalog.pg_attribute": true,
	"pg_catalog.pg_type": true, "pg_catalog.pg_index": true, "pg_catalog.pg_constraint": true,
	"pg_catalog.pg_attrdef": true, "pg_catalog.pg_depend": true,
}

// cachedRows returns the rows of a catalogOnly table, computing and
// checking them on first use.
func (s *catalogSnapshot) cachedRows(ctx context.Context, vt *virtualTable, t *catTable) (*catalogRows, error) {
	s.rowMu.Lock()
	cr, ok := s.rowCache[t.name]
	s.rowMu.Unlock()
	if ok {
		return cr, nil
	}
	rows, err := t.rows(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := checkVirtualRows(vt, rows); err != nil {
		return nil, err
	}
	cr = &catalogRows{rows: rows}
	s.rowMu.Lock()
	defer s.rowMu.Unlock()
	if prev, ok := s.rowCache[t.name]; ok {
		return prev, nil // another statement computed them meanwhile
	}
	if s.rowCache == nil {
		s.rowCache = map[string]*catalogRows{}
	}
	s.rowCache[t.name] = cr
	return cr, nil
}

func (e *Executor) catalogSnapshot(db string) (*catalogSnapshot, error) {
	// The version is read before the descriptors: a snapshot is at least
	// as new as its version says, so one kept under it is never staler
	// than a snapshot taken now.
	version := e.catalog.Version()
	nvirt := len(e.virtualNames())
	e.catCache.mu.Lock()
	if s := e.catCache.byDB[db]; s != nil && e.catCache.version == version && len(s.virtNames) == nvirt {
		e.catCache.mu.Unlock()
		return s, nil
	}
	e.catCache.mu.Unlock()
	s, err := e.buildCatalogSnapshot(db, version)
	if err != nil {
		return nil, err
	}
	e.catCache.mu.Lock()
	if e.catCache.version != version || e.catCache.byDB == nil {
		e.catCache.version, e.catCache.byDB = version, map[string]*catalogSnapshot{}
	}
	e.catCache.byDB[db] = s
	e.catCache.mu.Unlock()
	return s, nil
}

func (e *Executor) buildCatalogSnapshot(db string, version uint64) (*catalogSnapshot, error) {
	s := &catalogSnapshot{e: e, byOID: map[int64]*tableInfo{}, byName: map[string]*tableInfo{}, virtByOID: map[int64]string{},
		referenced: map[int64]bool{}, version: version}
	// A database's catalog describes its own tables, as in PostgreSQL.
	descs := e.catalog.TablesIn(db)
	sort.Slice(descs, func(i, j int) bool { return descs[i].ID < descs[j].ID })
	for _, d := range descs {
		ti, err := e.tables.infoFor(d)
		if err != nil {
			return nil, err
		}
		s.tables = append(s.tables, ti)
		s.byOID[tableOID(d)] = ti
		s.byOID[pkeyIndexOID(d)] = ti
		s.byOID[pkeyConstraintOID(d)] = ti
		for _, ix := range d.Indexes {
			if ix.ID < maxIndexOIDs {
				s.byOID[secondaryIndexOID(d, ix.ID)] = ti
			}
		}
		for i := range d.ForeignKeys {
			if i < maxFKOIDs {
				s.byOID[foreignKeyOID(d, i)] = ti
			}
			s.referenced[d.ForeignKeys[i].RefTable] = true
		}
		for i := range d.Checks {
			if i < maxCheckOIDs {
				s.byOID[checkConstraintOID(d, i)] = ti
			}
		}
		s.byName[d.Name] = ti
	}
	s.virtNames = e.virtualNames()
	for _, n := range s.virtNames {
		s.virtByOID[virtualOID(n)] = n
	}
	return s, nil
}

// snapshotFor returns the execution's snapshot when ctx carries one (a
// query of the pipeline), a new one otherwise.
func (e *Executor) snapshotFor(ctx context.Context) (*catalogSnapshot, error) {
	if st, ok := ctx.Value(stmtKey{}).(*stmtState); ok {
		if st.cat == nil {
			cat, err := e.catalogSnapshot(currentDB(ctx))
			if err != nil {
				return nil, err
			}
			st.cat = cat
		}
		return st.cat, nil
	}
	return e.catalogSnapshot(currentDB(ctx))
}

type stmtKey struct{}

// attnum is a column's number as pg_attribute lists it: the hidden rowid
// is left out, attnum counts from 1 in column order.
func attnum(ti *tableInfo, pos int) int64 {
	for i, p := range ti.visible {
		if p == pos {
			return int64(i + 1)
		}
	}
	return 0
}

// pkeyName is the name PostgreSQL gives a primary key: table_pkey.
func pkeyName(ti *tableInfo) string { return ti.desc.Name + "_pkey" }

// hasVisiblePK reports whether the primary key is made of visible columns
// (a table with the hidden rowid has no primary key a client can see).
func hasVisiblePK(ti *tableInfo) bool {
	for _, p := range ti.pk {
		if attnum(ti, p) == 0 {
			return false
		}
	}
	return true
}

func pkAttnums(ti *tableInfo) types.Array {
	var out types.Array
	for _, p := range ti.pk {
		out = append(out, attnum(ti, p))
	}
	return out
}

func (e *Executor) virtualSchemaOID(name string) int64 {
	switch {
	case strings.HasPrefix(name, "pg_catalog."):
		return oidPgCatalog
	case strings.HasPrefix(name, "information_schema."):
		return oidInfoSchema
	case strings.HasPrefix(name, "crdb_internal."):
		return oidCrdbInternal
	}
	return oidSystem
}

type catTable struct {
	name string
	cols string
	rows func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error)
}

// registerCatalog adds the pg_catalog and information_schema tables.
func (e *Executor) registerCatalog() {
	for _, t := range catalogTables {
		t := t
		e.RegisterVirtualTable(t.name, catCols(t.cols), func(ctx context.Context) ([][]types.Datum, error) {
			if t.rows == nil {
				return nil, nil
			}
			s, err := e.snapshotFor(ctx)
			if err != nil {
				return nil, err
			}
			return t.rows(ctx, s)
		})
		if !catalogOnly[t.name] {
			continue
		}
		e.mu.Lock()
		vt := e.virtual[t.name]
		vt.catalogRows = func(ctx context.Context) (*catalogRows, error) {
			s, err := e.snapshotFor(ctx)
			if err != nil {
				return nil, err
			}
			return s.cachedRows(ctx, vt, &t)
		}
		e.mu.Unlock()
	}
}

var catalogTables = []catTable{
	{name: "pg_catalog.pg_namespace", cols: "oid int, nspname text, nspowner int, nspacl text[]",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			return [][]types.Datum{
				{int64(oidPgCatalog), "pg_catalog", int64(oidRoot), nil},
				{int64(oidPublic), "public", int64(oidRoot), nil},
				{int64(oidInfoSchema), "information_schema", int64(oidRoot), nil},
				{int64(oidCrdbInternal), "crdb_internal", int64(oidRoot), nil},
				{int64(oidSystem), "system", int64(oidRoot), nil},
			}, nil
		}},
	{name: "pg_catalog.pg_class", cols: "oid int, relname text, relnamespace int, reltype int, reloftype int, relowner int, " +
		"relam int, relfilenode int, reltablespace int, relpages int, reltuples float, relallvisible int, reltoastrelid int, " +
		"relhasindex bool, relisshared bool, relpersistence text, relkind text, relnatts int, relchecks int, relhasrules bool, " +
		"relhastriggers bool, relhassubclass bool, relrowsecurity bool, relforcerowsecurity bool, relispopulated bool, " +
		"relreplident text, relispartition bool, relrewrite int, relfrozenxid int, relminmxid int, relacl text[], " +
		"reloptions text[], relpartbound text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			row := func(oid int64, name string, ns, reltype, am int64, hasIndex bool, kind string, natts int64) []types.Datum {
				return []types.Datum{oid, name, ns, reltype, int64(0), int64(oidRoot), am, oid, int64(0), int64(0), float64(-1),
					int64(0), int64(0), hasIndex, false, "p", kind, natts, int64(0), false, false, false, false, false, true,
					"d", false, int64(0), int64(0), int64(0), nil, nil, nil}
			}
			for _, ti := range s.tables {
				r := row(tableOID(ti.desc), ti.desc.Name, oidPublic, rowTypeOID(ti.desc), oidHeapAM, true, "r", int64(len(ti.visible)))
				r[18] = int64(min(len(ti.desc.Checks), maxCheckOIDs)) // relchecks
				// relhastriggers: PostgreSQL enforces a foreign key with
				// triggers on both tables, and psql shows a table's foreign
				// keys, and those referencing it, only when it is set.
				r[20] = len(ti.desc.ForeignKeys) > 0 || s.referenced[int64(ti.desc.ID)]
				out = append(out, r)
				for _, ci := range indexesOf(ti) {
					out = append(out, row(ci.oid, ci.name, oidPublic, 0, oidBtreeAM, false, "i", int64(len(ci.cols))))
				}
			}
			for _, name := range s.e.virtualNames() {
				vt, _ := s.e.virtualTable(name)
				out = append(out, row(virtualOID(name), name[strings.IndexByte(name, '.')+1:], s.e.virtualSchemaOID(name), 0, oidHeapAM,
					false, "v", int64(len(vt.cols))))
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_attribute", cols: "attrelid int, attname text, atttypid int, attstattarget int, attlen int, attnum int, " +
		"attndims int, attcacheoff int, atttypmod int, attbyval bool, attstorage text, attalign text, attnotnull bool, " +
		"atthasdef bool, atthasmissing bool, attidentity text, attgenerated text, attisdropped bool, attislocal bool, " +
		"attinhcount int, attcollation int, attacl text[], attoptions text[], attfdwoptions text[], attmissingval text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			row := func(rel int64, name string, t types.T, mod types.Mod, num int64, notNull, hasDef bool) []types.Datum {
				oid := int64(types.ColumnOID(t, mod))
				typ, _ := builtinTypeByOID(oid)
				coll := int64(0)
				if t == types.String {
					coll = oidDefaultColl
				}
				storage := typ.storage()
				return []types.Datum{rel, name, oid, int64(-1), typ.len, num, int64(0), int64(-1), int64(types.TypeMod(t, mod)),
					typ.len > 0, storage, "i", notNull, hasDef, false, "", "", false, true, int64(0), coll, nil, nil, nil, nil}
			}
			for _, ti := range s.tables {
				for i, pos := range ti.visible {
					c := ti.cols[pos]
					out = append(out, row(tableOID(ti.desc), c.Name, c.Type, c.Mod, int64(i+1), !c.Nullable, c.DefaultExpr != ""))
				}
				for _, ci := range indexesOf(ti) {
					for i, pos := range ci.cols {
						c := ti.cols[pos]
						out = append(out, row(ci.oid, c.Name, c.Type, c.Mod, int64(i+1), false, false))
					}
				}
			}
			for _, name := range s.e.virtualNames() {
				vt, _ := s.e.virtualTable(name)
				for i, c := range vt.cols {
					out = append(out, row(virtualOID(name), c.Name, c.Type, types.Mod{}, int64(i+1), false, false))
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_type", cols: "oid int, typname text, typnamespace int, typowner int, typlen int, typbyval bool, " +
		"typtype text, typcategory text, typispreferred bool, typisdefined bool, typdelim text, typrelid int, typelem int, " +
		"typarray int, typinput text, typoutput text, typreceive text, typsend text, typmodin text, typmodout text, " +
		"typanalyze text, typalign text, typstorage text, typnotnull bool, typbasetype int, typtypmod int, typndims int, " +
		"typcollation int, typdefaultbin text, typdefault text, typacl text[]",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, t := range builtinTypes {
				coll := int64(0)
				if t.category == "S" && t.name != "char" && t.name != "name" {
					coll = oidDefaultColl
				}
				typtype := "b"
				if t.name == "unknown" {
					typtype = "p"
				}
				io := t.name
				out = append(out, []types.Datum{t.oid, t.name, int64(oidPgCatalog), int64(oidRoot), t.len, t.len > 0 && t.len <= 8,
					typtype, t.category, false, true, ",", int64(0), t.elem, t.array, io + "in", io + "out", io + "recv", io + "send",
					"-", "-", "-", "i", t.storage(), false, int64(0), int64(-1), int64(0), coll, nil, nil, nil})
			}
			for _, ti := range s.tables {
				out = append(out, []types.Datum{rowTypeOID(ti.desc), ti.desc.Name, int64(oidPublic), int64(oidRoot), int64(-1), false,
					"c", "C", false, true, ",", tableOID(ti.desc), int64(0), int64(0), "record_in", "record_out", "record_recv",
					"record_send", "-", "-", "-", "d", "x", false, int64(0), int64(-1), int64(0), int64(0), nil, nil, nil})
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_index", cols: "indexrelid int, indrelid int, indnatts int, indnkeyatts int, indisunique bool, " +
		"indisprimary bool, indisexclusion bool, indimmediate bool, indisclustered bool, indisvalid bool, indcheckxmin bool, " +
		"indisready bool, indislive bool, indisreplident bool, indkey int[], indcollation int[], indclass int[], " +
		"indoption int[], indexprs text, indpred text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, ti := range s.tables {
				for _, ci := range indexesOf(ti) {
					n := int64(len(ci.cols))
					zeros := make(types.Array, n)
					for i := range zeros {
						zeros[i] = int64(0)
					}
					out = append(out, []types.Datum{ci.oid, tableOID(ti.desc), n, n, ci.unique, ci.primary, false, true, false,
						true, false, true, true, false, ci.attnums(), zeros, zeros, zeros, nil, nil})
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_constraint", cols: "oid int, conname text, connamespace int, contype text, condeferrable bool, " +
		"condeferred bool, convalidated bool, conrelid int, contypid int, conindid int, conparentid int, confrelid int, " +
		"confupdtype text, confdeltype text, confmatchtype text, conislocal bool, coninhcount int, connoinherit bool, " +
		"conkey int[], confkey int[], conpfeqop int[], conppeqop int[], conffeqop int[], conexclop int[], conbin text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, ti := range s.tables {
				if !hasVisiblePK(ti) {
					continue
				}
				out = append(out, []types.Datum{pkeyConstraintOID(ti.desc), pkeyName(ti), int64(oidPublic), "p", false, false, true,
					tableOID(ti.desc), int64(0), pkeyIndexOID(ti.desc), int64(0), int64(0), " ", " ", " ", true, int64(0), true,
					pkAttnums(ti), nil, nil, nil, nil, nil, nil})
			}
			for _, ti := range s.tables {
				for i := range ti.desc.ForeignKeys {
					if i >= maxFKOIDs {
						break
					}
					fk := &ti.desc.ForeignKeys[i]
					parent, ok := s.e.tableByID(fk.RefTable)
					if !ok {
						continue
					}
					conkey, confkey := types.Array{}, types.Array{}
					for _, id := range fk.Columns {
						conkey = append(conkey, attnum(ti, ti.desc.ColumnIndexByID(id)))
					}
					pti, err := s.e.tables.infoFor(parent)
					if err != nil {
						return nil, err
					}
					for _, id := range fk.RefColumns {
						confkey = append(confkey, attnum(pti, parent.ColumnIndexByID(id)))
					}
					del := map[string]string{"": "a", "RESTRICT": "r", "CASCADE": "c", "SET NULL": "n"}[fk.OnDelete]
					out = append(out, []types.Datum{foreignKeyOID(ti.desc, i), fk.Name, int64(oidPublic), "f", false, false, true,
						tableOID(ti.desc), int64(0), referencedIndexOID(pti, fk.RefColumns), int64(0), tableOID(parent), "a", del, "s", true, int64(0), true,
						conkey, confkey, nil, nil, nil, nil, nil})
				}
				for i, ck := range ti.desc.Checks {
					if i >= maxCheckOIDs {
						break
					}
					out = append(out, []types.Datum{checkConstraintOID(ti.desc, i), ck.Name, int64(oidPublic), "c", false, false, true,
						tableOID(ti.desc), int64(0), int64(0), int64(0), int64(0), " ", " ", " ", true, int64(0), false,
						nil, nil, nil, nil, nil, nil, ck.Expr})
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_attrdef", cols: "oid int, adrelid int, adnum int, adbin text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, ti := range s.tables {
				for i, pos := range ti.visible {
					c := ti.cols[pos]
					if c.DefaultExpr != "" {
						out = append(out, []types.Datum{attrdefOID(ti.desc, c.ID), tableOID(ti.desc), int64(i + 1), c.DefaultExpr})
					}
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_database", cols: "oid int, datname text, datdba int, encoding int, datcollate text, datctype text, " +
		"datistemplate bool, datallowconn bool, datconnlimit int, datlastsysoid int, datfrozenxid int, datminmxid int, " +
		"dattablespace int, datacl text[]",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			row := func(oid int64, name string) []types.Datum {
				return []types.Datum{oid, name, int64(oidRoot), int64(6), "C.UTF-8", "C.UTF-8", false, true, int64(-1),
					int64(0), int64(0), int64(0), int64(1663), nil}
			}
			out := [][]types.Datum{row(oidDBDefaultdb, "defaultdb"), row(oidDBPostgres, "postgres")}
			for _, d := range s.e.catalog.Databases() {
				// Databases take their IDs from the tables' counter, so
				// tableOID is unique across both.
				out = append(out, row(tableOID(d), d.Name))
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_roles", cols: "oid int, rolname text, rolsuper bool, rolinherit bool, rolcreaterole bool, " +
		"rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolconnlimit int, rolpassword text, rolvaliduntil text, " +
		"rolbypassrls bool, rolconfig text[]",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			rs, err := s.e.roleRows(ctx)
			var out [][]types.Datum
			for _, r := range rs {
				out = append(out, []types.Datum{r.oid, r.name, r.admin, true, r.admin, r.admin || r.rec.CreateDB, r.rec.Login, r.admin, int64(-1), "********", nil, r.admin, nil})
			}
			return out, err
		}},
	{name: "pg_catalog.pg_authid", cols: "oid int, rolname text, rolsuper bool, rolinherit bool, rolcreaterole bool, " +
		"rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolbypassrls bool, rolconnlimit int, rolpassword text, rolvaliduntil text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			rs, err := s.e.roleRows(ctx)
			var out [][]types.Datum
			for _, r := range rs {
				// rolpassword is never shown, even to admins.
				out = append(out, []types.Datum{r.oid, r.name, r.admin, true, r.admin, r.admin || r.rec.CreateDB, r.rec.Login, r.admin, r.admin, int64(-1), nil, nil})
			}
			return out, err
		}},
	{name: "pg_catalog.pg_auth_members", cols: "roleid int, member int, grantor int, admin_option bool",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			if !s.e.usersActive() {
				return nil, nil
			}
			snap, err := s.e.usersSnapshot(ctx)
			if err != nil {
				return nil, err
			}
			var out [][]types.Datum
			for m, roles := range snap.MemberOf {
				for _, r := range roles {
					out = append(out, []types.Datum{roleOID(r), roleOID(m), int64(oidRoot), false})
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_user", cols: "usename text, usesysid int, usecreatedb bool, usesuper bool, userepl bool, " +
		"usebypassrls bool, passwd text, valuntil text, useconfig text[]",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			rs, err := s.e.roleRows(ctx)
			var out [][]types.Datum
			for _, r := range rs {
				if r.rec.Login {
					out = append(out, []types.Datum{r.name, r.oid, r.admin || r.rec.CreateDB, r.admin, r.admin, r.admin, "********", nil, nil})
				}
			}
			return out, err
		}},
	{name: "pg_catalog.pg_prepared_statements", cols: "name text, statement text, prepare_time timestamptz, parameter_types text[], from_sql bool",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			if sess, ok := ctx.Value(sessionKey{}).(*session); ok {
				return sess.preparedStatementRows(s), nil
			}
			return nil, nil
		}},
	{name: "pg_catalog.pg_settings", cols: "name text, setting text, unit text, category text, short_desc text, " +
		"extra_desc text, context text, vartype text, source text, min_val text, max_val text, enumvals text[], " +
		"boot_val text, reset_val text, sourcefile text, sourceline int, pending_restart bool",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			sess, _ := ctx.Value(sessionKey{}).(*session)
			var out [][]types.Datum
			for _, v := range sessionVars {
				val := ""
				def := ""
				if sess != nil {
					val = sess.getVar(v)
					def = v.def(sess)
				}
				ctxName := "user"
				if v.set == nil {
					ctxName = "internal"
				}
				out = append(out, []types.Datum{v.name, val, nil, "Client Connection Defaults", "", nil, ctxName, "string",
					"default", nil, nil, nil, def, def, nil, nil, false})
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_proc", cols: "oid int, proname text, pronamespace int, proowner int, prolang int, procost float, " +
		"prorows float, provariadic int, prosupport text, prokind text, prosecdef bool, proleakproof bool, proisstrict bool, " +
		"proretset bool, provolatile text, proparallel text, pronargs int, pronargdefaults int, prorettype int, " +
		"proargtypes text, proallargtypes int[], proargmodes text[], proargnames text[], proargdefaults text, " +
		"protrftypes int[], prosrc text, probin text, proconfig text[], proacl text[]",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var names []string
			for n := range builtins {
				names = append(names, n)
			}
			for _, n := range []string{"count", "sum", "min", "max", "avg", "string_agg", "array_agg", "bool_and", "bool_or"} {
				if _, ok := builtins[n]; !ok {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			var out [][]types.Datum
			for _, n := range names {
				kind := "f"
				var overloads []overload
				if b, ok := builtins[n]; ok {
					overloads = b.overloads
				} else {
					kind = "a"
					overloads = []overload{{}}
				}
				ns := int64(oidPgCatalog)
				name := n
				if i := strings.IndexByte(n, '.'); i >= 0 {
					ns, name = oidCrdbInternal, n[i+1:]
				}
				for i, ov := range overloads {
					var argTypes []string
					for _, a := range ov.args {
						argTypes = append(argTypes, itoa64(colTypeOID(a)))
					}
					vol := "i"
					if b, ok := builtins[n]; ok && b.volatile {
						vol = "v"
					}
					out = append(out, []types.Datum{virtualOID("proc:"+n) + int64(i), name, ns, int64(oidRoot), int64(12),
						float64(1), float64(0), int64(0), "-", kind, false, false, true, false, vol, "s", int64(len(ov.args)),
						int64(0), colTypeOID(ov.ret), strings.Join(argTypes, " "), nil, nil, nil, nil, nil, name, nil, nil, nil})
				}
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_description", cols: "objoid int, classoid int, objsubid int, description text"},
	{name: "pg_catalog.pg_shdescription", cols: "objoid int, classoid int, description text"},
	{name: "pg_catalog.pg_am", cols: "oid int, amname text, amhandler text, amtype text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			return [][]types.Datum{{int64(oidHeapAM), "heap", "heap_tableam_handler", "t"}, {int64(oidBtreeAM), "btree", "bthandler", "i"}}, nil
		}},
	{name: "pg_catalog.pg_collation", cols: "oid int, collname text, collnamespace int, collowner int, collprovider text, " +
		"collisdeterministic bool, collencoding int, collcollate text, collctype text, collversion text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			return [][]types.Datum{
				{int64(oidDefaultColl), "default", int64(oidPgCatalog), int64(oidRoot), "d", true, int64(-1), "", "", nil},
				{int64(950), "C", int64(oidPgCatalog), int64(oidRoot), "c", true, int64(-1), "C", "C", nil},
				{int64(951), "POSIX", int64(oidPgCatalog), int64(oidRoot), "c", true, int64(-1), "POSIX", "POSIX", nil},
			}, nil
		}},
	{name: "pg_catalog.pg_extension", cols: "oid int, extname text, extowner int, extnamespace int, extrelocatable bool, " +
		"extversion text, extconfig int[], extcondition text[]"},
	{name: "pg_catalog.pg_inherits", cols: "inhrelid int, inhparent int, inhseqno int, inhdetachpending bool"},
	{name: "pg_catalog.pg_enum", cols: "oid int, enumtypid int, enumsortorder float, enumlabel text"},
	// pg_range: kvnode has no range types (pgx's LoadTypes joins it).
	{name: "pg_catalog.pg_range", cols: "rngtypid int, rngsubtype int, rngmultitypid int, rngcollation int, rngsubopc int, " +
		"rngcanonical text, rngsubdiff text"},
	{name: "pg_catalog.pg_policy", cols: "oid int, polname text, polrelid int, polcmd text, polpermissive bool, " +
		"polroles int[], polqual text, polwithcheck text"},
	{name: "pg_catalog.pg_statistic_ext", cols: "oid int, stxrelid int, stxname text, stxnamespace int, stxowner int, " +
		"stxstattarget int, stxkeys int[], stxkind text[], stxexprs text"},
	{name: "pg_catalog.pg_publication", cols: "oid int, pubname text, pubowner int, puballtables bool, pubinsert bool, " +
		"pubupdate bool, pubdelete bool, pubtruncate bool, pubviaroot bool"},
	{name: "pg_catalog.pg_publication_rel", cols: "oid int, prpubid int, prrelid int"},
	// pg_depend: what depends on what, as PostgreSQL records it for the
	// objects kvnode has. The class columns hold the OIDs of kvnode's own
	// catalog tables ('pg_catalog.pg_class'::regclass here), so that joins
	// written against regclass casts work.
	{name: "pg_catalog.pg_depend", cols: "classid int, objid int, objsubid int, refclassid int, refobjid int, " +
		"refobjsubid int, deptype text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			return s.dependRows()
		}},
	{name: "pg_catalog.pg_trigger", cols: "oid int, tgrelid int, tgparentid int, tgname text, tgfoid int, tgtype int, " +
		"tgenabled text, tgisinternal bool, tgconstrrelid int, tgconstrindid int, tgconstraint int, tgdeferrable bool, " +
		"tginitdeferred bool, tgnargs int, tgattr int[], tgargs text, tgqual text, tgoldtable text, tgnewtable text"},
	{name: "pg_catalog.pg_rewrite", cols: "oid int, rulename text, ev_class int, ev_type text, ev_enabled text, " +
		"is_instead bool, ev_qual text, ev_action text"},
	{name: "pg_catalog.pg_tablespace", cols: "oid int, spcname text, spcowner int, spcacl text[], spcoptions text[]",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			return [][]types.Datum{{int64(1663), "pg_default", int64(oidRoot), nil, nil}}, nil
		}},
	{name: "pg_catalog.pg_views", cols: "schemaname text, viewname text, viewowner text, definition text"},
	{name: "pg_catalog.pg_sequence", cols: "seqrelid int, seqtypid int, seqstart int, seqincrement int, seqmax int, " +
		"seqmin int, seqcache int, seqcycle bool"},
	{name: "pg_catalog.pg_foreign_table", cols: "ftrelid int, ftserver int, ftoptions text[]"},
	{name: "pg_catalog.pg_partitioned_table", cols: "partrelid int, partstrat text, partnatts int, partdefid int"},
	{name: "pg_catalog.pg_tables", cols: "schemaname text, tablename text, tableowner text, tablespace text, " +
		"hasindexes bool, hasrules bool, hastriggers bool, rowsecurity bool",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, ti := range s.tables {
				out = append(out, []types.Datum{"public", ti.desc.Name, "root", nil, true, false, false, false})
			}
			return out, nil
		}},
	{name: "pg_catalog.pg_indexes", cols: "schemaname text, tablename text, indexname text, tablespace text, indexdef text",
		rows: func(_ context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			var out [][]types.Datum
			for _, ti := range s.tables {
				for _, ci := range indexesOf(ti) {
					out = append(out, []types.Datum{"public", ti.desc.Name, ci.name, nil, indexDef(&ci, true)})
				}
			}
			return out, nil
		}},
	// information_schema.
	{name: "information_schema.schemata", cols: "catalog_name text, schema_name text, schema_owner text, " +
		"default_character_set_catalog text, default_character_set_schema text, default_character_set_name text, sql_path text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, n := range []string{"crdb_internal", "information_schema", "pg_catalog", "public", "system"} {
				out = append(out, []types.Datum{db, n, "root", nil, nil, nil, nil})
			}
			return out, nil
		}},
	{name: "information_schema.tables", cols: "table_catalog text, table_schema text, table_name text, table_type text, " +
		"self_referencing_column_name text, reference_generation text, user_defined_type_catalog text, " +
		"user_defined_type_schema text, user_defined_type_name text, is_insertable_into text, is_typed text, commit_action text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, ti := range s.tables {
				out = append(out, []types.Datum{db, "public", ti.desc.Name, "BASE TABLE", nil, nil, nil, nil, nil, "YES", "NO", nil})
			}
			for _, name := range s.e.virtualNames() {
				i := strings.IndexByte(name, '.')
				out = append(out, []types.Datum{db, name[:i], name[i+1:], "SYSTEM VIEW", nil, nil, nil, nil, nil, "NO", "NO", nil})
			}
			return out, nil
		}},
	{name: "information_schema.columns", cols: "table_catalog text, table_schema text, table_name text, column_name text, " +
		"ordinal_position int, column_default text, is_nullable text, data_type text, character_maximum_length int, " +
		"character_octet_length int, numeric_precision int, numeric_precision_radix int, numeric_scale int, " +
		"datetime_precision int, udt_catalog text, udt_schema text, udt_name text, is_identity text, is_generated text, " +
		"generation_expression text, is_updatable text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, ti := range s.tables {
				for i, pos := range ti.visible {
					c := ti.cols[pos]
					typ, _ := builtinTypeByOID(int64(types.ColumnOID(c.Type, c.Mod)))
					nullable := "YES"
					if !c.Nullable {
						nullable = "NO"
					}
					var def, prec, radix, scale, maxLen, octetLen, dtPrec types.Datum
					if c.DefaultExpr != "" {
						def = c.DefaultExpr
					}
					switch c.Type {
					case types.Int:
						bits := int64(64)
						if c.Mod.Width != 0 {
							bits = int64(c.Mod.Width)
						}
						prec, radix, scale = bits, int64(2), int64(0)
					case types.Float:
						prec, radix = int64(53), int64(2)
						if c.Mod.Width == 32 {
							prec = int64(24)
						}
					case types.Decimal:
						radix = int64(10)
						if c.Mod.Precision > 0 {
							prec, scale = int64(c.Mod.Precision), int64(c.Mod.Scale)
						}
					case types.String:
						if c.Mod.Width > 0 {
							maxLen, octetLen = int64(c.Mod.Width), int64(4*c.Mod.Width)
						} else {
							octetLen = int64(1073741824)
						}
					case types.Date:
						dtPrec = int64(0)
					case types.Timestamp, types.TimestampTZ, types.Interval:
						dtPrec = int64(6)
					}
					dataType := typ.sqlName
					if typ.elem != 0 {
						dataType = "ARRAY" // as PostgreSQL names every array type here; udt_name says which
					}
					out = append(out, []types.Datum{db, "public", ti.desc.Name, c.Name, int64(i + 1), def, nullable, dataType,
						maxLen, octetLen, prec, radix, scale, dtPrec, db, "pg_catalog", typ.name, "NO", "NEVER", nil, "YES"})
				}
			}
			return out, nil
		}},
	{name: "information_schema.table_constraints", cols: "constraint_catalog text, constraint_schema text, " +
		"constraint_name text, table_catalog text, table_schema text, table_name text, constraint_type text, " +
		"is_deferrable text, initially_deferred text, enforced text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, ti := range s.tables {
				for _, k := range s.keyConstraints(ti) {
					out = append(out, []types.Datum{db, "public", k.name, db, "public", ti.desc.Name, k.kind, "NO", "NO", "YES"})
				}
			}
			return out, nil
		}},
	{name: "information_schema.key_column_usage", cols: "constraint_catalog text, constraint_schema text, " +
		"constraint_name text, table_catalog text, table_schema text, table_name text, column_name text, " +
		"ordinal_position int, position_in_unique_constraint int",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, ti := range s.tables {
				for _, k := range s.keyConstraints(ti) {
					for i, pos := range k.cols {
						var inUnique types.Datum
						if k.kind == "FOREIGN KEY" {
							inUnique = int64(i + 1)
						}
						out = append(out, []types.Datum{db, "public", k.name, db, "public", ti.desc.Name, ti.cols[pos].Name, int64(i + 1), inUnique})
					}
				}
			}
			return out, nil
		}},
	{name: "information_schema.referential_constraints", cols: "constraint_catalog text, constraint_schema text, " +
		"constraint_name text, unique_constraint_catalog text, unique_constraint_schema text, unique_constraint_name text, " +
		"match_option text, update_rule text, delete_rule text",
		rows: func(ctx context.Context, s *catalogSnapshot) ([][]types.Datum, error) {
			db := currentDB(ctx)
			var out [][]types.Datum
			for _, ti := range s.tables {
				for _, k := range s.keyConstraints(ti) {
					if k.kind != "FOREIGN KEY" {
						continue
					}
					rule := map[string]string{"": "NO ACTION", "RESTRICT": "RESTRICT", "CASCADE": "CASCADE", "SET NULL": "SET NULL"}[k.fk.OnDelete]
					out = append(out, []types.Datum{db, "public", k.name, db, "public", k.refName, "NONE", "NO ACTION", rule})
				}
			}
			return out, nil
		}},
}

// keyConstraint is a PRIMARY KEY, UNIQUE or FOREIGN KEY constraint as
// information_schema shows it.
type keyConstraint struct {
	name, kind string
	cols       []int // positions in the row
	fk         *catalog.ForeignKey
	refName    string // FOREIGN KEY: the referenced key's constraint name
}

// keyConstraints lists ti's key constraints: its primary key, its unique
// indexes, its foreign keys.
func (s *catalogSnapshot) keyConstraints(ti *tableInfo) []keyConstraint {
	var out []keyConstraint
	for _, ci := range indexesOf(ti) {
		if !ci.unique {
			continue
		}
		kind := "UNIQUE"
		if ci.primary {
			kind = "PRIMARY KEY"
		}
		out = append(out, keyConstraint{name: ci.name, kind: kind, cols: ci.cols})
	}
	for i := range ti.desc.ForeignKeys {
		fk := &ti.desc.ForeignKeys[i]
		k := keyConstraint{name: fk.Name, kind: "FOREIGN KEY", fk: fk}
		for _, id := range fk.Columns {
			k.cols = append(k.cols, ti.desc.ColumnIndexByID(id))
		}
		if parent, ok := s.e.tableByID(fk.RefTable); ok {
			k.refName = parent.PrimaryKeyName()
			for _, ix := range parent.Indexes {
				if ix.Unique && !slices.Equal(parent.PrimaryKey, fk.RefColumns) && slices.Equal(ix.Columns, fk.RefColumns) {
					k.refName = ix.Name
				}
			}
		}
		out = append(out, k)
	}
	return out
}

func currentDB(ctx context.Context) string {
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		return s.database()
	}
	return "defaultdb"
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// indexDef is pg_get_indexdef's answer for a table's primary key.
func indexDef(ci *catIndex, qualified bool) string {
	var cols []string
	for _, p := range ci.cols {
		cols = append(cols, parser.QuotedIdent(ci.ti.cols[p].Name))
	}
	name := parser.QuotedIdent(ci.ti.desc.Name)
	if qualified {
		name = "public." + name
	}
	kind := "INDEX "
	if ci.unique {
		kind = "UNIQUE INDEX "
	}
	return "CREATE " + kind + parser.QuotedIdent(ci.name) + " ON " + name + " USING btree (" + strings.Join(cols, ", ") + ")"
}

// ---- lookups by OID and by name, for the functions and reg* casts ----

func (s *catalogSnapshot) tableByOID(oid int64) *tableInfo {
	if ti := s.byOID[oid]; ti != nil && tableOID(ti.desc) == oid {
		return ti
	}
	return nil
}

// indexByOID returns the index with OID oid, primary or secondary.
func (s *catalogSnapshot) indexByOID(oid int64) *catIndex {
	ti := s.byOID[oid]
	if ti == nil || !isIndexOID(ti, oid) {
		return nil
	}
	for _, ci := range indexesOf(ti) {
		if ci.oid == oid {
			return &ci
		}
	}
	return nil
}

// isIndexOID reports whether oid is one of the indexes of ti the catalogs
// show (what indexesOf lists), without listing them: pg_table_is_visible
// asks it of every row of pg_class.
func isIndexOID(ti *tableInfo, oid int64) bool {
	if oid == pkeyIndexOID(ti.desc) {
		return hasVisiblePK(ti)
	}
	for i := range ti.indexes {
		d := ti.indexes[i].desc
		if !d.WriteOnly && d.ID < maxIndexOIDs && secondaryIndexOID(ti.desc, d.ID) == oid {
			return true
		}
	}
	return false
}

// checkByOID returns the CHECK constraint with OID oid, if any.
func (s *catalogSnapshot) checkByOID(oid int64) (catalog.CheckConstraint, bool) {
	ti := s.byOID[oid]
	if ti == nil {
		return catalog.CheckConstraint{}, false
	}
	i := int(oid - checkConstraintOID(ti.desc, 0))
	if i < 0 || i >= len(ti.desc.Checks) || i >= maxCheckOIDs {
		return catalog.CheckConstraint{}, false
	}
	return ti.desc.Checks[i], true
}

func (s *catalogSnapshot) tableByConstraintOID(oid int64) *tableInfo {
	if ti := s.byOID[oid]; ti != nil && pkeyConstraintOID(ti.desc) == oid && hasVisiblePK(ti) {
		return ti
	}
	return nil
}

// relationName is the name of a relation OID as regclass prints it.
func (s *catalogSnapshot) relationName(oid int64) (string, bool) {
	if ti := s.tableByOID(oid); ti != nil {
		return parser.QuotedIdent(ti.desc.Name), true
	}
	if ci := s.indexByOID(oid); ci != nil {
		return parser.QuotedIdent(ci.name), true
	}
	if name, ok := s.virtByOID[oid]; ok {
		return name, true
	}
	return "", false
}

// relationOID resolves a relation name ('kv', 'public.kv',
// 'pg_catalog.pg_class') as regclass does.
func (s *catalogSnapshot) relationOID(name string) (int64, error) {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		if strings.HasPrefix(p, `"`) && strings.HasSuffix(p, `"`) && len(p) >= 2 {
			parts[i] = strings.ReplaceAll(p[1:len(p)-1], `""`, `"`)
		} else {
			parts[i] = strings.ToLower(p)
		}
	}
	rel := parts[len(parts)-1]
	schema := ""
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	if schema == "" || schema == "pg_catalog" {
		if _, ok := s.e.virtualTable("pg_catalog." + rel); ok {
			return virtualOID("pg_catalog." + rel), nil
		}
	}
	if schema == "" || schema == "public" {
		if ti := s.byName[rel]; ti != nil {
			return tableOID(ti.desc), nil
		}
		for _, ti := range s.tables {
			for _, ci := range indexesOf(ti) {
				if ci.name == rel {
					return ci.oid, nil
				}
			}
		}
	}
	if schema != "" {
		if _, ok := s.e.virtualTable(schema + "." + rel); ok {
			return virtualOID(schema + "." + rel), nil
		}
	}
	return 0, pgerror.Newf(pgerror.CodeUndefinedTable, "relation %q does not exist", name)
}

func namespaceName(oid int64) (string, bool) {
	switch oid {
	case oidPgCatalog:
		return "pg_catalog", true
	case oidPublic:
		return "public", true
	case oidInfoSchema:
		return "information_schema", true
	case oidCrdbInternal:
		return "crdb_internal", true
	case oidSystem:
		return "system", true
	}
	return "", false
}

// typeNameByOID is format_type's answer (without a modifier).
func (s *catalogSnapshot) typeNameByOID(oid int64) (string, bool) {
	if t, ok := builtinTypeByOID(oid); ok {
		return t.sqlName, true
	}
	if ti := s.byOID[oid-3]; ti != nil && rowTypeOID(ti.desc) == oid {
		return parser.QuotedIdent(ti.desc.Name), true
	}
	return "", false
}

// regCast evaluates a cast to an OID alias type.
func (ec *evalCtx) regCast(v *regCastExpr, x types.Datum) (types.Datum, error) {
	s, err := ec.catalog()
	if err != nil {
		return nil, err
	}
	if v.toName {
		oid := x.(int64)
		var name string
		var ok bool
		switch v.kind {
		case "regclass":
			name, ok = s.relationName(oid)
		case "regtype":
			name, ok = s.typeNameByOID(oid)
		case "regnamespace":
			name, ok = namespaceName(oid)
		case "regrole":
			name, ok = ec.exec.roleByOID(ec.ctx, oid)
		case "regproc", "regprocedure":
			name, ok = procName(oid)
		}
		if !ok {
			if oid == 0 {
				return "-", nil
			}
			return itoa64(oid), nil
		}
		return name, nil
	}
	str := strings.TrimSpace(x.(string))
	if n, ok := parseOIDText(str); ok {
		return n, nil
	}
	switch v.kind {
	case "regclass":
		return s.relationOID(str)
	case "regtype":
		name := strings.TrimPrefix(strings.ToLower(str), "pg_catalog.")
		for _, t := range builtinTypes {
			if t.name == name || t.sqlName == name {
				return t.oid, nil
			}
		}
		if elem, ok := strings.CutSuffix(name, "[]"); ok {
			// int4[] is _int4 (1007), not kvnode's INT8 array.
			for _, t := range builtinTypes {
				if (t.name == elem || t.sqlName == elem) && t.array != 0 {
					return t.array, nil
				}
			}
		}
		if t, ok := types.FromName(name); ok {
			return colTypeOID(t), nil
		}
		if elem, ok := strings.CutSuffix(name, "[]"); ok {
			if t, ok := types.FromName(elem); ok {
				return colTypeOID(types.ArrayOf(t)), nil
			}
		}
		if name == "trigger" {
			return int64(2279), nil
		}
		// A table's row type has the table's name, as in PostgreSQL (pgx's
		// LoadType of a table name reads it as a composite type).
		if ti := s.byName[strings.TrimPrefix(str, "public.")]; ti != nil {
			return rowTypeOID(ti.desc), nil
		}
		return nil, pgerror.Newf(pgerror.CodeUndefinedObject, "type %q does not exist", str)
	case "regnamespace":
		for _, oid := range []int64{oidPgCatalog, oidPublic, oidInfoSchema, oidCrdbInternal, oidSystem} {
			if n, _ := namespaceName(oid); n == strings.ToLower(str) {
				return oid, nil
			}
		}
		return nil, pgerror.Newf(pgerror.CodeUndefinedObject, "schema %q does not exist", str)
	case "regrole":
		if rs, err := ec.exec.roleRows(ec.ctx); err == nil {
			for _, r := range rs {
				if r.name == str || r.name == strings.ToLower(str) {
					return r.oid, nil
				}
			}
		}
		return nil, pgerror.Newf(pgerror.CodeUndefinedObject, "role %q does not exist", str)
	case "regproc", "regprocedure":
		name := strings.TrimPrefix(strings.ToLower(str), "pg_catalog.")
		if i := strings.IndexByte(name, '('); i >= 0 {
			name = name[:i]
		}
		if _, ok := builtins[name]; ok || isAggregateName(name) {
			return virtualOID("proc:" + name), nil
		}
		return nil, pgerror.Newf(pgerror.CodeUndefinedFunction, "function %q does not exist", str)
	}
	return nil, unsupported("casts to %s are not supported", v.kind)
}

func procName(oid int64) (string, bool) {
	for n := range builtins {
		if virtualOID("proc:"+n) == oid {
			return n, true
		}
	}
	return "", false
}

func parseOIDText(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > 1<<32 {
			return 0, false
		}
	}
	return n, true
}

// undefinedVirtual is the error for a missing virtual table: it lists the
// tables of the schema named, since those are what the user was after.
func (e *Executor) undefinedVirtual(name string) error {
	schema := name
	if i := strings.IndexByte(name, '.'); i >= 0 {
		schema = name[:i]
	}
	var same []string
	for _, n := range e.virtualNames() {
		if strings.HasPrefix(n, schema+".") {
			same = append(same, n)
		}
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeUndefinedTable, "relation %q does not exist", name),
		"the virtual tables of this node in %s are: %v", schema, same)
}

// dependRows are pg_depend's rows: a table on its schema; an index on the
// columns it covers, or a primary key's index on its constraint; a
// constraint on its table's columns (a CHECK on its whole table), a
// foreign key also on the referenced table's columns and unique index; a
// DEFAULT on its column.
func (s *catalogSnapshot) dependRows() ([][]types.Datum, error) {
	class, constraint, attrdef, namespace := virtualOID("pg_catalog.pg_class"), virtualOID("pg_catalog.pg_constraint"),
		virtualOID("pg_catalog.pg_attrdef"), virtualOID("pg_catalog.pg_namespace")
	var out [][]types.Datum
	dep := func(classID, obj, refClass, ref, refSub int64, kind string) {
		out = append(out, []types.Datum{classID, obj, int64(0), refClass, ref, refSub, kind})
	}
	for _, ti := range s.tables {
		tbl := tableOID(ti.desc)
		dep(class, tbl, namespace, oidPublic, 0, "n")
		for _, ci := range indexesOf(ti) {
			if ci.primary {
				dep(class, ci.oid, constraint, pkeyConstraintOID(ti.desc), 0, "i")
				for _, n := range ci.attnums() {
					dep(constraint, pkeyConstraintOID(ti.desc), class, tbl, n.(int64), "a")
				}
				continue
			}
			for _, n := range ci.attnums() {
				dep(class, ci.oid, class, tbl, n.(int64), "a")
			}
		}
		for i := range ti.desc.ForeignKeys {
			if i >= maxFKOIDs {
				break
			}
			fk := &ti.desc.ForeignKeys[i]
			parent, ok := s.e.tableByID(fk.RefTable)
			if !ok {
				continue
			}
			pti, err := s.e.tables.infoFor(parent)
			if err != nil {
				return nil, err
			}
			con := foreignKeyOID(ti.desc, i)
			for _, id := range fk.Columns {
				dep(constraint, con, class, tbl, attnum(ti, ti.desc.ColumnIndexByID(id)), "a")
			}
			if idx := referencedIndexOID(pti, fk.RefColumns); idx != 0 {
				dep(constraint, con, class, idx, 0, "n")
			}
			for _, id := range fk.RefColumns {
				dep(constraint, con, class, tableOID(parent), attnum(pti, parent.ColumnIndexByID(id)), "n")
			}
		}
		for i := range ti.desc.Checks {
			if i < maxCheckOIDs {
				dep(constraint, checkConstraintOID(ti.desc, i), class, tbl, 0, "a")
			}
		}
		for i, pos := range ti.visible {
			if c := ti.cols[pos]; c.DefaultExpr != "" {
				dep(attrdef, attrdefOID(ti.desc, c.ID), class, tbl, int64(i+1), "a")
			}
		}
	}
	return out, nil
}
