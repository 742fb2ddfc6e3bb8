package schemasync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"google.golang.org/grpc/codes"

	"github.com/kvnode/kvnode/gossip"
	"github.com/kvnode/kvnode/group0"
	"github.com/kvnode/kvnode/nodeapi"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/util/stop"
)

// Node is what the schema's propagation needs of the node it runs on.
type Node interface {
	NodeID() nodeid.ID
	// Gossip is the node's gossip (nil before it starts).
	Gossip() *gossip.Gossip
	// SchemaCatalog is the SQL catalog (nil before SQL starts).
	SchemaCatalog() Catalog
	// Group0State is the node's group 0 upgrade state: the pre-Raft
	// procedure's changes are taken only before group 0 is the schema's
	// source.
	Group0State() group0.State
	// NodeRecords is every node record (for addressing, possibly stale).
	NodeRecords() map[nodeid.ID]nodeapi.NodeRecord
}

// Catalog is what is pushed, pulled and merged (sql/catalog's Catalog).
type Catalog interface {
	All() []catalog.TableDescriptor
	// Merge installs descriptors by the last-writer-wins rule.
	Merge([]catalog.TableDescriptor) (changed bool, err error)
	Digest() string
}

// Config is what New needs.
type Config struct {
	Node   Node
	Client *nodeapi.Client
	Log    *slog.Logger
	// Every is how often Run compares digests.
	Every time.Duration
	// EveryRound, if set, runs at the start of each of Run's rounds (the
	// node gossips its persisted cluster version from there).
	EveryRound func()
}

// Sync is the node's part of the pre-Raft schema procedure.
type Sync struct {
	cfg Config
}

// New returns the node's schema sync; nothing runs until Run.
func New(cfg Config) *Sync { return &Sync{cfg: cfg} }

// TakesPreRaftSchema reports whether a node in state st merges the schema
// changes of the pre-Raft procedure (pushes, and pulls from its peers).
//
// A node in synchronize does too: it runs no pre-Raft DDL itself, but until
// the procedure's schema sync, peers still in use_pre_raft_procedures may,
// and group 0 holds only the schema of the join step. Without their changes
// it would serve a table they dropped (acknowledging writes nobody can read)
// and refuse one they created (issue 16, D7), for as long as the procedure
// lasts. Merging is safe at any time: the catalog's merge keeps, per table,
// the newest descriptor (tombstones included), so merging more changes in
// any order converges on the same schema, and the schema sync takes every
// node's catalog into group 0 anyway.
func TakesPreRaftSchema(st group0.State) bool {
	return st == group0.UsePreRaft || st == group0.Synchronize
}

// CatchUp runs once at start, before the node serves SQL, while
// schema changes may still use the pre-Raft procedure: it pulls the schema
// from every peer it can reach (bounded) and merges it, so that a node that
// was away while tables were created (or dropped), or that joins during the
// group 0 procedure, does not answer from an old schema once it says it is
// ready. Peers it cannot reach are left to the periodic sync.
func (s *Sync) CatchUp(ctx context.Context) {
	if !TakesPreRaftSchema(s.cfg.Node.Group0State()) {
		return // group 0 is the schema's source
	}
	cat, self := s.cfg.Node.SchemaCatalog(), s.cfg.Node.NodeID()
	if cat == nil {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for id, r := range s.cfg.Node.NodeRecords() {
		if id == self || r.ListenAddr == "" || time.Now().After(deadline) {
			continue
		}
		pctx, cancel := context.WithDeadline(ctx, deadline)
		resp, err := s.cfg.Client.SchemaPull(pctx, r.ListenAddr, &nodeapi.Empty{})
		cancel()
		if err != nil {
			continue
		}
		if changed, err := cat.Merge(resp.Descriptors); err == nil && changed {
			s.cfg.Log.Info("caught up on schema changes made while this node was away", "peer", id)
		}
	}
}

// PushSchema implements sql.SchemaPeers: it sends descriptors to every live
// peer, concurrently, bounded by ctx.
func (s *Sync) PushSchema(ctx context.Context, descs []catalog.TableDescriptor) {
	var wg sync.WaitGroup
	for _, addr := range s.livePeerAddrs() {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := s.cfg.Client.SchemaPush(cctx, addr, &nodeapi.SchemaMessage{Descriptors: descs}); err != nil {
				s.cfg.Log.Debug("schema push failed; the peer will pull it", "peer", addr, "err", err)
			}
		}(addr)
	}
	wg.Wait()
}

func (s *Sync) livePeerAddrs() []string {
	g, self := s.cfg.Node.Gossip(), s.cfg.Node.NodeID()
	if g == nil {
		return nil
	}
	var out []string
	for _, m := range g.Members() {
		if m.Meta.NodeID != self && m.IsLive() && m.Meta.ListenAddr != "" {
			out = append(out, m.Meta.ListenAddr)
		}
	}
	return out
}

// Push answers kvnode.Node's SchemaPush: merge what a peer pushed, while
// this node takes pre-Raft schema changes.
func (s *Sync) Push(_ context.Context, req *nodeapi.SchemaMessage) (*nodeapi.Empty, error) {
	cat := s.cfg.Node.SchemaCatalog()
	if cat == nil {
		return nil, nodeapi.WithCode(errors.New("SQL is not started on this node yet"), codes.Unavailable)
	}
	if st := s.cfg.Node.Group0State(); !TakesPreRaftSchema(st) {
		// The pre-Raft path is closed here: what the sender applied
		// locally reaches group 0 through the upgrade's schema sync.
		return nil, nodeapi.WithCode(errors.Newf(
			"node %d is in group 0 state %s and takes no pre-Raft schema pushes", s.cfg.Node.NodeID(), st), codes.FailedPrecondition)
	}
	if _, err := cat.Merge(req.Descriptors); err != nil {
		return nil, nodeapi.WithCode(err, codes.Internal)
	}
	return &nodeapi.Empty{}, nil
}

// Pull answers kvnode.Node's SchemaPull: this node's whole catalog.
func (s *Sync) Pull(context.Context, *nodeapi.Empty) (*nodeapi.SchemaMessage, error) {
	cat := s.cfg.Node.SchemaCatalog()
	if cat == nil {
		return nil, nodeapi.WithCode(errors.New("SQL is not started on this node yet"), codes.Unavailable)
	}
	return &nodeapi.SchemaMessage{Descriptors: cat.All()}, nil
}

// PublishDigest gossips this node's schema digest if it changed.
func (s *Sync) PublishDigest() {
	g, cat := s.cfg.Node.Gossip(), s.cfg.Node.SchemaCatalog()
	if g == nil || cat == nil {
		return
	}
	d := cat.Digest()
	if g.LocalMeta().SchemaDigest == d {
		return
	}
	if err := g.UpdateMeta(func(m *gossip.NodeMeta) { m.SchemaDigest = d }); err != nil {
		s.cfg.Log.Debug("publishing schema digest", "err", err)
	}
}

// Run pulls the schema from every live peer whose gossiped digest
// differs from ours and merges it (last writer wins per table). Both sides
// of a difference pull from each other, so digests converge. It returns
// when ctx ends (the node stops).
func (s *Sync) Run(ctx context.Context) {
	stop.Every(ctx, s.cfg.Every, func() bool { s.round(ctx); return true })
}

// round is one round of Run.
func (s *Sync) round(ctx context.Context) {
	if f := s.cfg.EveryRound; f != nil {
		f()
	}
	g, cat, self := s.cfg.Node.Gossip(), s.cfg.Node.SchemaCatalog(), s.cfg.Node.NodeID()
	if !TakesPreRaftSchema(s.cfg.Node.Group0State()) {
		// Past the pre-Raft procedure: group 0 is the schema's
		// source (the digest is still gossiped, for operators).
		s.PublishDigest()
		return
	}
	mine := cat.Digest()
	for _, m := range g.Members() {
		if m.Meta.NodeID == self || !m.IsLive() || m.Meta.SchemaDigest == "" || m.Meta.SchemaDigest == mine {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := s.cfg.Client.SchemaPull(pctx, m.Meta.ListenAddr, &nodeapi.Empty{})
		cancel()
		if err != nil {
			continue
		}
		if changed, err := cat.Merge(resp.Descriptors); err != nil {
			s.cfg.Log.Warn("merging schema from peer", "peer", m.Meta.NodeID, "err", err)
		} else if changed {
			s.cfg.Log.Info("merged schema changes pulled from peer", "peer", m.Meta.NodeID)
		}
	}
	s.PublishDigest()
}
