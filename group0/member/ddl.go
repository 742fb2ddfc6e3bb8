package member

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// DDL through group 0. BeginDDL decides, per DDL statement, from this
// node's upgrade state, how the statement commits:
//
//	use_pre_raft_procedures   the pre-Raft procedure (local apply + push),
//	                          holding the gate shared until it ends
//	synchronize               wait (bounded) for use_post_raft_procedures
//	use_post_raft_procedures  read barrier on group 0, then one commit
//	                          conditional on the state read
//	recovery                  refused (55000)
//
// A node in use_pre_raft_procedures in a cluster whose version is 2.0 is a
// node that has not joined group 0 yet (it joins by itself): it waits like
// synchronize. The server's SQL adapter hands this to the executor as its
// sql.SchemaLog.

func (m *Member) ddlWait() time.Duration {
	if m.cfg.DDLWait > 0 {
		return m.cfg.DDLWait
	}
	return 30 * time.Second
}

// BeginDDL runs before a DDL statement reads the catalog: it waits,
// bounded, until this node may run DDL. It returns a nil txn for the
// pre-Raft procedure (release ends the statement's hold on the gate), or
// the group 0 transaction the statement commits through, the catalog
// brought up to date by a read barrier. Its errors carry a SQLSTATE.
func (m *Member) BeginDDL(ctx context.Context) (*SchemaTxn, func(), error) {
	wait := m.ddlWait()
	deadline := time.Now().Add(wait)
	for {
		m.gate.RLock()
		st, changed := m.stateAndChan()
		switch {
		case st == group0.Recovery:
			m.gate.RUnlock()
			return nil, nil, recoveryDDLError(m.node.NodeID())
		case st == group0.UsePreRaft && !m.upgraded():
			return nil, m.gate.RUnlock, nil
		case st == group0.UsePostRaft:
			m.gate.RUnlock()
			return m.beginTxn(ctx)
		}
		m.gate.RUnlock()
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"schema changes are paused on node %d while the cluster moves them onto Raft group 0 (this node is in %s); waited %s",
				m.node.NodeID(), st, wait),
				"retry the statement; SHOW UPGRADE STATUS shows the progress of the upgrade")
		}
		select {
		case <-changed:
		case <-time.After(min(remaining, 250*time.Millisecond)):
		case <-ctx.Done():
			return nil, nil, pgerror.WithCode(errors.Wrap(ctx.Err(), "waiting for schema changes to move onto group 0"), pgerror.CodeQueryCanceled)
		case <-m.cfg.Stopper.ShouldQuiesce():
			return nil, nil, pgerror.WithCode(ErrStopping, pgerror.CodeAdminShutdown)
		}
	}
}

func recoveryDDLError(id nodeid.ID) error {
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState,
		"node %d is in group 0 recovery mode: schema changes are refused until the recovery is finished", id),
		"reads and writes of rows work as usual; finish the runbook in docs/recovery.md (`kvnode node group0-recover --host=...`)")
}

func unavailable(err error, what string) error {
	switch {
	case errors.Is(err, kvpb.ErrAmbiguous):
		return pgerror.WithHintf(pgerror.WithCode(errors.Wrap(err, what), pgerror.CodeStatementCompletionUnknown),
			"the schema change may or may not have been applied: look with SHOW TABLES / SHOW CREATE TABLE before retrying")
	case errors.Is(err, kvpb.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return pgerror.WithHintf(pgerror.WithCode(errors.Wrap(err, what), pgerror.CodeUnavailable),
			"group 0 needs a majority of its voters up (SHOW UPGRADE STATUS lists them); if that majority is lost for good, follow docs/recovery.md")
	}
	return pgerror.WithCode(errors.Wrap(err, what), pgerror.CodeInternal)
}

// beginTxn is the read barrier of a post-Raft DDL statement: a
// linearizable read of group 0's state ID and schema, applied to the
// catalog, so the statement is built against every change committed
// before it began.
func (m *Member) beginTxn(ctx context.Context) (*SchemaTxn, func(), error) {
	rep := m.rep.Load()
	if rep == nil || m.isolated.Load() {
		return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState,
			"node %d uses the post-Raft schema procedures but runs no group 0 replica", m.node.NodeID()),
			"run the DDL through another node; see docs/recovery.md")
	}
	rctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	// The barrier on the state ID alone suffices when the catalog already
	// holds that state (it applied it, or committed it itself): its
	// descriptors, and the clock advanced past them, are in the catalog
	// already. Reading and decoding every descriptor for every statement
	// made DDL cost grow with the number of tables.
	id, err := group0.ReadStateID(rctx, rep)
	if err != nil {
		return nil, nil, unavailable(err, "reading the schema state from group 0")
	}
	if id == m.catalogStateID.Load() {
		return &SchemaTxn{m: m, stateID: id}, func() {}, nil
	}
	snap, err := group0.Read(rctx, rep)
	if err != nil {
		return nil, nil, unavailable(err, "reading the schema from group 0")
	}
	if err := m.applySnapshot(snap); err != nil {
		return nil, nil, err
	}
	return &SchemaTxn{m: m, stateID: snap.StateID}, func() {}, nil
}

// SchemaTxn commits one DDL statement through group 0.
type SchemaTxn struct {
	m       *Member
	stateID uint64
}

// Commit commits descs as one change conditional on the state the
// statement was built on. A lost race returns an error marked
// group0.ErrConflict (the statement is built again on the newer schema);
// other errors carry a SQLSTATE.
func (t *SchemaTxn) Commit(ctx context.Context, descs []catalog.TableDescriptor, description string) error {
	m := t.m
	self := m.node.NodeID()
	rep := m.rep.Load()
	if rep == nil {
		return pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "node %d's group 0 replica stopped", self)
	}
	tables := map[string][]byte{}
	for _, d := range descs {
		b, err := json.Marshal(d)
		if err != nil {
			return errors.NewAssertionErrorWithWrappedErrf(err, "encoding descriptor %q", d.Name)
		}
		tables[d.Key()] = b
	}
	ch := group0.Change{ID: newChangeID(), Tables: tables, Description: description, NodeID: self, Time: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, m.timeout())
	newID, err := group0.Commit(cctx, rep, t.stateID, ch)
	cancel()
	if errors.Is(err, group0.ErrConflict) {
		return err
	}
	if err != nil {
		return unavailable(err, "committing the schema change in group 0")
	}
	if cat := m.catalog(); cat != nil {
		if _, err := cat.Merge(descs); err != nil {
			return err
		}
		m.bumpCatalogStateID(newID)
	}
	m.waitPropagation(ctx, rep.Status().Voters, rep.Status().Learners, newID)
	return nil
}

// waitPropagation waits, bounded, until every live member of group 0 has
// applied state stateID to its catalog, so that a client that sees its DDL
// finish sees the change on every node. A member that does not answer in
// time (down, partitioned) is not waited for: it catches up by itself when
// it can reach group 0 again (its apply loop), and until then serves the
// schema it has.
func (m *Member) waitPropagation(ctx context.Context, voters, learners []nodeid.ID, stateID uint64) {
	limit := m.cfg.PropagationWait
	if limit <= 0 {
		limit = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	self := m.node.NodeID()
	var wg sync.WaitGroup
	for _, id := range append(append([]nodeid.ID(nil), voters...), learners...) {
		if id == self {
			continue
		}
		if _, live, ok := m.node.Gossiped(id); ok && !live {
			continue
		}
		addr, ok := m.node.Resolve(id)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.cfg.Client.Group0Sync(ctx, addr, &nodeapi.Group0SyncRequest{StateID: stateID}); err != nil {
				m.log.Debug("a group 0 member did not confirm a schema change in time", "node", id, "state_id", stateID, "err", err)
			}
		}()
	}
	wg.Wait()
}
