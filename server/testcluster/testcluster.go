package testcluster

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/listenerutil"
	"github.com/kvnode/kvnode/testutil"
)

// Options tune a test cluster.
type Options struct {
	// RaftLogRetain makes logs truncate after this many entries (default:
	// production's 10000).
	RaftLogRetain uint64
	// Verbose sends node logs to stderr (default: discarded unless
	// KVNODE_TEST_LOGS=1).
	Verbose bool
	// LivenessHeartbeat and LivenessDuration tune liveness (defaults for
	// tests: 200ms and 2s, so that a stopped node is not live within 2s).
	LivenessHeartbeat time.Duration
	LivenessDuration  time.Duration
	// HoldDecommission, while true, pauses the leader's decommission loop
	// (server.Config.TestingHoldDecommission).
	HoldDecommission *atomic.Bool
	// Knobs are passed to every node (a test may change a node's Knobs in
	// Nodes[i].Config before restarting it, e.g. to "upgrade" its binary).
	Knobs server.Knobs
	// AutoUpgradeInterval (default 200ms in tests).
	AutoUpgradeInterval time.Duration
}

// Node is one node of the cluster and its fixed addresses.
type Node struct {
	Index  int // 0-based position in the cluster
	Server *server.Server
	Config server.Config
}

// Cluster is a running test cluster.
type Cluster struct {
	t     testing.TB
	opts  Options
	Nodes []*Node
	join  []string
}

// Start starts n nodes, initializes the cluster through the first, and
// waits until every node serves SQL.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, c.newNode(i))
	}
	for _, nd := range c.Nodes {
		c.join = append(c.join, nd.Config.ListenAddr)
	}
	t.Cleanup(c.StopAll)
	// The nodes join one at a time, in index order, so that node i gets
	// node ID i+1, as tests assume. Every node's ports are bound from the
	// start but served only once the node starts, and a join attempt on a
	// bound port that nobody serves waits for it: so a node's first start
	// names only the nodes already started as its join addresses (node 0:
	// none, it waits for init), and the whole list for its restarts.
	for i, nd := range c.Nodes {
		nd.Config.Join = append([]string(nil), c.join[:i]...)
		c.StartNode(i)
		nd.Config.Join = c.join
		if i == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := nodeapi.InitCluster(ctx, c.Nodes[0].Config.ListenAddr)
			cancel()
			if err != nil {
				t.Fatalf("kvnode init: %v", err)
			}
		}
		c.waitID(i)
	}
	for i := range c.Nodes {
		c.WaitUp(i)
	}
	return c
}

// waitID waits until node i has its node ID (it joined, or was
// initialized) and checks that it is i+1.
func (c *Cluster) waitID(i int) {
	c.t.Helper()
	s := c.Nodes[i].Server
	testutil.SucceedsWithin(c.t, 30*time.Second, func() error {
		if err := s.Failed(); err != nil {
			c.t.Fatalf("node %d failed to start: %v", i+1, err)
		}
		if s.NodeID() == 0 {
			return fmt.Errorf("node %d has no node ID yet", i+1)
		}
		return nil
	})
	if got := s.NodeID(); got != nodeid.ID(i+1) {
		c.t.Fatalf("node at index %d got node ID %d, want %d", i, got, i+1)
	}
}

func (c *Cluster) newNode(i int) *Node {
	c.t.Helper()
	lis, err := listenerutil.ListenLoopback()
	if err != nil {
		c.t.Fatal(err)
	}
	var log *slog.Logger
	if c.opts.Verbose || os.Getenv("KVNODE_TEST_LOGS") == "1" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("n", i+1)
	} else {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Node{Index: i, Config: server.Config{
		Store:      filepath.Join(c.t.TempDir(), fmt.Sprintf("n%d", i+1)),
		ListenAddr: lis.RPC.Addr().String(), GossipAddr: lis.Gossip.TCP.Addr().String(), SQLAddr: lis.SQL.Addr().String(),
		HTTPAddr: lis.HTTP.Addr().String(), Listeners: lis, Insecure: true,
		Logger: log, RaftTickInterval: 20 * time.Millisecond, RaftLogRetain: c.opts.RaftLogRetain,
		FastGossip: true, SchemaSyncEvery: 100 * time.Millisecond,
		LivenessHeartbeat:       cmp.Or(c.opts.LivenessHeartbeat, 200*time.Millisecond),
		LivenessDuration:        cmp.Or(c.opts.LivenessDuration, 2*time.Second),
		TestingHoldDecommission: c.opts.HoldDecommission,
		Knobs:                   c.opts.Knobs,
		AutoUpgradeInterval:     cmp.Or(c.opts.AutoUpgradeInterval, 200*time.Millisecond),
		ClockMonitorInterval:    100 * time.Millisecond,
	}}
}

// AddNode starts one more node that joins through the existing ones and
// waits until it serves SQL. It returns its index.
func (c *Cluster) AddNode() int {
	return c.AddNodeWith(nil)
}

// AddNodeWith is AddNode with the new node's configuration changed by
// configure first (nil: unchanged), e.g. to give it another binary
// version than the cluster's Options.Knobs.
func (c *Cluster) AddNodeWith(configure func(*server.Config)) int {
	nd := c.newNode(len(c.Nodes))
	nd.Config.Join = append([]string(nil), c.join...)
	if configure != nil {
		configure(&nd.Config)
	}
	c.Nodes = append(c.Nodes, nd)
	c.StartNode(nd.Index)
	c.WaitUp(nd.Index)
	return nd.Index
}

// StartNode (re)starts node i on its store and addresses. The first start
// serves on the listeners newNode bound (Config.Listeners, which the node
// takes over); a restart binds the node's own addresses again, which a
// stopped node has released (Stop returns once every socket is closed),
// and which nothing else takes in the meantime: ListenLoopback chose them
// below the kernel's ephemeral range.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	nd := c.Nodes[i]
	s, err := server.New(nd.Config)
	nd.Config.Listeners = nil // taken over by New, even when it failed
	if err != nil {
		c.t.Fatalf("starting node %d: %v", i+1, err)
	}
	if err := s.Start(context.Background()); err != nil {
		c.t.Fatalf("starting node %d: %v", i+1, err)
	}
	nd.Server = s
}

// WaitUp waits until node i serves SQL.
func (c *Cluster) WaitUp(i int) {
	c.t.Helper()
	s := c.Nodes[i].Server
	select {
	case <-s.Up():
	case <-time.After(30 * time.Second):
		c.t.Fatalf("node %d did not come up in 30s (failed: %v)", i+1, s.Failed())
	}
}

// StopNode drains and stops node i (as SIGTERM would).
func (c *Cluster) StopNode(i int) {
	nd := c.Nodes[i]
	if nd.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nd.Server.Stop(ctx); err != nil {
		c.t.Errorf("stopping node %d: %v", i+1, err)
	}
	nd.Server = nil
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		c.StopNode(i)
	}
}

// URL is the PostgreSQL connection URL of node i.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("postgresql://root@%s/defaultdb?sslmode=disable&connect_timeout=5", c.Nodes[i].Config.SQLAddr)
}

// Conn opens a pgx connection to node i, closed at cleanup.
func (c *Cluster) Conn(i int) *pgx.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(i))
	if err != nil {
		c.t.Fatalf("connecting to node %d: %v", i+1, err)
	}
	c.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Exec runs a statement on node i and fails the test on error.
func (c *Cluster) Exec(i int, sql string, args ...any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(i))
	if err != nil {
		c.t.Fatalf("connecting to node %d: %v", i+1, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		c.t.Fatalf("node %d: %s: %v", i+1, sql, err)
	}
}

// WaitFor polls fn until it returns nil or d passes: it is
// testutil.SucceedsWithin, under the name the server tests use.
func WaitFor(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	testutil.SucceedsWithin(t, d, fn)
}

// QueryInt runs a single-value integer query on node i.
func (c *Cluster) QueryInt(i int, sql string, args ...any) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(i))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var v int64
	err = conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

// FreeAddrs returns n distinct free loopback addresses, each free for TCP
// and UDP (gossip uses both), for tests that start kvnode processes (see
// listenerutil.FreeLoopbackAddrs). An in-process node takes listeners instead
// (listenerutil.ListenLoopback and Config.Listeners), which nothing can race.
func FreeAddrs(t testing.TB, n int) []string {
	out, err := listenerutil.FreeLoopbackAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
