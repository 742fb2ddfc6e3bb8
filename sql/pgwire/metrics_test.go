package pgwire

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestStatementKeyword(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":            "SELECT",
		"  select\n1":         "SELECT",
		"(SELECT 1)":          "SELECT",
		"insert into t":       "INSERT",
		"SET CLUSTER SETTING": "SET",
		"frobnicate":          "OTHER",
		"":                    "OTHER",
		"SELECTX":             "OTHER",
	} {
		if got := statementKeyword(sql); got != want {
			t.Errorf("statementKeyword(%q) = %q, want %q", sql, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	ts := startServer(t, Config{Metrics: m, MaxConns: 1})
	ctx := testContext(t)
	conn := ts.connect(t, pgx.QueryExecModeCacheStatement)
	if _, err := pgx.Connect(ctx, ts.connString()); err == nil {
		t.Fatal("second connection admitted over MaxConns")
	}
	for range 3 {
		if _, err := conn.Exec(ctx, "SELECT $1::INT8", int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = conn.Exec(ctx, "SELECT 1/0")
	_, _ = conn.Exec(ctx, "INSERT INTO t VALUES (1)")

	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{value(t, m.Conns), 1, "conns"},
		{value(t, m.ConnsRejected), 1, "rejected"},
		{value(t, m.Statements.WithLabelValues("SELECT", "ok")), 3, "select ok"},
		{value(t, m.Statements.WithLabelValues("SELECT", "error")), 1, "select error"},
		{value(t, m.Statements.WithLabelValues("INSERT", "ok")), 1, "insert ok"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	families, err := reg.Gather() // the pedantic registry also checks consistency
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "kvnode_sql_statement_duration_seconds" && len(f.GetMetric()) != 2 {
			t.Errorf("latency series = %d, want 2 (SELECT, INSERT)", len(f.GetMetric()))
		}
	}
	_ = conn.Close(context.Background())
	waitFor(t, func() bool { return value(t, m.Conns) == 0 })
}

// value reads a counter or gauge. (prometheus/testutil would do, but it
// pulls in a dependency this module does not carry.)
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
