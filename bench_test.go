package spool_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/spoolkit/spool"
)

// Benchmarks come in pairs: spool and the baseline it is measured
// against, in the same run. Compare them with benchstat or by eye; the
// README quotes the ratios.

const (
	memTotal   = 64 << 20  // bytes written and read per op, in memory
	spillTotal = 256 << 20 // bytes written and read per op, on disk
	piece      = 64 << 10  // size of each Write and Read
)

func pieceOf(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}

// writeRead writes total bytes to rw in pieces of p, seeks back to the
// start if rw is an io.Seeker, and reads them back in pieces of len(q).
func writeRead(b *testing.B, rw io.ReadWriter, p, q []byte, total int) {
	for n := 0; n < total; n += len(p) {
		if _, err := rw.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	if s, ok := rw.(io.Seeker); ok {
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
	}
	for n := 0; n < total; {
		k, err := rw.Read(q)
		if err != nil {
			b.Fatal(err)
		}
		n += k
	}
}

// BenchmarkWriteRead writes 64 MiB in 64 KiB pieces and reads it back, in
// memory: spool against a reused bytes.Buffer.
func BenchmarkWriteRead(b *testing.B) {
	p, q := pieceOf(piece), make([]byte, piece)
	b.Run("bytes.Buffer", func(b *testing.B) {
		b.SetBytes(memTotal)
		b.ReportAllocs()
		var buf bytes.Buffer
		buf.Grow(memTotal)
		writeRead(b, &buf, p, q, memTotal) // warm up, untimed
		for b.Loop() {
			buf.Reset()
			writeRead(b, &buf, p, q, memTotal)
		}
	})
	b.Run("bytes.Buffer+mutex", func(b *testing.B) {
		// The same with a mutex around each call: what any buffer that is
		// safe for concurrent use pays at least.
		var buf lockedBuffer
		buf.b.Grow(memTotal)
		writeRead(b, &buf, p, q, memTotal) // warm up, untimed
		b.SetBytes(memTotal)
		b.ReportAllocs()
		for b.Loop() {
			buf.b.Reset()
			writeRead(b, &buf, p, q, memTotal)
		}
	})
	b.Run("spool", func(b *testing.B) {
		// Like the bytes.Buffer above, one Buffer is reused: Truncate(0)
		// is its Reset.
		m, buf := memBuffer(b)
		writeRead(b, buf, p, q, memTotal) // warm up the chunk pool, untimed
		b.SetBytes(memTotal)
		b.ReportAllocs()
		for b.Loop() {
			if err := buf.Truncate(0); err != nil {
				b.Fatal(err)
			}
			if _, err := buf.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			writeRead(b, buf, p, q, memTotal)
		}
		if buf.OnDisk() || m.Stats().Spills != 0 {
			b.Fatal("buffer went to disk")
		}
	})
	b.Run("spool-new", func(b *testing.B) {
		// A new Buffer for every op, closed after it.
		m, warm := memBuffer(b)
		writeRead(b, warm, p, q, memTotal) // warm up the chunk pool, untimed
		warm.Close()
		b.SetBytes(memTotal)
		b.ReportAllocs()
		for b.Loop() {
			buf, err := m.NewBuffer()
			if err != nil {
				b.Fatal(err)
			}
			writeRead(b, buf, p, q, memTotal)
			if err := buf.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if m.Stats().Spills != 0 {
			b.Fatal("buffer went to disk")
		}
	})
}

// crcFile is an *os.File that computes the CRC-64/NVME of what passes
// through, the checksum spool keeps for each block it spills.
type crcFile struct {
	f   *os.File
	sum uint64
}

func (c *crcFile) Write(p []byte) (int, error) {
	c.sum = crc64nvme.Update(c.sum, p)
	return c.f.Write(p)
}

func (c *crcFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.sum = crc64nvme.Update(c.sum, p[:n])
	return n, err
}

func (c *crcFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

// lockedBuffer is a bytes.Buffer behind a mutex.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Read(p)
}

// memBuffer returns a Manager whose budget holds memTotal with room to
// spare, and a Buffer of it.
func memBuffer(b *testing.B) (*spool.Manager, *spool.Buffer) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 2 * memTotal, TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	buf, err := m.NewBuffer()
	if err != nil {
		b.Fatal(err)
	}
	return m, buf
}

// BenchmarkSpilledRoundTrip writes 256 MiB in 64 KiB pieces to disk and
// reads it back: a spool Buffer that has rolled over against a raw
// *os.File.
func BenchmarkSpilledRoundTrip(b *testing.B) {
	p, q := pieceOf(piece), make([]byte, piece)
	dir := b.TempDir()
	for _, sum := range []bool{false, true} {
		name := "os.File"
		if sum {
			// The same, computing a CRC-64/NVME of every piece written
			// and read, as spool does to check its spill files.
			name = "os.File+crc64nvme"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(spillTotal)
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.CreateTemp(dir, "raw-*")
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(f.Name())
				var rw io.ReadWriteSeeker = f
				if sum {
					rw = &crcFile{f: f}
				}
				writeRead(b, rw, p, q, spillTotal)
				f.Close()
			}
		})
	}
	for _, encrypt := range []bool{false, true} {
		name := "spool"
		if encrypt {
			name = "spool-encrypted"
		}
		b.Run(name, func(b *testing.B) { spilledRoundTrip(b, dir, encrypt, p, q) })
	}
}

func spilledRoundTrip(b *testing.B, dir string, encrypt bool, p, q []byte) {
	m, err := spool.NewManager(spool.Options{TempDir: dir, EncryptSpill: encrypt})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.SetBytes(spillTotal)
	b.ReportAllocs()
	for b.Loop() {
		buf, err := m.NewBuffer()
		if err != nil {
			b.Fatal(err)
		}
		if err := buf.Rollover(); err != nil {
			b.Fatal(err)
		}
		writeRead(b, buf, p, q, spillTotal)
		buf.Close()
	}
}

// BenchmarkSpilledSmallReads reads 16 MiB of spilled data sequentially in
// small pieces, as a bufio.Reader or bufio.Scanner would: a raw *os.File,
// a spool Buffer (whose read window reads and checks each 64 KiB block
// once), and a spool Buffer whose budget is too small for a window (each
// piece reads and checks its whole block).
func BenchmarkSpilledSmallReads(b *testing.B) {
	const total = 16 << 20
	data := pieceOf(total)
	for _, size := range []int{512, 4 << 10, 32 << 10} {
		p := make([]byte, size)
		b.Run(fmt.Sprintf("os.File/%d", size), func(b *testing.B) {
			f, err := os.CreateTemp(b.TempDir(), "raw-*")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			f.Write(data)
			readAllIn(b, f, p, total)
		})
		for _, window := range []bool{true, false} {
			name := "spool"
			budget := int64(1 << 20)
			if !window {
				name, budget = "spool-no-window", 32<<10
			}
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				m, err := spool.NewManager(spool.Options{ChunkSize: 4 << 10, MemoryBudget: budget, TempDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				buf, _ := m.NewBuffer()
				buf.Write(data)
				if err := buf.Rollover(); err != nil {
					b.Fatal(err)
				}
				readAllIn(b, buf, p, total)
			})
		}
	}
}

// readAllIn reads r from its start to its end in pieces of len(p), b.N times.
func readAllIn(b *testing.B, r io.ReadSeeker, p []byte, total int64) {
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			k, err := r.Read(p)
			n += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if n != total {
			b.Fatalf("read %d bytes of %d", n, total)
		}
	}
}

// BenchmarkNewBufferClose creates and closes an empty buffer.
func BenchmarkNewBufferClose(b *testing.B) { benchNewBufferClose(b, 0) }

// BenchmarkNewBufferCloseLive is BenchmarkNewBufferClose with 4,096
// other buffers live meanwhile, as in a server or cache with many.
func BenchmarkNewBufferCloseLive(b *testing.B) { benchNewBufferClose(b, 4096) }

// benchNewBufferClose creates and closes an empty buffer while live others
// stay open.
func benchNewBufferClose(b *testing.B, live int) {
	m, err := spool.NewManager(spool.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	others := make([]*spool.Buffer, live)
	for i := range others {
		if others[i], err = m.NewBuffer(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf, err := m.NewBuffer()
		if err != nil {
			b.Fatal(err)
		}
		if err := buf.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, buf := range others {
		buf.Close()
	}
}

// BenchmarkSmallBufferChurn keeps 4,096 small buffers (256 B to 9 KiB) in
// memory and, for each op, closes one at random and writes a new one in
// its place: a cache of small blobs in steady state, where the slabs the
// buffers' slices come from keep emptying pages and filling them again.
func BenchmarkSmallBufferChurn(b *testing.B) {
	m, err := spool.NewManager(spool.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	sizes := []int{256, 1000, 3000, 4096, 6000, 9000}
	data := make([]byte, 9000)
	rng := rand.New(rand.NewPCG(1, 2))
	bufs := make([]*spool.Buffer, 4096)
	fill := func(k int) {
		buf, err := m.NewBuffer()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := buf.Write(data[:sizes[rng.IntN(len(sizes))]]); err != nil {
			b.Fatal(err)
		}
		bufs[k] = buf
	}
	for k := range bufs {
		fill(k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		k := rng.IntN(len(bufs))
		if err := bufs[k].Close(); err != nil {
			b.Fatal(err)
		}
		fill(k)
	}
	b.StopTimer()
	if st := m.Stats(); st.Spills != 0 {
		b.Fatalf("%d spills: the buffers should all fit in the budget", st.Spills)
	}
	for _, buf := range bufs {
		buf.Close()
	}
}

// BenchmarkNewBufferCloseParallel is BenchmarkNewBufferClose from all
// cores at once, to show contention on the Manager.
func BenchmarkNewBufferCloseParallel(b *testing.B) {
	m, err := spool.NewManager(spool.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf, err := m.NewBuffer()
			if err != nil {
				b.Error(err)
				return
			}
			buf.Close()
		}
	})
}

// BenchmarkArenaChurn spills buffers of one size into the spill arena and
// closes one at random for each, keeping 1,000 on disk: the cost of
// allocating and freeing extents (and giving freed space back to the
// file system) in steady state, per buffer spilled.
func BenchmarkArenaChurn(b *testing.B) {
	for _, size := range []int{1 << 10, 20 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			m, err := spool.NewManager(spool.Options{TempDir: b.TempDir(), MaxSpillFiles: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			p := pieceOf(size)
			const keep = 1000
			live := make([]*spool.Buffer, 0, keep)
			x := uint64(1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf, err := m.NewBuffer()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := buf.Write(p); err != nil {
					b.Fatal(err)
				}
				if err := buf.Rollover(); err != nil {
					b.Fatal(err)
				}
				if len(live) < keep {
					live = append(live, buf)
					continue
				}
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				i := int(x % keep)
				live[i].Close()
				live[i] = buf
			}
			for _, buf := range live {
				buf.Close()
			}
		})
	}
}
