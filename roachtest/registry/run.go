package registry

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/roachtest/cluster"
)

// Env is what a step works with.
type Env struct {
	// Cluster is the scenario's cluster; its nodes are not started until a
	// step starts them.
	Cluster *cluster.Cluster
	// Builder gives binaries by release.
	Builder *cluster.Builder
	// Seed is the scenario's seed.
	Seed int64
	// Dir is the scenario's directory (kept on failure).
	Dir string

	log       *logger
	cleanups  []func()
	onFailure []func()
	mu        sync.Mutex
}

// Logf prints a progress line (and writes it to the scenario's test.log).
func (e *Env) Logf(format string, args ...any) { e.log.printf(format, args...) }

// Binary returns the kvnode binary of release ("" for the tree's default).
func (e *Env) Binary(ctx context.Context, release string) (*cluster.Binary, error) {
	return e.Builder.Binary(ctx, release)
}

// Defer runs fn when the scenario ends, whatever the outcome, before the
// nodes are killed; deferred functions run last-in first-out.
func (e *Env) Defer(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, fn)
}

// OnFailure runs fn if the scenario fails, before the cleanups (to save
// state that explains the failure).
func (e *Env) OnFailure(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onFailure = append(e.onFailure, fn)
}

// Status is a scenario's outcome.
type Status string

// The outcomes.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is what Run reports.
type Result struct {
	Name     string
	Seed     int64
	Nodes    int
	Status   Status
	Reason   string // failure or skip reason
	Duration time.Duration
	// Dir is the scenario's directory, if it was kept (always on failure).
	Dir string
}

// Reproduce is the command that runs the same plan again.
func (r Result) Reproduce() string {
	return fmt.Sprintf("go run ./roachtest run '^%s$' --seed %d --nodes %d", regexp.QuoteMeta(r.Name), r.Seed, r.Nodes)
}

// RunOptions configure Run.
type RunOptions struct {
	Seed int64
	// Nodes overrides the spec's cluster size (0: the spec's).
	Nodes int
	// Keep keeps the scenario's directory even if it passes.
	Keep bool
	// ArtifactsDir is the parent of the scenario's directory.
	ArtifactsDir string
	// Builder builds or finds binaries; shared across scenarios of a run so
	// each release is built once.
	Builder *cluster.Builder
	// Out receives progress lines (they also go to <dir>/test.log).
	Out func(line string)
}

// Run runs one scenario to completion and reports its result. It never
// leaves a node process running.
func Run(ctx context.Context, spec *Spec, o RunOptions) (res Result) {
	start := time.Now()
	nodes := spec.Nodes
	if o.Nodes != 0 {
		nodes = o.Nodes
	}
	res = Result{Name: spec.Name, Seed: o.Seed, Nodes: nodes}
	defer func() { res.Duration = time.Since(start) }()
	if nodes < spec.MinNodes {
		res.Status, res.Reason = Fail, fmt.Sprintf("the scenario needs at least %d nodes, not %d", spec.MinNodes, nodes)
		return res
	}

	dir, err := scenarioDir(o.ArtifactsDir, spec.Name)
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	log, err := newLogger(filepath.Join(dir, "test.log"), o.Out)
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	defer log.close()

	log.printf("scenario %s (%s), seed %d, %d nodes", spec.Name, spec.Suite, o.Seed, nodes)
	log.printf("reproduce with: %s", res.Reproduce())
	plan, err := spec.Plan(PlanParams{Seed: o.Seed, Nodes: nodes})
	if err != nil {
		res.Status, res.Reason, res.Dir = Fail, "building the plan: "+err.Error(), dir
		log.printf("FAIL: %s", res.Reason)
		return res
	}
	log.printf("plan (%d steps):\n%s", len(plan.Steps), strings.TrimRight(plan.String(), "\n"))
	_ = os.WriteFile(filepath.Join(dir, "plan.txt"),
		[]byte(fmt.Sprintf("%s seed=%d nodes=%d\n%s", spec.Name, o.Seed, nodes, plan.String())), 0o644)

	c, err := cluster.New(cluster.Options{Nodes: nodes, Dir: dir, Logf: log.printf})
	if err != nil {
		res.Status, res.Reason, res.Dir = Fail, err.Error(), dir
		return res
	}
	env := &Env{Cluster: c, Builder: o.Builder, Seed: o.Seed, Dir: dir, log: log}

	timeout := spec.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = runSteps(ctx, env, plan)
	if reason, ok := IsSkip(err); ok {
		res.Status, res.Reason = Skip, reason
	} else if err != nil {
		res.Status, res.Reason = Fail, err.Error()
	} else {
		res.Status = Pass
	}

	if res.Status == Fail {
		for _, fn := range env.onFailure {
			safely(log, "on-failure hook", fn)
		}
	}
	for i := len(env.cleanups) - 1; i >= 0; i-- {
		safely(log, "cleanup", env.cleanups[i])
	}
	c.Close()
	for _, e := range c.UnexpectedExits() {
		log.printf("also: %v", e)
	}

	switch {
	case res.Status == Fail:
		res.Dir = dir
		log.printf("FAIL after %s: %s", time.Since(start).Round(time.Millisecond), res.Reason)
		for _, n := range c.Nodes() {
			log.printf("last lines of %s:\n%s", n.LogPath, n.LogTail(10))
		}
		log.printf("every node's log is kept in %s (the whole scenario in %s)", c.LogDir(), dir)
		log.printf("reproduce with: %s", res.Reproduce())
	case o.Keep:
		res.Dir = dir
		log.printf("%s after %s%s; kept %s", res.Status, time.Since(start).Round(time.Millisecond), reasonSuffix(res), dir)
	default:
		log.printf("%s after %s%s", res.Status, time.Since(start).Round(time.Millisecond), reasonSuffix(res))
		log.close()
		if err := os.RemoveAll(dir); err != nil {
			log.printf("removing %s: %v", dir, err)
		}
	}
	return res
}

func reasonSuffix(r Result) string {
	if r.Reason == "" {
		return ""
	}
	return ": " + r.Reason
}

// stopped says why ctx ended: the scenario's timeout or an interruption.
func stopped(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timed out"
	}
	return "interrupted"
}

func runSteps(ctx context.Context, env *Env, plan *Plan) (err error) {
	for i, step := range plan.Steps {
		if err := ctx.Err(); err != nil {
			return errors.Wrapf(err, "%s before step %d/%d (%s)", stopped(ctx), i+1, len(plan.Steps), step.Name)
		}
		env.log.printf("step %d/%d: %s", i+1, len(plan.Steps), step.Name)
		stepStart := time.Now()
		err := runStep(ctx, env, step)
		if exits := env.Cluster.UnexpectedExits(); len(exits) > 0 {
			e := errors.Join(exits...)
			if err != nil {
				e = errors.Join(err, e)
			}
			return errors.Wrapf(e, "step %d/%d (%s)", i+1, len(plan.Steps), step.Name)
		}
		if err != nil {
			if _, ok := IsSkip(err); ok {
				env.log.printf("skipping the rest of the plan: %v", err)
				return err
			}
			if ctx.Err() != nil {
				return errors.Wrapf(err, "%s during step %d/%d (%s)", stopped(ctx), i+1, len(plan.Steps), step.Name)
			}
			return errors.Wrapf(err, "step %d/%d (%s)", i+1, len(plan.Steps), step.Name)
		}
		if d := time.Since(stepStart); d > 2*time.Second {
			env.log.printf("step %d/%d done in %s", i+1, len(plan.Steps), d.Round(100*time.Millisecond))
		}
	}
	return nil
}

// runStep runs one step, turning a panic into an error with its stack so
// that the cleanups still run.
func runStep(ctx context.Context, env *Env, step Step) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.Newf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return step.Run(ctx, env)
}

func safely(log *logger, what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			log.printf("%s panicked: %v\n%s", what, r, debug.Stack())
		}
	}()
	fn()
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._=-]+`)

// scenarioDir creates <root>/<name with / as _>, with a numeric suffix if a
// scenario of that name already ran in this root (go test -count=2).
func scenarioDir(root, name string) (string, error) {
	if root == "" {
		return "", errors.New("RunOptions.ArtifactsDir is required")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(root, unsafeChars.ReplaceAllString(name, "_"))
	for i := 0; ; i++ {
		dir := base
		if i > 0 {
			dir = fmt.Sprintf("%s.%d", base, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !os.IsExist(err) {
			return "", err
		}
	}
}

// logger writes progress lines, stamped with the time since the scenario
// started, to test.log and to the caller.
type logger struct {
	mu    sync.Mutex
	start time.Time
	file  io.WriteCloser
	out   func(string)
}

func newLogger(path string, out func(string)) (*logger, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logger{start: time.Now(), file: f, out: out}, nil
}

func (l *logger) printf(format string, args ...any) {
	line := fmt.Sprintf("[%7.1fs] %s", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		fmt.Fprintln(l.file, line)
	}
	if l.out != nil {
		l.out(line)
	}
}

func (l *logger) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
}
