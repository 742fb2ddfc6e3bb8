package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/console"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestRolledBackNodeBehindAPartialFence (issue 16, found by the roachtest
// upgrade/rollback-partial-fence): a finalization to 1.1 persists the
// fence on two nodes and not on the third (stopped after the node list
// was read); the operator rolls that node back to 1.0, which it can. The
// fenced nodes keep it out of gossip (its binary cannot run their
// version), so their gossip holds its previous run's metadata: binary 1.1.
// Status views took the binary from gossip, so node status said it ran
// 1.1, and the console told the operator that every node runs 1.1 and the
// cluster finalizes within seconds, instead of that nodes are mixed and
// the fenced ones can no longer be rolled back.
func TestRolledBackNodeBehindAPartialFence(t *testing.T) {
	c := startAt10(t, 10, server.Knobs{})
	c.Exec(0, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	var armed atomic.Bool
	armed.Store(true)
	stopped := make(chan int, 1)
	for i := range c.Nodes {
		c.StopNode(i)
		c.Nodes[i].Config.Knobs.BinaryVersion = rel("1.1")
		c.Nodes[i].Config.Knobs.BeforeVersionStep = func(step clusterversion.Version) error {
			if step == rel("1.1-step.1") && armed.CompareAndSwap(true, false) {
				v := (i + 1) % len(c.Nodes)
				c.StopNode(v)
				stopped <- v
			}
			return nil
		}
		startNode(t, c, i)
	}
	if err := execErr(c, 0, "SET CLUSTER SETTING version = '1.1'"); err == nil {
		t.Fatal("the finalization succeeded although a node stopped before the fence reached it")
	}
	victim := <-stopped
	via := (victim + 1) % len(c.Nodes)
	if v := c.Nodes[via].Server.ActiveVersion().String(); v != "1.1-step.1" {
		t.Fatalf("node %d persisted %s, want the fence 1.1-step.1", via+1, v)
	}
	c.Nodes[victim].Config.Knobs.BinaryVersion = rel("1.0")
	startNode(t, c, victim)
	victimID := c.Nodes[victim].Server.NodeID()
	testcluster.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := nodeapi.GetNodeStatus(ctx, c.Nodes[via].Config.ListenAddr)
		if err != nil {
			return err
		}
		for _, n := range resp.Nodes {
			if n.NodeID == victimID && (n.Build != "1.0" || !n.IsLive) {
				return fmt.Errorf("node status through node %d: node %d runs %q (live %v), want 1.0 and live", via+1, victimID, n.Build, n.IsLive)
			}
		}
		hresp, err := http.Get("http://" + c.Nodes[via].Config.HTTPAddr + "/_status/console")
		if err != nil {
			return err
		}
		defer hresp.Body.Close()
		var st console.Status
		if err := json.NewDecoder(hresp.Body).Decode(&st); err != nil {
			return err
		}
		var text []string
		for _, b := range st.Banners {
			text = append(text, b.Title+" "+b.Detail)
		}
		all := strings.Join(text, "\n")
		if strings.Contains(all, "can still be rolled back") || strings.Contains(all, "finalizes to 1.1 within seconds") ||
			!strings.Contains(all, "can no longer be rolled back") || !strings.Contains(all, fmt.Sprintf("node %d runs 1.0", victimID)) {
			return fmt.Errorf("console banners through node %d with node %d rolled back behind a partial fence:\n%s", via+1, victimID, all)
		}
		return nil
	})
}
