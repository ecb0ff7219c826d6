package spoolotel_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// exported is one collected metric, as the tests compare it.
type exported struct {
	kind, unit, desc string
	// points maps a point's attributes (formatted by key) to its value.
	points map[string]float64
}

// collect collects reader's metrics named spool.*.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]exported {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]exported)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !strings.HasPrefix(m.Name, "spool.") {
				continue
			}
			e := exported{unit: m.Unit, desc: m.Description, points: make(map[string]float64)}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				e.kind = sumKind("Int64", d.IsMonotonic)
				for _, p := range d.DataPoints {
					e.points[attrs(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				e.kind = sumKind("Float64", d.IsMonotonic)
				for _, p := range d.DataPoints {
					e.points[attrs(p.Attributes)] = p.Value
				}
			case metricdata.Gauge[int64]:
				e.kind = "Int64ObservableGauge"
				for _, p := range d.DataPoints {
					e.points[attrs(p.Attributes)] = float64(p.Value)
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			if _, dup := got[m.Name]; dup {
				t.Fatalf("%s collected twice", m.Name)
			}
			if len(e.points) > 0 {
				got[m.Name] = e
			}
		}
	}
	return got
}

// sumKind names the asynchronous instrument that makes a Sum.
func sumKind(number string, monotonic bool) string {
	if monotonic {
		return number + "ObservableCounter"
	}
	return number + "ObservableUpDownCounter"
}

// attrs formats a set as "k=v,k=v", sorted by key.
func attrs(set attribute.Set) string {
	var b []string
	for _, kv := range set.ToSlice() {
		b = append(b, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(b, ",")
}

// want returns the values Register should observe for s, by metric and by
// the attribute that tells its series apart ("" for none), written out
// here independently of the package's own table.
func want(s spool.Stats) map[string]map[string]float64 {
	f := func(v int64) map[string]float64 { return map[string]float64{"": float64(v)} }
	w := map[string]map[string]float64{
		"spool.memory.limit":         f(s.MemoryBudget),
		"spool.memory.usage":         f(s.MemoryInUse),
		"spool.memory.peak":          f(s.PeakMemoryInUse),
		"spool.memory.mapped":        f(s.MemoryMapped),
		"spool.read_window.count":    f(int64(s.ReadWindows)),
		"spool.disk.usage":           f(s.DiskInUse),
		"spool.disk.live":            f(s.DiskLive),
		"spool.disk.written":         f(s.DiskWritten),
		"spool.spill_file.count":     f(int64(s.SpillFiles)),
		"spool.buffer.count":         f(int64(s.Buffers)),
		"spool.buffer.on_disk":       f(int64(s.BuffersOnDisk)),
		"spool.buffer.leaked":        f(s.Leaked),
		"spool.spills":               f(s.Spills),
		"spool.spill.bytes":          f(s.SpilledBytes),
		"spool.spill.errors":         f(s.SpillErrors),
		"spool.spill.time":           {"": s.SpillTime.Seconds()},
		"spool.evictions":            f(s.Evictions),
		"spool.eviction.skipped":     f(s.SkippedBusy),
		"spool.eviction.wait_time":   {"": s.EvictionWait.Seconds()},
		"spool.disk.waiters":         f(int64(s.DiskWaiters)),
		"spool.disk.wait_time":       {"": s.DiskWaitTime.Seconds()},
		"spool.promotions":           f(s.Promotions),
		"spool.promotion.bytes":      f(s.PromotedBytes),
		"spool.promotion.refused":    {"reason=admission": float64(s.PromotionsRejected), "reason=no_room": float64(s.PromotionsNoRoom)},
		"spool.reads":                {"source=memory": float64(s.ReadsFromMemory), "source=disk": float64(s.Reads - s.ReadsFromMemory)},
		"spool.read.bytes":           {"source=memory": float64(s.ReadBytesFromMemory), "source=disk": float64(s.ReadBytes - s.ReadBytesFromMemory)},
		"spool.read.zero_copy.bytes": f(s.ZeroCopyBytes),
	}
	if s.DiskBudget != 0 {
		w["spool.disk.limit"] = f(s.DiskBudget)
	}
	return w
}

// checkValues checks that got holds exactly the series want(s) lists for
// the Manager with attribute manager=name.
func checkValues(t *testing.T, got map[string]exported, name string, s spool.Stats) {
	t.Helper()
	w := want(s)
	for metric, series := range w {
		e, ok := got[metric]
		if !ok {
			t.Errorf("%s not collected", metric)
			continue
		}
		for attr, v := range series {
			key := "manager=" + name
			if attr != "" {
				// Keys sort: manager before reason and source.
				key += "," + attr
			}
			if g, ok := e.points[key]; !ok {
				t.Errorf("%s{%s} not collected; got %v", metric, key, e.points)
			} else if g != v {
				t.Errorf("%s{%s} = %v, want %v", metric, key, g, v)
			}
		}
	}
	for metric := range got {
		if _, ok := w[metric]; !ok {
			t.Errorf("%s collected, not expected", metric)
		}
	}
}

// points returns the points of got whose attributes include manager=name.
func points(got map[string]exported, name string) map[string]map[string]float64 {
	out := make(map[string]map[string]float64)
	for metric, e := range got {
		for attr, v := range e.points {
			if rest, ok := strings.CutPrefix(attr, "manager="+name); ok && (rest == "" || rest[0] == ',') {
				if out[metric] == nil {
					out[metric] = make(map[string]float64)
				}
				out[metric][attr] = v
			}
		}
	}
	return out
}

// newManager returns a Manager of a four-chunk budget of 4 KiB chunks,
// closed when the test ends.
func newManager(t *testing.T, diskBudget int64) *spool.Manager {
	t.Helper()
	m, err := spool.NewManager(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, DiskBudget: diskBudget, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func newBuffer(t *testing.T, m *spool.Manager, n int) *spool.Buffer {
	t.Helper()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	return b
}

func readAt(t *testing.T, b *spool.Buffer, off int64) {
	t.Helper()
	if _, err := b.ReadAt(make([]byte, 100), off); err != nil {
		t.Fatal(err)
	}
}

// stableStats returns m.Stats(), failing the test if it differs from
// before: the tests compare a collection with the Stats around it, with
// nothing running in between.
func stableStats(t *testing.T, m *spool.Manager, before spool.Stats) spool.Stats {
	t.Helper()
	s := m.Stats()
	if s != before {
		t.Fatalf("Stats changed during the collection:\n%+v\n%+v", before, s)
	}
	return s
}

func newReader() (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	reader := sdkmetric.NewManualReader()
	return reader, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
}

func TestRegister(t *testing.T) {
	reader, provider := newReader()
	defer provider.Shutdown(context.Background())
	meter := provider.Meter("spoolotel_test")

	m := newManager(t, 1<<20)
	other := newManager(t, 0) // no disk budget: no spool.disk.limit
	reg, err := spoolotel.Register(m, meter, attribute.String("manager", "test"))
	if err != nil {
		t.Fatal(err)
	}
	regOther, err := spoolotel.Register(other, meter, attribute.String("manager", "other"))
	if err != nil {
		t.Fatal(err)
	}

	a := newBuffer(t, m, 3*4096)
	b := newBuffer(t, m, 2*4096) // evicts a
	c := newBuffer(t, m, 100)
	if err := c.Rollover(); err != nil {
		t.Fatal(err)
	}
	readAt(t, a, 0) // from disk, through a read window
	readAt(t, b, 0) // from memory
	readAt(t, c, 0) // from disk
	newBuffer(t, other, 5000)

	s1, o1 := m.Stats(), other.Stats()
	if s1.Evictions == 0 || s1.Spills < 2 || s1.Reads-s1.ReadsFromMemory < 2 || s1.ReadsFromMemory == 0 || s1.BuffersOnDisk != 2 {
		t.Fatalf("the workload did not do what the test expects: %+v", s1)
	}
	got1 := collect(t, reader)
	s1, o1 = stableStats(t, m, s1), stableStats(t, other, o1)
	checkValues(t, filter(got1, "test"), "test", s1)
	checkValues(t, filter(got1, "other"), "other", o1)

	// More activity: every counter is at least as high, and the reads
	// and spills went up.
	readAt(t, a, 4096)
	readAt(t, b, 100)
	d := newBuffer(t, m, 4*4096)
	if err := d.Rollover(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := m.Stats()
	got2 := collect(t, reader)
	s2 = stableStats(t, m, s2)
	checkValues(t, filter(got2, "test"), "test", s2)
	for name, e := range got2 {
		if e.kind != "Int64ObservableCounter" && e.kind != "Float64ObservableCounter" {
			continue
		}
		for attr, v := range e.points {
			if v < got1[name].points[attr] {
				t.Errorf("counter %s{%s} went down from %v to %v", name, attr, got1[name].points[attr], v)
			}
		}
	}
	for _, name := range []string{"spool.spills", "spool.spill.bytes", "spool.disk.written"} {
		if got2[name].points["manager=test"] <= got1[name].points["manager=test"] {
			t.Errorf("%s did not go up: %v, then %v", name, got1[name].points, got2[name].points)
		}
	}
	for _, attr := range []string{"manager=test,source=memory", "manager=test,source=disk"} {
		if got2["spool.reads"].points[attr] <= got1["spool.reads"].points[attr] {
			t.Errorf("spool.reads{%s} did not go up: %v, then %v", attr, got1["spool.reads"].points, got2["spool.reads"].points)
		}
	}

	// Unregister stops the observations of that Manager only.
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	newBuffer(t, m, 100)
	got3 := collect(t, reader)
	if p := points(got3, "test"); len(p) != 0 {
		t.Errorf("observed after Unregister: %v", p)
	}
	checkValues(t, filter(got3, "other"), "other", stableStats(t, other, other.Stats()))
	if err := regOther.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("observed after both Unregister: %v", got)
	}
}

// filter returns got with only the points of the Manager with attribute
// manager=name.
func filter(got map[string]exported, name string) map[string]exported {
	out := make(map[string]exported)
	for metric, series := range points(got, name) {
		e := got[metric]
		e.points = series
		out[metric] = e
	}
	return out
}

// TestAttributePrecedence: a metric's own attribute wins over one of the
// caller's with the same key, and the caller's others stay.
func TestAttributePrecedence(t *testing.T) {
	reader, provider := newReader()
	defer provider.Shutdown(context.Background())
	m := newManager(t, 0)
	reg, err := spoolotel.Register(m, provider.Meter("spoolotel_test"),
		attribute.String("source", "caller"), attribute.String("manager", "test"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	got := collect(t, reader)
	if keys := slices.Sorted(maps.Keys(got["spool.reads"].points)); !slices.Equal(keys, []string{"manager=test,source=disk", "manager=test,source=memory"}) {
		t.Errorf("spool.reads series: %v", keys)
	}
	if keys := slices.Sorted(maps.Keys(got["spool.buffer.count"].points)); !slices.Equal(keys, []string{"manager=test,source=caller"}) {
		t.Errorf("spool.buffer.count series: %v", keys)
	}
}

// failingMeter fails to register callbacks.
type failingMeter struct{ noop.Meter }

var errRegister = errors.New("registration refused")

func (failingMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	return nil, errRegister
}

func TestRegisterErrors(t *testing.T) {
	_, provider := newReader()
	defer provider.Shutdown(context.Background())
	meter := provider.Meter("spoolotel_test")
	m := newManager(t, 0)
	for _, tc := range []struct {
		name  string
		m     *spool.Manager
		meter metric.Meter
		want  error
	}{
		{"nil Manager", nil, meter, spoolotel.ErrNilManager},
		{"nil Meter", m, nil, spoolotel.ErrNilMeter},
		{"callback refused", m, failingMeter{}, errRegister},
	} {
		reg, err := spoolotel.Register(tc.m, tc.meter)
		if !errors.Is(err, tc.want) || reg != nil {
			t.Errorf("%s: Register = %v, %v; want nil, %v", tc.name, reg, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "spoolotel: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
	}
}

// TestClosedManager: a Registration outliving its Manager observes the
// closed Manager's final counts.
func TestClosedManager(t *testing.T) {
	reader, provider := newReader()
	defer provider.Shutdown(context.Background())
	m, err := spool.NewManager(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := spoolotel.Register(m, provider.Meter("spoolotel_test"), attribute.String("manager", "closed"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	b := newBuffer(t, m, 5000)
	readAt(t, b, 0)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	got := collect(t, reader)
	checkValues(t, got, "closed", stableStats(t, m, s))
	if v := got["spool.buffer.count"].points["manager=closed"]; v != 0 {
		t.Errorf("spool.buffer.count = %v after Close, want 0", v)
	}
	if v := got["spool.reads"].points["manager=closed,source=memory"]; v != 1 {
		t.Errorf("spool.reads{source=memory} = %v after Close, want 1", v)
	}
}
