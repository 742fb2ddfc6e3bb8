package pgwire

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/jackc/pgx/v5/pgproto3"
)

var (
	wireAddr = flag.String("wire-addr", "",
		"run the testdata/wire scripts against this server (host:port), for example a PostgreSQL with trust "+
			"authentication, instead of an in-process kvnode server")
	wireUser = flag.String("wire-user", "root", "user name for -wire-addr")
	wireDB   = flag.String("wire-db", "defaultdb", "database for -wire-addr")
)

// TestWireScripts runs the wire-exchange scripts under testdata/wire, in the
// style of CockroachDB's pgtest. Each file gets a fresh server and
// connection. Directives:
//
//	send            one frontend message per line: Type {json fields}
//	send_raw        one hex-encoded byte string per line, written as is
//	until           receive until each listed message type has arrived, in
//	                order; print every message received (one JSON per line)
//	until_closed    receive until the server closes the connection
//	connect         open a new connection (after one was closed)
//
// Any directive with the argument kvnode_only is skipped with -wire-addr:
// it checks behaviour where kvnode deliberately differs from PostgreSQL.
// Errors print only severity, SQLSTATE and position, since message texts
// differ between servers.
func TestWireScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/wire", func(t *testing.T, path string) {
		addr := *wireAddr
		if addr == "" {
			addr = startServer(t, Config{}).addr
		}
		var wc *wireClient
		connect := func() {
			wc = dialWire(t, addr, map[string]string{"user": *wireUser, "database": *wireDB})
			wc.until("ReadyForQuery")
		}
		connect()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.HasArg("kvnode_only") && *wireAddr != "" {
				return d.Expected
			}
			switch d.Cmd {
			case "connect":
				connect()
				return ""
			case "send":
				for _, line := range nonEmptyLines(d.Input) {
					msg, err := parseFrontendMessage(line)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					wc.fe.Send(msg)
				}
				if err := wc.fe.Flush(); err != nil {
					d.Fatalf(t, "%v", err)
				}
				return ""
			case "send_raw":
				for _, line := range nonEmptyLines(d.Input) {
					b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					if _, err := wc.nc.Write(b); err != nil {
						d.Fatalf(t, "%v", err)
					}
				}
				return ""
			case "until":
				var out []string
				for _, want := range nonEmptyLines(d.Input) {
					for {
						msg, err := wc.fe.Receive()
						if err != nil {
							d.Fatalf(t, "waiting for %s, got so far:\n%s\nerror: %v", want, strings.Join(out, "\n"), err)
						}
						out = append(out, formatMessage(msg, false))
						if messageType(msg) == want {
							break
						}
					}
				}
				return strings.Join(out, "\n") + "\n"
			case "until_closed":
				var out []string
				for {
					msg, err := wc.fe.Receive()
					if err != nil {
						break
					}
					out = append(out, formatMessage(msg, false))
				}
				return strings.Join(out, "\n") + "\n"
			}
			d.Fatalf(t, "unknown directive %s", d.Cmd)
			return ""
		})
	})
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// parseFrontendMessage parses "Type {json}" into a frontend message; the
// JSON is pgproto3's encoding of the message's fields and may be omitted.
func parseFrontendMessage(line string) (pgproto3.FrontendMessage, error) {
	typ, data, _ := strings.Cut(line, " ")
	var msg pgproto3.FrontendMessage
	switch typ {
	case "Query":
		msg = &pgproto3.Query{}
	case "Parse":
		msg = &pgproto3.Parse{}
	case "Bind":
		msg = &pgproto3.Bind{}
	case "Describe":
		msg = &pgproto3.Describe{}
	case "Execute":
		msg = &pgproto3.Execute{}
	case "Close":
		msg = &pgproto3.Close{}
	case "Sync":
		msg = &pgproto3.Sync{}
	case "Flush":
		msg = &pgproto3.Flush{}
	case "Terminate":
		msg = &pgproto3.Terminate{}
	case "CopyData":
		msg = &pgproto3.CopyData{}
	case "CopyDone":
		msg = &pgproto3.CopyDone{}
	case "FunctionCall":
		msg = &pgproto3.FunctionCall{}
	default:
		return nil, fmt.Errorf("unknown frontend message type %q", typ)
	}
	if data = strings.TrimSpace(data); data != "" {
		if err := json.Unmarshal([]byte(data), msg); err != nil {
			return nil, fmt.Errorf("%s: %w", line, err)
		}
	}
	return msg, nil
}
