package upgrademanager

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
	"github.com/kvnode/kvnode/sql/sqltest"
)

func ver(s string) clusterversion.Version {
	v, err := clusterversion.Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// fakeCluster is a cluster of nodes that persist what they are told, in
// memory; node 1 coordinates. It records every event in order.
type fakeCluster struct {
	mu        sync.Mutex
	persisted map[nodeid.ID]clusterversion.Version
	binary    map[nodeid.ID]clusterversion.Version
	// down nodes fail PersistVersion; dead ones are also reported not live.
	down map[nodeid.ID]bool
	dead map[nodeid.ID]bool
	// onRelist, if set, runs at each Nodes call (a node joining).
	onRelist func(c *fakeCluster)
	events   []string
	// db is the manager's store: Input reads the downgrade record there.
	db kvpb.DB
}

func newFakeCluster(n int, active, binary string) *fakeCluster {
	c := &fakeCluster{persisted: map[nodeid.ID]clusterversion.Version{}, binary: map[nodeid.ID]clusterversion.Version{}, down: map[nodeid.ID]bool{}}
	for id := nodeid.ID(1); id <= nodeid.ID(n); id++ {
		c.persisted[id], c.binary[id] = ver(active), ver(binary)
	}
	return c
}

func (c *fakeCluster) nodesLocked() []autoupgrade.Node {
	var out []autoupgrade.Node
	for id := range c.persisted {
		out = append(out, autoupgrade.Node{ID: id, Address: fmt.Sprintf("n%d", id), BinaryVersion: c.binary[id],
			Live: !c.dead[id], Membership: autoupgrade.Active, Persisted: c.persisted[id]})
	}
	slices.SortFunc(out, func(a, b autoupgrade.Node) int { return int(a.ID - b.ID) })
	return out
}

func (c *fakeCluster) Input(ctx context.Context) (autoupgrade.Input, error) {
	var downgrading clusterversion.Version
	if c.db != nil {
		if raw, found, _ := c.db.Get(ctx, keys.DowngradeKey()); found {
			var rec DowngradeRecord
			_ = json.Unmarshal(raw, &rec)
			downgrading = ver(rec.Target)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return autoupgrade.Input{Active: c.persisted[1], Nodes: c.nodesLocked(), AutoUpgradeEnabled: true, Host: "n1",
		Downgrading: downgrading}, nil
}

func (c *fakeCluster) Nodes(context.Context) ([]autoupgrade.Node, error) {
	if c.onRelist != nil {
		c.onRelist(c)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodesLocked(), nil
}

func (c *fakeCluster) PersistVersion(_ context.Context, n autoupgrade.Node, v clusterversion.Version, lower bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[n.ID] {
		return errors.New("unreachable")
	}
	if c.persisted[n.ID].Less(v) != lower && c.persisted[n.ID] != v {
		c.persisted[n.ID] = v
	}
	c.events = append(c.events, fmt.Sprintf("persist n%d %s", n.ID, v))
	return nil
}

func (c *fakeCluster) ResetPreserveDowngrade(context.Context) error { return nil }

func (c *fakeCluster) PreserveOps(v clusterversion.Version) ([]kvpb.Op, error) {
	return []kvpb.Op{{Kind: kvpb.OpPut, Key: keys.SettingKey("cluster.preserve_downgrade_option"), Value: []byte(v.String())}}, nil
}

func (c *fakeCluster) record(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

// fakeMigrations records the migrations run, as events of the cluster.
type fakeMigrations struct{ c *fakeCluster }

func (m fakeMigrations) Has(v clusterversion.Version) bool {
	return v == clusterversion.V1_1WriteV2.Version()
}

func (m fakeMigrations) Run(_ context.Context, v clusterversion.Version) error {
	m.c.record("migrate " + v.String())
	return nil
}

// DownWhen: the two down-migrations of the real registry, both after.
func (m fakeMigrations) DownWhen(v clusterversion.Version) (after, ok bool) {
	has := v == clusterversion.V1_1WriteV2.Version() || v == clusterversion.V2_1TxnStamps.Version()
	return has, has
}

func (m fakeMigrations) RunDown(_ context.Context, v clusterversion.Version) error {
	m.c.record("down " + v.String())
	return nil
}

func (m fakeMigrations) Check(_ context.Context, v clusterversion.Version, down bool) (StepCheck, bool, error) {
	if down {
		after, ok := m.DownWhen(v)
		return StepCheck{Detail: fmt.Sprintf("down check of %s (after: %v)", v, after)}, ok, nil
	}
	return StepCheck{Detail: "check of " + v.String()}, m.Has(v), nil
}

func (m fakeMigrations) Refusals(context.Context, clusterversion.Version) ([]PlanBlocker, error) {
	return nil, nil
}

func (m fakeMigrations) Forget(_ context.Context, v clusterversion.Version, down bool) error {
	if down {
		m.c.record("forget down " + v.String())
	} else {
		m.c.record("forget " + v.String())
	}
	return nil
}

// recordingDB records every write of the version key as an event.
type recordingDB struct {
	*sqltest.MemDB
	c *fakeCluster
}

func (d recordingDB) Write(ctx context.Context, ops []kvpb.Op) error {
	err := d.MemDB.Write(ctx, ops)
	for _, op := range ops {
		if err == nil && string(op.Key) == string(keys.ClusterVersionKey()) {
			d.c.record("record " + string(op.Value))
		}
	}
	return err
}

func newManager(c *fakeCluster) *Manager {
	db := recordingDB{sqltest.NewMemDB(), c}
	c.db = db
	// As bootstrap leaves it: the version key holds the initial version.
	if err := db.MemDB.Write(context.Background(), []kvpb.Op{{Kind: kvpb.OpPut, Key: keys.ClusterVersionKey(), Value: []byte(c.persisted[1].String())}}); err != nil {
		panic(err)
	}
	return New(Config{Cluster: c, DB: func() kvpb.DB { return db },
		Local: func() clusterversion.Version {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.persisted[1]
		},
		Migrations: fakeMigrations{c}})
}

// index returns the position of event e, failing the test if it is absent.
func index(t *testing.T, events []string, e string) int {
	t.Helper()
	i := slices.Index(events, e)
	if i < 0 {
		t.Fatalf("no event %q in %v", e, events)
	}
	return i
}

// TestMigrateWalksTheLadder: every step is persisted on every node before
// it is recorded, and a step's migration runs after it is recorded and
// before the next step.
func TestMigrateWalksTheLadder(t *testing.T) {
	c := newFakeCluster(3, "1.0", "1.1")
	m := newManager(c)
	if err := m.Migrate(context.Background(), ver("1.1")); err != nil {
		t.Fatal(err)
	}
	steps := clusterversion.Between(ver("1.0"), ver("1.1"))
	prevRecord := -1
	for _, s := range steps {
		rec := index(t, c.events, "record "+s.String())
		if rec < prevRecord {
			t.Fatalf("step %s recorded out of order: %v", s, c.events)
		}
		for id := 1; id <= 3; id++ {
			if p := index(t, c.events, fmt.Sprintf("persist n%d %s", id, s)); p > rec || p < prevRecord {
				t.Fatalf("step %s persisted on n%d outside its turn: %v", s, id, c.events)
			}
		}
		if s == clusterversion.V1_1WriteV2.Version() {
			if mi := index(t, c.events, "migrate "+s.String()); mi < rec {
				t.Fatalf("the migration of %s ran before the step was recorded: %v", s, c.events)
			}
		}
		prevRecord = rec
	}
	if rv, err := m.ReplicatedVersion(context.Background()); err != nil || rv != ver("1.1") {
		t.Fatalf("replicated version %s %v", rv, err)
	}
}

// TestJoinerDuringStepIsPersistedBeforeRecording (issue 16, D1): a node
// that joins after a step's node list was read, with the version of its
// join, is found by the re-listing and persists the step before the step
// is recorded.
func TestJoinerDuringStepIsPersistedBeforeRecording(t *testing.T) {
	c := newFakeCluster(3, "1.0", "1.1")
	steps := clusterversion.Between(ver("1.0"), ver("1.1"))
	before := steps[len(steps)-2]
	joined := false
	c.onRelist = func(c *fakeCluster) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !joined && c.persisted[1] == ver("1.1") {
			joined = true
			c.persisted[4], c.binary[4] = before, ver("1.1")
		}
	}
	m := newManager(c)
	if err := m.Migrate(context.Background(), ver("1.1")); err != nil {
		t.Fatal(err)
	}
	if !joined {
		t.Fatal("node 4 never joined")
	}
	if p, r := index(t, c.events, "persist n4 1.1"), index(t, c.events, "record 1.1"); p > r {
		t.Fatalf("1.1 was recorded before the joiner persisted it: %v", c.events)
	}
	if c.persisted[4] != ver("1.1") {
		t.Fatalf("the joiner is at %s", c.persisted[4])
	}
}

// TestUnreachableNodeStopsTheStep: a node that cannot persist a step
// stops the migration before the step is recorded (ErrStepNotPersisted);
// the next call, once the node is back, redoes the step and finishes.
func TestUnreachableNodeStopsTheStep(t *testing.T) {
	c := newFakeCluster(3, "1.0", "1.1")
	c.down[3] = true
	m := newManager(c)
	err := m.Migrate(context.Background(), ver("1.1"))
	if !errors.Is(err, ErrStepNotPersisted) {
		t.Fatalf("with node 3 down: %v, want ErrStepNotPersisted", err)
	}
	if rv, _ := m.ReplicatedVersion(context.Background()); rv != ver("1.0") {
		t.Fatalf("a step no node 3 persisted was recorded: %s", rv)
	}
	fence := clusterversion.Between(ver("1.0"), ver("1.1"))[0]
	if c.persisted[1] != fence {
		t.Fatalf("node 1 persisted %s, want the fence %s", c.persisted[1], fence)
	}
	c.mu.Lock()
	c.down[3] = false
	c.mu.Unlock()
	if err := m.Migrate(context.Background(), ver("1.1")); err != nil {
		t.Fatal(err)
	}
	for id := nodeid.ID(1); id <= 3; id++ {
		if c.persisted[id] != ver("1.1") {
			t.Fatalf("node %d at %s", id, c.persisted[id])
		}
	}
}
