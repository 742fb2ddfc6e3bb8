package cluster

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
)

// handedOut remembers every port this process has given to a node, so that
// two clusters of one run (tests in parallel, or a scenario that creates a
// second cluster) never get the same port.
var handedOut = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// Ports are chosen below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), never from it: a node that is killed and
// started again binds the same ports, and in between any process's outgoing
// connection could be given one of them as its source port if they came from
// that range (a roachtest scenario failed that way under load: "--listen-addr
// ... is in use" on a restart after SIGKILL). Below the range only a process
// that binds that very port can take it.
const (
	// lowestPort is the bottom of the range ports are drawn from: the
	// ports below it belong to the other packages' harnesses
	// (server/listenerutil), which run as processes of their own at the
	// same time.
	lowestPort = 24000
	// defaultEphemeralLow is Linux's default start of the ephemeral range,
	// used when /proc does not say.
	defaultEphemeralLow = 32768
)

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphemeralLow
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= lowestPort {
		return defaultEphemeralLow
	}
	return lo
}

// freeAddrs returns n distinct loopback HOST:PORT addresses below the
// ephemeral range that are free for both TCP and UDP (gossip uses both on one
// port) right now. Another process may still bind one before the node does;
// Node.Start checks again and names the port if so.
func freeAddrs(n int) ([]string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	hi := ephemeralLow() // exclusive
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 200*n {
			return nil, errors.Newf("could not find %d free loopback ports (TCP and UDP) in [%d, %d) after %d tries", n, lowestPort, hi, tries)
		}
		port := lowestPort + rand.IntN(hi-lowestPort)
		if handedOut.m[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		handedOut.m[port] = true
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
