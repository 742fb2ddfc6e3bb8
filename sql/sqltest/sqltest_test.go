package sqltest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kvnode/kvnode/kv/kvpb"
)

// TestMemDBContract checks the parts of the kvpb.DB contract the executor
// relies on: atomic batches, conditional puts, ordered and limited scans,
// range deletes, counters.
func TestMemDBContract(t *testing.T) {
	ctx := context.Background()
	db := NewMemDB()
	put := func(k, v string) kvpb.Op { return kvpb.Op{Kind: kvpb.OpPut, Key: []byte(k), Value: []byte(v)} }
	if err := db.Write(ctx, []kvpb.Op{put("b", "2"), put("a", "1"), put("c", "3")}); err != nil {
		t.Fatal(err)
	}
	// A failing condition leaves nothing behind, even ops before it.
	err := db.Write(ctx, []kvpb.Op{
		put("d", "4"),
		{Kind: kvpb.OpCPut, Key: []byte("a"), Value: []byte("x"), Expected: []byte("wrong")},
	})
	var cf *kvpb.ConditionFailedError
	if !errors.As(err, &cf) || cf.Index != 1 || string(cf.Actual) != "1" || !cf.Exists {
		t.Fatalf("got %v", err)
	}
	if _, found, _ := db.Get(ctx, []byte("d")); found {
		t.Fatal("a failed batch was partly applied")
	}
	// ExpectAbsent, conditional delete.
	if err := db.Write(ctx, []kvpb.Op{
		{Kind: kvpb.OpCPut, Key: []byte("e"), Value: []byte("5"), ExpectAbsent: true},
		{Kind: kvpb.OpCPut, Key: []byte("b"), Delete: true, Expected: []byte("2")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, []kvpb.Op{{Kind: kvpb.OpCPut, Key: []byte("e"), Value: []byte("x"), ExpectAbsent: true}}); !errors.As(err, &cf) {
		t.Fatalf("ExpectAbsent on an existing key: %v", err)
	}
	scan := func(start, end string, limit int, reverse bool) string {
		kvs, err := db.Scan(ctx, []byte(start), []byte(end), limit, reverse)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		for _, kv := range kvs {
			out += fmt.Sprintf("%s=%s ", kv.Key, kv.Value)
		}
		return out
	}
	if got := scan("a", "z", 0, false); got != "a=1 c=3 e=5 " {
		t.Fatalf("scan: %q", got)
	}
	if got := scan("a", "z", 2, true); got != "e=5 c=3 " {
		t.Fatalf("reverse limited scan: %q", got)
	}
	if err := db.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: []byte("b"), EndKey: []byte("e")}}); err != nil {
		t.Fatal(err)
	}
	if got := scan("a", "z", 0, false); got != "a=1 e=5 " {
		t.Fatalf("after delete range: %q", got)
	}
	for i, want := range []int64{5, 3} {
		n, err := db.Increment(ctx, []byte("ctr"), []int64{5, -2}[i])
		if err != nil || n != want {
			t.Fatalf("increment: %d %v", n, err)
		}
	}
}

// TestMemDBStreamer checks the streaming reads against Scan and Get: the
// same entries, fn free to read the store again, its error returned.
func TestMemDBStreamer(t *testing.T) {
	ctx := context.Background()
	db := NewMemDB()
	var ops []kvpb.Op
	for i := 0; i < 10; i += 2 {
		ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := db.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, reverse := range []bool{false, true} {
		want, err := db.Scan(ctx, []byte("k"), []byte("l"), 3, reverse)
		if err != nil {
			t.Fatal(err)
		}
		var got []kvpb.KeyValue
		if err := db.ScanFunc(ctx, []byte("k"), []byte("l"), 3, reverse, func(k, v []byte) error {
			if _, _, err := db.Get(ctx, k); err != nil { // no deadlock: fn runs outside the lock
				return err
			}
			got = append(got, kvpb.KeyValue{Key: k, Value: v})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("reverse=%v: streamed %q, scanned %q", reverse, got, want)
		}
	}
	var got []string
	keys := [][]byte{[]byte("a"), []byte("k2"), []byte("k3"), []byte("k8")}
	if err := db.GetEach(ctx, keys, func(i int, v []byte) error {
		got = append(got, fmt.Sprintf("%d=%s", i, v))
		return nil
	}); err != nil || fmt.Sprint(got) != "[1=2 3=8]" {
		t.Fatalf("GetEach: %v %v", got, err)
	}
	stop := errors.New("stop")
	if err := db.GetEach(ctx, keys, func(int, []byte) error { return stop }); err != stop {
		t.Fatalf("GetEach returned %v, want fn's error", err)
	}
	if err := db.GetEach(ctx, [][]byte{[]byte("b"), []byte("a")}, func(int, []byte) error { return nil }); err == nil {
		t.Fatal("GetEach accepted keys out of order")
	}
}
