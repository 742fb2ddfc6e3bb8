package autoupgrade

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeid"
)

// Membership values, as liveness records them.
const (
	Active          = "active"
	Decommissioning = "decommissioning"
	Decommissioned  = "decommissioned"
)

// Node is what a decision needs to know about one node that has an ID.
type Node struct {
	ID            nodeid.ID
	Address       string
	BinaryVersion clusterversion.Version
	Live          bool
	Membership    string
	Draining      bool
	// Persisted is the cluster version the node has persisted, as it last
	// reported it (zero if unknown). It is never above what the node
	// really persisted, so a node reported ahead of Input.Active proves
	// that a finalization step reached it. (Reports travel by gossip, and
	// one from before a downgrade would break that; the caller confirms a
	// report ahead of Active with the node: upgradecluster.confirmAhead.)
	Persisted clusterversion.Version
}

// Input is everything a decision depends on.
type Input struct {
	Active             clusterversion.Version
	Nodes              []Node
	AutoUpgradeEnabled bool
	// PreserveDowngrade is the value of cluster.preserve_downgrade_option
	// ("" when unset).
	PreserveDowngrade string
	// Host is an address the fix commands should name (a node's
	// --listen-addr), for example "127.0.0.1:26357".
	Host string
	// Downgrading is the target of the downgrade under way (the replicated
	// downgrade record), zero when none is.
	Downgrading clusterversion.Version
}

// BlockerKind classifies what blocks finalization.
type BlockerKind string

// The blockers.
const (
	BlockDeadNode      BlockerKind = "dead_node"
	BlockDrainingNode  BlockerKind = "draining_node"
	BlockMixedVersions BlockerKind = "mixed_binary_versions"
	BlockPreserve      BlockerKind = "preserve_downgrade_option"
	BlockAutoDisabled  BlockerKind = "auto_upgrade_disabled"
)

// BlockerKinds lists every BlockerKind (for metrics that export each kind,
// even at zero). Add a new kind here too.
func BlockerKinds() []BlockerKind {
	return []BlockerKind{BlockDeadNode, BlockDrainingNode, BlockMixedVersions, BlockPreserve, BlockAutoDisabled}
}

// Blocker is one reason the cluster does not finalize, with the fix.
type Blocker struct {
	Kind   BlockerKind
	NodeID nodeid.ID // 0 when not about one node
	Reason string
	Fix    string
}

// Decision is the outcome of Decide.
type Decision struct {
	// Target is the release every considered node runs, if it is above
	// the active version; zero when there is nothing to finalize.
	Target clusterversion.Version
	// Steps are the ladder versions from the active version to Target.
	Steps []clusterversion.Version
	// Blockers is empty exactly when Finalize is true or there is nothing
	// to do.
	Blockers []Blocker
	Finalize bool
	// Downgrade is set while a downgrade to Target is under way: the
	// leader drives it (resuming a coordinator that stopped), and nothing
	// finalizes meanwhile.
	Downgrade bool
}

// UpToDate reports whether there is nothing to finalize.
func (d Decision) UpToDate() bool { return d.Target == (clusterversion.Version{}) }

// Summary is one line for logs: it changes only when the decision does, so
// the loop can log once per change.
func (d Decision) Summary() string {
	switch {
	case d.UpToDate() && len(d.Blockers) == 0:
		return "cluster version is up to date"
	case d.Downgrade:
		return fmt.Sprintf("downgrading to %s", d.Target)
	case d.Finalize:
		return fmt.Sprintf("finalizing to %s", d.Target)
	}
	var parts []string
	for _, b := range d.Blockers {
		parts = append(parts, b.Reason)
	}
	return "finalization blocked: " + strings.Join(parts, "; ")
}

// considered returns the nodes that take part in finalization: every node
// that is not decommissioned (a decommissioning node may still be running).
func considered(nodes []Node) []Node {
	var out []Node
	for _, n := range nodes {
		if n.Membership != Decommissioned {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func host(in Input) string {
	if in.Host != "" {
		return in.Host
	}
	return "HOST:PORT"
}

// PreserveHolds reports whether cluster.preserve_downgrade_option holds
// the cluster at its version. The option is validated once, when it is
// SET, against the version of the node that runs the SET; a value that
// names a version the cluster has since moved past (it was set on a node
// that had not yet persisted a fence the others had) holds nothing: the
// finalization that moved past it completes and then resets it. A value
// that is not a version at all is taken to hold (it can only have been
// written by hand; the fix then names it).
func PreserveHolds(in Input) bool {
	if in.PreserveDowngrade == "" {
		return false
	}
	pv, err := clusterversion.Parse(in.PreserveDowngrade)
	return err != nil || !pv.Less(in.Active)
}

// MidFinalization reports whether active is an internal step: a finalization of
// that step's release has begun (its fence is persisted on every node) and
// must be completed whatever else holds; it cannot be rolled back.
func MidFinalization(active clusterversion.Version) bool { return !active.IsRelease() }

// Front returns the highest cluster version that the deciding node
// (in.Active) or any node that takes part has persisted.
func Front(in Input) clusterversion.Version {
	f := in.Active
	for _, n := range considered(in.Nodes) {
		if f.Less(n.Persisted) {
			f = n.Persisted
		}
	}
	return f
}

// midFinalization reports whether a finalization has begun and not
// completed, as far as in shows: the deciding node is at an internal
// step, or some node has persisted a version above it (a step reached
// that node and not yet this one: that node can no longer run the old
// binary, so the upgrade can only go forward).
func midFinalization(in Input) bool {
	f := Front(in)
	return MidFinalization(f) || in.Active.Less(f)
}

// Decide decides whether the cluster may finalize automatically now. It
// finalizes, as CockroachDB's RFC has it, when every live, non-decommissioned
// node runs the same binary release, newer than the active version, no such
// node is dead or draining, and neither opt-out is set. A finalization that
// was interrupted (the active version is an internal step, or some node has
// persisted a version above it) is completed whatever the opt-outs say:
// they hold the cluster at a release, and the cluster is no longer at one;
// only what the steps need (every node live, on a binary that runs the
// release) can block it.
func Decide(in Input) Decision {
	var d Decision
	if in.Downgrading != (clusterversion.Version{}) {
		// The operator asked for it; it completes before anything else.
		return Decision{Target: in.Downgrading, Downgrade: true}
	}
	nodes := considered(in.Nodes)
	if len(nodes) == 0 {
		return d
	}
	// Binary versions among nodes that take part.
	byVersion := map[clusterversion.Version][]nodeid.ID{}
	maxBin := nodes[0].BinaryVersion
	for _, n := range nodes {
		byVersion[n.BinaryVersion] = append(byVersion[n.BinaryVersion], n.ID)
		if maxBin.Less(n.BinaryVersion) {
			maxBin = n.BinaryVersion
		}
	}
	// At a fence or internal step, on this node or another, the
	// finalization of that release is in progress and must be completed
	// whatever else holds.
	target := maxBin
	mid := midFinalization(in)
	if mid {
		if rel := Front(in).Release(); target.Less(rel) {
			target = rel
		}
	} else if !in.Active.Less(maxBin) {
		return d // no node runs a binary newer than the active version
	}
	d.Target = target
	d.Steps = clusterversion.Between(in.Active, target)
	if len(byVersion) > 1 {
		var old []string
		for v, ids := range byVersion {
			if v.Less(target) {
				verb := "runs"
				if len(ids) > 1 {
					verb = "run"
				}
				old = append(old, fmt.Sprintf("%s %s %s", nodeid.Names(ids), verb, v))
			}
		}
		sort.Strings(old)
		d.Blockers = append(d.Blockers, Blocker{Kind: BlockMixedVersions,
			Reason: fmt.Sprintf("several binary versions are running: %s, the others run %s", strings.Join(old, "; "), target),
			Fix:    fmt.Sprintf("restart the remaining nodes on the %s binary", target)})
	}
	for _, n := range nodes {
		switch {
		case !n.Live:
			d.Blockers = append(d.Blockers, Blocker{Kind: BlockDeadNode, NodeID: n.ID,
				Reason: fmt.Sprintf("node %d is not live", n.ID),
				Fix:    fmt.Sprintf("bring node %d back, or remove it for good: kvnode node decommission %d --host=%s", n.ID, n.ID, host(in))})
		case n.Draining:
			d.Blockers = append(d.Blockers, Blocker{Kind: BlockDrainingNode, NodeID: n.ID,
				Reason: fmt.Sprintf("node %d is draining", n.ID),
				Fix:    fmt.Sprintf("restart node %d, or wait until its drain finishes and it stops", n.ID)})
		}
	}
	if PreserveHolds(in) && !mid {
		d.Blockers = append(d.Blockers, Blocker{Kind: BlockPreserve,
			Reason: fmt.Sprintf("cluster.preserve_downgrade_option is set to %s", in.PreserveDowngrade),
			Fix:    "RESET CLUSTER SETTING cluster.preserve_downgrade_option"})
	}
	if !in.AutoUpgradeEnabled && !mid {
		d.Blockers = append(d.Blockers, Blocker{Kind: BlockAutoDisabled,
			Reason: "cluster.auto_upgrade.enabled is false",
			Fix: fmt.Sprintf("SET CLUSTER SETTING version = '%s' (or SET CLUSTER SETTING cluster.auto_upgrade.enabled = true)",
				target.Release())})
	}
	d.Finalize = len(d.Blockers) == 0
	return d
}

// Errors of ValidateManual, for errors.Is.
var (
	ErrDowngrade       = errors.New("versions cannot be downgraded")
	ErrBeyondBinary    = errors.New("target version is newer than a node's binary")
	ErrBelowMinimum    = errors.New("target version is older than a node's binary supports")
	ErrNodeNotLive     = errors.New("a node is not live")
	ErrPreserveSet     = errors.New("cluster.preserve_downgrade_option is set")
	ErrNotARelease     = errors.New("not a release")
	ErrSkippedReleases = errors.New("cannot skip a release")
)

// ValidateManual checks `SET CLUSTER SETTING version = target` with
// CockroachDB's rules: no downgrade; not beyond any node's binary; not below
// any node's minimum supported version; every non-decommissioned node live;
// refused while cluster.preserve_downgrade_option is set. It returns the
// steps to go through (empty if target is the active version).
func ValidateManual(in Input, target clusterversion.Version) ([]clusterversion.Version, error) {
	if !target.IsRelease() {
		return nil, errors.WithHintf(errors.Wrapf(ErrNotARelease, "%s is an internal step", target),
			"name a release, such as %s", target.Release())
	}
	if _, ok := clusterversion.Lookup(target); !ok {
		return nil, errors.WithHintf(errors.Wrapf(clusterversion.ErrUnknownVersion, "%q", target.String()),
			"the releases are %s", releases())
	}
	if target.Less(in.Active) {
		return nil, errors.WithHint(errors.Wrapf(ErrDowngrade, "attempting to downgrade from %s to %s", in.Active, target),
			"a downgrade goes through SET CLUSTER SETTING version with the release just below the active one")
	}
	if d := in.Downgrading; d != (clusterversion.Version{}) {
		return nil, errors.WithHintf(errors.Wrapf(ErrDowngradeInProgress, "cannot finalize to %s: a downgrade to %s is under way", target, d),
			"wait until SHOW UPGRADE STATUS says it has completed, then RESET CLUSTER SETTING cluster.preserve_downgrade_option")
	}
	if PreserveHolds(in) && !midFinalization(in) && target != in.Active {
		return nil, errors.WithHint(errors.Wrapf(ErrPreserveSet,
			"cannot finalize to %s while cluster.preserve_downgrade_option is set to %s", target, in.PreserveDowngrade),
			"RESET CLUSTER SETTING cluster.preserve_downgrade_option, then retry")
	}
	if target == in.Active {
		return nil, nil
	}
	for _, n := range considered(in.Nodes) {
		if n.BinaryVersion.Less(target) {
			return nil, errors.WithHintf(errors.Wrapf(ErrBeyondBinary,
				"node %d is running %s, which cannot run cluster version %s", n.ID, n.BinaryVersion, target),
				"upgrade node %d's binary to %s or newer first, or decommission it", n.ID, target)
		}
		if min := clusterversion.MinSupported(n.BinaryVersion); target.Less(min) {
			return nil, errors.WithHintf(errors.Wrapf(ErrBelowMinimum,
				"node %d is running %s, which supports cluster versions from %s, not %s", n.ID, n.BinaryVersion, min, target),
				"finalize to %s instead", min)
		}
		if !n.Live {
			return nil, errors.WithHintf(errors.Wrapf(ErrNodeNotLive,
				"node %d is not live; every node that is not decommissioned must be live to finalize", n.ID),
				"bring node %d back, or remove it for good: kvnode node decommission %d --host=%s", n.ID, n.ID, host(in))
		}
	}
	// The binary checks above make skipping a release impossible in a
	// consistent cluster; keep the rule explicit for a clear message.
	rels := clusterversion.Releases()
	ai, ti := -1, -1
	for i, r := range rels {
		if r == in.Active.Release() {
			ai = i
		}
		if r == target {
			ti = i
		}
	}
	if ai >= 0 && ti > ai+1 {
		return nil, errors.WithHintf(errors.Wrapf(ErrSkippedReleases, "cannot upgrade from %s to %s directly", in.Active, target),
			"finalize to %s first", rels[ai+1])
	}
	return clusterversion.Between(in.Active, target), nil
}

// Errors of ValidateDowngrade, for errors.Is.
var (
	ErrDowngradeTarget     = errors.New("a downgrade goes to the release just below the active one")
	ErrDowngradeInProgress = errors.New("another downgrade is under way")
	ErrBinaryTooNew        = errors.New("a node's binary cannot run the downgrade's target")
)

// ValidateDowngrade checks `SET CLUSTER SETTING version = target` below the
// active version: target must be the release just below the active
// version's release; no downgrade to another version may be under way;
// every non-decommissioned node must be live and run a binary that runs
// target. It returns the versions to persist, in order (the last is
// target).
func ValidateDowngrade(in Input, target clusterversion.Version) ([]clusterversion.Version, error) {
	if _, ok := clusterversion.Lookup(target); ok && !target.IsRelease() {
		return nil, errors.WithHintf(errors.Wrapf(ErrNotARelease, "%s is an internal step", target),
			"name a release, such as %s", target.Release())
	}
	if _, ok := clusterversion.Lookup(target); !ok {
		return nil, errors.WithHintf(errors.Wrapf(clusterversion.ErrUnknownVersion, "%q", target.String()),
			"the releases are %s", releases())
	}
	prev, ok := clusterversion.PrevRelease(in.Active)
	if !ok || prev != target {
		hint := fmt.Sprintf("%s is the first release: there is nothing to downgrade to", in.Active)
		if ok {
			hint = fmt.Sprintf("downgrade one release at a time: SET CLUSTER SETTING version = '%s'", prev)
		}
		return nil, errors.WithHint(errors.Wrapf(ErrDowngradeTarget, "cannot downgrade from %s to %s", in.Active, target), hint)
	}
	if d := in.Downgrading; d != (clusterversion.Version{}) && d != target {
		return nil, errors.WithHintf(errors.Wrapf(ErrDowngradeInProgress, "a downgrade to %s is under way", d),
			"wait until SHOW UPGRADE STATUS says it has completed")
	}
	if err := ValidateDowngradeNodes(in, target); err != nil {
		return nil, err
	}
	var out []clusterversion.Version
	for v := in.Active; target.Less(v); {
		p, _ := clusterversion.Prev(v)
		out = append(out, p)
		v = p
	}
	return out, nil
}

// DowngradeBlockers lists, as blockers with their fixes, every node that
// keeps a downgrade to target from its next step now: not live, or on a
// binary that cannot run target (SHOW UPGRADE STATUS and the status page
// during a downgrade).
func DowngradeBlockers(in Input, target clusterversion.Version) []Blocker {
	var out []Blocker
	for _, n := range considered(in.Nodes) {
		if !clusterversion.Supports(n.BinaryVersion, target) {
			out = append(out, Blocker{Kind: BlockMixedVersions, NodeID: n.ID,
				Reason: fmt.Sprintf("node %d runs %s, which cannot run %s", n.ID, n.BinaryVersion, target),
				Fix:    fmt.Sprintf("restart node %d on a binary of %s", n.ID, in.Active.Release())})
		}
		if !n.Live {
			out = append(out, Blocker{Kind: BlockDeadNode, NodeID: n.ID,
				Reason: fmt.Sprintf("node %d is not live", n.ID),
				Fix:    fmt.Sprintf("bring node %d back, or remove it for good: kvnode node decommission %d --host=%s", n.ID, n.ID, host(in))})
		}
	}
	return out
}

// ValidateDowngradeNodes is ValidateDowngrade's check of the nodes, which a
// downgrade repeats before every step.
func ValidateDowngradeNodes(in Input, target clusterversion.Version) error {
	for _, n := range considered(in.Nodes) {
		if !clusterversion.Supports(n.BinaryVersion, target) {
			return errors.WithHintf(errors.Wrapf(ErrBinaryTooNew,
				"node %d is running %s, which supports cluster versions from %s, not %s",
				n.ID, n.BinaryVersion, clusterversion.MinSupported(n.BinaryVersion), target),
				"restart node %d on a binary of %s first (the cluster runs it at %s), then retry", n.ID, in.Active.Release(), in.Active)
		}
		if !n.Live {
			return errors.WithHintf(errors.Wrapf(ErrNodeNotLive,
				"node %d is not live; every node that is not decommissioned must be live to downgrade", n.ID),
				"bring node %d back, or remove it for good: kvnode node decommission %d --host=%s", n.ID, n.ID, host(in))
		}
	}
	return nil
}

func releases() string {
	var parts []string
	for _, r := range clusterversion.Releases() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

// ValidatePreserve checks `SET CLUSTER SETTING
// cluster.preserve_downgrade_option = v`: it may only name the active
// version, a release. At an internal step no value is accepted (the
// finalization of that step's release can only complete); the error names
// the value that will be accepted once it has.
func ValidatePreserve(active clusterversion.Version, v string) error {
	if MidFinalization(active) {
		rel := active.Release()
		return errors.WithHintf(errors.Newf(
			"cannot set cluster.preserve_downgrade_option to %q: the cluster is finalizing to %s (at %s), "+
				"which can no longer be held back or rolled back", v, rel, active),
			"once SHOW CLUSTER SETTING version says %s, SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s' holds the next upgrade",
			rel, rel)
	}
	pv, err := clusterversion.Parse(v)
	if err != nil || pv != active {
		return errors.WithHintf(errors.Newf(
			"cannot set cluster.preserve_downgrade_option to %q: it must be the current cluster version %s", v, active),
			"SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s'", active)
	}
	return nil
}
