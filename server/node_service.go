package server

import (
	"context"

	"github.com/kvnode/kvnode/nodeapi"
)

// The kvnode.Node service (package nodeapi holds its messages, method names
// and client): node-to-node and CLI-to-node control calls.

// nodeService is the kvnode.Node service of a Server (nodeapi.NodeServer),
// as CockroachDB's Node serves its RPCs apart from its Server: the
// methods of the node's own lifecycle and version are written beside their
// concern (server.go: Hello, Init;
// lifecycle_rpc.go: NodeStatus, Drain, GetLiveness; versions.go:
// SetClusterVersion; downgrade.go: PurgeRaftLog); those
// below hand the call to the part that owns it.
type nodeService struct{ s *Server }

var _ nodeapi.NodeServer = nodeService{}

func (n nodeService) Decommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return n.s.decom.Decommission(ctx, req)
}

func (n nodeService) Recommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return n.s.decom.Recommission(ctx, req)
}

func (n nodeService) Group0State(ctx context.Context, req *nodeapi.Group0StateRequest) (*nodeapi.Group0StateResponse, error) {
	return n.s.g0.Group0State(ctx, req)
}

func (n nodeService) Group0Prepare(ctx context.Context, req *nodeapi.Group0PrepareRequest) (*nodeapi.Group0PrepareResponse, error) {
	return n.s.g0.Group0Prepare(ctx, req)
}

func (n nodeService) Group0Join(ctx context.Context, req *nodeapi.Group0JoinRequest) (*nodeapi.Group0JoinResponse, error) {
	return n.s.g0.Group0Join(ctx, req)
}

func (n nodeService) Group0SetState(ctx context.Context, req *nodeapi.Group0SetStateRequest) (*nodeapi.Group0SetStateResponse, error) {
	return n.s.g0.Group0SetState(ctx, req)
}

func (n nodeService) Group0Sync(ctx context.Context, req *nodeapi.Group0SyncRequest) (*nodeapi.Group0SyncResponse, error) {
	return n.s.g0.Group0Sync(ctx, req)
}

func (n nodeService) Group0Recover(ctx context.Context, req *nodeapi.Group0RecoverRequest) (*nodeapi.Group0RecoverResponse, error) {
	return n.s.g0.Group0Recover(ctx, req)
}

func (n nodeService) Clock(ctx context.Context, req *nodeapi.ClockRequest) (*nodeapi.ClockResponse, error) {
	return n.s.clock.Answer(ctx, req)
}

func (n nodeService) SchemaPush(ctx context.Context, req *nodeapi.SchemaMessage) (*nodeapi.Empty, error) {
	return n.s.schema.Push(ctx, req)
}

func (n nodeService) SchemaPull(ctx context.Context, req *nodeapi.Empty) (*nodeapi.SchemaMessage, error) {
	return n.s.schema.Pull(ctx, req)
}

func (n nodeService) Join(ctx context.Context, req *nodeapi.JoinRequest) (*nodeapi.JoinResponse, error) {
	return n.s.admit.Join(ctx, req)
}

func (n nodeService) Recover(ctx context.Context, req *nodeapi.RecoverRequest) (*nodeapi.RecoverResponse, error) {
	return n.s.loq.Recover(ctx, req)
}

func (n nodeService) RecoverInfo(ctx context.Context, req *nodeapi.RecoverInfoRequest) (*nodeapi.RecoverInfo, error) {
	return n.s.loq.Info(ctx, req)
}

func (n nodeService) RecoverApply(ctx context.Context, req *nodeapi.RecoverApplyRequest) (*nodeapi.RecoverApplyResponse, error) {
	return n.s.loq.Apply(ctx, req)
}
