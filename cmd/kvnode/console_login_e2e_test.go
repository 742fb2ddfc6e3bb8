package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleLoginInChromium: a secure node's status page, opened in
// headless Chromium, sends the browser to the login form; a wrong password
// shows the error on the form; the admin's password opens the status page,
// whose live refresh keeps working with the session cookie.
func TestConsoleLoginInChromium(t *testing.T) {
	b := newBrowser(t)
	certs := secureCerts(t)
	n := newProcs(t, 1)[0]
	n.args = []string{"start-single-node", "--certs-dir=" + certs, "--store=" + n.store, "--listen-addr=" + n.listen,
		"--gossip-addr=" + n.gossip, "--sql-addr=" + n.sql, "--http-addr=" + n.httpA}
	n.start()
	waitReadyTLS(t, n, certs)
	mustPsql(t, secureURL(n, certs, "root"), "CREATE USER opsadmin WITH PASSWORD 'ops-pass-1'")
	mustPsql(t, secureURL(n, certs, "root"), "GRANT admin TO opsadmin")

	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("https://"+n.httpA+"/?live=1"), chromedp.WaitVisible("#password")); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(loc, "/login?next=") {
		t.Fatalf("not sent to the login form: %s", loc)
	}
	b.screenshot("login-form")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#username", "opsadmin"), chromedp.SendKeys("#password", "not-it"),
		chromedp.Click("#login"), chromedp.WaitVisible("#login-error")); err != nil {
		t.Fatalf("a wrong password: %v", err)
	}
	if got := b.text("#login-error"); !strings.Contains(got, "login failed") {
		t.Fatalf("login error shown: %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#password", "ops-pass-1"), // the form comes back with the user filled in
		chromedp.Click("#login"), chromedp.WaitVisible("#banners")); err != nil {
		t.Fatalf("logging in: %v", err)
	}
	loc, _ = chromedp.Run(ctx, chromedp.Location())
	if !strings.HasSuffix(loc, "/?live=1") {
		t.Fatalf("after login the browser is at %s", loc)
	}
	b.screenshot("status-page-after-login")
	// The page's refresh reads /_status/console with the session cookie.
	status, err := eval[int](b, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/_status/console', false); x.send(); return x.status; })()`)
	if err != nil || status != 200 {
		t.Fatalf("/_status/console from the logged-in page: %d %v", status, err)
	}
}
