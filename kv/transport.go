package kv

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
)

// RaftBatch is the unit the transport sends: messages from one node to
// another, stamped with the cluster ID so that a node of another cluster is
// refused before any message reaches Raft.
type RaftBatch struct {
	ClusterID string
	From, To  uint64
	Msgs      []raftpb.Message
}

// Marshal implements the rpc codec's self-marshaling interface.
func (b *RaftBatch) Marshal() ([]byte, error) {
	out := appendBytes(nil, []byte(b.ClusterID))
	out = binary.AppendUvarint(out, b.From)
	out = binary.AppendUvarint(out, b.To)
	out = binary.AppendUvarint(out, uint64(len(b.Msgs)))
	for i := range b.Msgs {
		m, err := b.Msgs[i].Marshal()
		if err != nil {
			return nil, err
		}
		out = appendBytes(out, m)
	}
	return out, nil
}

// Unmarshal implements the rpc codec's self-unmarshaling interface.
func (b *RaftBatch) Unmarshal(data []byte) error {
	d := &decoder{b: data}
	b.ClusterID = string(d.bytes())
	b.From = d.uvarint()
	b.To = d.uvarint()
	n := d.uvarint()
	if d.err != nil || n > uint64(len(data)) {
		return errors.New("corrupt Raft batch")
	}
	b.Msgs = make([]raftpb.Message, n)
	for i := range b.Msgs {
		mb := d.bytes()
		if d.err != nil {
			return errors.New("corrupt Raft batch")
		}
		if err := b.Msgs[i].Unmarshal(mb); err != nil {
			return errors.Wrap(err, "corrupt Raft message")
		}
	}
	return nil
}

type empty struct{}

// ForwardRequest carries proposals from a follower to the leader of Term.
type ForwardRequest struct {
	ClusterID string
	From      uint64
	Term      uint64
	Datas     [][]byte
}

// Marshal implements the rpc codec's self-marshaling interface.
func (f *ForwardRequest) Marshal() ([]byte, error) {
	out := appendBytes(nil, []byte(f.ClusterID))
	out = binary.AppendUvarint(out, f.From)
	out = binary.AppendUvarint(out, f.Term)
	out = binary.AppendUvarint(out, uint64(len(f.Datas)))
	for _, d := range f.Datas {
		out = appendBytes(out, d)
	}
	return out, nil
}

// Unmarshal implements the rpc codec's self-unmarshaling interface.
func (f *ForwardRequest) Unmarshal(data []byte) error {
	d := &decoder{b: data}
	f.ClusterID = string(d.bytes())
	f.From = d.uvarint()
	f.Term = d.uvarint()
	n := d.uvarint()
	if d.err != nil || n > uint64(len(data)) {
		return errors.New("corrupt forward request")
	}
	f.Datas = make([][]byte, n)
	for i := range f.Datas {
		f.Datas[i] = append([]byte(nil), d.bytes()...)
	}
	if d.err != nil {
		return errors.New("corrupt forward request")
	}
	return nil
}

// ForwardResponse says which forwarded proposals the leader appended.
type ForwardResponse struct {
	Accepted []bool
}

// Forward hands proposals to the leader, which appends them only if its term
// is still term. It returns, per proposal, whether it was appended.
//
// retry says that an earlier call with the same proposals may have reached
// the leader (forward.go). Retries go to a method of their own, ProposeRetry,
// which only a leader that recognizes commands it appended already serves: a
// build without that memory answers Unimplemented instead of appending a
// command twice.
func (t *Transport) Forward(ctx context.Context, leader, term uint64, datas [][]byte, retry bool) ([]bool, error) {
	if t.local != nil {
		return nil, errLocalForward
	}
	addr, ok := t.resolve(nodeID(leader))
	if !ok {
		return nil, errors.Newf("no address known for leader node %d", leader)
	}
	method := "/" + t.service + "/Propose"
	if retry {
		method += "Retry"
	}
	var resp ForwardResponse
	req := &ForwardRequest{ClusterID: t.clusterID, From: t.nodeID, Term: term, Datas: datas}
	if err := t.pool.Invoke(ctx, addr, method, req, &resp); err != nil {
		return nil, err
	}
	return resp.Accepted, nil
}

// Resolver maps a node ID to its RPC address.
type Resolver func(nodeID nodeid.ID) (addr string, ok bool)

// ErrWrongCluster is returned to a sender whose cluster ID is not ours.
var ErrWrongCluster = errors.New("Raft message from a node of another cluster")

// Transport carries Raft messages between nodes over gRPC: one client
// stream per peer for ordinary messages, and a client stream of its own per
// snapshot (snapshot.go), so a large snapshot never delays heartbeats. A
// peer of an earlier build, which does not serve that stream, gets its
// snapshot in one unary Snapshot call, as those builds sent and still expect.
// Sending never blocks the Ready loop: each peer has a bounded queue and
// messages beyond it are dropped, which Raft tolerates (it retransmits).
type Transport struct {
	clusterID string
	nodeID    uint64 // this node, as Raft names it
	service   string
	resolve   Resolver
	pool      *rpc.Pool
	log       *slog.Logger

	// Set by the replica.
	deliver         func(msgs []raftpb.Message)
	unreachable     func(to uint64)
	snapshotStatus  func(to uint64, st raft.SnapshotStatus)
	openSnapshot    func() (*outgoingSnapshot, error)
	receiveSnapshot func(meta raftpb.SnapshotMetadata) (*incomingSnapshot, error)
	forwarded       func(ctx context.Context, from, term uint64, datas [][]byte, retry bool) ([]bool, error)

	// local, if set, carries every message this transport sends instead
	// of gRPC: the crash harness's in-memory network (newLocalTransport).
	local func(msgs []raftpb.Message)

	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup
	stopC  chan struct{}
}

// newLocalTransport returns a transport for node nodeID that hands every
// message it sends, snapshots included, to send, on the sender's Raft loop;
// the receiving side is the usual one (deliver, installSnapshot). It carries
// no forwarded proposals. The crash harness (harness_test.go) builds its
// network on it, so that the test decides when each message arrives.
func newLocalTransport(clusterID string, nodeID uint64, send func(msgs []raftpb.Message)) *Transport {
	return &Transport{clusterID: clusterID, nodeID: nodeID, service: DefaultService, local: send,
		log: slog.New(slog.DiscardHandler), peers: map[uint64]*peer{}, stopC: make(chan struct{})}
}

// errLocalForward is Forward's answer on an in-memory transport.
var errLocalForward = errors.New("the in-memory Raft transport carries no forwarded proposals")

// NewTransport returns a transport for this node.
func NewTransport(clusterID string, nodeID nodeid.ID, resolve Resolver, pool *rpc.Pool, log *slog.Logger) *Transport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Transport{clusterID: clusterID, nodeID: raftID(nodeID), service: DefaultService, resolve: resolve, pool: pool, log: log,
		peers: map[uint64]*peer{}, stopC: make(chan struct{})}
}

// TransportSource returns the node's transport, or nil while the node has
// not joined a cluster yet (its gRPC server runs before it knows its
// cluster and node IDs).
type TransportSource func() *Transport

// ErrNotJoined is returned to senders while this node has no transport.
var ErrNotJoined = errors.New("this node has not joined a cluster yet")

func transportOf(srv any) (*Transport, error) {
	if t := srv.(TransportSource)(); t != nil {
		return t, nil
	}
	return nil, ErrNotJoined
}

// raftServiceDesc describes the kvnode.Raft gRPC service.
var raftServiceDesc = grpc.ServiceDesc{
	ServiceName: "kvnode.Raft",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Messages",
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			t, err := transportOf(srv)
			if err != nil {
				return err
			}
			return t.serveStream(stream)
		},
	}, {
		StreamName:    "SnapshotStream",
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			t, err := transportOf(srv)
			if err != nil {
				return err
			}
			return t.serveSnapshotStream(stream)
		},
	}},
	Methods: []grpc.MethodDesc{
		raftMethod("Propose", func(t *Transport, ctx context.Context, req *ForwardRequest) (any, error) {
			return t.serveForward(ctx, req, false)
		}),
		raftMethod("ProposeRetry", func(t *Transport, ctx context.Context, req *ForwardRequest) (any, error) {
			return t.serveForward(ctx, req, true)
		}),
		raftMethod("Snapshot", func(t *Transport, _ context.Context, b *RaftBatch) (any, error) {
			if err := t.receiveWholeSnapshot(b); err != nil {
				return nil, err
			}
			return &empty{}, nil
		}),
	},
}

// raftMethod describes a unary method of the Raft service: its handler
// decodes a Req, finds the node's transport, and calls serve through the
// server's interceptors, if it has any.
func raftMethod[Req any](name string, serve func(t *Transport, ctx context.Context, req *Req) (any, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, err
		}
		t, err := transportOf(srv)
		if err != nil {
			return nil, err
		}
		call := func(ctx context.Context, r any) (any, error) { return serve(t, ctx, r.(*Req)) }
		if interceptor == nil {
			return call(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + t.service + "/" + name}, call)
	}}
}

// serveForward appends a follower's forwarded proposals (Transport.Forward).
func (t *Transport) serveForward(ctx context.Context, req *ForwardRequest, retry bool) (any, error) {
	if req.ClusterID != t.clusterID {
		return nil, errors.Wrapf(ErrWrongCluster, "sender cluster %s, ours %s", req.ClusterID, t.clusterID)
	}
	if t.forwarded == nil {
		return nil, ErrNotJoined
	}
	acc, err := t.forwarded(ctx, req.From, req.Term, req.Datas, retry)
	if err != nil {
		return nil, err
	}
	return &ForwardResponse{Accepted: acc}, nil
}

// DefaultService is the gRPC service name of the data Raft group.
const DefaultService = "kvnode.Raft"

// RegisterRaftService adds the kvnode.Raft service to a gRPC server; src
// supplies the transport once the node has one.
func RegisterRaftService(s *grpc.Server, src TransportSource) {
	RegisterNamedRaftService(s, DefaultService, src)
}

// RegisterNamedRaftService adds a Raft service under another name, for a
// second Raft group on the same nodes (group 0): its transport must use the
// same name (Transport.SetService).
func RegisterNamedRaftService(s *grpc.Server, name string, src TransportSource) {
	desc := raftServiceDesc
	desc.ServiceName = name
	s.RegisterService(&desc, src)
}

func (t *Transport) receive(b *RaftBatch) error {
	if err := t.checkAddressed(b); err != nil {
		return err
	}
	t.deliverBatch(b)
	return nil
}

// checkAddressed refuses a batch from a node of another cluster, or one
// meant for another node.
func (t *Transport) checkAddressed(b *RaftBatch) error {
	if b.ClusterID != t.clusterID {
		return errors.Wrapf(ErrWrongCluster, "sender cluster %s, ours %s", b.ClusterID, t.clusterID)
	}
	if b.To != t.nodeID {
		return errors.Newf("Raft message for node %d reached node %d", b.To, t.nodeID)
	}
	return nil
}

// deliverBatch hands b's messages to the replica.
func (t *Transport) deliverBatch(b *RaftBatch) {
	if t.deliver != nil {
		t.deliver(b.Msgs)
	}
}

func (t *Transport) serveStream(stream grpc.ServerStream) error {
	for {
		b := new(RaftBatch)
		if err := stream.RecvMsg(b); err != nil {
			return nil // client went away; it reconnects
		}
		// A snapshot comes with its data, on a stream of its own; one
		// here has none, and Raft must not install it.
		msgs := b.Msgs[:0]
		for _, m := range b.Msgs {
			if m.Type == raftpb.MsgSnap {
				t.log.Warn("dropping a Raft snapshot sent without its data", "from", b.From)
				continue
			}
			msgs = append(msgs, m)
		}
		b.Msgs = msgs
		if err := t.receive(b); err != nil {
			return err
		}
	}
}

// Send queues messages for their destinations. It never blocks.
func (t *Transport) Send(msgs []raftpb.Message) {
	if t.local != nil {
		if len(msgs) > 0 {
			t.local(msgs)
		}
		return
	}
	for i := range msgs {
		m := msgs[i]
		if m.To == t.nodeID {
			continue
		}
		if m.Type == raftpb.MsgSnap {
			t.sendSnapshot(m)
			continue
		}
		p := t.peer(m.To)
		if p == nil {
			return
		}
		select {
		case p.queue <- m:
		default:
			// Queue full: drop. Raft resends what matters.
			if t.unreachable != nil {
				t.unreachable(m.To)
			}
		}
	}
}

func (t *Transport) peer(id uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p, ok := t.peers[id]
	if !ok {
		p = &peer{t: t, id: id, queue: make(chan raftpb.Message, 4096)}
		t.peers[id] = p
		t.wg.Add(1)
		go p.run()
	}
	return p
}

func (t *Transport) sendSnapshot(m raftpb.Message) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		outcome := raft.SnapshotFailure
		defer func() {
			if t.snapshotStatus != nil {
				t.snapshotStatus(m.To, outcome)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
		defer cancel()
		go func() {
			select {
			case <-t.stopC:
				cancel()
			case <-ctx.Done():
			}
		}()
		start := time.Now()
		index, bytes, err := t.sendSnapshotData(ctx, m)
		if err != nil {
			t.log.Warn("sending Raft snapshot failed", "to", m.To, "index", index, "err", err)
			return
		}
		t.log.Info("sent Raft snapshot", "to", m.To, "index", index, "bytes", bytes,
			"took", time.Since(start).Round(time.Millisecond))
		outcome = raft.SnapshotFinish
	}()
}

// snapshotTimeout bounds sending one snapshot (gRPC's keepalive notices a
// dead connection sooner, but not a live receiver that stopped reading).
const snapshotTimeout = 30 * time.Minute

// sendSnapshotData sends m, a MsgSnap, with the data of a snapshot of this
// node's engine taken now (snapshot.go), its metadata set to that
// snapshot's. It returns the snapshot's index and how many bytes of data it
// sent.
func (t *Transport) sendSnapshotData(ctx context.Context, m raftpb.Message) (index uint64, sent int, err error) {
	if t.openSnapshot == nil {
		return m.Snapshot.Metadata.Index, 0, ErrNotJoined
	}
	addr, ok := t.resolve(nodeID(m.To))
	if !ok {
		return m.Snapshot.Metadata.Index, 0, errors.Newf("no address known for node %d", m.To)
	}
	conn, err := t.pool.Get(addr)
	if err != nil {
		return m.Snapshot.Metadata.Index, 0, err
	}
	out, err := t.openSnapshot()
	if err != nil {
		return m.Snapshot.Metadata.Index, 0, err
	}
	defer out.close()
	m.Snapshot.Metadata = out.metadata()
	m.Snapshot.Data = nil
	sent, err = t.streamSnapshot(ctx, conn, out, m)
	if status.Code(err) == codes.Unimplemented {
		t.log.Info("the peer does not take streamed snapshots (an earlier build); sending it in one message", "to", m.To)
		sent, err = t.sendWholeSnapshot(ctx, conn, out, m)
	}
	return out.applied.Index, sent, err
}

// streamSnapshot sends m and out's data on one client stream: a header (the
// message), then the data in chunks.
func (t *Transport) streamSnapshot(ctx context.Context, conn *grpc.ClientConn, out *outgoingSnapshot, m raftpb.Message) (sent int, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(sctx, &raftServiceDesc.Streams[1], "/"+t.service+"/SnapshotStream")
	if err != nil {
		return 0, err
	}
	streamBroke := false
	send := func(msg any) error {
		err := s.SendMsg(msg)
		streamBroke = err != nil
		return err
	}
	err = send(&RaftBatch{ClusterID: t.clusterID, From: t.nodeID, To: m.To, Msgs: []raftpb.Message{m}})
	if err == nil {
		err = out.chunks(func(chunk []byte) error {
			sent += len(chunk)
			return send(&snapshotChunk{data: chunk})
		})
	}
	if err == nil {
		err = s.CloseSend()
	}
	if err != nil && !streamBroke {
		// Reading the engine failed: canceling the stream (deferred) ends
		// it unfinished, and the receiver drops what it got.
		return sent, err
	}
	// The receiver's answer; after a broken stream, its reason (for example
	// a cluster ID mismatch).
	if rerr := s.RecvMsg(&empty{}); rerr != nil {
		return sent, rerr
	}
	return sent, err
}

// sendWholeSnapshot sends m with all of out's data inside it, in one unary
// Snapshot call, as builds before streamed snapshots did and still expect;
// rpc.MaxMessageSize bounds it.
func (t *Transport) sendWholeSnapshot(ctx context.Context, conn *grpc.ClientConn, out *outgoingSnapshot, m raftpb.Message) (sent int, err error) {
	var data []byte
	if err := out.chunks(func(chunk []byte) error {
		if len(data)+len(chunk) > rpc.MaxMessageSize {
			return errors.Newf("a snapshot sent in one message is limited to %d bytes", rpc.MaxMessageSize)
		}
		data = append(data, chunk...)
		return nil
	}); err != nil {
		return 0, err
	}
	m.Snapshot.Data = data
	b := &RaftBatch{ClusterID: t.clusterID, From: t.nodeID, To: m.To, Msgs: []raftpb.Message{m}}
	if err := conn.Invoke(ctx, "/"+t.service+"/Snapshot", b, &empty{}); err != nil {
		return 0, err
	}
	return len(data), nil
}

// receiveWholeSnapshot takes a snapshot with its data inside the message
// (sendWholeSnapshot, and builds before streamed snapshots).
func (t *Transport) receiveWholeSnapshot(b *RaftBatch) error {
	var data []byte
	if len(b.Msgs) == 1 {
		data, b.Msgs[0].Snapshot.Data = b.Msgs[0].Snapshot.Data, nil
	}
	return t.installSnapshot(b, func() ([]byte, error) {
		if data == nil {
			return nil, io.EOF
		}
		chunk := data
		data = nil
		return chunk, nil
	})
}

// serveSnapshotStream receives a streamed snapshot (streamSnapshot): its
// message first, then its data in chunks.
func (t *Transport) serveSnapshotStream(stream grpc.ServerStream) error {
	hdr := new(RaftBatch)
	if err := stream.RecvMsg(hdr); err != nil {
		return err
	}
	err := t.installSnapshot(hdr, func() ([]byte, error) {
		c := new(snapshotChunk)
		if err := stream.RecvMsg(c); err != nil {
			return nil, err
		}
		return c.data, nil
	})
	if err != nil {
		return err
	}
	return stream.SendMsg(&empty{})
}

// installSnapshot checks b, which must hold one MsgSnap for this node from
// our cluster, stages the snapshot's data, read chunk by chunk from next
// until it returns io.EOF, and only then hands the message to Raft.
func (t *Transport) installSnapshot(b *RaftBatch, next func() ([]byte, error)) error {
	if err := t.checkAddressed(b); err != nil {
		return err
	}
	if len(b.Msgs) != 1 || b.Msgs[0].Type != raftpb.MsgSnap {
		return errors.New("a snapshot must come as one MsgSnap")
	}
	if t.receiveSnapshot == nil {
		return ErrNotJoined
	}
	in, err := t.receiveSnapshot(b.Msgs[0].Snapshot.Metadata)
	if err != nil {
		return err
	}
	defer in.abort()
	for {
		chunk, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := in.add(chunk); err != nil {
			return err
		}
	}
	in.stage()
	t.deliverBatch(b)
	return nil
}

// snapshotChunk is one chunk of a streamed snapshot's data.
type snapshotChunk struct{ data []byte }

// Marshal implements the rpc codec's self-marshaling interface.
func (c *snapshotChunk) Marshal() ([]byte, error) { return c.data, nil }

// Unmarshal implements the rpc codec's self-unmarshaling interface.
func (c *snapshotChunk) Unmarshal(data []byte) error {
	c.data = append([]byte(nil), data...)
	return nil
}

// SetService makes the transport talk to the Raft service registered under
// name (see RegisterNamedRaftService). Call it before the replica starts.
func (t *Transport) SetService(name string) { t.service = name }

// Close stops every peer goroutine.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	close(t.stopC)
	t.mu.Unlock()
	t.wg.Wait()
}

type peer struct {
	t     *Transport
	id    uint64
	queue chan raftpb.Message
}

func (p *peer) run() {
	defer p.t.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-p.t.stopC:
			return
		default:
		}
		err := p.stream()
		if err == nil {
			return
		}
		if p.t.unreachable != nil {
			p.t.unreachable(p.id)
		}
		// Drop what queued up while the peer was unreachable: Raft resends.
		for drained := false; !drained; {
			select {
			case <-p.queue:
			default:
				drained = true
			}
		}
		select {
		case <-p.t.stopC:
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > time.Second {
			backoff = time.Second
		}
	}
}

// A batch of messages to one peer stops growing at maxBatchMessages or once
// it holds maxBatchBytes, so it stays far below rpc.MaxMessageSize (one
// message may still be large: an append carries at least one entry, and an
// entry a whole SQL write) and a heartbeat queued behind appends waits for
// a few MiB at most.
const (
	maxBatchMessages = 256
	maxBatchBytes    = 4 << 20
)

// stream sends queued messages over one gRPC stream until it fails (error)
// or the transport closes (nil).
func (p *peer) stream() error {
	addr, ok := p.t.resolve(nodeID(p.id))
	if !ok {
		return errors.Newf("no address known for node %d", p.id)
	}
	conn, err := p.t.pool.Get(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := conn.NewStream(ctx, &raftServiceDesc.Streams[0], "/"+p.t.service+"/Messages")
	if err != nil {
		return err
	}
	for {
		var first raftpb.Message
		select {
		case <-p.t.stopC:
			_ = s.CloseSend()
			return nil
		case first = <-p.queue:
		}
		b := &RaftBatch{ClusterID: p.t.clusterID, From: p.t.nodeID, To: p.id, Msgs: []raftpb.Message{first}}
		size := first.Size()
		for more := true; more && len(b.Msgs) < maxBatchMessages && size < maxBatchBytes; {
			select {
			case m := <-p.queue:
				b.Msgs = append(b.Msgs, m)
				size += m.Size()
			default:
				more = false
			}
		}
		if err := s.SendMsg(b); err != nil {
			// The server's reason (for example a cluster ID mismatch)
			// comes back on RecvMsg.
			if rerr := s.RecvMsg(&empty{}); rerr != nil {
				err = rerr
			}
			return err
		}
	}
}
