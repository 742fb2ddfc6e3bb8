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

// The releases of the ladder these scenarios are about (../shared/DESIGN.md
// fixes it: 1.0 -> 1.1 -> 2.0), and the internal step at which the 1.1
// migration (rewrite every row into encoding v2) runs.
const (
	r10 = "1.0"
	r11 = "1.1"
	r20 = "2.0"
	// step11Migration is where the 1.1 migration runs: the cluster is at
	// 1.1-step.2, persisted on every node, while it does.
	step11Migration = "1.1-step.2"
)

// fastAutoUpgrade is the start flag that makes every node's auto-upgrade
// loop look every second instead of every 10s (and back off to 6s instead
// of 60s while blocked), so a scenario waits for finalization in seconds.
// The flag is hidden and meant for tests; every release built from this
// tree has it.
const fastAutoUpgrade = "--auto-upgrade-interval=1s"

// registerUpgradeScenarios adds the issue-5 upgrade scenarios: the RFC's
// test plan, refusals, rollback before finalization, a coordinator killed
// in the middle of the 1.1 migration, and concurrent SET CLUSTER SETTING
// version. (upgrade/finalize, the seeded mixed-version plans, is registered
// by registerUpgrade with finalizePlans.)
func registerUpgradeScenarios(r *registry.Registry) {
	registerRFCTestPlan(r)
	registerRefusals(r)
	registerRollbackBeforeFinalize(r)
	registerRollbackPartialFence(r)
	registerPartlyFenced(r)
	registerMigrationScenarios(r)
	registerUpgradeCost(r)
}

// fastAutoUpgradeStep makes every later start use fastAutoUpgrade.
func fastAutoUpgradeStep() steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		e.Cluster.SetStartArgs(fastAutoUpgrade)
		return nil
	}
}

// releaseOrDefault turns a release into what the Builder takes: the newest
// release on the ladder is the tree's default binary; an older one is built
// as that release.
func releaseOrDefault(r string) string {
	if r == clusterversion.Latest.String() {
		return cluster.DefaultRelease
	}
	return r
}

// setPreserve holds finalization back at release through node via and
// checks that every running node shows it.
func setPreserve(sc *steps.Scenario, via int, release string) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		if err := n.ExecIdempotent(ctx, fmt.Sprintf("SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", release)); err != nil {
			return err
		}
		sc.Note(e, "cluster.preserve_downgrade_option = '%s' (through %s)", release, n)
		return waitSetting(ctx, e.Cluster, "cluster.preserve_downgrade_option", release)
	}
}

// waitSetting waits until every running node shows the cluster setting at
// want.
func waitSetting(ctx context.Context, c *cluster.Cluster, name, want string) error {
	for _, n := range c.Running() {
		if err := steps.Eventually(ctx, 30*time.Second, func() error {
			v, err := steps.Setting(ctx, n, name)
			if err != nil {
				return err
			}
			if v != want {
				return errors.Newf("%s shows %s = %q, want %q", n, name, v, want)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// finalizeStep finalizes the cluster to release through node via and waits
// until every running node reports it: by hand (automatic upgrades off,
// RESET the preserve option, SET CLUSTER SETTING version, automatic upgrades
// back on) or automatically (RESET the preserve option and let the
// auto-upgrade loop do it).
func finalizeStep(sc *steps.Scenario, via int, release string, byHand bool) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(via)
		stmts := []string{"RESET CLUSTER SETTING cluster.preserve_downgrade_option"}
		if byHand {
			stmts = []string{
				"SET CLUSTER SETTING cluster.auto_upgrade.enabled = false",
				"RESET CLUSTER SETTING cluster.preserve_downgrade_option",
				fmt.Sprintf("SET CLUSTER SETTING version = '%s'", release),
				"SET CLUSTER SETTING cluster.auto_upgrade.enabled = true",
			}
		}
		sc.Note(e, "finalizing %s through %s (%s)", release, n, map[bool]string{true: "by hand", false: "automatically"}[byHand])
		for _, stmt := range stmts {
			if err := n.ExecIdempotent(ctx, stmt); err != nil {
				return err
			}
		}
		d, err := steps.WaitVersion(ctx, e.Cluster, release, 3*time.Minute)
		if err != nil {
			return err
		}
		sc.Note(e, "every running node reports cluster version %s (%s after the last statement)", release, d.Round(10*time.Millisecond))
		return nil
	}
}

// restartStep restarts node on release (SIGKILL if kill, else SIGTERM),
// then waits for progress more acknowledged writes of the workload if it
// runs.
func restartStep(sc *steps.Scenario, node int, release string, kill bool, progress int64) steps.Func {
	restart := sc.Restart(node, releaseOrDefault(release), kill)
	return func(ctx context.Context, e *registry.Env) error {
		if err := restart(ctx, e); err != nil {
			return err
		}
		if sc.Workload != nil && progress > 0 {
			if err := sc.Workload.WaitProgress(ctx, progress, 90*time.Second); err != nil {
				return errors.Wrapf(err, "after restarting n%d on %s", node, release)
			}
		}
		return nil
	}
}

// how names a stop: "SIGKILL" or "SIGTERM".
func how(kill bool) string {
	if kill {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// checkNotFinalized checks that the cluster stays at version (every running
// node), that GET /_status/upgrade through node via names exactly the
// blocker kinds want (in any order), and that SHOW UPGRADE STATUS through
// via shows the same blockers. It waits until the blockers are as wanted
// (liveness takes a few seconds to notice a stopped node), then for the
// auto-upgrade loop to have logged a decision with every wanted blocker
// since logMark (see logCount), so that "not finalized" is the loop's
// decision and not merely that it has not looked yet.
func checkNotFinalized(ctx context.Context, e *registry.Env, via int, version string, logMark int, want ...string) (*cluster.UpgradeStatus, error) {
	n := e.Cluster.Node(via)
	var st *cluster.UpgradeStatus
	if err := steps.Eventually(ctx, 90*time.Second, func() error {
		var err error
		st, err = n.UpgradeStatus(ctx)
		if err != nil {
			return err
		}
		if !sameSet(st.BlockerKinds(), want) {
			return errors.Newf("GET /_status/upgrade through %s: blockers %v, want %v:\n%s", n, st.BlockerKinds(), want, st.Raw)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if st.Target == "" {
		return st, errors.Newf("GET /_status/upgrade through %s names no target version although a newer binary runs:\n%s", n, st.Raw)
	}
	for _, b := range st.Blockers {
		e.Logf("blocker (GET /_status/upgrade through %s): %s", n, b)
		if b.Reason == "" || b.Fix == "" {
			return st, errors.Newf("blocker %s lacks a reason or a fix:\n%s", b.Kind, st.Raw)
		}
	}
	rows, err := n.ShowUpgradeStatus(ctx)
	if err != nil {
		return st, err
	}
	var sqlKinds []string
	for _, r := range rows {
		if r.Item == "blocker" {
			sqlKinds = append(sqlKinds, r.Value)
			if !strings.Contains(r.Detail, "fix:") {
				return st, errors.Newf("SHOW UPGRADE STATUS through %s: blocker row %s does not say how to fix it", n, r)
			}
		}
	}
	if !sameSet(sqlKinds, want) {
		return st, errors.Newf("SHOW UPGRADE STATUS through %s lists blockers %v, GET /_status/upgrade %v, want %v", n, sqlKinds, st.BlockerKinds(), want)
	}
	// The loop on the leader logs each new decision once.
	var patterns []string
	for _, b := range st.Blockers {
		patterns = append(patterns, b.Reason)
	}
	if _, err := waitLogLine(ctx, e.Cluster, logMark, 60*time.Second, append([]string{"auto-upgrade: finalization blocked"}, patterns...)...); err != nil {
		return st, errors.Wrapf(err, "the auto-upgrade loop did not log that it is blocked by %v", want)
	}
	return st, steps.CheckVersion(ctx, e.Cluster, version)
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	for _, w := range want {
		count[w]--
		if count[w] < 0 {
			return false
		}
	}
	return true
}

// logCount is how many lines of the nodes' logs contain every string of
// all: a mark for waitLogLine.
func logCount(c *cluster.Cluster, all ...string) int {
	lines, _ := steps.LogLines(c, all...)
	return len(lines)
}

// waitLogLine waits until more than mark lines of the nodes' logs contain
// every string of all, and returns the newest.
func waitLogLine(ctx context.Context, c *cluster.Cluster, mark int, within time.Duration, all ...string) (string, error) {
	var last string
	err := steps.Eventually(ctx, within, func() error {
		lines, err := steps.LogLines(c, all...)
		if err != nil {
			return err
		}
		if len(lines) <= mark {
			return errors.Newf("no new log line with %q (%d before)", all, mark)
		}
		last = lines[len(lines)-1]
		return nil
	})
	return last, err
}

// checkMigrationJob checks through node via that the 1.1 migration ran as
// exactly one job that succeeded.
func checkMigrationJob(via int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		j, err := steps.CheckMigrationSucceeded(ctx, e.Cluster.Node(via), step11Migration)
		if err != nil {
			return err
		}
		e.Logf("SHOW JOBS through n%d: %s", via, j)
		return nil
	}
}

// writeAndCheck is a table whose rows the scenario writes in ranges as it
// goes and reads back, all of them, through every running node.
type writeAndCheck struct {
	table string
	next  int64
}

// write adds count rows through node via (UPSERT, batch rows per
// statement).
func (w *writeAndCheck) write(via int, count int64) steps.Func {
	from := w.next
	w.next += count
	return upsertRows(w.table, from, count, 100, []int{via})
}

// check reads every row written so far (as planned when the step was
// added) through every running node.
func (w *writeAndCheck) check() steps.Func {
	return checkRowsEverywhere(w.table, 0, w.next)
}

func pickOther(rng interface{ IntN(int) int }, nodes int, not ...int) int {
	rest := others(nodes, not...)
	return rest[rng.IntN(len(rest))]
}

// checkNoGhostNodes checks, through node via, that every node the cluster
// knows (GET /_status/upgrade lists each node record with its liveness)
// is one of its running nodes, or decommissioned. A node ID handed out to
// a joiner that then joined under another ID would stay "not live" for
// ever and hold back every finalization until someone decommissions a
// node that never ran.
func checkNoGhostNodes(via int) steps.Func {
	return func(ctx context.Context, e *registry.Env) error {
		ids := map[int]*cluster.Node{}
		for _, n := range e.Cluster.Running() {
			id, err := n.NodeID(ctx)
			if err != nil {
				return err
			}
			ids[id] = n
		}
		return steps.Eventually(ctx, 30*time.Second, func() error {
			st, err := e.Cluster.Node(via).UpgradeStatus(ctx)
			if err != nil {
				return err
			}
			var ghosts []string
			for _, nd := range st.Nodes {
				if _, ok := ids[nd.NodeID]; ok || nd.Membership == "decommissioned" {
					continue
				}
				owner := "no running node"
				for id, n := range ids {
					if n.ListenAddr == nd.Address {
						owner = fmt.Sprintf("%s, which runs as node %d", n, id)
					}
				}
				ghosts = append(ghosts, fmt.Sprintf("node %d (address %s: %s; binary %s, live %v, %s)",
					nd.NodeID, nd.Address, owner, nd.BinaryVersion, nd.IsLive, nd.Membership))
			}
			if len(ghosts) > 0 {
				return steps.Permanent(errors.Newf("the cluster has node records that belong to no running node: %s; "+
					"GET /_status/upgrade through n%d:\n%s", strings.Join(ghosts, "; "), via, st.Raw))
			}
			if len(st.Nodes) < len(ids) {
				return errors.Newf("GET /_status/upgrade through n%d lists %d nodes, %d run", via, len(st.Nodes), len(ids))
			}
			return nil
		})
	}
}
