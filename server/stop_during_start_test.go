package server_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kvnode/kvnode/server/testcluster"
	"github.com/kvnode/kvnode/testutil"
)

// TestStopDuringStartReleasesGossipPort: a node stopped while it starts
// (here paused just before it starts gossip) releases its gossip port by
// the time Stop returns, so it can be restarted on the same addresses at
// once. Stop used to read the node's gossip once, before gossip existed,
// and the gossip started afterwards kept the port: the restart found its
// address "in use" (which tests used to retry).
func TestStopDuringStartReleasesGossipPort(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	c.StopNode(0)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.Nodes[0].Config.Knobs.BeforeGossipStart = func() {
		once.Do(func() { close(reached) })
		<-release
	}
	c.StartNode(0)
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted node never reached the start of gossip")
	}
	s := c.Nodes[0].Server
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	// Stop closes the node's listeners after it has looked at its
	// subsystems, and then waits for the paused start: let the start go on
	// once the HTTP port is closed.
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", c.Nodes[0].Config.HTTPAddr, time.Second)
		if err == nil {
			_ = conn.Close()
			return errors.New("the node still listens")
		}
		return nil
	})
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return")
	}
	c.Nodes[0].Server = nil
	addr := c.Nodes[0].Config.GossipAddr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the stopped node's gossip port is still bound (TCP): %v", err)
	}
	_ = ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the stopped node's gossip port is still bound (UDP): %v", err)
	}
	_ = pc.Close()
	// And the node restarts on its addresses at once.
	c.Nodes[0].Config.Knobs.BeforeGossipStart = nil
	c.StartNode(0)
	c.WaitUp(0)
}
