// Package decommission runs decommissioning on the data group, as the Raft
// leader runs it:
//
//  1. `kvnode node decommission ID…` reaches any node, which forwards it to
//     the leader. There, under its mutex, the quorum rule (liveness.Check)
//     is evaluated on linearizable reads of every liveness record and the
//     group's configuration; if it refuses, nothing is written. Otherwise
//     one atomic batch of conditional puts marks every target
//     decommissioning.
//  2. The leader's decommission loop (every 500ms, also under its mutex)
//     removes decommissioning nodes from the data group one at a time, in
//     liveness.Check.RemovalOrder, each only while liveness.Check.CanRemove
//     allows it (so a node that dies meanwhile makes it wait instead of
//     losing quorum). If the leader itself is to be removed, it hands
//     leadership to another active, live voter first and the next leader
//     goes on. The promotion gate (AllowPromote) never promotes a
//     decommissioning learner.
//  3. A decommissioning node that is no longer a member is marked
//     decommissioned (a conditional put).
//
// The loop runs on whichever node leads, so a decommission survives the
// CLI going away and leader changes. Recommissioning (also on the leader,
// under its mutex) is allowed only while the node is still a member.
//
// A node's own side (self.go): a decommissioned node refuses to start
// (CheckNotDecommissioned asks its own replica, or any peer once it is no
// longer a member), and a running one finds out when its heartbeats fail
// (HeartbeatFailed) and stops serving; the data group's promotion gate
// (AllowPromote) never promotes a learner that is not active.
//
// Layering: it acts on the node's *kv.Replica and on liveness records
// (package liveness decides: the quorum rule, liveness.Check), forwards
// requests to the leader through nodeapi's client, and reads what it needs
// of the node and of group 0 through the Node and Group0 interfaces it
// declares. It never imports the server; the server builds it, runs its
// loop and serves its two kvnode.Node methods.
package decommission
