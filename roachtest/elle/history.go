package elle

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Outcome is how a transaction ended, as its client saw it.
type Outcome int

const (
	// OK: committed.
	OK Outcome = iota
	// Fail: definitely not committed (an error before or at COMMIT that
	// guarantees nothing was applied, e.g. 40001 or a refused BEGIN).
	Fail
	// Info: unknown (40003, a connection lost during COMMIT): it may or may
	// not have committed.
	Info
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Fail:
		return "fail"
	case Info:
		return "info"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// OpKind is a micro-operation's kind.
type OpKind int

const (
	// Append adds Value at the end of Key's list.
	Append OpKind = iota
	// Read returns Key's list in List.
	Read
)

// Op is one micro-operation of a transaction.
type Op struct {
	Kind  OpKind
	Key   int
	Value int   // Append: the value appended (unique in the history)
	List  []int // Read: the list returned (nil or empty: the empty list)
}

// AppendOp returns append(k, v).
func AppendOp(k, v int) Op { return Op{Kind: Append, Key: k, Value: v} }

// ReadOp returns read(k) -> list.
func ReadOp(k int, list ...int) Op { return Op{Kind: Read, Key: k, List: list} }

func (o Op) String() string {
	if o.Kind == Append {
		return fmt.Sprintf("append(%d, %d)", o.Key, o.Value)
	}
	return fmt.Sprintf("read(%d) -> %s", o.Key, listString(o.List))
}

// listString prints a list; a long one is abbreviated to its first and
// last elements and its length.
func listString(l []int) string {
	if len(l) <= 16 {
		return "[" + joinInts(l) + "]"
	}
	return fmt.Sprintf("[%s ... %s] (%d elements)", joinInts(l[:3]), joinInts(l[len(l)-6:]), len(l))
}

// around prints the elements of l around position pos: where two lists
// part.
func around(l []int, pos int) string {
	from, to := max(0, pos-2), min(len(l), pos+3)
	s := joinInts(l[from:to])
	if from > 0 {
		s = "... " + s
	}
	if to < len(l) {
		s += " ..."
	}
	return "[" + s + "]"
}

func joinInts(l []int) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, " ")
}

// Txn is one transaction of a history.
type Txn struct {
	Ops     []Op
	Outcome Outcome
	// Process is the client that ran it, Node where it ran, Error the error
	// that ended it (if any), Start and End when (on the workload's clock):
	// context for a report, not used by the checks.
	Process    int
	Node       string
	Error      string
	Start, End time.Duration
	// Final marks a read-only transaction run after every other one ended
	// (the final reads, through every node): every committed append must
	// be in it, and final reads of a key must agree.
	Final bool
}

// History is the transactions of a run; a transaction is named by its index
// (T0, T1, ...), in any order (Check does not rely on it).
type History []Txn

// describe prints transaction i; if it has many operations, only those on
// keys (when given) are printed.
func (h History) describe(i int, keys []int) string {
	t := h[i]
	var ops []string
	others := 0
	for _, o := range t.Ops {
		if len(t.Ops) > 4 && len(keys) > 0 && !slices.Contains(keys, o.Key) {
			others++
			continue
		}
		ops = append(ops, o.String())
	}
	if others > 0 {
		ops = append(ops, fmt.Sprintf("(%d operations on other keys)", others))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "T%d %s", i, t.Outcome)
	if t.Final {
		b.WriteString(" (final read)")
	}
	if t.Node != "" {
		fmt.Fprintf(&b, " via %s", t.Node)
	}
	if t.Process != 0 || t.Node != "" {
		fmt.Fprintf(&b, " client %d", t.Process)
	}
	if t.End != 0 {
		fmt.Fprintf(&b, " [%.3fs..%.3fs]", t.Start.Seconds(), t.End.Seconds())
	}
	fmt.Fprintf(&b, ": %s", strings.Join(ops, ", "))
	if t.Error != "" {
		fmt.Fprintf(&b, " (%s)", t.Error)
	}
	return b.String()
}
