package kv

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// streamEngine is a store holding k000..k098 (every even number from 0 to
// 98), each with value v<n>, in the replicated span.
func streamEngine(t *testing.T) *storage.Engine {
	t.Helper()
	eng, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	for i := 0; i < 100; i += 2 {
		if err := eng.DB.Set(userKey([]byte(fmt.Sprintf("k%03d", i))), []byte(fmt.Sprintf("v%d", i)), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

// TestScanReaderFunc checks that the streaming scan hands out exactly the
// entries the copying scan returns, in every direction and limit.
func TestScanReaderFunc(t *testing.T) {
	eng := streamEngine(t)
	for _, tc := range []struct {
		start, end string
		limit      int
		reverse    bool
	}{
		{"k", "l", 0, false}, {"k", "l", 0, true}, {"k010", "k020", 0, false},
		{"k010", "k020", 2, true}, {"k", "l", 7, false}, {"k0999", "l", 0, false},
	} {
		t.Run(fmt.Sprintf("%s-%s-%d-%v", tc.start, tc.end, tc.limit, tc.reverse), func(t *testing.T) {
			want, err := scanReader(eng.DB, []byte(tc.start), []byte(tc.end), tc.limit, tc.reverse)
			if err != nil {
				t.Fatal(err)
			}
			var got []kvpb.KeyValue
			err = scanReaderFunc(eng.DB, []byte(tc.start), []byte(tc.end), tc.limit, tc.reverse, func(k, v []byte) error {
				got = append(got, kvpb.KeyValue{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("streamed %q\nscanned  %q", got, want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	if err := scanReaderFunc(eng.DB, []byte("k"), []byte("l"), 0, false, func(k, v []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	}); err != stop || n != 3 {
		t.Fatalf("an error from fn: got %v after %d entries, want it returned after 3", err, n)
	}
}

// TestScanReaderSharedBlocks checks that entries copied into shared blocks
// stay independent: appending to one key or value never changes another.
func TestScanReaderSharedBlocks(t *testing.T) {
	eng := streamEngine(t)
	kvs, err := scanReader(eng.DB, []byte("k"), []byte("l"), 0, false)
	if err != nil || len(kvs) != 50 {
		t.Fatalf("scan: %d entries, %v", len(kvs), err)
	}
	for i := range kvs {
		_ = append(kvs[i].Key, "XXXXXXXX"...)
		_ = append(kvs[i].Value, "YYYYYYYY"...)
	}
	for i, kv := range kvs {
		if want := fmt.Sprintf("k%03d", 2*i); string(kv.Key) != want {
			t.Fatalf("entry %d key %q, want %q", i, kv.Key, want)
		}
		if want := fmt.Sprintf("v%d", 2*i); string(kv.Value) != want {
			t.Fatalf("entry %d value %q, want %q", i, kv.Value, want)
		}
	}
}

// TestGetEachReader reads present and absent keys, before, between and
// after the stored ones, with one iterator.
func TestGetEachReader(t *testing.T) {
	eng := streamEngine(t)
	var keys [][]byte
	for _, k := range []string{"a", "k000", "k001", "k002", "k050", "k051", "k098", "k099", "z"} {
		keys = append(keys, []byte(k))
	}
	var got []string
	if err := getEachReader(eng.DB, keys, func(i int, v []byte) error {
		got = append(got, fmt.Sprintf("%d:%s=%s", i, keys[i], v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[1:k000=v0 3:k002=v2 4:k050=v50 6:k098=v98]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	// Every key read one at a time agrees.
	for i, k := range keys {
		v, closer, err := eng.DB.Get(userKey(k))
		found := err == nil
		if found {
			_ = closer.Close()
		}
		inGot := false
		for _, g := range got {
			inGot = inGot || bytes.HasPrefix([]byte(g), []byte(fmt.Sprintf("%d:", i)))
		}
		if found != inGot {
			t.Fatalf("key %s: Get found=%v (%q), GetEach found=%v", k, found, v, inGot)
		}
	}
	if err := getEachReader(eng.DB, nil, func(int, []byte) error { return errors.New("called") }); err != nil {
		t.Fatalf("no keys: %v", err)
	}
}
