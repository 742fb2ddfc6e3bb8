package server

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/rpc"
)

// The client side of `kvnode node …`: each function dials the node at host
// (its --listen-addr) and calls one method of the kvnode.Node service.

// clientError turns an RPC error into what the CLI prints: the remote
// message (which carries its hint), or, if the node could not be reached,
// a sentence that says so.
func clientError(host string, err error) error {
	st, ok := status.FromError(err)
	if ok && (st.Code() == codes.Unavailable && isConnError(st.Message()) || st.Code() == codes.DeadlineExceeded) {
		return errors.WithHintf(errors.Newf("cannot reach a kvnode node at %s: %s", host, st.Message()),
			"check --host: it is the --listen-addr of a running node; nothing was changed")
	}
	if ok {
		return errors.Newf("%s", st.Message())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.WithHintf(errors.Newf("cannot reach a kvnode node at %s: %v", host, err),
			"check --host: it is the --listen-addr of a running node; nothing was changed")
	}
	return err
}

func isConnError(msg string) bool {
	for _, s := range []string{"connection refused", "connection error", "dial", "no such host", "i/o timeout", "EOF"} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
			return true
		}
	}
	return false
}

func invoke[Req, Resp any](ctx context.Context, host, method string, req *Req) (*Resp, error) {
	pool := rpc.NewPool()
	defer pool.Close()
	var resp Resp
	if err := pool.Invoke(ctx, host, method, req, &resp); err != nil {
		return nil, clientError(host, err)
	}
	return &resp, nil
}

// GetNodeStatus asks the node at host for the status of every node.
func GetNodeStatus(ctx context.Context, host string) (*NodeStatusResponse, error) {
	return invoke[NodeStatusRequest, NodeStatusResponse](ctx, host, methodNodeStatus, &NodeStatusRequest{})
}

// DrainNode drains the node at host: it stops accepting SQL connections,
// lets open ones finish, moves Raft leadership away and reports not ready;
// it stays up.
func DrainNode(ctx context.Context, host string) (*DrainResponse, error) {
	return invoke[DrainRequest, DrainResponse](ctx, host, methodDrain, &DrainRequest{})
}

// RecommissionNodes reverses unfinished decommissions.
func RecommissionNodes(ctx context.Context, host string, ids []int32) (*MembershipResponse, error) {
	return invoke[MembershipRequest, MembershipResponse](ctx, host, methodRecommission, &MembershipRequest{NodeIDs: ids})
}

// DecommissionNodes marks the nodes decommissioning (after the quorum
// check; nothing is changed if it refuses). The Raft leader then removes
// them from the data group and marks them decommissioned; with wait,
// DecommissionNodes polls until that is done, calling progress with the
// targets' status whenever it changes. If the node at host goes away
// meanwhile (it may be one of the targets), it asks the others.
func DecommissionNodes(ctx context.Context, host string, ids []int32, wait bool, progress func([]NodeStatus)) error {
	resp, err := invoke[MembershipRequest, MembershipResponse](ctx, host, methodDecommission, &MembershipRequest{NodeIDs: ids})
	if err != nil {
		return err
	}
	if progress != nil {
		progress(resp.Nodes)
	}
	if !wait {
		return nil
	}
	// The node at host may be a target and leave; ask the others then. An
	// answer from a node's own stale copy is used only if no node gives
	// a fresh one.
	hosts := []string{host}
	last := resp.Nodes
	for {
		var st *NodeStatusResponse
		for _, h := range hosts {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, herr := GetNodeStatus(cctx, h)
			cancel()
			if herr != nil {
				err = herr
				continue
			}
			if st == nil || (st.Stale && !resp.Stale) {
				st = resp
			}
			if !resp.Stale {
				break
			}
		}
		if st == nil {
			return errors.Wrap(err, "decommissioning goes on in the cluster, but no node answers for its progress")
		}
		var live, others []string
		var targets []NodeStatus
		done := !st.Stale
		for _, n := range st.Nodes {
			switch {
			case slices.Contains(ids, n.NodeID):
				targets = append(targets, n)
				done = done && n.Membership == string(liveness.Decommissioned)
			case n.Membership != string(liveness.Active) || n.Address == host:
			case n.IsLive:
				live = append(live, n.Address)
			default:
				others = append(others, n.Address)
			}
		}
		if len(live)+len(others) > 0 {
			hosts = append(append([]string{host}, live...), others...)
		}
		if progress != nil && !sameProgress(last, targets) {
			progress(targets)
		}
		last = targets
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.WithHint(errors.Wrap(ctx.Err(), "waiting for the decommission to finish"),
				"the decommission goes on in the cluster; `kvnode node status` shows its progress")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func sameProgress(a, b []NodeStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].NodeID != b[i].NodeID || a[i].Membership != b[i].Membership || a[i].Raft != b[i].Raft || a[i].IsLive != b[i].IsLive {
			return false
		}
	}
	return true
}
