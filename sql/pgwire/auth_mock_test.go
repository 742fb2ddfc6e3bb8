package pgwire

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// scramStart opens a TLS connection to addr as user, starts SCRAM-SHA-256
// (without channel binding) and returns the mechanisms offered, the
// server-first message, and the error the server sends for a wrong proof.
func scramStart(t *testing.T, addr, user string) (mechs []string, serverFirst string, final *pgproto3.ErrorResponse) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest: %q %v", b[0], err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	fe := pgproto3.NewFrontend(tc, tc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": "defaultdb"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	recv := func() pgproto3.BackendMessage {
		t.Helper()
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		return m
	}
	sasl, ok := recv().(*pgproto3.AuthenticationSASL)
	if !ok {
		t.Fatalf("%s: no AuthenticationSASL", user)
	}
	mechs = slices.Clone(sasl.AuthMechanisms)
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAM, Data: []byte("n,,n=,r=clientnonce")})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	cont, ok := recv().(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		t.Fatalf("%s: no AuthenticationSASLContinue", user)
	}
	serverFirst = string(cont.Data)
	nonce := strings.TrimPrefix(strings.Split(serverFirst, ",")[0], "r=")
	fe.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	er, ok := recv().(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("%s: a wrong proof was not refused", user)
	}
	return mechs, serverFirst, er
}

// serverFirstFields splits "r=...,s=...,i=..." and returns the salt's length
// in bytes, the salt and the iteration count.
func serverFirstFields(t *testing.T, sf string) (saltLen int, salt, iters string) {
	t.Helper()
	parts := strings.Split(sf, ",")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "r=clientnonce") || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		t.Fatalf("server-first %q", sf)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[1][2:])
	if err != nil {
		t.Fatal(err)
	}
	return len(raw), parts[1][2:], parts[2][2:]
}

// TestUnknownUserExchangeLooksReal: over the wire, the SCRAM exchange of an
// unknown user, and of a user without a password, looks like a real user's:
// the same mechanisms, a server-first message of the same shape (nonce, a
// salt of the same length, the same iteration count), a salt stable per
// name (so two attempts do not reveal a mock) and different between names,
// and the same error for a wrong proof.
func TestUnknownUserExchangeLooksReal(t *testing.T) {
	v, err := SCRAMVerifier("right")
	if err != nil {
		t.Fatal(err)
	}
	sess := &passwordSQL{fakeSQL: newFakeSQL(), passwords: true, verifier: v}
	ts := startServer(t, Config{Sessions: sess, TLS: selfSigned(t)})

	realMechs, realFirst, realErr := scramStart(t, ts.addr, "alice")
	realLen, _, realIters := serverFirstFields(t, realFirst)
	salts := map[string]string{}
	for _, user := range []string{"mallory", "carol", "mallory", "trudy"} {
		mechs, first, er := scramStart(t, ts.addr, user)
		if !slices.Equal(mechs, realMechs) {
			t.Errorf("%s is offered %v, a real user %v", user, mechs, realMechs)
		}
		n, salt, iters := serverFirstFields(t, first)
		if n != realLen || iters != realIters {
			t.Errorf("%s: salt of %d bytes and i=%s, a real user's %d bytes and i=%s", user, n, iters, realLen, realIters)
		}
		if prev, ok := salts[user]; ok && prev != salt {
			t.Errorf("%s's salt changed between two attempts: a mock would show", user)
		}
		salts[user] = salt
		if er.Code != realErr.Code || er.Message != strings.Replace(realErr.Message, `"alice"`, `"`+user+`"`, 1) || er.Hint != strings.ReplaceAll(realErr.Hint, "alice", user) {
			t.Errorf("%s's refusal %s %q %q differs from a real user's %s %q %q", user, er.Code, er.Message, er.Hint, realErr.Code, realErr.Message, realErr.Hint)
		}
	}
	if salts["mallory"] == salts["trudy"] {
		t.Error("two unknown users share a salt")
	}
}
