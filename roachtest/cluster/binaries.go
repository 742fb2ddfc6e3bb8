package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
)

// ModulePath is the module kvnode is built from; Builder refuses a tree
// whose go.mod names another module.
const ModulePath = "github.com/kvnode/kvnode"

// DefaultRelease is the release name that means "the tree's own default":
// the binary is built without -ldflags and reports the newest release.
const DefaultRelease = ""

// Binary is one kvnode executable and the release it reports.
type Binary struct {
	// Release is what `kvnode version` printed, e.g. "1.1".
	Release string
	// Asked is the release it was asked for: "" for the tree's default.
	Asked string
	// Path is the executable.
	Path string
	// Origin says where it came from, for logs and plans.
	Origin string
}

// Name is a short label for logs: "kvnode-1.1" or "kvnode-default(2.0)".
func (b *Binary) Name() string {
	if b == nil {
		return "<no binary>"
	}
	if b.Asked == DefaultRelease {
		return "kvnode-default(" + b.Release + ")"
	}
	return "kvnode-" + b.Release
}

// Builder produces kvnode binaries at a release. It is safe for concurrent
// use; builds of one release are done once per Builder.
type Builder struct {
	// RepoRoot is the module root to build from. Empty: found by walking up
	// from the working directory to the go.mod of ModulePath.
	RepoRoot string
	// CacheDir holds built binaries, one directory per tree key. Empty:
	// $KVNODE_ROACHTEST_CACHE, else <user cache dir>/kvnode-roachtest/bin.
	CacheDir string
	// Keep is how many tree keys to keep in CacheDir (older ones are pruned
	// after a build). Zero means 6: enough for a few trees edited side by
	// side, small enough that a day of edits does not fill the disk.
	Keep int
	// Logf, if set, receives one line per build.
	Logf func(format string, args ...any)

	mu        sync.Mutex
	key       string
	overrides map[string]string  // release -> path given by the user
	done      map[string]*Binary // release asked -> binary
	buildMu   sync.Mutex         // one build (or cache check) at a time
}

// Override makes release come from the executable at path instead of a
// build, for example a real older build. The binary is checked (by running
// `path version`) when it is first used.
func (b *Builder) Override(release, path string) error {
	if release != DefaultRelease {
		if _, err := clusterversion.ParseRelease(release); err != nil {
			return errors.Wrapf(err, "--binary %s=%s", release, path)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overrides == nil {
		b.overrides = map[string]string{}
	}
	b.overrides[release] = abs
	return nil
}

// OverrideFromList applies a comma-separated list of R=PATH overrides (R is
// a release or "default"), the format of $ROACHTEST_BINARIES and of the
// CLI's repeated --binary flag.
func (b *Builder) OverrideFromList(list string) error {
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		rel, path, ok := strings.Cut(item, "=")
		if !ok || path == "" {
			return errors.WithHint(errors.Newf("binary override %q is not R=PATH", item),
				"for example 1.1=/opt/kvnode-1.1/kvnode; R is 1.0, 1.1, 2.0 or default")
		}
		if rel == "default" {
			rel = DefaultRelease
		}
		if err := b.Override(rel, path); err != nil {
			return err
		}
	}
	return nil
}

// Binary returns the kvnode binary of release ("" for the tree's default),
// building it if needed. The error says which release failed and why.
func (b *Builder) Binary(ctx context.Context, release string) (*Binary, error) {
	want := release
	if release == DefaultRelease {
		want = clusterversion.Latest.String()
	} else if _, err := clusterversion.ParseRelease(release); err != nil {
		return nil, errors.Wrapf(err, "kvnode release %q", release)
	}
	b.mu.Lock()
	if bin, ok := b.done[release]; ok {
		b.mu.Unlock()
		return bin, nil
	}
	override, hasOverride := b.overrides[release]
	b.mu.Unlock()

	var bin *Binary
	var err error
	if hasOverride {
		bin, err = checkBinary(ctx, override, release, want)
		if err == nil {
			bin.Origin = "given path " + override
		}
	} else {
		bin, err = b.build(ctx, release, want)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		b.done = map[string]*Binary{}
	}
	if prev, ok := b.done[release]; ok {
		return prev, nil
	}
	b.done[release] = bin
	return bin, nil
}

func (b *Builder) logf(format string, args ...any) {
	if b.Logf != nil {
		b.Logf(format, args...)
	}
}

// build compiles release into the cache, unless the cache already holds it
// for this tree.
func (b *Builder) build(ctx context.Context, release, want string) (*Binary, error) {
	root, err := b.root()
	if err != nil {
		return nil, err
	}
	key, err := b.treeKey(root)
	if err != nil {
		return nil, err
	}
	cache, err := b.cacheDir()
	if err != nil {
		return nil, err
	}
	name := "kvnode-" + release
	if release == DefaultRelease {
		name = "kvnode-default"
	}
	dir := filepath.Join(cache, key)
	out := filepath.Join(dir, name)
	origin := "built from " + root + " (tree " + key + ")"
	// One build at a time: concurrent builds of one release would do the
	// work twice, and builds of different releases only fight for the CPU.
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if _, err := os.Stat(out); err == nil {
		bin, err := checkBinary(ctx, out, release, want)
		if err == nil {
			now := time.Now()
			_ = os.Chtimes(dir, now, now) // pruning keeps the most recently used trees
			b.logf("binary %s: cached %s", bin.Name(), out)
			bin.Origin = origin + ", cached"
			return bin, nil
		}
		// A broken cache entry (a crashed copy, a wrong release) is rebuilt.
		b.logf("binary %s: cached %s is unusable (%v); rebuilding", name, out, err)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Build to a temporary name and rename: another process building the
	// same key at the same time never sees, or runs, a half-written file.
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return nil, err
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpPath)
	args := []string{"build"}
	if release != DefaultRelease {
		args = append(args, "-ldflags", "-X "+ModulePath+"/clusterversion.binaryVersion="+release)
	}
	args = append(args, "-o", tmpPath, "./cmd/kvnode")
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.WithHint(errors.Wrapf(err, "building kvnode release %s", displayRelease(release)),
			"roachtest builds kvnode with the go tool: put it on PATH, or pass binaries with --binary R=PATH")
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return nil, errors.WithHintf(
			errors.Newf("building kvnode release %s failed (go %s, in %s): %v\n%s",
				displayRelease(release), strings.Join(args, " "), root, err, strings.TrimSpace(buf.String())),
			"fix the build error above; `go build ./cmd/kvnode` in %s shows the same", root)
	}
	bin, err := checkBinary(ctx, tmpPath, release, want)
	if err != nil {
		return nil, errors.Wrapf(err, "the freshly built kvnode release %s does not work", displayRelease(release))
	}
	// If the sources changed while go build ran (someone is editing the
	// tree), the binary is of no known tree: use it for this run, but do
	// not file it under the key, where a later run would take it for the
	// tree the key names.
	if after, err := TreeKey(root); err != nil || after != key {
		unstable, err := os.MkdirTemp(cache, "unstable-")
		if err != nil {
			return nil, err
		}
		out = filepath.Join(unstable, name)
		origin = "built from " + root + " while its files changed (not cached)"
		b.logf("binary %s: the tree changed during the build (%s -> %s); not caching it", name, key, after)
	}
	if err := os.Rename(tmpPath, out); err != nil {
		return nil, err
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // pruning keeps the most recently used trees
	bin.Path = out
	bin.Origin = origin
	b.logf("binary %s: built %s in %s", bin.Name(), out, time.Since(start).Round(100*time.Millisecond))
	b.prune(cache, key)
	return bin, nil
}

func displayRelease(r string) string {
	if r == DefaultRelease {
		return "default (" + clusterversion.Latest.String() + ")"
	}
	return r
}

// checkBinary runs `path version` and checks that it reports release want.
func checkBinary(ctx context.Context, path, asked, want string) (*Binary, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").CombinedOutput()
	if err != nil {
		return nil, errors.Newf("%s version: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	first, _, _ := strings.Cut(string(out), "\n")
	got, ok := strings.CutPrefix(strings.TrimSpace(first), "kvnode ")
	if !ok {
		return nil, errors.Newf("%s version printed %q, not \"kvnode RELEASE\": is it a kvnode binary?", path, first)
	}
	if got != want {
		return nil, errors.WithHintf(errors.Newf("%s reports release %s, but release %s was asked for", path, got, want),
			"pass a binary of release %s, or build one with -ldflags \"-X %s/clusterversion.binaryVersion=%s\"", want, ModulePath, want)
	}
	return &Binary{Release: got, Asked: asked, Path: path}, nil
}

func (b *Builder) root() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.RepoRoot != "" {
		return b.RepoRoot, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := FindModuleRoot(wd)
	if err != nil {
		return "", err
	}
	b.RepoRoot = root
	return root, nil
}

// FindModuleRoot walks up from dir to the directory whose go.mod declares
// ModulePath.
func FindModuleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePathOf(data) == ModulePath {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.WithHintf(errors.Newf("no go.mod of %s above %s", ModulePath, dir),
				"run roachtest inside the kvnode tree (e.g. `go run ./roachtest` from its root)")
		}
	}
}

func modulePathOf(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

func (b *Builder) cacheDir() (string, error) {
	if b.CacheDir != "" {
		return b.CacheDir, nil
	}
	if d := os.Getenv("KVNODE_ROACHTEST_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "kvnode-roachtest", "bin"), nil
}

// treeKey names the tree being built, once per Builder so that one run uses
// one consistent set of binaries even if files change during it.
func (b *Builder) treeKey(root string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.key != "" {
		return b.key, nil
	}
	k, err := TreeKey(root)
	if err != nil {
		return "", err
	}
	b.key = k
	return k, nil
}

// TreeKey is the cache key of the source tree at root: the short commit
// (or "nogit") and a hash of the content of every file the binary is built
// from. The commit makes cache directories recognizable; the content hash
// is what makes the key correct: it changes with any edit, staged or not,
// tracked or not, so a dirty tree never reuses a binary built from other
// sources (hashing `git status` alone would miss a second edit of an
// already-modified file).
//
// Hashed: go.mod, go.sum and every non-test .go, .s, .c and .h file, except
// under roachtest/ (the binary cannot link it, see ARCHITECTURE.md), testdata
// and hidden directories.
func TreeKey(root string) (string, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			base := d.Name()
			if rel != "." && (strings.HasPrefix(base, ".") || base == "testdata" || rel == "roachtest" || base == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if buildInput(rel) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", errors.Wrapf(err, "hashing the tree at %s", root)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		h.Write([]byte(f))
		h.Write([]byte{0})
		h.Write(sum[:])
	}
	commit := "nogit"
	cmd := exec.Command("git", "rev-parse", "--short=12", "HEAD")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		commit = string(bytes.TrimSpace(out))
	}
	return commit + "-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

func buildInput(rel string) bool {
	if rel == "go.mod" || rel == "go.sum" {
		return true
	}
	if strings.HasSuffix(rel, "_test.go") {
		return false
	}
	switch filepath.Ext(rel) {
	case ".go", ".s", ".c", ".h":
		return true
	}
	return false
}

// prune removes all but the b.Keep most recently used tree directories.
func (b *Builder) prune(cache, current string) {
	keep := b.Keep
	if keep <= 0 {
		keep = 6
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	type dirAge struct {
		name string
		mod  time.Time
	}
	var dirs []dirAge
	for _, e := range entries {
		if !e.IsDir() || e.Name() == current {
			continue
		}
		if info, err := e.Info(); err == nil {
			dirs = append(dirs, dirAge{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mod.After(dirs[j].mod) })
	for i, d := range dirs {
		if i+1 >= keep { // +1: the current tree counts
			_ = os.RemoveAll(filepath.Join(cache, d.name))
		}
	}
}
