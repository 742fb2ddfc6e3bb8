package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/localcluster"
)

// `kvnode demo`: a local cluster of in-process nodes on temporary stores.
//
// With --upgrade-from=R it is a guided rolling upgrade from release R to this
// binary's release. A binary's release is fixed at build time
// (clusterversion.binaryVersion, set with -ldflags), so the demo cannot run
// an older release by executing another binary. Instead every node runs in
// this process as a server.Server, and a node "on release R" is one started
// with server.Config.Knobs.BinaryVersion = R, the knob that makes a node
// behave exactly as a binary of that release (the in-process tests use it).
// "Restarting node N on the new binary" is what an operator does with a
// process: drain it (the RPC behind `kvnode node drain`), stop it, and start
// a new server.Server on the same store and ports, without the knob (this
// binary's own release). Rolling back starts it with the old release's knob
// again; whether that is allowed is the server's own decision (it refuses a
// store whose cluster version is newer than its release).

// ParseUpgradeFrom reads --upgrade-from: a release of the ladder older than
// this binary's release.
func ParseUpgradeFrom(s string) (clusterversion.Version, error) {
	bin, err := clusterversion.BinaryVersion()
	if err != nil {
		return clusterversion.Version{}, err
	}
	var valid []string
	for _, r := range clusterversion.Releases() {
		if r.Less(bin) {
			valid = append(valid, r.String())
		}
	}
	hint := func(err error) error {
		if len(valid) == 0 {
			return errors.WithHintf(err, "this binary is release %s, the first on the ladder: there is no older release to upgrade from", bin)
		}
		return errors.WithHintf(err, "valid values are the releases older than this binary's %s: %s", bin, strings.Join(valid, ", "))
	}
	v, err := clusterversion.Parse(s)
	if err != nil {
		return clusterversion.Version{}, hint(errors.Newf("invalid --upgrade-from %q: not a release (write it as MAJOR.MINOR)", s))
	}
	if _, ok := clusterversion.Lookup(v); !ok {
		return clusterversion.Version{}, hint(errors.Newf("invalid --upgrade-from %q: no such release", s))
	}
	if !v.IsRelease() {
		return clusterversion.Version{}, hint(errors.Newf("invalid --upgrade-from %q: an internal step between releases, not a release", s))
	}
	if !v.Less(bin) {
		return clusterversion.Version{}, hint(errors.Newf("invalid --upgrade-from %q: this binary is release %s, so it can only upgrade from an older release", s, bin))
	}
	return v, nil
}

// Options are what `kvnode demo` was asked for (its flags, checked by the
// command) and where it talks.
type Options struct {
	// Nodes is the number of nodes (--nodes).
	Nodes int
	// Insecure runs Run's cluster without security (--insecure; the
	// walk-through always does).
	Insecure bool
	// Log is where Run's nodes log (--log-level, on stderr).
	Log *slog.Logger
	// LogLevel is the level of RunUpgrade's node log, which goes to a
	// temporary file (--log-level; info unless given).
	LogLevel slog.Level
	// Auto runs RunUpgrade's whole walk-through without prompts (--auto);
	// ExitAfterWalkthrough then stops the cluster and returns
	// (--exit-after-walkthrough).
	Auto, ExitAfterWalkthrough bool
	// AutoUpgradeInterval is how often RunUpgrade's nodes check whether
	// the cluster may finalize (--auto-upgrade-interval).
	AutoUpgradeInterval time.Duration
	// In is what the user types (the walk-through's demo> prompt); Out
	// and Err are the terminal.
	In       io.Reader
	Out, Err io.Writer
}

// Run is `kvnode demo` without --upgrade-from: a cluster, secure unless
// o.Insecure, with an admin user demo whose generated password the printed
// URLs carry, until SIGINT or SIGTERM.
func Run(o Options) error {
	newCluster := localcluster.NewSecure
	if o.Insecure {
		newCluster = localcluster.New
	}
	c, err := newCluster(o.Nodes, o.Log, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartAll(context.Background(), c.Binary); err != nil {
		return err
	}
	out := o.Out
	fmt.Fprintf(out, "\nkvnode demo: a %d-node cluster is running (stores in %s).\n\n", o.Nodes, c.Dir)
	if o.Insecure {
		for _, nd := range c.Nodes {
			fmt.Fprintf(out, "  node %d: psql \"postgresql://root@%s/defaultdb?sslmode=disable\"   status: http://%s/\n", nd.ID, nd.Config.SQLAddr, nd.Config.HTTPAddr)
		}
	} else {
		password, err := createDemoUser(c)
		if err != nil {
			return err
		}
		for _, nd := range c.Nodes {
			fmt.Fprintf(out, "  node %d: psql \"%s\"   status: https://%s/\n", nd.ID, demoURL(c, nd, password), nd.Config.HTTPAddr)
		}
		fmt.Fprintf(out, "\nThe cluster is secure: TLS on every port, checked against the demo's CA (%s).\n"+
			"User demo (an admin) has the generated password %s; root logs in with its certificate in %s.\n",
			filepath.Join(c.CertsDir, "ca.crt"), password, c.CertsDir)
	}
	fmt.Fprintf(out, "\nTry: CREATE TABLE kv (k INT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'one'); SELECT * FROM kv;\nPress Ctrl-C to stop the cluster and delete its data.\n")
	sigC := make(chan os.Signal, 1)
	signal.Notify(sigC, syscall.SIGTERM, syscall.SIGINT)
	<-sigC
	fmt.Fprintln(out, "\nstopping the demo cluster...")
	return nil
}

// createDemoUser creates the admin user demo with a generated password (as
// root, with its certificate) and returns the password.
func createDemoUser(c *localcluster.Cluster) (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// URL-safe: it goes into the URLs as it is.
	password := "demo-" + base64.RawURLEncoding.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.Nodes[0].URL())
	if err != nil {
		return "", errors.Wrap(err, "connecting as root to create the demo user")
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{"CREATE USER demo WITH PASSWORD '" + password + "'", "GRANT admin TO demo"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return "", errors.Wrap(err, "creating the demo user")
		}
	}
	return password, nil
}

// demoURL is node nd's URL for user demo: its password, TLS checked against
// the demo's CA.
func demoURL(c *localcluster.Cluster, nd *localcluster.Node, password string) string {
	return "postgresql://demo:" + password + "@" + nd.Config.SQLAddr + "/defaultdb?sslmode=verify-full&sslrootcert=" +
		filepath.Join(c.CertsDir, "ca.crt")
}

// ---- the upgrade walk-through ----

// demoHop is one release-to-release upgrade of the walk-through.
type demoHop struct{ from, to clusterversion.Version }

// demoStep is one step of the walk-through.
type demoStep struct {
	title string
	run   func(ctx context.Context) error
}

// upgradeDemo is the state of `kvnode demo --upgrade-from`.
type upgradeDemo struct {
	c        *localcluster.Cluster
	out      io.Writer
	interval time.Duration
	logPath  string
	hops     []demoHop
	hop      int // the hop that `upgrade` and `rollback` move nodes within
	steps    []demoStep
	next     int // index of the next step in steps
	// rows are the demo rows acknowledged so far (k -> v); maybe are rows
	// whose insert failed and so may or may not exist.
	rows    map[int64]string
	maybe   map[int64]string
	nextKey int64
}

const demoTable = "demo_rows"

// RunUpgrade is `kvnode demo --upgrade-from`: a cluster on release from,
// and the guided rolling upgrade to this binary's release.
func RunUpgrade(o Options, from clusterversion.Version) error {
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stopSignals()
	}()

	// Node logs go to a temporary file (deleted on exit): the terminal is
	// for the walk-through.
	logFile, err := os.CreateTemp("", "kvnode-demo-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: o.LogLevel}))

	c, err := localcluster.New(o.Nodes, log, o.AutoUpgradeInterval)
	if err != nil {
		return err
	}
	defer c.Close()
	d := &upgradeDemo{c: c, out: o.Out, interval: o.AutoUpgradeInterval, logPath: logFile.Name(),
		rows: map[int64]string{}, maybe: map[int64]string{}}
	rels := clusterversion.Releases()
	for i := 0; i+1 < len(rels); i++ {
		if !rels[i].Less(from) && rels[i+1].Compare(c.Binary) <= 0 {
			d.hops = append(d.hops, demoHop{rels[i], rels[i+1]})
		}
	}
	d.buildSteps()

	err = d.run(ctx, o)
	if err != nil && ctx.Err() == nil {
		// Show the end of the node logs: the file goes with the demo.
		fmt.Fprintf(o.Err, "the walk-through failed; the last node log lines (%s):\n%s", d.logPath, tailFile(d.logPath, 40))
	}
	if ctx.Err() != nil {
		fmt.Fprintln(d.out, "\nstopping the demo cluster...")
		return nil
	}
	return err
}

func (d *upgradeDemo) run(ctx context.Context, o Options) error {
	first := d.hops[0]
	d.printf("kvnode demo: starting a %d-node cluster on release %s (this binary is release %s)...\n",
		len(d.c.Nodes), first.from, d.c.Binary)
	if err := d.c.StartAll(ctx, first.from); err != nil {
		return err
	}
	if err := d.writeInitialRows(ctx); err != nil {
		return err
	}
	d.printIntro()
	if o.Auto {
		if err := d.runRemaining(ctx); err != nil {
			return err
		}
		if o.ExitAfterWalkthrough {
			return nil
		}
		d.printf("\nThe cluster keeps running; connect with the psql commands above. Press Ctrl-C to stop it and delete its data.\n")
		<-ctx.Done()
		return nil
	}
	return d.interactive(ctx, o.In)
}

func (d *upgradeDemo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// para prints text wrapped to 90 columns, indented by two spaces.
func (d *upgradeDemo) para(text string) {
	var line string
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > 90 {
			d.printf("  %s\n", line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		d.printf("  %s\n", line)
	}
}

func (d *upgradeDemo) printIntro() {
	d.printf("\nThe cluster is running (stores in %s; node logs in %s).\n\n", d.c.Dir, d.logPath)
	for _, nd := range d.c.Nodes {
		d.printf("  node %d (release %s): psql \"postgresql://root@%s/defaultdb?sslmode=disable\"   status page: http://%s/\n",
			nd.ID, nd.Release, nd.Config.SQLAddr, nd.Config.HTTPAddr)
	}
	d.printf("\nThe table %s holds %d rows written on release %s.\n\n", demoTable, len(d.rows), d.hops[0].from)
	var path []string
	path = append(path, d.hops[0].from.String())
	for _, h := range d.hops {
		path = append(path, h.to.String())
	}
	d.para(fmt.Sprintf("What happens next: a rolling upgrade %s, one release at a time (a binary serves clusters "+
		"from the previous release on). For each release: look at SHOW UPGRADE STATUS; hold finalization with "+
		"cluster.preserve_downgrade_option so that you can still roll back; restart the nodes one at a time on the "+
		"new release while the cluster keeps serving SQL; then let the cluster finalize by itself and watch it. "+
		"Last, check that every row is still there.", strings.Join(path, " -> ")))
	if len(d.c.Nodes) < 3 {
		d.printf("\n")
		d.para(fmt.Sprintf("With %d node(s), the cluster has no majority while a node restarts: it stops serving "+
			"for those seconds. Use --nodes=3 or more to see a rolling upgrade without downtime.", len(d.c.Nodes)))
	}
	d.printf("\n")
	d.para("How nodes are restarted on another release here: a binary's release is fixed at build time, so every " +
		"node runs inside this process, and an old node is one started with the knob that makes it behave exactly " +
		"as that release. Restarting a node drains it, stops it, and starts it again on the same store and ports " +
		"(see `kvnode demo --help`).")
}

func (d *upgradeDemo) buildSteps() {
	for hi, h := range d.hops {
		hi, h := hi, h
		d.steps = append(d.steps, demoStep{
			title: fmt.Sprintf("look at the cluster before upgrading %s -> %s", h.from, h.to),
			run:   func(ctx context.Context) error { return d.stepLook(ctx, hi) },
		}, demoStep{
			title: fmt.Sprintf("hold finalization: SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", h.from),
			run:   func(ctx context.Context) error { return d.stepPreserve(ctx, hi) },
		})
		for i := range d.c.Nodes {
			i := i
			d.steps = append(d.steps, demoStep{
				title: fmt.Sprintf("restart node %d on release %s", i+1, h.to),
				run:   func(ctx context.Context) error { return d.stepRestart(ctx, hi, d.c.Nodes[i]) },
			})
		}
		d.steps = append(d.steps, demoStep{
			title: fmt.Sprintf("every node runs %s: rollback is still possible", h.to),
			run:   func(ctx context.Context) error { return d.stepRollbackNote(ctx, hi) },
		}, demoStep{
			title: fmt.Sprintf("RESET cluster.preserve_downgrade_option and watch the cluster finalize to %s", h.to),
			run:   func(ctx context.Context) error { return d.stepFinalize(ctx, hi) },
		})
	}
	// Finalization is reversible: walk the last hop down and up again.
	last := d.hops[len(d.hops)-1]
	d.steps = append(d.steps, demoStep{
		title: fmt.Sprintf("dry run of a downgrade: SHOW UPGRADE PLAN FOR VERSION '%s'", last.from),
		run:   func(ctx context.Context) error { return d.stepDowngradePlan(ctx, last) },
	}, demoStep{
		title: fmt.Sprintf("downgrade the cluster: SET CLUSTER SETTING version = '%s'", last.from),
		run:   func(ctx context.Context) error { return d.stepDowngrade(ctx, last) },
	}, demoStep{
		title: fmt.Sprintf("roll every node back to release %s", last.from),
		run:   func(ctx context.Context) error { return d.restartAll(ctx, last.from) },
	}, demoStep{
		title: fmt.Sprintf("upgrade again: every node on %s, then RESET cluster.preserve_downgrade_option", last.to),
		run:   func(ctx context.Context) error { return d.stepUpgradeAgain(ctx, last) },
	})
	d.steps = append(d.steps, demoStep{
		title: "check that every demo row is still there, through every node",
		run:   d.stepVerify,
	})
}

// runStep runs the next step. A failed step stays the next one.
func (d *upgradeDemo) runStep(ctx context.Context) error {
	if d.next >= len(d.steps) {
		d.printf("The walk-through is complete. Type `sql <statement>`, `status`, or `quit`.\n")
		return nil
	}
	s := d.steps[d.next]
	d.printf("\n=== Step %d of %d: %s ===\n", d.next+1, len(d.steps), s.title)
	if err := s.run(ctx); err != nil {
		return errors.Wrapf(err, "step %d (%s)", d.next+1, s.title)
	}
	d.next++
	if d.next == len(d.steps) {
		d.printf("\nThe walk-through is complete: the cluster runs %s, and nothing was lost.\n", d.c.Binary)
	}
	return nil
}

func (d *upgradeDemo) runRemaining(ctx context.Context) error {
	for d.next < len(d.steps) {
		if err := d.runStep(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ---- the steps ----

func (d *upgradeDemo) stepLook(ctx context.Context, hi int) error {
	h := d.hops[hi]
	if hi > 0 {
		d.para(fmt.Sprintf("The cluster now runs %s. A release %s binary serves clusters of version %s and newer, "+
			"so the next hop, %s -> %s, goes the same way.", h.from, h.to, h.from, h.from, h.to))
	}
	d.para(fmt.Sprintf("Why: before touching anything, look. The cluster version is what the cluster has finalized "+
		"to (%s); every node's binary is release %s. SHOW UPGRADE STATUS is the one place that says which version "+
		"the cluster runs, which binary each node runs, whether each node is live, and what (if anything) keeps "+
		"the cluster from finalizing, with the statement that fixes it.", h.from, h.from))
	if err := d.showSetting(ctx, "version"); err != nil {
		return err
	}
	if err := d.showStatus(ctx); err != nil {
		return err
	}
	d.showStatusPage(ctx, d.sqlNode())
	return nil
}

func (d *upgradeDemo) stepPreserve(ctx context.Context, hi int) error {
	h := d.hops[hi]
	desc := describeRelease(h.to)
	d.para(fmt.Sprintf("Why: a cluster finalizes by itself as soon as every node runs the new binary "+
		"(cluster.auto_upgrade.enabled). Finalizing is one-way: it moves the cluster to %s (%s), and from then on "+
		"binaries of %s are refused, so there is no going back. Setting cluster.preserve_downgrade_option to the "+
		"current version holds finalization back: you can run the new binary for a while and still roll back.",
		h.to, desc, h.from))
	v, err := d.clusterVersion(ctx)
	if err != nil {
		return err
	}
	if !v.Less(h.to) {
		d.printf("  The cluster already runs version %s: there is nothing left to hold back.\n", v)
		return nil
	}
	if err := d.execShow(ctx, fmt.Sprintf("SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", h.from)); err != nil {
		return err
	}
	return d.showSetting(ctx, "cluster.preserve_downgrade_option")
}

func (d *upgradeDemo) stepRestart(ctx context.Context, hi int, nd *localcluster.Node) error {
	h := d.hops[hi]
	d.para(fmt.Sprintf("Why: a rolling upgrade restarts one node at a time, so that a majority of the nodes keeps "+
		"serving SQL throughout. On real machines you stop the process (SIGTERM drains it) and start it again with "+
		"the same flags on the new binary. Here node %d is drained (no new SQL connections, open ones finish, Raft "+
		"leadership moves away), stopped, and started again on the same store and ports as release %s. While it is "+
		"down, the demo writes a row through another node.", nd.ID, h.to))
	if nd.Server != nil && nd.Release == h.to {
		d.printf("  Node %d already runs release %s (you upgraded it yourself): nothing to do.\n", nd.ID, h.to)
	} else if err := d.restart(ctx, nd, h.to); err != nil {
		return err
	}
	if err := d.showStatus(ctx); err != nil {
		return err
	}
	d.showStatusPage(ctx, nd)
	return nil
}

func (d *upgradeDemo) stepRollbackNote(ctx context.Context, hi int) error {
	h := d.hops[hi]
	d.para(fmt.Sprintf("Every node now runs release %s, but the cluster still runs version %s: "+
		"cluster.preserve_downgrade_option holds it back, and SHOW UPGRADE STATUS names it as what blocks "+
		"finalization. Until the cluster finalizes you can still go back: `rollback N` restarts node N on release "+
		"%s with no data lost (on real machines: the old binary, same flags), and `upgrade N` brings it forward "+
		"again. Try it now if you like; the next step finalizes, after which the nodes refuse to roll back.",
		h.to, h.from, h.from))
	return d.showStatus(ctx)
}

func (d *upgradeDemo) stepFinalize(ctx context.Context, hi int) error {
	h := d.hops[hi]
	desc := describeRelease(h.to)
	why := fmt.Sprintf("Why: with cluster.preserve_downgrade_option reset, the auto-upgrade loop (it checks every %s "+
		"here) finalizes the cluster: it checks that every node is live and runs release %s, fences %s (from then "+
		"on %s binaries are refused), persists each step on every node, and runs the %s migration (%s).",
		d.interval, h.to, h.to, h.from, h.to, desc)
	if h.to.Major >= 2 {
		why += " For 2.0 that migration is the group 0 upgrade procedure: every node goes from " +
			"use_pre_raft_procedures through synchronize to use_post_raft_procedures, and from then on schema " +
			"changes commit through Raft group 0."
	} else {
		why += " It runs as a job you can watch with SHOW JOBS."
	}
	d.para(why)
	v, err := d.clusterVersion(ctx)
	if err != nil {
		return err
	}
	if v.Less(h.to) {
		for _, nd := range d.c.Nodes {
			if nd.Server == nil || nd.Release != h.to {
				d.printf("  Node %d does not run release %s (you rolled it back?); the cluster cannot finalize without it, so upgrading it first.\n", nd.ID, h.to)
				if err := d.restart(ctx, nd, h.to); err != nil {
					return err
				}
			}
		}
		if err := d.execShow(ctx, "RESET CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil {
			return err
		}
	} else {
		d.printf("  The cluster already runs version %s.\n", v)
	}
	if err := d.watchFinalization(ctx, h); err != nil {
		return err
	}
	if err := d.showSetting(ctx, "version"); err != nil {
		return err
	}
	d.printf("  > SHOW JOBS\n")
	if err := d.queryTable(ctx, d.sqlNode(), "SHOW JOBS", []string{"job_id", "description", "status", "fraction_completed", "coordinator_id"}); err != nil {
		return err
	}
	if h.to.Major >= 2 {
		d.printf("  Each node's own view (SELECT value FROM system.local WHERE key = 'group0_upgrade_state'):\n")
		for _, nd := range d.c.Nodes {
			_, rows, _, err := d.query(ctx, nd, "SELECT value FROM system.local WHERE key = 'group0_upgrade_state'")
			switch {
			case err != nil:
				d.printf("    node %d: %s\n", nd.ID, errText(err))
			case len(rows) == 1:
				d.printf("    node %d: %s\n", nd.ID, rows[0][0])
			default:
				d.printf("    node %d: %d rows\n", nd.ID, len(rows))
			}
		}
	}
	if err := d.showStatus(ctx); err != nil {
		return err
	}
	if hi+1 < len(d.hops) {
		d.hop = hi + 1
		d.para(fmt.Sprintf("The cluster runs %s now; %s binaries are refused from here on. Next: the same road to %s.",
			h.to, h.from, d.hops[hi+1].to))
	} else {
		d.para(fmt.Sprintf("The cluster runs %s, finalized: from here on, a node started on an older release is "+
			"refused (try `rollback 1`: the server itself refuses, and the demo starts the node again on %s).",
			h.to, h.to))
	}
	return nil
}

// watchFinalization polls SHOW UPGRADE STATUS until the cluster runs h.to
// (and, for 2.0, every node's group 0 state is use_post_raft_procedures),
// printing what changes.
func (d *upgradeDemo) watchFinalization(ctx context.Context, h demoHop) error {
	d.printf("  Watching SHOW UPGRADE STATUS until the cluster runs %s:\n", h.to)
	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	last := map[string]string{}
	show := func(key, line string) {
		if last[key] != line {
			last[key] = line
			d.printf("    [%5.1fs] %s\n", time.Since(start).Seconds(), line)
		}
	}
	for {
		rows, err := d.upgradeStatusRows(ctx)
		if err != nil {
			show("error", "SHOW UPGRADE STATUS: "+errText(err))
		} else {
			var version string
			var g0, blockers []string
			post := 0
			for _, r := range rows {
				item, node, value, detail := r[0], r[1], r[2], r[3]
				switch item {
				case "cluster_version":
					version = value
					show("version", "cluster version "+value)
				case "in_progress":
					show("in_progress", "finalizing: "+value)
				case "migration":
					if v, err := clusterversion.Parse(value); err == nil && h.from.Less(v) && !h.to.Less(v) {
						show("migration "+value, "migration "+value+": "+detail)
					}
				case "group0_state":
					g0 = append(g0, "node "+node+" "+value)
					if value == "use_post_raft_procedures" {
						post++
					}
				case "blocker":
					b := value + ": " + detail
					if node != "" {
						b = "node " + node + " " + b
					}
					blockers = append(blockers, b)
				}
			}
			if len(g0) > 0 {
				show("group0", "group 0: "+strings.Join(g0, ", "))
			}
			if len(blockers) > 0 {
				show("blockers", "waiting for: "+strings.Join(blockers, "; "))
			} else if last["blockers"] != "" {
				show("blockers", "nothing blocks finalization")
			}
			done := version == h.to.String()
			if h.to.Major >= 2 {
				done = done && post == len(d.c.Nodes)
			}
			if done {
				d.printf("  The cluster finalized to %s in %.1fs.\n", h.to, time.Since(start).Seconds())
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = d.showStatus(ctx)
			return errors.Newf("the cluster did not finalize to %s within 3 minutes (SHOW UPGRADE STATUS above says what it waits for)", h.to)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (d *upgradeDemo) stepDowngradePlan(ctx context.Context, h demoHop) error {
	d.para(fmt.Sprintf("Why: finalization is reversible here, one release at a time (as MongoDB's feature compatibility "+
		"version). Before changing anything, ask for the plan: SHOW UPGRADE PLAN runs every check a downgrade to %s "+
		"would run and changes nothing. Each row is a step; a blocker row says what would refuse it, with the fix.", h.from))
	stmt := fmt.Sprintf("SHOW UPGRADE PLAN FOR VERSION '%s'", h.from)
	d.printf("  > %s\n", stmt)
	return d.queryTable(ctx, d.sqlNode(), stmt, nil)
}

func (d *upgradeDemo) stepDowngrade(ctx context.Context, h demoHop) error {
	d.para(fmt.Sprintf("Why: SET CLUSTER SETTING version = '%s' walks the ladder down, step by step, each persisted on "+
		"every node, running each step's down-migration as a job (for 2.1: transactions end, their records are "+
		"deleted and every node's Raft log is compacted past the last 2.1 command). It sets "+
		"cluster.preserve_downgrade_option to %s in the same step, so that the cluster does not finalize straight "+
		"back up. Once it returns, binaries of %s may replace the others.", h.from, h.from, h.from))
	if err := d.execShow(ctx, fmt.Sprintf("SET CLUSTER SETTING version = '%s'", h.from)); err != nil {
		return err
	}
	if err := d.showSetting(ctx, "version"); err != nil {
		return err
	}
	if err := d.showSetting(ctx, "cluster.preserve_downgrade_option"); err != nil {
		return err
	}
	d.printf("  > SHOW JOBS\n")
	return d.queryTable(ctx, d.sqlNode(), "SHOW JOBS", []string{"job_id", "description", "status", "fraction_completed"})
}

// restartAll restarts every node that does not run rel on rel.
func (d *upgradeDemo) restartAll(ctx context.Context, rel clusterversion.Version) error {
	d.para(fmt.Sprintf("Why: the cluster runs version %s now, so a release %s binary accepts its stores. One node at a "+
		"time, as in the upgrade.", d.hops[len(d.hops)-1].from, rel))
	for _, nd := range d.c.Nodes {
		if nd.Server != nil && nd.Release == rel {
			continue
		}
		if err := d.restart(ctx, nd, rel); err != nil {
			return err
		}
	}
	return d.showStatus(ctx)
}

func (d *upgradeDemo) stepUpgradeAgain(ctx context.Context, h demoHop) error {
	if err := d.restartAll(ctx, h.to); err != nil {
		return err
	}
	d.para("RESET of the preserve option lets the auto-upgrade loop finalize again; every step's migration runs again.")
	if err := d.execShow(ctx, "RESET CLUSTER SETTING cluster.preserve_downgrade_option"); err != nil {
		return err
	}
	return d.watchFinalization(ctx, h)
}

func (d *upgradeDemo) stepVerify(ctx context.Context) error {
	d.para("Last, check that nothing was lost: every row the demo wrote, before and during the upgrade, read back " +
		"through every node.")
	ok := true
	for _, nd := range d.c.Nodes {
		if nd.Server == nil {
			d.printf("  node %d: not running\n", nd.ID)
			ok = false
			continue
		}
		_, rows, _, err := d.query(ctx, nd, fmt.Sprintf("SELECT k, v FROM %s ORDER BY k", demoTable))
		if err != nil {
			d.printf("  node %d: %s\n", nd.ID, errText(err))
			ok = false
			continue
		}
		got := map[int64]string{}
		for _, r := range rows {
			k, _ := strconv.ParseInt(r[0], 10, 64)
			got[k] = r[1]
		}
		var problems []string
		for k, v := range d.rows {
			if g, found := got[k]; !found {
				problems = append(problems, fmt.Sprintf("row %d is missing", k))
			} else if g != v {
				problems = append(problems, fmt.Sprintf("row %d is %q, want %q", k, g, v))
			}
		}
		for k := range got {
			if _, known := d.rows[k]; !known {
				if _, maybe := d.maybe[k]; !maybe {
					problems = append(problems, fmt.Sprintf("row %d was never written by the demo", k))
				}
			}
		}
		sort.Strings(problems)
		if len(problems) > 0 {
			ok = false
			d.printf("  node %d: %d rows, NOT as written: %s\n", nd.ID, len(rows), strings.Join(problems, "; "))
			continue
		}
		d.printf("  node %d: %d rows, all as written\n", nd.ID, len(rows))
	}
	if !ok {
		return errors.WithHint(errors.Newf("the rows of %s differ from what the demo wrote", demoTable),
			"if you changed demo_rows yourself with `sql`, that explains it")
	}
	d.printf("  Every one of the %d rows is intact.\n", len(d.rows))
	return nil
}

// ---- node restarts ----

// restart drains nd, stops it, writes a row through another node while it
// is down, and starts it again as release rel. If the node refuses to start
// as rel, it prints the server's refusal and starts the node again as the
// release it ran before, and returns an error saying so.
func (d *upgradeDemo) restart(ctx context.Context, nd *localcluster.Node, rel clusterversion.Version) error {
	prev := nd.Release
	if nd.Server != nil {
		d.printf("  > draining node %d (as `kvnode node drain --host=%s`)\n", nd.ID, nd.Config.ListenAddr)
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := nodeapi.DrainNode(dctx, nd.Server.RPCAddr())
		cancel()
		if err != nil {
			d.printf("    drain: %s (stopping anyway: a stop drains too)\n", errText(err))
		} else {
			d.printf("    drained (%d open SQL connections finished)\n", resp.OpenConnections)
		}
		d.printf("  > stopping node %d (release %s)\n", nd.ID, nd.Release)
		d.c.Stop(nd)
	}
	// With fewer than three nodes, the others are no majority: the cluster
	// cannot take a write until the node is back.
	if via := d.otherNode(nd); via != nil && len(d.c.Nodes) >= 3 {
		d.writeRow(ctx, via, fmt.Sprintf("written through node %d while node %d was down", via.ID, nd.ID))
	}
	d.printf("  > starting node %d on release %s (same store, same ports)\n", nd.ID, rel)
	begin := time.Now()
	err := d.c.Start(ctx, nd, rel)
	if err == nil {
		err = d.c.WaitUp(ctx, nd, 60*time.Second)
	}
	if err == nil {
		d.printf("    node %d serves SQL again, as release %s (%.1fs)\n", nd.ID, rel, time.Since(begin).Seconds())
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.printf("    node %d refused to start on release %s. The server says:\n", nd.ID, rel)
	d.printErr("      ", err)
	if prev == rel || prev == (clusterversion.Version{}) {
		return errors.Wrapf(err, "node %d did not start on release %s", nd.ID, rel)
	}
	d.printf("  > starting node %d again on release %s, so that the cluster is whole again\n", nd.ID, prev)
	if err2 := d.c.Start(ctx, nd, prev); err2 != nil {
		return errors.Wrapf(err2, "node %d did not start again on release %s either", nd.ID, prev)
	}
	if err2 := d.c.WaitUp(ctx, nd, 60*time.Second); err2 != nil {
		return errors.Wrapf(err2, "node %d did not start again on release %s either", nd.ID, prev)
	}
	d.printf("    node %d serves SQL again, as release %s: it was not restarted on release %s\n", nd.ID, prev, rel)
	return errRefused
}

// errRefused reports that a node refused the release it was restarted on
// (the refusal has been printed).
var errRefused = errors.New("the node refused to start on that release")

// otherNode returns a running node other than nd, or nil.
func (d *upgradeDemo) otherNode(nd *localcluster.Node) *localcluster.Node {
	for _, o := range d.c.Nodes {
		if o != nd && o.Server != nil {
			return o
		}
	}
	return nil
}

// sqlNode is the node the demo sends SQL to: node 1, or the first running
// node while node 1 is down.
func (d *upgradeDemo) sqlNode() *localcluster.Node {
	for _, nd := range d.c.Nodes {
		if nd.Server != nil {
			return nd
		}
	}
	return d.c.Nodes[0]
}

func (d *upgradeDemo) node(arg string) (*localcluster.Node, error) {
	id, err := strconv.Atoi(strings.TrimSpace(arg))
	if err == nil {
		for _, nd := range d.c.Nodes {
			if int(nd.ID) == id {
				return nd, nil
			}
		}
	}
	return nil, errors.Newf("no node %q: the nodes are 1 to %d", arg, len(d.c.Nodes))
}

// ---- rows ----

func (d *upgradeDemo) writeInitialRows(ctx context.Context) error {
	nd := d.c.Nodes[0]
	if _, _, _, err := d.query(ctx, nd, fmt.Sprintf("CREATE TABLE %s (k INT PRIMARY KEY, v TEXT)", demoTable)); err != nil {
		return errors.Wrapf(err, "creating %s", demoTable)
	}
	var vals []string
	batch := map[int64]string{}
	for i := 0; i < 20; i++ {
		d.nextKey++
		v := fmt.Sprintf("row %d, written on release %s before the upgrade", d.nextKey, d.hops[0].from)
		batch[d.nextKey] = v
		vals = append(vals, fmt.Sprintf("(%d, '%s')", d.nextKey, v))
	}
	if _, _, _, err := d.query(ctx, nd, fmt.Sprintf("INSERT INTO %s VALUES %s", demoTable, strings.Join(vals, ", "))); err != nil {
		return errors.Wrapf(err, "writing the demo rows")
	}
	for k, v := range batch {
		d.rows[k] = v
	}
	return nil
}

func (d *upgradeDemo) writeRow(ctx context.Context, via *localcluster.Node, note string) {
	d.nextKey++
	k := d.nextKey
	v := fmt.Sprintf("row %d, %s", k, note)
	stmt := fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", demoTable, k, v)
	d.printf("  > %s   -- through node %d\n", stmt, via.ID)
	if _, _, _, err := d.query(ctx, via, stmt); err != nil {
		d.maybe[k] = v
		d.printErr("    ", err)
		return
	}
	d.rows[k] = v
}

// ---- SQL ----

// query runs one statement on nd (simple protocol) and returns its columns,
// its rows as text ("" for NULL) and its command tag.
func (d *upgradeDemo) query(ctx context.Context, nd *localcluster.Node, stmt string) ([]string, [][]string, string, error) {
	return queryText(ctx, nd, stmt, "")
}

func queryText(ctx context.Context, nd *localcluster.Node, stmt, null string) ([]string, [][]string, string, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(qctx, nd.URL())
	if err != nil {
		return nil, nil, "", err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(qctx, stmt, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, nil, "", err
	}
	defer rows.Close()
	var cols []string
	for _, fd := range rows.FieldDescriptions() {
		cols = append(cols, fd.Name)
	}
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, nil, "", err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = formatValue(v, null)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, "", err
	}
	return cols, out, rows.CommandTag().String(), nil
}

func formatValue(v any, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case []byte:
		return fmt.Sprintf("\\x%x", x)
	case time.Time:
		return x.Format("2006-01-02 15:04:05.999999")
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// execShow prints a statement, runs it through the SQL node, and prints its
// tag.
func (d *upgradeDemo) execShow(ctx context.Context, stmt string) error {
	nd := d.sqlNode()
	d.printf("  > %s\n", stmt)
	_, _, tag, err := d.query(ctx, nd, stmt)
	if err != nil {
		d.printErr("    ", err)
		return err
	}
	d.printf("    %s\n", tag)
	return nil
}

func (d *upgradeDemo) showSetting(ctx context.Context, name string) error {
	stmt := "SHOW CLUSTER SETTING " + name
	_, rows, _, err := d.query(ctx, d.sqlNode(), stmt)
	if err != nil {
		d.printf("  > %s\n", stmt)
		d.printErr("    ", err)
		return err
	}
	val := ""
	if len(rows) == 1 && len(rows[0]) == 1 {
		val = rows[0][0]
	}
	if val == "" {
		val = "(empty)"
	}
	d.printf("  > %s   -> %s\n", stmt, val)
	return nil
}

func (d *upgradeDemo) clusterVersion(ctx context.Context) (clusterversion.Version, error) {
	_, rows, _, err := d.query(ctx, d.sqlNode(), "SHOW CLUSTER SETTING version")
	if err != nil {
		return clusterversion.Version{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return clusterversion.Version{}, errors.Newf("SHOW CLUSTER SETTING version returned %d rows", len(rows))
	}
	return clusterversion.Parse(rows[0][0])
}

func (d *upgradeDemo) upgradeStatusRows(ctx context.Context) ([][]string, error) {
	cols, rows, _, err := d.query(ctx, d.sqlNode(), "SHOW UPGRADE STATUS")
	if err != nil {
		return nil, err
	}
	if len(cols) != 4 {
		return nil, errors.Newf("SHOW UPGRADE STATUS returned %d columns (%s), want item, node_id, value, detail",
			len(cols), strings.Join(cols, ", "))
	}
	return rows, nil
}

// showStatus prints SHOW UPGRADE STATUS as a table, then which binary each
// node runs (and whether the versions are mixed).
func (d *upgradeDemo) showStatus(ctx context.Context) error {
	nd := d.sqlNode()
	d.printf("  > SHOW UPGRADE STATUS   -- through node %d\n", nd.ID)
	cols, rows, _, err := d.query(ctx, nd, "SHOW UPGRADE STATUS")
	if err != nil {
		d.printErr("    ", err)
		return err
	}
	d.table(cols, rows)
	byRelease := map[string][]string{}
	for _, r := range rows {
		if len(r) == 4 && r[0] == "node" && !strings.Contains(r[3], "decommissioned") {
			byRelease[r[2]] = append(byRelease[r[2]], r[1])
		}
	}
	var rels []string
	for rel := range byRelease {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	switch len(rels) {
	case 0:
	case 1:
		d.printf("  Every node runs release %s.\n", rels[0])
	default:
		var parts []string
		for _, rel := range rels {
			word := "node"
			if len(byRelease[rel]) > 1 {
				word = "nodes"
			}
			parts = append(parts, fmt.Sprintf("%s %s on %s", word, strings.Join(byRelease[rel], ", "), rel))
		}
		d.printf("  MIXED VERSIONS: %s.\n", strings.Join(parts, "; "))
	}
	return nil
}

// table prints rows under cols, aligned, indented by four spaces.
func (d *upgradeDemo) table(cols []string, rows [][]string) {
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    %s\n", strings.Join(cols, "\t"))
	var dashes []string
	for _, c := range cols {
		dashes = append(dashes, strings.Repeat("-", len(c)))
	}
	fmt.Fprintf(tw, "    %s\n", strings.Join(dashes, "\t"))
	for _, r := range rows {
		fmt.Fprintf(tw, "    %s\n", strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// queryTable runs stmt on nd and prints the columns named in keep (all if
// nil).
func (d *upgradeDemo) queryTable(ctx context.Context, nd *localcluster.Node, stmt string, keep []string) error {
	cols, rows, _, err := queryText(ctx, nd, stmt, "NULL")
	if err != nil {
		d.printErr("    ", err)
		return err
	}
	if keep != nil {
		var idx []int
		var kc []string
		for _, k := range keep {
			for i, c := range cols {
				if c == k {
					idx, kc = append(idx, i), append(kc, c)
				}
			}
		}
		var kr [][]string
		for _, r := range rows {
			var x []string
			for _, i := range idx {
				x = append(x, r[i])
			}
			kr = append(kr, x)
		}
		cols, rows = kc, kr
	}
	if len(rows) == 0 {
		d.printf("    (no rows)\n")
		return nil
	}
	d.table(cols, rows)
	return nil
}

// showStatusPage shows what nd's status page (http://<http-addr>/) says:
// its banners, read from the page's JSON twin (/_status/console), or, from
// a node without it, the page itself if it is plain text.
func (d *upgradeDemo) showStatusPage(ctx context.Context, nd *localcluster.Node) {
	base := "http://" + nd.Config.HTTPAddr
	d.printf("  Status page of node %d, %s/ (open it in a browser):\n", nd.ID, base)
	var page struct {
		Error   string `json:"error"`
		Banners []struct {
			Kind     string   `json:"kind"`
			Severity string   `json:"severity"`
			Title    string   `json:"title"`
			Detail   string   `json:"detail"`
			Fix      []string `json:"fix"`
		} `json:"banners"`
	}
	body, ctype, status, err := httpGet(ctx, base+"/_status/console")
	if err == nil && status == http.StatusOK && strings.Contains(ctype, "json") && json.Unmarshal(body, &page) == nil {
		if page.Error != "" {
			d.printf("    (the node could not compute the cluster status: %s)\n", page.Error)
		}
		if len(page.Banners) == 0 {
			d.printf("    no banners: nothing needs the operator\n")
		}
		for _, b := range page.Banners {
			d.printf("    [%s %s] %s\n", b.Severity, b.Kind, b.Title)
			if b.Detail != "" {
				d.printf("      %s\n", b.Detail)
			}
			for _, f := range b.Fix {
				d.printf("      fix: %s\n", f)
			}
		}
		return
	}
	body, ctype, _, err = httpGet(ctx, base+"/")
	switch {
	case err != nil:
		d.printf("    (cannot fetch it: %v)\n", err)
	case strings.HasPrefix(ctype, "text/plain"):
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			d.printf("    %s\n", l)
		}
	default:
		d.printf("    (a %s page of %d bytes)\n", ctype, len(body))
	}
}

func httpGet(ctx context.Context, url string) (body []byte, contentType string, status int, _ error) {
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.Header.Get("Content-Type"), resp.StatusCode, err
}

// ---- guided mode ----

const demoHelp = `Commands:
  (Enter) or next   run the next step of the walk-through (it says what it does and why first)
  auto              run the remaining steps without waiting
  status            SHOW UPGRADE STATUS, as a table
  sql <statement>   run a statement through node 1 and print its rows or its error
  upgrade <n>       restart node n on the new release (drain, stop, start)
  rollback <n>      restart node n on the old release (refused by the node once the cluster has finalized)
  help              this list
  quit              stop the cluster, delete its data and exit (so does end of input, or Ctrl-C)
`

func (d *upgradeDemo) printNext() {
	if d.next >= len(d.steps) {
		d.printf("\nThe walk-through is complete. Type `sql <statement>`, `status`, `help`, or `quit`.\n")
		return
	}
	d.printf("\nNext (step %d of %d): %s.\nPress Enter to run it, or type `help` for the other commands.\n",
		d.next+1, len(d.steps), d.steps[d.next].title)
}

func (d *upgradeDemo) interactive(ctx context.Context, in io.Reader) error {
	tty := false
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	d.printf("\n%s", demoHelp)
	d.printNext()
	for {
		d.printf("demo> ")
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case line, ok = <-lines:
		}
		if !ok {
			d.printf("(end of input)\n")
			return nil
		}
		if !tty {
			d.printf("%s\n", line) // echo piped commands, so the transcript reads like a session
		}
		quit, err := d.command(ctx, line)
		if err != nil && ctx.Err() == nil && !errors.Is(err, errRefused) {
			d.printErr("", err)
		}
		if quit || ctx.Err() != nil {
			return nil
		}
		d.printNext()
	}
}

// command runs one line typed at the prompt; it reports whether to quit.
func (d *upgradeDemo) command(ctx context.Context, line string) (quit bool, _ error) {
	line = strings.TrimSpace(line)
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	h := d.hops[d.hop]
	switch strings.ToLower(word) {
	case "", "next", "n":
		return false, d.runStep(ctx)
	case "auto":
		return false, d.runRemaining(ctx)
	case "help", "?", "h":
		d.printf("%s", demoHelp)
		return false, nil
	case "status", "s":
		return false, d.showStatus(ctx)
	case "sql":
		if rest == "" {
			return false, errors.WithHint(errors.New("sql needs a statement"), "for example: sql SELECT count(*) FROM "+demoTable)
		}
		return false, d.sqlCommand(ctx, rest)
	case "upgrade", "rollback":
		nd, err := d.node(rest)
		if err != nil {
			return false, errors.WithHintf(err, "for example: %s 1", strings.ToLower(word))
		}
		rel := h.to
		if strings.ToLower(word) == "rollback" {
			rel = h.from
		}
		if nd.Server != nil && nd.Release == rel {
			d.printf("Node %d already runs release %s.\n", nd.ID, rel)
			return false, nil
		}
		d.printf("Restarting node %d on release %s.\n", nd.ID, rel)
		if err := d.restart(ctx, nd, rel); err != nil {
			return false, err
		}
		return false, d.showStatus(ctx)
	case "quit", "exit", "q", `\q`:
		return true, nil
	default:
		return false, errors.WithHint(errors.Newf("unknown command %q", word), "type `help` for the commands")
	}
}

func (d *upgradeDemo) sqlCommand(ctx context.Context, stmt string) error {
	nd := d.sqlNode()
	cols, rows, tag, err := queryText(ctx, nd, stmt, "NULL")
	if err != nil {
		d.printErr("", err)
		return nil // printed; a SQL error is an answer, not a failure of the demo
	}
	if len(cols) > 0 {
		d.table(cols, rows)
	}
	d.printf("%s   -- through node %d\n", tag, nd.ID)
	return nil
}

// ---- helpers ----

// printErr prints err as the CLI does: ERROR, then its hints; a PostgreSQL
// error with its SQLSTATE, detail and hint.
func (d *upgradeDemo) printErr(indent string, err error) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		d.printf("%sERROR: %s (SQLSTATE %s)\n", indent, pe.Message, pe.Code)
		if pe.Detail != "" {
			d.printf("%sDETAIL: %s\n", indent, pe.Detail)
		}
		if pe.Hint != "" {
			d.printf("%sHINT: %s\n", indent, pe.Hint)
		}
		return
	}
	d.printf("%sERROR: %s\n", indent, err)
	for _, h := range errors.GetAllHints(err) {
		d.printf("%sHINT: %s\n", indent, h)
	}
}

func errText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err.Error()
}

func describeRelease(v clusterversion.Version) string {
	if k, ok := clusterversion.Lookup(v); ok {
		return k.Description()
	}
	return v.String()
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
