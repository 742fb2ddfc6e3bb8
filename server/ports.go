package server

import (
	"fmt"
	"math/rand/v2"
	"net"

	"github.com/cockroachdb/errors"
)

// FreeLoopbackAddrs returns n distinct loopback HOST:PORT addresses, each
// free right now for TCP and UDP (gossip uses both on one port), for
// processes that start nodes on ports of their own choosing (kvnode demo,
// test harnesses). The ports come from below Linux's ephemeral range
// (32768-60999): a port taken there with :0 and released can be reused at
// once as the source port of some outgoing connection, and a node that
// later binds it (or binds it again after a restart) fails.
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
			return nil, errors.New("no free loopback ports between 10000 and 32000")
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(22000))
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
