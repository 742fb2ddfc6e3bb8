package pgwire

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the wire server's Prometheus collectors. A nil *Metrics is
// valid and records nothing, so tests and embedders need not build one.
type Metrics struct {
	// Conns is the number of open client connections that were admitted
	// (connections refused by MaxConns are not counted).
	Conns prometheus.Gauge
	// ConnsRejected counts connections refused because of MaxConns or a
	// drain in progress.
	ConnsRejected prometheus.Counter
	// Statements counts executed statements by their first keyword
	// (statement) and result (outcome: "ok" or "error").
	Statements *prometheus.CounterVec
	// Latency is the time from the start of preparing (simple protocol) or
	// executing (extended protocol) a statement until its rows are ready,
	// by first keyword. It excludes the time spent sending rows, which
	// depends on the client.
	Latency *prometheus.HistogramVec

	// byKeyword holds each keyword's collectors once a statement with it
	// ran (keyword → *keywordCollectors), so that an execution does not
	// hash its labels again.
	byKeyword sync.Map
}

// keywordCollectors are one statement keyword's series.
type keywordCollectors struct {
	ok      prometheus.Counter
	latency prometheus.Observer
}

// NewMetrics builds the collectors and registers them with reg (if reg is
// not nil). Registering twice with one registry panics, as for any
// Prometheus collector: build one Metrics per server.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kvnode", Subsystem: "sql", Name: "conns",
			Help: "Open SQL client connections.",
		}),
		ConnsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kvnode", Subsystem: "sql", Name: "conns_rejected_total",
			Help: "SQL connections refused because of the connection limit or a drain.",
		}),
		Statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvnode", Subsystem: "sql", Name: "statements_total",
			Help: "Executed SQL statements by first keyword and outcome.",
		}, []string{"statement", "outcome"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kvnode", Subsystem: "sql", Name: "statement_duration_seconds",
			Help: "Statement execution latency by first keyword, excluding sending rows.",
			// 100µs to ~52s: a point read on an idle node to a slow
			// migration statement.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}, []string{"statement"}),
	}
	if reg != nil {
		reg.MustRegister(m.Conns, m.ConnsRejected, m.Statements, m.Latency)
	}
	return m
}

func (m *Metrics) connOpened() {
	if m != nil {
		m.Conns.Inc()
	}
}

func (m *Metrics) connClosed() {
	if m != nil {
		m.Conns.Dec()
	}
}

func (m *Metrics) connRejected() {
	if m != nil {
		m.ConnsRejected.Inc()
	}
}

// statement records one execution of a statement whose keyword is kw
// (statementKeyword).
func (m *Metrics) statement(kw string, start time.Time, err error) {
	if m == nil {
		return
	}
	v, ok := m.byKeyword.Load(kw)
	if !ok {
		v, _ = m.byKeyword.LoadOrStore(kw, &keywordCollectors{
			ok:      m.Statements.WithLabelValues(kw, "ok"),
			latency: m.Latency.WithLabelValues(kw),
		})
	}
	kc := v.(*keywordCollectors)
	if err != nil {
		m.Statements.WithLabelValues(kw, "error").Inc()
	} else {
		kc.ok.Inc()
	}
	kc.latency.Observe(time.Since(start).Seconds())
}

// knownKeywords bounds the statement label's cardinality: a label taken from
// user input verbatim would let any client create unbounded time series.
var knownKeywords = map[string]bool{
	"SELECT": true, "INSERT": true, "UPSERT": true, "UPDATE": true,
	"DELETE": true, "CREATE": true, "DROP": true, "ALTER": true,
	"SHOW": true, "SET": true, "RESET": true, "BEGIN": true,
	"COMMIT": true, "ROLLBACK": true, "EXPLAIN": true, "WITH": true,
	"VALUES": true, "TRUNCATE": true, "GRANT": true, "REVOKE": true,
}

// statementKeyword returns the upper-cased first word of sql if it is a
// known statement keyword, and "OTHER" otherwise.
func statementKeyword(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n(")
	end := strings.IndexFunc(sql, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if end < 0 {
		end = len(sql)
	}
	kw := strings.ToUpper(sql[:end])
	if knownKeywords[kw] {
		return kw
	}
	return "OTHER"
}
