package users

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
)

// The built-in user and role.
const (
	// Root is the first user: an admin that cannot be dropped.
	Root = "root"
	// Admin is the role whose members hold every privilege.
	Admin = "admin"
)

// Record is a user or a role (a role is a user that may not log in).
type Record struct {
	// Login: the user may open sessions (CREATE USER's default; CREATE
	// ROLE's is NOLOGIN).
	Login bool `json:"login"`
	// CreateDB: the user may create databases (CREATEDB, as in
	// CockroachDB; admins may anyway).
	CreateDB bool `json:"createdb,omitempty"`
	// Verifier is the SCRAM-SHA-256 verifier of the user's password in
	// PostgreSQL's format; empty: no password (certificate only).
	Verifier string `json:"verifier,omitempty"`
}

// Membership records that a member belongs to a role.
type Membership struct{}

// Grant is a grantee's privileges on one object.
type Grant struct {
	Privileges []string `json:"privileges"`
}

// Privilege is one privilege.
type Privilege string

// The privileges.
const (
	Select  Privilege = "SELECT"
	Insert  Privilege = "INSERT"
	Update  Privilege = "UPDATE"
	Delete  Privilege = "DELETE"
	Create  Privilege = "CREATE"
	Connect Privilege = "CONNECT"
)

// TablePrivileges are what ALL means on a table, in display order.
var TablePrivileges = []Privilege{Select, Insert, Update, Delete}

// DatabasePrivileges are what ALL means on a database.
var DatabasePrivileges = []Privilege{Connect, Create}

// TableObject names a table in grant keys.
func TableObject(id int64) string { return "table/" + strconv.FormatInt(id, 10) }

// DatabaseObject names a database in grant keys.
func DatabaseObject(name string) string { return "database/" + name }

// ParseObject splits an object name into its kind ("table", "database")
// and its ID or name.
func ParseObject(obj string) (kind, rest string) {
	kind, rest, _ = strings.Cut(obj, "/")
	return kind, rest
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	return b
}

// EncodeRecord, EncodeGrant and EncodeMembership are the stored values.
func EncodeRecord(r Record) []byte { return encode(r) }
func EncodeGrant(g Grant) []byte   { return encode(g) }
func EncodeMembership() []byte     { return encode(Membership{}) }
func decodeRecord(b []byte) (Record, error) {
	var r Record
	err := json.Unmarshal(b, &r)
	return r, errors.Wrap(err, "decoding a user record")
}

// BootstrapRecords are the records of a new store: root (login, no
// password), the role admin, and root's membership of admin.
func BootstrapRecords() map[string][]byte {
	return map[string][]byte{
		string(keys.UserKey(Root)):              EncodeRecord(Record{Login: true}),
		string(keys.UserKey(Admin)):             EncodeRecord(Record{}),
		string(keys.RoleMemberKey(Admin, Root)): EncodeMembership(),
	}
}

// EnsureStore creates the bootstrap records that are missing, with
// conditional puts: release 2.1's migration. It is idempotent, and leaves
// every existing record (a root whose password was set, users kept across a
// downgrade) as it is.
func EnsureStore(ctx context.Context, db kvpb.DB) error {
	recs := BootstrapRecords()
	ks := make([]string, 0, len(recs))
	for k := range recs {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		err := db.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte(k), Value: recs[k], ExpectAbsent: true}})
		var cf *kvpb.ConditionFailedError
		if err != nil && !errors.As(err, &cf) {
			return errors.Wrapf(err, "creating %q", k)
		}
	}
	return nil
}

// NonRootUsers lists the users other than root, and the roles other than
// admin, sorted: what a cluster of release 2.0, which admits only root,
// would not know. A downgrade's dry run reports their number.
func NonRootUsers(ctx context.Context, db kvpb.DB) ([]string, error) {
	lo, hi := keys.UserSpan()
	kvs, err := db.Scan(ctx, lo, hi, 0, false)
	if err != nil {
		return nil, errors.Wrap(err, "reading the users")
	}
	var out []string
	for _, kv := range kvs {
		name := string(kv.Key[len(keys.UserPrefix):])
		if name != Root && name != Admin {
			out = append(out, name)
		}
	}
	return out, nil
}

// Snapshot is the whole store, read at once.
type Snapshot struct {
	Users map[string]Record
	// MemberOf maps a member to the roles it belongs to directly.
	MemberOf map[string][]string
	// Grants maps an object to its grantees' privileges.
	Grants map[string]map[string][]Privilege
}

// Load reads the store.
func Load(ctx context.Context, db kvpb.DB) (*Snapshot, error) {
	s := &Snapshot{Users: map[string]Record{}, MemberOf: map[string][]string{}, Grants: map[string]map[string][]Privilege{}}
	lo, hi := keys.UserSpan()
	kvs, err := db.Scan(ctx, lo, hi, 0, false)
	if err != nil {
		return nil, errors.Wrap(err, "reading the users")
	}
	for _, kv := range kvs {
		r, err := decodeRecord(kv.Value)
		if err != nil {
			return nil, err
		}
		s.Users[string(kv.Key[len(keys.UserPrefix):])] = r
	}
	lo, hi = keys.RoleMemberSpan()
	if kvs, err = db.Scan(ctx, lo, hi, 0, false); err != nil {
		return nil, errors.Wrap(err, "reading the role memberships")
	}
	for _, kv := range kvs {
		role, member, ok := strings.Cut(string(kv.Key[len(keys.RoleMemberPrefix):]), "\x00")
		if ok {
			s.MemberOf[member] = append(s.MemberOf[member], role)
		}
	}
	lo, hi = keys.GrantSpan()
	if kvs, err = db.Scan(ctx, lo, hi, 0, false); err != nil {
		return nil, errors.Wrap(err, "reading the privileges")
	}
	for _, kv := range kvs {
		obj, grantee, ok := strings.Cut(string(kv.Key[len(keys.GrantPrefix):]), "\x00")
		if !ok {
			continue
		}
		var g Grant
		if err := json.Unmarshal(kv.Value, &g); err != nil {
			return nil, errors.Wrap(err, "decoding a privilege record")
		}
		m := s.Grants[obj]
		if m == nil {
			m = map[string][]Privilege{}
			s.Grants[obj] = m
		}
		for _, p := range g.Privileges {
			m[grantee] = append(m[grantee], Privilege(p))
		}
	}
	return s, nil
}

// roles returns user and every role it belongs to, directly or not.
func (s *Snapshot) roles(user string) []string {
	seen := map[string]bool{user: true}
	out := []string{user}
	for i := 0; i < len(out); i++ {
		for _, r := range s.MemberOf[out[i]] {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// RolesOf returns the roles user belongs to, directly or not, sorted.
func (s *Snapshot) RolesOf(user string) []string {
	r := s.roles(user)[1:]
	sort.Strings(r)
	return r
}

// IsAdmin reports whether user is root or a member of admin.
func (s *Snapshot) IsAdmin(user string) bool {
	if user == Root {
		return true
	}
	for _, r := range s.roles(user) {
		if r == Admin {
			return true
		}
	}
	return false
}

// Has reports whether user holds priv on object, itself or through a role
// (admins hold everything).
func (s *Snapshot) Has(user, object string, priv Privilege) bool {
	if s.IsAdmin(user) {
		return true
	}
	g := s.Grants[object]
	for _, r := range s.roles(user) {
		for _, p := range g[r] {
			if p == priv {
				return true
			}
		}
	}
	return false
}
