package nodeapi

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/rpc"
)

var errRefused = errors.New("refused by the test")

func TestErrorRoundTrip(t *testing.T) {
	ctx := context.Background()
	orig := WithCode(errors.WithHint(errors.Wrapf(errRefused, "node %d", 3), "do the thing"), codes.FailedPrecondition)

	wire := ToStatus(ctx, orig)
	st, ok := status.FromError(wire)
	if !ok || st.Code() != codes.FailedPrecondition || st.Message() != "node 3: refused by the test" {
		t.Fatalf("status: %v %v", st.Code(), st.Message())
	}
	got := FromStatus(ctx, wire)
	check := func(what string, err error, msg string, hints ...string) {
		t.Helper()
		if err.Error() != msg {
			t.Errorf("%s: message %q, want %q", what, err.Error(), msg)
		}
		if !errors.Is(err, errRefused) {
			t.Errorf("%s: errors.Is(errRefused) is false", what)
		}
		if h := errors.GetAllHints(err); strings.Join(h, "|") != strings.Join(hints, "|") {
			t.Errorf("%s: hints %q, want %q", what, h, hints)
		}
		if c := Code(err); c != codes.FailedPrecondition {
			t.Errorf("%s: code %v", what, c)
		}
		if c := status.Code(err); c != codes.FailedPrecondition {
			t.Errorf("%s: grpc status.Code %v", what, c)
		}
	}
	check("one hop", got, "node 3: refused by the test", "do the thing")

	// A second hop: the forwarding node adds context and a hint of its own.
	fwd := errors.WithHint(errors.Wrap(got, "through node 1"), "or ask another node")
	got2 := FromStatus(ctx, ToStatus(ctx, fwd))
	check("two hops", got2, "through node 1: node 3: refused by the test", "do the thing", "or ask another node")
	// And a third, unchanged.
	check("three hops", FromStatus(ctx, ToStatus(ctx, got2)), "through node 1: node 3: refused by the test", "do the thing", "or ask another node")
}

func TestErrorCodes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{errors.New("plain"), codes.Unknown},
		{WithCode(errors.New("x"), codes.Unavailable), codes.Unavailable},
		{errors.Wrap(context.DeadlineExceeded, "waiting"), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.Unimplemented, "no such method"), codes.Unimplemented},
	} {
		got := FromStatus(ctx, ToStatus(ctx, tc.err))
		if Code(got) != tc.want || status.Code(ToStatus(ctx, tc.err)) != tc.want {
			t.Errorf("%v: code %v, want %v", tc.err, Code(got), tc.want)
		}
		if got.Error() != tc.err.Error() && !strings.Contains(tc.err.Error(), got.Error()) {
			t.Errorf("%v: message %q", tc.err, got.Error())
		}
	}
	if ToStatus(ctx, nil) != nil || FromStatus(ctx, nil) != nil || Code(nil) != codes.OK {
		t.Error("nil is not kept")
	}
	plain := errors.New("not from gRPC")
	if FromStatus(ctx, plain) != plain {
		t.Error("an error that is no status was changed")
	}
}

// TestLegacyStatus: a status without an encoded error (gRPC's own, or a
// node of a release that sent hints as text) keeps its code, and "HINT:"
// lines become hints.
func TestLegacyStatus(t *testing.T) {
	ctx := context.Background()
	err := FromStatus(ctx, status.Error(codes.FailedPrecondition, "node 2 is decommissioned\nHINT: ask another node\nHINT: or wait"))
	if err.Error() != "node 2 is decommissioned" || Code(err) != codes.FailedPrecondition ||
		strings.Join(errors.GetAllHints(err), "|") != "ask another node|or wait" {
		t.Errorf("got %q %v %q", err, Code(err), errors.GetAllHints(err))
	}
	err = FromStatus(ctx, status.Error(codes.Unavailable, "connection error: desc = dial tcp: connection refused"))
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || st.Message() != "connection error: desc = dial tcp: connection refused" {
		t.Errorf("got %v %q", st.Code(), st.Message())
	}
}

// hopServer is a NodeServer whose Hello either refuses (the node that
// decides) or forwards to next (a node in between).
type hopServer struct {
	NodeServer // nil: only Hello is served
	next       string
	client     *Client
}

func (h *hopServer) Hello(ctx context.Context, req *HelloRequest) (*HelloResponse, error) {
	if h.next == "" {
		return nil, WithCode(errors.WithHint(errors.Wrap(errRefused, "node 3"), "fix node 3"), codes.FailedPrecondition)
	}
	resp, err := h.client.Hello(ctx, h.next, req)
	if err != nil {
		return nil, errors.Wrapf(err, "forwarded to %s", "node 3")
	}
	return resp, nil
}

// TestErrorsOverGRPC: a refusal made on "node 3" reaches a caller through
// "node 1" over real gRPC connections, with its sentinel, hint and code.
func TestErrorsOverGRPC(t *testing.T) {
	pool := rpc.NewPool()
	defer pool.Close()
	serve := func(h *hopServer) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := rpc.NewServer()
		RegisterNodeServer(s, h)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		return lis.Addr().String()
	}
	n3 := serve(&hopServer{})
	n1 := serve(&hopServer{next: n3, client: NewClient(pool)})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient(pool).Hello(ctx, n1, &HelloRequest{})
	if err == nil || err.Error() != "forwarded to node 3: node 3: refused by the test" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, errRefused) || Code(err) != codes.FailedPrecondition ||
		strings.Join(errors.GetAllHints(err), "|") != "fix node 3" {
		t.Errorf("errors.Is %v, code %v, hints %q", errors.Is(err, errRefused), Code(err), errors.GetAllHints(err))
	}

	// The CLI's error: the remote error whole, not "cannot reach".
	if cerr := clientError(ctx, n1, err); cerr.Error() != err.Error() || len(errors.GetAllHints(cerr)) != 1 {
		t.Errorf("clientError: %v %q", cerr, errors.GetAllHints(cerr))
	}
	// A node that is not there is "cannot reach", with its hint.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	_ = dead.Close()
	_, err = NewClient(pool).Hello(ctx, addr, &HelloRequest{})
	if cerr := clientError(ctx, addr, err); !strings.HasPrefix(cerr.Error(), "cannot reach a kvnode node at "+addr) ||
		len(errors.GetAllHints(cerr)) != 1 {
		t.Errorf("clientError of a dead address: %v", cerr)
	}
}
