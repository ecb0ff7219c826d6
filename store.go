package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// store holds the data of one Buffer: its chunks in memory, its spill
// file, its size and offset. The Manager's list of live buffers and its
// eviction work on stores, never on Buffer handles, so that a Buffer the
// program drops can be garbage-collected and its store cleaned up (see
// Buffer). The exported-named methods implement those of Buffer.
type store struct {
	m  *Manager
	id uint64

	lastUse   atomic.Uint64   // Manager clock at the last access
	freq      atomic.Uint64   // access count for LeastFrequentlyUsed (frequency.go)
	lastWrite atomic.Bool     // the last access was a write
	offered   atomic.Bool     // queued for promotion
	offerSize int64           // size when offered; written by the offerer that set offered, read by the promoter after receiving
	mem       atomic.Int64    // bytes of memory held in chunks; changed only by addMem, under mu; read anywhere
	idx       int             // index in m.bufs; guarded by m.mu
	holdIdx   int             // 1 + index in m.holding, 0 if not there; guarded by m.mu
	ctx       context.Context // NewBufferContext: writes wait for disk budget while it allows; set once
	stopWait  func()          // cancels ctx, a child of the caller's: Close ends the buffer's waits; set once
	holdsDisk atomic.Bool     // its spill holds data (spill.addLive)

	// mu protects the following fields. See lock.go for the lock order.
	mu     sync.RWMutex
	closed bool
	size   int64 // logical size in bytes
	// credit is disk budget a wait granted the buffer or ReserveDisk set
	// aside (wait.go), spent by its spill's allocations before they charge
	// the budget; reserved is the part of it ReserveDisk set aside, kept
	// when a wait's unspent room is given back (dropCredit).
	credit, reserved int64
	off              int64 // offset shared by Read, Write and Seek
	// lastRead says what the operation that last held mu for writing
	// read, for UnreadByte and UnreadRune: the size of the rune if it was
	// ReadRune, -1 if it read at least one byte otherwise, 0 if it read
	// nothing (lock resets it).
	lastRead int8
	// making is set while a write makes room for itself (makeRoom),
	// holding the buffer's lock: victim searches pass the buffer by,
	// since its eviction would find it busy. It is atomic, read without
	// mu; it sits here, in lastRead's padding, because one more word
	// would take the store to the next size class of Go's allocator
	// (288 to 320 bytes: 3 MiB more at 100,000 buffers).
	making atomic.Bool
	// chunks[i], if not nil, is slot i: it is authoritative for bytes
	// [i*cs, (i+1)*cs) of the buffer and holds the first len(*chunks[i])
	// of them, a size class (memory.go); the slot's bytes past its slice
	// read as zeros. Only the slice's bytes below size are meaningful
	// (the rest may hold anything and are zeroed before size grows over
	// them). A nil or missing slot reads from file if there is one and as
	// zeros if not. Only slots below size are held: when size shrinks,
	// slots past it are given back, and the last one is cut to the class
	// its bytes below size need.
	chunks []*[]byte
	// file, once created, is where every byte not held in chunks lives;
	// it is never removed before Close. Bytes at or past fileSize read as
	// zero without touching it. fileSize never exceeds size and is at
	// least the extent of everything ever written to file.
	file     *spill
	fileSize int64
	version  uint64       // counts changes of content, for promotion
	pending  []SpillEvent // to deliver to OnSpill after unlock

	// winMu guards win, a checked copy of one block of file (window.go);
	// see lock.go for who takes it, and how.
	winMu sync.Mutex
	win   window
}

// ID implements Buffer.ID.
func (b *store) ID() uint64 { return b.id }

// touch records an access, for the policies: its time, and for
// LeastFrequentlyUsed its count. A run of writes with no read between
// counts once, so that a blob written in many pieces is not taken for a
// hot one.
func (b *store) touch(write bool) {
	m := b.m
	// If no buffer was touched since b was, b is already the most recent
	// and the order of the buffers is unchanged: skip the two atomic
	// read-modify-writes (fences on amd64) of a tick. A buffer worked on
	// alone, the common case of a stream of writes, pays two plain loads.
	if t := m.clock.Load(); b.lastUse.Load() != t {
		b.lastUse.Store(m.clock.Add(1))
	}
	if m.freq == nil {
		return
	}
	if write {
		if b.lastWrite.Swap(true) {
			return
		}
	} else {
		b.lastWrite.Store(false)
		m.adm.record(b.id)
	}
	m.freq.hit(&b.freq)
}

// resident reports whether slot i is held in memory.
func (b *store) resident(i int64) bool {
	return i < int64(len(b.chunks)) && b.chunks[i] != nil
}

// slotLen returns the length of slot i's slice, 0 if it has none.
func (b *store) slotLen(i int64) int {
	if b.resident(i) {
		return len(*b.chunks[i])
	}
	return 0
}

// Write implements Buffer.Write.
func (b *store) Write(p []byte) (n int, err error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, ErrClosed
	}
	n, err = b.writeAt(p, b.off)
	b.off += int64(n)
	return n, err
}

// WriteString implements Buffer.WriteString.
func (b *store) WriteString(s string) (n int, err error) {
	// writeAt only reads from its argument.
	return b.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// WriteByte implements Buffer.WriteByte.
func (b *store) WriteByte(c byte) error {
	p := [1]byte{c}
	_, err := b.Write(p[:])
	return err
}

// WriteAt implements Buffer.WriteAt.
func (b *store) WriteAt(p []byte, off int64) (n int, err error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, ErrClosed
	}
	return b.writeAt(p, off)
}

// Read implements Buffer.Read.
func (b *store) Read(p []byte) (n int, err error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, ErrClosed
	}
	n, err = b.readAt(p, b.off)
	b.off += int64(n)
	if n > 0 {
		b.lastRead = -1
		if err == io.EOF {
			err = nil
		}
	}
	return n, err
}

// ReadRune implements Buffer.ReadRune.
func (b *store) ReadRune() (r rune, size int, err error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, 0, ErrClosed
	}
	var p [utf8.UTFMax]byte
	n, err := b.readAt(p[:], b.off)
	if n == 0 {
		return 0, 0, err
	}
	r, size = utf8.DecodeRune(p[:n])
	b.off += int64(size)
	b.lastRead = int8(size)
	return r, size, nil
}

// UnreadRune implements Buffer.UnreadRune.
func (b *store) UnreadRune() error {
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return ErrClosed
	}
	if b.lastRead <= 0 {
		b.lastRead = 0
		return fmt.Errorf("%w: UnreadRune after no ReadRune", ErrUnread)
	}
	b.off -= int64(b.lastRead)
	b.lastRead = 0
	return nil
}

// UnreadByte implements Buffer.UnreadByte.
func (b *store) UnreadByte() error {
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return ErrClosed
	}
	if b.lastRead == 0 || b.off == 0 {
		return fmt.Errorf("%w: UnreadByte after no read", ErrUnread)
	}
	b.off--
	b.lastRead = 0
	return nil
}

// Closed implements Buffer.Closed.
func (b *store) Closed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// ReadByte implements Buffer.ReadByte.
func (b *store) ReadByte() (byte, error) {
	var p [1]byte
	n, err := b.Read(p[:])
	if n == 1 {
		return p[0], nil
	}
	return 0, err
}

// ReadAt implements Buffer.ReadAt.
func (b *store) ReadAt(p []byte, off int64) (n int, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, ErrClosed
	}
	return b.readAt(p, off)
}

// Seek implements Buffer.Seek.
func (b *store) Seek(offset int64, whence int) (int64, error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, ErrClosed
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = b.off
	case io.SeekEnd:
		base = b.size
	default:
		return 0, fmt.Errorf("%w: %d", ErrInvalidWhence, whence)
	}
	pos := base + offset
	if (offset > 0 && pos < base) || (offset < 0 && pos > base) {
		return 0, ErrTooLarge
	}
	if pos < 0 {
		return 0, ErrNegativeOffset
	}
	b.off = pos
	return pos, nil
}

// Size implements Buffer.Size.
func (b *store) Size() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.size
}

// OnDisk implements Buffer.OnDisk.
func (b *store) OnDisk() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.file != nil
}

// Truncate implements Buffer.Truncate.
func (b *store) Truncate(size int64) error {
	b.lock()
	defer b.unlock()
	if b.closed {
		return ErrClosed
	}
	if size < 0 {
		return ErrNegativeSize
	}
	b.touch(true)
	b.version++
	b.dropWindow()
	old := b.size
	switch {
	case size < old:
		if b.file != nil && b.fileSize > size {
			if err := b.file.Truncate(size); err != nil {
				return fmt.Errorf("spool: truncate: %w", err)
			}
			b.fileSize = size
		}
		keep := size / b.m.cs // slots that stay: ceil(size/cs), without overflow
		if size%b.m.cs != 0 {
			keep++
		}
		b.freeChunks(keep) // also drops their pointers, for the GC
		if keep < int64(len(b.chunks)) {
			b.chunks = b.chunks[:keep]
		}
		if rem := size % b.m.cs; rem != 0 {
			b.cutSlot(keep-1, int(rem))
		}
		b.size = size
	case size > old:
		// A hole: it takes neither memory nor disk, whatever its size, and
		// nothing rolls over. A later write into it is charged, and
		// decides where the buffer lives, like any write.
		b.zeroTail(old, size)
		b.size = size
	}
	return nil
}

// Rollover implements Buffer.Rollover.
func (b *store) Rollover() error {
	b.lock()
	defer b.unlock()
	if b.closed {
		return ErrClosed
	}
	return b.spill(SpillRequested)
}

// Close implements Buffer.Close.
func (b *store) Close() error {
	b.lock()
	if b.closed {
		b.unlock()
		return ErrClosed
	}
	b.closed = true
	if b.stopWait != nil {
		b.stopWait() // a write of the buffer waiting for disk returns ErrClosed
	}
	b.dropWindow()
	b.freeChunks(0)
	b.chunks = nil
	b.closeFile()
	b.m.disk.release(b.credit)
	b.credit, b.reserved = 0, 0
	b.size, b.off = 0, 0
	// Unregister before unlocking, so that whoever sees closed (a
	// concurrent Manager.Close) knows the buffer is gone from the list.
	b.m.unregister(b)
	b.unlock()
	b.m.adm.forget(b.id)
	return nil
}

// leaked releases a store whose Buffer was garbage-collected without
// Close. It runs on the runtime's finalizer goroutine.
func (b *store) leaked() {
	if err := b.Close(); errors.Is(err, ErrClosed) {
		return // closed by Manager.Close meanwhile
	}
	b.m.leaked.Add(1)
	if l := b.m.opts.Logger; l != nil {
		l.Warn("spool: buffer garbage-collected without Close; its memory and disk were released", slog.Uint64("buffer", b.id))
	}
}

// writeAt writes p at off. b.mu is held for writing.
func (b *store) writeAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, ErrNegativeOffset
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := off + int64(len(p))
	if end < off {
		return 0, ErrTooLarge
	}
	b.touch(true)
	b.version++
	b.dropWindow()
	if b.file == nil {
		if end > b.m.memLimit.Load() {
			if err := b.spill(b.growReason(end)); err != nil {
				return 0, err
			}
		} else if b.tooSparse(off, end) {
			if err := b.spill(SpillSparse); err != nil {
				return 0, err
			}
		} else if last, ok, err := b.reserve(off, end); err != nil {
			return 0, err
		} else if ok {
			b.memWrite(p, off, end, last)
			return len(p), nil
		}
	}
	return b.fileWrite(p, off, end)
}

// growReason says why growing to size takes a buffer to disk.
func (b *store) growReason(size int64) SpillReason {
	if t := b.m.opts.BufferThreshold; t > 0 && size > t {
		return SpillThreshold
	}
	return SpillTooLarge
}

// tooSparse reports whether a write of [off, end) would leave the chunk
// table of a buffer in memory far longer than the chunks it would hold: a
// write far past the end, leaving a large hole. The table (8 bytes per
// chunk, holes included) is not counted in the budget, so such a buffer
// goes to disk, where a hole costs nothing; this keeps every table within
// a few times the memory its buffer holds. The write's own chunks count as
// held: a large write is dense, however long it is.
func (b *store) tooSparse(off, end int64) bool {
	cs := b.m.cs
	n := (end-1)/cs + 1 // table entries after the write
	if n <= int64(len(b.chunks)) {
		return false
	}
	held := b.mem.Load()/cs + (end-1)/cs - off/cs + 1
	return n > 4*(held+1)+sparseSlack
}

// sparseSlack is the number of chunk table entries a buffer may have
// beyond 4 per chunk held before a hole sends it to disk.
const sparseSlack = 64

// reserve takes from the budget the memory a write of [off, end) needs
// and reports whether it got it, with the length the write's last slot
// will have (lastSlot). If the budget lacks it, other buffers are rolled
// over; if that is not enough, b itself rolls over and reserve returns
// false (and the error of that rollover, if it failed).
func (b *store) reserve(off, end int64) (lastSlot int, ok bool, err error) {
	cs := b.m.cs
	first, last := off/cs, (end-1)/cs
	var need int64
	for i := first; i < last; i++ { // slots the write fills to their end
		need += cs - int64(b.slotLen(i))
	}
	// The last slot: the class that covers the write. A buffer that is
	// growing (it held memory before this write) takes a larger class if
	// the memory it holds leaves room for one under the 1.25 bound (the
	// memory of the other slots, and the slot's bytes up to the write's
	// end, times 1.25), so that a buffer written in small pieces
	// reallocates its slots in fewer, larger steps as it grows; a buffer
	// written in one piece gets the tightest class.
	cur := b.slotLen(last)
	hi := end - last*cs
	lastSlot = max(cur, b.m.mem.classFor(int(hi)))
	if lastSlot > cur {
		if held := b.mem.Load(); held > 0 {
			others := held - int64(cur) + need
			if room := (others+hi)*5/4 - others; room > int64(lastSlot) {
				// The class at or below a power of two: the slices a
				// growing buffer gives back fall in few classes, which
				// other buffers reuse.
				pow2 := 1 << (bits.Len64(uint64(min(room, cs))) - 1)
				lastSlot = max(lastSlot, b.m.mem.classBelow(pow2))
			}
		}
		need += int64(lastSlot - cur)
	}
	if b.m.budget.tryAcquire(need) {
		return lastSlot, true, nil
	}
	// Under LeastFrequentlyUsed, a writer only displaces buffers no hotter
	// than itself: a stream of cold uploads cannot flush the hot set.
	limit := math.Inf(1)
	if b.m.freq != nil {
		limit = density(b.m.freq.count(&b.freq), b.mem.Load()+need)
	}
	start := time.Now()
	ev, ok := b.makeRoom(need, limit)
	b.m.waitNanos.Add(int64(time.Since(start)))
	b.pending = append(b.pending, ev...)
	if ok {
		return lastSlot, true, nil
	}
	return 0, false, b.spill(SpillBudget)
}

// makeRoom is Manager.makeRoom for a write of b short of need bytes, with
// b marked as making room (store.making, Manager.making) meanwhile, even
// if makeRoom panics. b.mu is held for writing.
func (b *store) makeRoom(need int64, limit float64) ([]SpillEvent, bool) {
	b.making.Store(true)
	b.m.making.Add(1)
	defer func() {
		b.m.making.Add(-1)
		b.making.Store(false)
	}()
	return b.m.makeRoom(need, b, limit, true, false)
}

// memWrite copies p to [off, end) of a buffer without a file, whose memory
// reserve has taken: every slot the write covers becomes a full chunk but
// the last, whose slice becomes lastSlot bytes long.
func (b *store) memWrite(p []byte, off, end int64, lastSlot int) {
	cs := b.m.cs
	old := b.size
	if off > old {
		b.zeroTail(old, off)
	}
	newSize := max(old, end)
	b.growTable(end)
	lastIdx := (end - 1) / cs
	for pos := off; pos < end; {
		i := pos / cs
		start := i * cs
		lo, hi := pos-start, min(cs, end-start)
		want := int(cs)
		if i == lastIdx {
			want = lastSlot
		}
		c := b.ensureSlot(i, int(lo), int(hi), want, old, newSize)
		copy((*c)[lo:hi], p[pos-off:])
		pos = start + hi
	}
	b.size = newSize
}

// ensureSlot makes slot i of a buffer hold a slice of at least want bytes
// (a class, already taken from the budget) before a write of its bytes
// [lo, hi), and returns it. The caller has zeroed the slot's bytes from the
// old size up to lo (zeroTail). A new slice keeps the old one's bytes below
// the old size; the bytes inside the new size that the write does not
// cover and that were holes are zeroed, since the slice, new or recycled,
// may hold stale bytes there.
func (b *store) ensureSlot(i int64, lo, hi, want int, oldSize, newSize int64) *[]byte {
	start := i * b.m.cs
	valid := int(max(0, min(b.m.cs, oldSize-start)))    // slot bytes below the old size
	newValid := int(max(0, min(b.m.cs, newSize-start))) // and below the new size
	c := b.chunks[i]
	if c != nil && len(*c) >= want {
		return c
	}
	nc := b.m.mem.get(want)
	kept := 0 // bytes of the old slice carried over
	if c != nil {
		old := len(*c)
		kept = copy(*nc, (*c)[:min(valid, old)])
		b.m.mem.put(c) // c is not to be used from here on
		b.addMem(int64(want - old))
	} else {
		b.addMem(int64(want))
	}
	b.chunks[i] = nc
	// What lies between the bytes kept and the write, and after the write
	// inside the new size, was a hole (or past the old slice): zeros.
	if lo > kept {
		clear((*nc)[kept:lo])
	}
	if from := max(hi, kept); from < newValid {
		clear((*nc)[from:min(newValid, want)])
	}
	return nc
}

// cutSlot cuts slot i's slice, if any, to the class its first keep bytes
// need, after Truncate shrank the buffer to end inside it, so that the
// memory a buffer holds follows its size down as well as up.
func (b *store) cutSlot(i int64, keep int) {
	if !b.resident(i) {
		return
	}
	c := b.chunks[i]
	want := b.m.mem.classFor(keep)
	if want >= len(*c) {
		return
	}
	nc := b.m.mem.get(want)
	copy(*nc, (*c)[:keep])
	b.chunks[i] = nc
	freed := int64(len(*c) - want)
	b.m.mem.put(c)
	b.addMem(-freed)
	b.m.budget.release(freed)
}

// fileWrite writes p to [off, end) of a buffer that has a file: to the
// chunks still held in memory where there are some, to the file elsewhere.
func (b *store) fileWrite(p []byte, off, end int64) (int, error) {
	cs := b.m.cs
	old := b.size
	if off > old {
		b.zeroTail(old, off)
	}
	n := 0
	var err error
	for pos := off; pos < end; pos = off + int64(n) {
		i := pos / cs
		if b.resident(i) {
			start := i * cs
			lo, hi := int(pos-start), int(min(cs, end-start))
			if c := b.growSlot(i, lo, hi, old, max(old, end)); c != nil {
				n += copy((*c)[lo:hi], p[n:])
				continue
			}
			// No free memory to grow the slot's slice over the write: the
			// slot goes to the file, and the write with it.
			if err = b.flushSlot(i); err != nil {
				err = fmt.Errorf("spool: write: %w", err)
				break
			}
		}
		runEnd := b.runEnd(i, end)
		var w int
		w, err = b.writeFile(p[n:n+int(runEnd-pos)], pos)
		n += w
		if err != nil {
			err = fmt.Errorf("spool: write: %w", err)
			break
		}
	}
	if n > 0 {
		b.size = max(old, off+int64(n))
	}
	return n, err
}

// growSlot returns slot i's slice, grown if needed to cover a write of its
// bytes [lo, hi) with memory that is free in the budget right now, or nil
// if that memory is not free. It does not roll anything over: the caller,
// a buffer with a file, can write to the file instead.
func (b *store) growSlot(i int64, lo, hi int, oldSize, newSize int64) *[]byte {
	cur := len(*b.chunks[i])
	want := cur
	if cur < hi {
		want = b.m.mem.classFor(hi)
		if !b.m.budget.tryAcquire(int64(want - cur)) {
			return nil
		}
	}
	return b.ensureSlot(i, lo, hi, want, oldSize, newSize)
}

// flushSlot writes slot i's bytes below size to the file and gives its
// memory back. On error the slot stays in memory, intact.
func (b *store) flushSlot(i int64) error {
	c := b.chunks[i]
	start := i * b.m.cs
	valid := max(0, min(int64(len(*c)), b.size-start))
	if err := b.writeSlot((*c)[:valid], start); err != nil {
		return err
	}
	b.freeChunk(i)
	return nil
}

// readAt reads into p from off. b.mu is held, for reading at least.
func (b *store) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, ErrNegativeOffset
	}
	if len(p) == 0 {
		return 0, nil
	}
	b.touch(false)
	if off >= b.size {
		return 0, io.EOF
	}
	end := off + min(int64(len(p)), b.size-off)
	cs := b.m.cs
	n, fromFile := 0, 0
	for pos := off; pos < end; pos = off + int64(n) {
		i := pos / cs
		start := i * cs
		if b.resident(i) {
			c := *b.chunks[i]
			lo, hi := pos-start, min(cs, end-start)
			k := 0
			if lo < int64(len(c)) {
				k = copy(p[n:], c[lo:min(hi, int64(len(c)))])
			}
			// The slot's bytes past its slice are zeros.
			clear(p[n+k : n+int(hi-lo)])
			n += int(hi - lo)
			continue
		}
		runEnd := b.runEnd(i, end)
		dst := p[n : n+int(runEnd-pos)]
		r, err := b.readFile(dst, pos)
		n += r
		fromFile += r
		if err != nil {
			return n, fmt.Errorf("spool: read: %w", err)
		}
	}
	b.m.countRead(n, fromFile)
	if fromFile > 0 {
		b.m.promoter.offer(b, b.size)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readFile reads len(p) bytes at off from the spill, if there is one:
// bytes at or past fileSize, or with no file, are zeros. b.mu is held, for
// reading at least.
func (b *store) readFile(p []byte, off int64) (int, error) {
	if b.file == nil || off >= b.fileSize {
		clear(p)
		return len(p), nil
	}
	fp := p[:min(off+int64(len(p)), b.fileSize)-off]
	if len(fp) < int(b.m.cs) {
		// A small read: through the window, which reads and checks each
		// block once for all the small reads of it.
		if ok, err := b.readWindow(fp, off); err != nil {
			return 0, err
		} else if ok {
			clear(p[len(fp):])
			return len(p), nil
		}
	}
	// The spill reads bytes never written as zeros and never returns
	// io.EOF; a short read is an error (ErrCorrupt, or the disk's).
	if r, err := b.file.ReadAt(fp, off); err != nil {
		return r, err
	}
	clear(p[len(fp):])
	return len(p), nil
}

// spill rolls the buffer over (rollover) on a goroutine of the Manager's
// offloader (offload.go), for a write or a Rollover on the caller's
// goroutine. b.mu is held for writing.
func (b *store) spill(reason SpillReason) error {
	if b.file != nil && b.mem.Load() == 0 {
		return nil // nothing to move: no handoff
	}
	return b.m.off.rollover(b, reason)
}

// rollover moves every chunk held in memory to the file, creating it if
// needed, and records the event. b.mu is held for writing.
func (b *store) rollover(reason SpillReason) error {
	m := b.m
	if b.file != nil && b.mem.Load() == 0 {
		return nil
	}
	start := time.Now()
	defer func() { m.spillNanos.Add(int64(time.Since(start))) }()
	created, err := b.openSpill()
	if err != nil {
		return b.spillFailed(reason, 0, err)
	}
	var moved int64
	for i := range b.chunks {
		n, err := b.moveSlot(int64(i))
		if err != nil {
			if created && moved == 0 {
				// Nothing reached the disk: go back to being a memory
				// buffer, as if the rollover had not started.
				b.closeFile()
			}
			return b.spillFailed(reason, moved, err)
		}
		moved += n
	}
	b.chunks = nil
	m.spills.Add(1)
	m.spilledBytes.Add(moved)
	if reason == SpillEvicted {
		m.evictions.Add(1)
	}
	b.pending = append(b.pending, SpillEvent{Buffer: b.id, Reason: reason, Size: b.size, Moved: moved})
	return nil
}

// openSpill gives the buffer a spill in the arena if it has none, and
// reports whether it did.
func (b *store) openSpill() (created bool, err error) {
	b.dropWindow() // bytes move from memory to file: the file's change
	if b.file != nil {
		return false, nil
	}
	f, err := b.m.arena.newSpill(b.id, b.m.seal)
	if err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	f.credit, f.holds = &b.credit, &b.holdsDisk
	b.file, b.fileSize = f, 0
	b.m.onDisk.Add(1)
	return true, nil
}

// moveSlot writes slot i, if it is held in memory, to the spill and gives
// its memory back, and returns the bytes it moved. On error the slot
// stays in memory, intact.
func (b *store) moveSlot(i int64) (int64, error) {
	c := b.chunks[i]
	if c == nil {
		return 0, nil
	}
	start := i * b.m.cs
	n := max(0, min(int64(len(*c)), b.size-start))
	if err := b.writeSlot((*c)[:n], start); err != nil {
		return 0, fmt.Errorf("spool: rollover: %w", err)
	}
	b.freeChunk(i)
	return n, nil
}

// spillChunk moves the lowest slot the buffer holds in memory to disk, for
// an eviction (Manager.evict), and returns the bytes it moved. A buffer
// left with no slot in memory is rolled over. On error the slot stays in
// memory, intact, and a spill created for it is closed again.
func (b *store) spillChunk() (int64, error) {
	start := time.Now()
	defer func() { b.m.spillNanos.Add(int64(time.Since(start))) }()
	created, err := b.openSpill()
	if err != nil {
		return 0, err
	}
	for i := range b.chunks {
		if b.chunks[i] == nil {
			continue
		}
		n, err := b.moveSlot(int64(i))
		if err != nil {
			if created {
				b.closeFile()
			}
			return 0, err
		}
		if b.mem.Load() == 0 {
			b.chunks = nil
		}
		return n, nil
	}
	b.chunks = nil
	return 0, nil
}

func (b *store) spillFailed(reason SpillReason, moved int64, err error) error {
	b.m.spillErrors.Add(1)
	b.m.spilledBytes.Add(moved)
	b.pending = append(b.pending, SpillEvent{Buffer: b.id, Reason: reason, Size: b.size, Moved: moved, Err: err})
	return err
}

// freeChunk gives chunk i, if held, back to the pool and the budget.
func (b *store) freeChunk(i int64) {
	c := b.chunks[i]
	if c == nil {
		return
	}
	b.chunks[i] = nil
	n := int64(len(*c))
	b.m.mem.put(c)
	b.addMem(-n)
	b.m.budget.release(n)
}

// freeChunks gives the chunks from i on that are held back to the pool,
// and their memory to the budget in one release: a Truncate(0) or a Close
// of a large buffer pays for two atomic updates, not two per chunk.
func (b *store) freeChunks(i int64) {
	var freed int64
	for ; i < int64(len(b.chunks)); i++ {
		if c := b.chunks[i]; c != nil {
			b.chunks[i] = nil
			freed += int64(len(*c))
			b.m.mem.put(c)
		}
	}
	if freed > 0 {
		b.addMem(-freed)
		b.m.budget.release(freed)
	}
}

// addMem changes the chunk memory b holds by delta and, when that starts
// or stops being zero, adds b to or removes it from its Manager's list of
// buffers holding memory, the only ones the victim search scans
// (victims.go). The caller holds b.mu for writing, so the changes of one
// buffer, and their list updates, come in order.
func (b *store) addMem(delta int64) {
	now := b.mem.Add(delta)
	switch before := now - delta; {
	case before == 0 && now > 0:
		b.m.setHolding(b, true)
	case before > 0 && now == 0:
		b.m.setHolding(b, false)
	}
}

// runEnd returns where the run of chunks not in memory that starts with
// chunk i ends, capped at end.
func (b *store) runEnd(i, end int64) int64 {
	j := i + 1
	for j < int64(len(b.chunks)) && b.chunks[j] == nil {
		j++
	}
	if j >= int64(len(b.chunks)) {
		return end
	}
	return min(end, j*b.m.cs)
}

// growTable makes the chunk table long enough for a write that ends at
// end; new entries are nil. The table is never longer than the last chunk
// written needs: chunks past its end read as holes too.
//
// A new table is exactly as long as the write needs (a small blob costs
// one entry); from there it grows by 4× while below 256 slots, by 2×
// past that: a buffer written in pieces reallocates it a few times, not
// once per doubling from one slot. Those allocations are on the write path, and a
// write that allocates while a collection runs may have to help it and
// wait for its end: in traces of the bench's uploads scenario, 21 of the
// writes slowest to return waited so in growTable.
func (b *store) growTable(end int64) {
	n := int((end + b.m.cs - 1) / b.m.cs)
	if n <= len(b.chunks) {
		return
	}
	if n > cap(b.chunks) {
		c := cap(b.chunks)
		if c < 256 {
			c *= 4
		} else {
			c *= 2
		}
		t := make([]*[]byte, len(b.chunks), max(n, c))
		copy(t, b.chunks)
		b.chunks = t
	}
	old := len(b.chunks)
	b.chunks = b.chunks[:n]
	clear(b.chunks[old:]) // a Truncate may have left entries past the old end
}

// zeroTail zeroes the bytes from old (the current size) up to limit in the
// slot that holds byte old, if it is in memory, before the size grows over
// them. The slot's bytes past its slice already read as zeros.
func (b *store) zeroTail(old, limit int64) {
	cs := b.m.cs
	i := old / cs
	if old%cs == 0 || !b.resident(i) {
		return
	}
	c := *b.chunks[i]
	start := i * cs
	if lo := old - start; lo < int64(len(c)) {
		clear(c[lo:min(int64(len(c)), limit-start)])
	}
}

// writeFile writes p at off in the spill, block by block, stopping at the
// first block that fails (a disk error, or the disk budget, which the
// arena charges for every extent it allocates). Bytes from fileSize up to
// off are a hole: they read as zeros, and a write that fails leaves
// fileSize where it was.
func (b *store) writeFile(p []byte, off int64) (int, error) {
	w, err := b.file.WriteAt(p, off)
	if w > 0 {
		b.fileSize = max(b.fileSize, off+int64(w))
	}
	return w, err
}

// writeSlot writes p, the bytes of slot off/cs below size, to the spill as
// that whole block, in an extent that fits it exactly: a rollover moves
// slots that are complete, not blocks still growing.
func (b *store) writeSlot(p []byte, off int64) error {
	if err := b.file.writeSlot(p, off); err != nil {
		return err
	}
	if len(p) > 0 {
		b.fileSize = max(b.fileSize, off+int64(len(p)))
	}
	return nil
}

// closeFile closes the spill, if any, which gives its extents back to the
// arena, and their bytes to the disk budget.
func (b *store) closeFile() {
	if b.file == nil {
		return
	}
	b.file.close()
	b.file = nil
	b.fileSize = 0
	b.m.onDisk.Add(-1)
}
