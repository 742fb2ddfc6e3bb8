package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
)

// MaxMessageSize is the largest frontend message body the server accepts.
// PostgreSQL's own limit is 1 GiB; a client that sends more than this is
// told so and disconnected before the server allocates the body, so that one
// connection cannot exhaust the node's memory.
const MaxMessageSize = 64 << 20

// startupTimeout bounds the handshake, like PostgreSQL's
// authentication_timeout: a client that connects and sends nothing must not
// hold a connection slot forever.
const startupTimeout = 30 * time.Second

// errServerShutdown is the cancellation cause of every context once the
// server is force-closed (Close, or Drain past its deadline).
var errServerShutdown = errors.New("pgwire: server is shutting down")

// Config configures a Server.
type Config struct {
	// Sessions creates the SQL session of each connection. Required.
	Sessions SessionFactory
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// MaxConns limits concurrent client connections; 0 means unlimited.
	// A connection over the limit completes the handshake and is then
	// refused with SQLSTATE 53300, so the client sees a clear error rather
	// than a reset.
	MaxConns int
	// Metrics is optional.
	Metrics *Metrics
	// TLS, if set, is secure mode: SSLRequest is answered 'S' and the
	// connection continues over TLS with this configuration; a startup
	// without TLS is refused with 28000; and the client authenticates with
	// a certificate signed by the configuration's ClientCAs whose common
	// name is the user it connects as (28000 otherwise). Nil is insecure
	// mode: 'N', plaintext, no authentication.
	TLS *tls.Config
	// Limiter, if set, throttles password logins per user and address
	// (LoginLimiter); nil limits nothing.
	Limiter *LoginLimiter
}

// Server accepts PostgreSQL client connections and serves each one with a
// conn. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	// baseCtx is the parent of every connection's context; forceClose
	// cancels it with errServerShutdown.
	baseCtx    context.Context
	forceClose context.CancelCauseFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	// conns holds every live connection by its BackendKeyData process ID,
	// which is how a CancelRequest finds its target.
	conns    map[uint32]*conn
	admitted int // connections counted against MaxConns
	nextID   uint32
	// shutdown is set once Drain or Close began: nothing new is accepted.
	shutdown bool
	// drainCh is closed at the same moment; idle connections watch it and
	// leave with 57P01.
	drainCh chan struct{}
}

// NewServer returns a server; call Serve to accept connections.
func NewServer(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Server{
		cfg:        cfg,
		log:        log,
		baseCtx:    ctx,
		forceClose: cancel,
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[uint32]*conn),
		drainCh:    make(chan struct{}),
	}
}

// Serve accepts connections on ln until the server is drained or closed, and
// then returns nil. It returns an error if ln fails for another reason. The
// server closes ln on Drain or Close. Serve may be called for several
// listeners.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.Sessions == nil {
		return errors.AssertionFailedf("pgwire: Config.Sessions is required")
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isShutdown() {
				return nil
			}
			// Running out of file descriptors is transient: back off as
			// net/http does instead of giving up on the listener.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.drainCh:
				}
				continue
			}
			return errors.Wrap(err, "pgwire: accept")
		}
		backoff = 0
		s.startConn(nc)
	}
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// startConn registers nc and runs its conn on a new goroutine.
func (s *Server) startConn(nc net.Conn) {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		s.cfg.Metrics.connRejected()
		_ = nc.Close()
		return
	}
	id := s.allocIDLocked()
	admitted := s.cfg.MaxConns <= 0 || s.admitted < s.cfg.MaxConns
	c := newConn(s, nc, id, admitted)
	if admitted {
		s.admitted++
		s.cfg.Metrics.connOpened()
	} else {
		s.cfg.Metrics.connRejected()
	}
	s.conns[id] = c
	s.mu.Unlock()

	go func() {
		defer s.connDone(c)
		if err := c.Run(); err != nil {
			c.log.Debug("connection closed", "err", err)
		}
	}()
}

// allocIDLocked returns an unused, non-zero process ID.
func (s *Server) allocIDLocked() uint32 {
	for {
		s.nextID++
		if _, used := s.conns[s.nextID]; s.nextID != 0 && !used {
			return s.nextID
		}
	}
}

func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	if c.admitted {
		s.admitted--
		s.cfg.Metrics.connClosed()
	}
	s.mu.Unlock()
	close(c.done)
}

// NumConns returns the number of open connections counted against MaxConns.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitted
}

// beginShutdown stops accepting, tells idle connections to leave, and
// returns the connections that must end before shutdown is complete. Once
// shutdown is set, startConn adds nothing, so the returned set is final.
func (s *Server) beginShutdown() []*conn {
	s.mu.Lock()
	if !s.shutdown {
		s.shutdown = true
		close(s.drainCh)
	}
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	return conns
}

// Drain shuts the server down gracefully: it stops accepting connections,
// lets statements in flight finish, and closes every connection at its next
// idle point (after ReadyForQuery) with 57P01. Connections still in their
// handshake are refused with 57P03. If ctx ends first, the remaining
// statements are canceled and their connections closed; Drain then returns
// ctx's error. Either way, every connection has ended when Drain returns.
func (s *Server) Drain(ctx context.Context) error {
	conns := s.beginShutdown()
	for _, c := range conns {
		c.interruptStartup()
	}
	if waitConns(ctx, conns) {
		return nil
	}
	s.log.Warn("drain deadline reached; closing remaining connections")
	s.closeConns(conns)
	waitConns(context.Background(), conns)
	return errors.Wrap(ctx.Err(), "pgwire: drain did not finish in time; remaining connections were closed")
}

// Close shuts the server down at once: it stops accepting, cancels every
// running statement and closes every connection, and waits for their
// goroutines to end. Sessions are expected to honor context cancellation.
func (s *Server) Close() error {
	conns := s.beginShutdown()
	s.closeConns(conns)
	waitConns(context.Background(), conns)
	return nil
}

func (s *Server) closeConns(conns []*conn) {
	s.forceClose(errServerShutdown)
	for _, c := range conns {
		_ = c.nc.Close()
	}
}

// waitConns reports whether all conns ended before ctx did.
func waitConns(ctx context.Context, conns []*conn) bool {
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// cancelRequest handles a CancelRequest: it cancels the statement running
// on the connection with that process ID if the secret matches. Like
// PostgreSQL, it never tells the requester whether anything happened, so a
// stranger cannot probe for process IDs.
func (s *Server) cancelRequest(pid uint32, secret []byte) {
	s.mu.Lock()
	c := s.conns[pid]
	s.mu.Unlock()
	if c == nil || subtle.ConstantTimeCompare(c.secret[:], secret) != 1 {
		s.log.Info("ignoring CancelRequest with unknown process ID or wrong key", "pid", pid)
		return
	}
	c.cancelStatement()
}

// newSecret returns the BackendKeyData secret of a new connection. It must
// be unpredictable: it is the only thing that authorizes a CancelRequest.
func newSecret() [4]byte {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b
}
