package clusterversion

import (
	"github.com/cockroachdb/errors"
)

// binaryVersion is set at build time:
//
//	go build -ldflags "-X github.com/kvnode/kvnode/clusterversion.binaryVersion=1.1" ./cmd/kvnode
//
// Empty means the newest release on the ladder.
var binaryVersion string

// BinaryVersion returns the release this binary was built as, or an error
// if the build-time value is not a release on the ladder. The binary must
// refuse to start on that error (cmd/kvnode checks it first thing).
func BinaryVersion() (Version, error) {
	if binaryVersion == "" {
		return Latest.Version(), nil
	}
	v, err := ParseRelease(binaryVersion)
	if err != nil {
		return Version{}, errors.WithHintf(
			errors.Wrapf(err, "this kvnode binary was built with binaryVersion=%q", binaryVersion),
			"rebuild it with -ldflags \"-X github.com/kvnode/kvnode/clusterversion.binaryVersion=R\" where R is one of %s", releaseList())
	}
	return v, nil
}

// MustBinaryVersion is BinaryVersion for code that runs after the start-up
// check; it panics if the check was skipped.
func MustBinaryVersion() Version {
	v, err := BinaryVersion()
	if err != nil {
		panic(errors.NewAssertionErrorWithWrappedErrf(err, "binary version not validated at start-up"))
	}
	return v
}

// MinSupported returns the oldest cluster version a binary of release v can
// run: the previous release on the ladder (or v itself for the first
// release).
func MinSupported(v Version) Version {
	rels := Releases()
	for i, r := range rels {
		if r == v && i > 0 {
			return rels[i-1]
		}
	}
	return v
}
