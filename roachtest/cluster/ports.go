package cluster

import (
	"net"
	"sync"

	"github.com/cockroachdb/errors"
)

// handedOut remembers every port this process has given to a node, so that
// two clusters of one run (tests in parallel, or a scenario that creates a
// second cluster) never get the same port from the kernel's recycling.
var handedOut = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// freeAddrs returns n distinct loopback HOST:PORT addresses that are free
// for both TCP and UDP (gossip uses both on one port) right now. Another
// process may still take one before the node binds it; Node.Start checks
// again and names the port if so.
func freeAddrs(n int) ([]string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	var out []string
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n {
			return nil, errors.Newf("could not find %d free loopback ports (TCP and UDP) after %d tries", n, tries)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Wrap(err, "finding a free loopback port")
		}
		held = append(held, l) // held until we return, so the kernel does not hand it out twice
		addr := l.Addr().String()
		if handedOut.m[addr] {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		_ = u.Close()
		handedOut.m[addr] = true
		out = append(out, addr)
	}
	return out, nil
}

// portTaken reports which of the node's addresses another process holds
// now, by binding each briefly (TCP, and UDP for gossip).
func portTaken(n *Node) error {
	check := []struct{ flag, addr string }{
		{"--listen-addr", n.ListenAddr}, {"--gossip-addr", n.GossipAddr},
		{"--sql-addr", n.SQLAddr}, {"--http-addr", n.HTTPAddr},
	}
	for _, c := range check {
		l, err := net.Listen("tcp", c.addr)
		if err != nil {
			return errors.WithHint(errors.Newf("%s: port %s (%s) is taken by another process: %v", n, c.addr, c.flag, err),
				"another program took the port after roachtest chose it; run the scenario again (it picks new ports)")
		}
		_ = l.Close()
	}
	u, err := net.ListenPacket("udp", n.GossipAddr)
	if err != nil {
		return errors.WithHint(errors.Newf("%s: UDP port %s (--gossip-addr) is taken by another process: %v", n, n.GossipAddr, err),
			"another program took the port after roachtest chose it; run the scenario again (it picks new ports)")
	}
	_ = u.Close()
	return nil
}
