package sql

import (
	"os"
	"strings"
	"testing"
)

func TestPsqlScratch(t *testing.T) {
	if os.Getenv("PSQL_SCRATCH") == "" {
		t.Skip()
	}
	addr, tc := servePgwire(t)
	s := openSession(t, tc.nodes[0])
	mustExec(t, s, "CREATE TABLE kv (k INT8 PRIMARY KEY, v TEXT)")
	mustExec(t, s, "CREATE TABLE t2 (a INT, b TEXT NOT NULL DEFAULT 'x', c FLOAT8)")
	for _, c := range strings.Split(os.Getenv("PSQL_SCRATCH"), ";;") {
		out, errOut, code := runPsql(t, addr, "-E", "-c", c)
		t.Logf("=== %s (exit %d)\n%s\n%s", c, code, out, errOut)
	}
}
