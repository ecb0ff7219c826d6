package spool

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// pages maps the slices of the budget straight from the operating system,
// outside Go's heap: those of the larger size classes each in a mapping of
// its own, unmapped when the memory allocator lets it go, and those of
// the small classes in slabs (slab.go).
//
// Why: slices on Go's heap are counted by its garbage collector, which
// runs a cycle each time the heap doubles. A Manager filling a 64 MiB
// budget on Go's heap so ran five collections in its first 40 ms, and
// while one starts, every goroutine that allocates waits for it; with 200
// goroutines taking turns on 2 cores, that wait is milliseconds. In the
// bench's uploads scenario, traces of the writes slower than 0.5 ms
// (runtime/trace, classified by what each goroutine waited on) showed
// those waits, at memory.get and store.growTable, first in every run
// with a tail of milliseconds. Mapping the classes of whole pages cut
// spool's write latency p99.9 there from 0.43-5.6 ms (median 2.7 ms) to
// 0.25-1.6 ms (median 0.52 ms) in five alternating pairs of runs of a
// prototype, and to 0.17-2.7 ms (median 0.28 ms) over 16 runs of this
// code. A slice that is let go is also given back to the operating
// system at once, where one on the heap waits for a collection and the
// scavenger: the RSS follows the memory in use down (in the scale
// scenario, 10,000 buffers growing in lockstep peak at 76 MiB on a 64
// MiB budget, where they peaked at 110-129 MiB). The price is system
// calls where the heap reused memory in place: that lockstep took 1-20%
// more CPU in eight alternating pairs of runs.
//
// Which slices: those of the classes up to maxSlabbed (slabbed) are slots
// of slabs; those of the larger classes, whole numbers of pages, the
// chunk size among them, get a mapping of their own (mappable). A
// mapping per small slice would waste most of a page, and cost a system
// call where a slab hands out a slot. Each mapping, slabs included, is an
// entry in the kernel's list of the process's mappings, which is bounded
// (vm.max_map_count, 65,530 by default on Linux; past it every mmap
// fails, the Go runtime's own included, and so does a munmap that would
// split one): pages keeps at most maxMappings (1 GiB of 64 KiB
// chunks). Past that, or if a mapping fails, the slice comes from Go's
// heap instead, and so do slices of any other size; free tells the kinds
// apart. A munmap that fails anyway leaves the mapping listed, its pages
// given back to the system (MADV_DONTNEED), for freeAll to try again.
//
// Safety: a mapped slice must not be touched after it is unmapped, or the
// program faults. The buffer code touches a slot's slice only under its
// buffer's lock, and gives it back before it lets go of it; ReadFrom and
// WriteTo hand their stage to the caller's Read and Write, which io.Reader
// and io.Writer forbid to retain it, and give it back only when that call
// has returned. The allocator unmaps only slices given back to it. When
// the Manager is closed (memory.drop), it unmaps what its free lists hold,
// and each slice still in use (a stage whose Read or Write is still
// running) when it is given back; a slab, when its last slice is. When
// the allocator becomes unreachable without Close (a cleanup), it unmaps
// every mapping it still has: nothing can reach one then.
//
// Where the system has no mmap (pages_other.go), or under the race
// detector, which does not see memory outside Go's heap and would stop
// checking the buffers' bytes, every slice comes from Go's heap.
type pages struct {
	// shards list every mapping not yet unmapped, by its first byte, in
	// pageShards maps by address: a map grows by allocating, and an
	// allocation while a collection runs may wait for it; under one lock
	// that stalled every get and put of the Manager (traces of the bench's
	// uploads scenario).
	shards [pageShards]pageShard
	count  atomic.Int64 // mappings listed, and mmap calls in progress
	bytes  atomic.Int64 // of the mappings listed (Stats.MemoryMapped)
	slabs  slabs        // the mappings the small classes are carved from
}

type pageShard struct {
	mu   sync.Mutex
	live map[uintptr]listed // by the address of its first byte
	room int                // entries live was made for: it grows past them with mu released (list)
	_    [32]byte           // a cache line each
}

// listed is a mapping pages lists: a slice's own, or a slab.
type listed struct {
	mem  []byte
	slab *slab // nil for a slice's own mapping
}

const pageShards = 16 // 1<<4: shard takes the hash's top 4 bits

// shard returns the shard that lists the mapping starting at b: a hash of
// its page number (Fibonacci hashing), since consecutive mappings of a
// chunk each would otherwise fall in a few shards, or one.
func (p *pages) shard(addr uintptr) *pageShard {
	h := uint64(addr>>12) * 0x9E3779B97F4A7C15
	return &p.shards[h>>(64-4)]
}

// maxMappings bounds the mappings pages holds at once: a quarter of
// Linux's default vm.max_map_count.
const maxMappings = 16 << 10

// mappable reports whether slices of size bytes get a mapping of their
// own: a whole number of pages, larger than maxSlabbed.
func mappable(size int) bool {
	return mapping && size > maxSlabbed && size%pageSize == 0
}

// alloc returns size bytes mapped from the system, and reports whether it
// did: a slot of a slab (slabs) for a small class, with unspecified
// contents, or a mapping of its own, zeroed, for a larger one.
func (p *pages) alloc(size int) ([]byte, bool) {
	if slabbed(size) {
		return p.slabs.alloc(p, size)
	}
	if !mappable(size) {
		return nil, false
	}
	if p.count.Add(1) > maxMappings {
		p.count.Add(-1)
		return nil, false
	}
	b, err := mapAnon(size)
	if err != nil {
		p.count.Add(-1)
		return nil, false
	}
	p.bytes.Add(int64(size))
	p.list(b, nil)
	return b, true
}

// list adds mapping b, a slab if sl is not nil, to its shard.
//
// A map allocates as it grows, and an allocation while a collection runs
// may wait for its end: under the shard's lock, every get and put of
// mapped memory waited behind it (traces of the bench's uploads scenario:
// most of the slowest writes of a run). So the map is made for room
// entries, and replaced by one twice as large, made with the lock
// released, before it fills: a map made for n entries takes n without
// allocating.
func (p *pages) list(b []byte, sl *slab) {
	addr := addressOf(b)
	sh := p.shard(addr)
	sh.mu.Lock()
	for len(sh.live) >= sh.room {
		room := max(2*sh.room, 64)
		sh.mu.Unlock()
		grown := make(map[uintptr]listed, room)
		sh.mu.Lock()
		if len(sh.live) < sh.room {
			break // grown by another meanwhile
		}
		if len(sh.live) >= room {
			continue // filled past room meanwhile: too small
		}
		for k, v := range sh.live {
			grown[k] = v
		}
		sh.live, sh.room = grown, room
	}
	sh.live[addr] = listed{mem: b, slab: sl}
	sh.mu.Unlock()
}

// slabOf returns the slab that starts at address base, or nil.
func (p *pages) slabOf(base uintptr) *slab {
	sh := p.shard(base)
	sh.mu.Lock()
	sl := sh.live[base].slab
	sh.mu.Unlock()
	return sl
}

// free gives b back if alloc mapped it, and reports whether it did: to its
// slab, or unmapped if it is a mapping of its own. A slice from Go's heap
// is left to the garbage collector.
func (p *pages) free(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if slabbed(len(b)) {
		return p.slabs.free(p, b)
	}
	if !mappable(len(b)) {
		return false
	}
	return p.unlistAndUnmap(b)
}

// unlistAndUnmap unmaps the mapping starting at b's first byte, if p
// lists one, and reports whether it did.
func (p *pages) unlistAndUnmap(b []byte) bool {
	addr := addressOf(b)
	sh := p.shard(addr)
	sh.mu.Lock()
	m, ok := sh.live[addr]
	if ok {
		delete(sh.live, addr)
	}
	sh.mu.Unlock()
	if !ok {
		return false
	}
	if unmap(m.mem) != nil {
		p.list(m.mem, nil) // still mapped: for freeAll
		return true
	}
	p.count.Add(-1)
	p.bytes.Add(-int64(len(m.mem)))
	return true
}

// drop stops p mapping slabs: the allocator is closed. A slab is unmapped
// when its last slice comes back, as always.
func (p *pages) drop() { p.slabs.dropped.Store(true) }

// freeAll unmaps every mapping of p: nothing uses them any more.
func (p *pages) freeAll() {
	p.drop()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		live := sh.live
		sh.live, sh.room = nil, 0
		sh.mu.Unlock()
		for _, m := range live {
			_ = unmap(m.mem) // nothing more can be done: the process is short of mappings
			p.bytes.Add(-int64(len(m.mem)))
		}
		p.count.Add(-int64(len(live)))
	}
}

// addressOf returns the address of b's first byte. The maps of mappings
// are keyed by addresses, not pointers: the slab of a slice is looked up
// by its address rounded down to a slab, which, for a slice of Go's heap
// (past maxMappings, or after Close), may lie in memory the collector has
// freed or given to another object; a pointer there, live while a
// collection scans the stack, stops the program ("found bad pointer in Go
// heap").
func addressOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
