package spool

import (
	"errors"
	"fmt"
	"io"
	"math"
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
// the end of the segment.
//
// Disk space is accounted in granules: max(4 KiB, chunk/64) bytes of a
// frame, at most 192 of them, the unit in which space is given back to
// the file system (a file system block, or several). A frame's disk
// bitmap holds the granules that may be allocated on disk; each is charged
// to the disk budget (Stats.DiskInUse) from the allocation of the first
// extent that overlaps it until it is punched out of the file or cut off
// its end. A granule is occupied while a taken slot (a live extent, or a
// dead one: see segment.tainted) overlaps it, which alloc and release
// work out from the slot bitmap. A charged granule that no slot occupies
// is slack: freed space the file system still holds. Slack is reused
// first (an extent allocated over it is charged nothing more) and
// reclaimed in bulk: when the arena's slack passes max(live/8, 1 MiB)
// (arena.settle), its largest runs of adjacent granules are punched out
// (fallocate), one call each, until it is under three quarters of that
// bound; when an allocation fails at the disk budget (arena.alloc), or
// writers wait for disk budget, all of it is. Either way the charge goes
// back to the disk budget. A frame whose
// extents are all free is punched out whole, or cut off when it is at the
// end of the file. So the disk space spool holds, and DiskInUse, stay
// within the granules of the live extents plus that bound of slack.
//
// The arena knows nothing of buffers: a buffer's spill (spill.go) keeps
// its blocks' extents and checksums, and asks the arena only to allocate,
// free, read and write extents. That is the seam another spill store (an
// object store, say) would implement.
//
// Locks: each segment has its own mutex, a leaf (lock.go), held while its
// frames are allocated or freed, and never during I/O: punching slack or
// a frame that has just become free out of the file, or cutting frames
// off its end, is decided and marked under it, done with it released and
// committed under it again (see segment), so that allocations go on
// meanwhile. A reclaim takes the segments' mutexes one at a time, never
// two at once. Reads and writes of extents use pread and pwrite on the
// segment's descriptor with no lock; the extent a buffer reads or writes
// is its own until the buffer frees it, under the buffer's lock, nothing
// punches a granule an extent occupies, and nothing is written past a cut
// in flight before its truncate has returned.
type arena struct {
	dir, pattern string
	fs           fileSystem
	disk         *diskBudget
	cs           int64   // chunk size: the largest extent, a block
	frame        int64   // bytes of a frame: 3 chunks
	classes      []int64 // extent sizes, ascending; the last is cs
	gran         int64   // bytes of a granule: max(4 KiB, cs/64)
	grans        int     // granules in a frame: frame/gran, at most 192
	// spins is how many times segment.lock tries a segment's mutex
	// before it waits (spinsFor).
	spins int

	// segs[i] is segment i once created (lazily, under mu); read without
	// mu. mu also guards closed.
	mu     sync.Mutex
	segs   []atomic.Pointer[segment]
	closed bool
	next   atomic.Uint64 // segment for the next buffer to spill, round robin
	// early is the goroutine of prepare; close waits for it to end, so
	// that none of the Manager's goroutines outlives Close.
	early sync.WaitGroup

	open    atomic.Int64 // segments open
	live    atomic.Int64 // bytes of data in extents
	written atomic.Int64 // bytes written to segment files
	// slack is the sum of the segments' slack (segment.slack), in bytes:
	// charged granules that no extent occupies.
	slack atomic.Int64
	// unpunched is the slack the last reclaim left behind because
	// punching failed; settle reclaims again only once slack has grown
	// past it by the threshold, so that a failing file system is not
	// asked again after every operation.
	unpunched atomic.Int64
	// reclaiming is set while a settle reclaims, so that other settles
	// do not start a reclaim of their own meanwhile.
	reclaiming atomic.Bool
	// noPunch is set once the file system said it cannot punch holes:
	// slack then stays charged until it is reused or cut off.
	noPunch atomic.Bool
	// noMove is set once a segment file said it cannot copy a range of
	// itself in the kernel (copyExtent): blocks that outgrow their
	// extents are then moved through a scratch block.
	noMove atomic.Bool
	// noZeroCopy is set once a frame tainted by a zero-copy send could not
	// be punched out: sends copy from then on (copyout.go).
	noZeroCopy atomic.Bool
	// landMu guards inflight, the number of punches and cuts in flight
	// (marked, and not yet given back: fly, land), the changes of
	// landings, the number of them that landed, and landWait, the channel
	// the next landing closes, made by the first allocation refused by
	// the disk budget that waits for it (awaitLanding). They change
	// together, so that a refused allocation that finds one in flight
	// waits for a landing still to come. It is a leaf, held for no I/O.
	// landings is read without it by every allocation (landing), so that
	// a block written takes no lock of the whole arena; a landing that
	// nobody waits for allocates nothing (a channel per landing was
	// 2 MiB of garbage per run of the bench's slow scenario).
	landMu   sync.Mutex
	inflight int64
	landings atomic.Uint64
	landWait chan struct{}
	// waitHook, if set (by tests), is called before an allocation blocks
	// until a punch or a cut in flight lands or returns.
	waitHook func()
	scratch  sync.Pool // scratch blocks: see getScratch
}

// reclaimMin is the least slack settle lets build up before it reclaims:
// below it, punching would cost more system calls than the space is worth.
const reclaimMin = 1 << 20

// defaultSpillFiles returns the default cap on segment files: two per
// CPU, at least two.
func defaultSpillFiles() int { return max(2, 2*runtime.GOMAXPROCS(0)) }

func newArena(dir, pattern string, fs fileSystem, disk *diskBudget, cs int64, maxFiles int) *arena {
	a := &arena{
		dir: dir, pattern: pattern, fs: fs, disk: disk,
		cs: cs, frame: 3 * cs, classes: extentClasses(cs),
		gran: max(4<<10, cs/64),
		segs: make([]atomic.Pointer[segment], maxFiles),
	}
	a.grans = int(a.frame / a.gran)
	a.spins = spinsFor()
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
// turn, so that writers spread over their files. While another goroutine
// creates a segment, a buffer whose turn falls on one not yet created
// takes the next that exists instead of waiting for those system calls:
// in traces of the bench's uploads scenario, 11-16 of the 50 writes
// slowest to return waited here, at the first spills.
func (a *arena) pick() (*segment, error) {
	n := len(a.segs)
	i := int((a.next.Add(1) - 1) % uint64(n))
	if s := a.segs[i].Load(); s != nil {
		return s, nil
	}
	if !a.mu.TryLock() {
		for j := 1; j < n; j++ {
			if s := a.segs[(i+j)%n].Load(); s != nil {
				return s, nil
			}
		}
		a.mu.Lock() // none yet: wait for the first
	}
	defer a.mu.Unlock()
	if s := a.segs[i].Load(); s != nil {
		return s, nil
	}
	return a.create(i)
}

// create creates segment i, which does not exist. a.mu is held.
func (a *arena) create(i int) (*segment, error) {
	f, err := a.fs.createTemp(a.dir, a.pattern)
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	s := &segment{a: a, idx: i, f: f, partial: make([]frameHeap, len(a.classes))}
	a.segs[i].Store(s)
	a.open.Add(1)
	return s, nil
}

// prepare creates the first segment in the background, if none exists
// yet; the budget calls it once, when the memory in use first reaches
// half of it (budget.half), so that the first spills do not wait for a file to be
// created. They did: every writer that needed room at once queued on mu
// behind the one creating it, and, woken, waited for a CPU behind the
// other goroutines (in traces of the bench's uploads scenario, 14 of the
// 50 slowest writes of a run). If the creation fails, pick tries again
// and reports the error, at the first spill.
func (a *arena) prepare() {
	if !a.mu.TryLock() {
		return // a segment is being created, or the arena closed
	}
	defer a.mu.Unlock()
	if a.closed || a.segs[0].Load() != nil {
		return
	}
	a.early.Go(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.closed && a.segs[0].Load() == nil {
			_, _ = a.create(0) // pick reports a failure
		}
	})
}

// segment returns segment i, which exists.
func (a *arena) segment(i int) *segment { return a.segs[i].Load() }

// close closes every segment file, and gives back to the disk budget what
// it still counts for them. The Manager calls it once every buffer is
// closed and no spill is left.
func (a *arena) close() error {
	a.mu.Lock()
	a.closed = true
	var segs []*segment
	for i := range a.segs {
		if s := a.segs[i].Swap(nil); s != nil {
			segs = append(segs, s)
		}
	}
	a.mu.Unlock()
	a.early.Wait() // a prepare started before: it found the arena closed
	var errs []error
	for _, s := range segs {
		s.lock()
		charged := s.charged
		s.addSlack(-s.slack)
		s.charged = 0
		s.closed = true // a punch or cut in flight gives back nothing more
		s.mu.Unlock()
		a.disk.release(charged)
		if err := s.f.Close(); err != nil {
			errs = append(errs, err)
		}
		a.open.Add(-1)
	}
	return errors.Join(errs...)
}

// alloc takes an extent of class c in segment s, charging the disk budget
// for the granules it overlaps that are not charged yet. If the budget
// refuses, and the arena holds slack or is giving space back, it reclaims
// the slack (which gives its charge back), waits for a punch or cut in
// flight to land unless one has landed since the refusal, and tries once
// more. An extent past the end of the file that a cut in flight truncates
// it to (in a frame appended meanwhile) is returned once the cut's
// truncate has returned: the caller writes to it at once.
func (a *arena) alloc(s *segment, c int, credit *int64) (extent, error) {
	since := a.landing()
	off, cut, err := s.alloc(c, credit)
	if err != nil {
		retry := false
		if a.slack.Load() > 0 && !a.noPunch.Load() {
			a.reclaim()
			retry = true
		}
		if a.awaitLanding(since) {
			retry = true
		}
		if !retry {
			return 0, err
		}
		if off, cut, err = s.alloc(c, credit); err != nil {
			return 0, err
		}
	}
	if cut != nil {
		a.wait(cut)
	}
	return makeExtent(s.idx, c, off), nil
}

// fly counts a punch or a cut in flight, once marked under its segment's
// lock.
func (a *arena) fly() {
	a.landMu.Lock()
	a.inflight++
	a.landMu.Unlock()
}

// land ends a punch or a cut in flight, with no segment lock held: it
// gives the bytes back to the disk budget, then stops counting it in
// flight and wakes the allocations waiting for a landing.
func (a *arena) land(back int64) {
	a.disk.release(back)
	a.landMu.Lock()
	a.inflight--
	a.landings.Add(1)
	if a.landWait != nil {
		close(a.landWait)
		a.landWait = nil
	}
	a.landMu.Unlock()
}

// landing returns the number of landings so far, for awaitLanding.
func (a *arena) landing() uint64 { return a.landings.Load() }

// inFlight returns the number of punches and cuts in flight.
func (a *arena) inFlight() int64 {
	a.landMu.Lock()
	defer a.landMu.Unlock()
	return a.inflight
}

// awaitLanding reports whether a punch or a cut has landed since since
// (landing, when the allocation began) or, if one is in flight, waits
// until it lands: either way, the disk budget may have room again. It
// reports false, at once, if none has landed and none is in flight.
func (a *arena) awaitLanding(since uint64) bool {
	a.landMu.Lock()
	switch {
	case a.landings.Load() != since:
		a.landMu.Unlock()
		return true
	case a.inflight == 0:
		a.landMu.Unlock()
		return false
	}
	if a.landWait == nil {
		a.landWait = make(chan struct{})
	}
	ch := a.landWait
	a.landMu.Unlock()
	a.wait(ch)
	return true
}

// wait waits until ch is closed: for a system call of another goroutine,
// which takes no lock but segment and disk budget leaves before it closes
// ch.
func (a *arena) wait(ch <-chan struct{}) {
	select {
	case <-ch:
		return
	default:
	}
	if a.waitHook != nil {
		a.waitHook()
	}
	<-ch
}

// free gives extent e back. The granules of it that no other extent
// occupies become slack: still charged, reused first, and punched out by
// the next reclaim (or with their frame, once it is all free).
func (a *arena) free(e extent) {
	if e != 0 {
		a.segment(e.seg()).free(e.class(), e.offset())
	}
}

// discard gives back extent e, whose write failed, and punches out at
// once the granules of it that no other extent occupies: what the failed
// write took (a short write may have taken some) goes back to the file
// system and to the disk budget, not to slack.
func (a *arena) discard(e extent) {
	s := a.segment(e.seg())
	s.free(e.class(), e.offset()) // not pinned: no send has read it
	s.punchExtent(e.class(), e.offset())
	a.settle(s)
}

// unpin ends a send's hold on extent e of segment s, and frees it if it
// was freed meanwhile.
func (a *arena) unpin(s *segment, e extent) {
	s.unpin(e.class(), e.offset())
	a.settle(s)
}

// settle recycles the frames of segment s that frees emptied (see
// segment.settle). Then, if the arena's slack has grown past
// max(live/8, reclaimMin) beyond what punching could not give back last
// time, it reclaims the largest runs of it until it is under three
// quarters of that bound; while writers wait for disk budget, it reclaims
// all there is. The spill calls it after each operation that frees
// extents, once for all of them.
//
// Why not all of it: punching is a system call per run, and the runs are
// many and short (freed extents between live ones): in the uploads
// scenario, reclaiming every run each time made 6-10 bursts of 800-1,300
// fallocate calls per run, on files other writers were writing to, and
// the write latency p99.9 was 2.11-3.54x a temporary file's (medians of
// five sets of 6-8 alternating runs), against 1.77-2.41x reclaiming the
// largest runs down to three quarters (10,300 fallocate calls a run
// against 7,400-7,900), and 1.54x for a build that never punched.
func (a *arena) settle(s *segment) {
	s.settle()
	slack, bound := a.slack.Load()-a.unpunched.Load(), max(a.live.Load()/8, reclaimMin)
	over, target := slack > bound, slack-bound*3/4
	if a.disk.nwait.Load() > 0 {
		// Writers wait for room: give back what is free.
		over, target = a.hasSlack(), math.MaxInt64
	}
	if over && !a.noPunch.Load() && a.reclaiming.CompareAndSwap(false, true) {
		a.reclaimSome(target)
		a.reclaiming.Store(false)
	}
}

// hasSlack reports whether the arena holds slack that punching could give
// back, as far as it knows: more than it failed to punch out last time.
func (a *arena) hasSlack() bool { return a.slack.Load() > a.unpunched.Load() }

// reclaim punches the slack of every segment out of its file and gives
// its charge back to the disk budget, taking the segments' locks one at a
// time. A segment whose punching fails keeps the rest of its slack; the
// others are reclaimed all the same, unless the file system cannot punch
// at all.
func (a *arena) reclaim() { a.reclaimSome(math.MaxInt64) }

// reclaimSome is reclaim, but stops once it has punched out target bytes
// of slack: the largest runs of each segment first, segment after
// segment.
func (a *arena) reclaimSome(target int64) {
	failed := false
	for i := range a.segs {
		s := a.segs[i].Load()
		if s == nil {
			continue
		}
		if target <= 0 {
			break
		}
		got, err := s.reclaim(target)
		target -= got
		if err != nil {
			failed = true
			if a.noPunch.Load() {
				break
			}
		}
	}
	var left int64
	if failed {
		left = a.slack.Load()
	}
	a.unpunched.Store(left)
}

// size returns the bytes extent e takes.
func (a *arena) size(e extent) int64 { return a.classes[e.class()] }

// writeAt writes p at offset off of extent e.
func (a *arena) writeAt(e extent, off int64, p []byte) error {
	n, err := a.segment(e.seg()).f.WriteAt(p, e.offset()+off)
	a.written.Add(int64(max(n, 0)))
	return err
}

// canMove reports whether segment s may copy in the kernel: its file is
// of a kind that can try, and no segment file said it cannot
// (copyExtent).
func (a *arena) canMove(s *segment) bool {
	if a.noMove.Load() {
		return false
	}
	if _, ok := s.f.(mover); !ok {
		a.noMove.Store(true)
		return false
	}
	return true
}

// copyExtent copies the first n bytes of extent src to the start of
// extent dst, of the same segment, in the kernel (mover), and reports
// whether it could: if the segment file cannot, it returns false and nil,
// and the caller copies through memory. The caller has checked canMove;
// once a file said it cannot, canMove has no other asked.
func (a *arena) copyExtent(src, dst extent, n int64) (bool, error) {
	err := a.segment(src.seg()).f.(mover).copyWithin(src.offset(), dst.offset(), n)
	if errors.Is(err, errors.ErrUnsupported) {
		a.noMove.Store(true)
		return false, nil
	}
	if err == nil {
		a.written.Add(n)
	}
	return true, err
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
//
// Giving space back. Punching (fallocate) and cutting (ftruncate) are
// system calls, and a goroutine that makes one may lose its CPU for a
// scheduling round: with hundreds of goroutines on a few CPUs, everyone
// queued on the lock it holds would wait that round too. So settle,
// reclaim and punchExtent make them with mu released, in three steps.
// Under mu, they choose what to give back and mark it, so that nothing
// else allocates it, punches it or cuts it meanwhile: the frames settle
// punches out become frameSettling, those it cuts off frameCutting (cut),
// and the slack granules reclaim and punchExtent punch out are set in
// their frame's punching bitmap (out of slack, still charged). With mu
// released, they make the system calls. Under mu again, they commit:
// uncharge what went back to the file system and free its frames, or undo
// the marks of what did not, as the failure requires; then, mu released,
// they give the charge back to the disk budget (arena.land). Marks never
// overlap, so no granule is given back, or uncharged, twice.
type segment struct {
	a   *arena
	idx int
	f   spillFile

	// mu guards the frames and the fields below. It is a leaf, and held
	// for no I/O: see lock.go.
	mu spinMutex
	// frames[i] describes bytes [i·frame, (i+1)·frame) of the file; the
	// file holds nothing past the last frame.
	frames []frameState
	// partial[c] holds the frames of class c with a free slot, lowest
	// first. Entries go stale when a frame empties (it leaves its class),
	// is cut off the end of the file or is parked (frameState.parked), and
	// a frame may be in it twice; alloc drops stale and duplicate entries
	// as it meets them.
	partial []frameHeap
	// empty holds the free frames below the last, each once, lowest first,
	// to be reused before the file grows: punched out of the file, or, if
	// punching failed, holding slack. A free frame being cut off, or
	// parked, is out of it.
	empty frameHeap
	// recycle holds the frames emptied (frameRecycling) and not settled
	// yet. settle takes it whole, and gives its array back, emptied, as
	// spare, which the next settle makes recycle: the list is not grown
	// again from nothing at every settle (at 10,000 uploads in flight, 10
	// MB of garbage per run).
	recycle, spare []recycled
	// cut is the cut off the end of the file in flight, if any: one at a
	// time.
	cut *cut
	// charged is the bytes of the granules charged to the disk budget (in
	// the frames' disk bitmaps); slack is the bytes of those that are
	// slack (slackOf), its share of arena.slack.
	charged, slack int64
	// closed is set by arena.close, which gives back all that is charged:
	// from then on nothing changes charged, slack or the arena's slack.
	closed bool
	// Zero-copy sends (copyout.go). pins counts the sends reading each
	// extent, by offset; an extent freed while pinned is in freed, and is
	// released when the last send ends. tainted holds the extents a send
	// has read since they were allocated: the kernel may still hold their
	// pages (a socket keeps them until the peer acknowledges them, for
	// retransmission), and would send whatever is written into those pages
	// later, so a tainted extent, once freed, is not reused before its
	// whole frame is free and punched out of the file (or cut off), which
	// gives its range new pages. Until then its slot stays taken (dead),
	// and the granules it overlaps occupied: no reclaim punches them.
	pins    map[int64]int32
	freed   map[int64]bool
	tainted map[int64]bool
}

// lock takes s.mu (see spinMutex: in execution traces of the bench's
// uploads scenario, the writes slowest to return waited 1-5 ms at
// segment.alloc for writers that held it while they waited to run).
func (s *segment) lock() { s.mu.lock(s.a.spins) }

// relock releases s.mu and takes it again, between the slices of a long
// pass over the frames (spinMutex.relock).
func (s *segment) relock() { s.mu.relock(s.a.spins) }

// pin marks the extent at off as read by a send.
func (s *segment) pin(off int64) {
	s.lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		s.pins, s.freed, s.tainted = make(map[int64]int32), make(map[int64]bool), make(map[int64]bool)
	}
	s.pins[off]++
	s.tainted[off] = true
}

// unpin ends a send of the extent of class c at off and, if it was freed
// meanwhile, releases it.
func (s *segment) unpin(c int, off int64) {
	s.lock()
	defer s.mu.Unlock()
	if s.pins[off]--; s.pins[off] > 0 {
		return
	}
	delete(s.pins, off)
	if !s.freed[off] {
		return
	}
	delete(s.freed, off)
	s.release(c, off)
}

// frameState describes one frame: the class of its extents (or, for a
// frame of no class, one of the states below), how many slots are taken,
// how many of those are dead (freed, but tainted by a zero-copy send: see
// segment.tainted), which slots are taken, which of its granules are
// charged, and which are being punched out. A frame waiting for settle
// (frameRecycling), being settled, or lost keeps its charged granules,
// none of them slack, until it is punched out or cut off; a free frame's
// charged granules are all slack but those being punched out.
type frameState struct {
	class int8
	// parked is set while the frame is out of partial[class] (or out of
	// empty, if free) because its free slots all overlap granules being
	// punched out: the commit of the last punch puts it back.
	parked bool
	used   uint16
	dead   uint16
	bits   bitmap // slots taken: up to 192, a frame of the 1/64-chunk class
	// disk holds the granules that may be allocated on disk, each charged
	// to the disk budget: every granule a taken slot overlaps, and slack.
	disk bitmap
	// punching holds the granules a reclaim or a punchExtent is punching
	// out of the file with segment.mu released: in disk (charged until the
	// punch commits), neither slack nor occupied. No slot over them is
	// allocated meanwhile (freeSlot), and a frame with any is neither
	// reused whole (a free one) nor settled (an emptied one): the commit
	// settles it.
	punching bitmap
}

// clearSlots makes f a frame of class c with no slot taken, keeping the
// granules it has on disk and those being punched out. It works in place:
// a frameState literal would be a temporary of 80 bytes in the caller's
// frame, and alloc and release lie under every write that takes or frees
// an extent (goroutine stacks: doc.go).
func (f *frameState) clearSlots(c int8) {
	f.class, f.parked, f.used, f.dead, f.bits = c, false, 0, 0, bitmap{}
}

const (
	frameFree      = -1 // no extent: reusable
	frameLost      = -2 // only dead slots, and its pages could not be dropped
	frameRecycling = -3 // emptied, waiting for settle (in segment.recycle)
	frameSettling  = -4 // being punched out by a settle, segment.mu released
	frameCutting   = -5 // being cut off the end of the file (segment.cut)
)

// slots returns how many extents of class c a frame holds.
func (s *segment) slots(c int) int { return int(s.a.frame / s.a.classes[c]) }

// granules returns the first and last granule the slot of class c
// overlaps.
func (s *segment) granules(c, slot int) (lo, hi int) {
	size, g := s.a.classes[c], s.a.gran
	return int(int64(slot) * size / g), int((int64(slot+1)*size - 1) / g)
}

// occupiedGranule reports whether a taken slot of frame f, of class c,
// overlaps granule k.
func (s *segment) occupiedGranule(f *frameState, c, k int) bool {
	size, g := s.a.classes[c], s.a.gran
	lo := int(int64(k) * g / size)
	hi := min(int((int64(k+1)*g-1)/size), s.slots(c)-1)
	return f.bits.any(lo, hi+1)
}

// occupied returns the granules the taken slots of frame f (of a class)
// overlap.
func (s *segment) occupied(f *frameState) bitmap {
	c := int(f.class)
	if int(f.used) == s.slots(c) {
		var all bitmap
		all.setRange(0, s.a.grans)
		return all
	}
	var occ bitmap
	for w, word := range f.bits {
		for word != 0 {
			slot := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			lo, hi := s.granules(c, slot)
			occ.setRange(lo, hi+1)
		}
	}
	return occ
}

// slackOf returns the slack granules of frame f: those charged that no
// slot occupies and no punch in flight takes, in a frame of a class or a
// free one. Those of a frame waiting for settle, being settled, or lost
// are not slack: no allocation or reclaim touches them.
func (s *segment) slackOf(f *frameState) bitmap {
	switch {
	case f.class == frameFree:
		return f.disk.andNot(f.punching)
	case f.class < 0 || f.disk == bitmap{}:
		return bitmap{}
	}
	return f.disk.andNot(s.occupied(f)).andNot(f.punching)
}

// freeSlot returns the lowest free slot of frame f, of class c, that
// overlaps no granule being punched out, or -1 if there is none.
func (s *segment) freeSlot(f *frameState, c int) int {
	if f.punching == (bitmap{}) {
		return f.bits.lowestClear()
	}
	n := s.slots(c)
	for slot := f.bits.next(0, n, false); slot < n; slot = f.bits.next(slot+1, n, false) {
		if lo, hi := s.granules(c, slot); !f.punching.any(lo, hi+1) {
			return slot
		}
	}
	return -1
}

// addSlack adds n bytes (negative: takes them) to the segment's slack and
// the arena's. s.mu is held.
func (s *segment) addSlack(n int64) {
	if n != 0 && !s.closed {
		s.slack += n
		s.a.slack.Add(n)
	}
}

// alloc takes a slot of class c and returns its offset in the file. It
// charges the disk budget for the granules the slot overlaps that are not
// charged yet (those that are slack become occupied again, for nothing);
// if the budget refuses, it takes nothing and returns the error, which
// wraps ErrDiskBudget. It never takes a slot over granules being punched
// out, nor a frame being settled or cut off. A slot in a frame appended
// while a cut is in flight comes with the cut's done channel: nothing may
// be written there before it is closed (arena.alloc waits for it).
func (s *segment) alloc(c int, credit *int64) (int64, <-chan struct{}, error) {
	s.lock()
	defer s.mu.Unlock()
	n := s.slots(c)
	for {
		for s.partial[c].Len() > 0 {
			i := s.partial[c].min()
			if i >= len(s.frames) || int(s.frames[i].class) != c || int(s.frames[i].used) == n || s.frames[i].parked {
				s.partial[c].pop() // stale: emptied, cut off, full, or parked
				continue
			}
			fs := &s.frames[i]
			slot := s.freeSlot(fs, c)
			if slot < 0 {
				// Its free slots are all being punched out: parked until
				// the punch commits (holes.commit).
				fs.parked = true
				s.partial[c].pop()
				continue
			}
			if err := s.charge(fs, c, slot, credit); err != nil {
				return 0, nil, err
			}
			fs.bits.set(slot)
			fs.used++
			if int(fs.used) == n {
				s.partial[c].pop()
			}
			return int64(i)*s.a.frame + int64(slot)*s.a.classes[c], s.cutting(i), nil
		}
		// A new frame: the lowest free one, or one more at the end. A free
		// frame with granules being punched out is parked.
		for s.empty.Len() > 0 && s.frames[s.empty.min()].punching != (bitmap{}) {
			s.frames[s.empty.pop()].parked = true
		}
		// A frame appended is charged in place (a local frameState would
		// add its size to every spilling writer's stack), and taken off again
		// if the budget refuses.
		i := len(s.frames)
		if s.empty.Len() > 0 {
			i = s.empty.min()
		} else {
			if i == cap(s.frames) {
				s.growFrames() // s.mu released meanwhile: look again
				continue
			}
			s.frames = append(s.frames, frameState{})
		}
		if err := s.charge(&s.frames[i], c, 0, credit); err != nil {
			if i == len(s.frames)-1 && s.empty.Len() == 0 {
				s.frames = s.frames[:i]
			}
			return 0, nil, err
		}
		if s.empty.Len() > 0 {
			s.empty.pop()
		}
		f := &s.frames[i]
		f.clearSlots(int8(c))
		f.punching = bitmap{} // none: a frame being punched is parked above
		f.used = 1
		f.bits.set(0)
		if n > 1 {
			s.partial[c].push(i)
		}
		return int64(i) * s.a.frame, s.cutting(i), nil
	}
}

// growFrames makes s.frames room for more frames, allocating the larger
// array with s.mu released: an allocation may have to help the garbage
// collector for as long as its size asks (the array of a segment of 1,000
// frames is 80 KB), and every writer that needs an extent of the segment
// would wait for it meanwhile (see spinMutex): the frames array, the
// largest thing the segment allocates, is not allocated under s.mu. s.mu is held on
// entry and on return, and anything may have changed in between.
func (s *segment) growFrames() {
	want := max(64, 2*cap(s.frames))
	s.mu.Unlock()
	larger := make([]frameState, 0, want)
	s.lock()
	if cap(s.frames) < want {
		s.frames = append(larger, s.frames...)
	}
}

// cutting returns the done channel of the cut in flight if frame i lies
// past the length it truncates the file to, or nil. Such a frame was
// appended while the cut was in flight (the frames it cuts off are not
// allocated): the first slot of it, and any other slot taken before the
// truncate has returned, or a frame appended and already settled and
// reused (empty) meanwhile, must wait for it, or the truncate would drop
// what is written there. s.mu is held.
func (s *segment) cutting(i int) <-chan struct{} {
	if s.cut != nil && i >= s.cut.from {
		return s.cut.done
	}
	return nil
}

// charge charges the disk budget for the granules that the free slot of
// class c of frame f overlaps and that are not charged yet, and marks them
// charged; those charged but unoccupied stop being slack. If the budget
// refuses, it changes nothing and returns the error. The slot overlaps no
// granule being punched out. s.mu is held.
func (s *segment) charge(f *frameState, c, slot int, credit *int64) error {
	lo, hi := s.granules(c, slot)
	var need, reused int64
	for k := lo; k <= hi; k++ {
		switch {
		case !f.disk.get(k):
			need++
		case f.class == frameFree || !s.occupiedGranule(f, c, k):
			reused++
		}
	}
	g := s.a.gran
	if need > 0 {
		if err := s.a.disk.reserve(need*g, credit); err != nil {
			return err
		}
		f.disk.setRange(lo, hi+1)
		s.charged += need * g
	}
	s.addSlack(-reused * g)
	return nil
}

// free gives back the extent of class c at off; if a send is reading it,
// it is released when the send ends.
func (s *segment) free(c int, off int64) {
	s.lock()
	defer s.mu.Unlock()
	if s.pins[off] > 0 {
		s.freed[off] = true
		return
	}
	s.release(c, off)
}

// release gives back the extent of class c at off: its slot is free, and
// the charged granules it leaves unoccupied slack; unless a send tainted
// it, in which case its slot stays taken, dead. A frame whose slots are
// all free or dead is left to be recycled (punched out of the file, or cut
// off if it is at the end) by settle; its granules are no longer slack
// meanwhile, and those being punched out stay marked until their punch
// commits. s.mu is held.
func (s *segment) release(c int, off int64) {
	i := int(off / s.a.frame)
	fs := &s.frames[i]
	size := s.a.classes[c]
	wasFull := int(fs.used) == s.slots(c)
	tainted := s.tainted[off]
	if tainted {
		delete(s.tainted, off)
		fs.dead++ // its slot stays taken until the frame is recycled
	} else {
		slot := int((off % s.a.frame) / size)
		fs.bits.clear(slot)
		fs.used--
		// The slot's granules were occupied: none is being punched out.
		lo, hi := s.granules(c, slot)
		var freed int64
		for k := lo; k <= hi; k++ {
			if fs.disk.get(k) && !s.occupiedGranule(fs, c, k) {
				freed++
			}
		}
		s.addSlack(freed * s.a.gran)
	}
	if fs.used > fs.dead {
		if wasFull && !tainted {
			s.partial[c].push(i) // a slot is free again
		}
		return
	}
	slack := s.slackOf(fs)
	s.addSlack(-int64(slack.count()) * s.a.gran)
	s.recycle = append(s.recycle, recycled{frame: i, dead: fs.dead > 0})
	fs.clearSlots(frameRecycling)
}

// recycled is a frame waiting for settle, whether it has dead slots, and,
// once settle has tried, whether it was punched out.
type recycled struct {
	frame   int
	dead    bool
	dropped bool
}

// A cut is a truncate of the segment's file in flight, made by settle
// with segment.mu released: frames [from, to) are frameCutting, to the
// end of the file when it began, and was holds what they were before.
// ftruncate drops every byte past from·frame, so nothing may be written
// there until it returns: the frames being cut off are not allocated, and
// an allocation in a frame appended meanwhile (at to or past it: the
// indexes being cut off are never reused before the commit), whether it
// appends the frame, takes another slot of it or reuses it once settled,
// returns done, which the writer waits for before it writes (arena.alloc,
// segment.cutting). Once the
// truncate has returned, the commit drops the frames off the end of the
// file; or, if frames were appended meanwhile, keeps them as free frames,
// holes that the file no longer holds (the writes to the appended frames
// extend the file again past them).
type cut struct {
	from, to int
	was      []int8
	done     chan struct{} // closed once the truncate has returned
}

// settle recycles the frames release emptied since the last settle, all
// at once: those at the end of the file are cut off with one truncate,
// runs of the others are punched out with one fallocate each, so that a
// buffer of 1 GiB that closes costs a system call or a few, not one per
// frame. A recycled frame is reused; one that could not be punched out
// keeps its charged granules as slack, unless it has dead slots: then its
// pages may still be a socket's, it is lost, and zero-copy sends stop. The
// charged granules of the frames punched out or cut off go back to the
// disk budget. The system calls are made with s.mu released (see
// segment): the frames are marked frameSettling or frameCutting
// meanwhile. A frame with granules being punched out of it is left for
// the commit of that punch to settle; while a cut is in flight, the frames
// at the end are punched out instead.
func (s *segment) settle() {
	s.lock()
	if len(s.recycle) == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	rs := s.recycle
	s.recycle, s.spare = s.spare, nil
	k := 0
	for _, r := range rs {
		if s.frames[r.frame].punching != (bitmap{}) {
			s.recycle = append(s.recycle, r) // for holes.commit to settle
			continue
		}
		rs[k] = r
		k++
	}
	rs = rs[:k]
	if len(rs) == 0 {
		s.keepSpare(rs)
		s.mu.Unlock()
		return
	}
	slices.SortFunc(rs, func(x, y recycled) int { return x.frame - y.frame })
	c := s.planCut(rs)
	tail := len(rs) // rs[tail:] are cut off
	if c != nil {
		for tail > 0 && rs[tail-1].frame >= c.from {
			tail--
		}
	}
	for _, r := range rs[:tail] {
		s.frames[r.frame].class = frameSettling
	}
	s.a.fly()
	s.mu.Unlock()

	punch := rs[:tail]
	var cutErr error
	if c != nil {
		cutErr = s.f.Truncate(int64(c.from) * s.a.frame)
		close(c.done)
		if cutErr != nil {
			punch = rs // not cut: punched out with the others
		}
	}
	// Runs of consecutive frames, punched out.
	for j := 0; j < len(punch); {
		k := j + 1
		for k < len(punch) && punch[k].frame == punch[k-1].frame+1 {
			k++
		}
		err := s.punch(int64(punch[j].frame)*s.a.frame, int64(k-j)*s.a.frame)
		for ; j < k; j++ {
			punch[j].dropped = err == nil
		}
	}

	s.lock()
	var back int64
	if c != nil {
		back += s.commitCut(c, cutErr)
	}
	for _, r := range punch {
		back += s.recycled(r)
	}
	s.keepSpare(rs)
	s.mu.Unlock()
	s.a.land(back)
}

// keepSpare keeps rs's array, emptied, as the next recycle list, unless it
// is large (after a burst of frees). s.mu is held.
func (s *segment) keepSpare(rs []recycled) {
	if cap(rs) <= 4096 {
		s.spare = rs[:0]
	}
}

// planCut marks for cutting off the frames at the end of the file that
// are recycled (in rs, sorted), free or lost, if some in rs are among
// them and no cut is in flight, and returns the cut, or nil. s.mu is held.
func (s *segment) planCut(rs []recycled) *cut {
	if s.cut != nil {
		return nil
	}
	to := len(s.frames)
	from := to
	for from > 0 && s.cuttable(&s.frames[from-1]) {
		from--
	}
	if rs[len(rs)-1].frame < from {
		return nil
	}
	c := &cut{from: from, to: to, was: make([]int8, to-from), done: make(chan struct{})}
	for i := from; i < to; i++ {
		f := &s.frames[i]
		c.was[i-from] = f.class
		if f.class == frameFree {
			s.addSlack(-int64(f.disk.count()) * s.a.gran)
		}
		f.class = frameCutting
	}
	s.empty = slices.DeleteFunc(s.empty, func(i int) bool { return i >= from })
	s.empty.init()
	s.cut = c
	return c
}

// cuttable reports whether frame f may be cut off the end of the file:
// it holds no extent, and neither a settle nor a punch in flight has it.
// Every emptied frame with no granule being punched out is in the settle
// that asks. s.mu is held.
func (s *segment) cuttable(f *frameState) bool {
	switch f.class {
	case frameFree, frameLost, frameRecycling:
		return f.punching == bitmap{}
	}
	return false
}

// commitCut ends cut c, whose truncate returned err, and returns the
// bytes it gives back to the disk budget. If the truncate failed, the
// frames are what they were, but for the recycled ones, which settle
// punches out instead. s.mu is held.
func (s *segment) commitCut(c *cut, err error) (back int64) {
	s.cut = nil
	if err != nil {
		for i := c.from; i < c.to; i++ {
			f := &s.frames[i]
			switch c.was[i-c.from] {
			case frameFree:
				f.class = frameFree
				s.addSlack(int64(f.disk.count()) * s.a.gran)
				s.empty.push(i)
			case frameLost:
				f.class = frameLost
			}
		}
		return 0
	}
	appended := len(s.frames) > c.to
	for i := c.from; i < c.to; i++ {
		back += s.uncharge(&s.frames[i])
		if appended {
			s.frames[i] = frameState{class: frameFree}
			s.empty.push(i)
		}
	}
	if !appended {
		s.frames = s.frames[:c.from]
	}
	return back
}

// recycled commits the settle of frame r, punched out or not (r.dropped),
// and returns the bytes it gives back to the disk budget. s.mu is held.
func (s *segment) recycled(r recycled) int64 {
	fs := &s.frames[r.frame]
	switch {
	case r.dropped:
		back := s.uncharge(fs)
		*fs = frameState{class: frameFree}
		s.empty.push(r.frame)
		return back
	case !r.dead:
		fs.class = frameFree
		s.addSlack(int64(fs.disk.count()) * s.a.gran)
		s.empty.push(r.frame)
	default:
		// Its pages may still be a socket's: it is never reused, and no
		// more sends take the risk.
		fs.class = frameLost
		s.a.noZeroCopy.Store(true)
	}
	return 0
}

// uncharge clears the charged granules of frame f, which are no longer on
// disk, and returns their bytes (give). s.mu is held.
func (s *segment) uncharge(f *frameState) int64 {
	n := int64(f.disk.count()) * s.a.gran
	f.disk = bitmap{}
	return s.give(n)
}

// give takes n bytes of granules no longer on disk off those charged, and
// returns them, to go back to the disk budget; nothing once the segment
// is closed (arena.close gave back everything). s.mu is held.
func (s *segment) give(n int64) int64 {
	if s.closed {
		return 0
	}
	s.charged -= n
	return n
}

// reclaim punches the segment's slack out of its file, one fallocate per
// run of adjacent slack granules (across frames too), with s.mu released,
// and gives the charge back to the disk budget: all of it, or, if it holds
// more than target bytes, its largest runs until they make target. It
// returns the bytes it set out to punch out. It stops at the first punch
// that fails, and returns its error; the granules it did not punch out
// are slack again.
//
// It looks at the frames reclaimSlice at a time per hold of s.mu, twice:
// to find the runs (slackRuns), and to mark those it chose (markRuns),
// which it checks again since they may have changed in between.
func (s *segment) reclaim(target int64) (int64, error) {
	buf := runsPool.Get().(*[][2]int)
	defer runsPool.Put(buf)
	runs, found := s.slackRuns((*buf)[:0])
	if len(runs) == 0 {
		return 0, nil
	}
	if target < found {
		// The largest first, then back in file order for markRuns.
		slices.SortFunc(runs, func(x, y [2]int) int { return (y[1] - y[0]) - (x[1] - x[0]) })
		k := 0
		for got := int64(0); k < len(runs) && got < target; k++ {
			got += int64(runs[k][1]-runs[k][0]) * s.a.gran
		}
		runs = runs[:k]
		slices.SortFunc(runs, func(x, y [2]int) int { return x[0] - y[0] })
	}
	h := holes{s: s}
	marked := s.markRuns(&h, runs)
	*buf = runs[:0]
	return marked, h.punch()
}

// reclaimSlice is how many frames reclaim looks at per hold of s.mu.
// Looking at all of them at once held it for 50-230 µs, up to 1.5 ms, in
// 36-46 reclaims per run of the bench's uploads scenario (segments of
// about 900 frames), and every writer of the segment that needed an
// extent meanwhile waited for it: long enough that Go's mutex turned to
// handoff, and a queue formed behind a writer waiting for a CPU (see
// segment.lock). In slices, the longest holds of a run were 42-55 µs.
// The p99.9 of the writes did not move beyond the noise (medians
// 1.68-1.92× the temporary file's against 1.61-1.92×, four sets of 8-12
// alternating runs), but the hold no longer grows with the file.
const reclaimSlice = 64

// slackRuns appends to runs the runs of adjacent slack granules of the
// segment (each the granules [from, to)), in file order, and returns them with
// their bytes in all. It releases s.mu every reclaimSlice frames, so the
// runs may be out of date when it returns.
func (s *segment) slackRuns(runs [][2]int) ([][2]int, int64) {
	G := s.a.grans
	var found int64
	s.lock()
	for i := 0; i < len(s.frames) && s.slack > 0; i++ {
		if i > 0 && i%reclaimSlice == 0 {
			s.relock()
			if i >= len(s.frames) {
				break // cut off meanwhile
			}
		}
		slack := s.slackOf(&s.frames[i])
		for lo := slack.next(0, G, true); lo < G; {
			hi := slack.next(lo, G, false)
			if n := len(runs); n > 0 && runs[n-1][1] == i*G+lo {
				runs[n-1][1] = i*G + hi // continues across frames
			} else {
				runs = append(runs, [2]int{i*G + lo, i*G + hi})
			}
			found += int64(hi-lo) * s.a.gran
			lo = slack.next(hi, G, true)
		}
	}
	s.mu.Unlock()
	return runs, found
}

// markRuns adds to h the granules of runs, in file order, that are still
// slack, and returns their bytes. It releases s.mu every reclaimSlice
// frames: the marks made before stay, since nothing allocates, punches or
// cuts a granule being punched out.
func (s *segment) markRuns(h *holes, runs [][2]int) int64 {
	G := s.a.grans
	var marked int64
	seen := 0
	s.lock()
	defer s.mu.Unlock()
	for _, r := range runs {
		for k := r[0]; k < r[1]; {
			i := k / G
			if s.closed || s.slack == 0 || i >= len(s.frames) {
				return marked // the later runs are past the end too
			}
			if seen++; seen > reclaimSlice {
				seen = 0
				s.relock()
				continue // look again
			}
			end := min(r[1]-i*G, G)
			slack := s.slackOf(&s.frames[i])
			for lo := slack.next(k-i*G, end, true); lo < end; {
				hi := slack.next(lo, end, false)
				h.add(i*G+lo, i*G+hi)
				marked += int64(hi-lo) * s.a.gran
				lo = slack.next(hi, end, true)
			}
			k = i*G + end
		}
	}
	return marked
}

// punchExtent punches out the granules of the (freed) extent of class c
// at off that are slack, with s.mu released, and gives their charge back
// to the disk budget. Its frame, if recycling, is left to settle.
func (s *segment) punchExtent(c int, off int64) {
	s.lock()
	h := holes{s: s}
	// Its frame may have been settled, even cut off, meanwhile.
	if i := int(off / s.a.frame); !s.closed && i < len(s.frames) && int(s.frames[i].class) == c {
		slack := s.slackOf(&s.frames[i])
		lo, hi := s.granules(c, int((off%s.a.frame)/s.a.classes[c]))
		G := s.a.grans
		for k := lo; k <= hi; k++ {
			if slack.get(k) {
				h.add(i*G+k, i*G+k+1)
			}
		}
	}
	s.mu.Unlock()
	h.punch()
}

// holes gathers runs of slack granules of a segment, counted from the
// start of its file, marked as being punched out (frameState.punching),
// and then punches each maximal run out with one fallocate.
type holes struct {
	s    *segment
	runs [][2]int // granules [from, to)
	buf  *[][2]int
}

// runsPool recycles the slices of holes.runs, which outlive the segment's
// lock (the punches run with it released), so that a reclaim allocates
// nothing in steady state: the bench's slow scenario made 1.5 MiB of
// them as garbage per run, in a process that collects rarely.
var runsPool = sync.Pool{New: func() any { return new([][2]int) }}

// add adds granules [from, to), which are slack, to the runs, and marks
// them: they are no longer slack, and nothing allocates them until the
// commit. The first counts the holes in flight (arena.fly). s.mu is held.
func (h *holes) add(from, to int) {
	s, G := h.s, h.s.a.grans
	for k := from; k < to; {
		lo := k % G
		hi := min(G, lo+to-k)
		s.frames[k/G].punching.setRange(lo, hi)
		s.addSlack(-int64(hi-lo) * s.a.gran)
		k += hi - lo
	}
	switch n := len(h.runs); {
	case n == 0:
		if h.buf == nil {
			h.buf = runsPool.Get().(*[][2]int)
			h.runs = (*h.buf)[:0]
		}
		s.a.fly()
	case h.runs[n-1][1] == from:
		h.runs[n-1][1] = to
		return
	}
	h.runs = append(h.runs, [2]int{from, to})
}

// punch punches the runs out of the file, s.mu not held, until one fails;
// commits (holes.commit); gives the charge of what it punched out back to
// the disk budget; settles the frames it held up; and returns the error
// of the punch that failed, if any.
func (h *holes) punch() error {
	if len(h.runs) == 0 {
		return nil
	}
	s, g := h.s, h.s.a.gran
	done := len(h.runs)
	var err error
	for j, r := range h.runs {
		if err = s.punch(int64(r[0])*g, int64(r[1]-r[0])*g); err != nil {
			done = j
			break
		}
	}
	s.lock()
	back, resettle := h.commit(done)
	s.mu.Unlock()
	s.a.land(back)
	if resettle {
		s.settle()
	}
	*h.buf, h.runs = h.runs[:0], nil
	runsPool.Put(h.buf)
	h.buf = nil
	return err
}

// commit unmarks the granules of the runs: those of the first done runs,
// punched out, are uncharged, and the others are slack again (unless
// their frame was emptied meanwhile). It puts parked frames that no punch
// holds any more back where alloc finds them, and returns the bytes given
// back and whether an emptied frame it held up is left to settle. s.mu is
// held.
func (h *holes) commit(done int) (back int64, resettle bool) {
	s, G, g := h.s, h.s.a.grans, h.s.a.gran
	for j, r := range h.runs {
		for k := r[0]; k < r[1]; {
			i, lo := k/G, k%G
			hi := min(G, lo+r[1]-k)
			k += hi - lo
			f := &s.frames[i]
			f.punching.clearRange(lo, hi)
			n := int64(hi-lo) * g
			switch {
			case j < done:
				f.disk.clearRange(lo, hi)
				back += s.give(n)
			case f.class >= 0 || f.class == frameFree:
				s.addSlack(n) // still on disk, unoccupied
			}
			if f.punching != (bitmap{}) {
				continue // another punch in flight still holds it
			}
			if f.class == frameRecycling {
				resettle = true
			}
			if f.parked {
				f.parked = false
				switch {
				case f.class >= 0:
					s.partial[f.class].push(i)
				case f.class == frameFree:
					s.empty.push(i)
				}
			}
		}
	}
	return back, resettle
}

// punch gives bytes [off, off+n) of the file back to the file system, and
// their pages to the page cache: the range reads as zeros, and later
// writes to it get new pages. If the file system cannot punch holes, it
// says so (errors.ErrUnsupported) and the arena stops trying.
func (s *segment) punch(off, n int64) error {
	if s.a.noPunch.Load() {
		return errors.ErrUnsupported
	}
	p, ok := s.f.(puncher)
	if !ok {
		s.a.noPunch.Store(true)
		return errors.ErrUnsupported
	}
	err := p.punch(off, n)
	if errors.Is(err, errors.ErrUnsupported) {
		s.a.noPunch.Store(true)
	}
	return err
}

// A bitmap is a set of up to 192 slots or granules of a frame.
type bitmap [3]uint64

func (b *bitmap) get(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b *bitmap) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b *bitmap) clear(i int)    { b[i/64] &^= 1 << (i % 64) }

// count returns the number of bits set.
func (b bitmap) count() int {
	return bits.OnesCount64(b[0]) + bits.OnesCount64(b[1]) + bits.OnesCount64(b[2])
}

// andNot returns the bits of b not in o.
func (b bitmap) andNot(o bitmap) bitmap { return bitmap{b[0] &^ o[0], b[1] &^ o[1], b[2] &^ o[2]} }

// lowestClear returns the lowest bit not set.
func (b *bitmap) lowestClear() int {
	for w := range b {
		if b[w] != ^uint64(0) {
			return w*64 + trailingOnes(b[w])
		}
	}
	panic("spool: frame has no free slot") // the callers check used first
}

// words calls f with each word of b that bits [lo, hi) touch, and the mask
// of those bits in it.
func words(lo, hi int, f func(w int, mask uint64)) {
	for lo < hi {
		w := lo / 64
		end := min(hi, (w+1)*64)
		f(w, ^uint64(0)>>(64-(end-lo))<<(lo%64))
		lo = end
	}
}

// setRange sets bits [lo, hi), clearRange clears them, and any reports
// whether any of them is set.
func (b *bitmap) setRange(lo, hi int)   { words(lo, hi, func(w int, m uint64) { b[w] |= m }) }
func (b *bitmap) clearRange(lo, hi int) { words(lo, hi, func(w int, m uint64) { b[w] &^= m }) }
func (b *bitmap) any(lo, hi int) bool {
	found := false
	words(lo, hi, func(w int, m uint64) { found = found || b[w]&m != 0 })
	return found
}

// next returns the lowest i' >= i, below n, whose bit is v, or n.
func (b *bitmap) next(i, n int, v bool) int {
	for i < n {
		w := b[i/64]
		if !v {
			w = ^w
		}
		if w >>= i % 64; w != 0 {
			return min(n, i+bits.TrailingZeros64(w))
		}
		i = (i/64 + 1) * 64
	}
	return n
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
