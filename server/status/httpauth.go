package status

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvnode/kvnode/security"
	"github.com/kvnode/kvnode/sql/pgwire"
)

// The status page's login (secure mode). /health and /metrics stay open
// (load balancers and Prometheus); everything else (the status page,
// /_status/*, /debug/pprof/*) needs an admin: a client certificate of the
// cluster's CA whose user is root, a node or an admin (curl --cert), or a
// session cookie from the login form (/login), which checks the user's
// password against its SCRAM verifier. Sessions live in the memory of the
// node that made them, for httpSessionLifetime: a login is per node, and a
// restart logs everyone out (CockroachDB keeps its web sessions in a system
// table; kvnode's console is one node's page). Insecure mode keeps every
// path open, as before.

const (
	httpSessionCookie   = "kvnode_session"
	httpSessionLifetime = 12 * time.Hour
)

type httpSession struct {
	user    string
	expires time.Time
}

// httpSessions maps the SHA-256 of a session token to its session: the
// tokens themselves are only in the browsers' cookies.
type httpSessions struct {
	mu sync.Mutex
	m  map[[32]byte]httpSession
}

func (h *httpSessions) create(user string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[[32]byte]httpSession{}
	}
	now := time.Now()
	for k, s := range h.m {
		if now.After(s.expires) {
			delete(h.m, k)
		}
	}
	h.m[sha256.Sum256([]byte(tok))] = httpSession{user: user, expires: now.Add(httpSessionLifetime)}
	return tok, nil
}

func (h *httpSessions) lookup(tok string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.m[sha256.Sum256([]byte(tok))]
	if !ok || time.Now().After(s.expires) {
		return "", false
	}
	return s.user, true
}

func (h *httpSessions) delete(tok string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, sha256.Sum256([]byte(tok)))
}

// httpOpen lists the paths served without a login.
func httpOpen(path string) bool {
	return path == "/health" || path == "/metrics" || path == "/login" || path == "/logout" ||
		strings.HasPrefix(path, "/_console/") // the page's static script and style
}

// isAdmin reports whether user may see the status page: a node, root, or
// an admin of the users store.
func (s *Status) isAdmin(ctx context.Context, user string) bool {
	if user == security.NodeUser || user == security.RootUser {
		return true
	}
	users := s.node.Users()
	if users == nil {
		return false
	}
	ok, err := users.IsAdmin(ctx, user)
	return err == nil && ok
}

// requireAdmin wraps the HTTP handler in secure mode.
func (s *Status) requireAdmin(next http.Handler) http.Handler {
	if !s.cfg.Secure {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpOpen(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		var user string
		if r.TLS != nil {
			if u, err := security.PeerUser(*r.TLS); err == nil {
				user = u
			}
		}
		if user == "" {
			if c, err := r.Cookie(httpSessionCookie); err == nil {
				user, _ = s.sessions.lookup(c.Value)
			}
		}
		switch {
		case user == "":
			if r.Method == http.MethodGet && r.URL.Path == "/" {
				http.Redirect(w, r, "/login?next="+template.URLQueryEscaper(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			httpRefuse(w, http.StatusUnauthorized, "this node runs in secure mode: log in first",
				"log in as an admin at /login (a user with a password: ALTER USER name WITH PASSWORD '...'), "+
					"or present an admin's client certificate (curl --cacert ca.crt --cert client.root.crt --key client.root.key)")
		case !s.isAdmin(r.Context(), user):
			httpRefuse(w, http.StatusForbidden, "user "+user+" is not an admin",
				"an admin can make it one: GRANT admin TO "+user)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func httpRefuse(w http.ResponseWriter, code int, msg, hint string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "hint": hint})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>kvnode: log in</title>
<style>body{font-family:system-ui,sans-serif;max-width:26em;margin:4em auto}label,input,button{display:block;width:100%;margin:.4em 0}
input,button{box-sizing:border-box}input{padding:.4em}.err{color:#a00}</style></head>
<body><h1>kvnode</h1><p>Log in as an admin to see this node's status.</p>
{{if .Error}}<p class="err" id="login-error">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="next" value="{{.Next}}">
<label>User <input name="username" id="username" autocomplete="username" value="{{.User}}" required></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button>
</form></body></html>
`))

type loginData struct{ Error, Next, User string }

// safeNext keeps a redirect after login on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// serveLogin is GET /login (the form) and POST /login (check the password
// and make a session).
func (s *Status) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !s.cfg.Secure {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	switch r.Method {
	case http.MethodGet:
		_ = loginPage.Execute(w, loginData{Next: safeNext(r.URL.Query().Get("next"))})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	user, password, next := r.PostForm.Get("username"), r.PostForm.Get("password"), safeNext(r.PostForm.Get("next"))
	fail := func(code int, reason, shown string) {
		s.cfg.Log.Warn("refused an HTTP login", "user", user, "remote", r.RemoteAddr, "reason", reason)
		w.WriteHeader(code)
		_ = loginPage.Execute(w, loginData{Error: shown, Next: next, User: user})
	}
	exec := s.node.Users()
	if exec == nil {
		fail(http.StatusServiceUnavailable, "SQL is not started", "this node is not serving yet; try again in a moment")
		return
	}
	if wait, failures := s.cfg.LoginLimiter.Allow("http", user, r.RemoteAddr); wait > 0 {
		retry := wait.Round(time.Second) + time.Second
		s.cfg.Log.Warn("refused an HTTP login: too many failed password attempts", "user", user, "remote", r.RemoteAddr,
			"failures", failures, "retry_after", retry)
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		_ = loginPage.Execute(w, loginData{Error: "too many failed attempts from this address: try again in " + retry.String(), Next: next, User: user})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ua, err := exec.UserAuth(ctx, user)
	switch {
	case err != nil:
		fail(http.StatusServiceUnavailable, "the users could not be read: "+err.Error(), "the users could not be read; try again in a moment")
		return
	case !ua.Passwords:
		fail(http.StatusUnauthorized, "passwords need cluster version 2.1",
			"passwords arrive with cluster version 2.1: until the upgrade is finalized, use an admin's client certificate")
		return
	case !pgwire.CheckLoginPassword(ua, user, password):
		// One answer, after the same work, for an unknown user and a
		// wrong password.
		if d := s.cfg.LoginLimiter.Failed("http", user, r.RemoteAddr); d > 0 {
			s.cfg.Log.Warn("throttling password attempts", "user", user, "remote", r.RemoteAddr, "delay", d)
		}
		reason := "wrong password"
		if !ua.Exists {
			reason = "the user does not exist"
		} else if ua.Verifier == "" {
			reason = "the user has no password"
		}
		fail(http.StatusUnauthorized, reason, "login failed: check the user name and the password")
		return
	}
	s.cfg.LoginLimiter.Succeeded(user, r.RemoteAddr)
	if err := exec.CheckLogin(ctx, user); err != nil {
		fail(http.StatusForbidden, err.Error(), err.Error())
		return
	}
	if !s.isAdmin(ctx, user) {
		fail(http.StatusForbidden, "not an admin", "user "+user+" is not an admin: the status page is for admins (GRANT admin TO "+user+")")
		return
	}
	tok, err := s.sessions.create(user)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error(), "could not create a session")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: httpSessionCookie, Value: tok, Path: "/", MaxAge: int(httpSessionLifetime / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.cfg.Log.Info("HTTP login", "user", user, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// serveLogout ends the session of the request's cookie.
func (s *Status) serveLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(httpSessionCookie); err == nil {
		s.sessions.delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: httpSessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
