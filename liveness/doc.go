// Package liveness keeps one durable liveness record per node in the
// replicated keyspace and decides, from those records alone, which nodes are
// live, dead, draining, decommissioning or decommissioned. The automatic
// upgrade finalization decides from exactly this information, so the rules
// below are the contract; change them only with a migration.
//
// # The record
//
// Every node that ever got an ID has a Record under
// keys.LivenessKey(nodeID) (keys.LivenessPrefix + uint32BE(nodeID)), JSON-encoded:
//
//	{node_id, epoch, expiration, draining, membership, updated_at}
//
// The record is created in the same atomic kvpb.Write batch as the node's
// record (keys.NodeKey) when the cluster is bootstrapped (node 1) and when
// the Raft leader admits a joining node, so no node can hold an ID without a
// liveness record. A new record has epoch 0, expiration 0 (never live yet)
// and membership active.
//
// Every change to a record is a conditional put (kvpb.OpCPut) that expects
// the exact bytes the writer last read, so concurrent writers (the node's
// own heartbeat, an operator decommissioning it, the decommission loop on
// the leader) never overwrite each other: the loser re-reads the record,
// re-applies its change to what it found and tries again. A heartbeat keeps
// the membership it finds; only membership transitions change it. Writers
// decode and re-encode the whole record, so a release that adds a field
// must not rely on it until the cluster version says every node knows it.
//
// # Epochs and heartbeats
//
// When a node starts (after its replica can read), Start increments its
// epoch and sets expiration = now + LivenessDuration (default 4.5s). It then
// heartbeats every HeartbeatInterval (default 1.5s), extending expiration to
// now + LivenessDuration (never backwards) and refreshing updated_at and
// draining. The epoch therefore counts the node's starts; it only ever
// grows. (An ambiguous write during Start may count one start twice; epochs
// are compared for order, never counted.) Starting a node clears its
// draining flag: draining lasts until the process stops.
//
// # The one rule for "live"
//
// A node is live at time now (the reader's wall clock, UTC nanoseconds) iff
// its record's expiration > now. Nothing else decides liveness: gossip
// (memberlist) failure detection is a faster hint for addressing and status
// pages, never an input to this rule. A node is dead once it has not been
// live for the cluster setting server.time_until_store_dead (default 5m):
// expiration + time_until_store_dead <= now. Between the two it is
// "unavailable". Clocks of different nodes are assumed to be within a small
// fraction of LivenessDuration of each other; the rule is used for
// operator-facing decisions (is it safe to remove a node, is every node
// up), never for the consistency of data (reads and writes go through Raft
// and need no clock).
//
// # Membership
//
//	active ──decommission──► decommissioning ──(removed from the Raft group)──► decommissioned
//	   ▲                          │
//	   └──────recommission────────┘      (only while it is still a Raft member)
//
// decommissioned is final: the node is no longer a member of the data Raft
// group, may never rejoin (its ID is never reused), and refuses to start on
// its old store. Recommissioning a decommissioned node is refused.
//
// # The quorum rule for decommissioning
//
// Check.Validate refuses, before anything is written, to decommission a set
// of nodes when: an ID has no record (unknown node); no member of the data
// group would remain (the last node); the group has no live majority of
// voters now; or the voters that remain (after promoting live learners up to
// the voter limit) would not have a live majority. Check.CanRemove applies
// the same rule to each single removal when the leader performs it, so a
// node that dies in the meantime makes the removal wait rather than lose
// quorum. Nodes already decommissioning count as leaving.
//
// The same Check, built on group 0's configuration (Group = "group 0"),
// applies the rule to group 0 as well: a decommission is refused if it
// would leave either group without a live majority (unless group 0 has
// none already: then only its recovery can help, and it needs the dead
// nodes decommissioned). Group 0's membership follows the lifecycle
// through Check.LifecycleStep: a decommissioning voter is demoted to a
// learner (it keeps following the schema, so a recommission costs
// nothing), a decommissioned node is removed, each change only while
// CanRemove allows it.
//
// # What it does not do
//
// It holds no Raft code and does not change group membership: the server
// removes members from the Raft group (it owns the kv.Replica) and asks this
// package only for the records and the rule. It does not import the cluster
// settings: the server passes time_until_store_dead in as a function.
package liveness
