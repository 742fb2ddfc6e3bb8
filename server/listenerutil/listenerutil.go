package listenerutil

import (
	"fmt"
	"math/rand/v2"
	"net"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/server"
)

// The test harnesses of different packages run as processes of their own
// at the same time (go test runs packages in parallel), and each draws
// ports at random below the ephemeral range. Each kind draws from a range
// of its own, so that one harness never picks a port another process has
// taken (or is about to take) for a node that starts later: in-process
// nodes (ListenLoopback) from [10000, 17000), nodes started as processes
// (FreeLoopbackAddrs) from [17000, 24000); roachtest's clusters use
// [24000, the ephemeral range) (roachtest/cluster/ports.go). A CI run
// failed once on a roachtest node whose port, chosen at the cluster's
// creation, another package's test had bound before the node started.
const (
	inProcessPorts = 10000
	processPorts   = 17000
	portsPerUse    = 7000
)

// FreeLoopbackAddrs returns n distinct loopback HOST:PORT addresses, each
// free right now for TCP and UDP (gossip uses both on one port), for
// harnesses that start nodes as processes on ports of their own choosing
// (cmd/kvnode's end-to-end tests). The ports come from below Linux's
// ephemeral range (32768-60999): a port taken there with :0 and released
// can be reused at once as the source port of some outgoing connection,
// and a node that later binds it (or binds it again after a restart)
// fails.
func FreeLoopbackAddrs(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			return nil, errors.Newf("no free loopback ports between %d and %d", processPorts, processPorts+portsPerUse)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", processPorts+rand.IntN(portsPerUse))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			_ = l.Close()
			continue
		}
		_ = u.Close()
		ls = append(ls, l) // held until all n are chosen, so they differ
		out = append(out, addr)
	}
	return out, nil
}

// ListenLoopback binds a node's four ports on 127.0.0.1 and keeps them
// bound, for test harnesses that hand them to server.New
// (server.Config.Listeners): no
// port is ever released between being chosen and being served, so nothing
// else on the machine can take it. The ports come from below Linux's
// ephemeral range, as FreeLoopbackAddrs explains, so that a node that is
// stopped and restarted can bind its own port again: a port the kernel
// hands out for :0 could meanwhile become the source port of an outgoing
// connection. A port that is taken is skipped; nothing is retried on a port
// once chosen.
func ListenLoopback() (_ *server.Listeners, retErr error) {
	l := &server.Listeners{}
	defer func() {
		if retErr != nil {
			l.Close()
		}
	}()
	for tries := 0; l.HTTP == nil; tries++ {
		if tries > 10000 {
			return nil, errors.Newf("no free loopback ports between %d and %d", inProcessPorts, inProcessPorts+portsPerUse)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", inProcessPorts+rand.IntN(portsPerUse))
		t, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		switch {
		case l.RPC == nil:
			l.RPC = t
		case l.Gossip == nil:
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				_ = t.Close()
				continue
			}
			l.Gossip = &gossip.Sockets{TCP: t, UDP: u}
		case l.SQL == nil:
			l.SQL = t
		default:
			l.HTTP = t
		}
	}
	return l, nil
}
