package spool_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/spoolkit/spool"
)

// FuzzBuffer decodes its input into a sequence of operations on three
// buffers of a Manager with a budget of four 4 KiB chunks, runs them, and
// compares every result with a plain in-memory model. After every step it
// checks the budget invariant and each buffer's size.
//
// Input: byte 0 selects the configuration (bit 0: EncryptSpill, bit 1:
// LeastRecentlyUsed, bit 2: room for a read window, bit 3: 16 KiB chunks,
// bit 4: one spill file shared by the three buffers); then each operation
// is an opcode byte followed by its arguments.
func FuzzBuffer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x10, 0x20, 7, 0, 0, 0, 1, 0, 9, 1})
	f.Add([]byte{1, 1, 1, 0xff, 0x40, 5, 2, 0x30, 0x00, 8, 9, 0, 0x20, 0x10, 4, 0, 0x50})
	f.Add([]byte{2, 0, 0, 0x80, 0x80, 0x10, 1, 0x80, 0x80, 0x11, 2, 0x80, 0x80, 6, 3, 0, 0x40, 0x10})
	f.Add([]byte{16, 0x06, 0x16, 0x26, 0x00, 0x40, 0x10, 0x11, 0x20, 0x30, 0x08, 0x15, 0x10, 0x00, 0x21, 0x30, 0x10, 0x06, 0x28})
	f.Add([]byte{8, 0, 0, 0x03, 0x10, 0, 0, 0x10, 0x20, 1, 0x30, 0x00, 0x01, 0x05, 5, 0x10, 0x00, 0, 0x40, 0x00, 10, 0x20, 0x00, 0x00, 0x10})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		opts := spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: t.TempDir(), EncryptSpill: in[0]&1 != 0}
		if in[0]&2 != 0 {
			opts.Policy = spool.LeastRecentlyUsed
		}
		if in[0]&4 != 0 {
			// Room for a read window (a chunk) besides the chunks: small
			// reads of spilled buffers go through windows, which writes
			// take back.
			opts.MemoryBudget = 5 * 4096
		}
		if in[0]&16 != 0 {
			// One spill file for the three buffers: they share its
			// frames and reuse each other's freed extents.
			opts.MaxSpillFiles = 1
		}
		if in[0]&8 != 0 {
			// 16 KiB chunks: slots hold size classes from 256 bytes to
			// 16 KiB, grown and cut as buffers change.
			opts.ChunkSize = 16 << 10
			opts.MemoryBudget += 3 * 16 << 10
		}
		m, err := spool.NewManager(opts)
		if err != nil {
			t.Fatal(err)
		}
		spool.SetPoison(m, 0xEE)
		fz := &fuzzer{t: t, m: m, in: in[1:]}
		for i := range fz.bufs {
			fz.bufs[i], _ = m.NewBuffer()
		}
		for step := 0; len(fz.in) > 0 && step < 400; step++ {
			fz.step(step)
			st := m.Stats()
			if st.MemoryInUse < 0 || st.MemoryInUse > st.MemoryBudget {
				t.Fatalf("step %d: MemoryInUse %d outside [0, %d]", step, st.MemoryInUse, st.MemoryBudget)
			}
			// Memory follows size: at most 1.25 times the bytes up to each
			// buffer's end, and a class of 256 bytes per slot.
			var bound int64
			for i := range fz.md {
				n := int64(len(fz.md[i].data))
				bound += n + n/4 + 256*(n/int64(opts.ChunkSize)+1)
			}
			if mem := st.MemoryInUse - int64(st.ReadWindows)*int64(opts.ChunkSize); mem > bound {
				t.Fatalf("step %d: buffers of %d, %d and %d bytes hold %d bytes of memory", step, len(fz.md[0].data), len(fz.md[1].data), len(fz.md[2].data), mem)
			}
			if err := spool.CheckHolding(m); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			for i, b := range fz.bufs {
				if got := b.Size(); got != int64(len(fz.md[i].data)) {
					t.Fatalf("step %d: buffer %d Size %d, model %d", step, i, got, len(fz.md[i].data))
				}
			}
		}
		for i := range fz.bufs {
			fz.checkAll(i)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.MemoryInUse != 0 || st.DiskInUse != 0 {
			t.Fatalf("after Close: %+v", st)
		}
	})
}

type fuzzer struct {
	t    *testing.T
	m    *spool.Manager
	in   []byte
	bufs [3]*spool.Buffer
	md   [3]model
}

func (fz *fuzzer) byte() byte {
	if len(fz.in) == 0 {
		return 0
	}
	c := fz.in[0]
	fz.in = fz.in[1:]
	return c
}

// offset decodes an offset below 40 KiB: ten chunks, enough to cross the
// budget, chunk and checksum-block boundaries.
func (fz *fuzzer) offset() int64 {
	return (int64(fz.byte())<<8 | int64(fz.byte())) % (40 << 10)
}

func (fz *fuzzer) length() int {
	return int(fz.byte())<<6 | int(fz.byte()&63) // up to 16 KiB
}

// maxFuzzSize bounds a buffer's size in FuzzBuffer. Seeks past the end
// followed by writes could otherwise grow a buffer by 36 KiB a step, to
// about 14 MiB in 400 steps; such inputs took 2 s each (mostly copying in
// WriteTo), and minimizing one stalled the fuzzer for minutes. 160 KiB is
// ten times the budget and many checksum blocks: every path stays reachable.
const maxFuzzSize = 160 << 10

// rewind seeks b back to the start when writing n bytes at the current
// offset would take it past maxFuzzSize.
func (fz *fuzzer) rewind(b *spool.Buffer, md *model, n int) {
	if md.off+int64(n) <= maxFuzzSize {
		return
	}
	if pos, err := b.Seek(0, io.SeekStart); pos != 0 || err != nil {
		fz.t.Fatalf("Seek(0, SeekStart) = %d, %v", pos, err)
	}
	md.off = 0
}

func payload(step, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(step*31+i*7) | 1
	}
	return p
}

func sameErr(got, want error) bool {
	if want == nil || want == io.EOF {
		return got == want
	}
	return errors.Is(got, want)
}

func (fz *fuzzer) step(step int) {
	t := fz.t
	op := fz.byte()
	i := int(op>>4) % len(fz.bufs)
	b, md := fz.bufs[i], &fz.md[i]
	switch op % 11 {
	case 0: // Write
		p := payload(step, fz.length())
		fz.rewind(b, md, len(p))
		n, err := b.Write(p)
		if n != len(p) || err != nil {
			t.Fatalf("step %d: Write(%d) = %d, %v", step, len(p), n, err)
		}
		md.writeAt(p, md.off)
		md.off += int64(n)
	case 1: // WriteAt
		p := payload(step, fz.length())
		off := fz.offset()
		n, err := b.WriteAt(p, off)
		if n != len(p) || err != nil {
			t.Fatalf("step %d: WriteAt(%d, %d) = %d, %v", step, len(p), off, n, err)
		}
		md.writeAt(p, off)
	case 2: // Read
		p := make([]byte, fz.length())
		n, err := b.Read(p)
		want, werr := md.readAt(len(p), md.off)
		if len(p) == 0 {
			want, werr = nil, nil
		} else if werr == io.EOF && len(want) > 0 {
			werr = nil
		}
		if n != len(want) || !sameErr(err, werr) || !bytes.Equal(p[:n], want) {
			t.Fatalf("step %d: Read(%d) at %d = %d, %v; model %d, %v", step, len(p), md.off, n, err, len(want), werr)
		}
		md.off += int64(n)
	case 3: // ReadAt
		p := make([]byte, fz.length())
		off := fz.offset()
		n, err := b.ReadAt(p, off)
		want, werr := md.readAt(len(p), off)
		if len(p) == 0 {
			want, werr = nil, nil
		}
		if n != len(want) || !sameErr(err, werr) || !bytes.Equal(p[:n], want) {
			t.Fatalf("step %d: ReadAt(%d, %d) = %d, %v; model %d, %v", step, len(p), off, n, err, len(want), werr)
		}
	case 4: // Seek
		off := fz.offset()
		whence := int(fz.byte() % 3)
		base := map[int]int64{io.SeekStart: 0, io.SeekCurrent: md.off, io.SeekEnd: int64(len(md.data))}[whence]
		delta := off - 20<<10 // may go negative
		pos, err := b.Seek(delta, whence)
		if want := base + delta; want < 0 {
			if !errors.Is(err, spool.ErrNegativeOffset) {
				t.Fatalf("step %d: Seek to %d = %d, %v; want ErrNegativeOffset", step, want, pos, err)
			}
		} else {
			if pos != want || err != nil {
				t.Fatalf("step %d: Seek = %d, %v; want %d", step, pos, err, want)
			}
			md.off = want
		}
	case 5: // Truncate
		size := fz.offset()
		if err := b.Truncate(size); err != nil {
			t.Fatalf("step %d: Truncate(%d) = %v", step, size, err)
		}
		md.truncate(size)
	case 6: // Rollover
		if err := b.Rollover(); err != nil {
			t.Fatalf("step %d: Rollover = %v", step, err)
		}
		if !b.OnDisk() {
			t.Fatalf("step %d: not on disk after Rollover", step)
		}
	case 7: // forced eviction of the others
		spool.ForceEvict(b)
	case 8: // Close and replace
		fz.checkAll(i)
		if err := b.Close(); err != nil {
			t.Fatalf("step %d: Close = %v", step, err)
		}
		if _, err := b.Write([]byte{1}); !errors.Is(err, spool.ErrClosed) {
			t.Fatalf("step %d: Write after Close = %v", step, err)
		}
		fz.bufs[i], _ = fz.m.NewBuffer()
		fz.md[i] = model{}
	case 9: // WriteString and WriteByte
		s := string(payload(step, int(fz.byte())))
		fz.rewind(b, md, len(s)+1)
		if n, err := b.WriteString(s); n != len(s) || err != nil {
			t.Fatalf("step %d: WriteString = %d, %v", step, n, err)
		}
		md.writeAt([]byte(s), md.off)
		md.off += int64(len(s))
		if err := b.WriteByte('z'); err != nil {
			t.Fatalf("step %d: WriteByte = %v", step, err)
		}
		md.writeAt([]byte{'z'}, md.off)
		md.off++
	case 10: // ReadFrom and WriteTo
		p := payload(step, fz.length())
		fz.rewind(b, md, len(p))
		if n, err := b.ReadFrom(bytes.NewReader(p)); n != int64(len(p)) || err != nil {
			t.Fatalf("step %d: ReadFrom = %d, %v", step, n, err)
		}
		md.writeAt(p, md.off)
		md.off += int64(len(p))
		from := fz.offset()
		b.Seek(from, io.SeekStart)
		md.off = from
		var out bytes.Buffer
		n, err := b.WriteTo(&out)
		want, _ := md.readAt(1<<30, from)
		if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("step %d: WriteTo from %d = %d, %v; model %d bytes", step, from, n, err, len(want))
		}
		md.off += n
	}
}

func (fz *fuzzer) checkAll(i int) {
	fz.t.Helper()
	md := &fz.md[i]
	p := make([]byte, len(md.data)+1)
	n, err := fz.bufs[i].ReadAt(p, 0)
	if n != len(md.data) || err != io.EOF || !bytes.Equal(p[:n], md.data) {
		fz.t.Fatalf("buffer %d: content differs from the model (%d bytes, %v; model %d)", i, n, err, len(md.data))
	}
}
