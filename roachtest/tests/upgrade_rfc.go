package tests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerRFCTestPlan(r *registry.Registry) {
	const desc = "CockroachDB's RFC \"Finalize cluster upgrades automatically\" test plan under the workload: at 1.0, " +
		"preserve_downgrade_option = '1.0', rolling restart to 1.1, not finalized (the preserve blocker named); a node stopped " +
		"blocks finalization (named, with the decommission fix), is decommissioned; RESET the option; the cluster finalizes " +
		"to 1.1 by itself and the 1.1 migration job succeeded; the RFC's step 9, restart the stopped node: on its store it " +
		"refuses to start naming its decommission and the fix, recommission is refused, and on a new store it joins as a " +
		"new node at 1.1 and serves every row"
	r.Add(registry.Spec{
		Name:        "upgrade/rfc-test-plan",
		Description: desc + " (five nodes, as in the RFC)",
		Suite:       registry.Long, Nodes: 5, MinNodes: 3, Timeout: 20 * time.Minute,
		Plan: rfcTestPlan,
	})
	r.Add(registry.Spec{
		Name:        "upgrade/rfc-test-plan-3",
		Description: desc + " (three nodes: the light variant)",
		Suite:       registry.Short, Nodes: 3, MinNodes: 3,
		Plan: rfcTestPlan,
	})
}

// rfcTestPlan follows the RFC's test plan. The seed chooses the node that
// bootstraps, the upgrade order and how each node is stopped, the node
// that is stopped for good and the one its decommission goes through, and
// the order of the last two acts: in the RFC's order (decommission, then
// RESET the preserve option) or reversed (RESET first: the dead node must
// then hold finalization back on its own, and SET CLUSTER SETTING version
// must be refused naming it).
func rfcTestPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	order := rng.Perm(p.Nodes)
	kills := make([]bool, p.Nodes)
	for i := range kills {
		kills[i] = rng.IntN(3) == 0
	}
	victim := 1 + rng.IntN(p.Nodes)
	via := pickOther(rng, p.Nodes, victim)
	resetFirst := rng.IntN(2) == 0
	statusVia := pickOther(rng, p.Nodes, victim)
	rows := &writeAndCheck{table: "rfc"}
	var victimID int
	logMark := 0

	var orderNames []string
	for _, i := range order {
		orderNames = append(orderNames, fmt.Sprintf("n%d (%s)", i+1, how(kills[i])))
	}
	lastAct := "decommission it, then RESET the preserve option (the RFC's order)"
	if resetFirst {
		lastAct = "RESET the preserve option first (the dead node alone blocks), then decommission it"
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes on 1.0, init through n%d; upgrade order to 1.1: %s", p.Nodes, initVia, strings.Join(orderNames, ", ")),
		fmt.Sprintf("stop n%d for good; %s; decommission through n%d; upgrade status read through n%d", victim, lastAct, via, statusVia),
	}}
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s (the auto-upgrade loop looks every second)", fastAutoUpgrade)
	plan.Addf(sc.StartCluster([]string{r10}, initVia), "start %d nodes on 1.0, init through n%d", p.Nodes, initVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r10)
	}, "every node reports cluster version 1.0")
	plan.Addf(checkNoGhostNodes(initVia), "every node record the cluster has (GET /_status/upgrade through n%d) is one of the %d running nodes", initVia, p.Nodes)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	plan.Addf(rows.write(initVia, 500), "write 500 rows into %s at 1.0 through n%d", rows.table, initVia)
	plan.Addf(setPreserve(sc, initVia, r10), "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0' through n%d", initVia)
	for k, i := range order {
		node := i + 1
		if k == len(order)-1 {
			plan.Add("mark the nodes' logs (the auto-upgrade loop's next decisions come after this)", func(ctx context.Context, e *registry.Env) error {
				logMark = logCount(e.Cluster, "auto-upgrade: finalization blocked")
				return nil
			})
		}
		plan.Addf(restartStep(sc, node, r11, kills[i], 10), "upgrade n%d 1.0 -> 1.1 (stop with %s); the workload gets 10 writes acknowledged", node, how(kills[i]))
		writeVia := order[(k+1)%len(order)] + 1
		plan.Addf(rows.write(writeVia, 100), "write 100 rows into %s through n%d", rows.table, writeVia)
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		st, err := checkNotFinalized(ctx, e, statusVia, r10, logMark, "preserve_downgrade_option")
		if err != nil {
			return err
		}
		if st.Target != r11 {
			return errors.Newf("GET /_status/upgrade names target %q, want 1.1:\n%s", st.Target, st.Raw)
		}
		b, _ := st.Blocker("preserve_downgrade_option")
		if !strings.Contains(b.Reason, r10) || !strings.Contains(b.Fix, "RESET CLUSTER SETTING cluster.preserve_downgrade_option") {
			return errors.Newf("the preserve blocker does not name the option's value 1.0 and the RESET that clears it: %s", b)
		}
		for _, nd := range st.Nodes {
			if nd.BinaryVersion != r11 || !nd.IsLive {
				return errors.Newf("GET /_status/upgrade: node %d runs %q (live %v), want 1.1 and live:\n%s", nd.NodeID, nd.BinaryVersion, nd.IsLive, st.Raw)
			}
		}
		sc.Note(e, "every node runs 1.1, the cluster stays at 1.0: held back by the preserve option")
		return nil
	}, "not finalized: every node reports 1.0; SHOW UPGRADE STATUS and GET /_status/upgrade through n%d name the preserve option as the only blocker, "+
		"and the auto-upgrade loop logged that decision", statusVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(victim)
		id, err := n.NodeID(ctx)
		if err != nil {
			return err
		}
		victimID = id
		logMark = logCount(e.Cluster, "auto-upgrade: finalization blocked", fmt.Sprintf("node %d is not live", victimID))
		sc.Note(e, "stopping n%d (node ID %d) for good", victim, id)
		return n.Stop(ctx)
	}, "stop n%d (SIGTERM) for good", victim)
	plan.Add("the workload gets 20 writes acknowledged without it", sc.WaitProgress(20, 60*time.Second))
	deadBlocks := func(ctx context.Context, e *registry.Env, want ...string) error {
		st, err := checkNotFinalized(ctx, e, statusVia, r10, logMark, want...)
		if err != nil {
			return err
		}
		b, _ := st.Blocker("dead_node")
		fix := fmt.Sprintf("kvnode node decommission %d --host=", victimID)
		if b.NodeID != victimID || !strings.Contains(b.Reason, fmt.Sprint(victimID)) || !strings.Contains(b.Fix, fix) {
			return errors.Newf("the dead-node blocker does not name node %d and the fix %q: %s", victimID, fix+"...", b)
		}
		sc.Note(e, "finalization blocked by the dead node %d: %s", victimID, b)
		return nil
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return deadBlocks(ctx, e, "preserve_downgrade_option", "dead_node")
	}, "not finalized: the status through n%d names the dead node (with `kvnode node decommission ID --host=...`) besides the preserve option", statusVia)
	decommission := func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "decommissioning the dead n%d (node ID %d) through n%d", victim, victimID, via)
		out, err := e.Cluster.Node(via).Decommission(ctx, e.Cluster.Node(victim))
		if err != nil {
			return err
		}
		e.Logf("kvnode node decommission: %s", out)
		return steps.Eventually(ctx, 60*time.Second, func() error {
			st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			for _, b := range st.Blockers {
				if b.NodeID == victimID {
					return errors.Newf("node %d still blocks after its decommission: %s", victimID, b)
				}
			}
			return nil
		})
	}
	reset := func(ctx context.Context, e *registry.Env) error {
		if err := e.Cluster.Node(via).ExecIdempotent(ctx, "RESET CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil {
			return err
		}
		sc.Note(e, "RESET cluster.preserve_downgrade_option through n%d", via)
		return nil
	}
	if resetFirst {
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			logMark = logCount(e.Cluster, "auto-upgrade: finalization blocked", fmt.Sprintf("node %d is not live", victimID))
			return reset(ctx, e)
		}, "RESET CLUSTER SETTING cluster.preserve_downgrade_option through n%d while n%d is dead", via, victim)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			if err := deadBlocks(ctx, e, "dead_node"); err != nil {
				return err
			}
			msg, err := steps.ExpectSQLError(ctx, e.Cluster.Node(via), "SET CLUSTER SETTING version = '1.1'", "", fmt.Sprintf("node %d", victimID), "not live")
			if err != nil {
				return err
			}
			e.Logf("refused as it must be: %s", msg)
			return steps.CheckVersion(ctx, e.Cluster, r10)
		}, "not finalized: the dead node is the only blocker; SET CLUSTER SETTING version = '1.1' through n%d is refused naming it; every node reports 1.0", via)
		plan.Addf(decommission, "kvnode node decommission <n%d's ID> --host=<n%d>; the status no longer names it", victim, via)
	} else {
		plan.Addf(decommission, "kvnode node decommission <n%d's ID> --host=<n%d>; the status no longer names it", victim, via)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			_, err := checkNotFinalized(ctx, e, statusVia, r10, 0, "preserve_downgrade_option")
			return err
		}, "not finalized: the preserve option is the only blocker again (through n%d)", statusVia)
		plan.Addf(reset, "RESET CLUSTER SETTING cluster.preserve_downgrade_option through n%d", via)
	}
	plan.Add("the cluster finalizes by itself: every running node reports cluster version 1.1", func(ctx context.Context, e *registry.Env) error {
		d, err := steps.WaitVersion(ctx, e.Cluster, r11, 3*time.Minute)
		if err != nil {
			return err
		}
		sc.Note(e, "finalized to 1.1 automatically (%s)", d.Round(10*time.Millisecond))
		return nil
	})
	plan.Addf(checkMigrationJob(statusVia), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", statusVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
		if err != nil {
			return err
		}
		if st.ReplicatedVersion != r11 || st.ActiveVersion != r11 || len(st.Blockers) != 0 || st.PreserveDowngrade != "" {
			return errors.Newf("after finalization, GET /_status/upgrade through n%d: want versions 1.1, no blocker, no preserve option:\n%s", statusVia, st.Raw)
		}
		return nil
	}, "GET /_status/upgrade through n%d: active and replicated version 1.1, no blocker, preserve option clear", statusVia)
	plan.Addf(rows.write(via, 100), "write 100 rows into %s at 1.1 through n%d", rows.table, via)
	plan.Addf(rows.check(), "read %s through every running node: every row written at 1.0, in the mix and at 1.1", rows.table)
	addRestartDecommissioned(plan, sc, victim, via, statusVia, &victimID, rows)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every running node, check the history", sc.CheckWorkload(100))
	return plan, nil
}

// addRestartDecommissioned adds the RFC's step 9, "restart the node that
// was force-stopped", for a node that was decommissioned meanwhile (this
// plan decommissions the stopped node itself). What must happen follows
// from the code (server/lifecycle.go, liveness/decommission): a
// decommissioned node was removed from the data group for good and node
// IDs are never reused, so
//
//   - on its store (persisted at 1.0, the cluster now at 1.1) it refuses to
//     start, naming its decommission and the fix: a new, empty --store;
//   - `kvnode node recommission` refuses it too (only a decommission still
//     under way can be reversed), naming the same fix, and changes nothing;
//   - on a new, empty store it joins as a new node, at the cluster's
//     version 1.1 (persisted), and serves every row.
//
// CockroachDB behaves alike: a fully decommissioned node cannot be
// recommissioned, and it rejoins with a new store and ID.
func addRestartDecommissioned(plan *registry.Plan, sc *steps.Scenario, victim, via, statusVia int, victimID *int, rows *writeAndCheck) {
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(victim)
		bin, err := e.Binary(ctx, r11)
		if err != nil {
			return err
		}
		sc.Note(e, "restarting the decommissioned %s (node ID %d) on its store on %s, which must refuse", n, *victimID, bin.Name())
		out, err := n.StartExpectExit(ctx, bin, 60*time.Second)
		if err != nil {
			return err
		}
		for _, w := range []string{fmt.Sprintf("node %d is decommissioned", *victimID), "removed from the cluster for good",
			"HINT:", "new, empty --store", n.StoreDir} {
			if !strings.Contains(out, w) {
				return errors.Newf("%s refused to start, but its output does not name %q:\n%s", n, w, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "ERROR:") || strings.HasPrefix(line, "HINT:") {
				e.Logf("  %s", line)
			}
		}
		return nil
	}, "RFC step 9: restart n%d (decommissioned) on 1.1 on its store (persisted at 1.0): it exits naming its decommission "+
		"and the fix (a new, empty --store)", victim)
	plan.Add("the workload gets 10 writes acknowledged: the refused start disturbed nothing", sc.WaitProgress(10, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		out, err := e.Cluster.Node(via).Recommission(ctx, *victimID)
		if err == nil {
			return errors.Newf("kvnode node recommission %d succeeded on a decommissioned node: %s", *victimID, out)
		}
		for _, w := range []string{fmt.Sprintf("node %d is decommissioned", *victimID), "cannot be reversed", "new, empty --store", "nothing was changed"} {
			if !strings.Contains(out, w) {
				return errors.Newf("kvnode node recommission %d was refused, but its output does not name %q:\n%s", *victimID, w, out)
			}
		}
		e.Logf("refused as it must be: %s", out)
		st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
		if err != nil {
			return err
		}
		for _, nd := range st.Nodes {
			if nd.NodeID == *victimID && nd.Membership != "decommissioned" {
				return errors.Newf("after the refused recommission, node %d is %q, want decommissioned:\n%s", *victimID, nd.Membership, st.Raw)
			}
		}
		return nil
	}, "kvnode node recommission <n%d's ID> --host=<n%d>: refused (a finished decommission cannot be reversed), naming "+
		"the new-store fix; GET /_status/upgrade through n%d still shows it decommissioned", victim, via, statusVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(victim)
		aside, err := n.MoveStoreAside(fmt.Sprintf("decommissioned-node-%d", *victimID))
		if err != nil {
			return err
		}
		e.Logf("the decommissioned node's store is kept in %s", aside)
		if err := startOn(sc, victim, r11)(ctx, e); err != nil {
			return err
		}
		id, err := n.NodeID(ctx)
		if err != nil {
			return err
		}
		if id == *victimID {
			return errors.Newf("%s on a new store got node ID %d again: node IDs must never be reused", n, id)
		}
		if v, err := steps.Version(ctx, n); err != nil || v != r11 {
			return errors.Newf("%s (new node %d) reports cluster version %q (%v), want 1.1", n, id, v, err)
		}
		sc.Note(e, "%s joined as new node %d at cluster version 1.1", n, id)
		return steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			if st.ReplicatedVersion != r11 || len(st.Blockers) != 0 {
				return errors.Newf("GET /_status/upgrade through n%d: want version 1.1 and no blocker:\n%s", statusVia, st.Raw)
			}
			seen := false
			for _, nd := range st.Nodes {
				switch nd.NodeID {
				case id:
					seen = true
					if nd.BinaryVersion != r11 || !nd.IsLive || nd.Membership != "active" || nd.PersistedVersion != r11 {
						return errors.Newf("GET /_status/upgrade through n%d: new node %d runs %q, live %v, %s, persisted %q; "+
							"want 1.1, live, active, persisted 1.1:\n%s", statusVia, id, nd.BinaryVersion, nd.IsLive, nd.Membership, nd.PersistedVersion, st.Raw)
					}
				case *victimID:
					if nd.Membership != "decommissioned" {
						return errors.Newf("the old node %d is %q, want decommissioned:\n%s", *victimID, nd.Membership, st.Raw)
					}
				}
			}
			if !seen {
				return errors.Newf("GET /_status/upgrade through n%d does not list the new node %d yet:\n%s", statusVia, id, st.Raw)
			}
			return nil
		})
	}, "start n%d on 1.1 on a new, empty store (the old one moved aside): it joins as a new node ID, reports cluster version 1.1, "+
		"and GET /_status/upgrade through n%d shows it live, active, persisted at 1.1, the old ID still decommissioned, no blocker", victim, statusVia)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r11)
	}, "every running node, n%d included, reports cluster version 1.1", victim)
	plan.Addf(rows.write(victim, 100), "write 100 rows into %s through n%d", rows.table, victim)
	plan.Addf(rows.check(), "read %s through every running node, n%d included: every row", rows.table, victim)
	plan.Addf(checkNoGhostNodes(statusVia), "every node record (GET /_status/upgrade through n%d) is a running node or decommissioned", statusVia)
}
