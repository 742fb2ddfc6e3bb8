package storage

import (
	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exports the engine's basic Pebble metrics, read at scrape
// time from one snapshot per scrape. Once the engine is closed (a scrape
// can arrive while the node stops), the series are absent rather than read
// from a closed database.
func (e *Engine) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(engineCollector{e})
}

type engineMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(m *pebble.Metrics) float64
}

var engineMetrics = func() []engineMetric {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kvnode", "storage", name), help, nil, nil)
	}
	return []engineMetric{
		{d("disk_usage_bytes", "Bytes the Pebble store occupies on disk (SSTables, WAL, manifests)."),
			prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.DiskSpaceUsage()) }},
		{d("memtable_bytes", "Bytes held in Pebble memtables."),
			prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.MemTable.Size) }},
		{d("l0_files", "Number of SSTables in level 0 (a high count slows reads and writes)."),
			prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.Levels[0].NumFiles) }},
		{d("read_amplification", "Pebble read amplification: sublevels plus memtables a read may visit."),
			prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.ReadAmp()) }},
		{d("compactions_total", "Compactions Pebble has completed since the node started."),
			prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.Compact.Count) }},
		{d("block_cache_bytes", "Bytes of SSTable blocks held in the block cache."),
			prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Size) }},
		{d("block_cache_hits_total", "Reads of an SSTable block found in the block cache."),
			prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Hits) }},
		{d("block_cache_misses_total", "Reads of an SSTable block that missed the block cache and read the file."),
			prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Misses) }},
		{d("wal_bytes_written_total", "Bytes written to the write-ahead log since the node started."),
			prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.WAL.BytesWritten) }},
	}
}()

type engineCollector struct{ e *Engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range engineMetrics {
		ch <- m.desc
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	c.e.closeMu.RLock()
	defer c.e.closeMu.RUnlock()
	if c.e.closed {
		return
	}
	snap := c.e.DB.Metrics()
	for _, m := range engineMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(snap))
	}
}
