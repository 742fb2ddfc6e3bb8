// Package gossip is kvnode's membership layer on top of
// github.com/hashicorp/memberlist (SWIM: UDP probes, TCP push/pull, one port
// for both). It tells each node which other nodes exist, how to reach them
// and what they advertise, and gives hints about which of them are up.
//
// memberlist binds its port itself (NetTransport) from Config.BindAddr, as
// kvnode start does. A caller that has bound the port already (the test
// cluster, so that no other process can take it first) passes the TCP
// listener and UDP socket in Config.Sockets; gossip then runs memberlist
// over them with a transport of its own (transport.go), since NetTransport
// cannot take bound sockets.
//
// # What is gossiped
//
// Each node advertises one NodeMeta as its memberlist node metadata: node
// ID, cluster ID, binary version, RPC/SQL/HTTP addresses, start time, the
// pre-Raft schema digest, the draining flag and a few forward-compatible
// Extra strings. The memberlist node name is "n<NodeID>". The record is
// typed and versioned: a format version byte, then tag-length-value fields
// that older binaries skip when they do not know them (see meta.go for the
// compatibility rules). It is size-checked against memberlist.MetaMaxSize
// (512 bytes) when it is set, so an oversized record is an error for the
// caller rather than a panic inside memberlist. A receiver decodes a
// member's record once per change and keeps the struct; readers never
// parse bytes.
//
// # Who is admitted
//
// A peer is refused, at join (MergeDelegate) and on every alive message
// (AliveDelegate, which also covers passive gossip), when its record does
// not decode (garbage, or a format version this binary does not know),
// when it belongs to another cluster (the log line names both cluster
// IDs), when its node ID is live at another address (node IDs are never
// reused, so that is two processes claiming one identity), or when
// Config.Admit refuses it (the server uses this for binaries older than
// the active cluster version). A refused peer never appears in Members.
//
// # States
//
// Members reports every member this node has seen: Alive; Dead when
// memberlist's failure detector declared it failed; Left when it left
// gracefully (Leave announces the intent in its metadata first, since
// memberlist reports failures and departures through one callback).
// Records of dead and left members stay until Forget, although memberlist
// itself drops them after GossipToTheDeadTime. Suspect exists in the API
// but memberlist v0.7.0 does not expose suspicion, so it is not reported.
// Subscribe streams changes without ever blocking memberlist: a slow
// subscriber gets coalesced events.
//
// # What gossip is not
//
// Gossip is for discovery and liveness hints only. It is eventually
// consistent, and a member's state is one node's opinion. In secure mode
// (Config.SecretKey, the cluster's gossip.key) every message is encrypted
// and authenticated with memberlist's keyring (AES-GCM): a process without
// the key can neither read membership nor inject it, and both sides log
// "refused gossip: the peer does not have this cluster's gossip key".
// SetKeys changes the keys at run time (a rotation: Config.AcceptKeys are
// accepted but not used to send; SECURITY.md gives the safe order). In
// insecure mode gossip is plaintext and unauthenticated. Nothing durable or safety-critical is decided from it:
// durable membership (node IDs, decommissioning), node liveness epochs,
// the cluster version and the schema live in the replicated keyspace and
// in group 0. In particular a node that gossip calls dead may still hold
// leases, and a node gossip calls alive may be partitioned from a quorum.
//
// # Concurrency
//
// memberlist calls the delegates with its node lock held. They take only
// this package's own mutex, never wait on I/O or subscribers, and never
// call back into memberlist; public methods never call memberlist while
// holding that mutex. Config.Admit runs inside the delegates and must obey
// the same rules.
package gossip
