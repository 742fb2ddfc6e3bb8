package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/mixedversion"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// Secure mode (issue 21) at the process level: the scenarios make the
// cluster secure (cluster.MakeSecure: a CA, the gossip key, a certificate
// per node and root's, made with `kvnode cert`) before anything starts, so
// every node runs --certs-dir, the workload and every check speak SQL with
// sslmode=verify-full and root's certificate, the status pages are read
// over HTTPS with it, and the CLI runs with --certs-dir.
func registerSecure(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "secure/cert-rotation",
		Description: "a secure cluster under the workload: new node certificates (same CA), then a new CA added to every ca.crt, " +
			"node and client certificates reissued by it, the old CA removed, each followed by SIGHUP one node at a time; " +
			"every new connection (a prober, the workload, HTTPS, the CLI) keeps working, the old client certificate is refused " +
			"at the end, and no acknowledged write is lost",
		Suite: registry.Short, Nodes: 3,
		Plan: certRotationPlan,
	})
	r.Add(registry.Spec{
		Name: "secure/gossip-key-rotation",
		Description: "a secure cluster under the workload rotates its gossip key with `kvnode cert rotate-gossip-key` (add, use, remove), " +
			"each step copied to every node and SIGHUPed one node at a time; after each step a restarted node's new start time " +
			"reaches every other node through gossip, and no node ever refuses gossip",
		Suite: registry.Short, Nodes: 3,
		Plan: gossipKeyRotationPlan,
	})
	r.Add(registry.Spec{
		Name: "secure/rolling-upgrade",
		Description: "a seeded rolling upgrade from the release before 2.1 to 2.1 of a secure cluster (certificates only until 2.1), " +
			"maybe rolled back, with mixed-version steps and the workload; after finalization a user created with a password " +
			"logs in with SCRAM over verify-full TLS, is refused a table until GRANT, and a wrong password is refused with 28P01",
		Suite: registry.Long, Nodes: 3, Timeout: 20 * time.Minute,
		Plan: secureUpgradePlan,
	})
}

// makeSecure is the first step of a secure scenario.
func makeSecure() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		return e.Cluster.MakeSecure(ctx, bin)
	}
}

func secureUpgradePlan(p registry.PlanParams) (*registry.Plan, error) {
	rels := clusterversion.Releases()
	from, to := rels[len(rels)-2].String(), rels[len(rels)-1].String()
	mp, err := mixedversion.NewUpgradePlan(p.Seed, mixedversion.UpgradeOptions{
		Nodes: p.Nodes, Path: []string{from, to}, Rollback: true, Versions: mixedversion.Required,
	})
	if err != nil {
		return nil, err
	}
	sub := mixedversion.Compile(mp, &steps.Scenario{})
	plan := &registry.Plan{Header: append([]string{fmt.Sprintf("secure mode; %s -> %s", from, to)}, sub.Header...)}
	plan.Add("make the cluster secure: CA, gossip key, node and root certificates (kvnode cert)", makeSecure())
	plan.Steps = append(plan.Steps, sub.Steps...)
	via := 1 + p.Rand().IntN(p.Nodes)
	plan.Addf(passwordLogins(via), "through n%d: CREATE USER with a password; it logs in with SCRAM through every node "+
		"(verify-full, no certificate), is refused rt_reg with 42501 until GRANT SELECT, and a wrong password gets 28P01", via)
	return plan, nil
}

// passwordLogins checks what 2.1 brings to a secure cluster: password
// users (SCRAM) and privileges.
func passwordLogins(via int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		if err := n.Exec(ctx, "CREATE USER rt_alice WITH PASSWORD 'rt-secret-1'"); err != nil {
			return err
		}
		ca := filepath.Join(e.Cluster.ClientCertsDir(), "ca.crt")
		url := func(m *cluster.Node, pw string) string {
			return fmt.Sprintf("postgresql://rt_alice:%s@%s/defaultdb?sslmode=verify-full&sslrootcert=%s&connect_timeout=5", pw, m.SQLAddr, ca)
		}
		query := func(m *cluster.Node, pw, stmt string) error {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			conn, err := pgx.Connect(cctx, url(m, pw))
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(cctx, stmt)
			return err
		}
		for _, m := range e.Cluster.Running() {
			// Users are cached for 500 ms on each node.
			if err := steps.Eventually(ctx, 30*time.Second, func() error { return query(m, "rt-secret-1", "SELECT 1") }); err != nil {
				return errors.Wrapf(err, "rt_alice's password login through %s", m)
			}
			if err := query(m, "rt-secret-1", "SELECT count(*) FROM rt_reg"); cluster.SQLState(err) != "42501" {
				return errors.Newf("rt_alice read rt_reg through %s without a GRANT: %v (want 42501)", m, err)
			}
			if err := query(m, "wrong", "SELECT 1"); cluster.SQLState(err) != "28P01" {
				return errors.Newf("a wrong password through %s: %v (want 28P01)", m, err)
			}
		}
		if err := n.ExecIdempotent(ctx, "GRANT SELECT ON TABLE rt_reg TO rt_alice"); err != nil {
			return err
		}
		for _, m := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 30*time.Second, func() error {
				return query(m, "rt-secret-1", "SELECT count(*) FROM rt_reg")
			}); err != nil {
				return errors.Wrapf(err, "rt_alice reading rt_reg through %s after GRANT SELECT", m)
			}
		}
		e.Logf("rt_alice: SCRAM login, 42501 before GRANT, reads after it, 28P01 with a wrong password, through every node")
		return nil
	}
}

// prober opens a new connection (a full TLS handshake with the client
// certificate of the moment) to each node in turn and runs SELECT 1, until
// stopped; every failure is kept.
type prober struct {
	// files is held (shared) while a connection reads the client's key
	// and certificate, and exclusively while the test replaces them: the
	// pair is two files, and a client reading between the two copies
	// would find a key that does not match its certificate, a race of
	// the test's own file writes, not the server's doing.
	files sync.RWMutex
	stop  chan struct{}
	wg    sync.WaitGroup
	ok    atomic.Int64
	mu    sync.Mutex
	fails []string
}

func startProber(c *cluster.Cluster) *prober {
	p := &prober{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		nodes := c.Nodes()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := nodes[i%len(nodes)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			p.files.RLock()
			conn, err := pgx.Connect(ctx, n.URL())
			p.files.RUnlock()
			if err == nil {
				_, err = conn.Exec(ctx, "SELECT 1")
				_ = conn.Close(context.Background())
			}
			cancel()
			if err != nil {
				p.mu.Lock()
				p.fails = append(p.fails, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), n, err))
				p.mu.Unlock()
				continue
			}
			p.ok.Add(1)
		}
	}()
	return p
}

func (p *prober) close() (ok int64, fails []string) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok.Load(), append([]string(nil), p.fails...)
}

// servedCert is the certificate node n's HTTPS port presents now (the same
// configuration serves SQL and RPC).
func servedCert(n *cluster.Node) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.HTTPAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// fileCert is the first certificate of a PEM file.
func fileCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.Newf("%s holds no PEM block", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// countInLog counts the lines of n's log that contain s.
func countInLog(n *cluster.Node, s string) int {
	b, _ := os.ReadFile(n.LogPath)
	return strings.Count(string(b), s)
}

const (
	reloadedLine     = "reloaded the certificates"
	reloadFailedLine = "reloading the certificates failed"
)

// reloadAll sends SIGHUP to each node in turn and waits until it logs the
// reload and serves node.crt of its directory, then for progress more
// acknowledged writes, so that the cluster runs for a while in each mix of
// old and new certificates.
func reloadAll(sc *steps.Scenario, progress int64) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			before := countInLog(n, reloadedLine)
			if err := n.Reload(); err != nil {
				return err
			}
			want, err := fileCert(filepath.Join(n.CertsDir(), "node.crt"))
			if err != nil {
				return err
			}
			if err := steps.Eventually(ctx, 20*time.Second, func() error {
				if countInLog(n, reloadFailedLine) > 0 {
					return steps.Permanent(errors.Newf("%s logged %q:\n%s", n, reloadFailedLine, n.LogTail(10)))
				}
				if countInLog(n, reloadedLine) <= before {
					return errors.Newf("%s has not logged %q yet", n, reloadedLine)
				}
				got, err := servedCert(n)
				if err != nil {
					return err
				}
				if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
					return errors.Newf("%s serves serial %x, its node.crt is %x", n, got.SerialNumber, want.SerialNumber)
				}
				return nil
			}); err != nil {
				return err
			}
			sc.Note(e, "%s reloaded its certificates (serial %x)", n, want.SerialNumber)
			if sc.Workload != nil {
				if err := sc.Workload.WaitProgress(ctx, progress, 90*time.Second); err != nil {
					return errors.Wrapf(err, "after SIGHUP of %s", n)
				}
			}
		}
		return nil
	}
}

func certRotationPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	var prb *prober
	var caKey1, caKey2, oldClient, ca2Dir string
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d secure nodes on the default binary; certificates and then the CA rotated under load", p.Nodes)}}
	plan.Add("make the cluster secure: CA, gossip key, node and root certificates (kvnode cert)", makeSecure())
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d secure nodes, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node, and a prober that opens a new verify-full connection every 20ms", func(ctx context.Context, e *registry.Env) error {
		if err := sc.StartWorkload()(ctx, e); err != nil {
			return err
		}
		prb = startProber(e.Cluster)
		e.Defer(func() { prb.close() })
		d := e.Cluster.Dir()
		caKey1 = filepath.Join(e.Cluster.CAKeyDir(), "ca.key")
		caKey2 = filepath.Join(e.Cluster.CAKeyDir(), "ca2.key")
		oldClient = filepath.Join(d, "certs", "old-client")
		ca2Dir = filepath.Join(d, "certs", "ca2")
		return nil
	})
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))

	plan.Add("new node certificates from the same CA (kvnode cert create-node --overwrite) in every node's directory", func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		for _, n := range e.Cluster.Nodes() {
			if _, err := e.Cluster.CertCLI(ctx, bin, "create-node", "localhost", "127.0.0.1", "--certs-dir="+n.CertsDir(), "--ca-key="+caKey1, "--overwrite"); err != nil {
				return err
			}
		}
		return nil
	})
	plan.Add("SIGHUP each node in turn: it logs the reload and serves its new certificate; 10 writes acknowledged after each", reloadAll(sc, 10))

	plan.Add("a new CA (its key kept apart), added to every node's and the client's ca.crt beside the old one", func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		if _, err := e.Cluster.CertCLI(ctx, bin, "create-ca", "--certs-dir="+ca2Dir, "--ca-key="+caKey2); err != nil {
			return err
		}
		for _, n := range e.Cluster.Nodes() {
			if err := cluster.AppendFile(filepath.Join(ca2Dir, "ca.crt"), filepath.Join(n.CertsDir(), "ca.crt")); err != nil {
				return err
			}
		}
		return cluster.AppendFile(filepath.Join(ca2Dir, "ca.crt"), filepath.Join(e.Cluster.ClientCertsDir(), "ca.crt"))
	})
	plan.Add("SIGHUP each node in turn (both CAs trusted now); 10 writes acknowledged after each", reloadAll(sc, 10))
	plan.Add("node certificates signed by the new CA (create-node --ca-key=<new key> --overwrite) in every node's directory", func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		for _, n := range e.Cluster.Nodes() {
			if _, err := e.Cluster.CertCLI(ctx, bin, "create-node", "localhost", "127.0.0.1", "--certs-dir="+n.CertsDir(), "--ca-key="+caKey2, "--overwrite"); err != nil {
				return err
			}
		}
		return nil
	})
	plan.Add("SIGHUP each node in turn: each serves a certificate of the new CA while the others still have the old one's; 10 writes after each", reloadAll(sc, 10))
	plan.Add("root's client certificate reissued by the new CA (the old one kept aside), swapped in by rename", func(ctx context.Context, e *registry.Env) error {
		bin, err := e.Binary(ctx, cluster.DefaultRelease)
		if err != nil {
			return err
		}
		client := e.Cluster.ClientCertsDir()
		staging := filepath.Join(e.Cluster.Dir(), "certs", "client-new")
		for _, d := range []string{oldClient, staging} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		for _, f := range []string{"ca.crt", "client.root.crt", "client.root.key"} {
			if err := cluster.CopyFile(filepath.Join(client, f), filepath.Join(oldClient, f)); err != nil {
				return err
			}
		}
		if err := cluster.CopyFile(filepath.Join(client, "ca.crt"), filepath.Join(staging, "ca.crt")); err != nil {
			return err
		}
		if _, err := e.Cluster.CertCLI(ctx, bin, "create-client", "root", "--certs-dir="+staging, "--ca-key="+caKey2); err != nil {
			return err
		}
		prb.files.Lock()
		for _, f := range []string{"client.root.key", "client.root.crt"} {
			if err := cluster.CopyFile(filepath.Join(staging, f), filepath.Join(client, f)); err != nil {
				prb.files.Unlock()
				return err
			}
		}
		prb.files.Unlock()
		sc.Note(e, "root's client certificate is now the new CA's")
		return sc.Workload.WaitProgress(ctx, 10, 90*time.Second)
	})
	plan.Add("remove the old CA from every ca.crt (only the new CA's remains)", func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Nodes() {
			if err := cluster.CopyFile(filepath.Join(ca2Dir, "ca.crt"), filepath.Join(n.CertsDir(), "ca.crt")); err != nil {
				return err
			}
		}
		return cluster.CopyFile(filepath.Join(ca2Dir, "ca.crt"), filepath.Join(e.Cluster.ClientCertsDir(), "ca.crt"))
	})
	plan.Add("SIGHUP each node in turn (only the new CA trusted); 10 writes acknowledged after each", reloadAll(sc, 10))
	plan.Add("no new connection failed during the rotation (prober, which connects every 20ms); the CLI works with the new certificates", func(ctx context.Context, e *registry.Env) error {
		ok, fails := prb.close()
		e.Logf("prober: %d connections and statements succeeded, %d failed", ok, len(fails))
		if len(fails) > 0 {
			return errors.Newf("%d new connections failed during the rotation (of %d):\n%s", len(fails), ok+int64(len(fails)), strings.Join(fails, "\n"))
		}
		if ok < 10 {
			return errors.Newf("the prober made only %d connections", ok)
		}
		// A node command over RPC: mutual TLS with root's new certificate.
		n := e.Cluster.Node(initVia)
		out, err := runCLI(ctx, e, n, "node", "status", "--host="+n.ListenAddr)
		if err != nil {
			return errors.Wrapf(err, "kvnode node status with the new certificates: %s", out)
		}
		return nil
	})
	plan.Add("the old CA's client certificate is refused through every node (SQL and HTTPS); the new one's works", func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			url := fmt.Sprintf("postgresql://root@%s/defaultdb?sslmode=require&sslcert=%s&sslkey=%s&connect_timeout=5", n.SQLAddr,
				filepath.Join(oldClient, "client.root.crt"), filepath.Join(oldClient, "client.root.key"))
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn, err := pgx.Connect(cctx, url)
			cancel()
			if err == nil {
				_ = conn.Close(context.Background())
				return errors.Newf("%s accepted root's certificate of the removed CA", n)
			}
			e.Logf("%s refuses the old CA's client certificate over SQL: %v", n, err)
			old, err := tls.LoadX509KeyPair(filepath.Join(oldClient, "client.root.crt"), filepath.Join(oldClient, "client.root.key"))
			if err != nil {
				return err
			}
			hc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.HTTPAddr,
				&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{old}})
			if err == nil {
				// TLS 1.3: the server's verdict on the client certificate
				// arrives with the first read.
				_ = hc.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = hc.Write([]byte("GET /_status/node HTTP/1.0\r\n\r\n"))
				if err == nil {
					_, err = hc.Read(make([]byte, 1))
				}
				_ = hc.Close()
			}
			if err == nil {
				return errors.Newf("%s's HTTPS port accepted root's certificate of the removed CA", n)
			}
			e.Logf("%s refuses it over HTTPS: %v", n, err)
			if _, err := n.Query(ctx, "SELECT 1"); err != nil {
				return err
			}
		}
		return nil
	})
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(40))
	return plan, nil
}

const (
	gossipReloadedLine     = "reloaded the gossip key"
	gossipReloadFailedLine = "reloading the gossip key failed"
	gossipRefusedLine      = "refused gossip"
)

// gossipStartedAt is node target's started_at as node n's gossip has it
// (crdb_internal.gossip_nodes).
func gossipStartedAt(ctx context.Context, n, target *cluster.Node) (string, error) {
	id, err := target.NodeID(ctx)
	if err != nil {
		return "", err
	}
	return n.QueryString(ctx, fmt.Sprintf("SELECT started_at FROM crdb_internal.gossip_nodes WHERE node_id = %d", id))
}

// restartSeenByGossip restarts node victim (SIGTERM) and waits until every
// other node's gossip has its new start time: a message it sent after the
// restart, with the gossip key of its file, was read by every node.
func restartSeenByGossip(sc *steps.Scenario, victim int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		v := e.Cluster.Node(victim)
		before, err := gossipStartedAt(ctx, e.Cluster.Node(1+victim%e.Cluster.Size()), v)
		if err != nil {
			return err
		}
		if err := v.Restart(ctx, v.Binary(), false); err != nil {
			return err
		}
		sc.Note(e, "%s restarted", v)
		for _, n := range e.Cluster.Running() {
			if n == v {
				continue
			}
			if err := steps.Eventually(ctx, 60*time.Second, func() error {
				got, err := gossipStartedAt(ctx, n, v)
				if err != nil {
					return err
				}
				if got == before {
					return errors.Newf("%s's gossip still has %s's start time from before the restart (%s)", n, v, got)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
}

func gossipKeyRotationPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	var staging string
	refusedBefore := map[int]int{}
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d secure nodes on the default binary; the gossip key rotated under load", p.Nodes)}}
	plan.Add("make the cluster secure: CA, gossip key, node and root certificates (kvnode cert)", makeSecure())
	plan.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d secure nodes, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", func(ctx context.Context, e *registry.Env) error {
		staging = filepath.Join(e.Cluster.Dir(), "certs", "gossip-staging")
		if err := os.MkdirAll(staging, 0o700); err != nil {
			return err
		}
		if err := cluster.CopyFile(filepath.Join(e.Cluster.Node(1).CertsDir(), "gossip.key"), filepath.Join(staging, "gossip.key")); err != nil {
			return err
		}
		for _, n := range e.Cluster.Nodes() {
			refusedBefore[n.Index] = countInLog(n, gossipRefusedLine)
		}
		return sc.StartWorkload()(ctx, e)
	})
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	broken := 1 + rng.IntN(p.Nodes)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(broken)
		path := filepath.Join(n.CertsDir(), "gossip.key")
		good, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := cluster.WriteFileAtomic(path, []byte("not a key\n")); err != nil {
			return err
		}
		failedBefore := countInLog(n, gossipReloadFailedLine)
		if err := n.Reload(); err != nil {
			return err
		}
		if err := steps.Eventually(ctx, 20*time.Second, func() error {
			if countInLog(n, gossipReloadFailedLine) <= failedBefore {
				return errors.Newf("%s has not logged %q", n, gossipReloadFailedLine)
			}
			return nil
		}); err != nil {
			return err
		}
		sc.Note(e, "%s refused a broken gossip.key and kept its key", n)
		if err := cluster.WriteFileAtomic(path, good); err != nil {
			return err
		}
		return sc.Workload.WaitProgress(ctx, 5, 90*time.Second)
	}, "a broken gossip.key on n%d and SIGHUP: it logs that the reload failed and keeps its key; the file is put back", broken)
	for i, step := range []string{"add", "use", "remove"} {
		victim := 1 + (initVia+i)%p.Nodes
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			bin, err := e.Binary(ctx, cluster.DefaultRelease)
			if err != nil {
				return err
			}
			out, err := e.Cluster.CertCLI(ctx, bin, "rotate-gossip-key", "--certs-dir="+staging, "--step="+step)
			if err != nil {
				return err
			}
			e.Logf("%s", out)
			for _, n := range e.Cluster.Running() {
				before := countInLog(n, gossipReloadedLine)
				if err := cluster.CopyFile(filepath.Join(staging, "gossip.key"), filepath.Join(n.CertsDir(), "gossip.key")); err != nil {
					return err
				}
				if err := n.Reload(); err != nil {
					return err
				}
				if err := steps.Eventually(ctx, 20*time.Second, func() error {
					if countInLog(n, gossipReloadedLine) <= before {
						return errors.Newf("%s has not logged %q yet", n, gossipReloadedLine)
					}
					return nil
				}); err != nil {
					return err
				}
				sc.Note(e, "%s reloaded its gossip key (step %s)", n, step)
				if err := sc.Workload.WaitProgress(ctx, 5, 90*time.Second); err != nil {
					return err
				}
			}
			return nil
		}, "kvnode cert rotate-gossip-key --step=%s; copy gossip.key to each node in turn and SIGHUP it (it logs the reload); 5 writes after each", step)
		plan.Addf(restartSeenByGossip(sc, victim), "restart n%d (SIGTERM): every other node's gossip gets its new start time", victim)
	}
	plan.Add("no node refused gossip during the rotation", func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Nodes() {
			if got := countInLog(n, gossipRefusedLine); got > refusedBefore[n.Index] {
				return errors.Newf("%s refused gossip %d times during the rotation:\n%s", n, got-refusedBefore[n.Index], n.LogTail(20))
			}
		}
		return nil
	})
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(20))
	return plan, nil
}
