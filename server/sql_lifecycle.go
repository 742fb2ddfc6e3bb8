package server

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/settings"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/parser"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// installSQL gives the executor what belongs to the node lifecycle: the
// cluster-setting statements and the crdb_internal views of nodes and
// liveness.
func (s *Server) installSQL(exec *sql.Executor) {
	exec.SetStatementHook(&settingsHook{s: s})
	exec.RegisterVirtualTable("crdb_internal.gossip_nodes", gossipNodesColumns, s.gossipNodesRows)
	exec.RegisterVirtualTable("crdb_internal.gossip_liveness", gossipLivenessColumns, s.gossipLivenessRows)
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

func (s *Server) gossipNodesRows(ctx context.Context) ([][]types.Datum, error) {
	rows, _ := s.clusterStatus(ctx)
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

func (s *Server) gossipLivenessRows(ctx context.Context) ([][]types.Datum, error) {
	rep := s.lc().rep.Load()
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
// The setting "version" is not a registered setting yet: SHOW CLUSTER
// SETTING version returns the cluster version persisted in this node's
// store, read-only; SET and RESET of it fail with 0A000 until cluster
// upgrades exist. SHOW JOBS and SHOW UPGRADE STATUS fail with 0A000.
type settingsHook struct{ s *Server }

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
	default:
		return nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"%s is not supported yet", stmt.AST.StatementTag()), "it comes with cluster upgrades in a later release")
	}
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
		return pgerror.WithHintf(pgerror.Newf(pgerror.CodeFeatureNotSupported,
			"changing the cluster setting version is not supported yet"),
			"the cluster version is %s; upgrading it comes in a later release", h.clusterVersion())
	}
	_, err := h.s.Settings().Describe(name)
	return err
}

func (h *settingsHook) clusterVersion() string {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.ident.ClusterVersion
}

func (h *settingsHook) Exec(ctx context.Context, stmt sql.HookStatement) (pgwire.Result, error) {
	reg := h.s.Settings()
	switch st := stmt.AST.(type) {
	case *parser.SetClusterSetting:
		if err := h.checkWritable(st.Name); err != nil {
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
		return pgwire.Result{Tag: "RESET CLUSTER SETTING"}, reg.Reset(ctx, st.Name)
	case *parser.ShowClusterSetting:
		if strings.ToLower(st.Name) == versionSetting {
			return pgwire.Result{Tag: "SHOW", Rows: [][]types.Datum{{h.clusterVersion()}}}, nil
		}
		v, err := reg.Show(ctx, st.Name)
		if err != nil {
			return pgwire.Result{}, err
		}
		return pgwire.Result{Tag: "SHOW", Rows: [][]types.Datum{{v.Datum}}}, nil
	case *parser.ShowClusterSettings:
		rows := [][]types.Datum{{versionSetting, h.clusterVersion(), "m",
			"the active cluster version (read-only until cluster upgrades exist)"}}
		for _, v := range reg.All(ctx) {
			rows = append(rows, []types.Datum{v.Name, v.Text, string(v.Type), v.Description})
		}
		slices.SortFunc(rows, func(a, b []types.Datum) int { return cmp.Compare(a[0].(string), b[0].(string)) })
		return pgwire.Result{Tag: "SHOW", Rows: rows}, nil
	default:
		_, err := h.Describe(stmt)
		return pgwire.Result{}, err
	}
}
