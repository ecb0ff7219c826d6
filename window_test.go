package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/spoolkit/spool"
)

// windowManager returns a Manager with 4 KiB chunks, the given budget, and
// spill files whose operations f counts (and fails, if told to).
// wcs is the chunk size of windowManager's Managers: their block size, and
// the size of a read window.
const wcs = 4 << 10

func windowManager(t *testing.T, budget int64, f *spool.Faults) *spool.Manager {
	t.Helper()
	m, err := spool.NewManagerWithFaults(spool.Options{ChunkSize: wcs, MemoryBudget: budget, TempDir: t.TempDir()}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestWindowSmallReads: reading a spilled buffer in small pieces reads
// each block from the file once, through one window counted in the budget,
// and returns the right bytes; the window goes with Close.
func TestWindowSmallReads(t *testing.T) {
	f := &spool.Faults{FailAt: -1}
	m := windowManager(t, 1<<20, f)
	data := randBytes(1, 10*wcs+777)
	b := spillInto(t, m, data)
	b.Seek(0, io.SeekStart)
	before := f.Ops()
	var got []byte
	p := make([]byte, 500)
	var err error
	for err == nil {
		var n int
		n, err = b.Read(p)
		got = append(got, p[:n]...)
	}
	if err != io.EOF || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll = %d bytes, %v; intact %v", len(got), err, bytes.Equal(got, data))
	}
	if ops, blocks := f.Ops()-before, 11; ops != blocks {
		t.Errorf("%d file reads for %d blocks read in small pieces, want one per block", ops, blocks)
	}
	st := m.Stats()
	if st.ReadWindows != 1 || st.MemoryInUse != wcs {
		t.Errorf("ReadWindows %d, MemoryInUse %d; want 1 window of %d bytes", st.ReadWindows, st.MemoryInUse, wcs)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
	b.Close()
	if st := m.Stats(); st.ReadWindows != 0 || st.MemoryInUse != 0 {
		t.Errorf("after Close: ReadWindows %d, MemoryInUse %d", st.ReadWindows, st.MemoryInUse)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
}

// TestWindowNeedsFreeBudget: with no free budget, small reads take no
// window (and roll nothing over for one); they read the file each time.
func TestWindowNeedsFreeBudget(t *testing.T) {
	f := &spool.Faults{FailAt: -1}
	m := windowManager(t, 4*wcs, f)
	data := randBytes(2, 3*wcs)
	b := spillInto(t, m, data)
	hog, _ := m.NewBuffer()
	if _, err := hog.Write(make([]byte, 4*wcs)); err != nil { // the whole budget
		t.Fatal(err)
	}
	before, spills := f.Ops(), m.Stats().Spills
	p := make([]byte, 100)
	for i := range 20 {
		if _, err := b.ReadAt(p, int64(i)*100); err != nil || !bytes.Equal(p, data[i*100:(i+1)*100]) {
			t.Fatalf("ReadAt %d: %v", i, err)
		}
	}
	if ops := f.Ops() - before; ops != 20 {
		t.Errorf("%d file reads for 20 small reads without a window, want 20", ops)
	}
	st := m.Stats()
	if st.ReadWindows != 0 || st.Spills != spills || hog.OnDisk() {
		t.Errorf("ReadWindows %d, Spills %d → %d, hog on disk %v: a read took memory it had no room for", st.ReadWindows, spills, st.Spills, hog.OnDisk())
	}
}

// TestWindowTakenBackFirst: a write short of memory takes back a read
// window, which costs no I/O, before it rolls any buffer over, even while
// a read of the window's buffer is in progress.
func TestWindowTakenBackFirst(t *testing.T) {
	m := windowManager(t, wcs+4*wcs, &spool.Faults{FailAt: -1})
	b := spillInto(t, m, randBytes(3, 2*wcs))
	p := make([]byte, 10)
	if _, err := b.ReadAt(p, 5); err != nil {
		t.Fatal(err)
	}
	w, _ := m.NewBuffer()
	if _, err := w.Write(make([]byte, 4*wcs)); err != nil { // the free part of the budget
		t.Fatal(err)
	}
	if st := m.Stats(); st.ReadWindows != 1 {
		t.Fatalf("ReadWindows %d before the write short of memory, want 1", st.ReadWindows)
	}
	spool.ReadLocked(b, func() { // as if a ReadAt of b were in progress
		if _, err := w.Write(make([]byte, wcs)); err != nil {
			t.Fatal(err)
		}
	})
	st := m.Stats()
	if st.ReadWindows != 0 || st.Evictions != 0 || w.OnDisk() {
		t.Errorf("ReadWindows %d, Evictions %d, writer on disk %v: want the window taken back and nothing rolled over", st.ReadWindows, st.Evictions, w.OnDisk())
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
	// The reader gets its bytes without a window now.
	if _, err := b.ReadAt(p, 5); err != nil {
		t.Fatal(err)
	}
}

// TestWindowFollowsChanges: the window never shows bytes the buffer no
// longer has: not after a write into its block, a Truncate, or a rollover
// that moves bytes from memory into its block. The last needs a buffer
// partly in memory with file bytes around the chunks it holds: a rollover
// that failed half-way, then a write past the end, which goes to the file.
func TestWindowFollowsChanges(t *testing.T) {
	// The buffer is in memory until the rollover, whose file operations
	// are 0 create, 1 and 2 the first two chunks, and 3, which fails.
	f := &spool.Faults{FailAt: 3, Err: errors.New("injected")}
	m := windowManager(t, 1<<20, f)
	data := randBytes(4, 8*wcs)
	b, _ := m.NewBuffer()
	b.Write(data)
	if err := b.Rollover(); err == nil {
		t.Fatal("the rollover did not fail")
	}
	tail := randBytes(5, 1000)
	if _, err := b.WriteAt(tail, int64(len(data))+4000); err != nil {
		t.Fatal(err)
	}
	data = append(append(data, make([]byte, 4000)...), tail...)
	p := make([]byte, 100)
	check := func(what string) {
		t.Helper()
		for off := 0; off < len(data); off += len(p) {
			n, err := b.ReadAt(p, int64(off))
			if err != nil && err != io.EOF || !bytes.Equal(p[:n], data[off:min(len(data), off+len(p))]) {
				t.Fatalf("%s: ReadAt(%d, %d) = %d, %v; bytes differ", what, len(p), off, n, err)
			}
		}
		if m.Stats().ReadWindows != 1 {
			t.Fatalf("%s: no read window", what)
		}
	}
	check("in part on disk") // the window holds the file's block, holes where chunks are
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	check("after the rollover")
	copy(data[5000:], "new bytes")
	if _, err := b.WriteAt([]byte("new bytes"), 5000); err != nil {
		t.Fatal(err)
	}
	check("after a write")
	if err := b.Truncate(3000); err != nil {
		t.Fatal(err)
	}
	if n := m.Stats().ReadWindows; n != 0 {
		t.Errorf("%d read windows after a Truncate, want it given back", n)
	}
	if err := b.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	clear(data[3000:])
	check("after shrinking and growing")
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
}

// TestWindowCorruptBlock: a block that fails its checksum is an error
// through the window too, and leaves no window behind.
func TestWindowCorruptBlock(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypt=", encrypt), func(t *testing.T) {
			m, err := spool.NewManager(spool.Options{ChunkSize: wcs, MemoryBudget: 1 << 20, TempDir: t.TempDir(), EncryptSpill: encrypt})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			b := spillInto(t, m, randBytes(5, 2*wcs))
			raw := spool.RawSpillFile(b)
			var one [1]byte
			raw.ReadAt(one[:], wcs+10)
			one[0] ^= 4
			raw.WriteAt(one[:], wcs+10)
			p := make([]byte, 100)
			if _, err := b.ReadAt(p, 0); err != nil {
				t.Fatalf("the good block: %v", err)
			}
			if _, err := b.ReadAt(p, wcs); !errors.Is(err, spool.ErrCorrupt) {
				t.Fatalf("the damaged block: %v, want ErrCorrupt", err)
			}
			if st := m.Stats(); st.ReadWindows != 0 {
				t.Errorf("ReadWindows %d after a read that failed its check", st.ReadWindows)
			}
			if err := spool.CheckHolding(m); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestWindowConcurrent: small reads, writes of the same bytes, rollovers,
// truncates past the end and writes to other buffers that take windows
// back, all at once, under -race: no read ever returns a wrong byte, and
// the budget accounts for every window at the end.
func TestWindowConcurrent(t *testing.T) {
	m := windowManager(t, 4*wcs, &spool.Faults{FailAt: -1})
	const nbuf = 4
	datas := make([][]byte, nbuf)
	bufs := make([]*spool.Buffer, nbuf)
	for i := range bufs {
		datas[i] = randBytes(uint64(10+i), 3*wcs+123)
		bufs[i] = spillInto(t, m, datas[i])
	}
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for g := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			p := make([]byte, 700)
			for range sized(500, 1000, 3000) {
				i := r.IntN(nbuf)
				b, data := bufs[i], datas[i]
				off := r.IntN(len(data))
				switch r.IntN(10) {
				case 0: // rewrite bytes with what they are
					end := min(len(data), off+r.IntN(300))
					if _, err := b.WriteAt(data[off:end], int64(off)); err != nil {
						errc <- err
						return
					}
				case 1: // a truncate that changes nothing
					if err := b.Truncate(int64(len(data))); err != nil {
						errc <- err
						return
					}
				case 2: // a writer short of memory
					tmp, _ := m.NewBuffer()
					tmp.Write(p)
					tmp.Close()
				case 3:
					b.Rollover()
				default:
					n, err := b.ReadAt(p[:r.IntN(len(p))+1], int64(off))
					if err != nil && err != io.EOF || !bytes.Equal(p[:n], data[off:off+n]) {
						errc <- fmt.Errorf("buffer %d: ReadAt at %d = %d, %v; bytes differ", i, off, n, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
}
