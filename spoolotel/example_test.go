package spoolotel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolotel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// ExampleRegister observes a Manager's metrics with the OpenTelemetry
// SDK. A real server would give the MeterProvider a periodic reader and
// an exporter (OTLP, Prometheus) instead of a ManualReader, or use the
// global one of otel.Meter.
func ExampleRegister() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	reg, err := spoolotel.Register(m, provider.Meter("example.com/uploads"), attribute.String("manager", "uploads"))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()

	b, _ := m.NewBuffer()
	b.Write(make([]byte, 5000))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	sums := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			sums[metric.Name] = metric
		}
	}
	for _, name := range []string{"spool.memory.usage", "spool.buffer.count"} {
		metric := sums[name]
		p := metric.Data.(metricdata.Sum[int64]).DataPoints[0]
		manager, _ := p.Attributes.Value("manager")
		fmt.Printf("%s{manager=%s} %d %s\n", name, manager.AsString(), p.Value, metric.Unit)
	}
	// Output:
	// spool.memory.usage{manager=uploads} 5120 By
	// spool.buffer.count{manager=uploads} 1 {buffer}
}
