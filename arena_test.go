package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// TestArenaGivesSpaceBack: after churn (many spilled buffers, most of them
// closed, as many new ones spilled), the space the file system holds for
// the arena's files is within 1.25 times the live spilled bytes: freed
// extents are reused, and freed space is punched out or cut off. When
// every buffer is closed, it holds (almost) nothing.
func TestArenaGivesSpaceBack(t *testing.T) {
	n := sized(500, 1000, 10000)
	m := mtManager(t, spool.Options{MemoryBudget: 1 << 20})
	piece := mtPattern(64<<10, 1)
	spill := func() *spool.Buffer {
		b := mtBuffer(t, m)
		mtWrite(t, b, piece, 0)
		mtMust(t, "Rollover", b.Rollover())
		return b
	}
	bufs := make([]*spool.Buffer, n)
	for i := range bufs {
		bufs[i] = spill()
	}
	for i := range n * 9 / 10 {
		mtMust(t, "Close", bufs[i].Close())
		bufs[i] = nil
	}
	check := func(when string) {
		t.Helper()
		st := m.Stats()
		got, err := spool.ArenaAllocated(m)
		if err != nil {
			t.Skip(err)
		}
		t.Logf("%s: the file system holds %d bytes for %d live spilled bytes (DiskInUse %d)", when, got, st.DiskLive, st.DiskInUse)
		if got > st.DiskLive*5/4+(1<<20) {
			t.Errorf("%s: the file system holds %d bytes for %d live spilled bytes", when, got, st.DiskLive)
		}
	}
	check("after closing 90%")
	for i := range n * 9 / 10 {
		bufs[i] = spill()
	}
	check("after spilling as many new")
	for _, b := range bufs {
		mtMust(t, "Close", b.Close())
	}
	check("after closing all")
}

// fdChildEnv makes the test binary run arenaFDChild instead of the tests.
const fdChildEnv = "SPOOL_TEST_FD_CHILD"

func init() {
	if n := os.Getenv(fdChildEnv); n != "" {
		arenaFDChild(n)
	}
}

// TestArenaFileLimit: 100,000 buffers spilled at once, in a child process
// whose limit on open files is 256: the spill arena keeps at most
// 4 × GOMAXPROCS + 4 files open, and every buffer reads back.
func TestArenaFileLimit(t *testing.T) {
	n := sized(10000, 100000, 100000)
	if raceEnabled {
		n = min(n, 20000)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+strconv.Itoa(n), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var files, onDisk int
	if _, err := fmt.Sscanf(string(out), "ok %d %d", &files, &onDisk); err != nil {
		t.Fatalf("child said %q", out)
	}
	t.Logf("%d buffers on disk in %d spill files, under an fd limit of 256", onDisk, files)
	if limit := 4*runtime.GOMAXPROCS(0) + 4; files > limit || onDisk != n {
		t.Errorf("%d buffers on disk (want %d) in %d spill files (want at most %d)", onDisk, n, files, limit)
	}
}

// arenaFDChild is the child side of TestArenaFileLimit. It never returns.
func arenaFDChild(arg string) {
	fail := func(format string, args ...any) {
		fmt.Printf("child: "+format+"\n", args...)
		os.Exit(1)
	}
	n, err := strconv.Atoi(arg)
	if err != nil {
		fail("%v", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		fail("setrlimit: %v", err)
	}
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		fail("NewManager: %v", err)
	}
	bufs := make([]*spool.Buffer, n)
	for i := range bufs {
		b, err := m.NewBuffer()
		if err != nil {
			fail("NewBuffer %d: %v", i, err)
		}
		if _, err := b.Write([]byte(strings.Repeat(strconv.Itoa(i), 40))); err != nil {
			fail("Write %d: %v", i, err)
		}
		if err := b.Rollover(); err != nil {
			fail("Rollover %d: %v", i, err)
		}
		bufs[i] = b
	}
	p := make([]byte, 400)
	for i, b := range bufs {
		want := strings.Repeat(strconv.Itoa(i), 40)
		if k, err := b.ReadAt(p, 0); k != len(want) || err != io.EOF || string(p[:k]) != want {
			fail("buffer %d reads %q, %v", i, p[:k], err)
		}
	}
	st := m.Stats()
	fmt.Printf("ok %d %d\n", st.SpillFiles, st.BuffersOnDisk)
	m.Close()
	os.Exit(0)
}
