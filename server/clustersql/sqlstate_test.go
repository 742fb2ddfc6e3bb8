package clustersql

import (
	"context"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/sql/pgerror"
	"github.com/kvnode/kvnode/upgrademanager"
)

// TestFinalizeSQLState (issue 16): every error of SET CLUSTER SETTING
// version was SQLSTATE 22023. Each gets its own: 22023 only for a value
// that names no release, 0A000 for what kvnode does not do, 55000 for a
// cluster not ready to finalize.
func TestFinalizeSQLState(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"internal step", errors.Wrap(autoupgrade.ErrNotARelease, "1.1-step.1 is an internal step"), pgerror.CodeInvalidParameterValue},
		{"unknown version", errors.Wrapf(clusterversion.ErrUnknownVersion, "%q", "3.7"), pgerror.CodeInvalidParameterValue},
		{"downgrade", errors.Wrap(autoupgrade.ErrDowngrade, "from 1.1 to 1.0"), pgerror.CodeFeatureNotSupported},
		{"skipped release", errors.Wrap(autoupgrade.ErrSkippedReleases, "1.0 to 2.0"), pgerror.CodeFeatureNotSupported},
		{"node not live", errors.WithHint(errors.Wrap(autoupgrade.ErrNodeNotLive, "node 3"), "decommission it"), pgerror.CodeObjectNotInPrerequisiteState},
		{"binary too old", errors.Wrap(autoupgrade.ErrBeyondBinary, "node 2 runs 1.0"), pgerror.CodeObjectNotInPrerequisiteState},
		{"binary too new", errors.Wrap(autoupgrade.ErrBelowMinimum, "node 2 runs 2.0"), pgerror.CodeObjectNotInPrerequisiteState},
		{"preserve option set", errors.Wrap(autoupgrade.ErrPreserveSet, "1.1"), pgerror.CodeObjectNotInPrerequisiteState},
		{"step not persisted", errors.Mark(errors.New("node 3: unreachable"), upgrademanager.ErrStepNotPersisted), pgerror.CodeObjectNotInPrerequisiteState},
		{"migration stopped", errors.New("group 0 upgrade: waiting for node 3"), pgerror.CodeObjectNotInPrerequisiteState},
		{"data group unavailable", errors.Mark(errors.New("the data Raft group did not answer in time"), kvpb.ErrUnavailable), pgerror.CodeUnavailable},
		{"canceled", errors.Wrap(context.Canceled, "finalizing"), pgerror.CodeQueryCanceled},
		{"a code of its own", pgerror.Newf(pgerror.CodeSerializationFailure, "retry"), pgerror.CodeSerializationFailure},
		{"a bug", errors.AssertionFailedf("broken invariant"), pgerror.CodeInternal},
	} {
		if got := finalizeSQLState(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
