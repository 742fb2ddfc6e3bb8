package group0

import "testing"

func TestDecideMember(t *testing.T) {
	f := &Formation{Generation: 2, Seed: 1}
	member := MemberObservation{State: UsePostRaft, Upgraded: true, Active: true, Formation: f, LocalGen: 2,
		LeaderFound: true, InLeaderConfig: true, LeaderApplied: 10, Applied: 10}
	with := func(fn func(*MemberObservation)) MemberObservation {
		o := member
		fn(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		o    MemberObservation
		want MemberDecision
	}{
		{"a caught-up member", member, MemberDecision{Outside: OutsideClear}},
		{"a member catching up keeps its mark", with(func(o *MemberObservation) { o.Applied = 7 }), MemberDecision{}},
		{"removed, same generation: outside, rejoins keeping its log",
			with(func(o *MemberObservation) { o.InLeaderConfig = false }), MemberDecision{Outside: OutsideSet, Join: JoinRejoin}},
		{"removed and decommissioning: outside, does not rejoin",
			with(func(o *MemberObservation) { o.InLeaderConfig, o.Active = false, false }), MemberDecision{Outside: OutsideSet}},
		{"no replica, post-Raft, not in the configuration: outside, joins",
			with(func(o *MemberObservation) { o.InLeaderConfig, o.LocalGen = false, 0 }), MemberDecision{Outside: OutsideSet, Join: JoinPrepare}},
		{"no replica but in the configuration (store lost): outside, joins fresh",
			with(func(o *MemberObservation) { o.LocalGen = 0 }), MemberDecision{Outside: OutsideSet, Join: JoinPrepare, RemoveFirst: true}},
		{"no replica and no leader answers (group 0 lost its majority): nothing decided",
			with(func(o *MemberObservation) { o.LeaderFound, o.InLeaderConfig, o.LocalGen = false, false, 0 }), MemberDecision{}},
		{"a replica of an old generation: outside, joins the current one",
			with(func(o *MemberObservation) { o.LocalGen, o.InLeaderConfig = 1, false }), MemberDecision{Outside: OutsideSet, Join: JoinPrepare}},
		{"no leader answers: nothing decided",
			with(func(o *MemberObservation) { o.LeaderFound, o.InLeaderConfig = false, false }), MemberDecision{}},
		{"pre-Raft in an upgraded cluster (recommissioned after the upgrade skipped it): joins, not outside",
			with(func(o *MemberObservation) { o.State, o.InLeaderConfig, o.LocalGen = UsePreRaft, false, 0 }), MemberDecision{Join: JoinPrepare}},
		{"rejoined pre-Raft node, caught up: enters post-Raft",
			with(func(o *MemberObservation) { o.State = UsePreRaft }), MemberDecision{Outside: OutsideClear, EnterPostRaft: true}},
		{"synchronize in an upgraded cluster, not a member: outside, rejoins",
			with(func(o *MemberObservation) { o.State, o.InLeaderConfig = Synchronize, false }), MemberDecision{Outside: OutsideSet, Join: JoinRejoin}},
		{"during the upgrade the procedure decides",
			with(func(o *MemberObservation) { o.State, o.Upgraded, o.InLeaderConfig = Synchronize, false, false }), MemberDecision{}},
		{"recovery: the recovery procedure decides",
			with(func(o *MemberObservation) { o.State, o.InLeaderConfig = Recovery, false }), MemberDecision{}},
		{"isolated replica: nothing", with(func(o *MemberObservation) { o.Isolated, o.InLeaderConfig = true, false }), MemberDecision{}},
		{"group 0 not formed: nothing", with(func(o *MemberObservation) { o.Formation = nil }), MemberDecision{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DecideMember(tc.o); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
