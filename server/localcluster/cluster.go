package localcluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/security"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/listenerutil"
)

// Node is one in-process node of the cluster.
type Node struct {
	ID      nodeid.ID // node ID, once the node has joined
	Config  server.Config
	Server  *server.Server // nil while stopped
	Release clusterversion.Version
}

// URL is the node's PostgreSQL connection URL for root: plaintext, or in a
// secure cluster TLS checked against the cluster's CA, with root's client
// certificate.
func (n *Node) URL() string {
	if d := n.Config.CertsDir; d != "" {
		return "postgresql://root@" + n.Config.SQLAddr + "/defaultdb?connect_timeout=5&sslmode=verify-full" +
			"&sslrootcert=" + filepath.Join(d, security.CACertFile) +
			"&sslcert=" + filepath.Join(d, security.ClientCertFile(security.RootUser)) +
			"&sslkey=" + filepath.Join(d, security.ClientKeyFile(security.RootUser))
	}
	return "postgresql://root@" + n.Config.SQLAddr + "/defaultdb?sslmode=disable&connect_timeout=5"
}

// Cluster runs the nodes.
type Cluster struct {
	// Dir holds the nodes' stores; Close deletes it.
	Dir string
	// Binary is this binary's release: a node started as it runs
	// without the BinaryVersion knob.
	Binary clusterversion.Version
	// Nodes are ordered by node ID once started.
	Nodes []*Node
	// CertsDir is the certificates directory of a secure cluster (under
	// Dir: a CA, one node certificate for 127.0.0.1 and localhost, root's
	// client certificate); empty for an insecure one.
	CertsDir string
}

// NewSecure is New for a secure cluster: it creates a CA (its key stays in
// the temporary directory, deleted with it), a node certificate that every
// node shares (127.0.0.1 and localhost) and root's client certificate, and
// starts every node with --certs-dir.
func NewSecure(n int, log *slog.Logger, autoUpgradeInterval time.Duration) (*Cluster, error) {
	c, err := New(n, log, autoUpgradeInterval)
	if err != nil {
		return nil, err
	}
	o := security.Options{CertsDir: filepath.Join(c.Dir, "certs"), CAKey: filepath.Join(c.Dir, "ca.key")}
	if err := security.CreateCA(o); err == nil {
		if err = security.CreateNode(o, []string{"127.0.0.1", "localhost"}); err == nil {
			err = security.CreateClient(o, security.RootUser)
		}
		if err != nil {
			c.Close()
			return nil, errors.Wrap(err, "creating the demo's certificates")
		}
	} else {
		c.Close()
		return nil, errors.Wrap(err, "creating the demo's CA")
	}
	c.CertsDir = o.CertsDir
	for _, nd := range c.Nodes {
		nd.Config.Insecure, nd.Config.CertsDir = false, o.CertsDir
	}
	return c, nil
}

// New prepares n nodes (none started) on a new temporary directory, each
// node joining the others; they run insecure. Every node's ports are bound
// here (listenerutil.ListenLoopback) and handed to its first server as
// listeners, so no port is released between being chosen and being served;
// a restarted node binds its own addresses again, which its stopped server
// released (Stop returns once every socket is closed).
func New(n int, log *slog.Logger, autoUpgradeInterval time.Duration) (_ *Cluster, retErr error) {
	dir, err := os.MkdirTemp("", "kvnode-demo-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Binary: clusterversion.MustBinaryVersion()}
	defer func() {
		if retErr != nil {
			c.Close()
		}
	}()
	var join []string
	for i := 0; i < n; i++ {
		lis, err := listenerutil.ListenLoopback()
		if err != nil {
			return nil, err
		}
		gossip, err := lis.Gossip.Addr()
		if err != nil {
			lis.Close()
			return nil, err
		}
		join = append(join, lis.RPC.Addr().String())
		c.Nodes = append(c.Nodes, &Node{Config: server.Config{
			Store: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), ListenAddr: lis.RPC.Addr().String(), GossipAddr: gossip,
			SQLAddr: lis.SQL.Addr().String(), HTTPAddr: lis.HTTP.Addr().String(), Listeners: lis,
			Logger: log.With("demo_node", i+1), AutoUpgradeInterval: autoUpgradeInterval,
			Insecure: true, // NewSecure makes it secure
		}})
	}
	for _, nd := range c.Nodes {
		nd.Config.Join = join
	}
	return c, nil
}

// StartAll starts every node as release rel, initializes the cluster through
// the first and waits until every node serves SQL; then orders the nodes by
// node ID, so that "node N" is node ID N everywhere.
func (c *Cluster) StartAll(ctx context.Context, rel clusterversion.Version) error {
	for _, nd := range c.Nodes {
		if err := c.Start(ctx, nd, rel); err != nil {
			return err
		}
	}
	ictx, cancel := context.WithTimeout(nodeapi.WithTLS(ctx, c.Nodes[0].Server.ClientTLS()), 30*time.Second)
	defer cancel()
	if _, err := nodeapi.InitCluster(ictx, c.Nodes[0].Server.RPCAddr()); err != nil {
		return err
	}
	for i, nd := range c.Nodes {
		if err := c.WaitUp(ctx, nd, 60*time.Second); err != nil {
			return errors.Wrapf(err, "demo node %d", i+1)
		}
		nd.ID = nd.Server.NodeID()
	}
	sort.SliceStable(c.Nodes, func(i, j int) bool { return c.Nodes[i].ID < c.Nodes[j].ID })
	return nil
}

// Start creates and starts nd's server as release rel (this binary's own
// release, or an older one through the BinaryVersion knob). It does not wait
// for the node to serve SQL.
func (c *Cluster) Start(ctx context.Context, nd *Node, rel clusterversion.Version) error {
	cfg := nd.Config
	cfg.Knobs = server.Knobs{}
	if rel != c.Binary {
		cfg.Knobs.BinaryVersion = rel
	}
	// The first start serves on the listeners New bound (server.New takes
	// them over, even when it fails); a restart binds the addresses its
	// stopped server released.
	nd.Config.Listeners = nil
	s, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	nd.Server, nd.Release = s, rel
	return nil
}

// WaitUp waits until nd serves SQL; if its start fails (the server refused
// to run), it stops the server and returns the server's error.
func (c *Cluster) WaitUp(ctx context.Context, nd *Node, timeout time.Duration) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case <-nd.Server.Up():
			return nil
		case <-tick.C:
			if err := nd.Server.Failed(); err != nil {
				c.Stop(nd)
				return err
			}
		case <-tctx.Done():
			err := errors.Newf("did not serve SQL within %s (start error: %v)", timeout, nd.Server.Failed())
			c.Stop(nd)
			return err
		}
	}
}

// Stop stops nd's server (Stop drains it first), if it runs.
func (c *Cluster) Stop(nd *Node) {
	if nd.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = nd.Server.Stop(ctx)
	nd.Server = nil
}

// Close stops every node, closes the listeners of those never started,
// and deletes the stores.
func (c *Cluster) Close() {
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		c.Stop(c.Nodes[i])
		if l := c.Nodes[i].Config.Listeners; l != nil {
			l.Close()
			c.Nodes[i].Config.Listeners = nil
		}
	}
	_ = os.RemoveAll(c.Dir)
}
