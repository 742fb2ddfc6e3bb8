package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestDatabasesAcrossNodes creates a database through group 0 on one node
// and uses it at once from the others: a client connects to it on node 3
// even though node 1's DDL does not wait for the others to apply it here
// (the connection reads the schema from group 0 before refusing an unknown
// database), creates a table there
// that node 2 reads by its qualified name while defaultdb's table of the
// same name stays apart; DROP DATABASE on node 2 then refuses new
// connections to it everywhere with 3D000.
func TestDatabasesAcrossNodes(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	// Node 1's DDL returns without waiting for the other members to
	// apply it, so node 3 may not know the database yet when the client
	// connects.
	c.StopNode(0)
	c.Nodes[0].Config.Group0PropagationWait = time.Nanosecond
	c.StartNode(0)
	c.WaitUp(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Exec(0, "CREATE DATABASE app")
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v STRING)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 'defaultdb')")
	appURL := func(i int) string { return strings.Replace(c.URL(i), "/defaultdb?", "/app?", 1) }
	conn, err := pgx.Connect(ctx, appURL(2))
	if err != nil {
		t.Fatalf("connecting to app on node 3 right after CREATE DATABASE: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, q := range []string{"CREATE TABLE kv (k INT PRIMARY KEY, n INT)", "INSERT INTO kv VALUES (1, 100)"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if n, err := c.QueryInt(1, "SELECT n FROM app.public.kv WHERE k = 1"); err != nil || n != 100 {
		t.Fatalf("app.kv through node 2: %d %v", n, err)
	}
	if v, err := queryString(t, c, 1, "SELECT v FROM kv WHERE k = 1"); err != nil || v != "defaultdb" {
		t.Fatalf("defaultdb.kv through node 2: %q %v", v, err)
	}
	c.Exec(1, "DROP DATABASE app CASCADE")
	for i := range c.Nodes {
		_, err := pgx.Connect(ctx, appURL(i))
		if sqlState(err) != "3D000" || !strings.Contains(hintOf(err), "SHOW DATABASES") {
			t.Fatalf("node %d: connecting to a dropped database: %v", i+1, err)
		}
	}
	// The open session on node 3 lost its tables with the database.
	if _, err := conn.Exec(ctx, "SELECT * FROM kv"); sqlState(err) != "42P01" {
		t.Fatalf("a session in the dropped database: %v", err)
	}
}
