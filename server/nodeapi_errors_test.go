package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/testcluster"
)

// TestRemoteErrorThroughForwardingNode: a decommission sent to a node that
// does not lead the data group is forwarded to the leader, which refuses
// it. The caller gets the leader's error whole, one hop further: the
// liveness sentinel matches with errors.Is, the hint is there (once, and
// not in the message), and the gRPC code is the leader's.
func TestRemoteErrorThroughForwardingNode(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := func() int {
		for i, nd := range c.Nodes {
			if nd.Server.Replica().Status().IsLeader {
				return i
			}
		}
		return -1
	}
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatal("no stable leader to go around")
		}
		l := leader()
		if l < 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		via := (l + 1) % len(c.Nodes)
		err := nodeapi.DecommissionNodes(ctx, c.Nodes[via].Config.ListenAddr, []nodeid.ID{9}, false, nil)
		if leader() != l || c.Nodes[via].Server.Replica().Status().IsLeader {
			continue // leadership moved during the call: it may not have been forwarded
		}
		if err == nil || err.Error() != "node 9 does not exist" {
			t.Fatalf("decommission of an unknown node through node %d: %v", via+1, err)
		}
		if !errors.Is(err, liveness.ErrUnknownNode) {
			t.Errorf("errors.Is(err, liveness.ErrUnknownNode) is false after the hop: %+v", err)
		}
		if h := errors.GetAllHints(err); len(h) != 1 || h[0] != "`kvnode node status` lists the IDs of the cluster's nodes" {
			t.Errorf("hints after the hop: %q", h)
		}
		if code := nodeapi.Code(err); code != codes.FailedPrecondition {
			t.Errorf("code after the hop: %v", code)
		}
		return
	}
}
