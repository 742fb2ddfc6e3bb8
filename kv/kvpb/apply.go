package kvpb

import (
	"fmt"
	"sync"
)

// ApplyFunc names a deterministic function that OpApply runs on a key's
// current value where the batch is applied, on every replica. A function's
// behaviour is part of the replicated state machine: once a release uses an
// ID, the function behind it never changes; a new behaviour takes a new ID,
// gated on a cluster version like any new command.
type ApplyFunc uint8

// The functions. The package that implements one registers it at init.
const (
	// ApplyAddToInts adds constants to INT columns of a SQL row
	// (sql/rowenc.AddToInts).
	ApplyAddToInts ApplyFunc = 1
)

// ApplyFn computes a key's new value from its current one and the op's
// argument. It must be deterministic and must not retain its arguments.
type ApplyFn func(key, cur, arg []byte) ([]byte, error)

var applyFns struct {
	sync.RWMutex
	m map[ApplyFunc]ApplyFn
}

// RegisterApplyFunc installs fn under id; it panics if id is taken.
func RegisterApplyFunc(id ApplyFunc, fn ApplyFn) {
	applyFns.Lock()
	defer applyFns.Unlock()
	if applyFns.m == nil {
		applyFns.m = map[ApplyFunc]ApplyFn{}
	}
	if _, dup := applyFns.m[id]; dup {
		panic(fmt.Sprintf("kvpb: apply function %d registered twice", id))
	}
	applyFns.m[id] = fn
}

// LookupApplyFunc returns the function registered under id.
func LookupApplyFunc(id ApplyFunc) (ApplyFn, bool) {
	applyFns.RLock()
	defer applyFns.RUnlock()
	fn, ok := applyFns.m[id]
	return fn, ok
}

// ErrUnknownApplyFunc is the error of an OpApply whose function this binary
// does not have.
var ErrUnknownApplyFunc = fmt.Errorf("unknown apply function")
