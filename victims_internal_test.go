package spool

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
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
				if p.before(&a, &b, false) {
					return -1
				}
				return 1
			})

			var got []candidate
			var batch [victimBatch]candidate
			var after candidate
			q := victimQuery{self: self, limit: limit, inclusive: inclusive}
			for {
				cs, total := m.victims(&batch, q)
				if total != wantTotal {
					t.Fatalf("batch %d: reclaimable %d, want %d", len(got)/victimBatch, total, wantTotal)
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
		cs, _ := m.victims(&batch, victimQuery{limit: math.Inf(1), inclusive: true})
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
