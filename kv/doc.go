// Package kv is kvnode's replicated data plane: one etcd Raft group (the
// data group) whose state machine is the replicated key space of the node's
// Pebble engine. It offers the linearizable key-value API of package kvpb
// (Get, Scan, atomic conditional Write, Increment) and the membership
// operations the server needs (add a learner, remove a member, transfer
// leadership).
//
// # One goroutine owns the group
//
// Replica.run is the only goroutine that touches the raft.RawNode. Proposals,
// read requests, incoming messages and transport reports reach it on
// channels. Each Ready is handled in the order the etcd-io/raft README
// prescribes (persist, send, apply, Advance), refined in ways that keep its
// guarantees:
//
//  1. a leader sends its appends before it persists them (a follower
//     acknowledges only what it has persisted; the leader counts itself only
//     after its own write), and yields once so that they reach the peers'
//     sockets before Pebble's fsync of its own write holds a P;
//  2. committed entries that were durable here before the Ready are applied,
//     and their proposers answered, first: a write does not wait for the
//     fsync of the entries proposed after it;
//  3. the entries and hard state are persisted in one Pebble batch, synced
//     when Raft says so (MustSync). While a leader's fsync runs, the loop
//     steps the messages that arrive and applies the entries that
//     acknowledgements commit (persist); what that produces comes out
//     in the next Ready;
//  4. the remaining messages are sent, the remaining committed entries
//     applied (conf changes through ApplyConfChange) in one Pebble batch that
//     also records the applied index and configuration, and Advance called.
//
// Applying before the hard state that records the commit is written means a
// crash can leave the applied index ahead of the stored commit index;
// loading raises the commit index to it. Truncation stays behind the last
// entry a Ready handed over, since Raft reads those from the log.
//
// Proposals that arrive together are proposed together and share one Ready,
// hence one fsync: under concurrency the cost of durability is amortized
// over the batch. Acknowledgements are stepped before proposals in each
// turn, so the commit index they advance rides on the next append.
//
// # Linearizable reads: a leader lease, else ReadIndex
//
// Reads use Raft's ReadIndex (ReadOnlySafe): the leader confirms with a
// heartbeat round that it is still leader, the read waits until the local
// replica has applied up to the returned index, then reads Pebble directly.
// It works on followers too (the follower asks the leader). All reads that
// arrive while a ReadIndex is in flight share the next one, so heartbeat
// rounds are amortized like fsyncs.
//
// On the leader, a completed round also grants a lease (lease.go): for the
// least election timeout less the maximum clock offset (Config.MaxOffset),
// measured on the node's clock from the round's start, no other node can
// become leader, so the leader serves reads at its commit index without a
// round, and answers its followers' ReadIndex requests from it too (one
// message each way). It renews the lease every tick. It ends the lease before it votes
// or transfers leadership, a restarted replica holds its vote back for an
// election timeout, and the server turns leases off (Config.LeaseReads)
// unless the cluster is at 2.1 and the node's clock is within the bound of
// the others'. kv/DESIGN.md gives the argument and what it assumes of
// clocks; with leases off, correctness does not depend on clocks at all.
//
// Once linearized, a point read (Get) is served from a read cache of
// recently read keys (readcache.go; kv/DESIGN.md, "The read cache") when it
// holds the key, else from Pebble. apply removes every key it writes from
// that cache, and holds off every fill of their shards, from before it
// commits its batch until after (before the applied index moves or a
// proposer is answered), and a read that raced an apply does not fill it,
// so the cache holds only what Pebble holds now. Scans and the batched reads of kvpb.Streamer read Pebble.
//
// # Writes and their outcomes
//
// A write is acknowledged once the proposing node has applied it, which
// implies it is committed (durable on a majority). Conditional puts are
// evaluated at apply time, on every replica identically, so INSERT's
// uniqueness and UPDATE's compare-and-swap are correct without locks.
// The reads these evaluations make are served by a row cache that the Raft
// loop keeps equal to the applied state (rowcache.go), instead of a Pebble
// point read per write on every replica.
// A proposal that never entered the log (no leader known) is retried; one
// whose fate is unknown when the caller's deadline passes returns
// kvpb.ErrAmbiguous, and is never silently re-proposed (a re-proposal could
// apply a write twice).
//
// A follower hands its proposals to the leader of its current term
// (Transport.Forward); the leader appends them only in that term, which is
// what lets a later term prove an attempt lost (flushProposals). When the
// call fails, the follower sends the same proposals again to the same leader
// and term for a few seconds, while a caller still waits for one of them, and
// the leader, which remembers the forwarded commands it appended this term,
// does not append one twice (forward.go). A write pending on a follower when
// a snapshot arrives is answered as ambiguous: the snapshot may hold it. A
// node that has joined but not yet received its first snapshot does not
// propose at all; its writes wait for that snapshot.
//
// # Log truncation and snapshots
//
// Each replica truncates its own log once it holds more than 2*LogRetain
// applied entries, keeping the last LogRetain. Snapshots are not stored: the
// engine is the snapshot. When the leader must catch up a follower whose
// next entry was truncated, Raft asks raftStorage.Snapshot only for the
// applied state's metadata; the transport then takes a Pebble snapshot of
// the engine, off the Ready loop, and streams the replicated key span at its
// applied index in 1 MiB chunks on a gRPC stream of its own, so heartbeats
// are never delayed and no message carries the whole store. The follower
// collects the chunks into one batch that clears its replicated span first,
// hands the snapshot to Raft, and commits the batch (with its log reset)
// atomically when Raft returns the snapshot in a Ready (snapshot.go). The
// receiver holds that batch in memory until then.
//
// # Membership
//
// New nodes join as learners and are promoted by the leader once they hold
// its state (the leader is replicating entries to them, so a snapshot, if
// one was needed, has been applied), have answered it lately, and are
// within 100 entries of its log, while there are fewer than MaxVoters (5)
// voters; further nodes stay learners. Node IDs come from a replicated
// counter and are never reused.
//
// # Recovery from a lost majority
//
// A group whose majority of voters is lost for good cannot change its
// configuration. recover.go offers what etcd's --force-new-cluster does:
// ForceNewConfig makes one survivor the only voter, keeping every entry it
// knows to be committed and appending the configuration changes that remove
// everyone else, in one synced batch; Wipe drops another survivor's state so
// that it rejoins from a snapshot. Package kv/loqrecovery decides who and when
// (`kvnode node recover`).
//
// # Testing the loop
//
// TestingKnobs (knobs.go) let the crash harness (harness_test.go) run real
// replicas deterministically: no ticker, an in-memory transport
// (newLocalTransport), and a callback at named points of the loop where
// the test holds the write-ahead log's fsync or crashes the node, whose
// Pebble store lives on a strict in-memory file system that keeps only
// what was synced. Datadriven scripts under testdata/raft/ drive it;
// kv/DESIGN.md ("The crash harness") says what they check.
//
// # What it does not do
//
// It has one group for all data (no ranges or splits), and no transactions
// across statements; the SQL layer builds on single atomic batches and
// compare-and-swap. A follower's read still takes a round trip to the
// leader.
package kv
