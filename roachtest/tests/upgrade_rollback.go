package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerRollbackBeforeFinalize(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/rollback-before-finalize",
		Description: "under the workload, with the preserve option set: roll every node 1.0 -> 1.1, roll every node back to 1.0, " +
			"roll forward again, finalize (seeded: by hand or automatically); rows written in every phase are all there, no " +
			"acknowledged write is lost and the history is linearizable",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: rollbackPlan,
	})
}

func rollbackPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	byHand := rng.IntN(2) == 0
	finalVia := 1 + rng.IntN(p.Nodes)
	rows := &writeAndCheck{table: "rb"}
	type pass struct {
		from, to string
		order    []int
		kills    []bool
	}
	passes := []pass{{from: r10, to: r11}, {from: r11, to: r10}, {from: r10, to: r11}}
	for i := range passes {
		passes[i].order = rng.Perm(p.Nodes)
		passes[i].kills = make([]bool, p.Nodes)
		for j := range passes[i].kills {
			// Half the stops are kill -9: a rollback must survive a node
			// that did not drain, and it keeps the scenario short.
			passes[i].kills[j] = rng.IntN(2) == 0
		}
	}
	header := []string{fmt.Sprintf("%d nodes on 1.0, init through n%d; finalize %s through n%d", p.Nodes, initVia,
		map[bool]string{true: "by hand", false: "automatically"}[byHand], finalVia)}
	for _, ps := range passes {
		var names []string
		for _, i := range ps.order {
			names = append(names, fmt.Sprintf("n%d (%s)", i+1, how(ps.kills[i])))
		}
		header = append(header, fmt.Sprintf("%s -> %s: %s", ps.from, ps.to, strings.Join(names, ", ")))
	}
	plan := &registry.Plan{Header: header}
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartCluster([]string{r10}, initVia), "start %d nodes on 1.0, init through n%d", p.Nodes, initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	plan.Addf(rows.write(initVia, 300), "write 300 rows into %s at 1.0 through n%d", rows.table, initVia)
	plan.Addf(setPreserve(sc, initVia, r10), "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0' through n%d", initVia)
	for pi, ps := range passes {
		for k, i := range ps.order {
			verb := "upgrade"
			if older(ps.to, ps.from) {
				verb = "roll back"
			}
			plan.Addf(restartStep(sc, i+1, ps.to, ps.kills[i], 10), "%s n%d %s -> %s (stop with %s); the workload gets 10 writes acknowledged",
				verb, i+1, ps.from, ps.to, how(ps.kills[i]))
			via := ps.order[(k+1)%p.Nodes] + 1
			plan.Addf(rows.write(via, 50), "write 50 rows into %s through n%d", rows.table, via)
		}
		want := r10
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			if err := steps.CheckVersion(ctx, e.Cluster, want); err != nil {
				return errors.Wrap(err, "not finalized while the preserve option is set")
			}
			return nil
		}, "pass %d done: every node runs %s; the cluster version is still 1.0", pi+1, ps.to)
		plan.Addf(rows.check(), "read %s through every node: all %d rows written so far", rows.table, rows.next)
	}
	plan.Addf(finalizeStep(sc, finalVia, r11, byHand), "finalize 1.1 %s through n%d; every node reports 1.1",
		map[bool]string{true: "by hand", false: "automatically (RESET the preserve option)"}[byHand], finalVia)
	plan.Addf(checkMigrationJob(finalVia), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", finalVia)
	plan.Addf(rows.write(finalVia, 100), "write 100 rows into %s at 1.1 through n%d", rows.table, finalVia)
	plan.Addf(rows.check(), "read %s through every node: all %d rows, rewritten by the migration or written at 1.1", rows.table, rows.next)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(100))
	return plan, nil
}

// versionStepPauseEnv is pausepoint.VersionStepEnv (roachtest does not
// link the server): a node started with it pauses a finalization it
// coordinates before persisting the named step, until a file exists.
const versionStepPauseEnv = "KVNODE_TESTING_VERSION_STEP_PAUSE"

// fence11 is the first internal step of 1.1, its fence: from it on, a 1.0
// binary refuses the store.
const fence11 = "1.1-step.1"

func registerRollbackPartialFence(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/rollback-partial-fence",
		Description: "under the workload, every node on 1.1 at cluster version 1.0, automatic upgrades off: SET CLUSTER SETTING version = '1.1' " +
			"by hand is interrupted after its coordinator read the node list for the fence (" + versionStepPauseEnv + "), by a kill -9 " +
			"of another node, so the fence is persisted on two nodes and not on the third; the operator tries to roll back: the " +
			"un-fenced node starts on 1.0, a fenced node refuses 1.0 naming both versions, the status page and SHOW UPGRADE STATUS " +
			"name the nodes that cannot roll back; rolling forward again finalizes 1.1, nothing acknowledged is lost",
		Suite: registry.Short, Nodes: 3, MinNodes: 3,
		Plan: rollbackPartialFencePlan,
	})
}

// rollbackPartialFencePlan: the seed chooses the node that bootstraps, the
// upgrade order and stops, the coordinator of the finalization (the node
// the SET goes through), the node killed during it (the un-fenced one),
// which fenced node the operator tries to roll back, the node whose status
// is read, and how the finalization is completed after rolling forward (SET
// again by hand, or automatic upgrades back on).
func rollbackPartialFencePlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	initVia := 1 + rng.IntN(p.Nodes)
	order := rng.Perm(p.Nodes)
	kills := make([]bool, p.Nodes)
	for i := range kills {
		kills[i] = rng.IntN(2) == 0
	}
	coord := 1 + rng.IntN(p.Nodes)
	victim := pickOther(rng, p.Nodes, coord)
	fenced := others(p.Nodes, victim)
	tryFenced := fenced[rng.IntN(len(fenced))]
	statusVia := 1 + rng.IntN(p.Nodes)
	forwardKill := rng.IntN(2) == 0
	byHand := rng.IntN(2) == 0
	finalVia := 1 + rng.IntN(p.Nodes)
	rows := &writeAndCheck{table: "pf"}
	ids := map[int]int{} // node -> node ID
	var release string   // the fence's release file
	setDone := make(chan error, 1)

	var orderNames []string
	for _, i := range order {
		orderNames = append(orderNames, fmt.Sprintf("n%d (%s)", i+1, how(kills[i])))
	}
	finish := fmt.Sprintf("SET CLUSTER SETTING version = '1.1' again through n%d", finalVia)
	if !byHand {
		finish = fmt.Sprintf("SET CLUSTER SETTING cluster.auto_upgrade.enabled = true through n%d", finalVia)
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%d nodes on 1.0, init through n%d; automatic upgrades off; upgrade order to 1.1: %s", p.Nodes, initVia, strings.Join(orderNames, ", ")),
		fmt.Sprintf("SET CLUSTER SETTING version = '1.1' through n%d, paused before persisting %s; kill -9 n%d then; fenced: %s", coord, fence11, victim, nodeList(fenced)),
		fmt.Sprintf("rollback: n%d starts on 1.0; n%d (fenced) refuses 1.0; status read through n%d", victim, tryFenced, statusVia),
		fmt.Sprintf("forward: n%d back on 1.1 (stop with %s); %s", victim, how(forwardKill), finish),
	}}
	plan.Add("build or find the binaries of 1.0 and 1.1", sc.Binaries(r10, r11))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		dir := filepath.Join(e.Dir, "version-step-pause")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		release = filepath.Join(dir, "release-"+fence11)
		e.Cluster.SetStartArgs(fastAutoUpgrade)
		e.Cluster.SetStartEnv(versionStepPauseEnv + "=" + fence11 + ":" + release)
		e.Logf("every start: %s %s=%s:%s", fastAutoUpgrade, versionStepPauseEnv, fence11, release)
		e.Defer(func() { _ = os.WriteFile(release, []byte("released by roachtest\n"), 0o644) })
		return nil
	}, "every node starts with %s and %s=%s:<release file> (a finalization pauses before persisting its fence)", fastAutoUpgrade, versionStepPauseEnv, fence11)
	plan.Addf(sc.StartCluster([]string{r10}, initVia), "start %d nodes on 1.0, init through n%d", p.Nodes, initVia)
	plan.Add("note every node's ID", func(ctx context.Context, e *registry.Env) error {
		for i := 1; i <= p.Nodes; i++ {
			id, err := e.Cluster.Node(i).NodeID(ctx)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		e.Logf("node IDs: %v", ids)
		return nil
	})
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return e.Cluster.Node(initVia).ExecIdempotent(ctx, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false")
	}, "SET CLUSTER SETTING cluster.auto_upgrade.enabled = false through n%d (the operator finalizes by hand)", initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Addf(createTable(rows.table, initVia), "CREATE TABLE %s through n%d", rows.table, initVia)
	plan.Addf(rows.write(initVia, 300), "write 300 rows into %s at 1.0 through n%d", rows.table, initVia)
	for k, i := range order {
		plan.Addf(restartStep(sc, i+1, r11, kills[i], 10), "upgrade n%d 1.0 -> 1.1 (stop with %s); the workload gets 10 writes acknowledged", i+1, how(kills[i]))
		writeVia := order[(k+1)%len(order)] + 1
		plan.Addf(rows.write(writeVia, 50), "write 50 rows into %s through n%d", rows.table, writeVia)
	}
	plan.Add("every node runs 1.1; the cluster stays at 1.0 (automatic upgrades are off)", func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r10)
	})
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(coord)
		go func() {
			// The client's own connection: this statement must not be
			// retried (it is the interrupted attempt the scenario is about).
			setDone <- n.Exec(context.WithoutCancel(ctx), "SET CLUSTER SETTING version = '1.1'")
		}()
		marker := release + ".paused"
		start := time.Now()
		if err := steps.Eventually(ctx, 60*time.Second, func() error {
			b, err := os.ReadFile(marker)
			if err != nil {
				return errors.Newf("n%d has not paused before persisting %s yet", coord, fence11)
			}
			if want := fmt.Sprintf("pid %d\nstep %s\n", n.Pid(), fence11); string(b) != want {
				return steps.Permanent(errors.Newf("the pause marker says %q, want %q (n%d, the coordinator)", b, want, coord))
			}
			return nil
		}); err != nil {
			return err
		}
		e.Logf("n%d paused before persisting %s after %s", coord, fence11, time.Since(start).Round(time.Millisecond))
		sc.Note(e, "killing n%d (node ID %d) while n%d's finalization is paused before the fence", victim, ids[victim], coord)
		if err := e.Cluster.Node(victim).Kill(); err != nil {
			return err
		}
		if err := os.WriteFile(release, []byte("released by roachtest\n"), 0o644); err != nil {
			return err
		}
		var err error
		select {
		case err = <-setDone:
		case <-time.After(90 * time.Second):
			return errors.Newf("SET CLUSTER SETTING version = '1.1' through n%d has not returned 90s after the release", coord)
		}
		if err == nil {
			return errors.Newf("SET CLUSTER SETTING version = '1.1' through n%d succeeded although n%d was killed before the fence reached it", coord, victim)
		}
		msg := err.Error()
		for _, w := range []string{fence11, fmt.Sprintf("node %d", ids[victim])} {
			if !strings.Contains(msg, w) {
				return errors.Newf("SET CLUSTER SETTING version = '1.1' failed, but its error does not name %q: %s", w, msg)
			}
		}
		sc.Note(e, "the finalization failed after persisting the fence on %s: %s (SQLSTATE %s)", nodeList(fenced), msg, cluster.SQLState(err))
		return nil
	}, "SET CLUSTER SETTING version = '1.1' through n%d; once it paused before persisting %s (its node list read), kill -9 n%d and release it: "+
		"the statement fails naming the fence and n%d's node ID", coord, fence11, victim, victim)
	// While the victim is dead, its status is read through a fenced node.
	deadVia := statusVia
	if deadVia == victim {
		deadVia = coord
	}
	wantPersisted := func(ctx context.Context, e *registry.Env, statusVia int, victimWant ...string) error {
		return steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			if st.ReplicatedVersion != r10 {
				return steps.Permanent(errors.Newf("GET /_status/upgrade through n%d: replicated version %s, want 1.0 (the fence is not on every node):\n%s",
					statusVia, st.ReplicatedVersion, st.Raw))
			}
			got := map[int]string{}
			for _, nd := range st.Nodes {
				got[nd.NodeID] = nd.PersistedVersion
			}
			for _, f := range fenced {
				if got[ids[f]] != fence11 {
					return errors.Newf("GET /_status/upgrade through n%d: node %d (n%d) persisted %q, want %s:\n%s", statusVia, ids[f], f, got[ids[f]], fence11, st.Raw)
				}
			}
			if !slices.Contains(victimWant, got[ids[victim]]) {
				return errors.Newf("GET /_status/upgrade through n%d: node %d (n%d) persisted %q, want one of %q:\n%s", statusVia, ids[victim], victim, got[ids[victim]], victimWant, st.Raw)
			}
			return nil
		})
	}
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return wantPersisted(ctx, e, deadVia, r10, "")
	}, "GET /_status/upgrade through n%d: replicated version 1.0, %s persisted %s; n%d (dead) at 1.0 or unknown", deadVia, nodeList(fenced), fence11, victim)
	plan.Add("every running node reports cluster version 1.0; the workload gets 10 writes acknowledged", func(ctx context.Context, e *registry.Env) error {
		if err := steps.CheckVersion(ctx, e.Cluster, r10); err != nil {
			return err
		}
		return sc.Workload.WaitProgress(ctx, 10, 60*time.Second)
	})
	// The operator rolls back.
	plan.Addf(startOn(sc, victim, r10), "roll back n%d (not fenced) to 1.0: start it on 1.0 on its store (persisted at 1.0); it is ready", victim)
	plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		if err := wantPersisted(ctx, e, statusVia, r10); err != nil {
			return err
		}
		var fencedIDs []int
		for _, f := range fenced {
			fencedIDs = append(fencedIDs, ids[f])
		}
		slices.Sort(fencedIDs)
		return steps.Eventually(ctx, 30*time.Second, func() error {
			c, err := e.Cluster.Node(statusVia).Console(ctx)
			if err != nil {
				return err
			}
			text := c.Text()
			want := []string{"can no longer be rolled back", "nodes " + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(fencedIDs)), ", "), "[]"), fence11, "which the 1.0 binary cannot run"}
			for _, w := range want {
				if !strings.Contains(text, w) {
					return errors.Newf("GET /_status/console through n%d: the banners do not say %q:\n%s", statusVia, w, text)
				}
			}
			if strings.Contains(text, "can still be rolled back") {
				return steps.Permanent(errors.Newf("GET /_status/console through n%d advises a rollback that the fenced nodes refuse:\n%s", statusVia, text))
			}
			rowsSt, err := e.Cluster.Node(statusVia).ShowUpgradeStatus(ctx)
			if err != nil {
				return err
			}
			got := map[int64]string{}
			for _, r := range rowsSt {
				if r.Item == "persisted_version" {
					got[r.NodeID] = r.Value
				}
			}
			for n, id := range ids {
				want := r10
				if n != victim {
					want = fence11
				}
				if got[int64(id)] != want {
					return errors.Newf("SHOW UPGRADE STATUS through n%d: persisted_version of node %d is %q, want %s (rows %v)", statusVia, id, got[int64(id)], want, rowsSt)
				}
			}
			for _, b := range c.Banners {
				if strings.Contains(b.String(), "rolled back") {
					e.Logf("console through n%d: %s", statusVia, b)
				}
			}
			return nil
		})
	}, "through n%d: GET /_status/upgrade and SHOW UPGRADE STATUS show %s persisted %s and n%d 1.0; the status page (GET /_status/console) "+
		"says the upgrade can no longer be rolled back, naming the fenced nodes, and nowhere that it can", statusVia, nodeList(fenced), fence11, victim)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(tryFenced)
		if err := n.Stop(ctx); err != nil {
			return err
		}
		return expectRefusedStart(sc, tryFenced, r10, "release 1.0", "cluster version is "+fence11, "fence",
			"run a binary of release 1.1 or newer", "cannot be rolled back")(ctx, e)
	}, "roll back n%d (fenced): stop it (SIGTERM), start it on 1.0: it exits naming 1.0, %s, release 1.1 and that it cannot roll back", tryFenced, fence11)
	plan.Addf(startOn(sc, tryFenced, r11), "start n%d on 1.1 again (its store, unchanged)", tryFenced)
	plan.Add("the workload gets 10 writes acknowledged", sc.WaitProgress(10, 60*time.Second))
	plan.Addf(rows.write(victim, 50), "write 50 rows into %s through n%d (on 1.0)", rows.table, victim)
	plan.Addf(rows.check(), "read %s through every node (two on 1.1, n%d on 1.0): every row", rows.table, victim)
	// The operator rolls forward again.
	plan.Addf(restartStep(sc, victim, r11, forwardKill, 10), "roll n%d forward to 1.1 again (stop with %s); the workload gets 10 writes acknowledged", victim, how(forwardKill))
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		stmt := "SET CLUSTER SETTING version = '1.1'"
		if !byHand {
			stmt = "SET CLUSTER SETTING cluster.auto_upgrade.enabled = true"
		}
		if err := e.Cluster.Node(finalVia).ExecIdempotent(ctx, stmt); err != nil {
			return err
		}
		sc.Note(e, "%s through n%d", stmt, finalVia)
		d, err := steps.WaitVersion(ctx, e.Cluster, r11, 3*time.Minute)
		if err != nil {
			return err
		}
		sc.Note(e, "every node reports cluster version 1.1 (%s)", d.Round(10*time.Millisecond))
		return nil
	}, "%s; every node reports cluster version 1.1", finish)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := e.Cluster.Node(statusVia).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			if st.ReplicatedVersion != r11 || len(st.Blockers) != 0 {
				return errors.Newf("GET /_status/upgrade through n%d: want version 1.1, no blocker:\n%s", statusVia, st.Raw)
			}
			for _, nd := range st.Nodes {
				if nd.PersistedVersion != r11 {
					return errors.Newf("GET /_status/upgrade through n%d: node %d persisted %q, want 1.1:\n%s", statusVia, nd.NodeID, nd.PersistedVersion, st.Raw)
				}
			}
			return nil
		})
	}, "GET /_status/upgrade through n%d: replicated version 1.1, every node persisted 1.1, no blocker", statusVia)
	plan.Addf(checkMigrationJob(finalVia), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", finalVia)
	plan.Addf(rows.write(finalVia, 100), "write 100 rows into %s at 1.1 through n%d", rows.table, finalVia)
	plan.Addf(rows.check(), "read %s through every node: every row written at 1.0, in the mix, behind the partial fence and at 1.1", rows.table)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(100))
	return plan, nil
}
