package spool_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/spoolkit/spool"
)

// memoryBound is the most a buffer of size bytes, written without holes,
// may hold: max(256, 1.25·size).
func memoryBound(size int64) int64 { return max(256, size+size/4) }

// TestMemoryFollowsSize: a lone buffer in memory, written densely in
// pieces of every size, overwritten and truncated, never holds more than
// max(256, 1.25·size) of budget, whatever the chunk size, and always reads
// back what was written (with poisoned pools, so a stale byte would show).
func TestMemoryFollowsSize(t *testing.T) {
	for _, cs := range []int{4 << 10, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("chunk=%d", cs), func(t *testing.T) {
			m := mtManager(t, spool.Options{ChunkSize: cs, MemoryBudget: 64 << 20})
			spool.SetPoison(m, 0xEE)
			r := rand.New(rand.NewPCG(uint64(cs), 3))
			b := mtBuffer(t, m)
			var model []byte
			for step := range sized(150, 300, 2000) {
				switch k := r.IntN(10); {
				case k < 6: // append a piece of log-uniform size
					p := mtPattern(1<<r.IntN(18)+r.IntN(100), uint64(step))
					mtWrite(t, b, p, int64(len(model)))
					model = append(model, p...)
				case k < 8 && len(model) > 0: // overwrite inside
					off := r.IntN(len(model))
					p := mtPattern(min(len(model)-off, 1+r.IntN(5000)), uint64(step))
					mtWrite(t, b, p, int64(off))
					copy(model[off:], p)
				case k < 9: // shrink
					n := r.IntN(len(model) + 1)
					mtMust(t, "Truncate", b.Truncate(int64(n)))
					model = model[:n]
				default: // start again, sometimes from an empty buffer
					mtMust(t, "Truncate", b.Truncate(0))
					model = model[:0]
				}
				if len(model) > 8<<20 {
					mtMust(t, "Truncate", b.Truncate(0))
					model = model[:0]
				}
				st := m.Stats()
				if b.OnDisk() {
					t.Fatalf("step %d: a lone buffer of %d bytes went to disk", step, len(model))
				}
				if len(model) > 0 && st.MemoryInUse > memoryBound(int64(len(model))) {
					t.Fatalf("step %d: %d bytes held in %d bytes of memory, more than 1.25x", step, len(model), st.MemoryInUse)
				}
				if len(model) == 0 && st.MemoryInUse != 0 {
					t.Fatalf("step %d: an empty buffer holds %d bytes of memory", step, st.MemoryInUse)
				}
				if step%10 == 0 {
					mtWant(t, b, model)
				}
			}
			mtWant(t, b, model)
		})
	}
}

// TestSlotTransitions: a buffer goes small, large, truncated back to
// small, regrown with holes, spilled and back; at each step its memory is
// what its size needs, its content is right, and holes read as zeros.
func TestSlotTransitions(t *testing.T) {
	const cs = 64 << 10
	m := mtManager(t, spool.Options{MemoryBudget: 16 << 20, Policy: spool.LeastFrequentlyUsed, DisablePromotion: true})
	spool.SetPoison(m, 0xEE)
	b := mtBuffer(t, m)
	mem := func() int64 { return m.Stats().MemoryInUse }
	small := mtPattern(300, 1)
	mtWrite(t, b, small, 0)
	if got := mem(); got != 320 {
		t.Errorf("300 bytes hold %d, want the 320-byte class", got)
	}
	large := mtPattern(5*cs+1000, 2)
	mtWrite(t, b, large, 300)
	want := append(append([]byte(nil), small...), large...)
	mtWant(t, b, want)
	if got := mem(); got < int64(len(want)) || got > memoryBound(int64(len(want))) {
		t.Errorf("%d bytes hold %d", len(want), got)
	}
	mtMust(t, "Truncate", b.Truncate(1000))
	want = want[:1000]
	mtWant(t, b, want)
	if got := mem(); got != 1024 {
		t.Errorf("after Truncate(1000): %d bytes of memory, want the 1024-byte class", got)
	}
	// Regrow with a hole: the bytes between 1000 and the write are zeros,
	// though the slot's slice is replaced by a larger one from a pool
	// whose slices are poisoned.
	mtWrite(t, b, []byte("x"), 40000)
	want = append(want, make([]byte, 40000-1000)...)
	want = append(want, 'x')
	mtWant(t, b, want)
	mtMust(t, "Truncate", b.Truncate(70000)) // a hole past the slot
	want = append(want, make([]byte, 70000-len(want))...)
	mtWant(t, b, want)
	mtMust(t, "Rollover", b.Rollover())
	if got := mem(); got != 0 {
		t.Errorf("after Rollover: %d bytes of memory", got)
	}
	mtWant(t, b, want)
}

// TestNoStaleBytesEveryClass: for every size class of a 64 KiB chunk, a
// buffer dirties a slice of that class and gives it back; new buffers that
// reuse it, with holes, Truncate regrowth and shrink-then-grow, show none
// of its bytes.
func TestNoStaleBytesEveryClass(t *testing.T) {
	const sentinel = 0x5A
	m := mtManager(t, spool.Options{MemoryBudget: 8 << 20})
	for _, poison := range []byte{0, 0xEE} {
		if poison != 0 {
			spool.SetPoison(m, poison)
		}
		for size := 200; size <= 64<<10; size += 1 + size/9 {
			d := mtBuffer(t, m)
			mtWrite(t, d, bytes.Repeat([]byte{sentinel}, size), 0)
			mtMust(t, "Close", d.Close())

			b := mtBuffer(t, m)
			mtWrite(t, b, []byte{1}, int64(size-1)) // a hole up to the last byte
			mtMust(t, "Truncate", b.Truncate(int64(size/2)))
			mtMust(t, "Truncate", b.Truncate(int64(size+size/3)))
			mtWrite(t, b, []byte{2}, int64(size+size/2))
			got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range got {
				if c != 0 && i != size+size/2 {
					t.Fatalf("class of %d bytes: byte %d of %d is %#x, want 0", size, i, len(got), c)
				}
			}
			mtMust(t, "Close", b.Close())
		}
	}
}
