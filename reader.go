package spool

import (
	"fmt"
	"io"
	"runtime"
)

// A Reader reads a Buffer, or a section of it, from an offset of its own:
// many Readers of one Buffer read it independently of each other and of
// the Buffer's own offset, as many downloads of one cached blob do. Get
// one from Buffer.NewReader or Buffer.NewSectionReader. The zero Reader is
// not usable (its methods return ErrInvalid).
//
// A Reader reads the Buffer as it is at each call: it sees writes made
// after it was created, and stays valid across rollovers and promotions.
// After the Buffer is closed, its methods return ErrClosed. Its WriteTo
// sends spilled blocks to an *os.File, a *net.TCPConn or net/http's
// ResponseWriter without copying them through user space, after checking
// them, as Buffer.WriteTo does.
//
// A Reader is not safe for concurrent use by several goroutines (its
// offset is its own, as a bytes.Reader's); it is safe to use beside other
// Readers and the Buffer's methods.
type Reader struct {
	b    *Buffer
	base int64 // where the section starts in the buffer
	n    int64 // the section's length; -1: to the end of the buffer
	off  int64 // offset in the buffer, from base
}

// Interfaces a *Reader implements.
var (
	_ io.ReadSeeker = (*Reader)(nil)
	_ io.ReaderAt   = (*Reader)(nil)
	_ io.WriterTo   = (*Reader)(nil)
)

// NewReader returns a Reader of b's bytes, from offset 0 to the end of
// the buffer, whatever its size at each read.
func (b *Buffer) NewReader() *Reader { return &Reader{b: b, n: -1} }

// NewSectionReader returns a Reader of the n bytes of b at offset off
// (fewer if the buffer ends before off+n), like io.NewSectionReader. off
// and n must not be negative, and off+n must not overflow; the Reader's
// methods return ErrNegativeOffset or ErrTooLarge otherwise.
func (b *Buffer) NewSectionReader(off, n int64) *Reader {
	return &Reader{b: b, base: off, n: n}
}

// valid reports whether r reads a section that exists.
func (r *Reader) valid() error {
	switch {
	case r == nil || !r.b.valid():
		return ErrInvalid
	case r.base < 0 || r.n < -1:
		return ErrNegativeOffset
	case r.n > 0 && r.base+r.n < r.base:
		return ErrTooLarge
	}
	return nil
}

// limit returns the end of the section in the buffer, or -1 for the end
// of the buffer.
func (r *Reader) limit() int64 {
	if r.n < 0 {
		return -1
	}
	return r.base + r.n
}

// Size returns the length of the section: n for NewSectionReader (the
// bytes the Reader can read at most), the buffer's size for NewReader.
func (r *Reader) Size() int64 {
	if r.valid() != nil {
		return 0
	}
	if r.n >= 0 {
		return r.n
	}
	return r.b.Size()
}

// Read reads up to len(p) bytes from the Reader's offset and advances it.
// At the end of the section it returns 0, io.EOF.
func (r *Reader) Read(p []byte) (int, error) {
	if err := r.valid(); err != nil {
		return 0, err
	}
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off of the section, leaving the
// Reader's offset unchanged. When it reads fewer, it returns the reason:
// io.EOF at the end of the section.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.valid(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, ErrNegativeOffset
	}
	if r.n >= 0 {
		if off >= r.n {
			return 0, io.EOF
		}
		if rem := r.n - off; int64(len(p)) > rem {
			n, err := r.b.ReadAt(p[:rem], r.base+off)
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
	}
	abs := r.base + off
	if abs < off {
		return 0, ErrTooLarge
	}
	return r.b.ReadAt(p, abs)
}

// Seek sets the offset for the next Read or WriteTo: relative to the start
// of the section for io.SeekStart, to the current offset for
// io.SeekCurrent, and to its end (Size) for io.SeekEnd. Seeking past the
// end is allowed, up to the largest offset a buffer can have
// (math.MaxInt64, ErrTooLarge past it); seeking before the start is an
// error (ErrNegativeOffset).
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	if err := r.valid(); err != nil {
		return 0, err
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = r.off
	case io.SeekEnd:
		base = r.Size()
	default:
		return 0, fmt.Errorf("%w: %d", ErrInvalidWhence, whence)
	}
	pos := base + offset
	if (offset > 0 && pos < base) || (offset < 0 && pos > base) || r.base+pos < pos {
		return 0, ErrTooLarge // past the largest offset a buffer can have
	}
	if pos < 0 {
		return 0, ErrNegativeOffset
	}
	r.off = pos
	return pos, nil
}

// WriteTo writes the section's bytes from the Reader's offset to its end
// to w, advancing the offset by the bytes w accepted. Spilled blocks go to
// an *os.File, a *net.TCPConn or net/http's ResponseWriter without copies
// (see Buffer.WriteTo).
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if err := r.valid(); err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(r.b)
	pos := r.base + r.off
	if pos < r.off {
		return 0, ErrTooLarge
	}
	n, err := r.b.s.copyOut(w, cursor{pos: &pos, limit: r.limit()})
	r.off = pos - r.base
	return n, err
}
