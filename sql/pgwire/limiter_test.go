package pgwire

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kvnode/kvnode/testutil"
)

// TestLoginLimiter: Free failures pass, then each failure doubles the wait
// up to Max; a success clears the pair; pairs are per user and host (not
// port); an idle pair is forgotten after Forget; at most MaxEntries pairs
// are kept (the least recently failed goes first); nil limits nothing.
func TestLoginLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLoginLimiter(LoginLimits{Free: 2, Base: time.Second, Max: 8 * time.Second, Forget: time.Minute, MaxEntries: 3,
		Now: func() time.Time { return now }}, prometheus.NewRegistry())
	const a = "10.0.0.1:5000"
	var delays []time.Duration
	for i := 0; i < 7; i++ {
		if w, _ := l.Allow("sql", "alice", a); w > 0 {
			now = now.Add(w)
		}
		delays = append(delays, l.Failed("sql", "alice", a))
	}
	if want := []time.Duration{0, 0, 1, 2, 4, 8, 8}; !slices.Equal(delays, scale(want, time.Second)) {
		t.Fatalf("delays %v, want %v seconds", delays, want)
	}
	if w, n := l.Allow("sql", "alice", "10.0.0.1:6000"); w != 8*time.Second || n != 7 {
		t.Fatalf("another port of the same host: wait %v after %d failures", w, n)
	}
	if w, _ := l.Allow("sql", "alice", "10.0.0.2:5000"); w != 0 {
		t.Fatal("another host is throttled")
	}
	if w, _ := l.Allow("sql", "bob", a); w != 0 {
		t.Fatal("another user is throttled")
	}
	now = now.Add(8 * time.Second)
	l.Succeeded("alice", a)
	if w, n := l.Allow("sql", "alice", a); w != 0 || n != 0 {
		t.Fatalf("after a success: wait %v, %d failures", w, n)
	}
	// Forget: an idle pair goes.
	l.Failed("http", "bob", a)
	now = now.Add(time.Minute)
	if l.Allow("sql", "bob", a); l.Len() != 0 {
		t.Fatalf("%d pairs after Forget", l.Len())
	}
	// Bounded: a fourth pair evicts the least recently failed.
	for i := 0; i < 4; i++ {
		l.Failed("sql", fmt.Sprint("u", i), a)
		now = now.Add(time.Millisecond)
	}
	if l.Len() != 3 {
		t.Fatalf("%d pairs, at most 3", l.Len())
	}
	if _, n := l.Allow("sql", "u0", a); n != 0 {
		t.Fatal("the least recently failed pair was kept")
	}
	if _, n := l.Allow("sql", "u3", a); n != 1 {
		t.Fatal("the newest pair was dropped")
	}
	if got := counterValue(l.failures.WithLabelValues("sql")); got != 11 {
		t.Fatalf("sql failures metric %v, want 11", got)
	}
	var nl *LoginLimiter
	if w, _ := nl.Allow("sql", "x", a); w != 0 || nl.Failed("sql", "x", a) != 0 || nl.Len() != 0 {
		t.Fatal("a nil limiter limits")
	}
	nl.Succeeded("x", a)
}

func scale(ds []time.Duration, u time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d * u
	}
	return out
}

// TestPasswordAuthThrottled: over SQL, past the free failures a user and
// address are refused with 28000 before any exchange, the right password
// included, and the node logs it; an unknown user is throttled the same
// way (the limiter cannot tell users apart); another user is not; the
// metrics count failures and refusals; a client that hangs up mid-exchange
// is not counted.
func TestPasswordAuthThrottled(t *testing.T) {
	v, err := SCRAMVerifier("right")
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeSQL()
	sess := &passwordSQL{fakeSQL: fake, passwords: true, verifier: v}
	lim := NewLoginLimiter(LoginLimits{Free: 2, Base: time.Hour}, prometheus.NewRegistry())
	var logs testutil.SyncBuffer
	ts := startServer(t, Config{Sessions: sess, TLS: selfSigned(t), Limiter: lim,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ctx := testContext(t)
	url := func(user, pw string) string {
		return "postgres://" + user + ":" + pw + "@" + ts.addr + "/defaultdb?sslmode=require&connect_timeout=10"
	}
	code := func(user, pw string) (string, string) {
		_, err := pgconn.Connect(ctx, url(user, pw))
		var pe *pgconn.PgError
		if err == nil {
			return "", ""
		}
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v", user, err)
		}
		return pe.Code, pe.Message
	}
	for _, user := range []string{"alice", "mallory"} {
		for i := 0; i < 2; i++ {
			if c, _ := code(user, "wrong"); c != "28P01" {
				t.Fatalf("%s failure %d: %s, want 28P01", user, i+1, c)
			}
		}
		if c, _ := code(user, "wrong"); c != "28P01" {
			t.Fatalf("%s's third failure: %s (the free failures are counted before the refusal)", user, c)
		}
		c, msg := code(user, "right")
		if c != "28000" || !strings.Contains(msg, "too many failed password attempts") {
			t.Fatalf("%s throttled: %s %q, want 28000", user, c, msg)
		}
	}
	if !strings.Contains(logs.String(), "refused a SQL connection: too many failed password attempts") {
		t.Fatal("no log line for the throttled login")
	}
	if got := counterValue(lim.failures.WithLabelValues("sql")); got != 6 {
		t.Fatalf("failures metric %v, want 6", got)
	}
	if got := counterValue(lim.throttled.WithLabelValues("sql")); got != 2 {
		t.Fatalf("throttled metric %v, want 2", got)
	}
	// carol (no password) from the same address is a pair of its own.
	if c, _ := code("carol", "x"); c != "28P01" {
		t.Fatalf("carol: %s", c)
	}
	// Succeeding clears: a fresh limiter, two failures, a success, two more
	// failures are still free.
	lim2 := NewLoginLimiter(LoginLimits{Free: 2, Base: time.Hour}, nil)
	ts2 := startServer(t, Config{Sessions: sess, TLS: selfSigned(t), Limiter: lim2})
	url2 := func(pw string) string {
		return "postgres://alice:" + pw + "@" + ts2.addr + "/defaultdb?sslmode=require&connect_timeout=10"
	}
	for _, pw := range []string{"wrong", "wrong", "right", "wrong", "wrong", "right"} {
		conn, err := pgx.Connect(ctx, url2(pw))
		if (err == nil) != (pw == "right") {
			t.Fatalf("password %q: %v", pw, err)
		}
		if conn != nil {
			_ = conn.Close(ctx)
		}
	}
}

// TestCheckLoginPasswordTiming: the login form's check does the same work
// for an unknown user (and one without a password) as for a real user with
// a wrong password, so its timing does not tell which users exist. Before
// the fix the unknown user's answer skipped the key derivation and came
// back about a thousand times faster.
func TestCheckLoginPasswordTiming(t *testing.T) {
	v, err := SCRAMVerifier("right")
	if err != nil {
		t.Fatal(err)
	}
	real := UserAuth{Passwords: true, Exists: true, Verifier: v}
	if !CheckLoginPassword(real, "alice", "right") || CheckLoginPassword(real, "alice", "wrong") {
		t.Fatal("a real user's check is wrong")
	}
	for _, ua := range []UserAuth{{Passwords: true}, {Passwords: true, Exists: true}, {Passwords: true, Exists: true, Verifier: "junk"}} {
		if CheckLoginPassword(ua, "mallory", "right") {
			t.Fatalf("%+v accepted", ua)
		}
	}
	median := func(fn func()) time.Duration {
		var ds []time.Duration
		for i := 0; i < 15; i++ {
			start := time.Now()
			fn()
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known := median(func() { CheckLoginPassword(real, "alice", "wrong") })
	unknown := median(func() { CheckLoginPassword(UserAuth{Passwords: true}, "mallory", "wrong") })
	noPassword := median(func() { CheckLoginPassword(UserAuth{Passwords: true, Exists: true}, "carol", "wrong") })
	t.Logf("median check: real user %v, unknown user %v, user without a password %v", known, unknown, noPassword)
	// The work is the same (4096 PBKDF2 iterations); a loose bound keeps a
	// loaded machine from failing it, and catches a skipped derivation
	// (microseconds against milliseconds).
	if unknown < known/4 || noPassword < known/4 {
		t.Fatalf("an unknown user's check (%v) or a passwordless one's (%v) is much faster than a real one's (%v)", unknown, noPassword, known)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
