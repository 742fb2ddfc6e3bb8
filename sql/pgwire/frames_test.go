package pgwire

import (
	"bytes"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// stepReader hands out its chunks one Read at a time, as a socket hands out
// what the client wrote in separate writes.
type stepReader struct{ chunks [][]byte }

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// TestFrameReaderBatches: what one read brings whole is one batch (libpq's
// Bind, Describe, Execute, Sync); a message cut by the end of a read waits
// for the next batch; Terminate ends a batch; the messages own their memory.
func TestFrameReaderBatches(t *testing.T) {
	round := encode(
		&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("42"), nil, {}}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	next := encode(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{}, &pgproto3.Sync{})
	cut := 3 // the Query's first bytes arrive with the first round
	fr := newFrameReader(&stepReader{chunks: [][]byte{append(bytes.Clone(round), next[:cut]...), next[cut:]}})

	b := fr.batch()
	var names []string
	for _, r := range b {
		if r.err != nil {
			t.Fatalf("batch 1: %v", r.err)
		}
		names = append(names, messageName(r.msg))
	}
	if got := len(names); got != 4 || names[0] != "Bind" || names[3] != "Sync" {
		t.Fatalf("batch 1 = %v, want Bind Describe Execute Sync", names)
	}
	bind := b[0].msg.(*pgproto3.Bind)
	if string(bind.Parameters[0]) != "42" || bind.Parameters[1] != nil || bind.Parameters[2] == nil {
		t.Fatalf("Bind parameters = %q: a NULL must stay nil and an empty value must not", bind.Parameters)
	}

	b = fr.batch()
	if len(b) != 2 || messageName(b[0].msg) != "Query" || messageName(b[1].msg) != "Terminate" {
		t.Fatalf("batch 2 = %d messages, want Query and Terminate (nothing after Terminate)", len(b))
	}
	if q := b[0].msg.(*pgproto3.Query); q.String != "SELECT 1" {
		t.Fatalf("Query = %q", q.String)
	}
	// The Bind of the first batch still holds its own parameters.
	if string(bind.Parameters[0]) != "42" {
		t.Fatalf("Bind parameter changed to %q by a later read", bind.Parameters[0])
	}

	b = fr.batch()
	if len(b) != 1 || messageName(b[0].msg) != "Sync" {
		t.Fatalf("batch 3 = %d messages, want the Sync after Terminate", len(b))
	}
	if b = fr.batch(); len(b) != 1 || !b[0].ioErr {
		t.Fatalf("at the end of the stream: %+v, want a network error", b)
	}
}
