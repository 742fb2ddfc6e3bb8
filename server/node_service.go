package server

import (
	"context"
	"encoding/json"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/sql/catalog"
)

// The kvnode.Node service: node-to-node and CLI-to-node control calls. All
// messages are small JSON documents (see package rpc).

// HelloRequest asks a node who it is.
type HelloRequest struct{}

// HelloResponse describes a node.
type HelloResponse struct {
	ClusterID     string `json:"cluster_id"`
	NodeID        int32  `json:"node_id"`
	Bootstrapped  bool   `json:"bootstrapped"`
	ListenAddr    string `json:"listen_addr"`
	GossipAddr    string `json:"gossip_addr"`
	BinaryVersion string `json:"binary_version"`
}

// InitRequest bootstraps a new cluster on the receiving node.
type InitRequest struct{}

// InitResponse reports the new cluster.
type InitResponse struct {
	ClusterID string `json:"cluster_id"`
	NodeID    int32  `json:"node_id"`
}

// JoinRequest asks the cluster to admit a node with a fresh store.
type JoinRequest struct {
	Node      NodeRecord `json:"node"`
	Forwarded bool       `json:"forwarded"`
}

// JoinResponse carries the identity the joining node must persist.
type JoinResponse struct {
	ClusterID string `json:"cluster_id"`
	NodeID    int32  `json:"node_id"`
	// ClusterVersion is the cluster's active version, which the joining
	// node persists as its own.
	ClusterVersion string `json:"cluster_version"`
}

// SchemaMessage carries table descriptors (pre-Raft schema procedure).
type SchemaMessage struct {
	Descriptors []catalog.TableDescriptor `json:"descriptors"`
}

// Empty is an empty message.
type Empty struct{}

// NodeRecord is the replicated record of a node, written when it joins and
// updated when its addresses change. It lets every node find every other
// node's RPC address even before gossip has converged.
type NodeRecord struct {
	NodeID        int32  `json:"node_id"`
	ListenAddr    string `json:"listen_addr"`
	GossipAddr    string `json:"gossip_addr"`
	SQLAddr       string `json:"sql_addr"`
	HTTPAddr      string `json:"http_addr"`
	BinaryVersion string `json:"binary_version"`
}

func (n NodeRecord) encode() []byte {
	b, _ := json.Marshal(n)
	return b
}

type nodeService interface {
	hello(context.Context, *HelloRequest) (*HelloResponse, error)
	initCluster(context.Context, *InitRequest) (*InitResponse, error)
	join(context.Context, *JoinRequest) (*JoinResponse, error)
	schemaPush(context.Context, *SchemaMessage) (*Empty, error)
	schemaPull(context.Context, *Empty) (*SchemaMessage, error)
	// Node lifecycle (status.go, decommission.go).
	nodeStatus(context.Context, *NodeStatusRequest) (*NodeStatusResponse, error)
	drain(context.Context, *DrainRequest) (*DrainResponse, error)
	decommission(context.Context, *MembershipRequest) (*MembershipResponse, error)
	recommission(context.Context, *MembershipRequest) (*MembershipResponse, error)
	getLiveness(context.Context, *LivenessRequest) (*LivenessResponse, error)
	// Cluster versions (versions.go).
	setClusterVersion(context.Context, *SetClusterVersionRequest) (*SetClusterVersionResponse, error)
	// Group 0 (group0_rpc.go, group0_recovery.go).
	group0State(context.Context, *Group0StateRequest) (*Group0StateResponse, error)
	group0Prepare(context.Context, *Group0PrepareRequest) (*Group0PrepareResponse, error)
	group0Join(context.Context, *Group0JoinRequest) (*Group0JoinResponse, error)
	group0SetState(context.Context, *Group0SetStateRequest) (*Group0SetStateResponse, error)
	group0Sync(context.Context, *Group0SyncRequest) (*Group0SyncResponse, error)
	group0Recover(context.Context, *Group0RecoverRequest) (*Group0RecoverResponse, error)
	// Recovery from a lost majority (recover.go).
	recoverCluster(context.Context, *RecoverRequest) (*RecoverResponse, error)
	recoverInfo(context.Context, *RecoverInfoRequest) (*RecoverInfo, error)
	recoverApply(context.Context, *RecoverApplyRequest) (*RecoverApplyResponse, error)
}

func method[Req, Resp any](name string, fn func(nodeService, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return rpc.UnaryHandler(func(ctx context.Context, req *Req) (*Resp, error) {
				return fn(srv.(nodeService), ctx, req)
			})(srv, ctx, dec, ic)
		},
	}
}

var nodeServiceDesc = grpc.ServiceDesc{
	ServiceName: "kvnode.Node",
	HandlerType: (*nodeService)(nil),
	Methods: []grpc.MethodDesc{
		method("Hello", nodeService.hello),
		method("Init", nodeService.initCluster),
		method("Join", nodeService.join),
		method("SchemaPush", nodeService.schemaPush),
		method("SchemaPull", nodeService.schemaPull),
		method("NodeStatus", nodeService.nodeStatus),
		method("Drain", nodeService.drain),
		method("Decommission", nodeService.decommission),
		method("Recommission", nodeService.recommission),
		method("GetLiveness", nodeService.getLiveness),
		method("SetClusterVersion", nodeService.setClusterVersion),
		method("Group0State", nodeService.group0State),
		method("Group0Prepare", nodeService.group0Prepare),
		method("Group0Join", nodeService.group0Join),
		method("Group0SetState", nodeService.group0SetState),
		method("Group0Sync", nodeService.group0Sync),
		method("Group0Recover", nodeService.group0Recover),
		method("Recover", nodeService.recoverCluster),
		method("RecoverInfo", nodeService.recoverInfo),
		method("RecoverApply", nodeService.recoverApply),
	},
}

const (
	methodHello             = "/kvnode.Node/Hello"
	methodInit              = "/kvnode.Node/Init"
	methodJoin              = "/kvnode.Node/Join"
	methodSchemaPush        = "/kvnode.Node/SchemaPush"
	methodSchemaPull        = "/kvnode.Node/SchemaPull"
	methodSetClusterVersion = "/kvnode.Node/SetClusterVersion"

	methodNodeStatus   = "/kvnode.Node/NodeStatus"
	methodDrain        = "/kvnode.Node/Drain"
	methodDecommission = "/kvnode.Node/Decommission"
	methodRecommission = "/kvnode.Node/Recommission"
	methodGetLiveness  = "/kvnode.Node/GetLiveness"
)

// rpcError turns an error into a gRPC status with the given code, keeping
// the hint in the message so a remote CLI can show it.
func rpcError(code codes.Code, err error) error {
	msg := err.Error()
	for _, h := range errors.GetAllHints(err) {
		msg += "\nHINT: " + h
	}
	return status.Error(code, msg)
}

// remoteMessage extracts the message of a gRPC error.
func remoteMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
