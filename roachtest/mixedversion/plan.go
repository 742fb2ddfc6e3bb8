package mixedversion

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/roachtest/steps"
)

// Kind is what a plan step does.
type Kind int

// The step kinds.
const (
	Binaries Kind = iota
	StartCluster
	ProbeCapabilities
	SetupWorkload
	StartWorkload
	WaitProgress
	Restart
	KillLeader
	CreateTable
	AddColumn
	WriteRows
	ChangeSetting
	HoldFinalize
	Finalize
	CheckWorkload
)

// Step is one step of a plan. Which fields matter depends on Kind.
type Step struct {
	Kind Kind
	// Node is the node acted on (Restart) or the node statements go through.
	Node int
	// From and To are the binaries before and after a Restart; From is the
	// release held by HoldFinalize, To the release Finalize reaches.
	From, To string
	// Kill restarts with SIGKILL rather than SIGTERM.
	Kill bool
	// Auto finalizes by letting the cluster do it (RESET
	// cluster.preserve_downgrade_option) instead of by hand (SET CLUSTER
	// SETTING version, with automatic upgrades off meanwhile).
	Auto bool
	// ByExpr finalizes by hand with SET CLUSTER SETTING version =
	// crdb_internal.node_executable_version() rather than the release
	// spelled out: both are what operators' scripts do.
	ByExpr bool
	// Table is the table of CreateTable, AddColumn and WriteRows.
	Table string
	// Key is the first key WriteRows writes (it writes Key..Key+4).
	Key int64
	// Mix describes the binaries the cluster runs when the step runs.
	Mix string
	// Releases are the nodes' binaries for StartCluster.
	Releases []string
	// Required makes ProbeCapabilities skip the scenario if the cluster
	// cannot finalize an upgrade.
	Required bool
}

// Needs returns the capability the step needs, or 0.
func (s Step) Needs() steps.Capability {
	switch s.Kind {
	case ChangeSetting:
		return steps.Settings
	case HoldFinalize, Finalize:
		return steps.Finalization
	}
	return 0
}

// String describes the step with every choice spelled out.
func (s Step) String() string {
	var d string
	switch s.Kind {
	case Binaries:
		d = fmt.Sprintf("build or find the binaries of %s", strings.Join(s.Releases, ", "))
	case StartCluster:
		var parts []string
		for i, r := range s.Releases {
			parts = append(parts, fmt.Sprintf("n%d=%s", i+1, r))
		}
		d = fmt.Sprintf("start the cluster (%s), init through n%d", strings.Join(parts, " "), s.Node)
	case ProbeCapabilities:
		if s.Required {
			d = fmt.Sprintf("probe cluster settings and finalization through n%d (finalization required: the scenario is pending without it)", s.Node)
		} else {
			d = fmt.Sprintf("probe cluster settings and finalization through n%d (steps that need them are not run without them)", s.Node)
		}
	case SetupWorkload:
		d = fmt.Sprintf("create the workload's tables through n%d", s.Node)
	case StartWorkload:
		d = "start the workload on every node"
	case WaitProgress:
		d = "the workload gets writes acknowledged"
	case Restart:
		verb := "upgrade"
		if less(s.To, s.From) {
			verb = "roll back"
		}
		how := "SIGTERM"
		if s.Kill {
			how = "SIGKILL"
		}
		d = fmt.Sprintf("%s n%d %s -> %s (stop with %s)", verb, s.Node, s.From, s.To, how)
	case KillLeader:
		d = "kill -9 the Raft leader, wait for writes, restart it on its binary"
	case CreateTable:
		d = fmt.Sprintf("DDL through n%d: CREATE TABLE %s, visible through every node", s.Node, s.Table)
	case AddColumn:
		d = fmt.Sprintf("DDL through n%d: ALTER TABLE %s ADD COLUMN c INT DEFAULT 7, visible through every node", s.Node, s.Table)
	case WriteRows:
		d = fmt.Sprintf("DML through n%d: upsert %s keys %d..%d, update one, delete one; read back through every node", s.Node, s.Table, s.Key, s.Key+4)
	case ChangeSetting:
		d = fmt.Sprintf("setting through n%d: cluster.auto_upgrade.enabled = false, then true, seen by every node", s.Node)
	case HoldFinalize:
		d = fmt.Sprintf("hold finalization: SET CLUSTER SETTING cluster.preserve_downgrade_option = '%s' through n%d", s.From, s.Node)
	case Finalize:
		switch {
		case s.Auto:
			d = fmt.Sprintf("finalize %s automatically: RESET CLUSTER SETTING cluster.preserve_downgrade_option through n%d; every node reports version %s", s.To, s.Node, s.To)
		default:
			target := "'" + s.To + "'"
			if s.ByExpr {
				target = "crdb_internal.node_executable_version()"
			}
			d = fmt.Sprintf("finalize %s by hand through n%d: cluster.auto_upgrade.enabled = false, RESET cluster.preserve_downgrade_option, "+
				"SET CLUSTER SETTING version = %s, cluster.auto_upgrade.enabled = true; every node reports %s", s.To, s.Node, target, s.To)
		}
	case CheckWorkload:
		d = "stop the workload, read everything back through every node, check the history"
	default:
		d = fmt.Sprintf("unknown step kind %d", s.Kind)
	}
	if c := s.Needs(); c != 0 {
		d += " [needs " + c.String() + "]"
	}
	if s.Mix != "" {
		d += " [" + s.Mix + "]"
	}
	return d
}

// VersionSteps says what happens to steps that need cluster settings or
// finalization when the binaries lack them.
type VersionSteps int

const (
	// IfSupported runs the plan and logs each such step as not run.
	IfSupported VersionSteps = iota
	// Required skips the scenario as pending if the cluster cannot
	// finalize.
	Required
)

// Plan is a generated mixed-version plan.
type Plan struct {
	Seed     int64
	Nodes    int
	Kind     string   // "upgrade" or "mix"
	Path     []string // the releases the cluster runs, in order
	Versions VersionSteps
	Steps    []Step
}

// Header describes the plan's choices in a few lines.
func (p *Plan) Header() []string {
	versions := "steps that need cluster settings or finalization are not run if the binaries lack them"
	if p.Versions == Required {
		versions = "finalization is required (the scenario is pending until the binaries have it)"
	}
	h := []string{
		fmt.Sprintf("mixed-version %s plan, seed %d, %d nodes, releases %s", p.Kind, p.Seed, p.Nodes, strings.Join(p.Path, " -> ")),
		versions,
	}
	restarts, rollbacks := 0, 0
	for _, s := range p.Steps {
		if s.Kind == Restart {
			restarts++
			if less(s.To, s.From) {
				rollbacks++
			}
		}
	}
	if p.Kind == "upgrade" {
		h = append(h, fmt.Sprintf("%d restarts, %d of them rollbacks", restarts, rollbacks))
	}
	return h
}

// String prints the header and the numbered steps.
func (p *Plan) String() string {
	var b strings.Builder
	for _, h := range p.Header() {
		fmt.Fprintf(&b, "%s\n", h)
	}
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%2d. %s\n", i+1, s)
	}
	return b.String()
}

func less(a, b string) bool {
	va, err1 := clusterversion.Parse(a)
	vb, err2 := clusterversion.Parse(b)
	return err1 == nil && err2 == nil && va.Less(vb)
}

// checkPath verifies that path is a sequence of consecutive releases on the
// ladder: a binary runs clusters of its own release or the previous one, so
// an upgrade cannot skip a release.
func checkPath(path []string) error {
	if len(path) < 2 {
		return errors.Newf("an upgrade path needs at least two releases, got %v", path)
	}
	rels := clusterversion.Releases()
	idx := map[string]int{}
	for i, r := range rels {
		idx[r.String()] = i
	}
	for i, r := range path {
		j, ok := idx[r]
		if !ok {
			return errors.Newf("release %q is not on the ladder (%v)", r, rels)
		}
		if i > 0 && j != idx[path[i-1]]+1 {
			return errors.Newf("upgrade path %v skips or reverses releases: each step goes to the next release", path)
		}
	}
	return nil
}

// UpgradeOptions shape an upgrade plan.
type UpgradeOptions struct {
	Nodes int
	// Path is the releases in upgrade order, consecutive on the ladder.
	Path []string
	// Rollback lets the seed choose, per hop, to roll the upgraded nodes
	// back before finalizing and upgrade again.
	Rollback bool
	// KillLeader lets the seed add a kill -9 of the leader among the
	// mixed-version steps.
	KillLeader bool
	Versions   VersionSteps
}

// gen carries the generator's state.
type gen struct {
	rng    *rand.Rand
	p      *Plan
	tables int
	cols   map[string]bool
	keys   int64
}

func newGen(seed int64, p *Plan) *gen {
	return &gen{rng: rand.New(rand.NewPCG(uint64(seed), 0x6d69786564)), p: p, cols: map[string]bool{}} // "mixed"
}

func (g *gen) add(s Step) { g.p.Steps = append(g.p.Steps, s) }

func (g *gen) node() int { return 1 + g.rng.IntN(g.p.Nodes) }

// mixLabel names the binary mix: how many nodes run the old release.
func mixLabel(cur []string, old, newR string) string {
	n := len(cur)
	o := 0
	for _, r := range cur {
		if r == old {
			o++
		}
	}
	switch {
	case o == n:
		return fmt.Sprintf("all %d on %s", n, old)
	case o == 0:
		return fmt.Sprintf("all new: %d on %s", n, newR)
	case 2*o > n:
		return fmt.Sprintf("majority old: %d of %d on %s", o, n, old)
	case 2*o < n:
		return fmt.Sprintf("minority old: %d of %d on %s", o, n, old)
	default:
		return fmt.Sprintf("half old: %d of %d on %s", o, n, old)
	}
}

// mixedSteps adds count mixed-version steps: DDL, DML, a settings change,
// maybe a kill -9 of the leader. The first creates a table if none exists
// so DML has one.
func (g *gen) mixedSteps(count int, mix string, killLeader bool) {
	for i := 0; i < count; i++ {
		choice := g.rng.IntN(10)
		switch {
		case g.tables == 0 || choice < 2:
			g.tables++
			g.add(Step{Kind: CreateTable, Node: g.node(), Table: fmt.Sprintf("mv_%d", g.tables), Mix: mix})
		case choice < 3:
			t := fmt.Sprintf("mv_%d", 1+g.rng.IntN(g.tables))
			if g.cols[t] {
				g.add(g.writeRows(t, mix, 0))
				continue
			}
			g.cols[t] = true
			g.add(Step{Kind: AddColumn, Node: g.node(), Table: t, Mix: mix})
		case choice < 7:
			g.add(g.writeRows(fmt.Sprintf("mv_%d", 1+g.rng.IntN(g.tables)), mix, 0))
		case choice < 9 || !killLeader:
			g.add(Step{Kind: ChangeSetting, Node: g.node(), Mix: mix})
		default:
			g.add(Step{Kind: KillLeader, Mix: mix})
			g.add(Step{Kind: WaitProgress, Mix: mix})
		}
	}
}

// writeRows is a DML step through node (a seeded node if 0) on fresh keys.
func (g *gen) writeRows(table, mix string, node int) Step {
	if node == 0 {
		node = g.node()
	}
	g.keys++
	return Step{Kind: WriteRows, Node: node, Table: table, Key: 100 * g.keys, Mix: mix}
}

func (g *gen) restart(node int, from, to string, cur []string, old, newR string) {
	cur[node-1] = to
	// One restart in three is a kill -9: an upgrade must survive a node that
	// did not drain.
	g.add(Step{Kind: Restart, Node: node, From: from, To: to, Kill: g.rng.IntN(3) == 0, Mix: mixLabel(cur, old, newR)})
}

// NewUpgradePlan generates an upgrade plan from seed.
func NewUpgradePlan(seed int64, o UpgradeOptions) (*Plan, error) {
	if o.Nodes < 1 {
		return nil, errors.Newf("an upgrade plan needs at least one node, not %d", o.Nodes)
	}
	if err := checkPath(o.Path); err != nil {
		return nil, err
	}
	if len(o.Path) > 2 && o.Versions != Required {
		// A binary runs only clusters at its own or the previous release:
		// without finalizing the first hop, the second hop's binary would
		// (rightly) refuse the cluster.
		return nil, errors.Newf("the upgrade path %v has more than one hop, which needs finalization between hops: use Versions: Required", o.Path)
	}
	p := &Plan{Seed: seed, Nodes: o.Nodes, Kind: "upgrade", Path: o.Path, Versions: o.Versions}
	g := newGen(seed, p)
	cur := make([]string, o.Nodes)
	for i := range cur {
		cur[i] = o.Path[0]
	}
	g.add(Step{Kind: Binaries, Releases: o.Path})
	g.add(Step{Kind: StartCluster, Node: g.node(), Releases: append([]string(nil), cur...)})
	g.add(Step{Kind: ProbeCapabilities, Node: g.node(), Required: o.Versions == Required})
	g.add(Step{Kind: SetupWorkload, Node: g.node()})
	// The workload starts before the first restart or right after it: both
	// an upgrade that begins under load and load that begins in a mix.
	workloadLate := g.rng.IntN(3) == 0
	started := false
	startWorkload := func(mix string) {
		g.add(Step{Kind: StartWorkload, Mix: mix})
		g.add(Step{Kind: WaitProgress, Mix: mix})
		started = true
	}
	if !workloadLate {
		startWorkload(mixLabel(cur, o.Path[0], o.Path[1]))
	}
	for h := 0; h+1 < len(o.Path); h++ {
		old, newR := o.Path[h], o.Path[h+1]
		g.add(Step{Kind: HoldFinalize, Node: g.node(), From: old})
		if g.rng.IntN(3) == 0 {
			g.mixedSteps(1, mixLabel(cur, old, newR), o.KillLeader)
		}
		// Roll back after this many upgrades (0: never): anywhere from one
		// node to all of them, which is the "all new, not finalized" mix.
		rollbackAfter := 0
		if o.Rollback && g.rng.IntN(2) == 0 {
			rollbackAfter = 1 + g.rng.IntN(o.Nodes)
		}
		// Every mix the upgrade passes through gets mixed-version steps, in
		// the first pass or, after a rollback, in the second.
		covered := map[string]bool{}
		order := g.rng.Perm(o.Nodes)
		for i, idx := range order {
			g.restart(idx+1, old, newR, cur, old, newR)
			mix := mixLabel(cur, old, newR)
			if !started {
				startWorkload(mix)
			} else {
				g.add(Step{Kind: WaitProgress, Mix: mix})
			}
			g.mixedSteps(1+g.rng.IntN(2), mix, o.KillLeader)
			covered[mix] = true
			if i+1 != rollbackAfter {
				continue
			}
			back := append([]int(nil), order[:i+1]...)
			g.rng.Shuffle(len(back), func(a, b int) { back[a], back[b] = back[b], back[a] })
			for _, b := range back {
				g.restart(b+1, newR, old, cur, old, newR)
				g.add(Step{Kind: WaitProgress, Mix: mixLabel(cur, old, newR)})
			}
			g.mixedSteps(1, mixLabel(cur, old, newR), o.KillLeader)
			for _, idx2 := range g.rng.Perm(o.Nodes) {
				g.restart(idx2+1, old, newR, cur, old, newR)
				mix := mixLabel(cur, old, newR)
				g.add(Step{Kind: WaitProgress, Mix: mix})
				if !covered[mix] || g.rng.IntN(2) == 0 {
					g.mixedSteps(1, mix, o.KillLeader)
					covered[mix] = true
				}
			}
			break
		}
		fin := Step{Kind: Finalize, Node: g.node(), To: newR, Auto: g.rng.IntN(2) == 0}
		fin.ByExpr = !fin.Auto && g.rng.IntN(2) == 0
		g.add(fin)
		if g.rng.IntN(2) == 0 {
			g.mixedSteps(1, "finalized "+newR, o.KillLeader)
		}
	}
	g.add(Step{Kind: CheckWorkload})
	return p, nil
}

// MixOptions shape a binary-mix plan.
type MixOptions struct {
	Nodes int
	// Old and New are consecutive releases.
	Old, New string
	// OldCount is how many nodes run Old (0: all new).
	OldCount int
	// KillLeader adds a kill -9 of the leader in the mix.
	KillLeader bool
}

// NewMixPlan generates a plan that runs the cluster in a fixed binary mix.
func NewMixPlan(seed int64, o MixOptions) (*Plan, error) {
	if err := checkPath([]string{o.Old, o.New}); err != nil {
		return nil, err
	}
	if o.OldCount < 0 || o.OldCount > o.Nodes || o.Nodes < 1 {
		return nil, errors.Newf("a mix of %d old nodes out of %d", o.OldCount, o.Nodes)
	}
	p := &Plan{Seed: seed, Nodes: o.Nodes, Kind: "mix", Path: []string{o.Old, o.New}, Versions: IfSupported}
	if o.OldCount == 0 {
		p.Path = []string{o.New}
	}
	g := newGen(seed, p)
	cur := make([]string, o.Nodes)
	var olds, news []int
	for i, idx := range g.rng.Perm(o.Nodes) {
		if i < o.OldCount {
			cur[idx] = o.Old
			olds = append(olds, idx+1)
		} else {
			cur[idx] = o.New
			news = append(news, idx+1)
		}
	}
	pick := func(from []int) int {
		if len(from) == 0 {
			return g.node()
		}
		return from[g.rng.IntN(len(from))]
	}
	mix := mixLabel(cur, o.Old, o.New)
	// Bootstrap through an old node: once cluster versions exist, the
	// cluster starts at the version of the node that bootstraps it, and a
	// new node can join an old cluster but not the other way round.
	g.add(Step{Kind: Binaries, Releases: p.Path})
	g.add(Step{Kind: StartCluster, Node: pick(olds), Releases: append([]string(nil), cur...), Mix: mix})
	g.add(Step{Kind: SetupWorkload, Node: g.node(), Mix: mix})
	g.add(Step{Kind: StartWorkload, Mix: mix})
	g.add(Step{Kind: WaitProgress, Mix: mix})
	g.tables++
	g.add(Step{Kind: CreateTable, Node: pick(olds), Table: "mv_1", Mix: mix})
	// Rows go in through a new node after an old node created the table,
	// the column is added through a new node and rows go in through an old
	// one: each binary acts on what the other did.
	g.add(g.writeRows("mv_1", mix, pick(news)))
	g.cols["mv_1"] = true
	g.add(Step{Kind: AddColumn, Node: pick(news), Table: "mv_1", Mix: mix})
	g.add(g.writeRows("mv_1", mix, pick(olds)))
	if o.KillLeader {
		g.add(Step{Kind: KillLeader, Mix: mix})
		g.add(Step{Kind: WaitProgress, Mix: mix})
	}
	g.add(g.writeRows("mv_1", mix, 0))
	g.add(Step{Kind: CheckWorkload, Mix: mix})
	return p, nil
}
