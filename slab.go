package spool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// slabs carves the slices of the classes up to maxSlabbed bytes out of
// mappings of slabSize bytes (slabs), each holding slices of one class,
// so that no byte of the budget is on Go's heap (pages.go says why that
// matters).
//
// Why slabs: in the bench's slow scenario (10,000 io.Copy uploads into a
// 16 MiB budget, every buffer in classes of a few KiB), the budget's
// slices on Go's heap made the collector's goal twice their size: a peak
// heap of 62-69 MiB against 10.7 MiB for the same uploads discarded; with
// slabs, 17-28 MiB (three alternating pairs of runs). A mapping of its
// own per slice would waste most of a page for the smallest classes and
// cost a system call where a slab hands out a slot. The classes from
// minReleased to maxSlabbed (16-32 KiB, whole pages) had mappings of their
// own before: in the scale scenario's lockstep (10,000 buffers taking a
// 32 KiB slice each, then giving it back for a chunk as they grow), each
// cost an mmap and a munmap. As slots of slabs whose pages are given back
// to the system when they come back (release), the RSS stays where it was
// (+13.7-15.0% over the 10-buffer point in ten alternating pairs of runs,
// against +13.8-14.7%) and the throughput at 10,000 buffers rose to
// 0.45-0.57x that at 10 (median 0.54) from 0.43-0.53x (median 0.50), higher
// in nine of the ten pairs.
//
// A slab is aligned to its size, so the slab of a slice is found from the
// slice's address (pages.shards lists it by the address of its first
// byte). Its slots are handed out from the first up, those given back
// first (a stack), so the pages of a slab the system backs with memory
// are those used. A slab whose last slice comes back is unmapped at once.
// The tail of a slab too short for a slice (slotsPerSlab) is never
// touched: it takes address space, and no memory.
//
// Idle pages. A slot of a class that is not releasable shares its pages
// with its neighbours, so its pages cannot go back to the system when it
// comes back. Instead its slab counts, for each page, the slots handed out
// that overlap it (slab.pageUse); a page that none overlaps any more is
// idle, and once a slab has releaseIdle idle pages (an eighth of it), they
// are given back in one madvise per run of them. So what the slabs hold in
// memory is the slices in use (in buffers, or in memory's free lists), the
// pages they share with free slots, and fewer than releaseIdle idle pages
// per slab. Slots came back out of order and left partly used slabs: in
// the slow scenario the slabs' resident pages peaked at 29.8-31.0 MiB for
// 16 MiB in use, and 18.4-20.8 MiB with idle pages given back; the blobs
// scenario's peak RSS fell from 201-202 MiB to 155-163 MiB, its reads per
// second and the scale scenario's throughput unchanged (within the noise
// of two runs each). The release is made under the class's lock, unlike
// that of a releasable slot: a slot on an idle page handed out between
// choosing the pages and the madvise would lose the bytes written to it.
// A page given back reads as zeros when next touched, at the cost of a
// page fault; waiting for an eighth of the slab keeps a slab whose slots
// are freed and taken again in turn from paying that at every turn. The
// cost where nothing else is done: slices of six small classes given back
// and taken in random order, 4,096 held (BenchmarkSlabChurn), 285-308 ns
// a pair against 95-135 ns without; closing a small buffer and writing a
// new one among 4,096 (BenchmarkSmallBufferChurn), 2.75-3.17 µs against
// 2.72-2.95 µs, within the noise. Waiting for a quarter or half of a slab
// instead kept more pages (blobs: 161 and 186 MiB) and still cost 170-220
// ns a pair.
//
// Lock protocol: a class's mu guards its list of slabs with free slots and
// the fields of its slabs, and is held over the madvise of idle pages; a
// shard's mu (pages) guards its maps. No goroutine holds both: the slab
// of a slice given back is looked up in its shard, that lock released,
// then its class's mu taken. That slab cannot be unmapped meanwhile: the
// slice given back keeps one of its slots in use until its class's mu is
// held.
type slabs struct {
	classes [maxSlabbed/slabAlign + 1]atomic.Pointer[slabClass]
	dropped atomic.Bool // the allocator is closed: no slab is mapped any more
}

const (
	// slabSize is the size of every slab, and its alignment.
	slabSize = 256 << 10
	// maxSlabbed is the largest slice carved from slabs; larger ones
	// are mapped each on its own.
	maxSlabbed = 32 << 10
	// slabAlign: a slabbed size is a multiple of it.
	slabAlign = 64
)

// slabbed reports whether slices of size bytes are carved from slabs.
func slabbed(size int) bool {
	return mapping && size >= minClass && size <= maxSlabbed && size%slabAlign == 0
}

// minReleased is the smallest slot whose pages a slab gives back to the
// system when the slot comes back (releasable): of the classes up to
// maxSlabbed, those of 16, 24, 28 and 32 KiB.
const minReleased = 16 << 10

// releasable reports whether the pages of a slot of size bytes are given
// back to the system when it comes back to its slab: a whole number of
// pages, at least minReleased.
func releasable(size int) bool { return size >= minReleased && size%pageSize == 0 }

// releaseIdle is the idle pages a slab of a class that is not releasable
// gives back at once (see "Idle pages" above): an eighth of a slab of 4
// KiB pages.
const releaseIdle = 8

// maxSlabPages is the most pages of a slab whose use is counted: a slab's
// pages are tracked in a uint64.
const maxSlabPages = 64

// tracksPages reports whether slabs of size bytes count the slots in use
// on each page and give back idle ones: a class that is not releasable,
// where a slab has at most maxSlabPages pages.
func tracksPages(size int) bool {
	return !releasable(size) && slabSize/pageSize <= maxSlabPages && slabSize%pageSize == 0
}

// slabClass holds the slabs of one size.
type slabClass struct {
	mu      sync.Mutex
	size    int
	pages   bool    // its slabs count the slots in use per page (tracksPages)
	slabs   int     // mapped
	partial []*slab // the slabs with a free slot; the last is used first
}

// slab is a mapping of slabSize bytes cut into slots of its class's size.
type slab struct {
	mem   []byte
	class *slabClass
	free  []uint16 // slots given back, taken again first
	next  int      // slots from next up were never handed out
	used  int      // slots handed out and not given back
	at    int      // index in class.partial, or -1
	slots int
	// If its class tracks pages: the slots handed out that overlap each
	// page, and the pages that none overlaps but that are still backed by
	// memory (bit i for page i).
	pageUse [maxSlabPages]uint16
	idle    uint64
}

// occupy counts a slot of size bytes at off handed out on the pages it
// overlaps, which are no longer idle. Its class's mu is held.
func (sl *slab) occupy(off, size int) {
	for p := off / pageSize; p <= (off+size-1)/pageSize; p++ {
		sl.pageUse[p]++
		sl.idle &^= 1 << p
	}
}

// vacate takes a slot of size bytes at off that came back off the count of
// the pages it overlaps, and marks those no slot overlaps any more idle.
// Once there are releaseIdle idle pages, it gives them back. Its class's
// mu is held.
func (sl *slab) vacate(off, size int) {
	for p := off / pageSize; p <= (off+size-1)/pageSize; p++ {
		if sl.pageUse[p]--; sl.pageUse[p] == 0 {
			sl.idle |= 1 << p
		}
	}
	if bits.OnesCount64(sl.idle) < releaseIdle {
		return
	}
	for sl.idle != 0 {
		lo := bits.TrailingZeros64(sl.idle)
		n := bits.TrailingZeros64(^(sl.idle >> lo)) // idle pages from lo
		release(sl.mem[lo*pageSize : (lo+n)*pageSize])
		sl.idle &^= (^uint64(0) >> (64 - n)) << lo
	}
}

// class returns the class of size, made on first use.
func (s *slabs) class(size int) *slabClass {
	p := &s.classes[size/slabAlign]
	if c := p.Load(); c != nil {
		return c
	}
	p.CompareAndSwap(nil, &slabClass{size: size, pages: tracksPages(size)})
	return p.Load()
}

// alloc returns a slice of size bytes (slabbed) from a slab of pages p,
// with unspecified contents, and reports whether it could map one.
func (s *slabs) alloc(p *pages, size int) ([]byte, bool) {
	c := s.class(size)
	c.mu.Lock()
	for len(c.partial) == 0 {
		// Map a slab with the lock released: a system call, and it
		// allocates on Go's heap, which may wait for a collection (see
		// freeList's growth in memory.put). The list of slabs with free
		// slots is made to hold every slab of the class, also with the
		// lock released, so that nothing grows it under the lock.
		c.mu.Unlock()
		sl := p.mapSlab(c)
		if sl == nil {
			return nil, false
		}
		c.mu.Lock()
		c.slabs++
		for cap(c.partial) < c.slabs {
			want := 2 * c.slabs
			c.mu.Unlock()
			grown := make([]*slab, 0, want)
			c.mu.Lock()
			if cap(c.partial) < c.slabs && cap(grown) >= c.slabs {
				c.partial = append(grown, c.partial...)
			}
		}
		sl.at = len(c.partial)
		c.partial = append(c.partial, sl)
	}
	sl := c.partial[len(c.partial)-1]
	var i int
	if n := len(sl.free); n > 0 {
		i = int(sl.free[n-1])
		sl.free = sl.free[:n-1]
	} else {
		i = sl.next
		sl.next++
	}
	sl.used++
	if sl.used == sl.slots {
		c.unlist(sl)
	}
	off := i * size
	if c.pages {
		sl.occupy(off, size)
	}
	c.mu.Unlock()
	return sl.mem[off : off+size : off+size], true
}

// free gives b back to its slab, if it is a slice of one of p's slabs,
// and reports whether it was. A slab that no slice uses any more is
// unmapped.
func (s *slabs) free(p *pages, b []byte) bool {
	// The address where b's slab would start: an address, never a
	// pointer (addressOf).
	addr := addressOf(b)
	off := addr & (slabSize - 1)
	sl := p.slabOf(addr - off)
	if sl == nil {
		return false
	}
	c := sl.class
	if releasable(c.size) {
		release(b) // a system call: before the lock
	}
	c.mu.Lock()
	sl.free = append(sl.free, uint16(int(off)/c.size))
	sl.used--
	if sl.at < 0 && sl.used > 0 {
		sl.at = len(c.partial)
		c.partial = append(c.partial, sl)
	}
	empty := sl.used == 0
	if c.pages && !empty {
		sl.vacate(int(off), c.size)
	}
	if empty {
		if sl.at >= 0 {
			c.unlist(sl)
		}
		c.slabs--
	}
	c.mu.Unlock()
	if empty {
		p.unmapSlab(sl)
	}
	return true
}

// unlist takes sl out of c.partial. c.mu is held.
func (c *slabClass) unlist(sl *slab) {
	last := len(c.partial) - 1
	moved := c.partial[last]
	c.partial[sl.at] = moved
	moved.at = sl.at
	c.partial[last] = nil
	c.partial = c.partial[:last]
	sl.at = -1
}

// slotsPerSlab returns the number of slices of size bytes a slab holds.
func slotsPerSlab(size int) int { return slabSize / size }

// mapSlab maps a slab for class c, aligned to its size, and lists it; it
// returns nil if it cannot (no mmap, maxMappings reached, or the system
// refused).
func (p *pages) mapSlab(c *slabClass) *slab {
	if p.slabs.dropped.Load() {
		return nil
	}
	if p.count.Add(1) > maxMappings {
		p.count.Add(-1)
		return nil
	}
	// Map twice the size and unmap what lies outside the aligned slab.
	m, err := mapAnon(2 * slabSize)
	if err != nil {
		p.count.Add(-1)
		return nil
	}
	start := addressOf(m)
	skip := int((start+slabSize-1)&^(slabSize-1) - start)
	p.trim(m[:skip])
	p.trim(m[skip+slabSize:])
	n := slotsPerSlab(c.size)
	sl := &slab{mem: m[skip : skip+slabSize : skip+slabSize], class: c, free: make([]uint16, 0, n), slots: n}
	p.bytes.Add(slabSize)
	p.list(sl.mem, sl)
	return sl
}

// trim unmaps b, a part of a new mapping outside the slab cut from it. If
// that fails (the process is short of mappings), b is listed as a mapping
// of its own, its pages given back (unmap), for freeAll to unmap.
func (p *pages) trim(b []byte) {
	if len(b) > 0 && unmap(b) != nil {
		p.count.Add(1)
		p.bytes.Add(int64(len(b)))
		p.list(b, nil)
	}
}

// unmapSlab unlists and unmaps a slab that no slice uses.
func (p *pages) unmapSlab(sl *slab) { p.unlistAndUnmap(sl.mem) }
