package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/spf13/cobra"
)

// `kvnode node recover`: re-form the cluster on the survivors of a majority
// lost for good (docs/recovery.md).

func newNodeRecoverCmd() *cobra.Command {
	f := &hostFlags{}
	var dryRun, force bool
	cmd := &cobra.Command{
		Use:   "recover --host=HOST:PORT [--dry-run] [--force]",
		Short: "re-form the cluster on the survivors of a majority lost for good (docs/recovery.md)",
		Long: `Recover a cluster that lost a majority of its data group's voters for good
(machines or stores gone), as etcd's --force-new-cluster and CockroachDB's
` + "`debug recover`" + ` do. Every surviving node must be running; the node at --host
asks every node it knows of for its Raft state, and those that do not answer
are treated as dead.

  - The seed is the survivor with the highest applied index: it has applied
    every write any survivor applied. It becomes the data group's only voter,
    keeping every entry it knows to be committed.
  - Every other survivor drops its data group state and rejoins from the
    seed's snapshot.
  - The dead nodes are marked decommissioned: nothing waits for them any
    more, and they may never be started again on their old stores.
  - Group 0, if it has no leader either, is re-formed from the survivor with
    the most recent schema (as ` + "`kvnode node group0-recover`" + ` does).

Writes that only the dead nodes had are lost; --dry-run prints the survivors
(node, applied index, term, state), the dead, and what may be lost, and
changes nothing. The command refuses when a majority of the voters answers:
the cluster has not lost its majority. --force recovers anyway, from the
nodes that answer: every node that does not answer must then never be
started again on its store.

If the command fails part-way, run it again: it finishes what was started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			plan, err := nodeapi.Recover(ctx, f.host, nodeapi.RecoverRequest{DryRun: true, Force: force})
			if err != nil {
				return err
			}
			fmt.Print(plan.Plan)
			if dryRun {
				fmt.Println("\n--dry-run: nothing was changed. Run the same command without --dry-run to carry the plan out.")
				return nil
			}
			fmt.Println("\ncarrying the plan out...")
			resp, err := nodeapi.Recover(ctx, f.host, nodeapi.RecoverRequest{Force: force})
			if err != nil {
				return err
			}
			if resp.Seed != plan.Seed {
				fmt.Fprintf(os.Stderr, "note: the cluster changed since the plan above was computed; this plan was carried out:\n%s", resp.Plan)
			}
			fmt.Printf("done: %s\n", resp.Result)
			return nil
		},
	}
	addHostFlags(cmd, f, 10*time.Minute)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the survivors, the seed and what may be lost, and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "recover although a majority of the voters answers (the nodes that do not answer must never return)")
	return cmd
}
