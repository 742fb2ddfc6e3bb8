package status

import (
	"context"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
)

// statusCache holds the last UpgradeStatus this node computed, so that
// the console (polled every few seconds by every open browser tab) and
// /metrics scrapes share one computation instead of each running the
// linearizable reads UpgradeStatus needs. At most one computation runs at
// a time; callers that arrive meanwhile wait for it.
type statusCache struct {
	mu      sync.Mutex
	running chan struct{} // closed when the computation in flight ends; nil if none
	st      *UpgradeStatus
	err     error
	at      time.Time // when st/err were computed
}

// statusComputeTimeout bounds one UpgradeStatus computation: the data
// group answers in milliseconds when it has a leader, and a status page
// must say "unavailable" rather than hang when it has none.
const statusComputeTimeout = 5 * time.Second

// cachedUpgradeStatus returns an UpgradeStatus no older than maxAge,
// computing it if needed, and when it was computed. The error is the
// computation's (for example, the data group did not answer in time).
func (s *Status) cachedUpgradeStatus(ctx context.Context, maxAge time.Duration) (*UpgradeStatus, time.Time, error) {
	c := &s.cache
	for {
		c.mu.Lock()
		if !c.at.IsZero() && time.Since(c.at) <= maxAge {
			st, at, err := c.st, c.at, c.err
			c.mu.Unlock()
			return st, at, err
		}
		if wait := c.running; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.running = done
		c.mu.Unlock()

		st, err := s.computeStatus(done)
		c.mu.Lock()
		at := c.at
		c.mu.Unlock()
		return st, at, err
	}
}

// computeStatus runs one UpgradeStatus computation and publishes it; the
// waiters are released even if it panics.
func (s *Status) computeStatus(done chan struct{}) (st *UpgradeStatus, err error) {
	c := &s.cache
	err = errors.New("computing the upgrade status failed")
	defer func() {
		c.mu.Lock()
		c.st, c.err, c.at, c.running = st, err, time.Now(), nil
		c.mu.Unlock()
		close(done)
	}()
	cctx, cancel := context.WithTimeout(context.Background(), statusComputeTimeout)
	defer cancel()
	return s.node.UpgradeStatus(cctx)
}
