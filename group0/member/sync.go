package member

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
)

// SyncSchema implements group0.Cluster: the schema synchronization of the
// upgrade. It pulls the catalogs of ids, merges them with group 0's schema
// by the pre-Raft rule (per table, the highest modification time wins,
// tombstones included), commits what group 0 lacks in one change
// conditional on the state it read, then has each node apply group 0's
// state and checks that every digest equals the merged schema's. It loops
// (bounded) until they agree. Every node in ids is in synchronize, so no
// pre-Raft schema change can appear behind the merge.
func (c Cluster) SyncSchema(ctx context.Context, ids []nodeid.ID) error {
	m := c.m
	self := m.node.NodeID()
	rep := m.rep.Load()
	if rep == nil || m.isolated.Load() {
		return errors.Newf("the coordinator (node %d) is not a member of group 0", self)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rctx, cancel := context.WithTimeout(ctx, m.timeout())
		snap, err := group0.Read(rctx, rep)
		cancel()
		if err != nil {
			return errors.Wrap(err, "reading group 0's schema")
		}
		current, err := decodeDescriptors(snap.Tables)
		if err != nil {
			return err
		}
		merged := map[string]catalog.TableDescriptor{}
		for _, d := range current {
			merged[d.Key()] = d
		}
		changed := map[string][]byte{}
		for _, id := range ids {
			descs, err := m.pullSchema(ctx, id)
			if err != nil {
				return errors.Wrapf(err, "pulling the schema of node %d", id)
			}
			for _, d := range descs {
				if cur, ok := merged[d.Key()]; ok && !cur.ModTime.Less(d.ModTime) {
					continue
				}
				merged[d.Key()] = d
				b, err := json.Marshal(d)
				if err != nil {
					return err
				}
				changed[d.Key()] = b
			}
		}
		target := snap.StateID
		if len(changed) > 0 {
			ch := group0.Change{ID: newChangeID(), Tables: changed, NodeID: self, Time: time.Now(),
				Description: fmt.Sprintf("upgrade schema sync: merged the pre-Raft schema of node(s) %v", ids)}
			cctx, cancel := context.WithTimeout(ctx, m.timeout())
			target, err = group0.Commit(cctx, rep, snap.StateID, ch)
			cancel()
			if errors.Is(err, group0.ErrConflict) {
				lastErr = err
				continue
			}
			if err != nil {
				return errors.Wrap(err, "committing the merged schema to group 0")
			}
			m.log.Info("group 0 upgrade: merged pre-Raft schema into group 0", "tables", len(changed), "state_id", target)
		}
		all := make([]catalog.TableDescriptor, 0, len(merged))
		for _, d := range merged {
			all = append(all, d)
		}
		want, err := schemaDigest(all)
		if err != nil {
			return err
		}
		if hook := m.cfg.Knobs.BeforeSchemaCheck; hook != nil {
			hook(ctx)
		}
		var differ []string
		for _, id := range ids {
			var resp *nodeapi.Group0SyncResponse
			var err error
			req := &nodeapi.Group0SyncRequest{StateID: target}
			if id == self {
				if resp, err = m.Group0Sync(ctx, req); err != nil {
					return err
				}
			} else if resp, err = callNode(ctx, m, id, 15*time.Second, m.cfg.Client.Group0Sync, req); err != nil {
				return errors.Wrapf(err, "node %d applying group 0's schema", id)
			}
			if !inSync(*resp, target, want) {
				differ = append(differ, fmt.Sprintf("node %d has digest %s", id, resp.Digest))
			}
		}
		if len(differ) == 0 {
			return nil
		}
		lastErr = errors.Newf("schema digests differ from group 0's (%s): %v", want, differ)
	}
	return errors.Wrap(lastErr, "the schema did not converge")
}

// inSync reports whether a node's Group0Sync answer shows its catalog
// holding exactly group 0's schema at a state at or after target (so
// nothing of its pre-Raft schema is missing from group 0). A node that
// compared itself with its group 0 replica says so; for one that predates
// that, its digest must equal want, the merge's.
func inSync(resp nodeapi.Group0SyncResponse, target uint64, want string) bool {
	if resp.Group0Digest != "" {
		return resp.Group0StateID >= target && resp.Digest == resp.Group0Digest
	}
	return resp.Digest == want
}

// pullSchema fetches node id's catalog (every descriptor, tombstones too).
func (m *Member) pullSchema(ctx context.Context, id nodeid.ID) ([]catalog.TableDescriptor, error) {
	if id == m.node.NodeID() {
		cat := m.catalog()
		if cat == nil {
			return nil, errSQLNotStarted
		}
		return cat.All(), nil
	}
	resp, err := callNode(ctx, m, id, 10*time.Second, m.cfg.Client.SchemaPull, &nodeapi.Empty{})
	if err != nil {
		return nil, err
	}
	return resp.Descriptors, nil
}

// schemaDigest is the catalog digest of a set of descriptors: what a node's
// catalog reports once it holds exactly these.
func schemaDigest(descs []catalog.TableDescriptor) (string, error) {
	c, err := catalog.New(&memLocalStore{m: map[string][]byte{}}, nil)
	if err != nil {
		return "", err
	}
	if _, err := c.Merge(descs); err != nil {
		return "", err
	}
	return c.Digest(), nil
}

// memLocalStore is an in-memory catalog.LocalStore, for schemaDigest.
type memLocalStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memLocalStore) Get(key []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[string(key)]
	return v, ok, nil
}

func (m *memLocalStore) Put(key, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[string(key)] = append([]byte(nil), value...)
	return nil
}

func (m *memLocalStore) Scan(prefix []byte) ([]kvpb.KeyValue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []kvpb.KeyValue
	for k, v := range m.m {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			out = append(out, kvpb.KeyValue{Key: []byte(k), Value: v})
		}
	}
	slices.SortFunc(out, func(a, b kvpb.KeyValue) int { return compareBytes(a.Key, b.Key) })
	return out, nil
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

// newChangeID is a random (version 4) UUID naming one group 0 change.
func newChangeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
