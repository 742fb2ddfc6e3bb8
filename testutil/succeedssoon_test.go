package testutil

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	err := Poll(context.Background(), 10*time.Second, func() error {
		if n++; n < 5 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 5 {
		t.Fatalf("Poll = %v after %d calls, want nil after 5", err, n)
	}
}

func TestPollFailsWithTheLastErrorAtTheDeadline(t *testing.T) {
	n := 0
	start := time.Now()
	err := Poll(context.Background(), 200*time.Millisecond, func() error {
		n++
		return errors.New("still " + strings.Repeat("x", n))
	})
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Poll took %s, want about 200ms", took)
	}
	want := "still " + strings.Repeat("x", n)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "condition failed for") {
		t.Fatalf("Poll = %v, want the last error %q", err, want)
	}
	// Backoff: far fewer calls than a 1ms loop would make, but more than one.
	if n < 3 || n > 60 {
		t.Fatalf("fn called %d times in 200ms; want backoff between 1ms and 50ms", n)
	}
}

func TestPollStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Minute, func() error { return errors.New("never") }); err == nil {
		t.Fatal("Poll succeeded with a cancelled context and a failing condition")
	}
}

// fakeTB records Fatal instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatal(args ...any)     { f.failed = args[0].(error).Error() }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = "fatalf" }

func TestSucceedsWithinFailsTheTest(t *testing.T) {
	f := &fakeTB{}
	SucceedsWithin(f, 50*time.Millisecond, func() error { return errors.New("boom") })
	if !strings.Contains(f.failed, "boom") {
		t.Fatalf("SucceedsWithin failed with %q, want the condition's error", f.failed)
	}
	f = &fakeTB{}
	SucceedsSoon(f, func() error { return nil })
	if f.failed != "" {
		t.Fatalf("SucceedsSoon failed on a condition that holds: %s", f.failed)
	}
}

func TestPollEveryWaitsItsInterval(t *testing.T) {
	n := 0
	start := time.Now()
	err := PollEvery(context.Background(), 250*time.Millisecond, 100*time.Millisecond, func() error {
		n++
		return errors.New("not yet")
	})
	if err == nil || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("PollEvery = %v, want the last error", err)
	}
	// Attempts at 0, 100 and 200ms; the deadline ends the wait for the next.
	if took := time.Since(start); n < 2 || n > 4 || took > 5*time.Second {
		t.Fatalf("fn called %d times in %s; want about 3 (every 100ms for 250ms)", n, took)
	}
}
