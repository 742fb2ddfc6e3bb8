package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The status page in a real browser: Debian's Chromium, headless, driven
// over the DevTools protocol by chromedp, against a cluster of real
// processes. scripts/test.sh installs Chromium and sets
// KVNODE_REQUIRE_BROWSER=1, so that in CI a missing browser fails the
// test instead of skipping it.

// pageBanner is one banner as the browser shows it.
type pageBanner struct {
	Kind     string   `json:"kind"`
	Severity string   `json:"severity"`
	NodeID   string   `json:"node"`
	Title    string   `json:"title"`
	Detail   string   `json:"detail"`
	Fix      []string `json:"fix"`
}

func (b pageBanner) String() string {
	return fmt.Sprintf("[%s %s node=%s] %s | %s | fix: %s", b.Severity, b.Kind, b.NodeID, b.Title, b.Detail, strings.Join(b.Fix, " ; "))
}

type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string // screenshots
	shot int
}

func chromiumPath() string {
	if p := os.Getenv("KVNODE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts headless Chromium with the flags this machine's closed
// network needs (no background connections, no component updates) and an
// empty profile. It is stopped when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("KVNODE_REQUIRE_BROWSER") != "" {
			t.Fatal("Chromium is not installed; scripts/test.sh installs Debian's chromium package")
		}
		t.Skip("Chromium is not installed (scripts/test.sh installs Debian's chromium package)")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("window-size", "1400,1000"),
		// Secure nodes serve HTTPS with the test's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser and its tab on ctx itself: a first run on a
	// derived context (with a timeout) would tie the tab to that context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	dir := os.Getenv("KVNODE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "kvnode-artifacts")
	}
	dir = filepath.Join(dir, "console", t.Name())
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", dir)
	return &browser{t: t, ctx: ctx, dir: dir}
}

func (b *browser) open(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#banners")); err != nil {
		b.t.Fatalf("opening %s: %v", url, err)
	}
}

func eval[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

const bannersJS = `Array.from(document.querySelectorAll('#banners .banner')).map(b => ({
  kind: b.dataset.kind || '', severity: b.dataset.severity || '', node: b.dataset.nodeId || '',
  title: (b.querySelector('.banner-title') || b).innerText,
  detail: b.querySelector('.banner-detail') ? b.querySelector('.banner-detail').innerText : '',
  fix: Array.from(b.querySelectorAll('.banner-fix code')).map(c => c.innerText)}))`

func (b *browser) banners() ([]pageBanner, error) { return eval[[]pageBanner](b, bannersJS) }

func (b *browser) text(selector string) string {
	s, _ := eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ''}).innerText`, selector))
	return strings.TrimSpace(s)
}

// waitBanner waits until the page (refreshing itself; never reloaded)
// shows a banner of kind that passes check, and returns it.
func (b *browser) waitBanner(kind string, within time.Duration, check func(pageBanner) error) pageBanner {
	b.t.Helper()
	var found pageBanner
	b.waitPage(within, "failed-waiting-for-"+kind, func() error {
		bs, err := b.banners()
		if err != nil {
			return err
		}
		var why error
		for _, x := range bs {
			if x.Kind != kind {
				continue
			}
			if why = check(x); why == nil {
				found = x
				return nil
			}
		}
		return fmt.Errorf("no %s banner (last check: %v); the page shows:\n%s", kind, why, dumpBanners(bs))
	})
	return found
}

// waitPage polls check on the page until it passes; if it does not within
// the bound, it saves a screenshot named shot and fails with check's last
// error.
func (b *browser) waitPage(within time.Duration, shot string, check func() error) {
	b.t.Helper()
	if err := poll(within, 300*time.Millisecond, check); err != nil {
		b.screenshot(shot)
		b.t.Fatalf("after %s: %v\nconnection: %s", within, err, b.text("#conn-state"))
	}
}

// waitGone waits until no banner of kind is shown.
func (b *browser) waitGone(kind string, within time.Duration) {
	b.t.Helper()
	b.waitPage(within, "failed-waiting-for-no-"+kind, func() error {
		bs, err := b.banners()
		if err != nil {
			return err
		}
		for _, x := range bs {
			if x.Kind == kind {
				return fmt.Errorf("the %s banner is still there:\n%s", kind, dumpBanners(bs))
			}
		}
		return nil
	})
}

func dumpBanners(bs []pageBanner) string {
	var lines []string
	for _, x := range bs {
		lines = append(lines, "  "+x.String())
	}
	return strings.Join(lines, "\n")
}

// screenshot saves the whole page as NN-name.png in the artifacts folder.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.shot++
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

func says(parts ...string) func(pageBanner) error {
	return func(x pageBanner) error {
		text := x.Title + "\n" + x.Detail + "\n" + strings.Join(x.Fix, "\n")
		for _, p := range parts {
			if !strings.Contains(text, p) {
				return fmt.Errorf("%q does not say %q", x.String(), p)
			}
		}
		return nil
	}
}

// dumpGoroutines saves every running node's goroutines next to the
// screenshots, for a page that stopped answering.
func dumpGoroutines(t *testing.T, dir string, ps []*proc) {
	c := http.Client{Timeout: 10 * time.Second}
	for i, p := range ps {
		r, err := c.Get("http://" + p.httpA + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("goroutines-n%d.txt", i+1)), b, 0o644)
	}
}

// runFix runs a `kvnode ...` command exactly as a banner's fix prints it.
func runFix(t *testing.T, fix string) string {
	t.Helper()
	if !strings.HasPrefix(fix, "kvnode ") {
		t.Fatalf("not a kvnode command: %q", fix)
	}
	out, err := kvnodeCLI(t, strings.Fields(strings.TrimPrefix(fix, "kvnode "))...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", fix, err, out)
	}
	return out
}

// TestConsoleBannersInChromium walks a three-node cluster of real
// processes through a rolling upgrade 1.1 -> 2.0 and brings about each
// banner of the status page in turn, with one browser tab that is never
// reloaded (the page refreshes itself, also across the restart of the
// node that serves it):
//   - none, on a healthy cluster;
//   - several binary versions;
//   - every node upgraded, but finalization held back by the preserve
//     option (for how long) and by cluster.auto_upgrade.enabled = false;
//   - a draining node;
//   - a dead node that blocks finalization, fixed by running the
//     decommission command the banner prints;
//   - the group 0 upgrade waiting (at a testing pause point) with the
//     nodes in synchronize;
//   - none again, once finalized with every node in
//     use_post_raft_procedures;
//   - nodes in group 0 recovery mode, fixed by the group0-recover commands
//     the banner prints.
func TestConsoleBannersInChromium(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed (scripts/test.sh installs Debian's postgresql-client)")
	}
	b := newBrowser(t)
	bin11, bin20 := buildRelease(t, "1.1"), buildRelease(t, "2.0")
	ps := newProcs(t, 3)
	t.Cleanup(func() {
		if t.Failed() {
			dumpGoroutines(t, b.dir, ps)
		}
	})
	// One at a time, so that ps[i] gets node ID i+1.
	for i, p := range ps {
		p.bin = bin11
		p.args = append(p.args, "--auto-upgrade-interval=300ms")
		p.start()
		if i == 0 {
			if out, err := exec.Command(bin11, "init", "--insecure", "--host="+ps[0].listen).CombinedOutput(); err != nil {
				t.Fatalf("init: %v: %s", err, out)
			}
		}
		p.waitReady(t)
	}
	mustPsql(t, ps[0].url(), "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	mustPsql(t, ps[0].url(), "INSERT INTO kv VALUES (1, 'one'), (2, 'two')")

	b.open("http://" + ps[0].httpA + "/")
	b.waitBanner("none", 30*time.Second, says("Nothing needs your attention"))
	if v := b.text("#cluster-version"); v != "1.1" {
		t.Fatalf("cluster version on the page: %q", v)
	}
	if n, err := eval[int](b, `document.querySelectorAll('#nodes tbody tr').length`); err != nil || n != 3 {
		t.Fatalf("node rows: %d %v", n, err)
	}
	b.screenshot("healthy-1.1")

	// Hold finalization back, then upgrade node 1: its own page goes away
	// during the restart and comes back by itself.
	mustPsql(t, ps[0].url(), "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.1'")
	restartOn(t, ps[0], bin20)
	b.waitBanner("mixed_versions", 60*time.Second, says("nodes 2, 3 run 1.1; node 1 runs 2.0", "can still be rolled back",
		"restart node 2 on the 2.0 binary: kvnode node drain --host="+ps[1].listen))
	b.screenshot("mixed-versions")

	restartOn(t, ps[1], bin20)
	// The 2.0 nodes pause the group 0 upgrade before merging the schemas,
	// until release exists (a testing-only pause point), so that the page
	// can be read while the upgrade waits.
	release := filepath.Join(t.TempDir(), "release-group0")
	for _, p := range ps {
		p.env = []string{"KVNODE_TESTING_GROUP0_PAUSE=sync-schema:" + release}
	}
	restartOn(t, ps[0], bin20)
	restartOn(t, ps[1], bin20)
	restartOn(t, ps[2], bin20)
	b.waitBanner("not_finalized", 60*time.Second, says("Every node runs 2.0, but the cluster version is still 1.1",
		"cluster.preserve_downgrade_option is set to '1.1' (for ", "RESET CLUSTER SETTING cluster.preserve_downgrade_option;"))
	b.waitGone("mixed_versions", 30*time.Second)
	b.screenshot("not-finalized-preserve")
	mustPsql(t, ps[1].url(), "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	b.waitBanner("not_finalized", 30*time.Second, says("cluster.auto_upgrade.enabled is false", "SET CLUSTER SETTING version = '2.0';"))
	b.screenshot("not-finalized-auto-upgrade-off")
	mustPsql(t, ps[1].url(), "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true")

	// A draining node.
	if out, err := kvnodeCLI(t, "node", "drain", "--host="+ps[2].listen); err != nil {
		t.Fatalf("drain: %v: %s", err, out)
	}
	x := b.waitBanner("draining_node", 30*time.Second, says("Node 3 is draining"))
	if x.NodeID != "3" {
		t.Fatalf("draining banner: %s", x)
	}
	b.screenshot("draining")
	restartOn(t, ps[2], bin20) // a restart ends the drain
	b.waitGone("draining_node", 30*time.Second)

	// Node 3 dies; once the preserve option is reset, it is what blocks.
	ps[2].kill()
	mustPsql(t, ps[0].url(), "RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	dead := b.waitBanner("dead_node", 60*time.Second, func(x pageBanner) error {
		if x.Severity != "critical" {
			return fmt.Errorf("severity %s", x.Severity)
		}
		return says("Node 3 is", "and blocks the upgrade to 2.0", "kvnode node decommission 3 --host=")(x)
	})
	b.screenshot("dead-node-blocks")
	if v := b.text("#cluster-version"); v != "1.1" {
		t.Fatalf("finalized with a dead node: %q", v)
	}
	runFix(t, dead.Fix[0])
	// The upgrade runs, and waits at the pause point with both nodes in
	// synchronize.
	b.waitBanner("group0_waiting", 90*time.Second, says("The group 0 upgrade is waiting", "merging the schema of node(s) 1, 2",
		"Nodes 1, 2 in synchronize: DDL issued now waits"))
	b.screenshot("group0-waiting")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitPage(90*time.Second, "failed-waiting", func() error {
		if v := b.text("#cluster-version"); v != "2.0" {
			return fmt.Errorf("cluster version on the page: %q", v)
		}
		for _, id := range []string{"1", "2"} {
			if g := b.text(fmt.Sprintf(`#nodes tr[data-node-id="%s"] .col-group0`, id)); !strings.HasPrefix(g, "use_post_raft_procedures") {
				return fmt.Errorf("node %s group 0: %q", id, g)
			}
		}
		if m := b.text(`#nodes tr[data-node-id="3"] .col-membership`); m != "decommissioned" {
			return fmt.Errorf("node 3 membership: %q", m)
		}
		return nil
	})
	b.waitBanner("none", 30*time.Second, says("Nothing needs your attention"))
	b.screenshot("finalized-2.0")

	// Node 2 enters group 0 recovery mode (the runbook's step 2). With
	// two voters left, group 0 has no majority without it, so the runbook
	// puts node 1 in recovery too and re-forms group 0 from both.
	mustPsql(t, ps[1].url(), "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'")
	restartOn(t, ps[1], bin20)
	b.waitBanner("group0_recovery", 60*time.Second, says("Node 2 is in group 0 recovery mode", "kvnode node group0-recover"))
	b.screenshot("group0-recovery")
	mustPsql(t, ps[0].url(), "UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'")
	restartOn(t, ps[0], bin20) // the page's own node: it comes back by itself
	rec := b.waitBanner("group0_recovery", 60*time.Second, says("Nodes 1, 2 are in group 0 recovery mode"))
	if len(rec.Fix) != 2 || !strings.HasSuffix(rec.Fix[0], "--dry-run") {
		t.Fatalf("recovery fix: %s", rec)
	}
	if out := runFix(t, rec.Fix[0]); !strings.Contains(out, "re-form") {
		t.Fatalf("dry run: %s", out)
	}
	runFix(t, rec.Fix[1])
	b.waitGone("group0_recovery", 60*time.Second)
	b.waitBanner("none", 30*time.Second, says("Nothing needs your attention"))
	b.screenshot("recovered")
	if got := mustPsql(t, ps[1].url(), "SELECT count(*) FROM kv"); got != "2" {
		t.Fatalf("rows after it all: %s", got)
	}
	if refreshes, err := eval[string](b, `document.body.dataset.refreshes`); err != nil || refreshes == "0" {
		t.Fatalf("the page did not refresh itself: %q %v", refreshes, err)
	}
}
