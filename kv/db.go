package kv

// The kvpb.DB API: proposals with their deadlines, linearizable reads
// through ReadIndex, and local reads.

import (
	"bytes"
	"context"
	"math/rand/v2"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/storage"
)

// defaultTimeout bounds a request whose context has no deadline.
const defaultTimeout = 10 * time.Second

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

var errStopped = errors.New("this node is shutting down")

// submit proposes cmd and waits until it is applied on this node. A proposal
// that could not enter the log (no leader yet) is retried; one that entered
// but whose outcome is unknown when ctx ends returns ErrAmbiguous.
func (r *Replica) submit(ctx context.Context, cmd *command) (result, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cmd.ID = rand.Uint64() | 1
	data := cmd.encode()
	if !r.mayAppend(data) {
		return result{}, refusedProposal(cmd.Kind)
	}
	backoff := 10 * time.Millisecond
	var refused error // why the last attempt did not enter the log
	unavailable := func() error {
		why := "no Raft leader accepted the write in time"
		if errors.Is(refused, errNoStateYet) {
			why = errNoStateYet.Error()
		}
		return errors.Mark(errors.Wrap(ctx.Err(), why), kvpb.ErrUnavailable)
	}
	var p *proposal
	// However submit returns, nobody waits for its last attempt any more.
	defer func() { p.gone.Store(true) }()
	for {
		p = &proposal{cmd: cmd, data: data, done: make(chan result, 1)}
		select {
		case r.propC <- p:
		case <-ctx.Done():
			return result{}, unavailable()
		case <-r.stopC:
			return result{}, errStopped
		}
		select {
		case res := <-p.done:
			if errors.Is(res.err, errNotProposed) {
				p.gone.Store(true)
				refused = res.err
				select {
				case <-time.After(backoff):
					if backoff *= 2; backoff > 200*time.Millisecond {
						backoff = 200 * time.Millisecond
					}
					continue
				case <-ctx.Done():
					return result{}, unavailable()
				case <-r.stopC:
					return result{}, errStopped
				}
			}
			return res, nil
		case <-ctx.Done():
			return result{}, errors.Wrap(kvpb.ErrAmbiguous, ctx.Err().Error())
		case <-r.doneC:
			return result{}, kvpb.ErrAmbiguous
		}
	}
}

// Write implements kvpb.DB.
func (r *Replica) Write(ctx context.Context, ops []kvpb.Op) error {
	if err := validateOps(ops); err != nil {
		return err
	}
	res, err := r.submit(ctx, &command{Kind: batchKind(ops, r.level()), Ops: ops})
	if err != nil {
		return err
	}
	return res.err
}

// Increment implements kvpb.DB.
func (r *Replica) Increment(ctx context.Context, key []byte, delta int64) (int64, error) {
	res, err := r.submit(ctx, &command{Kind: cmdIncrement, Key: key, Delta: delta})
	if err != nil {
		return 0, err
	}
	return res.value, res.err
}

// linearize waits until this replica has applied every write that was
// committed before the call: at once on a leader that holds a lease
// (lease.go), else a ReadIndex round through the leader.
func (r *Replica) linearize(ctx context.Context) error {
	// A leader that is the group's only voter needs no ReadIndex round: no
	// other node can commit anything, and every acknowledged write was
	// applied here before it was acknowledged. (Adding a voter is applied
	// here first and republishes the status at once.)
	if st := r.status.Load(); st.IsLeader && len(st.Voters) == 1 && st.Voters[0] == r.cfg.NodeID && st.Applied >= st.Commit {
		r.cfg.Metrics.readIndex()
		return nil
	}
	rr := &readReq{done: make(chan struct{})}
	if idx, ok := r.leaseRead(); ok {
		// The leader lease gives the index at once (lease.go); the read
		// waits only until this replica has applied it, which a leader
		// has almost always done already.
		r.cfg.Metrics.leaseRead()
		if r.appliedIdx.Load() >= idx {
			return nil
		}
		rr.index, rr.leased = idx, true
	} else {
		r.cfg.Metrics.readIndex()
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	select {
	case r.readC <- rr:
	case <-ctx.Done():
		return errors.Mark(errors.Wrap(ctx.Err(), "read could not be linearized"), kvpb.ErrUnavailable)
	case <-r.stopC:
		return errStopped
	}
	select {
	case <-rr.done:
		return nil
	case <-ctx.Done():
		return errors.Mark(errors.Wrap(ctx.Err(), "no Raft leader confirmed the read in time"), kvpb.ErrUnavailable)
	case <-r.stopC:
		return errStopped
	}
}

// Get implements kvpb.DB. Once linearized, the read is served from the read
// cache when it holds the key (readCache), else from Pebble.
func (r *Replica) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := r.linearize(ctx); err != nil {
		return nil, false, err
	}
	v, exists, ok, gen := r.readCache.get(key)
	if ok {
		return v, exists, nil
	}
	v, exists, err := r.GetLocal(key)
	if err != nil {
		return nil, false, err
	}
	if k := r.cfg.Testing; k != nil && k.ReadCacheFill != nil {
		k.ReadCacheFill(key)
	}
	r.readCache.fill(key, v, exists, gen)
	return v, exists, nil
}

// GetLocal reads this replica's applied state without linearizing: it may
// be stale. For status views and tests only.
func (r *Replica) GetLocal(key []byte) ([]byte, bool, error) {
	v, closer, err := r.eng.DB.Get(userKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Scan implements kvpb.DB.
func (r *Replica) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	if err := r.linearize(ctx); err != nil {
		return nil, err
	}
	return r.ScanLocal(start, end, limit, reverse)
}

// ScanLocal scans the applied state without linearizing.
func (r *Replica) ScanLocal(start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	return scanReader(r.eng.DB, start, end, limit, reverse)
}

var _ kvpb.Streamer = (*Replica)(nil)

// ScanFunc implements kvpb.Streamer: Scan without copying, from one
// iterator over the applied state.
func (r *Replica) ScanFunc(ctx context.Context, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	if err := r.linearize(ctx); err != nil {
		return err
	}
	return scanReaderFunc(r.eng.DB, start, end, limit, reverse, fn)
}

// GetEach implements kvpb.Streamer: one iterator seeks each key in turn
// (ascending seeks move the iterator forward instead of searching the LSM
// again), so a batch of point reads costs far less than one Get each, and
// all of them read one consistent state.
func (r *Replica) GetEach(ctx context.Context, keys [][]byte, fn func(i int, value []byte) error) error {
	if err := r.linearize(ctx); err != nil {
		return err
	}
	return getEachReader(r.eng.DB, keys, fn)
}

// getEachReader reads keys (ascending, no duplicates) from rd.
func getEachReader(rd pebble.Reader, keys [][]byte, fn func(i int, value []byte) error) error {
	if len(keys) == 0 {
		return nil
	}
	last := userKey(keys[len(keys)-1])
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: userKey(keys[0]), UpperBound: append(last, 0)})
	if err != nil {
		return err
	}
	defer it.Close()
	seek := []byte{storage.PrefixReplicated}
	for i, k := range keys {
		seek = append(seek[:1], k...)
		if !it.SeekGE(seek) {
			if err := it.Error(); err != nil {
				return err
			}
			break // no key at or after this one: none of the rest exist
		}
		if bytes.Equal(it.Key(), seek) {
			if err := fn(i, it.Value()); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// scanReader scans [start, end) of the replicated span of rd (the engine or
// a snapshot of it). The entries' keys and values are copied into shared
// blocks of 32 KiB rather than one allocation each; every slice is capped
// at its own length, so appending to one never writes into the next.
func scanReader(rd pebble.Reader, start, end []byte, limit int, reverse bool) ([]kvpb.KeyValue, error) {
	var out []kvpb.KeyValue
	var buf []byte
	err := scanReaderFunc(rd, start, end, limit, reverse, func(k, v []byte) error {
		n := len(k) + len(v)
		if cap(buf)-len(buf) < n {
			buf = make([]byte, 0, max(n, 32<<10))
		}
		s := len(buf)
		buf = append(append(buf, k...), v...)
		out = append(out, kvpb.KeyValue{Key: buf[s : s+len(k) : s+len(k)], Value: buf[s+len(k) : s+n : s+n]})
		return nil
	})
	return out, err
}

// scanReaderFunc calls fn with each entry of [start, end) of the
// replicated span of rd, up to limit (0: no limit); key and value are
// valid only during the call.
func scanReaderFunc(rd pebble.Reader, start, end []byte, limit int, reverse bool, fn func(key, value []byte) error) error {
	lo := userKey(start)
	hi := []byte{storage.PrefixReplicated + 1}
	if end != nil {
		hi = userKey(end)
	}
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	valid := it.First()
	next := it.Next
	if reverse {
		valid, next = it.Last(), it.Prev
	}
	n := 0
	for ; valid; valid = next() {
		if err := fn(it.Key()[1:], it.Value()); err != nil {
			return err
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return it.Error()
}
