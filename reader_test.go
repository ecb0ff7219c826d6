package spool_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/spoolkit/spool"
)

// readerManager returns a Manager with 4 KiB chunks and a budget of 1 MiB.
func readerManager(t *testing.T) *spool.Manager {
	t.Helper()
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 1 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestReaderMatchesSectionReader: a Reader from NewSectionReader reads,
// seeks and ReadAts as io.NewSectionReader of a bytes.Reader of the same
// bytes does (same counts, bytes, offsets and io.EOF), in memory, spilled
// and half promoted back, for random sections, including those past the
// end of the buffer.
func TestReaderMatchesSectionReader(t *testing.T) {
	m := readerManager(t)
	data := randBytes(101, 5*blk+333)
	for _, state := range []string{"memory", "spilled", "mixed"} {
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		switch state {
		case "spilled":
			if err := b.Rollover(); err != nil {
				t.Fatal(err)
			}
		case "mixed":
			if err := b.Rollover(); err != nil {
				t.Fatal(err)
			}
			b.WriteAt(data[blk:2*blk], blk) // back in memory: one block
		}
		rng := rand.New(rand.NewPCG(7, uint64(len(state))))
		for range sized(50, 300, 3000) {
			off := rng.Int64N(int64(len(data)) + 100)
			n := rng.Int64N(int64(len(data)) + 100)
			if rng.IntN(8) == 0 {
				n = math.MaxInt64 - off // to the end, as far as it goes
			}
			got := b.NewSectionReader(off, n)
			want := io.NewSectionReader(bytes.NewReader(data), off, n)
			if got.Size() != want.Size() {
				t.Fatalf("%s: Size(%d, %d) = %d, want %d", state, off, n, got.Size(), want.Size())
			}
			for range 20 {
				switch op := rng.IntN(4); op {
				case 0, 1:
					p := make([]byte, rng.IntN(3*blk))
					q := make([]byte, len(p))
					gn, gerr := got.Read(p)
					wn, werr := want.Read(q)
					if gn > 0 && werr == io.EOF {
						werr = nil // io.SectionReader passes on the io.EOF of a short ReadAt
					}
					if gn != wn || gerr != werr || !bytes.Equal(p[:gn], q[:wn]) {
						t.Fatalf("%s: section (%d, %d): Read(%d) = %d, %v; want %d, %v", state, off, n, len(p), gn, gerr, wn, werr)
					}
				case 2:
					p := make([]byte, rng.IntN(3*blk))
					q := make([]byte, len(p))
					at := rng.Int64N(int64(len(data)) + 10)
					gn, gerr := got.ReadAt(p, at)
					wn, werr := want.ReadAt(q, at)
					if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(p[:gn], q[:wn]) {
						t.Fatalf("%s: section (%d, %d): ReadAt(%d, %d) = %d, %v; want %d, %v", state, off, n, len(p), at, gn, gerr, wn, werr)
					}
				case 3:
					whence := rng.IntN(3)
					to := rng.Int64N(int64(len(data))) - int64(len(data))/2
					gp, gerr := got.Seek(to, whence)
					wp, werr := want.Seek(to, whence)
					if (gerr == nil) != (werr == nil) || (gerr == nil && gp != wp) {
						t.Fatalf("%s: section (%d, %d): Seek(%d, %d) = %d, %v; want %d, %v", state, off, n, to, whence, gp, gerr, wp, werr)
					}
					if gerr != nil && !errors.Is(gerr, spool.ErrNegativeOffset) && !errors.Is(gerr, spool.ErrTooLarge) {
						t.Fatalf("%s: Seek out of range: %v, want ErrNegativeOffset or ErrTooLarge", state, gerr)
					}
				}
			}
			// The rest, by WriteTo.
			var gw, ww bytes.Buffer
			gn, gerr := got.WriteTo(&gw)
			wn, werr := io.Copy(&ww, want)
			if gn != wn || gerr != nil || werr != nil || !bytes.Equal(gw.Bytes(), ww.Bytes()) {
				t.Fatalf("%s: section (%d, %d): WriteTo = %d, %v; want %d, %v", state, off, n, gn, gerr, wn, werr)
			}
		}
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != int64(len(data)) {
			t.Fatalf("%s: the Readers moved the buffer's offset to %d", state, pos)
		}
		b.Close()
	}
}

// TestReaderIndependent: Readers of one buffer have offsets of their own,
// see writes made after they were created, keep reading across a
// rollover, and return ErrClosed once the buffer is closed.
func TestReaderIndependent(t *testing.T) {
	m := readerManager(t)
	b, _ := m.NewBuffer()
	b.WriteString("hello, world")
	r1, r2 := b.NewReader(), b.NewReader()
	p := make([]byte, 5)
	if n, err := r1.Read(p); n != 5 || err != nil || string(p) != "hello" {
		t.Fatalf("r1.Read = %d, %v, %q", n, err, p)
	}
	if n, err := r2.Read(p[:2]); n != 2 || err != nil || string(p[:2]) != "he" {
		t.Fatalf("r2.Read = %d, %v, %q", n, err, p[:2])
	}
	b.WriteString("!!") // the buffer's offset was at its end
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r1)
	if err != nil || string(rest) != ", world!!" {
		t.Fatalf("r1 after a write and a rollover: %q, %v", rest, err)
	}
	if r1.Size() != 14 {
		t.Errorf("NewReader's Size = %d, want the buffer's, 14", r1.Size())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Read(p); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if _, err := r2.WriteTo(io.Discard); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want ErrClosed", err)
	}
}

// TestReaderInvalid: a nil or zero Reader, and sections with negative
// bounds or bounds that overflow, return errors and do not panic.
func TestReaderInvalid(t *testing.T) {
	var nilR *spool.Reader
	var zero spool.Reader
	var zb spool.Buffer
	for name, r := range map[string]*spool.Reader{"nil": nilR, "zero": &zero, "zero Buffer": zb.NewReader()} {
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("%s: Read = %v", name, err)
		}
		if _, err := r.ReadAt(make([]byte, 1), 0); !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("%s: ReadAt = %v", name, err)
		}
		if _, err := r.Seek(0, io.SeekStart); !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("%s: Seek = %v", name, err)
		}
		if _, err := r.WriteTo(io.Discard); !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("%s: WriteTo = %v", name, err)
		}
		if r.Size() != 0 {
			t.Errorf("%s: Size = %d", name, r.Size())
		}
	}
	m := readerManager(t)
	b, _ := m.NewBuffer()
	b.WriteString("abc")
	for _, c := range []struct {
		off, n int64
		want   error
	}{{-1, 2, spool.ErrNegativeOffset}, {0, -2, spool.ErrNegativeOffset}, {math.MaxInt64, 2, spool.ErrTooLarge}} {
		r := b.NewSectionReader(c.off, c.n)
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, c.want) {
			t.Errorf("NewSectionReader(%d, %d).Read = %v, want %v", c.off, c.n, err, c.want)
		}
		if _, err := r.WriteTo(io.Discard); !errors.Is(err, c.want) {
			t.Errorf("NewSectionReader(%d, %d).WriteTo = %v, want %v", c.off, c.n, err, c.want)
		}
	}
	r := b.NewReader()
	if _, err := r.Seek(0, 7); !errors.Is(err, spool.ErrInvalidWhence) {
		t.Errorf("Seek whence 7 = %v", err)
	}
	r.Seek(math.MaxInt64, io.SeekStart)
	if _, err := r.Seek(1, io.SeekCurrent); !errors.Is(err, spool.ErrTooLarge) {
		t.Errorf("Seek past MaxInt64 = %v", err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read at MaxInt64 = %d, %v; want 0, EOF", n, err)
	}
}

// TestReaderWriteToConnZeroCopy: a section Reader's WriteTo of a spilled
// buffer to a TCP connection sends exactly its section, from its offset,
// by the kernel's zero-copy path, and leaves the buffer's offset alone;
// many Readers send one buffer at once, as downloads of one cached blob.
func TestReaderWriteToConnZeroCopy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := readerManager(t)
	data := randBytes(102, 40*blk+77)
	b := spillInto(t, m, data)
	b.Seek(5, io.SeekStart)
	const readers = 8
	var served sync.WaitGroup
	served.Add(readers)
	go func() {
		for range readers {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
				served.Add(-readers)
				return
			}
			go func() {
				defer served.Done()
				defer c.Close()
				var hdr [2]byte // which section this connection carries
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					t.Error(err)
					return
				}
				p, _ := io.ReadAll(c)
				off, n := int(hdr[0])*blk+int(hdr[1]), 3*blk*int(hdr[0]+1)
				want := data[min(off, len(data)):min(off+n, len(data))]
				want = want[min(100, len(want)):] // the Reader was seeked 100 bytes in
				if !bytes.Equal(p, want) {
					t.Errorf("section %d: received %d bytes, want %d (intact: %v)", hdr[0], len(p), len(want), bytes.Equal(p, want))
				}
			}()
		}
	}()
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Write([]byte{byte(i), byte(i * 3)})
			off, n := int64(i*blk+i*3), int64(3*blk*(i+1))
			r := b.NewSectionReader(off, n)
			r.Seek(100, io.SeekStart)
			got, err := r.WriteTo(c)
			if want := max(0, min(n, int64(len(data))-off)-100); err != nil || got != want {
				t.Errorf("reader %d: WriteTo = %d, %v; want %d", i, got, err, want)
			}
			if pos, _ := r.Seek(0, io.SeekCurrent); pos != 100+got {
				t.Errorf("reader %d: offset after WriteTo = %d, want %d", i, pos, 100+got)
			}
		}()
	}
	wg.Wait()
	served.Wait()
	if zc := m.Stats().ZeroCopyBytes; zc == 0 {
		t.Error("ZeroCopyBytes = 0: the Readers copied through user space")
	}
	if pos, _ := b.Seek(0, io.SeekCurrent); pos != 5 {
		t.Errorf("the buffer's offset moved to %d", pos)
	}
}

// TestReadersBesideWriters: Readers read a buffer while writers overwrite
// it block by block, one generation after another, and rolls it over;
// every block a Read returns is of one generation (each WriteAt is atomic,
// and so is each Read), never a mix or a byte from elsewhere. Run with
// -race.
func TestReadersBesideWriters(t *testing.T) {
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 64 << 10, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const size = 16 * blk
	b, _ := m.NewBuffer()
	b.Write(bytes.Repeat([]byte{1}, size))
	var writer, readers sync.WaitGroup
	stop := make(chan struct{})
	writer.Add(1)
	go func() { // generations 2, 3, ... written block by block, rolled over
		defer writer.Done()
		for g := byte(2); ; g++ {
			select {
			case <-stop:
				return
			default:
			}
			if g == 0 {
				g = 1
			}
			for off := 0; off < size; off += blk {
				b.WriteAt(bytes.Repeat([]byte{g}, blk), int64(off))
			}
			if g%3 == 0 {
				b.Rollover()
			}
		}
	}()
	for i := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			r := b.NewReader()
			p := make([]byte, 1000+i*777)
			for range sized(100, 500, 5000) {
				start, _ := r.Seek(0, io.SeekCurrent)
				n, err := r.Read(p)
				if err == io.EOF {
					r.Seek(0, io.SeekStart)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for j := 0; j < n; {
					k := min(n, j+blk-int(start+int64(j))%blk) // the end of this block in p
					for _, c := range p[j:k] {
						if c != p[j] || c == 0 {
							t.Errorf("reader %d: block at %d mixes generations %d and %d", i, start+int64(j), p[j], c)
							return
						}
					}
					j = k
				}
			}
		}()
	}
	readers.Wait()
	close(stop)
	writer.Wait()
}

// TestReadRuneUnread: ReadRune decodes UTF-8 across chunk and disk
// boundaries as utf8.DecodeRune does, and UnreadRune and UnreadByte follow
// bytes.Buffer's rules: UnreadRune only right after a ReadRune, UnreadByte
// only right after a read that read a byte, neither after a write, a seek,
// or another unread.
func TestReadRuneUnread(t *testing.T) {
	m := readerManager(t)
	for _, spill := range []bool{false, true} {
		b, _ := m.NewBuffer()
		// Runes of 1 to 4 bytes, an invalid byte, and a 3-byte rune
		// straddling the first chunk boundary.
		text := bytes.Repeat([]byte("a"), blk-1)
		text = append(text, "€ßx\xff😀z"...)
		b.Write(text)
		if spill {
			if err := b.Rollover(); err != nil {
				t.Fatal(err)
			}
		}
		b.Seek(0, io.SeekStart)
		for off := 0; off < len(text); {
			r, size, err := b.ReadRune()
			wr, wsize := utf8.DecodeRune(text[off:])
			if err != nil || r != wr || size != wsize {
				t.Fatalf("spill=%v: ReadRune at %d = %q, %d, %v; want %q, %d", spill, off, r, size, err, wr, wsize)
			}
			off += size
		}
		if _, _, err := b.ReadRune(); err != io.EOF {
			t.Fatalf("ReadRune at the end = %v, want io.EOF", err)
		}
		if err := b.UnreadRune(); !errors.Is(err, spool.ErrUnread) {
			t.Errorf("UnreadRune after a ReadRune at EOF = %v, want ErrUnread", err)
		}
		// Back over the last rune, 'z', then the emoji: only one UnreadRune
		// in a row.
		b.Seek(-5, io.SeekEnd)
		if r, size, _ := b.ReadRune(); r != '😀' || size != 4 {
			t.Fatalf("ReadRune = %q, %d", r, size)
		}
		if err := b.UnreadRune(); err != nil {
			t.Fatal(err)
		}
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != int64(len(text)-5) {
			t.Errorf("offset after UnreadRune = %d, want %d", pos, len(text)-5)
		}
		if err := b.UnreadRune(); !errors.Is(err, spool.ErrUnread) {
			t.Errorf("second UnreadRune = %v, want ErrUnread", err)
		}
		// UnreadByte after ReadRune goes back one byte, not the rune.
		b.ReadRune()
		if err := b.UnreadByte(); err != nil {
			t.Fatal(err)
		}
		if c, _ := b.ReadByte(); c != text[len(text)-2] {
			t.Errorf("ReadByte after UnreadByte = %#x, want %#x", c, text[len(text)-2])
		}
		if err := b.UnreadByte(); err != nil {
			t.Errorf("UnreadByte after ReadByte = %v", err)
		}
		if err := b.UnreadByte(); !errors.Is(err, spool.ErrUnread) {
			t.Errorf("second UnreadByte = %v, want ErrUnread", err)
		}
		// Operations that move the offset or change the buffer forbid it.
		for name, op := range map[string]func(){
			"Write":    func() { b.WriteAt([]byte("a"), 0) },
			"Seek":     func() { b.Seek(0, io.SeekCurrent) },
			"Truncate": func() { b.Truncate(b.Size()) },
			"WriteTo":  func() { b.WriteTo(io.Discard) },
		} {
			b.Seek(0, io.SeekStart)
			b.ReadRune()
			op()
			if err := b.UnreadRune(); !errors.Is(err, spool.ErrUnread) {
				t.Errorf("UnreadRune after %s = %v", name, err)
			}
			if err := b.UnreadByte(); !errors.Is(err, spool.ErrUnread) {
				t.Errorf("UnreadByte after %s = %v", name, err)
			}
		}
		// A Read of nothing, or ReadAt (which leaves the offset alone).
		b.Seek(0, io.SeekEnd)
		b.Read(make([]byte, 10))
		if err := b.UnreadByte(); !errors.Is(err, spool.ErrUnread) {
			t.Errorf("UnreadByte after a Read at the end = %v", err)
		}
		b.Seek(0, io.SeekStart)
		b.ReadRune()
		b.ReadAt(make([]byte, 10), 100)
		if err := b.UnreadRune(); err != nil {
			t.Errorf("UnreadRune after a ReadAt = %v: ReadAt does not use the offset", err)
		}
		// A rollover by the budget (for another buffer) leaves the offset,
		// and the unread, alone.
		b.ReadRune()
		other, _ := m.NewBuffer()
		spool.ForceEvict(other)
		if !b.OnDisk() {
			t.Error("the budget did not roll the buffer over")
		}
		other.Close()
		if err := b.UnreadRune(); err != nil {
			t.Errorf("UnreadRune after the budget rolled the buffer over = %v", err)
		}
		b.Close()
		if _, _, err := b.ReadRune(); !errors.Is(err, spool.ErrClosed) {
			t.Errorf("ReadRune after Close = %v", err)
		}
		if err := b.UnreadRune(); !errors.Is(err, spool.ErrClosed) {
			t.Errorf("UnreadRune after Close = %v", err)
		}
	}
}

// TestClosed: Closed reports Close, the Manager's Close, and a nil or zero
// Buffer.
func TestClosed(t *testing.T) {
	m, err := spool.NewManager(spool.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := m.NewBuffer()
	b2, _ := m.NewBuffer()
	if b1.Closed() || b2.Closed() {
		t.Fatal("a new buffer reports Closed")
	}
	b1.Close()
	if !b1.Closed() || b2.Closed() {
		t.Fatal("Closed after closing b1")
	}
	m.Close()
	if !b2.Closed() {
		t.Error("a buffer of a closed Manager is not Closed")
	}
	var nilB *spool.Buffer
	var zero spool.Buffer
	if !nilB.Closed() || !zero.Closed() {
		t.Error("a nil or zero Buffer is not Closed")
	}
}
