package elle

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

func TestHistoryRoundTrip(t *testing.T) {
	h := History{
		ok(a(1, 1), r(2)),
		{Ops: []Op{a(2, 2)}, Outcome: Info, Process: 3, Node: "n2", Error: "result is ambiguous", Start: 5, End: 9},
		final(r(1, 1), r(2, 2)),
	}
	var buf bytes.Buffer
	if _, err := h.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip:\n%v\n%v", got, h)
	}
}

// TestRecheck checks a saved history (a failed roachtest run keeps one as
// list-append-history.jsonl):
//
//	ELLE_HISTORY=/path/list-append-history.jsonl go test ./roachtest/elle -run TestRecheck -v
func TestRecheck(t *testing.T) {
	path := os.Getenv("ELLE_HISTORY")
	if path == "" {
		t.Skip("set ELLE_HISTORY to a saved list-append history to check it")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	rep := Check(h, Options{MaxPerType: 1000})
	t.Log(rep)
	if !rep.OK() {
		t.Fail()
	}
}
