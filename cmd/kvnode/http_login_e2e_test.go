package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/security"
)

// TestSecureStatusPageLogin: on a secure node (real process), /health and
// /metrics are open; the status page redirects to /login and /_status/*
// answers 401 with the fix; a wrong password, an unknown user and a
// non-admin are refused (and logged); an admin's password gives a session
// cookie that opens the page and /_status/*, until /logout; an admin's
// client certificate opens them without a login, another user's does not.
func TestSecureStatusPageLogin(t *testing.T) {
	certs := secureCerts(t)
	n := newProcs(t, 1)[0]
	n.args = []string{"start-single-node", "--certs-dir=" + certs, "--store=" + n.store, "--listen-addr=" + n.listen,
		"--gossip-addr=" + n.gossip, "--sql-addr=" + n.sql, "--http-addr=" + n.httpA}
	n.start()
	waitReadyTLS(t, n, certs)
	root := secureURL(n, certs, "root")
	mustPsql(t, root, "CREATE USER opsadmin WITH PASSWORD 'ops-pass-1'")
	mustPsql(t, root, "GRANT admin TO opsadmin")
	mustPsql(t, root, "CREATE USER alice WITH PASSWORD 'alice-pass-1'")

	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := func(cert *tls.Config) *http.Client {
		jar, _ := cookiejar.New(nil)
		cfg := &tls.Config{RootCAs: pool}
		if cert != nil {
			cfg = cert
		}
		return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	base := "https://" + n.httpA
	get := func(c *http.Client, path string) (int, string, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	login := func(c *http.Client, user, pw string) (int, string, string) {
		t.Helper()
		resp, err := c.PostForm(base+"/login", url.Values{"username": {user}, "password": {pw}, "next": {"/?live=1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}

	anon := client(nil)
	for _, p := range []string{"/health", "/metrics"} {
		if code, _, _ := get(anon, p); code != 200 {
			t.Fatalf("%s without a login: %d", p, code)
		}
	}
	if code, loc, _ := get(anon, "/"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
		t.Fatalf("/ without a login: %d %q", code, loc)
	}
	for _, p := range []string{"/_status/node", "/_status/console", "/debug/pprof/"} {
		if code, _, body := get(anon, p); code != http.StatusUnauthorized || !strings.Contains(body, "/login") {
			t.Fatalf("%s without a login: %d %s", p, code, body)
		}
	}
	if code, _, body := get(anon, "/login"); code != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /login: %d %s", code, body)
	}
	for _, tc := range []struct{ user, pw, reason string }{
		{"opsadmin", "wrong-guess", "wrong password"},
		{"mallory", "x", "the user does not exist"},
	} {
		if code, _, body := login(anon, tc.user, tc.pw); code != http.StatusUnauthorized || !strings.Contains(body, "login failed") {
			t.Fatalf("login %s: %d %s", tc.user, code, body)
		}
		waitLog(t, n, `msg="refused an HTTP login" user=`+tc.user, 10*time.Second)
	}
	if code, _, body := login(anon, "alice", "alice-pass-1"); code != http.StatusForbidden || !strings.Contains(body, "GRANT admin TO alice") {
		t.Fatalf("login as a non-admin: %d %s", code, body)
	}

	admin := client(nil)
	if code, loc, _ := login(admin, "opsadmin", "ops-pass-1"); code != http.StatusSeeOther || loc != "/?live=1" {
		t.Fatalf("admin login: %d %q", code, loc)
	}
	for _, p := range []string{"/", "/_status/node", "/_status/console"} {
		if code, _, body := get(admin, p); code != 200 {
			t.Fatalf("%s after login: %d %s", p, code, body)
		}
	}
	if code, _, _ := get(admin, "/logout"); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := get(admin, "/_status/node"); code != http.StatusUnauthorized {
		t.Fatalf("/_status/node after logout: %d", code)
	}

	// Client certificates: root's opens everything, alice's (not an admin)
	// does not.
	for _, tc := range []struct {
		user string
		want int
	}{{"root", 200}, {"alice", http.StatusForbidden}} {
		cfg, err := security.LoadClientTLS(certs, tc.user)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, body := get(client(cfg), "/_status/node"); code != tc.want {
			t.Fatalf("/_status/node with %s's certificate: %d %s", tc.user, code, body)
		}
	}
	// Guessing is throttled per user and address (5 free failures, then
	// 1s, 2s, 4s...): after eight wrong passwords even the right one gets
	// 429 with Retry-After for a while, the node logs it and counts it, an
	// unknown user is throttled alike, and SQL from the same address shares
	// the limit (28000).
	for _, user := range []string{"opsadmin", "nobody"} {
		for i := 0; i < 8; i++ {
			if code, _, _ := login(anon, user, "wrong-guess"); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
				t.Fatalf("wrong password %d for %s: %d", i+1, user, code)
			}
		}
		resp, err := anon.PostForm(base+"/login", url.Values{"username": {user}, "password": {"ops-pass-1"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many failed attempts") {
			t.Fatalf("%s after eight failures: %d %q %s", user, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		waitLog(t, n, `msg="refused an HTTP login: too many failed password attempts" user=`+user, 10*time.Second)
	}
	pwURL := "postgresql://opsadmin:ops-pass-1@" + n.sql + "/defaultdb?sslmode=require&connect_timeout=10"
	psqlErr(t, pwURL, "SELECT 1", "too many failed password attempts")
	if _, _, metrics := get(anon, "/metrics"); !strings.Contains(metrics, `kvnode_auth_throttled_total{interface="http"}`) ||
		!strings.Contains(metrics, `kvnode_auth_password_failures_total{interface="http"}`) {
		t.Fatalf("/metrics lacks the login limiter's counters")
	}
	// No password reaches the log.
	for _, s := range []string{"ops-pass-1", "alice-pass-1", "wrong-guess"} {
		if strings.Contains(n.log.String(), s) {
			t.Fatalf("the node's log contains %q", s)
		}
	}
}
