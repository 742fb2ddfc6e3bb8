package console

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// Banners returns what the operator should know about st, most severe
// first, each with its fix. now is the time the "set for how long" of the
// preserve option is measured against.
func Banners(st Status, now time.Time) []Banner {
	b := bannerSet{host: st.Host}
	if b.host == "" {
		b.host = "HOST:PORT"
	}
	if c := st.Self.Clock; c != nil && !c.Healthy {
		b.add(Banner{Kind: KindClockOffset, Severity: Warning, NodeID: st.Self.NodeID,
			Title: fmt.Sprintf("Node %d's clock is beyond --max-offset=%s from the other nodes' clocks", st.Self.NodeID, c.MaxOffset),
			Detail: capitalize(c.Message) + ". The node no longer serves reads from its leader lease, which assumes that clocks agree within " +
				"--max-offset: its linearizable reads take a ReadIndex round instead (slower, still correct). It serves leased reads again " +
				"by itself once its clock is back within the bound.",
			Fix: []string{
				"synchronize the clocks of every node (NTP or chrony), starting with this node's",
				"watch kvnode_clock_offset_max_seconds and kvnode_clock_offset_healthy in this node's /metrics",
			}})
	}
	if st.Error != "" {
		b.add(Banner{Kind: KindStatusUnavailable, Severity: Critical,
			Title:  "The cluster status cannot be read from this node",
			Detail: st.Error + ". The page shows only what this node knows by itself until the data group answers again; rows cannot be read or written either.",
			Fix: []string{
				"kvnode node status --host=" + b.host,
				"start the nodes that are down: the data group needs a majority of its voters",
			}})
		if st.Self.Group0State == StateRecovery {
			b.recovery([]nodeid.ID{st.Self.NodeID})
		}
		return b.sorted()
	}

	var nodes, live []Node
	for _, n := range st.Nodes {
		if n.Decommissioned() {
			continue
		}
		nodes = append(nodes, n)
		if n.IsLive {
			live = append(live, n)
		}
	}

	// Group 0: recovery mode first, it stops DDL.
	var inRecovery, inSync []nodeid.ID
	for _, n := range nodes {
		switch n.Group0State {
		case StateRecovery:
			inRecovery = append(inRecovery, n.NodeID)
		case StateSync:
			inSync = append(inSync, n.NodeID)
		}
	}
	if len(inRecovery) > 0 {
		b.recovery(inRecovery)
	}
	var dead []nodeid.ID
	for _, n := range nodes {
		if !n.IsLive {
			dead = append(dead, n.NodeID)
		}
	}
	waiting := false
	for _, n := range nodes {
		if n.Group0Waiting == "" {
			continue
		}
		waiting = true
		fix := []string{"SHOW UPGRADE STATUS"}
		for _, id := range dead {
			fix = append(fix, fmt.Sprintf("if node %d is gone for good: kvnode node decommission %d --host=%s (docs/recovery.md, step 1); otherwise start it again", id, id, b.host))
		}
		detail := "The 2.0 migration runs ScyllaDB's upgrade procedure; each wait is bounded and retried, and resumes by itself once what it waits for happens."
		if len(inSync) > 0 {
			detail += fmt.Sprintf(" %s in synchronize: DDL issued now waits for the upgrade, then runs through group 0.", capitalize(nodeid.Names(inSync)))
		}
		b.add(Banner{Kind: KindGroup0Waiting, Severity: Warning, NodeID: n.NodeID,
			Title:  fmt.Sprintf("The group 0 upgrade is waiting (node %d coordinates): %s", n.NodeID, n.Group0Waiting),
			Detail: detail, Fix: fix})
	}
	active, activeErr := clusterversion.Parse(st.ClusterVersion)
	// mid: the replicated version is an internal step (the fence of a
	// release is persisted on every node), or some node has persisted a
	// version above it (a step reached it and not yet every node): the
	// finalization can only go forward, and it is completed whatever the
	// opt-outs say. front is the highest version persisted; ahead, the
	// nodes that persisted it.
	front, ahead := active, []nodeid.ID(nil)
	for _, n := range nodes {
		pv, err := clusterversion.Parse(n.PersistedVersion)
		switch {
		case err != nil || activeErr != nil || !active.Less(pv) || pv.Less(front):
		case front.Less(pv):
			front, ahead = pv, []nodeid.ID{n.NodeID}
		default:
			ahead = append(ahead, n.NodeID)
		}
	}
	mid := activeErr == nil && (!active.IsRelease() || active.Less(front))
	if !waiting && len(inSync) > 0 && !(mid && st.InProgress == "") {
		b.add(Banner{Kind: KindGroup0Waiting, Severity: Info,
			Title:  fmt.Sprintf("The group 0 upgrade is in progress: %s in synchronize", nodeid.Names(inSync)),
			Detail: "The pre-Raft schema path is closed while the schema moves onto group 0; DDL issued now waits, then runs through group 0.",
			Fix:    []string{"SHOW UPGRADE STATUS"}})
	}

	// Binary versions among the running nodes.
	byBuild := map[string][]nodeid.ID{}
	newest := clusterversion.Version{}
	for _, n := range live {
		byBuild[n.Build] = append(byBuild[n.Build], n.NodeID)
		if v, err := clusterversion.Parse(n.Build); err == nil && newest.Less(v) {
			newest = v
		}
	}
	mixed := len(byBuild) > 1
	if mixed {
		var parts, older []string
		var behind []nodeid.ID
		builds := make([]string, 0, len(byBuild))
		for v := range byBuild {
			builds = append(builds, v)
		}
		sort.Strings(builds)
		for _, v := range builds {
			ids := byBuild[v]
			verb := "runs"
			if len(ids) > 1 {
				verb = "run"
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", nodeid.Names(ids), verb, v))
			if pv, err := clusterversion.Parse(v); err != nil || pv.Less(newest) {
				behind = append(behind, ids...)
				older = append(older, v)
			}
		}
		slices.Sort(behind)
		detail := fmt.Sprintf("The cluster stays at version %s until every node runs %s.", st.ClusterVersion, newest)
		if fence, ok := clusterversion.Fence(newest); ok && activeErr == nil && active.Less(fence) && len(older) == 1 {
			if ok, why := rollback(nodes, older[0]); ok {
				detail += fmt.Sprintf(" Until then the upgrade can still be rolled back: restart the upgraded nodes on the %s binary.", older[0])
			} else {
				detail += " " + why
			}
		}
		fix := []string{}
		addr := map[nodeid.ID]string{}
		for _, n := range live {
			addr[n.NodeID] = n.Address
		}
		for _, id := range behind {
			host := addr[id]
			if host == "" {
				host = fmt.Sprintf("<node %d's --listen-addr>", id)
			}
			fix = append(fix, fmt.Sprintf("restart node %d on the %s binary: kvnode node drain --host=%s, stop it, start the %s binary with the same flags", id, newest, host, newest))
		}
		b.add(Banner{Kind: KindMixedVersions, Severity: Warning,
			Title:  "Several binary versions are running: " + strings.Join(parts, "; "),
			Detail: detail, Fix: fix})
	}

	// Dead nodes: what blocks finalization once every live node is
	// upgraded, and worth knowing otherwise.
	target, targetErr := clusterversion.Parse(st.Target)
	liveUpgraded := st.Target != "" && targetErr == nil && len(live) > 0
	for _, n := range live {
		if v, err := clusterversion.Parse(n.Build); err != nil || v.Less(target) {
			liveUpgraded = false
		}
	}
	for _, n := range nodes {
		if n.IsLive {
			continue
		}
		decom := fmt.Sprintf("kvnode node decommission %d --host=%s", n.NodeID, b.host)
		state := n.Status
		if state == "" || state == "live" {
			state = "not live"
		}
		if liveUpgraded {
			b.add(Banner{Kind: KindDeadNode, Severity: Critical, NodeID: n.NodeID,
				Title: fmt.Sprintf("Node %d is %s and blocks the upgrade to %s: every live node runs %s", n.NodeID, state, st.Target, st.Target),
				Detail: fmt.Sprintf("The cluster finalizes only when every node that is not decommissioned runs the new binary. "+
					"If node %d comes back, start it on the %s binary; if it is gone for good, decommission it and the cluster finalizes by itself.", n.NodeID, st.Target),
				Fix: []string{decom}})
			continue
		}
		b.add(Banner{Kind: KindDeadNode, Severity: Warning, NodeID: n.NodeID,
			Title: fmt.Sprintf("Node %d is %s", n.NodeID, state),
			Detail: fmt.Sprintf("Its liveness record has expired. Any upgrade will wait for it. "+
				"Start node %d again; if it is gone for good, decommission it.", n.NodeID),
			Fix: []string{decom}})
	}
	for _, n := range live {
		if n.IsDraining {
			b.add(Banner{Kind: KindDrainingNode, Severity: Warning, NodeID: n.NodeID,
				Title:  fmt.Sprintf("Node %d is draining", n.NodeID),
				Detail: "It accepts no SQL connections and leads no Raft group. Finalization waits until it restarts (which ends the drain) or stops and is decommissioned.",
				Fix:    []string{fmt.Sprintf("restart node %d with its usual kvnode start command", n.NodeID)}})
		}
	}

	// Finalization: running, interrupted, about to run, or held back.
	has := map[autoupgrade.BlockerKind]bool{}
	for _, x := range st.Blockers {
		has[x.Kind] = true
	}
	switch {
	case st.DowngradingTo != "":
		title := fmt.Sprintf("Downgrading the cluster to %s", st.DowngradingTo)
		if st.InProgress != "" {
			title += ": " + st.InProgress
		}
		detail := "Each step down is persisted on every node; down-migrations run as resumable jobs, and the data " +
			"group's leader resumes the downgrade if its coordinator stops. Binaries of " + st.DowngradingTo +
			" are refused until it completes."
		if len(st.Blockers) > 0 {
			detail += " It waits: " + blockerReasons(st.Blockers) + "."
		}
		b.add(Banner{Kind: KindDowngrading, Severity: Warning, Title: title, Detail: detail,
			Fix: []string{"SHOW UPGRADE STATUS", "SHOW JOBS"}})
	case st.InProgress != "":
		b.add(Banner{Kind: KindFinalizing, Severity: Info,
			Title:  fmt.Sprintf("Finalizing the upgrade to %s: %s", orUnknown(st.Target), st.InProgress),
			Detail: "Each step is persisted on every node before it takes effect; migrations run as resumable jobs.",
			Fix:    []string{"SHOW UPGRADE STATUS", "SHOW JOBS"}})
	case mid && !mixed:
		b.interrupted(st, front, ahead, inSync)
	case st.Target != "" && !mixed && len(st.Blockers) == 0:
		b.add(Banner{Kind: KindFinalizing, Severity: Info,
			Title:  fmt.Sprintf("Every node runs %s: the cluster finalizes to %s within seconds", st.Target, st.Target),
			Detail: "The auto-upgrade loop on the data group's leader finalizes once every live, non-decommissioned node runs the new binary.",
			Fix:    []string{"SHOW UPGRADE STATUS"}})
	case st.Target != "" && !mixed:
		var why, fix []string
		if st.Preserve != "" && has[autoupgrade.BlockPreserve] {
			w := fmt.Sprintf("cluster.preserve_downgrade_option is set to '%s'", st.Preserve)
			if !st.PreserveSince.IsZero() {
				w += fmt.Sprintf(" (for %s, since %s)", roundDuration(now.Sub(st.PreserveSince)), st.PreserveSince.UTC().Format("2006-01-02 15:04 MST"))
			} else {
				w += " (since when is not recorded)"
			}
			why = append(why, w)
			fix = append(fix, "RESET CLUSTER SETTING cluster.preserve_downgrade_option;")
		}
		if !st.AutoUpgradeEnabled && has[autoupgrade.BlockAutoDisabled] {
			why = append(why, "cluster.auto_upgrade.enabled is false")
			fix = append(fix, fmt.Sprintf("SET CLUSTER SETTING version = '%s';", st.Target),
				"(or SET CLUSTER SETTING cluster.auto_upgrade.enabled = true;)")
		}
		if len(why) > 0 {
			detail := "Finalization is held back: " + strings.Join(why, "; ") + ". Until it finalizes, the new release's features stay off"
			if ok, whyNot := rollback(nodes, st.ClusterVersion); ok {
				detail += " and the upgrade can still be rolled back."
			} else {
				detail += ". " + whyNot
			}
			b.add(Banner{Kind: KindNotFinalized, Severity: Warning,
				Title:  fmt.Sprintf("Every node runs %s, but the cluster version is still %s", st.Target, st.ClusterVersion),
				Detail: detail,
				Fix:    fix})
		}
	}

	for _, m := range st.Migrations {
		if m.Status != "failed" {
			continue
		}
		b.add(Banner{Kind: KindMigrationFailed, Severity: Critical,
			Title:  fmt.Sprintf("The %s migration failed: %s", m.Version, m.Description),
			Detail: m.Error + ". The next finalization attempt resumes it from its last checkpoint.",
			Fix:    []string{"SHOW JOBS", fmt.Sprintf("SET CLUSTER SETTING version = '%s';", releaseOf(m.Version))}})
	}
	return b.sorted()
}

// rollback reports whether the nodes can still be restarted on the binary
// of release old, and if not, why (a sentence): only if every node's
// persisted cluster version is known and old can run it. A node whose
// persisted version is above what old runs (a finalization step reached
// it, and not yet every node) refuses to start on old: advising it would
// lose the nodes restarted, and with them the majority.
func rollback(nodes []Node, old string) (ok bool, why string) {
	ov, err := clusterversion.Parse(old)
	if err != nil {
		return false, fmt.Sprintf("Whether the upgrade can still be rolled back is not known: %q is not a release.", old)
	}
	var stuck, unknown []nodeid.ID
	var highest clusterversion.Version
	for _, n := range nodes {
		pv, perr := clusterversion.Parse(n.PersistedVersion)
		switch {
		case perr != nil:
			if n.Build != old { // an old binary cannot have persisted more than it runs
				unknown = append(unknown, n.NodeID)
			}
		case ov.Less(pv):
			stuck = append(stuck, n.NodeID)
			if highest.Less(pv) {
				highest = pv
			}
		}
	}
	plural := func(ids []nodeid.ID, one, many string) string {
		if len(ids) > 1 {
			return many
		}
		return one
	}
	switch {
	case len(stuck) > 0:
		return false, fmt.Sprintf("The upgrade can no longer be rolled back: %s %s persisted cluster version %s, which the %s binary cannot run; "+
			"it refuses to start on %s, so restarting %s on it would lose %s. Finish the upgrade instead.",
			nodeid.Names(stuck), plural(stuck, "has", "have"), highest, old,
			plural(stuck, "that node's store", "those nodes' stores"), plural(stuck, "it", "them"), plural(stuck, "that node", "those nodes"))
	case len(unknown) > 0:
		return false, fmt.Sprintf("Whether the upgrade can still be rolled back is not known: %s %s not reported the cluster version %s persisted "+
			"(SHOW UPGRADE STATUS, persisted_version rows); a node that persisted a version above %s refuses to start on the %s binary.",
			nodeid.Names(unknown), plural(unknown, "has", "have"), plural(unknown, "it", "they"), old, old)
	}
	return true, ""
}

// interrupted is the banner of a finalization that stopped at an internal
// step (its coordinator died or failed) and is not running on this node.
//
// front is the highest version a node persisted; ahead, the nodes that
// persisted it when it is above the cluster version (else every node has).
func (b *bannerSet) interrupted(st Status, front clusterversion.Version, ahead []nodeid.ID, inSync []nodeid.ID) {
	rel := releaseOf(front.String())
	where := "every node"
	if len(ahead) > 0 {
		where = fmt.Sprintf("%s, above the cluster version %s (a finalization step reached %s and not yet every node)",
			nodeid.Names(ahead), st.ClusterVersion, map[bool]string{true: "them", false: "it"}[len(ahead) > 1])
	}
	detail := fmt.Sprintf("%s is persisted on %s: the upgrade can no longer be rolled back "+
		"(binaries older than %s refuse to start on such a store). The data group's leader completes the finalization by itself, "+
		"whatever cluster.auto_upgrade.enabled and cluster.preserve_downgrade_option say, once every node that is not decommissioned is live.",
		front, where, rel)
	if len(inSync) > 0 {
		detail += fmt.Sprintf(" %s in synchronize: DDL issued now waits until the group 0 upgrade completes, then runs through group 0.",
			capitalize(nodeid.Names(inSync)))
	}
	fix := []string{"SHOW UPGRADE STATUS"}
	var reasons []string
	for _, x := range st.Blockers {
		reasons = append(reasons, x.Reason)
		if x.Fix != "" {
			fix = append(fix, x.Fix)
		}
	}
	fix = append(fix, fmt.Sprintf("SET CLUSTER SETTING version = '%s'; (resumes it now, through the node you are connected to)", rel))
	bn := Banner{Kind: KindInterrupted, Severity: Info,
		Title:  fmt.Sprintf("The upgrade to %s stopped at %s; it resumes by itself", rel, front),
		Detail: detail, Fix: fix}
	if len(reasons) > 0 {
		bn.Severity = Warning
		bn.Title = fmt.Sprintf("The upgrade to %s stopped at %s and waits: %s", rel, front, strings.Join(reasons, "; "))
	} else if len(inSync) > 0 {
		bn.Severity = Warning // DDL is held until it completes
	}
	b.add(bn)
}

type bannerSet struct {
	host string
	out  []Banner
}

func (b *bannerSet) add(x Banner) { b.out = append(b.out, x) }

func (b *bannerSet) recovery(ids []nodeid.ID) {
	verb := "is"
	if len(ids) > 1 {
		verb = "are"
	}
	b.add(Banner{Kind: KindGroup0Recovery, Severity: Critical,
		Title: fmt.Sprintf("%s %s in group 0 recovery mode", capitalize(nodeid.Names(ids)), verb),
		Detail: "A node in recovery refuses DDL (SQLSTATE 55000) and the upgrade to 2.0 does not run; rows are served as usual. " +
			"Follow docs/recovery.md: enter recovery on every surviving node and restart it, decommission the nodes that are gone for good, " +
			"then look at the plan and recover.",
		Fix: []string{
			"kvnode node group0-recover --host=" + b.host + " --dry-run",
			"kvnode node group0-recover --host=" + b.host,
		}})
}

var severityRank = map[Severity]int{Critical: 0, Warning: 1, Info: 2}

func (b *bannerSet) sorted() []Banner {
	sort.SliceStable(b.out, func(i, j int) bool { return severityRank[b.out[i].Severity] < severityRank[b.out[j].Severity] })
	return b.out
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func orUnknown(s string) string {
	if s == "" {
		return "the new release"
	}
	return s
}

// releaseOf returns the release a ladder version belongs to ("2.0" for
// "2.0-step.1").
func releaseOf(v string) string {
	if pv, err := clusterversion.Parse(v); err == nil {
		return fmt.Sprintf("%d.%d", pv.Major, pv.Minor)
	}
	return v
}

// roundDuration prints a duration the way people say it: 45s, 12m, 3h5m,
// 2d4h.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		return fmt.Sprintf("%dh%dm", h, int(d.Minutes())-60*h)
	default:
		days := int(d.Hours()) / 24
		return fmt.Sprintf("%dd%dh", days, int(d.Hours())-24*days)
	}
}

// blockerReasons joins the blockers' reasons.
func blockerReasons(bs []autoupgrade.Blocker) string {
	var out []string
	for _, x := range bs {
		out = append(out, x.Reason)
	}
	return strings.Join(out, "; ")
}
