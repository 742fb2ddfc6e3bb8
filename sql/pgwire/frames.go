package pgwire

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	// readBufferSize is the reader's buffer: one read system call takes
	// whatever the client has sent, up to this much.
	readBufferSize = 16 << 10
	// maxBatch bounds how many messages the reader hands over at once.
	maxBatch = 64
	// bodyBlock is the size of the blocks small message bodies (up to
	// maxSharedBody bytes) are carved from; msgBlock is how many messages
	// of one type are carved from one allocation.
	bodyBlock     = 4 << 10
	maxSharedBody = 512
	msgBlock      = 32
)

// frameReader splits the client's byte stream into frontend messages after
// startup. It reads through a buffer, so a client's pipelined messages
// (libpq sends Bind, Describe, Execute and Sync of a prepared statement in
// one write) arrive with one read system call, and it can tell whether the
// next message has already arrived whole, which pgproto3.Backend cannot: the
// reader hands all such messages to the connection's goroutine in one batch,
// one channel hand-off instead of one per message.
//
// The framing is the protocol's (a type byte and a length that counts
// itself); the messages are pgproto3's, decoded by their own Decode. Each
// message gets a body of its own, which the decoded message may point into
// (Bind's parameters, CopyData's data): nothing is reused, so no message
// needs copying before it is queued.
//
// A prepared statement's round trip is four messages (Bind, Describe,
// Execute, Sync): their bodies are carved from shared blocks, and the
// messages that have fields from blocks of their type (msgAlloc), one
// allocation per many messages instead of two per message. Nothing is
// reused: a block is garbage once every message carved from it is.
type frameReader struct {
	br    *bufio.Reader
	alloc msgAlloc
}

// msgAlloc carves the reader's messages and small bodies from blocks.
type msgAlloc struct {
	body      []byte
	binds     []pgproto3.Bind
	describes []pgproto3.Describe
	executes  []pgproto3.Execute
}

func (a *msgAlloc) newBody(n int) []byte {
	if n > maxSharedBody {
		return make([]byte, n)
	}
	if len(a.body) < n {
		a.body = make([]byte, bodyBlock)
	}
	b := a.body[:n:n]
	a.body = a.body[n:]
	return b
}

// carve returns the next element of *block, allocating a new block of
// msgBlock elements when it is used up.
func carve[T any](block *[]T) *T {
	if len(*block) == 0 {
		*block = make([]T, msgBlock)
	}
	m := &(*block)[0]
	*block = (*block)[1:]
	return m
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, readBufferSize)}
}

// batch reads the next message, waiting for it if need be, and then every
// further message that is already buffered whole, up to maxBatch. It stops
// after an error and after Terminate, which end reading.
func (f *frameReader) batch() []received {
	out := make([]received, 0, 4)
	for {
		r := f.read()
		out = append(out, r)
		if r.err != nil || len(out) == maxBatch || !f.whole() {
			return out
		}
		if _, ok := r.msg.(*pgproto3.Terminate); ok {
			return out
		}
	}
}

// whole reports whether the next message is buffered whole, so that read
// will not wait for the network (or fails at once on a bad length).
func (f *frameReader) whole() bool {
	b := f.br.Buffered()
	if b < 5 {
		return false
	}
	hdr, _ := f.br.Peek(5)
	n := int64(int32(binary.BigEndian.Uint32(hdr[1:])))
	return n < 4 || int64(b) >= 1+n
}

// read returns the next message. Errors are pgproto3.Backend's: a network
// error (ioErr: the client is gone), or a message that cannot be decoded.
func (f *frameReader) read() received {
	hdr, err := f.br.Peek(5)
	if err != nil {
		return received{err: err, ioErr: true}
	}
	typ := hdr[0]
	n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
	if n < 4 {
		return received{err: errors.Newf("invalid message length: %d", n)}
	}
	n -= 4
	if n > MaxMessageSize {
		return received{err: &pgproto3.ExceededMaxBodyLenErr{MaxExpectedBodyLen: MaxMessageSize, ActualBodyLen: n}}
	}
	var msg pgproto3.FrontendMessage
	switch typ {
	case 'B':
		msg = carve(&f.alloc.binds)
	case 'D':
		msg = carve(&f.alloc.describes)
	case 'E':
		msg = carve(&f.alloc.executes)
	default:
		msg = newFrontendMessage(typ)
	}
	if msg == nil {
		return received{err: errors.Newf("unknown message type: %c", typ)}
	}
	_, _ = f.br.Discard(5)
	var body []byte
	if n > 0 {
		body = f.alloc.newBody(n)
		if _, err := io.ReadFull(f.br, body); err != nil {
			return received{err: err, ioErr: true}
		}
	}
	if err := msg.Decode(body); err != nil {
		return received{err: err}
	}
	return received{msg: msg, size: messageSize(msg)}
}

// newFrontendMessage returns an empty message of the type a frontend
// message's first byte names, nil for an unknown one. After startup, 'p' can
// only be an authentication response out of place, which handle refuses.
func newFrontendMessage(typ byte) pgproto3.FrontendMessage {
	switch typ {
	case 'B':
		return &pgproto3.Bind{}
	case 'C':
		return &pgproto3.Close{}
	case 'D':
		return &pgproto3.Describe{}
	case 'E':
		return &pgproto3.Execute{}
	case 'F':
		return &pgproto3.FunctionCall{}
	case 'f':
		return &pgproto3.CopyFail{}
	case 'd':
		return &pgproto3.CopyData{}
	case 'c':
		return &pgproto3.CopyDone{}
	case 'H':
		return &pgproto3.Flush{}
	case 'P':
		return &pgproto3.Parse{}
	case 'p':
		return &pgproto3.PasswordMessage{}
	case 'Q':
		return &pgproto3.Query{}
	case 'S':
		return &pgproto3.Sync{}
	case 'X':
		return &pgproto3.Terminate{}
	}
	return nil
}
