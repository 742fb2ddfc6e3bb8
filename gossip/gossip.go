package gossip

import (
	"bytes"
	"cmp"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"

	"github.com/kvnode/kvnode/nodeid"
)

// Errors returned by this package, beyond the metadata errors in meta.go.
var (
	// ErrAddrInUse is returned by New when the gossip port is taken.
	ErrAddrInUse = errors.New("gossip address in use")
	// ErrClusterMismatch marks the refusal of a peer of another cluster.
	ErrClusterMismatch = errors.New("gossip peer belongs to another cluster")
	// ErrNodeIDConflict marks the refusal of a peer that claims a node ID
	// that is live at another address.
	ErrNodeIDConflict = errors.New("gossip peer claims a node ID live elsewhere")
	// ErrPeerRefused marks the refusal of a peer by Config.Admit.
	ErrPeerRefused = errors.New("gossip peer refused")
	// ErrClosed is returned by operations after Shutdown.
	ErrClosed = errors.New("gossip is shut down")
	// ErrLeft is returned by UpdateMeta after Leave.
	ErrLeft = errors.New("gossip has left the cluster")
	// ErrBroadcastTimeout is returned when memberlist did not confirm a
	// broadcast in time. The local state has changed regardless, and
	// memberlist's periodic push/pull still spreads it.
	ErrBroadcastTimeout = errors.New("gossip broadcast not confirmed in time")
)

// State is a member's state as this node sees it.
type State int

const (
	// StateAlive: the member answers memberlist's probes.
	StateAlive State = iota
	// StateSuspect: reserved for a member that failed probes and is not yet
	// declared dead. memberlist v0.7.0 exposes no hook for suspicion (its
	// event delegate reports joins, updates and departures only, and the
	// State field of the nodes it hands out is never set), so Members does
	// not report it today; consumers should treat it as live, like Alive.
	StateSuspect
	// StateDead: memberlist declared the member failed.
	StateDead
	// StateLeft: the member left gracefully (Gossip.Leave).
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// Member is one node as this node knows it through gossip.
type Member struct {
	Meta NodeMeta
	// Addr is the member's gossip address (host:port).
	Addr  string
	State State
	// LastChange is when State last changed, by this node's clock.
	LastChange time.Time
}

// IsLive reports whether the member is believed to be running. It is a
// hint; durable liveness lives in the replicated keyspace.
func (m Member) IsLive() bool { return m.State == StateAlive || m.State == StateSuspect }

// Config configures a Gossip instance.
type Config struct {
	// BindAddr is the host:port memberlist listens on, TCP and UDP on the
	// same port (from --gossip-addr). Port 0 picks a free port; Addr
	// reports it.
	BindAddr string
	// Sockets, if set, are the gossip port already bound by the caller
	// (tests); BindAddr is then ignored and the sockets' address is used.
	// New takes them over: Shutdown (or a failed New) closes them.
	Sockets *Sockets
	// AdvertiseAddr is the host:port peers should use, if it differs from
	// BindAddr (for example when binding 0.0.0.0).
	AdvertiseAddr string
	// Meta is the initial metadata; NodeID and ClusterID must be set and
	// cannot change afterwards.
	Meta NodeMeta
	// Logger receives gossip's and memberlist's logs (default slog.Default).
	Logger *slog.Logger
	// Admit, if set, may refuse a live peer for reasons of its own (for
	// example a binary version older than the active cluster version); a
	// non-nil error keeps the peer out, and the error is logged. Peers are
	// checked when they join and again whenever their metadata changes.
	//
	// The refusal is this node's alone: the refused peer is not told, and
	// may list this node while this node ignores it. The server should
	// apply the same rule in its RPC join, where the joining node gets a
	// clear refusal; Admit keeps out peers that reach gossip anyway.
	//
	// Admit runs inside memberlist's delegates, under memberlist's node
	// lock: it must be quick, must not block and must not call UpdateMeta,
	// Join, Leave or Shutdown. Reading Members is fine.
	Admit func(NodeMeta) error
	// Tuning overrides memberlist's timers; zero fields keep memberlist's
	// LAN defaults. Tests use FastTuning.
	Tuning Tuning
	// BroadcastTimeout bounds how long UpdateMeta and Leave wait for
	// memberlist to confirm their broadcast (default 5s).
	BroadcastTimeout time.Duration
	// SecretKey, if set (16, 24 or 32 bytes: AES-128, -192 or -256), is
	// the cluster's gossip key (secure mode): memberlist encrypts and
	// authenticates every message with it (AES-GCM, its keyring), and
	// drops any message it cannot decrypt, so a process without the key
	// can neither read membership nor inject it. Both sides log the
	// failure. Empty: plaintext gossip (insecure mode).
	SecretKey []byte
	// AcceptKeys are further keys accepted from peers but never used to
	// send (a rotation in progress; SetKeys changes both at run time).
	// Only with SecretKey.
	AcceptKeys [][]byte
}

// Tuning holds memberlist's timers. A zero field keeps the value of
// memberlist.DefaultLANConfig.
type Tuning struct {
	ProbeInterval       time.Duration
	ProbeTimeout        time.Duration
	GossipInterval      time.Duration
	PushPullInterval    time.Duration
	GossipToTheDeadTime time.Duration
	TCPTimeout          time.Duration
	// SuspicionMult scales how long a member stays suspect before it is
	// declared dead, in probe intervals.
	SuspicionMult int
}

// FastTuning returns timers for in-process tests: failures are detected in
// about a second instead of several, at the cost of more traffic and of
// false suspicions on a loaded machine (which memberlist refutes).
func FastTuning() Tuning {
	return Tuning{
		ProbeInterval:       200 * time.Millisecond,
		ProbeTimeout:        100 * time.Millisecond,
		GossipInterval:      20 * time.Millisecond,
		PushPullInterval:    2 * time.Second,
		GossipToTheDeadTime: 2 * time.Second,
		TCPTimeout:          2 * time.Second,
		SuspicionMult:       3,
	}
}

func (t Tuning) apply(c *memberlist.Config) {
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&c.ProbeInterval, t.ProbeInterval)
	set(&c.ProbeTimeout, t.ProbeTimeout)
	set(&c.GossipInterval, t.GossipInterval)
	set(&c.PushPullInterval, t.PushPullInterval)
	set(&c.GossipToTheDeadTime, t.GossipToTheDeadTime)
	set(&c.TCPTimeout, t.TCPTimeout)
	if t.SuspicionMult > 0 {
		c.SuspicionMult = t.SuspicionMult
	}
}

const defaultBroadcastTimeout = 5 * time.Second

// Gossip is one node's membership in the gossip network. All methods are
// safe for concurrent use.
type Gossip struct {
	cfg       Config
	log       *slog.Logger
	name      string // memberlist node name, "n<NodeID>"
	nodeID    nodeid.ID
	clusterID string
	bcastWait time.Duration
	// ml is set once New has created it and never changes; the delegates
	// never use it (memberlist calls them with its node lock held, and
	// calling back into memberlist there would deadlock).
	ml *memberlist.Memberlist
	// keyring is memberlist's keyring in secure mode (nil: plaintext);
	// SetKeys changes it in place (it has its own lock).
	keyring *memberlist.Keyring

	// opMu serializes the operations that change the local node's state in
	// memberlist (UpdateMeta, Leave, Shutdown): memberlist panics on Leave
	// after Shutdown, and two UpdateMeta calls must not interleave their
	// read-modify-write of the local meta.
	opMu sync.Mutex

	// mu guards everything below. Lock order: memberlist's node lock, then
	// mu (the delegates take mu while memberlist holds its lock), so mu is
	// never held while calling into memberlist.
	mu       sync.Mutex
	local    NodeMeta  // what this node advertises
	flags    metaFlags // session flags advertised with local
	localRaw []byte    // encodeMeta(local, flags), returned to memberlist
	closed   bool
	left     bool
	// records holds every member this node has seen, keyed by memberlist
	// node name, including dead and left ones until Forget: memberlist
	// reaps dead nodes after GossipToTheDeadTime, status views need them
	// longer.
	records map[string]*record
	// decoded caches, per node name, the last metadata that passed the
	// AliveDelegate, so that the event delegate that follows does not
	// decode the same bytes again. An entry moves into records when the
	// member joins; it holds at most one entry per node ID of this cluster.
	decoded map[string]decodedMeta
	// mergeRejects are the last few refusals of a push/pull merge, kept so
	// that Join can return a typed error: memberlist flattens the merge
	// delegate's error into a string.
	mergeRejects []error
	subs         map[*subscriber]struct{}
	seq          uint64 // event sequence, orders coalesced events

	pumps sync.WaitGroup // subscriber goroutines

	rejectMu  sync.Mutex
	rejectLog map[string]time.Time // rate limit of refusal log lines
}

// record is what Gossip knows about one member.
type record struct {
	decodedMeta
	addr       string
	state      State
	lastChange time.Time
}

// decodedMeta is a decoded record with the bytes it came from. meta is
// immutable once decoded: it is replaced, never modified, so it can be read
// without copying and is cloned only when handed out.
type decodedMeta struct {
	raw   []byte
	meta  NodeMeta
	flags metaFlags
}

func (r *record) member() Member {
	return Member{Meta: r.meta, Addr: r.addr, State: r.state, LastChange: r.lastChange}
}

// New validates cfg, starts memberlist listening on cfg.BindAddr and
// returns the Gossip. The node is alone until Join.
func New(cfg Config) (*Gossip, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With(slog.String("subsystem", "gossip"))
	meta := cfg.Meta.clone()
	if meta.NodeID <= 0 || meta.ClusterID == "" {
		return nil, errors.AssertionFailedf("gossip needs the node ID and cluster ID, got n%d in cluster %q", meta.NodeID, meta.ClusterID)
	}
	g := &Gossip{
		cfg:       cfg,
		log:       logger,
		name:      nodeName(meta.NodeID),
		nodeID:    meta.NodeID,
		clusterID: meta.ClusterID,
		bcastWait: cmp.Or(cfg.BroadcastTimeout, defaultBroadcastTimeout),
		local:     meta,
		records:   make(map[string]*record),
		decoded:   make(map[string]decodedMeta),
		subs:      make(map[*subscriber]struct{}),
		rejectLog: make(map[string]time.Time),
	}
	raw, err := g.encodeLocal(meta, 0)
	if err != nil {
		return nil, errors.Wrap(err, "invalid gossip metadata")
	}
	g.localRaw = raw

	mc := memberlist.DefaultLANConfig()
	mc.Name = g.name
	var bound *boundTransport
	if cfg.Sockets != nil {
		addr, err := cfg.Sockets.Addr()
		if err != nil {
			cfg.Sockets.Close()
			return nil, err
		}
		cfg.BindAddr, g.cfg.BindAddr = addr, addr
		bound = newBoundTransport(cfg.Sockets, logger)
		mc.Transport = bound
	}
	bindIP, bindPort, err := resolveAddr(cfg.BindAddr, "--gossip-addr")
	if err != nil {
		if bound != nil {
			_ = bound.Shutdown()
		}
		return nil, err
	}
	mc.BindAddr, mc.BindPort = bindIP, bindPort
	// DefaultLANConfig advertises port 7946; advertise the bound port
	// unless told otherwise (memberlist substitutes the real one for 0).
	mc.AdvertisePort = bindPort
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, err = resolveAddr(cfg.AdvertiseAddr, "gossip advertise address")
		if err != nil {
			if bound != nil {
				_ = bound.Shutdown()
			}
			return nil, err
		}
	}
	cfg.Tuning.apply(mc)
	if len(cfg.SecretKey) > 0 {
		kr, err := memberlist.NewKeyring(append([][]byte{cfg.SecretKey}, cfg.AcceptKeys...), cfg.SecretKey)
		if err != nil {
			if bound != nil {
				_ = bound.Shutdown()
			}
			return nil, errors.Wrap(err, "invalid gossip key")
		}
		mc.Keyring = kr
		g.keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	// A node ID belongs to one store for life and is never reused, so once
	// its old address is dead, an alive message from a new address is that
	// store restarted elsewhere: let it reclaim the name at once. (A live
	// name claimed from a second address is refused by NotifyAlive.)
	mc.DeadNodeReclaimTime = time.Nanosecond
	// memberlist checks delegate protocol ranges on every push/pull (as
	// consul does with its vsn tags); keep them equal to the metadata
	// format version so that the two checks agree.
	mc.DelegateProtocolVersion = metaFormatV1
	mc.DelegateProtocolMin = metaFormatV1
	mc.DelegateProtocolMax = metaFormatV1
	mc.Logger = newMemberlistLogger(logger)
	d := &delegate{g: g}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge = d, d, d, d

	ml, err := memberlist.Create(mc)
	if err != nil {
		if bound != nil {
			_ = bound.Shutdown()
		}
		// memberlist formats the listener's error with %v, so the errno
		// is gone from the chain; match its text (Unix wording).
		if strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
			return nil, errors.WithHint(
				errors.Mark(errors.Newf("gossip address %s is in use: choose another --gossip-addr", cfg.BindAddr), ErrAddrInUse),
				"another kvnode (or another program) listens on that port, over TCP or UDP")
		}
		return nil, errors.Wrapf(err, "cannot start gossip on %s", cfg.BindAddr)
	}
	g.ml = ml
	return g, nil
}

// resolveAddr splits host:port and resolves the host to an IP literal, as
// memberlist wants (it would bind every interface for a host it cannot
// parse). An empty host means every interface.
func resolveAddr(addr, what string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.WithHintf(errors.Wrapf(err, "invalid %s %q", what, addr), "use host:port, for example 127.0.0.1:26257")
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, errors.Newf("invalid %s %q: bad port", what, addr)
	}
	if host == "" {
		return "0.0.0.0", int(port), nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), int(port), nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", 0, errors.Wrapf(cmp.Or(err, errors.New("no addresses")), "cannot resolve %s %q", what, addr)
	}
	return ips[0].String(), int(port), nil
}

// encodeLocal encodes the local meta with the given flags, refusing a
// record that would not fit once Leave adds the leaving flag: Leave must
// not fail on size.
func (g *Gossip) encodeLocal(m NodeMeta, flags metaFlags) ([]byte, error) {
	if _, err := encodeMeta(m, flags|flagLeaving); err != nil {
		return nil, err
	}
	return encodeMeta(m, flags)
}

// SetKeys replaces the gossip keys of a node started with a SecretKey:
// from now on it sends with primary and accepts primary and every key of
// accept, and no other. It refuses to turn encryption on or off. The steps
// of a rotation (SECURITY.md) keep every pair of nodes able to read each
// other at every moment: add the new key as accepted everywhere, then make
// it the primary everywhere, then drop the old one everywhere.
func (g *Gossip) SetKeys(primary []byte, accept [][]byte) error {
	if g.keyring == nil {
		return errors.New("this node gossips in plaintext (insecure): it has no gossip keys to change")
	}
	want := append([][]byte{primary}, accept...)
	for _, k := range want {
		if err := memberlist.ValidateKey(k); err != nil {
			return errors.Wrap(err, "invalid gossip key")
		}
	}
	for _, k := range want {
		if err := g.keyring.AddKey(k); err != nil {
			return errors.Wrap(err, "installing a gossip key")
		}
	}
	if err := g.keyring.UseKey(primary); err != nil {
		return errors.Wrap(err, "using the primary gossip key")
	}
	var stale [][]byte
	for _, have := range g.keyring.GetKeys() {
		keep := false
		for _, k := range want {
			keep = keep || bytes.Equal(have, k)
		}
		if !keep {
			stale = append(stale, append([]byte(nil), have...))
		}
	}
	for _, k := range stale {
		if err := g.keyring.RemoveKey(k); err != nil {
			return errors.Wrap(err, "removing an old gossip key")
		}
	}
	return nil
}

// Addr returns the gossip address this node advertises (with the real port
// when BindAddr had port 0).
func (g *Gossip) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.records[g.name]; r != nil {
		return r.addr
	}
	return g.cfg.BindAddr
}

// Join contacts the given gossip addresses and merges their view of the
// cluster. It returns how many addresses it reached; an error means none
// accepted this node. A refusal by a peer of another cluster (or one with a
// conflicting node ID) is reported as such (errors.Is ErrClusterMismatch,
// ErrNodeIDConflict, ErrPeerRefused).
func (g *Gossip) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("no gossip addresses to join")
	}
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	n, err := g.ml.Join(addrs)
	if err == nil {
		return n, nil
	}
	g.mu.Lock()
	rejects := slices.Clone(g.mergeRejects)
	g.mu.Unlock()
	for _, rej := range slices.Backward(rejects) {
		if strings.Contains(err.Error(), rej.Error()) {
			return n, errors.Wrapf(rej, "cannot join gossip via %s", strings.Join(addrs, ", "))
		}
	}
	return n, errors.WithHint(errors.Wrapf(err, "cannot join gossip via %s", strings.Join(addrs, ", ")),
		"check that these are gossip addresses of running nodes of this cluster")
}

// UpdateMeta applies fn to a copy of the local metadata and advertises the
// result, waiting up to Config.BroadcastTimeout for memberlist to confirm
// the broadcast. NodeID and ClusterID cannot change. An error other than
// ErrBroadcastTimeout means nothing changed. fn must not call UpdateMeta.
func (g *Gossip) UpdateMeta(fn func(*NodeMeta)) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if err := g.usableLocked(); err != nil {
		g.mu.Unlock()
		return err
	}
	next, flags := g.local.clone(), g.flags
	g.mu.Unlock()

	fn(&next)
	next = next.clone() // fn may keep a reference to next.Extra
	if next.NodeID != g.nodeID || next.ClusterID != g.clusterID {
		return errors.AssertionFailedf("gossip metadata cannot change node or cluster ID (n%d in %s to n%d in %s)",
			g.nodeID, g.clusterID, next.NodeID, next.ClusterID)
	}
	raw, err := g.encodeLocal(next, flags)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.local, g.localRaw = next, raw
	g.mu.Unlock()
	if err := g.ml.UpdateNode(g.bcastWait); err != nil {
		return errors.WithHint(errors.Mark(errors.Wrapf(err, "metadata update of %s", g.name), ErrBroadcastTimeout),
			"the update applies locally and spreads with the next push/pull")
	}
	return nil
}

func (g *Gossip) usableLocked() error {
	if g.closed {
		return ErrClosed
	}
	if g.left {
		return ErrLeft
	}
	return nil
}

// LocalMeta returns the metadata this node advertises.
func (g *Gossip) LocalMeta() NodeMeta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.local.clone()
}

// Members returns every member this node knows, itself included and dead or
// left members until Forget, ordered by node ID.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	ms := make([]Member, 0, len(g.records))
	for _, r := range g.records {
		ms = append(ms, r.member())
	}
	g.mu.Unlock()
	for i := range ms {
		ms[i].Meta = ms[i].Meta.clone()
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.Meta.NodeID, b.Meta.NodeID) })
	return ms
}

// Member returns the member with the given node ID.
func (g *Gossip) Member(nodeID nodeid.ID) (Member, bool) {
	g.mu.Lock()
	r, ok := g.records[nodeName(nodeID)]
	var m Member
	if ok {
		m = r.member()
	}
	g.mu.Unlock()
	m.Meta = m.Meta.clone()
	return m, ok
}

// Forget drops the record of a dead or left member, once status views no
// longer need it (for example after decommissioning). Forgetting an unknown
// node is a no-op; a live member cannot be forgotten, since nothing would
// bring its record back until its metadata changes.
func (g *Gossip) Forget(nodeID nodeid.ID) error {
	name := nodeName(nodeID)
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.records[name]
	if !ok {
		return nil
	}
	if r.member().IsLive() {
		return errors.Newf("cannot forget %s: it is %s", name, r.state)
	}
	delete(g.records, name)
	delete(g.decoded, name)
	return nil
}

// Leave announces that this node leaves the cluster, so that peers record
// it as Left rather than Dead, and waits up to timeout (BroadcastTimeout if
// not positive) for the announcement to go out. The node keeps answering
// gossip until Shutdown. Leaving twice is a no-op.
func (g *Gossip) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = g.bcastWait
	}
	deadline := time.Now().Add(timeout)
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	if g.left {
		g.mu.Unlock()
		return nil
	}
	g.left = true
	g.flags |= flagLeaving
	raw, err := encodeMeta(g.local, g.flags)
	if err == nil {
		g.localRaw = raw
	}
	g.mu.Unlock()

	// First the leave intent, in the metadata. memberlist's leave message
	// follows with the same incarnation, so a peer that gets the two out
	// of order still ends up with the node gone, merely as Dead.
	if err != nil {
		// encodeLocal reserved room for the flag, so this cannot happen.
		g.log.Error("cannot announce leave intent", slog.Any("err", errors.NewAssertionErrorWithWrappedErrf(err, "encode")))
	} else if err := g.ml.UpdateNode(time.Until(deadline)); err != nil {
		g.log.Warn("leave intent not confirmed; some peers may report this node dead instead of left", slog.Any("err", err))
	}
	// memberlist's Leave waits forever for a zero timeout.
	if err := g.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return errors.Mark(errors.Wrapf(err, "leave of %s", g.name), ErrBroadcastTimeout)
	}
	return nil
}

// Shutdown stops gossip without announcing anything (call Leave first for
// a graceful exit): peers will declare this node dead. Subscriptions are
// closed. Shutdown is idempotent.
func (g *Gossip) Shutdown() error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	subs := g.subs
	g.subs = nil
	g.mu.Unlock()

	err := g.ml.Shutdown()
	for s := range subs {
		s.stop()
	}
	g.pumps.Wait()
	return err
}
