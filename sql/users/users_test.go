package users_test

import (
	"context"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/sql/sqltest"
	"github.com/kvnode/kvnode/sql/users"
)

func put(t *testing.T, db kvpb.DB, k, v []byte) {
	t.Helper()
	if err := db.Write(context.Background(), []kvpb.Op{{Kind: kvpb.OpPut, Key: k, Value: v}}); err != nil {
		t.Fatal(err)
	}
}

// TestEnsureStoreIsIdempotent: the migration creates root, admin and root's
// membership; run again (a coordinator taking the job over, or a cluster
// finalized to 2.1 again after a downgrade) it keeps what exists, such as
// root's password and other users.
func TestEnsureStoreIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := sqltest.NewMemDB()
	if err := users.EnsureStore(ctx, db); err != nil {
		t.Fatal(err)
	}
	put(t, db, keys.UserKey(users.Root), users.EncodeRecord(users.Record{Login: true, Verifier: "SCRAM-SHA-256$x"}))
	put(t, db, keys.UserKey("alice"), users.EncodeRecord(users.Record{Login: true}))
	if err := users.EnsureStore(ctx, db); err != nil {
		t.Fatal(err)
	}
	s, err := users.Load(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if s.Users[users.Root].Verifier != "SCRAM-SHA-256$x" || !s.IsAdmin(users.Root) || len(s.Users) != 3 {
		t.Fatalf("after a second run: %+v", s)
	}
	if n, err := users.NonRootUsers(ctx, db); err != nil || !slices.Equal(n, []string{"alice"}) {
		t.Fatalf("NonRootUsers = %v, %v", n, err)
	}
}

// TestPrivilegeRules: admins hold everything; a privilege is held directly
// or through roles, transitively; a privilege on one table says nothing of
// another, nor of another privilege.
func TestPrivilegeRules(t *testing.T) {
	ctx := context.Background()
	db := sqltest.NewMemDB()
	if err := users.EnsureStore(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol", "readers", "staff"} {
		put(t, db, keys.UserKey(u), users.EncodeRecord(users.Record{Login: true}))
	}
	put(t, db, keys.RoleMemberKey("readers", "staff"), users.EncodeMembership()) // staff ⊂ readers
	put(t, db, keys.RoleMemberKey("staff", "bob"), users.EncodeMembership())     // bob ⊂ staff
	put(t, db, keys.RoleMemberKey(users.Admin, "carol"), users.EncodeMembership())
	t1, t2 := users.TableObject(52), users.TableObject(53)
	put(t, db, keys.GrantKey(t1, "readers"), users.EncodeGrant(users.Grant{Privileges: []string{"SELECT"}}))
	put(t, db, keys.GrantKey(t1, "alice"), users.EncodeGrant(users.Grant{Privileges: []string{"INSERT", "UPDATE"}}))
	put(t, db, keys.GrantKey(users.DatabaseObject("defaultdb"), "alice"), users.EncodeGrant(users.Grant{Privileges: []string{"CREATE"}}))
	s, err := users.Load(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, obj string
		priv      users.Privilege
		want      bool
	}{
		{"root", t2, users.Delete, true},
		{"carol", t2, users.Delete, true},
		{"bob", t1, users.Select, true}, // bob ⊂ staff ⊂ readers
		{"bob", t1, users.Insert, false},
		{"bob", t2, users.Select, false},
		{"staff", t1, users.Select, true},
		{"alice", t1, users.Select, false},
		{"alice", t1, users.Update, true},
		{"alice", users.DatabaseObject("defaultdb"), users.Create, true},
		{"alice", users.DatabaseObject("postgres"), users.Create, false},
		{"nobody", t1, users.Select, false},
	} {
		if got := s.Has(tc.user, tc.obj, tc.priv); got != tc.want {
			t.Errorf("Has(%s, %s, %s) = %v, want %v", tc.user, tc.obj, tc.priv, got, tc.want)
		}
	}
	if !slices.Equal(s.RolesOf("bob"), []string{"readers", "staff"}) || s.IsAdmin("bob") || !s.IsAdmin("carol") {
		t.Fatalf("bob's roles %v, admin %v; carol admin %v", s.RolesOf("bob"), s.IsAdmin("bob"), s.IsAdmin("carol"))
	}
	if kind, rest := users.ParseObject(t1); kind != "table" || rest != "52" {
		t.Fatalf("ParseObject(%q) = %q %q", t1, kind, rest)
	}
}
