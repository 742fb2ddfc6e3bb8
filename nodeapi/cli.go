package nodeapi

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
)

// The client side of the CLI (`kvnode init`, `kvnode node …`): each
// function dials the node at host (its --listen-addr), makes one call of
// the kvnode.Node service and closes the connection.

// tlsKey carries the CLI's TLS configuration in the context of a call.
type tlsKey struct{}

// WithTLS returns a context whose calls through this file's functions use
// TLS with cfg (secure mode: cfg presents client.root.crt, or a node's
// certificate, and checks the node against the CA). Without it they are
// plaintext (insecure mode).
func WithTLS(ctx context.Context, cfg *tls.Config) context.Context {
	return context.WithValue(ctx, tlsKey{}, cfg)
}

func tlsFrom(ctx context.Context) *tls.Config {
	cfg, _ := ctx.Value(tlsKey{}).(*tls.Config)
	return cfg
}

// clientError turns an error of a call into what the CLI prints: the
// remote error as the node returned it (message and hints), or, if the
// node could not be reached, a sentence that says so.
func clientError(ctx context.Context, host string, err error) error {
	st, ok := status.FromError(err)
	if ok && (st.Code() == codes.Unavailable && IsConnError(st.Message()) || st.Code() == codes.DeadlineExceeded) {
		hint := "check --host: it is the --listen-addr of a running node; nothing was changed"
		msg := st.Message()
		switch {
		case tlsFrom(ctx) == nil && !strings.Contains(msg, "connection refused"):
			hint += "; if the cluster runs in secure mode, pass --certs-dir (holding ca.crt and client.root.crt) instead of --insecure"
		case tlsFrom(ctx) != nil && (strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "handshake")):
			hint += "; the TLS handshake failed: the node may run --insecure (then pass --insecure), or its certificates come from another CA than --certs-dir's ca.crt"
		}
		return errors.WithHintf(errors.Newf("cannot reach a kvnode node at %s: %s", host, msg), "%s", hint)
	}
	if ok && (st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied) {
		return errors.WithHintf(errors.Newf("the node at %s refused the call: %s", host, st.Message()),
			"node commands authenticate with client.root.crt from --certs-dir (`kvnode cert create-client root`)")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.WithHintf(errors.Newf("cannot reach a kvnode node at %s: %v", host, err),
			"check --host: it is the --listen-addr of a running node; nothing was changed")
	}
	return err
}

// IsConnError reports whether msg, the message of a failed call, says
// the connection failed (rather than the remote node refusing).
func IsConnError(msg string) bool {
	for _, s := range []string{"connection refused", "connection error", "dial", "no such host", "i/o timeout", "EOF"} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
			return true
		}
	}
	return false
}

func invoke[Req, Resp any](ctx context.Context, host string,
	call func(*Client, context.Context, string, *Req, ...grpc.CallOption) (*Resp, error), req *Req) (*Resp, error) {
	pool := rpc.NewTLSPool(tlsFrom(ctx))
	defer pool.Close()
	resp, err := call(NewClient(pool), ctx, host, req)
	if err != nil {
		return nil, clientError(ctx, host, err)
	}
	return resp, nil
}

// GetNodeStatus asks the node at host for the status of every node.
func GetNodeStatus(ctx context.Context, host string) (*NodeStatusResponse, error) {
	return invoke(ctx, host, (*Client).NodeStatus, &NodeStatusRequest{})
}

// DrainNode drains the node at host: it stops accepting SQL connections,
// lets open ones finish, moves Raft leadership away and reports not ready;
// it stays up.
func DrainNode(ctx context.Context, host string) (*DrainResponse, error) {
	return invoke(ctx, host, (*Client).Drain, &DrainRequest{})
}

// RecommissionNodes reverses unfinished decommissions.
func RecommissionNodes(ctx context.Context, host string, ids []nodeid.ID) (*MembershipResponse, error) {
	return invoke(ctx, host, (*Client).Recommission, &MembershipRequest{NodeIDs: ids})
}

// DecommissionNodes marks the nodes decommissioning (after the quorum
// check; nothing is changed if it refuses). The Raft leader then removes
// them from the data group and marks them decommissioned; with wait,
// DecommissionNodes polls until that is done, calling progress with the
// targets' status whenever it changes. If the node at host goes away
// meanwhile (it may be one of the targets), it asks the others.
func DecommissionNodes(ctx context.Context, host string, ids []nodeid.ID, wait bool, progress func([]NodeStatus)) error {
	resp, err := invoke(ctx, host, (*Client).Decommission, &MembershipRequest{NodeIDs: ids})
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

// InitCluster asks the node at host to bootstrap a new cluster (`kvnode
// init`).
func InitCluster(ctx context.Context, host string) (*InitResponse, error) {
	return invoke(ctx, host, (*Client).Init, &InitRequest{})
}

// Group0Recover asks the node at host to run (or, with dryRun, only plan)
// the group 0 recovery procedure.
func Group0Recover(ctx context.Context, host string, dryRun bool) (*Group0RecoverResponse, error) {
	return invoke(ctx, host, (*Client).Group0Recover, &Group0RecoverRequest{DryRun: dryRun})
}

// GetGroup0State asks the node at host for its own group 0 state.
func GetGroup0State(ctx context.Context, host string) (*Group0StateResponse, error) {
	return invoke(ctx, host, (*Client).Group0State, &Group0StateRequest{})
}

// Recover asks the node at host to run (or, with req.DryRun, only plan)
// the recovery from a lost majority.
func Recover(ctx context.Context, host string, req RecoverRequest) (*RecoverResponse, error) {
	return invoke(ctx, host, (*Client).Recover, &req)
}
