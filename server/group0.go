package server

import (
	"context"
	"time"

	"github.com/kvnode/kvnode/group0/member"
)

// Group 0 on this node: package group0/member runs it (the replica, its
// loops, the state gate, joins, the upgrade's and the recovery's cluster);
// the server builds it (newGroup0), hands it what it needs of the node
// (nodeView, nodeview.go) and installs its SQL (group0_sql.go).

// newGroup0 builds this node's group 0 member; nothing runs until
// startNode loads and starts it.
func newGroup0(s *Server) *member.Member {
	return member.New(member.Config{
		Node: nodeView{s}, Stopper: serverStopper{s}, Store: s.cfg.Store, Local: s.eng.Local(),
		Binary: s.binVersion, Log: s.log, Pool: s.pool, Client: s.node,
		TickInterval: s.cfg.RaftTickInterval, Timeout: s.cfg.Group0Timeout, DDLWait: s.cfg.Group0DDLWait,
		PropagationWait: s.cfg.Group0PropagationWait, UpgradeTimeout: s.cfg.Group0UpgradeTimeout,
		Knobs: member.Knobs{Hook: s.cfg.Knobs.Group0Hook, Backoff: s.cfg.Knobs.Group0Backoff,
			BeforeSchemaCheck: s.cfg.Knobs.Group0BeforeSchemaCheck},
	})
}

// Group0 returns this node's member of group 0 (its state, its replica).
func (s *Server) Group0() *member.Member { return s.g0 }

// serverStopper runs group 0's goroutines as the node's stopper's tasks:
// they end when the node stops, and Stop waits for them. Once the node
// quiesces nothing new starts (each loop would return at once anyway).
type serverStopper struct{ s *Server }

func (st serverStopper) ShouldQuiesce() <-chan struct{} { return st.s.stopper.ShouldQuiesce() }

func (st serverStopper) WithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return st.s.stopper.WithTimeout(d)
}
func (st serverStopper) RunAsync(f func()) {
	_ = st.s.stopper.RunAsyncTask("group0", func(context.Context) { f() })
}
