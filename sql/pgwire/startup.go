package pgwire

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// Request codes that take the place of a protocol version in the first
// packet (PostgreSQL's pqcomm.h).
const (
	cancelRequestCode = 80877102
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	// maxStartupPacketLen is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacketLen = 10000
	// supportedMinor is the newest minor version of protocol 3 spoken here.
	supportedMinor = 0
)

var errBadStartupLength = errors.New("invalid length of startup packet")

// startup runs the handshake, from the first packet to the first
// ReadyForQuery. It returns the connection's Session, or a nil Session when
// the connection is finished: a CancelRequest was handled, the client left,
// or it was refused (the error, already sent as FATAL, is returned for the
// log).
//
// The handshake reads from the socket directly rather than through
// pgproto3.Backend.ReceiveStartupMessage so that it can tell a client of
// another protocol version what is wrong instead of just failing to decode.
func (c *conn) startup() (Session, error) {
	// Under mu, so that a Drain's interruptStartup cannot be overwritten.
	c.mu.Lock()
	deadline := time.Now().Add(startupTimeout)
	if c.draining() {
		deadline = time.Now()
	}
	_ = c.nc.SetReadDeadline(deadline)
	c.mu.Unlock()
	var sslDone, gssDone bool
	for {
		code, body, err := readStartupPacket(c.rw)
		if err != nil {
			if isTimeout(err) && c.draining() {
				return nil, c.fatal(errDrained, pgerror.Newf(pgerror.CodeCannotConnectNow, "the database system is shutting down"))
			}
			if errors.Is(err, errBadStartupLength) {
				return nil, c.fatal(err, pgerror.Newf(pgerror.CodeProtocolViolation, "%v", err))
			}
			// EOF (a port probe), or a client too slow to say hello.
			return nil, errors.Mark(errors.Wrap(err, "reading startup packet"), errClientGone)
		}

		switch code {
		case sslRequestCode, gssEncRequestCode:
			// GSS encryption is not implemented, nor TLS in insecure mode:
			// 'N' tells the client to go on in plaintext (or give up, if it
			// requires encryption). In secure mode SSLRequest gets 'S' and
			// the TLS handshake. Each may be asked once.
			done := &sslDone
			if code == gssEncRequestCode {
				done = &gssDone
			}
			if *done || len(body) != 4 {
				return nil, c.fatal(errors.New("repeated encryption request"),
					pgerror.Newf(pgerror.CodeProtocolViolation, "invalid or repeated SSL/GSS encryption request"))
			}
			*done = true
			if code == sslRequestCode && c.srv.cfg.TLS != nil {
				if err := c.upgradeTLS(); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := c.rw.Write([]byte{'N'}); err != nil {
				return nil, errors.Mark(err, errClientGone)
			}
			continue
		case cancelRequestCode:
			var m pgproto3.CancelRequest
			if err := m.Decode(body); err != nil {
				return nil, errors.Wrap(err, "decoding CancelRequest")
			}
			c.srv.cancelRequest(m.ProcessID, m.SecretKey)
			return nil, nil
		}

		if major := code >> 16; major != 3 {
			return nil, c.fatal(errors.Newf("protocol %d.%d", major, code&0xffff), pgerror.Newf(
				pgerror.CodeFeatureNotSupported, "unsupported frontend protocol %d.%d: server supports 3.0 to 3.%d",
				major, code&0xffff, supportedMinor))
		}
		c.mu.Lock()
		c.inStartup = false
		_ = c.nc.SetReadDeadline(time.Time{})
		c.mu.Unlock()
		return c.openSession(code&0xffff, body)
	}
}

// openSession handles a protocol 3 StartupMessage.
func (c *conn) openSession(minor uint32, body []byte) (Session, error) {
	// pgproto3 decodes only the minor versions it knows; the parameters'
	// layout is the same for every 3.x, and the version is negotiated
	// below, so decode the body as 3.0.
	binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
	var sm pgproto3.StartupMessage
	if err := sm.Decode(body); err != nil {
		return nil, c.fatal(err, pgerror.Newf(pgerror.CodeProtocolViolation, "invalid startup packet: %v", err))
	}

	if !c.admitted {
		return nil, c.fatal(errors.New("too many connections"),
			pgerror.Newf(pgerror.CodeTooManyConnections, "sorry, too many clients already"))
	}
	if c.draining() {
		return nil, c.fatal(errDrained, pgerror.Newf(pgerror.CodeCannotConnectNow, "the database system is shutting down"))
	}

	// Options named _pq_.* are protocol extensions; none is supported.
	// A client that asked for a newer minor version or for extensions is
	// told what it gets, before authentication, as the protocol requires.
	params := make(map[string]string, len(sm.Parameters))
	var unrecognized []string
	for k, v := range sm.Parameters {
		if strings.HasPrefix(k, "_pq_.") {
			unrecognized = append(unrecognized, k)
			continue
		}
		params[k] = v
	}
	if minor > supportedMinor || len(unrecognized) > 0 {
		slices.Sort(unrecognized)
		c.w.send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: supportedMinor, UnrecognizedOptions: unrecognized})
	}

	if r := params["replication"]; r != "" && r != "false" && r != "off" && r != "no" && r != "0" {
		return nil, c.fatal(errors.New("replication connection"),
			pgerror.Newf(pgerror.CodeFeatureNotSupported, "replication connections are not supported"))
	}
	args := SessionArgs{
		User:       params["user"],
		Database:   params["database"],
		RemoteAddr: c.nc.RemoteAddr().String(),
		Params:     params,
		ProcessID:  c.id,
		Statements: connStatements{c},
	}
	if args.User == "" {
		return nil, c.fatal(errors.New("no user"),
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "no PostgreSQL user name specified in startup packet"))
	}
	if err := c.authenticate(args.User); err != nil {
		return nil, err
	}

	var sess Session
	err := c.guard("opening a session", func() error {
		var err error
		sess, err = c.srv.cfg.Sessions.NewSession(c.ctx, args)
		return err
	})
	if err == nil && sess == nil {
		err = errors.AssertionFailedf("SessionFactory returned neither a session nor an error")
	}
	if err != nil {
		return nil, c.fatal(err, err)
	}

	c.w.send(&pgproto3.AuthenticationOk{})
	for _, p := range [][2]string{
		// Drivers pick features by it; version() says the same.
		{"server_version", ServerVersion},
		{"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"application_name", params["application_name"]},
		// The session's own values (ParameterReporter); these are the
		// defaults of a session that reports none.
		{"is_superuser", "off"},
		{"session_authorization", args.User},
	} {
		if r, ok := sess.(ParameterReporter); ok {
			if v, ok := r.ReportedParameter(p[0]); ok {
				p[1] = v
			}
		}
		c.w.send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	c.w.send(&pgproto3.BackendKeyData{ProcessID: c.id, SecretKey: c.secret[:]})
	c.readyForQuery()
	if err := c.w.flush(); err != nil {
		_ = c.guard("closing the session", func() error { sess.Close(); return nil })
		return nil, err
	}
	c.log.Debug("connection open", "user", args.User, "database", args.Database)
	return sess, nil
}

// upgradeTLS answers an SSLRequest in secure mode: 'S', then the TLS
// handshake (within the startup deadline already set on the socket); the
// rest of the connection runs over TLS.
func (c *conn) upgradeTLS() error {
	if _, err := c.rw.Write([]byte{'S'}); err != nil {
		return errors.Mark(err, errClientGone)
	}
	tc := tls.Server(c.nc, c.srv.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		// The client cannot be told in the protocol: it never got a TLS
		// session. The log says why (a certificate from another CA, a
		// client that does not trust ours, ...).
		c.log.Warn("refused a SQL connection: TLS handshake failed", "err", err)
		return errors.Mark(errors.Wrap(err, "TLS handshake"), errClientGone)
	}
	c.rw = tc
	c.w.w = tc
	return nil
}

// authenticate checks the startup's user in secure mode: the connection must
// be TLS; a client certificate signed by the cluster's CA (the handshake
// checked that) whose common name is user authenticates it; otherwise the
// client proves it knows the user's password with SCRAM-SHA-256 (auth.go),
// once the SessionFactory offers passwords (release 2.1). Insecure mode
// admits everyone.
func (c *conn) authenticate(user string) error {
	if c.srv.cfg.TLS == nil {
		return nil
	}
	tc, ok := c.rw.(*tls.Conn)
	if !ok {
		c.log.Warn("refused a SQL connection: plaintext in secure mode", "user", user)
		return c.fatal(errors.New("plaintext connection in secure mode"), pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "this node runs in secure mode: connections must use TLS"),
			"%s", "connect with sslmode=verify-full (and sslrootcert=the cluster's ca.crt, sslcert and sslkey a client certificate from `kvnode cert create-client`), or sslmode=require with a password"))
	}
	cs := tc.ConnectionState()
	var cn string
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		cn = cs.VerifiedChains[0][0].Subject.CommonName
		if cn == user {
			return nil
		}
	}
	var ua UserAuth
	if pa, ok := c.srv.cfg.Sessions.(PasswordAuth); ok {
		if err := c.guard("looking up the user", func() error {
			var err error
			ua, err = pa.UserAuth(c.ctx, user)
			return err
		}); err != nil {
			c.log.Warn("refused a SQL connection: the users could not be read", "user", user, "err", err)
			return c.fatal(err, err)
		}
	}
	if ua.Passwords {
		lim, remote := c.srv.cfg.Limiter, c.nc.RemoteAddr().String()
		if wait, failures := lim.Allow("sql", user, remote); wait > 0 {
			retry := wait.Round(time.Second) + time.Second
			c.log.Warn("refused a SQL connection: too many failed password attempts", "user", user, "failures", failures, "retry_after", retry)
			return c.fatal(errors.New("too many failed password attempts"), pgerror.WithHintf(
				pgerror.Newf(pgerror.CodeInvalidAuthorization, "too many failed password attempts for user %q from this address; try again in %s", user, retry),
				"%s", "each failure past the first few doubles the wait (up to a minute); a successful login, or 15 minutes without a failure, clears it"))
		}
		// A failure is counted by authenticatePassword, before the client
		// hears of it.
		err := c.authenticatePassword(user, ua, cs)
		if err == nil {
			lim.Succeeded(user, remote)
		}
		return err
	}
	if cn == "" {
		c.log.Warn("refused a SQL connection: no client certificate", "user", user)
		return c.fatal(errors.New("no client certificate"), pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidAuthorization, "certificate authentication failed for user %q: no client certificate", user),
			"%s", "pass sslcert and sslkey: a client certificate for the user, created with `kvnode cert create-client "+user+"` (passwords arrive with cluster version 2.1)"))
	}
	c.log.Warn("refused a SQL connection: certificate of another user", "user", user, "certificate_cn", cn)
	return c.fatal(errors.Newf("certificate for %q", cn), pgerror.WithHintf(
		pgerror.Newf(pgerror.CodeInvalidAuthorization, "certificate authentication failed for user %q: the certificate is for user %q", user, cn),
		"%s", "connect as the user the certificate names, or use that user's certificate (client.USER.crt)"))
}

// readStartupPacket reads one length-prefixed startup packet and returns its
// leading code (protocol version or request code) and the whole body.
func readStartupPacket(r io.Reader) (uint32, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[:]))) - 4
	if n < 4 || n > maxStartupPacketLen {
		return 0, nil, errors.Wrapf(errBadStartupLength, "%d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(body), body, nil
}

// draining reports whether Drain or Close has begun.
func (c *conn) draining() bool {
	select {
	case <-c.srv.drainCh:
		return true
	default:
		return false
	}
}

// interruptStartup makes a handshake blocked on the socket fail now, so
// Drain need not wait for a silent client's startup timeout.
func (c *conn) interruptStartup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inStartup {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
