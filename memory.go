package spool

import (
	"sort"
	"sync"
)

// memory hands out the slices that hold buffer data in memory, in size
// classes, and recycles each class through a sync.Pool of its own.
//
// A buffer's data is cut into slots of ChunkSize bytes (store.chunks). A
// slot that holds bytes in memory holds one slice of a class: the whole
// chunk size for a full slot, and the smallest class that covers what was
// written for a buffer's small or last piece. Classes are spaced at most
// 1.25× apart, from minClass up to the chunk size, so a buffer of n bytes
// is charged at most max(minClass, 1.25·n) of budget, whatever ChunkSize
// is (store.slotClass says how a slot's class is chosen), while large
// buffers keep whole chunks and their speed. Every class is also a size
// class of Go's allocator (runtime/sizeclasses.go) or, above 32 KiB, a
// whole number of its 8 KiB pages, so the budget, which counts the
// capacity of the slices, is what the heap really holds for them.
//
// A slice taken from a pool may hold bytes of another buffer: the buffer
// code never shows a byte it has not written or zeroed itself (see the
// invariant on store.chunks), so slices are not cleared. Slices are kept
// as *[]byte so that Put does not allocate.
type memory struct {
	classes []int // ascending; the last is the chunk size
	pools   []sync.Pool

	// poison, when non-zero, is written over every slice given back.
	// Tests set it (export_test.go) to prove that no stale byte leaks into
	// another buffer.
	poison byte
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
// from MinChunkSize to MaxChunkSize.
func newMemory(cs int) *memory {
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
	a := &memory{classes: classes, pools: make([]sync.Pool, len(classes))}
	for i, size := range classes {
		a.pools[i].New = func() any {
			b := make([]byte, size)
			return &b
		}
	}
	return a
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
// contents.
func (a *memory) get(size int) *[]byte {
	return a.pools[sort.SearchInts(a.classes, size)].Get().(*[]byte)
}

// put gives back a slice that get returned. The caller must not use it
// afterwards.
func (a *memory) put(c *[]byte) {
	b := *c
	if a.poison != 0 {
		for i := range b {
			b[i] = a.poison
		}
	}
	a.pools[sort.SearchInts(a.classes, len(b))].Put(c)
}
