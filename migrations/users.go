package migrations

import (
	"context"

	"github.com/cockroachdb/errors"
)

// createUsers is release 2.1's migration at 2.1-step.3: it creates the
// replicated store of SQL users and privileges (root, the role admin and
// root's membership of it; sql/users) in a cluster bootstrapped before 2.1.
// The records are written with conditional puts, so the migration is
// idempotent: a coordinator that takes the job over writes what is missing,
// and records that exist (a cluster finalized to 2.1 again after a
// downgrade) are kept.
func createUsers(ctx context.Context, d Deps, from Progress, checkpoint func(Progress) error) error {
	if d.CreateUsers == nil {
		return errors.AssertionFailedf("the 2.1 users migration needs Deps.CreateUsers")
	}
	if err := d.CreateUsers(ctx); err != nil {
		return errors.Wrap(err, "creating the users store")
	}
	return checkpoint(Progress{Done: 1, Total: 1})
}
