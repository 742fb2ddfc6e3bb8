package server

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvnode/kvnode/server/console"
)

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/_status/upgrade", s.serveUpgradeStatus)
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	// Profiles, as every Go server offers them: the HTTP address is meant
	// for operators (it binds to loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/_status/console", s.serveConsoleJSON)
	mux.Handle("/_console/", console.Assets())
	mux.HandleFunc("/", s.serveConsole)
	return mux
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
