package member

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/storage"
)

// The replica's lifecycle: a second kv.Replica on a second Pebble engine in
// <store>/group0, with its own transport (gRPC service kvnode.Group0,
// cluster ID "<cluster>/g0/<generation>"). Callers of the ...Locked
// methods hold m.mu.

// genKey is the local key, in the group 0 engine, of the generation the
// engine's Raft state belongs to.
var genKey = []byte("group0/generation")

func (m *Member) openEngineLocked() error {
	if m.eng != nil {
		return nil
	}
	eng, err := storage.Open(m.dir(), storage.Options{CacheSize: 8 << 20})
	if err != nil {
		return errors.Wrap(err, "opening the group 0 store")
	}
	m.eng = eng
	return nil
}

func (m *Member) storedGenLocked() (uint64, error) {
	b, found, err := m.eng.Local().Get(genKey)
	if err != nil || !found {
		return 0, err
	}
	gen, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, errors.Newf("corrupt group 0 generation %q in %s", b, m.dir())
	}
	return gen, nil
}

func (m *Member) startReplicaLocked(gen uint64, isolated bool) error {
	id := m.node.NodeID()
	cid := group0.TransportClusterID(m.node.ClusterID(), gen)
	if isolated {
		cid += fmt.Sprintf("/isolated/%d", id)
	}
	log := m.log.With("node", id, "group", "group0")
	tr := kv.NewTransport(cid, id, m.node.Resolve, m.cfg.Pool, log)
	tr.SetService(group0.ServiceName)
	rep, err := kv.NewReplica(kv.Config{
		Engine: m.eng, NodeID: id, Transport: tr, Logger: log,
		TickInterval: m.cfg.TickInterval, Promote: m.node.AllowPromote,
		// Group 0 holds descriptors and a few records, written and read
		// rarely: small bounds for both caches.
		RowCacheBytes: 1 << 20, ReadCacheBytes: 1 << 20,
	})
	if err != nil {
		tr.Close()
		return errors.Wrap(err, "starting the group 0 replica")
	}
	m.rep.Store(rep)
	m.tr.Store(tr)
	m.gen.Store(gen)
	m.isolated.Store(isolated)
	if isolated {
		m.log.Info("group 0 replica runs isolated (recovery mode)", "generation", gen)
	} else {
		m.log.Info("group 0 replica started", "generation", gen)
	}
	return nil
}

func (m *Member) stopReplicaLocked() {
	tr := m.tr.Swap(nil)
	if rep := m.rep.Swap(nil); rep != nil {
		rep.Stop()
	}
	if tr != nil {
		tr.Close()
	}
	m.gen.Store(0)
	m.isolated.Store(false)
}

func (m *Member) wipeLocked() error {
	m.stopReplicaLocked()
	if m.eng != nil {
		if err := m.eng.Close(); err != nil {
			m.log.Warn("closing the group 0 store before wiping it", "err", err)
		}
		m.eng = nil
	}
	m.catalogStateID.Store(0)
	return errors.Wrap(wipeDir(m.dir()), "wiping the group 0 store")
}

// wipeDir removes the store directory dir so that a crash at any point
// leaves either the whole store or none of it: dir is first renamed (one
// atomic step, made durable by syncing the parent) to a name that marks it
// for deletion, then deleted. A crash during the deletion leaves only the
// marked directory, which removeWiped deletes at the next start; a
// half-deleted Pebble store under dir's own name would refuse to open.
func wipeDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	doomed := fmt.Sprintf("%s%s%d", dir, wipedSuffix, time.Now().UnixNano())
	if err := os.Rename(dir, doomed); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return os.RemoveAll(doomed)
}

// wipedSuffix marks a directory that wipeDir renamed for deletion.
const wipedSuffix = ".wiped-"

// removeWiped deletes what an interrupted wipeDir of dir left behind.
func removeWiped(dir string) error {
	left, err := filepath.Glob(dir + wipedSuffix + "*")
	if err != nil {
		return err
	}
	for _, d := range left {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Close stops the replica and closes group 0's engine. The node calls it
// once the goroutines that read them have ended.
func (m *Member) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopReplicaLocked()
	if m.eng != nil {
		_ = m.eng.Close()
		m.eng = nil
	}
}

// bootstrapLocked wipes whatever group 0 state this node has and creates
// generation gen with this node as its only voter and data as its
// replicated contents. A new group 0's log starts after index 1, so every
// node that joins it receives a snapshot of the whole state (ScyllaDB had
// joiners stuck without the schema before it forced this, scylladb#14066).
func (m *Member) bootstrapLocked(gen uint64, data map[string][]byte, start bool) error {
	if err := m.wipeLocked(); err != nil {
		return err
	}
	if err := m.openEngineLocked(); err != nil {
		return err
	}
	local := map[string][]byte{
		string(append([]byte{storage.PrefixLocal}, genKey...)): []byte(strconv.FormatUint(gen, 10)),
	}
	self := m.node.NodeID()
	if self == 0 {
		self = 1 // at `kvnode init`, before the identity is adopted
	}
	if err := kv.Bootstrap(m.eng, self, data, local); err != nil {
		return errors.Wrap(err, "creating group 0")
	}
	if !start {
		return nil
	}
	return m.startReplicaLocked(gen, false)
}

// seedDataLocked is what a seed starts a new group 0 from: the state of
// the group 0 it had (a recovery), or else its catalog (the upgrade).
func (m *Member) seedDataLocked(reason string) (map[string][]byte, error) {
	if m.eng == nil {
		if _, err := os.Stat(m.dir()); err == nil {
			if err := m.openEngineLocked(); err != nil {
				return nil, err
			}
		}
	}
	if m.eng != nil {
		m.stopReplicaLocked() // nothing may apply while we copy
		lo, hi := storage.ReplicatedSpan()
		it, err := m.eng.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return nil, err
		}
		data := map[string][]byte{}
		for ok := it.First(); ok; ok = it.Next() {
			data[string(it.Key()[1:])] = append([]byte(nil), it.Value()...)
		}
		if err := errors.CombineErrors(it.Error(), it.Close()); err != nil {
			return nil, err
		}
		if _, ok := data[string(group0.StateKeyBytes())]; ok {
			return data, nil
		}
	}
	cat := m.catalog()
	if cat == nil {
		return nil, errSQLNotStarted
	}
	tables := map[string][]byte{}
	for _, d := range cat.All() {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		tables[d.Key()] = b
	}
	return group0.InitialState(tables, reason, m.node.NodeID(), time.Now()), nil
}

var errSQLNotStarted = errors.New("SQL is not started on this node yet")

// BootstrapAtInit creates group 0 when `kvnode init` bootstraps a cluster
// at release 2.0: there is no pre-Raft schema to carry over, so the
// cluster starts post-Raft with an empty schema and needs no upgrade. It
// runs before the data group's bootstrap, which makes the store's identity
// durable: a crash in between leaves a store without identity, and the
// next init starts over (wiping this).
func (m *Member) BootstrapAtInit(f group0.Formation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	data := group0.InitialState(nil, "group 0 created at cluster bootstrap", f.Seed, time.Now())
	if err := m.bootstrapLocked(f.Generation, data, false); err != nil {
		return err
	}
	return group0.SaveState(m.cfg.Local, group0.UsePostRaft)
}

// Load runs early in the node's start: it loads the upgrade state and
// starts the replica this node has (isolated in recovery mode).
func (m *Member) Load() error {
	if !m.Enabled() {
		return nil
	}
	st, raw, garbage, err := group0.LoadState(m.cfg.Local)
	if err != nil {
		return err
	}
	if garbage {
		m.log.Error("the stored group 0 upgrade state is not one this binary knows; the node runs in recovery mode",
			"stored", fmt.Sprintf("%q", raw), "hint", "follow docs/recovery.md to bring it back")
	}
	m.setMemState(st)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := removeWiped(m.dir()); err != nil {
		return errors.Wrap(err, "removing a group 0 store wiped before the last stop")
	}
	if _, err := os.Stat(m.dir()); err != nil {
		return nil // never had group 0
	}
	if err := m.openEngineLocked(); err != nil {
		return err
	}
	gen, err := m.storedGenLocked()
	if err != nil || gen == 0 {
		return err
	}
	return m.startReplicaLocked(gen, st == group0.Recovery)
}
