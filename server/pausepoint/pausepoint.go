package pausepoint

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
)

// Group0Env names the environment variable that makes a `kvnode start`
// process pause the group 0 upgrade procedure (the 2.0 migration) at chosen
// points, when it coordinates it: the process-level counterpart of
// server.Knobs.Group0Hook, for roachtest scenarios that must act while the
// procedure is at a given step (issue DDL during synchronize, kill the
// coordinator or another node there). TESTING ONLY: a node started with it
// logs a warning at start and at every pause.
//
// The value is one or more pause points separated by commas:
//
//	<step>:<absolute path>  before every action of <step>, wait until the
//	                        file exists (a scenario creates it to release
//	                        the pause); when the wait begins, the node
//	                        writes "<path>.paused" with its pid and the
//	                        action, so the scenario knows who paused and
//	                        where
//	<step>:<duration>       before the first action of <step> in this
//	                        process, wait that long (a Go duration: 20s)
//
// <step> is one of the steps at which the procedure acts (group0.Step):
// discovery, join, synchronize, sync-schema. For example
//
//	KVNODE_TESTING_GROUP0_PAUSE=synchronize:/tmp/t/go-sync,sync-schema:5s
//
// A pause ends early, with an error that stops this run of the procedure,
// when the run's context ends (its 2-minute bound, or the node stopping).
// An unset or empty variable is production; any other value that does not
// parse refuses the start, naming the valid steps.
const Group0Env = "KVNODE_TESTING_GROUP0_PAUSE"

// group0PauseSteps are the steps before which the procedure calls its hook:
// those of group0.Decide's actions (the dry run only waits, and
// use-post-raft is the end).
var group0PauseSteps = []group0.Step{group0.StepDiscovery, group0.StepJoin, group0.StepSynchronize, group0.StepSyncSchema}

// group0PausePoint is one pause of KVNODE_TESTING_GROUP0_PAUSE.
type group0PausePoint struct {
	step group0.Step
	file string        // wait until it exists, or
	d    time.Duration // wait this long, once
	used bool          // the duration pause happened
}

// Group0 is a parsed KVNODE_TESTING_GROUP0_PAUSE: a server.Knobs.Group0Hook
// that pauses the procedure's coordinator. Safe for concurrent use.
type Group0 struct {
	log    *slog.Logger
	mu     sync.Mutex // guards group0PausePoint.used
	points []*group0PausePoint
	// poll is how often a file pause looks for its file.
	poll time.Duration
}

func validPauseSteps() string {
	names := make([]string, len(group0PauseSteps))
	for i, s := range group0PauseSteps {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ParseGroup0 parses a value of KVNODE_TESTING_GROUP0_PAUSE (see
// Group0Env). log receives the warnings of each pause (nil: discarded).
func ParseGroup0(value string, log *slog.Logger) (*Group0, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Group0{log: log, poll: 50 * time.Millisecond}
	fail := func(format string, args ...any) error {
		return errors.WithHintf(errors.Newf("invalid %s=%q: %s", Group0Env, value, fmt.Sprintf(format, args...)),
			"%s is for tests only: unset it, or set it to <step>:<absolute path of a file whose creation releases the pause> "+
				"or <step>:<duration>, several separated by commas; valid steps: %s", Group0Env, validPauseSteps())
	}
	seen := map[group0.Step]bool{}
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		name, release, ok := strings.Cut(entry, ":")
		if !ok || name == "" || release == "" {
			return nil, fail("%q is not <step>:<file or duration>", entry)
		}
		step := group0.Step(strings.TrimSpace(name))
		known := false
		for _, s := range group0PauseSteps {
			known = known || s == step
		}
		if !known {
			return nil, fail("unknown step %q; valid steps: %s", step, validPauseSteps())
		}
		if seen[step] {
			return nil, fail("step %q is given twice", step)
		}
		seen[step] = true
		pt := &group0PausePoint{step: step}
		release = strings.TrimSpace(release)
		switch {
		case filepath.IsAbs(release):
			pt.file = filepath.Clean(release)
		default:
			d, err := time.ParseDuration(release)
			if err != nil || d <= 0 {
				return nil, fail("%q after %q is neither an absolute file path nor a positive duration (such as 20s)", release, step)
			}
			pt.d = d
		}
		p.points = append(p.points, pt)
	}
	return p, nil
}

// Group0FromEnv reads KVNODE_TESTING_GROUP0_PAUSE for `kvnode start`:
// nil if it is unset or empty (production), the pause hook after a loud
// warning if it is set, an error naming the valid steps if it is invalid.
func Group0FromEnv(log *slog.Logger) (func(context.Context, group0.Action) error, error) {
	value := os.Getenv(Group0Env)
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	p, err := ParseGroup0(value, log)
	if err != nil {
		return nil, err
	}
	p.log.Warn("TESTING ONLY: "+Group0Env+" is set: this node pauses the group 0 upgrade procedure when it coordinates it; "+
		"never set it in production", "value", value, "points", p.String())
	return p.Hook, nil
}

// String describes the pause points.
func (p *Group0) String() string {
	var parts []string
	for _, pt := range p.points {
		if pt.file != "" {
			parts = append(parts, fmt.Sprintf("before every %s action until %s exists", pt.step, pt.file))
		} else {
			parts = append(parts, fmt.Sprintf("%s before the first %s action", pt.d, pt.step))
		}
	}
	return strings.Join(parts, "; ")
}

// Hook is the server.Knobs.Group0Hook: it pauses before a's action if a pause
// point names a's step, and returns an error only if ctx ends first.
func (p *Group0) Hook(ctx context.Context, a group0.Action) error {
	var pt *group0PausePoint
	for _, c := range p.points { // fixed at parse time
		if c.step == a.Step {
			pt = c
		}
	}
	if pt == nil {
		return nil
	}
	if pt.file != "" {
		return p.pauseUntilFile(ctx, pt, a)
	}
	p.mu.Lock()
	used := pt.used
	pt.used = true
	p.mu.Unlock()
	if used {
		return nil
	}
	p.log.Warn("TESTING ONLY: "+Group0Env+": pausing the group 0 upgrade procedure before its "+string(a.Step)+" action",
		"for", pt.d, "action", a.Waiting)
	select {
	case <-ctx.Done():
		return errors.Wrapf(ctx.Err(), "%s: paused before %s", Group0Env, a.Step)
	case <-time.After(pt.d):
	}
	p.log.Warn("TESTING ONLY: "+Group0Env+": the group 0 upgrade procedure continues", "step", string(a.Step))
	return nil
}

func (p *Group0) pauseUntilFile(ctx context.Context, pt *group0PausePoint, a group0.Action) error {
	if _, err := os.Stat(pt.file); err == nil {
		return nil
	}
	p.log.Warn("TESTING ONLY: "+Group0Env+": pausing the group 0 upgrade procedure before its "+string(a.Step)+" action "+
		"until the release file exists", "file", pt.file, "action", a.Waiting)
	writePauseMarker(p.log, Group0Env, pt.file+".paused",
		fmt.Sprintf("pid %d\nstep %s\naction %s\n", os.Getpid(), a.Step, a.Waiting))
	start := time.Now()
	tick := time.NewTicker(p.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "%s: paused before %s until %s exists", Group0Env, a.Step, pt.file)
		case <-tick.C:
		}
		if _, err := os.Stat(pt.file); err == nil {
			p.log.Warn("TESTING ONLY: "+Group0Env+": released; the group 0 upgrade procedure continues",
				"step", string(a.Step), "paused", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
}

// VersionStepEnv names the environment variable that makes a `kvnode
// start` process pause a finalization it coordinates before it persists
// chosen ladder steps: the process-level counterpart of
// server.Knobs.BeforeVersionStep, for roachtest scenarios that must act after the
// coordinator read the node list for a step and before the step reached
// the nodes (kill a node there, so that the step is persisted on some
// nodes only). TESTING ONLY: a node started with it logs a warning at
// start and at every pause.
//
// The value is one or more pause points separated by commas, each
// <step>:<absolute path>: before persisting <step> (a version of the
// ladder, such as 1.1-step.1), wait until the file exists (a scenario
// creates it to release the pause); when the wait begins, the node writes
// "<path>.paused" with its pid and the step. A step whose file exists
// passes at once. For example
//
//	KVNODE_TESTING_VERSION_STEP_PAUSE=1.1-step.1:/tmp/t/release-fence
//
// A pause ends early, with an error that stops this finalization attempt,
// when the finalization's context ends (the SQL statement's, or the node
// stopping). An unset or empty variable is production; any other value
// that does not parse refuses the start, naming the ladder.
const VersionStepEnv = "KVNODE_TESTING_VERSION_STEP_PAUSE"

// VersionStep is a parsed KVNODE_TESTING_VERSION_STEP_PAUSE: a
// server.Knobs.VersionStepPause. Safe for concurrent use.
type VersionStep struct {
	log    *slog.Logger
	points map[clusterversion.Version]string // step -> release file
	poll   time.Duration
}

// ParseVersionStep parses a value of KVNODE_TESTING_VERSION_STEP_PAUSE
// (see VersionStepEnv). log receives the warnings of each pause (nil:
// discarded).
func ParseVersionStep(value string, log *slog.Logger) (*VersionStep, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &VersionStep{log: log, points: map[clusterversion.Version]string{}, poll: 50 * time.Millisecond}
	fail := func(format string, args ...any) error {
		return errors.WithHintf(errors.Newf("invalid %s=%q: %s", VersionStepEnv, value, fmt.Sprintf(format, args...)),
			"%s is for tests only: unset it, or set it to <step>:<absolute path of a file whose creation releases the pause>, "+
				"several separated by commas; the steps are the cluster versions %s", VersionStepEnv, clusterversion.LadderList())
	}
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		name, file, ok := strings.Cut(entry, ":")
		name, file = strings.TrimSpace(name), strings.TrimSpace(file)
		if !ok || name == "" || file == "" {
			return nil, fail("%q is not <step>:<file>", entry)
		}
		v, err := clusterversion.Parse(name)
		if err != nil {
			return nil, fail("%q is not a cluster version", name)
		}
		if _, ok := clusterversion.Lookup(v); !ok {
			return nil, fail("%s is not a cluster version of the ladder (%s)", v, clusterversion.LadderList())
		}
		if _, dup := p.points[v]; dup {
			return nil, fail("step %s is given twice", v)
		}
		if !filepath.IsAbs(file) {
			return nil, fail("%q after %s is not an absolute file path", file, v)
		}
		p.points[v] = filepath.Clean(file)
	}
	return p, nil
}

// VersionStepFromEnv reads KVNODE_TESTING_VERSION_STEP_PAUSE for
// `kvnode start`: nil if it is unset or empty (production), the pause after
// a loud warning if it is set, an error naming the ladder if it is invalid.
func VersionStepFromEnv(log *slog.Logger) (func(context.Context, clusterversion.Version) error, error) {
	value := os.Getenv(VersionStepEnv)
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	p, err := ParseVersionStep(value, log)
	if err != nil {
		return nil, err
	}
	p.log.Warn("TESTING ONLY: "+VersionStepEnv+" is set: this node pauses a finalization it coordinates before "+
		"persisting the named steps; never set it in production", "value", value)
	return p.Hook, nil
}

// Hook is the server.Knobs.VersionStepPause: before step, it waits until the
// step's release file exists, and returns an error only if ctx ends first.
func (p *VersionStep) Hook(ctx context.Context, step clusterversion.Version) error {
	file, ok := p.points[step]
	if !ok {
		return nil
	}
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	p.log.Warn("TESTING ONLY: "+VersionStepEnv+": pausing the finalization before persisting "+step.String()+
		" until the release file exists", "file", file)
	writePauseMarker(p.log, VersionStepEnv, file+".paused", fmt.Sprintf("pid %d\nstep %s\n", os.Getpid(), step))
	start := time.Now()
	tick := time.NewTicker(p.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "%s: paused before persisting %s until %s exists", VersionStepEnv, step, file)
		case <-tick.C:
		}
		if _, err := os.Stat(file); err == nil {
			p.log.Warn("TESTING ONLY: "+VersionStepEnv+": released; the finalization continues",
				"step", step.String(), "paused", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
}

// writePauseMarker writes a pause's marker file whole, then renames it
// into place: a reader never sees half of it.
func writePauseMarker(log *slog.Logger, env, marker, body string) {
	tmp := fmt.Sprintf("%s.%d.tmp", marker, os.Getpid())
	if err := os.WriteFile(tmp, []byte(body), 0o644); err == nil {
		if err := os.Rename(tmp, marker); err != nil {
			log.Warn(env+": could not write the pause marker", "file", marker, "err", err)
		}
	} else {
		log.Warn(env+": could not write the pause marker", "file", marker, "err", err)
	}
}
