package spool

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// The spill arena: where the spilled data of all buffers of a Manager
// lives.
//
// A file per spilled buffer made the cost of spilling grow with the
// number of buffers instead of their bytes: at 10,000 spilled buffers,
// creating and closing their files was half of spool's CPU, and a process
// with 100,000 spilled buffers ran out of file descriptors. The arena
// keeps every buffer's blocks in a few shared segment files instead (at
// most Options.MaxSpillFiles, by default two per CPU), created anonymous
// on first use like spill files were, and never more.
//
// A segment is a sequence of frames of 3 chunks each. A frame holds the
// extents of one extent class: a whole chunk, or for a block's smaller
// content one of the classes chunk/64 (at least 1 KiB) to 3/4 chunk, in
// steps of at most 1.5× that all divide a frame (extentClasses). A
// buffer's block of n bytes takes one extent of the smallest class that
// holds n. Extents are allocated lowest first, from the frames of their
// class that have a free slot, then from the lowest free frame, then at
// the end of the segment; a frame whose extents are all free is punched
// out of the file (fallocate), or cut off when it is at the end, so that
// the disk space spool holds follows its live spilled bytes.
//
// The arena knows nothing of buffers: a buffer's spill (spill.go) keeps
// its blocks' extents and checksums, and asks the arena only to allocate,
// free, read and write extents. That is the seam another spill store (an
// object store, say) would implement.
//
// Locks: each segment has its own mutex, a leaf (lock.go), held while its
// frames are allocated or freed, never during I/O but for punching or
// cutting a frame that has just become free. Reads and writes of extents
// use pread and pwrite on the segment's descriptor with no lock; the
// extent a buffer reads or writes is its own until the buffer frees it,
// under the buffer's lock.
type arena struct {
	dir, pattern string
	fs           fileSystem
	disk         *diskBudget
	cs           int64   // chunk size: the largest extent, a block
	frame        int64   // bytes of a frame: 3 chunks
	classes      []int64 // extent sizes, ascending; the last is cs

	// segs[i] is segment i once created (lazily, under mu, which guards
	// nothing else); read without mu.
	mu   sync.Mutex
	segs []atomic.Pointer[segment]
	next atomic.Uint64 // segment for the next buffer to spill, round robin

	open    atomic.Int64 // segments open
	live    atomic.Int64 // bytes of data in extents
	written atomic.Int64 // bytes written to segment files
	// noZeroCopy is set once a frame tainted by a zero-copy send could not
	// be punched out: sends copy from then on (sendfile.go).
	noZeroCopy atomic.Bool
	scratch    sync.Pool // scratch blocks: see getScratch
}

// defaultSpillFiles returns the default cap on segment files: two per
// CPU, at least two.
func defaultSpillFiles() int { return max(2, 2*runtime.GOMAXPROCS(0)) }

func newArena(dir, pattern string, fs fileSystem, disk *diskBudget, cs int64, maxFiles int) *arena {
	a := &arena{
		dir: dir, pattern: pattern, fs: fs, disk: disk,
		cs: cs, frame: 3 * cs, classes: extentClasses(cs),
		segs: make([]atomic.Pointer[segment], maxFiles),
	}
	a.scratch.New = func() any {
		b := make([]byte, cs+16+sideSize)
		return &b
	}
	return a
}

// extentClasses returns the extent sizes for chunks of cs bytes: cs times
// 1/64, 3/128 (if a whole number of KiB)... up to 1, at least 1 KiB, each
// dividing a frame of 3·cs, each at most 1.5× the one before.
func extentClasses(cs int64) []int64 {
	// Fractions of a chunk, in 128ths: each divides 384 (a frame).
	var classes []int64
	for _, f := range []int64{2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128} {
		c := cs * f / 128
		if c < 1<<10 || (len(classes) > 0 && c == classes[len(classes)-1]) {
			continue
		}
		classes = append(classes, c)
	}
	return classes
}

// classOf returns the index of the smallest extent class holding n bytes
// (0 < n <= cs).
func (a *arena) classOf(n int64) int {
	for i, c := range a.classes {
		if c >= n {
			return i
		}
	}
	return len(a.classes) - 1
}

// An extent is where one block of a buffer lives: a segment, a class and
// an offset in the segment's file, packed in a word (kept per block in a
// buffer's table): the offset in units of 512 bytes (every class is a
// multiple of 512, and so is every extent's offset) in the low 40 bits, up
// to 512 TiB; the class in the next 8; the segment, plus one, in the top
// 16. The zero extent is no extent.
type extent uint64

const extentUnit = 9 // log2 of the unit of extent offsets

func makeExtent(seg, class int, off int64) extent {
	return extent(uint64(seg+1)<<48 | uint64(class)<<40 | uint64(off>>extentUnit))
}

func (e extent) seg() int      { return int(e>>48) - 1 }
func (e extent) class() int    { return int(e >> 40 & 0xff) }
func (e extent) offset() int64 { return int64(e&(1<<40-1)) << extentUnit }

// pick returns the segment a buffer that spills for the first time puts
// its blocks in, creating it if needed. Buffers take the segments in
// turn, so that writers spread over their files.
func (a *arena) pick() (*segment, error) {
	i := int((a.next.Add(1) - 1) % uint64(len(a.segs)))
	if s := a.segs[i].Load(); s != nil {
		return s, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.segs[i].Load(); s != nil {
		return s, nil
	}
	f, err := a.fs.createTemp(a.dir, a.pattern)
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	s := &segment{a: a, idx: i, f: f, partial: make([]frameHeap, len(a.classes))}
	a.segs[i].Store(s)
	a.open.Add(1)
	return s, nil
}

// segment returns segment i, which exists.
func (a *arena) segment(i int) *segment { return a.segs[i].Load() }

// close closes every segment file. The Manager calls it once every buffer
// is closed and no spill is left.
func (a *arena) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for i := range a.segs {
		s := a.segs[i].Swap(nil)
		if s == nil {
			continue
		}
		if err := s.f.Close(); err != nil {
			errs = append(errs, err)
		}
		a.open.Add(-1)
	}
	return errors.Join(errs...)
}

// alloc takes an extent of class c in segment s, charging its size to the
// disk budget.
func (a *arena) alloc(s *segment, c int) (extent, error) {
	size := a.classes[c]
	if err := a.disk.reserve(size); err != nil {
		return 0, err
	}
	off := s.alloc(c)
	return makeExtent(s.idx, c, off), nil
}

// free gives extent e back, and its space to the disk budget once the
// space can be reused (segment.release).
func (a *arena) free(e extent) {
	if e != 0 {
		a.disk.release(a.segment(e.seg()).free(e.class(), e.offset()))
	}
}

// unpin ends a send's hold on extent e of segment s, and frees it if it
// was freed meanwhile.
func (a *arena) unpin(s *segment, e extent) {
	a.disk.release(s.unpin(e.class(), e.offset()))
	a.settle(s)
}

// settle recycles the frames of segment s that frees emptied (see
// segment.settle). The spill calls it after each operation that frees
// extents, once for all of them.
func (a *arena) settle(s *segment) {
	a.disk.release(s.settle())
}

// size returns the bytes extent e takes.
func (a *arena) size(e extent) int64 { return a.classes[e.class()] }

// writeAt writes p at offset off of extent e.
func (a *arena) writeAt(e extent, off int64, p []byte) error {
	n, err := a.segment(e.seg()).f.WriteAt(p, e.offset()+off)
	a.written.Add(int64(max(n, 0)))
	return err
}

// readAt reads len(p) bytes from the start of extent e. A short read is an
// error: the extent holds less than was written there.
func (a *arena) readAt(e extent, p []byte) error {
	n, err := a.segment(e.seg()).f.ReadAt(p, e.offset())
	if n == len(p) {
		return nil
	}
	if err == nil || isEOF(err) {
		return fmt.Errorf("%w: extent at %d of spill file %d is short (%d of %d bytes)", ErrCorrupt, e.offset(), e.seg(), n, len(p))
	}
	return err
}

// A segment is one shared spill file and the allocator of its frames.
type segment struct {
	a   *arena
	idx int
	f   spillFile

	// mu guards the frames. It is a leaf: see lock.go.
	mu sync.Mutex
	// frames[i] describes bytes [i·frame, (i+1)·frame) of the file; the
	// file holds nothing past the last frame.
	frames []frameState
	// partial[c] holds the frames of class c with a free slot, lowest
	// first. Entries go stale when a frame empties (it leaves its class) or
	// is cut off the end of the file, and a frame may be in it twice;
	// alloc drops stale and duplicate entries as it meets them.
	partial []frameHeap
	// empty holds the frames below the last that hold no extent, lowest
	// first: punched out of the file, to be reused before the file grows.
	empty frameHeap
	// recycle holds the frames emptied since the last settle.
	recycle []recycled
	// Zero-copy sends (sendfile.go). pins counts the sends reading each
	// extent, by offset; an extent freed while pinned is in freed, and is
	// released when the last send ends. tainted holds the extents a send
	// has read since they were allocated: the kernel may still hold their
	// pages (a socket keeps them until the peer acknowledges them, for
	// retransmission), and would send whatever is written into those pages
	// later, so a tainted extent, once freed, is not reused before its
	// whole frame is free and punched out of the file (or cut off), which
	// gives its range new pages.
	pins    map[int64]int32
	freed   map[int64]bool
	tainted map[int64]bool
}

// pin marks the extent at off as read by a send.
func (s *segment) pin(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		s.pins, s.freed, s.tainted = make(map[int64]int32), make(map[int64]bool), make(map[int64]bool)
	}
	s.pins[off]++
	s.tainted[off] = true
}

// unpin ends a send of the extent of class c at off and, if it was freed
// meanwhile, releases it; it returns the bytes that gives back to the disk
// budget.
func (s *segment) unpin(c int, off int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[off]--; s.pins[off] > 0 {
		return 0
	}
	delete(s.pins, off)
	if !s.freed[off] {
		return 0
	}
	delete(s.freed, off)
	return s.release(c, off)
}

// frameState describes one frame: the class of its extents (frameFree,
// or frameLost for a frame that can never be reused), how many slots are
// taken, how many of those are dead (freed, but tainted by a zero-copy
// send: see segment.tainted), and which slots are taken.
type frameState struct {
	class int8
	used  uint16
	dead  uint16
	bits  [3]uint64 // up to 192 slots: a frame of the 1/64-chunk class
}

const (
	frameFree      = -1 // no extent: reusable
	frameLost      = -2 // only dead slots, and its pages could not be dropped
	frameRecycling = -3 // emptied, waiting for settle
)

// slots returns how many extents of class c a frame holds.
func (s *segment) slots(c int) int { return int(s.a.frame / s.a.classes[c]) }

// alloc takes a slot of class c and returns its offset in the file.
func (s *segment) alloc(c int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.slots(c)
	for s.partial[c].Len() > 0 {
		i := s.partial[c].min()
		if i >= len(s.frames) || int(s.frames[i].class) != c || int(s.frames[i].used) == n {
			s.partial[c].pop() // stale: emptied, cut off, or full
			continue
		}
		fs := &s.frames[i]
		slot := fs.take()
		if int(fs.used) == n {
			s.partial[c].pop()
		}
		return int64(i)*s.a.frame + int64(slot)*s.a.classes[c]
	}
	var i int
	if s.empty.Len() > 0 {
		i = s.empty.pop()
	} else {
		i = len(s.frames)
		s.frames = append(s.frames, frameState{})
	}
	s.frames[i] = frameState{class: int8(c)}
	s.frames[i].take()
	if n > 1 {
		s.partial[c].push(i)
	}
	return int64(i) * s.a.frame
}

// take marks the lowest free slot taken and returns it.
func (f *frameState) take() int {
	for w := range f.bits {
		if f.bits[w] != ^uint64(0) {
			b := trailingOnes(f.bits[w])
			f.bits[w] |= 1 << b
			f.used++
			return w*64 + b
		}
	}
	panic("spool: frame has no free slot") // the callers check used first
}

// free gives back the extent of class c at off; a send is reading it, it
// is released when the send ends. It returns the bytes that gives back to
// the disk budget.
func (s *segment) free(c int, off int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[off] > 0 {
		s.freed[off] = true
		return 0
	}
	return s.release(c, off)
}

// release gives back the extent of class c at off, and returns the bytes
// that gives back to the disk budget: its own, unless a send tainted it.
// A frame whose slots are all free or dead is left to be recycled (punched
// out of the file, or cut off if it is at the end) by settle, which gives
// back the dead slots' bytes then. s.mu is held.
func (s *segment) release(c int, off int64) int64 {
	i := int(off / s.a.frame)
	fs := &s.frames[i]
	size := s.a.classes[c]
	wasFull := int(fs.used) == s.slots(c)
	freed := size
	if s.tainted[off] {
		delete(s.tainted, off)
		fs.dead++ // its slot stays taken until the frame is recycled
		freed = 0
	} else {
		slot := int((off % s.a.frame) / size)
		fs.bits[slot/64] &^= 1 << (slot % 64)
		fs.used--
	}
	if fs.used > fs.dead {
		if wasFull && freed != 0 {
			s.partial[c].push(i) // a slot is free again
		}
		return freed
	}
	s.recycle = append(s.recycle, recycled{frame: i, dead: int64(fs.dead) * size})
	*fs = frameState{class: frameRecycling}
	return freed
}

// recycled is a frame waiting for settle, and the bytes of its dead slots.
type recycled struct {
	frame int
	dead  int64
}

// settle recycles the frames release emptied since the last settle, all
// at once: those at the end of the file are cut off with one truncate,
// runs of the others are punched out with one fallocate each, so that a
// buffer of 1 GiB that closes costs a system call or a few, not one per
// frame. A recycled frame is reused; one with dead slots whose pages
// could not be dropped is lost, and zero-copy sends stop. It returns the
// dead slots' bytes that go back to the disk budget.
func (s *segment) settle() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recycle) == 0 {
		return 0
	}
	slices.SortFunc(s.recycle, func(x, y recycled) int { return x.frame - y.frame })
	var back int64
	done := func(r recycled, dropped bool) {
		switch {
		case dropped || r.dead == 0:
			s.frames[r.frame] = frameState{class: frameFree}
			s.empty.push(r.frame)
			back += r.dead
		default:
			// Its pages may still be a socket's: it is never reused,
			// and no more sends take the risk.
			s.frames[r.frame].class = frameLost
			s.a.noZeroCopy.Store(true)
		}
	}
	rs := s.recycle
	s.recycle = s.recycle[:0]
	// The frames at the end of the file: cut off.
	n := len(s.frames)
	for n > 0 && s.frames[n-1].class < 0 {
		n--
	}
	cut := len(rs)
	for cut > 0 && rs[cut-1].frame >= n {
		cut--
	}
	if cut < len(rs) {
		if err := s.f.Truncate(int64(n) * s.a.frame); err == nil {
			for _, r := range rs[cut:] {
				back += r.dead
			}
			s.frames = s.frames[:n]
			kept := s.empty[:0]
			for _, i := range s.empty {
				if i < n {
					kept = append(kept, i)
				}
			}
			s.empty = kept
			s.empty.init()
			rs = rs[:cut]
		}
	}
	// The others: runs of consecutive frames, punched out.
	for len(rs) > 0 {
		k := 1
		for k < len(rs) && rs[k].frame == rs[k-1].frame+1 {
			k++
		}
		err := s.punch(rs[0].frame, k)
		for _, r := range rs[:k] {
			done(r, err == nil)
		}
		rs = rs[k:]
	}
	return back
}

// punch gives frames i to i+n-1 back to the file system, and their pages
// to the page cache: the range reads as zeros, and later writes to it get
// new pages.
func (s *segment) punch(i, n int) error {
	p, ok := s.f.(puncher)
	if !ok {
		return errors.ErrUnsupported
	}
	return p.punch(int64(i)*s.a.frame, int64(n)*s.a.frame)
}

// frameHeap is a min-heap of frame indexes.
type frameHeap []int

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) min() int { return h[0] }
func (h *frameHeap) init() {
	for i := len(*h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}
func (h *frameHeap) push(i int) {
	*h = append(*h, i)
	for j := len(*h) - 1; j > 0; {
		p := (j - 1) / 2
		if (*h)[p] <= (*h)[j] {
			break
		}
		(*h)[p], (*h)[j] = (*h)[j], (*h)[p]
		j = p
	}
}

func (h *frameHeap) pop() int {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*h = old[:last]
	h.down(0)
	return top
}

func (h frameHeap) down(i int) {
	for {
		l, small := 2*i+1, i
		if l < len(h) && h[l] < h[small] {
			small = l
		}
		if r := l + 1; r < len(h) && h[r] < h[small] {
			small = r
		}
		if small == i {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}

// getScratch returns a scratch block from the arena's pool: a chunk, room
// for a GCM tag, and sideSize bytes after them for the nonce and
// additional data of a seal or an open (sideOf).
func (a *arena) getScratch() *[]byte { return a.scratch.Get().(*[]byte) }

func (a *arena) putScratch(b *[]byte) { a.scratch.Put(b) }

// sideOf returns the side area of a scratch block.
func (a *arena) sideOf(b *[]byte) *[sideSize]byte {
	return (*[sideSize]byte)((*b)[a.cs+16:])
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func trailingOnes(x uint64) int { return bits.TrailingZeros64(^x) }
