package status

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/server/console"
)

// Handler is the node's HTTP handler: /health, /metrics, /_status/*, the
// status page, its login and /debug/pprof; in secure mode everything but
// /health, /metrics and the login needs an admin.
func (s *Status) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/_status/upgrade", s.serveUpgradeStatus)
	mux.HandleFunc("/_status/upgrade/plan", s.serveUpgradePlan)
	mux.Handle("/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	// Profiles, as every Go server offers them: the HTTP address is meant
	// for operators (it binds to loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/_status/node", s.serveNodeStatus)
	mux.HandleFunc("/_status/console", s.serveConsoleJSON)
	mux.Handle("/_console/", console.Assets())
	mux.HandleFunc("/", s.serveConsole)
	mux.HandleFunc("/login", s.serveLogin)
	mux.HandleFunc("/logout", s.serveLogout)
	return s.requireAdmin(mux)
}

// serveUpgradeStatus is the JSON twin of SHOW UPGRADE STATUS.
func (s *Status) serveUpgradeStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	st, err := s.node.UpgradeStatus(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		return
	}
	_, _ = w.Write(st.JSON())
}

// serveUpgradePlan is GET /_status/upgrade/plan[?version=X]: SHOW UPGRADE
// PLAN [FOR VERSION 'X'] as JSON.
func (s *Status) serveUpgradePlan(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	var target clusterversion.Version
	if v := r.URL.Query().Get("version"); v != "" {
		var err error
		if target, err = clusterversion.Parse(v); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "hint": strings.Join(errors.GetAllHints(err), "\n")})
			return
		}
	}
	p, err := s.node.UpgradePlan(r.Context(), target)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		return
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	_, _ = w.Write(b)
}

// serveHealth answers /health (the process is alive) and /health?ready=1
// (the node can serve SQL; 503 while starting or draining).
func (s *Status) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("ready") == "" || r.URL.Query().Get("ready") == "0" {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "live", "node_id": s.node.NodeID()})
		return
	}
	ok, why := s.node.Readiness()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "reason": why, "node_id": s.node.NodeID()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": true, "node_id": s.node.NodeID()})
}

// serveNodeStatus is GET /_status/node (NodeStatusPage).
func (s *Status) serveNodeStatus(w http.ResponseWriter, _ *http.Request) {
	st := NodeStatusPage{Self: s.self(), ActiveVersion: s.node.ActiveVersion().String(), Draining: s.node.Draining()}
	if rep := s.node.Replica(); rep != nil {
		r := rep.Status()
		st.Raft = &NodeRaftStatus{Leader: r.Leader, Term: r.Term, Commit: r.Commit, Applied: r.Applied,
			Voters: r.Voters, Learners: r.Learners}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}
