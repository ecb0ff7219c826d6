// Package spoolotel exports a spool.Manager's Stats as OpenTelemetry
// metrics, through the OpenTelemetry metric API: the counterpart of
// spoolprom for Prometheus.
//
//	reg, err := spoolotel.Register(m, otel.Meter("example.com/uploads"), attribute.String("manager", "uploads"))
//	...
//	defer reg.Unregister()
//
// Register creates one asynchronous instrument per metric and registers
// one callback for all of them: each collection calls Manager.Stats once
// and observes every instrument from that snapshot. Nothing is counted
// between collections; the package holds no state of its own.
//
// The attributes given to Register are added to every observation: give
// each Manager observed through the same MeterProvider a distinct value
// (such as a manager name), or their series merge. The attributes the
// metrics below add themselves (source, reason) take precedence over
// attributes with the same key.
//
// Names follow the OpenTelemetry semantic conventions: a spool.
// namespace; units in the unit field (By, s, {buffer}), and in a name
// only where a count of the same things sits beside it (spool.spills,
// spool.spill.bytes); limit and usage for a bound and what is used of it;
// counters of events as plural nouns; current amounts as UpDownCounters,
// whose sum over several Managers is meaningful, and the peak as a Gauge,
// whose sum is not.
//
// # Metrics
//
// Each metric is listed as name (instrument, unit[, attribute=values]):
// the instrument's description. The test TestDocListsMetrics checks this
// list against the instruments Register creates.
//
//   - spool.memory.limit (Int64ObservableUpDownCounter, By): Bytes of
//     memory all buffers of the manager may hold together: Options.MemoryBudget.
//   - spool.memory.usage (Int64ObservableUpDownCounter, By): Bytes of
//     budget memory in use: buffer data, read windows and the stages of
//     ReadFrom and WriteTo; never above spool.memory.limit, but while a
//     shrink of the budget is paid off.
//   - spool.memory.peak (Int64ObservableGauge, By): Highest
//     spool.memory.usage since the manager was created.
//   - spool.memory.mapped (Int64ObservableUpDownCounter, By): Bytes of
//     budget memory mapped from the operating system outside Go's heap, in
//     use or in the free lists: not in Go's runtime metrics, and not
//     bounded by GOMEMLIMIT.
//   - spool.read_window.count (Int64ObservableUpDownCounter, {window}):
//     Read windows held: checked copies of one spilled chunk each, for
//     small reads of spilled data; counted in spool.memory.usage.
//   - spool.disk.limit (Int64ObservableUpDownCounter, By): Limit on
//     spool.disk.usage: the disk budget; not observed when there is no
//     limit.
//   - spool.disk.usage (Int64ObservableUpDownCounter, By): Disk space the
//     spill files may hold: the granules of their live extents, and freed
//     space not yet given back; never above spool.disk.limit.
//   - spool.disk.live (Int64ObservableUpDownCounter, By): Bytes of buffer
//     data in the spill files.
//   - spool.disk.written (Int64ObservableCounter, By): Bytes written to
//     spill files, by rollovers and by writes to buffers on disk.
//   - spool.spill_file.count (Int64ObservableUpDownCounter, {file}): Spill
//     files open: the segments of the manager's spill arena.
//   - spool.buffer.count (Int64ObservableUpDownCounter, {buffer}): Live
//     (not closed) buffers.
//   - spool.buffer.on_disk (Int64ObservableUpDownCounter, {buffer}): Live
//     buffers with data on disk.
//   - spool.buffer.leaked (Int64ObservableCounter, {buffer}): Buffers
//     garbage-collected without Close; their memory and disk were released
//     then.
//   - spool.spills (Int64ObservableCounter, {spill}): Completed rollovers
//     of buffers to disk, whatever their reason.
//   - spool.spill.bytes (Int64ObservableCounter, By): Bytes copied from
//     memory to disk by rollovers.
//   - spool.spill.errors (Int64ObservableCounter, {error}): Rollovers that
//     failed, with a disk error or at the disk budget; the data stayed
//     intact.
//   - spool.spill.time (Float64ObservableCounter, s): Time spent rolling
//     buffers over to disk.
//   - spool.evictions (Int64ObservableCounter, {eviction}): Evictions: a
//     buffer's chunks moved to disk to free memory for another buffer's
//     write or a smaller budget; counted in spool.spills.
//   - spool.eviction.skipped (Int64ObservableCounter, {buffer}): Buffers
//     chosen for a rollover but skipped because another goroutine was
//     using them.
//   - spool.eviction.wait_time (Float64ObservableCounter, s): Time writers
//     waited while other buffers were rolled over to make room for them.
//   - spool.disk.waiters (Int64ObservableUpDownCounter, {write}): Writes
//     waiting for disk budget now (buffers made by NewBufferContext).
//   - spool.disk.wait_time (Float64ObservableCounter, s): Time writes
//     waited for disk budget.
//   - spool.promotions (Int64ObservableCounter, {promotion}): Spilled
//     buffers brought back into memory.
//   - spool.promotion.bytes (Int64ObservableCounter, By): Bytes of spilled
//     buffers brought back into memory.
//   - spool.promotion.refused (Int64ObservableCounter, {candidate},
//     reason=admission|no_room): Promotion candidates refused, by reason:
//     admission (turned down by ristretto's TinyLFU) or no_room (admitted,
//     but only buffers at least as hot held the memory).
//   - spool.reads (Int64ObservableCounter, {read}, source=memory|disk):
//     Reads that returned data, by where they were served from: memory
//     (entirely) or disk.
//   - spool.read.bytes (Int64ObservableCounter, By, source=memory|disk):
//     Bytes read, by where they came from: memory or disk.
//   - spool.read.zero_copy.bytes (Int64ObservableCounter, By): Bytes the
//     kernel sent straight from spill files for WriteTo (sendfile), after
//     checking them; counted in spool.read.bytes as source=disk.
//
// These are spoolprom's metrics under OpenTelemetry names, with one
// difference: where spoolprom reports no disk budget as a
// spool_disk_budget_bytes of 0, spool.disk.limit is not observed.
//
// # Caveats
//
// Manager.Stats reads its fields one by one without stopping the Manager,
// so under concurrent use the values of one collection may not add up
// exactly (Buffers and BuffersOnDisk, say, are read at different
// moments). Every counter, each source of spool.reads and spool.read.bytes
// included, only grows: spool counts reads from memory and from disk
// apart, and Stats adds them up for the totals.
//
// The callback keeps the Manager reachable until Unregister: after
// Manager.Close it goes on observing the closed Manager's final counts.
package spoolotel
