package pgwire

import (
	"container/list"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LoginLimiter slows down password guessing: it counts failed password
// logins per user and remote address (host, without the port) and, past
// Free failures, refuses further attempts of that pair for a delay that
// doubles with each failure (Base, 2*Base, ... up to Max). A success
// clears the pair; a pair without a failure for Forget is forgotten. At
// most MaxEntries pairs are tracked: past that the least recently failed
// pair is dropped, so memory is bounded whatever an attacker sends (the
// price: a flood of distinct pairs can make the limiter forget one).
//
// The limiter is the same for an unknown user, a user without a password
// and a wrong password: its answers say nothing about which users exist.
// SQL (password path of the startup) and the status page's login form share
// one limiter per node; the interface label of its metrics says which was
// used. Certificate logins are never limited. A nil *LoginLimiter limits
// nothing.
type LoginLimiter struct {
	cfg LoginLimits

	mu      sync.Mutex
	entries map[loginKey]*list.Element // of *loginEntry
	lru     *list.List                 // front: most recent failure

	failures  *prometheus.CounterVec
	throttled *prometheus.CounterVec
	tracked   prometheus.GaugeFunc
}

// LoginLimits configure a LoginLimiter; zero fields take the defaults.
type LoginLimits struct {
	Free       int           // failures allowed before any delay (default 5)
	Base       time.Duration // first delay (default 1s)
	Max        time.Duration // longest delay (default 1m)
	Forget     time.Duration // idle time after which a pair is forgotten (default 15m)
	MaxEntries int           // pairs tracked at most (default 10000)
	Now        func() time.Time
}

type loginKey struct{ user, host string }

type loginEntry struct {
	key      loginKey
	failures int
	last     time.Time // last failure
	until    time.Time // refused until then
}

// NewLoginLimiter makes a limiter and registers its metrics with reg (if
// not nil): kvnode_auth_password_failures_total and
// kvnode_auth_throttled_total by interface, kvnode_auth_throttle_tracked.
func NewLoginLimiter(cfg LoginLimits, reg prometheus.Registerer) *LoginLimiter {
	if cfg.Free == 0 {
		cfg.Free = 5
	}
	if cfg.Base == 0 {
		cfg.Base = time.Second
	}
	if cfg.Max == 0 {
		cfg.Max = time.Minute
	}
	if cfg.Forget == 0 {
		cfg.Forget = 15 * time.Minute
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &LoginLimiter{cfg: cfg, entries: map[loginKey]*list.Element{}, lru: list.New()}
	l.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kvnode", Subsystem: "auth", Name: "password_failures_total",
		Help: "Failed password logins (wrong password, unknown user or no password) by interface (sql, http).",
	}, []string{"interface"})
	l.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kvnode", Subsystem: "auth", Name: "throttled_total",
		Help: "Password logins refused without a check because their user and address failed too often, by interface.",
	}, []string{"interface"})
	l.tracked = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kvnode", Subsystem: "auth", Name: "throttle_tracked",
		Help: "User and address pairs with recent failed password logins that the limiter tracks.",
	}, func() float64 { return float64(l.Len()) })
	if reg != nil {
		reg.MustRegister(l.failures, l.throttled, l.tracked)
	}
	return l
}

// RemoteHost is the part of a remote address the limiter keys on: the
// host, without the port (each connection has a new port).
func RemoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Allow says whether user may try a password from remoteAddr now; if not,
// how long until it may, and the refusal is counted under iface.
func (l *LoginLimiter) Allow(iface, user, remoteAddr string) (wait time.Duration, failures int) {
	if l == nil {
		return 0, 0
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	el, ok := l.entries[loginKey{user, RemoteHost(remoteAddr)}]
	if !ok {
		return 0, 0
	}
	e := el.Value.(*loginEntry)
	if wait = e.until.Sub(now); wait > 0 {
		l.throttled.WithLabelValues(iface).Inc()
		return wait, e.failures
	}
	return 0, e.failures
}

// Failed records a failed password login and returns the delay the pair
// must now wait (0 while under Free failures).
func (l *LoginLimiter) Failed(iface, user, remoteAddr string) (delay time.Duration) {
	if l == nil {
		return 0
	}
	l.failures.WithLabelValues(iface).Inc()
	now := l.cfg.Now()
	k := loginKey{user, RemoteHost(remoteAddr)}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	var e *loginEntry
	if el, ok := l.entries[k]; ok {
		e = el.Value.(*loginEntry)
		l.lru.MoveToFront(el)
	} else {
		for l.lru.Len() >= l.cfg.MaxEntries {
			l.removeLocked(l.lru.Back())
		}
		e = &loginEntry{key: k}
		l.entries[k] = l.lru.PushFront(e)
	}
	e.failures++
	e.last = now
	if over := e.failures - l.cfg.Free; over > 0 {
		delay = l.cfg.Base
		for i := 1; i < over && delay < l.cfg.Max; i++ {
			delay *= 2
		}
		delay = min(delay, l.cfg.Max)
		e.until = now.Add(delay)
	}
	return delay
}

// Succeeded clears the pair's failures.
func (l *LoginLimiter) Succeeded(user, remoteAddr string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[loginKey{user, RemoteHost(remoteAddr)}]; ok {
		l.removeLocked(el)
	}
}

// Len is the number of pairs tracked.
func (l *LoginLimiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// expireLocked forgets the pairs idle for Forget (the back of the list is
// the least recently failed).
func (l *LoginLimiter) expireLocked(now time.Time) {
	for el := l.lru.Back(); el != nil; el = l.lru.Back() {
		e := el.Value.(*loginEntry)
		if now.Sub(e.last) < l.cfg.Forget || now.Before(e.until) {
			return
		}
		l.removeLocked(el)
	}
}

func (l *LoginLimiter) removeLocked(el *list.Element) {
	delete(l.entries, el.Value.(*loginEntry).key)
	l.lru.Remove(el)
}
