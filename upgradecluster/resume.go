package upgradecluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kvnode/kvnode/migrations"
	"github.com/kvnode/kvnode/server/autoupgrade"
)

// ResumeGate holds back the server's auto-upgrade loop's resumption of a
// finalization while cluster.auto_upgrade.enabled is false, until that
// finalization is interrupted indeed. With auto-upgrade off, a finalization
// exists only because an operator started one by hand (SET CLUSTER SETTING
// version); while its coordinator works, the leader stays out of its way.
// Once it stops (its coordinator died, or failed and returned), nothing
// would complete it, and the nodes in synchronize refuse DDL: the leader
// resumes it (issue 16, D6).
//
// A finalization is taken as interrupted when no migration job is held by
// a coordinator's live lease (a running coordinator renews it) and nothing
// has moved for quiet: the same versions persisted by every node, the same
// replicated version, the same jobs and progress.
type ResumeGate struct {
	fingerprint string
	since       time.Time
}

// Interrupted reports whether the leader may resume now, and if not, why.
func (g *ResumeGate) Interrupted(ctx context.Context, c *Cluster, in autoupgrade.Input, quiet time.Duration) (bool, string) {
	rv, err := c.mgr.ReplicatedVersion(ctx)
	if err != nil {
		return false, "the replicated cluster version cannot be read: " + err.Error()
	}
	jobs, err := migrations.List(ctx, c.cfg.Node.Replica())
	if err != nil {
		return false, "the migration jobs cannot be read: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "active=%s replicated=%s", in.Active, rv)
	for _, n := range in.Nodes {
		fmt.Fprintf(&b, " n%d=%s", n.ID, n.Persisted)
	}
	now := time.Now()
	for _, j := range jobs {
		fmt.Fprintf(&b, " job%d=%s/%d/%d/n%d", j.ID, j.Status, j.Attempts, j.Progress.Done, j.Coordinator)
		if j.Status == migrations.StatusRunning && j.LeaseUntil > now.UnixNano() {
			g.fingerprint = "" // start the quiet period again once it lapses
			return false, fmt.Sprintf("node %d holds the lease of the %s migration (job %d)", j.Coordinator, j.Version, j.ID)
		}
	}
	if fp := b.String(); fp != g.fingerprint {
		g.fingerprint, g.since = fp, now
	}
	if now.Sub(g.since) < quiet {
		return false, fmt.Sprintf("it moved less than %s ago (its coordinator may be at work)", quiet)
	}
	return true, ""
}
