package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// arenaManager returns a Manager whose buffers all spill into one segment
// file, so that they share, and reuse, each other's extents.
func arenaManager(t *testing.T, opts spool.Options) *spool.Manager {
	t.Helper()
	opts.MaxSpillFiles = 1
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 4096
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = 16 * 4096
	}
	m := mtManager(t, opts)
	spool.SetPoison(m, 0xEE)
	return m
}

// TestArenaNoStaleBytesAcrossBuffers: buffer A fills extents with a
// sentinel and frees them (Close, Truncate, rewrites); buffer B spills into
// the same segment, reusing them, with holes, Truncate regrowth, partial
// blocks and rewrites: B reads back exactly what it wrote and zeros
// elsewhere, never A's bytes.
func TestArenaNoStaleBytesAcrossBuffers(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypt=", encrypt), func(t *testing.T) {
			m := arenaManager(t, spool.Options{EncryptSpill: encrypt})
			const sentinel = 0x5A
			for round := range 3 {
				a := mtBuffer(t, m)
				mtMust(t, "Rollover", a.Rollover())
				mtWrite(t, a, bytes.Repeat([]byte{sentinel}, 40<<10+round*777), 0)
				mtWrite(t, a, bytes.Repeat([]byte{sentinel}, 3000), 50<<10) // a hole, then a partial block
				mtMust(t, "Truncate", a.Truncate(20<<10+100))               // frees blocks, cuts one
				mtWrite(t, a, bytes.Repeat([]byte{sentinel}, 5000), 1000)   // rewrites: old extents freed
				if round%2 == 0 {
					mtMust(t, "Close", a.Close())
				}

				b := mtBuffer(t, m)
				mtMust(t, "Rollover", b.Rollover())
				want := make([]byte, 60<<10)
				put := func(p []byte, off int) {
					t.Helper()
					mtWrite(t, b, p, int64(off))
					copy(want[off:], p)
				}
				put([]byte("x"), 0)             // a 1-byte block: the smallest extent
				put(mtPattern(100, 1), 9000)    // a hole before it, in the same block
				put(mtPattern(4096, 2), 12288)  // a whole block
				put([]byte("end"), len(want)-3) // a hole of many blocks
				mtMust(t, "Truncate", b.Truncate(30<<10))
				want = want[:30<<10]
				mtMust(t, "Truncate", b.Truncate(45<<10)) // regrow: zeros
				want = append(want, make([]byte, 15<<10)...)
				put(mtPattern(2000, 3), 30<<10-1000) // across the old end
				mtWant(t, b, want)
				mtMust(t, "Close", b.Close())
				if round%2 == 1 {
					mtMust(t, "Close", a.Close())
				}
			}
			if st := m.Stats(); st.DiskInUse != 0 || st.DiskLive != 0 {
				t.Errorf("after every buffer closed: DiskInUse %d, DiskLive %d", st.DiskInUse, st.DiskLive)
			}
		})
	}
}

// TestArenaLostWriteInReusedExtent: a write to an extent that another
// buffer used before is lost (the disk reports it done and keeps the old
// bytes): reading it returns ErrCorrupt, never the other buffer's bytes.
func TestArenaLostWriteInReusedExtent(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		f := &spool.Faults{FailAt: -1, Lost: true}
		m, err := spool.NewManagerWithFaults(spool.Options{ChunkSize: 4096, MemoryBudget: 16 * 4096, MaxSpillFiles: 1,
			TempDir: t.TempDir(), EncryptSpill: encrypt}, f)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		// c keeps the frame in use, so that a's extent is not punched out
		// when a frees it: a's bytes stay there, as on a disk.
		c := spillInto(t, m, mtPattern(4096, 1))
		a := spillInto(t, m, bytes.Repeat([]byte("secret! "), 512)) // one block
		aRaw := make([]byte, 4096)
		spool.RawSpillFile(a).ReadAt(aRaw, 0)
		mtMust(t, "Close", a.Close())
		b, _ := m.NewBuffer()
		mtMust(t, "Rollover", b.Rollover())
		f.FailAt = f.Ops() // the next operation: b's write, into a's extent
		if n, err := b.Write(bytes.Repeat([]byte("b"), 4096)); n != 4096 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		raw := make([]byte, 4096)
		spool.RawSpillFile(b).ReadAt(raw, 0)
		if !bytes.Equal(raw, aRaw) {
			t.Fatalf("encrypt=%v: b's extent does not hold a's bytes: the test does not test a reused extent", encrypt)
		}
		wantContent(t, c, mtPattern(4096, 1))
		p := make([]byte, 4096)
		if n, err := b.ReadAt(p, 0); !errors.Is(err, spool.ErrCorrupt) || bytes.Contains(p[:n], []byte("secret")) {
			t.Errorf("encrypt=%v: ReadAt of a lost write = %d, %v; want ErrCorrupt and none of a's bytes", encrypt, n, err)
		}
	}
}

// TestArenaConcurrentRollovers: many goroutines roll many buffers over at
// once into one segment file, and write, rewrite, truncate and close them,
// under -race: every buffer reads back its own bytes, and when all are
// closed the arena holds nothing.
func TestArenaConcurrentRollovers(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	m := arenaManager(t, spool.Options{MemoryBudget: 64 * 4096})
	var wg sync.WaitGroup
	for g := range sized(4, 8, 16) {
		wg.Go(func() {
			for k := range sized(10, 20, 60) {
				seed := uint64(g*1000 + k)
				b, err := m.NewBuffer()
				if err != nil {
					t.Error(err)
					return
				}
				data := mtPattern(5000+int(seed%7)*3001, seed)
				if _, err := b.Write(data); err != nil {
					t.Error(err)
				}
				if err := b.Rollover(); err != nil {
					t.Error(err)
				}
				patch := mtPattern(500, seed+1)
				off := int(seed%5) * 1000
				if _, err := b.WriteAt(patch, int64(off)); err != nil {
					t.Error(err)
				}
				copy(data[off:], patch)
				if k%3 == 0 {
					if err := b.Truncate(int64(len(data) / 2)); err != nil {
						t.Error(err)
					}
					data = data[:len(data)/2]
				}
				got := make([]byte, len(data)+1)
				if n, err := b.ReadAt(got, 0); n != len(data) || err != io.EOF || !bytes.Equal(got[:n], data) {
					t.Errorf("goroutine %d buffer %d: ReadAt = %d, %v; equal %v", g, k, n, err, bytes.Equal(got[:n], data))
				}
				if k%2 == 0 {
					b.Close()
				}
			}
		})
	}
	wg.Wait()
	if st := m.Stats(); st.SpillFiles != 1 {
		t.Errorf("SpillFiles = %d, want 1", st.SpillFiles)
	}
}

// TestArenaGivesSpaceBack: buffers of assorted sizes (1 KiB to 200 KiB)
// are spilled, 90% of them closed at random, and as many new ones
// spilled: after each step the space the file system holds for the
// arena's files (st_blocks) follows the live spilled bytes, and DiskInUse
// says what that space is. When every buffer is closed, it holds nothing.
//
// The bound, derived: DiskInUse is what the disk budget is charged, the
// granules (4 KiB with 64 KiB chunks) that live extents overlap plus the
// slack (freed granules not yet punched out), and the file system holds
// no more than that. The live extents' granules are at most the sum of
// spool.ExtentCharge over the live buffers' blocks; the slack is at most
// max(DiskLive/8, 1 MiB) after any operation that frees, since settle
// reclaims it past that. For this mix of sizes the granules of the live
// extents are within 1.1× their bytes, so the file system holds at most
// 1.25 × DiskLive + 1 MiB. (With only 1 KiB buffers it would not be: each
// survivor can keep a whole 4 KiB granule, a file system block, on disk.)
func TestArenaGivesSpaceBack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("st_blocks and punching holes: Linux only")
	}
	const cs = spool.DefaultChunkSize
	sizes := []int64{1 << 10, 3 << 10, 5 << 10, 12 << 10, 20 << 10, 64 << 10, 100 << 10, 200 << 10}
	n := sized(300, 1000, 10000)
	r := rand.New(rand.NewPCG(1, 2))
	size := make([]int64, n)
	for i := range size {
		size[i] = sizes[r.IntN(len(sizes))]
	}
	// The budget: what every buffer's extents may be charged at once, and
	// 1 MiB of slack. The new buffers have the sizes of those they
	// replace, so the budget is never short, but allocations meet it.
	probe := mtManager(t, spool.Options{})
	charge := func(size int64) int64 { // the most a buffer's extents are charged
		c := size / cs * spool.ExtentCharge(probe, cs)
		if rem := size % cs; rem != 0 {
			c += spool.ExtentCharge(probe, rem)
		}
		return c
	}
	var budget int64
	for _, sz := range size {
		budget += charge(sz)
	}
	budget += 1 << 20
	m := mtManager(t, spool.Options{MemoryBudget: 1 << 20, DiskBudget: budget})
	bufs := make([]*spool.Buffer, n)
	spill := func(i int) {
		b := mtBuffer(t, m)
		mtWrite(t, b, mtPattern(int(size[i]), uint64(i)), 0)
		mtMust(t, "Rollover", b.Rollover())
		bufs[i] = b
		if st := m.Stats(); st.DiskInUse > st.DiskBudget {
			t.Fatalf("DiskInUse %d > DiskBudget %d", st.DiskInUse, st.DiskBudget)
		}
	}
	check := func(when string) {
		t.Helper()
		st := m.Stats()
		got, err := spool.ArenaAllocated(m)
		if err != nil {
			t.Skip(err)
		}
		if spool.ArenaCannotPunch(m) {
			t.Skipf("%s: the file system of %s cannot punch holes", when, m.TempDir())
		}
		var held int64
		for i, b := range bufs {
			if b != nil {
				held += charge(size[i])
			}
		}
		slack := spool.ArenaSlack(m)
		t.Logf("%s: the file system holds %d bytes for %d live spilled bytes (%.3fx); DiskInUse %d, of which slack %d; live extents charged at most %d",
			when, got, st.DiskLive, float64(got)/float64(max(st.DiskLive, 1)), st.DiskInUse, slack, held)
		if most := max(st.DiskLive/8, 1<<20); slack > most {
			t.Errorf("%s: slack %d, more than max(DiskLive/8, 1 MiB) = %d", when, slack, most)
		}
		if st.DiskInUse-slack > held {
			t.Errorf("%s: DiskInUse %d less slack %d is more than the live extents' granules, %d", when, st.DiskInUse, slack, held)
		}
		// DiskInUse must not undercount what the files hold: it bounds the
		// disk. (The file system may add a few blocks of its own for a
		// fragmented file's extent tree.)
		if got > st.DiskInUse+64<<10 {
			t.Errorf("%s: the file system holds %d bytes, DiskInUse says %d", when, got, st.DiskInUse)
		}
		if got > st.DiskLive*5/4+(1<<20) {
			t.Errorf("%s: the file system holds %d bytes for %d live spilled bytes", when, got, st.DiskLive)
		}
		if st.DiskInUse > budget {
			t.Errorf("%s: DiskInUse %d > DiskBudget %d", when, st.DiskInUse, budget)
		}
	}
	for i := range bufs {
		spill(i)
	}
	check("after spilling")
	closed := r.Perm(n)[:n*9/10]
	for _, i := range closed {
		mtMust(t, "Close", bufs[i].Close())
		bufs[i] = nil
	}
	check("after closing 90% at random")
	for _, i := range closed {
		spill(i)
	}
	check("after spilling as many new")
	for i, b := range bufs {
		mtMust(t, "Close", b.Close())
		bufs[i] = nil
	}
	check("after closing all")
	if st := m.Stats(); st.DiskInUse != 0 {
		t.Errorf("after closing all: DiskInUse %d", st.DiskInUse)
	}
	if got, _ := spool.ArenaAllocated(m); got != 0 {
		t.Errorf("after closing all: the file system holds %d bytes", got)
	}
}

// TestArenaMoveInKernel: a spilled buffer written a few hundred bytes at a
// time outgrows its blocks' extents again and again; where the file can
// (copy_file_range, Linux), each move copies the block in the kernel. The
// bytes read back intact. A move the disk loses (reported done, never
// done) is an ErrCorrupt when the block is read, never other bytes; a move
// that fails, or copies half, fails that write with the error, wrapped,
// keeps every byte written before readable, and later writes succeed.
func TestArenaMoveInKernel(t *testing.T) {
	const piece = 300
	data := randBytes(7, 40*piece) // two blocks of 4 KiB and a part of one
	setup := func(t *testing.T) (*spool.Faults, *spool.Buffer) {
		f := &spool.Faults{FailAt: -1, Err: errors.New("injected copy error")}
		m, err := spool.NewManagerWithFaults(spool.Options{ChunkSize: 4096, MemoryBudget: 16 * 4096, TempDir: t.TempDir()}, f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		b, _ := m.NewBuffer()
		mtMust(t, "Rollover", b.Rollover())
		return f, b
	}
	// write writes data from off in pieces, up to end or the first error,
	// and returns where it stopped.
	write := func(b *spool.Buffer, off, end int) (int, error) {
		for off < end {
			n, err := b.Write(data[off:min(off+piece, end)])
			off += n
			if err != nil {
				return off, err
			}
		}
		return off, nil
	}
	t.Run("intact", func(t *testing.T) {
		f, b := setup(t)
		if _, err := write(b, 0, len(data)); err != nil {
			t.Fatal(err)
		}
		wantContent(t, b, data)
		if runtime.GOOS == "linux" && f.Moves() == 0 {
			t.Error("no block was moved in the kernel")
		}
	})
	t.Run("lost", func(t *testing.T) {
		f, b := setup(t)
		f.FailMoves, f.Lost = true, true
		if _, err := write(b, 0, 4096); err != nil {
			t.Fatal(err)
		}
		if f.Moves() == 0 {
			t.Skip("the spill files cannot copy in the kernel")
		}
		p := make([]byte, 4096)
		if n, err := b.ReadAt(p, 0); !errors.Is(err, spool.ErrCorrupt) {
			t.Fatalf("ReadAt of a block whose move was lost = %d, %v; want ErrCorrupt", n, err)
		}
	})
	t.Run("unsupported", func(t *testing.T) {
		// A file that turns out not to copy in the kernel (a seccomp
		// filter's EPERM): the block is copied through memory into the
		// extent already allocated, and no move is tried again.
		f, b := setup(t)
		f.FailMoves, f.Err = true, fmt.Errorf("copy_file_range: %w", errors.ErrUnsupported)
		if _, err := write(b, 0, len(data)); err != nil {
			t.Fatal(err)
		}
		wantContent(t, b, data)
		if runtime.GOOS == "linux" && f.Moves() != 1 {
			t.Errorf("%d moves tried in the kernel; want 1, then none once the file said it cannot", f.Moves())
		}
	})
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprint("fails/short=", short), func(t *testing.T) {
			f, b := setup(t)
			f.FailMoves, f.Short = true, short
			off, err := write(b, 0, len(data))
			if f.Moves() == 0 {
				t.Skip("the spill files cannot copy in the kernel")
			}
			if !errors.Is(err, f.Err) {
				t.Fatalf("writes whose moves fail stopped at %d with %v; want the injected error", off, err)
			}
			wantContent(t, b, data[:off])
			f.FailMoves = false
			if _, err := write(b, off, len(data)); err != nil {
				t.Fatalf("writes after the failure: %v", err)
			}
			wantContent(t, b, data)
		})
	}
}
