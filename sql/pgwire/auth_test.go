package pgwire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xdg-go/scram"
)

// TestSCRAMVerifier: a verifier is PostgreSQL's format, holds nothing of
// the password, is what a SCRAM client derives from the same password, salt
// and iterations, and differs per call (a fresh salt).
func TestSCRAMVerifier(t *testing.T) {
	v, err := SCRAMVerifier("p@ss wörd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Contains(v, "p@ss") || !IsSCRAMVerifier(v) {
		t.Fatalf("verifier %q", v)
	}
	creds, err := parseVerifier(v)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := scram.SHA256.NewClient("", "p@ss wörd", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetStoredCredentialsWithError(creds.KeyFactors)
	if err != nil || string(got.StoredKey) != string(creds.StoredKey) || string(got.ServerKey) != string(creds.ServerKey) {
		t.Fatal("the verifier does not match what a client derives from the password")
	}
	if v2, _ := SCRAMVerifier("p@ss wörd"); v2 == v {
		t.Fatal("two verifiers of one password are equal: the salt is not fresh")
	}
	if _, err := SCRAMVerifier(""); err == nil {
		t.Fatal("an empty password was accepted")
	}
	for _, bad := range []string{"", "secret", "SCRAM-SHA-256$", "SCRAM-SHA-256$4096:c2FsdA==$YQ==:YQ==", "SCRAM-SHA-256$x:c2FsdA==$" + strings.Repeat("A", 44) + ":" + strings.Repeat("A", 44)} {
		if IsSCRAMVerifier(bad) {
			t.Errorf("%q taken for a verifier", bad)
		}
	}
}

// selfSigned is a server certificate for 127.0.0.1, signed by itself.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: x509.NewCertPool(),
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// passwordSQL is fakeSQL with password authentication: alice has a
// password, carol has none, nobody else exists.
type passwordSQL struct {
	*fakeSQL
	passwords bool
	verifier  string
}

func (p *passwordSQL) UserAuth(_ context.Context, user string) (UserAuth, error) {
	switch user {
	case "alice":
		return UserAuth{Passwords: p.passwords, Exists: true, Verifier: p.verifier}, nil
	case "carol":
		return UserAuth{Passwords: p.passwords, Exists: true}, nil
	}
	return UserAuth{Passwords: p.passwords}, nil
}

// TestPasswordAuth runs SCRAM-SHA-256 against pgx over TLS: the right
// password opens a session; a wrong one, an unknown user and a user
// without a password get 28P01 with a hint; before passwords exist a
// client without a certificate gets the certificate error (28000).
func TestPasswordAuth(t *testing.T) {
	v, err := SCRAMVerifier("right")
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeSQL()
	sess := &passwordSQL{fakeSQL: fake, passwords: true, verifier: v}
	ts := startServer(t, Config{Sessions: sess, TLS: selfSigned(t)})
	ctx := testContext(t)
	url := func(user, pw string) string {
		return "postgres://" + user + ":" + pw + "@" + ts.addr + "/defaultdb?sslmode=require&connect_timeout=10"
	}
	conn, err := pgx.Connect(ctx, url("alice", "right"))
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "alice", "wrong"},
		{"unknown user", "mallory", "right"},
		{"user without a password", "carol", ""},
	} {
		_, err := pgconn.Connect(ctx, url(tc.user, tc.pw))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" || pe.Message != `password authentication failed for user "`+tc.user+`"` || pe.Hint == "" {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	sess.passwords = false
	_, err = pgconn.Connect(ctx, url("alice", "right"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "no client certificate") {
		t.Errorf("before passwords exist: %v", err)
	}
}

// FuzzSCRAMExchange feeds arbitrary client-first and client-final messages
// to the server's side of the exchange, with a user's real credentials and
// with mock ones: it must neither panic nor ever accept, and a malformed
// verifier must be refused, not crash the parser.
//
//	go test ./sql/pgwire -run '^$' -fuzz FuzzSCRAMExchange -fuzztime 60s
func FuzzSCRAMExchange(f *testing.F) {
	f.Add("n,,n=,r=abcdefgh", "c=biws,r=abcdefghXYZ,p=AAAA", "SCRAM-SHA-256$4096:c2FsdA==$x:y")
	f.Add("p=tls-server-end-point,,n=,r=x", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=x,p=", "")
	f.Add("y,a=root,n=root,r=\x00", "c=eSws,r=\xff,p=====", "SCRAM-SHA-256$1:$:")
	v, err := SCRAMVerifier("right")
	if err != nil {
		f.Fatal(err)
	}
	real, err := parseVerifier(v)
	if err != nil {
		f.Fatal(err)
	}
	cb, _ := serverEndpointBinding(selfSigned(f).Certificates[0].Certificate[0])
	f.Fuzz(func(t *testing.T, first, final, verifier string) {
		_, _ = parseVerifier(verifier)
		for _, creds := range []scram.StoredCredentials{real, mockCredentials([]byte("k"), first)} {
			srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
			if err != nil {
				t.Fatal(err)
			}
			for _, conv := range []*scram.ServerConversation{srv.NewConversation(), srv.NewConversationWithChannelBinding(cb)} {
				if _, err := conv.Step(first); err != nil {
					continue
				}
				if _, err := conv.Step(final); err == nil && conv.Valid() {
					t.Fatalf("accepted client-first %q, client-final %q without the password", first, final)
				}
			}
		}
	})
}
