package spool

import (
	"io"
	"runtime"
)

// A Buffer is a file-like byte buffer that keeps its data in memory, in
// chunks from its Manager's budget, until it rolls over to a temporary
// file. Get one from Manager.NewBuffer; the zero Buffer is not usable.
//
// Buffer behaves like an *os.File opened for reading and writing: Read,
// Write, Seek, ReadByte, WriteByte, WriteString, ReadFrom and WriteTo share
// one offset; ReadAt and WriteAt leave it alone; writing past the end fills
// the gap with zeros; Truncate shrinks or extends with zeros; Read at the
// end returns io.EOF. A byte that was never written reads as zero.
//
// A Buffer rolls over to disk when Rollover is called, when it would grow
// past Options.BufferThreshold or the whole budget, when a write far past
// its end would leave a hole much larger than its data, when the Manager picks
// it to free memory for another buffer, or when a write to it needs memory
// that cannot be freed. Once on disk it stays on disk, except under the
// LeastFrequentlyUsed policy, which brings hot buffers back into memory
// (promotion). Its spilled blocks live in the Manager's spill arena,
// whose files are anonymous (or unlinked at once), so they vanish when the
// process ends; Close gives their space back.
//
// Disk errors. A Buffer has no sticky error: every operation that needs
// the disk tries it again, so a buffer recovers once space is freed or the
// fault passes. The operation that meets an error returns it, wrapped
// (errors.Is(err, syscall.ENOSPC) works), together with what it did:
// Write and WriteAt report the bytes written, counted on disk in whole
// checksummed blocks; a block whose write failed keeps its former content.
// A rollover stopped by an error leaves every byte where it was readable:
// the chunks not yet copied stay in memory, those copied are on disk and
// their memory is back in the budget, and a rollover that copied nothing
// leaves the buffer entirely in memory, without a file. Spilled data that
// fails its checksum reads as ErrCorrupt, never as other bytes.
//
// All methods are safe for concurrent use; ReadAt calls run in parallel
// with each other. Methods that use the shared offset from several
// goroutines at once see it move in an unspecified interleaving, as with an
// *os.File. After Close, every method returns ErrClosed (Size returns 0 and
// OnDisk false).
//
// A Buffer does not retain the slices passed to its methods. Close it when
// done. A Buffer that becomes unreachable without Close is cleaned up by
// the garbage collector: its memory goes back to the budget, its spill
// file is closed, and Stats.Leaked counts it. Relying on that is a bug
// (memory stays taken until a GC runs), but it cannot drain the budget
// for good.
type Buffer struct {
	s *store
}

// Interfaces a *Buffer implements.
var (
	_ io.ReadWriteSeeker = (*Buffer)(nil)
	_ io.ReaderAt        = (*Buffer)(nil)
	_ io.WriterAt        = (*Buffer)(nil)
	_ io.ReaderFrom      = (*Buffer)(nil)
	_ io.WriterTo        = (*Buffer)(nil)
	_ io.ByteScanner     = (*Buffer)(nil)
	_ io.RuneScanner     = (*Buffer)(nil)
	_ io.ByteWriter      = (*Buffer)(nil)
	_ io.StringWriter    = (*Buffer)(nil)
	_ io.Closer          = (*Buffer)(nil)
)

// Each method keeps its Buffer reachable until it returns (the deferred
// runtime.KeepAlive), so the cleanup cannot close a store under a call in
// progress, such as a ReadFrom between two pieces.

// newBuffer wraps s in a Buffer whose loss without Close releases s. A
// finalizer rather than runtime.AddCleanup: it needs no closure, so
// NewBuffer makes two allocations (Buffer and store), not four.
//
// The runtime keeps the finalizers of a span of memory in a list sorted by
// address, which SetFinalizer walks to add or remove one, and 1,024
// 8-byte handles share an 8 KiB span. With 4,096 small buffers live,
// closing one at random and writing a new one (BenchmarkSmallBufferChurn)
// took 3.7-4.4 µs, half of it in that walk; handles padded to 64 bytes
// (128 to a span) took 2.5-2.7 µs. Not kept: 56 more bytes per Buffer is
// the kind of cost per buffer outside the budget that spool keeps down
// (0.55 MiB at 10,000 buffers, 0.8% of the scale scenario's 67 MiB, by
// arithmetic: not separated from the noise in a run), and
// NewBuffer+Close with 4,096 others live but untouched
// (BenchmarkNewBufferCloseLive) gained nothing: 566-614 ns against
// 609-656 ns padded.
func newBuffer(s *store) *Buffer {
	b := &Buffer{s: s}
	runtime.SetFinalizer(b, (*Buffer).finalize)
	return b
}

func (b *Buffer) finalize() { b.s.leaked() }

// valid reports whether b is a Buffer from Manager.NewBuffer: not nil, and
// not a zero Buffer.
func (b *Buffer) valid() bool { return b != nil && b.s != nil }

// ID returns the buffer's identifier, unique within its Manager, as used
// in SpillEvent.
func (b *Buffer) ID() uint64 {
	if !b.valid() {
		return 0
	}
	defer runtime.KeepAlive(b)
	return b.s.ID()
}

// Write writes p at the offset and advances the offset by the bytes
// written. It returns a non-nil error when n < len(p).
func (b *Buffer) Write(p []byte) (int, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.writeWait(p)
}

// WriteString is like Write, without copying s to a byte slice.
func (b *Buffer) WriteString(s string) (int, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.writeStringWait(s)
}

// WriteByte writes one byte at the offset and advances it.
func (b *Buffer) WriteByte(c byte) error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.writeByteWait(c)
}

// WriteAt writes p at offset off, leaving the offset unchanged. Writing
// past the end extends the buffer, filling any gap with zeros.
func (b *Buffer) WriteAt(p []byte, off int64) (int, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.writeAtWait(p, off)
}

// Read reads up to len(p) bytes from the offset and advances it. At the
// end of the buffer it returns 0, io.EOF.
func (b *Buffer) Read(p []byte) (int, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.Read(p)
}

// ReadByte reads one byte at the offset and advances it. At the end of
// the buffer it returns io.EOF.
func (b *Buffer) ReadByte() (byte, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.ReadByte()
}

// ReadRune reads one UTF-8 encoded rune at the offset and advances it by
// its size. An invalid encoding reads as utf8.RuneError of size 1. At the
// end of the buffer it returns io.EOF.
func (b *Buffer) ReadRune() (r rune, size int, err error) {
	if !b.valid() {
		return 0, 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.ReadRune()
}

// UnreadRune moves the offset back over the rune the last ReadRune read.
// It returns ErrUnread unless the last operation that used the offset (or
// changed the buffer) was a ReadRune that read one.
func (b *Buffer) UnreadRune() error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.UnreadRune()
}

// UnreadByte moves the offset back one byte. It returns ErrUnread unless
// the last operation that used the offset (or changed the buffer) was a
// read that read at least one byte.
func (b *Buffer) UnreadByte() error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.UnreadByte()
}

// Closed reports whether the buffer was closed, by Close or by its
// Manager's Close. A nil or zero Buffer reports true.
func (b *Buffer) Closed() bool {
	if !b.valid() {
		return true
	}
	defer runtime.KeepAlive(b)
	return b.s.Closed()
}

// ReadAt reads len(p) bytes at offset off, leaving the offset unchanged.
// When it reads fewer, it returns the reason: io.EOF at the end of the
// buffer. ReadAt calls may run in parallel.
func (b *Buffer) ReadAt(p []byte, off int64) (int, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.ReadAt(p, off)
}

// Seek sets the offset for the next Read or Write: offset relative to the
// start for io.SeekStart, to the current offset for io.SeekCurrent, and to
// the end for io.SeekEnd. It returns the new offset. Seeking past the end
// is allowed; seeking before the start is an error (ErrNegativeOffset).
func (b *Buffer) Seek(offset int64, whence int) (int64, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.Seek(offset, whence)
}

// Size returns the buffer's size in bytes, or 0 after Close.
func (b *Buffer) Size() int64 {
	if !b.valid() {
		return 0
	}
	defer runtime.KeepAlive(b)
	return b.s.Size()
}

// OnDisk reports whether the buffer has rolled over to a file. After a
// rollover that failed part way (see Rollover), part of the data may still
// be in memory.
func (b *Buffer) OnDisk() bool {
	if !b.valid() {
		return false
	}
	defer runtime.KeepAlive(b)
	return b.s.OnDisk()
}

// Truncate changes the buffer's size. Shrinking gives back the memory and
// disk past the new end. Growing adds a hole that reads as zeros: it takes
// no memory and no disk budget, whatever its size, and never rolls the
// buffer over, so it cannot fail for want of memory, disk or spill files;
// writes into the hole are charged as they fill it, and decide where the
// buffer lives like any write. The offset is left unchanged. The errors
// are ErrClosed, ErrNegativeSize and a disk error when shrinking a spilled
// buffer.
func (b *Buffer) Truncate(size int64) error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.Truncate(size)
}

// Rollover moves the buffer's data to disk now, if it is not there
// already. Memory is given back chunk by chunk as each chunk reaches the
// file, so memory use falls during a rollover and never rises. If a disk
// error stops it part way, Rollover returns the error (wrapped, so
// errors.Is(err, syscall.ENOSPC) works); every byte stays readable, from
// the file or from memory, and the buffer stays usable.
func (b *Buffer) Rollover() error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.rolloverWait()
}

// ReserveDisk sets disk budget aside for n more bytes of the buffer's
// data before they are written: an upload that knows its length (an HTTP
// request's ContentLength) reserves it first, before it holds any disk,
// and then writes that many bytes without waiting for disk or failing for
// want of it. The room set aside is n rounded up to whole blocks, one
// block more and two of the spill arena's granules. The buffer's writes,
// rollovers and evictions spend it before they charge the budget; while
// any is left, a block on disk that grows by appends takes a whole
// block's extent at once rather than moving to larger ones as it grows,
// so that n bytes appended fit what was set aside. Writes past the n bytes,
// or rewriting blocks already on disk, need room as any write does. What
// is left is given back by Close; it counts in Stats.DiskInUse meanwhile.
//
// A buffer from NewBufferContext that holds no disk yet (no data on disk,
// no room set aside) waits in line for the room while its context allows,
// as its writes would; it is served after the buffers part way through
// their data. A buffer that already holds disk does not wait, nor does
// one from NewBuffer: it takes the room at once or not at all, since
// waiting while holding could wait for itself, or for another that waits
// for it. Freed space the spill files still hold is given back first. The
// errors wrap ErrDiskBudget when the room is not there (or is more than
// the whole disk budget, or the disk budget is lowered below it while the
// buffer waits), and ErrClosed or ErrNegativeSize. With no DiskBudget the
// reservation succeeds, and only counts, up to math.MaxInt64 in all.
func (b *Buffer) ReserveDisk(n int64) error {
	if !b.valid() {
		return ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.reserveDisk(n)
}

// ReadFrom reads from r until io.EOF and writes what it read at the offset,
// advancing it. It returns the number of bytes written and the first error
// other than io.EOF. What each Read returns is written before the next
// Read, like *os.File's ReadFrom: Size and ReadAt see it, and the buffer
// rolls over at Options.BufferThreshold, as the data arrives. r.Read
// fills a stage taken from the budget, which starts at 1 KiB and doubles,
// while the budget has room, each time a Read fills it, up to a chunk; a
// whole chunk read at the end of a buffer in memory becomes the buffer's
// without a copy. The buffer is locked only while each piece is written,
// never while r.Read runs.
func (b *Buffer) ReadFrom(r io.Reader) (int64, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.ReadFrom(r)
}

// WriteTo writes the buffer's bytes from the offset to the end to w,
// advancing the offset by the bytes w accepted. Pieces go through a stage
// taken from the budget's free part (up to a chunk), or a 1 KiB spare if
// it has none. The buffer is locked only while each piece is copied out (or, for spilled bytes the kernel sends
// to an *os.File or *net.TCPConn without copies, checked), never while
// w.Write or the kernel's send runs. A write racing with WriteTo may thus
// be sent in part, as with an *os.File.
func (b *Buffer) WriteTo(w io.Writer) (int64, error) {
	if !b.valid() {
		return 0, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.WriteTo(w)
}

// Close gives back the buffer's memory and its space in the spill arena.
// Later calls of any method return ErrClosed. It returns ErrClosed if the
// buffer was closed already, and ErrInvalid for a nil or zero Buffer.
func (b *Buffer) Close() error {
	if !b.valid() {
		return ErrInvalid
	}
	runtime.SetFinalizer(b, nil)
	return b.s.Close()
}
