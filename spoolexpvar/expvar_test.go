package spoolexpvar_test

import (
	"encoding/json"
	"expvar"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolexpvar"
)

// runs numbers the published names: expvar names are process-wide and
// cannot be unpublished, and go test -count=N runs TestPublish N times in
// one process.
var runs atomic.Int64

func TestPublish(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	b.Write(make([]byte, 5000))
	name := fmt.Sprintf("spool_test_%d", runs.Add(1))
	spoolexpvar.Publish(name, m)
	v := expvar.Get(name)
	if v == nil {
		t.Fatal("not published")
	}
	var got spool.Stats
	if err := json.Unmarshal([]byte(v.String()), &got); err != nil {
		t.Fatalf("%s: %v", v.String(), err)
	}
	if got.MemoryBudget != 1<<20 || got.MemoryInUse != 4096+1024 || got.Buffers != 1 {
		t.Errorf("published %+v", got)
	}
}

func TestPublishTakenNamePanics(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	name := fmt.Sprintf("spool_test_%d", runs.Add(1))
	spoolexpvar.Publish(name, m)
	defer func() {
		if recover() == nil {
			t.Errorf("a second Publish(%q) did not panic", name)
		}
	}()
	spoolexpvar.Publish(name, m)
}
