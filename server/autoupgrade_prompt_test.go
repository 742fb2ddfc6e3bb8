package server_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestAutoUpgradeFinalizesOnceTheLastNodeIsUp (issue 22, item 5): with an
// auto-upgrade interval of a minute, a rolling upgrade 2.0 -> 2.1 of three
// nodes is finalized within seconds of the last node coming up, not at the
// leader's next interval (or later, after backing off while the upgrade
// blocked it): the leader notices that the cluster's shape changed and
// decides again at once.
func TestAutoUpgradeFinalizesOnceTheLastNodeIsUp(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{
		Knobs:               server.Knobs{BinaryVersion: rel("2.0")},
		AutoUpgradeInterval: time.Minute,
	})
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("2.1")
		c.StartNode(i)
		c.WaitUp(i)
	}
	start := time.Now()
	testcluster.WaitFor(t, 10*time.Second, func() error {
		for i := range c.Nodes {
			if v, err := queryString(t, c, i, "SHOW CLUSTER SETTING version"); err != nil || v != "2.1" {
				return errors.Newf("node %d reports version %q (%v), want 2.1", i+1, v, err)
			}
		}
		return nil
	})
	t.Logf("finalized %s after the last node came up", time.Since(start).Round(10*time.Millisecond))
}
