package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/users"
)

// loadUsers reads the users store through node i.
func loadUsers(t *testing.T, c *testcluster.Cluster, i int) *users.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := users.Load(ctx, c.Nodes[i].Server.Replica())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkBootstrapUsers(t *testing.T, s *users.Snapshot) {
	t.Helper()
	if r, ok := s.Users[users.Root]; !ok || !r.Login || r.Verifier != "" {
		t.Fatalf("root: %+v %v", r, ok)
	}
	if r, ok := s.Users[users.Admin]; !ok || r.Login {
		t.Fatalf("admin: %+v %v", r, ok)
	}
	if !slices.Equal(s.RolesOf(users.Root), []string{users.Admin}) || !s.IsAdmin(users.Root) {
		t.Fatalf("root's roles: %v", s.RolesOf(users.Root))
	}
}

// TestUsersStoreBootstrapAndMigration: a cluster bootstrapped at 2.1 has
// root (admin) from the start; a cluster bootstrapped at 2.0 has no users
// store until its finalization to 2.1 runs the 2.1-step.3 migration, which
// creates it (and SHOW JOBS lists it).
func TestUsersStoreBootstrapAndMigration(t *testing.T) {
	t.Run("bootstrap at 2.1", func(t *testing.T) {
		c := testcluster.Start(t, 1, testcluster.Options{})
		checkBootstrapUsers(t, loadUsers(t, c, 0))
	})
	t.Run("migration from 2.0", func(t *testing.T) {
		c := testcluster.Start(t, 2, testcluster.Options{Knobs: server.Knobs{BinaryVersion: rel("2.0")}})
		if s := loadUsers(t, c, 0); len(s.Users) != 0 {
			t.Fatalf("a 2.0 cluster has users: %v", s.Users)
		}
		for i := range c.Nodes {
			upgradeBinary(c, i, "2.1")
		}
		waitVersion(t, c, "2.1")
		for i := range c.Nodes {
			checkBootstrapUsers(t, loadUsers(t, c, i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := c.Conn(0).Query(ctx, "SHOW JOBS")
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := vals[2].(string); strings.Contains(d, "create the users") && vals[3] == "succeeded" {
				found = true
			}
		}
		if rows.Close(); !found || rows.Err() != nil {
			t.Fatalf("SHOW JOBS lacks the succeeded users migration (%v)", rows.Err())
		}
		if n, err := users.NonRootUsers(ctx, c.Nodes[1].Server.Replica()); err != nil || len(n) != 0 {
			t.Fatalf("NonRootUsers: %v %v", n, err)
		}
	})
}
