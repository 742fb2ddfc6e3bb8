package nodeapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/kvnode/kvnode/rpc"
)

// ServiceName is the gRPC name of the node-control service.
const ServiceName = "kvnode.Node"

// The full method names of the kvnode.Node service. A name is part of the
// wire: never rename one.
const (
	MethodHello             = "/kvnode.Node/Hello"
	MethodInit              = "/kvnode.Node/Init"
	MethodJoin              = "/kvnode.Node/Join"
	MethodSchemaPush        = "/kvnode.Node/SchemaPush"
	MethodSchemaPull        = "/kvnode.Node/SchemaPull"
	MethodNodeStatus        = "/kvnode.Node/NodeStatus"
	MethodDrain             = "/kvnode.Node/Drain"
	MethodDecommission      = "/kvnode.Node/Decommission"
	MethodRecommission      = "/kvnode.Node/Recommission"
	MethodGetLiveness       = "/kvnode.Node/GetLiveness"
	MethodSetClusterVersion = "/kvnode.Node/SetClusterVersion"
	MethodGroup0State       = "/kvnode.Node/Group0State"
	MethodGroup0Prepare     = "/kvnode.Node/Group0Prepare"
	MethodGroup0Join        = "/kvnode.Node/Group0Join"
	MethodGroup0SetState    = "/kvnode.Node/Group0SetState"
	MethodGroup0Sync        = "/kvnode.Node/Group0Sync"
	MethodGroup0Recover     = "/kvnode.Node/Group0Recover"
	MethodRecover           = "/kvnode.Node/Recover"
	MethodRecoverInfo       = "/kvnode.Node/RecoverInfo"
	MethodRecoverApply      = "/kvnode.Node/RecoverApply"
	// MethodClock is new in release 2.1: a node of an older release
	// answers Unimplemented, which callers take as "not measured".
	MethodClock        = "/kvnode.Node/Clock"
	MethodPurgeRaftLog = "/kvnode.Node/PurgeRaftLog"
)

// NodeServer is what a node serves. Every method may be called again with
// the same request (a coordinator that crashed, or a second one, retries).
type NodeServer interface {
	// Hello asks a node who it is.

	Hello(context.Context, *HelloRequest) (*HelloResponse, error)
	// Init bootstraps a new cluster on the node (kvnode init).

	Init(context.Context, *InitRequest) (*InitResponse, error)
	// Join asks the cluster to admit a node with a fresh store.

	Join(context.Context, *JoinRequest) (*JoinResponse, error)
	// SchemaPush hands the node table descriptors (pre-Raft schema procedure).

	SchemaPush(context.Context, *SchemaMessage) (*Empty, error)
	// SchemaPull asks the node for its table descriptors.

	SchemaPull(context.Context, *Empty) (*SchemaMessage, error)
	// NodeStatus asks the node for the status of every node.

	NodeStatus(context.Context, *NodeStatusRequest) (*NodeStatusResponse, error)
	// Drain drains the node.

	Drain(context.Context, *DrainRequest) (*DrainResponse, error)
	// Decommission marks nodes decommissioning.

	Decommission(context.Context, *MembershipRequest) (*MembershipResponse, error)
	// Recommission reverses unfinished decommissions.

	Recommission(context.Context, *MembershipRequest) (*MembershipResponse, error)
	// GetLiveness reads one node's liveness record.

	GetLiveness(context.Context, *LivenessRequest) (*LivenessResponse, error)
	// SetClusterVersion asks the node to persist a new active version.

	SetClusterVersion(context.Context, *SetClusterVersionRequest) (*SetClusterVersionResponse, error)
	// Group0State asks the node for its group 0 state.

	Group0State(context.Context, *Group0StateRequest) (*Group0StateResponse, error)
	// Group0Prepare makes the node a member of a group 0 generation.

	Group0Prepare(context.Context, *Group0PrepareRequest) (*Group0PrepareResponse, error)
	// Group0Join asks group 0's leader to add (or, for a lost replica, remove) a node.

	Group0Join(context.Context, *Group0JoinRequest) (*Group0JoinResponse, error)
	// Group0SetState asks the node to persist a new group 0 upgrade state.

	Group0SetState(context.Context, *Group0SetStateRequest) (*Group0SetStateResponse, error)
	// Group0Sync asks the node to catch its catalog up with a group 0 state.

	Group0Sync(context.Context, *Group0SyncRequest) (*Group0SyncResponse, error)
	// Group0Recover runs (or plans) group 0's recovery procedure.

	Group0Recover(context.Context, *Group0RecoverRequest) (*Group0RecoverResponse, error)
	// Recover runs (or plans) the recovery from a lost majority.

	Recover(context.Context, *RecoverRequest) (*RecoverResponse, error)
	// RecoverInfo asks the node for its data group state.

	RecoverInfo(context.Context, *RecoverInfoRequest) (*RecoverInfo, error)
	// RecoverApply asks the node to take one step of the recovery.

	RecoverApply(context.Context, *RecoverApplyRequest) (*RecoverApplyResponse, error)
	// Clock asks the node for its clock's wall time (the clock-offset
	// monitor; release 2.1).

	Clock(context.Context, *ClockRequest) (*ClockResponse, error)
	// PurgeRaftLog compacts the node's data group log (release 2.1).

	PurgeRaftLog(context.Context, *PurgeRaftLogRequest) (*PurgeRaftLogResponse, error)
}

// method is one method of the service: its name and message types.
type method struct {
	name        string
	newRequest  func() any
	newResponse func() any
	handler     grpc.MethodHandler
}

func unary[Req, Resp any](name string, fn func(NodeServer, context.Context, *Req) (*Resp, error)) method {
	return method{
		name:        name,
		newRequest:  func() any { return new(Req) },
		newResponse: func() any { return new(Resp) },
		handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			resp, err := rpc.UnaryHandler(func(ctx context.Context, req *Req) (*Resp, error) {
				return fn(srv.(NodeServer), ctx, req)
			})(srv, ctx, dec, ic)
			if err != nil {
				return nil, ToStatus(ctx, err)
			}
			return resp, nil
		},
	}
}

// methods lists the service, in the order of the constants above.
var methods = []method{
	unary("Hello", NodeServer.Hello),
	unary("Init", NodeServer.Init),
	unary("Join", NodeServer.Join),
	unary("SchemaPush", NodeServer.SchemaPush),
	unary("SchemaPull", NodeServer.SchemaPull),
	unary("NodeStatus", NodeServer.NodeStatus),
	unary("Drain", NodeServer.Drain),
	unary("Decommission", NodeServer.Decommission),
	unary("Recommission", NodeServer.Recommission),
	unary("GetLiveness", NodeServer.GetLiveness),
	unary("SetClusterVersion", NodeServer.SetClusterVersion),
	unary("Group0State", NodeServer.Group0State),
	unary("Group0Prepare", NodeServer.Group0Prepare),
	unary("Group0Join", NodeServer.Group0Join),
	unary("Group0SetState", NodeServer.Group0SetState),
	unary("Group0Sync", NodeServer.Group0Sync),
	unary("Group0Recover", NodeServer.Group0Recover),
	unary("Recover", NodeServer.Recover),
	unary("RecoverInfo", NodeServer.RecoverInfo),
	unary("RecoverApply", NodeServer.RecoverApply),
	unary("Clock", NodeServer.Clock),
	unary("PurgeRaftLog", NodeServer.PurgeRaftLog),
}

// ServiceDesc is the kvnode.Node service. Errors returned by a NodeServer
// are sent with ToStatus.
var ServiceDesc = func() grpc.ServiceDesc {
	d := grpc.ServiceDesc{ServiceName: ServiceName, HandlerType: (*NodeServer)(nil)}
	for _, m := range methods {
		d.Methods = append(d.Methods, grpc.MethodDesc{MethodName: m.name, Handler: m.handler})
	}
	return d
}()

// RegisterNodeServer registers srv as the kvnode.Node service of s.
func RegisterNodeServer(s grpc.ServiceRegistrar, srv NodeServer) {
	s.RegisterService(&ServiceDesc, srv)
}

// Client calls the kvnode.Node service of any node, over a shared pool of
// connections. Errors come back as the remote handler returned them (see
// FromStatus), or as gRPC made them if the call did not reach a handler.
type Client struct {
	pool *rpc.Pool
}

// NewClient returns a client over pool.
func NewClient(pool *rpc.Pool) *Client { return &Client{pool: pool} }

func call[Req, Resp any](ctx context.Context, c *Client, addr, method string, req *Req, opts []grpc.CallOption) (*Resp, error) {
	resp := new(Resp)
	if err := c.pool.Invoke(ctx, addr, method, req, resp, opts...); err != nil {
		return nil, FromStatus(ctx, err)
	}
	return resp, nil
}

// Hello asks a node who it is.

func (c *Client) Hello(ctx context.Context, addr string, req *HelloRequest, opts ...grpc.CallOption) (*HelloResponse, error) {
	return call[HelloRequest, HelloResponse](ctx, c, addr, MethodHello, req, opts)
}

// Init bootstraps a new cluster on the node at addr (kvnode init).

func (c *Client) Init(ctx context.Context, addr string, req *InitRequest, opts ...grpc.CallOption) (*InitResponse, error) {
	return call[InitRequest, InitResponse](ctx, c, addr, MethodInit, req, opts)
}

// Join asks the cluster to admit a node with a fresh store.

func (c *Client) Join(ctx context.Context, addr string, req *JoinRequest, opts ...grpc.CallOption) (*JoinResponse, error) {
	return call[JoinRequest, JoinResponse](ctx, c, addr, MethodJoin, req, opts)
}

// SchemaPush hands the node at addr table descriptors (pre-Raft schema procedure).

func (c *Client) SchemaPush(ctx context.Context, addr string, req *SchemaMessage, opts ...grpc.CallOption) (*Empty, error) {
	return call[SchemaMessage, Empty](ctx, c, addr, MethodSchemaPush, req, opts)
}

// SchemaPull asks the node at addr for its table descriptors.

func (c *Client) SchemaPull(ctx context.Context, addr string, req *Empty, opts ...grpc.CallOption) (*SchemaMessage, error) {
	return call[Empty, SchemaMessage](ctx, c, addr, MethodSchemaPull, req, opts)
}

// NodeStatus asks the node at addr for the status of every node.

func (c *Client) NodeStatus(ctx context.Context, addr string, req *NodeStatusRequest, opts ...grpc.CallOption) (*NodeStatusResponse, error) {
	return call[NodeStatusRequest, NodeStatusResponse](ctx, c, addr, MethodNodeStatus, req, opts)
}

// Drain drains the node at addr.

func (c *Client) Drain(ctx context.Context, addr string, req *DrainRequest, opts ...grpc.CallOption) (*DrainResponse, error) {
	return call[DrainRequest, DrainResponse](ctx, c, addr, MethodDrain, req, opts)
}

// Decommission marks nodes decommissioning.

func (c *Client) Decommission(ctx context.Context, addr string, req *MembershipRequest, opts ...grpc.CallOption) (*MembershipResponse, error) {
	return call[MembershipRequest, MembershipResponse](ctx, c, addr, MethodDecommission, req, opts)
}

// Recommission reverses unfinished decommissions.

func (c *Client) Recommission(ctx context.Context, addr string, req *MembershipRequest, opts ...grpc.CallOption) (*MembershipResponse, error) {
	return call[MembershipRequest, MembershipResponse](ctx, c, addr, MethodRecommission, req, opts)
}

// GetLiveness reads one node's liveness record.

func (c *Client) GetLiveness(ctx context.Context, addr string, req *LivenessRequest, opts ...grpc.CallOption) (*LivenessResponse, error) {
	return call[LivenessRequest, LivenessResponse](ctx, c, addr, MethodGetLiveness, req, opts)
}

// SetClusterVersion asks the node at addr to persist a new active version.

func (c *Client) SetClusterVersion(ctx context.Context, addr string, req *SetClusterVersionRequest, opts ...grpc.CallOption) (*SetClusterVersionResponse, error) {
	return call[SetClusterVersionRequest, SetClusterVersionResponse](ctx, c, addr, MethodSetClusterVersion, req, opts)
}

// Group0State asks the node at addr for its group 0 state.

func (c *Client) Group0State(ctx context.Context, addr string, req *Group0StateRequest, opts ...grpc.CallOption) (*Group0StateResponse, error) {
	return call[Group0StateRequest, Group0StateResponse](ctx, c, addr, MethodGroup0State, req, opts)
}

// Group0Prepare makes the node at addr a member of a group 0 generation.

func (c *Client) Group0Prepare(ctx context.Context, addr string, req *Group0PrepareRequest, opts ...grpc.CallOption) (*Group0PrepareResponse, error) {
	return call[Group0PrepareRequest, Group0PrepareResponse](ctx, c, addr, MethodGroup0Prepare, req, opts)
}

// Group0Join asks group 0's leader to add (or, for a lost replica, remove) a node.

func (c *Client) Group0Join(ctx context.Context, addr string, req *Group0JoinRequest, opts ...grpc.CallOption) (*Group0JoinResponse, error) {
	return call[Group0JoinRequest, Group0JoinResponse](ctx, c, addr, MethodGroup0Join, req, opts)
}

// Group0SetState asks the node at addr to persist a new group 0 upgrade state.

func (c *Client) Group0SetState(ctx context.Context, addr string, req *Group0SetStateRequest, opts ...grpc.CallOption) (*Group0SetStateResponse, error) {
	return call[Group0SetStateRequest, Group0SetStateResponse](ctx, c, addr, MethodGroup0SetState, req, opts)
}

// Group0Sync asks the node at addr to catch its catalog up with a group 0 state.

func (c *Client) Group0Sync(ctx context.Context, addr string, req *Group0SyncRequest, opts ...grpc.CallOption) (*Group0SyncResponse, error) {
	return call[Group0SyncRequest, Group0SyncResponse](ctx, c, addr, MethodGroup0Sync, req, opts)
}

// Group0Recover runs (or plans) group 0's recovery procedure.

func (c *Client) Group0Recover(ctx context.Context, addr string, req *Group0RecoverRequest, opts ...grpc.CallOption) (*Group0RecoverResponse, error) {
	return call[Group0RecoverRequest, Group0RecoverResponse](ctx, c, addr, MethodGroup0Recover, req, opts)
}

// Recover runs (or plans) the recovery from a lost majority.

func (c *Client) Recover(ctx context.Context, addr string, req *RecoverRequest, opts ...grpc.CallOption) (*RecoverResponse, error) {
	return call[RecoverRequest, RecoverResponse](ctx, c, addr, MethodRecover, req, opts)
}

// RecoverInfo asks the node at addr for its data group state.

func (c *Client) RecoverInfo(ctx context.Context, addr string, req *RecoverInfoRequest, opts ...grpc.CallOption) (*RecoverInfo, error) {
	return call[RecoverInfoRequest, RecoverInfo](ctx, c, addr, MethodRecoverInfo, req, opts)
}

// RecoverApply asks the node at addr to take one step of the recovery.

func (c *Client) RecoverApply(ctx context.Context, addr string, req *RecoverApplyRequest, opts ...grpc.CallOption) (*RecoverApplyResponse, error) {
	return call[RecoverApplyRequest, RecoverApplyResponse](ctx, c, addr, MethodRecoverApply, req, opts)
}

// Clock asks a node for its clock's wall time. A node of a release before
// 2.1 answers Unimplemented (see Code).
func (c *Client) Clock(ctx context.Context, addr string, req *ClockRequest, opts ...grpc.CallOption) (*ClockResponse, error) {
	return call[ClockRequest, ClockResponse](ctx, c, addr, MethodClock, req, opts)
}

// PurgeRaftLog asks the node at addr to compact its data group log through
// an index (a node of a release before 2.1 answers Unimplemented).

func (c *Client) PurgeRaftLog(ctx context.Context, addr string, req *PurgeRaftLogRequest, opts ...grpc.CallOption) (*PurgeRaftLogResponse, error) {
	return call[PurgeRaftLogRequest, PurgeRaftLogResponse](ctx, c, addr, MethodPurgeRaftLog, req, opts)
}
