package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/spf13/cobra"
)

// `kvnode node …`: status, drain, decommission and recommission, each
// through the node at --host.

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "inspect and manage the nodes of a running cluster: status, drain, decommission, recommission, group0-recover, recover",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newNodeStatusCmd(), newNodeDrainCmd(), newNodeDecommissionCmd(), newNodeRecommissionCmd(),
		newNodeGroup0RecoverCmd(), newNodeRecoverCmd())
	return cmd
}

type hostFlags struct {
	host    string
	timeout time.Duration
	sec     securityFlags
}

func addHostFlags(cmd *cobra.Command, f *hostFlags, timeout time.Duration) {
	cmd.Flags().StringVar(&f.host, "host", "", "the --listen-addr of any running node of the cluster")
	cmd.Flags().DurationVar(&f.timeout, "timeout", timeout, "how long to wait for the command to finish")
	addSecurityFlags(cmd, &f.sec)
}

// check checks the flags and loads the CLI's certificate in secure mode.
func (f *hostFlags) check(cmd *cobra.Command) error {
	if f.host == "" {
		return errors.WithHint(errors.New("--host is required"),
			"pass the --listen-addr of a running node, e.g. --host=127.0.0.1:26357")
	}
	return f.sec.loadClient(cmd)
}

func parseNodeIDs(args []string) ([]nodeid.ID, error) {
	if len(args) == 0 {
		return nil, errors.WithHint(errors.New("no node IDs given"),
			"name the nodes by ID; `kvnode node status --host=...` lists them")
	}
	var ids []nodeid.ID
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 32)
		if err != nil || id <= 0 {
			return nil, errors.WithHint(errors.Newf("invalid node ID %q", a),
				"node IDs are positive integers; `kvnode node status --host=...` lists them")
		}
		ids = append(ids, nodeid.ID(id))
	}
	return ids, nil
}

func newNodeStatusCmd() *cobra.Command {
	f := &hostFlags{}
	cmd := &cobra.Command{
		Use:   "status --host=HOST:PORT",
		Short: "print every node: addresses, binary version, start time, liveness, membership, draining",
		Long: `Print one row per node that ever joined the cluster, as the node at --host
sees it: ID, RPC and SQL addresses, the release of its binary, when it started,
when its liveness record was last updated, whether it is live, its membership
(active, decommissioning, decommissioned), whether it is draining, and the
cluster version it has persisted in its store (NULL if unknown): above the
cluster version while a finalization step has reached some nodes and not yet
all; a binary that cannot run it refuses to start on that store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			resp, err := nodeapi.GetNodeStatus(ctx, f.host)
			if err != nil {
				return err
			}
			printStatus(os.Stdout, resp.Nodes)
			if resp.Stale {
				fmt.Fprintf(os.Stderr, "WARNING: node %d could not reach a majority of the cluster; this is its own, possibly stale, view\n", resp.AnsweredBy)
			}
			return nil
		},
	}
	addHostFlags(cmd, f, 10*time.Second)
	return cmd
}

func printStatus(w io.Writer, nodes []nodeapi.NodeStatus) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\taddress\tsql_address\tbuild\tstarted_at\tupdated_at\tis_live\tmembership\tis_draining\tpersisted_version")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%t\t%s\t%t\t%s\n", n.NodeID, n.Address, n.SQLAddress, n.Build,
			orNull(n.StartedAt), orNull(n.UpdatedAt), n.IsLive, n.Membership, n.IsDraining, orNull(n.PersistedVersion))
	}
	_ = tw.Flush()
}

func printProgress(w io.Writer, nodes []nodeapi.NodeStatus) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tis_live\traft_member\tmembership\tis_draining")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%d\t%t\t%s\t%s\t%t\n", n.NodeID, n.IsLive, n.Raft, n.Membership, n.IsDraining)
	}
	_ = tw.Flush()
}

func orNull(s string) string {
	if s == "" {
		return "NULL"
	}
	return s
}

func newNodeDrainCmd() *cobra.Command {
	f := &hostFlags{}
	cmd := &cobra.Command{
		Use:   "drain --host=HOST:PORT",
		Short: "drain the node at --host: no new SQL connections, open ones finish, Raft leadership moves away",
		Long: `Drain the node whose --listen-addr is --host: it stops accepting SQL
connections, lets the open ones finish their statement and closes them, moves
Raft leadership to another node, records "draining" in its liveness record and
reports 503 on /health?ready=1. The process stays up; stop it (SIGTERM) or
restart it, which ends the drain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			resp, err := nodeapi.DrainNode(ctx, f.host)
			if err != nil {
				return err
			}
			fmt.Printf("node %d is drained (%d SQL connections were open); it stays up until you stop it\n",
				resp.NodeID, resp.OpenConnections)
			return nil
		},
	}
	addHostFlags(cmd, f, time.Minute)
	return cmd
}

func newNodeDecommissionCmd() *cobra.Command {
	f := &hostFlags{}
	var wait string
	cmd := &cobra.Command{
		Use:   "decommission ID... --host=HOST:PORT [--wait=all|none]",
		Short: "remove nodes from the cluster for good",
		Long: `Decommission the nodes with the given IDs, live or dead: mark them
decommissioning, remove them from the data Raft group, then mark them
decommissioned. A decommissioned node may never rejoin; a running one exits.

It refuses, and changes nothing, if an ID is unknown, if no node would remain,
or if the voters that remain would not have a live majority.

--wait=all (the default) shows progress until every node is decommissioned;
--wait=none returns once they are marked: the cluster finishes on its own, and
` + "`kvnode node status`" + ` shows the progress.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if wait != "all" && wait != "none" {
				return errors.WithHint(errors.Newf("invalid --wait=%q", wait), "use --wait=all or --wait=none")
			}
			ids, err := parseNodeIDs(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			first := true
			err = nodeapi.DecommissionNodes(ctx, f.host, ids, wait == "all", func(nodes []nodeapi.NodeStatus) {
				if !first {
					fmt.Println()
				}
				first = false
				printProgress(os.Stdout, nodes)
			})
			if err != nil {
				return err
			}
			if wait == "all" {
				fmt.Println("\nNo more data reported on target nodes. The decommissioned nodes may be stopped and their stores removed.")
			} else {
				fmt.Println("\nThe nodes are decommissioning; `kvnode node status` shows when they are decommissioned.")
			}
			return nil
		},
	}
	addHostFlags(cmd, f, 10*time.Minute)
	cmd.Flags().StringVar(&wait, "wait", "all", "all: wait until every node is decommissioned; none: return once they are marked")
	return cmd
}

func newNodeRecommissionCmd() *cobra.Command {
	f := &hostFlags{}
	cmd := &cobra.Command{
		Use:   "recommission ID... --host=HOST:PORT",
		Short: "cancel the decommissioning of nodes that are still members of the cluster",
		Long: `Mark decommissioning nodes active again. It refuses, and changes nothing,
for a decommissioned node, or one already removed from the data Raft group.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ids, err := parseNodeIDs(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(f.sec.context(), f.timeout)
			defer cancel()
			resp, err := nodeapi.RecommissionNodes(ctx, f.host, ids)
			if err != nil {
				return err
			}
			printProgress(os.Stdout, resp.Nodes)
			fmt.Println("\nThe nodes are active again.")
			return nil
		},
	}
	addHostFlags(cmd, f, time.Minute)
	return cmd
}
