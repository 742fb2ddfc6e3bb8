package gossip

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

// Sockets are a gossip port bound by the caller: a TCP listener and a UDP
// socket on the same host:port, as memberlist needs. Tests bind them first
// (127.0.0.1 and a port they hold from the start) and hand them over, so no
// other process can take the port between choosing it and binding it;
// kvnode start leaves Config.Sockets nil and memberlist binds BindAddr
// itself.
type Sockets struct {
	TCP net.Listener
	UDP net.PacketConn
}

// Close closes both sockets (for a caller that never handed them to New).
func (s *Sockets) Close() {
	if s == nil {
		return
	}
	if s.TCP != nil {
		_ = s.TCP.Close()
	}
	if s.UDP != nil {
		_ = s.UDP.Close()
	}
}

// Addr returns the host:port both sockets are bound to, or an error if they
// differ (memberlist advertises one port for both).
func (s *Sockets) Addr() (string, error) {
	if s == nil || s.TCP == nil || s.UDP == nil {
		return "", errors.AssertionFailedf("gossip sockets need both a TCP listener and a UDP socket")
	}
	t, ok1 := s.TCP.Addr().(*net.TCPAddr)
	u, ok2 := s.UDP.LocalAddr().(*net.UDPAddr)
	if !ok1 || !ok2 || t.Port != u.Port || !t.IP.Equal(u.IP) {
		return "", errors.AssertionFailedf("gossip sockets are bound to %s (TCP) and %s (UDP): they must share one address",
			s.TCP.Addr(), s.UDP.LocalAddr())
	}
	return t.String(), nil
}

// boundTransport is a memberlist.Transport over sockets bound by the
// caller. memberlist.NetTransport binds its own sockets and cannot take
// bound ones; this is its receive and send paths (a TCP accept loop feeding
// StreamCh, a UDP read loop feeding PacketCh, UDP WriteTo, TCP dial) over
// the given sockets, without its multi-address and metrics support.
type boundTransport struct {
	tcp      net.Listener
	udp      net.PacketConn
	log      *slog.Logger
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

func newBoundTransport(s *Sockets, log *slog.Logger) *boundTransport {
	t := &boundTransport{
		tcp: s.TCP, udp: s.UDP, log: log,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
	}
	if u, ok := s.UDP.(*net.UDPConn); ok {
		// As NetTransport does: a large receive buffer, so bursts of
		// gossip are not dropped by the kernel.
		for size := 2 << 20; size > 0; size /= 2 {
			if u.SetReadBuffer(size) == nil {
				break
			}
		}
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop()
	return t
}

// FinalAdvertiseAddr implements memberlist.Transport: the configured
// advertise address if any, else the bound one.
func (t *boundTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, errors.Newf("failed to parse advertise address %q", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	ta := t.tcp.Addr().(*net.TCPAddr)
	return ta.IP, ta.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *boundTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *boundTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *boundTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *boundTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes both sockets and
// waits for the loops to end.
func (t *boundTransport) Shutdown() error {
	t.shutdown.Store(true)
	_ = t.tcp.Close()
	_ = t.udp.Close()
	t.wg.Wait()
	return nil
}

func (t *boundTransport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.Accept()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("accepting a gossip TCP connection", "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.streamCh <- conn
	}
}

func (t *boundTransport) readLoop() {
	defer t.wg.Done()
	for {
		buf := make([]byte, 65536)
		n, addr, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.log.Error("reading a gossip UDP packet", "err", err)
			continue
		}
		if n < 1 {
			continue
		}
		t.packetCh <- &memberlist.Packet{Buf: buf[:n], From: addr, Timestamp: ts}
	}
}
