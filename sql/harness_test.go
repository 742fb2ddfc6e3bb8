package sql

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/sqltest"
	"github.com/kvnode/kvnode/sql/types"
)

// testCluster is several in-process nodes sharing one replicated store:
// each has its own executor, local store and catalog, and they exchange
// schema changes through a sqltest.Network.
type testCluster struct {
	t        testing.TB
	db       *sqltest.MemDB
	net      *sqltest.Network
	nodes    []*Executor
	sessions map[string]pgwire.Session // "node/name"
	prepared map[string]pgwire.Prepared
}

// fixedVersion is a cluster version handle that never changes.
type fixedVersion clusterversion.Version

func (v fixedVersion) ActiveVersion() clusterversion.Version { return clusterversion.Version(v) }

// at21 is the handle of a cluster finalized to 2.1.
var at21 = fixedVersion(clusterversion.V2_1.Version())

func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return newTestClusterAt(t, n, nil)
}

// newTestClusterAt builds a cluster whose nodes see the cluster version of
// versions (nil: no version, every gate inactive).
func newTestClusterAt(t testing.TB, n int, versions clusterversion.Handle) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, db: sqltest.NewMemDB(), net: sqltest.NewNetwork(),
		sessions: map[string]pgwire.Session{}, prepared: map[string]pgwire.Prepared{}}
	for i := 1; i <= n; i++ {
		id := nodeid.ID(i)
		e, err := NewExecutor(Config{
			DB:            tc.db,
			Local:         sqltest.NewMemStore(),
			Peers:         tc.net.Peers(id),
			NodeID:        func() nodeid.ID { return id },
			BinaryVersion: "1.0",
			Versions:      versions,
		})
		if err != nil {
			t.Fatal(err)
		}
		tc.net.Add(id, e.Catalog())
		registerTestVirtualTables(e, id)
		tc.nodes = append(tc.nodes, e)
	}
	return tc
}

func registerTestVirtualTables(e *Executor, id nodeid.ID) {
	e.RegisterVirtualTable("system.local",
		[]pgwire.Column{{Name: "key", Type: types.String}, {Name: "value", Type: types.String}},
		func(ctx context.Context) ([][]types.Datum, error) {
			return [][]types.Datum{
				{"group0_upgrade_state", "use_pre_raft_procedures"},
				{"node_id", fmt.Sprint(id)},
			}, nil
		})
	e.RegisterVirtualTable("crdb_internal.gossip_nodes",
		[]pgwire.Column{{Name: "node_id", Type: types.Int}, {Name: "address", Type: types.String},
			{Name: "sql_address", Type: types.String}, {Name: "server_version", Type: types.String}, {Name: "is_live", Type: types.Bool}},
		func(ctx context.Context) ([][]types.Datum, error) {
			return [][]types.Datum{
				{int64(1), "127.0.0.1:26257", "127.0.0.1:26258", "1.0", true},
				{int64(2), "127.0.0.1:26267", "127.0.0.1:26268", "1.0", true},
				{int64(3), "127.0.0.1:26277", "127.0.0.1:26278", "1.0", false},
			}, nil
		})
}

func (tc *testCluster) session(node int, name, user string) pgwire.Session {
	key := fmt.Sprintf("%d/%s/%s", node, name, user)
	if s, ok := tc.sessions[key]; ok {
		return s
	}
	s, err := tc.nodes[node-1].NewSession(context.Background(), pgwire.SessionArgs{User: user, Database: "defaultdb"})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.sessions[key] = s
	return s
}

// run executes a query string the way the simple protocol does: statement
// by statement, stopping at the first error.
func (tc *testCluster) run(s pgwire.Session, query string, showTypes bool) string {
	var b strings.Builder
	stmts, err := s.Parse(query)
	if err != nil {
		writeError(&b, err, query)
		return b.String()
	}
	for _, st := range stmts {
		p, err := s.Prepare(context.Background(), st, nil)
		if err != nil {
			writeError(&b, err, "")
			return b.String()
		}
		res, err := p.Exec(context.Background(), make([]types.Datum, len(p.ParamTypes())))
		if err != nil {
			writeError(&b, err, "")
			return b.String()
		}
		writeResult(&b, p.Columns(), res, showTypes)
	}
	return b.String()
}

func writeError(b *strings.Builder, err error, query string) {
	fe := pgerror.Flatten(err)
	fmt.Fprintf(b, "ERROR: %s (SQLSTATE %s)\n", fe.Message, fe.Code)
	if fe.Detail != "" {
		fmt.Fprintf(b, "DETAIL: %s\n", fe.Detail)
	}
	if fe.Hint != "" {
		fmt.Fprintf(b, "HINT: %s\n", fe.Hint)
	}
	if fe.Position > 0 && query != "" && !strings.Contains(query, "\n") {
		fmt.Fprintf(b, "%s\n%s^\n", query, strings.Repeat(" ", fe.Position-1))
	}
}

func formatDatum(d types.Datum) string {
	if d == nil {
		return "NULL"
	}
	return string(types.FormatText(d))
}

func writeResult(b *strings.Builder, cols []pgwire.Column, res pgwire.Result, showTypes bool) {
	if cols != nil {
		var hdr []string
		for _, c := range cols {
			if showTypes { // the declared type RowDescription sends: INT4, FLOAT4
				hdr = append(hdr, c.Name+":"+types.ColumnTypeString(c.Type, c.Mod))
			} else {
				hdr = append(hdr, c.Name)
			}
		}
		b.WriteString(strings.Join(hdr, " | ") + "\n")
		for _, r := range res.Rows {
			var vals []string
			for i, d := range r {
				if i < len(cols) && d != nil && !types.Fits(d, cols[i].Type) {
					vals = append(vals, fmt.Sprintf("<BUG: %T in a %s column>", d, cols[i].Type))
					continue
				}
				vals = append(vals, formatDatum(d))
			}
			b.WriteString(strings.Join(vals, " | ") + "\n")
		}
	}
	fmt.Fprintf(b, "%s\n", res.Tag)
}

func argInt(d *datadriven.TestData, key string, def int) int {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			var n int
			fmt.Sscan(a.Vals[0], &n)
			return n
		}
	}
	return def
}

func argStr(d *datadriven.TestData, key, def string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0]
		}
	}
	return def
}

func argVals(d *datadriven.TestData, key string) ([]string, bool) {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a.Vals, true
		}
	}
	return nil, false
}

// testHook answers the hook statements with canned results, to test the
// plumbing; the real hook lives in the server.
type testHook struct{ settings map[string]string }

func (h *testHook) Describe(st HookStatement) ([]pgwire.Column, error) {
	switch s := st.AST.(type) {
	case *parser.ShowClusterSetting:
		return []pgwire.Column{{Name: s.Name, Type: types.String}}, nil
	case *parser.ShowClusterSettings:
		return []pgwire.Column{{Name: "variable", Type: types.String}, {Name: "value", Type: types.String}}, nil
	case *parser.ShowJobs:
		return []pgwire.Column{{Name: "job_id", Type: types.Int}, {Name: "status", Type: types.String}}, nil
	}
	return nil, nil
}

func (h *testHook) Exec(ctx context.Context, st HookStatement) (pgwire.Result, error) {
	switch s := st.AST.(type) {
	case *parser.SetClusterSetting:
		if s.Default {
			delete(h.settings, s.Name)
		} else {
			h.settings[s.Name] = fmt.Sprintf("%v (%T)", st.Value, st.Value)
		}
		return pgwire.Result{Tag: "SET CLUSTER SETTING"}, nil
	case *parser.ResetClusterSetting:
		delete(h.settings, s.Name)
		return pgwire.Result{Tag: "RESET CLUSTER SETTING"}, nil
	case *parser.ShowClusterSetting:
		v, ok := h.settings[s.Name]
		if !ok {
			return pgwire.Result{}, pgerror.Newf(pgerror.CodeUndefinedObject, "unknown cluster setting %q", s.Name)
		}
		return pgwire.Result{Rows: [][]types.Datum{{v}}, Tag: "SHOW"}, nil
	case *parser.ShowClusterSettings:
		var rows [][]types.Datum
		var names []string
		for k := range h.settings {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			rows = append(rows, []types.Datum{k, h.settings[k]})
		}
		return pgwire.Result{Rows: rows, Tag: "SHOW"}, nil
	case *parser.ShowJobs:
		return pgwire.Result{Rows: [][]types.Datum{{int64(1), "succeeded"}}, Tag: "SHOW"}, nil
	}
	return pgwire.Result{}, errors.Newf("unexpected %T", st.AST)
}

// TestDataDriven runs the SQL scripts in testdata/. Commands:
//
//	sql [node=N] [session=S] [user=U] [types]
//	                                   run statements (simple protocol) as U (root)
//	prepare name=P [node=N] [session=S] [types=int,text,...]
//	                                   prepare one statement; prints the
//	                                   parameter and result types
//	execute name=P [args=a,b,...]      run a prepared statement; args are in
//	                                   text format (NULL for null)
//	link node=N up|down                cut or restore a node's schema pushes
//	sync                               run the digest-driven anti-entropy
//	digests                            say whether the nodes' digests agree
//	kv-stats                           operations since the last kv-stats
//	hook [node=N]                      install a test statement hook
//	inject-write-error error=ambiguous|unavailable|conflict count=K [keys=grants]
//	                                   fail the next K writes (of grant
//	                                   records only, with keys=grants)
//	new-session node=N user=U database=D
func TestDataDriven(t *testing.T) {
	// Only the scripts directly in testdata/: its subdirectories (the Go
	// fuzzer's testdata/fuzz) are not scripts.
	paths, err := filepath.Glob("testdata/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) { runScript(t, path) })
	}
}

// runScript runs one script on a three-node cluster; a script whose name
// ends in _v21 runs on a cluster finalized to 2.1.
func runScript(t *testing.T, path string) {
	var versions clusterversion.Handle
	if strings.HasSuffix(path, "_v21") {
		versions = at21
	}
	tc := newTestClusterAt(t, 3, versions)
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		node := argInt(d, "node", 1)
		sess := argStr(d, "session", "default")
		switch d.Cmd {
		case "sql":
			return tc.run(tc.session(node, sess, argStr(d, "user", "root")), d.Input, d.HasArg("types"))
		case "prepare":
			s := tc.session(node, sess, argStr(d, "user", "root"))
			var declared []types.T
			if vals, ok := argVals(d, "types"); ok {
				for _, v := range vals {
					typ, ok := types.FromName(v)
					if !ok && v != "unknown" {
						t.Fatalf("bad type %q", v)
					}
					declared = append(declared, typ)
				}
			}
			var b strings.Builder
			stmts, err := s.Parse(d.Input)
			if err != nil {
				writeError(&b, err, d.Input)
				return b.String()
			}
			if len(stmts) != 1 {
				t.Fatalf("prepare takes one statement")
			}
			p, err := s.Prepare(context.Background(), stmts[0], declared)
			if err != nil {
				writeError(&b, err, "")
				return b.String()
			}
			tc.prepared[argStr(d, "name", "p")] = p
			var pts []string
			for _, pt := range p.ParamTypes() {
				pts = append(pts, pt.String())
			}
			fmt.Fprintf(&b, "params: [%s]\n", strings.Join(pts, ", "))
			var cols []string
			for _, c := range p.Columns() {
				cols = append(cols, c.Name+":"+c.Type.String())
			}
			if p.Columns() == nil {
				b.WriteString("columns: none\n")
			} else {
				fmt.Fprintf(&b, "columns: [%s]\n", strings.Join(cols, ", "))
			}
			return b.String()
		case "execute":
			p, ok := tc.prepared[argStr(d, "name", "p")]
			if !ok {
				t.Fatalf("no prepared statement %q", argStr(d, "name", "p"))
			}
			vals, _ := argVals(d, "args")
			var params []types.Datum
			for i, v := range vals {
				if v == "NULL" {
					params = append(params, nil)
					continue
				}
				// The wire server decodes text-format values by the
				// inferred parameter type; do the same.
				pt := types.String
				if i < len(p.ParamTypes()) {
					pt = p.ParamTypes()[i]
				}
				dv, err := types.ParseText(pt, []byte(v))
				if err != nil {
					return fmt.Sprintf("wire decode error: %v\n", err)
				}
				params = append(params, dv)
			}
			var b strings.Builder
			res, err := p.Exec(context.Background(), params)
			if err != nil {
				writeError(&b, err, "")
				return b.String()
			}
			writeResult(&b, p.Columns(), res, false)
			return b.String()
		case "link":
			tc.net.SetLink(nodeid.ID(node), d.HasArg("up"))
			return ""
		case "sync":
			if err := tc.net.Sync(); err != nil {
				return fmt.Sprintf("error: %v\n", err)
			}
			return ""
		case "digests":
			first := tc.nodes[0].Catalog().Digest()
			var b strings.Builder
			same := true
			for i, e := range tc.nodes {
				if e.Catalog().Digest() != first {
					same = false
				}
				var names []string
				for _, td := range e.Catalog().All() {
					s := fmt.Sprintf("%s@%d/v%d", strings.ReplaceAll(td.Key(), "\x00", "/"), td.ID, td.Version)
					if td.Dropped {
						s += "(dropped)"
					}
					names = append(names, s)
				}
				fmt.Fprintf(&b, "n%d: %s\n", i+1, strings.Join(names, " "))
			}
			if same {
				b.WriteString("digests agree\n")
			} else {
				b.WriteString("digests differ\n")
			}
			return b.String()
		case "kv-stats":
			s := tc.db.Stats()
			return fmt.Sprintf("gets=%d scans=%d scanned-rows=%d writes=%d written-ops=%d\n",
				s.Gets, s.Scans, s.ScannedRows, s.Writes, s.WrittenOps)
		case "hook":
			tc.nodes[node-1].SetStatementHook(&testHook{settings: map[string]string{"version": "1.0"}})
			return ""
		case "inject-write-error":
			n := argInt(d, "count", 1)
			kind := argStr(d, "error", "ambiguous")
			var prefix string
			switch only := argStr(d, "keys", ""); only {
			case "":
			case "grants":
				prefix = keys.GrantPrefix
			default:
				t.Fatalf("inject-write-error: unknown keys=%s", only)
			}
			tc.db.SetBeforeWrite(func(ops []kvpb.Op) error {
				if n <= 0 || prefix != "" && !bytes.HasPrefix(ops[0].Key, []byte(prefix)) {
					return nil
				}
				n--
				switch kind {
				case "ambiguous":
					return kvpb.ErrAmbiguous
				case "unavailable":
					return kvpb.ErrUnavailable
				default:
					return &kvpb.ConditionFailedError{Index: 0, Key: ops[0].Key, Exists: true}
				}
			})
			return ""
		case "new-session":
			_, err := tc.nodes[node-1].NewSession(context.Background(), pgwire.SessionArgs{
				User: argStr(d, "user", "root"), Database: argStr(d, "database", "")})
			if err != nil {
				var b strings.Builder
				writeError(&b, err, "")
				return b.String()
			}
			return "ok\n"
		}
		t.Fatalf("unknown command %q", d.Cmd)
		return ""
	})
}
