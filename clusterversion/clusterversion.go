package clusterversion

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
)

// Version is a point on the release ladder: a release MAJOR.MINOR, or an
// internal step between the previous release and it (Internal > 0). Internal
// steps are printed as MAJOR.MINOR-step.N so that an operator never mistakes
// a fence for the release itself.
type Version struct {
	Major, Minor int32
	Internal     int32
}

// String prints "1.1" for a release and "2.0-step.1" for an internal step.
func (v Version) String() string {
	if v.Internal == 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d-step.%d", v.Major, v.Minor, v.Internal)
}

// IsRelease reports whether v is a release rather than an internal step.
func (v Version) IsRelease() bool { return v.Internal == 0 }

// Release is the release v belongs to: v itself for a release, and for an
// internal step the release it leads to (2.0 for 2.0-step.1).
func (v Version) Release() Version { return Version{Major: v.Major, Minor: v.Minor} }

// Less orders versions: internal steps of release R sort before R itself and
// after the previous release, because they are the road to R.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// Compare returns -1, 0 or 1.
func (v Version) Compare(o Version) int {
	key := func(x Version) [3]int64 {
		// A release sorts after all of its own internal steps.
		in := int64(x.Internal)
		if in == 0 {
			in = 1 << 40
		}
		return [3]int64{int64(x.Major), int64(x.Minor), in}
	}
	a, b := key(v), key(o)
	for i := range a {
		switch {
		case a[i] < b[i]:
			return -1
		case a[i] > b[i]:
			return 1
		}
	}
	return 0
}

// ErrMalformed is returned by Parse for text that is not a version.
var ErrMalformed = errors.New("malformed version")

// Parse reads "MAJOR.MINOR" or "MAJOR.MINOR-step.N". It checks only syntax;
// use Lookup to find out whether the version is on the ladder.
func Parse(s string) (Version, error) {
	orig := s
	s = strings.TrimSpace(s)
	var v Version
	if i := strings.Index(s, "-step."); i >= 0 {
		n, err := strconv.ParseInt(s[i+len("-step."):], 10, 32)
		if err != nil || n <= 0 {
			return Version{}, errors.WithHintf(errors.Wrapf(ErrMalformed, "%q", orig),
				"write a release as MAJOR.MINOR, for example 1.1")
		}
		v.Internal = int32(n)
		s = s[:i]
	}
	maj, min, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseInt(maj, 10, 32)
	b, err2 := strconv.ParseInt(min, 10, 32)
	if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Version{}, errors.WithHintf(errors.Wrapf(ErrMalformed, "%q", orig),
			"write a release as MAJOR.MINOR, for example 1.1")
	}
	v.Major, v.Minor = int32(a), int32(b)
	return v, nil
}
