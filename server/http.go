package server

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

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/_status/upgrade", s.serveUpgradeStatus)
	mux.HandleFunc("/_status/upgrade/plan", s.serveUpgradePlan)
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
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
func (s *Server) serveUpgradeStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	st, err := s.UpgradeStatus(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		return
	}
	_, _ = w.Write(st.json())
}

// serveUpgradePlan is GET /_status/upgrade/plan[?version=X]: SHOW UPGRADE
// PLAN [FOR VERSION 'X'] as JSON.
func (s *Server) serveUpgradePlan(w http.ResponseWriter, r *http.Request) {
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
	p, err := s.UpgradePlan(r.Context(), target)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		return
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	_, _ = w.Write(b)
}

// readiness says whether the node serves SQL, and if not, why.
func (s *Server) readiness() (bool, string) {
	if err := s.Failed(); err != nil {
		return false, "start failed: " + err.Error()
	}
	if s.draining.Load() {
		return false, "draining"
	}
	select {
	case <-s.up:
	default:
		if s.NodeID() == 0 {
			return false, "waiting to join a cluster or for `kvnode init`"
		}
		return false, "starting"
	}
	rep := s.Replica()
	if rep == nil || rep.Status().Leader == 0 {
		return false, "no Raft leader known"
	}
	return true, ""
}

// serveHealth answers /health (the process is alive) and /health?ready=1
// (the node can serve SQL; 503 while starting or draining).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("ready") == "" || r.URL.Query().Get("ready") == "0" {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "live", "node_id": s.NodeID()})
		return
	}
	ok, why := s.readiness()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "reason": why, "node_id": s.NodeID()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": true, "node_id": s.NodeID()})
}

// NodeStatusPage is GET /_status/node: what this node knows about itself
// and the data Raft group, from memory only (no cluster reads), so that
// scripts and roachtest can poll it cheaply, also while the cluster has no
// majority.
type NodeStatusPage struct {
	NodeID        int32  `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	BinaryVersion string `json:"binary_version"`
	// ActiveVersion is the cluster version the node has persisted.
	ActiveVersion string `json:"active_version"`
	Ready         bool   `json:"ready"`
	NotReady      string `json:"not_ready,omitempty"`
	Draining      bool   `json:"draining"`
	Group0State   string `json:"group0_state"`
	// Raft is the data group as this node sees it (absent before it has
	// joined).
	Raft *NodeRaftStatus `json:"raft,omitempty"`
}

// NodeRaftStatus is one node's view of the data Raft group.
type NodeRaftStatus struct {
	Leader   uint64   `json:"leader"`
	Term     uint64   `json:"term"`
	Commit   uint64   `json:"commit"`
	Applied  uint64   `json:"applied"`
	Voters   []uint64 `json:"voters"`
	Learners []uint64 `json:"learners"`
}

func (s *Server) serveNodeStatus(w http.ResponseWriter, _ *http.Request) {
	ready, why := s.readiness()
	st := NodeStatusPage{NodeID: s.NodeID(), ClusterID: s.ClusterID(), BinaryVersion: s.binVersion.String(),
		ActiveVersion: s.ActiveVersion().String(), Ready: ready, NotReady: why, Draining: s.draining.Load(),
		Group0State: string(s.g0.State())}
	if rep := s.Replica(); rep != nil {
		r := rep.Status()
		st.Raft = &NodeRaftStatus{Leader: r.Leader, Term: r.Term, Commit: r.Commit, Applied: r.Applied,
			Voters: r.Voters, Learners: r.Learners}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}
