package stop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ErrStopping is returned by RunAsyncTask once the stopper quiesces: the
// task was not started.
var ErrStopping = errors.New("the node is stopping")

// Stopper runs named tasks and ends them: see the package documentation.
// The zero value is not usable; call New.
type Stopper struct {
	// ctx is every task's context, cancelled by Quiesce.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	quiescing bool
	// running counts the tasks running under each name.
	running map[string]int
	wg      sync.WaitGroup
	// log, if set, hears about a Stop that waits long for its tasks.
	log *slog.Logger
}

// New returns a stopper with no tasks. log (may be nil) is told which
// tasks a Stop is still waiting for, every few seconds.
func New(log *slog.Logger) *Stopper {
	ctx, cancel := context.WithCancel(context.Background())
	return &Stopper{ctx: ctx, cancel: cancel, running: map[string]int{}, log: log}
}

// RunAsyncTask runs f on a new goroutine, as the task name, with a context
// that is cancelled when the stopper quiesces; f must return soon after.
// Once the stopper quiesces it starts nothing and returns ErrStopping.
func (s *Stopper) RunAsyncTask(name string, f func(ctx context.Context)) error {
	s.mu.Lock()
	if s.quiescing {
		s.mu.Unlock()
		return ErrStopping
	}
	s.running[name]++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			if s.running[name]--; s.running[name] == 0 {
				delete(s.running, name)
			}
			s.mu.Unlock()
			s.wg.Done()
		}()
		f(s.ctx)
	}()
	return nil
}

// ShouldQuiesce is closed when the stopper quiesces: for the parts that
// take a channel rather than a context.
func (s *Stopper) ShouldQuiesce() <-chan struct{} { return s.ctx.Done() }

// Context is cancelled when the stopper quiesces: the parent of whatever
// work a task starts outside RunAsyncTask's own context.
func (s *Stopper) Context() context.Context { return s.ctx }

// WithTimeout is a context that ends after d or when the stopper
// quiesces, whichever comes first.
func (s *Stopper) WithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, d)
}

// WithCancelOnQuiesce is ctx, also cancelled when the stopper quiesces.
func (s *Stopper) WithCancelOnQuiesce(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Quiesce tells every task to end (their contexts are cancelled,
// ShouldQuiesce is closed) and refuses new ones; it does not wait.
func (s *Stopper) Quiesce() {
	s.mu.Lock()
	s.quiescing = true
	s.mu.Unlock()
	s.cancel()
}

// Stop quiesces and waits until every task has returned. While it waits
// it logs, every waitLogEvery, the tasks that have not returned yet.
func (s *Stopper) Stop() {
	s.Quiesce()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTicker(waitLogEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if s.log != nil {
				s.log.Warn("stopping: still waiting for background tasks", "tasks", fmt.Sprint(s.RunningTasks()))
			}
		}
	}
}

// waitLogEvery is how often Stop names the tasks it still waits for.
const waitLogEvery = 5 * time.Second

// RunningTasks names the tasks running now, sorted, a name once per task
// ("name" or "name (xN)").
func (s *Stopper) RunningTasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.running))
	for name, n := range s.running {
		if n > 1 {
			name = fmt.Sprintf("%s (x%d)", name, n)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
