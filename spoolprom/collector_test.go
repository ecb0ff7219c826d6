package spoolprom_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolprom"
)

func TestCollector(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, _ := m.NewBuffer()
	a.Write(make([]byte, 3*4096))
	b, _ := m.NewBuffer()
	b.Write(make([]byte, 2*4096)) // evicts a's first chunk: all b lacks
	p := make([]byte, 100)
	a.ReadAt(p, 0) // from disk, with no read window: the budget is full, 16384 bytes in use
	b.ReadAt(p, 0) // from memory

	c := spoolprom.NewCollector(m, prometheus.Labels{"manager": "test"})
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := `
# HELP spool_memory_in_use_bytes Bytes of budget memory in use: buffer data, read windows and the stages of ReadFrom and WriteTo; never above the budget, but while a shrink of the budget is paid off.
# TYPE spool_memory_in_use_bytes gauge
spool_memory_in_use_bytes{manager="test"} 16384
# HELP spool_buffers_on_disk Live buffers with data on disk.
# TYPE spool_buffers_on_disk gauge
spool_buffers_on_disk{manager="test"} 1
# HELP spool_evictions_total Evictions: a buffer's chunks moved to disk to free memory for another buffer's write or a smaller budget.
# TYPE spool_evictions_total counter
spool_evictions_total{manager="test"} 1
# HELP spool_reads_total Reads that returned data, by where they were served from: memory (entirely) or disk.
# TYPE spool_reads_total counter
spool_reads_total{manager="test",source="disk"} 1
spool_reads_total{manager="test",source="memory"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"spool_memory_in_use_bytes", "spool_buffers_on_disk", "spool_evictions_total", "spool_reads_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 31 {
		t.Errorf("%d metrics collected, want 31", n)
	}
	// Two managers with distinct labels register in one registry.
	m2, _ := spool.NewManager(spool.Options{TempDir: t.TempDir()})
	defer m2.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c, spoolprom.NewCollector(m2, prometheus.Labels{"manager": "other"}))
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}
