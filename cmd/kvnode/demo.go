package main

import (
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/kvnode/kvnode/demo"
)

// `kvnode demo`: its flags, checked here and handed to package demo, which
// runs the local cluster and the upgrade walk-through.

type demoFlags struct {
	nodes               int
	logLevel            string
	upgradeFrom         string
	auto                bool
	exitAfter           bool
	autoUpgradeInterval time.Duration
	insecure            bool
}

func newDemoCmd() *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run a local cluster on 127.0.0.1 with temporary stores, until Ctrl-C; --upgrade-from=R walks you through a rolling upgrade",
		Long: `Run a local cluster on 127.0.0.1 with temporary stores, print how to connect to
it, and keep it running until Ctrl-C (which stops it and deletes its data).
The demo cluster is secure (as --certs-dir): certificates in its temporary
directory, TLS on every port, and an admin user demo with a generated
password, which the printed URLs carry (psql works with them as printed).
--insecure runs it without security (plaintext, no authentication).

With --upgrade-from=R the cluster starts on release R, older than this binary,
and the demo walks you through a rolling upgrade to this binary's release, one
release at a time (a binary serves clusters from the previous release on, so
1.0 to 2.0 goes 1.0 -> 1.1 -> 2.0). At the demo> prompt, Enter (or "next")
runs the next step after saying what it does and why; "help" lists the
commands that let you drive it yourself (status, sql, upgrade N, rollback N,
auto, quit). With --auto the whole walk-through runs without prompts.

How a node is "restarted on another release" here: a binary's release is fixed
at build time, so the demo cannot start an older release by running another
binary. Every node runs inside this process instead, and an old node is one
started with the knob that makes it behave exactly as that release
(server.Config.Knobs.BinaryVersion, as in-process tests do). Upgrading node N
drains it (as ` + "`kvnode node drain`" + ` does), stops it, and starts it again on the
same store and ports as this binary's own release. With real processes and
real binaries, follow "A rolling upgrade" in README.md. The walk-through runs
insecure: it starts on a release older than 2.1, which has no users and
passwords.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.nodes < 1 || f.nodes > 9 {
				return errors.WithHint(errors.Newf("--nodes=%d is out of range", f.nodes), "use 1 to 9 nodes")
			}
			if f.upgradeFrom == "" {
				if f.auto || f.exitAfter {
					return errors.WithHint(errors.New("--auto and --exit-after-walkthrough need --upgrade-from"),
						"for example: kvnode demo --upgrade-from=1.1 --auto")
				}
				log, err := newLogger(f.logLevel)
				if err != nil {
					return err
				}
				o := f.options(cmd)
				o.Log = log
				return demo.Run(o)
			}
			from, err := demo.ParseUpgradeFrom(f.upgradeFrom)
			if err != nil {
				return err
			}
			if f.autoUpgradeInterval <= 0 {
				return errors.WithHint(errors.Newf("--auto-upgrade-interval=%s must be positive", f.autoUpgradeInterval),
					"for example --auto-upgrade-interval=1s")
			}
			// The walk-through's node log is a file, at info unless given.
			level := f.logLevel
			if !cmd.Flags().Changed("log-level") {
				level = "info"
			}
			o := f.options(cmd)
			if err := o.LogLevel.UnmarshalText([]byte(level)); err != nil {
				return errors.WithHint(errors.Newf("invalid --log-level %q", level), "use debug, info, warn or error")
			}
			return demo.RunUpgrade(o, from)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", 3, "number of nodes")
	fl.BoolVar(&f.insecure, "insecure", false, "run the demo cluster without security: plaintext, no authentication (the upgrade walk-through always does)")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn or error (with --upgrade-from, node logs go to a temporary file, at info unless given)")
	fl.StringVar(&f.upgradeFrom, "upgrade-from", "", "start the cluster on this older release and walk through a rolling upgrade to this binary's release")
	fl.BoolVar(&f.auto, "auto", false, "with --upgrade-from: run the whole walk-through without prompts, then keep the cluster running until Ctrl-C")
	fl.BoolVar(&f.exitAfter, "exit-after-walkthrough", false, "with --upgrade-from: stop the cluster and exit once the walk-through is complete (with --auto, for scripts and tests)")
	fl.DurationVar(&f.autoUpgradeInterval, "auto-upgrade-interval", time.Second, "with --upgrade-from: how often each node's auto-upgrade loop checks whether the cluster may finalize")
	_ = fl.MarkHidden("exit-after-walkthrough")
	_ = fl.MarkHidden("auto-upgrade-interval")
	return cmd
}

// options are f as package demo takes them, talking on cmd's terminal.
func (f *demoFlags) options(cmd *cobra.Command) demo.Options {
	return demo.Options{Nodes: f.nodes, Insecure: f.insecure, Auto: f.auto, ExitAfterWalkthrough: f.exitAfter,
		AutoUpgradeInterval: f.autoUpgradeInterval, In: cmd.InOrStdin(), Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr()}
}
