package member

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/keys"
	"github.com/kvnode/kvnode/kv"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/liveness"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
)

// membershipEvery is the period of the leader's membership loop.
const membershipEvery = 500 * time.Millisecond

// Start runs once the node serves (data is its data replica): it brings the
// catalog up to date with group 0, has a new node join an existing group 0,
// runs the first membership check of this node, and starts the background
// loops.
func (m *Member) Start(data *kv.Replica) {
	if !m.Enabled() {
		return
	}
	if err := m.CatchUpCatalog(); err != nil {
		m.log.Warn("applying group 0's schema to the catalog", "err", err)
	}
	m.maybeJoinAtStart(data)
	m.startSelfCheck()
	m.cfg.Stopper.RunAsync(m.applyLoop)
	m.cfg.Stopper.RunAsync(m.membershipLoop)
}

// readFormation reads the formation record through db (found: there is
// one; an undecodable one is an error).
func readFormation(ctx context.Context, db kvpb.DB) (f group0.Formation, raw []byte, found bool, err error) {
	b, found, err := db.Get(ctx, keys.Group0FormationKey())
	if err != nil || !found {
		return group0.Formation{}, nil, false, err
	}
	f, err = group0.DecodeFormation(b)
	return f, b, err == nil, err
}

// maybeJoinAtStart makes a node that is not yet in group 0 join it when
// nobody else will: a node that joined the cluster after group 0 was
// formed, or any node of an upgraded cluster that is not a member. During
// an upgrade, a new node starts in synchronize (before it serves SQL, so no
// pre-Raft DDL can run on it) and the procedure finishes it; once the
// cluster is upgraded, it joins, catches up and enters
// use_post_raft_procedures by itself.
func (m *Member) maybeJoinAtStart(data *kv.Replica) {
	st := m.State()
	if st == group0.Recovery || st == group0.UsePostRaft {
		return
	}
	upgraded := m.upgraded()
	if !upgraded && !m.fresh.Load() {
		return // the upgrade procedure moves this node
	}
	var f group0.Formation
	found := false
	for attempt := 0; attempt < 50; attempt++ {
		ctx, cancel := m.stopCtx(2 * time.Second)
		var err error
		f, _, found, err = readFormation(ctx, data)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-m.cfg.Stopper.ShouldQuiesce():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !found {
		return
	}
	if st == group0.UsePreRaft && !upgraded {
		if err := m.setState(group0.Synchronize, false); err != nil {
			m.log.Warn("entering synchronize", "err", err)
		}
	}
	m.cfg.Stopper.RunAsync(func() { m.joinLoop(f, upgraded) })
}

// joinLoop joins group 0 of f's generation, retrying until it has, then
// (upgraded cluster) waits for group 0's state to arrive and enters
// use_post_raft_procedures.
func (m *Member) joinLoop(f group0.Formation, upgraded bool) {
	stop := m.cfg.Stopper.ShouldQuiesce()
	for attempt := 0; ; attempt++ {
		ctx, cancel := m.stopCtx(30 * time.Second)
		_, err := m.prepareLocal(ctx, f)
		cancel()
		if err == nil {
			break
		}
		if attempt%10 == 0 {
			m.log.Warn("joining group 0; will retry", "generation", f.Generation, "err", err)
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
	}
	m.log.Info("joined group 0", "generation", f.Generation)
	if !upgraded {
		return
	}
	for !m.enterPostRaftOnceCaughtUp() {
		select {
		case <-stop:
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
// its membership check (self.go), through the same enterPostRaft.
//
// Only an upgraded cluster: 2.0 becomes active after the procedure's schema
// sync, which took every pre-Raft change of every node into group 0, so a
// node still before use_post_raft_procedures then joined after the
// procedure last looked and made no pre-Raft change of its own.
func (m *Member) enterPostRaftOnceCaughtUp() bool {
	if st := m.State(); st == group0.UsePostRaft || st == group0.Recovery {
		return true
	}
	if !m.upgraded() {
		return false // the procedure moves this node
	}
	rep := m.rep.Load()
	if rep == nil {
		return false
	}
	if id, err := group0.LocalStateID(rep); err != nil || id == 0 {
		return false // no snapshot of group 0 yet
	}
	if err := m.enterPostRaft(); err != nil {
		m.log.Warn("entering use_post_raft_procedures", "err", err)
		return false
	}
	return true
}

// enterPostRaft brings the catalog up to group 0's state as this replica
// holds it, then enters use_post_raft_procedures: a node that has caught up
// with group 0 and made no pre-Raft change of its own.
func (m *Member) enterPostRaft() error {
	if err := m.CatchUpCatalog(); err != nil {
		return errors.Wrap(err, "applying group 0's schema to the catalog")
	}
	return m.setState(group0.UsePostRaft, false)
}

// CatchUpCatalog applies group 0's schema, as this replica has applied it,
// to the SQL catalog. Group 0 is the authority; the catalog is this node's
// copy, which statements read without a round trip. Descriptors carry
// increasing modification times in group 0's order (each change is built
// after a read barrier that advanced the node's clock past every earlier
// one), so the catalog's last-writer-wins merge installs exactly group 0's
// version of every table.
func (m *Member) CatchUpCatalog() error {
	rep, cat := m.rep.Load(), m.catalog()
	if rep == nil || cat == nil || m.isolated.Load() {
		return nil
	}
	id, err := group0.LocalStateID(rep)
	if err != nil || id == 0 || id <= m.catalogStateID.Load() {
		return err
	}
	snap, err := group0.ReadLocal(rep)
	if err != nil {
		return err
	}
	return m.applySnapshot(snap)
}

func (m *Member) applySnapshot(snap group0.Snapshot) error {
	cat := m.catalog()
	if cat == nil {
		return errSQLNotStarted
	}
	descs, err := decodeDescriptors(snap.Tables)
	if err != nil {
		return err
	}
	changed, err := cat.Merge(descs)
	if err != nil {
		return err
	}
	m.bumpCatalogStateID(snap.StateID)
	if changed {
		m.log.Debug("applied group 0 schema state", "state_id", snap.StateID)
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

// applyLoop keeps the catalog in step with group 0 while the node relies
// on it for its schema. A local read of one key: cheap enough to poll
// often.
func (m *Member) applyLoop() {
	m.every(50*time.Millisecond, func() {
		if st := m.State(); st != group0.Synchronize && st != group0.UsePostRaft {
			return
		}
		if err := m.CatchUpCatalog(); err != nil {
			m.log.Warn("applying group 0's schema to the catalog", "err", err)
		}
	})
}

// membershipLoop runs on every node and acts while it leads group 0:
// group 0's membership follows the node lifecycle with a quorum check
// (liveness.Check.LifecycleStep, one change per round): a decommissioning
// voter is demoted to a learner, a decommissioned node is removed, each
// only while group 0 keeps a live majority of voters; if this node itself
// is to be demoted, it hands leadership over first. A decommissioning
// learner stays and keeps following the schema, so a recommissioned node
// has missed nothing and is promoted again (the replica promotes caught-up
// learners, up to five voters, gated by Node.AllowPromote: active nodes
// only).
func (m *Member) membershipLoop() {
	m.every(membershipEvery, func() {
		rep := m.rep.Load()
		data := m.node.LiveReplica()
		if rep == nil || data == nil || m.isolated.Load() || m.State() == group0.Recovery {
			return
		}
		st := rep.Status()
		if !st.IsLeader {
			return
		}
		ctx, cancel := m.stopCtx(10 * time.Second)
		m.lifecycleStep(ctx, rep, data, st)
		cancel()
	})
}

// quorumCheck is the quorum rule's input for group 0: the liveness records as
// the node's data replica has applied them, and group 0's configuration as
// st reports it.
func quorumCheck(data *kv.Replica, st kv.Status, maxVoters int) (liveness.Check, error) {
	start, end := liveness.Span()
	kvs, err := data.ScanLocal(start, end, 0, false)
	if err != nil {
		return liveness.Check{}, err
	}
	c := liveness.Check{Group: "group 0", Records: map[nodeid.ID]liveness.Record{}, MaxVoters: maxVoters}
	for _, e := range kvs {
		r, err := liveness.Decode(e.Value)
		if err != nil {
			return liveness.Check{}, err
		}
		c.Records[r.NodeID] = r
	}
	c.Voters, c.Learners = st.Voters, st.Learners
	now := time.Now()
	c.Live = func(id nodeid.ID) bool { r, ok := c.Records[id]; return ok && r.IsLive(now) }
	return c, nil
}

func (m *Member) lifecycleStep(ctx context.Context, rep, data *kv.Replica, st kv.Status) {
	c, err := quorumCheck(data, st, rep.MaxVoters())
	if err != nil {
		m.log.Warn("group 0 membership: reading the liveness records", "err", err)
		return
	}
	step := c.LifecycleStep(st.NodeID)
	id := step.Node
	switch step.Kind {
	case liveness.StepNone:
		if step.Waiting != nil && time.Since(m.lastMembershipWarn) > 10*time.Second {
			m.lastMembershipWarn = time.Now()
			m.log.Warn("group 0 membership: a change is due but would lose group 0's majority; waiting", "reason", step.Waiting)
		}
	case liveness.StepTransferLeadership:
		m.log.Info("group 0 membership: this node leads and is leaving; handing leadership over")
		rep.HandOffLeadership(ctx, func(v nodeid.ID) bool {
			r, ok := c.Records[v]
			return v != step.Node && c.Live(v) && (!ok || r.Membership == liveness.Active)
		})
	case liveness.StepDemote:
		if err := rep.DemoteVoter(ctx, id); err != nil {
			m.log.Warn("group 0 membership: demoting a decommissioning node to a learner failed; will retry", "node", id, "err", err)
			return
		}
		m.log.Info("group 0 membership: demoted a decommissioning node to a learner", "node", id)
	case liveness.StepRemove:
		if err := rep.RemoveMember(ctx, id); err != nil {
			m.log.Warn("group 0 membership: removing a decommissioned node failed; will retry", "node", id, "err", err)
			return
		}
		m.log.Info("group 0 membership: removed a decommissioned node", "node", id)
	}
}

// ValidateDecommission applies the quorum rule to group 0 too: with six
// nodes or more its voters can differ from the data group's, and a
// decommission the data group allows could leave group 0 without a
// majority (no DDL until a recovery). c is the data group's check (its
// records, read linearizably); group 0's configuration is this node's
// replica's, after a read barrier so that it is the committed one. If group
// 0 has no live majority already, the decommission is not refused: the
// recovery runbook decommissions the dead nodes before it re-forms group 0.
func (m *Member) ValidateDecommission(ctx context.Context, c liveness.Check, ids []nodeid.ID) error {
	rep := m.rep.Load()
	if rep == nil || m.isolated.Load() || m.State() == group0.Recovery {
		return nil // no group 0 here (before 2.0, or in recovery)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, _, err := rep.Get(rctx, group0.StateKeyBytes())
	cancel()
	if err != nil {
		return nil // no quorum to lose, or none reachable: see above
	}
	st := rep.Status()
	c0 := c
	c0.Group, c0.MaxVoters = "group 0", rep.MaxVoters()
	c0.Voters, c0.Learners = st.Voters, st.Learners
	if len(c0.Voters) == 0 || c0.HasQuorum() != nil {
		return nil
	}
	return c0.ValidateMajority(ids)
}
