package spoolotel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spoolkit/spool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var (
	// ErrNilManager is returned by Register when the Manager is nil.
	ErrNilManager = errors.New("spoolotel: nil Manager")
	// ErrNilMeter is returned by Register when the Meter is nil.
	ErrNilMeter = errors.New("spoolotel: nil Meter")
)

// Register creates spool's instruments on meter and registers one callback
// that observes them all from one m.Stats() per collection. attrs are
// added to every observation. The metrics are listed in the package
// documentation.
//
// Unregister the returned Registration to stop the observations; the
// instruments stay with the Meter, as instruments do. Register returns
// ErrNilManager or ErrNilMeter for a nil argument, and if meter fails to
// create an instrument or to register the callback, the error, wrapped,
// having registered nothing. Register may be called concurrently, and the
// callback may run concurrently with any use of the Manager.
func Register(m *spool.Manager, meter metric.Meter, attrs ...attribute.KeyValue) (metric.Registration, error) {
	if m == nil {
		return nil, ErrNilManager
	}
	if meter == nil {
		return nil, ErrNilMeter
	}
	var (
		errs        []error
		instruments = make([]metric.Observable, 0, len(metrics))
		observers   = make([]func(spool.Stats, metric.Observer), 0, len(metrics))
	)
	for _, d := range metrics {
		inst, observe, err := d.instrument(meter, attrs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		instruments = append(instruments, inst)
		observers = append(observers, observe)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("spoolotel: creating instruments: %w", err)
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := m.Stats()
		for _, observe := range observers {
			observe(s, o)
		}
		return nil
	}, instruments...)
	if err != nil {
		return nil, fmt.Errorf("spoolotel: registering the callback: %w", err)
	}
	return reg, nil
}

// kind is the kind of an instrument.
type kind int

const (
	upDownCounter kind = iota // Int64ObservableUpDownCounter
	gauge                     // Int64ObservableGauge
	counter                   // Int64ObservableCounter
	seconds                   // Float64ObservableCounter of a time.Duration, in s
)

// series is one series of a metric: the value of its attribute (empty for
// a metric without one) and how to compute its value from Stats. For a
// metric of kind seconds, value returns a time.Duration.
type series struct {
	attr  string
	value func(spool.Stats) int64
	// skip, if set, says when the series is not observed.
	skip func(spool.Stats) bool
}

// def defines one metric: one instrument, with one series, or one series
// per value of its attribute key.
type def struct {
	name, unit, desc string
	kind             kind
	key              attribute.Key // the attribute telling the series apart, or ""
	series           []series
}

// one returns the single series of a metric without attributes.
func one(value func(spool.Stats) int64) []series { return []series{{value: value}} }

// metrics is every metric Register creates, in the order of the package
// documentation.
var metrics = []def{
	{"spool.memory.limit", "By", "Bytes of memory all buffers of the manager may hold together: Options.MemoryBudget.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return s.MemoryBudget })},
	{"spool.memory.usage", "By", "Bytes of budget memory in use: buffer data, read windows and the stages of ReadFrom and WriteTo; never above spool.memory.limit, but while a shrink of the budget is paid off.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return s.MemoryInUse })},
	{"spool.memory.peak", "By", "Highest spool.memory.usage since the manager was created.", gauge, "",
		one(func(s spool.Stats) int64 { return s.PeakMemoryInUse })},
	{"spool.memory.mapped", "By", "Bytes of budget memory mapped from the operating system outside Go's heap, in use or in the free lists: not in Go's runtime metrics, and not bounded by GOMEMLIMIT.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return s.MemoryMapped })},
	{"spool.read_window.count", "{window}", "Read windows held: checked copies of one spilled chunk each, for small reads of spilled data; counted in spool.memory.usage.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return int64(s.ReadWindows) })},
	{"spool.disk.limit", "By", "Limit on spool.disk.usage: the disk budget; not observed when there is no limit.", upDownCounter, "",
		[]series{{value: func(s spool.Stats) int64 { return s.DiskBudget }, skip: func(s spool.Stats) bool { return s.DiskBudget == 0 }}}},
	{"spool.disk.usage", "By", "Disk space the spill files may hold: the granules of their live extents, and freed space not yet given back; never above spool.disk.limit.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return s.DiskInUse })},
	{"spool.disk.live", "By", "Bytes of buffer data in the spill files.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return s.DiskLive })},
	{"spool.disk.written", "By", "Bytes written to spill files, by rollovers and by writes to buffers on disk.", counter, "",
		one(func(s spool.Stats) int64 { return s.DiskWritten })},
	{"spool.spill_file.count", "{file}", "Spill files open: the segments of the manager's spill arena.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return int64(s.SpillFiles) })},
	{"spool.buffer.count", "{buffer}", "Live (not closed) buffers.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return int64(s.Buffers) })},
	{"spool.buffer.on_disk", "{buffer}", "Live buffers with data on disk.", upDownCounter, "",
		one(func(s spool.Stats) int64 { return int64(s.BuffersOnDisk) })},
	{"spool.buffer.leaked", "{buffer}", "Buffers garbage-collected without Close; their memory and disk were released then.", counter, "",
		one(func(s spool.Stats) int64 { return s.Leaked })},
	{"spool.spills", "{spill}", "Completed rollovers of buffers to disk, whatever their reason.", counter, "",
		one(func(s spool.Stats) int64 { return s.Spills })},
	{"spool.spill.bytes", "By", "Bytes copied from memory to disk by rollovers.", counter, "",
		one(func(s spool.Stats) int64 { return s.SpilledBytes })},
	{"spool.spill.errors", "{error}", "Rollovers that failed, with a disk error or at the disk budget; the data stayed intact.", counter, "",
		one(func(s spool.Stats) int64 { return s.SpillErrors })},
	{"spool.spill.time", "s", "Time spent rolling buffers over to disk.", seconds, "",
		one(func(s spool.Stats) int64 { return int64(s.SpillTime) })},
	{"spool.evictions", "{eviction}", "Evictions: a buffer's chunks moved to disk to free memory for another buffer's write or a smaller budget; counted in spool.spills.", counter, "",
		one(func(s spool.Stats) int64 { return s.Evictions })},
	{"spool.eviction.skipped", "{buffer}", "Buffers chosen for a rollover but skipped because another goroutine was using them.", counter, "",
		one(func(s spool.Stats) int64 { return s.SkippedBusy })},
	{"spool.eviction.wait_time", "s", "Time writers waited while other buffers were rolled over to make room for them.", seconds, "",
		one(func(s spool.Stats) int64 { return int64(s.EvictionWait) })},
	{"spool.disk.waiters", "{write}", "Writes waiting for disk budget now (buffers made by NewBufferContext).", upDownCounter, "",
		one(func(s spool.Stats) int64 { return int64(s.DiskWaiters) })},
	{"spool.disk.wait_time", "s", "Time writes waited for disk budget.", seconds, "",
		one(func(s spool.Stats) int64 { return int64(s.DiskWaitTime) })},
	{"spool.promotions", "{promotion}", "Spilled buffers brought back into memory.", counter, "",
		one(func(s spool.Stats) int64 { return s.Promotions })},
	{"spool.promotion.bytes", "By", "Bytes of spilled buffers brought back into memory.", counter, "",
		one(func(s spool.Stats) int64 { return s.PromotedBytes })},
	{"spool.promotion.refused", "{candidate}", "Promotion candidates refused, by reason: admission (turned down by ristretto's TinyLFU) or no_room (admitted, but only buffers at least as hot held the memory).", counter, "reason",
		[]series{
			{attr: "admission", value: func(s spool.Stats) int64 { return s.PromotionsRejected }},
			{attr: "no_room", value: func(s spool.Stats) int64 { return s.PromotionsNoRoom }},
		}},
	{"spool.reads", "{read}", "Reads that returned data, by where they were served from: memory (entirely) or disk.", counter, "source",
		[]series{
			{attr: "memory", value: func(s spool.Stats) int64 { return s.ReadsFromMemory }},
			{attr: "disk", value: func(s spool.Stats) int64 { return s.Reads - s.ReadsFromMemory }},
		}},
	{"spool.read.bytes", "By", "Bytes read, by where they came from: memory or disk.", counter, "source",
		[]series{
			{attr: "memory", value: func(s spool.Stats) int64 { return s.ReadBytesFromMemory }},
			{attr: "disk", value: func(s spool.Stats) int64 { return s.ReadBytes - s.ReadBytesFromMemory }},
		}},
	{"spool.read.zero_copy.bytes", "By", "Bytes the kernel sent straight from spill files for WriteTo (sendfile), after checking them; counted in spool.read.bytes as source=disk.", counter, "",
		one(func(s spool.Stats) int64 { return s.ZeroCopyBytes })},
}

// instrument creates d's instrument on meter and returns it with the
// function that observes its series, each with attrs and its own
// attribute (which wins over one of attrs with the same key).
func (d def) instrument(meter metric.Meter, attrs []attribute.KeyValue) (metric.Observable, func(spool.Stats, metric.Observer), error) {
	opts := make([]metric.ObserveOption, len(d.series))
	for i, sr := range d.series {
		kv := attrs
		if d.key != "" {
			// attribute.NewSet keeps the last of equal keys.
			kv = append(kv[:len(kv):len(kv)], d.key.String(sr.attr))
		}
		opts[i] = metric.WithAttributeSet(attribute.NewSet(kv...))
	}
	desc, unit := metric.WithDescription(d.desc), metric.WithUnit(d.unit)
	switch d.kind {
	case seconds:
		inst, err := meter.Float64ObservableCounter(d.name, desc, unit)
		return inst, func(s spool.Stats, o metric.Observer) {
			for i, sr := range d.series {
				if sr.skip == nil || !sr.skip(s) {
					o.ObserveFloat64(inst, time.Duration(sr.value(s)).Seconds(), opts[i])
				}
			}
		}, err
	}
	var (
		inst metric.Int64Observable
		err  error
	)
	switch d.kind {
	case upDownCounter:
		inst, err = meter.Int64ObservableUpDownCounter(d.name, desc, unit)
	case gauge:
		inst, err = meter.Int64ObservableGauge(d.name, desc, unit)
	default:
		inst, err = meter.Int64ObservableCounter(d.name, desc, unit)
	}
	return inst, func(s spool.Stats, o metric.Observer) {
		for i, sr := range d.series {
			if sr.skip == nil || !sr.skip(s) {
				o.ObserveInt64(inst, sr.value(s), opts[i])
			}
		}
	}, err
}
