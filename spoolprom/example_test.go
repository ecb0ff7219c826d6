package spoolprom_test

import (
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolprom"
)

// ExampleNewCollector registers a Manager's metrics; a real server would
// serve reg with promhttp.HandlerFor.
func ExampleNewCollector() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(spoolprom.NewCollector(m, prometheus.Labels{"manager": "uploads"}))

	b, _ := m.NewBuffer()
	b.Write(make([]byte, 5000))
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "spool_memory_in_use_bytes" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	// Output:
	// spool_memory_in_use_bytes 5120
}
