package tests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/roachtest/cluster"
	"github.com/kvnode/kvnode/roachtest/registry"
	"github.com/kvnode/kvnode/roachtest/steps"
)

func registerRefusals(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "upgrade/refusals",
		Description: "what must be refused is, clearly, and changes nothing: a 2.0 binary on a 1.0 store, a 1.0 binary on a store " +
			"finalized at 1.1, a fresh 1.0 node joining a 1.1 cluster (each exits naming both versions and the fix, and the fix " +
			"works), and malformed, unknown, internal, too-new and release-skipping downgrade SET CLUSTER SETTING version values and preserve " +
			"options for another version (each a clear SQL error; versions, settings and jobs unchanged)",
		Suite: registry.Short, Nodes: 4, MinNodes: 4,
		Plan: refusalsPlan,
	})
}

// badSetting is a statement that must be refused, the SQLSTATE it must
// carry ("" for any) and what its message (with hint) must name.
type badSetting struct {
	stmt  string
	code  string
	wants []string
}

// badSettingsAt returns the statements that must be refused on a cluster at
// version active whose nodes all run release binary, with the preserve
// option at preserve ("" for unset).
func badSettingsAt(active, binary, preserve string) []badSetting {
	// Each refusal has its SQLSTATE (issue 16): 22023 only for a value that
	// names no release, 0A000 for what kvnode does not do, 55000 for a
	// cluster not ready to finalize.
	const (
		invalid     = "22023" // invalid_parameter_value
		unsupported = "0A000" // feature_not_supported
		notReady    = "55000" // object_not_in_prerequisite_state
	)
	out := []badSetting{
		{"SET CLUSTER SETTING version = 'banana'", invalid, []string{"banana", "malformed"}},
		{"SET CLUSTER SETTING version = ''", invalid, []string{"malformed"}},
		{"SET CLUSTER SETTING version = '1.x'", invalid, []string{"1.x", "malformed"}},
		{"SET CLUSTER SETTING version = '0.9'", invalid, []string{"0.9", "unknown", "1.0, 1.1, 2.0"}},
		{"SET CLUSTER SETTING version = '1.5'", invalid, []string{"1.5", "unknown"}},
		{"SET CLUSTER SETTING version = '3.0'", invalid, []string{"3.0", "unknown"}},
		{"SET CLUSTER SETTING version = '1.1-step.1'", invalid, []string{"1.1-step.1"}},
		{"SET CLUSTER SETTING version = 11", invalid, []string{"string"}},
		{"RESET CLUSTER SETTING version", unsupported, []string{"cannot be reset"}},
		{"SET CLUSTER SETTING cluster.preserve_downgrade_option = 'banana'", "", []string{"banana", active}},
	}
	for _, v := range []string{r10, r11, r20} {
		if v != active {
			out = append(out, badSetting{fmt.Sprintf("SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", v), "",
				[]string{v, "current cluster version " + active}})
		}
	}
	for _, v := range []string{r10, r11, r20} {
		stmt := fmt.Sprintf("SET CLUSTER SETTING version = '%s'", v)
		switch {
		case older(v, active) && isPrevRelease(v, active):
			// A downgrade (reversible finalization): not a bad statement.
		case older(v, active):
			out = append(out, badSetting{stmt, unsupported, []string{"downgrade", active, v}})
		case v == active:
			// A no-op, allowed.
		case preserve != "":
			out = append(out, badSetting{stmt, notReady, []string{"preserve_downgrade_option", preserve, "RESET"}})
		case older(binary, v):
			out = append(out, badSetting{stmt, notReady, []string{"running " + binary, "cannot run cluster version " + v}})
		}
	}
	if preserve != "" && active != binary {
		out = append(out, badSetting{"SET CLUSTER SETTING version = crdb_internal.node_executable_version()", notReady,
			[]string{"preserve_downgrade_option"}})
	}
	return out
}

// isPrevRelease reports whether release a is the release just below b,
// the one a downgrade from b goes to.
func isPrevRelease(a, b string) bool {
	va, err1 := clusterversion.Parse(a)
	vb, err2 := clusterversion.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	p, ok := clusterversion.PrevRelease(vb)
	return ok && p == va
}

// older reports whether release a is older than release b.
func older(a, b string) bool {
	va, err1 := clusterversion.Parse(a)
	vb, err2 := clusterversion.Parse(b)
	return err1 == nil && err2 == nil && va.Less(vb)
}

// expectBadSettings runs each statement through the seeded nodes (one
// after the other, round-robin over through) and checks that each is
// refused as it must be and that nothing changed: every running node still
// reports version active, has persisted nothing newer (no fence left
// behind), shows preserve as the preserve option, and SHOW JOBS lists
// jobs jobs.
func expectBadSettings(bad []badSetting, through []int, active, preserve string, jobs int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		for i, b := range bad {
			n := e.Cluster.Node(through[i%len(through)])
			msg, err := steps.ExpectSQLError(ctx, n, b.stmt, b.code, b.wants...)
			if err != nil {
				return err
			}
			e.Logf("refused through %s: %s: %s", n, b.stmt, msg)
		}
		if err := steps.CheckVersion(ctx, e.Cluster, active); err != nil {
			return errors.Wrap(err, "after the refused statements")
		}
		for _, n := range e.Cluster.Running() {
			st, err := n.UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			if st.ActiveVersion != active || st.ReplicatedVersion != active || st.InProgress != "" {
				return errors.Newf("after the refused statements, %s has persisted version %s (replicated %s, in progress %q), want %s",
					n, st.ActiveVersion, st.ReplicatedVersion, st.InProgress, active)
			}
			p, err := steps.Setting(ctx, n, "cluster.preserve_downgrade_option")
			if err != nil {
				return err
			}
			if p != preserve {
				return errors.Newf("after the refused statements, %s shows cluster.preserve_downgrade_option = %q, want %q", n, p, preserve)
			}
		}
		js, err := e.Cluster.Node(through[0]).Jobs(ctx)
		if err != nil {
			return err
		}
		if len(js) != jobs {
			return errors.Newf("after the refused statements, SHOW JOBS lists %d jobs, want %d: %v", len(js), jobs, js)
		}
		e.Logf("%d statements refused; version %s, preserve option %q and %d job(s) unchanged", len(bad), active, preserve, jobs)
		return nil
	}
}

// expectRefusedStart runs release's binary on node's slot and checks that
// it exits, naming every string of wants and a hint (what to do).
func expectRefusedStart(sc *steps.Scenario, node int, release string, wants ...string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(node)
		bin, err := e.Binary(ctx, releaseOrDefault(release))
		if err != nil {
			return err
		}
		sc.Note(e, "starting %s on %s, which must refuse", n, bin.Name())
		out, err := n.StartExpectExit(ctx, bin, 60*time.Second)
		if err != nil {
			return err
		}
		var missing []string
		for _, w := range append(wants, "HINT:") {
			if !strings.Contains(out, w) {
				missing = append(missing, fmt.Sprintf("%q", w))
			}
		}
		if len(missing) > 0 {
			return errors.Newf("%s on %s refused to start, but its output does not name %s:\n%s", n, bin.Name(), strings.Join(missing, ", "), out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "ERROR:") || strings.HasPrefix(line, "HINT:") {
				e.Logf("  %s", line)
			}
		}
		return nil
	}
}

// startOn starts a stopped node on release and waits until it is ready.
func startOn(sc *steps.Scenario, node int, release string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(node)
		bin, err := e.Binary(ctx, releaseOrDefault(release))
		if err != nil {
			return err
		}
		if err := n.Start(ctx, bin); err != nil {
			return err
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
		sc.Note(e, "%s ready on %s", n, bin.Name())
		return nil
	}
}

// livenessRecords is the number of rows of crdb_internal.gossip_liveness
// through n: every node the cluster ever gave an ID.
func livenessRecords(ctx context.Context, n *cluster.Node) (int64, error) {
	return n.QueryInt(ctx, "SELECT count(*) FROM crdb_internal.gossip_liveness")
}

func refusalsPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	sc := &steps.Scenario{}
	members := others(p.Nodes, p.Nodes) // the cluster; the last slot is the fresh joiner
	joiner := p.Nodes
	initVia := members[rng.IntN(len(members))]
	storeB := members[rng.IntN(len(members))]   // its 1.0 store is opened by 2.0
	storeA := members[rng.IntN(len(members))]   // its 1.1 store is opened by 1.0
	finalVia := members[rng.IntN(len(members))] // SET CLUSTER SETTING version = '1.1' through it
	order := rng.Perm(len(members))
	kills := make([]bool, len(members))
	for i := range kills {
		kills[i] = rng.IntN(2) == 0
	}
	through := append([]int(nil), members...)
	rng.Shuffle(len(through), func(i, j int) { through[i], through[j] = through[j], through[i] })

	var orderNames []string
	for _, i := range order {
		orderNames = append(orderNames, fmt.Sprintf("n%d (%s)", members[i], how(kills[i])))
	}
	plan := &registry.Plan{Header: []string{
		fmt.Sprintf("%s on 1.0, init through n%d; n%d is a fresh node that must be refused at 1.1", nodeList(members), initVia, joiner),
		fmt.Sprintf("2.0 opens n%d's 1.0 store; upgrade order to 1.1: %s; finalize through n%d; 1.0 opens n%d's 1.1 store",
			storeB, strings.Join(orderNames, ", "), finalVia, storeA),
		fmt.Sprintf("bad statements go through %s in turn", nodeList(through)),
	}}
	plan.Add("build or find the binaries of 1.0, 1.1 and 2.0", sc.Binaries(r10, r11, cluster.DefaultRelease))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartNodes(r10, members, initVia), "start %s on 1.0, init through n%d (n%d stays empty)", nodeList(members), initVia, joiner)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))

	// (d) at 1.0, every binary 1.0.
	bad10 := badSettingsAt(r10, r10, "")
	plan.Addf(expectBadSettings(bad10, through, r10, "", 0),
		"at 1.0 on 1.0 binaries, %d bad statements are refused (malformed, unknown, internal step, non-string, RESET, preserve "+
			"for another version, too new for the binaries); version 1.0, no preserve option, no job, no fence persisted", len(bad10))

	// (b) a 1.0 store opened by 2.0.
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "stopping n%d", storeB)
		return e.Cluster.Node(storeB).Stop(ctx)
	}, "stop n%d (SIGTERM)", storeB)
	plan.Addf(expectRefusedStart(sc, storeB, r20, "release 2.0", "1.0", "1.1"),
		"start n%d on 2.0 (which serves 1.1 to 2.0): it refuses its 1.0 store, naming 1.0 and 2.0, and says to finish the upgrade to 1.1 first", storeB)
	plan.Addf(startOn(sc, storeB, r10), "start n%d on 1.0 again: its store was left as it was", storeB)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))

	// Upgrade to 1.1, held back.
	plan.Addf(setPreserve(sc, through[0], r10), "SET CLUSTER SETTING cluster.preserve_downgrade_option = '1.0' through n%d", through[0])
	for _, i := range order {
		plan.Addf(restartStep(sc, members[i], r11, kills[i], 10), "upgrade n%d 1.0 -> 1.1 (stop with %s); the workload gets 10 writes acknowledged",
			members[i], how(kills[i]))
	}
	held := badSettingsAt(r10, r11, r10)
	plan.Addf(expectBadSettings(held, through, r10, r10, 0),
		"every node on 1.1, held at 1.0: %d bad statements are refused (finalizing while the preserve option is set, too new "+
			"for 1.1 binaries, ...); nothing changed", len(held))

	// Finalize by hand.
	plan.Addf(finalizeStep(sc, finalVia, r11, true), "finalize 1.1 by hand through n%d", finalVia)
	plan.Addf(checkMigrationJob(finalVia), "SHOW JOBS through n%d: the 1.1 migration ran as one job and succeeded", finalVia)

	// (d) at 1.1.
	bad11 := badSettingsAt(r11, r11, "")
	plan.Addf(expectBadSettings(bad11, through, r11, "", 1),
		"at 1.1, %d bad statements are refused (2.0 on 1.1 binaries, preserve 1.0 or 2.0, ...); version 1.1, "+
			"no preserve option, one job", len(bad11))

	// (a) a store finalized at 1.1 opened by 1.0.
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		sc.Note(e, "stopping n%d", storeA)
		return e.Cluster.Node(storeA).Stop(ctx)
	}, "stop n%d (SIGTERM)", storeA)
	plan.Addf(expectRefusedStart(sc, storeA, r10, "release 1.0", "1.1"),
		"start n%d on 1.0: it refuses its store finalized at 1.1, naming 1.0 and 1.1 and the binary to use", storeA)
	plan.Addf(startOn(sc, storeA, r11), "start n%d on 1.1 again: its store was left as it was", storeA)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))

	// (c) a fresh 1.0 node joining the 1.1 cluster.
	var records int64
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		var err error
		records, err = livenessRecords(ctx, e.Cluster.Node(through[0]))
		if err != nil {
			return err
		}
		return expectRefusedStart(sc, joiner, r10, "1.0", "1.1")(ctx, e)
	}, "start a fresh n%d on 1.0 with --join: the cluster refuses it and it exits, naming 1.0 and 1.1 and the binary to use", joiner)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		got, err := livenessRecords(ctx, e.Cluster.Node(through[1%len(through)]))
		if err != nil {
			return err
		}
		if got != records {
			return errors.Newf("the refused joiner left a trace: crdb_internal.gossip_liveness has %d rows, %d before it tried", got, records)
		}
		return nil
	}, "the refused joiner got no node ID: crdb_internal.gossip_liveness has as many rows as before")
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		if err := startOn(sc, joiner, r11)(ctx, e); err != nil {
			return err
		}
		// In 1.x the schema reaches a new node apart from the Raft log (the
		// pre-Raft procedure): it may be ready before it knows the tables.
		d, err := steps.WaitReadable(ctx, e.Cluster.Node(joiner), "rt_reg")
		if err != nil {
			return err
		}
		if d > 0 {
			e.Logf("n%d could read the workload's tables %s after it was ready (42P01 until its schema caught up)", joiner, d.Round(time.Millisecond))
		}
		return steps.WaitForTable(ctx, e.Cluster, "rt_reg", "rt_log")
	}, "start n%d on 1.1, as the refusal said: it joins the 1.1 cluster and gets the schema", joiner)
	plan.Addf(func(ctx context.Context, e *registry.Env) error {
		return steps.CheckVersion(ctx, e.Cluster, r11)
	}, "every node, n%d included, reports cluster version 1.1", joiner)
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, 60*time.Second))
	plan.Add("stop the workload, read everything back through every node, check the history", sc.CheckWorkload(60))
	return plan, nil
}
