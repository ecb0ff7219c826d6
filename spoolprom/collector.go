// Package spoolprom exports a spool.Manager's Stats as Prometheus metrics.
//
//	reg.MustRegister(spoolprom.NewCollector(m, prometheus.Labels{"manager": "uploads"}))
//
// Metric names follow the Prometheus conventions: a spool_ prefix, base
// units (bytes, seconds), _total for counters. Each scrape calls
// Manager.Stats once; the Collector holds no state of its own.
//
// # Metrics
//
// Each metric is listed as name (type[, label=values]): its help text. The
// labels given to NewCollector are added to every metric.
// TestDocListsMetrics checks this list against the metrics the Collector
// describes and collects.
//
//   - spool_memory_budget_bytes (gauge): Bytes of memory all buffers of the
//     manager may hold.
//   - spool_memory_in_use_bytes (gauge): Bytes of budget memory in use: buffer
//     data, read windows and the stages of ReadFrom and WriteTo; never above
//     the budget, but while a shrink of the budget is paid off.
//   - spool_memory_in_use_peak_bytes (gauge): Highest memory_in_use_bytes
//     since the manager was created.
//   - spool_memory_mapped_bytes (gauge): Bytes of budget memory mapped from
//     the operating system outside Go's heap, in use or in the free lists:
//     not in Go's runtime metrics, and not bounded by GOMEMLIMIT.
//   - spool_read_windows (gauge): Read windows held: checked copies of
//     spilled blocks (a chunk each) for small reads, counted in
//     memory_in_use_bytes.
//   - spool_disk_budget_bytes (gauge): Limit on disk_in_use_bytes; 0 means
//     none.
//   - spool_disk_in_use_bytes (gauge): Disk space the spill files may hold:
//     the granules of their live extents, and freed space not yet given
//     back; never above the disk budget.
//   - spool_disk_live_bytes (gauge): Bytes of buffer data in the spill
//     files.
//   - spool_spill_files (gauge): Spill files open: the segments of the
//     manager's spill arena.
//   - spool_buffers (gauge): Live buffers.
//   - spool_buffers_on_disk (gauge): Live buffers with data on disk.
//   - spool_spills_total (counter): Completed rollovers of buffers to disk.
//   - spool_spilled_bytes_total (counter): Bytes copied from memory to disk by
//     rollovers.
//   - spool_disk_written_bytes_total (counter): Bytes written to spill files.
//   - spool_evictions_total (counter): Evictions: a buffer's chunks moved to
//     disk to free memory for another buffer's write or a smaller budget.
//   - spool_spill_errors_total (counter): Rollovers that failed, with a disk
//     error or at the disk budget; the data stayed intact.
//   - spool_leaked_buffers_total (counter): Buffers garbage-collected without
//     Close.
//   - spool_promotions_total (counter): Spilled buffers brought back into
//     memory.
//   - spool_promoted_bytes_total (counter): Bytes of spilled buffers brought
//     back into memory.
//   - spool_promotions_refused_total (counter, reason=admission|no_room):
//     Promotion candidates refused, by reason: admission (ristretto TinyLFU)
//     or no_room.
//   - spool_skipped_busy_total (counter): Buffers chosen for a rollover but
//     skipped because another goroutine was using them.
//   - spool_reads_total (counter, source=memory|disk): Reads that returned
//     data, by where they were served from: memory (entirely) or disk.
//   - spool_read_bytes_total (counter, source=memory|disk): Bytes read, by
//     where they came from: memory or disk.
//   - spool_zero_copy_bytes_total (counter): Bytes of spill files the kernel
//     sent for WriteTo without copies (sendfile), after checking them; also
//     counted in read_bytes_total.
//   - spool_spill_seconds_total (counter): Time spent rolling buffers over to
//     disk.
//   - spool_eviction_wait_seconds_total (counter): Time writers waited while
//     other buffers were rolled over to make room for them.
//   - spool_disk_waiters (gauge): Writes waiting for disk budget now (buffers
//     made by NewBufferContext).
//   - spool_disk_wait_seconds_total (counter): Time writes waited for disk
//     budget.
package spoolprom

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spoolkit/spool"
)

// Collector is a prometheus.Collector for one Manager. It is safe for
// concurrent use; create it with NewCollector.
type Collector struct {
	m       *spool.Manager
	metrics []metric
}

// metric is one metric family: its description, and the function that
// emits its values (one per label value) from a Stats snapshot.
type metric struct {
	desc    *prometheus.Desc
	kind    prometheus.ValueType
	collect func(s spool.Stats, emit func(v float64, labelValues ...string))
}

// NewCollector returns a Collector for m. labels, which may be nil, are
// added to every metric: give each Manager registered with the same
// registry a distinct label value.
func NewCollector(m *spool.Manager, labels prometheus.Labels) *Collector {
	c := &Collector{m: m}
	add := func(name, help string, kind prometheus.ValueType, varLabels []string, collect func(spool.Stats, func(float64, ...string))) {
		c.metrics = append(c.metrics, metric{prometheus.NewDesc("spool_"+name, help, varLabels, labels), kind, collect})
	}
	one := func(name, help string, kind prometheus.ValueType, value func(spool.Stats) float64) {
		add(name, help, kind, nil, func(s spool.Stats, emit func(float64, ...string)) { emit(value(s)) })
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	f := func(v int64) float64 { return float64(v) }

	one("memory_budget_bytes", "Bytes of memory all buffers of the manager may hold.", gauge, func(s spool.Stats) float64 { return f(s.MemoryBudget) })
	one("memory_in_use_bytes", "Bytes of budget memory in use: buffer data, read windows and the stages of ReadFrom and WriteTo; never above the budget, but while a shrink of the budget is paid off.", gauge, func(s spool.Stats) float64 { return f(s.MemoryInUse) })
	one("memory_in_use_peak_bytes", "Highest memory_in_use_bytes since the manager was created.", gauge, func(s spool.Stats) float64 { return f(s.PeakMemoryInUse) })
	one("memory_mapped_bytes", "Bytes of budget memory mapped from the operating system outside Go's heap, in use or in the free lists: not in Go's runtime metrics, and not bounded by GOMEMLIMIT.", gauge, func(s spool.Stats) float64 { return f(s.MemoryMapped) })
	one("read_windows", "Read windows held: checked copies of spilled blocks (a chunk each) for small reads, counted in memory_in_use_bytes.", gauge, func(s spool.Stats) float64 { return float64(s.ReadWindows) })
	one("disk_budget_bytes", "Limit on disk_in_use_bytes; 0 means none.", gauge, func(s spool.Stats) float64 { return f(s.DiskBudget) })
	one("disk_in_use_bytes", "Disk space the spill files may hold: the granules of their live extents, and freed space not yet given back; never above the disk budget.", gauge, func(s spool.Stats) float64 { return f(s.DiskInUse) })
	one("disk_live_bytes", "Bytes of buffer data in the spill files.", gauge, func(s spool.Stats) float64 { return f(s.DiskLive) })
	one("spill_files", "Spill files open: the segments of the manager's spill arena.", gauge, func(s spool.Stats) float64 { return float64(s.SpillFiles) })
	one("buffers", "Live buffers.", gauge, func(s spool.Stats) float64 { return float64(s.Buffers) })
	one("buffers_on_disk", "Live buffers with data on disk.", gauge, func(s spool.Stats) float64 { return float64(s.BuffersOnDisk) })
	one("spills_total", "Completed rollovers of buffers to disk.", counter, func(s spool.Stats) float64 { return f(s.Spills) })
	one("spilled_bytes_total", "Bytes copied from memory to disk by rollovers.", counter, func(s spool.Stats) float64 { return f(s.SpilledBytes) })
	one("disk_written_bytes_total", "Bytes written to spill files.", counter, func(s spool.Stats) float64 { return f(s.DiskWritten) })
	one("evictions_total", "Evictions: a buffer's chunks moved to disk to free memory for another buffer's write or a smaller budget.", counter, func(s spool.Stats) float64 { return f(s.Evictions) })
	one("spill_errors_total", "Rollovers that failed, with a disk error or at the disk budget; the data stayed intact.", counter, func(s spool.Stats) float64 { return f(s.SpillErrors) })
	one("leaked_buffers_total", "Buffers garbage-collected without Close.", counter, func(s spool.Stats) float64 { return f(s.Leaked) })
	one("promotions_total", "Spilled buffers brought back into memory.", counter, func(s spool.Stats) float64 { return f(s.Promotions) })
	one("promoted_bytes_total", "Bytes of spilled buffers brought back into memory.", counter, func(s spool.Stats) float64 { return f(s.PromotedBytes) })
	add("promotions_refused_total", "Promotion candidates refused, by reason: admission (ristretto TinyLFU) or no_room.", counter, []string{"reason"},
		func(s spool.Stats, emit func(float64, ...string)) {
			emit(f(s.PromotionsRejected), "admission")
			emit(f(s.PromotionsNoRoom), "no_room")
		})
	one("skipped_busy_total", "Buffers chosen for a rollover but skipped because another goroutine was using them.", counter, func(s spool.Stats) float64 { return f(s.SkippedBusy) })
	add("reads_total", "Reads that returned data, by where they were served from: memory (entirely) or disk.", counter, []string{"source"},
		func(s spool.Stats, emit func(float64, ...string)) {
			emit(f(s.ReadsFromMemory), "memory")
			emit(f(s.Reads-s.ReadsFromMemory), "disk")
		})
	add("read_bytes_total", "Bytes read, by where they came from: memory or disk.", counter, []string{"source"},
		func(s spool.Stats, emit func(float64, ...string)) {
			emit(f(s.ReadBytesFromMemory), "memory")
			emit(f(s.ReadBytes-s.ReadBytesFromMemory), "disk")
		})
	one("zero_copy_bytes_total", "Bytes of spill files the kernel sent for WriteTo without copies (sendfile), after checking them; also counted in read_bytes_total.", counter, func(s spool.Stats) float64 { return f(s.ZeroCopyBytes) })
	one("spill_seconds_total", "Time spent rolling buffers over to disk.", counter, func(s spool.Stats) float64 { return s.SpillTime.Seconds() })
	one("eviction_wait_seconds_total", "Time writers waited while other buffers were rolled over to make room for them.", counter, func(s spool.Stats) float64 { return s.EvictionWait.Seconds() })
	one("disk_waiters", "Writes waiting for disk budget now (buffers made by NewBufferContext).", gauge, func(s spool.Stats) float64 { return float64(s.DiskWaiters) })
	one("disk_wait_seconds_total", "Time writes waited for disk budget.", counter, func(s spool.Stats) float64 { return s.DiskWaitTime.Seconds() })
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	for _, m := range c.metrics {
		m.collect(s, func(v float64, labelValues ...string) {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, v, labelValues...)
		})
	}
}
