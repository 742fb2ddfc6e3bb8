package clustersql

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/server/status"
	"github.com/kvnode/kvnode/settings"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
	"github.com/kvnode/kvnode/upgrademanager"
)

// Node is what the cluster's SQL needs of the node it runs on.
type Node interface {
	// Settings is the node's cluster settings registry.
	Settings() *settings.Registry
	BinaryVersion() clusterversion.Version
	// ActiveVersion is the cluster version the node has persisted.
	ActiveVersion() clusterversion.Version
	// ReplicatedVersion reads the replicated `version` (linearizable).
	ReplicatedVersion(ctx context.Context) (clusterversion.Version, error)
	// Downgrading reports the target of a downgrade under way.
	Downgrading(ctx context.Context) (clusterversion.Version, bool, error)
	// Finalize moves the cluster version up to target; Downgrade down.
	Finalize(ctx context.Context, target clusterversion.Version) error
	Downgrade(ctx context.Context, target clusterversion.Version) error
	// UpgradeStatus is SHOW UPGRADE STATUS; UpgradePlan SHOW UPGRADE PLAN.
	UpgradeStatus(ctx context.Context) (*status.UpgradeStatus, error)
	UpgradePlan(ctx context.Context, target clusterversion.Version) (*upgrademanager.Plan, error)
	// Replica is the node's data replica (nil before it has joined);
	// LiveReplica the same once its liveness runs (nil before).
	Replica() *kv.Replica
	LiveReplica() *kv.Replica
	// ClusterStatus is every node's status (stale: the data group did not
	// answer in time, and the rows are this node's copy).
	ClusterStatus(ctx context.Context) (rows []nodeapi.NodeStatus, stale bool)
}

// Install gives the executor what the node answers about the cluster: the
// cluster-setting statements and the crdb_internal views of nodes and
// liveness.
func Install(exec *sql.Executor, node Node) {
	h := &settingsHook{s: node, exec: exec}
	exec.SetStatementHook(h)
	exec.RegisterVirtualTable("crdb_internal.gossip_nodes", gossipNodesColumns, h.gossipNodesRows)
	exec.RegisterVirtualTable("crdb_internal.gossip_liveness", gossipLivenessColumns, h.gossipLivenessRows)
}

// gossipNodesColumns are CockroachDB's crdb_internal.gossip_nodes columns
// that apply to kvnode (no attrs, locality or cluster name), with
// timestamps as strings. ranges is 1 if the node holds a replica of the one
// data group, leases is 1 if it leads it.
var gossipNodesColumns = []pgwire.Column{
	{Name: "node_id", Type: types.Int},
	{Name: "network", Type: types.String},
	{Name: "address", Type: types.String},
	{Name: "advertise_address", Type: types.String},
	{Name: "sql_network", Type: types.String},
	{Name: "sql_address", Type: types.String},
	{Name: "advertise_sql_address", Type: types.String},
	{Name: "server_version", Type: types.String},
	{Name: "build_tag", Type: types.String},
	{Name: "started_at", Type: types.String},
	{Name: "is_live", Type: types.Bool},
	{Name: "ranges", Type: types.Int},
	{Name: "leases", Type: types.Int},
}

func (h *settingsHook) gossipNodesRows(ctx context.Context) ([][]types.Datum, error) {
	rows, _ := h.s.ClusterStatus(ctx)
	out := make([][]types.Datum, 0, len(rows))
	for _, r := range rows {
		var ranges, leases int64
		if r.Raft != "none" {
			ranges = 1
		}
		if r.IsLeader {
			leases = 1
		}
		var started, build types.Datum
		if r.StartedAt != "" {
			started = r.StartedAt
		}
		if r.Build != "" {
			build = "v" + r.Build
		}
		out = append(out, []types.Datum{
			int64(r.NodeID), "tcp", r.Address, r.Address, "tcp", r.SQLAddress, r.SQLAddress,
			r.Build, build, started, r.IsLive, ranges, leases,
		})
	}
	return out, nil
}

// gossipLivenessColumns are CockroachDB's crdb_internal.gossip_liveness
// columns: expiration in its HLC notation, updated_at as a string;
// decommissioning is true unless the membership is active.
var gossipLivenessColumns = []pgwire.Column{
	{Name: "node_id", Type: types.Int},
	{Name: "epoch", Type: types.Int},
	{Name: "expiration", Type: types.String},
	{Name: "draining", Type: types.Bool},
	{Name: "decommissioning", Type: types.Bool},
	{Name: "membership", Type: types.String},
	{Name: "updated_at", Type: types.String},
}

func (h *settingsHook) gossipLivenessRows(ctx context.Context) ([][]types.Datum, error) {
	rep := h.s.LiveReplica()
	if rep == nil {
		return nil, pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "this node has not started yet")
	}
	start, end := liveness.Span()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kvs, err := rep.Scan(rctx, start, end, 0, false)
	cancel()
	if err != nil {
		// Answer from the local copy rather than not at all: an operator
		// looks here precisely when the cluster is in trouble.
		if kvs, err = rep.ScanLocal(start, end, 0, false); err != nil {
			return nil, err
		}
	}
	recs, err := liveness.DecodeAll(kvs)
	if err != nil {
		return nil, err
	}
	out := make([][]types.Datum, 0, len(recs))
	for _, r := range recs {
		var updated types.Datum
		if r.UpdatedAt != 0 {
			updated = liveness.FormatTime(r.UpdatedAt)
		}
		out = append(out, []types.Datum{
			int64(r.NodeID), r.Epoch, r.ExpirationString(), r.Draining, r.Membership != liveness.Active,
			string(r.Membership), updated,
		})
	}
	return out, nil
}

// settingsHook answers SET / RESET / SHOW CLUSTER SETTING and SHOW [ALL]
// CLUSTER SETTINGS from the node's settings registry.
//
// The setting "version" is not in the registry: SHOW reads the replicated
// cluster version, SET finalizes to a new version, RESET is
// refused. SHOW JOBS lists migration jobs; SHOW UPGRADE STATUS reports the
// state of cluster version management.
type settingsHook struct {
	s    Node
	exec *sql.Executor
}

var _ sql.StatementHook = (*settingsHook)(nil)

const versionSetting = "version"

var showAllColumns = []pgwire.Column{
	{Name: "variable", Type: types.String},
	{Name: "value", Type: types.String},
	{Name: "setting_type", Type: types.String},
	{Name: "description", Type: types.String},
}

func (h *settingsHook) Describe(stmt sql.HookStatement) ([]pgwire.Column, error) {
	reg := h.s.Settings()
	switch st := stmt.AST.(type) {
	case *parser.SetClusterSetting:
		return nil, h.checkWritable(st.Name)
	case *parser.ResetClusterSetting:
		return nil, h.checkWritable(st.Name)
	case *parser.ShowClusterSetting:
		name := strings.ToLower(st.Name)
		if name == versionSetting {
			return []pgwire.Column{{Name: name, Type: types.String}}, nil
		}
		v, err := reg.Describe(name)
		if err != nil {
			return nil, err
		}
		return []pgwire.Column{{Name: name, Type: settingColumnType(v.Type)}}, nil
	case *parser.ShowClusterSettings:
		return showAllColumns, nil
	case *parser.ShowJobs:
		return showJobsColumns, nil
	case *parser.ShowUpgradeStatus:
		return upgradeStatusColumns, nil
	case *parser.ShowUpgradePlan:
		return upgradePlanColumns, nil
	default:
		return nil, pgerror.Newf(pgerror.CodeFeatureNotSupported, "%s is not supported", stmt.AST.StatementTag())
	}
}

var upgradePlanColumns = []pgwire.Column{
	{Name: "step", Type: types.String},
	{Name: "action", Type: types.String},
	{Name: "detail", Type: types.String},
	{Name: "reversible", Type: types.Bool},
}

var showJobsColumns = []pgwire.Column{
	{Name: "job_id", Type: types.Int},
	{Name: "job_type", Type: types.String},
	{Name: "description", Type: types.String},
	{Name: "status", Type: types.String},
	{Name: "fraction_completed", Type: types.Float},
	{Name: "coordinator_id", Type: types.Int},
	{Name: "created", Type: types.String},
	{Name: "modified", Type: types.String},
	{Name: "error", Type: types.String},
}

var upgradeStatusColumns = []pgwire.Column{
	{Name: "item", Type: types.String},
	{Name: "node_id", Type: types.Int},
	{Name: "value", Type: types.String},
	{Name: "detail", Type: types.String},
}

func tsString(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000000")
}

func (h *settingsHook) showJobs(ctx context.Context) (pgwire.Result, error) {
	rep := h.s.Replica()
	if rep == nil {
		return pgwire.Result{}, pgerror.Newf(pgerror.CodeCannotConnectNow, "this node has not joined a cluster yet")
	}
	jobs, err := migrations.List(ctx, rep)
	if err != nil {
		return pgwire.Result{}, err
	}
	var rows [][]types.Datum
	for _, j := range jobs {
		var errText types.Datum
		if j.Error != "" {
			errText = j.Error
		}
		var coord types.Datum
		if j.Coordinator != 0 {
			coord = int64(j.Coordinator)
		}
		rows = append(rows, []types.Datum{j.ID, "MIGRATION", fmt.Sprintf("%s: %s", j.Version, j.Description),
			string(j.Status), j.Fraction(), coord, tsString(j.Created), tsString(j.Modified), errText})
	}
	for _, j := range h.exec.SchemaChangeJobs() {
		// The number of rows is not known ahead: the fraction stays 0
		// until the index is public (and the job gone); the description
		// counts the rows backfilled.
		rows = append(rows, []types.Datum{j.ID, "SCHEMA CHANGE", j.Description, j.Status, 0.0, int64(j.Coordinator),
			tsString(j.Created), tsString(j.Modified), nil})
	}
	return pgwire.Result{Tag: fmt.Sprintf("SELECT %d", len(rows)), Rows: rows}, nil
}

// showUpgradePlan is SHOW UPGRADE PLAN [FOR VERSION 'X']: one row per step,
// then one row per blocker (step NULL, action 'blocker', the fix in detail).
func (h *settingsHook) showUpgradePlan(ctx context.Context, st *parser.ShowUpgradePlan) (pgwire.Result, error) {
	var target clusterversion.Version
	if st.HasVersion {
		var err error
		if target, err = clusterversion.Parse(st.Version); err != nil {
			return pgwire.Result{}, pgerror.WithCode(err, pgerror.CodeInvalidParameterValue)
		}
	}
	p, err := h.s.UpgradePlan(ctx, target)
	if err != nil {
		return pgwire.Result{}, err
	}
	var rows [][]types.Datum
	for _, s := range p.Steps {
		rows = append(rows, []types.Datum{s.Step, s.Action, s.Detail, s.Reversible})
	}
	if len(p.Steps) == 0 && len(p.Blockers) == 0 {
		rows = append(rows, []types.Datum{p.From, "none", fmt.Sprintf("the cluster is at %s already", p.From), nil})
	}
	for _, b := range p.Blockers {
		rows = append(rows, []types.Datum{nil, "blocker", b.Reason + "; fix: " + b.Fix, nil})
	}
	return pgwire.Result{Tag: fmt.Sprintf("SELECT %d", len(rows)), Rows: rows}, nil
}

func (h *settingsHook) showUpgradeStatus(ctx context.Context) (pgwire.Result, error) {
	st, err := h.s.UpgradeStatus(ctx)
	if err != nil {
		return pgwire.Result{}, err
	}
	var rows [][]types.Datum
	add := func(item string, node types.Datum, value, detail string) {
		rows = append(rows, []types.Datum{item, node, value, detail})
	}
	add("cluster_version", nil, st.ReplicatedVersion, "the finalized version, persisted on every node")
	add("node_cluster_version", int64(st.AnsweredBy), st.ActiveVersion, "the version this node has persisted")
	if st.Target != "" {
		add("target", nil, st.Target, st.Decision)
	} else {
		add("target", nil, "", st.Decision)
	}
	if st.DowngradingTo != "" {
		add("downgrade", nil, st.DowngradingTo, "a downgrade is under way (SET CLUSTER SETTING version = '"+st.DowngradingTo+
			"'); the data group's leader resumes it if its coordinator stops; binaries of "+st.DowngradingTo+
			" may replace the others once it has completed")
	}
	if st.InProgress != "" {
		add("in_progress", nil, st.InProgress, "")
	}
	add("auto_upgrade", nil, map[bool]string{true: "enabled", false: "disabled"}[st.AutoUpgradeEnabled], "cluster.auto_upgrade.enabled")
	preserveDetail := ""
	if !st.PreserveSince.IsZero() {
		preserveDetail = fmt.Sprintf("set for %s, since %s", time.Since(st.PreserveSince).Round(time.Second), st.PreserveSince.UTC().Format(time.RFC3339))
	}
	if st.PreserveDowngrade != "" {
		if av, err := clusterversion.Parse(st.ActiveVersion); err == nil &&
			!autoupgrade.PreserveHolds(autoupgrade.Input{Active: av, PreserveDowngrade: st.PreserveDowngrade}) {
			preserveDetail = strings.TrimPrefix(preserveDetail+"; ", "; ") + fmt.Sprintf(
				"names a version the cluster has moved past (%s): it holds nothing, and is reset when the finalization reaches a release", st.ActiveVersion)
		}
	}
	add("preserve_downgrade_option", nil, st.PreserveDowngrade, preserveDetail)
	for _, n := range st.Nodes {
		live := "live"
		if !n.IsLive {
			live = "not live"
		}
		detail := fmt.Sprintf("%s, %s, %s", n.Address, live, n.Membership)
		if n.IsDraining {
			detail += ", draining"
		}
		add("node", int64(n.NodeID), n.Build, detail)
	}
	rv, rvErr := clusterversion.Parse(st.ReplicatedVersion)
	for _, n := range st.Nodes {
		if n.Membership == autoupgrade.Decommissioned {
			continue
		}
		add("persisted_version", int64(n.NodeID), n.PersistedVersion, persistedDetail(n, rv, rvErr == nil))
	}
	for _, n := range st.Group0 {
		add("group0_state", int64(n.NodeID), n.State, n.Detail())
	}
	for _, b := range st.Blockers {
		var node types.Datum
		if b.NodeID != 0 {
			node = int64(b.NodeID)
		}
		add("blocker", node, string(b.Kind), b.Reason+"; fix: "+b.Fix)
	}
	for _, m := range st.Migrations {
		detail := fmt.Sprintf("%s: %s, %.0f%% (%d/%d)", m.Description, m.Status, 100*m.Fraction, m.Done, m.Total)
		if m.JobID != 0 {
			detail += fmt.Sprintf(", job %d", m.JobID)
		}
		if m.Error != "" {
			detail += ", error: " + m.Error
		}
		add("migration", nil, m.Version, detail)
	}
	return pgwire.Result{Tag: fmt.Sprintf("SELECT %d", len(rows)), Rows: rows}, nil
}

func settingColumnType(t settings.Type) types.T {
	switch t {
	case settings.Bool:
		return types.Bool
	case settings.Int:
		return types.Int
	default:
		return types.String
	}
}

func (h *settingsHook) checkWritable(name string) error {
	if strings.ToLower(name) == versionSetting {
		return nil
	}
	_, err := h.s.Settings().Describe(name)
	return err
}

// clusterVersion is the replicated `version`: a version every live
// non-decommissioned node has persisted.
func (h *settingsHook) clusterVersion(ctx context.Context) (string, error) {
	v, err := h.s.ReplicatedVersion(ctx)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

// setVersion is SET CLUSTER SETTING version = X: validate, then finalize
// (fence, validate, migrate, bump, persist), synchronously.
func (h *settingsHook) setVersion(ctx context.Context, value types.Datum, reset bool) error {
	if reset {
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeFeatureNotSupported, "the cluster setting version cannot be reset"),
			"to finalize an upgrade: SET CLUSTER SETTING version = crdb_internal.node_executable_version()")
	}
	str, ok := value.(string)
	if !ok {
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue, "the cluster setting version takes a string, got %v", value),
			"SET CLUSTER SETTING version = '%s'", h.s.BinaryVersion())
	}
	target, err := clusterversion.Parse(str)
	if err != nil {
		return pgerror.WithCode(err, pgerror.CodeInvalidParameterValue)
	}
	if target.Less(h.s.ActiveVersion()) {
		// Below the active version: a downgrade (or the resumption of
		// one), one release at a time.
		if err := h.s.Downgrade(ctx, target); err != nil {
			return pgerror.WithCode(err, finalizeSQLState(err))
		}
		return nil
	}
	if err := h.s.Finalize(ctx, target); err != nil {
		return pgerror.WithCode(err, finalizeSQLState(err))
	}
	return nil
}

// checkPreserveChange refuses to SET or RESET
// cluster.preserve_downgrade_option while a downgrade is under way: the
// downgrade set it, and RESET would have the cluster finalize straight back
// up once the downgrade completes.
func (h *settingsHook) checkPreserveChange(ctx context.Context, name string) error {
	if strings.ToLower(name) != "cluster.preserve_downgrade_option" {
		return nil
	}
	d, ok, err := h.s.Downgrading(ctx)
	if err != nil || !ok {
		return err
	}
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState,
		"cannot change cluster.preserve_downgrade_option: a downgrade to %s is under way", d),
		"wait until SHOW UPGRADE STATUS says the downgrade has completed; then RESET CLUSTER SETTING "+
			"cluster.preserve_downgrade_option upgrades the cluster again")
}

func (h *settingsHook) Exec(ctx context.Context, stmt sql.HookStatement) (pgwire.Result, error) {
	reg := h.s.Settings()
	switch st := stmt.AST.(type) {
	case *parser.SetClusterSetting:
		if err := h.checkWritable(st.Name); err != nil {
			return pgwire.Result{}, err
		}
		if strings.ToLower(st.Name) == versionSetting {
			return pgwire.Result{Tag: "SET CLUSTER SETTING"}, h.setVersion(ctx, stmt.Value, st.Default)
		}
		if err := h.checkPreserveChange(ctx, st.Name); err != nil {
			return pgwire.Result{}, err
		}
		var err error
		if st.Default {
			err = reg.Reset(ctx, st.Name)
		} else {
			err = reg.Set(ctx, st.Name, stmt.Value)
		}
		return pgwire.Result{Tag: "SET CLUSTER SETTING"}, err
	case *parser.ResetClusterSetting:
		if err := h.checkWritable(st.Name); err != nil {
			return pgwire.Result{}, err
		}
		if strings.ToLower(st.Name) == versionSetting {
			return pgwire.Result{}, h.setVersion(ctx, nil, true)
		}
		if err := h.checkPreserveChange(ctx, st.Name); err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: "RESET CLUSTER SETTING"}, reg.Reset(ctx, st.Name)
	case *parser.ShowClusterSetting:
		if strings.ToLower(st.Name) == versionSetting {
			v, err := h.clusterVersion(ctx)
			if err != nil {
				return pgwire.Result{}, err
			}
			return pgwire.Result{Tag: "SHOW", Rows: [][]types.Datum{{v}}}, nil
		}
		v, err := reg.Show(ctx, st.Name)
		if err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: "SHOW", Rows: [][]types.Datum{{v.Datum}}}, nil
	case *parser.ShowClusterSettings:
		v, err := h.clusterVersion(ctx)
		if err != nil {
			return pgwire.Result{}, err
		}
		rows := [][]types.Datum{{versionSetting, v, "m",
			"set the active cluster version in the format '<major>.<minor>'"}}
		for _, v := range reg.All(ctx) {
			rows = append(rows, []types.Datum{v.Name, v.Text, string(v.Type), v.Description})
		}
		slices.SortFunc(rows, func(a, b []types.Datum) int { return cmp.Compare(a[0].(string), b[0].(string)) })
		return pgwire.Result{Tag: "SHOW", Rows: rows}, nil
	case *parser.ShowJobs:
		return h.showJobs(ctx)
	case *parser.ShowUpgradeStatus:
		return h.showUpgradeStatus(ctx)
	case *parser.ShowUpgradePlan:
		return h.showUpgradePlan(ctx, st)
	default:
		_, err := h.Describe(stmt)
		return pgwire.Result{}, err
	}
}

// persistedDetail explains node n's persisted cluster version against the
// replicated one (rv, if known): above it, the node can no longer be
// rolled back to the previous release's binary.
func persistedDetail(n nodeapi.NodeStatus, rv clusterversion.Version, rvKnown bool) string {
	pv, err := clusterversion.Parse(n.PersistedVersion)
	if n.PersistedVersion == "" || err != nil {
		return fmt.Sprintf("the cluster version node %d has persisted is not known here (it has not gossiped it)", n.NodeID)
	}
	d := fmt.Sprintf("the cluster version node %d has persisted", n.NodeID)
	if rvKnown && rv.Less(pv) {
		d += fmt.Sprintf("; above the cluster version %s: a finalization step reached this node and not yet every node, "+
			"so a binary older than %d.%d refuses to start on its store", rv, pv.Major, pv.Minor)
	}
	return d
}

// finalizeSQLState is the SQLSTATE of an error of SET CLUSTER SETTING
// version: 22023 (invalid_parameter_value) for a value that names no
// release to finalize to; 0A000 (feature_not_supported) for what kvnode
// does not do: downgrade, skip a release; 55000
// (object_not_in_prerequisite_state) when the cluster is not ready to
// finalize: a node not live, or running a binary that cannot run the
// target, the preserve option set, a step some node did not persist, a
// migration that did not complete (the finalization resumes from there);
// 58000 when the data group does not answer; a code the error already
// carries (57014 for a canceled statement) is kept.
func finalizeSQLState(err error) string {
	switch {
	case errors.Is(err, autoupgrade.ErrNotARelease), errors.Is(err, clusterversion.ErrUnknownVersion):
		return pgerror.CodeInvalidParameterValue
	case errors.Is(err, autoupgrade.ErrDowngrade), errors.Is(err, autoupgrade.ErrSkippedReleases),
		errors.Is(err, autoupgrade.ErrDowngradeTarget):
		return pgerror.CodeFeatureNotSupported
	case errors.Is(err, autoupgrade.ErrNodeNotLive), errors.Is(err, autoupgrade.ErrBeyondBinary),
		errors.Is(err, autoupgrade.ErrBelowMinimum), errors.Is(err, autoupgrade.ErrPreserveSet),
		errors.Is(err, upgrademanager.ErrStepNotPersisted), errors.Is(err, autoupgrade.ErrDowngradeInProgress),
		errors.Is(err, upgrademanager.ErrRefused),
		errors.Is(err, autoupgrade.ErrBinaryTooNew):
		return pgerror.CodeObjectNotInPrerequisiteState
	case errors.Is(err, kvpb.ErrUnavailable):
		return pgerror.CodeUnavailable
	}
	if code := pgerror.GetCode(err); code != pgerror.CodeInternal || errors.HasAssertionFailure(err) {
		return code
	}
	return pgerror.CodeObjectNotInPrerequisiteState
}
