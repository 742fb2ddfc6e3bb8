package migrations

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
)

// When says where in the lowering of its step a down-migration runs
// (clusterversion/DESIGN.md, "How a downgrade moves down the ladder").
type When int

const (
	// BeforeLowering runs while the cluster is still at the step: for a
	// cleanup that needs the step's own binaries or commands.
	BeforeLowering When = iota
	// AfterLowering runs once the step below is persisted on every node and
	// recorded: for a cleanup that needs the step's gate closed everywhere
	// (nothing can add what it removes behind it).
	AfterLowering
)

// DownMigration is the reverse of a ladder step, run as a job by the
// upgrade manager when a downgrade lowers that step.
type DownMigration struct {
	// Version is the step being lowered.
	Version     clusterversion.Key
	When        When
	Description string
	// Run has Migration.Run's contract: idempotent, checkpointed,
	// resumable by any node.
	Run func(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error
	// Check, if set, is its precondition check for SHOW UPGRADE PLAN.
	Check func(ctx context.Context, d Deps) (Check, error)
	// Refuse, if set, lists what the previous release cannot represent: a
	// downgrade is refused before it starts, and stops before lowering a
	// step, while the list is not empty. Run may be nil for a step that
	// needs nothing else.
	Refuse func(ctx context.Context, d Deps) ([]Blocker, error)
}

// downRegistry holds the down-migrations, at most one per step. A step
// without one needs nothing but its gate closed on every node, which
// persisting the step below does (each node's version handler waits for
// the feature's users there).
var downRegistry = []DownMigration{
	{
		Version:     clusterversion.V2_1,
		When:        BeforeLowering,
		Description: "end transactions; refuse what 2.0 cannot read; keep users, roles and grants dormant",
		Check:       check21,
		Refuse:      refuse21,
	},
	{
		Version: clusterversion.V2_0,
		When:    AfterLowering,
		Description: "every node leaves Raft group 0: schema changes go back to the pre-Raft procedure, " +
			"with the schema intact",
		Run: leaveGroup0,
		Check: func(context.Context, Deps) (Check, error) {
			return Check{Detail: "the group 0 formation record is deleted; each node moves to use_pre_raft_procedures " +
				"with its catalog caught up, stops its group 0 replica and wipes its store; then every node's schema " +
				"converges (newest descriptor per table, as in 1.x)"}, nil
		},
	},
	{
		Version:     clusterversion.V1_1WriteV2,
		When:        AfterLowering,
		Description: "rewrite every row back into encoding v1 (writers write v1 again)",
		Run:         rewriteRowsV1,
		Check:       countRowsIn(2, "rows in encoding v2 to rewrite into v1"),
	},
	{
		Version: clusterversion.V2_1TxnStamps,
		When:    AfterLowering,
		Description: "delete the transaction records and compact every node's Raft log " +
			"past the last command a 2.0 binary does not know",
		Run:   disableTxnStamps,
		Check: countTxnRecords,
	},
}

// DownFor returns the down-migration of step v, if any.
func DownFor(v clusterversion.Version) (DownMigration, bool) {
	for _, m := range downRegistry {
		if m.Version.Version() == v {
			return m, true
		}
	}
	return DownMigration{}, false
}

// AllDown returns every registered down-migration in ladder order.
func AllDown() []DownMigration { return append([]DownMigration(nil), downRegistry...) }

// rewriteRowsV1 is the down-migration of 1.1-step.2, run once every node
// writes v1 again (1.1-step.1 persisted everywhere, and every statement
// that encoded v2 finished): it rewrites the remaining v2 rows as v1, as
// the 1.1 migration rewrote v1 rows as v2, so a 1.0 binary reads every row.
func rewriteRowsV1(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.DowngradeRow == nil {
		return errors.AssertionFailedf("the 1.1 down-migration needs Deps.DowngradeRow")
	}
	return rewriteRows(ctx, d, d.DowngradeRow, from, checkpoint)
}

// disableTxnStamps is the down-migration of 2.1-step.2, run once every node
// has persisted 2.1-step.1: from then on no leader appends a transaction
// command (kv/downgrade.go). It proposes the command that deletes the
// transaction records, then has every node compact its Raft log through
// that command's index, so that no node holds an entry a 2.0 binary could
// not apply when the fence is lowered. Progress: 1 once the records are
// gone (Resume holds the index), 2 once every log is compacted.
func disableTxnStamps(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.DisableTxns == nil || d.PurgeRaftLogs == nil {
		return errors.AssertionFailedf("the 2.1 down-migration needs Deps.DisableTxns and Deps.PurgeRaftLogs")
	}
	p := from
	p.Total = 2
	if p.Done < 1 {
		// The tables' schema fences go too: writers assert them only at
		// 2.1 itself, and a 2.0 binary that rewrites a descriptor drops
		// its fence value, which a key left behind would contradict once
		// the cluster is back at 2.1 (sql/schemachange.go).
		start, end := []byte(keys.TableFencePrefix), keys.PrefixEnd([]byte(keys.TableFencePrefix))
		if err := d.DB.Write(ctx, []kvpb.Op{{Kind: kvpb.OpDeleteRange, Key: start, EndKey: end}}); err != nil {
			return errors.Wrap(err, "deleting the tables' schema fences")
		}
		idx, err := d.DisableTxns(ctx)
		if err != nil {
			return errors.Wrap(err, "deleting the transaction records")
		}
		p.Done, p.Resume = 1, binary.BigEndian.AppendUint64(nil, idx)
		if err := checkpoint(p); err != nil {
			return err
		}
	}
	if len(p.Resume) != 8 {
		return errors.AssertionFailedf("the 2.1 down-migration's checkpoint holds no log index: %x", p.Resume)
	}
	idx := binary.BigEndian.Uint64(p.Resume)
	if err := d.PurgeRaftLogs(ctx, idx); err != nil {
		return errors.Wrapf(err, "compacting the Raft logs through index %d", idx)
	}
	p.Done = 2
	return checkpoint(p)
}

// countRowsIn returns a check that counts the rows stored in encoding enc.
func countRowsIn(enc byte, what string) func(ctx context.Context, d Deps) (Check, error) {
	return func(ctx context.Context, d Deps) (Check, error) {
		if d.RowEncoding == nil {
			return Check{}, errors.AssertionFailedf("the check needs Deps.RowEncoding")
		}
		var n int64
		err := scanAll(ctx, d, d.TableSpan, func(_, v []byte) {
			if d.RowEncoding(v) == enc {
				n++
			}
		})
		return Check{Detail: fmt.Sprintf("%s: %d", what, n)}, err
	}
}

// countTxnRecords counts the transaction records the 2.1 down-migration
// deletes.
func countTxnRecords(ctx context.Context, d Deps) (Check, error) {
	var n int64
	err := scanAll(ctx, d, d.TxnRecordSpan, func(_, _ []byte) { n++ })
	return Check{Detail: fmt.Sprintf("transaction records to delete: %d; then every node's Raft log is compacted "+
		"past the last command a 2.0 binary does not know", n)}, err
}

// scanAll calls fn for every key in span, in batches.
func scanAll(ctx context.Context, d Deps, span [2][]byte, fn func(k, v []byte)) error {
	start, end := span[0], span[1]
	for {
		kvs, err := d.DB.Scan(ctx, start, end, 1000, false)
		if err != nil {
			return err
		}
		for _, e := range kvs {
			fn(e.Key, e.Value)
		}
		if len(kvs) < 1000 {
			return nil
		}
		start = append(append([]byte(nil), kvs[len(kvs)-1].Key...), 0)
	}
}

// check21 describes the first step of the downgrade from 2.1: what ends,
// and what stays dormant.
func check21(ctx context.Context, d Deps) (Check, error) {
	detail := "open transactions fail at their next statement; BEGIN is refused from here"
	if d.NonRootUsers != nil {
		users, err := d.NonRootUsers(ctx)
		if err != nil {
			return Check{}, err
		}
		detail += fmt.Sprintf("; non-root users: %d, kept dormant (2.0 never reads them, authenticates by client "+
			"certificate only and checks no privilege; they are back when the cluster is at 2.1 again)", len(users))
		if len(users) > 0 {
			detail += "; to remove them first: DROP USER " + strings.Join(users, ", ")
		}
	}
	blockers, err := refuse21(ctx, d)
	if err == nil && len(blockers) > 0 {
		detail += fmt.Sprintf("; refused while %d thing(s) only 2.1 has remain (SHOW UPGRADE PLAN lists them)", len(blockers))
	}
	return Check{Detail: detail}, err
}

func refuse21(_ context.Context, d Deps) ([]Blocker, error) {
	if d.Release21Blockers == nil {
		return nil, nil
	}
	return d.Release21Blockers(), nil
}

// leaveGroup0 is the down-migration of 2.0, run at 2.0-step.1 (schema
// changes no longer need group 0 to be formed, and every node runs a 2.0
// binary, which knows how to leave it): Deps.Group0Leave does the work
// (migrations/DESIGN.md).
func leaveGroup0(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.Group0Leave == nil {
		return errors.AssertionFailedf("the 2.0 down-migration needs Deps.Group0Leave")
	}
	if err := d.Group0Leave(ctx); err != nil {
		return errors.Wrap(err, "leaving group 0")
	}
	return checkpoint(Progress{Done: 1, Total: 1})
}
