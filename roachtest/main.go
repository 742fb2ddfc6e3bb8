package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/tests"
)

// exitError carries an exit status through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := interruptible()
	defer stop()
	err := newRootCmd(ctx, os.Stdout).Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		stop()
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		for _, h := range errors.GetAllHints(err) {
			fmt.Fprintln(os.Stderr, "HINT:", h)
		}
		stop()
		os.Exit(2)
	}
}

// interruptible returns a context canceled by the first SIGINT or SIGTERM,
// so the running scenario stops its nodes in order and keeps their logs; a
// second signal kills every node at once and exits.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigC := make(chan os.Signal, 2)
	signal.Notify(sigC, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig, ok := <-sigC
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "\nroachtest: %s: stopping the scenario, ending its nodes and keeping their logs (signal again to kill them at once)\n", sig)
		cancel()
		if _, ok := <-sigC; ok {
			n := cluster.KillAll()
			fmt.Fprintf(os.Stderr, "roachtest: killed %d node process(es); exiting\n", n)
			os.Exit(130)
		}
	}()
	return ctx, func() {
		signal.Stop(sigC)
		cancel()
	}
}

func newRootCmd(ctx context.Context, out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "roachtest",
		Short: "process-level cluster and rolling-upgrade scenarios for kvnode",
		Long: `roachtest builds kvnode binaries at several releases from this tree, runs them as
real processes on loopback ports, and drives scenarios (replication, leader kills,
binary mixes, rolling upgrades with rollbacks, node lifecycle) under a workload
whose history is checked for lost writes, duplicates and linearizability.

  go run ./roachtest list
  go run ./roachtest run 'basic/' --seed 42
  go run ./roachtest run '^upgrade/rolling$' --seed 7 --keep

The same scenarios run under ` + "`go test ./roachtest/...`" + ` (KVNODE_LONG=1 for all).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return errors.WithHintf(err, "see `%s --help`", cmd.CommandPath())
	})
	reg := &registry.Registry{}
	tests.Register(reg)
	root.AddCommand(newListCmd(reg), newRunCmd(ctx, reg))
	return root
}

func newListCmd(reg *registry.Registry) *cobra.Command {
	return &cobra.Command{
		Use:   "list [REGEX]",
		Short: "list the scenarios (matching REGEX)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			specs, err := reg.Match(pattern)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, s := range specs {
				fmt.Fprintf(tw, "%s\t%s\t%d nodes\t%s\n", s.Name, s.Suite, s.Nodes, s.Description)
			}
			return tw.Flush()
		},
	}
}

type runFlags struct {
	seed      int64
	nodes     int
	keep      bool
	artifacts string
	cacheDir  string
	binaries  []string
}

func newRunCmd(ctx context.Context, reg *registry.Registry) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run REGEX",
		Short: "run the scenarios whose name matches REGEX, one after the other",
		Long: `Run every scenario whose name matches REGEX (a Go regular expression), in name
order, each on a fresh cluster. The seed (random unless --seed is given) is
printed first, then each scenario's whole plan, then its progress; a summary
with a reproduction command ends the run. A failed scenario keeps its
directory (node logs, stores, plan, workload history) and prints its path.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScenarios(ctx, cmd, reg, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&f.seed, "seed", 0, "seed of every plan (default: random, printed)")
	fl.IntVar(&f.nodes, "nodes", 0, "cluster size (default: each scenario's own)")
	fl.BoolVar(&f.keep, "keep", false, "keep every scenario's directory, also when it passes")
	fl.StringVar(&f.artifacts, "artifacts", "", "directory for the scenarios' directories (default: a new one under $TMPDIR/kvnode-roachtest)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "binary cache (default: $KVNODE_ROACHTEST_CACHE, else the user cache dir)")
	fl.StringArrayVar(&f.binaries, "binary", nil, "use the kvnode binary at PATH for release R instead of building it: R=PATH (R = 1.0, 1.1, 2.0 or default); repeatable; adds to $ROACHTEST_BINARIES (R=PATH,R=PATH...)")
	return cmd
}

func runScenarios(ctx context.Context, cmd *cobra.Command, reg *registry.Registry, pattern string, f *runFlags) error {
	out := cmd.OutOrStdout()
	specs, err := reg.Match(pattern)
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		return errors.WithHint(errors.Newf("no scenario matches %q", pattern), "`go run ./roachtest list` shows them")
	}
	seedGiven := cmd.Flags().Changed("seed")
	if !seedGiven {
		f.seed = rand.Int64N(1 << 53) // exact in a float64, so it survives any tool that reads the logs
	}
	builder := &cluster.Builder{CacheDir: f.cacheDir, Logf: func(format string, args ...any) {
		fmt.Fprintf(out, "  "+format+"\n", args...)
	}}
	if err := builder.OverrideFromList(os.Getenv("ROACHTEST_BINARIES")); err != nil {
		return errors.Wrap(err, "$ROACHTEST_BINARIES")
	}
	for _, b := range f.binaries {
		if err := builder.OverrideFromList(b); err != nil {
			return errors.Wrap(err, "--binary")
		}
	}
	root := f.artifacts
	if root == "" {
		base := filepath.Join(os.TempDir(), "kvnode-roachtest")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return err
		}
		root, err = os.MkdirTemp(base, time.Now().Format("20060102-150405-"))
		if err != nil {
			return err
		}
	}

	how := "given with --seed"
	if !seedGiven {
		how = "random"
	}
	fmt.Fprintf(out, "roachtest: seed %d (%s), %d scenario(s) matching %q, artifacts in %s\n", f.seed, how, len(specs), pattern, root)
	start := time.Now()
	var results []registry.Result
	for _, s := range specs {
		if ctx.Err() != nil {
			results = append(results, registry.Result{Name: s.Name, Seed: f.seed, Status: registry.Fail, Reason: "not run: interrupted"})
			continue
		}
		fmt.Fprintf(out, "\n=== RUN %s\n", s.Name)
		res := registry.Run(ctx, s, registry.RunOptions{
			Seed: f.seed, Nodes: f.nodes, Keep: f.keep, ArtifactsDir: root, Builder: builder,
			Out: func(line string) { fmt.Fprintf(out, "%s %s\n", s.Name, line) },
		})
		fmt.Fprintf(out, "--- %s %s (%s)\n", res.Status, s.Name, res.Duration.Round(100*time.Millisecond))
		results = append(results, res)
	}
	failed := printSummary(out, results, f.seed, time.Since(start))
	if entries, err := os.ReadDir(root); err == nil && len(entries) == 0 && f.artifacts == "" {
		_ = os.Remove(root)
	}
	if failed > 0 || ctx.Err() != nil {
		return exitError{code: 1}
	}
	return nil
}

// printSummary prints one line per scenario and returns how many failed.
func printSummary(out io.Writer, results []registry.Result, seed int64, took time.Duration) int {
	fmt.Fprintf(out, "\n=== summary (seed %d)\n", seed)
	counts := map[registry.Status]int{}
	for _, r := range results {
		counts[r.Status]++
		fmt.Fprintf(out, "%s  %-32s %8s", r.Status, r.Name, r.Duration.Round(100*time.Millisecond))
		if r.Reason != "" {
			reason, _, _ := strings.Cut(r.Reason, "\n")
			fmt.Fprintf(out, "  %s", reason)
		}
		fmt.Fprintln(out)
		if r.Status == registry.Fail {
			if r.Dir != "" {
				fmt.Fprintf(out, "      logs kept in %s\n", filepath.Join(r.Dir, "logs"))
			}
			fmt.Fprintf(out, "      reproduce: %s\n", r.Reproduce())
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped in %s\n", counts[registry.Pass], counts[registry.Fail], counts[registry.Skip], took.Round(time.Second))
	return counts[registry.Fail]
}
