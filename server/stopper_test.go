package server_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/kvnode/kvnode/server/testcluster"
)

// TestStopLeavesNoGoroutine: every long-lived goroutine of a node is a task
// of its stopper (package util/stop), so once Stop returns none of them
// runs: a loop that ignored the node's quiesce would hold Stop up, and one
// started outside the stopper would be found here, also one blocked on a
// socket (a server still accepting). The goroutines that ran before the
// cluster started are not the node's, nor are pebble's and gRPC's own and
// memberlist's socket readers while they close.
func TestStopLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.Exec(0, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
	c.Exec(1, "INSERT INTO t VALUES (1, 'one')")
	c.StopAll()
	goleak.VerifyNone(t, append(toleratedOfNodes(), before)...)
}

// toleratedOfNodes is what outlives a stopped node without being its own:
// pebble's and gRPC's background goroutines, and memberlist's socket
// readers while their sockets close.
func toleratedOfNodes() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*tableCacheShard).releaseLoop"),
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionAsync.func1"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).packetHandler"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).streamListen"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).packetListen"),
	}
}

// tolerated is what TestMain tolerates of goroutines that outlive a test:
// those of a stopped node, and any blocked on a socket (connections the
// tests' clients left to the garbage collector).
func tolerated() []goleak.Option {
	return append(toleratedOfNodes(), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}
