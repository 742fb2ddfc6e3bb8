package storage

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The storage series come from the open engine and disappear, without a
// read of the closed database, once it is closed.
func TestMetricsAbsentAfterClose(t *testing.T) {
	e, err := Open(t.TempDir(), Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e.RegisterMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != len(engineMetrics) {
		t.Fatalf("open engine: %d families, %v", len(mfs), err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "kvnode_storage_disk_usage_bytes" && mf.GetMetric()[0].GetGauge().GetValue() <= 0 {
			t.Fatalf("disk usage of an open store: %v", mf)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("closed engine: %d families, %v", len(mfs), err)
	}
}
