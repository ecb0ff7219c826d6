package spoolexpvar_test

import (
	"encoding/json"
	"expvar"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolexpvar"
)

func TestPublish(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	b.Write(make([]byte, 5000))
	spoolexpvar.Publish("spool_test", m)
	v := expvar.Get("spool_test")
	if v == nil {
		t.Fatal("not published")
	}
	var got spool.Stats
	if err := json.Unmarshal([]byte(v.String()), &got); err != nil {
		t.Fatalf("%s: %v", v.String(), err)
	}
	if got.MemoryBudget != 1<<20 || got.MemoryInUse != 8192 || got.Buffers != 1 {
		t.Errorf("published %+v", got)
	}
}
