package member

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// fakeNode is a node that has not joined: no replica, no peers, no SQL.
type fakeNode struct{ active clusterversion.Version }

func (f fakeNode) ActiveVersion() clusterversion.Version { return f.active }
func (fakeNode) NodeID() nodeid.ID                       { return 1 }
func (fakeNode) ClusterID() string                       { return "c" }
func (fakeNode) Replica() *kv.Replica                    { return nil }
func (fakeNode) LiveReplica() *kv.Replica                { return nil }
func (fakeNode) Ready() error                            { return nil }
func (fakeNode) Resolve(nodeid.ID) (string, bool)        { return "", false }
func (fakeNode) NodeRecords() map[nodeid.ID]nodeapi.NodeRecord {
	return nil
}
func (fakeNode) NodeStatuses(context.Context) ([]nodeapi.NodeStatus, error) { return nil, nil }
func (fakeNode) Gossiped(nodeid.ID) (string, bool, bool)                    { return "", false, false }
func (fakeNode) AllowPromote(nodeid.ID) bool                                { return false }
func (fakeNode) Catalog() Catalog                                           { return nil }

type fakeStopper struct{ c chan struct{} }

func (s fakeStopper) ShouldQuiesce() <-chan struct{} { return s.c }
func (fakeStopper) RunAsync(f func())                { go f() }
func (s fakeStopper) WithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-s.c:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(k []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(k)]
	return v, ok, nil
}

func (s *memStore) Put(k, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(k)] = v
	return nil
}

func newTestMember(t *testing.T, active clusterversion.Version) (*Member, *memStore) {
	t.Helper()
	st := &memStore{m: map[string][]byte{}}
	m := New(Config{Node: fakeNode{active: active}, Stopper: fakeStopper{c: make(chan struct{})}, Store: t.TempDir(),
		Local: st, Binary: clusterversion.V2_0.Version(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return m, st
}

// TestStateGate: pre-Raft DDL holds the gate for its whole run, so a state
// change (here into synchronize) cannot happen while it runs; once it ends
// the change is persisted before the new state shows.
func TestStateGate(t *testing.T) {
	m, st := newTestMember(t, clusterversion.V1_1.Version())
	txn, release, err := m.BeginDDL(context.Background())
	if err != nil || txn != nil {
		t.Fatalf("pre-Raft DDL: txn %v, err %v; want the pre-Raft procedure", txn, err)
	}
	if m.gate.TryLock() {
		t.Fatal("a state change could start while pre-Raft DDL runs")
	}
	release()
	if err := m.setState(group0.Synchronize, false); err != nil {
		t.Fatal(err)
	}
	if got, _, _, _ := group0.LoadState(st); got != group0.Synchronize || m.State() != group0.Synchronize {
		t.Fatalf("stored %s, in memory %s; want synchronize", got, m.State())
	}
	if err := m.setState(group0.UsePreRaft, false); !errors.Is(err, group0.ErrBackwards) {
		t.Fatalf("going back to use_pre_raft_procedures: %v, want ErrBackwards", err)
	}
}

// TestRecoveryRefusesDDL: a node that entered recovery refuses DDL with
// 55000 and a hint naming the runbook, and stays there until the recovery
// procedure moves it.
func TestRecoveryRefusesDDL(t *testing.T) {
	m, st := newTestMember(t, clusterversion.V2_0.Version())
	if err := m.EnterRecovery(); err != nil {
		t.Fatal(err)
	}
	if got, _, _, _ := group0.LoadState(st); got != group0.Recovery {
		t.Fatalf("stored %s, want recovery", got)
	}
	_, _, err := m.BeginDDL(context.Background())
	if code := pgerror.GetCode(err); code != pgerror.CodeObjectNotInPrerequisiteState {
		t.Fatalf("DDL in recovery: %v (SQLSTATE %s), want 55000", err, code)
	}
	if hints := errors.GetAllHints(err); len(hints) == 0 {
		t.Fatalf("DDL in recovery: no hint in %v", err)
	}
	if err := m.setState(group0.UsePostRaft, false); !errors.Is(err, group0.ErrBackwards) {
		t.Fatalf("leaving recovery by itself: %v, want ErrBackwards", err)
	}
	if err := m.setState(group0.UsePostRaft, true); err != nil {
		t.Fatalf("leaving recovery through the recovery procedure: %v", err)
	}
}

func TestInSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp nodeapi.Group0SyncResponse
		want bool
	}{
		{"compared with its replica, equal, at target", nodeapi.Group0SyncResponse{Digest: "a", Group0Digest: "a", Group0StateID: 5}, true},
		{"compared with its replica, equal, past target", nodeapi.Group0SyncResponse{Digest: "a", Group0Digest: "a", Group0StateID: 7}, true},
		{"compared with its replica, before target", nodeapi.Group0SyncResponse{Digest: "a", Group0Digest: "a", Group0StateID: 4}, false},
		{"compared with its replica, differs", nodeapi.Group0SyncResponse{Digest: "a", Group0Digest: "b", Group0StateID: 5}, false},
		{"older node, digest of the merge", nodeapi.Group0SyncResponse{Digest: "want"}, true},
		{"older node, other digest", nodeapi.Group0SyncResponse{Digest: "a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inSync(tc.resp, 5, "want"); got != tc.want {
				t.Errorf("inSync = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestForEachNode: one failure comes back whole (marks and hint kept),
// several in one message that keeps every hint once.
func TestForEachNode(t *testing.T) {
	sentinel := errors.New("sentinel")
	one := forEachNode([]nodeid.ID{1, 2}, func(id nodeid.ID) error {
		if id == 2 {
			return errors.WithHint(errors.Mark(errors.New("down"), sentinel), "start it")
		}
		return nil
	})
	if !errors.Is(one, sentinel) || one.Error() != "node 2: down" || len(errors.GetAllHints(one)) != 1 {
		t.Fatalf("one failure: %q (hints %q)", one, errors.GetAllHints(one))
	}
	several := forEachNode([]nodeid.ID{1, 2, 3}, func(id nodeid.ID) error {
		return errors.WithHint(errors.Newf("down %d", id), "start it")
	})
	if several.Error() != "node 1: down 1; node 2: down 2; node 3: down 3" {
		t.Fatalf("several failures: %q", several)
	}
	if hints := errors.GetAllHints(several); len(hints) != 1 || hints[0] != "start it" {
		t.Fatalf("several failures: hints %q, want one", hints)
	}
	if err := forEachNode([]nodeid.ID{1}, func(nodeid.ID) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaDigest: the digest of a set of descriptors is what a catalog
// holding exactly them reports, whatever order they come in (tombstones
// here: the merge keeps them, and a valid live table needs a whole schema).
func TestSchemaDigest(t *testing.T) {
	a := catalog.TableDescriptor{Name: "a", ID: 101, ModTime: catalog.Timestamp{WallTime: 1, NodeID: 1}, Dropped: true}
	b := catalog.TableDescriptor{Name: "b", ID: 102, ModTime: catalog.Timestamp{WallTime: 2, NodeID: 1}, Dropped: true}
	d1, err := schemaDigest([]catalog.TableDescriptor{a, b})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := schemaDigest([]catalog.TableDescriptor{b, a})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := schemaDigest(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || d1 == empty {
		t.Fatalf("digests %s, %s (empty %s): want equal and not empty's", d1, d2, empty)
	}
}
