package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kvnode/kvnode/nodeapi"
	"github.com/spf13/cobra"
)

// `kvnode node group0-recover`: the last step of the group 0 recovery
// runbook (docs/recovery.md).

func newNodeGroup0RecoverCmd() *cobra.Command {
	f := &hostFlags{}
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "group0-recover --host=HOST:PORT [--dry-run]",
		Short: "bring the nodes in group 0 recovery mode back (docs/recovery.md)",
		Long: `Run the group 0 recovery procedure through the node at --host. Every node that
is not decommissioned must be running and answer; decommission the dead ones
first (` + "`kvnode node decommission ID --host=...`" + `).

The node at --host asks every node for its group 0 state and plans:

  - group 0 was never formed: the nodes in recovery go back to
    use_pre_raft_procedures;
  - some nodes are not in recovery and group 0 answers through them: the nodes
    in recovery rejoin it;
  - every node is in recovery: group 0 is re-formed in a new generation. The
    seed is the survivor with the most recent group 0 state (the highest
    generation, then the highest applied Raft index); it creates the new
    generation from that state, the others wipe their group 0 Raft state and
    join it. Every node then enters use_post_raft_procedures, or synchronize if
    the upgrade to 2.0 had not finished (the upgrade then finishes by itself).

The plan is printed before anything is done; --dry-run prints it and stops.
Every step is idempotent: if the command fails part-way, run it again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			plan, err := nodeapi.Group0Recover(ctx, f.host, true)
			if err != nil {
				return err
			}
			fmt.Print(plan.Plan)
			if dryRun {
				fmt.Println("\n--dry-run: nothing was changed. Run the same command without --dry-run to carry the plan out.")
				return nil
			}
			fmt.Println("\ncarrying the plan out...")
			resp, err := nodeapi.Group0Recover(ctx, f.host, false)
			if err != nil {
				return err
			}
			if resp.Kind != plan.Kind || resp.Seed != plan.Seed {
				fmt.Fprintf(os.Stderr, "note: the cluster changed since the plan above was computed; this plan was carried out:\n%s", resp.Plan)
			}
			fmt.Printf("done: %s\n", resp.Result)
			return nil
		},
	}
	addHostFlags(cmd, f, 5*time.Minute)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (and the seed) and change nothing")
	return cmd
}
