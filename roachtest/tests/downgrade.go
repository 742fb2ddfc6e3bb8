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

func registerDowngrade(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "downgrade/2.1-to-2.0-and-back",
		Description: "bank, write skew, list-append and the KV workload through every node of a 2.1 cluster; SHOW UPGRADE PLAN FOR " +
			"VERSION '2.0', then SET CLUSTER SETTING version = '2.0', paused before a seeded step (" + versionStepPauseEnv + "): " +
			"a node stopped there refuses the 2.0 binary, the coordinator is killed with SIGKILL, and the downgrade waits, " +
			"saying why, while a node is down; the data group's leader resumes it; the down-migration ran once, as planned; " +
			"BEGIN is refused; every node rolls back to the 2.0 binary under the KV workload, then forward to 2.1, RESET " +
			"upgrades again and transactions commit; the checkers find no anomaly, the KV history is linearizable",
		Suite: registry.Short, Nodes: 3, MinNodes: 3, Timeout: 15 * time.Minute,
		Plan: func(p registry.PlanParams) (*registry.Plan, error) {
			plan := &registry.Plan{}
			addDowngradeRound(plan, p, "", "")
			return plan, nil
		},
	})
	r.Add(registry.Spec{
		Name: "downgrade/coordinator-killed-at-every-step",
		Description: "downgrade/2.1-to-2.0-and-back once for every step of the downgrade (" + strings.Join(downSteps, ", ") +
			"), each on a new cluster: the coordinator is killed with SIGKILL while paused before that step, and the " +
			"leader resumes the downgrade from there",
		Suite: registry.Long, Nodes: 3, MinNodes: 3, Timeout: 45 * time.Minute,
		Plan: func(p registry.PlanParams) (*registry.Plan, error) {
			plan := &registry.Plan{}
			for i, step := range downSteps {
				tag := fmt.Sprintf("[round %d/%d, pause before %s] ", i+1, len(downSteps), step)
				if i > 0 {
					plan.Addf(func(ctx context.Context, e *registry.Env) error { return e.Cluster.Wipe() },
						"%swipe the cluster: kill every node, remove every store", tag)
				}
				addDowngradeRound(plan, p, tag, step)
			}
			return plan, nil
		},
	})
}

// downSteps are the versions a downgrade from 2.1 to 2.0 persists, in
// order: one of them is where the scenario pauses it.
var downSteps = []string{"2.1-step.3", "2.1-step.2", "2.1-step.1", "2.0"}

// addDowngradeRound adds one round of downgrade/2.1-to-2.0-and-back to
// plan, its step titles prefixed with tag. The seed chooses the node the
// cluster is initialized through, the workload seed, the step the
// downgrade pauses before (unless pauseAt is given), its coordinator (the
// node the SET goes through), the node stopped at the pause, the order and
// stops of the rollback and of the roll forward, and how the cluster
// upgrades again.
func addDowngradeRound(plan *registry.Plan, p registry.PlanParams, tag, pauseAt string) {
	tp := taggedPlan{plan, tag}
	rng := p.Rand()
	const from, to = "2.1", "2.0"
	initVia, seed := 1+rng.IntN(p.Nodes), rng.Int64N(1<<53)
	if pauseAt == "" {
		pauseAt = downSteps[rng.IntN(len(downSteps))]
	}
	coord := 1 + rng.IntN(p.Nodes)
	stopped := pickOther(rng, p.Nodes, coord)
	order := rng.Perm(p.Nodes)
	kills := make([]bool, p.Nodes)
	for i := range kills {
		kills[i] = rng.IntN(2) == 0
	}
	byHand := rng.IntN(2) == 0
	sc := &steps.Scenario{}
	tr := &txnRun{kinds: allTxnWorkloads, seed: seed, kv: sc}
	var release string
	setDone := make(chan error, 1)
	var planned []string // the down-migration steps SHOW UPGRADE PLAN names

	var orderNames []string
	for _, i := range order {
		orderNames = append(orderNames, fmt.Sprintf("n%d (%s)", i+1, how(kills[i])))
	}
	plan.Header = append(plan.Header,
		fmt.Sprintf("%s%d nodes on %s, init through n%d; bank, write skew, list-append (seed %d) and the KV workload", tag, p.Nodes, from, initVia, seed),
		fmt.Sprintf("SET CLUSTER SETTING version = '%s' through n%d, paused before persisting %s; there n%d refuses the %s binary, then n%d (the coordinator) is killed",
			to, coord, pauseAt, stopped, to, coord),
		fmt.Sprintf("rollback to %s and forward to %s, in the order %s; then %s", to, from, strings.Join(orderNames, ", "),
			map[bool]string{true: "SET CLUSTER SETTING version by hand", false: "RESET of the preserve option"}[byHand]))
	tp.Add("build or find the binaries of 2.1 (the default) and 2.0", sc.Binaries(cluster.DefaultRelease, to))
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		dir := filepath.Join(e.Dir, "version-step-pause")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		release = filepath.Join(dir, "release-"+pauseAt)
		e.Cluster.SetStartArgs(fastAutoUpgrade)
		e.Cluster.SetStartEnv(versionStepPauseEnv + "=" + pauseAt + ":" + release)
		e.Defer(func() { _ = os.WriteFile(release, []byte("released by roachtest\n"), 0o644) })
		return nil
	}, "every node starts with %s and %s=%s:<release file>", fastAutoUpgrade, versionStepPauseEnv, pauseAt)
	tp.Addf(sc.StartCluster([]string{cluster.DefaultRelease}, initVia), "start %d nodes on %s, init through n%d", p.Nodes, from, initVia)
	tp.Addf(tr.setup(initVia), "create the transactional workloads' tables through n%d", initVia)
	tp.Addf(sc.SetupWorkload(initVia), "create the KV workload's tables through n%d", initVia)
	tp.Add("start the KV workload, bank, write skew and list-append on every node", func(ctx context.Context, e *registry.Env) error {
		if err := sc.StartWorkload()(ctx, e); err != nil {
			return err
		}
		return tr.start()(ctx, e)
	})
	tp.Add("each transactional workload commits 40 transactions", tr.progress(40, 2*time.Minute))

	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		rows, err := e.Cluster.Node(coord).Query(ctx, "SHOW UPGRADE PLAN FOR VERSION '"+to+"'")
		if err != nil {
			return err
		}
		var persisted []string
		for _, r := range rows {
			step, action, detail := fmt.Sprint(r[0]), fmt.Sprint(r[1]), fmt.Sprint(r[2])
			e.Logf("plan: %s | %s | %s", step, action, detail)
			switch action {
			case "blocker":
				return errors.Newf("the plan has a blocker: %s", detail)
			case "persist on every node":
				persisted = append(persisted, step)
			case "down-migration":
				planned = append(planned, step)
			}
		}
		if !slices.Equal(persisted, downSteps) {
			return errors.Newf("the plan persists %v, want %v", persisted, downSteps)
		}
		return nil
	}, "SHOW UPGRADE PLAN FOR VERSION '%s' through n%d: no blocker, it persists %s in that order", to, coord, strings.Join(downSteps, ", "))
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(coord)
		go func() { setDone <- n.Exec(context.Background(), "SET CLUSTER SETTING version = '"+to+"'") }()
		return steps.Eventually(ctx, 2*time.Minute, func() error {
			if _, err := os.Stat(release + ".paused"); err != nil {
				return errors.Newf("the downgrade has not paused before %s yet", pauseAt)
			}
			return nil
		})
	}, "SET CLUSTER SETTING version = '%s' through n%d in the background; it pauses before persisting %s", to, coord, pauseAt)
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(stopped)
		bin := n.Binary()
		tr.note(e, "stopping %s (SIGTERM) in the middle of the downgrade", n)
		if err := n.Stop(ctx); err != nil {
			return err
		}
		old, err := e.Binary(ctx, to)
		if err != nil {
			return err
		}
		out, err := n.StartExpectExit(ctx, old, time.Minute)
		if err != nil {
			return err
		}
		if !strings.Contains(out, to) {
			return errors.Newf("%s on %s refused to start without naming %s:\n%s", n, to, to, out)
		}
		e.Logf("%s on %s refused, as it must: %s", n, to, firstLine(out))
		if err := n.Start(ctx, bin); err != nil {
			return err
		}
		return n.WaitReady(ctx)
	}, "stop n%d, start it on the %s binary: refused, naming the versions (the downgrade is not complete); start it on %s again", stopped, to, from)
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		n := e.Cluster.Node(coord)
		tr.note(e, "killing %s (SIGKILL), the downgrade's coordinator, while it is paused", n)
		if err := n.Kill(); err != nil {
			return err
		}
		if err := <-setDone; err == nil {
			return errors.Newf("SET CLUSTER SETTING version = '%s' succeeded although its coordinator was killed", to)
		}
		victim := e.Cluster.Node(stopped)
		if err := victim.Stop(ctx); err != nil {
			return err
		}
		mark := logCount(e.Cluster, "the downgrade stopped", "not live")
		if err := os.WriteFile(release, []byte("released by roachtest\n"), 0o644); err != nil {
			return err
		}
		if err := n.Start(ctx, n.Binary()); err != nil {
			return err
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
		line, err := waitLogLine(ctx, e.Cluster, mark, 90*time.Second, "the downgrade stopped", "not live")
		if err != nil {
			return errors.Wrapf(err, "with %s down, the leader's loop did not say why the downgrade waits", victim)
		}
		e.Logf("with %s down: %s", victim, line)
		if err := victim.Start(ctx, victim.Binary()); err != nil {
			return err
		}
		return victim.WaitReady(ctx)
	}, "kill -9 n%d; release the pause; stop n%d: the leader's loop says the downgrade waits for it; start both again", coord, stopped)
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		d, err := steps.WaitVersion(ctx, e.Cluster, to, 3*time.Minute)
		if err != nil {
			return err
		}
		tr.note(e, "every node reports cluster version %s (%s)", to, d.Round(10*time.Millisecond))
		return waitSetting(ctx, e.Cluster, "cluster.preserve_downgrade_option", to)
	}, "the data group's leader resumes the downgrade: every node reports %s, and the preserve option %s", to, to)
	tp.Add("SHOW JOBS: the downgrade's job succeeded, once, for the step the plan named", func(ctx context.Context, e *registry.Env) error {
		jobs, err := e.Cluster.Node(initVia).Jobs(ctx)
		if err != nil {
			return err
		}
		var down []cluster.Job
		for _, j := range jobs {
			if strings.Contains(j.Description, "downgrade: ") {
				down = append(down, j)
			}
		}
		if len(down) != 1 || down[0].Status != "succeeded" || !strings.HasPrefix(down[0].Description, "2.1-step.2") {
			return errors.Newf("downgrade jobs %v, want one succeeded job for 2.1-step.2", down)
		}
		if !slices.Contains(planned, "2.1-step.1") {
			return errors.Newf("the plan named down-migrations at %v, not the one that ran (lowering 2.1-step.2, at 2.1-step.1)", planned)
		}
		e.Logf("downgrade job: %s", down[0])
		return nil
	})
	tp.Add("BEGIN through every node is refused with 0A000", expectRefused(nil, ""))
	tp.Add("stop the transactional workloads (their final reads are transactions: they are checked once 2.1 is back)",
		func(ctx context.Context, e *registry.Env) error {
			for _, w := range tr.ws {
				w.Stop()
				e.Logf("%s: %s", w.Name(), w.Counts())
			}
			return nil
		})
	for _, i := range order {
		tp.Addf(restartStep(sc, i+1, to, kills[i], 10), "roll n%d back to %s (stop with %s); the KV workload gets 10 writes acknowledged", i+1, to, how(kills[i]))
	}
	tp.Addf(func(ctx context.Context, e *registry.Env) error { return steps.CheckVersion(ctx, e.Cluster, to) },
		"every node runs %s and reports cluster version %s", to, to)
	for _, i := range order {
		tp.Addf(restartStep(sc, i+1, from, !kills[i], 10), "roll n%d forward to %s (stop with %s); the KV workload gets 10 writes acknowledged", i+1, from, how(!kills[i]))
	}
	tp.Addf(finalizeStep(sc, initVia, from, byHand), "upgrade to %s again through n%d", from, initVia)
	tp.Add("BEGIN; SELECT 1; COMMIT commits through every node", func(ctx context.Context, e *registry.Env) error {
		for _, n := range e.Cluster.Running() {
			if err := steps.Eventually(ctx, 30*time.Second, func() error { return probeTxn(ctx, n) }); err != nil {
				return errors.Wrapf(err, "a transaction through %s after the upgrade again", n)
			}
		}
		return nil
	})
	tp.Add("read the transactional workloads' final state through every node, check every history", tr.check(40))
	tp.Add("stop the KV workload, read everything back through every node, check its history (nothing lost down and up)", sc.CheckWorkload(40))
}

// taggedPlan adds steps to a plan with their titles prefixed by a tag (the
// round of a scenario of several rounds).
type taggedPlan struct {
	*registry.Plan
	tag string
}

func (t taggedPlan) Add(title string, fn steps.Func) { t.Plan.Add(t.tag+title, fn) }

func (t taggedPlan) Addf(fn steps.Func, format string, args ...any) {
	t.Plan.Add(t.tag+fmt.Sprintf(format, args...), fn)
}

func registerWholeLadder(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "downgrade/whole-ladder",
		Description: "the KV workload and its linearizability checker through every node while a cluster started on the first " +
			"release upgrades through every release (rolling restarts, automatic finalization), then downgrades one release at a " +
			"time with SET CLUSTER SETTING version (seeded coordinator), every node rolled back to that release's binary after " +
			"each, down to the first release, then up through every release again; nothing acknowledged is lost",
		Suite: registry.Long, Nodes: 3, MinNodes: 3, Timeout: 40 * time.Minute,
		Plan: wholeLadderPlan,
	})
}

// wholeLadderPlan is downgrade/whole-ladder. The seed chooses the node the
// cluster is initialized through, each restart's stop (SIGKILL or SIGTERM)
// and each downgrade's coordinator.
func wholeLadderPlan(p registry.PlanParams) (*registry.Plan, error) {
	rng := p.Rand()
	rels := allReleases()
	initVia := 1 + rng.IntN(p.Nodes)
	sc := &steps.Scenario{}
	plan := &registry.Plan{Header: []string{fmt.Sprintf("%d nodes on %s, init through n%d, under the KV workload: up to %s, down to %s, up to %s",
		p.Nodes, rels[0], initVia, rels[len(rels)-1], rels[0], rels[len(rels)-1])}}
	var bins []string
	for _, r := range rels {
		bins = append(bins, releaseOrDefault(r))
	}
	plan.Addf(sc.Binaries(bins...), "build or find the binaries of %s", strings.Join(rels, ", "))
	plan.Addf(fastAutoUpgradeStep(), "every node starts with %s", fastAutoUpgrade)
	plan.Addf(sc.StartCluster([]string{releaseOrDefault(rels[0])}, initVia), "start %d nodes on %s, init through n%d", p.Nodes, rels[0], initVia)
	plan.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	plan.Add("start the workload on every node", sc.StartWorkload())
	plan.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, time.Minute))
	rollTo := func(rel string) {
		for n := 1; n <= p.Nodes; n++ {
			kill := rng.IntN(2) == 0
			plan.Addf(restartStep(sc, n, rel, kill, 10), "restart n%d on %s (stop with %s); the workload gets 10 writes acknowledged", n, rel, how(kill))
		}
	}
	up := func() {
		for i := 1; i < len(rels); i++ {
			rollTo(rels[i])
			plan.Addf(finalizeStep(sc, 1+rng.IntN(p.Nodes), rels[i], false), "RESET the preserve option (if set); the cluster finalizes to %s by itself", rels[i])
		}
	}
	up()
	for i := len(rels) - 1; i > 0; i-- {
		to, via := rels[i-1], 1+rng.IntN(p.Nodes)
		plan.Addf(func(ctx context.Context, e *registry.Env) error {
			n := e.Cluster.Node(via)
			sc.Note(e, "downgrading to %s through %s", to, n)
			if err := n.Exec(ctx, "SET CLUSTER SETTING version = '"+to+"'"); err != nil {
				return errors.Wrapf(err, "SET CLUSTER SETTING version = '%s' through %s", to, n)
			}
			d, err := steps.WaitVersion(ctx, e.Cluster, to, 3*time.Minute)
			if err != nil {
				return err
			}
			sc.Note(e, "every node reports %s (%s after the statement returned)", to, d.Round(10*time.Millisecond))
			return waitSetting(ctx, e.Cluster, "cluster.preserve_downgrade_option", to)
		}, "SET CLUSTER SETTING version = '%s' through n%d; every node reports it, and the preserve option %s", to, via, to)
		rollTo(to)
	}
	plan.Add("the workload gets 20 writes acknowledged on the first release", sc.WaitProgress(20, time.Minute))
	up()
	plan.Add("stop the workload, read everything back through every node, check its history (nothing lost down the ladder and up again)", sc.CheckWorkload(100))
	return plan, nil
}

func registerOlderDowngrades(r *registry.Registry) {
	r.Add(registry.Spec{
		Name: "downgrade/older-releases-coordinator-killed",
		Description: "for every step of the downgrades 2.0 -> 1.1 (leaving group 0) and 1.1 -> 1.0 (rows back to encoding v1), " +
			"each on a new cluster under the KV workload: upgrade to the newer release, SET CLUSTER SETTING version to the older, " +
			"paused before that step (" + versionStepPauseEnv + "), kill -9 the coordinator; the data group's leader resumes " +
			"the downgrade; every node rolls back to the older binary; nothing acknowledged is lost",
		Suite: registry.Long, Nodes: 3, MinNodes: 3, Timeout: 45 * time.Minute,
		Plan: func(p registry.PlanParams) (*registry.Plan, error) {
			plan := &registry.Plan{}
			rounds := []struct{ from, to, pauseAt string }{
				{"2.0", "1.1", "2.0-step.1"}, {"2.0", "1.1", "1.1"},
				{"1.1", "1.0", "1.1-step.2"}, {"1.1", "1.0", "1.1-step.1"}, {"1.1", "1.0", "1.0"},
			}
			for i, r := range rounds {
				tag := fmt.Sprintf("[round %d/%d, %s -> %s, pause before %s] ", i+1, len(rounds), r.from, r.to, r.pauseAt)
				if i > 0 {
					plan.Addf(func(ctx context.Context, e *registry.Env) error { return e.Cluster.Wipe() },
						"%swipe the cluster: kill every node, remove every store", tag)
				}
				addOlderDowngradeRound(plan, p, tag, r.from, r.to, r.pauseAt)
			}
			return plan, nil
		},
	})
}

// addOlderDowngradeRound adds one round of
// downgrade/older-releases-coordinator-killed: a cluster started on to,
// upgraded to from, downgraded back with its coordinator killed while
// paused before pauseAt. The pause's release file exists during the
// upgrade (a step whose file exists passes) and is removed before the
// downgrade.
func addOlderDowngradeRound(plan *registry.Plan, p registry.PlanParams, tag, from, to, pauseAt string) {
	tp := taggedPlan{plan, tag}
	rng := p.Rand()
	initVia, coord := 1+rng.IntN(p.Nodes), 1+rng.IntN(p.Nodes)
	sc := &steps.Scenario{}
	var release string
	round := len(plan.Steps) // distinguishes the rounds' release files
	setDone := make(chan error, 1)
	plan.Header = append(plan.Header, fmt.Sprintf("%s%d nodes on %s, init through n%d, upgraded to %s; downgrade through n%d paused before %s",
		tag, p.Nodes, to, initVia, from, coord, pauseAt))
	tp.Add("build or find the binaries", sc.Binaries(releaseOrDefault(to), releaseOrDefault(from)))
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		dir := filepath.Join(e.Dir, "version-step-pause")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		release = filepath.Join(dir, fmt.Sprintf("release-%s-%d", pauseAt, round))
		if err := os.WriteFile(release, []byte("the upgrade passes\n"), 0o644); err != nil {
			return err
		}
		e.Cluster.SetStartArgs(fastAutoUpgrade)
		e.Cluster.SetStartEnv(versionStepPauseEnv + "=" + pauseAt + ":" + release)
		e.Defer(func() { _ = os.WriteFile(release, []byte("released by roachtest\n"), 0o644) })
		return nil
	}, "every node starts with %s and %s=%s:<release file>, which exists until the downgrade", fastAutoUpgrade, versionStepPauseEnv, pauseAt)
	tp.Addf(sc.StartCluster([]string{releaseOrDefault(to)}, initVia), "start %d nodes on %s, init through n%d", p.Nodes, to, initVia)
	tp.Addf(sc.SetupWorkload(initVia), "create the workload's tables through n%d", initVia)
	tp.Add("start the workload on every node", sc.StartWorkload())
	tp.Add("the workload gets 20 writes acknowledged", sc.WaitProgress(20, time.Minute))
	for n := 1; n <= p.Nodes; n++ {
		tp.Addf(restartStep(sc, n, from, false, 10), "restart n%d on %s; the workload gets 10 writes acknowledged", n, from)
	}
	tp.Addf(finalizeStep(sc, initVia, from, false), "the cluster finalizes to %s by itself", from)
	tp.Addf(func(ctx context.Context, e *registry.Env) error {
		if err := os.Remove(release); err != nil {
			return err
		}
		n := e.Cluster.Node(coord)
		go func() { setDone <- n.Exec(context.Background(), "SET CLUSTER SETTING version = '"+to+"'") }()
		if err := steps.Eventually(ctx, 2*time.Minute, func() error {
			if _, err := os.Stat(release + ".paused"); err != nil {
				return errors.Newf("the downgrade has not paused before %s yet", pauseAt)
			}
			return nil
		}); err != nil {
			return err
		}
		sc.Note(e, "killing %s (SIGKILL), the downgrade's coordinator, paused before %s", n, pauseAt)
		if err := n.Kill(); err != nil {
			return err
		}
		if err := <-setDone; err == nil {
			return errors.Newf("SET CLUSTER SETTING version = '%s' succeeded although its coordinator was killed", to)
		}
		if err := os.WriteFile(release, []byte("released by roachtest\n"), 0o644); err != nil {
			return err
		}
		if err := n.Start(ctx, n.Binary()); err != nil {
			return err
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
		d, err := steps.WaitVersion(ctx, e.Cluster, to, 3*time.Minute)
		if err != nil {
			return err
		}
		sc.Note(e, "the leader resumed the downgrade: every node reports %s (%s)", to, d.Round(10*time.Millisecond))
		return nil
	}, "SET CLUSTER SETTING version = '%s' through n%d, paused before %s; kill -9 n%d, release, restart it: the leader resumes, every node reports %s",
		to, coord, pauseAt, coord, to)
	for n := 1; n <= p.Nodes; n++ {
		kill := rng.IntN(2) == 0
		tp.Addf(restartStep(sc, n, to, kill, 10), "roll n%d back to %s (stop with %s); the workload gets 10 writes acknowledged", n, to, how(kill))
	}
	tp.Add("stop the workload, read everything back through every node, check its history", sc.CheckWorkload(40))
}
