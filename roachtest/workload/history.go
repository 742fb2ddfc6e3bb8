package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Kind is what an operation does.
type Kind string

// The operations of the workload.
const (
	Read   Kind = "read"   // SELECT v FROM rt_reg WHERE k = $1
	Write  Kind = "write"  // UPSERT INTO rt_reg VALUES ($1, $2)
	CAS    Kind = "cas"    // UPDATE rt_reg SET v = $new WHERE k = $1 AND v = $old
	Append Kind = "append" // INSERT INTO rt_log VALUES (client, seq, node)
)

// Outcome is how an operation ended, from the client's point of view.
type Outcome string

// The outcomes (see the package comment).
const (
	OK        Outcome = "ok"
	Failed    Outcome = "failed"
	Ambiguous Outcome = "ambiguous"
)

// Absent is the value of a read that found no row.
const Absent int64 = -1

// Op is one attempted operation.
type Op struct {
	Client int  `json:"client"`
	Seq    int  `json:"seq"`
	Node   int  `json:"node"` // the node (1-based index) the client was connected to
	Kind   Kind `json:"kind"`
	// Key is the register key (read, write, cas).
	Key int64 `json:"key,omitempty"`
	// Value is the value written (write, cas), the value read (read; Absent
	// if no row), or the appended seq (append).
	Value int64 `json:"value"`
	// Old is the value a cas expected.
	Old int64 `json:"old,omitempty"`
	// Applied says whether an ok cas changed the row.
	Applied bool `json:"applied,omitempty"`
	// Start and End are when the client sent the operation and when it got
	// the answer, since the workload started.
	Start   time.Duration `json:"start"`
	End     time.Duration `json:"end"`
	Outcome Outcome       `json:"outcome"`
	Err     string        `json:"err,omitempty"`
	// Final marks the reads made by ReadFinal after the workload stopped.
	Final bool `json:"final,omitempty"`
}

// String is one line for failure reports.
func (o Op) String() string {
	var what string
	switch o.Kind {
	case Read:
		v := fmt.Sprint(o.Value)
		if o.Value == Absent {
			v = "<absent>"
		}
		if o.Outcome != OK {
			v = "?"
		}
		what = fmt.Sprintf("read k=%d -> %s", o.Key, v)
	case Write:
		what = fmt.Sprintf("write k=%d v=%s", o.Key, FormatValue(o.Value))
	case CAS:
		what = fmt.Sprintf("cas k=%d %s -> %s", o.Key, FormatValue(o.Old), FormatValue(o.Value))
		if o.Outcome == OK {
			what += fmt.Sprintf(" applied=%v", o.Applied)
		}
	case Append:
		what = fmt.Sprintf("append (client %d, seq %d)", o.Client, o.Seq)
	}
	who := fmt.Sprintf("c%d#%d", o.Client, o.Seq)
	if o.Final {
		who = "final"
	}
	s := fmt.Sprintf("%-9s via n%d  %-44s [%9.3fs .. %9.3fs] %s", who, o.Node, what, o.Start.Seconds(), o.End.Seconds(), o.Outcome)
	if o.Err != "" {
		s += ": " + o.Err
	}
	return s
}

// FormatValue prints a register value the workload wrote as client:seq,
// the operation that wrote it; the initial 0, Absent and anything else print
// as numbers.
func FormatValue(v int64) string {
	if v < 1<<32 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%d:%d", (v>>32)-1, v&0xffffffff)
}

// valueOf is the unique register value of client's seq-th operation.
func valueOf(client, seq int) int64 { return int64(client+1)<<32 | int64(seq) }

// Note is a scenario event recorded on the workload's clock ("killed n2"),
// printed with failures so the operations can be read against them.
type Note struct {
	At   time.Duration `json:"at"`
	Text string        `json:"text"`
}

// LogRow is one row of rt_log as read back.
type LogRow struct {
	Client int `json:"client"`
	Seq    int `json:"seq"`
}

// History is everything a run recorded.
type History struct {
	Ops   []Op   `json:"ops"`
	Notes []Note `json:"notes"`
	// Log is the content of rt_log read through each node (by index) after
	// the workload stopped.
	Log map[int][]LogRow `json:"log"`
	// Keys is the number of register keys (1..Keys).
	Keys int `json:"keys"`
}

// NotesAround returns the notes within d of t, for failure reports.
func (h *History) NotesAround(t, d time.Duration) []Note {
	var out []Note
	for _, n := range h.Notes {
		if n.At >= t-d && n.At <= t+d {
			out = append(out, n)
		}
	}
	return out
}

// Summary counts operations by kind and outcome, and the longest time
// without an acknowledged write.
func (h *History) Summary() string {
	type key struct {
		k Kind
		o Outcome
	}
	counts := map[key]int{}
	var acked []time.Duration
	for _, o := range h.Ops {
		if o.Final {
			continue
		}
		counts[key{o.Kind, o.Outcome}]++
		if o.Outcome == OK && o.Kind != Read {
			acked = append(acked, o.End)
		}
	}
	var b strings.Builder
	for _, k := range []Kind{Read, Write, CAS, Append} {
		fmt.Fprintf(&b, "%s %d/%d/%d  ", k, counts[key{k, OK}], counts[key{k, Failed}], counts[key{k, Ambiguous}])
	}
	b.WriteString("(ok/failed/ambiguous)")
	sort.Slice(acked, func(i, j int) bool { return acked[i] < acked[j] })
	var gap time.Duration
	var at time.Duration
	for i := 1; i < len(acked); i++ {
		if d := acked[i] - acked[i-1]; d > gap {
			gap, at = d, acked[i-1]
		}
	}
	if gap > 0 {
		fmt.Fprintf(&b, "; longest gap between acknowledged writes %s (from %.3fs)", gap.Round(time.Millisecond), at.Seconds())
	}
	return b.String()
}

// WriteFile saves the history as JSON, one operation per line after a
// header line with the notes and the log, for reading with jq or grep.
func (h *History) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	if err := enc.Encode(struct {
		Notes []Note         `json:"notes"`
		Keys  int            `json:"keys"`
		Log   map[int]int    `json:"log_rows_per_node"`
		Help  string         `json:"help"`
		Extra map[string]any `json:"extra,omitempty"`
	}{h.Notes, h.Keys, logSizes(h.Log), "one operation per following line; times are seconds*1e9 since the workload started", nil}); err != nil {
		_ = f.Close()
		return err
	}
	for _, o := range h.Ops {
		if err := enc.Encode(o); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func logSizes(m map[int][]LogRow) map[int]int {
	out := map[int]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}
