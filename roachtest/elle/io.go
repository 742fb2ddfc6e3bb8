package elle

import (
	"bufio"
	"encoding/json"
	"io"

	"github.com/cockroachdb/errors"
)

// WriteTo writes h as JSON lines, one transaction per line, for
// ReadHistory (a failed run keeps its history this way).
func (h History) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	enc := json.NewEncoder(cw)
	for _, t := range h {
		if err := enc.Encode(t); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadHistory reads a history written by WriteTo.
func ReadHistory(r io.Reader) (History, error) {
	var h History
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for line := 1; sc.Scan(); line++ {
		var t Txn
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, errors.Wrapf(err, "history line %d", line)
		}
		h = append(h, t)
	}
	return h, sc.Err()
}
