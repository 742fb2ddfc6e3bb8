package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/group0/member"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/kv/loqrecovery"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/liveness/decommission"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/security/nodesec"
	"github.com/kvnode/kvnode/server/clockmon"
	"github.com/kvnode/kvnode/server/clustersql"
	"github.com/kvnode/kvnode/server/join"
	"github.com/kvnode/kvnode/server/schemasync"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/users"
	"github.com/kvnode/kvnode/storage"
	"github.com/kvnode/kvnode/upgradecluster"
	"github.com/kvnode/kvnode/upgrademanager"
	"github.com/kvnode/kvnode/util/stop"
)

// Server is one kvnode node.
type Server struct {
	cfg        Config
	log        *slog.Logger
	binVersion clusterversion.Version
	startedAt  time.Time

	eng  *storage.Engine
	reg  *prometheus.Registry
	pool *rpc.Pool
	sec  *nodesec.State // nil in insecure mode
	// loginLimiter throttles failed password logins (SQL and HTTP).
	loginLimiter *pgwire.LoginLimiter
	node         *nodeapi.Client // the kvnode.Node service of the other nodes, over pool
	grpcSrv      *grpc.Server
	httpSrv      *http.Server
	rpcLis       net.Listener
	sqlLis       net.Listener
	httpLis      net.Listener
	// gossipSockets is the pre-bound gossip port (Config.Listeners) until
	// gossip starts on it; guarded by mu.
	gossipSockets *gossip.Sockets

	// initC carries `kvnode init` requests to the goroutine that waits for
	// this node to either bootstrap or join.
	initC chan initReq

	mu     sync.Mutex
	ident  storage.Ident
	joined bool
	// stopping is set by Stop (under mu) when it reads the subsystems to
	// stop; a subsystem started after that stops itself (startNode).
	stopping bool

	transport atomic.Pointer[kv.Transport]
	replica   *kv.Replica
	gossip    *gossip.Gossip
	exec      *sql.Executor
	pg        *pgwire.Server

	up       chan struct{} // closed once the node serves SQL
	upOnce   sync.Once
	draining atomic.Bool
	failed   atomic.Pointer[error]

	// life holds liveness, cluster settings, draining and decommissioning
	// (lifecycle.go).
	life lifecycle
	// ver holds the active cluster version and finalization (versions.go).
	ver versionState
	// versionGossip is the state of gossiping the persisted version.
	versionGossip status.VersionGossip
	// uc is the cluster as the upgrade manager drives it (package
	// upgradecluster); upgrades is that manager (Finalize, Downgrade).
	uc       *upgradecluster.Cluster
	upgrades *upgrademanager.Manager
	// g0 is this node's part of group 0 (package group0/member).
	g0 *member.Member
	// schema propagates the pre-Raft procedure's schema changes (package
	// server/schemasync).
	schema *schemasync.Sync
	// admit admits new nodes (package server/join).
	admit *join.Admission
	// decom runs decommissioning (package liveness/decommission).
	decom *decommission.Decommissioner
	// loq is this node's part of `kvnode node recover` (package
	// kv/loqrecovery).
	loq *loqrecovery.Recovery
	// status is the node's HTTP and metrics surface (package
	// server/status).
	status *status.Status
	// engMu orders the engine's close after readers that may run on
	// goroutines Stop does not wait for (memberlist's delegates: an
	// in-flight push/pull can outlive Shutdown).
	engMu     sync.RWMutex
	engClosed bool

	// stopper runs every long-lived goroutine of the node as a named
	// task and ends them all at Stop (package util/stop).
	stopper  *stop.Stopper
	stopOnce sync.Once

	// clock is the node's clock (tests shift it) and its monitor, which
	// measures it against the other nodes' (package server/clockmon).
	clock *clockmon.Monitor
}

type initReq struct {
	done chan initResult
}

type initResult struct {
	resp *nodeapi.InitResponse
	err  error
}

// New opens the store and binds every listener. Nothing is served until
// Start.
func New(cfg Config) (_ *Server, retErr error) {
	if l := cfg.Listeners; l != nil {
		defer func() {
			if retErr != nil {
				l.Close()
			}
		}()
		if l.RPC == nil || l.SQL == nil || l.HTTP == nil || l.Gossip == nil {
			return nil, errors.AssertionFailedf("Config.Listeners needs every listener")
		}
		gaddr, err := l.Gossip.Addr()
		if err != nil {
			return nil, err
		}
		cfg.ListenAddr, cfg.SQLAddr, cfg.HTTPAddr = l.RPC.Addr().String(), l.SQL.Addr().String(), l.HTTP.Addr().String()
		cfg.GossipAddr = gaddr
	}
	cfg.setDefaults()
	bv, err := clusterversion.BinaryVersion()
	if err != nil {
		return nil, err
	}
	if cfg.Knobs.BinaryVersion != (clusterversion.Version{}) {
		bv = cfg.Knobs.BinaryVersion
	}
	if err := validateAddrs(cfg); err != nil {
		return nil, err
	}
	if err := validateAdvertise(cfg); err != nil {
		return nil, err
	}
	if err := checkSecurityMode(cfg); err != nil {
		return nil, err
	}
	if err := ValidateMaxOffset(cfg.MaxOffset, cfg.RaftTickInterval, !cfg.DisableLeaseReads); err != nil {
		return nil, err
	}
	var s *Server // set below, before anything calls isAdmin
	sec, err := loadNodeSecurity(cfg, func(ctx context.Context, user string) (bool, error) {
		if u := (nodeView{s}).Users(); u != nil {
			return u.IsAdmin(ctx, user)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	var poolTLS *tls.Config
	if sec != nil {
		poolTLS = sec.ClientTLS()
	}
	s = &Server{
		cfg: cfg, log: cfg.Logger, binVersion: bv, startedAt: time.Now(), sec: sec,
		reg: prometheus.NewRegistry(), pool: rpc.NewTLSPool(poolTLS),
		initC: make(chan initReq), up: make(chan struct{}), stopper: stop.New(cfg.Logger),
	}
	s.node = nodeapi.NewClient(s.pool)
	initLifecycle(s)
	s.clock = clockmon.New(clockmon.Config{Node: nodeView{s}, Client: s.node, Binary: bv, MaxOffset: cfg.MaxOffset,
		Interval: cfg.ClockMonitorInterval, DisableLeaseReads: cfg.DisableLeaseReads, Registry: s.reg, Log: s.log})
	defer func() {
		if retErr != nil {
			s.closeListeners()
			if s.eng != nil {
				_ = s.eng.Close()
			}
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Failed password logins, SQL and HTTP alike, per user and address.
	s.loginLimiter = pgwire.NewLoginLimiter(cfg.LoginLimits, s.reg)
	s.status = status.New(status.Config{Node: nodeView{s}, Secure: sec != nil, Registry: s.reg,
		LoginLimiter: s.loginLimiter, Log: s.log})
	s.reg.MustRegister(s.status.Collector()) // versions, upgrade, group 0
	if s.eng, err = storage.Open(cfg.Store, storage.Options{}); err != nil {
		return nil, err
	}
	s.eng.RegisterMetrics(s.reg)
	s.g0 = newGroup0(s)
	s.loq = newRecovery(s)
	s.uc = upgradecluster.New(upgradecluster.Config{Node: nodeView{s}, Group0: s.g0, Client: s.node, Log: s.log,
		Knobs: upgradecluster.Knobs{MigrationLease: cfg.Knobs.MigrationLease, MigrationBatchSize: cfg.Knobs.MigrationBatchSize,
			MigrationCheckpoint: cfg.Knobs.MigrationCheckpoint, BeforeVersionStep: cfg.Knobs.BeforeVersionStep,
			VersionStepPause: cfg.Knobs.VersionStepPause, ReportedVersion: cfg.Knobs.ReportedVersion,
			ReportedBuild: cfg.Knobs.ReportedBuild}})
	s.upgrades = s.uc.Manager()
	s.schema = schemasync.New(schemasync.Config{Node: nodeView{s}, Client: s.node, Log: s.log, Every: cfg.SchemaSyncEvery,
		EveryRound: func() { s.versionGossip.Publish(s.gossipOrNil(), s.ActiveVersion().String(), s.log) }})
	s.admit = join.New(join.Config{Node: nodeView{s}, Client: s.node, Log: s.log, BeforeAdmit: cfg.Knobs.BeforeJoinAdmit})
	s.decom = decommission.New(decommission.Config{Node: nodeView{s}, Group0: s.g0, Client: s.node, Log: s.log,
		Hold: cfg.TestingHoldDecommission, Store: cfg.Store, Stopping: errStopping,
		OnDecommissioned: func(err error) {
			s.lc().leftCluster.Store(true)
			s.draining.Store(true)
			s.failed.Store(&err)
		}})
	if l := cfg.Listeners; l != nil {
		s.rpcLis, s.sqlLis, s.httpLis, s.gossipSockets = l.RPC, l.SQL, l.HTTP, l.Gossip
		s.cfg.Listeners = nil // owned by s from here on
	} else {
		if s.rpcLis, err = listen(cfg.ListenAddr, "--listen-addr"); err != nil {
			return nil, err
		}
		if s.sqlLis, err = listen(cfg.SQLAddr, "--sql-addr"); err != nil {
			return nil, err
		}
		if s.httpLis, err = listen(cfg.HTTPAddr, "--http-addr"); err != nil {
			return nil, err
		}
		if err := checkGossipPort(cfg.GossipAddr); err != nil {
			return nil, err
		}
	}
	id, ok, err := s.eng.ReadIdent()
	if err != nil {
		return nil, err
	}
	if ok {
		if err := checkStoreVersion(id, bv); err != nil {
			return nil, err
		}
		s.ident, s.joined = id, true
		s.setActiveFromIdent(id.ClusterVersion)
	}
	return s, nil
}

func validateAddrs(cfg Config) error {
	for _, a := range []struct{ flag, v string }{
		{"--listen-addr", cfg.ListenAddr}, {"--gossip-addr", cfg.GossipAddr},
		{"--sql-addr", cfg.SQLAddr}, {"--http-addr", cfg.HTTPAddr},
	} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return errors.WithHintf(errors.Newf("invalid %s %q: %v", a.flag, a.v, err),
				"write it as HOST:PORT, for example 127.0.0.1:26257")
		}
	}
	for _, j := range cfg.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return errors.WithHintf(errors.Newf("invalid --join address %q: %v", j, err),
				"--join takes other nodes' --listen-addr values as HOST:PORT, separated by commas")
		}
	}
	seen := map[string]string{}
	for _, a := range []struct{ flag, v string }{
		{"--listen-addr", cfg.ListenAddr}, {"--gossip-addr", cfg.GossipAddr},
		{"--sql-addr", cfg.SQLAddr}, {"--http-addr", cfg.HTTPAddr},
	} {
		if strings.HasSuffix(a.v, ":0") {
			continue // any free port: cannot collide
		}
		if other, ok := seen[a.v]; ok {
			return errors.WithHintf(errors.Newf("%s and %s are both %s", other, a.flag, a.v),
				"give each of --listen-addr, --gossip-addr, --sql-addr and --http-addr its own port")
		}
		seen[a.v] = a.flag
	}
	return nil
}

// checkStoreVersion refuses a store whose persisted cluster version this
// binary cannot serve.
func checkStoreVersion(id storage.Ident, bv clusterversion.Version) error {
	if id.ClusterVersion == "" {
		return nil
	}
	v, err := clusterversion.Parse(id.ClusterVersion)
	if err != nil {
		return errors.Wrapf(err, "store has an unreadable cluster version")
	}
	minV := clusterversion.MinSupported(bv)
	if bv.Less(v) && !v.IsRelease() {
		// A finalization persisted an internal step of the next release
		// here (its fence first), and perhaps not yet on every node: the
		// operator rolling back must learn that this node cannot, and
		// which release it needs (never "release 1.1-step.1").
		rel := v.Release()
		return errors.WithHintf(errors.Newf(
			"this binary is release %s but the store's cluster version is %s: a finalization to %s persisted its fence "+
				"on this node, so this store can no longer run release %s", bv, v, rel, bv),
			"run a binary of release %s or newer on this store; the upgrade to %s cannot be rolled back on this node. "+
				"SHOW UPGRADE STATUS lists each node's persisted_version; once every node runs %s, the finalization completes "+
				"(SET CLUSTER SETTING version = '%s' finishes it at once)",
			rel, rel, rel, rel)
	}
	if bv.Less(v) {
		return errors.WithHintf(errors.Newf(
			"this binary is release %s but the store's cluster version is %s", bv, v),
			"run a binary of release %s or newer on this store", v)
	}
	if v.Less(minV) {
		return errors.WithHintf(errors.Newf(
			"this binary is release %s and serves cluster versions %s to %s, but the store's cluster version is %s",
			bv, minV, bv, v),
			"upgrade the cluster one release at a time: finish the upgrade to %s with a release %s binary first", minV, minV)
	}
	return nil
}

func listen(addr, flag string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, errors.WithHintf(errors.Newf("%s %s is in use by another process", flag, addr),
				"stop that process or choose another %s", flag)
		}
		return nil, errors.WithHintf(errors.Wrapf(err, "cannot listen on %s %s", flag, addr),
			"choose an address of this machine for %s", flag)
	}
	return l, nil
}

// checkGossipPort verifies the gossip port is free for both TCP and UDP
// before anything starts (memberlist binds it only later, once the node
// knows its ID).
func checkGossipPort(addr string) error {
	t, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.WithHintf(errors.Newf("--gossip-addr %s is not available: %v", addr, err),
			"stop the process using it or choose another --gossip-addr")
	}
	_ = t.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return errors.WithHintf(errors.Newf("--gossip-addr %s (UDP) is not available: %v", addr, err),
			"stop the process using it or choose another --gossip-addr")
	}
	return u.Close()
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.rpcLis, s.sqlLis, s.httpLis} {
		if l != nil {
			_ = l.Close()
		}
	}
	s.takeGossipSockets().Close() // not handed to gossip yet
}

// takeGossipSockets returns the pre-bound gossip sockets (nil if none, or
// if already taken): gossip takes them when it starts, closeListeners if it
// never did.
func (s *Server) takeGossipSockets() *gossip.Sockets {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gossipSockets
	s.gossipSockets = nil
	return g
}

// RPCAddr, SQLAddr, HTTPAddr return the bound addresses.
func (s *Server) RPCAddr() string  { return s.rpcLis.Addr().String() }
func (s *Server) SQLAddr() string  { return s.sqlLis.Addr().String() }
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// Up is closed once the node serves SQL.
func (s *Server) Up() <-chan struct{} { return s.up }

// NodeID returns the node's ID, 0 before it has joined.
func (s *Server) NodeID() nodeid.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident.NodeID
}

// ClusterID returns the cluster ID, "" before the node has joined.
func (s *Server) ClusterID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident.ClusterID
}

// TestingFlushStore flushes the store's memtable into sstables, for tests of
// what reads the files (the size functions estimate from them only).
func (s *Server) TestingFlushStore() error { return s.eng.DB.Flush() }

// Replica returns the node's data replica (nil before it has joined).
func (s *Server) Replica() *kv.Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replica
}

// Failed returns the error that stopped the node's start, if any, or that
// ended its membership (it was decommissioned while running).
func (s *Server) Failed() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// Start serves RPC and HTTP and starts the node: at once if the store has an
// identity, otherwise once the cluster is initialized or admits it. It
// returns without waiting for that; watch Up or Failed.
func (s *Server) Start(ctx context.Context) error {
	s.grpcSrv = rpc.NewServer(s.sec.ServerOptions()...)
	nodeapi.RegisterNodeServer(s.grpcSrv, nodeService{s})
	kv.RegisterRaftService(s.grpcSrv, s.transport.Load)
	kv.RegisterNamedRaftService(s.grpcSrv, group0.ServiceName, s.g0.Transport)
	s.httpSrv = &http.Server{Handler: s.status.Handler(), ReadHeaderTimeout: 10 * time.Second}
	httpLis := s.httpLis
	if s.sec != nil {
		httpLis = tls.NewListener(httpLis, s.sec.HTTPTLS())
	}
	// Stop ends the servers (Stop, Close) before it waits for the tasks.
	if err := s.stopper.RunAsyncTask("rpc server", func(context.Context) { _ = s.grpcSrv.Serve(s.rpcLis) }); err != nil {
		return err
	}
	if err := s.stopper.RunAsyncTask("http server", func(context.Context) { _ = s.httpSrv.Serve(httpLis) }); err != nil {
		return err
	}
	return s.stopper.RunAsyncTask("start", func(ctx context.Context) {
		if err := s.startOrJoin(ctx); err != nil {
			if errors.Is(err, errStopping) || ctx.Err() != nil {
				return
			}
			s.log.Error("node failed to start", "err", err)
			s.failed.Store(&err)
		}
	})
}

var errStopping = member.ErrStopping

// startOrJoin runs as the stopper's "start" task: ctx ends when the node
// stops.
func (s *Server) startOrJoin(ctx context.Context) error {
	s.mu.Lock()
	joined, id := s.joined, s.ident
	s.mu.Unlock()
	if joined {
		if err := s.checkPeersCluster(ctx, id); err != nil {
			return err
		}
		return s.startNode(ctx)
	}
	return s.waitForInitOrJoin(ctx)
}

// checkPeersCluster asks the --join peers for their cluster ID and refuses to
// start if one of them belongs to a different cluster than our store.
func (s *Server) checkPeersCluster(ctx context.Context, id storage.Ident) error {
	for _, addr := range s.otherJoinAddrs() {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := s.node.Hello(hctx, addr, &nodeapi.HelloRequest{})
		cancel()
		if err != nil || !resp.Bootstrapped {
			continue
		}
		if resp.ClusterID != id.ClusterID {
			return errors.WithHintf(errors.Newf(
				"store %s belongs to cluster %s, but the node at --join %s belongs to cluster %s",
				s.cfg.Store, id.ClusterID, addr, resp.ClusterID),
				"to join cluster %s, start this node with a new, empty --store; to run the old cluster, point --join at its nodes",
				resp.ClusterID)
		}
	}
	return nil
}

func (s *Server) otherJoinAddrs() []string {
	var out []string
	for _, a := range s.cfg.Join {
		if a != s.cfg.ListenAddr && a != s.RPCAddr() && a != s.AdvertisedRPCAddr() {
			out = append(out, a)
		}
	}
	return out
}

// waitForInitOrJoin runs on a node with an empty store until it either
// bootstraps the cluster (kvnode init reached this node) or a node at --join
// admits it.
func (s *Server) waitForInitOrJoin(ctx context.Context) error {
	// Waiting a few seconds is normal while the other nodes start; say
	// what we wait for (and how to fix it) once it has lasted a while.
	lastLog := time.Now()
	rec := s.localRecord(0)
	for {
		reasons := map[string]string{}
		for _, addr := range s.otherJoinAddrs() {
			// Long enough for the leader to allocate an ID and add us as a
			// learner; a retry after a timeout gets the same ID back.
			jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			resp, err := s.node.Join(jctx, addr, &nodeapi.JoinRequest{Node: rec})
			cancel()
			if err == nil {
				return s.adopt(ctx, storage.Ident{ClusterID: resp.ClusterID, NodeID: resp.NodeID, ClusterVersion: resp.ClusterVersion}, "joined")
			}
			if nodeapi.Code(err) == codes.FailedPrecondition {
				// Refused for good (for example a binary too old for the
				// cluster's version): retrying cannot help.
				return errors.Wrapf(err, "the cluster at %s refused this node", addr)
			}
			reasons[addr] = err.Error()
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			if len(s.cfg.Join) == 0 {
				s.log.Info("waiting for `kvnode init`: no --join addresses given",
					"hint", fmt.Sprintf("run `kvnode init --host=%s` to bootstrap a new cluster on this node", s.RPCAddr()))
			} else {
				var parts []string
				for a, r := range reasons {
					parts = append(parts, a+": "+r)
				}
				sort.Strings(parts)
				hint := fmt.Sprintf("if this is a new cluster, run `kvnode init --host=%s` once; otherwise check that --join lists the --listen-addr of running nodes", s.RPCAddr())
				if s.sec == nil {
					hint += "; this node runs --insecure: if the cluster is secure, it refuses the connection (the answers end in EOF or a reset) and this node needs --certs-dir with a node certificate of the cluster's CA"
				} else {
					hint += "; this node runs secure (--certs-dir): a node started --insecure does not speak TLS, and a certificate of another CA is refused (the answers name it)"
				}
				s.log.Warn("waiting to join a cluster",
					"join", strings.Join(s.cfg.Join, ","), "answers", strings.Join(parts, "; "), "hint", hint)
			}
		}
		select {
		case req := <-s.initC:
			resp, err := s.bootstrap()
			req.done <- initResult{resp, err}
			if err != nil {
				return err
			}
			return s.startNode(ctx)
		case <-time.After(time.Second):
		case <-ctx.Done():
			return errStopping
		}
	}
}

func (s *Server) localRecord(id nodeid.ID) nodeapi.NodeRecord {
	return nodeapi.NodeRecord{NodeID: id, ListenAddr: s.AdvertisedRPCAddr(), GossipAddr: s.advertisedGossipAddr(),
		SQLAddr: s.AdvertisedSQLAddr(), HTTPAddr: s.AdvertisedHTTPAddr(), BinaryVersion: s.binVersion.String()}
}

// bootstrap creates a new cluster with this node as node 1. A cluster
// bootstrapped at release 2.0 or later starts with group 0 formed (node 1
// its only member) and in use_post_raft_procedures: it has no pre-Raft
// schema to carry over, so the upgrade procedure has nothing to do.
func (s *Server) bootstrap() (*nodeapi.InitResponse, error) {
	cv := s.binVersion
	id := storage.Ident{ClusterID: newUUID(), NodeID: 1, ClusterVersion: cv.String()}
	ik, iv := storage.IdentRecord(id)
	initial := map[string][]byte{
		string(keys.NodeIDGenKey()):      binary.BigEndian.AppendUint64(nil, 1),
		string(keys.ClusterVersionKey()): []byte(id.ClusterVersion),
		string(keys.NodeKey(1)):          nodeapi.EncodeNodeRecord(s.localRecord(1)),
		// Every node that gets an ID gets a liveness record with it.
		string(liveness.Key(1)): liveness.NewRecord(1, time.Now()).Encode(),
	}
	if !cv.Less(clusterversion.V2_0.Version()) {
		f := group0.Formation{Generation: 1, Seed: 1, Reason: "bootstrap", Time: time.Now().UnixNano()}
		if err := s.g0.BootstrapAtInit(f); err != nil {
			return nil, err
		}
		initial[string(keys.Group0FormationKey())] = f.Encode()
	}
	if !cv.Less(clusterversion.V2_1TxnStamps.Version()) {
		k, v := kv.TxnsEnabledRecord()
		initial[k] = v
	}
	if !cv.Less(clusterversion.V2_1Users.Version()) {
		for k, v := range users.BootstrapRecords() {
			initial[k] = v
		}
	}
	if err := kv.Bootstrap(s.eng, 1, initial, map[string][]byte{string(ik): iv}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ident, s.joined = id, true
	s.mu.Unlock()
	s.setActiveFromIdent(id.ClusterVersion)
	s.log.Info("bootstrapped a new cluster", "cluster_id", id.ClusterID, "node_id", 1,
		"cluster_version", id.ClusterVersion)
	return &nodeapi.InitResponse{ClusterID: id.ClusterID, NodeID: 1}, nil
}

// adopt persists the identity the cluster gave us, then starts.
func (s *Server) adopt(ctx context.Context, id storage.Ident, how string) error {
	if id.ClusterVersion == "" {
		// A peer too old to say: its version is at most our binary's.
		id.ClusterVersion = s.binVersion.String()
	}
	if v, err := clusterversion.Parse(id.ClusterVersion); err != nil || !clusterversion.Supports(s.binVersion, v) {
		return errors.WithHintf(errors.Newf("this binary is release %s, which cannot run the cluster's version %s",
			s.binVersion, id.ClusterVersion), "start this node with a binary that supports cluster version %s", id.ClusterVersion)
	}
	if err := s.eng.WriteIdent(id); err != nil {
		return err
	}
	s.mu.Lock()
	s.ident, s.joined = id, true
	s.mu.Unlock()
	s.setActiveFromIdent(id.ClusterVersion)
	s.g0.JoinedFresh()
	s.log.Info(how+" cluster", "cluster_id", id.ClusterID, "node_id", id.NodeID)
	return s.startNode(ctx)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// startNode starts the replica, gossip and SQL for a node with an identity.
// ctx (the start task's) ends when the node stops.
func (s *Server) startNode(ctx context.Context) error {
	s.mu.Lock()
	id := s.ident
	s.mu.Unlock()
	log := s.log.With("node", id.NodeID)
	tr := kv.NewTransport(id.ClusterID, id.NodeID, s.resolve, s.pool, log)
	rep, err := kv.NewReplica(kv.Config{
		Engine: s.eng, NodeID: id.NodeID, Transport: tr, Logger: log,
		Metrics: kv.NewMetrics(s.reg), TickInterval: s.cfg.RaftTickInterval, LogRetain: s.cfg.RaftLogRetain,
		Promote: s.decom.AllowPromote,
		Clock:   s.clock.Clock(), MaxOffset: s.cfg.MaxOffset, LeaseReads: s.clock.LeaseReads(),
		CommandLevel: s.commandLevel,
		Release20:    s.binVersion.Less(clusterversion.V2_1.Version()),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.replica = rep
	s.mu.Unlock()
	s.transport.Store(tr)
	if err := s.g0.Load(); err != nil {
		return err
	}

	if k := s.cfg.Knobs.BeforeGossipStart; k != nil {
		k()
	}
	g, err := s.startGossip(id)
	if err != nil {
		return err
	}
	// Stop reads s.gossip once, when it sets stopping: a gossip started
	// after that read would keep its port bound after Stop returns (and a
	// restart of the node on the same address would find it in use).
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = g.Shutdown()
		return errStopping
	}
	s.gossip = g
	s.mu.Unlock()
	exec, err := sql.NewExecutor(sql.Config{
		DB: rep, Txns: rep, Local: s.eng.Local(), Peers: s.schema, BinaryVersion: s.binVersion.String(), Versions: s,
		Sizes:                 s.eng,
		NodeID:                func() nodeid.ID { return id.NodeID },
		TestingBeforeWrite:    s.cfg.Knobs.BeforeRowWrite,
		TestingAddPKHeld:      s.cfg.Knobs.AddPKHeld,
		TestingHoldTTL:        s.cfg.Knobs.SchemaHoldTTL,
		TestingIndexWriteOnly: s.cfg.Knobs.IndexWriteOnly,
		TestingCopyBatchRows:  s.cfg.Knobs.CopyBatchRows,
		TestingDDLTxnStep:     s.cfg.Knobs.DDLTxnStep,
		TestingPendingTTL:     s.cfg.Knobs.PendingTTL,
	})
	if err != nil {
		return errors.Wrap(err, "starting the SQL executor")
	}
	s.mu.Lock()
	s.exec = exec
	s.mu.Unlock()
	exec.Catalog().OnChange(func() {
		// Catalog callbacks may run under its lock; update gossip from
		// another goroutine so neither blocks the other.
		go s.schema.PublishDigest()
	})
	s.schema.PublishDigest()
	clustersql.Install(exec, nodeView{s})
	installGroup0SQL(s, exec)
	var sqlTLS *tls.Config
	if s.sec != nil {
		sqlTLS = s.sec.ServerTLS()
	}
	s.pg = pgwire.NewServer(pgwire.Config{Sessions: exec, Logger: log, Metrics: pgwire.NewMetrics(s.reg), TLS: sqlTLS, Limiter: s.loginLimiter})

	// A decommissioned node stops here; any other starts a new liveness
	// epoch (which needs the data group to answer).
	if err := s.startLiveness(ctx, rep, id.NodeID); err != nil {
		return err
	}
	// Serve SQL once the replica has caught up enough to answer a
	// linearizable read.
	if err := s.waitReplicaReady(ctx, rep); err != nil {
		return err
	}
	s.waitVoter(ctx, rep, id.NodeID)
	// A node that joined while a finalization's last step was persisted
	// takes the cluster's version before it acts on its own.
	s.catchUpVersion()
	// The node record carries this run's binary: status views and
	// finalization decisions take the older of it and gossip's, so it is
	// written before the node reports up (an upgraded node would otherwise
	// count as old for a moment after it is up).
	s.maintainNodeRecord(ctx, rep, id.NodeID)
	s.g0.Start(rep)
	// Before the first client: a node that was away (or is new) takes the
	// pre-Raft changes it missed, so it never answers from an old schema.
	s.schema.CatchUp(ctx)
	for _, t := range []struct {
		name string
		run  func(ctx context.Context)
	}{
		{"clock monitor", s.clock.Run},
		{"follow replicated version", func(context.Context) { s.followReplicatedVersion() }},
		{"sql server", func(context.Context) { _ = s.pg.Serve(s.sqlLis) }}, // until Stop closes it
		{"schema sync", s.schema.Run},
		{"auto-upgrade", func(context.Context) { s.autoUpgradeLoop() }},
		// Pending tables of transactions whose gateway stopped
		// (txn/DESIGN.md "DDL in a transaction").
		{"ddl resolver", func(ctx context.Context) {
			if iv := s.resolverInterval(); iv > 0 {
				s.exec.RunResolver(ctx, iv)
			}
		}},
	} {
		if err := s.stopper.RunAsyncTask(t.name, t.run); err != nil {
			return errStopping
		}
	}
	if err := s.startLifecycleLoops(rep, id.NodeID); err != nil {
		return err
	}
	s.upOnce.Do(func() { close(s.up) })
	log.Info("node is serving SQL", "sql_addr", s.SQLAddr(), "http_addr", s.HTTPAddr(),
		"binary_version", s.binVersion.String())
	return nil
}

func (s *Server) waitReplicaReady(ctx context.Context, rep *kv.Replica) error {
	for attempt := 0; ; attempt++ {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := rep.Get(gctx, keys.NodeIDGenKey())
		cancel()
		if err == nil {
			return nil
		}
		if attempt%6 == 5 {
			s.log.Warn("waiting for the data Raft group to answer a read (is a majority of voters up?)", "err", err)
		}
		select {
		case <-ctx.Done():
			return errStopping
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitVoter waits (bounded) until this node is a voter of the data group, or
// the group already has its maximum number of voters. A node that reports
// ready is then a full member: stopping any one node of a freshly formed
// three-node cluster keeps a majority.
func (s *Server) waitVoter(ctx context.Context, rep *kv.Replica, id nodeid.ID) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := rep.Status()
		if len(st.Voters) >= rep.MaxVoters() || slices.Contains(st.Voters, id) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.log.Warn("this node is still a learner of the data group after 30s; serving SQL anyway")
}

// maintainNodeRecord makes sure the replicated record of this node has its
// current addresses and binary (a node may restart with different ones).
// It runs once at start, before the node reports up, and retries until
// the write succeeds or the node stops.
func (s *Server) maintainNodeRecord(ctx context.Context, rep *kv.Replica, id nodeid.ID) {
	want := nodeapi.EncodeNodeRecord(s.localRecord(id))
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cur, _, err := rep.Get(wctx, keys.NodeKey(id))
		if err == nil && string(cur) != string(want) {
			err = rep.Write(wctx, []kvpb.Op{{Kind: kvpb.OpPut, Key: keys.NodeKey(id), Value: want}})
		}
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// nodeRecords returns every node record from the local replica (possibly
// slightly stale; used for addressing, not for decisions).
func (s *Server) nodeRecords() map[nodeid.ID]nodeapi.NodeRecord {
	out := map[nodeid.ID]nodeapi.NodeRecord{}
	rep := s.Replica()
	if rep == nil {
		return out
	}
	nstart, nend := keys.NodeSpan()
	kvs, err := rep.ScanLocal(nstart, nend, 0, false)
	if err != nil {
		return out
	}
	for _, e := range kvs {
		var r nodeapi.NodeRecord
		if json.Unmarshal(e.Value, &r) == nil {
			out[r.NodeID] = r
		}
	}
	return out
}

// resolve maps a node ID to its RPC address: gossip first (freshest), then
// the replicated node record.
func (s *Server) resolve(id nodeid.ID) (string, bool) {
	s.mu.Lock()
	g := s.gossip
	s.mu.Unlock()
	if g != nil {
		if m, ok := g.Member(id); ok && m.Meta.ListenAddr != "" {
			return m.Meta.ListenAddr, true
		}
	}
	rep := s.Replica()
	if rep == nil {
		return "", false
	}
	v, ok, err := rep.GetLocal(keys.NodeKey(id))
	if err != nil || !ok {
		return "", false
	}
	var r nodeapi.NodeRecord
	if json.Unmarshal(v, &r) != nil {
		return "", false
	}
	return r.ListenAddr, true
}

func (s *Server) startGossip(id storage.Ident) (*gossip.Gossip, error) {
	cfg := gossip.Config{
		BindAddr: s.cfg.GossipAddr,
		// Only when told: memberlist otherwise advertises the bound address.
		AdvertiseAddr: func() string {
			if s.cfg.AdvertiseAddr != "" && !hasPortZero(s.cfg.GossipAddr) {
				return s.advertisedGossipAddr()
			}
			return ""
		}(),
		Sockets: s.takeGossipSockets(),
		Meta: gossip.NodeMeta{
			NodeID: id.NodeID, ClusterID: id.ClusterID, BinaryVersion: s.binVersion.String(),
			ListenAddr: s.AdvertisedRPCAddr(), SQLAddr: s.AdvertisedSQLAddr(), HTTPAddr: s.AdvertisedHTTPAddr(), StartedAt: s.startedAt,
			Extra: map[string]string{status.GossipKeyClusterVersion: s.ActiveVersion().String()},
		},
		Logger: s.log.With("node", id.NodeID),
		Admit:  s.admitPeer,
	}
	if s.cfg.FastGossip {
		cfg.Tuning = gossip.FastTuning()
	}
	var g *gossip.Gossip
	var err error
	if s.sec != nil {
		g, err = s.sec.StartGossip(cfg)
	} else {
		g, err = gossip.New(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopper.RunAsyncTask("gossip join", func(ctx context.Context) { s.gossipJoinLoop(ctx, g, id.NodeID) }); err != nil {
		_ = g.Shutdown()
		return nil, errStopping
	}
	return g, nil
}

// gossipJoinLoop joins memberlist through the gossip addresses of the --join
// peers and of every known node record, retrying until at least one peer is
// reached (or there is no one else to reach).
func (s *Server) gossipJoinLoop(ctx context.Context, g *gossip.Gossip, self nodeid.ID) {
	for attempt := 0; ; attempt++ {
		addrs := map[string]bool{}
		for _, r := range s.nodeRecords() {
			if r.NodeID != self && r.GossipAddr != "" {
				addrs[r.GossipAddr] = true
			}
		}
		for _, a := range s.otherJoinAddrs() {
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			if resp, err := s.node.Hello(hctx, a, &nodeapi.HelloRequest{}); err == nil && resp.GossipAddr != "" && resp.NodeID != self {
				addrs[resp.GossipAddr] = true
			}
			cancel()
		}
		if len(addrs) > 0 {
			var list []string
			for a := range addrs {
				list = append(list, a)
			}
			if n, err := g.Join(list); err == nil && n > 0 {
				return
			} else if attempt%10 == 9 {
				s.log.Warn("gossip cannot reach any peer yet", "tried", list, "err", err)
			}
		} else if len(s.nodeRecords()) > 1 || len(s.otherJoinAddrs()) > 0 {
			// Others exist but are not reachable yet: keep trying.
		} else if attempt > 3 {
			return // a single-node cluster
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// --- RPC handlers ---

func (n nodeService) Hello(context.Context, *nodeapi.HelloRequest) (*nodeapi.HelloResponse, error) {
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return &nodeapi.HelloResponse{ClusterID: s.ident.ClusterID, NodeID: s.ident.NodeID, Bootstrapped: s.joined,
		ListenAddr: s.AdvertisedRPCAddr(), GossipAddr: s.advertisedGossipAddr(), BinaryVersion: s.binVersion.String()}, nil
}

func (n nodeService) Init(ctx context.Context, _ *nodeapi.InitRequest) (*nodeapi.InitResponse, error) {
	s := n.s
	s.mu.Lock()
	joined, id := s.joined, s.ident
	s.mu.Unlock()
	if joined {
		return nil, nodeapi.WithCode(errors.WithHint(
			errors.Newf("cluster has already been initialized (cluster %s, this is node %d)", id.ClusterID, id.NodeID),
			"`kvnode init` is run once per cluster; nothing was changed"), codes.AlreadyExists)
	}
	req := initReq{done: make(chan initResult, 1)}
	select {
	case s.initC <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopper.ShouldQuiesce():
		return nil, nodeapi.WithCode(errStopping, codes.Unavailable)
	}
	select {
	case r := <-req.done:
		if r.err != nil {
			return nil, nodeapi.WithCode(r.err, codes.Internal)
		}
		return r.resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// --- shutdown ---

// Stop drains the node and stops it: no new SQL connections, open ones
// finish their statement and are closed, Raft leadership moves away, gossip
// says goodbye, then everything closes. ctx bounds the drain.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		s.mu.Lock()
		s.stopping = true
		g, rep, pg := s.gossip, s.replica, s.pg
		s.mu.Unlock()
		s.gossipDraining(g)
		s.markLivenessDraining(ctx, time.Second)
		if pg != nil {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = pg.Drain(dctx)
			cancel()
		}
		if rep != nil {
			rep.HandOffLeadership(ctx, nil)
		}
		s.stopper.Quiesce()
		if g != nil {
			_ = g.Leave(time.Second)
			_ = g.Shutdown()
		}
		if pg != nil {
			_ = pg.Close()
		}
		if s.grpcSrv != nil {
			s.grpcSrv.Stop()
		}
		if rep != nil {
			rep.Stop()
		}
		if tr := s.transport.Load(); tr != nil {
			tr.Close()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		s.closeListeners()
		s.stopper.Stop()
		s.g0.Close() // after the loops that read it have ended
		s.pool.Close()
		s.engMu.Lock()
		s.engClosed = true
		s.engMu.Unlock()
		err = s.eng.Close()
	})
	return err
}

// gossipDraining announces the drain in gossip, waiting at most a second: it
// is a hint for peers (liveness carries the durable flag), and an update
// queued behind others (memberlist confirms each broadcast) must not hold up
// a stop.
func (s *Server) gossipDraining(g *gossip.Gossip) {
	if g == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.UpdateMeta(func(m *gossip.NodeMeta) { m.Draining = true }); err != nil {
			s.log.Debug("gossiping draining", "err", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// resolverInterval is how often the resolver looks at pending tables.
func (s *Server) resolverInterval() time.Duration {
	if s.cfg.Knobs.ResolverInterval != 0 {
		return s.cfg.Knobs.ResolverInterval
	}
	return 10 * time.Second
}

// PendingTables returns the names of the tables this node's catalog holds
// as pending (created by transactions not decided or not published yet).
func (s *Server) PendingTables() []string {
	if s.exec == nil {
		return nil
	}
	return s.exec.PendingTables()
}
