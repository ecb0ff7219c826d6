package spool_test

import (
	"errors"
	"io"
	"math"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
)

func rvManager(t *testing.T, opts spool.Options) *spool.Manager {
	t.Helper()
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	m, err := spool.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestTruncateShrinkNearMaxInt64: Truncate to MaxInt64 (the buffer rolls
// over) and then shrinking by one byte works; the chunk count must not
// overflow.
func TestTruncateShrinkNearMaxInt64(t *testing.T) {
	m := rvManager(t, spool.Options{ChunkSize: 4096, MemoryBudget: 16 * 4096})
	b, _ := m.NewBuffer()
	if err := b.Truncate(math.MaxInt64); err != nil {
		t.Skipf("Truncate(MaxInt64) = %v", err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Truncate(MaxInt64-1) panicked: %v", r)
		}
	}()
	if err := b.Truncate(math.MaxInt64 - 1); err != nil {
		t.Fatalf("Truncate(MaxInt64-1) = %v", err)
	}
	if b.Size() != math.MaxInt64-1 {
		t.Fatalf("Size = %d", b.Size())
	}
}

// TestFailedWritePastEndKeepsSize: a WriteAt past the end of a spilled
// buffer that writes nothing (disk error) leaves the size alone, as a failed
// pwrite leaves an *os.File's.
func TestFailedWritePastEndKeepsSize(t *testing.T) {
	f := &spool.Faults{FailAt: 2, Err: syscall.ENOSPC} // 0 create, 1 first write, 2 second
	m, err := spool.NewManagerWithFaults(spool.Options{ChunkSize: 4096, MemoryBudget: 4 * 4096, TempDir: t.TempDir()}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	n, err := b.WriteAt([]byte("x"), 1000)
	if n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteAt = %d, %v; want 0, ENOSPC", n, err)
	}
	if b.Size() != 5 {
		t.Errorf("Size = %d after a WriteAt that wrote nothing; want 5", b.Size())
	}
}

// countReader returns n from its first Read, with no bytes, then io.EOF.
type countReader struct {
	n    int
	done bool
}

func (r *countReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	r.done = true
	return r.n, nil
}

// countWriter returns len(p)+extra, or n if extra is 0, from every Write.
type countWriter struct{ n, extra int }

func (w countWriter) Write(p []byte) (int, error) {
	if w.extra != 0 {
		return len(p) + w.extra, nil
	}
	return w.n, nil
}

// TestInvalidCounts: a Reader or Writer that returns a count outside
// [0, len(p)] makes ReadFrom and WriteTo return ErrInvalidCount, not
// panic, and leaves the buffer's size and offset as they were.
func TestInvalidCounts(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	for _, n := range []int{-1, 1 << 20, math.MaxInt} {
		got, err := b.ReadFrom(&countReader{n: n})
		if !errors.Is(err, spool.ErrInvalidCount) || got != 0 || b.Size() != 0 {
			t.Errorf("ReadFrom of a Read returning %d = %d, %v; size %d", n, got, err, b.Size())
		}
	}
	b.WriteString("hello")
	for _, w := range []countWriter{{n: -1}, {extra: 10}, {n: math.MinInt}} {
		b.Seek(1, io.SeekStart)
		got, err := b.WriteTo(w)
		pos, _ := b.Seek(0, io.SeekCurrent)
		if !errors.Is(err, spool.ErrInvalidCount) || got != 0 || pos != 1 {
			t.Errorf("WriteTo of a Write returning %+v = %d, %v; offset %d, want 0, ErrInvalidCount, 1", w, got, err, pos)
		}
	}
}
