package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// TestBulkBatchValidationRandom applies random bulk batches (cmdBulkBatch)
// over random existing keys and checks that every transaction whose
// snapshot precedes the batch and whose reads (values, existences, spans)
// meet what the batch changed fails validation.
func TestBulkBatchValidationRandom(t *testing.T) {
	eng, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var universe [][]byte
	for _, a := range "abcdef" {
		for _, b := range "abcdef" {
			for _, c := range "abcdef" {
				universe = append(universe, tk(string([]rune{a, b, c})))
			}
		}
	}
	wiAt := func(i uint64) *writeIndexer {
		w := &writeIndexer{index: i}
		binary.BigEndian.PutUint64(w.val[:], i)
		return w
	}
	ranged := 0
	for seed := range 100 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		b := eng.DB.NewIndexedBatch()
		// Existing keys, written at index 5.
		var setup []kvpb.Op
		density := rng.Float64()
		for _, k := range universe {
			if rng.Float64() < density {
				setup = append(setup, kvpb.Op{Kind: kvpb.OpPut, Key: k, Value: []byte("old")})
			}
		}
		if len(setup) > 0 {
			if res := applyCommand(b, newRowCache(0, nil), &command{Kind: cmdBatch21, Ops: setup}, wiAt(5)); res.err != nil {
				t.Fatal(res.err)
			}
		}
		existed := func(k []byte) bool {
			_, closer, err := b.Get(userKey(k))
			if err == nil {
				_ = closer.Close()
			}
			return err == nil
		}
		before := map[string]bool{}
		for _, k := range universe {
			before[string(k)] = existed(k)
		}
		// The bulk batch at index 10: a few blocks of consecutive keys,
		// puts and deletes, sometimes with a conditionless non-plain op.
		chosen := map[int]bool{}
		for len(chosen) < bulkBatchMin || rng.IntN(3) > 0 {
			start, n := rng.IntN(len(universe)), 1+rng.IntN(80)
			if rng.IntN(4) == 0 {
				n = 1
			}
			for i := start; i < min(start+n, len(universe)); i++ {
				chosen[i] = true
			}
			if len(chosen) > 180 {
				break
			}
		}
		var idx []int
		for i := range chosen {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		var ops []kvpb.Op
		for _, i := range idx {
			if rng.IntN(5) == 0 {
				ops = append(ops, kvpb.Op{Kind: kvpb.OpDelete, Key: universe[i]})
			} else {
				ops = append(ops, kvpb.Op{Kind: kvpb.OpPut, Key: universe[i], Value: []byte("new")})
			}
		}
		if rng.IntN(3) == 0 {
			rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		}
		if rng.IntN(3) == 0 {
			ops[0].Kind, ops[0].Value, ops[0].ElseValue = kvpb.OpInsertOrUpdate, []byte("ins"), []byte("upd")
		}
		if len(ops) < bulkBatchMin || batchKind(ops, Level21) != cmdBulkBatch {
			t.Fatalf("seed %d: %d ops, kind %d", seed, len(ops), batchKind(ops, Level21))
		}
		if res := applyCommand(b, newRowCache(0, nil), &command{Kind: cmdBulkBatch, Ops: ops}, wiAt(10)); res.err != nil {
			t.Fatal(res.err)
		}
		if _, closer, err := b.Get(userKey(writeIndexKey(ops[len(ops)/2].Key))); err == nil {
			_ = closer.Close()
		} else {
			ranged++
		}
		written, changed := map[string]bool{}, map[string]bool{}
		for _, op := range ops {
			written[string(op.Key)] = true
			changed[string(op.Key)] = before[string(op.Key)] != existed(op.Key)
		}
		for trial := range 200 {
			cmd := &command{Snapshot: 9}
			want := false
			switch trial % 3 {
			case 0:
				k := universe[rng.IntN(len(universe))]
				if rng.IntN(2) == 0 {
					k = append(bytes.Clone(k), 'x')
				}
				cmd.ReadKeys = [][]byte{k}
				want = written[string(k)]
			case 1:
				k := universe[rng.IntN(len(universe))]
				cmd.ExistKeys = [][]byte{k}
				want = changed[string(k)]
			case 2:
				i := rng.IntN(len(universe))
				j := i + 1 + rng.IntN(4)
				end := tk("zzz")
				if j < len(universe) {
					end = universe[j]
				}
				cmd.ReadSpans = []kvpb.Span{{Start: universe[i], End: end}}
				for _, k := range universe[i:min(j, len(universe))] {
					want = want || written[string(k)]
				}
			}
			err := validateTxn(b, 0, cmd)
			if want && !isConflict(err) {
				t.Fatalf("seed %d trial %d: reads %s, %s, %v validate (%v) after a bulk batch that changed them",
					seed, trial, fmt.Sprintf("%q", cmd.ReadKeys), fmt.Sprintf("%q", cmd.ExistKeys), cmd.ReadSpans, err)
			}
		}
		_ = b.Close()
	}
	t.Logf("%d of 100 bulk batches left range records", ranged)
	if ranged == 0 || ranged == 100 {
		t.Fatalf("%d of 100 bulk batches left range records: the test must exercise both kinds of records", ranged)
	}
}
