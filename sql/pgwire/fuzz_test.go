package pgwire

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fuzzDeadline bounds one fuzz input: a server that neither answers nor
// closes within it has hung.
const fuzzDeadline = 10 * time.Second

// encode frames frontend messages as a client would send them.
func encode(msgs ...pgproto3.FrontendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			panic(err)
		}
	}
	return out
}

// FuzzServer feeds arbitrary bytes to a connection after a valid startup and
// checks that the server neither panics (which would crash the test binary)
// nor hangs: once the client stops sending, the server must answer what it
// got and close the connection within fuzzDeadline.
//
//	go test ./sql/pgwire -run '^$' -fuzz FuzzServer -fuzztime 60s
func FuzzServer(f *testing.F) {
	for _, seed := range [][]byte{
		encode(&pgproto3.Query{String: "SELECT 1::INT8, 'x', NULL"}),
		encode(&pgproto3.Query{String: "SELECT generate_series(1::INT8, 3::INT8); SELECT 1/0"}),
		encode(&pgproto3.Query{String: "SELECT crash()"}, &pgproto3.Query{String: "SELECT bad_datum()"}),
		encode(&pgproto3.Query{String: "SELECT block()"}, &pgproto3.Query{String: "SELECT wait_for_cancel()"}),
		encode(
			&pgproto3.Parse{Name: "s", Query: "SELECT $1::INT8, $2", ParameterOIDs: []uint32{23}},
			&pgproto3.Describe{ObjectType: 'S', Name: "s"},
			&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s", ParameterFormatCodes: []int16{1, 0},
				Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{1}},
			&pgproto3.Describe{ObjectType: 'P', Name: "p"},
			&pgproto3.Execute{Portal: "p", MaxRows: 1},
			&pgproto3.Execute{Portal: "p"},
			&pgproto3.Close{ObjectType: 'P', Name: "p"},
			&pgproto3.Close{ObjectType: 'S', Name: "s"},
			&pgproto3.Sync{},
		),
		encode(&pgproto3.Parse{Query: "SELEC"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}, &pgproto3.Sync{}),
		encode(&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}, ParameterFormatCodes: []int16{7}}, &pgproto3.Sync{}),
		encode(&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.FunctionCall{Function: 1}, &pgproto3.Terminate{}),
		{'z', 0, 0, 0, 4},
		{'Q', 0x7f, 0xff, 0xff, 0xff},
		{'B', 0, 0, 0, 6, 0, 0},
		{'Q', 0, 0, 0, 9, 'S', 'E', 'L'},
		{},
	} {
		f.Add(seed)
	}
	ts := startServer(f, Config{})
	startup := encode(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters:      map[string]string{"user": "root", "database": "defaultdb"},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		exchange(t, ts.addr, append(startup[:len(startup):len(startup)], data...))
	})
}

// FuzzStartup feeds arbitrary bytes as the very first packet.
func FuzzStartup(f *testing.F) {
	for _, seed := range [][]byte{
		binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode),
		binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), gssEncRequestCode),
		binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 16), cancelRequestCode),
		encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "root", "_pq_.x": "y"}}),
		append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 13), 3<<16), "user\x00"...),
		{0x16, 0x03, 0x01, 0x00, 0x10},
		{0, 0, 0, 4},
	} {
		f.Add(seed)
	}
	ts := startServer(f, Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		exchange(t, ts.addr, data)
	})
}

// exchange sends data, half-closes, and reads until the server closes.
func exchange(t *testing.T, addr string, data []byte) {
	nc, err := net.DialTimeout("tcp", addr, fuzzDeadline)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(fuzzDeadline))
	// Write on another goroutine: the server may answer before it has read
	// everything, and both sides blocking on writes would be a false hang.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = nc.Write(data)
		_ = nc.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server neither finished nor closed the connection within %v", fuzzDeadline)
	}
	<-wrote
}
