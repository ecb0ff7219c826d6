package spool_test

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spoolkit/spool"
)

// resizeManager returns a Manager of 4 KiB chunks with a budget of 64
// chunks.
func resizeManager(t *testing.T, opts spool.Options) *spool.Manager {
	t.Helper()
	opts.ChunkSize = blk
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = 64 * blk
	}
	opts.TempDir = t.TempDir()
	m, err := spool.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSetMemoryBudgetGrow: a larger budget takes effect at once: a write
// that would have rolled a buffer over stays in memory.
func TestSetMemoryBudgetGrow(t *testing.T) {
	m := resizeManager(t, spool.Options{MemoryBudget: 8 * blk})
	a, _ := m.NewBuffer()
	a.Write(randBytes(1, 8*blk))
	if err := m.SetMemoryBudget(16 * blk); err != nil {
		t.Fatal(err)
	}
	b, _ := m.NewBuffer()
	b.Write(randBytes(2, 8*blk))
	if st := m.Stats(); a.OnDisk() || b.OnDisk() || st.MemoryBudget != 16*blk || st.MemoryInUse != 16*blk {
		t.Errorf("after growing to 16 chunks and writing 16: a on disk %v, b on disk %v, %+v", a.OnDisk(), b.OnDisk(), st)
	}
	// A buffer may now be as large as the new budget.
	c, _ := m.NewBuffer()
	m.SetMemoryBudget(64 * blk)
	c.Write(randBytes(3, 40*blk))
	if c.OnDisk() {
		t.Error("a 40-chunk buffer went to disk under a 64-chunk budget")
	}
}

// TestSetMemoryBudgetShrink: shrinking rolls buffers over, by the policy,
// until MemoryInUse is within the new budget, then returns; from then on
// no write takes the memory back; every byte reads back.
func TestSetMemoryBudgetShrink(t *testing.T) {
	for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastRecentlyUsed, spool.LeastFrequentlyUsed} {
		t.Run(policy.String(), func(t *testing.T) {
			m := resizeManager(t, spool.Options{Policy: policy})
			var bufs []*spool.Buffer
			var data [][]byte
			for i := range 8 {
				b, _ := m.NewBuffer()
				d := randBytes(uint64(i), (i+1)*blk+100*i)
				b.Write(d)
				bufs, data = append(bufs, b), append(data, d)
			}
			before := m.Stats()
			if before.BuffersOnDisk != 0 {
				t.Fatalf("setup spilled: %+v", before)
			}
			if err := m.SetMemoryBudget(12 * blk); err != nil {
				t.Fatal(err)
			}
			st := m.Stats()
			if st.MemoryBudget != 12*blk || st.MemoryInUse > 12*blk || st.Evictions == 0 {
				t.Fatalf("after shrinking to 12 chunks: %+v", st)
			}
			// Writes keep to the new budget.
			for i, b := range bufs {
				b.Write(randBytes(uint64(100+i), 3*blk))
				data[i] = append(data[i], randBytes(uint64(100+i), 3*blk)...)
				if u := m.Stats().MemoryInUse; u > 12*blk {
					t.Fatalf("MemoryInUse %d after a write, over the new budget %d", u, 12*blk)
				}
			}
			for i, b := range bufs {
				wantContent(t, b, data[i])
			}
		})
	}
}

// TestSetMemoryBudgetBusy: when every buffer holding memory is in use (a
// buffer being read is never rolled over by another goroutine), a shrink
// cannot roll anything over: ErrOverBudget, with the new budget in force.
// MemoryInUse then only falls: memory given back pays the difference off
// first, and no write takes it; a second call, once the buffers are idle,
// gets there.
func TestSetMemoryBudgetBusy(t *testing.T) {
	m := resizeManager(t, spool.Options{MemoryBudget: 16 * blk})
	a, _ := m.NewBuffer()
	b, _ := m.NewBuffer()
	da, db := randBytes(1, 8*blk), randBytes(2, 8*blk)
	a.Write(da)
	b.Write(db)
	c, _ := m.NewBuffer()
	dc := randBytes(3, 2*blk)
	spool.ReadLocked(a, func() {
		spool.ReadLocked(b, func() {
			err := m.SetMemoryBudget(4 * blk)
			if !errors.Is(err, spool.ErrOverBudget) {
				t.Fatalf("SetMemoryBudget with every buffer busy = %v, want ErrOverBudget", err)
			}
			if st := m.Stats(); st.MemoryBudget != 4*blk || st.MemoryInUse != 16*blk {
				t.Fatalf("after ErrOverBudget: %+v", st)
			}
			// A new buffer cannot take memory while the others hold more
			// than the budget: its write goes to disk.
			c.Write(dc)
			if !c.OnDisk() || m.Stats().MemoryInUse != 16*blk {
				t.Errorf("a write while over budget: on disk %v, MemoryInUse %d", c.OnDisk(), m.Stats().MemoryInUse)
			}
		})
		// Closing b gives back 8 chunks: they pay off 8 of the 12 owed.
		b.Close()
		if u := m.Stats().MemoryInUse; u != 8*blk {
			t.Errorf("MemoryInUse %d after closing b, want a's 8 chunks", u)
		}
		c.Write(dc)
		if u := m.Stats().MemoryInUse; u != 8*blk {
			t.Errorf("MemoryInUse %d after another write while over budget, want 8 chunks", u)
		}
		if free := spool.FreeChunkBytes(m); free != 0 {
			t.Errorf("%d bytes of chunks kept for reuse while over budget", free)
		}
	})
	// Idle now: a second call rolls a over as far as needed.
	if err := m.SetMemoryBudget(4 * blk); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.MemoryInUse > 4*blk {
		t.Errorf("after the second shrink: %+v", st)
	}
	wantContent(t, a, da)
	wantContent(t, c, append(dc, dc...))
	// Growing cancels what is owed before giving the semaphore anything.
	if err := m.SetMemoryBudget(64 * blk); err != nil {
		t.Fatal(err)
	}
	d, _ := m.NewBuffer()
	d.Write(randBytes(4, 48*blk))
	if d.OnDisk() {
		t.Errorf("a 48-chunk buffer went to disk after growing back to 64 chunks: %+v", m.Stats())
	}
}

// TestSetMemoryBudgetInvalid: a budget below a chunk, a nil or zero
// Manager, and a closed one are errors.
func TestSetMemoryBudgetInvalid(t *testing.T) {
	m := resizeManager(t, spool.Options{})
	for _, n := range []int64{-1, 0, blk - 1} {
		if err := m.SetMemoryBudget(n); !errors.Is(err, spool.ErrInvalidOptions) {
			t.Errorf("SetMemoryBudget(%d) = %v, want ErrInvalidOptions", n, err)
		}
	}
	if st := m.Stats(); st.MemoryBudget != 64*blk {
		t.Errorf("an invalid SetMemoryBudget changed the budget: %+v", st)
	}
	var nilM *spool.Manager
	var zero spool.Manager
	if err := nilM.SetMemoryBudget(1 << 20); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("nil Manager: %v", err)
	}
	if err := zero.SetMemoryBudget(1 << 20); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("zero Manager: %v", err)
	}
	m.Close()
	if err := m.SetMemoryBudget(1 << 20); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("closed Manager: %v", err)
	}
}

// TestSetMemoryBudgetRacing: resizes race writers, readers, promotion and
// buffers closing, under -race, with MemoryInUse sampled continuously
// against the budget in force: during a shrink the old (larger) budget,
// from the start of a grow the new one, and after a shrink that returned
// nil the new one. Every byte reads back.
func TestSetMemoryBudgetRacing(t *testing.T) {
	for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastFrequentlyUsed} {
		t.Run(policy.String(), func(t *testing.T) {
			m := resizeManager(t, spool.Options{Policy: policy})
			var limit atomic.Int64 // the most MemoryInUse may be now
			limit.Store(64 * blk)
			stop := make(chan struct{})
			var bad atomic.Int64
			var samples atomic.Int64
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					default:
					}
					l := limit.Load()
					if u := m.Stats().MemoryInUse; u > l && l == limit.Load() {
						bad.Store(u<<20 | l/blk)
					}
					samples.Add(1)
					runtime.Gosched()
				}
			}()
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for round := range sized(5, 20, 100) {
						b, err := m.NewBuffer()
						if err != nil {
							t.Error(err)
							return
						}
						d := randBytes(uint64(w*1000+round), blk*(1+(w+round)%12)+round)
						for off := 0; off < len(d); off += 3000 {
							b.Write(d[off:min(off+3000, len(d))])
						}
						for range 3 {
							b.ReadAt(make([]byte, 100), 0)
						}
						wantContent(t, b, d)
						if round%3 != 0 {
							b.Close()
						}
					}
				}()
			}
			sizes := []int64{16, 48, 4, 64, 8, 32, 12, 64}
			for i := range sized(16, 64, 400) {
				n := sizes[i%len(sizes)] * blk
				if n > limit.Load() {
					limit.Store(n) // growing: in force from the start
				}
				err := m.SetMemoryBudget(n)
				switch {
				case err == nil:
					limit.Store(n)
				case !errors.Is(err, spool.ErrOverBudget):
					t.Fatal(err)
				}
			}
			wg.Wait()
			close(stop)
			<-sampled
			if v := bad.Load(); v != 0 {
				t.Errorf("MemoryInUse sampled at %d over the budget in force, %d chunks", v>>20, v&(1<<20-1))
			}
			if samples.Load() == 0 {
				t.Error("no samples")
			}
		})
	}
}

// TestSetMemoryBudgetTrimsFreeLists: after a shrink, the memory spool
// keeps for reuse is cut to what the new budget leaves room for, so the
// heap can follow the budget down.
func TestSetMemoryBudgetTrimsFreeLists(t *testing.T) {
	m := resizeManager(t, spool.Options{MemoryBudget: 1024 * blk}) // 4 MiB
	var bufs []*spool.Buffer
	for i := range 16 {
		b, _ := m.NewBuffer()
		b.Write(bytes.Repeat([]byte{byte(i)}, 64*blk))
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		b.Close() // 4 MiB of chunks now free, kept for reuse
	}
	if free := spool.FreeChunkBytes(m); free != 1024*blk {
		t.Fatalf("free chunks %d after closing every buffer, want the 4 MiB they held", free)
	}
	if err := m.SetMemoryBudget(64 * blk); err != nil {
		t.Fatal(err)
	}
	if free := spool.FreeChunkBytes(m); free > 64*blk {
		t.Errorf("free chunks %d after shrinking to 64 chunks", free)
	}
}

// TestEvictionYieldsToOwner: an eviction rolls its victim over a chunk at
// a time and releases the victim's lock between chunks: an owner that
// takes its buffer back after the first chunk (here, inside done, which
// runs between chunks) stops the eviction there, waiting for one chunk's
// write at most; the rest of the buffer stays in memory and every byte
// reads back.
func TestEvictionYieldsToOwner(t *testing.T) {
	m := resizeManager(t, spool.Options{})
	v, _ := m.NewBuffer()
	data := randBytes(9, 8*blk)
	v.Write(data)
	var release func()
	calls := 0
	moved, ok := spool.Evict(v, func() bool {
		calls++
		if calls == 1 {
			release = spool.HoldLock(v) // the owner is back
		}
		return false
	})
	if release == nil {
		t.Fatal("done was never called between chunks")
	}
	release()
	if ok || moved != blk || calls != 1 {
		t.Errorf("eviction moved %d bytes (done called %d times, satisfied %v); want one chunk, then a stop", moved, calls, ok)
	}
	if st := m.Stats(); st.MemoryInUse != 7*blk || !v.OnDisk() {
		t.Errorf("after one chunk of eviction: %+v", st)
	}
	// Undisturbed, an eviction goes on until done is satisfied, and no
	// further.
	moved, ok = spool.Evict(v, func() bool { return m.Stats().MemoryInUse <= 4*blk })
	if !ok || moved != 3*blk {
		t.Errorf("eviction to 4 chunks moved %d bytes, satisfied %v; want 3 chunks", moved, ok)
	}
	wantContent(t, v, data)
}
