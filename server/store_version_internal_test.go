package server

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/storage"
)

// TestCheckStoreVersionFence (issue 16): a store whose node persisted the
// fence of 1.1 (a finalization interrupted before every node had it) is
// refused by the 1.0 binary naming both versions; the hint named a
// "release 1.1-step.1", which does not exist. It names release 1.1 and
// says the node cannot be rolled back.
func TestCheckStoreVersionFence(t *testing.T) {
	rel := func(s string) clusterversion.Version {
		v, err := clusterversion.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		store, binary string
		wants         []string // in the message and hint
		notHint       string
	}{
		{"1.1-step.1", "1.0", []string{"release 1.0", "cluster version is 1.1-step.1", "fence",
			"run a binary of release 1.1 or newer", "cannot be rolled back", "persisted_version"}, "release 1.1-step.1"},
		{"1.1-step.2", "1.0", []string{"release 1.0", "cluster version is 1.1-step.2", "run a binary of release 1.1 or newer"}, "release 1.1-step.2"},
		{"1.1", "1.0", []string{"release 1.0", "cluster version is 1.1", "run a binary of release 1.1 or newer"}, ""},
		{"2.0-step.1", "1.1", []string{"release 1.1", "cluster version is 2.0-step.1", "run a binary of release 2.0 or newer"}, "release 2.0-step.1"},
	} {
		err := checkStoreVersion(storage.Ident{ClusterVersion: tc.store}, rel(tc.binary))
		if err == nil {
			t.Fatalf("%s binary on a %s store: accepted", tc.binary, tc.store)
		}
		hint := strings.Join(errors.GetAllHints(err), " ")
		all := err.Error() + " HINT: " + hint
		for _, w := range tc.wants {
			if !strings.Contains(all, w) {
				t.Errorf("%s binary on a %s store: %q does not say %q", tc.binary, tc.store, all, w)
			}
		}
		if tc.notHint != "" && strings.Contains(hint, tc.notHint) {
			t.Errorf("%s binary on a %s store: the hint names %q, which is no release: %q", tc.binary, tc.store, tc.notHint, hint)
		}
	}
	for _, ok := range [][2]string{{"1.0", "1.0"}, {"1.0", "1.1"}, {"1.1-step.1", "1.1"}, {"1.1", "2.0"}} {
		if err := checkStoreVersion(storage.Ident{ClusterVersion: ok[0]}, rel(ok[1])); err != nil {
			t.Errorf("%s binary on a %s store: %v", ok[1], ok[0], err)
		}
	}
}
