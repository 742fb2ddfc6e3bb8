package workload

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// lostMidStatement returns the error pgx gives a statement whose server
// receives it and then dies before answering (a kill -9 mid-statement):
// a fake server accepts the connection, reads the statement and hangs up.
func lostMidStatement(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		be := pgproto3.NewBackend(c, c)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			return
		}
		be.Send(&pgproto3.AuthenticationOk{})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if err := be.Flush(); err != nil {
			return
		}
		if _, err := be.Receive(); err == nil {
			close(received)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgresql://root@"+l.Addr().String()+"/defaultdb?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (1)")
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("the fake server never received the statement")
	}
	if err == nil {
		t.Fatal("a statement whose server hung up succeeded")
	}
	return err
}

func TestClassify(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgresql://root@"+addr+"/defaultdb?sslmode=disable")
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{refused, Failed},
		{pg("23505"), Failed},
		{pg("40001"), Failed},
		{pg("42P01"), Failed},
		{pg("0A000"), Failed},
		{pg("40003"), Ambiguous},
		{pg("58000"), Ambiguous},
		{pg("57P01"), Ambiguous},
		{pg("XX000"), Ambiguous},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), Ambiguous},
		{context.DeadlineExceeded, Ambiguous},
		{lostMidStatement(t), Ambiguous},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestValuesAreUniqueAndReadable(t *testing.T) {
	seen := map[int64]bool{}
	for c := 0; c < 8; c++ {
		for s := 1; s < 100; s++ {
			v := valueOf(c, s)
			if seen[v] || v == 0 || v == Absent {
				t.Fatalf("value %d of client %d seq %d is not unique", v, c, s)
			}
			seen[v] = true
			if got, want := FormatValue(v), fmt.Sprintf("%d:%d", c, s); got != want {
				t.Fatalf("FormatValue = %s, want %s", got, want)
			}
		}
	}
	if FormatValue(0) != "0" || FormatValue(Absent) != "-1" {
		t.Error("the initial value and Absent print as numbers")
	}
}

func TestHistoryFileAndSummary(t *testing.T) {
	h := &History{
		Ops: []Op{
			{Client: 0, Seq: 1, Node: 1, Kind: Write, Key: 1, Value: valueOf(0, 1), End: time.Second, Outcome: OK},
			{Client: 1, Seq: 1, Node: 2, Kind: Append, Value: 1, Start: time.Second, End: 3 * time.Second, Outcome: OK},
			{Client: 1, Seq: 2, Node: 2, Kind: CAS, Key: 1, Old: 0, Value: valueOf(1, 2), Outcome: Ambiguous, Err: "40003 ambiguous"},
		},
		Notes: []Note{{At: time.Second, Text: "killed n1"}},
		Log:   map[int][]LogRow{1: {{Client: 1, Seq: 1}}},
		Keys:  1,
	}
	sum := h.Summary()
	for _, want := range []string{"write 1/0/0", "cas 0/0/1", "append 1/0/0", "longest gap between acknowledged writes 2s"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %q", sum, want)
		}
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := h.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", lines+1, err)
		}
		lines++
	}
	if lines != 1+len(h.Ops) {
		t.Errorf("%d lines, want a header and %d operations", lines, len(h.Ops))
	}
	if s := h.Ops[2].String(); !strings.Contains(s, "cas k=1 0 -> 1:2") || !strings.Contains(s, "ambiguous: 40003") {
		t.Errorf("Op.String() = %q", s)
	}
}
