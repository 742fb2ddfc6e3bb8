package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/storage"
)

// Group 0 on this node (group0*.go): a second Raft group of every node,
// holding the schema from release 2.0 on. It runs as a second kv.Replica on
// a second Pebble engine in <store>/group0, with its own transport (gRPC
// service kvnode.Group0, cluster ID "<cluster>/g0/<generation>"). The
// node's upgrade state (group0.State) lives in the main store's local keys.
//
// Files: group0.go (state, replica lifecycle, background loops),
// group0_rpc.go (the kvnode.Node methods), group0_member.go (this node's
// own membership check and rejoin), group0_ddl.go (DDL through group 0),
// group0_upgrade.go (the 2.0 migration), group0_recovery.go (recovery),
// group0_sql.go (system.local, SHOW UPGRADE STATUS).

var (
	_ group0.Replica    = (*kv.Replica)(nil)
	_ group0.LocalStore = storage.Local{}
)

// group0Node is this node's part of group 0.
type group0Node struct {
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
	// not a caught-up member (group0_member.go): it refuses writes.
	outside atomic.Bool
}

// group0GenKey is the local key, in the group 0 engine, of the generation
// the engine's Raft state belongs to.
var group0GenKey = []byte("group0/generation")

func (g *group0Node) State() group0.State {
	g.stMu.Lock()
	defer g.stMu.Unlock()
	if g.state == "" {
		return group0.UsePreRaft
	}
	return g.state
}

func (g *group0Node) stateAndChan() (group0.State, <-chan struct{}) {
	g.stMu.Lock()
	defer g.stMu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	if g.state == "" {
		return group0.UsePreRaft, g.changed
	}
	return g.state, g.changed
}

func (g *group0Node) setMemState(st group0.State) {
	g.stMu.Lock()
	defer g.stMu.Unlock()
	if g.state == st {
		return
	}
	g.state = st
	if g.changed != nil {
		close(g.changed)
	}
	g.changed = make(chan struct{})
}

func (g *group0Node) setWaiting(msg string) {
	if msg == "" {
		g.waiting.Store(nil)
		return
	}
	g.waiting.Store(&msg)
}

func (g *group0Node) waitingFor() string {
	if p := g.waiting.Load(); p != nil {
		return *p
	}
	return ""
}

func (g *group0Node) bumpCatalogStateID(id uint64) {
	for {
		cur := g.catalogStateID.Load()
		if id <= cur || g.catalogStateID.CompareAndSwap(cur, id) {
			return
		}
	}
}

// Group0State returns this node's group 0 upgrade state.
func (s *Server) Group0State() group0.State { return s.g0.State() }

// Group0Replica returns this node's group 0 replica (nil if it runs none).
func (s *Server) Group0Replica() *kv.Replica { return s.g0.rep.Load() }

func (s *Server) group0Dir() string { return filepath.Join(s.cfg.Store, "group0") }

func (s *Server) group0Timeout() time.Duration {
	if s.cfg.Group0Timeout > 0 {
		return s.cfg.Group0Timeout
	}
	return 10 * time.Second
}

func (s *Server) executor() *sql.Executor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exec
}

// setGroup0State persists a new upgrade state, then acts on it. It waits
// for running pre-Raft DDL to finish (the gate) and refuses a transition
// the state machine forbids (group0.CheckTransition).
func (s *Server) setGroup0State(to group0.State, fromRecovery bool) error {
	g := &s.g0
	g.gate.Lock()
	defer g.gate.Unlock()
	from := g.State()
	if err := group0.CheckTransition(from, to, fromRecovery); err != nil {
		return err
	}
	// Persist even when from == to: the stored value may be garbage that
	// reads as recovery.
	if err := group0.SaveState(s.eng.Local(), to); err != nil {
		return err
	}
	if from != to {
		g.setMemState(to)
		s.log.Info("group 0 upgrade state changed", "from", string(from), "to", string(to))
	}
	return nil
}

// --- replica lifecycle (callers hold g.mu) ---

func (s *Server) openGroup0EngineLocked() error {
	g := &s.g0
	if g.eng != nil {
		return nil
	}
	eng, err := storage.Open(s.group0Dir(), storage.Options{CacheSize: 8 << 20})
	if err != nil {
		return errors.Wrap(err, "opening the group 0 store")
	}
	g.eng = eng
	return nil
}

func (s *Server) group0StoredGenLocked() (uint64, error) {
	b, found, err := s.g0.eng.Local().Get(group0GenKey)
	if err != nil || !found {
		return 0, err
	}
	gen, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, errors.Newf("corrupt group 0 generation %q in %s", b, s.group0Dir())
	}
	return gen, nil
}

func (s *Server) startGroup0ReplicaLocked(gen uint64, isolated bool) error {
	g := &s.g0
	id := s.NodeID()
	cid := group0.TransportClusterID(s.ClusterID(), gen)
	if isolated {
		cid += fmt.Sprintf("/isolated/%d", id)
	}
	log := s.log.With("node", id, "group", "group0")
	tr := kv.NewTransport(cid, uint64(id), s.resolve, s.pool, log)
	tr.SetService(group0.ServiceName)
	rep, err := kv.NewReplica(kv.Config{
		Engine: g.eng, NodeID: uint64(id), Transport: tr, Logger: log,
		TickInterval: s.cfg.RaftTickInterval, Promote: s.allowPromote,
		// Group 0 holds descriptors and a few records, written rarely.
		RowCacheBytes: 1 << 20,
	})
	if err != nil {
		tr.Close()
		return errors.Wrap(err, "starting the group 0 replica")
	}
	g.rep.Store(rep)
	g.tr.Store(tr)
	g.gen.Store(gen)
	g.isolated.Store(isolated)
	if isolated {
		s.log.Info("group 0 replica runs isolated (recovery mode)", "generation", gen)
	} else {
		s.log.Info("group 0 replica started", "generation", gen)
	}
	return nil
}

func (s *Server) stopGroup0ReplicaLocked() {
	g := &s.g0
	tr := g.tr.Swap(nil)
	if rep := g.rep.Swap(nil); rep != nil {
		rep.Stop()
	}
	if tr != nil {
		tr.Close()
	}
	g.gen.Store(0)
	g.isolated.Store(false)
}

func (s *Server) wipeGroup0Locked() error {
	g := &s.g0
	s.stopGroup0ReplicaLocked()
	if g.eng != nil {
		if err := g.eng.Close(); err != nil {
			s.log.Warn("closing the group 0 store before wiping it", "err", err)
		}
		g.eng = nil
	}
	g.catalogStateID.Store(0)
	return errors.Wrap(wipeDir(s.group0Dir()), "wiping the group 0 store")
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

func (s *Server) closeGroup0() {
	g := &s.g0
	g.mu.Lock()
	defer g.mu.Unlock()
	s.stopGroup0ReplicaLocked()
	if g.eng != nil {
		_ = g.eng.Close()
		g.eng = nil
	}
}

// bootstrapGroup0Locked wipes whatever group 0 state this node has and
// creates generation gen with this node as its only voter and data as its
// replicated contents. A new group 0's log starts after index 1, so every
// node that joins it receives a snapshot of the whole state (ScyllaDB had
// joiners stuck without the schema before it forced this, scylladb#14066).
func (s *Server) bootstrapGroup0Locked(gen uint64, data map[string][]byte, start bool) error {
	if err := s.wipeGroup0Locked(); err != nil {
		return err
	}
	if err := s.openGroup0EngineLocked(); err != nil {
		return err
	}
	local := map[string][]byte{
		string(append([]byte{storage.PrefixLocal}, group0GenKey...)): []byte(strconv.FormatUint(gen, 10)),
	}
	self := uint64(s.NodeID())
	if self == 0 {
		self = 1 // at `kvnode init`, before the identity is adopted
	}
	if err := kv.Bootstrap(s.g0.eng, self, data, local); err != nil {
		return errors.Wrap(err, "creating group 0")
	}
	if !start {
		return nil
	}
	return s.startGroup0ReplicaLocked(gen, false)
}

// group0SeedDataLocked is what a seed starts a new group 0 from: the state
// of the group 0 it had (a recovery), or else its catalog (the upgrade).
func (s *Server) group0SeedDataLocked(reason string) (map[string][]byte, error) {
	g := &s.g0
	if g.eng == nil {
		if _, err := os.Stat(s.group0Dir()); err == nil {
			if err := s.openGroup0EngineLocked(); err != nil {
				return nil, err
			}
		}
	}
	if g.eng != nil {
		s.stopGroup0ReplicaLocked() // nothing may apply while we copy
		lo, hi := storage.ReplicatedSpan()
		it, err := g.eng.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
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
	exec := s.executor()
	if exec == nil {
		return nil, errors.New("SQL is not started on this node yet")
	}
	tables := map[string][]byte{}
	for _, d := range exec.Catalog().All() {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		tables[d.Name] = b
	}
	return group0.InitialState(tables, reason, s.NodeID(), time.Now()), nil
}

// bootstrapGroup0AtInit creates group 0 when `kvnode init` bootstraps a
// cluster at release 2.0: there is no pre-Raft schema to carry over, so
// the cluster starts post-Raft with an empty schema and needs no upgrade.
// It runs before the data group's bootstrap, which makes the store's
// identity durable: a crash in between leaves a store without identity,
// and the next init starts over (wiping this).
func (s *Server) bootstrapGroup0AtInit(f group0.Formation) error {
	g := &s.g0
	g.mu.Lock()
	defer g.mu.Unlock()
	data := group0.InitialState(nil, "group 0 created at cluster bootstrap", f.Seed, time.Now())
	if err := s.bootstrapGroup0Locked(f.Generation, data, false); err != nil {
		return err
	}
	return group0.SaveState(s.eng.Local(), group0.UsePostRaft)
}

// --- start ---

// loadGroup0 runs early in startNode: it loads the upgrade state and starts
// the replica this node has (isolated in recovery mode).
func (s *Server) loadGroup0() error {
	g := &s.g0
	if !s.hasGroup0() {
		return nil
	}
	st, raw, garbage, err := group0.LoadState(s.eng.Local())
	if err != nil {
		return err
	}
	if garbage {
		s.log.Error("the stored group 0 upgrade state is not one this binary knows; the node runs in recovery mode",
			"stored", fmt.Sprintf("%q", raw), "hint", "follow docs/recovery.md to bring it back")
	}
	g.setMemState(st)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := removeWiped(s.group0Dir()); err != nil {
		return errors.Wrap(err, "removing a group 0 store wiped before the last stop")
	}
	if _, err := os.Stat(s.group0Dir()); err != nil {
		return nil // never had group 0
	}
	if err := s.openGroup0EngineLocked(); err != nil {
		return err
	}
	gen, err := s.group0StoredGenLocked()
	if err != nil || gen == 0 {
		return err
	}
	return s.startGroup0ReplicaLocked(gen, st == group0.Recovery)
}

// startGroup0Loops runs once the node serves: it brings the catalog up to
// date with group 0, has a new node join an existing group 0, and starts
// the background loops.
func (s *Server) startGroup0Loops(rep *kv.Replica) {
	if !s.hasGroup0() {
		return
	}
	if err := s.catchUpCatalog(); err != nil {
		s.log.Warn("applying group 0's schema to the catalog", "err", err)
	}
	s.maybeJoinGroup0AtStart(rep)
	s.startGroup0MemberCheck()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.group0ApplyLoop() }()
	go func() { defer s.wg.Done(); s.group0MembershipLoop() }()
}

func (s *Server) readFormation(ctx context.Context, db kvpb.DB) (group0.Formation, []byte, bool, error) {
	b, found, err := db.Get(ctx, keys.Group0FormationKey())
	if err != nil || !found {
		return group0.Formation{}, nil, false, err
	}
	f, err := group0.DecodeFormation(b)
	return f, b, err == nil, err
}

// maybeJoinGroup0AtStart makes a node that is not yet in group 0 join it
// when nobody else will: a node that joined the cluster after group 0 was
// formed, or any node of an upgraded cluster that is not a member. During
// an upgrade, a new node starts in synchronize (before it serves SQL, so no
// pre-Raft DDL can run on it) and the procedure finishes it; once the
// cluster is upgraded, it joins, catches up and enters
// use_post_raft_procedures by itself.
func (s *Server) maybeJoinGroup0AtStart(rep *kv.Replica) {
	g := &s.g0
	st := g.State()
	if st == group0.Recovery || st == group0.UsePostRaft {
		return
	}
	upgraded := clusterversion.IsActive(s, clusterversion.V2_0)
	if !upgraded && !g.fresh.Load() {
		return // the upgrade procedure moves this node
	}
	var f group0.Formation
	found := false
	for attempt := 0; attempt < 50; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		f, _, found, err = s.readFormation(ctx, rep)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-s.stopC:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !found {
		return
	}
	if st == group0.UsePreRaft && !upgraded {
		if err := s.setGroup0State(group0.Synchronize, false); err != nil {
			s.log.Warn("entering synchronize", "err", err)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.joinGroup0Loop(f, upgraded)
	}()
}

// joinGroup0Loop joins group 0 of f's generation, retrying until it has,
// then (upgraded cluster) waits for group 0's state to arrive and enters
// use_post_raft_procedures.
func (s *Server) joinGroup0Loop(f group0.Formation, upgraded bool) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := s.stopCtx(30 * time.Second)
		_, err := s.group0PrepareLocal(ctx, f)
		cancel()
		if err == nil {
			break
		}
		if attempt%10 == 0 {
			s.log.Warn("joining group 0; will retry", "generation", f.Generation, "err", err)
		}
		select {
		case <-s.stopC:
			return
		case <-time.After(time.Second):
		}
	}
	s.log.Info("joined group 0", "generation", f.Generation)
	if !upgraded {
		return
	}
	for !s.enterPostRaftOnceCaughtUp() {
		select {
		case <-s.stopC:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// enterPostRaftOnceCaughtUp moves a node that joined an upgraded cluster
// (2.0 active) to use_post_raft_procedures, once its group 0 replica has
// received group 0's state, and reports whether the node is in
// use_post_raft_procedures (or recovery, which only the recovery procedure
// leaves). A node that joined during the procedure and is still before
// use_post_raft_procedures once 2.0 is active (issue 16 D1) is moved by
// its membership check (group0_member.go), through the same enterPostRaft.
//
// Only an upgraded cluster: 2.0 becomes active after the procedure's schema
// sync, which took every pre-Raft change of every node into group 0, so a
// node still before use_post_raft_procedures then joined after the
// procedure last looked and made no pre-Raft change of its own.
func (s *Server) enterPostRaftOnceCaughtUp() bool {
	if st := s.g0.State(); st == group0.UsePostRaft || st == group0.Recovery {
		return true
	}
	if !clusterversion.IsActive(s, clusterversion.V2_0) {
		return false // the procedure moves this node
	}
	rep := s.g0.rep.Load()
	if rep == nil {
		return false
	}
	if id, err := group0.LocalStateID(rep); err != nil || id == 0 {
		return false // no snapshot of group 0 yet
	}
	if err := s.enterPostRaft(); err != nil {
		s.log.Warn("entering use_post_raft_procedures", "err", err)
		return false
	}
	return true
}

// enterPostRaft brings the catalog up to group 0's state as this replica
// holds it, then enters use_post_raft_procedures: a node that has caught up
// with group 0 and made no pre-Raft change of its own.
func (s *Server) enterPostRaft() error {
	if err := s.catchUpCatalog(); err != nil {
		return errors.Wrap(err, "applying group 0's schema to the catalog")
	}
	return s.setGroup0State(group0.UsePostRaft, false)
}

// --- background loops ---

// catchUpCatalog applies group 0's schema, as this replica has applied it,
// to the SQL catalog. Group 0 is the authority; the catalog is this node's
// copy, which statements read without a round trip. Descriptors carry
// increasing modification times in group 0's order (each change is built
// after a read barrier that advanced the node's clock past every earlier
// one), so the catalog's last-writer-wins merge installs exactly group 0's
// version of every table.
func (s *Server) catchUpCatalog() error {
	g := &s.g0
	rep, exec := g.rep.Load(), s.executor()
	if rep == nil || exec == nil || g.isolated.Load() {
		return nil
	}
	id, err := group0.LocalStateID(rep)
	if err != nil || id == 0 || id <= g.catalogStateID.Load() {
		return err
	}
	snap, err := group0.ReadLocal(rep)
	if err != nil {
		return err
	}
	return s.applyGroup0Snapshot(snap)
}

func (s *Server) applyGroup0Snapshot(snap group0.Snapshot) error {
	exec := s.executor()
	if exec == nil {
		return errors.New("SQL is not started on this node yet")
	}
	descs, err := decodeDescriptors(snap.Tables)
	if err != nil {
		return err
	}
	changed, err := exec.Catalog().Merge(descs)
	if err != nil {
		return err
	}
	s.g0.bumpCatalogStateID(snap.StateID)
	if changed {
		s.log.Debug("applied group 0 schema state", "state_id", snap.StateID)
	}
	return nil
}

func decodeDescriptors(tables map[string][]byte) ([]catalog.TableDescriptor, error) {
	out := make([]catalog.TableDescriptor, 0, len(tables))
	for name, b := range tables {
		var d catalog.TableDescriptor
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, errors.Wrapf(err, "corrupt descriptor of table %q in group 0", name)
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *Server) group0ApplyLoop() {
	// A local read of one key: cheap enough to poll often.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopC:
			return
		case <-t.C:
		}
		if st := s.g0.State(); st != group0.Synchronize && st != group0.UsePostRaft {
			continue
		}
		if err := s.catchUpCatalog(); err != nil {
			s.log.Warn("applying group 0's schema to the catalog", "err", err)
		}
	}
}

// group0MembershipLoop runs on every node and acts while it leads group 0:
// group 0's membership follows the node lifecycle with a quorum check
// (liveness.Check.LifecycleStep, one change per round): a decommissioning
// voter is demoted to a learner, a decommissioned node is removed, each
// only while group 0 keeps a live majority of voters; if this node itself
// is to be demoted, it hands leadership over first. A decommissioning
// learner stays and keeps following the schema, so a recommissioned node
// has missed nothing and is promoted again (the replica promotes caught-up
// learners, up to five voters, gated by allowPromote: active nodes only).
func (s *Server) group0MembershipLoop() {
	t := time.NewTicker(decommissionEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopC:
			return
		case <-t.C:
		}
		rep := s.g0.rep.Load()
		data := s.lc().rep.Load()
		if rep == nil || data == nil || s.g0.isolated.Load() || s.g0.State() == group0.Recovery {
			continue
		}
		st := rep.Status()
		if !st.IsLeader {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.group0LifecycleStep(ctx, rep, data, st)
		cancel()
	}
}

// group0Check is the quorum rule's input for group 0: the liveness records
// as this node's data replica has applied them, and group 0's
// configuration as st reports it.
func group0Check(data *kv.Replica, st kv.Status, maxVoters int) (liveness.Check, error) {
	start, end := liveness.Span()
	kvs, err := data.ScanLocal(start, end, 0, false)
	if err != nil {
		return liveness.Check{}, err
	}
	c := liveness.Check{Group: "group 0", Records: map[int32]liveness.Record{}, MaxVoters: maxVoters}
	for _, e := range kvs {
		r, err := liveness.Decode(e.Value)
		if err != nil {
			return liveness.Check{}, err
		}
		c.Records[r.NodeID] = r
	}
	c.Voters, c.Learners = toInt32s(st.Voters), toInt32s(st.Learners)
	now := time.Now()
	c.Live = func(id int32) bool { r, ok := c.Records[id]; return ok && r.IsLive(now) }
	return c, nil
}

func (s *Server) group0LifecycleStep(ctx context.Context, rep, data *kv.Replica, st kv.Status) {
	c, err := group0Check(data, st, rep.MaxVoters())
	if err != nil {
		s.log.Warn("group 0 membership: reading the liveness records", "err", err)
		return
	}
	step := c.LifecycleStep(int32(st.NodeID))
	id := uint64(step.Node)
	switch step.Kind {
	case liveness.StepNone:
		if step.Waiting != nil && time.Since(s.g0.lastMembershipWarn) > 10*time.Second {
			s.g0.lastMembershipWarn = time.Now()
			s.log.Warn("group 0 membership: a change is due but would lose group 0's majority; waiting", "reason", step.Waiting)
		}
	case liveness.StepTransferLeadership:
		s.log.Info("group 0 membership: this node leads and is leaving; handing leadership over")
		rep.HandOffLeadership(ctx, func(id uint64) bool {
			v := int32(id)
			r, ok := c.Records[v]
			return v != step.Node && c.Live(v) && (!ok || r.Membership == liveness.Active)
		})
	case liveness.StepDemote:
		if err := rep.DemoteVoter(ctx, id); err != nil {
			s.log.Warn("group 0 membership: demoting a decommissioning node to a learner failed; will retry", "node", id, "err", err)
			return
		}
		s.log.Info("group 0 membership: demoted a decommissioning node to a learner", "node", id)
	case liveness.StepRemove:
		if err := rep.RemoveMember(ctx, id); err != nil {
			s.log.Warn("group 0 membership: removing a decommissioned node failed; will retry", "node", id, "err", err)
			return
		}
		s.log.Info("group 0 membership: removed a decommissioned node", "node", id)
	}
}

// --- helpers ---

// stopCtx returns a context that ends after d or when the node stops.
func (s *Server) stopCtx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-s.stopC:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

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
