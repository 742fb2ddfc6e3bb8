package pgwire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/xdg-go/scram"
)

// SCRAM-SHA-256 (RFC 7677) as PostgreSQL speaks it, on xdg-go/scram: the
// verifier format, making one from a password, and the server's side of
// the exchange (auth.go). No password is kept: only the verifier, from
// which a password cannot be recovered and with which a client cannot log
// in.

// scramIterations is the PBKDF2 iteration count of new verifiers:
// PostgreSQL's default (scram_iterations).
const scramIterations = 4096

const verifierPrefix = "SCRAM-SHA-256$"

// SCRAMVerifier returns the SCRAM-SHA-256 verifier of password, in
// PostgreSQL's format: SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
// (base64). The password is normalized with SASLprep, as libpq does, and
// taken as it is where SASLprep refuses it (libpq's rule too).
func SCRAMVerifier(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	cl, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		if cl, err = scram.SHA256.NewClientUnprepped("", password, ""); err != nil {
			return "", errors.Wrap(err, "preparing the password")
		}
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	creds, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	if err != nil {
		return "", err
	}
	return formatVerifier(creds), nil
}

func formatVerifier(c scram.StoredCredentials) string {
	b64 := base64.StdEncoding.EncodeToString
	return verifierPrefix + strconv.Itoa(c.Iters) + ":" + b64([]byte(c.Salt)) + "$" + b64(c.StoredKey) + ":" + b64(c.ServerKey)
}

// IsSCRAMVerifier reports whether s is a well-formed SCRAM-SHA-256
// verifier (CREATE USER ... PASSWORD 'SCRAM-SHA-256$...' stores a verifier
// computed elsewhere as it is, as PostgreSQL and CockroachDB do).
func IsSCRAMVerifier(s string) bool {
	_, err := parseVerifier(s)
	return err == nil
}

func parseVerifier(v string) (scram.StoredCredentials, error) {
	bad := errors.New("malformed SCRAM-SHA-256 verifier")
	rest, ok := strings.CutPrefix(v, verifierPrefix)
	if !ok {
		return scram.StoredCredentials{}, bad
	}
	factors, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return scram.StoredCredentials{}, bad
	}
	iters, salt, ok1 := strings.Cut(factors, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return scram.StoredCredentials{}, bad
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < 1 {
		return scram.StoredCredentials{}, bad
	}
	dec := base64.StdEncoding.DecodeString
	s, err1 := dec(salt)
	sk, err2 := dec(stored)
	svk, err3 := dec(server)
	if err1 != nil || err2 != nil || err3 != nil || len(s) == 0 || len(sk) != sha256.Size || len(svk) != sha256.Size {
		return scram.StoredCredentials{}, bad
	}
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(s), Iters: n}, StoredKey: sk, ServerKey: svk}, nil
}

// CheckPassword reports whether password matches verifier (the status
// page's login form, where the browser sends the password itself over
// HTTPS). The comparison is constant-time; a malformed verifier matches
// nothing.
func CheckPassword(verifier, password string) bool {
	creds, err := parseVerifier(verifier)
	if err != nil {
		return false
	}
	return checkCredentials(creds, password)
}

// CheckLoginPassword is CheckPassword for a login form: for an unknown
// user, one without a password or with a malformed verifier, it derives the
// password's keys against mock credentials of the same cost
// (mockCredentials, 4096 iterations) before it says no, so that the answer
// takes as long as for a real user with a wrong password and its timing
// does not tell which users exist.
func CheckLoginPassword(ua UserAuth, user, password string) bool {
	creds, err := parseVerifier(ua.Verifier)
	real := ua.Exists && err == nil
	if !real {
		creds = mockCredentials(serverMockSecret(), user)
	}
	ok := checkCredentials(creds, password)
	return ok && real
}

func checkCredentials(creds scram.StoredCredentials, password string) bool {
	if password == "" {
		return false
	}
	cl, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		if cl, err = scram.SHA256.NewClientUnprepped("", password, ""); err != nil {
			return false
		}
	}
	got, err := cl.GetStoredCredentialsWithError(creds.KeyFactors)
	return err == nil && subtle.ConstantTimeCompare(got.StoredKey, creds.StoredKey) == 1
}

// mockCredentials are the credentials of a user who has none (unknown, or
// without a password): derived from a secret of the server and the name,
// so the exchange runs exactly as for a real user, with a salt that is
// stable per name, and fails at its end. A client learns nothing of which
// users exist (PostgreSQL's mock authentication).
func mockCredentials(secret []byte, user string) scram.StoredCredentials {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("salt\x00" + user))
	salt := mac.Sum(nil)[:16]
	mac.Reset()
	mac.Write([]byte("keys\x00" + user))
	k := mac.Sum(nil)
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: scramIterations}, StoredKey: k, ServerKey: k}
}

// serverEndpointBinding is tls-server-end-point channel binding data (RFC
// 5929) for the server's own certificate: the hash of its DER bytes, with
// the certificate's signature hash (SHA-256 for MD5 and SHA-1).
func serverEndpointBinding(der []byte) (scram.ChannelBinding, bool) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return scram.ChannelBinding{}, false
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	case x509.UnknownSignatureAlgorithm, x509.PureEd25519:
		return scram.ChannelBinding{}, false
	default:
		h = sha256.New()
	}
	h.Write(der)
	return scram.ChannelBinding{Type: scram.ChannelBindingTLSServerEndpoint, Data: h.Sum(nil)}, true
}
