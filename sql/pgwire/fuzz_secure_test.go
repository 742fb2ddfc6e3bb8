package pgwire

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzSecureStartup fuzzes the startup of a secure server (TLS required,
// passwords with SCRAM-SHA-256): with overTLS false the bytes are the first
// packets, as in FuzzStartup but against a server that answers SSLRequest
// with 'S'; with overTLS true the client sends SSLRequest, completes the
// TLS handshake (no client certificate) and then sends the bytes: the
// startup message and the SASL exchange are the fuzzer's. The server must
// neither panic nor hang, and must never send AuthenticationOk: no input
// proves alice's password without knowing it, and nobody else has one.
//
//	go test ./sql/pgwire -run '^$' -fuzz FuzzSecureStartup -fuzztime 120s -parallel 1
func FuzzSecureStartup(f *testing.F) {
	sslRequest := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode)
	startup := func(user string) []byte {
		return encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": user, "database": "defaultdb"}})
	}
	for _, user := range []string{"alice", "mallory", "carol", "root"} {
		s := startup(user)
		f.Add(true, s)
		f.Add(true, append(s[:len(s):len(s)], encode(&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAM, Data: []byte("n,,n=,r=abcdefgh")})...))
		f.Add(true, append(s[:len(s):len(s)], encode(
			&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAMPlus, Data: []byte("p=tls-server-end-point,,n=,r=abc")},
			&pgproto3.SASLResponse{Data: []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abc,p=AAAA")})...))
	}
	f.Add(true, sslRequest)
	f.Add(false, sslRequest)
	f.Add(false, append(sslRequest[:len(sslRequest):len(sslRequest)], 0x16, 0x03, 0x01, 0x00, 0x10))
	f.Add(false, startup("alice"))
	f.Add(true, encode(&pgproto3.SASLResponse{Data: []byte("x")}))

	v, err := SCRAMVerifier("right")
	if err != nil {
		f.Fatal(err)
	}
	sess := &passwordSQL{fakeSQL: newFakeSQL(), passwords: true, verifier: v}
	ts := startServer(f, Config{Sessions: sess, TLS: selfSigned(f)})
	f.Fuzz(func(t *testing.T, overTLS bool, data []byte) {
		if !overTLS {
			exchange(t, ts.addr, data)
			return
		}
		nc, err := net.DialTimeout("tcp", ts.addr, fuzzDeadline)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(fuzzDeadline))
		if _, err := nc.Write(sslRequest); err != nil {
			t.Fatal(err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(nc, answer[:]); err != nil || answer[0] != 'S' {
			t.Fatalf("SSLRequest answered %q, %v", answer[0], err)
		}
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			_, _ = tc.Write(data)
			_ = tc.CloseWrite()
		}()
		out, err := io.ReadAll(tc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server neither finished nor closed the connection within %v", fuzzDeadline)
		}
		<-wrote
		// Walk the backend messages: type, int32 length, body.
		for len(out) >= 5 {
			typ, n := out[0], int(binary.BigEndian.Uint32(out[1:5]))
			if n < 4 || 1+n > len(out) {
				break
			}
			if typ == 'R' && n >= 8 && binary.BigEndian.Uint32(out[5:9]) == 0 {
				t.Fatalf("AuthenticationOk without a password or certificate for input %q", data)
			}
			out = out[1+n:]
		}
	})
}
