package testutil

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// DefaultSucceedsSoonDuration is how long SucceedsSoon polls: long enough
// for a slow, shared CI machine under the race detector, short enough that
// a test stuck on a condition that never comes fails in its own name rather
// than at the package's timeout.
const DefaultSucceedsSoonDuration = 45 * time.Second

// The backoff between attempts: from initialBackoff, doubling, at most
// maxBackoff. Conditions that are cheap to check become true quickly; the
// cap keeps a condition that takes seconds (a lease, a Raft election) from
// being checked hundreds of times.
const (
	initialBackoff = time.Millisecond
	maxBackoff     = 50 * time.Millisecond
)

// SucceedsSoon calls fn until it returns nil, and fails the test with fn's
// last error if it still fails after DefaultSucceedsSoonDuration.
func SucceedsSoon(t testing.TB, fn func() error) {
	t.Helper()
	SucceedsWithin(t, DefaultSucceedsSoonDuration, fn)
}

// SucceedsWithin is SucceedsSoon with its own duration d. It must be called
// from the test's goroutine (it calls t.Fatalf); elsewhere use Poll.
func SucceedsWithin(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(context.Background(), d, fn); err != nil {
		t.Fatal(err)
	}
}

// Poll calls fn until it returns nil (Poll returns nil), ctx ends or d
// passes (Poll returns fn's last error, saying for how long it failed). It
// is the error-returning form of SucceedsWithin, for helpers that return
// an error and for goroutines that must not fail the test themselves.
func Poll(ctx context.Context, d time.Duration, fn func() error) error {
	backoff := initialBackoff
	return poll(ctx, d, fn, func() time.Duration {
		b := backoff
		backoff = min(2*backoff, maxBackoff)
		return b
	})
}

// PollEvery is Poll with a fixed interval between attempts instead of the
// backoff: for conditions that are costly to check (the process-level
// tests of cmd/kvnode run psql or load a page in a browser each time).
func PollEvery(ctx context.Context, d, interval time.Duration, fn func() error) error {
	return poll(ctx, d, fn, func() time.Duration { return interval })
}

// poll calls fn until it returns nil, ctx ends or d passes, waiting next()
// between attempts.
func poll(ctx context.Context, d time.Duration, fn func() error, next func() time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		timer := time.NewTimer(next())
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("condition failed for %s: %w", time.Since(start).Round(time.Millisecond), err)
		case <-timer.C:
		}
	}
}
