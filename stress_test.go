package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
	"go.uber.org/goleak"
)

// watchdog dumps every goroutine's stack and ends the test binary if the
// calling test has not called the returned stop function within d: a
// deadlock shows up as a stack dump, not as a hang until the go test
// timeout.
func watchdog(t *testing.T, d time.Duration) (stop func()) {
	t.Helper()
	name := t.Name()
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 8<<20)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(os.Stderr, "watchdog: %s made no progress in %v (deadlock?); all goroutines:\n%s\n", name, d, buf[:n])
		os.Exit(2)
	})
	return func() { timer.Stop() }
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// sampler checks 0 <= MemoryInUse <= MemoryBudget continuously until
// stopped, and reports how many samples it took and the largest value seen.
type sampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples atomic.Int64
	peak    atomic.Int64
	bad     atomic.Int64 // a value outside [0, budget], or 0 if none
}

func startSampler(m *spool.Manager) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			st := m.Stats()
			if st.MemoryInUse < 0 || st.MemoryInUse > st.MemoryBudget {
				s.bad.Store(st.MemoryInUse | 1<<62)
			}
			if st.MemoryInUse > s.peak.Load() {
				s.peak.Store(st.MemoryInUse)
			}
			s.samples.Add(1)
			runtime.Gosched()
		}
	}()
	return s
}

func (s *sampler) finish(t *testing.T, budget int64) {
	t.Helper()
	close(s.stop)
	<-s.done
	if v := s.bad.Load(); v != 0 {
		t.Errorf("MemoryInUse sampled at %d, outside [0, %d]", v&^(1<<62), budget)
	}
	if s.samples.Load() == 0 {
		t.Error("sampler took no samples")
	}
	t.Logf("budget sampled %d times, peak %d of %d bytes", s.samples.Load(), s.peak.Load(), budget)
}

// model is the reference a private buffer is checked against.
type model struct {
	data []byte
	off  int64
}

func (md *model) writeAt(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	if end := off + int64(len(p)); end > int64(len(md.data)) {
		md.data = append(md.data, make([]byte, end-int64(len(md.data)))...)
	}
	copy(md.data[off:], p)
}

func (md *model) truncate(n int64) {
	if n <= int64(len(md.data)) {
		md.data = md.data[:n]
		return
	}
	md.data = append(md.data, make([]byte, n-int64(len(md.data)))...)
}

// readAt returns what ReadAt of n bytes at off must give.
func (md *model) readAt(n int, off int64) ([]byte, error) {
	if off >= int64(len(md.data)) {
		return nil, io.EOF
	}
	got := md.data[off:min(int64(len(md.data)), off+int64(n))]
	if len(got) < n {
		return got, io.EOF
	}
	return got, nil
}

// stressWorker runs ops random operations on its private buffer (checked
// against a model after every step) and on its own region of each shared
// buffer.
type stressWorker struct {
	t       *testing.T
	m       *spool.Manager
	rng     *rand.Rand
	priv    *spool.Buffer
	md      model
	shared  []*spool.Buffer
	regions [][]byte // regions[i] is this worker's region of shared[i]
	base    int64    // start of this worker's region in each shared buffer
	errs    int
}

const (
	stressMaxOff = 48 << 10 // private buffers stay below this size
	stressRegion = 6 << 10  // each worker's region of a shared buffer
)

func (w *stressWorker) fail(format string, args ...any) {
	w.errs++
	if w.errs <= 5 {
		w.t.Errorf(format, args...)
	}
}

func (w *stressWorker) data(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(w.rng.Uint32()) | 1 // never zero, so holes are visible
	}
	return p
}

func (w *stressWorker) step() {
	b, md := w.priv, &w.md
	switch op := w.rng.IntN(16); op {
	case 0, 1: // Write
		p := w.data(1 + w.rng.IntN(9000))
		if md.off+int64(len(p)) > stressMaxOff {
			return
		}
		n, err := b.Write(p)
		if n != len(p) || err != nil {
			w.fail("Write(%d) = %d, %v", len(p), n, err)
		}
		md.writeAt(p[:n], md.off)
		md.off += int64(n)
	case 2, 3: // WriteAt
		p := w.data(1 + w.rng.IntN(9000))
		off := w.rng.Int64N(stressMaxOff - int64(len(p)))
		if n, err := b.WriteAt(p, off); n != len(p) || err != nil {
			w.fail("WriteAt(%d, %d) = %d, %v", len(p), off, n, err)
		}
		md.writeAt(p, off)
	case 4: // Read
		p := make([]byte, w.rng.IntN(9000))
		n, err := b.Read(p)
		want, werr := md.readAt(len(p), md.off)
		if werr == io.EOF && len(want) > 0 {
			werr = nil // Read returns EOF only with 0 bytes
		}
		if len(p) == 0 {
			want, werr = nil, nil
		}
		if n != len(want) || !errors.Is(err, werr) || !bytes.Equal(p[:n], want) {
			w.fail("Read(%d) at %d = %d, %v; want %d, %v (equal %v)", len(p), md.off, n, err, len(want), werr, bytes.Equal(p[:n], want))
		}
		md.off += int64(n)
	case 5, 6: // ReadAt
		p := make([]byte, 1+w.rng.IntN(9000))
		off := w.rng.Int64N(stressMaxOff)
		n, err := b.ReadAt(p, off)
		want, werr := md.readAt(len(p), off)
		if n != len(want) || !errors.Is(err, werr) || !bytes.Equal(p[:n], want) {
			w.fail("ReadAt(%d, %d) = %d, %v; want %d, %v", len(p), off, n, err, len(want), werr)
		}
	case 7: // Seek
		off := w.rng.Int64N(stressMaxOff)
		if pos, err := b.Seek(off, io.SeekStart); pos != off || err != nil {
			w.fail("Seek(%d) = %d, %v", off, pos, err)
		}
		md.off = off
	case 8: // Truncate
		n := w.rng.Int64N(stressMaxOff)
		if err := b.Truncate(n); err != nil {
			w.fail("Truncate(%d) = %v", n, err)
		}
		md.truncate(n)
	case 9: // Rollover, now and then Close and start again
		if w.rng.IntN(4) == 0 {
			w.checkPrivate()
			if err := b.Close(); err != nil {
				w.fail("Close = %v", err)
			}
			nb, err := w.m.NewBuffer()
			if err != nil {
				w.fail("NewBuffer = %v", err)
				return
			}
			w.priv, w.md = nb, model{}
			return
		}
		if err := b.Rollover(); err != nil {
			w.fail("Rollover = %v", err)
		}
	case 10: // WriteString, WriteByte
		if md.off+10 > stressMaxOff {
			return
		}
		if _, err := b.WriteString("0123456789"); err != nil {
			w.fail("WriteString = %v", err)
		}
		md.writeAt([]byte("0123456789"), md.off)
		md.off += 10
		if err := b.WriteByte('!'); err != nil {
			w.fail("WriteByte = %v", err)
		}
		md.writeAt([]byte("!"), md.off)
		md.off++
	case 11: // ReadByte
		c, err := b.ReadByte()
		want, werr := md.readAt(1, md.off)
		if werr != nil {
			if err != io.EOF {
				w.fail("ReadByte at end = %v, want EOF", err)
			}
			return
		}
		if err != nil || c != want[0] {
			w.fail("ReadByte = %d, %v; want %d", c, err, want[0])
		}
		md.off++
	case 12, 13: // a shared buffer: write this worker's region
		i := w.rng.IntN(len(w.shared))
		p := w.data(1 + w.rng.IntN(stressRegion/2))
		off := w.rng.IntN(stressRegion - len(p))
		if n, err := w.shared[i].WriteAt(p, w.base+int64(off)); n != len(p) || err != nil {
			w.fail("shared WriteAt = %d, %v", n, err)
		}
		copy(w.regions[i][off:], p)
	case 14: // a shared buffer: read and check this worker's region
		w.checkShared(w.rng.IntN(len(w.shared)))
	case 15: // a shared buffer: Rollover, Size, OnDisk from anyone
		s := w.shared[w.rng.IntN(len(w.shared))]
		if w.rng.IntN(3) == 0 {
			if err := s.Rollover(); err != nil {
				w.fail("shared Rollover = %v", err)
			}
		}
		_ = s.Size()
		_ = s.OnDisk()
	}
}

func (w *stressWorker) checkShared(i int) {
	p := make([]byte, stressRegion)
	n, err := w.shared[i].ReadAt(p, w.base)
	if err != nil && err != io.EOF {
		w.fail("shared ReadAt = %d, %v", n, err)
		return
	}
	want := w.regions[i]
	// Past the buffer's end the region must never have been written.
	if !bytes.Equal(p[:n], want[:n]) || bytes.ContainsFunc(want[n:], func(r rune) bool { return r != 0 }) {
		w.fail("shared buffer %d: region at %d differs from what was written", i, w.base)
	}
}

func (w *stressWorker) checkPrivate() {
	got := make([]byte, len(w.md.data)+1)
	n, err := w.priv.ReadAt(got, 0)
	if n != len(w.md.data) || err != io.EOF || !bytes.Equal(got[:n], w.md.data) {
		w.fail("private buffer: ReadAt(all) = %d, %v; want %d bytes, EOF (equal %v)", n, err, len(w.md.data), bytes.Equal(got[:n], w.md.data))
	}
	if s := w.priv.Size(); s != int64(len(w.md.data)) {
		w.fail("private buffer: Size = %d, want %d", s, len(w.md.data))
	}
}

// TestStress runs many goroutines doing random operations on private and
// shared buffers under a budget of a few chunks, so rollovers and evictions
// happen all the time, while a sampler checks the budget invariant
// continuously. At the end every buffer's content is checked, and after
// Close no memory, disk, file, descriptor or goroutine is left.
func TestStress(t *testing.T) {
	for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastRecentlyUsed} {
		t.Run(policy.String(), func(t *testing.T) { testStress(t, policy) })
	}
}

func testStress(t *testing.T, policy spool.Policy) {
	workers, ops := sized(8, 12, 24), sized(300, 500, 1500)
	const budget = 12 * 4096
	dir := t.TempDir()
	fds := openFDs(t)
	defer watchdog(t, 3*time.Minute)()

	var spills atomic.Int64
	m, err := spool.NewManager(spool.Options{
		MemoryBudget: budget,
		ChunkSize:    4096,
		TempDir:      dir,
		Policy:       policy,
		OnSpill: func(e spool.SpillEvent) {
			if e.Err != nil {
				t.Errorf("spill event with error: %v", e.Err)
			}
			spills.Add(1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	spool.SetPoison(m, 0xEE)
	shared := make([]*spool.Buffer, 4)
	for i := range shared {
		if shared[i], err = m.NewBuffer(); err != nil {
			t.Fatal(err)
		}
	}
	smp := startSampler(m)

	ws := make([]*stressWorker, workers)
	var wg sync.WaitGroup
	for g := range ws {
		priv, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		w := &stressWorker{
			t: t, m: m, rng: rand.New(rand.NewPCG(uint64(g), 42)),
			priv: priv, shared: shared, base: int64(g) * stressRegion,
		}
		for range shared {
			w.regions = append(w.regions, make([]byte, stressRegion))
		}
		ws[g] = w
		wg.Go(func() {
			for range ops {
				w.step()
			}
		})
	}
	wg.Wait()
	smp.finish(t, budget)

	for _, w := range ws {
		w.checkPrivate()
		for i := range shared {
			w.checkShared(i)
		}
	}
	st := m.Stats()
	t.Logf("%d workers × %d ops: %+v, OnSpill calls %d", workers, ops, st, spills.Load())
	if st.Spills == 0 || st.Evictions == 0 {
		t.Errorf("stress made no rollovers or evictions (%+v): the budget is not under pressure", st)
	}
	if got := spills.Load(); got != st.Spills {
		t.Errorf("OnSpill called %d times, Stats.Spills = %d", got, st.Spills)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	checkEmpty(t, m, dir, fds)
}

// checkEmpty checks that a closed Manager holds no memory or disk, that
// dir holds no file, and that as many descriptors are open as before.
func checkEmpty(t *testing.T, m *spool.Manager, dir string, fds int) {
	t.Helper()
	st := m.Stats()
	if st.MemoryInUse != 0 || st.DiskInUse != 0 || st.Buffers != 0 || st.BuffersOnDisk != 0 {
		t.Errorf("after Close: %+v, want no memory, disk or buffers in use", st)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Errorf("after Close: %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("after Close: TempDir holds %d entries (%v)", len(ents), err)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("after Close: %d descriptors open, %d before", got, fds)
	}
	goleak.VerifyNone(t)
}

// TestCloseUnderLoad closes the Manager while goroutines are writing,
// reading, rolling over and evicting each other's buffers: every operation
// either works or returns ErrClosed, nothing hangs, and nothing is left.
func TestCloseUnderLoad(t *testing.T) {
	dir := t.TempDir()
	fds := openFDs(t)
	defer watchdog(t, 2*time.Minute)()
	m, err := spool.NewManager(spool.Options{MemoryBudget: 8 * 4096, ChunkSize: 4096, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([]*spool.Buffer, 8)
	for i := range bufs {
		if bufs[i], err = m.NewBuffer(); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		closed  atomic.Int64 // operations that saw ErrClosed
	)
	check := func(err error) bool {
		if err == nil || err == io.EOF {
			return true
		}
		if errors.Is(err, spool.ErrClosed) {
			closed.Add(1)
			return false
		}
		t.Errorf("unexpected error: %v", err)
		return false
	}
	for g := range 16 {
		started.Add(1)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			p := make([]byte, 10000)
			first := true
			for {
				b := bufs[rng.IntN(len(bufs))]
				var err error
				switch rng.IntN(4) {
				case 0:
					_, err = b.WriteAt(p, rng.Int64N(40000))
				case 1:
					_, err = b.ReadAt(p, rng.Int64N(40000))
				case 2:
					err = b.Rollover()
				case 3:
					_, err = m.NewBuffer()
					if err == nil {
						err = b.Truncate(rng.Int64N(50000))
					}
				}
				if first {
					first = false
					started.Done()
				}
				if !check(err) {
					return
				}
			}
		})
	}
	started.Wait() // every goroutine is running operations
	if err := m.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	wg.Wait()
	if closed.Load() == 0 {
		t.Error("no operation saw ErrClosed")
	}
	checkEmpty(t, m, dir, fds)
}

// TestManagerCloseRacesBufferClose: Manager.Close racing Buffer.Close on
// the same buffers returns only when every buffer is off the live list.
func TestManagerCloseRacesBufferClose(t *testing.T) {
	for iter := range 2000 {
		m, err := spool.NewManager(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		bufs := make([]*spool.Buffer, 64)
		for i := range bufs {
			bufs[i], _ = m.NewBuffer()
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := len(bufs) - 1; i >= 0; i-- {
				bufs[i].Close()
			}
		})
		m.Close()
		st := m.Stats()
		wg.Wait()
		if st.Buffers != 0 {
			t.Fatalf("iteration %d: Stats.Buffers = %d right after Manager.Close returned", iter, st.Buffers)
		}
	}
}
