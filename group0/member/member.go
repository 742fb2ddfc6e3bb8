package member

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/rpc"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/storage"
)

var (
	_ group0.Replica    = (*kv.Replica)(nil)
	_ group0.LocalStore = storage.Local{}
	_ Catalog           = (*catalog.Catalog)(nil)
)

// Node is what the member needs from the node that runs it. The server
// implements it; every method is cheap and safe to call from any goroutine.
type Node interface {
	// ActiveVersion is the node's active cluster version (2.0 active: the
	// cluster is upgraded).
	clusterversion.Handle
	NodeID() nodeid.ID
	ClusterID() string
	// Replica is the node's data replica (nil before it has joined). The
	// formation record is read through it.
	Replica() *kv.Replica
	// LiveReplica is the data replica once the node's liveness runs (nil
	// before): the liveness records are read from it.
	LiveReplica() *kv.Replica
	// Ready returns an RPC error (Unavailable, FailedPrecondition) unless
	// the node is started and a member of the cluster.
	Ready() error
	// Resolve maps a node ID to its RPC address.
	Resolve(id nodeid.ID) (string, bool)
	// NodeRecords is every node record (for addressing, possibly stale).
	NodeRecords() map[nodeid.ID]nodeapi.NodeRecord
	// NodeStatuses is every node's status from linearizable reads.
	NodeStatuses(ctx context.Context) ([]nodeapi.NodeStatus, error)
	// Gossiped is what gossip says of node id: its binary and whether it
	// is live (ok: gossip knows the node).
	Gossiped(id nodeid.ID) (binary string, live, ok bool)
	// AllowPromote is the promotion gate of the data group, used for group
	// 0 too: only active nodes become voters.
	AllowPromote(id nodeid.ID) bool
	// Catalog is the SQL catalog (nil before SQL has started).
	Catalog() Catalog
}

// Catalog is the part of the SQL catalog the member keeps in step with
// group 0 (catalog.Catalog implements it).
type Catalog interface {
	// All returns every descriptor, tombstones too.
	All() []catalog.TableDescriptor
	// Merge installs descriptors by the last-writer-wins rule.
	Merge([]catalog.TableDescriptor) (changed bool, err error)
	// Digest summarizes the catalog's schema.
	Digest() string
}

// Stopper owns the member's background goroutines: they end when
// ShouldQuiesce is closed, and the node waits for them before it closes
// the member. WithTimeout is a context that ends after d or when the node
// stops (the member's bounded calls take theirs from it).
type Stopper interface {
	ShouldQuiesce() <-chan struct{}
	RunAsync(f func())
	WithTimeout(d time.Duration) (context.Context, context.CancelFunc)
}

// ErrStopping is returned by what the node's stop interrupts.
var ErrStopping = errors.New("node is stopping")

// Knobs are the testing hooks of group 0's runtime.
type Knobs struct {
	// Hook runs on the coordinator before every action of the upgrade
	// procedure (group0.Upgrade.Hook).
	Hook func(ctx context.Context, a group0.Action) error
	// Backoff shortens the upgrade procedure's pauses.
	Backoff time.Duration
	// BeforeSchemaCheck runs in the upgrade's schema sync after the merge
	// is committed and before the nodes' digests are checked.
	BeforeSchemaCheck func(ctx context.Context)
}

// Config is what New needs.
type Config struct {
	Node    Node
	Stopper Stopper
	// Store is the node's --store; group 0's engine is <Store>/group0.
	Store string
	// Local is the node's own store, where its upgrade state lives.
	Local group0.LocalStore
	// Binary is the release this node runs (group 0 exists from 2.0 on).
	Binary clusterversion.Version
	Log    *slog.Logger
	Pool   *rpc.Pool
	Client *nodeapi.Client
	// TickInterval is the Raft tick of the replica.
	TickInterval time.Duration
	// Timeout bounds a read barrier or a commit (default 10s); DDLWait,
	// how long DDL issued during the upgrade waits (default 30s);
	// PropagationWait, how long a committed DDL waits for the other live
	// members (default 5s); UpgradeTimeout bounds the upgrade procedure's
	// waits (group0.Upgrade.Timeout).
	Timeout, DDLWait, PropagationWait, UpgradeTimeout time.Duration
	Knobs                                             Knobs
}

// Member is this node's part of group 0.
type Member struct {
	cfg  Config
	node Node
	log  *slog.Logger

	// mu serializes changes to the replica's lifecycle: open, bootstrap,
	// join, wipe, stop. Readers load the atomics.
	mu  sync.Mutex
	eng *storage.Engine // <store>/group0; nil while closed
	rep atomic.Pointer[kv.Replica]
	tr  atomic.Pointer[kv.Transport] // what the kvnode.Group0 service delivers to
	gen atomic.Uint64                // generation of the running replica (0: none)
	// isolated: the replica runs cut off from every peer (its transport's
	// cluster ID matches no one). A node in recovery runs it that way so
	// that it can report its applied index and state ID, the inputs of
	// the recovery's seed choice, without taking part in group 0.
	isolated atomic.Bool

	// gate orders DDL of the pre-Raft procedure with state changes: such
	// DDL holds it shared for its whole run; a state change holds it
	// exclusively. So once a node reports synchronize, no pre-Raft DDL is
	// running on it, and none starts.
	gate    sync.RWMutex
	stMu    sync.Mutex
	state   group0.State
	changed chan struct{} // closed and replaced at every state change

	// fresh is set when this process joined an existing cluster with an
	// empty store: such a node joins group 0 by itself if it exists.
	fresh atomic.Bool
	// catalogStateID is the group 0 state the SQL catalog reflects.
	catalogStateID atomic.Uint64
	// waiting is what this node's upgrade coordinator does or waits for.
	waiting atomic.Pointer[string]
	// lastMembershipWarn rate-limits the membership loop's warning (used
	// by that loop only); lastRejoinWarn, the member check's.
	lastMembershipWarn time.Time
	lastRejoinWarn     time.Time
	// outside marks a node that relies on group 0 for its schema but is
	// not a caught-up member (self.go): it refuses writes.
	outside atomic.Bool
}

// New returns the member of a node; nothing runs until Load and Start.
func New(cfg Config) *Member {
	return &Member{cfg: cfg, node: cfg.Node, log: cfg.Log}
}

// Enabled reports whether this binary's release has group 0 (2.0 on). A
// node running as an older release (in-process tests) behaves exactly as
// that release: no group 0, no group 0 RPCs.
func (m *Member) Enabled() bool { return !m.cfg.Binary.Less(clusterversion.V2_0.Version()) }

// require answers a group 0 RPC on a node without group 0 as an old binary
// would: Unimplemented.
func (m *Member) require() error {
	if m.Enabled() {
		return nil
	}
	return status.Errorf(codes.Unimplemented, "unknown method for service kvnode.Node (release %s has no group 0)", m.cfg.Binary)
}

// State returns this node's group 0 upgrade state.
func (m *Member) State() group0.State {
	m.stMu.Lock()
	defer m.stMu.Unlock()
	if m.state == "" {
		return group0.UsePreRaft
	}
	return m.state
}

func (m *Member) stateAndChan() (group0.State, <-chan struct{}) {
	m.stMu.Lock()
	defer m.stMu.Unlock()
	if m.changed == nil {
		m.changed = make(chan struct{})
	}
	if m.state == "" {
		return group0.UsePreRaft, m.changed
	}
	return m.state, m.changed
}

func (m *Member) setMemState(st group0.State) {
	m.stMu.Lock()
	defer m.stMu.Unlock()
	if m.state == st {
		return
	}
	m.state = st
	if m.changed != nil {
		close(m.changed)
	}
	m.changed = make(chan struct{})
}

// Replica returns this node's group 0 replica (nil if it runs none).
func (m *Member) Replica() *kv.Replica { return m.rep.Load() }

// Transport returns the transport the kvnode.Group0 service delivers to
// (nil while no replica runs).
func (m *Member) Transport() *kv.Transport { return m.tr.Load() }

// Generation is the generation of the running replica (0: none).
func (m *Member) Generation() uint64 { return m.gen.Load() }

// Isolated reports whether the replica runs cut off (recovery mode).
func (m *Member) Isolated() bool { return m.isolated.Load() }

// CatalogStateID is the group 0 state the SQL catalog reflects.
func (m *Member) CatalogStateID() uint64 { return m.catalogStateID.Load() }

// JoinedFresh marks a process that joined an existing cluster with an
// empty store: it joins group 0 by itself if group 0 exists.
func (m *Member) JoinedFresh() { m.fresh.Store(true) }

func (m *Member) setWaiting(msg string) {
	if msg == "" {
		m.waiting.Store(nil)
		return
	}
	m.waiting.Store(&msg)
}

func (m *Member) waitingFor() string {
	if p := m.waiting.Load(); p != nil {
		return *p
	}
	return ""
}

func (m *Member) bumpCatalogStateID(id uint64) {
	for {
		cur := m.catalogStateID.Load()
		if id <= cur || m.catalogStateID.CompareAndSwap(cur, id) {
			return
		}
	}
}

func (m *Member) dir() string { return filepath.Join(m.cfg.Store, "group0") }

func (m *Member) timeout() time.Duration {
	if m.cfg.Timeout > 0 {
		return m.cfg.Timeout
	}
	return 10 * time.Second
}

func (m *Member) upgraded() bool { return clusterversion.IsActive(m.node, clusterversion.V2_0) }

// setState persists a new upgrade state, then acts on it. It waits for
// running pre-Raft DDL to finish (the gate) and refuses a transition the
// state machine forbids (group0.CheckTransition).
func (m *Member) setState(to group0.State, fromRecovery bool) error {
	m.gate.Lock()
	defer m.gate.Unlock()
	from := m.State()
	if err := group0.CheckTransition(from, to, fromRecovery); err != nil {
		return err
	}
	// Persist even when from == to: the stored value may be garbage that
	// reads as recovery.
	if err := group0.SaveState(m.cfg.Local, to); err != nil {
		return err
	}
	if from != to {
		m.setMemState(to)
		m.log.Info("group 0 upgrade state changed", "from", string(from), "to", string(to))
	}
	return nil
}

// Leave takes this node out of group 0 for a downgrade to 1.1
// (migrations/DESIGN.md): it moves to use_pre_raft_procedures (waiting for
// its running pre-Raft DDL, as any transition), brings its catalog up to
// what its replica has applied, then stops the replica and wipes its store.
// Idempotent; a node in recovery refuses. The caller has deleted the
// formation record first, so that nothing prepares a replica here again.
func (m *Member) Leave(ctx context.Context) error {
	if err := m.require(); err != nil {
		return err
	}
	m.gate.Lock()
	from := m.State()
	err := group0.CheckLeave(from)
	if err == nil {
		err = group0.SaveState(m.cfg.Local, group0.UsePreRaft)
	}
	if err == nil && from != group0.UsePreRaft {
		m.setMemState(group0.UsePreRaft)
		m.log.Info("group 0 upgrade state changed for a downgrade", "from", string(from), "to", string(group0.UsePreRaft))
	}
	m.gate.Unlock()
	if err != nil {
		return err
	}
	if err := m.CatchUpCatalog(); err != nil {
		return errors.Wrap(err, "bringing the catalog up to group 0's state before leaving it")
	}
	m.mu.Lock()
	had := m.rep.Load() != nil
	err = m.wipeLocked()
	m.mu.Unlock()
	if err == nil && had {
		m.log.Info("left group 0 for a downgrade: its replica is stopped and its store wiped")
	}
	return err
}

// InGroup0 reports whether this node runs a group 0 replica.
func (m *Member) InGroup0() bool { return m.rep.Load() != nil }

// EnterRecovery is UPDATE system.local SET value = 'recovery' WHERE key =
// 'group0_upgrade_state': it persists the state and stops DDL on this node
// at once. Like ScyllaDB, the node is then restarted, after which its group
// 0 replica (if any) runs isolated.
func (m *Member) EnterRecovery() error {
	if err := m.setState(group0.Recovery, false); err != nil {
		return err
	}
	m.log.Warn("this node entered group 0 recovery mode: DDL is refused; restart the node, then follow docs/recovery.md",
		"node", m.node.NodeID())
	return nil
}

// every runs f every d until the node stops (the first run after d).
func (m *Member) every(d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-m.cfg.Stopper.ShouldQuiesce():
			return
		case <-t.C:
		}
		f()
	}
}

// stopCtx returns a context that ends after d or when the node stops.
func (m *Member) stopCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return m.cfg.Stopper.WithTimeout(d)
}

func (m *Member) catalog() Catalog { return m.node.Catalog() }
