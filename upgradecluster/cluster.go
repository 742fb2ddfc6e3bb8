package upgradecluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/settings"
	"github.com/kvnode/kvnode/sql/rowenc"
	"github.com/kvnode/kvnode/sql/users"
	"github.com/kvnode/kvnode/upgrademanager"
)

// Node is what the upgrade's cluster needs of the node it runs on.
type Node interface {
	NodeID() nodeid.ID
	// ClusterID is the ID of the cluster the node belongs to.
	ClusterID() string
	// RPCAddr is the node's own RPC address (the decision's host).
	RPCAddr() string
	// ActiveVersion is the cluster version the node has persisted.
	ActiveVersion() clusterversion.Version
	// Replica is the node's data replica (nil before it has joined).
	Replica() *kv.Replica
	// NodeStatuses is every node's status from linearizable reads.
	NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error)
	// Settings is the node's cluster settings registry.
	Settings() *settings.Registry
	// AutoUpgradeEnabled is cluster.auto_upgrade.enabled, as cached.
	AutoUpgradeEnabled() bool
	// PreserveDowngrade is cluster.preserve_downgrade_option, as cached.
	PreserveDowngrade() string
	// PersistActiveVersion durably moves the node's version up to v
	// (never down), then acts on it.
	PersistActiveVersion(v clusterversion.Version) error
	// LowerActiveVersion durably moves the node's version one ladder step
	// down to v, with the checks and waits of that step.
	LowerActiveVersion(v clusterversion.Version) error
	// SchemaDigests is this node's schema digest and the digests the live
	// nodes gossip (ok is false while gossip or SQL is not started).
	SchemaDigests() (mine string, live map[nodeid.ID]string, ok bool)
	// Release21Blockers is what in the schema refuses a downgrade from
	// 2.1 (nil while SQL is not started).
	Release21Blockers() []migrations.Blocker
}

// Group0 is what the upgrade's cluster drives of group 0
// (group0/member.Member).
type Group0 interface {
	// RunUpgrade runs group 0's upgrade procedure (the 2.0 migration).
	RunUpgrade(ctx context.Context) error
	// Leave takes this node out of group 0 (the 2.0 down-migration).
	Leave(ctx context.Context) error
	// Enabled: the binary knows group 0 (release 2.0 or later).
	Enabled() bool
	// NodeStates asks every node for its group 0 state.
	NodeStates(ctx context.Context, statuses []nodeapi.NodeStatus) []group0.NodeInfo
}

// Knobs are the testing hooks of finalizations and migrations.
type Knobs struct {
	// MigrationLease and MigrationBatchSize override the migration job
	// runner's defaults.
	MigrationLease     time.Duration
	MigrationBatchSize int
	// MigrationCheckpoint runs on a migration's coordinator before each
	// checkpoint.
	MigrationCheckpoint func(ctx context.Context, nodeID nodeid.ID, done int64) error
	// BeforeVersionStep and VersionStepPause run on the coordinator
	// before it persists each ladder step (upgrademanager.Config).
	BeforeVersionStep func(step clusterversion.Version) error
	VersionStepPause  func(ctx context.Context, step clusterversion.Version) error
	// ReportedVersion rewrites the persisted version that this node's
	// status view says node id reported (gossip that has not caught up):
	// the fault a stale report is.
	ReportedVersion func(id nodeid.ID, reported string) string
	// ReportedBuild rewrites the binary version that this node's status
	// view says node id runs (gossip that still carries the metadata of
	// the node's previous run): the fault a stale report is.
	ReportedBuild func(id nodeid.ID, reported string) string
}

// Config is what New needs.
type Config struct {
	Node   Node
	Group0 Group0
	Client *nodeapi.Client
	Log    *slog.Logger
	Knobs  Knobs
}

// Cluster is the cluster as this node's upgrade manager drives it.
type Cluster struct {
	cfg Config
	mgr *upgrademanager.Manager
}

// New builds the cluster and the upgrade manager that drives it.
func New(cfg Config) *Cluster {
	c := &Cluster{cfg: cfg}
	c.mgr = upgrademanager.New(upgrademanager.Config{
		Cluster: c,
		DB: func() kvpb.DB {
			if rep := cfg.Node.Replica(); rep != nil {
				return rep
			}
			return nil
		},
		Local:      cfg.Node.ActiveVersion,
		Migrations: migrationsOf{c},
		Log:        cfg.Log,
		BeforeStep: cfg.Knobs.BeforeVersionStep,
		StepPause:  cfg.Knobs.VersionStepPause,
	})
	return c
}

// Manager is the node's upgrade manager (Migrate, Downgrade, Plan).
func (c *Cluster) Manager() *upgrademanager.Manager { return c.mgr }

var _ upgrademanager.Cluster = (*Cluster)(nil)

func (c *Cluster) Input(ctx context.Context) (autoupgrade.Input, error) {
	in, _, err := c.input(ctx, true)
	return in, err
}

func (c *Cluster) Nodes(ctx context.Context) ([]autoupgrade.Node, error) {
	statuses, err := c.cfg.Node.NodeStatuses(ctx)
	if err != nil {
		return nil, err
	}
	return autoupgradeNodes(statuses), nil
}

// PersistVersion persists v on node n: this node's own store directly,
// another node's through the SetClusterVersion RPC.
func (c *Cluster) PersistVersion(ctx context.Context, n autoupgrade.Node, v clusterversion.Version, lower bool) error {
	if n.ID == c.cfg.Node.NodeID() {
		if lower {
			return c.cfg.Node.LowerActiveVersion(v)
		}
		return c.cfg.Node.PersistActiveVersion(v)
	}
	resp, err := c.cfg.Client.SetClusterVersion(ctx, n.Address, &nodeapi.SetClusterVersionRequest{Version: v.String(), Lower: lower})
	if err == nil && lower && resp.Version != v.String() {
		// A binary that predates downgrades ignores Lower and keeps its
		// version.
		return errors.WithHintf(errors.Newf("node %d kept cluster version %s instead of moving down to %s", n.ID, resp.Version, v),
			"node %d's binary does not know downgrades; restart it on a binary of %s", n.ID, clusterversion.MustBinaryVersion())
	}
	return err
}

func (c *Cluster) PreserveOps(v clusterversion.Version) ([]kvpb.Op, error) {
	return c.cfg.Node.Settings().Ops("cluster.preserve_downgrade_option", v.String())
}

func (c *Cluster) ResetPreserveDowngrade(ctx context.Context) error {
	return c.cfg.Node.Settings().Reset(ctx, "cluster.preserve_downgrade_option")
}

// migrationsOf runs migrations as jobs on this node's behalf.
type migrationsOf struct{ c *Cluster }

var _ upgrademanager.Migrations = migrationsOf{}

func (m migrationsOf) Has(v clusterversion.Version) bool {
	_, ok := migrations.For(v)
	return ok
}

func (m migrationsOf) Run(ctx context.Context, v clusterversion.Version) error {
	return m.c.runner().Run(ctx, v)
}

func (m migrationsOf) DownWhen(v clusterversion.Version) (after, ok bool) {
	d, ok := migrations.DownFor(v)
	return ok && d.When == migrations.AfterLowering, ok
}

func (m migrationsOf) RunDown(ctx context.Context, v clusterversion.Version) error {
	return m.c.runner().RunDown(ctx, v)
}

func (m migrationsOf) Check(ctx context.Context, v clusterversion.Version, down bool) (upgrademanager.StepCheck, bool, error) {
	c, ok, err := m.c.runner().Check(ctx, v, down)
	return upgrademanager.StepCheck{Detail: c.Detail, Blockers: planBlockers(c.Blockers)}, ok, err
}

func (m migrationsOf) Refusals(ctx context.Context, v clusterversion.Version) ([]upgrademanager.PlanBlocker, error) {
	bs, err := m.c.runner().Refusals(ctx, v)
	return planBlockers(bs), err
}

// planBlockers is the plan's view of migrations' blockers.
func planBlockers(bs []migrations.Blocker) []upgrademanager.PlanBlocker {
	var out []upgrademanager.PlanBlocker
	for _, b := range bs {
		out = append(out, upgrademanager.PlanBlocker{Reason: b.Reason, Fix: b.Fix})
	}
	return out
}

func (m migrationsOf) Forget(ctx context.Context, v clusterversion.Version, down bool) error {
	return m.c.runner().Forget(ctx, v, down)
}

// input gathers what a finalization decision depends on, and the
// statuses it read.
//
// With strict, a report that another node is ahead of this one which that
// node does not confirm is an error (confirmAhead): decisions act on the
// input; SHOW UPGRADE STATUS only shows it, and keeps the report.
func (c *Cluster) input(ctx context.Context, strict bool) (autoupgrade.Input, []nodeapi.NodeStatus, error) {
	// Decide on the settings as they are now, not as cached: a RESET of the
	// preserve option on another node must count at once.
	n := c.cfg.Node
	if err := n.Settings().Refresh(ctx); err != nil {
		return autoupgrade.Input{}, nil, err
	}
	statuses, err := n.NodeStatuses(ctx)
	if err != nil {
		return autoupgrade.Input{}, nil, err
	}
	for i := range statuses {
		if statuses[i].NodeID == n.NodeID() {
			continue // its own row is not a report
		}
		if k := c.cfg.Knobs.ReportedVersion; k != nil {
			statuses[i].PersistedVersion = k(statuses[i].NodeID, statuses[i].PersistedVersion)
		}
		if k := c.cfg.Knobs.ReportedBuild; k != nil {
			statuses[i].Build = k(statuses[i].NodeID, statuses[i].Build)
		}
	}
	c.confirmBuilds(ctx, statuses)
	active := n.ActiveVersion()
	if err := c.confirmAhead(ctx, statuses, active, strict); err != nil {
		return autoupgrade.Input{}, nil, err
	}
	in := autoupgrade.Input{
		Active:             active,
		AutoUpgradeEnabled: n.AutoUpgradeEnabled(),
		PreserveDowngrade:  n.PreserveDowngrade(),
		Host:               n.RPCAddr(),
		Nodes:              autoupgradeNodes(statuses),
	}
	if d, ok, err := c.mgr.Downgrading(ctx); err != nil {
		return autoupgrade.Input{}, nil, err
	} else if ok {
		in.Downgrading = d
	}
	return in, statuses, nil
}

// confirmAhead asks every live node whose status reports a cluster version
// above active (this node's, as the decision reads it) for the version it
// has persisted, and puts its answer in place of the report.
//
// A report above the deciding node's version is read as a finalization
// under way (autoupgrade.Decide), which goes on whatever
// cluster.preserve_downgrade_option says. Reports travel by gossip, and
// each node's view catches up at its own pace: right after a downgrade,
// the coordinator has seen every node report the lower version
// (upgrademanager's waitReported), but the next leader may still hold a
// report from before the downgrade, and would take it for an interrupted
// finalization and upgrade the cluster straight back. The node itself is
// the authority on what it has persisted. A node that is not live keeps
// its report (it blocks a finalization anyway). A live node that cannot be
// asked is an error when strict (the decision is taken again next round),
// and keeps its report otherwise.
func (c *Cluster) confirmAhead(ctx context.Context, statuses []nodeapi.NodeStatus, active clusterversion.Version, strict bool) error {
	self := c.cfg.Node.NodeID()
	for i := range statuses {
		ns := &statuses[i]
		pv, err := clusterversion.Parse(ns.PersistedVersion)
		if err != nil || !active.Less(pv) || ns.NodeID == self || !ns.IsLive || ns.Membership == autoupgrade.Decommissioned {
			continue
		}
		own, err := c.askPersisted(ctx, ns.NodeID, ns.Address)
		if err != nil {
			if strict {
				return errors.WithHintf(errors.Wrapf(err, "node %d reports cluster version %s, above this node's %s, and could not confirm it",
					ns.NodeID, pv, active), "the decision is taken again once node %d answers at %s", ns.NodeID, ns.Address)
			}
			continue
		}
		if own != ns.PersistedVersion {
			c.cfg.Log.Info("a node's gossiped cluster version is stale; using what it persisted",
				"node", ns.NodeID, "reported", ns.PersistedVersion, "persisted", own)
			ns.PersistedVersion = own
		}
	}
	return nil
}

// confirmBuilds asks every live node that is not decommissioned, this one
// aside, which binary it runs, and puts its answer in place of the report.
//
// A status row's binary is a report: the older of the node's replicated
// record and its gossip metadata (server/status's olderBuild). Right after
// a node restarts on a new binary, the deciding node's gossip may still
// hold the metadata of its previous run, and the report says the old
// binary: a finalization would be refused (55000 "node N is running 2.0")
// and the auto-upgrade decision blocked on mixed versions, for nothing
// (seen at the end of a rolling upgrade: roachtest txn/rolling-upgrade,
// seed 8977818634051549). The other way round, a node restarted on an older
// binary may still be reported on the newer one. The node itself is the
// authority on the binary it runs: kvnode.Node's Hello answers with it, in
// every release. The answer is checked to come from that node of this
// cluster.
//
// A node that cannot be asked keeps its report: a decision that lets it
// through still has the node persist each step, which a binary that cannot
// run the step refuses (so does a node that restarts on an older binary
// after it was asked; once a node has persisted a fence, an older binary
// refuses its store). A node that is not live keeps its report too: it
// blocks a finalization anyway.
func (c *Cluster) confirmBuilds(ctx context.Context, statuses []nodeapi.NodeStatus) {
	self := c.cfg.Node.NodeID()
	var wg sync.WaitGroup
	for i := range statuses {
		ns := &statuses[i]
		if ns.NodeID == self || !ns.IsLive || ns.Membership == autoupgrade.Decommissioned || ns.Address == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			build, err := c.askBuild(ctx, ns.NodeID, ns.Address)
			if err != nil {
				c.cfg.Log.Debug("could not ask a node for its binary version; using the report",
					"node", ns.NodeID, "reported", ns.Build, "err", err)
				return
			}
			if build != ns.Build {
				c.cfg.Log.Info("a node's reported binary version is stale; using what it runs",
					"node", ns.NodeID, "reported", ns.Build, "runs", build)
				ns.Build = build
			}
		}()
	}
	wg.Wait()
}

// askBuild asks node id, at addr, for the release of the binary it runs.
func (c *Cluster) askBuild(ctx context.Context, id nodeid.ID, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.cfg.Client.Hello(ctx, addr, &nodeapi.HelloRequest{})
	if err != nil {
		return "", err
	}
	if resp.NodeID != id {
		return "", errors.Newf("%s is node %d, not node %d", addr, resp.NodeID, id)
	}
	if cid := c.cfg.Node.ClusterID(); resp.ClusterID != cid {
		return "", errors.Newf("%s belongs to cluster %s, not %s", addr, resp.ClusterID, cid)
	}
	if _, err := clusterversion.Parse(resp.BinaryVersion); err != nil {
		return "", errors.Wrapf(err, "node %d's binary version", id)
	}
	return resp.BinaryVersion, nil
}

// askPersisted asks node id, at addr, for the cluster version it has
// persisted: its own row of the status it answers with.
func (c *Cluster) askPersisted(ctx context.Context, id nodeid.ID, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.cfg.Client.NodeStatus(ctx, addr, &nodeapi.NodeStatusRequest{})
	if err != nil {
		return "", err
	}
	if resp.AnsweredBy != id {
		return "", errors.Newf("%s is node %d, not node %d", addr, resp.AnsweredBy, id)
	}
	for _, r := range resp.Nodes {
		if r.NodeID == id && r.PersistedVersion != "" {
			return r.PersistedVersion, nil
		}
	}
	return "", errors.Newf("node %d did not report its own cluster version", id)
}

// autoupgradeNodes is the decision's view of the nodes, made here only
// (server/autoupgrade's doc.go says why it is a view of its own, and which
// rules of reading a report live here).
func autoupgradeNodes(statuses []nodeapi.NodeStatus) []autoupgrade.Node {
	out := make([]autoupgrade.Node, 0, len(statuses))
	for _, n := range statuses {
		bv, err := clusterversion.Parse(n.Build)
		if err != nil {
			bv = clusterversion.Version{} // unknown build: treated as oldest
		}
		pv, _ := clusterversion.Parse(n.PersistedVersion) // unknown: zero
		out = append(out, autoupgrade.Node{
			ID: n.NodeID, Address: n.Address, BinaryVersion: bv, Live: n.IsLive,
			Membership: n.Membership, Draining: n.IsDraining, Persisted: pv,
		})
	}
	return out
}

func (c *Cluster) runner() *migrations.Runner {
	lo, hi := rowenc.AllTablesSpan()
	var hook func(context.Context, migrations.Progress) error
	n := c.cfg.Node
	rep := n.Replica()
	if k := c.cfg.Knobs.MigrationCheckpoint; k != nil {
		id := n.NodeID()
		hook = func(ctx context.Context, p migrations.Progress) error { return k(ctx, id, p.Done) }
	}
	return &migrations.Runner{
		DB: rep, NodeID: n.NodeID(), Log: c.cfg.Log, Lease: c.cfg.Knobs.MigrationLease, CheckpointHook: hook,
		Deps: migrations.Deps{
			DB: rep, TableSpan: [2][]byte{lo, hi}, UpgradeRow: rowenc.UpgradeValue,
			BatchSize:     c.cfg.Knobs.MigrationBatchSize,
			Group0Upgrade: c.cfg.Group0.RunUpgrade,
			Group0Leave:   c.leaveGroup0,
			EnableTxns:    rep.EnableTxns,
			CreateUsers:   func(ctx context.Context) error { return users.EnsureStore(ctx, rep) },
			DowngradeRow:  rowenc.DowngradeValue,
			RowEncoding:   rowenc.ValueEncoding,
			NonRootUsers: func(ctx context.Context) ([]string, error) {
				return users.NonRootUsers(ctx, rep)
			},
			Release21Blockers: n.Release21Blockers,
			TxnRecordSpan:     [2][]byte{[]byte(keys.TxnMetaPrefix), keys.PrefixEnd([]byte(keys.TxnMetaPrefix))},
			DisableTxns:       rep.DisableTxns,
			PurgeRaftLogs:     c.purgeRaftLogs,
		},
	}
}

// leaveGroup0 is migrations.Deps.Group0Leave: delete the formation record
// (from then on nothing prepares a group 0 replica on any node, and a node
// that restarts does not look for group 0), have every node that is not
// decommissioned leave, then wait until the nodes' schema digests agree
// (the pre-Raft sync loop merges what each node's catalog holds).
func (c *Cluster) leaveGroup0(ctx context.Context) error {
	rep := c.cfg.Node.Replica()
	if err := rep.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDelete, Key: keys.Group0FormationKey()}}); err != nil {
		return errors.Wrap(err, "deleting the group 0 formation record")
	}
	err := c.onEveryNode(ctx, "not every node left group 0", func(n nodeapi.NodeStatus) error {
		if n.NodeID == c.cfg.Node.NodeID() {
			return c.cfg.Group0.Leave(ctx)
		}
		_, err := c.cfg.Client.Group0SetState(ctx, n.Address, &nodeapi.Group0SetStateRequest{State: string(group0.UsePreRaft), Leave: true})
		return err
	})
	if err != nil {
		return err
	}
	return c.waitSchemaConverged(ctx, time.Minute)
}

// waitSchemaConverged waits until every live node gossips this node's
// schema digest.
func (c *Cluster) waitSchemaConverged(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		mine, live, ok := c.cfg.Node.SchemaDigests()
		var differ []nodeid.ID
		for id, d := range live {
			if d != mine {
				differ = append(differ, id)
			}
		}
		slices.Sort(differ)
		if ok && len(differ) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.WithHintf(errors.Newf("the schemas of %s have not converged with node %d's after leaving group 0",
				nodeid.Names(differ), c.cfg.Node.NodeID()), "the pre-Raft schema sync merges them; the downgrade resumes this step")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// purgeRaftLogs has every node that is not decommissioned compact its data
// group log through index (migrations.Deps.PurgeRaftLogs).
func (c *Cluster) purgeRaftLogs(ctx context.Context, through uint64) error {
	return c.onEveryNode(ctx, fmt.Sprintf("not every node compacted its Raft log through %d", through), func(n nodeapi.NodeStatus) error {
		if n.NodeID == c.cfg.Node.NodeID() {
			return c.cfg.Node.Replica().PurgeLogThrough(ctx, through)
		}
		_, err := c.cfg.Client.PurgeRaftLog(ctx, n.Address, &nodeapi.PurgeRaftLogRequest{Through: through})
		return err
	})
}

// onEveryNode runs do for every node that is not decommissioned, one after
// the other, and reports every node's failure under what (a downgrade step
// is retried once every node is reachable).
func (c *Cluster) onEveryNode(ctx context.Context, what string, do func(n nodeapi.NodeStatus) error) error {
	statuses, err := c.cfg.Node.NodeStatuses(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, n := range statuses {
		if n.Membership == autoupgrade.Decommissioned {
			continue
		}
		if err := do(n); err != nil {
			errs = append(errs, fmt.Sprintf("node %d: %v", n.NodeID, err))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.WithHint(errors.Newf("%s: %v", what, errs),
			"the downgrade resumes this step once every node is reachable")
	}
	return nil
}
