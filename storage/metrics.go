package storage

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exports the engine's basic Pebble metrics, read at scrape
// time.
func (e *Engine) RegisterMetrics(reg prometheus.Registerer) {
	g := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "kvnode", Subsystem: "storage", Name: name, Help: help}, fn))
	}
	c := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "kvnode", Subsystem: "storage", Name: name, Help: help}, fn))
	}
	g("disk_usage_bytes", "Bytes the Pebble store occupies on disk (SSTables, WAL, manifests).",
		func() float64 { return float64(e.DB.Metrics().DiskSpaceUsage()) })
	g("memtable_bytes", "Bytes held in Pebble memtables.",
		func() float64 { return float64(e.DB.Metrics().MemTable.Size) })
	g("l0_files", "Number of SSTables in level 0 (a high count slows reads and writes).",
		func() float64 { return float64(e.DB.Metrics().Levels[0].NumFiles) })
	g("read_amplification", "Pebble read amplification: sublevels plus memtables a read may visit.",
		func() float64 { return float64(e.DB.Metrics().ReadAmp()) })
	c("compactions_total", "Compactions Pebble has completed since the node started.",
		func() float64 { return float64(e.DB.Metrics().Compact.Count) })
	c("wal_bytes_written_total", "Bytes written to the write-ahead log since the node started.",
		func() float64 { return float64(e.DB.Metrics().WAL.BytesWritten) })
}
