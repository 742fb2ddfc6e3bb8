package pgwire

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func checkMessages(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPortalMaxRows fetches a portal in pieces: PortalSuspended between
// pieces, CommandComplete counting the last piece's rows, and Sync closing
// the portal.
func TestPortalMaxRows(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(
		&pgproto3.Parse{Name: "s", Query: "SELECT generate_series(1::INT8, 5::INT8) AS n"},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s", ResultFormatCodes: []int16{0}},
		&pgproto3.Describe{ObjectType: 'P', Name: "p"},
		&pgproto3.Execute{Portal: "p", MaxRows: 2},
		&pgproto3.Execute{Portal: "p", MaxRows: 2},
		&pgproto3.Flush{},
	)
	checkMessages(t, wc.until("PortalSuspended"),
		`{"Type":"ParseComplete"}`,
		`{"Type":"BindComplete"}`,
		`{"Type":"RowDescription","Fields":[{"Name":"n","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":20,"DataTypeSize":8,"TypeModifier":-1,"Format":0}]}`,
		`{"Type":"DataRow","Values":[{"text":"1"}]}`,
		`{"Type":"DataRow","Values":[{"text":"2"}]}`,
		`{"Type":"PortalSuspended"}`,
	)
	checkMessages(t, wc.until("PortalSuspended"),
		`{"Type":"DataRow","Values":[{"text":"3"}]}`,
		`{"Type":"DataRow","Values":[{"text":"4"}]}`,
		`{"Type":"PortalSuspended"}`,
	)
	wc.send(
		&pgproto3.Execute{Portal: "p", MaxRows: 2},
		&pgproto3.Execute{Portal: "p"}, // already complete: no rows
		&pgproto3.Sync{},
		&pgproto3.Execute{Portal: "p"}, // Sync closed it
		&pgproto3.Sync{},
	)
	checkMessages(t, append(wc.until("ReadyForQuery"), wc.until("ReadyForQuery")...),
		`{"Type":"DataRow","Values":[{"text":"5"}]}`,
		`{"Type":"CommandComplete","CommandTag":"SELECT 1"}`,
		`{"Type":"CommandComplete","CommandTag":"SELECT 0"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"34000","Message":"portal \"p\" does not exist"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)

	// Without a limit, and with exactly as many rows as the limit: one
	// Execute sends everything and the tag counts it all.
	wc.send(
		&pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Execute{MaxRows: 5},
		&pgproto3.Sync{},
	)
	got := wc.until("ReadyForQuery")
	if len(got) != 8 || got[6] != `{"Type":"CommandComplete","CommandTag":"SELECT 5"}` {
		t.Errorf("got %v", got)
	}
}

// TestDiscardUntilSync checks that after an error in the extended protocol
// nothing but Sync (and Terminate) is processed, and exactly one
// ReadyForQuery follows.
func TestDiscardUntilSync(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(
		&pgproto3.Parse{Name: "bad", Query: "SELEC 1"},
		&pgproto3.Parse{Name: "good", Query: "SELECT 1::INT8"},
		&pgproto3.Bind{PreparedStatement: "good"},
		&pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 2::INT8"},
		&pgproto3.Flush{},
		&pgproto3.Sync{},
		// Back to normal: "good" was never created.
		&pgproto3.Bind{PreparedStatement: "good"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Name: "good", Query: "SELECT 1::INT8"},
		&pgproto3.Bind{PreparedStatement: "good"},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"42601","Message":"syntax error at or near \"SELEC\"","Position":1}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"26000","Message":"prepared statement \"good\" does not exist"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"ParseComplete"}`,
		`{"Type":"BindComplete"}`,
		`{"Type":"DataRow","Values":[{"text":"1"}]}`,
		`{"Type":"CommandComplete","CommandTag":"SELECT 1"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
}

// TestExtendedProtocolObjects covers statement and portal bookkeeping.
func TestExtendedProtocolObjects(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(
		&pgproto3.Parse{Name: "a", Query: "SELECT $1::INT8, $2", ParameterOIDs: []uint32{23}},
		&pgproto3.Describe{ObjectType: 'S', Name: "a"},
		&pgproto3.Parse{Name: "a", Query: "SELECT 1::INT8"},
		&pgproto3.Sync{},
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"ParseComplete"}`,
		`{"Type":"ParameterDescription","ParameterOIDs":[23,25]}`,
		`{"Type":"RowDescription","Fields":[{"Name":"int8","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":20,"DataTypeSize":8,"TypeModifier":-1,"Format":0},{"Name":"?column?","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":25,"DataTypeSize":-1,"TypeModifier":-1,"Format":0}]}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"42P05","Message":"prepared statement \"a\" already exists","Hint":"close it first, or use another name"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
	wc.send(
		// Binary INT4 as declared; the second parameter is text.
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "a", ParameterFormatCodes: []int16{1, 0},
			Parameters: [][]byte{binary.BigEndian.AppendUint32(nil, 7), []byte("x")}, ResultFormatCodes: []int16{1, 0}},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "a"},
		&pgproto3.Sync{},
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"BindComplete"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"42P03","Message":"portal \"p\" already exists"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
	wc.send(
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "a", ParameterFormatCodes: []int16{1, 0},
			Parameters: [][]byte{binary.BigEndian.AppendUint32(nil, 7), nil}, ResultFormatCodes: []int16{1, 0}},
		&pgproto3.Close{ObjectType: 'S', Name: "a"}, // the portal survives its statement
		&pgproto3.Describe{ObjectType: 'P', Name: "p"},
		&pgproto3.Execute{Portal: "p"},
		&pgproto3.Close{ObjectType: 'P', Name: "p"},
		&pgproto3.Close{ObjectType: 'P', Name: "never-existed"},
		&pgproto3.Describe{ObjectType: 'S', Name: "a"},
		&pgproto3.Sync{},
	)
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"BindComplete"}`,
		`{"Type":"CloseComplete"}`,
		`{"Type":"RowDescription","Fields":[{"Name":"int8","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":20,"DataTypeSize":8,"TypeModifier":-1,"Format":1},{"Name":"?column?","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":25,"DataTypeSize":-1,"TypeModifier":-1,"Format":0}]}`,
		`{"Type":"DataRow","Values":[{"binary":"0000000000000007"},null]}`,
		`{"Type":"CommandComplete","CommandTag":"SELECT 1"}`,
		`{"Type":"CloseComplete"}`,
		`{"Type":"CloseComplete"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"26000","Message":"prepared statement \"a\" does not exist"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)

	// Empty statements, statements without rows, a second run of a
	// finished portal, bad result format counts, unknown describe kinds.
	wc.send(
		&pgproto3.Parse{Query: ""},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Parse{Query: "INSERT INTO t VALUES ($1)"},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("v")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT 1::INT8, 2::INT8"},
		&pgproto3.Bind{ResultFormatCodes: []int16{0, 1, 0}},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'X'},
		&pgproto3.Sync{},
	)
	checkMessages(t, append(append(wc.until("ReadyForQuery"), wc.until("ReadyForQuery")...), wc.until("ReadyForQuery")...),
		`{"Type":"ParseComplete"}`,
		`{"Type":"ParameterDescription","ParameterOIDs":[]}`,
		`{"Type":"NoData"}`,
		`{"Type":"BindComplete"}`,
		`{"Type":"EmptyQueryResponse"}`,
		`{"Type":"ParseComplete"}`,
		`{"Type":"ParameterDescription","ParameterOIDs":[25]}`,
		`{"Type":"NoData"}`,
		`{"Type":"BindComplete"}`,
		`{"Type":"NoData"}`,
		`{"Type":"CommandComplete","CommandTag":"INSERT 0 1"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"55000","Message":"portal \"\" cannot be run"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
		`{"Type":"ParseComplete"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"08P01","Message":"bind message has 3 result formats but query has 2 columns"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"08P01","Message":"invalid DESCRIBE message subtype 88"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)

	// Ignored and refused messages that keep the connection.
	wc.send(&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.FunctionCall{Function: 1})
	checkMessages(t, wc.until("ReadyForQuery"),
		`{"Type":"ErrorResponse","Severity":"ERROR","Code":"0A000","Message":"the function call protocol is not supported"}`,
		`{"Type":"ReadyForQuery","TxStatus":"I"}`,
	)
	wc.send(&pgproto3.Terminate{})
	checkMessages(t, wc.untilClosed())
}

// rawMessage frames body as a frontend message of type typ.
func rawMessage(typ byte, body []byte) []byte {
	out := []byte{typ}
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)+4))
	return append(out, body...)
}

// TestProtocolViolations checks that garbage ends the connection with a
// FATAL 08P01 that says what was wrong.
func TestProtocolViolations(t *testing.T) {
	ts := startServer(t, Config{})
	for _, tc := range []struct {
		name string
		raw  []byte
		msg  string
	}{
		{"unknown type", rawMessage('z', nil), "unknown message type: z"},
		{"too long", append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, MaxMessageSize+5)...), "exceeds the maximum message size"},
		{"malformed bind", rawMessage('B', []byte("portal")), "invalid frontend message"},
		{"parse without terminator", rawMessage('P', []byte("name")), "invalid frontend message"},
		{"password after startup", rawMessage('p', []byte("secret\x00")), "unexpected message PasswordMessage"},
		{"negative length", []byte{'Q', 0xff, 0xff, 0xff, 0xff}, "invalid message length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wc := connectWire(t, ts.addr)
			// Statements sent before the violation still run, in order.
			wc.send(&pgproto3.Query{String: "SELECT 1::INT8"})
			if _, err := wc.nc.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			got := wc.untilClosed()
			if len(got) != 5 || !strings.Contains(got[4], `"Severity":"FATAL","Code":"08P01"`) || !strings.Contains(got[4], tc.msg) {
				t.Errorf("got %v, want a result, then FATAL 08P01 %q", got, tc.msg)
			}
		})
	}
}

// TestStartupVariants covers the first packet's many forms.
func TestStartupVariants(t *testing.T) {
	ts := startServer(t, Config{})

	t.Run("ssl and gssenc are refused with N", func(t *testing.T) {
		nc := dial(t, ts.addr)
		for _, code := range []uint32{gssEncRequestCode, sslRequestCode} {
			writePacket(t, nc, binary.BigEndian.AppendUint32(nil, code))
			if b := readN(t, nc, 1); b[0] != 'N' {
				t.Fatalf("reply %q", b)
			}
		}
		// A second SSLRequest is a protocol violation.
		writePacket(t, nc, binary.BigEndian.AppendUint32(nil, sslRequestCode))
		wc := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
		got := wc.untilClosed()
		if len(got) != 1 || !strings.Contains(got[0], `"FATAL","Code":"08P01"`) {
			t.Errorf("got %v", got)
		}
	})

	t.Run("protocol 2", func(t *testing.T) {
		nc := dial(t, ts.addr)
		writePacket(t, nc, append(binary.BigEndian.AppendUint32(nil, 2<<16), "user\x00root\x00\x00"...))
		wc := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
		checkMessages(t, wc.untilClosed(),
			`{"Type":"ErrorResponse","Severity":"FATAL","Code":"0A000","Message":"unsupported frontend protocol 2.0: server supports 3.0 to 3.0"}`)
	})

	t.Run("protocol 3.2 and _pq_ options are negotiated down", func(t *testing.T) {
		wc := dialWire(t, ts.addr, map[string]string{"user": "root", "_pq_.magic": "1"})
		wc.fe.Send(&pgproto3.Query{String: "SELECT 1::INT8"}) // encoded in 3.0; same for 3.2
		// Re-send the startup as 3.2 on a fresh connection.
		nc := dial(t, ts.addr)
		body := binary.BigEndian.AppendUint32(nil, pgproto3.ProtocolVersion32)
		body = append(body, "user\x00root\x00_pq_.b\x00x\x00_pq_.a\x00y\x00\x00"...)
		writePacket(t, nc, body)
		wc2 := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
		got := wc2.until("ReadyForQuery")
		if got[0] != `{"Type":"NegotiateProtocolVersion","NewestMinorProtocol":0,"UnrecognizedOptions":["_pq_.a","_pq_.b"]}` ||
			got[1] != `{"Type":"AuthenticationOK"}` {
			t.Errorf("got %v", got)
		}
		got = wc.until("ReadyForQuery")
		if got[0] != `{"Type":"NegotiateProtocolVersion","NewestMinorProtocol":0,"UnrecognizedOptions":["_pq_.magic"]}` {
			t.Errorf("got %v", got)
		}
	})

	t.Run("parameter status", func(t *testing.T) {
		wc := dialWire(t, ts.addr, map[string]string{"user": "root", "application_name": "myapp"})
		got := strings.Join(wc.until("ReadyForQuery"), "\n")
		for _, want := range []string{
			`{"Type":"ParameterStatus","Name":"server_version","Value":"13.0"}`,
			`{"Type":"ParameterStatus","Name":"client_encoding","Value":"UTF8"}`,
			`{"Type":"ParameterStatus","Name":"DateStyle","Value":"ISO, MDY"}`,
			`{"Type":"ParameterStatus","Name":"standard_conforming_strings","Value":"on"}`,
			`{"Type":"ParameterStatus","Name":"integer_datetimes","Value":"on"}`,
			`{"Type":"ParameterStatus","Name":"application_name","Value":"myapp"}`,
			`{"Type":"BackendKeyData"`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("missing %s in\n%s", want, got)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			params map[string]string
			want   string
		}{
			{map[string]string{"database": "defaultdb"}, `"Code":"28000","Message":"no PostgreSQL user name specified in startup packet"`},
			{map[string]string{"user": "root", "replication": "database"}, `"Code":"0A000","Message":"replication connections are not supported"`},
			{map[string]string{"user": "root", "database": "other"}, `"Code":"3D000","Message":"database \"other\" does not exist"`},
		} {
			got := dialWire(t, ts.addr, tc.params).untilClosed()
			if len(got) != 1 || !strings.Contains(got[0], `"Severity":"FATAL",`+tc.want) {
				t.Errorf("%v: got %v", tc.params, got)
			}
		}
	})

	t.Run("bad packets", func(t *testing.T) {
		nc := dial(t, ts.addr)
		if _, err := nc.Write([]byte{0x16, 0x03, 0x01, 0x02}); err != nil { // a TLS ClientHello
			t.Fatal(err)
		}
		wc := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
		got := wc.untilClosed()
		if len(got) != 1 || !strings.Contains(got[0], "invalid length of startup packet") {
			t.Errorf("got %v", got)
		}
		// A client that connects and leaves is not an error.
		_ = dial(t, ts.addr).Close()
	})

	t.Run("cancel request with a wrong key is ignored", func(t *testing.T) {
		wc := connectWire(t, ts.addr)
		wc.send(&pgproto3.Query{String: "SELECT block()"})
		<-ts.sql.blockEntered
		nc := dial(t, ts.addr)
		pkt := binary.BigEndian.AppendUint32(nil, cancelRequestCode)
		pkt = binary.BigEndian.AppendUint32(pkt, wc.pid)
		pkt = append(pkt, wc.key[0]^1, wc.key[1], wc.key[2], wc.key[3])
		writePacket(t, nc, pkt)
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("cancel connection: %v, want EOF", err)
		}
		if !statementRunning(ts.Server) {
			t.Error("statement canceled by a request with the wrong key")
		}
		close(ts.sql.blockRelease)
		got := wc.until("ReadyForQuery")
		if len(got) != 4 {
			t.Errorf("got %v", got)
		}
	})
}

// TestClientHangUpCancelsStatement: a client that disconnects while its
// statement runs gets the statement canceled, since nobody will read the
// result.
func TestClientHangUpCancelsStatement(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(&pgproto3.Query{String: "SELECT wait_for_cancel()"})
	waitFor(t, func() bool { return statementRunning(ts.Server) })
	_ = wc.nc.Close()
	select {
	case cause := <-ts.sql.canceled:
		if !errors.Is(cause, errClientGone) {
			t.Errorf("cause %v", cause)
		}
	case <-time.After(testTimeout):
		t.Fatal("statement not canceled after the client hung up")
	}
	waitFor(t, func() bool { return ts.NumConns() == 0 })
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

func writePacket(t *testing.T, nc net.Conn, body []byte) {
	t.Helper()
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	if _, err := nc.Write(append(pkt, body...)); err != nil {
		t.Fatal(err)
	}
}

func readN(t *testing.T, nc net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadAheadIsBounded: while a statement runs, the reader queues only a
// bounded amount of what a pipelining client sends, and everything is
// answered once the statement finishes.
func TestReadAheadIsBounded(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	wc.send(&pgproto3.Query{String: "SELECT block()"})
	<-ts.sql.blockEntered

	const n, size = 8, 512 << 10
	big := "SELECT '" + strings.Repeat("x", size) + "'"
	sent := make(chan error, 1)
	go func() {
		var buf []byte
		for range n {
			buf, _ = (&pgproto3.Query{String: big}).Encode(buf)
		}
		_, err := wc.nc.Write(buf)
		sent <- err
	}()
	ts.mu.Lock()
	c := ts.conns[wc.pid] // BackendKeyData's process ID is the registry key
	ts.mu.Unlock()
	waitFor(t, func() bool { return c.queued.Load() > maxQueuedBytes })
	// Sample the bound for a while: the reader must stay blocked on it.
	for range 20 {
		if q := c.queued.Load(); q > maxQueuedBytes+size+1024 {
			t.Fatalf("reader queued %d bytes", q)
		}
		time.Sleep(time.Millisecond)
	}

	close(ts.sql.blockRelease)
	wc.until("ReadyForQuery")
	for i := range n {
		got := wc.until("ReadyForQuery")
		if len(got) != 4 || !strings.Contains(got[2], `"SELECT 1"`) {
			t.Fatalf("query %d: %d messages", i, len(got))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestServeRequiresSessions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := NewServer(Config{}).Serve(ln); err == nil || !strings.Contains(err.Error(), "Sessions is required") {
		t.Errorf("Serve without Sessions: %v", err)
	}
}

// TestDescribeFormatsCached describes one statement and its portals with
// result formats that change between Binds: each RowDescription reports the
// formats of its own Bind (the connection keeps the last one encoded), and
// each DataRow is encoded in them.
func TestDescribeFormatsCached(t *testing.T) {
	ts := startServer(t, Config{})
	wc := connectWire(t, ts.addr)
	field := func(name string, oid uint32, size int16, format int16) string {
		return `{"Name":"` + name + `","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":` +
			itoa(int(oid)) + `,"DataTypeSize":` + itoa(int(size)) +
			`,"TypeModifier":-1,"Format":` + itoa(int(format)) + `}`
	}
	desc := func(f1, f2 int16) string {
		return `{"Type":"RowDescription","Fields":[` + field("a", 20, 8, f1) + "," + field("b", 25, -1, f2) + `]}`
	}
	wc.send(&pgproto3.Parse{Name: "s", Query: "SELECT 7::INT8 AS a, 'x' AS b"}, &pgproto3.Sync{})
	wc.until("ReadyForQuery")
	for i, formats := range [][]int16{{1, 0}, {1, 0}, {0, 1}, nil, {1}, {0, 0}} {
		wc.send(
			&pgproto3.Describe{ObjectType: 'S', Name: "s"},
			&pgproto3.Bind{PreparedStatement: "s", ResultFormatCodes: formats},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		)
		f := [2]int16{}
		switch len(formats) {
		case 1:
			f = [2]int16{formats[0], formats[0]}
		case 2:
			f = [2]int16{formats[0], formats[1]}
		}
		// pgproto3 prints printable bytes as text: 'x' reads the same
		// in both formats.
		a, b := `{"text":"7"}`, `{"text":"x"}`
		if f[0] == 1 {
			a = `{"binary":"0000000000000007"}`
		}
		got := wc.until("ReadyForQuery")
		want := []string{
			`{"Type":"ParameterDescription","ParameterOIDs":[]}`,
			desc(0, 0),
			`{"Type":"BindComplete"}`,
			desc(f[0], f[1]),
			`{"Type":"DataRow","Values":[` + a + "," + b + `]}`,
			`{"Type":"CommandComplete","CommandTag":"SELECT 1"}`,
			`{"Type":"ReadyForQuery","TxStatus":"I"}`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("round %d (formats %v): got:\n%s\nwant:\n%s", i, formats, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
