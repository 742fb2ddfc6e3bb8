package upgrademanager

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// Cluster is what the manager needs of the cluster. Server implements it.
type Cluster interface {
	// Input is what a finalization decision depends on, as of now: the
	// settings read afresh (a RESET of the preserve option on another node
	// counts at once), this node's active version, and every node.
	Input(ctx context.Context) (autoupgrade.Input, error)
	// Nodes lists every node again (the re-listing after a step).
	Nodes(ctx context.Context) ([]autoupgrade.Node, error)
	// PersistVersion has node n persist v durably before it acts on it, and
	// returns once it has (bounded by ctx). With lower (a downgrade), n
	// moves its version down to v, after closing the gates above v.
	PersistVersion(ctx context.Context, n autoupgrade.Node, v clusterversion.Version, lower bool) error
	// ResetPreserveDowngrade clears cluster.preserve_downgrade_option.
	ResetPreserveDowngrade(ctx context.Context) error
	// PreserveOps returns the writes that set
	// cluster.preserve_downgrade_option to v, for the downgrade record's
	// batch.
	PreserveOps(v clusterversion.Version) ([]kvpb.Op, error)
}

// Migrations runs the migration of a ladder step as a job (migrations.Runner).
type Migrations interface {
	// Has reports whether step v has a migration.
	Has(v clusterversion.Version) bool
	// Run runs or resumes it, returning once it has succeeded.
	Run(ctx context.Context, v clusterversion.Version) error
	// DownWhen reports whether step v has a down-migration, and whether it
	// runs after v is lowered (else before).
	DownWhen(v clusterversion.Version) (after, ok bool)
	// RunDown runs or resumes step v's down-migration.
	RunDown(ctx context.Context, v clusterversion.Version) error
	// Forget makes the next Run (down: RunDown) of step v start a new job:
	// the cluster is crossing v in the other direction.
	Forget(ctx context.Context, v clusterversion.Version, down bool) error
	// Check runs the precondition check of step v's migration (down: its
	// down-migration) for a plan; ok is false if it has none.
	Check(ctx context.Context, v clusterversion.Version, down bool) (c StepCheck, ok bool, err error)
	// Refusals lists what refuses lowering step v (what the release below
	// cannot represent), each with its fix; empty if nothing does.
	Refusals(ctx context.Context, v clusterversion.Version) ([]PlanBlocker, error)
}

// Config configures a Manager.
type Config struct {
	Cluster Cluster
	// DB is the replicated store of the version key; nil until the node
	// has joined a cluster.
	DB func() kvpb.DB
	// Local is this node's persisted version: what a cluster bootstrapped
	// before the version key existed reads as its replicated version.
	Local      func() clusterversion.Version
	Migrations Migrations
	Log        *slog.Logger
	// BeforeStep, if set, runs before each step is persisted; an error
	// stops the migration there (a testing knob).
	BeforeStep func(step clusterversion.Version) error
	// StepPause, if set, runs right after BeforeStep with the migration's
	// context, so that a pause ends with it (a testing knob:
	// KVNODE_TESTING_VERSION_STEP_PAUSE).
	StepPause func(ctx context.Context, step clusterversion.Version) error
	// PersistTimeout bounds persisting a step on one node (default 10s).
	PersistTimeout time.Duration
}

// Manager runs finalizations. Calls on one node are serialized; calls on
// different nodes may overlap safely (every action is idempotent and
// monotonic, and a migration runs once).
type Manager struct {
	cfg        Config
	mu         sync.Mutex // serializes Migrate on this node
	inProgress atomic.Pointer[string]
}

// New returns a manager.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PersistTimeout == 0 {
		cfg.PersistTimeout = 10 * time.Second
	}
	return &Manager{cfg: cfg}
}

// ErrStepNotPersisted marks a step that some node did not persist.
var ErrStepNotPersisted = errors.New("a cluster version step could not be persisted on every node")

// InProgress describes a running Migrate for SHOW UPGRADE STATUS ("" when
// none).
func (m *Manager) InProgress() string {
	if p := m.inProgress.Load(); p != nil {
		return *p
	}
	return ""
}

// Migrate moves the cluster version to target: for each ladder step,
// validate every node, persist the step on every non-decommissioned node,
// record it in the replicated setting, then run the step's migration. The
// validation after the fence closes the race of an old binary joining
// between the first check and the fence.
func (m *Manager) Migrate(ctx context.Context, target clusterversion.Version) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.inProgress.Store(nil)
	for {
		in, err := m.cfg.Cluster.Input(ctx)
		if err != nil {
			return err
		}
		steps, err := autoupgrade.ValidateManual(in, target)
		if err != nil {
			return err
		}
		// Steps this node has persisted but the replicated version does
		// not record are in doubt: an earlier attempt persisted them on
		// some nodes and then failed (a node died after the node list was
		// read). Redo them first: persisting is idempotent and never moves
		// a node back, recording never moves the replicated version back,
		// and a succeeded migration is not run again.
		rv, err := m.ReplicatedVersion(ctx)
		if err != nil {
			return err
		}
		if redo := clusterversion.Between(rv, in.Active); len(redo) > 0 {
			steps = append(redo, steps...)
		} else if m.cfg.Migrations.Has(in.Active) {
			// The step the cluster is at may have a migration that an
			// earlier coordinator started and did not finish (it died, or
			// stopped): the cluster must not move past the step before it
			// succeeds. Run is a no-op for a succeeded job.
			if err := m.cfg.Migrations.Run(ctx, in.Active); err != nil {
				return err
			}
		}
		if len(steps) == 0 {
			return nil
		}
		step := steps[0]
		if err := m.beginStep(ctx, step, fmt.Sprintf("finalizing to %s: at step %s", target, step)); err != nil {
			return err
		}
		if _, has := m.cfg.Migrations.DownWhen(step); has {
			// The next downgrade through step runs its down-migration again.
			if err := m.cfg.Migrations.Forget(ctx, step, true); err != nil {
				return err
			}
		}
		if err := m.persistOnEveryNode(ctx, step, in.Nodes, false); err != nil {
			return err
		}
		if err := m.writeReplicatedVersion(ctx, step); err != nil {
			return err
		}
		m.cfg.Log.Info("cluster version step done", "step", step.String(), "target", target.String())
		if m.cfg.Migrations.Has(step) {
			if err := m.cfg.Migrations.Run(ctx, step); err != nil {
				return err
			}
		}
		if step.IsRelease() {
			m.clearPreserveIfPassed(ctx, in.PreserveDowngrade, step)
		}
	}
}

// beginStep announces the step about to be persisted (SHOW UPGRADE
// STATUS's in_progress) and runs the testing knobs that stop or pause a
// coordinator before it persists v.
func (m *Manager) beginStep(ctx context.Context, v clusterversion.Version, msg string) error {
	m.inProgress.Store(&msg)
	if hook := m.cfg.BeforeStep; hook != nil {
		if err := hook(v); err != nil {
			return err
		}
	}
	if pause := m.cfg.StepPause; pause != nil {
		return pause(ctx, v)
	}
	return nil
}

// persistOnEveryNode persists v on every node of nodes, then lists the
// nodes again and persists v on those that joined meanwhile, until a list
// holds no new node (CockroachDB's upgrade manager does the same): a node
// that joined after the first list was read got the version of its join,
// and the step must not be recorded as done while it lags (issue 16, D1).
// A node that joins after the last list gets the version of the node
// admitting it, which is v, or catches up with the replicated version by
// itself.
func (m *Manager) persistOnEveryNode(ctx context.Context, v clusterversion.Version, nodes []autoupgrade.Node, lower bool) error {
	done := map[nodeid.ID]bool{}
	for round := 0; ; round++ {
		var todo []autoupgrade.Node
		for _, n := range nodes {
			if !done[n.ID] && n.Membership != autoupgrade.Decommissioned {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		if round == 10 {
			return errors.WithHint(errors.Newf("nodes keep joining while cluster version %s is persisted", v),
				"the finalization resumes from this step; it completes once nodes stop joining")
		}
		if err := m.persistEverywhere(ctx, v, todo, lower); err != nil {
			return err
		}
		for _, n := range todo {
			done[n.ID] = true
		}
		var err error
		if nodes, err = m.cfg.Cluster.Nodes(ctx); err != nil {
			return err
		}
	}
}

// persistEverywhere asks every node of nodes to persist v and waits for
// all of them; a node that cannot be reached fails the step (the
// finalization is retried later).
func (m *Manager) persistEverywhere(ctx context.Context, v clusterversion.Version, nodes []autoupgrade.Node, lower bool) error {
	type res struct {
		id  nodeid.ID
		err error
	}
	out := make(chan res, len(nodes))
	for _, n := range nodes {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, m.cfg.PersistTimeout)
			defer cancel()
			out <- res{n.ID, m.cfg.Cluster.PersistVersion(cctx, n, v, lower)}
		}()
	}
	var errs []string
	for range nodes {
		if r := <-out; r.err != nil {
			errs = append(errs, fmt.Sprintf("node %d: %v", r.id, r.err))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.Mark(errors.WithHint(errors.Newf("cluster version %s could not be persisted on every node: %v", v, errs),
			"it resumes from this step once every node is reachable"), ErrStepNotPersisted)
	}
	return nil
}

// clearPreserveIfPassed resets cluster.preserve_downgrade_option once the
// cluster version moves past the version it names.
func (m *Manager) clearPreserveIfPassed(ctx context.Context, preserve string, v clusterversion.Version) {
	if preserve == "" {
		return
	}
	if pv, err := clusterversion.Parse(preserve); err == nil && pv.Less(v) {
		if err := m.cfg.Cluster.ResetPreserveDowngrade(ctx); err != nil {
			m.cfg.Log.Warn("could not clear cluster.preserve_downgrade_option", "err", err)
		} else {
			m.cfg.Log.Info("cleared cluster.preserve_downgrade_option: the cluster version moved past it", "was", preserve, "now", v.String())
		}
	}
}

func (m *Manager) db() (kvpb.DB, error) {
	if m.cfg.DB != nil {
		if db := m.cfg.DB(); db != nil {
			return db, nil
		}
	}
	return nil, errors.New("this node has not joined a cluster yet")
}

// ReplicatedVersion reads the replicated `version` (linearizable): a
// version every non-decommissioned node has persisted.
func (m *Manager) ReplicatedVersion(ctx context.Context) (clusterversion.Version, error) {
	db, err := m.db()
	if err != nil {
		return clusterversion.Version{}, err
	}
	b, found, err := db.Get(ctx, keys.ClusterVersionKey())
	if err != nil {
		return clusterversion.Version{}, err
	}
	if !found {
		// A cluster bootstrapped before the key existed: fall back to the
		// locally persisted version.
		return m.cfg.Local(), nil
	}
	return clusterversion.Parse(string(b))
}

// writeReplicatedVersion advances the replicated version to v (never back).
func (m *Manager) writeReplicatedVersion(ctx context.Context, v clusterversion.Version) error {
	return m.setReplicatedVersion(ctx, v, func(cur clusterversion.Version) (bool, error) {
		return cur.Less(v), nil
	})
}

// setReplicatedVersion writes v into the replicated version key with a
// conditional put on what it read, if write says so for the version read
// (an absent key is always written), reading again when another
// coordinator changed it meanwhile.
func (m *Manager) setReplicatedVersion(ctx context.Context, v clusterversion.Version,
	write func(cur clusterversion.Version) (bool, error)) error {
	db, err := m.db()
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 20; attempt++ {
		b, found, err := db.Get(ctx, keys.ClusterVersionKey())
		if err != nil {
			return err
		}
		op := kvpb.Op{Kind: kvpb.OpCPut, Key: keys.ClusterVersionKey(), Value: []byte(v.String())}
		if found {
			cur, err := clusterversion.Parse(string(b))
			if err != nil {
				return err
			}
			if ok, err := write(cur); err != nil || !ok {
				return err
			}
			op.Expected = b
		} else {
			op.ExpectAbsent = true
		}
		err = db.Write(ctx, []kvpb.Op{op})
		var cf *kvpb.ConditionFailedError
		if errors.As(err, &cf) {
			continue
		}
		return err
	}
	return errors.New("could not update the replicated cluster version: too much contention")
}
