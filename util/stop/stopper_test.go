package stop

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStopEndsEveryTask: the tasks' contexts end at Stop, Stop returns only
// once every task has, and nothing starts afterwards.
func TestStopEndsEveryTask(t *testing.T) {
	s := New(nil)
	started := make(chan struct{}, 3)
	var ended atomic.Int32
	for _, name := range []string{"a", "b", "b"} {
		if err := s.RunAsyncTask(name, func(ctx context.Context) {
			started <- struct{}{}
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // returns a little after the cancel
			ended.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		<-started
	}
	if got, want := s.RunningTasks(), []string{"a", "b (x2)"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RunningTasks = %v, want %v", got, want)
	}
	s.Stop()
	if n := ended.Load(); n != 3 {
		t.Fatalf("Stop returned with %d of 3 tasks ended", n)
	}
	if got := s.RunningTasks(); len(got) != 0 {
		t.Fatalf("after Stop, RunningTasks = %v", got)
	}
	if err := s.RunAsyncTask("late", func(context.Context) { t.Error("a task started after Stop") }); !errors.Is(err, ErrStopping) {
		t.Fatalf("RunAsyncTask after Stop = %v, want ErrStopping", err)
	}
	select {
	case <-s.ShouldQuiesce():
	default:
		t.Fatal("ShouldQuiesce is open after Stop")
	}
}

// TestContexts: WithTimeout and WithCancelOnQuiesce end at Quiesce;
// WithCancelOnQuiesce also ends with its parent, and its cancel releases
// the stopper's hold on it.
func TestContexts(t *testing.T) {
	s := New(nil)
	tctx, tcancel := s.WithTimeout(time.Hour)
	defer tcancel()
	parent, pcancel := context.WithCancel(context.Background())
	qctx, qcancel := s.WithCancelOnQuiesce(parent)
	defer qcancel()
	other, ocancel := s.WithCancelOnQuiesce(context.Background())
	pcancel()
	if qctx.Err() == nil {
		t.Fatal("WithCancelOnQuiesce's context outlived its parent")
	}
	ocancel()
	if other.Err() == nil {
		t.Fatal("WithCancelOnQuiesce's cancel did not cancel it")
	}
	if tctx.Err() != nil || s.Context().Err() != nil {
		t.Fatal("contexts ended before Quiesce")
	}
	still, scancel := s.WithCancelOnQuiesce(context.Background())
	defer scancel()
	s.Quiesce()
	for name, ctx := range map[string]context.Context{"WithTimeout": tctx, "WithCancelOnQuiesce": still, "Context": s.Context()} {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's context did not end at Quiesce", name)
		}
	}
	s.Stop()
}

func TestEvery(t *testing.T) {
	// f runs until it says it is done, and not after.
	runs := 0
	Every(context.Background(), time.Millisecond, func() bool { runs++; return runs < 3 })
	if runs != 3 {
		t.Fatalf("f ran %d times, want 3 (it returned false on the third)", runs)
	}
	// A cancelled context ends it before f runs again.
	ctx, cancel := context.WithCancel(context.Background())
	runs = 0
	Every(ctx, time.Millisecond, func() bool { runs++; cancel(); return true })
	if runs != 1 {
		t.Fatalf("f ran %d times after its context was cancelled, want 1", runs)
	}
	// An ended context ends it without running f.
	Every(ctx, time.Millisecond, func() bool { t.Fatal("f ran on an ended context"); return true })
}
