package kvnode_test

// This file enforces the package layering described in ARCHITECTURE.md: which
// kvnode packages each package may import, which third-party modules a few
// packages may use, and that every package opens with a doc.go.
//
// The rules live twice, on purpose: as the archRules map below (what the test
// enforces) and as the dependency table in ARCHITECTURE.md (what people read).
// TestArchitectureTableMatchesDoc parses the markdown table and fails if the
// two differ, so neither can drift from the other.

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// anything is written "any" in ARCHITECTURE.md: no restriction.
var anything = []string{"..."}

// archRule is one row of the dependency table.
type archRule struct {
	// ours lists the kvnode packages, relative to the module root, that the
	// package may import. "X/..." means X and every package below it; "..."
	// alone means any package of ours. Empty means none.
	ours []string
	// thirdParty lists the modules outside the standard library and outside
	// kvnode that the package may import (an entry also admits the packages
	// below it). "..." means any; empty means the standard library only.
	thirdParty []string
}

// peerDeps is what the peers liveness, settings, migrations and group0 may
// import: shared leaves only, never each other.
var peerDeps = []string{"clusterversion", "keys", "nodeid", "kv/kvpb", "sql/types", "sql/pgerror", "rpc", "util/stop"}

// sqlLeafDeps is what the SQL subpackages below package sql (other than the
// parser and pgwire) may import.
var sqlLeafDeps = []string{"sql/types", "sql/pgerror", "sql/parser", "sql/catalog", "sql/rowenc", "kv/kvpb", "keys", "nodeid", "clusterversion"}

// archRules maps a package (relative to the module root; "X/..." covers X and
// everything below it that has no row of its own) to its rule. Keep it in step
// with the table in ARCHITECTURE.md.
var archRules = map[string]archRule{
	"clusterversion":        {ours: nil, thirdParty: []string{"github.com/cockroachdb/errors"}},
	"nodeid":                {ours: nil, thirdParty: nil},
	"keys":                  {ours: []string{"nodeid"}, thirdParty: nil},
	"testutil":              {ours: nil, thirdParty: nil},
	"util/stop":             {ours: nil, thirdParty: nil},
	"testutil/realpg":       {ours: nil, thirdParty: []string{"github.com/jackc/pgx/v5"}},
	"kv/kvpb":               {ours: nil, thirdParty: anything},
	"sql/types":             {ours: nil, thirdParty: anything},
	"sql/pgerror":           {ours: nil, thirdParty: anything},
	"rpc":                   {ours: []string{"nodeid"}, thirdParty: anything},
	"security":              {ours: nil, thirdParty: []string{"github.com/cockroachdb/errors"}},
	"security/nodesec":      {ours: []string{"security", "gossip"}, thirdParty: []string{"github.com/cockroachdb/errors", "google.golang.org/grpc"}},
	"storage":               {ours: []string{"kv/kvpb", "nodeid"}, thirdParty: anything},
	"kv":                    {ours: []string{"storage", "rpc", "kv/kvpb", "nodeid"}, thirdParty: anything},
	"txn":                   {ours: []string{"kv/kvpb"}, thirdParty: anything},
	"gossip":                {ours: []string{"clusterversion", "nodeid"}, thirdParty: anything},
	"liveness":              {ours: peerDeps, thirdParty: anything},
	"migrations":            {ours: peerDeps, thirdParty: anything},
	"liveness/decommission": {ours: []string{"liveness", "kv", "kv/kvpb", "nodeapi", "nodeid", "util/stop"}, thirdParty: anything},
	"group0":                {ours: peerDeps, thirdParty: anything},
	"settings":              {ours: peerDeps, thirdParty: anything},
	"sql/parser":            {ours: []string{"sql/types", "sql/pgerror"}, thirdParty: anything},
	"sql/pgwire":            {ours: []string{"sql/types", "sql/pgerror"}, thirdParty: anything},
	"sql/catalog":           {ours: sqlLeafDeps, thirdParty: anything},
	"sql/rowenc":            {ours: sqlLeafDeps, thirdParty: anything},
	"sql/...":               {ours: sqlLeafDeps, thirdParty: anything},
	"sql":                   {ours: []string{"sql/...", "kv/kvpb", "keys", "clusterversion", "txn", "nodeid"}, thirdParty: anything},
	"nodeapi":               {ours: []string{"rpc", "kv", "liveness", "group0", "sql/catalog", "nodeid"}, thirdParty: anything},
	"group0/member":         {ours: []string{"group0", "nodeapi", "kv", "kv/kvpb", "storage", "rpc", "keys", "liveness", "clusterversion", "sql/catalog", "sql/pgerror", "nodeid"}, thirdParty: anything},
	"kv/loqrecovery":        {ours: []string{"kv", "storage", "liveness", "nodeapi", "nodeid"}, thirdParty: anything},
	"server":                {ours: anything, thirdParty: anything},
	"server/testcluster":    {ours: anything, thirdParty: anything},
	"server/listenerutil":   {ours: []string{"server", "gossip"}, thirdParty: []string{"github.com/cockroachdb/errors"}},
	"server/localcluster":   {ours: []string{"server", "server/listenerutil", "nodeapi", "clusterversion", "security", "nodeid"}, thirdParty: anything},
	"server/pausepoint":     {ours: []string{"clusterversion", "group0"}, thirdParty: []string{"github.com/cockroachdb/errors"}},
	"server/autoupgrade":    {ours: []string{"clusterversion", "nodeid"}, thirdParty: anything},
	"server/join":           {ours: []string{"clusterversion", "keys", "kv", "kv/kvpb", "liveness", "nodeapi", "nodeid"}, thirdParty: anything},
	"server/schemasync":     {ours: []string{"gossip", "group0", "nodeapi", "sql/catalog", "nodeid", "util/stop"}, thirdParty: anything},
	"server/status":         {ours: []string{"clusterversion", "gossip", "group0", "keys", "kv", "kv/kvpb", "liveness", "nodeapi", "security", "server/autoupgrade", "server/console", "sql/pgwire", "upgrademanager", "nodeid"}, thirdParty: anything},
	"server/clockmon":       {ours: []string{"clusterversion", "kv", "nodeapi", "rpc", "server/console", "nodeid"}, thirdParty: anything},
	"server/clustersql":     {ours: []string{"clusterversion", "kv", "kv/kvpb", "liveness", "migrations", "nodeapi", "server/autoupgrade", "server/status", "settings", "sql", "sql/...", "upgrademanager"}, thirdParty: anything},
	"server/console":        {ours: []string{"clusterversion", "nodeapi", "server/autoupgrade", "nodeid"}, thirdParty: anything},
	"upgrademanager":        {ours: []string{"clusterversion", "keys", "kv/kvpb", "server/autoupgrade", "nodeid"}, thirdParty: anything},
	"upgradecluster":        {ours: []string{"clusterversion", "group0", "keys", "kv", "kv/kvpb", "migrations", "nodeapi", "server/autoupgrade", "server/console", "server/status", "settings", "sql/rowenc", "sql/users", "upgrademanager", "nodeid"}, thirdParty: anything},
	"demo":                  {ours: []string{"server/localcluster", "nodeapi", "clusterversion"}, thirdParty: anything},
	"cmd/kvnode":            {ours: []string{"server", "server/pausepoint", "demo", "nodeapi", "clusterversion", "security", "nodeid"}, thirdParty: anything},
	"roachtest/...":         {ours: []string{"clusterversion", "roachtest/..."}, thirdParty: anything},
}

const architectureDoc = "ARCHITECTURE.md"

// lookupRule returns the rule that governs pkg and the table key it came
// from: an exact row wins, then the longest "X/..." row that covers pkg.
func lookupRule(pkg string) (archRule, string, bool) {
	if r, ok := archRules[pkg]; ok {
		return r, pkg, true
	}
	best := ""
	for key := range archRules {
		if base, ok := strings.CutSuffix(key, "/..."); ok && within(pkg, base) && len(key) > len(best) {
			best = key
		}
	}
	if best == "" {
		return archRule{}, "", false
	}
	return archRules[best], best, true
}

// within reports whether pkg is base or below it.
func within(pkg, base string) bool {
	return pkg == base || strings.HasPrefix(pkg, base+"/")
}

// allows reports whether import path p matches one of the patterns: "..."
// matches anything, "X/..." matches X and every path below it, and a plain
// "X" matches X itself, or also the paths below it if prefixMatch is set (used
// for third-party modules, whose subpackages belong to the same module).
func allows(patterns []string, p string, prefixMatch bool) bool {
	for _, pat := range patterns {
		switch base, isTree := strings.CutSuffix(pat, "/..."); {
		case pat == "...":
			return true
		case isTree && within(p, base):
			return true
		case p == pat || (prefixMatch && within(p, pat)):
			return true
		}
	}
	return false
}

func describe(patterns []string) string {
	switch {
	case len(patterns) == 0:
		return "none"
	case slices.Equal(patterns, anything):
		return "any"
	}
	return strings.Join(patterns, ", ")
}

func describeRule(key string, r archRule) string {
	return fmt.Sprintf("rule %q (may import ours: %s; third-party: %s)", key, describe(r.ours), describe(r.thirdParty))
}

// goPackage is one package directory of the module and its non-test imports.
type goPackage struct {
	rel     string // directory relative to the module root, slash-separated
	files   []string
	imports map[string][]importSite // import path -> where
	hasDoc  bool
}

type importSite struct {
	file string
	line int
}

func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatalf("architecture test must run at the module root: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// ignoredByBuildTag reports whether the file is excluded from every build by
// a `//go:build ignore`-style constraint (generators and the like).
func ignoredByBuildTag(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if !constraint.IsGoBuild(c.Text) {
				continue
			}
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				return false
			}
			all := expr.Eval(func(string) bool { return true })
			noIgnore := expr.Eval(func(tag string) bool { return tag != "ignore" })
			return all && !noIgnore
		}
	}
	return false
}

// loadPackages parses (imports only) every non-test .go file under the module
// root, skipping .git, vendor, testdata, dot/underscore directories and nested
// modules.
func loadPackages(t *testing.T) map[string]*goPackage {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string]*goPackage{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p == "." {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not ours to police
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
		if ignoredByBuildTag(f) {
			return nil
		}
		rel := filepath.ToSlash(filepath.Dir(p))
		pkg := pkgs[rel]
		if pkg == nil {
			pkg = &goPackage{rel: rel, imports: map[string][]importSite{}}
			pkgs[rel] = pkg
		}
		pkg.files = append(pkg.files, filepath.ToSlash(p))
		if name == "doc.go" {
			pkg.hasDoc = f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != ""
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: bad import %s", p, imp.Path.Value)
			}
			pkg.imports[ip] = append(pkg.imports[ip], importSite{file: filepath.ToSlash(p), line: fset.Position(imp.Pos()).Line})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func isStdlib(importPath string) bool {
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}

// violations checks every package against its rule and returns one message
// per offending import (or unlisted package), sorted.
func violations(mod string, pkgs map[string]*goPackage) []string {
	var out []string
	for _, pkg := range pkgs {
		rule, key, ok := lookupRule(pkg.rel)
		if !ok {
			out = append(out, fmt.Sprintf(
				"package %s (%s) is not in the dependency table: add a row for it to the table in %s "+
					"(what it may import, and why) and the same entry to archRules in architecture_test.go",
				path.Join(mod, pkg.rel), strings.Join(pkg.files, ", "), architectureDoc))
			continue
		}
		for ip, sites := range pkg.imports {
			var bad bool
			switch {
			case ip == mod || strings.HasPrefix(ip, mod+"/"):
				bad = !allows(rule.ours, strings.TrimPrefix(strings.TrimPrefix(ip, mod), "/"), false)
			case isStdlib(ip):
				bad = false
			default:
				bad = !allows(rule.thirdParty, ip, true)
			}
			if !bad {
				continue
			}
			for _, s := range sites {
				out = append(out, fmt.Sprintf("%s:%d: package %s imports %q, which is not allowed by %s; "+
					"see the dependency table in %s",
					s.file, s.line, pkg.rel, ip, describeRule(key, rule), architectureDoc))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestArchitectureImports(t *testing.T) {
	mod := modulePath(t)
	pkgs := loadPackages(t)
	if len(pkgs) == 0 {
		t.Fatal("found no Go packages; is the test running at the module root?")
	}
	for _, v := range violations(mod, pkgs) {
		t.Error(v)
	}
}

func TestArchitectureDocGo(t *testing.T) {
	pkgs := loadPackages(t)
	var rels []string
	for rel := range pkgs {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		if !pkgs[rel].hasDoc {
			t.Errorf("%s has no doc.go with a package comment: every package opens with a doc.go that says "+
				"what it does, how it is layered and what it deliberately does not do (STYLE.md 1)", rel)
		}
	}
}

// TestArchitectureRulesSelfCheck exercises the matcher on known cases, so a
// bug in the test itself cannot pass everything.
func TestArchitectureRulesSelfCheck(t *testing.T) {
	const mod = "github.com/kvnode/kvnode"
	pkg := func(rel string, imports ...string) *goPackage {
		p := &goPackage{rel: rel, files: []string{rel + "/x.go"}, imports: map[string][]importSite{}}
		for _, ip := range imports {
			p.imports[ip] = []importSite{{file: rel + "/x.go", line: 3}}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pkg  *goPackage
		want int // number of violations
	}{
		{"leaf with std and errors", pkg("clusterversion", "fmt", "github.com/cockroachdb/errors"), 0},
		{"leaf with another third-party module", pkg("clusterversion", "github.com/cockroachdb/pebble"), 1},
		{"leaf importing ours", pkg("clusterversion", mod+"/kv/kvpb"), 1},
		{"keys is a leaf of the standard library", pkg("keys", "encoding/binary"), 0},
		{"keys imports nothing of ours", pkg("keys", mod+"/storage"), 1},
		{"keys imports no third-party module", pkg("keys", "github.com/cockroachdb/errors"), 1},
		{"peers may use keys", pkg("liveness", mod+"/keys"), 0},
		{"kv does not know the layout above it", pkg("kv", mod+"/keys"), 1},
		{"kv may use storage and rpc", pkg("kv", mod+"/storage", mod+"/rpc", mod+"/kv/kvpb", "go.etcd.io/raft/v3"), 0},
		{"storage may not use kv", pkg("storage", mod+"/kv"), 1},
		{"peers never import each other", pkg("group0", mod+"/liveness", mod+"/clusterversion"), 1},
		{"sql may import any sql subpackage", pkg("sql", mod+"/sql/pgwire", mod+"/sql/catalog/descs"), 0},
		{"sql subpackage may not import pgwire", pkg("sql/catalog", mod+"/sql/pgwire"), 1},
		{"unnamed sql subpackage follows sql/...", pkg("sql/sem", mod+"/sql/catalog", mod+"/server"), 1},
		{"parser may not import its own subpackages unless listed", pkg("sql/parser", mod+"/sql/parser/lex"), 1},
		{"cmd/kvnode imports server only", pkg("cmd/kvnode", mod+"/server", mod+"/kv"), 1},
		{"nodeapi never imports server", pkg("nodeapi", mod+"/rpc", mod+"/server"), 1},
		{"group0's runtime may run Raft and call nodes", pkg("group0/member", mod+"/group0", mod+"/kv", mod+"/storage", mod+"/nodeapi"), 0},
		{"group0's runtime knows no executor and no server", pkg("group0/member", mod+"/sql", mod+"/server"), 2},
		{"group0's decisions stay pure", pkg("group0", mod+"/kv", mod+"/group0/member"), 2},
		{"the recovery from a lost majority never imports server", pkg("kv/loqrecovery", mod+"/kv", mod+"/nodeapi", mod+"/server"), 1},
		{"the status surface never imports server", pkg("server/status", mod+"/server/console", mod+"/server"), 1},
		{"decommissioning never imports server", pkg("liveness/decommission", mod+"/liveness", mod+"/server"), 1},
		{"the upgrade's cluster never imports server", pkg("upgradecluster", mod+"/upgrademanager", mod+"/server"), 1},
		{"the cluster's SQL never imports server", pkg("server/clustersql", mod+"/sql", mod+"/server"), 1},
		{"roachtest does not link the server", pkg("roachtest/tests", mod+"/server", mod+"/clusterversion"), 1},
		{"server may import anything", pkg("server", mod+"/kv", mod+"/sql/pgwire", mod+"/gossip"), 0},
		{"unknown package", pkg("util/log"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := violations(mod, map[string]*goPackage{tc.pkg.rel: tc.pkg})
			if len(got) != tc.want {
				t.Errorf("got %d violations, want %d: %q", len(got), tc.want, got)
			}
		})
	}
}

var (
	tableBegin = "<!-- dependency-table:begin -->"
	tableEnd   = "<!-- dependency-table:end -->"
	backticked = regexp.MustCompile("`([^`]+)`")
)

// parseCell reads a "may import" cell: `none`, `any`, or a list of
// backticked paths.
func parseCell(cell string) ([]string, error) {
	cell = strings.TrimSpace(cell)
	switch cell {
	case "none":
		return nil, nil
	case "any":
		return anything, nil
	}
	ms := backticked.FindAllStringSubmatch(cell, -1)
	if len(ms) == 0 {
		return nil, fmt.Errorf("cell %q is neither none, any, nor a list of `paths`", cell)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m[1])
	}
	return out, nil
}

// parseArchitectureTable reads the dependency table between the
// dependency-table markers of ARCHITECTURE.md. Columns: package, may import
// (ours), third-party, why (free text, not compared).
func parseArchitectureTable(doc string) (map[string]archRule, error) {
	_, rest, ok := strings.Cut(doc, tableBegin)
	if !ok {
		return nil, fmt.Errorf("no %s marker", tableBegin)
	}
	body, _, ok := strings.Cut(rest, tableEnd)
	if !ok {
		return nil, fmt.Errorf("no %s marker", tableEnd)
	}
	rules := map[string]archRule{}
	rows := 0
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		rows++
		if rows <= 2 { // header and |---| separator
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			return nil, fmt.Errorf("row %q has fewer than 3 columns", line)
		}
		key := backticked.FindStringSubmatch(cells[0])
		if key == nil {
			return nil, fmt.Errorf("row %q: the package column must be a `path`", line)
		}
		ours, err := parseCell(cells[1])
		if err != nil {
			return nil, fmt.Errorf("row %q, column 2: %w", line, err)
		}
		third, err := parseCell(cells[2])
		if err != nil {
			return nil, fmt.Errorf("row %q, column 3: %w", line, err)
		}
		if _, dup := rules[key[1]]; dup {
			return nil, fmt.Errorf("package %s appears twice", key[1])
		}
		rules[key[1]] = archRule{ours: ours, thirdParty: third}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("the table between the markers has no rows")
	}
	return rules, nil
}

func TestArchitectureTableMatchesDoc(t *testing.T) {
	raw, err := os.ReadFile(architectureDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseArchitectureTable(string(raw))
	if err != nil {
		t.Fatalf("%s: dependency table: %v", architectureDoc, err)
	}
	norm := func(s []string) []string {
		s = slices.Clone(s)
		sort.Strings(s)
		return s
	}
	for key, want := range archRules {
		got, ok := doc[key]
		switch {
		case !ok:
			t.Errorf("archRules has %q but the table in %s does not; add the row", key, architectureDoc)
		case !slices.Equal(norm(got.ours), norm(want.ours)) || !slices.Equal(norm(got.thirdParty), norm(want.thirdParty)):
			t.Errorf("%q differs: %s says %s; architecture_test.go says %s",
				key, architectureDoc, describeRule(key, got), describeRule(key, want))
		}
	}
	for key := range doc {
		if _, ok := archRules[key]; !ok {
			t.Errorf("the table in %s has %q but archRules in architecture_test.go does not; add it", architectureDoc, key)
		}
	}
}
