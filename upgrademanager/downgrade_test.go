package upgrademanager

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// TestDowngradeWalksDownOneRelease: 1.1 -> 1.0 lowers every step in
// reverse order, each persisted on every node before it is recorded; a
// step's migration is forgotten before the step is lowered, its "after"
// down-migration runs once the step below is recorded and before the next
// one is persisted; the record and the preserve option are set first, and
// the record is gone at the end with the preserve option still set.
func TestDowngradeWalksDownOneRelease(t *testing.T) {
	ctx := context.Background()
	c := newFakeCluster(3, "1.1", "1.1")
	m := newManager(c)
	if err := m.Downgrade(ctx, ver("1.0")); err != nil {
		t.Fatal(err)
	}
	lowered := []string{"1.1", "1.1-step.2", "1.1-step.1"}
	persisted := []string{"1.1-step.2", "1.1-step.1", "1.0"}
	prev := -1
	for i, s := range lowered {
		forget := index(t, c.events, "forget "+s)
		rec := index(t, c.events, "record "+persisted[i])
		if forget < prev || forget > rec {
			t.Fatalf("%s's migration forgotten outside its turn: %v", s, c.events)
		}
		for id := 1; id <= 3; id++ {
			p := index(t, c.events, fmt.Sprintf("persist n%d %s", id, persisted[i]))
			if p < forget || p > rec {
				t.Fatalf("%s persisted on n%d outside its turn: %v", persisted[i], id, c.events)
			}
		}
		prev = rec
	}
	down := index(t, c.events, "down 1.1-step.2")
	if down < index(t, c.events, "record 1.1-step.1") || down > index(t, c.events, "persist n1 1.0") {
		t.Fatalf("the row rewrite to v1 ran outside its turn: %v", c.events)
	}
	for id := nodeid.ID(1); id <= 3; id++ {
		if c.persisted[id] != ver("1.0") {
			t.Fatalf("node %d persisted %s", id, c.persisted[id])
		}
	}
	if rv, _ := m.ReplicatedVersion(ctx); rv != ver("1.0") {
		t.Fatalf("replicated version %s", rv)
	}
	if _, found, _ := c.db.Get(ctx, keys.DowngradeKey()); found {
		t.Fatal("the downgrade record is still there")
	}
	if v, _, _ := c.db.Get(ctx, keys.SettingKey("cluster.preserve_downgrade_option")); string(v) != "1.0" {
		t.Fatalf("preserve option %q, want 1.0", v)
	}
	// Up again (the fake reports no preserve option, as after a RESET):
	// the migration runs again, and the down-migration is forgotten before
	// its step is raised, so the next downgrade runs it again too.
	c.events = nil
	if err := m.Migrate(ctx, ver("1.1")); err != nil {
		t.Fatal(err)
	}
	if f, p := index(t, c.events, "forget down 1.1-step.2"), index(t, c.events, "persist n1 1.1-step.2"); f > p {
		t.Fatalf("the down-migration was forgotten after its step was raised: %v", c.events)
	}
	index(t, c.events, "migrate 1.1-step.2")
}

// TestDowngradeRefusals: only the release just below, with every node live
// and on a binary that runs it; another target while one is under way; a
// finalization while one is under way.
func TestDowngradeRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, active, binary, target string
		prep                         func(c *fakeCluster)
		want                         error
	}{
		{"two releases down", "2.0", "2.0", "1.0", nil, autoupgrade.ErrDowngradeTarget},
		{"not down", "1.1", "1.1", "1.1", nil, autoupgrade.ErrDowngradeTarget},
		{"the first release", "1.0", "1.0", "1.0", nil, autoupgrade.ErrDowngradeTarget},
		{"not on the ladder", "1.1", "1.1", "0.9", nil, clusterversion.ErrUnknownVersion},
		{"a binary too new", "2.0", "2.1", "1.1", nil, autoupgrade.ErrBinaryTooNew},
		{"a dead node", "1.1", "1.1", "1.0", func(c *fakeCluster) { c.dead = map[nodeid.ID]bool{2: true} }, autoupgrade.ErrNodeNotLive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(3, tc.active, tc.binary)
			if tc.prep != nil {
				tc.prep(c)
			}
			m := newManager(c)
			err := m.Downgrade(ctx, ver(tc.target))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(errors.GetAllHints(err)) == 0 {
				t.Errorf("no hint in %v", err)
			}
			if _, found, _ := c.db.Get(ctx, keys.DowngradeKey()); found {
				t.Fatal("a refused downgrade left its record")
			}
			for id, v := range c.persisted {
				if v != ver(tc.active) {
					t.Fatalf("a refused downgrade moved node %d to %s", id, v)
				}
			}
		})
	}
}

// TestDowngradeResumesAfterAStop: a coordinator that stops at any step
// leaves the record; a finalization is refused meanwhile, a downgrade to
// another version too; the next call (any node's) completes it, running
// each down-migration once more at most.
func TestDowngradeResumesAfterAStop(t *testing.T) {
	ctx := context.Background()
	for stopAt := 1; stopAt <= 3; stopAt++ {
		t.Run(fmt.Sprint("stop at step ", stopAt), func(t *testing.T) {
			c := newFakeCluster(3, "1.1", "1.1")
			m := newManager(c)
			n := 0
			m.cfg.BeforeStep = func(clusterversion.Version) error {
				if n++; n == stopAt {
					return errors.New("coordinator stopped")
				}
				return nil
			}
			if err := m.Downgrade(ctx, ver("1.0")); err == nil {
				t.Fatal("the stop did not stop it")
			}
			if d, ok, err := m.Downgrading(ctx); err != nil || !ok || d != ver("1.0") {
				t.Fatalf("Downgrading = %s %v %v", d, ok, err)
			}
			if err := m.Migrate(ctx, ver("1.1")); !errors.Is(err, autoupgrade.ErrDowngradeInProgress) {
				t.Fatalf("a finalization during the downgrade: %v", err)
			}
			if err := m.Downgrade(ctx, ver("0.9")); err == nil {
				t.Fatal("a downgrade to another version was accepted")
			}
			m.cfg.BeforeStep = nil
			if err := m.Downgrade(ctx, ver("1.0")); err != nil {
				t.Fatal(err)
			}
			if rv, _ := m.ReplicatedVersion(ctx); rv != ver("1.0") {
				t.Fatalf("replicated version %s", rv)
			}
			for id, v := range c.persisted {
				if v != ver("1.0") {
					t.Fatalf("node %d at %s", id, v)
				}
			}
			runs := 0
			for _, e := range c.events {
				if e == "down 1.1-step.2" {
					runs++
				}
			}
			if runs < 1 || runs > 2 {
				t.Fatalf("the down-migration ran %d times: %v", runs, c.events)
			}
		})
	}
}
