package migrations

import (
	"context"

	"github.com/cockroachdb/errors"
)

// enableTxnStamps is release 2.1's migration at 2.1-step.2: it proposes the
// data group command from whose log entry on every replica records the log
// index of each table write (kv/txn.go), which transactions validate
// against. The fence at 2.1-step.1 guarantees that every replica runs a 2.1
// binary, which knows the command. The command is idempotent: a coordinator
// that takes the job over proposes it again, and the records start at the
// first one applied.
func enableTxnStamps(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.EnableTxns == nil {
		return errors.AssertionFailedf("the 2.1 migration needs Deps.EnableTxns")
	}
	if err := d.EnableTxns(ctx); err != nil {
		return errors.Wrap(err, "enabling transactions in the data group")
	}
	return checkpoint(Progress{Done: 1, Total: 1})
}
