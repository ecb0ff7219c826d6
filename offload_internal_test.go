package spool

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// onWorker reports whether the calling goroutine is one of an offloader's.
func onWorker() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "spool.(*offloader).work")
}

// whereFS makes spill files that record, for each write, whether it ran on
// an offloader's goroutine, and that panic on a write while panicWrites is
// set.
type whereFS struct {
	mu          sync.Mutex
	onWorker    []bool
	panicWrites bool
}

func (fs *whereFS) createTemp(dir, pattern string) (spillFile, error) {
	f, err := osFS{}.createTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return whereFile{f, fs}, nil
}

// writes returns what the writes so far recorded, and forgets them.
func (fs *whereFS) writes() []bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	w := fs.onWorker
	fs.onWorker = nil
	return w
}

type whereFile struct {
	spillFile
	fs *whereFS
}

func (f whereFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.onWorker = append(f.fs.onWorker, onWorker())
	panicking := f.fs.panicWrites
	f.fs.mu.Unlock()
	if panicking {
		panic("whereFile: write")
	}
	return f.spillFile.WriteAt(p, off)
}

func newWhereManager(t *testing.T, budget int64) (*Manager, *whereFS) {
	t.Helper()
	fs := &whereFS{}
	m, err := newManager(Options{ChunkSize: 4 << 10, MemoryBudget: budget, TempDir: t.TempDir()}, fs)
	if err != nil {
		t.Fatal(err)
	}
	noPrepare(m)
	return m, fs
}

// writtenBuffer returns a new Buffer of m holding n zero bytes.
func writtenBuffer(t *testing.T, m *Manager, n int) *Buffer {
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

// setPanic sets whether the files' writes panic.
func (fs *whereFS) setPanic(on bool) {
	fs.mu.Lock()
	fs.panicWrites = on
	fs.mu.Unlock()
}

func allEqual(got []bool, want bool) bool {
	for _, g := range got {
		if g != want {
			return false
		}
	}
	return len(got) > 0
}

// TestRolloverOffloaded checks that a buffer's own rollover writes its
// chunks on an offloader's goroutine, and that a write to the spilled
// buffer then writes on the caller's.
func TestRolloverOffloaded(t *testing.T) {
	m, fs := newWhereManager(t, 64<<10)
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("rollover"), 2<<10) // 16 KiB: 4 chunks
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if w := fs.writes(); !allEqual(w, true) {
		t.Errorf("rollover: writes on a worker %v, want all", w)
	}
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	if w := fs.writes(); !allEqual(w, false) {
		t.Errorf("write to the spilled buffer: writes on a worker %v, want none", w)
	}
	got := make([]byte, 2*len(data))
	if _, err := b.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte(nil), data...), data...)) {
		t.Error("content changed")
	}
}

// TestEvictionOffloadedUnderPressure checks that an eviction runs on the
// writer's goroutine while few writes are short of memory, and on an
// offloader's while more than offloadEvictionsPast are.
func TestEvictionOffloadedUnderPressure(t *testing.T) {
	for _, busy := range []bool{false, true} {
		const cs = 4 << 10
		m, fs := newWhereManager(t, 4*cs)
		victim := writtenBuffer(t, m, 4*cs) // the whole budget
		w, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		if busy {
			m.making.Add(offloadEvictionsPast) // with w's own write, one past
		}
		if _, err := w.Write(make([]byte, cs)); err != nil {
			t.Fatal(err)
		}
		if busy {
			m.making.Add(-offloadEvictionsPast)
		}
		if !victim.OnDisk() || w.OnDisk() {
			t.Fatalf("busy %v: victim on disk %v, writer on disk %v: want the victim evicted", busy, victim.OnDisk(), w.OnDisk())
		}
		if got := fs.writes(); !allEqual(got, busy) {
			t.Errorf("busy %v: the eviction's writes on a worker %v", busy, got)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOffloadedPanicReachesCaller checks that a panic in an offloaded
// rollover is raised again on the caller's goroutine, which keeps a
// deferred recover meaningful, and that the Manager still closes.
func TestOffloadedPanicReachesCaller(t *testing.T) {
	m, fs := newWhereManager(t, 64<<10)
	b := writtenBuffer(t, m, 8<<10)
	fs.setPanic(true)
	func() {
		defer func() {
			if r := recover(); r != "whereFile: write" {
				t.Errorf("recovered %v, want the spill file's panic", r)
			}
		}()
		b.Rollover()
		t.Error("Rollover returned")
	}()
	fs.setPanic(false)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOffloaderStops checks that Manager.Close ends the offloader's
// goroutines, and that a rollover handed over after that runs on the
// caller's goroutine instead of waiting forever.
func TestOffloaderStops(t *testing.T) {
	before := workersRunning() // of Managers other tests left open
	m, _ := newWhereManager(t, 64<<10)
	var bufs []*Buffer
	for range 3 {
		bufs = append(bufs, writtenBuffer(t, m, 8<<10))
	}
	var wg sync.WaitGroup
	for _, b := range bufs {
		wg.Go(func() {
			if err := b.Rollover(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m.off.workers.Load() == 0 {
		t.Fatal("no worker started")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for workersRunning() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d offloader goroutines running after Close, %d before the Manager", workersRunning(), before)
		}
		runtime.Gosched()
	}

	// A rollover handed over after Close, as a stage that outlived its
	// buffer might: the store is set up by hand, since the Buffer's
	// methods return ErrClosed.
	m2, fs2 := newWhereManager(t, 64<<10)
	b := writtenBuffer(t, m2, 8<<10)
	m2.off.close()
	done := make(chan error, 1)
	go func() {
		b.s.lock()
		defer b.s.unlock()
		done <- b.s.spill(SpillRequested)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a rollover after the offloader closed did not return")
	}
	if w := fs2.writes(); !allEqual(w, false) {
		t.Errorf("rollover after close: writes on a worker %v, want none", w)
	}
	if err := m2.Close(); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// workersRunning counts the goroutines running an offloader's loop.
func workersRunning() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "spool.(*offloader).work")
}

// TestMakingClearedAfterPanic checks that a write whose eviction panics
// (here, its victim's spill file) stops counting as making room, so that
// its buffer is a candidate again and evictions are not offloaded for
// want of the count coming down; and that the victim's lock is released,
// so that the Manager still closes.
func TestMakingClearedAfterPanic(t *testing.T) {
	const cs = 4 << 10
	m, fs := newWhereManager(t, 4*cs)
	writtenBuffer(t, m, 4*cs) // the victim: the whole budget
	w, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	fs.setPanic(true)
	func() {
		defer func() {
			if r := recover(); r != "whereFile: write" {
				t.Errorf("recovered %v, want the spill file's panic", r)
			}
		}()
		w.Write(make([]byte, cs))
		t.Error("Write returned")
	}()
	fs.setPanic(false)
	if w.s.making.Load() || m.making.Load() != 0 {
		t.Errorf("after the panic: buffer making %v, Manager making %d", w.s.making.Load(), m.making.Load())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
