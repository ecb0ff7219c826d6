package spool_test

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// slowReader returns its data at most piece bytes per Read, as a slow
// client's body does: each Read waits for a tick on its channel, if it has
// one, and every Read after the first until gate is closed, if it has one.
type slowReader struct {
	data  []byte
	piece int
	tick  chan struct{}
	gate  chan struct{}
	reads int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.tick != nil {
		<-r.tick
	}
	if r.reads++; r.gate != nil && r.reads > 1 {
		<-r.gate
	}
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReadFromSlowReadersWithinBudget: many ReadFrom calls from slow
// readers at once, each blocked in a Read after its first piece, under a
// budget far smaller than what they would hold in 64 KiB scratch slices:
// the heap they hold follows the budget, not the number of calls (a few
// KiB each for the Buffer, its reader and a spare at most), MemoryInUse
// never passes the budget, and every byte arrives.
func TestReadFromSlowReadersWithinBudget(t *testing.T) {
	const budget, piece = 64 << 10, 700
	n := sized(50, 200, 500)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	m := mtManager(t, spool.Options{MemoryBudget: budget})
	smp := startSampler(m)
	var wg sync.WaitGroup
	bufs := make([]*spool.Buffer, n)
	datas := make([][]byte, n)
	release := make(chan struct{})
	for i := range bufs {
		bufs[i] = mtBuffer(t, m)
		datas[i] = mtPattern(20000+i*37, uint64(i))
		r := &slowReader{data: datas[i], piece: piece, gate: release}
		wg.Go(func() {
			if got, err := bufs[i].ReadFrom(r); got != int64(len(datas[i])) || err != nil {
				t.Errorf("ReadFrom = %d, %v", got, err)
			}
		})
	}
	// Every call has read its first piece and waits in its second Read.
	deadline := time.Now().Add(time.Minute)
	for _, b := range bufs {
		for b.Size() < piece {
			if time.Now().After(deadline) {
				t.Fatal("the readers did not all deliver their first piece")
			}
			time.Sleep(time.Millisecond) // polling a condition
		}
	}
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	held := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	// The test's own data (datas) is on the heap too.
	var own int64
	for _, d := range datas {
		own += int64(cap(d))
	}
	if perCall := (held - own - budget) / int64(n); perCall > 4<<10 {
		t.Errorf("%d calls in progress hold %d bytes of heap beside a %d-byte budget and their data: %d bytes each", n, held-own, budget, perCall)
	}
	close(release)
	wg.Wait()
	smp.finish(t, budget)
	if st := m.Stats(); st.PeakMemoryInUse > budget {
		t.Errorf("PeakMemoryInUse %d > budget %d", st.PeakMemoryInUse, budget)
	}
	for i, b := range bufs {
		mtWant(t, b, datas[i])
	}
}

// TestReadFromVisibleAsRead: what ReadFrom has read is in the buffer
// before the reader returns the rest: Size and ReadAt see it, and the
// per-buffer threshold takes the buffer to disk as the data arrives, not
// at the end.
func TestReadFromVisibleAsRead(t *testing.T) {
	m := mtManager(t, spool.Options{BufferThreshold: 8 << 10})
	b := mtBuffer(t, m)
	data := mtPattern(20<<10, 1)
	r := &slowReader{data: data, piece: 1 << 10, tick: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := b.ReadFrom(r)
		done <- err
	}()
	for k := 1; k <= 20; k++ {
		r.tick <- struct{}{}
		deadline := time.Now().Add(time.Minute)
		for b.Size() != int64(k<<10) {
			if time.Now().After(deadline) {
				t.Fatalf("after %d KiB read: Size %d", k, b.Size())
			}
			time.Sleep(time.Millisecond) // polling a condition, not synchronising
		}
		p := make([]byte, k<<10)
		if n, err := b.ReadAt(p, 0); n != len(p) || err != nil || !bytes.Equal(p, data[:len(p)]) {
			t.Fatalf("after %d KiB read: ReadAt = %d, %v", k, n, err)
		}
		if onDisk := b.OnDisk(); onDisk != (k > 8) {
			t.Fatalf("after %d KiB read with an 8 KiB threshold: on disk %v", k, onDisk)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mtWant(t, b, data)
}

// TestReadFromWriteToAllocateNothing: in steady state, a ReadFrom or a
// WriteTo call allocates nothing: its stage, and the slots it fills, come
// from pools.
func TestReadFromWriteToAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	m := mtManager(t, spool.Options{})
	b := mtBuffer(t, m)
	data := mtPattern(300<<10, 2)
	var r bytes.Reader
	readFrom := testing.AllocsPerRun(50, func() {
		b.Truncate(0)
		b.Seek(0, io.SeekStart)
		r.Reset(data)
		if n, err := b.ReadFrom(&r); n != int64(len(data)) || err != nil {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
	})
	writeTo := testing.AllocsPerRun(50, func() {
		b.Seek(0, io.SeekStart)
		if n, err := b.WriteTo(io.Discard); n != int64(len(data)) || err != nil {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
	})
	if readFrom > 0.5 || writeTo > 0.5 {
		t.Errorf("allocations per call: ReadFrom %.1f, WriteTo %.1f; want 0", readFrom, writeTo)
	}
	mtWant(t, b, data)
}
