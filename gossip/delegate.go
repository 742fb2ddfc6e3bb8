package gossip

import (
	"bytes"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's delegates for a Gossip.
//
// memberlist calls NotifyAlive and the event methods with its node lock
// held, from its packet and stream handlers. So every method here is
// thread-safe, takes only Gossip.mu (briefly, never waiting on I/O or on a
// subscriber) and never calls back into memberlist.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
	_ memberlist.MergeDelegate = (*delegate)(nil)
)

// NodeMeta returns the local record, encoded and size-checked in advance
// by New and UpdateMeta (memberlist panics on oversized metadata).
func (d *delegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	b := d.g.localRaw
	d.g.mu.Unlock()
	if len(b) > limit {
		d.g.log.Error("gossip metadata over memberlist's limit",
			slog.Any("err", errors.AssertionFailedf("metadata is %d bytes, limit %d", len(b), limit)))
		return nil
	}
	return b
}

// The user-message channel of memberlist is unused: everything gossip
// carries is in the node metadata.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// NotifyAlive vets every alive message before memberlist acts on it, which
// is the only place that also catches peers arriving through passive
// gossip rather than a join (the merge delegate sees joins only).
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	_, err := d.g.vet(peer.Name, peer.Address(), peer.Meta, true /* live */)
	return err
}

// NotifyMerge vets the member list a peer sends on a join (both the node
// that joins and the node it contacts see the other side's list), and
// cancels the whole merge if one member is unacceptable, so that two
// clusters never start to blend.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		// Dead and left members are vetted only for decoding and cluster
		// ID: a long-gone member with an old binary must not block a join.
		live := p.State == memberlist.StateAlive || p.State == memberlist.StateSuspect
		if _, err := d.g.vet(p.Name, p.Address(), p.Meta, live); err != nil {
			d.g.mu.Lock()
			d.g.mergeRejects = append(d.g.mergeRejects, err)
			if n := len(d.g.mergeRejects); n > 8 {
				d.g.mergeRejects = slices.Delete(d.g.mergeRejects, 0, n-8)
			}
			d.g.mu.Unlock()
			return err
		}
	}
	return nil
}

// vet decodes (or finds already decoded) the metadata a peer advertises
// and decides whether the peer may be a member: its record decodes, its
// name matches its node ID, it belongs to our cluster, its node ID is not
// live at another address, and Config.Admit accepts it.
func (g *Gossip) vet(name, addr string, raw []byte, live bool) (decodedMeta, error) {
	g.mu.Lock()
	dm, ok := g.decoded[name]
	if !ok || !bytes.Equal(dm.raw, raw) {
		if r := g.records[name]; r != nil && bytes.Equal(r.raw, raw) {
			dm, ok = r.decodedMeta, true
		} else {
			ok = false
		}
	}
	var liveAt string
	if r := g.records[name]; r != nil && r.member().IsLive() {
		liveAt = r.addr
	}
	g.mu.Unlock()

	if !ok {
		m, flags, err := decodeMeta(raw)
		if err != nil {
			err = errors.Wrapf(err, refusalPrefix+"%s at %s: cannot decode its metadata", name, addr)
			g.logRefusal(name+"/decode", err, slog.String("peer", name), slog.String("peer_addr", addr))
			return decodedMeta{}, err
		}
		dm = decodedMeta{raw: slices.Clone(raw), meta: m, flags: flags}
	}
	m := dm.meta
	var err error
	switch {
	case m.ClusterID != g.clusterID:
		err = errors.WithHint(errors.Mark(errors.Newf(
			refusalPrefix+"%s at %s: it belongs to cluster %s, this node (%s) to cluster %s",
			name, addr, m.ClusterID, g.name, g.clusterID), ErrClusterMismatch),
			"a node joins only the cluster it was initialized in; check --join, or start the node with an empty store to join this cluster")
		g.logRefusal(name+"/cluster/"+m.ClusterID, err, slog.String("peer", name), slog.String("peer_addr", addr),
			slog.String("peer_cluster_id", m.ClusterID), slog.String("cluster_id", g.clusterID))
		return decodedMeta{}, err
	case nodeName(m.NodeID) != name:
		err = errors.Mark(errors.Newf(refusalPrefix+"%s at %s: its metadata names node %d",
			name, addr, m.NodeID), ErrInvalidMeta)
	case live && liveAt != "" && liveAt != addr:
		err = errors.WithHintf(errors.Mark(errors.Newf(
			refusalPrefix+"%s at %s: node ID %d is live at %s (node IDs are never reused)",
			name, addr, m.NodeID, liveAt), ErrNodeIDConflict),
			"if %s moved, it is admitted once %s is declared dead; otherwise two processes share one store's identity", name, liveAt)
	case live && name != g.name && g.cfg.Admit != nil:
		if aerr := g.cfg.Admit(m.clone()); aerr != nil {
			err = errors.Mark(errors.Wrapf(aerr, refusalPrefix+"%s at %s", name, addr), ErrPeerRefused)
		}
	}
	if err != nil {
		g.logRefusal(name+"/"+err.Error(), err, slog.String("peer", name), slog.String("peer_addr", addr))
		return decodedMeta{}, err
	}
	if !ok {
		g.mu.Lock()
		g.decoded[name] = dm
		g.mu.Unlock()
	}
	return dm, nil
}

// refusalPrefix starts every refusal error (see parseMemberlistLine).
const refusalPrefix = "refusing gossip peer "

// refusalLogEvery rate-limits the log line for one refusal: memberlist
// hands us the same alive message on every retransmission.
const refusalLogEvery = time.Minute

func (g *Gossip) logRefusal(key string, err error, attrs ...any) {
	now := time.Now()
	g.rejectMu.Lock()
	last, seen := g.rejectLog[key]
	if seen && now.Sub(last) < refusalLogEvery {
		g.rejectMu.Unlock()
		return
	}
	if len(g.rejectLog) >= 1024 {
		clear(g.rejectLog) // bound memory against a flood of distinct peers
	}
	g.rejectLog[key] = now
	g.rejectMu.Unlock()
	g.log.Warn(err.Error(), attrs...)
}

// NotifyJoin records a member memberlist now considers alive (including
// this node, at creation).
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.g.observe(n, EventJoin) }

// NotifyUpdate records a member's new metadata.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.g.observe(n, EventUpdate) }

// NotifyLeave records a member memberlist declared dead or that left.
// memberlist does not say which; the leave intent flag the member
// advertised before leaving does.
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.g.observe(n, EventLeave) }

func (g *Gossip) observe(n *memberlist.Node, typ EventType) {
	name, addr := n.Name, n.Address()
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.records[name]
	var dm decodedMeta
	switch {
	case r != nil && bytes.Equal(r.raw, n.Meta):
		dm = r.decodedMeta
	case bytes.Equal(g.decoded[name].raw, n.Meta):
		dm = g.decoded[name]
	default:
		// NotifyAlive vetted these bytes just before, unless Forget raced
		// with it; decode again rather than lose the member.
		m, flags, err := decodeMeta(n.Meta)
		if err != nil {
			g.log.Error("undecodable metadata passed the alive delegate",
				slog.Any("err", errors.NewAssertionErrorWithWrappedErrf(err, "member %s", name)))
			return
		}
		dm = decodedMeta{raw: slices.Clone(n.Meta), meta: m, flags: flags}
	}
	delete(g.decoded, name) // the record holds it from now on
	if r == nil {
		r = &record{state: StateDead} // a join below makes it alive
		g.records[name] = r
	}
	r.decodedMeta, r.addr = dm, addr
	state := StateAlive
	if typ == EventLeave {
		state = StateDead
		if dm.flags&flagLeaving != 0 {
			state = StateLeft
		}
	}
	if r.state != state || r.lastChange.IsZero() {
		r.state, r.lastChange = state, now
	}
	g.publishLocked(typ, r.member())
}
