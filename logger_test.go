package spool_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
)

// records parses the JSON log lines written to s (a lockedBuffer, see
// bench_test.go, safe for the logger's concurrent use).
func (s *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestLogger: rollovers are logged at Debug with structured attributes,
// failed rollovers at Warn with the error; without a Logger nothing is
// logged (nothing to check but that it works). Spill and wait timings are
// counted.
func TestLogger(t *testing.T) {
	var out lockedBuffer
	f := &spool.Faults{FailAt: -1, Err: syscall.ENOSPC}
	m, err := spool.NewManagerWithFaults(spool.Options{
		MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: t.TempDir(),
		Logger: slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, _ := m.NewBuffer()
	a.Write(make([]byte, 3*4096))
	b, _ := m.NewBuffer()
	b.Write(make([]byte, 4096))
	b.Write(make([]byte, 10)) // evicts a
	f.FailAt, f.Persistent = f.Ops(), true
	c, _ := m.NewBuffer()
	c.Write(make([]byte, 3*4096)) // b cannot be evicted, nor c rolled over
	recs := out.records(t)
	var debug, warn int
	for _, r := range recs {
		switch r["level"] {
		case "DEBUG":
			if r["msg"] == "spool: buffer rolled over to disk" && r["reason"] == "Evicted" && r["buffer"] == float64(a.ID()) {
				debug++
			}
		case "WARN":
			if r["error"] != nil && r["reason"] != nil {
				warn++
			}
		}
	}
	if debug != 1 || warn == 0 {
		t.Errorf("log records %v: want one Debug eviction of buffer %d and Warn records with errors", recs, a.ID())
	}
	st := m.Stats()
	if st.SpillTime <= 0 || st.EvictionWait <= 0 {
		t.Errorf("SpillTime %v, EvictionWait %v: want both > 0", st.SpillTime, st.EvictionWait)
	}
}
