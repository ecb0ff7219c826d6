package spool

import (
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// memory hands out the slices that hold buffer data in memory, in size
// classes, and keeps those given back in a free list per class, for reuse.
//
// A buffer's data is cut into slots of ChunkSize bytes (store.chunks). A
// slot that holds bytes in memory holds one slice of a class: the whole
// chunk size for a full slot, and the smallest class that covers what was
// written for a buffer's small or last piece. Classes are spaced at most
// 1.25× apart, from minClass up to the chunk size, so a buffer of n bytes
// is charged at most max(minClass, 1.25·n) of budget, whatever ChunkSize
// is (store.reserve says how a slot's class is chosen), while large
// buffers keep whole chunks and their speed. Every class is also a size
// class of Go's allocator (runtime/sizeclasses.go) or, above 32 KiB, a
// whole number of its 8 KiB pages, so the budget, which counts the
// capacity of the slices, is what the heap holds for them where they are
// on it. Where the system can map memory, none is: pages.go carves the
// classes up to 32 KiB out of slabs (slab.go), and maps each slice of the
// larger ones, the chunk size among them, exactly its size, unmapping it
// when memory lets it go.
//
// The free lists are not sync.Pools: a sync.Pool drops what it holds at
// every garbage collection, and slices of many classes given back and
// taken in different numbers (a buffer growing from one class to the
// next, a rollover freeing whole chunks) made the heap churn: at 10,000
// buffers, 137 MB allocated for a 64 MiB budget, and a peak heap of 1.4
// times the budget. A free list keeps what it holds until it is taken
// again. Whole chunks, the bulk of the memory, are allocated only when
// their list is empty, so the chunks in use and free together never
// outnumber the most ever in use at once: no more than the budget holds.
// The slices of the smaller classes, which a buffer trades for larger ones
// as it grows, are kept up to a slack (slackFor: 1/32 of the budget, at
// most 8 chunks) for all classes together. A slice given back when the
// slack is full takes the place of one of the class whose free list holds
// the most bytes, which is let go (dropOther, let: back to pages, or left
// to the garbage collector); only when no other class holds any is the slice
// given back let go instead. The slack so follows the
// classes given back last, which are those taken next: while buffers grow
// together, each gives back the class the next one up is about to take.
// Keeping the first classes given back instead, and dropping the rest,
// left the slack full of 1 KiB stages that nothing took again, while the
// classes in demand went to the collector: in the slow scenario (10,000
// io.Copy uploads into a 16 MiB budget), 140-160 MB allocated over the
// run for 16 MiB in use, against 55-67 MB now.
// So the slices spool keeps, in use or free, come to at most the budget
// and that slack. When the budget shrinks (Manager.SetMemoryBudget), the
// free chunks beyond what the new budget leaves room for are dropped
// (trim), and so are chunks given back while the buffers hold more than
// the new budget (they pay that off): the chunks in use and free then
// come to at most the new budget, and the RSS follows it down: at once
// for mapped chunks, after a collection for the others.
//
// A slice taken from a free list may hold bytes of another buffer: the
// buffer code never shows a byte it has not written or zeroed itself (see
// the invariant on store.chunks), so slices are not cleared. Slices are
// kept as *[]byte so that giving one back does not allocate.
type memory struct {
	classes []int // ascending; the last is the chunk size
	lists   []freeList
	slack   atomic.Int64 // the most the free lists of classes below a chunk hold together
	held    atomic.Int64 // bytes those free lists hold
	chunks  atomic.Int64 // bytes of the free list of chunks
	budget  *budget      // if not nil, free chunks and memory in use fit its size
	os      *pages       // the slices of the classes mapped from the system
	dropped atomic.Bool  // the Manager is closed: slices given back are let go
	headers headers      // the *[]byte that new slices are kept in

	// poison, when non-zero, is written over every slice given back.
	// Tests set it (export_test.go) to prove that no stale byte leaks into
	// another buffer.
	poison byte
}

// freeList holds the slices of one class given back.
type freeList struct {
	mu    sync.Mutex
	items []*[]byte
	bytes atomic.Int64 // of items, for dropOther
}

// minClass is the smallest class: the least a buffer holding any byte in
// memory is charged.
const minClass = 256

// goClasses are the size classes of Go's allocator from minClass to 32 KiB
// that memory uses: each at most 1.25× the one before.
var goClasses = []int{
	256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
	2304, 2688, 3072, 3456, 4096, 4864, 5376, 6144, 6784, 8192, 9472,
	10240, 12288, 13568, 16384, 18432, 21760, 24576, 28672, 32768,
}

// newMemory returns the allocator for chunks of cs bytes, a power of two
// from MinChunkSize to MaxChunkSize, whose free lists of slices smaller
// than a chunk hold up to slack bytes.
func newMemory(cs int, slack int64) *memory {
	var classes []int
	for _, c := range goClasses {
		if c < cs {
			classes = append(classes, c)
		}
	}
	// Past Go's small classes: whole 8 KiB pages, each at most 1.25× the
	// class before, up to the chunk size.
	const page = 8 << 10
	for c := 32 << 10; c < cs; {
		next := min(c*5/4/page*page, cs)
		if next <= c {
			next = c + page
		}
		if next < cs {
			classes = append(classes, next)
		}
		c = next
	}
	classes = append(classes, cs)
	a := &memory{classes: classes, lists: make([]freeList, len(classes)), os: new(pages)}
	// Made once, here: made at the first recycle, it was an allocation on
	// the write path, where several writers at once made one each.
	a.headers.free = make([]*[]byte, 0, maxHeaders)
	a.slack.Store(slack)
	// A Manager dropped without Close: nothing can reach its slices.
	runtime.AddCleanup(a, (*pages).freeAll, a.os)
	return a
}

// resize sets the slack for a budget of size bytes (slackFor).
func (a *memory) resize(size int64) {
	a.slack.Store(slackFor(size, a.chunkSize()))
}

// slackFor returns the slack of the free lists of classes below a chunk
// for a budget of size bytes and chunks of cs: 1/32 of the budget, at
// least a chunk, at most slackChunks chunks.
func slackFor(size int64, cs int) int64 {
	return min(max(int64(cs), size/32), slackChunks*int64(cs))
}

// slackChunks bounds the slack, in chunks. Slices of the small classes
// that wait in the free lists are memory outside the buffers that counts
// in the RSS: at 1/32 of a 64 MiB budget (2 MiB), the bench's uploads
// scenario peaked 1.5 MiB higher than with 512 KiB (80.3-80.8 MiB
// against 78.7-79.2, three runs each), while 10,000 slow uploads into 16
// MiB (512 KiB either way) peaked higher with 128 KiB (140-146 MiB against
// 122-139).
const slackChunks = 8

// trim drops free chunks beyond keep bytes, and slices of smaller classes
// beyond the slack: mapped ones go back to pages (unmapped, or to their
// slab), the others are left to the garbage collector.
func (a *memory) trim(keep int64) {
	var gone []*[]byte
	defer func() { a.let(gone...) }()
	for i := range a.lists {
		l := &a.lists[i]
		size := int64(a.classes[i])
		l.mu.Lock()
		for len(l.items) > 0 {
			if size == int64(a.chunkSize()) {
				if a.chunks.Load() <= keep {
					break
				}
				a.chunks.Add(-size)
			} else {
				if a.held.Load() <= a.slack.Load() {
					break
				}
				a.held.Add(-size)
			}
			n := len(l.items) - 1
			gone = append(gone, l.items[n])
			l.items[n] = nil
			l.items = l.items[:n]
			l.bytes.Add(-size)
		}
		l.mu.Unlock()
	}
}

// let lets slices go that the free lists do not keep: a mapped one goes
// back to pages (unmapped, or its slot to its slab), one from Go's heap is
// left to the garbage collector. It is called with no free list's lock
// held: unmapping is a system call.
func (a *memory) let(gone ...*[]byte) {
	for _, c := range gone {
		a.os.free(*c)
		a.headers.recycle(c)
	}
}

// headers hands out the *[]byte that memory keeps slices in, so that a new
// slice costs no allocation of its own: they come from arrays of
// headerBatch, and those of slices let go are reused (up to maxHeaders).
// A mapped slice is the only allocation on Go's heap that a write making
// it would otherwise do, and a write that allocates while a collection
// runs may have to help it and wait for its end: in traces of the bench's
// uploads scenario, that was most of the writes slowest to return in the
// runs where a collection came mid-run.
type headers struct {
	mu    sync.Mutex
	batch [][]byte  // not handed out yet
	free  []*[]byte // given back by let
}

const (
	headerBatch = 64
	maxHeaders  = 1024
)

// wrap returns a header holding b. It allocates, when it must, with its
// lock released (see freeList's growth in put).
func (h *headers) wrap(b []byte) *[]byte {
	h.mu.Lock()
	for len(h.free) == 0 && len(h.batch) == 0 {
		h.mu.Unlock()
		batch := make([][]byte, headerBatch)
		h.mu.Lock()
		if len(h.free) == 0 && len(h.batch) == 0 {
			h.batch = batch
		}
	}
	var c *[]byte
	if n := len(h.free); n > 0 {
		c = h.free[n-1]
		h.free[n-1] = nil
		h.free = h.free[:n-1]
	} else {
		c = &h.batch[0]
		h.batch = h.batch[1:]
	}
	h.mu.Unlock()
	*c = b
	return c
}

// recycle takes back the header of a slice let go, which nothing uses.
func (h *headers) recycle(c *[]byte) {
	*c = nil
	h.mu.Lock()
	if len(h.free) < maxHeaders {
		h.free = append(h.free, c) // within its capacity
	}
	h.mu.Unlock()
}

// chunkSize returns the largest class: a full slot.
func (a *memory) chunkSize() int { return a.classes[len(a.classes)-1] }

// classFor returns the smallest class of at least n bytes (n <= the chunk
// size).
func (a *memory) classFor(n int) int {
	return a.classes[sort.SearchInts(a.classes, n)]
}

// classBelow returns the largest class of at most n bytes, or the smallest
// class if n is smaller.
func (a *memory) classBelow(n int) int {
	i := sort.SearchInts(a.classes, n+1) - 1
	return a.classes[max(i, 0)]
}

// get returns a slice of exactly size bytes, a class, with unspecified
// contents: one given back, or a new one.
func (a *memory) get(size int) *[]byte {
	l := &a.lists[sort.SearchInts(a.classes, size)]
	l.mu.Lock()
	if n := len(l.items); n > 0 {
		c := l.items[n-1]
		l.items[n-1] = nil
		l.items = l.items[:n-1]
		l.bytes.Add(-int64(size))
		l.mu.Unlock()
		if size != a.chunkSize() {
			a.held.Add(-int64(size))
		} else {
			a.chunks.Add(-int64(size))
		}
		return c
	}
	l.mu.Unlock()
	if b, ok := a.os.alloc(size); ok {
		return a.headers.wrap(b)
	}
	return a.headers.wrap(make([]byte, size))
}

// put gives back a slice that get returned. The caller must not use it
// afterwards, not even to read its length: the slice may be unmapped, and
// its header reused for another slice at once (headers). The same holds
// for whoever hands a slice off to another owner (store.adopt).
func (a *memory) put(c *[]byte) {
	b := *c
	if a.poison != 0 {
		for i := range b {
			b[i] = a.poison
		}
	}
	n := int64(len(b))
	idx := sort.SearchInts(a.classes, len(b))
	if len(b) != a.chunkSize() {
		for a.held.Add(n) > a.slack.Load() {
			a.held.Add(-n)
			if !a.dropOther(idx) {
				a.let(c)
				return
			}
		}
	} else if free := a.chunks.Add(n); a.budget != nil && (a.budget.owing() > 0 || free > a.budget.size.Load()) {
		// The budget shrank: this chunk pays what the buffers owe it, or
		// would be more than the budget, free.
		a.chunks.Add(-n)
		a.let(c)
		return
	}
	l := &a.lists[idx]
	l.mu.Lock()
	for len(l.items) == cap(l.items) {
		// Grow the list with its lock released: an allocation while a
		// collection runs may wait for it, and every get and put of
		// this class would wait behind it.
		size := 2*cap(l.items) + 8
		l.mu.Unlock()
		grown := make([]*[]byte, 0, size)
		l.mu.Lock()
		if len(l.items) < cap(l.items) {
			break // another put grew it meanwhile
		}
		if len(l.items) >= cap(grown) {
			continue // grown by others, and filled, meanwhile: too small
		}
		l.items = append(grown, l.items...)
	}
	if a.dropped.Load() {
		// The Manager is closed (drop emptied the lists, maybe while
		// this put ran): nothing would take it again.
		l.mu.Unlock()
		a.unhold(c)
		a.let(c)
		return
	}
	l.items = append(l.items, c)
	l.bytes.Add(n)
	l.mu.Unlock()
}

// unhold takes back the count put added for c, which no list took.
func (a *memory) unhold(c *[]byte) {
	if n := int64(len(*c)); n != int64(a.chunkSize()) {
		a.held.Add(-n)
	} else {
		a.chunks.Add(-n)
	}
}

// dropOther drops a slice of the small class that holds the most bytes in
// its free list, other than class idx (let), and reports whether it found
// one.
func (a *memory) dropOther(idx int) bool {
	best, most := -1, int64(0)
	for i := range len(a.lists) - 1 {
		if b := a.lists[i].bytes.Load(); i != idx && b > most {
			best, most = i, b
		}
	}
	if best < 0 {
		return false
	}
	l := &a.lists[best]
	l.mu.Lock()
	k := len(l.items)
	if k == 0 {
		l.mu.Unlock()
		return true // taken meanwhile: look again
	}
	c := l.items[k-1]
	l.items[k-1] = nil
	l.items = l.items[:k-1]
	size := int64(a.classes[best])
	l.bytes.Add(-size)
	l.mu.Unlock()
	a.held.Add(-size)
	a.let(c)
	return true
}

// drop empties the free lists (let): the Manager is closed. A slice given
// back later, by a ReadFrom or WriteTo whose Read or Write was still in
// progress, is let go at once (put).
func (a *memory) drop() {
	a.dropped.Store(true)
	a.os.drop()
	for i := range a.lists {
		l := &a.lists[i]
		l.mu.Lock()
		items := l.items
		for _, c := range items {
			a.unhold(c)
		}
		l.items = nil
		l.bytes.Store(0)
		l.mu.Unlock()
		a.let(items...)
	}
}
