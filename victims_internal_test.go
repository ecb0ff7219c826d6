package spool

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// victimManager returns a Manager under p with n buffers in memory of
// mixed sizes (1 to 4 chunks) and mixed recency and access counts.
func victimManager(t *testing.T, p Policy, n int) (*Manager, []*Buffer) {
	t.Helper()
	const cs = 4 << 10
	m, err := NewManager(Options{MemoryBudget: int64(n) * 4 * cs, ChunkSize: cs, TempDir: t.TempDir(), Policy: p, DisablePromotion: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	bufs := make([]*Buffer, n)
	for i := range bufs {
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(make([]byte, cs*(1+r.IntN(4)))); err != nil {
			t.Fatal(err)
		}
		bufs[i] = b
	}
	// Reads in a random order give distinct recencies and counts.
	var one [1]byte
	for range 3 * n {
		if _, err := bufs[r.IntN(n)].ReadAt(one[:], 0); err != nil {
			t.Fatal(err)
		}
	}
	return m, bufs
}

// TestVictimBatches checks the batched victim search against a full sort:
// batch after batch, it returns every eligible buffer exactly once, in the
// policy's order, and reports the memory of all of them in each batch.
func TestVictimBatches(t *testing.T) {
	for _, p := range []Policy{LargestFirst, LeastRecentlyUsed, LeastFrequentlyUsed} {
		t.Run(p.String(), func(t *testing.T) {
			const n = 3*victimBatch + 5
			m, bufs := victimManager(t, p, n)
			self := bufs[7].s
			limit, inclusive := math.Inf(1), true
			if p == LeastFrequentlyUsed {
				// Only the buffers below the median density.
				var ds []float64
				for _, b := range bufs {
					ds = append(ds, density(m.freq.count(&b.s.freq), b.s.mem.Load()))
				}
				slices.Sort(ds)
				limit, inclusive = ds[n/2], false
			}

			// The expected order: every eligible buffer but self, sorted.
			var want []candidate
			var wantTotal int64
			for _, b := range bufs {
				s := b.s
				if s == self {
					continue
				}
				c := candidate{b: s, id: s.id, mem: s.mem.Load(), lastUse: s.lastUse.Load()}
				if m.freq != nil {
					c.density = density(m.freq.count(&s.freq), c.mem)
					if !(c.density < limit || (inclusive && c.density == limit)) {
						continue
					}
				}
				want = append(want, c)
				wantTotal += c.mem
			}
			slices.SortFunc(want, func(a, b candidate) int {
				if p.before(&a, &b) {
					return -1
				}
				return 1
			})

			var got []candidate
			var batch [victimBatch]candidate
			var after candidate
			q := victimQuery{self: self, limit: limit, inclusive: inclusive}
			for {
				m.mu.Lock()
				cs, total, eligible := m.victims(&batch, q)
				m.mu.Unlock()
				if total != wantTotal || eligible != len(want) {
					t.Fatalf("batch %d: %d buffers holding %d bytes eligible, want %d holding %d", len(got)/victimBatch, eligible, total, len(want), wantTotal)
				}
				got = append(got, cs...)
				if len(cs) < victimBatch {
					break
				}
				after = cs[len(cs)-1]
				q.after = &after
			}
			if len(got) != len(want) {
				t.Fatalf("%d candidates over all batches, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].b != want[i].b {
					t.Fatalf("candidate %d is buffer %d, want %d", i, got[i].id, want[i].id)
				}
			}
			if p == LeastFrequentlyUsed && len(want) >= n-1 {
				t.Fatalf("the density limit let every buffer through")
			}
			runtime.KeepAlive(bufs) // a Buffer dropped early is closed by its finalizer
		})
	}
}

// TestVictimsAllocateNothing checks that a victim search allocates
// nothing, whatever the number of live buffers.
func TestVictimsAllocateNothing(t *testing.T) {
	m, bufs := victimManager(t, LargestFirst, 200)
	var batch [victimBatch]candidate
	var found int
	allocs := testing.AllocsPerRun(100, func() {
		m.mu.Lock()
		cs, _, _ := m.victims(&batch, victimQuery{limit: math.Inf(1), inclusive: true})
		m.mu.Unlock()
		found = len(cs)
	})
	if allocs != 0 {
		t.Errorf("victims: %v allocations per search, want 0", allocs)
	}
	if found != victimBatch {
		t.Errorf("a search found %d victims, want %d", found, victimBatch)
	}
	runtime.KeepAlive(bufs)
}

// TestEvictionPastBusyBatch checks that a write short of memory looks past
// a whole batch of busy buffers: with the victimBatch largest buffers
// locked elsewhere, it rolls over a smaller idle one rather than itself.
func TestEvictionPastBusyBatch(t *testing.T) {
	const cs = 4 << 10
	n := victimBatch + 1
	m, err := NewManager(Options{MemoryBudget: int64(2*victimBatch+2) * cs, ChunkSize: cs, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bufs := make([]*Buffer, n)
	for i := range bufs {
		size := 2 * cs // the busy ones, largest first
		if i == n-1 {
			size = cs // the idle one, last in LargestFirst order
		}
		if bufs[i], err = m.NewBuffer(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufs[i].Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bufs[:n-1] {
		if !b.s.mu.TryLock() {
			t.Fatal("buffer locked")
		}
	}
	w, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 2*cs)) // one chunk is free, two are needed
	for _, b := range bufs[:n-1] {
		b.s.mu.Unlock()
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bufs[n-1].OnDisk() {
		t.Error("the idle buffer past the busy batch stayed in memory")
	}
	if w.OnDisk() {
		t.Error("the writer rolled itself over")
	}
	for _, b := range bufs[:n-1] {
		if b.OnDisk() {
			t.Error("a busy buffer was rolled over")
		}
	}
	if got := m.Stats().SkippedBusy; got < victimBatch {
		t.Errorf("SkippedBusy %d, want at least %d", got, victimBatch)
	}
}

// fullManager returns a Manager under LeastRecentlyUsed whose budget of n
// 4 KiB chunks is held by n buffers of one chunk each.
func fullManager(t *testing.T, n int, opts Options, fs fileSystem) (*Manager, []*Buffer) {
	t.Helper()
	const cs = 4 << 10
	opts.ChunkSize, opts.MemoryBudget, opts.TempDir, opts.Policy = cs, int64(n)*cs, t.TempDir(), LeastRecentlyUsed
	m, err := newManager(opts, fs)
	if err != nil {
		t.Fatal(err)
	}
	noPrepare(m) // fs's faults count from the first spill on
	t.Cleanup(func() { m.Close() })
	bufs := make([]*Buffer, n)
	for i := range bufs {
		if bufs[i], err = m.NewBuffer(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufs[i].Write(make([]byte, cs)); err != nil {
			t.Fatal(err)
		}
	}
	return m, bufs
}

// TestVictimSearchBounded checks that a search whose every rollover fails
// ends after offering each eligible buffer at most once, even while
// readers keep moving buffers past its cursor (under LeastRecentlyUsed a
// read makes a buffer the most recent, the last of the order).
func TestVictimSearchBounded(t *testing.T) {
	const n = 300
	f := &Faults{FailAt: 0, Persistent: true, Err: errors.New("injected I/O error")}
	m, bufs := fullManager(t, n, Options{}, faultyFS{f})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			var one [1]byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				bufs[r.IntN(n)].ReadAt(one[:], 0)
			}
		})
	}
	w, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats().SpillErrors
	_, err = w.Write(make([]byte, 4<<10))
	close(stop)
	wg.Wait()
	if err == nil {
		t.Fatal("a write with no memory and failing disk succeeded")
	}
	// maxFailedRollovers victims, then the writer itself; without the cap,
	// every other buffer once, and more while readers move them past the
	// cursor.
	if got := m.Stats().SpillErrors - before; got != maxFailedRollovers+1 {
		t.Errorf("%d failed rollovers for one write, want %d", got, maxFailedRollovers+1)
	}
	runtime.KeepAlive(bufs)
}

// TestVictimSearchTriesPastAFewFailures checks that rollovers failing for
// a reason that is not a shared limit do not end the search at once: the
// next victims are tried, up to maxFailedRollovers (4) failures, and then
// the writer's own buffer goes to disk.
func TestVictimSearchTriesPastAFewFailures(t *testing.T) {
	cases := []struct {
		fails      int   // file operations that fail, from the first on
		spillErrs  int64 // failed rollovers: victims', then the writer's
		writerDisk bool
		writeErr   bool
	}{
		{1, 1, false, false}, // the second victim makes the room
		{3, 3, false, false}, // the fourth victim does
		{4, 4, true, false},  // the search gives up; the writer rolls over
		{6, 5, false, true},  // and the writer's own rollover fails too
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.fails), func(t *testing.T) {
			const n = 20
			// Each failing operation is the creation of a spill file.
			f := &Faults{FailAt: 0, Times: c.fails, Err: errors.New("injected I/O error")}
			m, bufs := fullManager(t, n, Options{}, faultyFS{f})
			w, err := m.NewBuffer()
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Write(make([]byte, 4<<10))
			if (err != nil) != c.writeErr {
				t.Errorf("write: %v, want an error: %v", err, c.writeErr)
			}
			if got := m.Stats().SpillErrors; got != c.spillErrs {
				t.Errorf("%d failed rollovers, want %d", got, c.spillErrs)
			}
			if w.OnDisk() != c.writerDisk {
				t.Errorf("writer on disk: %v, want %v", w.OnDisk(), c.writerDisk)
			}
			if err := CheckHolding(m); err != nil {
				t.Error(err)
			}
			runtime.KeepAlive(bufs)
		})
	}
}

// TestVictimSearchStopsAtLimit checks that a search ends at the first
// victim whose rollover fails on a limit all of them share: here the disk
// budget, which one block spent, so no victim can roll over.
func TestVictimSearchStopsAtLimit(t *testing.T) {
	const n = 100
	m, bufs := fullManager(t, n, Options{DiskBudget: 4 << 10}, osFS{})
	if err := bufs[0].Rollover(); err != nil { // spends the disk budget
		t.Fatal(err)
	}
	w, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	// One chunk is free (bufs[0]'s); the second must come from a victim.
	before := m.Stats().SpillErrors
	_, err = w.Write(make([]byte, 8<<10))
	if !errors.Is(err, ErrDiskBudget) {
		t.Fatalf("write: %v, want ErrDiskBudget", err)
	}
	// One victim; then the writer, which holds nothing in memory, goes to
	// disk and its write meets the limit there.
	if got := m.Stats().SpillErrors - before; got != 1 {
		t.Errorf("%d failed rollovers for one write, want 1", got)
	}
	runtime.KeepAlive(bufs)
}

// TestForceEvict checks the test hook the fuzzer uses: every other idle
// buffer rolls over, the caller's stays, and no budget is left taken.
func TestForceEvict(t *testing.T) {
	m, bufs := fullManager(t, 5, Options{}, osFS{})
	ForceEvict(bufs[0])
	if bufs[0].OnDisk() {
		t.Error("the caller's buffer rolled over")
	}
	for i, b := range bufs[1:] {
		if !b.OnDisk() {
			t.Errorf("buffer %d stayed in memory", i+1)
		}
	}
	if st := m.Stats(); st.MemoryInUse != 4<<10 {
		t.Errorf("MemoryInUse %d after ForceEvict, want the caller's one chunk", st.MemoryInUse)
	}
}

// TestRefillQueueAllocatesNothing: a victim search fills the queue with
// the first victimBatch candidates, from the Manager's own array.
func TestRefillQueueAllocatesNothing(t *testing.T) {
	m, _ := victimManager(t, LargestFirst, 200)
	m.refillQueue(&candidate{})
	m.mu.Lock()
	queued := len(m.queue)
	m.mu.Unlock()
	if queued != victimBatch {
		t.Fatalf("the search queued %d candidates of 200 buffers, want %d", queued, victimBatch)
	}
	allocs := testing.AllocsPerRun(100, func() { m.refillQueue(&candidate{}) })
	if allocs != 0 {
		t.Errorf("refillQueue: %v allocations per search, want 0", allocs)
	}
}

// TestVictimSearchSkipsWritersMakingRoom checks that a search passes by
// the buffers whose writers are making room for themselves, which hold
// their locks, and offers the others.
func TestVictimSearchSkipsWritersMakingRoom(t *testing.T) {
	const n = 8
	m, bufs := fullManager(t, n, Options{}, osFS{})
	for i, b := range bufs {
		if i%2 == 0 {
			b.s.making.Store(true)
		}
	}
	m.mu.Lock()
	cs, _, eligible := m.victims(&m.batch, victimQuery{limit: math.Inf(1), inclusive: true})
	m.mu.Unlock()
	if eligible != n {
		t.Errorf("eligible %d, want %d: a writer making room still holds its memory", eligible, n)
	}
	if len(cs) != n/2 {
		t.Errorf("%d candidates, want %d", len(cs), n/2)
	}
	for _, c := range cs {
		if c.b.making.Load() {
			t.Errorf("buffer %d offered while its writer makes room", c.id)
		}
	}
}
