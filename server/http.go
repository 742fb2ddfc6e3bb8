package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"

	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	mux.HandleFunc("/", s.serveStatus)
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

// serveStatus is a plain-text summary of the node; the operator's console
// replaces it in a later release.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ok, why := s.readiness()
	fmt.Fprintf(w, "kvnode node %d (binary %s)\ncluster %s\nready: %v %s\n\n", s.NodeID(), s.binVersion, s.ClusterID(), ok, why)
	if rep := s.Replica(); rep != nil {
		st := rep.Status()
		fmt.Fprintf(w, "raft: leader=%d term=%d commit=%d applied=%d voters=%v learners=%v\n\n",
			st.Leader, st.Term, st.Commit, st.Applied, st.Voters, st.Learners)
	}
	s.mu.Lock()
	g := s.gossip
	s.mu.Unlock()
	if g != nil {
		ms := g.Members()
		sort.Slice(ms, func(i, j int) bool { return ms[i].Meta.NodeID < ms[j].Meta.NodeID })
		fmt.Fprintf(w, "%-5s %-22s %-22s %-8s %-7s\n", "node", "address", "sql_address", "version", "state")
		for _, m := range ms {
			fmt.Fprintf(w, "%-5d %-22s %-22s %-8s %-7s\n", m.Meta.NodeID, m.Meta.ListenAddr, m.Meta.SQLAddr, m.Meta.BinaryVersion, m.State)
		}
	}
}
