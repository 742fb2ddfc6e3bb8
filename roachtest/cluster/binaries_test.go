package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvnode/kvnode/clusterversion"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeTree is a tiny module with the kvnode module path whose cmd/kvnode
// prints "kvnode R" like the real `kvnode version`, with R settable by the
// same -ldflags -X as the real binary. Building it takes a second, where
// the real binary takes many.
func fakeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"go.mod": "module " + ModulePath + "\n\ngo 1.22\n",
		"clusterversion/v.go": `package clusterversion

var binaryVersion string

// Release is the release this binary reports.
func Release() string {
	if binaryVersion == "" {
		return "` + clusterversion.Latest.String() + `"
	}
	return binaryVersion
}
`,
		"cmd/kvnode/main.go": `package main

import (
	"fmt"
	"os"

	"` + ModulePath + `/clusterversion"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Printf("kvnode %s\nminimum supported cluster version: x\n", clusterversion.Release())
		return
	}
	os.Exit(2)
}
`,
	})
	return root
}

func TestTreeKeyFollowsTheSourcesOnly(t *testing.T) {
	root := fakeTree(t)
	key := func() string {
		t.Helper()
		k, err := TreeKey(root)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key()
	if k1 != key() {
		t.Fatal("TreeKey is not stable")
	}
	// Files the binary is not built from do not change the key.
	writeFiles(t, root, map[string]string{
		"cmd/kvnode/main_test.go": "package main\n",
		"roachtest/x.go":          "package main\n",
		"README.md":               "# hi\n",
		"sql/testdata/basic":      "query\n",
	})
	if got := key(); got != k1 {
		t.Errorf("the key changed for files the binary is not built from: %s -> %s", k1, got)
	}
	// An edit of a source file does, and so does a new (untracked) one.
	writeFiles(t, root, map[string]string{"clusterversion/v.go": "package clusterversion\n\nvar binaryVersion string\n// edited\n"})
	k2 := key()
	if k2 == k1 {
		t.Error("the key did not change when a source file changed")
	}
	writeFiles(t, root, map[string]string{"server/new.go": "package server\n"})
	if key() == k2 {
		t.Error("the key did not change when a source file was added")
	}
}

func TestBuilderBuildsCachesAndChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go programs")
	}
	root := fakeTree(t)
	cache := t.TempDir()
	ctx := context.Background()
	var mu sync.Mutex
	var log []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, strings.TrimSpace(strings.ReplaceAll(format, "%s", "")))
		t.Logf(format, args...)
	}
	b := &Builder{RepoRoot: root, CacheDir: cache, Logf: logf}
	for _, rel := range []string{"1.1", DefaultRelease} {
		bin, err := b.Binary(ctx, rel)
		if err != nil {
			t.Fatalf("release %q: %v", rel, err)
		}
		want := rel
		if rel == DefaultRelease {
			want = clusterversion.Latest.String()
		}
		if bin.Release != want || bin.Asked != rel {
			t.Errorf("release %q: got %+v", rel, bin)
		}
	}
	// A second builder (another run) finds them in the cache.
	b2 := &Builder{RepoRoot: root, CacheDir: cache, Logf: logf}
	bin, err := b2.Binary(ctx, "1.1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bin.Origin, "cached") {
		t.Errorf("second build of the same tree was not a cache hit: %s", bin.Origin)
	}
	// A binary given by path must report the release it stands for.
	b3 := &Builder{RepoRoot: root, CacheDir: cache}
	if err := b3.Override("1.0", bin.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := b3.Binary(ctx, "1.0"); err == nil || !strings.Contains(err.Error(), "reports release 1.1, but release 1.0 was asked for") {
		t.Errorf("a 1.1 binary given as 1.0: %v", err)
	}
	if err := b3.Override("9.9", bin.Path); err == nil {
		t.Error("Override accepted an unknown release")
	}
}

func TestBuilderNamesTheReleaseThatFailsToBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go programs")
	}
	root := fakeTree(t)
	writeFiles(t, root, map[string]string{"cmd/kvnode/broken.go": "package main\n\nfunc broken() { undefinedThing() }\n"})
	b := &Builder{RepoRoot: root, CacheDir: t.TempDir()}
	_, err := b.Binary(context.Background(), "1.0")
	if err == nil {
		t.Fatal("a broken tree built")
	}
	for _, want := range []string{"building kvnode release 1.0 failed", "undefinedThing", root} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBuilderRefusesAnUnknownRelease(t *testing.T) {
	b := &Builder{RepoRoot: t.TempDir(), CacheDir: t.TempDir()}
	_, err := b.Binary(context.Background(), "9.9")
	if err == nil || !strings.Contains(err.Error(), `"9.9"`) {
		t.Errorf("release 9.9: %v", err)
	}
}

func TestFindModuleRoot(t *testing.T) {
	root := fakeTree(t)
	got, err := FindModuleRoot(filepath.Join(root, "cmd", "kvnode"))
	if err != nil || got != root {
		t.Errorf("FindModuleRoot = %q, %v; want %q", got, err, root)
	}
	if _, err := FindModuleRoot(t.TempDir()); err == nil {
		t.Error("found a kvnode module outside any")
	}
}
