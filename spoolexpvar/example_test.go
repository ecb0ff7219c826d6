package spoolexpvar_test

import (
	"encoding/json"
	"expvar"
	"fmt"
	"log"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolexpvar"
)

// ExamplePublish publishes a Manager's Stats under /debug/vars (served by
// expvar's handler on http.DefaultServeMux), here read back directly.
func ExamplePublish() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	spoolexpvar.Publish("spool_example", m)

	b, _ := m.NewBuffer()
	b.Write(make([]byte, 10000))

	var st spool.Stats
	json.Unmarshal([]byte(expvar.Get("spool_example").String()), &st)
	fmt.Println("buffers:", st.Buffers, "memory in use:", st.MemoryInUse)
	// Output:
	// buffers: 1 memory in use: 10240
}
