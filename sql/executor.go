package sql

import (
	"context"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/sql/rowenc"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// Config is what the executor needs from the node that runs it.
type Config struct {
	// DB is the replicated, linearizable key-value store holding table data
	// and the ID counters (package kv implements it).
	DB kvpb.DB
	// Txns runs transactions on the same data (the kv replica); nil means
	// this executor refuses BEGIN.
	Txns kvpb.TxnDB
	// Local is this node's own unreplicated store, holding the schema under
	// the pre-Raft procedure.
	Local LocalStore
	// Peers pushes schema changes to the other nodes.
	Peers SchemaPeers
	// NodeID returns this node's ID (0 until it has one).
	NodeID func() nodeid.ID
	// BinaryVersion is the answer of crdb_internal.node_executable_version().
	BinaryVersion string
	// Versions tells which cluster version gates are active (the row
	// encoding writers use); nil means none beyond 1.0.
	Versions clusterversion.Handle
	// Clock is the hybrid logical clock for schema changes; nil means a new
	// clock reading time.Now.
	Clock *catalog.Clock
	// PushTimeout bounds the schema push after a DDL statement; 0 means 5s.
	PushTimeout time.Duration
	// Sizes estimates the disk space of key spans for the size functions
	// (pg_total_relation_size and friends, sizes.go); nil: they answer 0.
	Sizes SpanSizer
	// TestingBeforeWrite, if set, runs in every INSERT/UPSERT between
	// encoding its rows and writing them: a pause point for tests of what
	// may happen in between (a cluster version step).
	TestingBeforeWrite func(ctx context.Context)
	// TestingAddPKHeld, if set, runs in ALTER TABLE ADD PRIMARY KEY once
	// the table's writes are held, before its rows are copied.
	TestingAddPKHeld func(ctx context.Context)
	// TestingIndexWriteOnly, if set, runs in CREATE INDEX once the index
	// is write-only, before its backfill.
	TestingIndexWriteOnly func(ctx context.Context)
	// TestingHoldTTL, if set, replaces holdTTL (schemachange.go).
	TestingHoldTTL time.Duration
	// TestingCopyBatchRows, if positive, replaces copyBatchRows (copy.go),
	// so that a test sees a COPY of a few thousand rows span many batches.
	TestingCopyBatchRows int
	// TestingPendingTTL, if set, replaces pendingTTL (ddltxn.go): how long
	// a gateway promises to decide its transaction's pending tables.
	TestingPendingTTL time.Duration
	// TestingDDLTxnStep, if set, runs after each step of the commit of a
	// transaction with DDL (ddltxn.go); an error stops the gateway there,
	// as a crash would, leaving the rest to the readers and the resolver.
	TestingDDLTxnStep func(DDLTxnStep) error
}

// LocalStore is this node's own, unreplicated, durable store.
type LocalStore = catalog.LocalStore

// SchemaPeers is the push half of the pre-Raft schema procedure.
type SchemaPeers interface {
	// PushSchema sends the descriptors to every live peer, best effort,
	// bounded by ctx.
	PushSchema(ctx context.Context, descs []catalog.TableDescriptor)
}

// HookStatement is a statement the executor hands to the StatementHook:
// SET / RESET / SHOW CLUSTER SETTING, SHOW [ALL] CLUSTER SETTINGS, SHOW
// JOBS and SHOW UPGRADE STATUS.
type HookStatement struct {
	// AST is one of *parser.SetClusterSetting, *parser.ResetClusterSetting,
	// *parser.ShowClusterSetting, *parser.ShowClusterSettings,
	// *parser.ShowJobs, *parser.ShowUpgradeStatus, *parser.ShowUpgradePlan.
	AST parser.Stmt
	// Value is the evaluated value of SET CLUSTER SETTING name = expr: a
	// string, int64, float64 or bool (a string literal stays a string, so
	// '2.0' is the string "2.0"). It is nil for = DEFAULT, for the other
	// statements, and when Describe is called.
	Value types.Datum
}

// StatementHook answers the statements that belong to other layers
// (cluster settings, jobs, upgrades). The server installs one.
type StatementHook interface {
	// Describe returns the result columns of stmt (nil for none) without
	// executing it; it is called when the statement is prepared.
	Describe(stmt HookStatement) ([]pgwire.Column, error)
	// Exec executes stmt. The result's rows must match Describe's columns.
	Exec(ctx context.Context, stmt HookStatement) (pgwire.Result, error)
}

// virtualTable is a table computed on each query. It is read-only unless
// its owner installed an update function (SetVirtualTableUpdate).
type virtualTable struct {
	name   string
	cols   []pgwire.Column
	rows   func(ctx context.Context) ([][]types.Datum, error)
	update VirtualUpdateFunc
	// catalogRows, when set, returns the rows as computed once per catalog
	// version (pg_catalog's catalogOnly tables, pgcatalog.go): checked
	// once, shared by every statement, with an index per integer column.
	catalogRows func(ctx context.Context) (*catalogRows, error)
}

// VirtualUpdateFunc applies an UPDATE to a virtual table: one RowUpdate per
// row the WHERE clause matched. It applies all of them or, refusing with an
// error that carries a SQLSTATE, none.
type VirtualUpdateFunc func(ctx context.Context, rows []RowUpdate) error

// RowUpdate is one row of an UPDATE of a virtual table: Old as read,
// Updated with the SET clause applied.
type RowUpdate struct {
	Old, Updated []types.Datum
}

// SchemaLog decides how a DDL statement commits; the server installs one
// (SetSchemaLog). Without one, every DDL uses the pre-Raft procedure.
type SchemaLog interface {
	// BeginDDL runs before a DDL statement reads the catalog. It waits,
	// bounded, until this node may run DDL, and returns either a nil txn:
	// the statement uses the pre-Raft procedure (apply locally, push to
	// peers); or a txn: the catalog has been brought up to date with the
	// latest committed schema (a read barrier) and the statement commits
	// through txn. release is called when the statement ends, in both
	// cases.
	BeginDDL(ctx context.Context) (txn SchemaTxn, release func(), err error)
}

// SchemaGuard may also be implemented by the installed SchemaLog. Before a
// statement writes rows of a user table (INSERT, UPSERT, UPDATE, DELETE),
// CheckWrite says whether this node's catalog can be trusted to be current:
// a node that knows it has fallen out of the group that replicates the
// schema must not write through a catalog that may still hold a table
// dropped elsewhere (the rows would land in a dropped table and be lost).
// An error, carrying a SQLSTATE, refuses the statement before it writes.
type SchemaGuard interface {
	CheckWrite() error
}

func (e *Executor) checkSchemaForWrite(ti *tableInfo) error {
	if g, ok := e.currentSchemaLog().(SchemaGuard); ok {
		if err := g.CheckWrite(); err != nil {
			return err
		}
	}
	return checkWritable(ti)
}

// SchemaTxn commits one DDL statement's descriptors (group 0 in release
// 2.0).
type SchemaTxn interface {
	// Commit commits descs as one schema change, applies it to this
	// node's catalog, and returns. It fails with an error marked
	// ErrSchemaChanged if the schema moved since BeginDDL: the statement
	// is then built again on the new schema.
	Commit(ctx context.Context, descs []catalog.TableDescriptor, description string) error
}

// ErrSchemaChanged marks a SchemaTxn.Commit that lost a race with another
// schema change.
var ErrSchemaChanged = errors.New("the schema changed since the statement read it")

// Executor runs SQL for one node: it owns the node's catalog and executes
// every session's statements against the replicated store. It is safe for
// concurrent use by many sessions.
type Executor struct {
	cfg     Config
	catalog *catalog.Catalog

	// ddlMu serializes DDL on this node, so that a read-modify-write of a
	// descriptor is not interleaved with another local DDL. Conflicts with
	// other nodes are resolved by the catalog's last-writer-wins.
	ddlMu sync.Mutex

	mu        sync.RWMutex
	virtual   map[string]*virtualTable
	hook      StatementHook
	schemaLog SchemaLog

	tables tableCache

	// catCache holds the current catalog snapshot of each database
	// (pgcatalog.go): computed once per catalog version, not per statement.
	catCache struct {
		mu      sync.Mutex
		version uint64
		byDB    map[string]*catalogSnapshot
	}

	// overlays maps the ID of a table some session's transaction created
	// to that session's overlay (ddltxn.go); decided remembers the final
	// decisions of transactions with DDL, by transaction ID.
	overlays sync.Map
	decided  sync.Map

	rowidMu   sync.Mutex
	lastRowID int64

	// v1Writers orders the statements that may encode rows in v1 before
	// the switch to v2 (holdRowEncoding, WaitForV1Writers).
	v1Writers sync.RWMutex

	usersCache usersCache // users_exec.go
	// lowerableEncoding: this binary may see writers go back to v1
	// (mayLowerEncoding).
	lowerableEncoding bool
}

var _ pgwire.SessionFactory = (*Executor)(nil)

// NewExecutor loads the schema from cfg.Local and returns an executor.
func NewExecutor(cfg Config) (*Executor, error) {
	if cfg.DB == nil || cfg.Local == nil {
		return nil, errors.AssertionFailedf("sql.Config needs DB and Local")
	}
	if cfg.NodeID == nil {
		cfg.NodeID = func() nodeid.ID { return 0 }
	}
	if cfg.Clock == nil {
		cfg.Clock = catalog.NewClock(nil, cfg.NodeID)
	}
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = 5 * time.Second
	}
	cat, err := catalog.New(cfg.Local, cfg.Clock)
	if err != nil {
		return nil, err
	}
	e := &Executor{cfg: cfg, catalog: cat, virtual: map[string]*virtualTable{}, lowerableEncoding: mayLowerEncoding(cfg.BinaryVersion)}
	e.registerCatalog()
	return e, nil
}

// Catalog returns the node's schema; the server gossips its digest and
// merges peers' descriptors into it.
func (e *Executor) Catalog() *catalog.Catalog { return e.catalog }

// encodeRow encodes a row value in the encoding the cluster version allows:
// v2 once 1.1-step.2 is active (from the 1.1 fence on every node runs a 1.1
// binary and reads v2), v1 before. Reading accepts both at all times. A
// statement that may encode rows holds holdRowEncoding around encoding and
// writing them.
func (e *Executor) encodeRow(ti *tableInfo, key []byte, row []types.Datum, extra []rowenc.RawColumn) ([]byte, error) {
	enc := rowenc.EncodingV1
	if e.writesV2() {
		enc = rowenc.EncodingV2
	}
	return ti.layout.EncodeValueAs(enc, key, row, extra)
}

// mayLowerEncoding reports whether a binary of release binary can run a
// cluster version below 1.1-step.2 (a 1.1 binary during a downgrade to
// 1.0).
func mayLowerEncoding(binary string) bool {
	bv, err := clusterversion.Parse(binary)
	if err != nil {
		return true
	}
	return !clusterversion.V1_1WriteV2.Version().Less(clusterversion.MinSupported(bv))
}

func (e *Executor) writesV2() bool {
	return e.cfg.Versions != nil && clusterversion.IsActive(e.cfg.Versions, clusterversion.V1_1WriteV2)
}

// holdRowEncoding is held by a statement that writes rows, from before it
// encodes them until its write has returned, while rows may still be
// encoded in v1 (it returns the release). WaitForV1Writers takes it
// exclusively.
//
// A binary that can run 1.1-step.1 (release 1.1) holds it also while it
// writes v2, so that a downgrade lowering 1.1-step.2 can wait for the
// statements that encoded v2 before the rewrite to v1 starts; a newer
// binary never runs below 1.1 and skips it once it writes v2.
func (e *Executor) holdRowEncoding() (release func()) {
	if e.writesV2() && !e.lowerableEncoding {
		return func() {}
	}
	e.v1Writers.RLock()
	return e.v1Writers.RUnlock
}

// WaitForV1Writers returns once every statement that may have encoded rows
// in v1 on this node has finished (and, on a 1.1 binary, every statement
// that may have encoded v2: a downgrade lowering 1.1-step.2 calls it before
// it reports 1.1-step.1 persisted, so no v2 row lands behind the rewrite to
// v1); the server calls it after it persisted
// 1.1-step.2 and before it reports the step persisted. The 1.1 migration
// starts only after every node did, so no v1 row is written behind its
// scan (issue 16, D9): a statement that takes holdRowEncoding after this
// reads the new version and encodes v2.
func (e *Executor) WaitForV1Writers() {
	e.v1Writers.Lock()
	defer e.v1Writers.Unlock()
}

// RegisterVirtualTable adds a read-only table, such as
// "crdb_internal.gossip_nodes" or "system.local", whose rows are computed by
// rows on every query. The name must be qualified by its schema
// (crdb_internal, system, ...); queries may filter, order and limit it like
// a table. Registering a name again replaces the table.
func (e *Executor) RegisterVirtualTable(name string, cols []pgwire.Column, rows func(ctx context.Context) ([][]types.Datum, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name = strings.ToLower(name)
	e.virtual[name] = &virtualTable{name: name, cols: append([]pgwire.Column(nil), cols...), rows: rows}
}

// SetVirtualTableUpdate makes the registered virtual table name accept
// UPDATE, through fn. It must be called after RegisterVirtualTable.
func (e *Executor) SetVirtualTableUpdate(name string, fn VirtualUpdateFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if vt, ok := e.virtual[strings.ToLower(name)]; ok {
		cp := *vt
		cp.update = fn
		e.virtual[vt.name] = &cp
	}
}

// SetSchemaLog installs the SchemaLog that decides how DDL commits.
func (e *Executor) SetSchemaLog(l SchemaLog) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.schemaLog = l
}

func (e *Executor) currentSchemaLog() SchemaLog {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.schemaLog
}

// SetStatementHook installs the hook answering cluster-setting, job and
// upgrade statements. Without a hook they fail with 0A000.
func (e *Executor) SetStatementHook(h StatementHook) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hook = h
}

func (e *Executor) statementHook() StatementHook {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.hook
}

func (e *Executor) virtualTable(name string) (*virtualTable, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	vt, ok := e.virtual[name]
	return vt, ok
}

func (e *Executor) virtualNames() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []string
	for n := range e.virtual {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NewSession opens a session for a client connection (pgwire authenticated
// it in secure mode). The user must exist and may log in: root always, the
// users of CREATE USER from cluster version 2.1 on (users_exec.go); the
// database is defaultdb or postgres (an empty database name means
// defaultdb).
func (e *Executor) NewSession(ctx context.Context, args pgwire.SessionArgs) (pgwire.Session, error) {
	if err := e.checkLogin(ctx, args.User); err != nil {
		return nil, err
	}
	if err := e.checkDatabase(ctx, args.Database); err != nil {
		return nil, err
	}
	s := newSession(e, args)
	for name, val := range args.Params {
		lname := strings.ToLower(name)
		switch lname {
		case "user", "database", "options", "replication":
			continue
		}
		v, ok := lookupVar(lname)
		if !ok || v.set == nil {
			continue // unknown startup parameters are ignored, as by CockroachDB
		}
		if err := s.setVar(v, val); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkDatabase accepts the databases that exist: defaultdb (CockroachDB's)
// and postgres (libpq's and many tools' default) from bootstrap, and those
// of CREATE DATABASE. An empty name means defaultdb. A database this node
// does not know may have been created through another node moments ago
// (a node that was not a member of group 0 yet, or did not confirm in
// time, catches up by itself later): before refusing, the node reads the
// schema from group 0 (BeginDDL's read barrier), so that a client that saw
// CREATE DATABASE return can connect to it through any node.
func (e *Executor) checkDatabase(ctx context.Context, db string) error {
	if db == "" || e.catalog.HasDatabase(db) {
		return nil
	}
	if log := e.currentSchemaLog(); log != nil && e.databasesActive() {
		// Bounded well below the 5 s connect timeouts clients commonly
		// use: the refusal must reach them, not their timeout.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, release, err := log.BeginDDL(ctx); err == nil {
			release()
		}
		cancel()
		if e.catalog.HasDatabase(db) {
			return nil
		}
	}
	return unknownDatabase(db)
}

func unknownDatabase(db string) error {
	return pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeInvalidCatalogName, "database %q does not exist", db),
		"SHOW DATABASES lists the databases (defaultdb and postgres exist from bootstrap); "+
			"connect to one of them, for example postgresql://root@host:port/defaultdb, or CREATE DATABASE %s", parser.QuotedIdent(db))
}

// uniqueRowID returns a cluster-unique INT8, like CockroachDB's
// unique_rowid(): the time in 10µs units shifted left by 15 bits, or'ed with
// the node ID. Values from one node increase strictly.
func (e *Executor) uniqueRowID() int64 {
	node := int64(e.cfg.NodeID()) & 0x7FFF
	id := (e.cfg.Clock.Now().WallTime/10000)<<15 | node
	e.rowidMu.Lock()
	defer e.rowidMu.Unlock()
	if id <= e.lastRowID {
		id = e.lastRowID + 1<<15
	}
	e.lastRowID = id
	return id
}
