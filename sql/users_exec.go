package sql

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/sql/users"
)

// Users, passwords and privileges (release 2.1). The records are package
// users'; this file runs the statements that change them, answers pgwire's
// password authentication, and checks every statement's privileges.
//
// Each node caches one users.Snapshot for usersCacheTTL: a change made on
// this node is seen by its next statement (the statement that made it
// drops the cache), a change made on another node within usersCacheTTL.
// root is checked against nothing and never waits for the cache.

// usersCacheTTL bounds how stale a node's view of users and privileges may
// be after a change made through another node.
const usersCacheTTL = 500 * time.Millisecond

type usersCache struct {
	mu   sync.Mutex
	snap *users.Snapshot
	at   time.Time
}

// usersActive reports whether the cluster is finalized to 2.1: users other
// than root, passwords and privileges exist from then on.
func (e *Executor) usersActive() bool {
	return e.cfg.Versions != nil && clusterversion.IsActive(e.cfg.Versions, clusterversion.V2_1)
}

// usersSnapshot returns the cached snapshot, reading the store when it is
// older than usersCacheTTL.
func (e *Executor) usersSnapshot(ctx context.Context) (*users.Snapshot, error) {
	c := &e.usersCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil && time.Since(c.at) < usersCacheTTL {
		return c.snap, nil
	}
	s, err := users.Load(ctx, e.cfg.DB)
	if err != nil {
		return nil, kvError(err)
	}
	c.snap, c.at = s, time.Now()
	return s, nil
}

func (e *Executor) invalidateUsers() {
	e.usersCache.mu.Lock()
	e.usersCache.snap = nil
	e.usersCache.mu.Unlock()
}

// ListNonRootUsers lists the users and roles other than root and admin:
// what a downgrade to 2.0, which knows only root, reports.
func (e *Executor) ListNonRootUsers(ctx context.Context) ([]string, error) {
	return users.NonRootUsers(ctx, e.cfg.DB)
}

// IsAdmin reports whether user is root or, once the cluster is at 2.1, a
// member of admin (the node RPCs admit admins' client certificates).
func (e *Executor) IsAdmin(ctx context.Context, user string) (bool, error) {
	if user == users.Root {
		return true, nil
	}
	if !e.usersActive() {
		return false, nil
	}
	snap, err := e.usersSnapshot(ctx)
	if err != nil {
		return false, err
	}
	return snap.IsAdmin(user), nil
}

var _ pgwire.PasswordAuth = (*Executor)(nil)

// UserAuth implements pgwire.PasswordAuth: passwords exist from 2.1 on.
func (e *Executor) UserAuth(ctx context.Context, user string) (pgwire.UserAuth, error) {
	if !e.usersActive() {
		return pgwire.UserAuth{}, nil
	}
	snap, err := e.usersSnapshot(ctx)
	if err != nil {
		return pgwire.UserAuth{}, err
	}
	r, ok := snap.Users[user]
	return pgwire.UserAuth{Passwords: true, Exists: ok, Verifier: r.Verifier}, nil
}

// CheckLogin says whether user may open a session (a SQL connection, or a
// login on the status page); the error carries a SQLSTATE and the fix.
func (e *Executor) CheckLogin(ctx context.Context, user string) error { return e.checkLogin(ctx, user) }

// checkLogin says whether user may open a session: root always; another
// user once the cluster is at 2.1, if it exists and may log in.
func (e *Executor) checkLogin(ctx context.Context, user string) error {
	if user == users.Root {
		return nil
	}
	if !e.usersActive() {
		return pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "user %q does not exist", user),
			"connect as user root: users other than root arrive with cluster version %s (finalize the upgrade to it, then CREATE USER)",
			clusterversion.V2_1)
	}
	snap, err := e.usersSnapshot(ctx)
	if err != nil {
		return err
	}
	r, ok := snap.Users[user]
	if !ok {
		return pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "role %q does not exist", user),
			"an admin creates it with CREATE USER %s; SHOW USERS lists the users", parser.QuotedIdent(user))
	}
	if !r.Login {
		return pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "role %q is not permitted to log in", user),
			"an admin allows it with ALTER ROLE %s LOGIN", parser.QuotedIdent(user))
	}
	return nil
}

// ---- privilege checks ----

type accessKind int

const (
	accessTable    accessKind = iota // a privilege on a user table
	accessDatabase                   // a privilege on the session's database
	accessAdmin                      // admins only
	accessCreateDB                   // admins and users WITH CREATEDB
)

// accessReq is one thing a statement needs; analysis collects them in its
// paramSet, and every execution checks them (checkAccess), so a REVOKE
// applies to statements prepared before it.
type accessReq struct {
	kind  accessKind
	priv  users.Privilege
	table *catalog.TableDescriptor // accessTable
	what  string                   // accessAdmin: what the statement does
}

func (p *paramSet) need(r accessReq) { p.access = append(p.access, r) }

// collectAccess adds what an analyzed plan needs beyond the tables its
// queries read (collected by queryBuilder.buildTable).
func (s *session) collectAccess(pl plan, params *paramSet) {
	switch p := pl.(type) {
	case *insertPlan:
		params.need(accessReq{kind: accessTable, priv: users.Insert, table: p.ti.desc})
		if p.mode == insertBlind || p.mode == insertDoUpdate {
			params.need(accessReq{kind: accessTable, priv: users.Update, table: p.ti.desc})
		}
	case *copyPlan:
		params.need(accessReq{kind: accessTable, priv: users.Insert, table: p.ti.desc})
	case *copyOutPlan:
		if p.query != nil {
			s.collectAccess(p.query, params)
		} else {
			params.need(accessReq{kind: accessTable, priv: users.Select, table: p.ti.desc})
		}
	case *updatePlan:
		params.need(accessReq{kind: accessTable, priv: users.Update, table: p.ti.desc})
	case *deletePlan:
		params.need(accessReq{kind: accessTable, priv: users.Delete, table: p.ti.desc})
	case *virtualUpdatePlan:
		params.need(accessReq{kind: accessAdmin, what: "update " + p.vt.name})
	case *ddlPlan:
		switch p.stmt.(type) {
		case *parser.CreateDatabase:
			// As in CockroachDB: admins and users WITH CREATEDB.
			params.need(accessReq{kind: accessCreateDB, what: "run CREATE DATABASE"})
		case *parser.DropDatabase:
			// kvnode has no database owners: dropping one (and every
			// table in it) is an admin's.
			params.need(accessReq{kind: accessAdmin, what: "run " + p.stmt.StatementTag()})
		default:
			params.need(accessReq{kind: accessDatabase, priv: users.Create, what: p.stmt.StatementTag()})
		}
	case *hookPlan:
		params.need(accessReq{kind: accessAdmin, what: "run " + p.stmt.StatementTag()})
	case *explainPlan:
		s.collectAccess(p.inner, params)
	case *userPlan:
		switch p.stmt.(type) {
		case *parser.CreateRole, *parser.DropRole, *parser.Grant:
			params.need(accessReq{kind: accessAdmin, what: "run " + p.stmt.StatementTag()})
		}
	}
}

// checkAccess checks a statement's requirements for the session's user.
func (s *session) checkAccess(ctx context.Context, reqs []accessReq) error {
	user := s.args.User
	if user == users.Root || len(reqs) == 0 || !s.e.usersActive() {
		return nil
	}
	snap, err := s.e.usersSnapshot(ctx)
	if err != nil {
		return err
	}
	if snap.IsAdmin(user) {
		return nil
	}
	q := parser.QuotedIdent(user)
	for _, r := range reqs {
		switch r.kind {
		case accessAdmin:
			return pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeInsufficientPrivilege, "only admins may %s: user %s is not an admin", r.what, user),
				"an admin can make it one: GRANT admin TO %s", q)
		case accessCreateDB:
			if !snap.Users[user].CreateDB {
				return pgerror.WithHintf(
					pgerror.Newf(pgerror.CodeInsufficientPrivilege, "user %s may not %s: it has neither CREATEDB nor admin", user, r.what),
					"an admin can allow it: ALTER USER %s CREATEDB (or GRANT admin TO %s)", q, q)
			}
		case accessDatabase:
			db := s.database()
			if !snap.Has(user, users.DatabaseObject(db), r.priv) {
				return pgerror.WithHintf(
					pgerror.Newf(pgerror.CodeInsufficientPrivilege, "user %s does not have %s privilege on database %s (needed for %s)", user, r.priv, db, r.what),
					"an admin can grant it: GRANT %s ON DATABASE %s TO %s", r.priv, parser.QuotedIdent(db), q)
			}
		case accessTable:
			if s.txn.overlay != nil && s.txn.overlay.byID(r.table.ID) != nil {
				continue // created by this transaction: its creator holds every privilege
			}
			if !snap.Has(user, users.TableObject(r.table.ID), r.priv) {
				return pgerror.WithHintf(
					pgerror.Newf(pgerror.CodeInsufficientPrivilege, "user %s does not have %s privilege on relation %s", user, r.priv, r.table.Name),
					"an admin can grant it: GRANT %s ON TABLE %s TO %s", r.priv, parser.QuotedIdent(r.table.Name), q)
			}
		}
	}
	return nil
}

// virtualNeedsAdmin: system and crdb_internal tables are the cluster's
// internals (nodes, liveness, jobs, settings); pg_catalog and
// information_schema describe only the schema, which every user sees.
func virtualNeedsAdmin(name string) bool {
	return strings.HasPrefix(name, "system.") || strings.HasPrefix(name, "crdb_internal.")
}

// afterDDL keeps privileges in step with the schema: the creator of a table
// who is not an admin gets ALL on it (it could not use it otherwise); a
// dropped table's grants go with it. Best effort after the schema change
// committed: a failure leaves a grant without a table (ignored: tables are
// named by ID) or a creator without privileges (an admin can GRANT).
func (s *session) afterDDL(ctx context.Context, stmt parser.Stmt, changed []catalog.TableDescriptor) error {
	if !s.e.usersActive() {
		return nil
	}
	var ops []kvpb.Op
	for _, d := range changed {
		obj := users.TableObject(d.ID)
		if d.IsDatabase {
			obj = users.DatabaseObject(d.Name)
		}
		switch stmt.(type) {
		case *parser.DropTable, *parser.DropDatabase:
			lo, hi := keys.GrantObjectSpan(obj)
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDeleteRange, Key: lo, EndKey: hi})
		case *parser.CreateTable:
			if s.args.User == users.Root {
				continue
			}
			snap, err := s.e.usersSnapshot(ctx)
			if err != nil {
				return err
			}
			if snap.IsAdmin(s.args.User) {
				continue
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: keys.GrantKey(obj, s.args.User),
				Value: users.EncodeGrant(users.Grant{Privileges: privNames(users.TablePrivileges)})})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	defer s.e.invalidateUsers()
	return kvError(s.e.cfg.DB.Write(ctx, ops))
}

func privNames(ps []users.Privilege) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// ---- the statements ----

// userPlan runs CREATE/ALTER/DROP USER|ROLE, GRANT, REVOKE, SHOW USERS and
// SHOW GRANTS. They are analyzed when they run, like DDL.
type userPlan struct {
	s    *session
	stmt parser.Stmt
}

func (p *userPlan) stale() bool { return false }

var showUsersColumns = []pgwire.Column{{Name: "username", Type: types.String}, {Name: "options", Type: types.String},
	{Name: "member_of", Type: types.String}}

var showGrantsColumns = []pgwire.Column{{Name: "database_name", Type: types.String}, {Name: "schema_name", Type: types.String},
	{Name: "object_name", Type: types.String}, {Name: "object_type", Type: types.String},
	{Name: "grantee", Type: types.String}, {Name: "privilege_type", Type: types.String}}

func (p *userPlan) columns() []pgwire.Column {
	switch p.stmt.(type) {
	case *parser.ShowUsers:
		return showUsersColumns
	case *parser.ShowGrants:
		return showGrantsColumns
	}
	return nil
}

func (p *userPlan) exec(ctx context.Context, _ []types.Datum) (pgwire.Result, error) {
	e := p.s.e
	if !e.usersActive() {
		if _, ok := p.stmt.(*parser.ShowUsers); ok {
			return pgwire.Result{Tag: "SHOW USERS", Rows: [][]types.Datum{{users.Root, "", "{admin}"}}}, nil
		}
		active := "an older version"
		if e.cfg.Versions != nil {
			active = e.cfg.Versions.ActiveVersion().String()
		}
		return pgwire.Result{}, pgerror.WithHintf(
			unsupported("%s needs cluster version %s (users, passwords and privileges); the cluster is at %s",
				p.stmt.StatementTag(), clusterversion.V2_1, active),
			"finalize the upgrade to %s (SET CLUSTER SETTING version = '%s', or let it finalize automatically); "+
				"until then, clients authenticate as root with its client certificate", clusterversion.V2_1, clusterversion.V2_1)
	}
	var (
		res pgwire.Result
		err error
	)
	switch st := p.stmt.(type) {
	case *parser.CreateRole:
		res, err = p.createRole(ctx, st)
	case *parser.AlterRole:
		res, err = p.alterRole(ctx, st)
	case *parser.DropRole:
		res, err = p.dropRoles(ctx, st)
	case *parser.Grant:
		if st.Target == nil {
			res, err = p.grantRoles(ctx, st)
		} else {
			res, err = p.grantPrivileges(ctx, st)
		}
	case *parser.ShowUsers:
		return p.showUsers(ctx)
	case *parser.ShowGrants:
		return p.showGrants(ctx, st)
	default:
		return pgwire.Result{}, errors.AssertionFailedf("not a user statement: %T", p.stmt)
	}
	e.invalidateUsers()
	if err != nil {
		return pgwire.Result{}, err
	}
	if res.Tag == "" {
		res.Tag = p.stmt.StatementTag()
	}
	return res, nil
}

func roleNotFound(name string) error {
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeUndefinedObject, "role %q does not exist", name),
		"SHOW USERS lists the users and roles; CREATE USER %s creates it", parser.QuotedIdent(name))
}

// checkRoleName refuses names PostgreSQL and CockroachDB reserve, and names
// that would not survive a connection string.
func checkRoleName(name string) error {
	switch {
	case name == "":
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "a user name cannot be empty"), "choose a name such as alice")
	case len(name) > 63:
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "user name %q is too long (%d bytes, at most 63)", name, len(name)),
			"choose a shorter name")
	case name == "public" || name == "none" || name == "current_user" || name == "session_user" || name == "node" ||
		strings.HasPrefix(name, "pg_") || strings.HasPrefix(name, "crdb_internal"):
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeReservedName, "role name %q is reserved", name),
			"choose another name (public, none, node, current_user, session_user, pg_* and crdb_internal* are reserved)")
	}
	for _, r := range name {
		if !(unicode.IsLower(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "user name %q contains %q", name, r),
				"user names use lower-case letters, digits, _, - and . (as CockroachDB's), so that they work unquoted in URLs and certificates")
		}
	}
	return nil
}

// verifierFor turns PASSWORD 'x' into a stored verifier: a password is
// hashed (SCRAM-SHA-256); a verifier computed elsewhere is kept as it is.
func verifierFor(o parser.RoleOptions) (string, error) {
	if !o.PasswordSet || o.Password == nil {
		return "", nil
	}
	pw := *o.Password
	if pw == "" {
		return "", pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "a password cannot be empty"),
			"choose a password, or write PASSWORD NULL for a user who authenticates with a certificate only")
	}
	if pgwire.IsSCRAMVerifier(pw) {
		return pw, nil
	}
	v, err := pgwire.SCRAMVerifier(pw)
	if err != nil {
		return "", pgerror.WithCode(errors.Wrap(err, "hashing the password"), pgerror.CodeInvalidParameterValue)
	}
	return v, nil
}

func (p *userPlan) createRole(ctx context.Context, st *parser.CreateRole) (pgwire.Result, error) {
	if err := checkRoleName(st.Name); err != nil {
		return pgwire.Result{}, err
	}
	r := users.Record{Login: !st.IsRole}
	if st.Options.Login != nil {
		r.Login = *st.Options.Login
	}
	if st.Options.CreateDB != nil {
		r.CreateDB = *st.Options.CreateDB
	}
	v, err := verifierFor(st.Options)
	if err != nil {
		return pgwire.Result{}, err
	}
	r.Verifier = v
	err = p.s.e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: keys.UserKey(st.Name), Value: users.EncodeRecord(r), ExpectAbsent: true}})
	if isConditionFailed(err) {
		if st.IfNotExists {
			return pgwire.Result{Notices: []pgwire.Notice{{Severity: "NOTICE", Code: pgerror.CodeDuplicateObject,
				Message: "role " + parser.QuotedIdent(st.Name) + " already exists, skipping"}}}, nil
		}
		return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeDuplicateObject, "role %q already exists", st.Name),
			"change its password with ALTER USER %s WITH PASSWORD '...', or choose another name", parser.QuotedIdent(st.Name))
	}
	return pgwire.Result{}, kvErr(err)
}

func kvErr(err error) error {
	if err == nil {
		return nil
	}
	return kvError(err)
}

// updateRecord applies fn to a user's record with a conditional put,
// again on a concurrent change.
func (e *Executor) updateRecord(ctx context.Context, name string, fn func(*users.Record) error) (found bool, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		old, ok, err := e.cfg.DB.Get(ctx, keys.UserKey(name))
		if err != nil || !ok {
			return ok, kvErr(err)
		}
		r, err := decodeUserRecord(old)
		if err != nil {
			return true, err
		}
		if err := fn(&r); err != nil {
			return true, err
		}
		err = e.cfg.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: keys.UserKey(name), Value: users.EncodeRecord(r), Expected: old}})
		if !isConditionFailed(err) {
			return true, kvErr(err)
		}
	}
	return true, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure, "restart transaction: the user %q kept changing", name),
		"run the statement again")
}

func decodeUserRecord(b []byte) (users.Record, error) {
	var r users.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, pgerror.WithCode(errors.Wrap(err, "decoding a user record"), pgerror.CodeDataCorrupted)
	}
	return r, nil
}

func (p *userPlan) alterRole(ctx context.Context, st *parser.AlterRole) (pgwire.Result, error) {
	user := p.s.args.User
	// A user may change its own password; everything else is an admin's.
	self := st.Name == user && st.Options.Login == nil && st.Options.CreateDB == nil
	if !self && user != users.Root {
		if err := p.s.checkAccess(ctx, []accessReq{{kind: accessAdmin, what: "run ALTER ROLE on another user"}}); err != nil {
			return pgwire.Result{}, err
		}
	}
	if st.Name == users.Root && st.Options.Login != nil && !*st.Options.Login {
		return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "root must be able to log in"),
			"set root's password instead, or keep its client certificate safe")
	}
	v, err := verifierFor(st.Options)
	if err != nil {
		return pgwire.Result{}, err
	}
	found, err := p.s.e.updateRecord(ctx, st.Name, func(r *users.Record) error {
		if st.Options.Login != nil {
			r.Login = *st.Options.Login
		}
		if st.Options.CreateDB != nil {
			r.CreateDB = *st.Options.CreateDB
		}
		if st.Options.PasswordSet {
			r.Verifier = v
		}
		return nil
	})
	if err != nil {
		return pgwire.Result{}, err
	}
	if !found {
		if st.IfExists {
			return pgwire.Result{Notices: []pgwire.Notice{{Severity: "NOTICE", Code: pgerror.CodeUndefinedObject,
				Message: "role " + parser.QuotedIdent(st.Name) + " does not exist, skipping"}}}, nil
		}
		return pgwire.Result{}, roleNotFound(st.Name)
	}
	return pgwire.Result{}, nil
}

func (p *userPlan) dropRoles(ctx context.Context, st *parser.DropRole) (pgwire.Result, error) {
	var res pgwire.Result
	var ops []kvpb.Op
	var names []string
	for _, n := range st.Names {
		switch {
		case n == users.Root || n == users.Admin:
			return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "cannot drop special role %s", n),
				"root and admin always exist; REVOKE admin FROM a user instead")
		case n == p.s.args.User:
			return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectInUse, "current user cannot be dropped"),
				"connect as another admin (root) to drop %s", parser.QuotedIdent(n))
		}
		old, ok, err := p.s.e.cfg.DB.Get(ctx, keys.UserKey(n))
		if err != nil {
			return pgwire.Result{}, kvError(err)
		}
		if !ok {
			if st.IfExists {
				res.Notices = append(res.Notices, pgwire.Notice{Severity: "NOTICE", Code: pgerror.CodeUndefinedObject,
					Message: "role " + parser.QuotedIdent(n) + " does not exist, skipping"})
				continue
			}
			return pgwire.Result{}, roleNotFound(n)
		}
		ops = append(ops, kvpb.Op{Kind: kvpb.OpCPut, Key: keys.UserKey(n), Expected: old, Delete: true})
		names = append(names, n)
	}
	if len(names) == 0 {
		return res, nil
	}
	// Its memberships (either side) and its grants go with it.
	drop := map[string]bool{}
	for _, n := range names {
		drop[n] = true
	}
	lo, hi := keys.RoleMemberSpan()
	kvs, err := p.s.e.cfg.DB.Scan(ctx, lo, hi, 0, false)
	if err != nil {
		return pgwire.Result{}, kvError(err)
	}
	for _, kv := range kvs {
		role, member, _ := strings.Cut(string(kv.Key[len(keys.RoleMemberPrefix):]), "\x00")
		if drop[role] || drop[member] {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDelete, Key: kv.Key})
		}
	}
	lo, hi = keys.GrantSpan()
	if kvs, err = p.s.e.cfg.DB.Scan(ctx, lo, hi, 0, false); err != nil {
		return pgwire.Result{}, kvError(err)
	}
	for _, kv := range kvs {
		_, grantee, _ := strings.Cut(string(kv.Key[len(keys.GrantPrefix):]), "\x00")
		if drop[grantee] {
			ops = append(ops, kvpb.Op{Kind: kvpb.OpDelete, Key: kv.Key})
		}
	}
	if err := p.s.e.cfg.DB.Write(ctx, ops); err != nil {
		if isConditionFailed(err) {
			return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"restart transaction: a user changed while it was dropped"), "run the statement again")
		}
		return pgwire.Result{}, kvError(err)
	}
	return res, nil
}

// checkGrantees checks that every grantee exists.
func checkGrantees(snap *users.Snapshot, names []string) error {
	for _, n := range names {
		if _, ok := snap.Users[n]; !ok {
			return roleNotFound(n)
		}
	}
	return nil
}

func (p *userPlan) grantRoles(ctx context.Context, st *parser.Grant) (pgwire.Result, error) {
	snap, err := users.Load(ctx, p.s.e.cfg.DB)
	if err != nil {
		return pgwire.Result{}, kvError(err)
	}
	if err := checkGrantees(snap, append(append([]string(nil), st.Roles...), st.Grantees...)); err != nil {
		return pgwire.Result{}, err
	}
	var ops []kvpb.Op
	for _, role := range st.Roles {
		for _, m := range st.Grantees {
			if st.Revoke {
				if role == users.Admin && m == users.Root {
					return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidGrantOperation, "root must remain a member of admin"),
						"revoke admin from other users only")
				}
				ops = append(ops, kvpb.Op{Kind: kvpb.OpDelete, Key: keys.RoleMemberKey(role, m)})
				continue
			}
			if role == m || contains(snap.RolesOf(role), m) {
				return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidGrantOperation,
					"making %s a member of %s would create a cycle", m, role), "a role cannot be a member of itself, directly or through other roles")
			}
			ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: keys.RoleMemberKey(role, m), Value: users.EncodeMembership()})
		}
	}
	return pgwire.Result{}, kvErr(p.s.e.cfg.DB.Write(ctx, ops))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// grantObjects resolves a GRANT's target to grant objects, and the
// privileges ALL means on them.
func (p *userPlan) grantObjects(t *parser.GrantTarget) (objs []string, names []string, all []users.Privilege, err error) {
	if len(t.Databases) > 0 {
		for _, d := range t.Databases {
			if err := p.s.e.checkDatabase(context.Background(), d); err != nil {
				return nil, nil, nil, err
			}
			objs, names = append(objs, users.DatabaseObject(d)), append(names, d)
		}
		return objs, names, users.DatabasePrivileges, nil
	}
	for _, n := range t.Tables {
		db, name, virt, err := p.s.e.classifyTableName(p.s.database(), n)
		if err != nil {
			return nil, nil, nil, err
		}
		if virt {
			return nil, nil, nil, pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeInvalidGrantOperation, "cannot grant privileges on %s: it is a virtual table", name),
				"pg_catalog and information_schema are readable by every user; system and crdb_internal by admins (GRANT admin TO name)")
		}
		d, ok := p.s.e.catalog.GetTable(db, name)
		if !ok {
			return nil, nil, nil, undefinedTable(name)
		}
		objs, names = append(objs, users.TableObject(d.ID)), append(names, d.Name)
	}
	return objs, names, users.TablePrivileges, nil
}

func (p *userPlan) grantPrivileges(ctx context.Context, st *parser.Grant) (pgwire.Result, error) {
	objs, names, all, err := p.grantObjects(st.Target)
	if err != nil {
		return pgwire.Result{}, err
	}
	kind := "table"
	if len(st.Target.Databases) > 0 {
		kind = "database"
	}
	var privs []users.Privilege
	for _, w := range st.Privileges {
		if w == "ALL" {
			privs = append(privs, all...)
			continue
		}
		pr := users.Privilege(w)
		if !containsPriv(all, pr) {
			other := "ON TABLE t"
			if kind == "table" {
				other = "ON DATABASE d"
			}
			return pgwire.Result{}, pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidGrantOperation, "invalid privilege type %s for %s", pr, kind),
				"%s privileges are %s; %s is granted %s", kind, privList(all), pr, other)
		}
		privs = append(privs, pr)
	}
	snap, err := users.Load(ctx, p.s.e.cfg.DB)
	if err != nil {
		return pgwire.Result{}, kvError(err)
	}
	if err := checkGrantees(snap, st.Grantees); err != nil {
		return pgwire.Result{}, err
	}
	for i, obj := range objs {
		for _, g := range st.Grantees {
			if err := p.s.e.changeGrant(ctx, obj, g, privs, st.Revoke); err != nil {
				return pgwire.Result{}, errors.Wrapf(err, "%s %s", kind, names[i])
			}
		}
	}
	return pgwire.Result{}, nil
}

func containsPriv(ps []users.Privilege, p users.Privilege) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func privList(ps []users.Privilege) string { return strings.Join(privNames(ps), ", ") }

// changeGrant adds (or removes) privileges of grantee on obj with a
// conditional put, again on a concurrent change.
func (e *Executor) changeGrant(ctx context.Context, obj, grantee string, privs []users.Privilege, revoke bool) error {
	key := keys.GrantKey(obj, grantee)
	for attempt := 0; attempt < 10; attempt++ {
		old, ok, err := e.cfg.DB.Get(ctx, key)
		if err != nil {
			return kvError(err)
		}
		var g users.Grant
		if ok {
			if err := json.Unmarshal(old, &g); err != nil {
				return pgerror.WithCode(errors.Wrap(err, "decoding a privilege record"), pgerror.CodeDataCorrupted)
			}
		}
		have := map[string]bool{}
		for _, p := range g.Privileges {
			have[p] = true
		}
		for _, p := range privs {
			have[string(p)] = !revoke
		}
		var next users.Grant
		for _, p := range append(users.TablePrivileges, users.DatabasePrivileges...) {
			if have[string(p)] {
				next.Privileges = append(next.Privileges, string(p))
			}
		}
		op := kvpb.Op{Kind: kvpb.OpCPut, Key: key, Value: users.EncodeGrant(next), Expected: old, ExpectAbsent: !ok}
		if len(next.Privileges) == 0 {
			if !ok {
				return nil
			}
			op.Delete, op.Value = true, nil
		}
		err = e.cfg.DB.Write(ctx, []kvpb.Op{op})
		if !isConditionFailed(err) {
			return kvErr(err)
		}
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure, "restart transaction: the privileges kept changing"),
		"run the statement again")
}

func (p *userPlan) showUsers(ctx context.Context) (pgwire.Result, error) {
	snap, err := users.Load(ctx, p.s.e.cfg.DB)
	if err != nil {
		return pgwire.Result{}, kvError(err)
	}
	names := make([]string, 0, len(snap.Users))
	for n := range snap.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	res := pgwire.Result{Tag: "SHOW USERS"}
	for _, n := range names {
		r := snap.Users[n]
		var opts []string
		if r.CreateDB {
			opts = append(opts, "CREATEDB")
		}
		if !r.Login {
			opts = append(opts, "NOLOGIN")
		}
		member := append([]string(nil), snap.MemberOf[n]...)
		sort.Strings(member)
		res.Rows = append(res.Rows, []types.Datum{n, strings.Join(opts, ", "), "{" + strings.Join(member, ",") + "}"})
	}
	return res, nil
}

func (p *userPlan) showGrants(ctx context.Context, st *parser.ShowGrants) (pgwire.Result, error) {
	snap, err := users.Load(ctx, p.s.e.cfg.DB)
	if err != nil {
		return pgwire.Result{}, kvError(err)
	}
	want := map[string]bool{}
	if st.Target != nil {
		objs, _, _, err := p.grantObjects(st.Target)
		if err != nil {
			return pgwire.Result{}, err
		}
		for _, o := range objs {
			want[o] = true
		}
	}
	for _, g := range st.Grantees {
		if _, ok := snap.Users[g]; !ok {
			return pgwire.Result{}, roleNotFound(g)
		}
	}
	byID := map[string]*catalog.TableDescriptor{}
	for _, d := range p.s.e.catalog.All() {
		if !d.Dropped {
			byID[users.TableObject(d.ID)] = &d
		}
	}
	db := p.s.database()
	res := pgwire.Result{Tag: "SHOW GRANTS"}
	for obj, grantees := range snap.Grants {
		if len(want) > 0 && !want[obj] {
			continue
		}
		kind, rest := users.ParseObject(obj)
		var row []types.Datum
		switch kind {
		case "table":
			d, ok := byID[obj]
			if !ok {
				continue // a table dropped on another node moments ago
			}
			if len(want) == 0 && d.DatabaseName() != db {
				continue // SHOW GRANTS lists the session's database, as CockroachDB
			}
			row = []types.Datum{d.DatabaseName(), "public", d.Name, "table"}
		case "database":
			row = []types.Datum{rest, nil, nil, "database"}
		default:
			continue
		}
		for g, privs := range grantees {
			if len(st.Grantees) > 0 && !contains(st.Grantees, g) {
				continue
			}
			for _, pr := range privs {
				res.Rows = append(res.Rows, append(append([]types.Datum(nil), row...), g, string(pr)))
			}
		}
	}
	sort.Slice(res.Rows, func(i, j int) bool {
		a, b := res.Rows[i], res.Rows[j]
		for k := range a {
			as, _ := a[k].(string)
			bs, _ := b[k].(string)
			if as != bs {
				return as < bs
			}
		}
		return false
	})
	return res, nil
}

// roleOID is a role's OID in pg_roles and pg_user: root's is PostgreSQL's
// bootstrap superuser's (10); others are computed from the name, so they
// agree across nodes and restarts.
func roleOID(name string) int64 {
	if name == users.Root {
		return oidRoot
	}
	return 3_000_000_000 + virtualOID("role:"+name)%1_000_000_000
}

// roleRows returns pg_roles' view of the users: (name, OID, record,
// admin), root alone before 2.1.
func (e *Executor) roleRows(ctx context.Context) ([]roleRow, error) {
	if !e.usersActive() {
		return []roleRow{{name: users.Root, oid: oidRoot, rec: users.Record{Login: true}, admin: true}}, nil
	}
	snap, err := e.usersSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []roleRow
	for n, r := range snap.Users {
		out = append(out, roleRow{name: n, oid: roleOID(n), rec: r, admin: snap.IsAdmin(n)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].oid < out[j].oid })
	return out, nil
}

type roleRow struct {
	name  string
	oid   int64
	rec   users.Record
	admin bool
}

// roleByOID returns the name of the role with OID oid.
func (e *Executor) roleByOID(ctx context.Context, oid int64) (string, bool) {
	if oid == oidRoot {
		return users.Root, true
	}
	rs, err := e.roleRows(ctx)
	if err != nil {
		return "", false
	}
	for _, r := range rs {
		if r.oid == oid {
			return r.name, true
		}
	}
	return "", false
}
