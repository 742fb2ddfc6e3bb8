package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Suite says when a scenario runs under go test.
type Suite int

const (
	// Short scenarios run by default (`go test ./roachtest/...`, CI): the
	// whole short suite must stay within a few minutes on a small machine.
	Short Suite = iota
	// Long scenarios run only with KVNODE_LONG=1 (scripts/test.sh sets it),
	// or when named on the roachtest CLI.
	Long
)

func (s Suite) String() string {
	if s == Long {
		return "long"
	}
	return "short"
}

// Spec describes one scenario.
type Spec struct {
	// Name is unique, slash-separated from general to specific
	// ("basic/kill-leader"); the CLI and go test select by it.
	Name string
	// Description is one sentence for `roachtest list`.
	Description string
	Suite       Suite
	// Nodes is the default cluster size; MinNodes (default Nodes) is the
	// smallest size the scenario accepts from --nodes.
	Nodes, MinNodes int
	// Timeout bounds the whole scenario (default 10 minutes).
	Timeout time.Duration
	// Plan builds the scenario's plan. It must be deterministic in its
	// parameters and must not start anything: it runs before the cluster
	// exists, so that the whole plan can be logged first.
	Plan func(p PlanParams) (*Plan, error)
}

// PlanParams are the inputs of a plan.
type PlanParams struct {
	Seed  int64
	Nodes int
}

// Rand returns a generator seeded with p.Seed. Each call starts over, so a
// plan function that wants one stream calls it once.
func (p PlanParams) Rand() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(p.Seed), 0x6b766e6f6465)) // "kvnode"
}

// Plan is a scenario's ordered steps and a description of the choices made
// from the seed.
type Plan struct {
	// Header lines describe the plan's choices (binaries per node, mixes,
	// upgrade order) before its steps.
	Header []string
	Steps  []Step
}

// Step is one named action of a plan.
type Step struct {
	// Name says what the step does, with every seeded choice spelled out.
	Name string
	Run  func(ctx context.Context, e *Env) error
}

// Add appends a step.
func (p *Plan) Add(name string, run func(ctx context.Context, e *Env) error) {
	p.Steps = append(p.Steps, Step{Name: name, Run: run})
}

// Addf appends a step whose name is formatted.
func (p *Plan) Addf(run func(ctx context.Context, e *Env) error, format string, args ...any) {
	p.Add(fmt.Sprintf(format, args...), run)
}

// String prints the header and the numbered steps.
func (p *Plan) String() string {
	var b strings.Builder
	for _, h := range p.Header {
		fmt.Fprintf(&b, "  %s\n", h)
	}
	w := len(fmt.Sprint(len(p.Steps)))
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "  %*d. %s\n", w, i+1, s.Name)
	}
	return b.String()
}

// SkipError is returned by a step to skip the scenario (a missing
// capability); the scenario is reported as skipped with Reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skipf returns a SkipError.
func Skipf(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// IsSkip returns the reason if err is a skip.
func IsSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

// Registry holds the scenarios.
type Registry struct {
	specs map[string]*Spec
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9.=_-]*(/[a-z0-9][a-z0-9.=_-]*)*$`)

// Add registers a scenario. It panics on a programming error (a duplicate
// or malformed name, a missing plan), at start-up, where it is noticed.
func (r *Registry) Add(s Spec) {
	if r.specs == nil {
		r.specs = map[string]*Spec{}
	}
	switch {
	case !validName.MatchString(s.Name):
		panic(fmt.Sprintf("roachtest: scenario name %q: use lower-case words separated by /", s.Name))
	case r.specs[s.Name] != nil:
		panic(fmt.Sprintf("roachtest: scenario %q registered twice", s.Name))
	case s.Plan == nil || s.Nodes < 1:
		panic(fmt.Sprintf("roachtest: scenario %q needs a Plan and Nodes >= 1", s.Name))
	}
	if s.MinNodes == 0 {
		s.MinNodes = s.Nodes
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Minute
	}
	r.specs[s.Name] = &s
}

// All returns every scenario, sorted by name.
func (r *Registry) All() []*Spec {
	out := make([]*Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Match returns the scenarios whose name matches the regular expression.
func (r *Registry) Match(pattern string) ([]*Spec, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, errors.WithHint(errors.Wrapf(err, "scenario pattern %q", pattern),
			"the pattern is a Go regular expression, e.g. 'basic/' or '^upgrade/rolling$'")
	}
	var out []*Spec
	for _, s := range r.All() {
		if re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}
