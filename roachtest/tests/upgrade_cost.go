package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// upgrade/cost (issue 22, item 5): what a rolling upgrade to the newest
// release costs the clients of a cluster under a steady write load. The
// nodes run with the default auto-upgrade interval (no
// --auto-upgrade-interval), as an operator's would; the scenario prints
//
//   - the p99 (and p50, max) latency of a request during the upgrade (from
//     the first node's SIGTERM to the cluster reporting the new version
//     everywhere) against the steady state before it;
//   - the requests that failed with an error a client would not retry
//     (costRetryable defines which ones it would), with their errors;
//   - the time from the last node becoming ready on the new binary to every
//     node reporting the new cluster version (finalization complete).
//
// It fails if any request failed for good, or if finalization took longer
// than costFinalizeLimit; the latency ratio is printed against its target
// (2x) but not enforced, since it depends on what else the machine runs.
func registerUpgradeCost(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/cost",
		Description: "a rolling upgrade of every node from the release before the newest to the newest (SIGTERM, default auto-upgrade " +
			"interval) under 8 clients of single-row UPSERTs; prints p99 latency during the upgrade against steady state, the requests " +
			"that failed with an error a client would not retry (must be none), and the time from the last node ready to finalization " +
			"(must be within 10s)",
		Suite: registry.Long, Nodes: 3, Timeout: 15 * time.Minute,
		Plan: upgradeCostPlan,
	})
}

const (
	// costClients, costKeys: the write load, like bench.sh's writes
	// script (8 clients, UPSERT of a random key).
	costClients = 8
	costKeys    = 10000
	// costSteady is how long the steady state is measured before the
	// upgrade starts.
	costSteady = 30 * time.Second
	// costStatementTimeout bounds one attempt; costRequestTimeout one
	// request with its retries. A request that runs out of either fails.
	costStatementTimeout = 10 * time.Second
	costRequestTimeout   = 30 * time.Second
	// costFinalizeLimit is issue 22's target: finalization complete within
	// 10s of the last node becoming ready.
	costFinalizeLimit = 10 * time.Second
)

func upgradeCostPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	rels := allReleases()
	if len(rels) < 2 {
		return nil, errors.Newf("the ladder (%v) has no two releases", rels)
	}
	from, to := rels[len(rels)-2], rels[len(rels)-1]
	order := rng.Perm(p.Nodes)
	initVia := rng.IntN(p.Nodes) + 1
	seed := rng.Int64N(1 << 53)
	var orderNames []string
	for _, o := range order {
		orderNames = append(orderNames, fmt.Sprintf("n%d", o+1))
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes on %s rolled to %s in the order %s (SIGTERM each), default auto-upgrade interval; %d writers (seed %d)",
			p.Nodes, from, to, strings.Join(orderNames, ", "), costClients, seed),
	}}
	cw := &costWriter{seed: seed}
	var lastReady time.Time
	plan.Addf((&steps.Scenario{}).StartCluster([]string{from}, initVia), "start %d nodes on %s, init through n%d", p.Nodes, from, initVia)
	plan.Addf((&steps.Scenario{}).Binaries(cluster.DefaultRelease), "build or find the binary of %s", to)
	plan.Addf(cw.setup(initVia), "create uc_kv (k INT PRIMARY KEY, v INT) through n%d, readable through every node", initVia)
	plan.Add("start the writers: 8 clients, one UPSERT of a random key at a time, spread over every node", cw.start())
	plan.Addf(cw.mark("steady", costSteady), "measure the steady state for %s", costSteady)
	for i, o := range order {
		node := o + 1
		last := i == len(order)-1
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(node)
			bin, err := e.Binary(ctx, cluster.DefaultRelease)
			if err != nil {
				return err
			}
			if i == 0 {
				cw.begin("upgrade")
			}
			cw.notef(e, "stopping n%d (SIGTERM)", node)
			if err := n.Stop(ctx); err != nil {
				return err
			}
			if err := n.Start(ctx, bin); err != nil {
				return err
			}
			if err := n.WaitReady(ctx); err != nil {
				return err
			}
			if last {
				lastReady = time.Now()
			}
			cw.notef(e, "n%d ready on %s", node, to)
			return nil
		}, "upgrade n%d: SIGTERM, start on %s, wait until ready", node, to)
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		// Every node reports the new version: polled every 50ms so that the
		// figure is not rounded up by the poll.
		for {
			if err := steps.CheckVersion(ctx, e.Cluster, to); err == nil {
				break
			}
			if time.Since(lastReady) > 3*time.Minute {
				return errors.Newf("the cluster did not finalize to %s within 3 minutes of the last node becoming ready", to)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		cw.finalized = time.Since(lastReady)
		cw.end("upgrade")
		cw.notef(e, "every node reports cluster version %s, %s after the last node became ready", to, cw.finalized.Round(10*time.Millisecond))
		return nil
	}, "wait until every node reports cluster version %s (finalized automatically)", to)
	plan.Addf(cw.mark("after", 15*time.Second), "measure the finalized cluster for 15s")
	plan.Add("stop the writers; print the figures; no request failed for good, finalization within 10s", cw.report())
	return plan, nil
}

// costRetryable says whether a client would retry a request after err, on a
// new connection if the old one broke: the request either did nothing
// (40001, a refused connection, a node not accepting connections yet
// 57P03, or draining 57P01 before it ran) or its outcome is unknown and the
// statement is idempotent, as an UPSERT of a fixed value is (40003, a
// connection lost mid-statement, 57P01 during it). Everything else is a
// failure, notably 58000 (no quorum in time: with one node of three down
// at a time, a quorum is always there), XX000, and a statement that
// gets no answer within costStatementTimeout.
func costRetryable(err error) bool {
	switch cluster.SQLState(err) {
	case cluster.CodeSerialization, cluster.CodeAmbiguous, cluster.CodeAdminShutdown, cluster.CodeCannotConnect:
		return true
	case "":
	default:
		return strings.HasPrefix(cluster.SQLState(err), "08") // connection exceptions
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return cluster.ConnectionLost(err) || pgconn.SafeToRetry(err)
}

// costReq is one request: the UPSERT with its retries.
type costReq struct {
	start    time.Time
	latency  time.Duration
	attempts int
	err      string // "" if it succeeded; else the error that ended it
	node     int
}

// costWriter runs the write load and keeps every request.
type costWriter struct {
	seed      int64
	finalized time.Duration

	mu      sync.Mutex
	reqs    []costReq
	windows map[string][2]time.Time
	notes   []string
	retries map[string]int // error class -> attempts retried

	stop atomic.Bool
	wg   sync.WaitGroup
}

func (cw *costWriter) notef(e *registry.Env, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	cw.mu.Lock()
	cw.notes = append(cw.notes, time.Now().Format("15:04:05.000")+" "+msg)
	cw.mu.Unlock()
	e.Logf("%s", msg)
}

func (cw *costWriter) begin(name string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.windows == nil {
		cw.windows = map[string][2]time.Time{}
	}
	cw.windows[name] = [2]time.Time{time.Now()}
}

func (cw *costWriter) end(name string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	w := cw.windows[name]
	w[1] = time.Now()
	cw.windows[name] = w
}

func (cw *costWriter) mark(name string, d time.Duration) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		cw.begin(name)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		cw.end(name)
		return nil
	}
}

func (cw *costWriter) setup(via int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		if err := e.Cluster.Node(via).ExecIdempotent(ctx, "CREATE TABLE IF NOT EXISTS uc_kv (k INT PRIMARY KEY, v INT)"); err != nil {
			return err
		}
		return steps.WaitForTable(ctx, e.Cluster, "uc_kv")
	}
}

func (cw *costWriter) start() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		var urls []string
		for _, n := range e.Cluster.Nodes() {
			urls = append(urls, n.URL())
		}
		cw.retries = map[string]int{}
		for c := range costClients {
			cw.wg.Add(1)
			go cw.client(c, urls)
		}
		e.Defer(cw.halt)
		return nil
	}
}

func (cw *costWriter) halt() {
	cw.stop.Store(true)
	cw.wg.Wait()
}

func (cw *costWriter) client(id int, urls []string) {
	defer cw.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(cw.seed), uint64(id)+1))
	target := id % len(urls)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	for !cw.stop.Load() {
		k, v := rng.Int64N(costKeys)+1, rng.Int64()
		req := costReq{start: time.Now()}
		deadline := req.start.Add(costRequestTimeout)
		backoff := 10 * time.Millisecond
		for {
			req.attempts++
			var err error
			if conn == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				conn, err = pgx.Connect(ctx, urls[target])
				cancel()
			}
			if err == nil {
				req.node = target + 1
				ctx, cancel := context.WithTimeout(context.Background(), costStatementTimeout)
				_, err = conn.Exec(ctx, "UPSERT INTO uc_kv (k, v) VALUES ($1, $2)", k, v)
				cancel()
			}
			if err == nil {
				break
			}
			if !costRetryable(err) || time.Now().After(deadline) {
				req.err = fmt.Sprintf("n%d: %s", target+1, err)
				if code := cluster.SQLState(err); code != "" {
					req.err = code + " " + req.err
				}
				break
			}
			cw.mu.Lock()
			cw.retries[costErrClass(err)]++
			cw.mu.Unlock()
			// Reconnect, to the next node, after a broken connection or a
			// node that is going away or not there yet.
			if conn != nil && (conn.IsClosed() || cluster.ConnectionLost(err) ||
				cluster.SQLState(err) == cluster.CodeAdminShutdown || cluster.SQLState(err) == cluster.CodeCannotConnect) {
				_ = conn.Close(context.Background())
				conn = nil
			}
			if conn == nil {
				target = (target + 1) % len(urls)
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, 200*time.Millisecond)
		}
		req.latency = time.Since(req.start)
		cw.mu.Lock()
		cw.reqs = append(cw.reqs, req)
		cw.mu.Unlock()
		if req.err != "" && conn != nil {
			_ = conn.Close(context.Background())
			conn = nil
			target = (target + 1) % len(urls)
		}
	}
}

// costErrClass names an error for the retry counts.
func costErrClass(err error) string {
	if code := cluster.SQLState(err); code != "" {
		return code
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return "connect"
	}
	return "connection lost"
}

// costStats are the figures of the requests started in one window.
type costStats struct {
	n, failed      int
	p50, p99, pmax time.Duration
	tps            float64
}

func (cw *costWriter) stats(name string) costStats {
	w := cw.windows[name]
	var lats []time.Duration
	var st costStats
	for _, r := range cw.reqs {
		if r.start.Before(w[0]) || !r.start.Before(w[1]) {
			continue
		}
		st.n++
		if r.err != "" {
			st.failed++
		}
		lats = append(lats, r.latency)
	}
	if len(lats) == 0 {
		return st
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(f float64) time.Duration { return lats[min(len(lats)-1, int(f*float64(len(lats))))] }
	st.p50, st.p99, st.pmax = q(0.50), q(0.99), lats[len(lats)-1]
	st.tps = float64(st.n) / w[1].Sub(w[0]).Seconds()
	return st
}

func (cw *costWriter) report() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		cw.halt()
		cw.mu.Lock()
		defer cw.mu.Unlock()
		e.Logf("figures (every request: one UPSERT with a client's retries; latency includes them):")
		e.Logf("  %-8s %8s %9s %9s %9s %9s %7s", "window", "requests", "req/s", "p50", "p99", "max", "failed")
		for _, name := range []string{"steady", "upgrade", "after"} {
			st := cw.stats(name)
			w := cw.windows[name]
			e.Logf("  %-8s %8d %9.1f %9s %9s %9s %7d   (%s)", name, st.n, st.tps, st.p50.Round(10*time.Microsecond),
				st.p99.Round(10*time.Microsecond), st.pmax.Round(time.Millisecond), st.failed, w[1].Sub(w[0]).Round(100*time.Millisecond))
		}
		steady, up := cw.stats("steady"), cw.stats("upgrade")
		ratio := 0.0
		if steady.p99 > 0 {
			ratio = float64(up.p99) / float64(steady.p99)
		}
		verdict := "within"
		if ratio > 2 {
			verdict = "MISSES"
		}
		e.Logf("  p99 during the upgrade / steady state: %.2fx (%s the 2x target)", ratio, verdict)
		var classes []string
		for c, n := range cw.retries {
			classes = append(classes, fmt.Sprintf("%s: %d", c, n))
		}
		sort.Strings(classes)
		e.Logf("  attempts retried by the clients: %s", orNone(strings.Join(classes, ", ")))
		var failed []string
		for _, r := range cw.reqs {
			if r.err != "" {
				failed = append(failed, fmt.Sprintf("%s (+%s, %d attempts): %s", r.start.Format("15:04:05.000"),
					r.latency.Round(time.Millisecond), r.attempts, r.err))
			}
		}
		e.Logf("  requests failed with an error a client would not retry: %d of %d", len(failed), len(cw.reqs))
		for _, f := range failed {
			e.Logf("    %s", f)
		}
		e.Logf("  last node ready -> finalization complete: %s (target: within %s)", cw.finalized.Round(10*time.Millisecond), costFinalizeLimit)
		e.Logf("  events: %s", strings.Join(cw.notes, "; "))
		if len(failed) > 0 {
			return errors.Newf("%d requests failed with an error a client would not retry; the first: %s", len(failed), failed[0])
		}
		if cw.finalized > costFinalizeLimit {
			return errors.Newf("finalization completed %s after the last node became ready, more than %s", cw.finalized.Round(10*time.Millisecond), costFinalizeLimit)
		}
		return nil
	}
}
