package migrations

import (
	"context"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv/kvpb"
)

// Deps is what migration functions may use, injected by the server.
type Deps struct {
	DB kvpb.DB
	// TableSpan is the key span holding every table's rows.
	TableSpan [2][]byte
	// UpgradeRow rewrites one stored row value into the newest row
	// encoding, reporting whether it changed (rowenc.UpgradeValue).
	UpgradeRow func(key, value []byte) ([]byte, bool, error)
	// Group0Upgrade runs the Raft group 0 upgrade procedure (release 2.0);
	// nil until that procedure exists.
	Group0Upgrade func(ctx context.Context) error
	// Group0Leave takes every node out of group 0 for a downgrade to 1.1:
	// deletes the formation record, has each node leave, and waits until
	// the nodes' schemas agree.
	Group0Leave func(ctx context.Context) error
	// EnableTxns proposes the data group command that makes every replica
	// record the log index of table writes (kvpb.TxnDB.EnableTxns).
	EnableTxns func(ctx context.Context) error
	// CreateUsers creates the replicated users store with root as admin
	// if it is missing (users.EnsureStore); idempotent.
	CreateUsers func(ctx context.Context) error
	// DowngradeRow rewrites one stored row value into encoding v1,
	// reporting whether it changed (rowenc.DowngradeValue).
	DowngradeRow func(key, value []byte) ([]byte, bool, error)
	// DisableTxns proposes the data group command that deletes every
	// transaction record, returning the log index it applied at
	// (kv.Replica.DisableTxns).
	DisableTxns func(ctx context.Context) (uint64, error)
	// PurgeRaftLogs has every non-decommissioned node compact its data
	// group log through index, once it has applied it.
	PurgeRaftLogs func(ctx context.Context, through uint64) error
	// BatchSize is the number of rows a migration handles per checkpoint
	// (default 500).
	BatchSize int
	// RowEncoding returns the encoding version of a stored row value
	// (rowenc.ValueEncoding), for the checks.
	RowEncoding func(value []byte) byte
	// TxnRecordSpan is the span of the transaction records (keys.TxnMeta).
	TxnRecordSpan [2][]byte
	// NonRootUsers lists the users other than root (users.NonRootUsers).
	NonRootUsers func(ctx context.Context) ([]string, error)
	// Release21Blockers lists what 2.0 cannot read
	// (sql.Executor.Release21Blockers).
	Release21Blockers func() []Blocker
}

// Check is what a migration's precondition check found, for SHOW UPGRADE
// PLAN: a line of detail (for example "rows still in encoding v1: 12") and
// what would stop the migration, each with its fix. It reads, never writes.
type Check struct {
	Detail   string
	Blockers []Blocker
}

// Blocker is one reason a migration cannot run, with the statement or
// action that removes it.
type Blocker struct {
	Reason, Fix string
}

// Progress is what a migration reports at a checkpoint.
type Progress struct {
	// Resume is where the migration continues after a restart.
	Resume []byte
	// Done and Total count units of work (rows); Total may be 0 if unknown.
	Done, Total int64
}

// Migration is one registry entry.
type Migration struct {
	// Version is the ladder step at which the migration runs: the cluster
	// is at that step (persisted on every node) while it runs, and moves
	// past it only once the migration has succeeded.
	Version     clusterversion.Key
	Description string
	// Run does the work. It is called with the last checkpoint (zero on
	// the first run) and must call checkpoint regularly; checkpoint fails
	// if this coordinator lost the job, and Run must then return that
	// error. Run must be idempotent.
	Run func(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error
	// Check, if set, is the migration's precondition check for SHOW
	// UPGRADE PLAN.
	Check func(ctx context.Context, d Deps) (Check, error)
}

// registry holds the migrations, at most one per version.
var registry = []Migration{
	{
		Version:     clusterversion.V1_1WriteV2,
		Description: "rewrite every row into encoding v2 (with a checksum)",
		Run:         rewriteRowsV2,
		Check:       countRowsIn(1, "rows still in encoding v1"),
	},
	{
		Version:     clusterversion.V2_0Fence,
		Description: "move schema changes onto Raft group 0 (ScyllaDB's upgrade procedure)",
		Run:         upgradeGroup0,
	},
	{
		Version:     clusterversion.V2_1TxnStamps,
		Description: "record the log index of every table write, for transactions",
		Run:         enableTxnStamps,
		Check: func(context.Context, Deps) (Check, error) {
			return Check{Detail: "one data group command; from its log entry on, every replica records the log index of each table write"}, nil
		},
	},
	{
		Version:     clusterversion.V2_1Users,
		Description: "create the users, role memberships and privileges, with root as admin",
		Run:         createUsers,
		Check: func(context.Context, Deps) (Check, error) {
			return Check{Detail: "creates root (an admin that authenticates with its client certificate) and the role admin " +
				"where missing; users kept from an earlier 2.1 stay as they were"}, nil
		},
	},
}

// For returns the migration registered for version v, if any.
func For(v clusterversion.Version) (Migration, bool) {
	for _, m := range registry {
		if m.Version.Version() == v {
			return m, true
		}
	}
	return Migration{}, false
}

// All returns every registered migration in ladder order.
func All() []Migration { return append([]Migration(nil), registry...) }
