package server

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/group0/member"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/sql/pgwire"
	"github.com/kvnode/kvnode/sql/types"
)

// system.local is the node's own, unreplicated facts, as in ScyllaDB's
// system.scylla_local: one row per key. The group 0 upgrade state is
// writable, with exactly one statement, to enter recovery mode:
//
//	UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'
var systemLocalColumns = []pgwire.Column{
	{Name: "key", Type: types.String},
	{Name: "value", Type: types.String},
}

// group0SQL is group 0's SQL: system.local, system.group0_history, and the
// executor's SchemaLog (DDL through group 0, member.BeginDDL).
type group0SQL struct{ s *Server }

var (
	_ sql.SchemaLog   = group0SQL{}
	_ sql.SchemaGuard = group0SQL{}
)

func installGroup0SQL(s *Server, exec *sql.Executor) {
	if !s.g0.Enabled() {
		return
	}
	g := group0SQL{s}
	exec.RegisterVirtualTable("system.local", systemLocalColumns, g.systemLocalRows)
	exec.SetVirtualTableUpdate("system.local", g.updateSystemLocal)
	exec.RegisterVirtualTable("system.group0_history", group0HistoryColumns, g.historyRows)
	exec.SetSchemaLog(g)
}

// BeginDDL implements sql.SchemaLog.
func (g group0SQL) BeginDDL(ctx context.Context) (sql.SchemaTxn, func(), error) {
	txn, release, err := g.s.g0.BeginDDL(ctx)
	if err != nil || txn == nil {
		return nil, release, err // nil txn: the pre-Raft procedure
	}
	return group0Txn{txn}, release, nil
}

// CheckWrite implements sql.SchemaGuard: a node outside group 0 refuses
// writes through its catalog until it has rejoined and caught up.
func (g group0SQL) CheckWrite() error { return g.s.g0.CheckWrite() }

// group0Txn commits one DDL statement through group 0.
type group0Txn struct{ txn *member.SchemaTxn }

// Commit implements sql.SchemaTxn.
func (t group0Txn) Commit(ctx context.Context, descs []catalog.TableDescriptor, description string) error {
	err := t.txn.Commit(ctx, descs, description)
	if errors.Is(err, group0.ErrConflict) {
		return errors.Mark(err, sql.ErrSchemaChanged)
	}
	return err
}

func (g group0SQL) systemLocalRows(context.Context) ([][]types.Datum, error) {
	s, m := g.s, g.s.g0
	rows := [][]types.Datum{
		{group0.SQLKey, string(m.State())},
		{"cluster_id", s.ClusterID()},
		{"node_id", strconv.Itoa(int(s.NodeID()))},
		{"group0_generation", strconv.FormatUint(m.Generation(), 10)},
		{"group0_catalog_state_id", strconv.FormatUint(m.CatalogStateID(), 10)},
		// Entering recovery takes full effect at the restart that follows
		// (until then a running replica stays in group 0).
		{"group0_restart_required", strconv.FormatBool(m.State() == group0.Recovery && m.Replica() != nil && !m.Isolated())},
	}
	return rows, nil
}

func (g group0SQL) updateSystemLocal(_ context.Context, rows []sql.RowUpdate) error {
	for _, r := range rows {
		key, _ := r.Old[0].(string)
		if nk, _ := r.Updated[0].(string); nk != key {
			return pgerror.Newf(pgerror.CodeInsufficientPrivilege, "the key column of system.local cannot be changed")
		}
		if key != group0.SQLKey {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInsufficientPrivilege, "system.local key %q is read-only; nothing was changed", key),
				"only the group 0 upgrade state can be changed: UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state'")
		}
		if val, _ := r.Updated[1].(string); group0.State(val) != group0.Recovery {
			return pgerror.WithHintf(pgerror.Newf(pgerror.CodeInvalidParameterValue,
				"the group 0 upgrade state can only be set to 'recovery' by hand, not %q; nothing was changed", val),
				"to enter recovery mode: UPDATE system.local SET value = 'recovery' WHERE key = 'group0_upgrade_state', then restart the node; "+
					"the other states are reached only through the upgrade and `kvnode node group0-recover` (docs/recovery.md)")
		}
	}
	if err := g.s.g0.EnterRecovery(); err != nil {
		return pgerror.WithCode(err, pgerror.CodeInternal)
	}
	return nil
}

var group0HistoryColumns = []pgwire.Column{
	{Name: "state_id", Type: types.Int},
	{Name: "prev_state_id", Type: types.Int},
	{Name: "description", Type: types.String},
	{Name: "tables", Type: types.String},
	{Name: "node_id", Type: types.Int},
	{Name: "time", Type: types.String},
}

// historyRows lists the last 1000 schema changes of group 0 as this node's
// replica has applied them.
func (g group0SQL) historyRows(context.Context) ([][]types.Datum, error) {
	rep := g.s.g0.Replica()
	if rep == nil {
		return nil, nil
	}
	hs, err := group0.History(rep, 1000)
	if err != nil {
		return nil, err
	}
	out := make([][]types.Datum, 0, len(hs))
	for _, h := range hs {
		out = append(out, []types.Datum{int64(h.StateID), int64(h.PrevStateID), h.Description,
			fmt.Sprint(h.Tables), int64(h.NodeID), time.Unix(0, h.Time).UTC().Format("2006-01-02 15:04:05.000000")})
	}
	return out, nil
}
