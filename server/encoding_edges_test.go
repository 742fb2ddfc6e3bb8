package server_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/sql/rowenc"
)

// TestNoV1RowBehindTheRewrite (issue 16, D9): an INSERT that encoded its
// row in v1 before its node persisted 1.1-step.2, and is written only after
// that, must not leave a v1 row behind the 1.1 migration's scan. Here the
// statement is held between encoding and writing until the migration has
// succeeded, or 3 s have passed if the step cannot be persisted while the
// statement runs (the fix: a node reports the step persisted only once its
// v1 writers have finished).
func TestNoV1RowBehindTheRewrite(t *testing.T) {
	c := startAt10(t, 50, server.Knobs{MigrationBatchSize: 10})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	var armed atomic.Bool
	encoded, release := make(chan struct{}), make(chan struct{})
	atStep2 := make(chan struct{})
	var once sync.Once
	for i := range c.Nodes {
		c.StopNode(i)
		k := &c.Nodes[i].Config.Knobs
		k.BinaryVersion = rel("1.1")
		k.BeforeVersionStep = func(step clusterversion.Version) error {
			if step == clusterversion.V1_1WriteV2.Version() {
				once.Do(func() { close(atStep2) })
			}
			return nil
		}
		if i == 1 {
			k.BeforeRowWrite = func(context.Context) {
				if armed.CompareAndSwap(true, false) {
					close(encoded)
					<-release
				}
			}
		}
		c.StartNode(i)
		c.WaitUp(i)
	}
	armed.Store(true)
	inserted := make(chan error, 1)
	go func() { inserted <- execErr(c, 1, "INSERT INTO kv VALUES (9999, 'encoded before the step')") }()
	select {
	case <-encoded:
	case <-time.After(30 * time.Second):
		t.Fatal("the INSERT did not reach its write")
	}
	finalized := make(chan error, 1)
	go func() { finalized <- execErr(c, 0, "SET CLUSTER SETTING version = '1.1'") }()
	<-atStep2
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && !migrationSucceeded(t, c, clusterversion.V1_1WriteV2.Version()) {
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	if err := <-inserted; err != nil {
		t.Fatalf("the held INSERT: %v", err)
	}
	if err := <-finalized; err != nil {
		t.Fatalf("finalizing: %v", err)
	}
	waitVersion(t, c, "1.1")
	for i := range c.Nodes {
		if enc := rowEncodings(t, c, i); enc[rowenc.EncodingV2] != 51 || len(enc) != 1 {
			t.Errorf("node %d row encodings after 1.1: %v, want 51 in v2", i+1, enc)
		}
	}
}

func migrationSucceeded(t *testing.T, c *testcluster.Cluster, v clusterversion.Version) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jobs, err := migrations.List(ctx, c.Nodes[0].Server.Replica())
	if err != nil {
		return false
	}
	for _, j := range jobs {
		if j.Version == v.String() && j.Status == migrations.StatusSucceeded {
			return true
		}
	}
	return false
}
