package sql

// DDL inside a transaction, txn/DESIGN.md "DDL in a transaction" (release
// 2.1): CREATE TABLE, and CREATE INDEX on the tables the transaction
// created; ALTER TABLE's descriptor-only actions, DROP INDEX and DROP
// TABLE on any table (ddltxn_existing.go); with reads and writes anywhere.
//
// Inside the transaction the descriptors live in the session's overlay
// and nowhere else; every lookup of the session consults it first
// (lookupTable). COMMIT takes three steps: the intent (the tables as
// pending records in group 0), the decision (the transaction's decision
// key, committed in the one data-group command with its rows), the
// publish (the pending records become tables). Whoever meets a pending
// record decides it by the decision key (decide), and the resolver
// (ResolvePending) finishes what a gateway that stopped left.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/users"
	"github.com/kvnode/kvnode/txn"
)

// Decision key values.
const (
	decisionCommitted = "committed"
	decisionAborted   = "aborted"
)

// pendingTTL is how long a gateway promises to decide its pending records
// after the intent; after it, any node may abort them.
const pendingTTL = 30 * time.Second

// DDLTxnStep names a step of a transaction's commit, for TestingDDLTxnStep.
type DDLTxnStep string

const (
	// StepIntent: the pending records are committed in group 0.
	StepIntent DDLTxnStep = "intent"
	// StepDecision: the rows and the decision key are committed.
	StepDecision DDLTxnStep = "decision"
	// StepPublish: the pending records are published.
	StepPublish DDLTxnStep = "publish"
)

// txnOverlay is the descriptors a session's transaction built: an
// append-only log whose last entry per key is the current version (a
// tombstone for a table dropped or renamed away), so that ROLLBACK TO
// SAVEPOINT truncates it.
type txnOverlay struct {
	mu  sync.Mutex
	log []overlayEntry
	// done: the transaction ended; a plan built on one of its tables is
	// stale (the table is now the catalog's, or nothing).
	done bool
}

// overlayEntry is one version of a table in the overlay.
type overlayEntry struct {
	d *catalog.TableDescriptor
	// base is the public record at d's key when the transaction first
	// touched the key (nil: the key was free): the intent checks that it
	// is still there, unchanged, and writes d as its pending Next.
	base *catalog.TableDescriptor
	// orig is the public descriptor of d's table (by ID) before the
	// transaction changed it; nil for a table the transaction created.
	orig *catalog.TableDescriptor
}

// get returns the current version at key, a tombstone included.
func (o *txnOverlay) get(key string) *catalog.TableDescriptor {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return nil
	}
	for i := len(o.log) - 1; i >= 0; i-- {
		if o.log[i].d.Key() == key {
			return o.log[i].d
		}
	}
	return nil
}

// byID returns the current live version of table id (nil: none, or
// dropped in the transaction).
func (o *txnOverlay) byID(id int64) *catalog.TableDescriptor {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return nil
	}
	for i := len(o.log) - 1; i >= 0; i-- {
		if d := o.log[i].d; d.ID == id {
			if d.Dropped {
				// A tombstone under the old name of a renamed table: the
				// live version may be under another key.
				continue
			}
			return d
		}
	}
	return nil
}

// touched reports whether the transaction changed table id (a table of
// the catalog it shadows, live or not).
func (o *txnOverlay) touched(id int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, en := range o.log {
		if en.d.ID == id {
			return true
		}
	}
	return false
}

// baseAt returns the base of key (see overlayEntry) and whether the
// transaction touched the key.
func (o *txnOverlay) baseAt(key string) (*catalog.TableDescriptor, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, en := range o.log {
		if en.d.Key() == key {
			return en.base, true
		}
	}
	return nil, false
}

// origOf returns the orig of table id (see overlayEntry) and whether the
// overlay holds the table.
func (o *txnOverlay) origOf(id int64) (*catalog.TableDescriptor, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, en := range o.log {
		if en.d.ID == id {
			return en.orig, true
		}
	}
	return nil, false
}

// entries returns the current entry of every key, in first-touch order.
func (o *txnOverlay) entries() []overlayEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []overlayEntry
	seen := map[string]int{}
	for _, en := range o.log {
		if i, ok := seen[en.d.Key()]; ok {
			out[i].d = en.d
			continue
		}
		seen[en.d.Key()] = len(out)
		out = append(out, en)
	}
	return out
}

// tables returns the current live version of every table, in first-touch
// order.
func (o *txnOverlay) tables() []*catalog.TableDescriptor {
	var out []*catalog.TableDescriptor
	for _, en := range o.entries() {
		if !en.d.Dropped {
			out = append(out, en.d)
		}
	}
	return out
}

func (o *txnOverlay) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.log)
}

// overlayOf returns the session's overlay, creating it.
func (s *session) overlayOf() *txnOverlay {
	if s.txn.overlay == nil {
		s.txn.overlay = &txnOverlay{}
	}
	return s.txn.overlay
}

// putOverlay adds a version of a table the transaction created to the
// session's overlay.
func (e *Executor) putOverlay(s *session, d *catalog.TableDescriptor) {
	o := s.overlayOf()
	base, _ := o.baseAt(d.Key())
	o.mu.Lock()
	o.log = append(o.log, overlayEntry{d: d, base: base})
	o.mu.Unlock()
	e.overlays.Store(d.ID, o)
}

// truncateOverlay undoes the overlay's entries from n on (ROLLBACK TO
// SAVEPOINT).
func (e *Executor) truncateOverlay(o *txnOverlay, n int) {
	if o == nil {
		return
	}
	o.mu.Lock()
	gone := o.log[n:]
	o.log = o.log[:n]
	o.mu.Unlock()
	for _, en := range gone {
		if en.orig == nil && o.byID(en.d.ID) == nil {
			e.overlays.Delete(en.d.ID)
		}
	}
}

// endOverlay ends the overlay with its transaction.
func (e *Executor) endOverlay(o *txnOverlay) {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.done = true
	log := o.log
	o.mu.Unlock()
	for _, en := range log {
		if en.orig == nil {
			e.overlays.Delete(en.d.ID)
		}
	}
}

// overlayByID is a table some session's transaction created, by ID (the
// tables it changed are not registered: other sessions see them as the
// catalog has them). Table IDs are never shared, and only the session that
// created such a table holds a descriptor naming its ID (a foreign key from
// an overlay table to an existing one is refused), so the lookup cannot
// leak the table to another session.
func (e *Executor) overlayByID(id int64) (*catalog.TableDescriptor, *txnOverlay) {
	v, ok := e.overlays.Load(id)
	if !ok {
		return nil, nil
	}
	o := v.(*txnOverlay)
	return o.byID(id), o
}

func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// lookupTable finds table name of database db for session s (nil: none):
// the session's overlay first (a table it dropped or renamed away is
// none), then the catalog, deciding a pending record by its decision key:
// a table a transaction created is a table once committed; an existing
// table a transaction changed is its pending version once committed (a
// tombstone: none). ov is the overlay it came from.
func (e *Executor) lookupTable(s *session, db, name string) (d *catalog.TableDescriptor, ov *txnOverlay, err error) {
	key := catalog.TableKey(db, name)
	if s != nil && s.txn.overlay != nil {
		if d := s.txn.overlay.get(key); d != nil {
			if d.Dropped {
				return nil, nil, nil
			}
			return d, s.txn.overlay, nil
		}
	}
	p, ok := e.catalog.GetAny(key)
	if !ok {
		return nil, nil, nil
	}
	pt := p.PendingOf()
	if pt == nil {
		return p, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dec, err := e.decide(ctx, s, pt)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case p.Next != nil && dec == catalog.Committed && p.Next.Dropped:
		return nil, nil, nil
	case p.Next != nil && dec == catalog.Committed:
		return p.Next, nil, nil
	case p.Next != nil:
		return p, nil, nil
	case dec == catalog.Committed:
		return p, nil, nil
	}
	return nil, nil, nil
}

// decisionKey is the decision key of a pending record's transaction.
func decisionKey(p *catalog.PendingTxn) ([]byte, error) {
	id, err := hex.DecodeString(p.Txn)
	if err != nil || len(id) == 0 {
		return nil, errors.AssertionFailedf("pending record with a bad transaction ID %q", p.Txn)
	}
	return keys.DDLDecisionKey(id), nil
}

// decide reads the decision key of a pending record's transaction: through
// the session's transaction if it is in one (the key joins its read set,
// so that it cannot commit on a snapshot from before the decision if it
// relied on its absence), else from the data group. A final decision is
// remembered.
func (e *Executor) decide(ctx context.Context, s *session, p *catalog.PendingTxn) (catalog.Decision, error) {
	var t *txn.Txn
	if s != nil {
		t = s.txn.t
	}
	if t == nil {
		if v, ok := e.decided.Load(p.Txn); ok {
			return v.(catalog.Decision), nil
		}
	}
	key, err := decisionKey(p)
	if err != nil {
		return catalog.Undecided, err
	}
	var db kvpb.DB = e.cfg.DB
	if t != nil {
		db = t
	}
	v, ok, err := db.Get(ctx, key)
	if err != nil {
		return catalog.Undecided, kvError(err)
	}
	dec := catalog.Undecided
	if ok {
		switch string(v) {
		case decisionCommitted:
			dec = catalog.Committed
		case decisionAborted:
			dec = catalog.Aborted
		default:
			return catalog.Undecided, errors.AssertionFailedf("decision key of transaction %s holds %q", p.Txn, v)
		}
		e.decided.Store(p.Txn, dec)
	}
	return dec, nil
}

// committedPending returns the pending records this node knows to be
// committed (from remembered decisions only: it is called where a
// statement follows a foreign key, after a lookup resolved the table).
func (e *Executor) committedPending() []*catalog.TableDescriptor {
	var out []*catalog.TableDescriptor
	for _, d := range e.catalog.Pending() {
		if d.Pending == nil {
			continue // an existing table: Tables has it
		}
		if v, ok := e.decided.Load(d.Pending.Txn); ok && v.(catalog.Decision) == catalog.Committed {
			out = append(out, d)
		}
	}
	return out
}

// nameTaken reports whether a table named name exists in db for session s,
// deciding a pending record of that name: committed, it exists; aborted,
// it does not; undecided, the statement waits (bounded) for the decision,
// resolves the record once its owner's promise ran out, and otherwise
// fails with 40001.
func (e *Executor) nameTaken(ctx context.Context, s *session, db, name string) (bool, error) {
	key := catalog.TableKey(db, name)
	if s != nil && s.txn.overlay != nil {
		if d := s.txn.overlay.get(key); d != nil {
			// The transaction created, dropped or renamed it: its
			// intent checks the catalog's record at commit.
			return !d.Dropped, nil
		}
	}
	if _, ok := e.catalog.Get(key); ok {
		return true, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, ok := e.catalog.GetAny(key)
		if !ok || p.Pending == nil {
			// Free, or an existing table (perhaps changed by a
			// transaction: its name is taken until that commits).
			_, live := e.catalog.Get(key)
			return live, nil
		}
		dec, err := e.decide(ctx, nil, p.Pending)
		if err != nil {
			return false, err
		}
		switch catalog.Resolve(p.Pending, dec, time.Now().UnixNano()) {
		case catalog.Publish:
			return true, nil
		case catalog.Drop:
			return false, nil
		case catalog.Abort:
			// Only the abort: the caller may hold ddlMu (it runs inside
			// a DDL statement), so the drop is left to the resolver, or
			// to the statement's own descriptor replacing the record.
			if _, err := e.abortOrRead(ctx, p.Pending); err != nil {
				return false, err
			}
			continue
		}
		if time.Now().After(deadline) {
			return false, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: a transaction is creating %q", name),
				"retry once that transaction has committed or rolled back")
		}
		select {
		case <-ctx.Done():
			return false, pgerror.WithCode(errors.Wrapf(ctx.Err(), "waiting for the transaction creating %q", name), pgerror.CodeQueryCanceled)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ddlInTxnAllowed reports whether a DDL statement may run inside a
// transaction (the slice); the statement itself refuses what it cannot do
// (execInTxn) before anything changes.
func ddlInTxnAllowed(stmt parser.Stmt) bool {
	switch stmt.(type) {
	case *parser.CreateTable, *parser.CreateIndex, *parser.AlterTableAddColumn, *parser.DropIndex,
		*parser.AlterTable, *parser.DropTable:
		return true
	}
	return false
}

// ddlInTxnHint is the hint of a DDL statement refused inside a transaction.
const ddlInTxnHint = "inside a transaction, kvnode runs CREATE TABLE, CREATE INDEX, DROP TABLE, DROP INDEX, and ALTER TABLE's " +
	"ADD COLUMN, DROP COLUMN, RENAME, SET|DROP DEFAULT, DROP NOT NULL and DROP CONSTRAINT; run this statement on its own, " +
	"outside BEGIN ... COMMIT " +
	"(a driver that opens transactions by itself needs autocommit for it: psycopg2: conn.autocommit = True; " +
	"SQLAlchemy: engine.execution_options(isolation_level=\"AUTOCOMMIT\"))"

func ddlInTxnRefused(tag, why string) error {
	return pgerror.WithHintf(unsupported("%s cannot run inside a transaction%s", tag, why), "%s", ddlInTxnHint)
}

// checkDDLInTxnPossible refuses DDL in a transaction on a node without
// group 0: the transaction's pending records are made there.
func (e *Executor) checkDDLInTxnPossible(tag string) error {
	if e.currentSchemaLog() == nil {
		return ddlInTxnRefused(tag, ": this node has no Raft group 0 to hold the transaction's schema changes")
	}
	return nil
}

// execInTxn runs a DDL statement inside the session's transaction: it
// builds the descriptors as the statement alone would, and keeps them in
// the session's overlay.
func (p *ddlPlan) execInTxn(ctx context.Context, s *session) (pgwire.Result, error) {
	e := p.e
	tag := p.stmt.StatementTag()
	if err := e.checkDDLInTxnPossible(tag); err != nil {
		return pgwire.Result{}, err
	}
	if s.txn.readOnly {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeReadOnlySQLTransaction, "cannot execute %s in a read-only transaction", tag)
	}
	if !e.fencesActive() {
		return pgwire.Result{}, e.txnsRefused()
	}
	switch st := p.stmt.(type) {
	case *parser.CreateTable:
		d, err := e.createTable(ctx, st)
		if err != nil || d == nil {
			return pgwire.Result{Tag: "CREATE TABLE"}, err
		}
		for _, fk := range d.ForeignKeys {
			if fk.RefTable != d.ID && s.txn.overlay.byID(fk.RefTable) == nil {
				return pgwire.Result{}, ddlInTxnRefused("CREATE TABLE",
					": its foreign key references a table created outside the transaction")
			}
		}
		e.putOverlay(s, d)
		if err := s.grantCreatorInTxn(ctx, d); err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: "CREATE TABLE"}, nil
	case *parser.AlterTableAddColumn:
		_, cur, err := e.tableInTxn(ctx, s, st.Name, "alter")
		if err != nil {
			return pgwire.Result{}, err
		}
		if cur == nil {
			if st.IfExists {
				return pgwire.Result{Tag: "ALTER TABLE"}, nil
			}
			return pgwire.Result{}, undefinedTable(st.Name.Parts[len(st.Name.Parts)-1])
		}
		d, err := e.addColumn(ctx, st)
		if err != nil || d == nil {
			return pgwire.Result{Tag: "ALTER TABLE"}, err
		}
		if d.ID != cur.ID || d.Version != cur.Version+1 {
			return pgwire.Result{}, changingElsewhere(cur.Name)
		}
		if err := e.putChange(ctx, s, cur, d); err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: "ALTER TABLE"}, nil
	case *parser.AlterTable:
		return e.alterInTxn(ctx, s, st)
	case *parser.DropTable:
		return e.dropTablesInTxn(ctx, s, st)
	case *parser.CreateIndex:
		return e.createIndexInTxn(ctx, s, st)
	case *parser.DropIndex:
		return e.dropIndexInTxn(ctx, s, st)
	}
	return pgwire.Result{}, ddlInTxnRefused(tag, "")
}

// createIndexInTxn adds an index to a table inside the transaction, and
// fills it from the table's rows as the transaction sees them.
func (e *Executor) createIndexInTxn(ctx context.Context, s *session, st *parser.CreateIndex) (pgwire.Result, error) {
	res := pgwire.Result{Tag: "CREATE INDEX"}
	db, cur, err := e.tableInTxn(ctx, s, st.Table, "create an index on")
	if err != nil {
		return pgwire.Result{}, err
	}
	name := st.Table.Parts[len(st.Table.Parts)-1]
	if cur == nil {
		return pgwire.Result{}, undefinedTable(name)
	}
	idxName := st.Name
	if idxName == "" {
		idxName = defaultIndexName(name, st.Columns, st.Unique)
	}
	if t, _ := e.findIndexFor(s, db, idxName); t != nil {
		if st.IfNotExists {
			res.Notices = append(res.Notices, noticef("relation %q already exists, skipping", idxName))
			return res, nil
		}
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", idxName)
	}
	taken, err := e.nameTaken(ctx, s, db, idxName)
	if err != nil {
		return pgwire.Result{}, err
	}
	if taken {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeDuplicateTable, "relation %q already exists", idxName)
	}
	ix, err := e.newIndex(db, cur, idxName, st.Unique, st.Columns, st.Storing)
	if err != nil {
		return pgwire.Result{}, err
	}
	d := cur.Clone()
	d.Indexes = append(d.Indexes, ix)
	d.NextIndexID = ix.ID + 1
	d.Version++
	d.ModTime = e.catalog.Clock().Now()
	ti, err := buildTableInfo(d)
	if err != nil {
		return pgwire.Result{}, err
	}
	var ii *indexInfo
	for i := range ti.indexes {
		if ti.indexes[i].desc.ID == ix.ID {
			ii = &ti.indexes[i]
		}
	}
	if ii == nil {
		return pgwire.Result{}, errors.AssertionFailedf("index %q missing from its table's info", ix.Name)
	}
	// Fill the entries from the table's rows, through the transaction:
	// its own rows, and an existing table's as of its snapshot (the span
	// joins the read set, so a write to the table by another session
	// after the snapshot fails the COMMIT). The transaction's limits bound
	// it.
	start, end := rowenc.TableSpan(d.ID)
	rows, err := s.txn.t.Scan(ctx, start, end, 0, false)
	if err != nil {
		return pgwire.Result{}, indexInTxnTooLarge(kvError(err))
	}
	var ops []kvpb.Op
	for _, kv := range rows {
		row, _, err := ti.layout.Decode(kv.Key, kv.Value)
		if err != nil {
			return pgwire.Result{}, err
		}
		k, unique, err := ii.entry(d.ID, kv.Key, row)
		if err != nil {
			return pgwire.Result{}, err
		}
		if unique {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: k, Value: kv.Key, ExpectAbsent: true})
		} else {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: k, Value: kv.Key})
		}
	}
	if len(ops) > 0 {
		if err := s.txn.t.Write(ctx, ops); err != nil {
			var cf *kvpb.ConditionFailedError
			if errors.As(err, &cf) {
				if verr, ok := indexViolation(ti, cf.Key); ok {
					return pgwire.Result{}, verr
				}
			}
			return pgwire.Result{}, indexInTxnTooLarge(kvError(err))
		}
	}
	if err := e.putChange(ctx, s, cur, d); err != nil {
		return pgwire.Result{}, err
	}
	return res, nil
}

// indexInTxnTooLarge adds to a CREATE INDEX's 54000 (the backfill
// exceeded the transaction's limits) the hint of where it has no bound.
func indexInTxnTooLarge(err error) error {
	if pgerror.GetCode(err) != pgerror.CodeProgramLimitExceeded {
		return err
	}
	return pgerror.WithHintf(err, "inside a transaction, CREATE INDEX fills the index within the transaction's limits; "+
		"run CREATE INDEX on its own, outside BEGIN ... COMMIT, where its build is resumable and has no bound")
}

// findIndexFor finds an index by name among the tables session s sees.
func (e *Executor) findIndexFor(s *session, db, name string) (*catalog.TableDescriptor, int) {
	if s == nil || s.txn.overlay == nil {
		return e.findIndex(db, name)
	}
	for _, t := range e.sessionTables(s, db) {
		for i := range t.Indexes {
			if t.Indexes[i].Name == name {
				return t, i
			}
		}
	}
	return nil, -1
}

// dropIndexInTxn drops indexes inside the transaction, their entries
// deleted through it.
func (e *Executor) dropIndexInTxn(ctx context.Context, s *session, st *parser.DropIndex) (pgwire.Result, error) {
	res := pgwire.Result{Tag: "DROP INDEX"}
	db := currentDB(ctx)
	type target struct {
		table string
		id    int32
	}
	var targets []target
	for _, n := range st.Names {
		t, i := e.findIndexFor(s, db, n.Name)
		if t == nil {
			if st.IfExists {
				res.Notices = append(res.Notices, noticef("index %q does not exist, skipping", n.Name))
				continue
			}
			return pgwire.Result{}, pgerror.Newf(pgerror.CodeUndefinedObject, "index %q does not exist", n.Name)
		}
		if err := e.checkIndexUnreferencedInTxn(s, t, &t.Indexes[i]); err != nil {
			return pgwire.Result{}, err
		}
		targets = append(targets, target{t.Name, t.Indexes[i].ID})
	}
	for _, tg := range targets {
		cur, err := e.sessionTable(s, db, tg.table)
		if err != nil {
			return pgwire.Result{}, err
		}
		if cur == nil {
			return pgwire.Result{}, undefinedTable(tg.table)
		}
		d := cur.Clone()
		d.Indexes = slices.DeleteFunc(d.Indexes, func(ix catalog.IndexDescriptor) bool { return ix.ID == tg.id })
		d.Version++
		d.ModTime = e.catalog.Clock().Now()
		lo := keys.IndexPrefix(d.ID, tg.id)
		if err := s.txn.t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: keys.PrefixEnd(lo)}}); err != nil {
			return pgwire.Result{}, kvError(err)
		}
		if err := e.putChange(ctx, s, cur, d); err != nil {
			return pgwire.Result{}, err
		}
	}
	return res, nil
}

// grantCreatorInTxn buffers in the transaction the creator's grant on a
// table it creates, as afterDDL writes it for a statement alone.
func (s *session) grantCreatorInTxn(ctx context.Context, d *catalog.TableDescriptor) error {
	if !s.e.usersActive() || s.args.User == users.Root {
		return nil
	}
	if snap, err := s.e.usersSnapshot(ctx); err != nil || snap.IsAdmin(s.args.User) {
		return nil
	}
	return kvError(s.txn.t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: keys.GrantKey(users.TableObject(d.ID), s.args.User),
		Value: users.EncodeGrant(users.Grant{Privileges: privNames(users.TablePrivileges)})}}))
}

// ---- COMMIT ----

// commitWithDDL commits a transaction whose overlay holds tables: intent,
// decision, publish (txn/DESIGN.md). It returns nil once the transaction
// committed, whether or not the publish could be made.
func (e *Executor) commitWithDDL(ctx context.Context, t *txn.Txn, o *txnOverlay) error {
	defer e.endOverlay(o)
	entries := o.entries()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return errors.Wrap(err, "drawing a transaction ID")
	}
	pend := &catalog.PendingTxn{Txn: hex.EncodeToString(id), Node: e.cfg.NodeID(), Until: time.Now().Add(e.pendingTTL()).UnixNano()}
	log := e.currentSchemaLog()
	if log == nil {
		t.Rollback()
		return ddlInTxnRefused("CREATE TABLE", ": this node has no Raft group 0 to hold the transaction's schema changes")
	}
	// 1. Intent: per key the transaction touched, a pending new table
	// (the key was free) or the public record with its pending Next.
	intent := &ddlPlan{e: e, pendingOK: true, what: "intent of a transaction's schema changes", builder: func(ctx context.Context) ([]catalog.TableDescriptor, error) {
		out := make([]catalog.TableDescriptor, 0, len(entries))
		for _, en := range entries {
			d := en.d
			now := e.catalog.Clock().Now()
			if en.base != nil {
				cur, ok := e.catalog.Get(d.Key())
				if !ok || cur.ID != en.base.ID || cur.Version != en.base.Version || cur.ModTime != en.base.ModTime || cur.Next != nil {
					return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
						"restart transaction: table %q was changed by another session while this transaction ran", en.base.Name),
						"run the transaction again (it will see the table's new schema)")
				}
				c := cur.Clone()
				c.Next = d.Clone()
				c.Next.Pending = pend
				c.ModTime = now
				out = append(out, *c)
				continue
			}
			if d.Dropped {
				continue // created (or renamed here) and dropped again: nothing
			}
			if d.Database != "" && !e.catalog.HasDatabase(d.Database) {
				return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
					"restart transaction: database %q was dropped while this transaction ran", d.Database),
					"run the transaction again in an existing database")
			}
			taken, err := e.nameTaken(ctx, nil, d.Database, d.Name)
			if err != nil {
				return nil, err
			}
			if taken {
				return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
					"restart transaction: %q was created by another session while this transaction ran", d.Name),
					"run the transaction again (it will see the table)")
			}
			c := d.Clone()
			c.Pending = pend
			c.ModTime = now
			out = append(out, *c)
		}
		return out, nil
	}}
	if _, err := e.commitIntent(ctx, intent, log); err != nil {
		t.Rollback()
		return err
	}
	if err := e.testingStep(StepIntent); err != nil {
		t.Rollback()
		return err
	}
	// 2. Decision.
	key := keys.DDLDecisionKey(id)
	derr := func() error {
		if v, found, err := t.Get(ctx, key); err != nil {
			return err
		} else if found {
			// The resolver aborted the transaction before it took its
			// snapshot (its gateway was slower than its promise).
			t.Rollback()
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: the transaction's schema changes were %s by another node: it took longer than %s to commit",
				v, e.pendingTTL()), "run the transaction again")
		}
		if err := t.Write(ctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: key, Value: []byte(decisionCommitted)}}); err != nil {
			return err
		}
		return t.Commit(ctx)
	}()
	if derr != nil && errors.Is(derr, kvpb.ErrAmbiguous) {
		// Either the commit applied or it did not: the abort settles it.
		dec, err := e.abortOrRead(ctx, pend)
		if err != nil {
			return commitError(derr)
		}
		if dec == catalog.Committed {
			derr = nil
		}
	}
	if derr != nil {
		// The commit did not apply (and, ambiguous, cannot any more): the
		// pending records are nothing; drop them.
		if err := e.testingStep(StepDecision); err != nil {
			return commitError(derr)
		}
		_ = e.dropPending(ctx, pend)
		return commitError(derr)
	}
	e.decided.Store(pend.Txn, catalog.Committed)
	// The rows of the existing tables it dropped: unreachable from here on
	// (their fence is fenceDropped, readers see the tombstones).
	e.deleteDroppedRows(ctx, o.droppedExisting())
	if err := e.testingStep(StepDecision); err != nil {
		return nil
	}
	// 3. Publish. Failing, it is left to the resolver: the transaction is
	// committed, and readers already see its tables.
	_ = e.publishPending(ctx, pend)
	_ = e.testingStep(StepPublish)
	return nil
}

func (e *Executor) pendingTTL() time.Duration {
	if e.cfg.TestingPendingTTL > 0 {
		return e.cfg.TestingPendingTTL
	}
	return pendingTTL
}

func (e *Executor) testingStep(step DDLTxnStep) error {
	if h := e.cfg.TestingDDLTxnStep; h != nil {
		return h(step)
	}
	return nil
}

// commitIntent commits the intent through group 0, refusing the pre-Raft
// procedure (nothing there could hold a pending record).
func (e *Executor) commitIntent(ctx context.Context, p *ddlPlan, log SchemaLog) ([]catalog.TableDescriptor, error) {
	stx, release, err := log.BeginDDL(ctx)
	if err != nil {
		return nil, err
	}
	release()
	if stx == nil {
		return nil, ddlInTxnRefused("CREATE TABLE", ": schema changes still use the pre-Raft procedure on this node")
	}
	e.ddlMu.Lock()
	defer e.ddlMu.Unlock()
	return p.commitThroughLog(ctx, log)
}

// abortOrRead proposes the abort of a pending transaction (a CPut of its
// decision key expecting it absent), and returns the decision that holds
// after it.
func (e *Executor) abortOrRead(ctx context.Context, p *catalog.PendingTxn) (catalog.Decision, error) {
	key, err := decisionKey(p)
	if err != nil {
		return catalog.Undecided, err
	}
	err = e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: key, Value: []byte(decisionAborted), ExpectAbsent: true}})
	var cf *kvpb.ConditionFailedError
	if err != nil && !errors.As(err, &cf) {
		return catalog.Undecided, kvError(err)
	}
	e.decided.Delete(p.Txn)
	dec, err := e.decide(ctx, nil, p)
	if err == nil && dec == catalog.Undecided {
		return dec, errors.AssertionFailedf("decision key of transaction %s absent after the abort", p.Txn)
	}
	return dec, err
}

// changePending commits, through group 0, what f makes of each pending
// record of transaction p that is still there.
func (e *Executor) changePending(ctx context.Context, p *catalog.PendingTxn, what string,
	f func(d *catalog.TableDescriptor, ts catalog.Timestamp) catalog.TableDescriptor) error {
	log := e.currentSchemaLog()
	if log == nil {
		return errors.New("no schema log")
	}
	pl := &ddlPlan{e: e, pendingOK: true, what: what + " of transaction " + p.Txn, builder: func(ctx context.Context) ([]catalog.TableDescriptor, error) {
		var out []catalog.TableDescriptor
		for _, d := range e.catalog.Pending() {
			if d.PendingOf().Txn == p.Txn {
				out = append(out, f(d, e.catalog.Clock().Now()))
			}
		}
		return out, nil
	}}
	e.ddlMu.Lock()
	defer e.ddlMu.Unlock()
	_, err := pl.commitThroughLog(ctx, log)
	return err
}

func (e *Executor) publishPending(ctx context.Context, p *catalog.PendingTxn) error {
	return e.changePending(ctx, p, "publish", (*catalog.TableDescriptor).Published)
}

func (e *Executor) dropPending(ctx context.Context, p *catalog.PendingTxn) error {
	return e.changePending(ctx, p, "drop", (*catalog.TableDescriptor).DroppedPending)
}

// resolveTxn finishes transaction p's pending records: aborts it if it is
// undecided, then publishes or drops.
func (e *Executor) resolveTxn(ctx context.Context, p *catalog.PendingTxn) error {
	dec, err := e.decide(ctx, nil, p)
	if err != nil {
		return err
	}
	if dec == catalog.Undecided {
		if dec, err = e.abortOrRead(ctx, p); err != nil {
			return err
		}
	}
	if dec == catalog.Committed {
		return e.publishPending(ctx, p)
	}
	return e.dropPending(ctx, p)
}

// ResolvePending is the resolver: for every transaction with pending
// records, it publishes the committed ones, drops the aborted ones, and
// aborts then drops the undecided ones whose owner's promise ran out. All
// of it is conditional and idempotent, so nodes resolving the same
// transaction agree. It returns how many records are still pending.
func (e *Executor) ResolvePending(ctx context.Context) (int, error) {
	seen := map[string]bool{}
	var firstErr error
	for _, d := range e.catalog.Pending() {
		p := d.PendingOf()
		if seen[p.Txn] {
			continue
		}
		seen[p.Txn] = true
		dec, err := e.decide(ctx, nil, p)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if catalog.Resolve(p, dec, time.Now().UnixNano()) == catalog.Wait {
			continue
		}
		if err := e.resolveTxn(ctx, p); err != nil {
			firstErr = cmpErr(firstErr, err)
		}
	}
	return len(e.catalog.Pending()), firstErr
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// RunResolver resolves pending records on every change of the catalog and
// every interval while some exist, until ctx ends.
func (e *Executor) RunResolver(ctx context.Context, interval time.Duration) {
	kick := make(chan struct{}, 1)
	e.catalog.OnChange(func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-tick.C:
		}
		if len(e.catalog.Pending()) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _ = e.ResolvePending(rctx)
		cancel()
	}
}

// PendingTables returns the keys of the catalog's pending records.
func (e *Executor) PendingTables() []string {
	var out []string
	for _, d := range e.catalog.Pending() {
		out = append(out, d.Key())
	}
	return out
}
