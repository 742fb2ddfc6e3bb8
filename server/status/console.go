package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kvnode/kvnode/nodeid"
	"github.com/kvnode/kvnode/server/console"
)

// consoleMaxAge is how stale the cluster part of the status page may be:
// every open tab polls every console.RefreshInterval, and they share one
// computation (cache.go).
const consoleMaxAge = 2 * time.Second

// consoleStatus gathers what the status page shows. It never fails: when
// the cluster status cannot be computed, Error says why and the node
// table is the node's own, possibly stale, copy.
func (s *Status) consoleStatus(ctx context.Context) console.Status {
	st := console.Status{
		Self:          s.self(),
		ActiveVersion: s.node.ActiveVersion().String(),
		Host:          s.node.AdvertisedRPCAddr(),
	}
	if s.node.NodeID() == 0 {
		st.GeneratedAt = time.Now()
		st.Error = "this node has not joined a cluster yet: it waits for `kvnode init` or for a node of --join to admit it"
		st.Banners = console.Banners(st, time.Now())
		return st
	}
	us, at, err := s.cachedUpgradeStatus(ctx, consoleMaxAge)
	st.GeneratedAt = at
	if err != nil {
		st.Error = err.Error()
		// What the node knows by itself: its local copy of the node and
		// liveness records, read without a round through Raft.
		for _, n := range s.node.LocalNodeStatuses() {
			st.Nodes = append(st.Nodes, console.Node{NodeStatus: n})
		}
		if st.GeneratedAt.IsZero() {
			st.GeneratedAt = time.Now()
		}
		st.Banners = console.Banners(st, time.Now())
		return st
	}
	st.ClusterVersion, st.ActiveVersion = us.ReplicatedVersion, us.ActiveVersion
	st.Target, st.InProgress, st.Decision = us.Target, us.InProgress, us.Decision
	st.DowngradingTo = us.DowngradingTo
	st.AutoUpgradeEnabled, st.Preserve, st.PreserveSince = us.AutoUpgradeEnabled, us.PreserveDowngrade, us.PreserveSince
	st.Blockers = us.Blockers
	g0 := map[nodeid.ID]Group0NodeStatus{}
	for _, g := range us.Group0 {
		g0[g.NodeID] = g
	}
	for _, n := range us.Nodes {
		row := console.Node{NodeStatus: n}
		if g, ok := g0[n.NodeID]; ok {
			row.Group0State, row.Group0Role, row.Group0Waiting, row.Group0Error = g.State, g.Role, g.Waiting, g.Error
		} else if !s.node.Group0().Enabled() && n.Membership != "decommissioned" {
			// A release without group 0 answers: every node uses the
			// pre-Raft procedures until the cluster reaches 2.0.
			row.Group0State = console.StatePreRaft
		}
		st.Nodes = append(st.Nodes, row)
	}
	st.Migrations = us.Migrations
	st.Banners = console.Banners(st, time.Now())
	return st
}

// self is the serving node, from memory only: the status page's and GET
// /_status/node's.
func (s *Status) self() console.Self {
	ready, why := s.node.Readiness()
	return console.Self{NodeID: s.node.NodeID(), ClusterID: s.node.ClusterID(), BinaryVersion: s.node.BinaryVersion().String(),
		HTTPAddress: s.node.AdvertisedHTTPAddr(), Ready: ready, NotReady: why, Group0State: string(s.node.Group0().State()),
		Clock: s.node.ConsoleClock()}
}

// serveConsole serves the status page at "/", and its live part (what the
// page's script swaps in every few seconds) at "/?live=1".
func (s *Status) serveConsole(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusComputeTimeout+time.Second)
	defer cancel()
	st := s.consoleStatus(ctx)
	var buf bytes.Buffer
	render := console.Render
	if r.URL.Query().Get("live") == "1" {
		render = console.RenderLive
	}
	if err := render(&buf, st); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// serveConsoleJSON serves the page's facts and banners as JSON.
func (s *Status) serveConsoleJSON(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), statusComputeTimeout+time.Second)
	defer cancel()
	st := s.consoleStatus(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.MarshalIndent(st, "", "  ")
	_, _ = w.Write(b)
}
