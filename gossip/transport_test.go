package gossip

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"
)

// boundSockets binds a TCP listener on 127.0.0.1:0 and a UDP socket on the
// same port, retrying on another port if UDP's is taken.
func boundSockets(t *testing.T) *Sockets {
	t.Helper()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			_ = ln.Close()
			continue
		}
		return &Sockets{TCP: ln, UDP: pc}
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return nil
}

// TestPreBoundSockets: gossip runs on sockets bound by the caller (the test
// cluster's way to never race the machine for a port): it advertises their
// address, a peer joins it over them, and Shutdown closes them.
func TestPreBoundSockets(t *testing.T) {
	s1, s2 := boundSockets(t), boundSockets(t)
	addr1 := s1.TCP.Addr().String()
	n1 := startNode(t, 1, func(c *Config) { c.BindAddr, c.Sockets = "", s1 })
	n2 := startNode(t, 2, func(c *Config) { c.BindAddr, c.Sockets = "", s2 })
	if got := n1.Addr(); got != addr1 {
		t.Fatalf("n1 advertises %s, want its bound %s", got, addr1)
	}
	if _, err := n2.Join([]string{addr1}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{n1, n2} {
		eventually(t, "both alive", func() error {
			if err := expectState(n.Gossip, 1, StateAlive); err != nil {
				return err
			}
			return expectState(n.Gossip, 2, StateAlive)
		})
	}
	if err := n1.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n1 left at n2", func() error { return expectState(n2.Gossip, 1, StateLeft) })
	if err := n1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// The sockets are closed: the port can be bound again.
	ln, err := net.Listen("tcp", addr1)
	if err != nil {
		t.Fatalf("n1's port is still bound after Shutdown: %v", err)
	}
	_ = ln.Close()
	pc, err := net.ListenPacket("udp", addr1)
	if err != nil {
		t.Fatalf("n1's UDP port is still bound after Shutdown: %v", err)
	}
	_ = pc.Close()
}

// TestBoundTransport: packets go out and come in over the given UDP socket,
// streams over the given TCP listener, as memberlist's probes and
// push/pulls need.
func TestBoundTransport(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := newBoundTransport(boundSockets(t), log), newBoundTransport(boundSockets(t), log)
	defer func() { _ = a.Shutdown(); _ = b.Shutdown() }()
	bAddr := b.tcp.Addr().String()
	if _, err := a.WriteTo([]byte("ping"), bAddr); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.PacketCh():
		if string(p.Buf) != "ping" || p.From.String() != a.udp.LocalAddr().String() {
			t.Fatalf("got %q from %s, want \"ping\" from %s", p.Buf, p.From, a.udp.LocalAddr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no packet")
	}
	conn, err := a.DialTimeout(bAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case in := <-b.StreamCh():
		_ = in.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no stream")
	}
	if ip, port, err := b.FinalAdvertiseAddr("", 0); err != nil || net.JoinHostPort(ip.String(), strconv.Itoa(port)) != bAddr {
		t.Fatalf("advertises %s:%d (%v), want %s", ip, port, err, bAddr)
	}
}

func TestPreBoundSocketsMustShareAnAddress(t *testing.T) {
	s1, s2 := boundSockets(t), boundSockets(t)
	defer s2.Close()
	cfg := testConfig(1, &logSink{t: t})
	cfg.Sockets = &Sockets{TCP: s1.TCP, UDP: s2.UDP}
	if g, err := New(cfg); err == nil {
		_ = g.Shutdown()
		t.Fatal("gossip started on a TCP and a UDP socket of different ports")
	}
	_ = s1.UDP.Close()
}
