package group0

// A node's own side of "group 0 membership follows the node lifecycle"
// (issue 16, D3). The leader demotes and removes members as their nodes
// leave (liveness.Check.LifecycleStep); this is the other half: every node
// of an upgraded cluster checks, periodically and at start, that group 0's
// leader has it in its configuration, rejoins when it has not (a node
// recommissioned after it was removed, a group 0 store lost, a removal
// made out of band), and, until it is a caught-up member again, does not
// trust its catalog for writes.

// MemberObservation is what a node knows about its own place in group 0.
type MemberObservation struct {
	State    State
	Upgraded bool // cluster version 2.0 is active
	Active   bool // this node's liveness membership is active
	// Formation is the current formation record (nil: group 0 not formed).
	Formation *Formation
	// LocalGen is the generation of the replica this node runs (0: none);
	// Isolated, that it runs cut off (recovery).
	LocalGen uint64
	Isolated bool
	// LeaderFound: a leader of the formation's generation answered;
	// InLeaderConfig, its configuration has this node; LeaderApplied, its
	// applied index when it answered.
	LeaderFound    bool
	InLeaderConfig bool
	LeaderApplied  uint64
	// Applied is this node's replica's applied index.
	Applied uint64
}

// OutsideChange says what becomes of a node's "outside group 0" mark,
// under which it refuses writes through its catalog.
type OutsideChange int

const (
	// OutsideKeep: no evidence either way (or a member still catching
	// up): the mark stays as it is.
	OutsideKeep OutsideChange = iota
	// OutsideSet: the node relies on group 0 for its schema and is not a
	// member: its catalog may miss changes (a table dropped elsewhere).
	OutsideSet
	// OutsideClear: a member that has applied everything the leader had
	// applied when asked: its catalog is current.
	OutsideClear
)

// JoinKind says how a node that is not a member gets back in.
type JoinKind int

const (
	// JoinNone: nothing to do (a member, or not allowed to join now).
	JoinNone JoinKind = iota
	// JoinRejoin: its replica is of the current generation: ask the leader
	// to add it back as a learner; the log it has is kept and caught up.
	JoinRejoin
	// JoinPrepare: no replica of the current generation: start an empty
	// one and join (Group0Prepare's path; a snapshot brings the state). A
	// voter that lost its replica is removed by the leader first, only if
	// group 0 keeps a majority without it.
	JoinPrepare
)

// MemberDecision is what DecideMember asks the node to do.
type MemberDecision struct {
	Outside OutsideChange
	Join    JoinKind
	// EnterPostRaft: a caught-up member of an upgraded cluster that is not
	// yet in use_post_raft_procedures enters it (the end of a rejoin).
	EnterPostRaft bool
	// RemoveFirst (with JoinPrepare): group 0 still counts this node as a
	// member but it has no replica of the generation (its store lost it):
	// the leader removes it before it starts an empty replica.
	RemoveFirst bool
}

// DecideMember is the membership check of one node:
//
//   - It concerns a node of an upgraded cluster (or one already in
//     use_post_raft_procedures), outside recovery, once group 0 is formed.
//     During the upgrade the procedure moves nodes; in recovery, the
//     recovery procedure.
//   - A member (the leader's configuration has it, and it runs the current
//     generation) that has applied what the leader had applied is current:
//     the outside mark is cleared, and it enters use_post_raft_procedures
//     if it is not there yet.
//   - A node that is not a member is marked outside if it relies on group 0
//     for its schema (synchronize, use_post_raft_procedures): its catalog
//     may lack changes, and a write into a table dropped elsewhere would be
//     acknowledged and lost. It rejoins if its record is active (a
//     decommissioning or decommissioned node is refused by group 0; it
//     rejoins if it is recommissioned).
//   - A node the leader counts as a member but that has no replica of the
//     current generation (its group 0 store was lost) is not a member that
//     receives changes either: outside, and it joins with an empty replica
//     (JoinPrepare). Its join says so (Fresh), and the leader first
//     removes it as a voter, only if group 0 keeps a majority without it:
//     a voter that lost its log must never vote again as if it had not.
//   - Without an answer from a leader nothing is decided: group 0 may have
//     lost its majority (no DDL commits then; the recovery procedure
//     handles it), or be electing one.
func DecideMember(o MemberObservation) MemberDecision {
	if o.Formation == nil || o.Isolated || o.State == Recovery {
		return MemberDecision{}
	}
	if o.State != UsePostRaft && !o.Upgraded {
		return MemberDecision{}
	}
	if !o.LeaderFound {
		return MemberDecision{}
	}
	guarded := o.State == UsePostRaft || o.State == Synchronize
	var d MemberDecision
	if o.InLeaderConfig && o.LocalGen == o.Formation.Generation {
		if o.Applied >= o.LeaderApplied {
			d.Outside = OutsideClear
			d.EnterPostRaft = o.Upgraded && o.State != UsePostRaft
		}
		return d
	}
	if guarded {
		d.Outside = OutsideSet
	}
	switch {
	case !o.Active:
	case o.LocalGen == o.Formation.Generation:
		d.Join = JoinRejoin
	default:
		d.Join = JoinPrepare
		d.RemoveFirst = o.InLeaderConfig
	}
	return d
}
