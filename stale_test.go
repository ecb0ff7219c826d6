package spool_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/spoolkit/spool"
)

// TestNoStaleBytes fills buffers with a sentinel, closes them, and makes
// every kind of hole in new buffers that reuse their chunks (chunks given
// back are also poisoned with another sentinel): no hole, Truncate regrow,
// shrink-then-grow or spill ever shows either sentinel.
func TestNoStaleBytes(t *testing.T) {
	const sentinel, poison = 0x5A, 0xEE
	m, err := spool.NewManager(spool.Options{MemoryBudget: 64 * 4096, ChunkSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fill := bytes.Repeat([]byte{sentinel}, 60*4096)
	dirty := func() {
		t.Helper()
		b, _ := m.NewBuffer()
		if _, err := b.Write(fill); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	clean := func(what string, b *spool.Buffer) {
		t.Helper()
		got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range got {
			if c == sentinel || c == poison {
				t.Fatalf("%s: byte %d of %d is stale (%#x)", what, i, len(got), c)
			}
		}
	}
	for _, poisoned := range []bool{false, true} {
		if poisoned {
			spool.SetPoison(m, poison)
		}
		for _, spill := range []bool{false, true} {
			dirty()
			b, _ := m.NewBuffer()
			if spill {
				b.Rollover()
			}
			b.WriteAt([]byte{1}, 3*4096+17) // hole of 3 chunks and a bit
			clean("hole", b)
			b.Truncate(10*4096 + 5) // regrow
			clean("truncate grow", b)
			b.WriteAt(bytes.Repeat([]byte{2}, 5*4096), 100)
			b.Truncate(4096 + 3) // shrink into a chunk
			b.Truncate(9 * 4096) // and grow again
			clean("shrink then grow", b)
			b.Truncate(10)
			b.WriteAt([]byte{3}, 2*4096+1) // write past the end of a shrunk buffer
			clean("shrink then write past end", b)
			b.Rollover()
			clean("after rollover", b)
			b.Close()
		}
	}
}
