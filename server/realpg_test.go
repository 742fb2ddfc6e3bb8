package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/testutil/realpg"
)

// startRealPostgres starts a throwaway PostgreSQL server (testutil/realpg;
// PostgreSQL 15 preferred, the release the comparisons expect) with a
// superuser root and a database defaultdb owned by root, like a kvnode node,
// so that the same client commands run against both unchanged. A missing
// server skips the test, or fails it under KVNODE_REQUIRE_CLIENTS=1
// (scripts/test.sh installs it).
func startRealPostgres(t *testing.T) *realpg.Server {
	t.Helper()
	bin := realpg.BinDir("15")
	requireClient(t, bin != "", "Debian's postgresql (the server: /usr/lib/postgresql/*/bin/postgres)")
	pg := realpg.Start(t, bin, realpg.Options{
		Locale: "C.UTF-8", // the collation kvnode reports in pg_database
		// No statistics change under the comparison (JDBC prints them).
		Settings: []string{"autovacuum=off"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	// root has the attributes kvnode's root has (\du).
	for _, stmt := range []string{
		"CREATE ROLE root SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN",
		"CREATE DATABASE defaultdb OWNER root",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return pg
}
