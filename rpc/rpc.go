package rpc

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageSize bounds one message. The largest a node sends are batches
// of Raft appends (1 MiB of entries each, but one entry holds a whole SQL
// write, which pgwire allows up to 64 MiB); snapshots are streamed in 1 MiB
// chunks.
const MaxMessageSize = 1 << 30

// Codec marshals self-marshaling messages with their own encoding and
// everything else as JSON.
type Codec struct{}

type marshaler interface{ Marshal() ([]byte, error) }
type unmarshaler interface{ Unmarshal([]byte) error }

// Marshal implements encoding.Codec.
func (Codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(marshaler); ok {
		return m.Marshal()
	}
	return json.Marshal(v)
}

// Unmarshal implements encoding.Codec.
func (Codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(unmarshaler); ok {
		return m.Unmarshal(data)
	}
	return json.Unmarshal(data, v)
}

// Name implements encoding.Codec.
func (Codec) Name() string { return "kvnode" }

// NewServer returns a gRPC server with kvnode's codec and limits, and any
// further options (tests add interceptors that inject faults).
func NewServer(extra ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append([]grpc.ServerOption{
		grpc.ForceServerCodec(Codec{}),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	}, extra...)...)
}

// Flow-control windows, fixed on both sides. Setting them turns off gRPC's
// bandwidth-delay-product estimator, which otherwise answers data with a
// PING (one more write and read per Raft message on a busy stream), and a
// large window means WINDOW_UPDATE frames are rare. CockroachDB fixes its
// windows for the same reason.
const (
	streamWindow = 2 << 20
	connWindow   = 16 << 20
)

// Dial returns a plaintext client connection to addr (insecure mode). It does
// not block: the connection is made on first use.
func Dial(addr string) (*grpc.ClientConn, error) { return DialTLS(addr, nil) }

// DialTLS is Dial over TLS with cfg (secure mode: cfg presents this side's
// certificate and checks the peer against the cluster's CA); a nil cfg is
// plaintext.
func DialTLS(addr string, cfg *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodec(Codec{}),
			grpc.MaxCallRecvMsgSize(MaxMessageSize),
			grpc.MaxCallSendMsgSize(MaxMessageSize),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	)
}

// Pool caches one client connection per address.
type Pool struct {
	tls   *tls.Config // nil: plaintext (insecure mode)
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewPool returns an empty pool of plaintext connections (insecure mode).
func NewPool() *Pool { return NewTLSPool(nil) }

// NewTLSPool returns an empty pool whose connections use TLS with cfg (secure
// mode); a nil cfg is NewPool.
func NewTLSPool(cfg *tls.Config) *Pool {
	return &Pool{tls: cfg, conns: map[string]*grpc.ClientConn{}}
}

// Get returns the (shared) connection to addr.
func (p *Pool) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := DialTLS(addr, p.tls)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
}

// Invoke calls a unary method on addr with a timeout.
func (p *Pool) Invoke(ctx context.Context, addr, method string, req, resp any, opts ...grpc.CallOption) error {
	c, err := p.Get(addr)
	if err != nil {
		return err
	}
	return c.Invoke(ctx, method, req, resp, opts...)
}

// UnaryHandler adapts a typed function into a grpc.MethodDesc handler.
func UnaryHandler[Req any, Resp any](fn func(ctx context.Context, req *Req) (*Resp, error)) grpc.MethodHandler {
	return func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return fn(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{}, func(ctx context.Context, r any) (any, error) {
			return fn(ctx, r.(*Req))
		})
	}
}
