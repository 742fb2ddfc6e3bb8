package pgwire

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/xdg-go/scram"
)

// The SASL mechanisms offered, strongest first.
const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

// maxSASLMessage bounds a client's SASL message (PostgreSQL's
// PG_MAX_AUTH_TOKEN_LENGTH is 65535; SCRAM messages are far smaller).
const maxSASLMessage = 8192

// errPasswordFailed marks a failed password proof (wrong password, unknown
// user, no password): what the LoginLimiter counts. A client that hangs up
// mid-exchange learned nothing and is not counted.
var errPasswordFailed = errors.New("password authentication failed")

var (
	mockSecretOnce sync.Once
	mockSecret     []byte
)

// serverMockSecret is the per-process key of mockCredentials.
func serverMockSecret() []byte {
	mockSecretOnce.Do(func() {
		mockSecret = make([]byte, 32)
		_, _ = rand.Read(mockSecret)
	})
	return mockSecret
}

// authenticatePassword runs SCRAM-SHA-256 (RFC 5802, 7677) as PostgreSQL
// does: AuthenticationSASL with the mechanisms, the client's
// SASLInitialResponse (client-first), AuthenticationSASLContinue
// (server-first), SASLResponse (client-final), then AuthenticationSASLFinal
// (server-final) on success; AuthenticationOk follows in openSession. Over
// TLS it also offers SCRAM-SHA-256-PLUS with tls-server-end-point channel
// binding, so a client that supports it (libpq's channel_binding=prefer, the
// default) proves the TLS session it authenticates is the one it opened.
//
// An unknown user, or one without a password, goes through the same
// exchange with mock credentials and fails at its end, as a wrong password
// does: the client is told 28P01 and nothing about which it was; the node's
// log says which. The password itself is never seen here, only its proof.
func (c *conn) authenticatePassword(user string, ua UserAuth, cs tls.ConnectionState) error {
	var cb scram.ChannelBinding
	mechs := []string{mechSCRAM}
	served := c.srv.cfg.TLS
	if f := served.GetConfigForClient; f != nil {
		// A reloadable configuration: the certificate served now.
		if cur, err := f(nil); err == nil && cur != nil {
			served = cur
		}
	}
	if cert := served.Certificates; len(cert) > 0 && len(cert[0].Certificate) > 0 {
		if b, ok := serverEndpointBinding(cert[0].Certificate[0]); ok {
			cb = b
			mechs = []string{mechSCRAMPlus, mechSCRAM}
		}
	}
	creds, reason := mockCredentials(serverMockSecret(), user), ""
	switch {
	case !ua.Exists:
		reason = "the user does not exist"
	case ua.Verifier == "":
		reason = "the user has no password"
	default:
		real, err := parseVerifier(ua.Verifier)
		if err != nil {
			reason = "the user's stored verifier is malformed"
		} else {
			creds = real
		}
	}
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	if err != nil {
		return c.fatal(err, err)
	}
	// The exchange is bounded like the rest of the handshake.
	_ = c.nc.SetReadDeadline(time.Now().Add(startupTimeout))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()

	c.w.send(&pgproto3.AuthenticationSASL{AuthMechanisms: mechs})
	if err := c.w.flush(); err != nil {
		return errors.Mark(err, errClientGone)
	}
	body, err := c.readAuthMessage(user)
	if err != nil {
		return err
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(body); err != nil || !slices.Contains(mechs, first.AuthMechanism) {
		c.log.Warn("refused a SQL connection: invalid SASL initial response", "user", user, "mechanism", first.AuthMechanism)
		return c.fatal(errors.New("invalid SASL initial response"), pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeProtocolViolation, "invalid SASL authentication: expected one of the mechanisms %v", mechs),
			"%s", "use a client that supports SCRAM-SHA-256 (libpq 10 or later, and every maintained driver)"))
	}
	conv := srv.NewConversation()
	if cb.IsSupported() {
		conv = srv.NewConversationWithChannelBinding(cb)
	}
	failed := func(why string) error {
		if reason == "" {
			reason = why
		}
		c.log.Warn("refused a SQL connection: password authentication failed", "user", user, "reason", reason)
		// Counted before the client hears of it: a client that connects
		// again at once must find this failure counted.
		if d := c.srv.cfg.Limiter.Failed("sql", user, c.nc.RemoteAddr().String()); d > 0 {
			c.log.Warn("throttling password attempts", "user", user, "delay", d)
		}
		return c.fatal(errors.Mark(errors.Newf("password authentication failed: %s", reason), errPasswordFailed), pgerror.WithHintf(
			pgerror.Newf(pgerror.CodeInvalidPassword, "password authentication failed for user %q", user),
			"%s", "check the user name and the password (an admin sets one with ALTER USER "+user+" WITH PASSWORD '...'), "+
				"or authenticate with the user's client certificate (`kvnode cert create-client "+user+"`)"))
	}
	serverFirst, err := conv.Step(string(first.Data))
	if err != nil {
		return failed("invalid client-first message: " + err.Error())
	}
	c.w.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := c.w.flush(); err != nil {
		return errors.Mark(err, errClientGone)
	}
	if body, err = c.readAuthMessage(user); err != nil {
		return err
	}
	var final pgproto3.SASLResponse
	if err := final.Decode(body); err != nil {
		return failed("invalid SASL response")
	}
	serverFinal, err := conv.Step(string(final.Data))
	if err != nil || !conv.Valid() {
		return failed("wrong password")
	}
	if reason != "" {
		return failed(reason) // mock credentials cannot be proven; defensive
	}
	c.w.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)})
	c.log.Debug("password authentication succeeded", "user", user, "mechanism", first.AuthMechanism)
	return nil
}

// readAuthMessage reads one PasswordMessage-family message ('p') of the
// authentication exchange and returns its body. A client that hangs up
// here (libpq without a password does) is logged.
func (c *conn) readAuthMessage(user string) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.rw, hdr[:]); err != nil {
		c.log.Warn("refused a SQL connection: the client ended password authentication (no password given?)", "user", user)
		return nil, errors.Mark(errors.Wrap(err, "reading the SASL response"), errClientGone)
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:]))) - 4
	if hdr[0] != 'p' || n < 0 || n > maxSASLMessage {
		c.log.Warn("refused a SQL connection: unexpected message during password authentication", "user", user, "type", string(hdr[0]))
		return nil, c.fatal(errors.Newf("message %q during authentication", hdr[0]),
			pgerror.Newf(pgerror.CodeProtocolViolation, "expected a SASL response, got message type %q", hdr[0]))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.rw, body); err != nil {
		return nil, errors.Mark(errors.Wrap(err, "reading the SASL response"), errClientGone)
	}
	return body, nil
}
