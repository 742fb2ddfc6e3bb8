package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/kv/kvpb"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/sql"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/pgerror"
)

// group0SchemaLog is the executor's SchemaLog: it decides, per DDL
// statement, from this node's upgrade state, how the statement commits.
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
// synchronize.
type group0SchemaLog struct{ s *Server }

var _ sql.SchemaLog = group0SchemaLog{}

func (s *Server) ddlWait() time.Duration {
	if s.cfg.Group0DDLWait > 0 {
		return s.cfg.Group0DDLWait
	}
	return 30 * time.Second
}

// BeginDDL implements sql.SchemaLog.
func (l group0SchemaLog) BeginDDL(ctx context.Context) (sql.SchemaTxn, func(), error) {
	s := l.s
	g := &s.g0
	wait := s.ddlWait()
	deadline := time.Now().Add(wait)
	for {
		g.gate.RLock()
		st, changed := g.stateAndChan()
		switch {
		case st == group0.Recovery:
			g.gate.RUnlock()
			return nil, nil, recoveryDDLError(s.NodeID())
		case st == group0.UsePreRaft && !clusterversion.IsActive(s, clusterversion.V2_0):
			return nil, g.gate.RUnlock, nil
		case st == group0.UsePostRaft:
			g.gate.RUnlock()
			return s.beginGroup0DDL(ctx)
		}
		g.gate.RUnlock()
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeSerializationFailure,
				"schema changes are paused on node %d while the cluster moves them onto Raft group 0 (this node is in %s); waited %s",
				s.NodeID(), st, wait),
				"retry the statement; SHOW UPGRADE STATUS shows the progress of the upgrade")
		}
		select {
		case <-changed:
		case <-time.After(min(remaining, 250*time.Millisecond)):
		case <-ctx.Done():
			return nil, nil, pgerror.WithCode(errors.Wrap(ctx.Err(), "waiting for schema changes to move onto group 0"), pgerror.CodeQueryCanceled)
		case <-s.stopC:
			return nil, nil, pgerror.WithCode(errStopping, pgerror.CodeAdminShutdown)
		}
	}
}

func recoveryDDLError(id int32) error {
	return pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState,
		"node %d is in group 0 recovery mode: schema changes are refused until the recovery is finished", id),
		"reads and writes of rows work as usual; finish the runbook in docs/recovery.md (`kvnode node group0-recover --host=...`)")
}

func group0Unavailable(err error, what string) error {
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

// beginGroup0DDL is the read barrier of a post-Raft DDL statement: a
// linearizable read of group 0's state ID and schema, applied to the
// catalog, so the statement is built against every change committed
// before it began.
func (s *Server) beginGroup0DDL(ctx context.Context) (sql.SchemaTxn, func(), error) {
	g := &s.g0
	rep := g.rep.Load()
	if rep == nil || g.isolated.Load() {
		return nil, nil, pgerror.WithHintf(pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState,
			"node %d uses the post-Raft schema procedures but runs no group 0 replica", s.NodeID()),
			"run the DDL through another node; see docs/recovery.md")
	}
	rctx, cancel := context.WithTimeout(ctx, s.group0Timeout())
	snap, err := group0.Read(rctx, rep)
	cancel()
	if err != nil {
		return nil, nil, group0Unavailable(err, "reading the schema from group 0")
	}
	if err := s.applyGroup0Snapshot(snap); err != nil {
		return nil, nil, err
	}
	return &group0Txn{s: s, stateID: snap.StateID}, func() {}, nil
}

// group0Txn commits one DDL statement through group 0.
type group0Txn struct {
	s       *Server
	stateID uint64
}

// Commit implements sql.SchemaTxn.
func (t *group0Txn) Commit(ctx context.Context, descs []catalog.TableDescriptor, description string) error {
	s := t.s
	rep := s.g0.rep.Load()
	if rep == nil {
		return pgerror.Newf(pgerror.CodeObjectNotInPrerequisiteState, "node %d's group 0 replica stopped", s.NodeID())
	}
	tables := map[string][]byte{}
	for _, d := range descs {
		b, err := json.Marshal(d)
		if err != nil {
			return errors.NewAssertionErrorWithWrappedErrf(err, "encoding descriptor %q", d.Name)
		}
		tables[d.Name] = b
	}
	ch := group0.Change{ID: newUUID(), Tables: tables, Description: description, NodeID: s.NodeID(), Time: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, s.group0Timeout())
	newID, err := group0.Commit(cctx, rep, t.stateID, ch)
	cancel()
	if errors.Is(err, group0.ErrConflict) {
		return errors.Mark(err, sql.ErrSchemaChanged)
	}
	if err != nil {
		return group0Unavailable(err, "committing the schema change in group 0")
	}
	if exec := s.executor(); exec != nil {
		if _, err := exec.Catalog().Merge(descs); err != nil {
			return err
		}
		s.g0.bumpCatalogStateID(newID)
	}
	s.waitGroup0Propagation(ctx, rep.Status().Voters, rep.Status().Learners, newID)
	return nil
}

// waitGroup0Propagation waits, bounded, until every live member of group 0
// has applied state stateID to its catalog, so that a client that sees its
// DDL finish sees the change on every node. A member that does not answer
// in time (down, partitioned) is not waited for: it catches up by itself
// when it can reach group 0 again (its apply loop), and until then serves
// the schema it has.
func (s *Server) waitGroup0Propagation(ctx context.Context, voters, learners []uint64, stateID uint64) {
	limit := s.cfg.Group0PropagationWait
	if limit <= 0 {
		limit = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	self := uint64(s.NodeID())
	g := s.gossipOrNil()
	var wg sync.WaitGroup
	for _, id := range append(append([]uint64(nil), voters...), learners...) {
		if id == self {
			continue
		}
		if g != nil {
			if m, ok := g.Member(int32(id)); ok && !m.IsLive() {
				continue
			}
		}
		addr, ok := s.resolve(id)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.node.Group0Sync(ctx, addr, &nodeapi.Group0SyncRequest{StateID: stateID}); err != nil {
				s.log.Debug("a group 0 member did not confirm a schema change in time", "node", id, "state_id", stateID, "err", err)
			}
		}()
	}
	wg.Wait()
}
