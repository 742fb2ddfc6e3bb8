package kv

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the replica's Prometheus collectors (kvnode_raft_*). A nil
// *Metrics is valid and records nothing. The server gives them to the data
// group's replica only; group 0's replica is exported by the server, from
// Status at scrape time, as kvnode_group0_raft_*.
type Metrics struct {
	term, commit, applied, isLeader prometheus.Gauge
	applyLag                        prometheus.Gauge
	voters, learners                prometheus.Gauge
	proposalsTotal, readsTotal      prometheus.Counter
	leaseReadsTotal, leasesGranted  prometheus.Counter
	leaseReadsOn                    prometheus.Gauge
	snapshotsApplied                prometheus.Counter
	leaderChanges                   prometheus.Counter
	rowCacheHits, rowCacheMisses    prometheus.Counter
	rowCacheBytes                   prometheus.Gauge
	readCacheHits, readCacheMisses  prometheus.Counter
	syncLatency                     prometheus.Histogram
	commitLatency                   prometheus.Histogram
	// lastLeader is the leader the previous setStatus saw (0: none).
	// setStatus runs on the Ready loop only; the atomic keeps a Metrics
	// shared by mistake between two replicas race-free.
	lastLeader atomic.Uint64
}

// NewMetrics registers the replica's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	g := func(name, help string) prometheus.Gauge {
		x := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kvnode", Subsystem: "raft", Name: name, Help: help})
		reg.MustRegister(x)
		return x
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kvnode", Subsystem: "raft", Name: name, Help: help})
		reg.MustRegister(x)
		return x
	}
	m := &Metrics{
		term:            g("term", "Current Raft term of the data group."),
		commit:          g("commit_index", "Highest log index known committed."),
		applied:         g("applied_index", "Highest log index applied to the state machine on this node."),
		isLeader:        g("is_leader", "1 if this node leads the data group."),
		applyLag:        g("apply_lag", "Entries known committed but not yet applied on this node (commit_index - applied_index)."),
		voters:          g("voters", "Number of voters in the data group's configuration."),
		learners:        g("learners", "Number of learners in the data group's configuration."),
		proposalsTotal:  c("proposals_total", "Proposals submitted to Raft by this node."),
		readsTotal:      c("read_index_total", "Linearizable reads served through ReadIndex."),
		leaseReadsTotal: c("lease_reads_total", "Linearizable reads served from the leader lease, without a ReadIndex round."),
		leasesGranted: c("leases_granted_total",
			"Times this node began a leader lease (a renewal of a lease it holds is not counted)."),
		leaseReadsOn: g("lease_reads_enabled",
			"1 if this node may serve leased reads now: its flag is on, the cluster is at 2.1, and its clock is within --max-offset of a majority of the other nodes' (0 falls back to ReadIndex)."),
		snapshotsApplied: c("snapshots_applied_total", "Raft snapshots applied by this node."),
		leaderChanges: c("leader_changes_total",
			"Times this node saw a new leader of the data group: a known leader other than the last one it saw (which may be none), like etcd's leader_changes_seen_total."),
		rowCacheHits: c("apply_row_cache_hits_total",
			"Reads made while applying commands (conditional puts, INSERT ... ON CONFLICT, increments) that the row cache served."),
		rowCacheMisses: c("apply_row_cache_misses_total",
			"Reads made while applying commands that missed the row cache and read Pebble."),
		rowCacheBytes: g("apply_row_cache_bytes", "Approximate memory held by the row cache of the apply path."),
		readCacheHits: c("read_cache_hits_total",
			"Linearizable point reads (a SQL read by primary key) that the read cache served."),
		readCacheMisses: c("read_cache_misses_total",
			"Linearizable point reads that missed the read cache and read Pebble."),
		syncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kvnode", Subsystem: "raft", Name: "log_sync_seconds",
			Help:    "Latency of one synced write of Raft entries and hard state to Pebble (one fsync of its WAL).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kvnode", Subsystem: "raft", Name: "proposal_apply_seconds",
		Help:    "From proposing a write on this node to applying it here (its Raft commit latency, as its client sees it).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	reg.MustRegister(m.syncLatency, m.commitLatency)
	return m
}

func (m *Metrics) proposals() {
	if m != nil {
		m.proposalsTotal.Inc()
	}
}

func (m *Metrics) rowCacheRead(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.rowCacheHits.Inc()
	default:
		m.rowCacheMisses.Inc()
	}
}

func (m *Metrics) readCacheRead(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.readCacheHits.Inc()
	default:
		m.readCacheMisses.Inc()
	}
}

func (m *Metrics) setRowCacheBytes(n int) {
	if m != nil {
		m.rowCacheBytes.Set(float64(n))
	}
}

func (m *Metrics) readIndex() {
	if m != nil {
		m.readsTotal.Inc()
	}
}

func (m *Metrics) leaseRead() {
	if m != nil {
		m.leaseReadsTotal.Inc()
	}
}

func (m *Metrics) leaseGranted() {
	if m != nil {
		m.leasesGranted.Inc()
	}
}

func (m *Metrics) setLeaseReads(on bool) {
	if m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.leaseReadsOn.Set(v)
	}
}

func (m *Metrics) snapshotApplied() {
	if m != nil {
		m.snapshotsApplied.Inc()
	}
}

func (m *Metrics) observeCommit(d time.Duration) {
	if m != nil {
		m.commitLatency.Observe(d.Seconds())
	}
}

func (m *Metrics) observeSync(d time.Duration) {
	if m != nil {
		m.syncLatency.Observe(d.Seconds())
	}
}

func (m *Metrics) setStatus(s *Status) {
	if m == nil {
		return
	}
	m.term.Set(float64(s.Term))
	m.commit.Set(float64(s.Commit))
	m.applied.Set(float64(s.Applied))
	lag := uint64(0)
	if s.Commit > s.Applied {
		lag = s.Commit - s.Applied
	}
	m.applyLag.Set(float64(lag))
	if prev := m.lastLeader.Swap(raftID(s.Leader)); s.Leader != 0 && raftID(s.Leader) != prev {
		m.leaderChanges.Inc()
	}
	if s.IsLeader {
		m.isLeader.Set(1)
	} else {
		m.isLeader.Set(0)
	}
	m.voters.Set(float64(len(s.Voters)))
	m.learners.Set(float64(len(s.Learners)))
}

// raftLogger adapts slog to raft.Logger. Raft's Info is chatty (every
// election step); it goes to Debug except for leadership changes, which an
// operator wants to see.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.info(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.Fatal(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }

func (r raftLogger) info(s string) {
	if strings.Contains(s, "became leader") || strings.Contains(s, "elected leader") || strings.Contains(s, "lost leader") {
		r.l.Info("raft: " + s)
		return
	}
	r.l.Debug(s)
}
