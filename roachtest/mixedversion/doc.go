// Package mixedversion generates mixed-version plans from a seed and runs
// them: which nodes upgrade in which order, when the workload starts and
// where the mixed-version steps (DDL, DML, settings changes, a kill -9 of the
// leader) run, whether the cluster rolls every binary back before finalizing
// and upgrades again, and when and how it finalizes. The model is
// CockroachDB's roachtest mixedversion framework.
//
// A Plan is plain data, generated before anything runs, printed whole
// before it acts, and equal for equal seeds and options (tested): a failure
// is reproduced from its seed. Compile turns it into a registry.Plan whose
// steps drive a real cluster through package steps.
//
// Two kinds of plan:
//
//   - NewUpgradePlan: the cluster starts on the first release of an upgrade
//     path (for example 1.0 → 1.1 → 2.0) and moves along it one release at a
//     time, since a binary of release R runs only clusters at the previous
//     release or R. For each hop it holds back finalization
//     (cluster.preserve_downgrade_option), upgrades the nodes in a seeded
//     order, runs mixed-version steps in every binary mix it passes through
//     (majority old, minority old, all new but not finalized), maybe rolls
//     the upgraded nodes back and upgrades again, then finalizes, by hand
//     (SET CLUSTER SETTING version) or automatically.
//   - NewMixPlan: the cluster starts in a fixed binary mix (all new,
//     minority old, majority old; which nodes are old is seeded), bootstraps
//     through an old node, and runs the workload, DDL and DML through old and
//     new nodes, and a kill -9 of the leader, in that mix.
//
// Some steps need what the binaries may not have yet: the settings steps
// need cluster settings, holding back and finalizing an upgrade need
// finalization (SET CLUSTER SETTING version). They are always generated. A
// probe step right after the cluster starts asks the cluster; with
// VersionSteps Required, a cluster that cannot finalize skips the whole
// scenario as pending; with IfSupported, every such step is logged as not
// run, with the reason, and the rest of the plan runs. That lets a rolling
// restart across binaries run today and finalize, unchanged, once the
// machinery lands. An upgrade path of more than one hop needs finalization
// between hops (a binary runs only clusters at its own or the previous
// release), so only Required plans may have one.
package mixedversion
