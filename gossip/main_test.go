package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/testutil"
	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests. memberlist's
// Shutdown closes its listeners synchronously but lets its own goroutines
// (probe, gossip and push/pull tickers, packet handler, in-flight stream
// handlers and TCP fallback pings) notice the shutdown channel afterwards;
// goleak retries with backoff for a while before failing, which is enough
// for them to exit, so no memberlist function needs to be ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNode is one Gossip in an in-process cluster, with its log captured.
type testNode struct {
	*Gossip
	logs *logSink
}

// logSink collects a node's log lines for assertions and mirrors warnings
// and errors to the test log. It stops writing to t once the test is over
// (memberlist goroutines may still log while they wind down).
type logSink struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	buf  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.done && (bytes.Contains(p, []byte("level=WARN")) || bytes.Contains(p, []byte("level=ERROR"))) {
		s.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type nodeOpt func(*Config)

func withCluster(id string) nodeOpt { return func(c *Config) { c.Meta.ClusterID = id } }

func withAdmit(f func(NodeMeta) error) nodeOpt { return func(c *Config) { c.Admit = f } }

func testConfig(id nodeid.ID, logs *logSink, opts ...nodeOpt) Config {
	cfg := Config{
		BindAddr: "127.0.0.1:0",
		Meta: NodeMeta{
			NodeID:        id,
			ClusterID:     testClusterID,
			BinaryVersion: "2.0",
			ListenAddr:    fmt.Sprintf("127.0.0.1:%d", 26000+id),
			SQLAddr:       fmt.Sprintf("127.0.0.1:%d", 27000+id),
			HTTPAddr:      fmt.Sprintf("127.0.0.1:%d", 28000+id),
			StartedAt:     time.Now(),
		},
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id),
		Tuning:           FastTuning(),
		BroadcastTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// startNode starts a node on a free port and shuts it down at cleanup.
func startNode(t *testing.T, id nodeid.ID, opts ...nodeOpt) *testNode {
	t.Helper()
	logs := &logSink{t: t}
	g, err := New(testConfig(id, logs, opts...))
	if err != nil {
		t.Fatalf("start n%d: %v", id, err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			t.Errorf("shutdown n%d: %v", id, err)
		}
		logs.mu.Lock()
		logs.done = true
		logs.mu.Unlock()
	})
	return &testNode{Gossip: g, logs: logs}
}

// startCluster starts n nodes with IDs 1..n and joins each to the first.
func startCluster(t *testing.T, n int, opts ...nodeOpt) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, nodeid.ID(i+1), opts...)
		if i > 0 {
			if _, err := nodes[i].Join([]string{nodes[0].Addr()}); err != nil {
				t.Fatalf("n%d join: %v", i+1, err)
			}
		}
	}
	return nodes
}

const waitFor = 15 * time.Second

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	eventuallyWithin(t, waitFor, what, cond)
}

// eventuallyWithin is eventually with its own deadline: testutil's
// SucceedsWithin, naming what it waits for.
func eventuallyWithin(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	testutil.SucceedsWithin(t, d, func() error {
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// consistently checks that cond holds (returns nil) for the whole period:
// the only way to assert that something does not happen.
func consistently(t *testing.T, what string, period time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(period)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memberState returns how g sees node id.
func memberState(g *Gossip, id nodeid.ID) (State, error) {
	m, ok := g.Member(id)
	if !ok {
		return 0, fmt.Errorf("%s does not know n%d", g.name, id)
	}
	return m.State, nil
}

func expectState(g *Gossip, id nodeid.ID, want ...State) error {
	s, err := memberState(g, id)
	if err != nil {
		return err
	}
	for _, w := range want {
		if s == w {
			return nil
		}
	}
	return fmt.Errorf("%s sees n%d %s, want %v", g.name, id, s, want)
}
