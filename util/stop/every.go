package stop

import (
	"context"
	"time"
)

// Every runs f every d, the first time d after it is called, until ctx ends
// or f returns false. It is the loop of a periodic task (run it in a task
// of RunAsyncTask, with the task's context): nothing else in a node loops
// on a ticker and a done channel of its own.
func Every(ctx context.Context, d time.Duration, f func() (more bool)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil || !f() { // both may be ready: the end wins
			return
		}
	}
}
