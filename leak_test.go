package spool_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// TestLeakedBufferReleased drops buffers without closing them, one in
// memory and one on disk: once the garbage collector has run, their memory
// is back in the budget, their spill files are closed, and Stats counts
// them as leaked.
func TestLeakedBufferReleased(t *testing.T) {
	dir := t.TempDir()
	fds := openFDs(t)
	m, err := spool.NewManager(spool.Options{MemoryBudget: 16 * 4096, ChunkSize: 4096, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		inMem, _ := m.NewBuffer()
		inMem.Write(make([]byte, 10000))
		onDisk, _ := m.NewBuffer()
		onDisk.Write(make([]byte, 10000))
		if err := onDisk.Rollover(); err != nil {
			t.Fatal(err)
		}
		kept, _ := m.NewBuffer() // closed properly: not a leak
		kept.Write(make([]byte, 100))
		kept.Close()
		// Checked while both are reachable: once the closure returns, a
		// collection started by anything else may find them at once.
		if st := m.Stats(); st.MemoryInUse == 0 || st.BuffersOnDisk != 1 {
			t.Fatalf("before GC: %+v", st)
		}
		runtime.KeepAlive(inMem)
		runtime.KeepAlive(onDisk)
	}()
	// Cleanups run on their own goroutine after a GC: wait for the count,
	// with a deadline rather than a fixed sleep.
	deadline := time.Now().Add(30 * time.Second)
	for m.Stats().Leaked < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("leaked buffers not cleaned up: %+v", m.Stats())
		}
		runtime.GC()
		runtime.Gosched()
	}
	st := m.Stats()
	if st.Leaked != 2 || st.MemoryInUse != 0 || st.DiskInUse != 0 || st.Buffers != 0 || st.BuffersOnDisk != 0 {
		t.Errorf("after cleanup: %+v; want 2 leaked, nothing in use", st)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkEmpty(t, m, dir, fds)
}
