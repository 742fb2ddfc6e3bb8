package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server"
	"github.com/kvnode/kvnode/server/pausepoint"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		for _, h := range errors.GetAllHints(err) {
			fmt.Fprintln(os.Stderr, "HINT:", h)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kvnode",
		Short: "kvnode: a distributed SQL key-value database built for safe rolling upgrades",
		Long: `kvnode stores tables in Pebble, replicates them with Raft, and serves SQL
over the PostgreSQL wire protocol, so psql and every Postgres driver work.

Start three nodes, initialize the cluster once, then connect with psql:

  kvnode start --insecure --store=n1 --listen-addr=127.0.0.1:26357 --gossip-addr=127.0.0.1:26457 \
      --sql-addr=127.0.0.1:26257 --http-addr=127.0.0.1:8080 --join=127.0.0.1:26357,127.0.0.1:26358,127.0.0.1:26359
  ... (nodes 2 and 3 likewise, with their own store and ports)
  kvnode init --insecure --host=127.0.0.1:26357
  psql "postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable"

For a secure cluster, create certificates with ` + "`kvnode cert`" + ` and pass
--certs-dir=DIR instead of --insecure.

Or run a local three-node cluster in one command: kvnode demo
(kvnode demo --upgrade-from=1.1 walks you through a rolling upgrade)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// A binary built with an unknown release refuses to do anything.
			_, err := clusterversion.BinaryVersion()
			return err
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return errors.WithHintf(err, "see `%s --help` for the flags", cmd.CommandPath())
	})
	root.AddCommand(newStartCmd(false), newStartCmd(true), newInitCmd(), newDemoCmd(), newVersionCmd(), newNodeCmd(), newCertCmd())
	return root
}

type startFlags struct {
	store, listen, gossip, sqlAddr, http, logLevel string
	advertise, advertiseSQL, advertiseHTTP         string
	join                                           []string
	autoUpgradeInterval                            time.Duration
	maxOffset                                      time.Duration
	leasedReads                                    bool
	sec                                            securityFlags
}

func addStartFlags(cmd *cobra.Command, f *startFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.store, "store", "kvnode-data", "directory of this node's Pebble store (one node per directory)")
	fl.StringVar(&f.listen, "listen-addr", "127.0.0.1:26357", "HOST:PORT for node-to-node RPC (Raft, join); other nodes' --join points here")
	fl.StringVar(&f.gossip, "gossip-addr", "127.0.0.1:26457", "HOST:PORT for gossip (memberlist, TCP and UDP)")
	fl.StringVar(&f.sqlAddr, "sql-addr", "127.0.0.1:26257", "HOST:PORT for SQL clients (PostgreSQL wire protocol)")
	fl.StringVar(&f.http, "http-addr", "127.0.0.1:8080", "HOST:PORT for /health, /metrics and the status page")
	fl.StringSliceVar(&f.join, "join", nil, "comma-separated --listen-addr of other nodes to join through")
	fl.StringVar(&f.advertise, "advertise-addr", "", "HOST:PORT other nodes dial for RPC, when it differs from --listen-addr (listening on 0.0.0.0, NAT); "+
		"its host is also advertised with the gossip, SQL and HTTP ports")
	fl.StringVar(&f.advertiseSQL, "advertise-sql-addr", "", "HOST:PORT SQL clients are told (default: --advertise-addr's host with the --sql-addr port)")
	fl.StringVar(&f.advertiseHTTP, "advertise-http-addr", "", "HOST:PORT the status page is reached at (default: --advertise-addr's host with the --http-addr port)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.DurationVar(&f.maxOffset, "max-offset", server.DefaultMaxOffset,
		"the most the nodes' clocks may disagree; the Raft leader's read lease relies on it, and a node whose clock is "+
			"beyond it (against a majority of the others) stops serving leased reads. Use the same value on every node")
	fl.BoolVar(&f.leasedReads, "leased-reads", true,
		"serve linearizable reads on the Raft leader from its lease (no round trip) while the clocks agree within --max-offset; "+
			"false: every read takes a ReadIndex round")
	fl.DurationVar(&f.autoUpgradeInterval, "auto-upgrade-interval", 10*time.Second, "how often the automatic finalization checks (testing)")
	_ = fl.MarkHidden("auto-upgrade-interval")
	addSecurityFlags(cmd, &f.sec)
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, errors.WithHint(errors.Newf("invalid --log-level %q", level), "use debug, info, warn or error")
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func newStartCmd(single bool) *cobra.Command {
	f := &startFlags{}
	cmd := &cobra.Command{
		Use:   "start",
		Short: "start a node and join (or wait for `kvnode init` to bootstrap) a cluster",
		Long: `Start a node. With an empty --store it joins the cluster through the nodes at
--join; if no cluster exists yet, it waits until ` + "`kvnode init`" + ` bootstraps one.
With a store that already belongs to a cluster, it rejoins that cluster.

SIGTERM or Ctrl-C drains the node (no new SQL connections, open ones finish,
Raft leadership moves away) and then stops it.`,
		Args: cobra.NoArgs,
	}
	if single {
		cmd.Use = "start-single-node"
		cmd.Short = "start a one-node cluster, initializing it if needed"
		cmd.Long = "Start a node and bootstrap a one-node cluster on it if its store is new. Same flags as `start`, without --join."
	}
	addStartFlags(cmd, f)
	if single {
		_ = cmd.Flags().MarkHidden("join")
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if single && len(f.join) > 0 {
			return errors.WithHint(errors.New("start-single-node does not take --join"),
				"use `kvnode start --join=...` to run a node of a multi-node cluster")
		}
		if err := f.sec.check(cmd); err != nil {
			return err
		}
		if err := server.ValidateMaxOffset(f.maxOffset, 0, f.leasedReads); err != nil {
			return err
		}
		log, err := newLogger(f.logLevel)
		if err != nil {
			return err
		}
		// Testing only (roachtest's pause points); unset in production.
		group0Pause, err := pausepoint.Group0FromEnv(log)
		if err != nil {
			return err
		}
		stepPause, err := pausepoint.VersionStepFromEnv(log)
		if err != nil {
			return err
		}
		s, err := server.New(server.Config{
			Store: f.store, ListenAddr: f.listen, GossipAddr: f.gossip, SQLAddr: f.sqlAddr,
			HTTPAddr: f.http, Join: f.join, Logger: log, AutoUpgradeInterval: f.autoUpgradeInterval,
			AdvertiseAddr: f.advertise, AdvertiseSQLAddr: f.advertiseSQL, AdvertiseHTTPAddr: f.advertiseHTTP,
			Insecure: f.sec.insecure, CertsDir: f.sec.certsDir,
			MaxOffset: f.maxOffset, DisableLeaseReads: !f.leasedReads,
			Knobs: server.Knobs{Group0Hook: group0Pause, VersionStepPause: stepPause},
		})
		if err != nil {
			return err
		}
		return runUntilSignal(s, log, single)
	}
	return cmd
}

// runUntilSignal runs a started node until SIGTERM/SIGINT (drain and stop) or
// until its start fails. SIGHUP re-reads a secure node's certificates and
// gossip key.
func runUntilSignal(s *server.Server, log *slog.Logger, selfInit bool) error {
	sigC := make(chan os.Signal, 2)
	signal.Notify(sigC, syscall.SIGTERM, syscall.SIGINT)
	hupC := make(chan os.Signal, 1)
	signal.Notify(hupC, syscall.SIGHUP)
	defer signal.Stop(hupC)
	if err := s.Start(context.Background()); err != nil {
		return err
	}
	if selfInit && s.NodeID() == 0 {
		ctx, cancel := context.WithTimeout(nodeapi.WithTLS(context.Background(), s.ClientTLS()), 30*time.Second)
		_, err := nodeapi.InitCluster(ctx, s.AdvertisedRPCAddr())
		cancel()
		if err != nil {
			_ = s.Stop(context.Background())
			return err
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigC:
			log.Info("received signal; draining and stopping (send it again to stop at once)", "signal", sig.String())
			go func() {
				<-sigC
				log.Warn("second signal: exiting without finishing the drain")
				os.Exit(1)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return s.Stop(ctx)
		case <-hupC:
			if s.Secure() {
				_ = s.ReloadCertificates() // logs the outcome; an error keeps the old certificates (or gossip keys)
			} else {
				log.Info("received SIGHUP: this node runs --insecure, there are no certificates to reload")
			}
		case <-tick.C:
			if err := s.Failed(); err != nil {
				_ = s.Stop(context.Background())
				return err
			}
		}
	}
}

func newInitCmd() *cobra.Command {
	var host string
	var timeout time.Duration
	var sec securityFlags
	cmd := &cobra.Command{
		Use:   "init --host=HOST:PORT",
		Short: "bootstrap a new cluster on the node at --host (run once per cluster)",
		Long: `Bootstrap a new cluster on the started node whose --listen-addr is --host.
Run it once per cluster. If the node is still starting, init waits for it
up to --timeout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if host == "" {
				return errors.WithHint(errors.New("--host is required"), "pass the --listen-addr of one started node, e.g. --host=127.0.0.1:26357")
			}
			if err := sec.loadClient(cmd); err != nil {
				return err
			}
			deadline := time.Now().Add(timeout)
			for {
				ctx, cancel := context.WithTimeout(sec.context(), 10*time.Second)
				resp, err := nodeapi.InitCluster(ctx, host)
				cancel()
				if err == nil {
					fmt.Printf("Cluster successfully initialized (cluster ID %s, node %d).\n", resp.ClusterID, resp.NodeID)
					return nil
				}
				unreachable := strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "Unavailable") ||
					strings.Contains(err.Error(), "deadline exceeded")
				if !unreachable {
					return err
				}
				if time.Now().After(deadline) {
					return errors.WithHintf(errors.Newf("cannot reach a kvnode node at %s within %s: %v", host, timeout, err),
						"start the node first, and pass its --listen-addr as --host")
				}
				time.Sleep(200 * time.Millisecond)
			}
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "the --listen-addr of the node to bootstrap the cluster on")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the node to become reachable")
	addSecurityFlags(cmd, &sec)
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print this binary's release and build details",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := clusterversion.BinaryVersion()
			if err != nil {
				return err
			}
			rev := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			fmt.Printf("kvnode %s\nminimum supported cluster version: %s\ngo: %s %s/%s\ncommit: %s\n",
				v, clusterversion.MinSupported(v), runtime.Version(), runtime.GOOS, runtime.GOARCH, rev)
			return nil
		},
	}
}
