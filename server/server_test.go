package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, tolerated()...)
}

func waitCount(t *testing.T, c *testcluster.Cluster, node int, table string, want int64) {
	t.Helper()
	testcluster.WaitFor(t, 30*time.Second, func() error {
		n, err := c.QueryInt(node, "SELECT count(*) FROM "+table)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("node %d sees %d rows, want %d", node+1, n, want)
		}
		return nil
	})
}

func TestReplicatedSQL(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	// The pre-Raft procedure pushes the table to every live node.
	waitCount(t, c, 2, "kv", 0)
	for k := 1; k <= 30; k++ {
		c.Exec(k%3, "INSERT INTO kv VALUES ($1, $2)", k, fmt.Sprintf("v%d", k))
	}
	for i := 0; i < 3; i++ {
		if n, err := c.QueryInt(i, "SELECT count(*) FROM kv"); err != nil || n != 30 {
			t.Fatalf("node %d: count = %d, %v", i+1, n, err)
		}
	}
	conn := c.Conn(2)
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT v FROM kv WHERE k = $1", 17).Scan(&v); err != nil || v != "v17" {
		t.Fatalf("read on node 3: %q %v", v, err)
	}
	_, err := conn.Exec(context.Background(), "INSERT INTO kv VALUES (1, 'dup')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("duplicate insert: %v, want SQLSTATE 23505", err)
	}
}

func TestLeaderLoss(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	waitCount(t, c, 1, "kv", 0)
	waitCount(t, c, 2, "kv", 0)
	leader := -1
	for i, nd := range c.Nodes {
		if nd.Server.Replica().Status().IsLeader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	c.StopNode(leader)
	other := (leader + 1) % 3
	for k := 1; k <= 10; k++ {
		c.Exec(other, "UPSERT INTO kv VALUES ($1, 'x')", k)
	}
	waitCount(t, c, (leader+2)%3, "kv", 10)
	c.StartNode(leader)
	c.WaitUp(leader)
	waitCount(t, c, leader, "kv", 10)
}

func TestCatchUpBySnapshotAfterTruncation(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{RaftLogRetain: 20})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	waitCount(t, c, 2, "kv", 0)
	c.StopNode(2)
	for k := 0; k < 300; k += 5 {
		var vals []string
		for j := k; j < k+5; j++ {
			vals = append(vals, fmt.Sprintf("(%d, 'v')", j))
		}
		c.Exec(0, "INSERT INTO kv VALUES "+strings.Join(vals, ", "))
	}
	st := c.Nodes[0].Server.Replica().Status()
	if st.FirstLog < 30 {
		t.Fatalf("log was not truncated (first index %d)", st.FirstLog)
	}
	c.StartNode(2)
	c.WaitUp(2)
	waitCount(t, c, 2, "kv", 300)
}

func TestFourthNodeJoins(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	c.Exec(0, "INSERT INTO kv VALUES (1, 'a'), (2, 'b')")
	i := c.AddNode()
	if id := c.Nodes[i].Server.NodeID(); id != 4 {
		t.Fatalf("fourth node got ID %d, want 4", id)
	}
	waitCount(t, c, i, "kv", 2)
	testcluster.WaitFor(t, 20*time.Second, func() error {
		st := c.Nodes[0].Server.Replica().Status()
		if len(st.Voters) != 4 {
			return fmt.Errorf("voters %v learners %v", st.Voters, st.Learners)
		}
		return nil
	})
}

// TestConcurrentWritersAcrossRestarts runs writers against every node while
// nodes are stopped and restarted one at a time, then checks that every
// acknowledged insert is present exactly once and nothing else appeared.
func TestConcurrentWritersAcrossRestarts(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{RaftLogRetain: 200})
	c.Exec(0, "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	for i := 1; i < 3; i++ {
		waitCount(t, c, i, "kv", 0)
	}
	var (
		mu        sync.Mutex
		acked     = map[int64]bool{}
		attempted = map[int64]bool{}
		stop      atomic.Bool
		next      atomic.Int64
		wg        sync.WaitGroup
	)
	urls := []string{c.URL(0), c.URL(1), c.URL(2)}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for !stop.Load() {
				k := next.Add(1)
				mu.Lock()
				attempted[k] = true
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				conn, err := pgx.Connect(ctx, urls[rng.IntN(3)])
				if err == nil {
					_, err = conn.Exec(ctx, "INSERT INTO kv VALUES ($1, 'w')", k)
					_ = conn.Close(context.Background())
				}
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	for round := 0; round < 3; round++ {
		time.Sleep(300 * time.Millisecond) // let writes flow between restarts
		c.StopNode(round)
		time.Sleep(300 * time.Millisecond)
		c.StartNode(round)
		c.WaitUp(round)
	}
	stop.Store(true)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d writes were acknowledged; the cluster was unavailable too long", len(acked))
	}
	rows := map[int64]int{}
	testcluster.WaitFor(t, 30*time.Second, func() error {
		conn := c.Conn(1)
		rs, err := conn.Query(context.Background(), "SELECT k FROM kv ORDER BY k")
		if err != nil {
			return err
		}
		defer rs.Close()
		clear(rows)
		for rs.Next() {
			var k int64
			if err := rs.Scan(&k); err != nil {
				return err
			}
			rows[k]++
		}
		return rs.Err()
	})
	for k := range acked {
		if rows[k] != 1 {
			t.Errorf("acknowledged key %d present %d times", k, rows[k])
		}
	}
	for k, n := range rows {
		if !attempted[k] || n != 1 {
			t.Errorf("key %d present %d times but attempted=%v", k, n, attempted[k])
		}
	}
	t.Logf("%d acknowledged, %d present, %d attempted", len(acked), len(rows), len(attempted))
}

func TestStoreOfAnotherClusterIsRefused(t *testing.T) {
	a := testcluster.Start(t, 1, testcluster.Options{})
	b := testcluster.Start(t, 1, testcluster.Options{})
	cfg := b.Nodes[0].Config
	b.StopNode(0)
	cfg.Join = []string{a.Nodes[0].Config.ListenAddr}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, func() error {
		if s.Failed() == nil {
			return errors.New("node of another cluster was not refused")
		}
		return nil
	})
	if msg := s.Failed().Error(); !strings.Contains(msg, "belongs to cluster") {
		t.Fatalf("unclear refusal: %s", msg)
	}
}

func TestSecondProcessOnSameStoreFails(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	cfg := c.Nodes[0].Config
	cfg.ListenAddr, cfg.GossipAddr, cfg.SQLAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	_, err := server.New(cfg)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open of the store: %v", err)
	}
}

func TestInitTwiceIsRefused(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	_, err := nodeapi.InitCluster(context.Background(), c.Nodes[0].Config.ListenAddr)
	if err == nil || !strings.Contains(err.Error(), "already been initialized") {
		t.Fatalf("second init: %v", err)
	}
}
