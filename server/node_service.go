package server

import (
	"context"
	"encoding/json"

	"github.com/kvnode/kvnode/nodeapi"
)

// The kvnode.Node service (package nodeapi holds its messages, method names
// and client): node-to-node and CLI-to-node control calls.

func encodeNodeRecord(n nodeapi.NodeRecord) []byte {
	b, _ := json.Marshal(n)
	return b
}

// nodeService is the kvnode.Node service of a Server (nodeapi.NodeServer).
type nodeService struct{ s *Server }

var _ nodeapi.NodeServer = nodeService{}

func (n nodeService) Hello(ctx context.Context, req *nodeapi.HelloRequest) (*nodeapi.HelloResponse, error) {
	return n.s.hello(ctx, req)
}

func (n nodeService) Init(ctx context.Context, req *nodeapi.InitRequest) (*nodeapi.InitResponse, error) {
	return n.s.initCluster(ctx, req)
}

func (n nodeService) Join(ctx context.Context, req *nodeapi.JoinRequest) (*nodeapi.JoinResponse, error) {
	return n.s.join(ctx, req)
}

func (n nodeService) SchemaPush(ctx context.Context, req *nodeapi.SchemaMessage) (*nodeapi.Empty, error) {
	return n.s.schemaPush(ctx, req)
}

func (n nodeService) SchemaPull(ctx context.Context, req *nodeapi.Empty) (*nodeapi.SchemaMessage, error) {
	return n.s.schemaPull(ctx, req)
}

func (n nodeService) NodeStatus(ctx context.Context, req *nodeapi.NodeStatusRequest) (*nodeapi.NodeStatusResponse, error) {
	return n.s.nodeStatus(ctx, req)
}

func (n nodeService) Drain(ctx context.Context, req *nodeapi.DrainRequest) (*nodeapi.DrainResponse, error) {
	return n.s.drain(ctx, req)
}

func (n nodeService) Decommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return n.s.decom.Decommission(ctx, req)
}

func (n nodeService) Recommission(ctx context.Context, req *nodeapi.MembershipRequest) (*nodeapi.MembershipResponse, error) {
	return n.s.decom.Recommission(ctx, req)
}

func (n nodeService) GetLiveness(ctx context.Context, req *nodeapi.LivenessRequest) (*nodeapi.LivenessResponse, error) {
	return n.s.getLiveness(ctx, req)
}

func (n nodeService) SetClusterVersion(ctx context.Context, req *nodeapi.SetClusterVersionRequest) (*nodeapi.SetClusterVersionResponse, error) {
	return n.s.setClusterVersion(ctx, req)
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

func (n nodeService) Recover(ctx context.Context, req *nodeapi.RecoverRequest) (*nodeapi.RecoverResponse, error) {
	return n.s.loq.Recover(ctx, req)
}

func (n nodeService) RecoverInfo(ctx context.Context, req *nodeapi.RecoverInfoRequest) (*nodeapi.RecoverInfo, error) {
	return n.s.loq.Info(ctx, req)
}

func (n nodeService) RecoverApply(ctx context.Context, req *nodeapi.RecoverApplyRequest) (*nodeapi.RecoverApplyResponse, error) {
	return n.s.loq.Apply(ctx, req)
}

func (n nodeService) Clock(ctx context.Context, req *nodeapi.ClockRequest) (*nodeapi.ClockResponse, error) {
	return n.s.clockReading(ctx, req)
}

func (n nodeService) PurgeRaftLog(ctx context.Context, req *nodeapi.PurgeRaftLogRequest) (*nodeapi.PurgeRaftLogResponse, error) {
	return n.s.purgeRaftLog(ctx, req)
}
