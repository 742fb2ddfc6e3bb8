package server

import (
	"net"

	"github.com/kvnode/kvnode/gossip"
)

// Listeners are a node's sockets bound before the node is built, handed to
// New through Config.Listeners (package server/listenerutil binds them on
// loopback): RPC, SQL and HTTP listeners and the gossip
// port (TCP and UDP on one port).
type Listeners struct {
	RPC, SQL, HTTP net.Listener
	Gossip         *gossip.Sockets
}

// Close closes every socket (for a caller that never handed them to New).
func (l *Listeners) Close() {
	if l == nil {
		return
	}
	for _, ln := range []net.Listener{l.RPC, l.SQL, l.HTTP} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	l.Gossip.Close()
}
